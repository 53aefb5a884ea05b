"""Every family makes, update by update, the computation it made at 05edce8: one update, one act and one plan give
the outputs that 05edce8 gave, within atol 1e-5 and rtol 1e-5.

Why: the speed issue (issue 24) changes how each family computes (fused optimisers, foreach EMA, cached time
embeddings in the diffusion sampler, batched ensembles, ...) and must not change what it computes; score intervals
are too wide to show that. These tests guard those changes against 05edce8. Where today's code already matches
(every case, when they were written), they pass as they are: that is the point, they stay to catch a change.

The fixtures in tests/data/equiv_05edce8 were made by the project at 05edce8 (its make_fixtures.py says how and
what each holds): per case, a small method of the family on the demo task's spaces, its config, a synthetic
replay buffer, the method's `state_dict()` and torch's global RNG state at a point of a run (`before`), and what
each measured call returned from there. Each test builds the same method today (the same config: every key of
05edce8's resolved sections, pinned), loads the same buffer, parameters, optimiser states and RNG states, makes
the same call and compares:
- the optimisers' hyperparameters as the method builds them (every other test loads 05edce8's optimiser states);
- `update`: one online update, today's single-update function of the family, after the switch today's `update`
  makes at its start (MODIP `_finetune()` after `_set_distill_hparams()`; PA-RL `_update()` after `_go_online()`;
  IDQL `_update(train_dp=buffer.n_online >= actor_start)`, 05edce8's finetune_step rule, after
  `_set_actor_hparams()`; DSRL `_train_call()`; TD-MPC2 `_online_step(buffer)`; DPPO `update_rollout(rollout)`);
  05edce8 made it with `finetune_step()`. Compared: the metrics, every module's state_dict (optimiser states
  included; the optimisers' hyperparameters exactly, their implementation flags `foreach`, `fused`,
  `capturable`, `differentiable` left out), the method's generators, its checkpointed extra state, and torch's
  global RNG and the buffer's RNG after it. Also each network's step (after - before) to 1% of 05edce8's
  (`assert_step`): a step at lr 1e-4, or an EMA step, is smaller than the 1e-5 the values are compared to;
- `pretrain`: one offline update (today `pretrain(buffer)`, 05edce8 `pretrain_step(pretrain_batch())`), the same;
- `minibatch` (DPPO): one `minibatch_step`; `common_start` (bc_dp): `train_common_start` at two schedules;
- `act`: every actor in evaluation mode on 3 fixed observations, and the train actor in training (with the extras
  it stores; DPPO's `act_rollout` chains): the actions, and the actor generator's state after the call;
- `plan` (MODIP's mpc and mpc_chunk, TD-MPC2's mpc): two calls on one ActorState with env 1 reset between them,
  the actions and the planner's memory (the warm-start mean) after each;
- `episode` (MODIP): the diagnostics of a finished training episode (05edce8's observe_episode).
Mish: today's networks use a one-exp Mish (methods/common/mish.py) on tensors of 4096 elements and more, a few ulps
from ATen's. The fixtures' batches are smaller, so every test here forces it on (SMALL = 0), and acts and plans are
checked both ways at ATOL (with ATen's Mish the sampling chains compute 05edce8's bits), except planner outputs,
compared with either Mish at their own rounding sensitivity (`plan_tolerance`: MODIP's MPPI plan moves by up to
1.6e-4 under a one-ulp change of its observation, and a CPU that rounds differently moves it the same way).
The RNG states after a call are compared exactly ("draws"): a change that must draw in another order (e.g. all of
a sampler's noise at once) cannot match the outputs either, and must replace that family's checks by a test that
its outputs are equal in distribution, saying so here. MODIP counted its diagnostics' cadence in grad_steps at
05edce8 and counts `updates` today; the test sets one from the other. Today's MODIP computes its offline
statistics lazily (`_fit_offline`) where 05edce8 computed them in `attach_buffer`: same data, same values.

Defects fixed since 05edce8 (issue 25, part C) change what some families compute. Each comparison stays, in a
setting where the fix is a no-op, which `NO_OP_SETTINGS` pins (on top of 05edce8's keys) or the fixture already is:
- DPPO's ratio over the executed actions only: the fixture executes the whole chunk (dp.act_steps 0), where the
  executed actions are all of them;
- decisions cut short by a timeout or by the end of the data, which chunk critics now drop: IDQL's and PA-RL's
  batches draw such decisions, so they compare at `critic.cut_short: pad` (05edce8's computation, kept as a
  setting); DSRL's batches start at its decision starts, none of them cut short in the fixture, where the new
  rule draws nothing more and the new discount γ^(k / act_steps) is γ;
- MODIP's distillation start gated on the planner beating the data, which refuses 05edce8's `test` preset value
  distill_start_episodes 0 (no gate): the cases compare at 1, today's preset value, a no-op for every compared
  call, because the fixture's `before` is already distilling (the start rule is never consulted) and the
  episode diagnostics keep max(1, distill_start_episodes) training returns either way;
- PA-RL's optimisation step in action units: the cases compare at `parl.step_units: q` (PA-RL's raw step, 05edce8's
  computation, kept as a setting); the update's new diagnostics `parl/action_move` and `parl/data_won`
  (NEW_METRICS) are left out.
"""
from __future__ import annotations

import functools
import hashlib
import math
from typing import Any

import numpy as np
import pytest
import torch

import methods.common.mish as mish_module
from bench.config.layers import resolve_config
from methods.base import ActorState, MethodContext, TaskSpaces
from methods.common.common_start import train_common_start
from methods.common.normalize import Normalizer
from methods.common.replay import ReplayBuffer
from methods.registry import get_method_class
from results.keys import flatten
from tests.helpers import ROOT

FIXTURES = ROOT / "tests" / "data" / "equiv_05edce8"
CASES = sorted(p.stem for p in FIXTURES.glob("*.pt"))
RTOL = ATOL = 1e-5
ATEN = 2**62  # a Mish threshold no tensor reaches: ATen's kernel everywhere, 05edce8's arithmetic bit for bit
# The step of a network's weights (assert_step): within 1% of 05edce8's step, 8 float32 roundings, 1e-9.
STEP_RTOL, STEP_ULPS, STEP_FLOOR = 1e-2, 8, 1e-9
# Optimiser param-group flags that say how an update is computed, not what: a speed change may set them.
IMPLEMENTATION_FLAGS = ("foreach", "fused", "capturable", "differentiable")


@functools.cache
def fixture(case: str) -> dict[str, Any]:
    """The case's fixture (cached: never handed to a method; `fresh` copies what is)."""
    return torch.load(FIXTURES / f"{case}.pt", weights_only=True)


def fresh(x: Any) -> Any:
    """A copy with every tensor cloned on its own: an optimiser keeps the tensors it loads as its state and steps
    them in place, and the fixture stores equal tensors once (make_fixtures.py's `dedupe`)."""
    if isinstance(x, dict):
        return {k: fresh(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return type(x)(fresh(v) for v in x)
    return x.clone() if isinstance(x, torch.Tensor) else x


def digest(state: torch.Tensor) -> str:
    return hashlib.sha256(state.numpy().tobytes()).hexdigest()[:24]


def numpy(x: Any) -> Any:
    """Tensors back to arrays (what 05edce8's arrays were when the fixture was written), at any depth."""
    if isinstance(x, dict):
        return {k: numpy(v) for k, v in x.items()}
    return x.numpy() if isinstance(x, torch.Tensor) else x


# ---- building the case today ---------------------------------------------------------------------------------
# Per family, the keys added since 05edce8 whose default changes the computation (a defect fix, module doc), set
# where the fix is a no-op.
NO_OP_SETTINGS: dict[str, dict[str, Any]] = {"idql": {"idql.critic.cut_short": "pad"},
                                             "parl": {"parl.critic.cut_short": "pad", "parl.step_units": "q"},
                                             "modip": {"modip.distill_start_episodes": 1}}
# Diagnostic metrics a family logs since 05edce8 (they change no state): left out of today's metrics compared.
NEW_METRICS: dict[str, tuple[str, ...]] = {"parl": ("parl/action_move", "parl/data_won")}


def pinned(fx: dict[str, Any]) -> dict[str, Any]:
    """Dotted overrides that set every key of 05edce8's resolved sections (dp.eval_sampler comes from
    eval.sampler, as it always does), and the family's NO_OP_SETTINGS."""
    over: dict[str, Any] = {"eval.sampler": fx["eval_sampler"]}
    for section, values in fx["resolved"].items():
        for key, value in flatten(values).items():
            if not (section == "dp" and key == "eval_sampler"):
                over[f"{section}.{key}"] = value
    return {**over, **NO_OP_SETTINGS.get(fx["method"], {})}


def build(fx: dict[str, Any]):
    """The case's method today, with the fixture's buffer attached: (method, buffer, resolved config)."""
    cfg = resolve_config(fx["method"], fx["task"], fx["seed"], pinned(fx))
    sp = fx["spaces"]
    spaces = TaskSpaces(obs_dim=sp["obs_dim"], act_dim=sp["act_dim"], act_low=np.asarray(sp["act_low"], np.float32),
                        act_high=np.asarray(sp["act_high"], np.float32), max_episode_steps=sp["max_episode_steps"],
                        gamma=sp["gamma"], chunk=sp["chunk"], reward_scale=sp["reward_scale"])
    normalizer = Normalizer.from_state(fresh(fx["normalizer"]))
    torch.manual_seed(fx["seed"])
    m = get_method_class(fx["method"])(cfg.section, MethodContext(
        spaces=spaces, normalizer=normalizer, dp_cfg=cfg.dp, device=torch.device("cpu"), seed=fx["seed"],
        common_start=cfg.common_start))
    buf = ReplayBuffer(sp["obs_dim"], sp["act_dim"], extras=m.buffer_extras(), seed=fx["seed"])
    buf.load_state_dict(fresh(fx["buffer"]))
    m.attach_buffer(buf)
    return m, buf, cfg


def restore(m, buf: ReplayBuffer, fx: dict[str, Any]) -> None:
    """The method, the buffer and torch's global RNG as they were at `before`."""
    m.load_state_dict(fresh(fx["before"]["method"]))
    buf.load_state_dict(fresh(fx["buffer"]))
    torch.set_rng_state(fx["before"]["torch_rng"].clone())
    if fx["method"] == "modip":  # 05edce8 counted the diagnostics' cadence in grad_steps
        m.updates = int(fx["before"]["method"]["grad_steps"])


def cases_with(item: str) -> list[str]:
    """The cases whose fixture holds `item`."""
    return [c for c in CASES if item in fixture(c)]


def setup(name: str):
    """(fixture, method, buffer, config) of a case, at `before`."""
    fx = fixture(name)
    m, buf, cfg = build(fx)
    restore(m, buf, fx)
    return fx, m, buf, cfg


# ---- comparing -----------------------------------------------------------------------------------------------
def assert_same(got: Any, want: Any, where: str, tol: float = ATOL) -> None:
    """`got` equals `want` at every depth: tensors and floats within tol (rtol and atol; RTOL = ATOL by default;
    NaN equal), the rest exactly."""
    if isinstance(want, dict):
        assert isinstance(got, dict), f"{where}: {type(got).__name__}, expected a dict"
        group = "lr" in want and "params" in want  # an optimiser's param group: its hyperparameters exactly
        skip = IMPLEMENTATION_FLAGS if group else ()
        g_keys, w_keys = set(got) - set(skip), set(want) - set(skip)
        assert g_keys == w_keys, (f"{where}: keys only today {sorted(map(str, g_keys - w_keys))}, only at 05edce8 "
                                  f"{sorted(map(str, w_keys - g_keys))}")
        for k in w_keys:
            if group and not isinstance(want[k], torch.Tensor):
                assert got[k] == want[k], f"{where}.{k}: {got[k]!r}, expected {want[k]!r}"
            else:
                assert_same(got[k], want[k], f"{where}.{k}", tol)
    elif isinstance(want, list | tuple):
        assert isinstance(got, list | tuple) and len(got) == len(want), f"{where}: {got!r} != {want!r}"
        for i, (g, w) in enumerate(zip(got, want, strict=True)):
            assert_same(g, w, f"{where}[{i}]", tol)
    elif isinstance(want, torch.Tensor | np.ndarray):
        g, w = torch.as_tensor(np.asarray(got) if isinstance(got, np.ndarray) else got), torch.as_tensor(want)
        assert g.shape == w.shape, f"{where}: shape {tuple(g.shape)}, expected {tuple(w.shape)}"
        if w.is_floating_point():
            torch.testing.assert_close(g.to(w.dtype), w, rtol=tol, atol=tol, equal_nan=True,
                                       msg=lambda msg: f"{where}: {msg}")
        else:
            assert torch.equal(g.to(w.dtype), w), f"{where}: {g} != {w}"
    elif isinstance(want, float) and not isinstance(got, bool):
        ok = (math.isnan(want) and math.isnan(got)) or math.isclose(got, want, rel_tol=tol, abs_tol=tol)
        assert ok, f"{where}: {got!r}, expected {want!r}"
    else:
        assert got == want, f"{where}: {got!r}, expected {want!r}"


def assert_step(got: dict[str, Any], want: dict[str, Any], before: dict[str, Any], where: str) -> None:
    """Each floating value of a network's state_dict off 05edce8's by no more than STEP_RTOL of its own step there
    (after - before) plus STEP_ULPS float32 roundings of the value: an Adam step at lr 1e-4, or an EMA or Polyak
    step, moves a weight by less than ATOL, so that a step computed a few percent off would pass the check of the
    values alone; an update computed in another order (fused, foreach, batched) stays within a few roundings."""
    eps = torch.finfo(torch.float32).eps
    for key, w in want.items():
        b = before.get(key)
        if not (isinstance(w, torch.Tensor) and w.is_floating_point() and isinstance(b, torch.Tensor)):
            continue
        err = (got[key].to(w.dtype) - w).abs()
        step = (w - b).abs()
        bound = STEP_RTOL * step + STEP_ULPS * eps * torch.maximum(w.abs(), b.abs()) + STEP_FLOOR
        bad = err > bound
        if bad.any():
            i = int((err - bound).argmax())
            raise AssertionError(f"{where}.{key}: {int(bad.sum())} of {w.numel()} values off 05edce8's by more than "
                                 f"{STEP_RTOL:g} of their step + {STEP_ULPS} float32 roundings (worst: value "
                                 f"{float(w.flatten()[i]):.6g}, step {float(step.flatten()[i]):.3g}, off by "
                                 f"{float(err.flatten()[i]):.3g})")


def assert_state(m, buf: ReplayBuffer, want: dict[str, Any], item: str, before: dict[str, Any]) -> None:
    """The method's state after a call against 05edce8's: every module and optimiser (and each network's step
    from `before`), the generators, the extra state 05edce8 checkpointed, and (draws) torch's global RNG and the
    buffer's RNG."""
    got = m.state_dict()
    assert set(got["modules"]) == set(want["method"]["modules"]), f"{item}: modules {sorted(got['modules'])}"
    for name, w in want["method"]["modules"].items():
        assert_same(got["modules"][name], w, f"{item}: {name}")
        if isinstance(m.modules()[name], torch.nn.Module):
            assert_step(got["modules"][name], w, before["method"]["modules"][name], f"{item}: {name}")
    assert torch.equal(got["generator"], want["method"]["generator"]), f"{item}: the method's generator (draws)"
    for key, w in want["method"]["extra"].items():
        assert_same(got["extra"][key], w, f"{item}: extra {key}")
    assert digest(torch.get_rng_state()) == want["torch_rng_digest"], f"{item}: torch's global RNG after it (draws)"
    assert buf.get_rng_state() == want["buffer_rng"], f"{item}: the buffer's RNG after it (draws)"


# ---- the single calls, today ---------------------------------------------------------------------------------
def one_update(m, buf: ReplayBuffer, fx: dict[str, Any]) -> dict[str, float]:
    """One online update as today's `update` makes it (its switch at the start included), or DPPO's update from the
    stored rollout; metrics as 05edce8 returned them (DPPO: the mean over its minibatch steps)."""
    method = fx["method"]
    if method == "dppo":
        steps = m.update_rollout(numpy(fresh(fx["rollout"])))
        keys = {k for s in steps for k in s}
        return {k: float(np.mean([s[k] for s in steps if k in s])) for k in keys}
    if method == "modip":
        m._set_distill_hparams()
        return m._finetune()
    if method == "parl":
        m._go_online()
        return m._update()
    if method == "idql":
        m._set_actor_hparams()
        return m._update(train_dp=buf.n_online >= m.cfg.actor_start)
    if method == "dsrl":
        return m._train_call()
    if method == "tdmpc2":
        return m._online_step(buf)
    raise AssertionError(f"no update for {method}")


@pytest.mark.parametrize("name", CASES)
def test_config_resolves_today_as_at_05edce8(name):
    """Today's resolution of the case's overrides gives 05edce8's value for every key 05edce8 had (new keys may
    exist, at defaults that keep the computation or, for a defect fix, named in NO_OP_SETTINGS); a key of
    NO_OP_SETTINGS that a fix changed gives the value named there."""
    fx = fixture(name)
    today = resolve_config(fx["method"], fx["task"], fx["seed"], dict(fx["overrides"])).to_json()
    fixed = NO_OP_SETTINGS.get(fx["method"], {})
    for section, values in fx["resolved"].items():
        now = flatten(today.get(section) or {})
        for key, value in flatten(values).items():
            assert key in now, f"{name}: {section}.{key} is gone today"
            assert_same(now[key], fixed.get(f"{section}.{key}", value), f"{name}: {section}.{key}")


@pytest.mark.parametrize("name", CASES)
def test_optimisers_as_built(name):
    """Each optimiser's hyperparameters as the method builds it (the other tests load 05edce8's optimiser states,
    which bring their own)."""
    fx = fixture(name)
    m, _, _ = build(fx)
    built = {k: v.state_dict()["param_groups"] for k, v in m.modules().items() if isinstance(v, torch.optim.Optimizer)}
    assert_same(built, fx["optimizers_built"], f"{name} optimisers as built")


@pytest.mark.parametrize("name", cases_with("update"))
def test_one_update(name):
    fx, m, buf, _ = setup(name)
    metrics = one_update(m, buf, fx)
    for key in NEW_METRICS.get(fx["method"], ()):
        metrics.pop(key)
    assert_same(metrics, fx["update"]["metrics"], f"{name} update: metrics")
    assert_state(m, buf, fx["update"], f"{name} update", fx["before"])


@pytest.mark.parametrize("name", cases_with("pretrain"))
def test_one_pretrain_step(name):
    fx, m, buf, _ = setup(name)
    assert_same(m.pretrain(buf), fx["pretrain"]["metrics"], f"{name} pretrain: metrics")
    assert_state(m, buf, fx["pretrain"], f"{name} pretrain", fx["before"])


@pytest.mark.parametrize("name", cases_with("minibatch"))
def test_dppo_minibatch_step(name):
    fx, m, buf, _ = setup(name)
    assert_same(m.minibatch_step(**fresh(fx["minibatch"]["inputs"])), fx["minibatch"]["metrics"],
                f"{name} minibatch: metrics")
    assert_state(m, buf, fx["minibatch"], f"{name} minibatch", fx["before"])


@pytest.fixture(autouse=True)
def _one_exp_mish(monkeypatch):
    """Every case runs the one-exp Mish (methods/common/mish.py) that real batches take: the fixtures' batches are
    under its SMALL threshold, where ATen's kernel (05edce8's) would run bit for bit and hide it."""
    monkeypatch.setattr(mish_module, "SMALL", 0)


def plan_tolerance(name: str, actor: str | None, obs: np.ndarray, calls: list[dict], plan: dict | None = None,
                   deterministic: bool = True) -> float:
    """The tolerance for a planner actor's outputs: ATOL, or 4x the plan's own rounding sensitivity if larger.

    Why: an MPPI plan weighs its samples by exp(score / temperature), which amplifies float32 rounding: MODIP's
    plan on these fixtures moves by up to 1.6e-4 when its observation moves by one ulp (05edce8's code, ATen's
    Mish), and the one-exp Mish, a few ulps from ATen's per activation, moves it by 8.6e-5. So a plan is compared
    at the scale its own arithmetic fixes: the largest move of its outputs (actions, and the warm-start mean it
    leaves) under a +-1 ulp change of the observation, computed here with ATen's Mish (the 05edce8 path), times
    4. A machine whose CPU rounds differently (another SIMD width) moves a plan the same way, so planners are
    compared at this scale with either Mish: CI once failed MODIP's training act (mpc, with noise) at ATOL with a
    move of 2.6e-5, where this gives 6.4e-5 (2x gave 3.2e-5, too close). A wrong plan moves far more: an MPPI
    temperature x1.01 moves that act by 1.2e-3, 19x the tolerance. `actor` None and
    `deterministic` False measure the training act, its float extras (the plan's action and reward) included."""
    moves = []
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(mish_module, "SMALL", ATEN)
        for sign in (1.0, -1.0):
            fx, m, buf, _ = setup(name)
            restore(m, buf, fx)
            st = ActorState.create(calls[0]["seed"] if "seed" in calls[0] else plan["seed"])
            for i, call in enumerate(calls):
                if i == 1:
                    st.reset([plan["reset_env"]])
                step = plan["obs_step"] * i if plan is not None else 0.0
                o = (obs + step).astype(np.float32)
                actions, extras = m.act(o * np.float32(1.0 + sign * 2.0**-23), actor, st, deterministic)
                moves.append(float((torch.as_tensor(actions) - torch.as_tensor(call["actions"])).abs().max()))
                for key, want in call.get("extras", {}).items():
                    if isinstance(want, torch.Tensor) and want.is_floating_point():
                        moves.append(float((torch.as_tensor(extras[key]) - want).abs().max()))
                if plan is not None:  # the warm-start mean the plan leaves behind
                    memory = torch.as_tensor(st.memory[plan["memory_key"]])
                    if fx["method"] == "tdmpc2":
                        memory = memory.transpose(0, 1)
                    moves.append(float((memory - torch.as_tensor(call["memory"])).abs().max()))
    return max(ATOL, 4.0 * max(moves))


@pytest.mark.parametrize("mish", ["one_exp", "aten"])
@pytest.mark.parametrize("name", cases_with("act"))
def test_one_act(name, mish, monkeypatch):
    """Every actor's act, with ATen's Mish and with the one-exp Mish: at ATOL (the sampling chains compute 05edce8's
    bits with ATen's), planners (MODIP's and TD-MPC2's MPPI, in evaluation and in training) at their own rounding
    sensitivity (`plan_tolerance`)."""
    if mish == "aten":
        monkeypatch.setattr(mish_module, "SMALL", ATEN)
    fx, m, buf, _ = setup(name)
    obs = fx["obs"].numpy()
    assert list(fx["act"]) == list(m.actors), f"{name}: actors {m.actors}, 05edce8 had {list(fx['act'])}"
    for actor, want in fx["act"].items():
        restore(m, buf, fx)
        st = ActorState.create(want["seed"])
        actions, _ = m.act(obs, actor, st, True)
        tol = plan_tolerance(name, actor, obs, [want]) if actor in fx.get("plan", {}) else ATOL
        assert_same(actions, want["actions"], f"{name} act {actor}", tol)
        assert digest(st.generator.get_state()) == want["generator_digest"], f"{name} act {actor}: draws"
    want = fx["train_act"]
    restore(m, buf, fx)
    st = ActorState.create(want["seed"])
    actions, extras = m.act(obs, None, st, False)  # None: the actor that collects training data
    planner = want["actor"] in fx.get("plan", {})
    tol = plan_tolerance(name, None, obs, [want], deterministic=False) if planner else ATOL
    assert_same(actions, want["actions"], f"{name} train act ({want['actor']})", tol)
    assert_same(extras, want["extras"], f"{name} train act extras", tol)
    assert digest(st.generator.get_state()) == want["generator_digest"], f"{name} train act: draws"
    if "act_rollout" in want:
        restore(m, buf, fx)
        st = ActorState.create(want["seed"])
        actions, info = m.act_rollout(obs, st)
        assert_same(actions, want["act_rollout"]["actions"], f"{name} act_rollout")
        assert_same(info["chain"], want["act_rollout"]["chain"], f"{name} act_rollout chain")
        assert digest(st.generator.get_state()) == want["act_rollout"]["generator_digest"], f"{name} act_rollout: draws"


@pytest.mark.parametrize("mish", ["one_exp", "aten"])
@pytest.mark.parametrize("name", cases_with("plan"))
def test_one_plan(name, mish, monkeypatch):
    """Two plans on one ActorState, env 1 reset between them: the actions and the warm-start mean after each.
    TD-MPC2 keeps its mean env first today, (B, H, A); 05edce8 kept it (H, B, A). With either Mish at the plan's
    own rounding sensitivity (`plan_tolerance`), which is ATOL where the plan does not amplify rounding."""
    if mish == "aten":
        monkeypatch.setattr(mish_module, "SMALL", ATEN)
    fx, m, buf, _ = setup(name)
    obs = fx["obs"].numpy()
    for actor, want in fx["plan"].items():
        tol = plan_tolerance(name, actor, obs, want["calls"], want)
        restore(m, buf, fx)
        st = ActorState.create(want["seed"])
        for i, call in enumerate(want["calls"]):
            if i == 1:
                st.reset([want["reset_env"]])
            actions, _ = m.act(obs + want["obs_step"] * i, actor, st, True)
            assert_same(actions, call["actions"], f"{name} plan {actor} call {i}", tol)
            memory = torch.as_tensor(st.memory[want["memory_key"]])
            if fx["method"] == "tdmpc2":
                memory = memory.transpose(0, 1)
            assert_same(memory, call["memory"], f"{name} plan {actor} call {i}: {want['memory_key']}", tol)
            assert digest(st.generator.get_state()) == call["generator_digest"], f"{name} plan {actor} {i}: draws"


@pytest.mark.parametrize("name", cases_with("common_start"))
def test_bc_dp_common_start(name):
    """bc_dp's product: the common start's BC steps at the demo's schedule and at one like DPPO's."""
    fx, m, buf, cfg = setup(name)
    sp = fx["spaces"]
    init = fx["common_start"]["init"]  # the DP the common start starts from (its weights and EMA)
    for schedule, want in fx["common_start"].items():
        if schedule == "init":
            continue
        restore(m, buf, fx)
        cs = cfg.common_start.model_copy(update=dict(want["config"]))
        state, curve = train_common_start(cs, cfg.dp, sp["obs_dim"], sp["act_dim"], m.chunk, m.normalizer, buf,
                                          fx["seed"], torch.device("cpu"))
        assert_same(state, want["state"], f"{name} common start ({schedule})")
        for part in ("policy", "ema"):
            assert_step(state["dp"][part], want["state"]["dp"][part], init, f"{name} common start ({schedule}) {part}")
        assert_same(curve, want["curve"], f"{name} common start ({schedule}): curve")
        assert buf.get_rng_state() == want["buffer_rng"], f"{name} common start ({schedule}): the buffer's RNG"


@pytest.mark.parametrize("name", cases_with("episode"))
def test_modip_episode_diagnostics(name):
    fx, m, _, _ = setup(name)
    m.pending = {}
    m._on_episode(numpy(fresh(fx["episode"]["episode"])))
    assert_same(m.pending, fx["episode"]["pending"], f"{name} episode diagnostics")
    assert_same(m.train_returns, fx["episode"]["train_returns"], f"{name} episode: training returns")
