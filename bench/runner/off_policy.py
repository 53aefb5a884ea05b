"""The runner's off-policy loop: one training env, chunk decisions, method updates after every env step.

Why (DESIGN.md, "Protocol rules"): env steps count every `env.step` of the training env, a chunk counts its
length; evaluation happens at the first chunk boundary at or after each grid step and records the actual
env_step; TD targets see `terminal` and `timeout` apart (the buffer keeps both). Each episode is seeded from
(run seed, episode index), and checkpoints land at episode boundaries, so a resumed run repeats the
uninterrupted one. A finished episode's arrays are handed to the method in one call (`observe_episode`).
"""
from __future__ import annotations

import numpy as np

from bench.runner.evaluation import advance_grid
from bench.runner.loop import Loop


def episode_seed(run_seed: int, episode: int) -> int:
    return int((run_seed * 1_000_003 + episode * 7_919 + 12_345) % (2 ** 31 - 1))


def run_off_policy(loop: Loop, bar) -> None:
    """Drive the online phase of an off-policy method for `online.steps` env steps."""
    cfg, method, c = loop.cfg, loop.method, loop.progress
    total = cfg.online.steps
    if total <= 0:
        return
    env = loop.task.make_env()
    train_actor = method.train_actor
    per_action_names = set(method.per_action_extras())
    acc: dict[str, list[float]] = {}
    log_every = max(1, cfg.online.log_every)
    grid = cfg.eval.grid()
    last_log = c.env_step
    rs = cfg.reward_scale
    try:
        while c.env_step < total:
            ep_seed = episode_seed(cfg.seed, c.episode)
            obs, _ = env.reset(seed=ep_seed)
            env.action_space.seed(ep_seed)
            loop.train_state.reset()
            ep_return, done = 0.0, False
            while not done and c.env_step < total:
                chunk = method.act(obs[None].astype(np.float32), train_actor, loop.train_state, False)[0]
                extras = {k: v[0] for k, v in loop.train_state.extras.items()}
                loop.train_state.extras = {}
                per_action = {k: extras.pop(k) for k in per_action_names if k in extras}
                for i, action in enumerate(chunk):
                    nobs, reward, term, trunc, info = env.step(action)
                    tr = {"obs": obs, "action": action, "reward": float(reward) * rs, "next_obs": nobs,
                          "terminal": bool(term), "timeout": bool(trunc and not term), "info": info}
                    if i == 0:
                        tr.update(extras)
                    tr.update({k: v[i] for k, v in per_action.items()})
                    loop.buffer.add(tr)
                    method.observe(tr)
                    if term or trunc:
                        method.observe_episode(loop.buffer.last_episode())
                    c.env_step += 1
                    bar.update(1)
                    ep_return += float(reward)
                    obs = nobs
                    for _ in range(method.updates_due(c.env_step)):
                        m = method.finetune_step()
                        c.grad_step += 1
                        for k, v in m.items():
                            acc.setdefault(k, []).append(v)
                    done = term or trunc
                    if done or c.env_step >= total:
                        break
                if c.env_step - last_log >= log_every and acc:
                    loop.log("finetune", {k: float(np.mean(v)) for k, v in acc.items()})
                    acc, last_log = {}, c.env_step
                if c.env_step >= c.next_eval:
                    loop.evaluate("finetune")
                    c.next_eval = advance_grid(c.next_eval, c.env_step, *grid)
            if done:
                c.episode += 1
                loop.log("finetune", {"train/return": ep_return})
            if acc:
                loop.log("finetune", {k: float(np.mean(v)) for k, v in acc.items()})
                acc, last_log = {}, c.env_step
            if c.env_step - c.last_ckpt_env_step >= cfg.online.checkpoint_every:
                loop.checkpoint()
            loop.maybe_stop()
    finally:
        env.close()
