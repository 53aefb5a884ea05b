"""The runner's off-policy loop: one training env, chunk decisions, method updates after every env step.

Why (DESIGN.md, "Protocol rules"): env steps count every `env.step` of the training env, a chunk counts its
length; evaluation happens at the first chunk boundary at or after each grid step and records the actual
env_step; TD targets see `terminal` and `timeout` apart (the buffer keeps both). Each episode is seeded from
(run seed, episode index), and checkpoints land at episode boundaries, so a resumed run repeats the
uninterrupted one. After every env step the method's `update(buffer, env_step)` makes the updates due; the
grad steps are counted from what it returns. The extras `act` returns are stored with the transitions: one
shaped as its declared `buffer_extras()` shape (per sample) with the decision's first transition, one with an
extra step dimension with each executed action.
"""
from __future__ import annotations

import numpy as np

from bench.runner.evaluation import advance_grid
from bench.runner.loop import Loop


def episode_seed(run_seed: int, episode: int) -> int:
    return int((run_seed * 1_000_003 + episode * 7_919 + 12_345) % (2 ** 31 - 1))


def split_extras(extras: dict[str, np.ndarray], declared: dict[str, tuple[int, ...]],
                 n_actions: int) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """The extras of one env's decision (batch row 0), split into (per decision, per executed action) by shape:
    (1, *shape) is per decision, (1, n_actions, *shape) per action; a name not declared is an error."""
    per_decision, per_action = {}, {}
    for name, value in extras.items():
        if name not in declared:
            raise ValueError(f"act returned extra '{name}', which buffer_extras() does not declare "
                             f"({', '.join(declared) or 'none'})")
        value = np.asarray(value)
        if value.shape[1:] == declared[name]:
            per_decision[name] = value[0]
        elif value.shape[1:] == (n_actions, *declared[name]):
            per_action[name] = value[0]
        else:
            raise ValueError(f"act returned extra '{name}' shaped {value.shape}: neither (B, *{declared[name]}) "
                             f"(per decision) nor (B, {n_actions}, *{declared[name]}) (per action)")
    return per_decision, per_action


def run_off_policy(loop: Loop, bar) -> None:
    """Drive the online phase of an off-policy method for `online.steps` env steps."""
    cfg, method, c = loop.cfg, loop.method, loop.progress
    total = cfg.online.steps
    if total <= 0:
        return
    env = loop.task.make_env()
    declared = {k: tuple(v) for k, v in method.buffer_extras().items()}
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
                chunks, extras = method.act(obs[None].astype(np.float32), None, loop.train_state, False)
                chunk = chunks[0]
                per_decision, per_action = split_extras(extras, declared, len(chunk))
                for i, action in enumerate(chunk):
                    nobs, reward, term, trunc, info = env.step(action)
                    tr = {"obs": obs, "action": action, "reward": float(reward) * rs, "next_obs": nobs,
                          "terminal": bool(term), "timeout": bool(trunc and not term), "info": info}
                    if i == 0:
                        tr.update(per_decision)
                    tr.update({k: v[i] for k, v in per_action.items()})
                    loop.buffer.add(tr)
                    c.env_step += 1
                    bar.update(1)
                    ep_return += float(reward)
                    obs = nobs
                    for m in method.update(loop.buffer, c.env_step):
                        method.grad_steps += 1
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
