"""The run key compile_train (methods/common/compiling.py): eager against inductor-compiled training steps on the CPU.

Why: torch.compile is kept only where it measurably pays on the CPU (the speed issue). This times the steps the
key compiles, as the methods run them (the DP's denoising step with clipping, the fused AdamW step and the EMA;
IQL's V-then-Q update; MODIP's critic step with clipping, Adam and the targets), at the demo preset's shapes and
the d4rl DP's, eager and compiled side by side in one process: one torch thread, repetitions interleaved (each
repetition alternates which goes first), each figure the median [min-max] over repetitions, with the median of
the per-repetition ratios ("paired") and the ratio of median CPU times, robust to a loaded machine. The first
compiled call (compilation; inductor's on-disk cache makes a second process cheaper) is reported apart.

    python benchmarks/compile_train.py [--reps 200] [--cases 0,3]
"""
from __future__ import annotations

import argparse
import os
import statistics
import time

import torch
from torch import nn

from methods.common.diffusion import DPModule
from methods.common.dp_config import DPConfig
from methods.common.iql import IQLCritics
from methods.common.iql_config import IQLConfig
from methods.modip.config import CriticConfig
from methods.modip.critics import Critics


def dp_case(obs: int, act: int, cfg: DPConfig, batch: int, compiled: bool):
    torch.manual_seed(0)
    dp = DPModule(obs, act, cfg, 4, "cpu", compile_train=compiled)
    g = torch.Generator().manual_seed(0)
    x0, cond = torch.rand(batch, 4, act, generator=g) * 2 - 1, torch.randn(batch, obs, generator=g)
    return lambda: dp.train_step(x0, cond, generator=g)


def iql_case(obs: int, adim: int, hidden: list[int], batch: int, compiled: bool):
    torch.manual_seed(0)
    c = IQLCritics(obs, adim, IQLConfig(hidden=hidden), 0.99, compile_train=compiled)
    g = torch.Generator().manual_seed(0)
    s, a, s2 = torch.randn(batch, obs, generator=g), torch.randn(batch, adim, generator=g), torch.randn(batch, obs)
    r, term = torch.randn(batch, generator=g), torch.rand(batch, generator=g) < 0.05
    return lambda: c.update(s, a, r, s2, term)


def modip_case(obs: int, act: int, hidden: list[int], batch: int, compiled: bool):
    torch.manual_seed(0)
    c = Critics(obs, act, CriticConfig(hidden=hidden, batch_size=batch), 0.99, compile_train=compiled)
    opt = torch.optim.Adam(c.parameters_to_train(), lr=3e-4, fused=True)
    g = torch.Generator().manual_seed(0)
    b = {"obs": torch.randn(batch, obs, generator=g), "action": torch.randn(batch, act, generator=g),
         "next_obs": torch.randn(batch, obs, generator=g), "reward": torch.randn(batch, generator=g),
         "terminal": torch.rand(batch, generator=g) < 0.05}

    def step():  # MODIP._critic_step after its batch
        loss, _ = c.loss(b)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(c.parameters_to_train(), 10.0)
        opt.step()
        c.update_targets()
    return step


D4RL_DP = DPConfig(hidden=[512, 512, 512], residual=True, activation="relu")
CASES = {  # name: (builder, args); demo task shapes: obs 9, act 1, Ta 4
    "dp step, demo DP 256x3 mish, batch 256 (common start)": (dp_case, (9, 1, DPConfig(), 256)),
    "dp step, demo DP 256x3 mish, batch 128 (MODIP distillation, demo)": (dp_case, (9, 1, DPConfig(), 128)),
    "dp step, d4rl DP 512x3 residual relu, batch 128 (hopper common start)": (dp_case, (11, 3, D4RL_DP, 128)),
    "IQL update, 128x3 mish, batch 256 (IDQL demo)": (iql_case, (9, 4, [128, 128, 128], 256)),
    "MODIP critic step, 64x2, batch 128 (demo)": (modip_case, (9, 1, [64, 64], 128)),
    "MODIP critic step, 256x2, batch 256 (default)": (modip_case, (9, 1, [256, 256], 256)),
}


def load() -> str:
    return " ".join(open("/proc/loadavg").read().split()[:3]) if os.path.exists("/proc/loadavg") else "?"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=200)
    ap.add_argument("--cases", default="", help="comma-separated case numbers (default: all)")
    args = ap.parse_args()
    torch.set_num_threads(1)
    assert torch.get_num_threads() == 1
    only = {int(i) for i in args.cases.split(",") if i}
    print(f"torch {torch.__version__}, {torch.get_num_threads()} thread, load average {load()}", flush=True)
    for n, (name, (build, case_args)) in enumerate(CASES.items()):
        if only and n not in only:
            continue
        eager, comp = build(*case_args, False), build(*case_args, True)
        t0 = time.perf_counter()
        comp()
        compile_s = time.perf_counter() - t0
        for _ in range(5):
            eager(), comp()
        wall: dict[str, list[float]] = {"eager": [], "compiled": []}
        cpu: dict[str, list[float]] = {"eager": [], "compiled": []}
        for r in range(args.reps):
            for k in (("eager", "compiled") if r % 2 else ("compiled", "eager")):
                f = eager if k == "eager" else comp
                t, c = time.perf_counter(), time.process_time()
                f()
                wall[k].append(time.perf_counter() - t)
                cpu[k].append(time.process_time() - c)
        med = statistics.median
        e, c = (wall[k] for k in ("eager", "compiled"))
        paired = med([a / b for a, b in zip(e, c)])
        print(f"{n} {name}: eager {med(e) * 1e3:.2f} ms [{min(e) * 1e3:.2f}-{max(e) * 1e3:.2f}], compiled "
              f"{med(c) * 1e3:.2f} ms [{min(c) * 1e3:.2f}-{max(c) * 1e3:.2f}]; eager/compiled {med(e) / med(c):.2f} "
              f"(paired {paired:.2f}, cpu time {med(cpu['eager']) / med(cpu['compiled']):.2f}); "
              f"first compiled call {compile_s:.1f} s; load {load()}", flush=True)


if __name__ == "__main__":
    main()
