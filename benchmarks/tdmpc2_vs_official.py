"""Our TD-MPC2 port against the official code (nicklashansen/tdmpc2 at e9f5932), same device, same settings.

Why: the port must be at least as fast as the code it reproduces, or a speed comparison with MODIP would be
unfair to TD-MPC2. Both sides build cheetah-run's shapes (obs 17, action 6, 1000-step episodes, episodic off,
as the official config has it for that task), the same model size, batch, horizon, planner samples and
compile mode, and time:
  * gradient updates per second (one full update: world model + Q, pi, targets), fed from pre-made random
    sequence batches, so buffer sampling is not counted on either side;
  * plan latency: one action at batch 1 by MPPI (6 x 512 samples, 64 elites, 24 pi trajectories, H 3),
    eval mode, warm-started.
Both sides live in one worker process, started with the interpreter that has the official code's needs
(tensordict 0.13 / omegaconf / hydra, which the project does not install; our code needs only torch and
numpy), and their calls alternate one by one (official, ours, ours, official, ...). On a busy shared CPU the
load drifts by several times within minutes, so only paired, interleaved timings give a fair ratio: each
ratio is the median over pairs of official time / our time.

The official source is never committed. Put it in an ignored folder first, e.g.
    git clone https://github.com/nicklashansen/tdmpc2 third_party/tdmpc2
    git -C third_party/tdmpc2 checkout e9f59321933cbc8e11a002b842adc7d4ffae8ff1
and give a Python that has torch plus tensordict==0.13.0, omegaconf and hydra-core (a separate venv):
    python benchmarks/tdmpc2_vs_official.py --official-python /path/to/venv/bin/python
The last line is the headline: `tdmpc2 updates ours/official: X ratio (device)`.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--official-src", default=str(ROOT / "third_party" / "tdmpc2" / "tdmpc2"),
                   help="the official package dir (holding tdmpc2.py, common/, config.yaml)")
    p.add_argument("--official-python", default=os.environ.get("TDMPC2_OFFICIAL_PYTHON", sys.executable))
    p.add_argument("--device", default="cpu")
    p.add_argument("--model-size", type=int, default=5)
    p.add_argument("--compile", type=int, default=0)
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--warmup", type=int, default=3, help="untimed calls per side before timing")
    p.add_argument("--updates", type=int, default=20, help="timed update pairs")
    p.add_argument("--acts", type=int, default=20, help="timed plan pairs")
    p.add_argument("--timeout", type=float, default=3600)
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    return p.parse_args(argv)


# ---- the worker: both agents in one process -----------------------------------------------------------------
def _random_sequences(torch, H, B, obs_dim, act_dim, seed):
    g = torch.Generator().manual_seed(seed)
    obs = torch.randn(H + 1, B, obs_dim, generator=g)
    action = torch.rand(H, B, act_dim, generator=g) * 2 - 1
    reward = torch.rand(H, B, 1, generator=g)
    return obs, action, reward, torch.zeros_like(reward)


def build_official(args, torch, dev, batches):
    """The official agent from its own config.yaml through its own parse_cfg (cheetah-run's shapes)."""
    os.environ.setdefault("LAZY_LEGACY_OP", "0")  # as the official train.py sets them
    os.environ.setdefault("TORCHDYNAMO_INLINE_INBUILT_NN_MODULES", "1")
    sys.path.insert(0, os.path.abspath(args.official_src))
    import hydra.utils
    from omegaconf import OmegaConf

    hydra.utils.get_original_cwd = os.getcwd  # parse_cfg asks Hydra for the launch dir
    import common.scale as scale_mod
    import tdmpc2 as official
    from common import parser

    cfg = OmegaConf.load(os.path.join(args.official_src, "config.yaml"))
    cfg.pop("defaults", None)
    cfg.task, cfg.obs, cfg.model_size = "cheetah-run", "state", args.model_size
    cfg.compile, cfg.batch_size, cfg.steps = bool(args.compile), args.batch_size, 10_000_000
    cfg.enable_wandb = cfg.save_video = cfg.save_agent = False
    cfg = parser.parse_cfg(cfg)
    cfg.obs_shape, cfg.action_dim, cfg.episode_length = {"state": (17,)}, 6, 1000
    cfg.seed_steps = 5000
    if dev.type != "cuda":
        # the official code hard-codes cuda:0 in two constructors: point them at this device while building
        import types

        proxy = types.ModuleType("torch")
        proxy.__getattr__ = lambda name: getattr(torch, name)
        proxy.device = lambda *a, **k: dev
        official.torch, scale_mod.torch = proxy, proxy
        try:
            agent = official.TDMPC2(cfg)
        finally:
            official.torch, scale_mod.torch = torch, torch
        for opt in (agent.optim, agent.pi_optim):
            for group in opt.param_groups:
                group["capturable"] = False  # Adam refuses capturable on the CPU
    else:
        agent = official.TDMPC2(cfg)
    assert cfg.horizon == 3 and cfg.num_samples == 512 and cfg.iterations == 6 and cfg.num_elites == 64

    class Batches:  # returns what common.buffer.Buffer.sample() returns
        i = 0

        def sample(self):
            self.i += 1
            obs, action, reward, term = batches[self.i % len(batches)]
            return obs, action, reward, term, None

    buf = Batches()
    agent.act(torch.zeros(17), t0=True, eval_mode=True)
    return agent, (lambda: agent.update(buf)), (lambda o: agent.act(o, t0=False, eval_mode=True))


def build_ours(args, torch, dev, batches):
    sys.path.insert(0, str(ROOT))
    import numpy as np

    from bench.config.parse import parse_section
    from bench.config.run import RunConfig
    from bench.runner.assemble import assemble
    from methods.base import ActorState
    from methods.tdmpc2.config import TDMPC2Config

    # cheetah's shapes (obs 17, act 6, 1000 steps) from halfcheetah-medium, identity normalisers (the official
    # agent's inputs); the config is this comparison's, not the suite's defaults
    section = parse_section(TDMPC2Config, {"model_size": args.model_size, "episodic": False,
                                           "batch_size": args.batch_size, "compile": bool(args.compile)}, "tdmpc2.")
    m = assemble(RunConfig(method="tdmpc2", task="halfcheetah-medium", seed=0, device=str(dev), section=section),
                 data="synthetic").method
    assert (m.spaces.obs_dim, m.spaces.act_dim) == (17, 6)
    ours = []
    for obs, action, reward, term in batches:  # the same sequences, in the buffer's (B, H, ...) layout
        b = {"obs": obs[:-1], "next_obs": obs[1:], "action": action, "reward": reward[..., 0],
             "terminal": term[..., 0].bool()}
        ours.append({k: v.transpose(0, 1).contiguous() for k, v in b.items()})
    counter = iter(range(10 ** 9))
    state = ActorState.create(0, dev)
    m.act(np.zeros((1, 17), np.float32), "mpc", state, True)
    return m, (lambda: m._step(ours[next(counter) % len(ours)])), (lambda o: m.act(o, "mpc", state, True))


def _paired(fns: dict, args_pool: list | None, n: int, warmup: int, sync) -> dict[str, list[float]]:
    """Alternate the sides call by call (ABBA order), timing each call; returns seconds per call per side."""
    names = list(fns)
    for i in range(warmup):
        for name in names:
            fns[name](*([args_pool[i % len(args_pool)][name]] if args_pool else []))
    times = {name: [] for name in names}
    for i in range(n):
        for name in (names if i % 2 == 0 else names[::-1]):
            a = [args_pool[i % len(args_pool)][name]] if args_pool else []
            sync()
            t0 = time.perf_counter()
            fns[name](*a)
            sync()
            times[name].append(time.perf_counter() - t0)
    return times


def worker(args) -> dict:
    import warnings

    warnings.filterwarnings("ignore")
    import torch

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    dev = torch.device("cuda:0" if args.device.startswith("cuda") else args.device)
    sync = (lambda: torch.cuda.synchronize()) if dev.type == "cuda" else (lambda: None)
    batches = [tuple(x.to(dev) for x in _random_sequences(torch, 3, args.batch_size, 17, 6, s)) for s in range(4)]
    agent, off_update, off_act = build_official(args, torch, dev, batches)
    method, our_update, our_act = build_ours(args, torch, dev, batches)
    g = torch.Generator().manual_seed(1)
    pool = [torch.randn(17, generator=g) for _ in range(8)]
    pool = [{"official": o, "ours": o[None].numpy()} for o in pool]
    upd = _paired({"official": off_update, "ours": our_update}, None, args.updates, args.warmup, sync)
    act = _paired({"official": off_act, "ours": our_act}, pool, args.acts, args.warmup, sync)
    return {"params": {"official": agent.model.total_params, "ours": method.model.trainable_parameters()},
            "update_s": upd, "plan_s": act, "torch": torch.__version__, "threads": torch.get_num_threads(),
            "device_name": torch.cuda.get_device_name(0) if dev.type == "cuda" else "cpu"}


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.worker:
        print("RESULT " + json.dumps(worker(args)), flush=True)
        return 0
    if not Path(args.official_src, "tdmpc2.py").exists():
        print(f"official source not found at {args.official_src}; see this script's docstring", file=sys.stderr)
        return 2
    cmd = [args.official_python, "-u", os.path.abspath(__file__), "--worker"]
    for k in ("official_src", "device", "model_size", "compile", "batch_size", "threads", "warmup", "updates",
              "acts"):
        cmd += ["--" + k.replace("_", "-"), str(getattr(args, k))]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=args.timeout, cwd=ROOT, check=False)
    lines = [ln for ln in out.stdout.splitlines() if ln.startswith("RESULT ")]
    if out.returncode != 0 or not lines:
        print(f"worker failed (exit {out.returncode}):\n{out.stderr[-3000:]}", file=sys.stderr)
        return 1
    res = json.loads(lines[-1][len("RESULT "):])
    assert res["params"]["ours"] == res["params"]["official"], f"parameter counts differ: {res['params']}"
    upd, act = res["update_s"], res["plan_s"]
    upd_ratio = statistics.median(o / s for o, s in zip(upd["official"], upd["ours"]))
    plan_ratio = statistics.median(o / s for o, s in zip(act["official"], act["ours"]))
    device = "cuda" if args.device.startswith("cuda") else args.device
    print(f"TD-MPC2 ours vs official (e9f5932) | device={res['device_name']} | torch={res['torch']} | "
          f"threads={res['threads']} | size={args.model_size} ({res['params']['ours']:,} params) | "
          f"batch={args.batch_size} | compile={bool(args.compile)} | MPPI 6x512 H3 | "
          f"{args.updates} update pairs, {args.acts} plan pairs, interleaved")
    print(f"{'side':<9} {'updates/s':>10} {'update p50 ms':>14} {'plan p50 ms':>12} {'plan p90 ms':>12}")
    for side in ("ours", "official"):
        u = sorted(upd[side])
        a = sorted(act[side])
        print(f"{side:<9} {len(u) / sum(u):>10.2f} {1e3 * statistics.median(u):>14.1f} "
              f"{1e3 * statistics.median(a):>12.1f} {1e3 * a[int(0.9 * (len(a) - 1))]:>12.1f}")
    print(f"tdmpc2 plan speed ours/official (median over pairs of official/ours latency): {plan_ratio:.2f} "
          f"ratio ({device})")
    print(f"tdmpc2 updates ours/official: {upd_ratio:.2f} ratio ({device})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
