"""The runner's off-policy loop: one training env, chunk decisions, method updates after every env step.

Why (DESIGN.md, "Protocol rules"): env steps count every `env.step` of the training env, a chunk counts its
length; evaluation happens at the first chunk boundary at or after each grid step and records the actual
env_step; TD targets see `terminal` and `timeout` apart (the buffer keeps both). Each episode is seeded from
(run seed, episode index), and periodic checkpoints land at episode boundaries, so a resumed run repeats the
uninterrupted one. A stop request (SIGTERM, Ctrl-C: bench/runner/stops.py) is honoured sooner, between two
decisions: a hopper episode is up to 1000 env steps of planning and updates, far more than Slurm's ~30 s
grace. That checkpoint also holds the open episode (the env's own state, bench/tasks/env_state.py, its last obs
and return so far) and the metrics not yet logged, and the resumed loop continues the episode exactly; a
checkpoint taken while an eval is abandoned (bench/runner/evaluation.py) resumes at the same decision boundary
and redoes the eval whole. An env whose state cannot be saved stops at its episode's end, as before.
After every env step the method's `update(buffer, env_step)` makes the updates due; the grad steps are counted
from what it returns. The extras `act` returns are stored with the transitions: one
shaped as its declared `buffer_extras()` shape (per sample) with the decision's first transition, one with an
extra step dimension with each executed action.
"""
from __future__ import annotations

import json
from typing import Any

import numpy as np
import torch

from bench.runner.checkpoints import plain
from bench.runner.evaluation import advance_grid
from bench.runner.loop import Loop
from bench.tasks.env_state import set_sub_env_state, sub_env_state
from bench.tasks.sim_state import EnvStateError

STATE_KEY = "off_policy"  # the loop's entry in a checkpoint's loop state


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
    saved = loop.resumed.pop(STATE_KEY, None)  # consumed here: a later checkpoint saves the loop anew
    if total <= 0:
        return
    env = loop.task.make_env()
    declared = {k: tuple(v) for k, v in method.buffer_extras().items()}
    log_every = max(1, cfg.online.log_every)
    grid = cfg.eval.grid()
    rs = cfg.reward_scale
    # What the loop keeps between two decisions: the metrics since the last log row, when that row was, and the
    # open episode (its last obs, return so far, whether it just ended). A checkpoint saves them (`capture`).
    acc: dict[str, list[float]] = json.loads(saved["acc"]) if saved else {}
    last_log = int(saved["last_log"]) if saved else c.env_step
    reopen = saved if saved and saved["open"] else None  # resumed at a decision boundary of an episode
    obs, ep_return, done, in_episode = None, 0.0, False, False
    capturable: bool | None = None

    def capture() -> dict[str, Any]:
        st: dict[str, Any] = {"acc": json.dumps(plain(acc)), "last_log": int(last_log), "open": in_episode}
        if in_episode:
            st.update(obs=torch.from_numpy(np.array(obs)), ep_return=float(ep_return), done=bool(done))
            if not done:  # the episode goes on from the env's own state
                st["env"] = sub_env_state(env)
        return dict(loop.resumed, **{STATE_KEY: st})

    loop.capture = capture
    try:
        while c.env_step < total or reopen is not None:
            ep_seed = episode_seed(cfg.seed, c.episode)
            obs, _ = env.reset(seed=ep_seed)
            env.action_space.seed(ep_seed)
            if capturable is None:  # else a stop waits for the episode's end, and an eval is never abandoned
                capturable = loop.mid_stops = _capturable(env)
            if reopen is not None:  # the saved decision boundary: its log and eval checks are redone below
                if not reopen["done"]:
                    set_sub_env_state(env, reopen["env"])
                obs, ep_return, done = reopen["obs"].numpy().copy(), float(reopen["ep_return"]), bool(reopen["done"])
                reopen, at_boundary = None, True
            else:
                loop.train_state.reset()
                ep_return, done, at_boundary = 0.0, False, False
            in_episode = True
            while True:
                if not at_boundary:
                    if done or c.env_step >= total:
                        break
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
                # A decision boundary. Its checks are idempotent, so a run resumed here redoes them (an eval
                # abandoned at a stop request is then redone whole).
                at_boundary = False
                if c.env_step - last_log >= log_every and acc:
                    loop.log("finetune", {k: float(np.mean(v)) for k, v in acc.items()})
                    acc, last_log = {}, c.env_step
                if c.env_step >= c.next_eval:
                    loop.evaluate("finetune")
                    c.next_eval = advance_grid(c.next_eval, c.env_step, *grid)
                if loop.mid_stops and not done and c.env_step < total:
                    loop.maybe_stop()  # between two decisions of an episode: a stop is honoured here
            in_episode = False
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
        loop.capture = None
        env.close()


def _capturable(env) -> bool:
    """Whether the env's episode state can be saved (bench/tasks/env_state.py: the suites' envs can)."""
    try:
        sub_env_state(env)
    except EnvStateError:
        return False
    return True
