"""Our TD-MPC2 port against the official code (nicklashansen/tdmpc2 at e9f5932), same device, same settings.

Why: the port must be at least as fast as the code it reproduces, or a speed comparison with MODIP would be
unfair to TD-MPC2. Both sides build cheetah-run's shapes (obs 17, action 6, 1000-step episodes, episodic off,
as the official config has it for that task), the same model size, batch, horizon, planner samples and
compile mode, and time:
  * gradient updates per second (one full update: world model + Q, pi, targets), fed from pre-made random
    sequence batches, so buffer sampling is not counted on either side;
  * plan latency: one action at batch 1 by MPPI (6 x 512 samples, 64 elites, 24 pi trajectories, H 3),
    eval mode, warm-started.
Each side runs in its own process (the official one needs tensordict 0.13 / omegaconf / hydra, which the
project does not install), and the sides alternate over several rounds so that a busy shared CPU hurts both
alike; the figures are medians over rounds.

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
    p.add_argument("--warmup-updates", type=int, default=5)
    p.add_argument("--updates", type=int, default=20)
    p.add_argument("--warmup-acts", type=int, default=5)
    p.add_argument("--acts", type=int, default=20)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--timeout", type=float, default=1200)
    p.add_argument("--worker", choices=["ours", "official"], help=argparse.SUPPRESS)
    return p.parse_args(argv)


# ---- timing loops shared by both workers -------------------------------------------------------------------
def _time_updates(update, warmup, n, sync):
    for _ in range(warmup):
        update()
    sync()
    t0 = time.perf_counter()
    for _ in range(n):
        update()
    sync()
    return n / (time.perf_counter() - t0)


def _time_acts(act, obs_pool, warmup, n, sync):
    for i in range(warmup):
        act(obs_pool[i % len(obs_pool)])
    lat = []
    for i in range(n):
        sync()
        t0 = time.perf_counter()
        act(obs_pool[i % len(obs_pool)])
        sync()
        lat.append(1e3 * (time.perf_counter() - t0))
    return statistics.median(lat), sorted(lat)[int(0.9 * (len(lat) - 1))]


def _random_sequences(torch, H, B, obs_dim, act_dim, seed):
    g = torch.Generator().manual_seed(seed)
    obs = torch.randn(H + 1, B, obs_dim, generator=g)
    action = torch.rand(H, B, act_dim, generator=g) * 2 - 1
    reward = torch.rand(H, B, 1, generator=g)
    return obs, action, reward, torch.zeros_like(reward)


def worker_official(args) -> dict:
    os.environ.setdefault("LAZY_LEGACY_OP", "0")  # as the official train.py sets them
    os.environ.setdefault("TORCHDYNAMO_INLINE_INBUILT_NN_MODULES", "1")
    import warnings

    warnings.filterwarnings("ignore")
    import torch

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    sys.path.insert(0, os.path.abspath(args.official_src))
    import hydra.utils
    from omegaconf import OmegaConf

    hydra.utils.get_original_cwd = os.getcwd  # parse_cfg asks Hydra for the launch dir
    import common.parser as parser
    import common.scale as scale_mod
    import tdmpc2 as official

    cfg = OmegaConf.load(os.path.join(args.official_src, "config.yaml"))
    cfg.pop("defaults", None)
    cfg.task, cfg.obs, cfg.model_size = "cheetah-run", "state", args.model_size
    cfg.compile, cfg.batch_size, cfg.steps = bool(args.compile), args.batch_size, 10_000_000
    cfg.enable_wandb = cfg.save_video = cfg.save_agent = False
    cfg = parser.parse_cfg(cfg)
    cfg.obs_shape, cfg.action_dim, cfg.episode_length = {"state": (17,)}, 6, 1000
    cfg.seed_steps = 5000
    dev = torch.device("cuda:0" if args.device.startswith("cuda") else args.device)
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
    batches = [tuple(x.to(dev) for x in _random_sequences(torch, cfg.horizon, cfg.batch_size, 17, 6, s))
               + (None,) for s in range(4)]

    class Batches:  # returns what common.buffer.Buffer.sample() returns
        i = 0

        def sample(self):
            self.i += 1
            return batches[self.i % 4]

    sync = (lambda: torch.cuda.synchronize()) if dev.type == "cuda" else (lambda: None)
    buf = Batches()
    ups = _time_updates(lambda: agent.update(buf), args.warmup_updates, args.updates, sync)
    g = torch.Generator().manual_seed(1)
    pool = [torch.randn(17, generator=g) for _ in range(8)]
    agent.act(pool[0], t0=True, eval_mode=True)
    p50, p90 = _time_acts(lambda o: agent.act(o, t0=False, eval_mode=True), pool, args.warmup_acts, args.acts,
                          sync)
    return {"side": "official", "params": agent.model.total_params, "updates_per_s": ups, "plan_p50_ms": p50,
            "plan_p90_ms": p90, "torch": torch.__version__, "threads": torch.get_num_threads()}


def worker_ours(args) -> dict:
    sys.path.insert(0, str(ROOT))
    import numpy as np
    import torch

    from methods.base import ActorState, TaskSpaces
    from methods.common.normalize import Normalizer
    from methods.config import from_dict
    from methods.tdmpc2 import TDMPC2, TDMPC2Config

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    dev = torch.device("cuda:0" if args.device.startswith("cuda") else args.device)
    spaces = TaskSpaces(obs_dim=17, act_dim=6, act_low=-np.ones(6, np.float32), act_high=np.ones(6, np.float32),
                        max_episode_steps=1000)
    nrm = Normalizer(np.zeros(17), np.ones(17), -np.ones(6), np.ones(6))
    cfg = from_dict(TDMPC2Config, {"model_size": args.model_size, "episodic": False, "batch_size": args.batch_size,
                                   "compile": bool(args.compile)})
    m = TDMPC2(cfg, spaces, nrm, device=dev)
    batches = []
    for s in range(4):  # the same random sequences, in the buffer's (B, H, ...) layout
        obs, action, reward, term = _random_sequences(torch, cfg.horizon, cfg.batch_size, 17, 6, s)
        b = {"obs": obs[:-1], "next_obs": obs[1:], "action": action, "reward": reward[..., 0],
             "terminal": term[..., 0].bool()}
        batches.append({k: v.transpose(0, 1).contiguous().to(dev) for k, v in b.items()})
    it = iter(range(10 ** 9))
    sync = (lambda: torch.cuda.synchronize()) if dev.type == "cuda" else (lambda: None)
    ups = _time_updates(lambda: m._step(batches[next(it) % 4]), args.warmup_updates, args.updates, sync)
    g = torch.Generator().manual_seed(1)
    pool = [torch.randn(1, 17, generator=g).numpy() for _ in range(8)]
    state = ActorState.create(0, dev)
    p50, p90 = _time_acts(lambda o: m.act(o, "mpc", state, True), pool, args.warmup_acts, args.acts, sync)
    return {"side": "ours", "params": m.model.trainable_parameters(), "updates_per_s": ups, "plan_p50_ms": p50,
            "plan_p90_ms": p90, "torch": torch.__version__, "threads": torch.get_num_threads()}


def _launch(side: str, args) -> dict:
    py = args.official_python if side == "official" else sys.executable
    cmd = [py, "-u", os.path.abspath(__file__), "--worker", side]
    for k in ("official_src", "device", "model_size", "compile", "batch_size", "threads", "warmup_updates",
              "updates", "warmup_acts", "acts"):
        cmd += ["--" + k.replace("_", "-"), str(getattr(args, k))]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=args.timeout, cwd=ROOT)
    lines = [ln for ln in out.stdout.splitlines() if ln.startswith("RESULT ")]
    if out.returncode != 0 or not lines:
        raise RuntimeError(f"{side} worker failed (exit {out.returncode}):\n{out.stderr[-3000:]}")
    return json.loads(lines[-1][len("RESULT "):])


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.worker:
        res = worker_official(args) if args.worker == "official" else worker_ours(args)
        print("RESULT " + json.dumps(res), flush=True)
        return 0
    if not Path(args.official_src, "tdmpc2.py").exists():
        print(f"official source not found at {args.official_src}; see this script's docstring", file=sys.stderr)
        return 2
    device = "cuda" if args.device.startswith("cuda") else args.device
    rows = []
    for r in range(args.rounds):
        order = ("official", "ours") if r % 2 == 0 else ("ours", "official")
        res = {side: _launch(side, args) for side in order}
        rows.append(res)
        o, s = res["ours"], res["official"]
        print(f"round {r}: updates/s ours {o['updates_per_s']:.2f} official {s['updates_per_s']:.2f} | "
              f"plan p50 ms ours {o['plan_p50_ms']:.1f} official {s['plan_p50_ms']:.1f}", flush=True)
    assert rows[0]["ours"]["params"] == rows[0]["official"]["params"], "parameter counts differ"
    med = {side: {k: statistics.median(r[side][k] for r in rows) for k in ("updates_per_s", "plan_p50_ms",
                                                                             "plan_p90_ms")}
           for side in ("ours", "official")}
    upd_ratio = statistics.median(r["ours"]["updates_per_s"] / r["official"]["updates_per_s"] for r in rows)
    plan_ratio = statistics.median(r["official"]["plan_p50_ms"] / r["ours"]["plan_p50_ms"] for r in rows)
    info = rows[0]["ours"]
    print(f"\nTD-MPC2 ours vs official (e9f5932) | device={device} | torch={info['torch']} | "
          f"threads={info['threads']} | size={args.model_size} ({info['params']:,} params) | "
          f"batch={args.batch_size} | compile={bool(args.compile)} | MPPI 6x512 H3 | {args.rounds} rounds")
    print(f"{'side':<9} {'updates/s':>10} {'plan p50 ms':>12} {'plan p90 ms':>12}")
    for side in ("ours", "official"):
        print(f"{side:<9} {med[side]['updates_per_s']:>10.2f} {med[side]['plan_p50_ms']:>12.1f} "
              f"{med[side]['plan_p90_ms']:>12.1f}")
    print(f"tdmpc2 plan speed ours/official (official p50 / ours p50): {plan_ratio:.2f} ratio ({device})")
    print(f"tdmpc2 updates ours/official: {upd_ratio:.2f} ratio ({device})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
