"""Writes the equivalence fixtures in this folder with the project at commit 05edce8 (before the speed work).

Why: the speed issue (issue 24: fused optimisers, foreach EMA, cached time embeddings, batched ops, ...) must change
how each family computes, never what. tests/methods/test_equivalence.py loads these files in today's tree, builds
the same method with the same config, loads the same parameters, optimiser states, buffer and RNG states, makes
the same single call and compares every output with what 05edce8 gave (atol 1e-5, rtol 1e-5).

How they were made: from a checkout of 05edce8 (e.g. `git worktree add <dir> 05edce8`), with the project's venv
(torch 2.13.0+cpu, numpy 2.4.6), on the CPU with one thread:

    cd <checkout of 05edce8> && OMP_NUM_THREADS=1 <venv>/bin/python <this file> --out <this folder>

The old tree's root (the current folder, or `--root`) goes first on sys.path, so its `bench` and `methods` are the
ones imported (checked); the script refuses a tree at another commit unless given `--any-commit`. It writes one
file per case, `<case>.pt` (torch.save of plain tensors, dicts, lists and numbers; torch.load(weights_only=True)
reads it), in about 10 s, the same bytes on every run. `--cases` makes some of them only.

A case (CASES below) is a method of one family with its dotted config overrides: the family's `test` preset
where it has one, with networks 16 wide (the DP: hidden [16, 16], time_dim 8, 5 denoising steps) to keep the
folder near 2 MB; MODIP and TD-MPC2 have a second case for their other planner terminal (`modip_q`: terminal q,
critic.target policy, AWR label weights; `tdmpc2_v`: terminal v and its value head). Each is built on the demo
task's spaces (obs 9, act 1 in [-1, 1], 200-step episodes, chunk 4; no env, no dataset) with
- a synthetic replay buffer (seed 0): 96 offline transitions in 4 episodes (one ending in a terminal), then 72
  online ones in 3 episodes (a terminal, a timeout, the last still open), added one at a time as the runner adds
  them (`observe` and `observe_episode` called), with the extras the family stores filled as its `act` fills
  them: MODIP's per-action `plan_action` and per-plan `plan_reward`, DSRL's per-decision `noise`; rewards
  depend on the state and the action (so that learned models and critics rank a plan's candidates);
- a normaliser fitted on the offline observations (as the runner fits one on the dataset);
- the run so far, as 05edce8's runner makes it: the common start for the DP methods (`common_start.steps` BC
  steps, then `load_pretrained_dp`), 3 `pretrain_step`s where the family has an offline phase (TD-MPC2: 300,
  so that its plans' returns spread: its elite weights are exp(0.5 return)), `end_pretrain`,
  the online data with one `finetune_step` after online steps 40 and 48 (off-policy; DPPO: one `update_rollout`
  on a first rollout), so that optimiser moments, EMAs, targets and the families' online switches are live
  (MODIP's distillation has started, with labels made since; its distill lr and EMA decay; PA-RL's moment
  resets; IDQL's actor lr). That point is `before`: the method's `state_dict()` (its generators included:
  `generator`, DSRL's `update_generator`), the buffer's `state_dict()` (its sampling RNG included) and torch's
  global RNG state.
From `before` again each time (method, buffer and global RNG restored), the file holds what these calls gave:
- `update`: one online update, `finetune_step()` (DPPO: `update_rollout` on the stored `rollout`, sampled by
  the policy of `before`): its metrics and, after it, the method's `state_dict()`, a digest of torch's global RNG
  state and the buffer's RNG state;
- `pretrain`: one offline update, `pretrain_step(pretrain_batch())` (not for the second cases: the same code);
- `minibatch` (DPPO): one `minibatch_step` on the stored `inputs` (log-probs moved off the current ones, so some
  ratios are clipped);
- `common_start` (bc_dp): `train_common_start` from the buffer, at the demo's schedule and at one like DPPO's on
  d4rl (cosine with warm-up, EMA every 2 steps from step 2, no clipping): the DP state and the curve, and the
  DP's initial weights (`init`) that it starts from;
- `act`: every actor in evaluation mode on 3 fixed observations (`obs`) with `ActorState.create(100 + i)` for
  actor i: the actions and a digest of the generator's state after the call; `train_act`: the train actor in
  training mode (ActorState seed 200) with the extras it stores (DPPO: also `act_rollout`'s chains);
- `plan` (MODIP's mpc and mpc_chunk, TD-MPC2's mpc): two evaluation calls on one ActorState (seed 300), env 1
  reset between them, the second at obs + 0.1: the actions and the planner's memory after each (05edce8's
  layout: MODIP's `mean` (B, H, A), TD-MPC2's `prev_mean` (H, B, A));
- `episode` (MODIP): `observe_episode` on the last finished online episode, with `pending` emptied first.
With them: the case's method, overrides, 05edce8's resolved config sections (every key's value), the spaces, the
normaliser, each optimiser's param groups as the method built them (`optimizers_built`), the torch version and
the commit.
"""
from __future__ import annotations

import argparse
import copy
import dataclasses
import hashlib
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import torch

COMMIT = "05edce85bb824ce92af88b775df858135b792cb1"
TASK, SEED = "demo", 0
DEMO_SPACES = {"obs_dim": 9, "act_dim": 1, "act_low": [-1.0], "act_high": [1.0]}  # InvertedDoublePendulum-v5
# Networks far smaller than the `test` presets' (16 wide, an 8-dim time embedding), to keep the folder small: the code
# paths are the same at any width.
TINY_DP = {"dp.hidden": [16, 16], "dp.time_dim": 8, "dp.denoising_steps": 5, "common_start.steps": 6,
           "common_start.batch_size": 32}
TINY_TDMPC2 = {"preset": "test", "tdmpc2.enc_dim": 16, "tdmpc2.mlp_dim": 16, "tdmpc2.latent_dim": 8,
               "tdmpc2.num_bins": 11}
TINY_MODIP = {"preset": "test", **TINY_DP, "modip.world_model.hidden": [16, 16], "modip.critic.hidden": [16, 16]}
# case -> (method, dotted overrides): the family's `test` preset where it has one, with the small networks above.
CASES: dict[str, tuple[str, dict[str, Any]]] = {
    "bc_gauss": ("bc_gauss", {"bc_gauss.hidden": [16, 16], "bc_gauss.batch_size": 32}),
    "bc_dp": ("bc_dp", {**TINY_DP, "common_start.steps": 4}),
    # eval.sampler ddim: the DP's DDIM path at evaluation (every other DP case evaluates with DDPM)
    "dppo": ("dppo", {"preset": "test", **TINY_DP, "dppo.critic_hidden": [16, 16], "eval.sampler": "ddim"}),
    "dsrl": ("dsrl", {"preset": "test", **TINY_DP, "dsrl.hidden": [16, 16]}),
    "idql": ("idql", {"preset": "test", **TINY_DP, "idql.critic.hidden": [16, 16, 16]}),
    # the demo's DDIM proposals, replanning every 2 steps; the distill lr and EMA decay that end_pretrain switches
    # on; the world-model diagnostics due at the measured step (grad step 5)
    "modip": ("modip", {**TINY_MODIP, "modip.planner.dp_sampler": "ddim", "modip.planner.replan_every": 2,
                        "modip.distill_lr": 1e-3, "modip.distill_ema_decay": 0.99, "modip.diag_every": 6}),
    # MODIP's other two knobs: the terminal Q (a DP chain per candidate) and critics with policy targets; AWR weights
    "modip_q": ("modip", {**TINY_MODIP, "modip.planner.terminal": "q", "modip.critic.target": "policy",
                          "modip.label_weighting": "awr"}),
    "parl": ("parl", {"preset": "test", **TINY_DP, "parl.critic.hidden": [16, 16], "parl.distill_sampler": "ddim"}),
    "tdmpc2": ("tdmpc2", TINY_TDMPC2),
    # the planner's terminal V(z) and its value head's update
    "tdmpc2_v": ("tdmpc2", {**TINY_TDMPC2, "tdmpc2.planner.terminal": "v"}),
}
# The variants' offline step is their base case's computation (TD-MPC2's `_step`; MODIP's world-model and critic
# steps, whose policy-target critic step the update covers): not stored again.
NO_PRETRAIN_ITEM = ("modip_q", "tdmpc2_v")
# Offline steps before `before`. TD-MPC2 needs a few hundred before its plans' returns spread enough for the
# elite weights (temperature 0.5 on raw returns) to matter.
N_PRETRAIN = {"tdmpc2": 300}
# bc_dp's common start, measured at the demo's schedule (the class defaults) and at one like DPPO's on d4rl.
COMMON_START_VARIANTS = {"constant": {}, "scheduled": {"lr": 1e-3, "lr_schedule": "cosine", "lr_min": 1e-4,
                                                       "lr_warmup": 2, "grad_clip": 0.0, "ema_every": 2,
                                                       "ema_start": 1}}
# Off-policy warm-up updates after these many online steps: MODIP's start rule fires at the first, so the measured
# update distils with labels made since (its label share ramps with them), and it returns the diagnostics of the
# episode that ends at online step 52.
WARMUP_UPDATES_AT = (40, 48)
OFFLINE_EPISODES = [(24, "timeout"), (24, "terminal"), (32, "timeout"), (16, "timeout")]
# 72 online steps: more than DSRL's initial rollouts (4 vector steps x 4 envs x 4 actions), so its pi^W acts
ONLINE_EPISODES = [(28, "terminal"), (24, "timeout"), (20, "open")]
OBS_SCALE = np.linspace(0.5, 3.0, 9).astype(np.float32)
OBS_SHIFT = np.linspace(-1.0, 2.0, 9).astype(np.float32)


def tensors(x: Any) -> Any:
    """Arrays to tensors and numpy scalars to Python numbers, at any depth (for torch.load(weights_only=True))."""
    if isinstance(x, dict):
        return {k: tensors(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return type(x)(tensors(v) for v in x)
    if isinstance(x, np.ndarray):
        return torch.from_numpy(x.copy())
    if isinstance(x, np.generic):
        return x.item()
    if isinstance(x, set):
        return sorted(x)
    return x


def rng_digest(state: torch.Tensor) -> str:
    """An RNG state (a torch generator's ByteTensor) as a short digest: the states after a step are compared for
    equality only, so the fixture keeps their digests."""
    return hashlib.sha256(state.numpy().tobytes()).hexdigest()[:24]


def dedupe(x: Any, seen: dict | None = None) -> Any:
    """The same structure with tensors of equal dtype, shape and bytes replaced by one object, so that torch.save
    stores them once (a parameter that a step leaves alone, Adam's step counts). The test clones every tensor
    before loading one into a method (an optimiser steps its state in place)."""
    seen = {} if seen is None else seen
    if isinstance(x, dict):
        return {k: dedupe(v, seen) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return type(x)(dedupe(v, seen) for v in x)
    if isinstance(x, torch.Tensor):
        t = x.detach().cpu().contiguous()
        key = (str(t.dtype), tuple(t.shape), hashlib.sha256(t.numpy().tobytes()).hexdigest())
        return seen.setdefault(key, t)
    return x


def transitions(rng: np.random.Generator, episodes) -> dict[str, np.ndarray]:
    n = sum(length for length, _ in episodes)
    obs = (rng.standard_normal((n, 9)).astype(np.float32) * OBS_SCALE + OBS_SHIFT)
    nxt = np.roll(obs, -1, 0) + 0.05 * rng.standard_normal((n, 9)).astype(np.float32)
    terminal, timeout = np.zeros(n, bool), np.zeros(n, bool)
    start = np.zeros(n, np.int64)  # each step's index within its episode
    i = 0
    for length, end in episodes:
        start[i:i + length] = np.arange(length)
        if end == "terminal":
            terminal[i + length - 1] = True
        elif end == "timeout":
            timeout[i + length - 1] = True
        i += length
    action = rng.uniform(-1, 1, (n, 1)).astype(np.float32)
    # rewards that depend on the action (best at 0.5 tanh(obs[1])), so that learned critics and models rank actions
    best = 0.5 * np.tanh(obs[:, 1])
    reward = 1.0 + 0.5 * np.tanh(obs[:, 0]) - 2.0 * (action[:, 0] - best) ** 2 + 0.1 * rng.standard_normal(n)
    return {"obs": obs, "action": action, "reward": reward.astype(np.float32), "next_obs": nxt,
            "terminal": terminal, "timeout": timeout, "t": start}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True, type=Path)
    ap.add_argument("--root", type=Path, default=Path.cwd(), help="the old tree (default: the current folder)")
    ap.add_argument("--cases", nargs="*", default=list(CASES))
    ap.add_argument("--any-commit", action="store_true", help="run on a tree that is not at 05edce8")
    args = ap.parse_args()
    root = args.root.resolve()
    sys.path.insert(0, str(root))
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    torch.set_num_threads(1)
    commit = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True,
                            check=True).stdout.strip()
    if commit != COMMIT and not args.any_commit:
        raise SystemExit(f"{root} is at {commit}, not {COMMIT} (05edce8); pass --any-commit to run anyway")
    import methods

    if Path(methods.__file__).resolve().parent.parent != root:
        raise SystemExit(f"methods imported from {methods.__file__}, not from {root}")
    args.out.mkdir(parents=True, exist_ok=True)
    # No 64-byte alignment of each tensor's bytes in the file (only a memory-mapped load needs it): a third smaller.
    from torch.utils.serialization import config as serialization

    serialization.save.storage_alignment = 1
    for case in args.cases:
        data = make_case(case, *CASES[case], commit=commit)
        path = args.out / f"{case}.pt"
        torch.save(dedupe(data), path)
        torch.load(path, weights_only=True)  # loadable as the test loads it
        print(f"{path.name}: {path.stat().st_size} bytes, {', '.join(k for k in data if k in ITEMS)}")


ITEMS = ("update", "pretrain", "minibatch", "common_start", "act", "train_act", "plan", "episode")


def make_case(case: str, method: str, overrides: dict[str, Any], commit: str) -> dict[str, Any]:
    # 05edce8's modules (its tree is first on sys.path); bench.runner.config is not in today's tree
    from bench.runner.config import method_config, resolve_config

    from bench.tasks import get_task
    from methods.base import ActorState, MethodContext, RolloutKind, TaskSpaces
    from methods.common.common_start import train_common_start
    from methods.common.diffusion import DPModule
    from methods.common.normalize import Normalizer
    from methods.common.replay import ReplayBuffer

    cfg = resolve_config(method, TASK, SEED, dict(overrides))
    cls, mcfg, dp_cfg, cs_cfg = method_config(cfg)
    task = get_task(TASK)
    spaces_d = {**DEMO_SPACES, "max_episode_steps": task.max_episode_steps, "gamma": task.gamma,
                "chunk": task.chunk, "reward_scale": float(cfg["reward_scale"])}
    spaces = TaskSpaces(**{**spaces_d, "act_low": np.array(spaces_d["act_low"], np.float32),
                           "act_high": np.array(spaces_d["act_high"], np.float32)})
    rng = np.random.default_rng(1234)
    off = transitions(rng, OFFLINE_EPISODES)
    on = transitions(rng, ONLINE_EPISODES)
    normalizer = Normalizer.fit(off["obs"], spaces.act_low, spaces.act_high)

    torch.manual_seed(SEED)
    m = cls(mcfg, MethodContext(spaces=spaces, normalizer=normalizer, dp_cfg=dp_cfg, device=torch.device("cpu"),
                                seed=SEED, common_start=cs_cfg))
    # the optimisers' hyperparameters as built (a loaded optimiser state brings its own)
    built = {name: copy.deepcopy(opt.state_dict()["param_groups"]) for name, opt in m.modules().items()
             if isinstance(opt, torch.optim.Optimizer)}
    buf = ReplayBuffer(9, 1, extras=m.buffer_extras(), seed=SEED, capacity=512)
    buf.add_offline(off["obs"], off["action"], off["reward"], off["next_obs"], off["terminal"], off["timeout"])
    m.attach_buffer(buf)
    out: dict[str, Any] = {"case": case, "method": method, "commit": commit, "torch": str(torch.__version__),
                           "task": TASK, "seed": SEED, "overrides": dict(overrides),
                           "resolved": {k: cfg[k] for k in (method, "dp", "common_start") if k in cfg},
                           "eval_sampler": cfg["eval"]["sampler"], "spaces": spaces_d,
                           "normalizer": normalizer.state_dict(), "optimizers_built": built}

    if cls.uses_pretrained_dp:  # the runner: the common start, every RNG as it was, then load
        rng_before = buf.get_rng_state()
        dp_state, _ = train_common_start(cs_cfg, dp_cfg, 9, 1, m.chunk, normalizer, buf, SEED, torch.device("cpu"))
        buf.set_rng_state(rng_before)
        torch.manual_seed(SEED + 1)
        m.load_pretrained_dp(dp_state)
    if cls.pretrains_offline:
        for _ in range(N_PRETRAIN.get(method, 3)):
            m.pretrain_step(m.pretrain_batch())
    m.end_pretrain()

    # the online data, one transition at a time as the runner adds it
    extras = m.buffer_extras()
    per_action = set(m.per_action_extras())
    decision = int(mcfg.planner.replan_every) if method == "modip" else m.decision_length()
    ends = np.flatnonzero(on["terminal"] | on["timeout"])
    episode = None
    for i in range(len(on["obs"])):
        tr = {k: on[k][i] for k in ("obs", "action", "reward", "next_obs")}
        tr.update(terminal=bool(on["terminal"][i]), timeout=bool(on["timeout"][i]), info={})
        for name, shape in extras.items():
            if name in per_action or on["t"][i] % decision == 0:
                if name == "plan_action":
                    tr[name] = rng.uniform(-1, 1, shape).astype(np.float32)
                else:
                    tr[name] = rng.standard_normal(shape).astype(np.float32)
        buf.add(tr)
        m.observe(tr)
        if i in ends:
            episode = buf.last_episode()
            m.observe_episode(episode)
        if cls.rollout_kind is RolloutKind.OFF_POLICY and i + 1 in WARMUP_UPDATES_AT:
            m.finetune_step()
    obs3 = (rng.standard_normal((3, 9)).astype(np.float32) * OBS_SCALE + OBS_SHIFT)
    out["obs"] = obs3

    on_policy = cls.rollout_kind is RolloutKind.ON_POLICY
    if on_policy:  # a first rollout's update (moments, reward scaler, iteration), then the measured rollout
        m.update_rollout(rollout(m, rng))
    measured_rollout = rollout(m, rng) if on_policy else None

    # deep copies: a state_dict holds the live parameters and optimiser tensors, which a later step changes
    before = {"method": copy.deepcopy(m.state_dict()), "torch_rng": torch.get_rng_state()}
    out["before"] = before
    out["buffer"] = buf.state_dict()

    def restore() -> None:
        m.load_state_dict(copy.deepcopy(before["method"]))  # an optimiser keeps the loaded tensors as its state
        buf.load_state_dict(out["buffer"])
        torch.set_rng_state(before["torch_rng"])

    def after(metrics: dict[str, float]) -> dict[str, Any]:
        return {"metrics": {k: float(v) for k, v in metrics.items()}, "method": copy.deepcopy(m.state_dict()),
                "torch_rng_digest": rng_digest(torch.get_rng_state()), "buffer_rng": buf.get_rng_state()}

    if on_policy:
        restore()
        out["rollout"] = measured_rollout
        out["update"] = after(m.update_rollout(measured_rollout))
        restore()
        inputs = minibatch(m, measured_rollout)
        out["minibatch"] = {"inputs": inputs, **after(m.minibatch_step(**inputs))}
    elif cls.rollout_kind is RolloutKind.OFF_POLICY:
        restore()
        out["update"] = after(m.finetune_step())
    if cls.pretrains_offline and case not in NO_PRETRAIN_ITEM:
        restore()
        out["pretrain"] = after(m.pretrain_step(m.pretrain_batch()))

    if method == "bc_dp":  # its pretraining is the common start, from the buffer as stored
        torch.manual_seed(SEED)  # the DP it starts from, as train_common_start builds it
        init = DPModule(9, 1, dp_cfg, m.chunk, torch.device("cpu"))
        out["common_start"] = {"init": copy.deepcopy(init.policy.state_dict())}
        for name, extra in COMMON_START_VARIANTS.items():
            restore()
            state, curve = train_common_start(dataclasses.replace(cs_cfg, **extra), dp_cfg, 9, 1, m.chunk, normalizer,
                                              buf, SEED, torch.device("cpu"))
            out["common_start"][name] = {"config": extra, "state": copy.deepcopy(state), "curve": curve,
                                         "buffer_rng": buf.get_rng_state()}
    out["act"] = {}
    for i, actor in enumerate(cls.actors):
        restore()
        st = ActorState.create(100 + i)
        actions = m.act(obs3, actor, st, True)
        out["act"][actor] = {"seed": 100 + i, "actions": actions,
                             "generator_digest": rng_digest(st.generator.get_state())}
    restore()
    st = ActorState.create(200)
    actions = m.act(obs3, m.train_actor, st, False)
    out["train_act"] = {"actor": m.train_actor, "seed": 200, "actions": actions, "extras": dict(st.extras),
                        "generator_digest": rng_digest(st.generator.get_state())}
    if on_policy:
        restore()
        st = ActorState.create(200)
        actions, info = m.act_rollout(obs3, st)
        out["train_act"]["act_rollout"] = {"actions": actions, "chain": info["chain"],
                                           "generator_digest": rng_digest(st.generator.get_state())}
    if method == "modip":  # a finished training episode's diagnostics (the runner's observe_episode)
        restore()
        m.pending = {}  # so that what it computes is all that is left there
        m.observe_episode(episode)
        out["episode"] = {"episode": episode, "pending": dict(m.pending), "train_returns": list(m.train_returns)}
    planners = {"modip": ("mpc", "mpc_chunk"), "tdmpc2": ("mpc",)}.get(method, ())
    if planners:
        out["plan"] = {}
        key = "mean" if method == "modip" else "prev_mean"
        for actor in planners:
            restore()
            st = ActorState.create(300)
            calls = []
            for call in range(2):
                if call == 1:
                    st.reset(env_index=1)
                actions = m.act(obs3 + 0.1 * call, actor, st, True)
                calls.append({"actions": actions, "memory": st.memory[key].clone(),
                              "generator_digest": rng_digest(st.generator.get_state())})
            out["plan"][actor] = {"seed": 300, "memory_key": key, "reset_env": 1, "obs_step": 0.1, "calls": calls}
    return tensors(out)


def rollout(m, rng: np.random.Generator, n_steps: int = 6) -> dict[str, np.ndarray]:
    """A rollout as bench/runner/on_policy.py hands it over (tests/test_dppo.py's `_rollout` at 05edce8), sampled
    by the method's current policy."""
    from methods.base import ActorState

    n_envs = m.cfg.n_envs
    st = ActorState.create(int(rng.integers(1 << 30)))
    obs = rng.standard_normal((n_steps, n_envs, 9)).astype(np.float32) * OBS_SCALE + OBS_SHIFT
    chains = np.stack([m.act_rollout(obs[t], st)[1]["chain"] for t in range(n_steps)])
    done = rng.random((n_steps, n_envs)) < 0.2
    valid = np.ones((n_steps, n_envs), bool)
    valid[1:] = ~done[:-1]
    done &= valid
    return {"obs": obs, "next_obs": rng.standard_normal((n_steps, n_envs, 9)).astype(np.float32) * OBS_SCALE,
            "reward": rng.standard_normal((n_steps, n_envs)) * valid,
            "terminal": done & (rng.random(done.shape) < 0.5), "done": done, "valid": valid,
            "first": np.vstack([np.ones((1, n_envs), bool), ~valid[:-1]]) & valid, "chain": chains}


def minibatch(m, ro: dict[str, np.ndarray]) -> dict[str, Any]:
    """One PPO minibatch from a rollout's valid decisions: (decision, denoising step) pairs, random advantages and
    returns, and the old log-probs under the current weights."""
    g = torch.Generator().manual_seed(5)
    valid = ro["valid"].reshape(-1)
    idx = np.flatnonzero(valid)
    obs = torch.as_tensor(ro["obs"].reshape(-1, 9)[idx])
    chains = torch.as_tensor(ro["chain"]).reshape(-1, *ro["chain"].shape[2:])[idx]
    cond = m.normalizer.norm_obs(obs)
    k, n = m.model.ft_steps, 24
    dec = torch.randint(0, len(idx), (n,), generator=g)
    j = torch.randint(0, k, (n,), generator=g)
    with torch.no_grad():  # moved off the current weights' log-probs, so that some ratios are clipped
        old_lp = m.model.step_log_prob(cond[dec], chains[dec, j], chains[dec, j + 1], j)
        old_lp = old_lp + 0.05 * torch.randn(old_lp.shape, generator=g)
    return {"cond": cond[dec], "x_prev": chains[dec, j], "x_next": chains[dec, j + 1], "j": j,
            "adv": torch.randn(n, generator=g), "ret": torch.randn(n, generator=g), "old_lp": old_lp}


if __name__ == "__main__":
    main()
