"""Online-only TD-MPC2 on a simple gymnasium task: evidence that the port learns from scratch.

Why: offline-to-online results mix the dataset's quality with the learner's; a from-scratch online curve on
an easy task (InvertedPendulum-v5: random actions score about 5-10, the maximum is 1000) isolates the port.
It drives the method through the same calls the harness makes (act / observe / updates_due / finetune_step)
with an empty offline buffer, official-style random seeding (`seed_steps` random actions, then that many
updates at once), one update per env step after that, and identity normalisers (raw observations; actions
mapped from the env's box to [-1, 1]).
Whether the port computes what the official agent computes is checked exactly, not by curves, in
`benchmarks/tdmpc2_check_official.py`; this script shows whether it learns, one noisy seed at a time.
Prints the training-episode returns and periodic evals (MPC, eval mode); the last line is the final eval:
`tdmpc2 online <env> final eval return: X return (cpu)`.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

# The default model here: smaller than the official size 1 (latent 64, MLPs 128, 2 Qs, batch 128) and a
# smaller planner (3 iterations x 128 samples), so that a few thousand steps run on a busy CPU.
# rho 0.7 and discount_max 0.99 are what the official code's gym-MuJoCo wrapper (envs/mujoco.py) sets for
# every gym-MuJoCo task; they are not TD-MPC2's general defaults (0.5, 0.995).
SMALL = {"model_size": 1, "enc_dim": 128, "mlp_dim": 128, "latent_dim": 64, "num_q": 2, "batch_size": 128,
         "rho": 0.7, "discount_max": 0.99,
         "planner": {"iterations": 3, "num_samples": 128, "num_elites": 16, "num_pi_trajs": 8}}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--env", default="InvertedPendulum-v5")
    p.add_argument("--steps", type=int, default=4000)
    p.add_argument("--seed-steps", type=int, default=500)
    p.add_argument("--eval-every", type=int, default=1000)
    p.add_argument("--eval-episodes", type=int, default=5)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--preset", default="small",
                   help="small (see SMALL), a tdmpc2 preset (demo, test), or 'none' (official size 5)")
    p.add_argument("--set", nargs="*", default=[], help="tdmpc2 config overrides key=value")
    args = p.parse_args(argv)

    import gymnasium as gym
    import torch

    from methods.base import ActorState, MethodContext, TaskSpaces
    from methods.common.normalize import Normalizer
    from methods.common.replay import ReplayBuffer
    from methods.config import apply_overrides, deep_merge, from_dict
    from methods.tdmpc2 import TDMPC2, TDMPC2Config

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    env, eval_env_fn = gym.make(args.env), (lambda: gym.make(args.env))
    obs_dim, act_dim = env.observation_space.shape[0], env.action_space.shape[0]
    low, high = env.action_space.low.astype(np.float32), env.action_space.high.astype(np.float32)
    spaces = TaskSpaces(obs_dim=obs_dim, act_dim=act_dim, act_low=low, act_high=high,
                        max_episode_steps=env.spec.max_episode_steps or 1000)
    raw = {"small": SMALL, "none": {}}.get(args.preset) or TDMPC2.presets[args.preset]["tdmpc2"]
    raw = deep_merge(raw, {"seed_steps": args.seed_steps, "utd": 1.0})
    raw = apply_overrides(raw, args.set)
    cfg = from_dict(TDMPC2Config, raw)
    method = TDMPC2(cfg, MethodContext(spaces=spaces, normalizer=Normalizer(np.zeros(obs_dim), np.ones(obs_dim), low, high),
                                        seed=args.seed))
    buffer = ReplayBuffer(obs_dim, act_dim, seed=args.seed, capacity=args.steps + 16)
    method.attach_buffer(buffer)
    train_state = ActorState.create(args.seed * 7919 + 1)
    print(f"{args.env}: obs {obs_dim}, act {act_dim}, discount {method.discount:.3f}, "
          f"params {method.model.trainable_parameters():,}, preset {args.preset}, seed_steps {args.seed_steps}")

    def evaluate() -> float:
        envs = [eval_env_fn() for _ in range(args.eval_episodes)]
        obs = np.stack([e.reset(seed=10_000 + i)[0] for i, e in enumerate(envs)]).astype(np.float32)
        state, ret, done = ActorState.create(123), np.zeros(len(envs)), np.zeros(len(envs), bool)
        while not done.all():
            acts = method.act(obs, "mpc", state, True)[:, 0]
            for i, e in enumerate(envs):
                if not done[i]:
                    o, r, term, trunc, _ = e.step(acts[i])
                    obs[i], ret[i], done[i] = o, ret[i] + r, term or trunc
        return float(ret.mean())

    t0, step, episode, evals = time.perf_counter(), 0, 0, []
    while step < args.steps:
        obs, _ = env.reset(seed=args.seed * 1000 + episode)
        train_state.reset()
        ep_ret, done = 0.0, False
        while not done and step < args.steps:
            action = method.act(obs[None].astype(np.float32), "mpc", train_state, False)[0, 0]
            nobs, r, term, trunc, _ = env.step(action)
            tr = {"obs": obs, "action": action, "reward": float(r), "next_obs": nobs, "terminal": bool(term),
                  "timeout": bool(trunc and not term)}
            buffer.add(tr)
            method.observe(tr)
            step += 1
            for _ in range(method.updates_due(step)):
                method.finetune_step()
            ep_ret, obs, done = ep_ret + r, nobs, term or trunc
            if step % args.eval_every == 0:
                evals.append((step, evaluate()))
                print(f"  eval  env_step {step:6d}  return {evals[-1][1]:7.1f}  wall {time.perf_counter() - t0:6.0f}s",
                      flush=True)
        episode += 1
        print(f"  train env_step {step:6d}  episode {episode:4d}  return {ep_ret:7.1f}", flush=True)
    if not evals or evals[-1][0] != step:
        evals.append((step, evaluate()))
    print("eval curve (env_step, return): " + ", ".join(f"({s}, {r:.1f})" for s, r in evals))
    print(f"tdmpc2 online {args.env} final eval return: {evals[-1][1]:.1f} return (cpu)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
