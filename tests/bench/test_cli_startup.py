"""`mbench`'s light commands answer without importing torch, gymnasium or MuJoCo (seconds of imports), and their
output is still right: `--help`, `list methods|tasks`, `config METHOD [--task --preset --set]`, `report --help`
and `sweep status`. Each runs in a fresh interpreter, which then reports what it imported.

Also here: a command module's REQUIRES (the packages without which bench/cli.py leaves its commands out) names
exactly the heavy packages its commands import.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

from tests.helpers import ROOT

ENGINES = ("torch", "gymnasium", "mujoco")

PROBE = textwrap.dedent("""
    import contextlib, io, json, sys
    from bench.cli import main
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        try:
            code = main(sys.argv[1:])
        except SystemExit as e:  # --help exits
            code = e.code
    loaded = sorted(m for m in sys.modules if m.split(".")[0] in ENGINES)
    print(json.dumps({"code": code, "out": out.getvalue(), "loaded": loaded}))
""")


def _mbench(*args: str) -> tuple[int, str]:
    """Run `mbench ARGS` in a fresh interpreter; assert it imported none of ENGINES; (exit code, stdout)."""
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.run([sys.executable, "-c", f"ENGINES = {ENGINES!r}\n{PROBE}", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    res = json.loads(proc.stdout.strip().splitlines()[-1])
    assert res["loaded"] == [], f"mbench {' '.join(args)} imported {sorted({m.split('.')[0] for m in res['loaded']})}"
    return res["code"], res["out"]


def _rows(out: str) -> dict[str, list[str]]:
    return {line.split()[0]: line.split()[1:] for line in out.splitlines() if line.strip()}


def test_help_lists_every_command_without_torch():
    code, out = _mbench("--help")
    assert code == 0
    for cmd in ("list", "run", "config", "demo", "data", "sweep", "tune", "store", "report", "ablate", "time"):
        assert cmd in out.split("{", 1)[1].split("}", 1)[0].split(","), cmd
    code, out = _mbench("report", "--help")
    assert code == 0 and "--target" in out and "--reps" in out and "--store" in out


def test_list_methods_without_torch_says_what_the_classes_say():
    from methods.registry import registered_methods

    code, out = _mbench("list", "methods")
    assert code == 0
    want = []
    for name, cls in sorted(registered_methods().items()):
        doc = (sys.modules[cls.__module__].__doc__ or "").strip().splitlines()
        want.append(f"{name:10s} actors={','.join(cls.actors):8s} {doc[0] if doc else ''}")
    assert out.splitlines() == want


def test_list_tasks_without_gymnasium():
    from bench.tasks import all_tasks

    code, out = _mbench("list", "tasks")
    assert code == 0
    assert out.splitlines() == [f"{name:28s} suite={t.suite:9s} env={t.env_id:28s} dataset={t.dataset_id}"
                                for name, t in sorted(all_tasks().items())]


def test_config_without_torch():
    code, out = _mbench("config", "bc_gauss")
    rows = _rows(out)
    assert code == 0 and rows["bc_gauss.lr"] == ["float", "0.0003"] and rows["eval.episodes"] == ["int", "10"]
    assert "seed" in rows and not any(k.startswith(("dp.", "common_start.", "modip.")) for k in rows)
    code, out = _mbench("config", "dppo")  # a DP method: its dp and common_start sections too
    rows = _rows(out)
    assert code == 0 and rows["dp.sampler"] == ["ddpm|ddim", '"ddpm"'] and "common_start.steps" in rows
    assert "dppo.clip_ploss_coef" in rows and "dp.eval_sampler" not in rows
    code, out = _mbench("config", "modip", "--task", "demo", "--preset", "demo", "--set", "dp.sampler=ddim")
    rows = _rows(out)
    assert code == 0
    assert rows["modip.planner.horizon"] == ["int", "4", "preset"]
    assert rows["dp.sampler"] == ["ddpm|ddim", '"ddim"', "set"]
    assert rows["dp.eval_sampler"] == ["ddpm|ddim", '"ddpm"', "eval.sampler", "(default)"]
    assert rows["preset"] == ["str", '"demo"', "set"] and rows["seed"] == ["int", "0", "default"]
    assert rows["variant"][1] == '"dp.sampler=ddim,preset=demo"' and "task" not in rows


def test_sweep_status_without_torch(tmp_path):
    from results.store import Store

    Store(tmp_path).write_run({"run_id": "r0", "sweep_id": "sw", "method": "bc_gauss", "variant": "", "suite": "demo",
                               "task": "demo", "dataset": "demo", "seed": 0, "config_json": "{}",
                               "status": "finished", "error": "", "wall_s": 3.0, "env_steps": 10, "grad_steps": 10,
                               "attempt": 1})
    code, out = _mbench("sweep", "status", "sw", "--store", str(tmp_path))
    assert code == 0 and out.splitlines()[0] == "sweep sw: 1 runs, 0 launches" and "finished 1" in out


def test_each_command_module_requires_what_its_commands_import():
    """REQUIRES: the heavy packages its commands' imports load (on every machine), that the module does not load
    itself; bench/cli.py leaves the commands out where one is missing (tests/bench/timing: a bare GPU machine)."""
    from bench.cli import SUBSYSTEMS
    from tests.structure.test_structure import HEAVY, loaded_at_import, project

    proj = project()
    surely = loaded_at_import(proj.imports, surely=True)
    for module in SUBSYSTEMS:
        name = module.__name__
        local = [i for i in proj.imports[name] if i.local]
        needs = set().union(*(i.packages for i in local), *(surely[t] for i in local for t in i.modules))
        assert set(getattr(module, "REQUIRES", ())) == (needs - surely[name]) & set(HEAVY), name
