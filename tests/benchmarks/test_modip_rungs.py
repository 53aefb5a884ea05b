"""benchmarks/modip_rungs.py (the hopper issue's B3): MODIP's planner rung by rung on a post-offline checkpoint.

- the true-simulator model (SimModels) follows the env exactly: a row stepped from a captured state reaches the
  state, reward and termination the env itself reaches with the same actions, and rows branch independently;
- the script's planner actor (rung 5's, with the learned model and every row planned) equals MODIP's `mpc` actor;
- the script's own evaluation equals the runner's evaluate_actor for the `dp` actor;
- --smoke runs end to end on the demo task (~10 s on 2 busy cores, with the session's demo dataset).
"""
from __future__ import annotations

import importlib.util
import sys

import numpy as np
import pytest
import torch

from tests.helpers import ROOT


def script():
    spec = importlib.util.spec_from_file_location("modip_rungs", ROOT / "benchmarks" / "modip_rungs.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules["modip_rungs"] = mod
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="module")
def parts(demo_dataset):
    from bench.config.layers import resolve_config
    from bench.runner.assemble import assemble
    from tests.helpers import tiny

    torch.manual_seed(0)
    cfg = resolve_config("modip", "demo", 10, {**tiny("modip"), "preset": "demo"})
    return assemble(cfg)


def test_sim_models_follow_the_env_and_rows_branch(parts):
    rungs = script()
    m, task = parts.method, parts.task
    env = task.make_env()
    env.reset(seed=3)
    rng = np.random.default_rng(0)
    for _ in range(3):
        env.step(rng.uniform(-0.3, 0.3, size=env.action_space.shape))
    sim = rungs.SimModels(m, task)
    obs0 = np.asarray(env.unwrapped._get_obs(), np.float32)
    s0 = m.normalizer.norm_obs(torch.as_tensor(obs0[None]))
    s = sim.begin(s0, [env]).repeat(2, 1)  # two rows from the same state
    acts = torch.as_tensor(rng.uniform(-1, 1, size=(4, 2, m.spaces.act_dim)), dtype=torch.float32)
    for t in range(4):
        s, r, d, u = sim.step(s, acts[t])
        o, reward, term, _, _ = env.step(m.normalizer.unnorm_act(acts[t, :1]).numpy()[0])  # row 0 = the env
        expect = m.normalizer.norm_obs(torch.as_tensor(np.asarray(o, np.float32)[None]))[0]
        torch.testing.assert_close(s[0, :-1], expect, rtol=1e-5, atol=1e-5)
        assert float(r[0]) == pytest.approx(reward * m.spaces.reward_scale, rel=1e-5)
        assert float(d[0]) == float(term)
        assert float(u.abs().sum()) == 0.0
        if term:
            break
    assert not torch.allclose(s[0, :-1], s[1, :-1])  # row 1 took other actions from the same start
    assert sim.sim_steps > 0


def test_planner_actor_with_the_learned_model_equals_the_mpc_actor(parts):
    from methods.base import ActorState

    rungs = script()
    m, task = parts.method, parts.task
    m.world_model.eval()
    envs = [task.make_env() for _ in range(3)]
    obs = np.stack([e.reset(seed=i)[0] for i, e in enumerate(envs)]).astype(np.float32)
    a, b = ActorState.create(5), ActorState.create(5)
    mine = rungs.planner_actor(m, rungs.learned_models_for(m), int(m.cfg.planner.replan_every), False)
    done = np.zeros(3, bool)
    for _ in range(2):  # the second call warm-starts from the shifted mean
        np.testing.assert_array_equal(m.act(obs, "mpc", a, True)[0], mine(obs, b, envs, done))
        obs = obs + 0.01


def test_the_scripts_evaluation_equals_the_runners(parts):
    from bench.runner.evaluation import evaluate_actor

    rungs = script()
    m, task = parts.method, parts.task
    seeds = [20_000, 20_001]
    ours = rungs.evaluate(task, rungs.method_actor(m, "dp"), seeds, m.device)
    theirs = evaluate_actor(m, task, "dp", seeds, m.device)
    assert ours["returns"] == theirs["returns"]
    assert np.mean(ours["scores"]) == pytest.approx(theirs["normalized_score"])


def test_smoke_runs_every_rung_and_names_the_first_loss(demo_dataset, capsys):
    rungs = script()
    assert rungs.main(["--smoke", "--seeds", "10", "--episodes", "2"]) == 0
    out = capsys.readouterr().out.strip().splitlines()
    assert out[-1].startswith("modip_rungs: demo seeds 10: 1 ")
    table = [line for line in out if line.startswith("| ")]
    for r in ("1", "1b", "2", "3", "4", "5", "4b"):
        assert any(line.startswith(f"| {r} | ") for line in table), r
