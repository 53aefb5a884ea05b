"""Before/after check for a restructuring that must change no numbers.

Runs every registered method once on the demo task at a tiny fixed budget (seed 0, one thread) and writes its
curves (every column but `wall_s`) and the keys and settings columns of its timing rows to a JSON file. Run it
on the old tree and on the new one, then compare:

    python benchmarks/restructure_check.py --out before.json          # on the old tree
    python benchmarks/restructure_check.py --out after.json --compare before.json

Each method's line lists its evaluated actors and the losses its online phase logged (which phases ran: e.g.
MODIP's and PA-RL's distillation, DSRL's noise actor, DPPO's PPO loss). The last line says whether every
method's curves are equal and its timing keys/settings match.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

BUDGET = {
    "pretrain.steps": 40, "pretrain.log_every": 10, "pretrain.checkpoint_every": 20,
    "online.steps": 240, "online.checkpoint_every": 60, "online.log_every": 60,
    "eval.every": 120, "eval.episodes": 2, "eval.timing": True, "eval.timing_reps": 1, "eval.timing_batch": 2,
    "threads": 1,
}
# Columns of a timing row that are measurements rather than keys or settings.
MEASURED = {"run_id", "p50_ms", "p90_ms", "p99_ms", "mean_ms", "std_ms", "min_ms", "max_ms", "reps", "wall_s",
            "samples_ms", "timestamp", "host", "compile_s"}


def _overrides(cls, resolve) -> dict:
    over = dict(BUDGET)
    presets = getattr(cls.Config, "presets", None) or getattr(cls, "presets", {}) or {}
    over["preset"] = "test" if "test" in presets else ("demo" if "demo" in presets else "")
    if not over["preset"]:
        over.pop("preset")
    cs = {"common_start.steps": BUDGET["pretrain.steps"], "common_start.log_every": BUDGET["pretrain.log_every"]}
    try:  # a tree with a common_start section: build the common start with the same budget as before
        resolve(cls.name, "demo", 0, {**over, **cs})
        over.update(cs)
    except Exception:
        pass
    return over


def collect(root: Path) -> dict:
    import torch

    torch.set_num_threads(1)
    from bench.config.layers import resolve_config
    from bench.data.d4rl import make_dataset
    from bench.runner.lifecycle import run_one
    from bench.tasks.demo import DEMO_DATASET
    from methods.registry import registered_methods
    from results.store import Store

    os.environ["MINARI_DATASETS_PATH"] = str(root / "minari")
    make_dataset(DEMO_DATASET, root=root / "minari", agent_steps=2000, dataset_size=1500, progress=False)
    out = {}
    for name, cls in sorted(registered_methods().items()):
        cfg = resolve_config(name, "demo", 0, _overrides(cls, resolve_config))
        store = root / f"store-{name}"
        rid = run_one(cfg, store_root=store, sweep_id="check", progress=False)
        c = Store(store).curves(sweep="check", run_ids=[rid]).drop(columns=["wall_s", "run_id"])
        c = c.sort_values(["phase", "env_step", "grad_step", "actor", "metric"]).reset_index(drop=True)
        t = Store(store).timings(sweep="check", run_ids=[rid])
        keep = [k for k in t.columns if k not in MEASURED]
        trows = sorted(json.dumps({k: _plain(r[k]) for k in keep}, sort_keys=True, default=str)
                       for _, r in t.iterrows())
        out[name] = {"curves": json.loads(c.to_json(orient="records")), "timing_columns": sorted(keep),
                     "timing_rows": trows}
        losses = sorted({m for p, m in zip(c.phase, c.metric) if p == "finetune" and m.startswith("loss/")})
        actors = sorted({a for a in c.actor if a})
        print(f"{name}: {len(c)} curve rows, {len(t)} timing rows; evaluated actors {actors}; online losses "
              f"{losses}", flush=True)
    return out


def _plain(v):
    try:
        import pandas as pd

        if pd.isna(v):
            return None
    except (TypeError, ValueError):
        pass
    return v.item() if hasattr(v, "item") else v


def compare(before: dict, after: dict) -> bool:
    ok = True
    for name in sorted(set(before) | set(after)):
        if name not in before or name not in after:
            print(f"{name}: only in {'after' if name in after else 'before'}")
            continue
        b, a = before[name], after[name]
        old_curve_cols = set(b["curves"][0]) if b["curves"] else set()
        same_curves = b["curves"] == [{k: v for k, v in r.items() if k in old_curve_cols} for r in a["curves"]]
        old_cols = set(b["timing_columns"])
        # Columns added by the new tree (timing metadata) are allowed; the old keys and settings must match.
        rows_b = sorted(json.dumps({k: v for k, v in json.loads(r).items()}, sort_keys=True) for r in b["timing_rows"])
        rows_a = sorted(json.dumps({k: v for k, v in json.loads(r).items() if k in old_cols}, sort_keys=True)
                        for r in a["timing_rows"])
        same_timings = rows_b == rows_a
        if not same_curves:
            diff = next((i for i, (x, y) in enumerate(zip(b["curves"], a["curves"])) if x != y), None)
            print(f"{name}: curves differ ({len(b['curves'])} vs {len(a['curves'])} rows; first diff at {diff}: "
                  f"{b['curves'][diff] if diff is not None else ''} vs {a['curves'][diff] if diff is not None else ''})")
        if not same_timings:
            print(f"{name}: timing keys/settings differ:\n  before {rows_b}\n  after  {rows_a}")
        print(f"{name}: curves {'equal' if same_curves else 'DIFFER'}, timings {'match' if same_timings else 'DIFFER'}")
        ok &= same_curves and same_timings
    return ok


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", required=True)
    p.add_argument("--compare", default=None, help="a JSON written by an earlier --out")
    a = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        res = collect(Path(tmp))
    Path(a.out).write_text(json.dumps(res))
    if a.compare:
        ok = compare(json.loads(Path(a.compare).read_text()), res)
        print(f"restructure_check: {'every method equal' if ok else 'DIFFERENCES FOUND'}")
        return 0 if ok else 1
    print(f"restructure_check: wrote {a.out} ({len(res)} methods)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
