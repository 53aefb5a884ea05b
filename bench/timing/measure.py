"""`mbench time`'s measurements: a method built on synthetic inputs (or a checkpoint) and timed, its rows in
the store, and the table that `mbench time` prints.

Why: the curves say how well a method does; this says what each of its act paths and updates costs, at batch
1 (acting in one env) and at one batched size (lockstep eval, vectorised envs), eager and optionally
compiled. It needs neither MuJoCo nor a dataset (bench/timing/synthetic.py), so it runs on a bare GPU machine.

Rows go to the results store under sweep `timing` (by default): one timings file and one runs row per
(method, task, device, config, checkpoint, compile setting), so `Store.timings()` joins them like any run's.
The command itself is bench/timing/cli.py, which imports this module (and so torch) only when it runs.
"""
from __future__ import annotations

import json
import math
import socket
from typing import Any

import torch

from bench.config.run import RunConfig, check_device_here
from bench.runner.provenance import git_state, now, package_versions
from bench.runner.timing import COST_KEYS, time_components
from bench.timing.synthetic import build_subject, timing_run_id
from results.checkpoint_files import load_checkpoint

TABLE_COLUMNS = ("method", "component", "kind", "actor", "actions/call", "updates/env_step", "batch", "compiled",
                 "mean_ms", "p50_ms", "p90_ms", "p99_ms", "reps", "compile_s", "agree", "settings")


def resolve_device(name: str) -> torch.device:
    """--device, checked (spelling, and present here) before anything is built."""
    check_device_here(name, key="--device")
    return torch.device(name)


def _config_base_from_store(store_root: str, checkpoint: str) -> dict[str, Any] | None:
    """The stored config of the run a `last.pt` checkpoint belongs to, if the store has that run."""
    st = load_checkpoint(checkpoint, fix="pass a run's last.pt or a cached pretrained-DP file")  # first: one line
    rid = st.get("run_id")
    try:
        if not rid:
            return None
        from results.store import Store  # lazy: pandas

        runs = Store(store_root).runs(run_ids=[rid])
    except Exception:  # noqa: BLE001 - no store, no pandas: fall back to the command line's config
        return None
    if runs.empty:
        return None
    cfg = json.loads(runs.iloc[-1]["config_json"])
    return {k: v for k, v in cfg.items() if k not in ("method", "task", "seed", "variant", "device")}


def measure(method: str, task: str, *, device: str = "cpu", overrides: list[str] | None = None,
            checkpoint: str | None = None, batch: int = 16, reps: int = 20, warmup: int = 3,
            compile: bool = False, compile_mode: str = "default", compile_backend: str = "inductor",
            max_s: float | None = None, obs_dim: int | None = None, act_dim: int | None = None,
            store_root: str | None = None, log=None) -> tuple[str, RunConfig, list[dict[str, Any]]]:
    """Build `method` on synthetic inputs (or a checkpoint) and time its components at batch 1 and `batch`.

    Returns (run_id, resolved config, rows). Rows carry `method` and `task` for printing."""
    dev = resolve_device(device)
    base = _config_base_from_store(store_root, checkpoint) if (checkpoint and store_root) else None
    subject = build_subject(method, task, device=str(dev), overrides=overrides, checkpoint=checkpoint,
                            obs_dim=obs_dim, act_dim=act_dim, base=base)
    torch.set_num_threads(subject.cfg.threads)
    compile_key = f"{compile_backend}:{compile_mode}" if compile else ""
    rid = timing_run_id(subject, compile_key)
    rows = time_components(subject.method, (1, batch), warmup=warmup, reps=reps, device=dev, compile=compile,
                           compile_mode=compile_mode, compile_backend=compile_backend, max_s=max_s, log=log)
    for r in rows:
        r["run_id"] = rid
        r["method"], r["task"] = method, task
        r["checkpoint_kind"] = subject.checkpoint_kind
        r["obs_dim"], r["act_dim"] = subject.spaces.obs_dim, subject.spaces.act_dim
    return rid, subject.cfg, rows


def write_rows(store_root: str, sweep_id: str, run_id: str, cfg: RunConfig, rows: list[dict[str, Any]],
               wall_s: float, started_at: str) -> None:
    """The timings rows plus a runs row (status finished) so that Store.timings() joins them."""
    from results.store import Store  # lazy: pandas

    store = Store(store_root)
    sha, dirty = git_state()
    # method/task live on the runs row; the timings table's own columns plus extras are kept per row.
    store.write_timings(sweep_id, run_id, [{k: v for k, v in r.items() if k not in ("method", "task")}
                                           for r in rows])
    store.write_run({
        "run_id": run_id, "sweep_id": sweep_id, "method": cfg.method, "variant": cfg.variant,
        "suite": "timing", "task": cfg.task, "dataset": "synthetic", "seed": cfg.seed,
        "config_json": json.dumps(cfg.to_json(), sort_keys=True), "status": "finished", "error": "", "git_sha": sha,
        "git_dirty": dirty, "host": socket.gethostname(), "device": cfg.device,
        "versions": json.dumps(package_versions()), "started_at": started_at, "finished_at": now(),
        "wall_s": float(wall_s), "env_steps": 0, "grad_steps": 0, "attempt": 1, "kind": "timing",
    })


def _fmt(v: Any, nd: int = 3) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "-"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, float):
        return f"{v:.{nd}f}"
    return str(v)


def format_table(rows: list[dict[str, Any]]) -> str:
    """A plain-text table: one line per (method, component, batch, compiled), with the component's metadata
    (kind, actor, env actions per call, updates per env step; '-' where it has none)."""
    lines = []
    for r in rows:
        settings = ",".join(f"{k}={r[k]}" for k in COST_KEYS if r.get(k) is not None)
        agree = ("-" if not r.get("compiled") or "compile_agree" not in r else "skip" if r["compile_agree"] is None
                 else "yes" if r["compile_agree"] else "NO")
        lines.append([str(r.get("method", "")), r["component"], _fmt(r.get("kind")), _fmt(r.get("actor") or None),
                      _fmt(r.get("actions_per_call")), _fmt(r.get("updates_per_env_step"), 4), str(r["batch"]),
                      _fmt(bool(r["compiled"])),
                      _fmt(r["mean_ms"]), _fmt(r["p50_ms"]), _fmt(r["p90_ms"]), _fmt(r["p99_ms"]), str(r["reps"]),
                      _fmt(r.get("compile_s"), 1), agree, settings or "-"])
    widths = [max(len(c), *(len(line[i]) for line in lines)) if lines else len(c)
              for i, c in enumerate(TABLE_COLUMNS)]
    out = ["  ".join(c.ljust(w) for c, w in zip(TABLE_COLUMNS, widths))]
    out.append("  ".join("-" * w for w in widths))
    out += ["  ".join(c.ljust(w) for c, w in zip(line, widths)) for line in lines]
    return "\n".join(out)
