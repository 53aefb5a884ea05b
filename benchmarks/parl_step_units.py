"""PA-RL's action optimisation on a trained critic, PA-RL's raw step against steps in action units (issue 25 C3).

What it measures: PA-RL (sweeps/diag-hopper.yaml's settings: the `demo` preset on hopper-medium, tuning seed 10
by default) from its common start (read from a store's common-start cache, copied into --work; it is never
rebuilt here), `--steps` offline critic steps, then the distillation targets of 8 batches of 256 dataset states
(`distill_targets`, no DP step) at each step rule: `parl/q_gain` (best optimised Q minus the best proposal's),
`parl/action_move` (mean |delta a| per executed element, normalised box), `parl/data_chosen` (the target is the
dataset chunk, unmoved) and `parl/data_won` (the target is the candidate that started from the dataset chunk).
It chooses nothing: tuning seeds only.

    MINARI_DATASETS_PATH=D python benchmarks/parl_step_units.py --store S --work W [--steps 20000] [--seed 10]
"""
from __future__ import annotations

import argparse
import shutil
import time
from pathlib import Path

import numpy as np
import torch

from bench.runner import common_start
from bench.runner.assemble import assemble
from bench.sweep.spec import load_sweep

ROOT = Path(__file__).resolve().parents[1]
RULES = (("q", 3e-4), ("action", 0.01), ("action", 0.02), ("action", 0.05), ("action", 0.1))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--store", required=True, type=Path, help="a store whose pretrained/ holds the common start")
    ap.add_argument("--work", required=True, type=Path, help="a scratch store the cache file is copied into")
    ap.add_argument("--steps", type=int, default=20000, help="offline critic steps (diag-hopper's pretrain.steps)")
    ap.add_argument("--seed", type=int, default=10)
    args = ap.parse_args()
    if not 10 <= args.seed <= 19:
        raise SystemExit("parl_step_units: tuning seeds (10-19) only")
    torch.set_num_threads(1)
    runs = load_sweep(ROOT / "sweeps" / "diag-hopper.yaml").expand()
    cfg = next(r.cfg for r in runs if r.method == "parl" and r.cfg.seed == args.seed)
    parts = assemble(cfg)
    m, buf = parts.method, parts.buffer
    key = common_start.cache_key(cfg, parts.dataset_hash, cfg.dp.chunk or parts.spaces.chunk)
    (args.work / "pretrained").mkdir(parents=True, exist_ok=True)
    if not (args.work / "pretrained" / f"{key}.pt").exists():
        shutil.copy(args.store / "pretrained" / f"{key}.pt", args.work / "pretrained" / f"{key}.pt")
    dp_state, _, built = common_start.obtain(cfg, args.work, parts.dataset_hash, parts.spaces, parts.normalizer,
                                             buf, m.device)
    assert not built
    m.load_pretrained_dp(dp_state)
    torch.manual_seed(args.seed)
    t0 = time.time()
    for _ in range(args.steps):
        m.pretrain(buf)
    print(f"{args.steps} offline critic steps in {time.time() - t0:.0f} s; samples {m.cfg.samples}, keep "
          f"{m.cfg.keep}, opt_steps {m.cfg.opt_steps}, act_steps {m.act_steps}, chunk {m.chunk}")
    batches = []
    for _ in range(8):
        b = buf.sample_chunks(256, m.chunk, source="offline")
        batches.append((m.normalizer.norm_obs(b["obs"]), m.normalizer.norm_act(b["action_chunk"])))
    with torch.no_grad():
        q = torch.cat([m.q_mean(s, d[:, :m.act_steps]) for s, d in batches])
    print(f"Q of the dataset's chunks at these states: mean {float(q.mean()):.2f}, std {float(q.std()):.2f}")
    for units, step in RULES:
        m.cfg.step_units, m.cfg.step_size, m.cfg.action_step = units, step, step
        acc: dict[str, list[float]] = {}
        torch.manual_seed(1)
        for s, data in batches:
            for k, v in m.distill_targets(s, data)[1].items():
                acc.setdefault(k, []).append(v)
        print(f"step_units {units:6s} step {step:<7g}: " + ", ".join(f"{k} {np.mean(v):.4f}" for k, v in acc.items()))


if __name__ == "__main__":
    main()
