"""Online-only TD-MPC2 on a simple gymnasium task: evidence that the port learns from scratch.

Why: offline-to-online results mix the dataset's quality with the learner's; a from-scratch online curve on
an easy task (InvertedPendulum-v5: random actions score about 5-10, the maximum is 1000) isolates the port.
The gym env is registered as a task without a dataset; the method, its identity normalisers (raw observations;
actions mapped from the env's box to [-1, 1]) and its empty replay buffer come from `assemble(cfg, data="none")`
(bench/runner/assemble.py), and the runner's own off-policy loop (bench/runner/off_policy.py, through a `Loop`
without checkpoints) drives it: act / update, with official-style random seeding
(`seed_steps` random actions, then that many updates at once) and one update per env step after that.
Whether the port computes what the official agent computes is checked exactly, not by curves, in
`benchmarks/tdmpc2_check_official.py`; this script shows whether it learns, one noisy seed at a time.
Prints the training-episode returns and periodic evals (MPC, eval mode, the task's first eval seeds); the last
line is the final eval: `tdmpc2 online <env> final eval return: X return (cpu)`.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

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

    import types

    import torch

    from bench.config.dotted import parse_pairs
    from bench.config.layers import resolve_config
    from bench.runner.assemble import assemble
    from bench.runner.evaluation import evaluate_actor
    from bench.runner.loop import Loop
    from bench.runner.off_policy import run_off_policy
    from bench.runner.progress import Progress
    from methods.base import ActorState

    task = gym_task(args.env)
    if args.preset == "small":
        section = {"tdmpc2": SMALL}
    elif args.preset == "none":
        section = {}
    else:
        section = {"preset": args.preset}
    overrides = {**section, "tdmpc2.seed_steps": args.seed_steps, "tdmpc2.utd": 1.0,
                 **{f"tdmpc2.{k}": v for k, v in parse_pairs(args.set).items()},
                 "online.steps": args.steps, "online.checkpoint_every": args.steps + 1, "eval.every": args.eval_every,
                 "eval.episodes": args.eval_episodes, "eval.timing": False, "threads": args.threads}
    cfg = resolve_config("tdmpc2", task.name, args.seed, overrides)
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    parts = assemble(cfg, data="none")
    method, spaces = parts.method, parts.spaces
    print(f"{args.env}: obs {spaces.obs_dim}, act {spaces.act_dim}, discount {method.discount:.3f}, "
          f"params {method.model.trainable_parameters():,}, preset {args.preset}, seed_steps {args.seed_steps}")

    t0, evals = time.perf_counter(), []
    progress = Progress(phase="finetune", pretrain_done=True, next_eval=args.eval_every)
    eval_seeds = list(task.eval_seeds[:args.eval_episodes])

    def evaluate(phase: str) -> None:
        res = evaluate_actor(method, parts.task, "mpc", eval_seeds, method.device)
        evals.append((progress.env_step, res["return"]))
        print(f"  eval  env_step {progress.env_step:6d}  return {res['return']:7.1f}  "
              f"wall {time.perf_counter() - t0:6.0f}s", flush=True)

    def log(phase: str, metrics: dict, actor: str = "", n_episodes: int = 0) -> None:
        if "train/return" in metrics:
            print(f"  train env_step {progress.env_step:6d}  episode {progress.episode:4d}  "
                  f"return {metrics['train/return']:7.1f}", flush=True)

    loop = Loop(run_id="tdmpc2-online-curve", cfg=cfg, task=parts.task, method=method, buffer=parts.buffer,
                train_state=ActorState.create(cfg.seed * 7919 + 1, method.device), progress=progress, log=log,
                evaluate=evaluate, checkpoint=lambda: None, maybe_stop=lambda: None)
    run_off_policy(loop, types.SimpleNamespace(update=lambda n: None))
    if not evals or evals[-1][0] != progress.env_step:
        evaluate("finetune")
    print("eval curve (env_step, return): " + ", ".join(f"({s}, {r:.1f})" for s, r in evals))
    print(f"tdmpc2 online {args.env} final eval return: {evals[-1][1]:.1f} return (cpu)")
    return 0


def gym_task(env_id: str):
    """A plain gymnasium env as a task: no dataset and no score refs, its own episode limit, the harness's eval
    seeds. Registered under `gym-<env id>` so that the config resolves and `assemble` finds it."""
    import gymnasium as gym

    from bench.tasks import TaskSpec, register_task

    return register_task(TaskSpec(
        name=f"gym-{env_id}", suite="gym", env_id=env_id, dataset_id="", ref_min=None, ref_max=None,
        ref_source="none: an online-only check", max_episode_steps=gym.spec(env_id).max_episode_steps or 1000,
        description=f"{env_id} online from scratch (benchmarks/tdmpc2_online_curve.py)"))


if __name__ == "__main__":
    sys.exit(main())
