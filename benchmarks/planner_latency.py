"""Per-action latency of MODIP's planner at batch 1: terminal V(s) against terminal Q(s, a ~ DP).

Why: the paper's inference-time claim is that a terminal V removes the full denoising chain that a terminal
Q(ŝ_H, a_H ~ DP) pays per candidate and iteration. Goal: the v planner takes <= 1/3 of the q planner's time.
This script measures both side by side in one process, with the settings the score runs use: it builds the
planner from the method's default config on a paper task (`resolve_config("modip", "hopper-medium", ...)`, no
preset, so the DP is the paper suites' default: DPPO's residual ReLU 512x3), so it never picks its own. Weights are random: latency depends on shapes, not on weights.

It prints one table with
- v and q at the default settings (p50, p90 per action; per action = per plan / replan_every);
- the DP's sampler inside the planner: DDPM-20 against DDIM-5;
- sweeps over iterations and samples, the horizon, and the DP's width (what the ratio depends on);
- host<->device copies and host syncs per plan (profiler counts: aten::_local_scalar_dense is a sync;
  on CUDA, Memcpy HtoD/DtoH); the plan itself should have none, act() adds the copies that return actions;
- a latency-matched q arm: q with the most iterations whose p50 does not exceed v's;
- v and q under the `demo` preset, the settings of the demo task's score runs (not the headline);
The headline pair (v, q at the defaults) is timed in alternating rounds so that both see the same background
load; the other rows are timed one after another and are noisier on a shared machine.
on the CPU, and on CUDA when a GPU is present. Its last line is the headline,
`planner_latency v/q: <ratio> ratio (<device>)`.

    python benchmarks/planner_latency.py [--reps 20] [--threads 1] [--quick]
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.config.layers import resolve_config
from bench.runner.assemble import assemble
from bench.runner.timing import time_callable
from methods.base import ActorState
from methods.modip.planner import plan

# The task whose resolved defaults (DP included: the paper suites take DPPO's residual ReLU 512x3 DP from
# methods/common/diffusion.py DP_SUITE_DEFAULTS) the headline uses; --task changes it. Demo-preset rows use "demo".
TASK = "hopper-medium"


def build(overrides: dict, device: str):
    """MODIP from its resolved config on the task's spaces (bench/runner/assemble.py: the timing table, a unit
    normaliser, random transitions; no env or dataset needed)."""
    task = "demo" if overrides.get("preset") == "demo" else TASK
    cfg = resolve_config("modip", task, 0, {**overrides, "device": device})
    return assemble(cfg, data="synthetic").method


def measure(overrides: dict, device: str, reps: int) -> dict:
    m = build(overrides, device)
    obs = np.random.default_rng(0).standard_normal((1, m.spaces.obs_dim)).astype(np.float32)
    state = ActorState.create(0, device)
    r = time_callable(lambda: m.act(obs, "mpc", state, True), component="plan", device=device, batch=1,
                      warmup=3, reps=reps, extra=m.timed_components(1)["plan"].settings)
    per = m.cfg.planner.replan_every
    calls0 = m.dp.ema.module.denoiser_calls
    m.act(obs, "mpc", state, True)
    return {"p50": r.p50_ms / per, "p90": r.p90_ms / per, "denoiser_calls": m.dp.ema.module.denoiser_calls - calls0,
            **m.timed_components(1)["plan"].settings, "method": m, "obs": obs}


def measure_pair(over_a: dict, over_b: dict, device: str, reps: int, rounds: int = 5) -> tuple[dict, dict, float]:
    """Two arms timed in alternating rounds, so that both see the same background load (a shared machine's
    load drifts over minutes). Each arm's p50/p90 is the median over rounds; the ratio a/b is the median of
    the per-round ratios of p50s."""
    a, b = measure(over_a, device, 1), measure(over_b, device, 1)
    stats: tuple[list, list] = ([], [])
    for _ in range(rounds):
        for arm, out in zip((a, b), stats):
            m, obs, state = arm["method"], arm["obs"], ActorState.create(0, device)
            r = time_callable(lambda m=m, obs=obs, state=state: m.act(obs, "mpc", state, True), component="plan",
                              device=device, batch=1, warmup=1, reps=max(2, reps // rounds))
            out.append((r.p50_ms / arm["replan_every"], r.p90_ms / arm["replan_every"]))
    for arm, out in zip((a, b), stats):
        arm["p50"], arm["p90"] = (float(np.median(col)) for col in zip(*out))
    ratio = float(np.median([x[0] / y[0] for x, y in zip(*stats)]))
    return a, b, ratio


def copies_and_syncs(m, obs, device: str) -> tuple[str, str]:
    """(inside plan(), whole act()) counts of host syncs and host<->device copies, from the profiler."""
    from torch.profiler import ProfilerActivity, profile

    acts = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.startswith("cuda") else [])
    s = m.normalizer.norm_obs(torch.as_tensor(obs, device=device))
    models = m.plan_models(True)

    def count(fn):
        with profile(activities=acts) as prof:
            fn()
            if device.startswith("cuda"):
                torch.cuda.synchronize()
        names = [e.name for e in prof.events()]
        syncs = sum(n == "aten::_local_scalar_dense" for n in names)
        copies = sum(("Memcpy HtoD" in n) or ("Memcpy DtoH" in n) for n in names)
        return f"{copies} copies, {syncs} syncs"

    g = torch.Generator(device=device).manual_seed(0)
    inside = count(lambda: plan(models, s, None, g, m.cfg.planner, m.gamma, m.spaces.act_dim))
    st = ActorState.create(0, device)
    whole = count(lambda: m.act(obs, "mpc", st, True))
    return inside, whole


def run_device(device: str, reps: int, quick: bool) -> float:
    sweep_reps = max(3, reps // 4)
    rows = []

    def add(label, overrides, n=sweep_reps):
        r = measure(overrides, device, n)
        rows.append((label, r))
        return r

    v, q, ratio = measure_pair({"modip.planner.terminal": "v"}, {"modip.planner.terminal": "q"}, device, reps)
    rows += [("v (default; alternating rounds with q)", v), ("q (default; alternating rounds with v)", q)]
    # The demo preset's planner (what the demo task's score runs and its 2x2 ablation use): smaller and cheaper,
    # with DDIM-5 for the DP inside the planner. Reported beside the defaults, never as the headline.
    dv, dq, demo_ratio = measure_pair({"preset": "demo", "modip.planner.terminal": "v"},
                                      {"preset": "demo", "modip.planner.terminal": "q"}, device, reps)
    rows += [("v demo preset (alternating rounds with q demo)", dv), ("q demo preset", dq)]
    for sampler in ("ddpm", "ddim"):
        for term in ("v", "q"):
            add(f"{term} dp_sampler={sampler}", {"modip.planner.terminal": term, "modip.planner.dp_sampler": sampler})
    default_iters, default_samples = v["iterations"], v["samples"]
    iters = [1, 2, default_iters] if quick else sorted({1, 2, default_iters, 2 * default_iters})
    samples = [64, default_samples] if quick else sorted({64, default_samples, 4 * default_samples})
    for term in ("v", "q"):
        for it in iters:
            if it != default_iters:
                add(f"{term} iterations={it}", {"modip.planner.terminal": term, "modip.planner.iterations": it})
        for n in samples:
            if n != default_samples:
                elites = min(v["method"].cfg.planner.elites, n // 2)
                pi = min(v["method"].cfg.planner.pi_trajectories, n // 4)
                add(f"{term} samples={n}", {"modip.planner.terminal": term, "modip.planner.samples": n,
                                            "modip.planner.elites": elites, "modip.planner.pi_trajectories": pi})
    # What the ratio depends on: v pays the world-model rollout (grows with H), q adds one DP chain per
    # candidate and iteration (grows with the DP's size, not with H).
    default_h = v["horizon"]
    shortest = v["method"].chunk  # the label is the plan's first Ta actions, so H >= Ta
    for hor in ([shortest] if quick else [shortest, 2 * default_h]):
        for term in ("v", "q"):
            add(f"{term} horizon={hor}", {"modip.planner.terminal": term, "modip.planner.horizon": hor})
    # the DP's size: the old default (a plain Mish 256x3 MLP) against the task's default (DPPO's residual
    # ReLU 512x3 on the paper suites)
    old_dp = {"dp.hidden": [256, 256, 256], "dp.residual": False, "dp.activation": "mish"}
    for term in ("v", "q"):
        add(f"{term} dp=mish 256x3 (old default)", {"modip.planner.terminal": term, **old_dp})
    # latency-matched q: the most iterations whose p50 does not exceed v's
    matched = None
    for it in range(default_iters, 0, -1):
        r = measure({"modip.planner.terminal": "q", "modip.planner.iterations": it}, device, sweep_reps)
        if r["p50"] <= v["p50"] or it == 1:
            matched = (it, r)
            break
    it, r = matched
    note = "matched" if r["p50"] <= v["p50"] else "cannot match: q at 1 iteration is still slower"
    rows.append((f"q latency-matched: iterations={it} ({note})", r))

    print(f"\nplanner latency per action, batch 1, {device}, torch threads {torch.get_num_threads()}, "
          f"default: horizon {v['horizon']}, samples {v['samples']}, iterations {v['iterations']}, "
          f"DP proposals {v['pi_trajectories']}, denoising steps {v['denoising_steps']}, "
          f"world-model members {v['wm_members']}, replan_every {v['replan_every']}")
    head = f"{'arm':58s} {'p50 ms':>9s} {'p90 ms':>9s} {'denoiser calls/plan':>20s}"
    print(head)
    print("-" * len(head))
    for label, r in rows:
        print(f"{label:58s} {r['p50']:9.2f} {r['p90']:9.2f} {r['denoiser_calls']:20d}")
    inside_v, whole_v = copies_and_syncs(v["method"], v["obs"], device)
    inside_q, whole_q = copies_and_syncs(q["method"], q["obs"], device)
    print(f"host<->device per plan: v plan() {inside_v}; act() {whole_v} | q plan() {inside_q}; act() {whole_q}")
    print(f"demo preset: samples {dv['samples']}, iterations {dv['iterations']}, denoising steps "
          f"{dv['denoising_steps']}, replan_every {dv['replan_every']}; v/q p50 ratio {demo_ratio:.3f}")
    print(f"v/q p50 ratio {ratio:.3f} (median of per-round ratios) (goal <= 0.333: {'met' if ratio <= 1 / 3 else 'not met'})")
    return ratio


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=20)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--quick", action="store_true", help="fewer sweep points")
    ap.add_argument("--no-cuda", action="store_true")
    ap.add_argument("--task", default=TASK, help="the task whose resolved defaults the headline uses")
    args = ap.parse_args()
    globals()["TASK"] = args.task
    torch.set_num_threads(args.threads)
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() and not args.no_cuda else [])
    ratios = {d: run_device(d, args.reps, args.quick) for d in devices}
    for d, ratio in ratios.items():
        print(f"planner_latency v/q: {ratio:.3f} ratio ({d})")


if __name__ == "__main__":
    main()
