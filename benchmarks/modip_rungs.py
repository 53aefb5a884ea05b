"""Where does MODIP's planner lose? Its pieces one rung at a time, on MODIP's post-offline checkpoint.

The hopper issue's diagnostic B3. MODIP with the settings of sweeps/diag-hopper.yaml (its `demo` preset, the
common start and the 20000 offline steps of that sweep) is stopped right after its offline phase (world model and
critics trained on the data, the DP the common start's), and each rung below is evaluated as an eval-only actor
on those weights, on the tuning eval seeds (the sweep's `eval.seed_set`, 10 episodes in lockstep, as the runner
evaluates). Nothing is trained here. The rungs, each adding one piece toward the planner:

  1   the DP alone: MODIP's `dp` actor (the EMA DP, its eval sampler, executes dp.act_steps of each chunk)
  1b  the DP alone, sampled as the planner samples its proposals (`planner.dp_sampler`, e.g. DDIM 5 steps where
      the DP's own eval sampler is DDPM 20); shown only where the two samplers differ
  2   best of N DP samples (the planner's sampler) by MODIP's Q: argmax_i Q(s, a_i[0]) (the critics' ensemble
      mean), the chosen chunk executed as the DP's is (dp.act_steps actions); N = planner.samples unless --samples
  3   one model step plus V: the same N samples scored by r̂(s, a_i[0]) + γ (1 - d̂) V(ŝ'), with ŝ', r̂, d̂ the
      world model's ensemble means (planner.py `score_sequences` at horizon 1), executed as in rung 2
  4   the full planner: MODIP's own `mpc` actor (MPPI over horizon H with DP proposals and terminal V, executing
      planner.replan_every actions of each plan)
  5   the full planner with the true simulator as its model: the same `plan` (proposals, MPPI, terminal V), but
      every candidate is rolled out in a copy of the eval env's MuJoCo state (bench/tasks/env_state.py
      `sub_env_state` takes it from the eval env, bench/tasks/sim_state.py's `set_mj_state`/`mj_state` restore
      and capture it in a scratch env) with the env's own reward and termination, instead of the world model
  4b  (side rung) the full planner executing Ta actions of each plan open-loop: MODIP's `mpc_chunk` actor; it
      executes what rungs 2-3 execute, so 3 -> 4b is the planner at an equal execution length

The ladder is 1, 1b, 2, 3, 4, 5; the headline names the first rung whose mean score (over seeds and episodes)
falls below the rung before it, with the paired difference (per seed and eval episode: the same start states)
and its 95% t-interval.

Tables: per rung, the mean normalised score ± 95% CI over seeds x episodes, each seed's mean, the paired change
from the previous rung of the ladder, the mean episode length and the eval's wall time; then every episode's
score per seed.

The post-offline checkpoint: run_one of the sweep's MODIP config with request_stop_at(grad_step=pretrain.steps),
into the store's sweep `modip-rungs` (`<store>/checkpoints/modip-rungs/<run_id>/last.pt`; kept and reused), so
with the store of the diag-hopper sweep its common-start cache is reused; or --checkpoint PATH (`{seed}` in the
path is replaced by each seed). Seeds: tuning seeds 10-14 only.

    MINARI_DATASETS_PATH=../shared/data python benchmarks/modip_rungs.py --seeds 10,11 \\
        --store STORE
    python benchmarks/modip_rungs.py --smoke        # tiny budgets on the demo task, seconds

Cost on hopper-medium, one torch thread on a shared 2-core machine: the offline phase ~6.5 min per seed (the
diag-hopper MODIP run reached its step-0 eval after 390 s; the common start comes from the cache); per decision
at batch 10, measured: rung 1 16 ms (4 actions), 1b 4 ms, 2 and 3 77 ms (4 actions), 4 40 ms (2 actions), 4b
34 ms (4 actions), 5 1.6 s (2 actions), i.e. per 1000-step eval of 10 episodes about 4, 1, 19, 19, 20, 9 and 780
s; the evals shrink with shorter episodes. So ~8-21 min per seed, rung 5 most of it (`--rungs` leaves it out).
"""
from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
DIAG_SWEEP = ROOT / "sweeps" / "diag-hopper.yaml"
RUNGS = {
    "1": "DP alone (`dp` actor)",
    "1b": "DP alone, planner's sampler",
    "2": "best of N DP samples by Q(s, a0)",
    "3": "best of N by r̂ + γ V(ŝ') (one model step)",
    "4": "full planner (`mpc` actor)",
    "5": "full planner, true simulator as model",
    "4b": "full planner, Ta actions per plan (`mpc_chunk`)",
}
LADDER = ("1", "1b", "2", "3", "4", "5")
SMOKE_BUDGET = {
    "common_start.steps": 40, "common_start.ema_start": 0, "common_start.lr_warmup": 0, "common_start.log_every": 10,
    "pretrain.steps": 40, "pretrain.log_every": 10, "pretrain.checkpoint_every": 20,
}

Actor = Callable[[np.ndarray, object, list, np.ndarray], np.ndarray]  # (obs, ActorState, envs, done) -> chunks


# ---- the post-offline checkpoint -----------------------------------------------------------------------------
def modip_config(task: str, seed: int, budget: dict):
    """MODIP's config in the diag-hopper sweep (its overrides and per-method preset) on `task`, with `budget`."""
    from bench.sweep.spec import expand, load_sweep

    base = load_sweep(DIAG_SWEEP)
    spec = dataclasses.replace(base, methods=["modip"], tasks=[task], seeds=[seed],
                               overrides={**base.overrides, **budget}, grid={})
    (run,) = expand(spec)
    return run.cfg


def offline_checkpoint(cfg, store: Path, sweep: str) -> dict:
    """The post-offline checkpoint of `cfg` in `store`: read if there, else made by a run stopped right after its
    offline phase (the common start from the store's cache where it is there)."""
    from bench.runner.checkpoints import load_checkpoint
    from bench.runner.lifecycle import run_one
    from bench.runner.stops import Preempted, request_stop_at

    path = store / "checkpoints" / sweep / cfg.run_id / "last.pt"

    def ready() -> dict | None:
        if not path.exists():
            return None
        st = load_checkpoint(path)
        import json

        return st if json.loads(st["counters"])["grad_step"] >= cfg.pretrain.steps else None

    st = ready()
    if st is None:
        say(f"seed {cfg.seed}: offline phase of run {cfg.run_id} ({cfg.pretrain.steps} steps) into {path} ...")
        t0 = time.perf_counter()
        request_stop_at(grad_step=cfg.pretrain.steps)
        try:
            run_one(cfg, store_root=store, sweep_id=sweep, progress=False)
        except Preempted:
            pass
        finally:
            request_stop_at(None, None)
        st = ready()
        if st is None:
            raise SystemExit(f"modip_rungs: the run {cfg.run_id} left no post-offline checkpoint at {path}")
        say(f"seed {cfg.seed}: offline phase done in {time.perf_counter() - t0:.0f} s")
    return st


def load_post_offline(cfg, st: dict):
    """The run's parts (bench.runner.assemble, as the run builds them) with the checkpoint's method and normaliser
    loaded, and the switch to fine-tuning made if the run stopped before it (what the run would do next)."""
    from bench.runner.assemble import assemble
    from bench.runner.checkpoints import seed_everything

    seed_everything(cfg.seed)
    parts = assemble(cfg)
    parts.method.load_state_dict(st["method"])
    parts.normalizer.load_state_dict(st["normalizer"])
    parts.method.dp.reset_to_ema()  # as the harness's common-start load does (a checkpoint of older code may not)
    parts.method.world_model.eval()
    return parts


# ---- evaluation ----------------------------------------------------------------------------------------------
@torch.no_grad()
def evaluate(task, act: Actor, eval_seeds: list[int], device) -> dict:
    """bench.runner.evaluation.evaluate_actor (acting on the unfinished episodes alone), with the actor also given
    their envs and which are done (rung 5 reads their simulator state), and every episode's score and length."""
    from methods.base import ActorState

    t0 = time.perf_counter()
    envs = [task.make_env() for _ in eval_seeds]
    obs = np.stack([env.reset(seed=s)[0] for env, s in zip(envs, eval_seeds)]).astype(np.float32)
    state = ActorState.create(int(eval_seeds[0]) * 31 + 17, device)
    n = len(envs)
    returns, lengths = np.zeros(n), np.zeros(n, int)
    done = np.zeros(n, bool)
    infos: list[dict] = [{} for _ in range(n)]
    active = np.arange(n)  # the unfinished episodes, as the runner's evaluation acts on them alone
    while len(active):
        chunks = act(obs[active], state, [envs[i] for i in active], done[active].copy())
        for t in range(chunks.shape[1]):
            for row, i in enumerate(active):
                if done[i]:
                    continue
                o, r, term, trunc, info = envs[i].step(chunks[row, t])
                returns[i] += float(r)
                lengths[i] += 1
                obs[i] = o
                if term or trunc:
                    done[i] = True
                    infos[i] = info
            if done[active].all():
                break
        still = ~done[active]
        if not still.all():
            state.keep(np.flatnonzero(still))
            active = active[still]
    for env in envs:
        env.close()
    scores = [task.normalized_score(r, info) for r, info in zip(returns, infos)]
    return {"scores": scores, "returns": returns.tolist(), "lengths": lengths.tolist(),
            "wall_s": time.perf_counter() - t0}


# ---- the rungs' actors ---------------------------------------------------------------------------------------
def planner_sampler(m) -> str:
    """How the planner samples the DP in eval mode (MODIP.plan_models)."""
    return m.cfg.planner.dp_sampler or m.dp_cfg.eval_sampler


def method_actor(m, name: str) -> Actor:
    return lambda obs, state, envs, done: m.act(obs, name, state, True)[0]


def sampled_dp_actor(m, sampler: str) -> Actor:
    """The DP alone with `sampler`: the DP's chunk, executed the same way as its `act`."""
    def act(obs, state, envs, done):
        s = m.normalizer.norm_obs(torch.as_tensor(obs, dtype=torch.float32, device=m.device))
        chunk = m.dp.ema.module.sample(s, generator=state.generator, sampler=sampler)
        return m.normalizer.unnorm_act(m.dp.executed(chunk)).cpu().numpy()
    return act


def best_of_n_actor(m, n: int, score: str) -> Actor:
    """N DP chunks per state (the planner's sampler, one batched chain), the best executed as the DP's act executes a
    chunk. score "q": Q(s, a[0]), the critics' ensemble mean; "v1": r̂(s, a[0]) + γ m_1 V(ŝ_1), the planner's own
    score at horizon 1 (planner.py score_sequences, with the learned model's PlanModels)."""
    from methods.modip.planner import score_sequences

    sampler = planner_sampler(m)

    def act(obs, state, envs, done):
        s = m.normalizer.norm_obs(torch.as_tensor(obs, dtype=torch.float32, device=m.device))
        b = s.shape[0]
        s_rep = s.repeat_interleave(n, 0)
        chunks = m.dp.ema.module.sample(s_rep, generator=state.generator, sampler=sampler).view(b, n, m.chunk, -1)
        if score == "q":
            scores = m.critics.q_value(s_rep, chunks[:, :, 0].reshape(b * n, -1)).view(b, n)
        else:
            scores = score_sequences(m.plan_models(True), s.unsqueeze(1).expand(b, n, s.shape[1]),
                                     chunks[:, :, :1], m.cfg.planner, m.gamma, state.generator)
        chosen = chunks[torch.arange(b, device=s.device), scores.argmax(1)]
        return m.normalizer.unnorm_act(m.dp.executed(chosen)).cpu().numpy()
    return act


class SimModels:
    """The true simulator behind the interface of PlanModels (methods/modip/planner.py), for rung 5.

    A planner state is a normalised observation with one extra column: a handle to the MuJoCo integration state it
    stands for (kept here, valid for one plan). `step` restores each row's state in a scratch env of the task,
    steps the env with the row's action (the env's own reward, times the run's reward scale as in the buffer, and
    its termination as d = 0 or 1; a row whose state terminated stays put with reward 0 and d = 1), and captures
    the state reached. `value`, `q` and `policy` are MODIP's (its critics and the EMA DP with the planner's
    sampler), on the observation columns. Disagreement is 0 (no uncertainty penalty from a simulator)."""

    def __init__(self, m, task):
        from bench.tasks.env_state import _env_name

        self.m = m
        self.env = task.make_env()
        self.env.reset(seed=0)
        self.base = self.env.unwrapped
        self.name = _env_name(self.env)
        self.sampler = planner_sampler(m)
        self.states: list[dict] = []
        self.dead: list[bool] = []
        self.sim_steps = 0

    def begin(self, s: torch.Tensor, envs: list) -> torch.Tensor:
        """A plan's start states: the eval envs' simulator states (sub_env_state); s with the handle column."""
        from bench.tasks.env_state import sub_env_state

        self.states, self.dead = [], []
        for env in envs:
            st = sub_env_state(env)
            self._register({"sim_spec": st["sim_spec"], "sim": st["sim"]}, False)
        return torch.cat([s, torch.arange(len(envs), dtype=s.dtype, device=s.device)[:, None]], dim=1)

    def _register(self, st: dict, dead: bool) -> int:
        self.states.append(st)
        self.dead.append(dead)
        if len(self.states) >= 2 ** 24:  # handles ride in a float32 column
            raise RuntimeError("SimModels: too many states in one plan")
        return len(self.states) - 1

    def step(self, s: torch.Tensor, a: torch.Tensor):
        from bench.tasks.sim_state import mj_state, set_mj_state

        handles = s[:, -1].long().tolist()
        acts = self.m.normalizer.unnorm_act(a).cpu().numpy()
        n = len(handles)
        obs = np.zeros((n, s.shape[1] - 1), np.float32)
        rew, term = np.zeros(n, np.float32), np.zeros(n, np.float32)
        new = np.zeros(n, np.float32)
        fresh = np.zeros(n, bool)
        for i, h in enumerate(handles):
            if self.dead[h]:
                term[i], new[i] = 1.0, h
                continue
            set_mj_state(self.base.model, self.base.data, self.states[h], self.name)
            o, r, terminated, _, _ = self.base.step(acts[i])
            self.sim_steps += 1
            obs[i], rew[i], term[i], fresh[i] = o, r, float(terminated), True
            new[i] = self._register(mj_state(self.base.model, self.base.data), bool(terminated))
        dev = s.device
        s_next = s[:, :-1].clone()
        idx = torch.as_tensor(np.flatnonzero(fresh), device=dev)
        if len(idx):
            s_next[idx] = self.m.normalizer.norm_obs(torch.as_tensor(obs[fresh], device=dev))
        reward = torch.as_tensor(rew, device=dev) * float(self.m.spaces.reward_scale)
        s_next = torch.cat([s_next, torch.as_tensor(new, device=dev)[:, None]], dim=1)
        return s_next, reward, torch.as_tensor(term, device=dev), torch.zeros(n, device=dev)

    def value(self, s: torch.Tensor) -> torch.Tensor:
        return self.m.critics.value(s[:, :-1])

    def q(self, s: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
        return self.m.critics.q_value(s[:, :-1], a)

    def policy(self, s: torch.Tensor, generator) -> torch.Tensor:
        return self.m.dp.ema.module.sample(s[:, :-1], generator=generator, sampler=self.sampler)

    def models(self):
        from methods.modip.planner import PlanModels

        return PlanModels(step=self.step, value=self.value, q=self.q, policy=self.policy)


def planner_actor(m, models_for: Callable, execute: int, active_only: bool, pcfg=None,
                  won: list | None = None) -> Actor:
    """MODIP.act_mpc in eval mode (plan, execute the first `execute` actions of the mean, warm-start the next plan
    from the shifted mean), with the PlanModels and start states that `models_for(s, envs)` gives. active_only:
    plan for the episodes still running only (their warm starts kept per env); False plans every row, as
    act_mpc does (a test checks that this then equals the `mpc` actor). pcfg: a planner section other than the
    method's (modip_planner_probe.py); won: a list to which each plan's share of DP-proposal winners is added."""
    from methods.modip.planner import plan, shift_mean

    pcfg = pcfg or m.cfg.planner
    h, a_dim = pcfg.horizon, m.spaces.act_dim

    def act(obs, state, envs, done):
        b = obs.shape[0]
        rows = np.flatnonzero(~done) if active_only else np.arange(b)
        s = m.normalizer.norm_obs(torch.as_tensor(obs[rows], dtype=torch.float32, device=m.device))
        s0, models = models_for(s, [envs[i] for i in rows])
        mean = state.memory.get("mean")
        warm = None if mean is None else mean[torch.as_tensor(rows)]
        result = plan(models, s0, warm, state.generator, pcfg, m.gamma, a_dim)
        if won is not None:
            won.extend(result.dp_won.tolist())
        full = torch.zeros(b, h, a_dim, device=m.device) if mean is None else mean.clone()
        full[torch.as_tensor(rows)] = shift_mean(result.mean, execute)
        state.memory["mean"] = full
        out = torch.zeros(b, execute, a_dim, device=m.device)
        out[torch.as_tensor(rows)] = result.mean[:, :execute]
        return m.normalizer.unnorm_act(out).cpu().numpy()
    return act


def learned_models_for(m) -> Callable:
    return lambda s, envs: (s, m.plan_models(True))


def sim_models_for(sim: SimModels) -> Callable:
    return lambda s, envs: (sim.begin(s, envs), sim.models())


def rung_actors(m, task, rungs: list[str], n: int) -> dict[str, Actor]:
    out: dict[str, Actor] = {}
    for r in rungs:
        if r == "1":
            out[r] = method_actor(m, "dp")
        elif r == "1b":
            if planner_sampler(m) != m.dp_cfg.eval_sampler:
                out[r] = sampled_dp_actor(m, planner_sampler(m))
        elif r == "2":
            out[r] = best_of_n_actor(m, n, "q")
        elif r == "3":
            out[r] = best_of_n_actor(m, n, "v1")
        elif r == "4":
            out[r] = method_actor(m, "mpc")
        elif r == "4b":
            out[r] = method_actor(m, "mpc_chunk")
        elif r == "5":
            out[r] = planner_actor(m, sim_models_for(SimModels(m, task)), int(m.cfg.planner.replan_every), True)
    return out


# ---- main ----------------------------------------------------------------------------------------------------
def say(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def parse_seeds(text: str) -> list[int]:
    a, _, b = text.partition("-")
    return list(range(int(a), int(b) + 1)) if b else [int(s) for s in a.split(",")]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", default="10,11", help="tuning seeds (10-14), e.g. 10,11")
    ap.add_argument("--store", default=None, help="results store (default results-diag; --smoke: a temp dir)")
    ap.add_argument("--task", default="hopper-medium")
    ap.add_argument("--sweep", default="modip-rungs", help="the store sweep of the offline runs")
    ap.add_argument("--checkpoint", default=None, help="a post-offline checkpoint ({seed} is replaced)")
    ap.add_argument("--samples", type=int, default=0, help="N of rungs 2-3 (0 = modip.planner.samples)")
    ap.add_argument("--episodes", type=int, default=10)
    ap.add_argument("--rungs", default=",".join(RUNGS), help=f"a subset of {','.join(RUNGS)}")
    ap.add_argument("--pretrain-steps", type=int, default=None, help="offline steps (default: the sweep's)")
    ap.add_argument("--common-start-steps", type=int, default=None, help="default: the sweep's (its cache)")
    ap.add_argument("--smoke", action="store_true", help="tiny budgets on the demo task (a test runs it)")
    args = ap.parse_args(argv)

    torch.set_num_threads(1)
    seeds = parse_seeds(args.seeds)
    if any(not 10 <= s <= 14 for s in seeds):
        raise SystemExit("modip_rungs: tuning seeds 10-14 only (never the reported seeds)")
    rungs = [r for r in args.rungs.split(",") if r]
    unknown = sorted(set(rungs) - set(RUNGS))
    if unknown:
        raise SystemExit(f"modip_rungs: unknown rungs {unknown} (known: {', '.join(RUNGS)})")
    if args.checkpoint and len(seeds) > 1 and "{seed}" not in args.checkpoint:
        raise SystemExit("modip_rungs: --checkpoint for several seeds needs '{seed}' in its path")
    budget = {"threads": 1, "eval.episodes": args.episodes}
    if args.pretrain_steps is not None:
        budget["pretrain.steps"] = args.pretrain_steps
    if args.common_start_steps is not None:
        budget["common_start.steps"] = args.common_start_steps
    task_name, tmp = args.task, None
    if args.smoke:
        tmp = tempfile.TemporaryDirectory(prefix="modip-rungs-smoke-")
        task_name = "demo"
        budget.update(SMOKE_BUDGET)
        make_demo_dataset(Path(tmp.name) / "minari")
    store = Path(args.store or (Path(tmp.name) / "store" if tmp else "results-diag"))

    from bench.runner.checkpoints import load_checkpoint
    from bench.tasks import TUNE_EVAL_SEEDS

    results: dict[int, dict[str, dict]] = {}
    cfg = None
    for seed in seeds:
        cfg = modip_config(task_name, seed, budget)
        if args.checkpoint:
            path = args.checkpoint.replace("{seed}", str(seed))
            st = load_checkpoint(Path(path))
            if st.get("run_id") != cfg.run_id:
                say(f"note: {path} is of run {st.get('run_id')}, not {cfg.run_id} (this config's)")
        else:
            st = offline_checkpoint(cfg, store, args.sweep)
        parts = load_post_offline(cfg, st)
        m = parts.method
        eval_seeds = list(parts.task.eval_seeds if cfg.eval.seed_set == "report" else TUNE_EVAL_SEEDS)
        eval_seeds = eval_seeds[: cfg.eval.episodes]
        n = args.samples or int(m.cfg.planner.samples)
        results[seed] = {}
        for r, actor in rung_actors(m, parts.task, rungs, n).items():
            res = evaluate(parts.task, actor, eval_seeds, m.device)
            results[seed][r] = res
            say(f"seed {seed} rung {r} ({RUNGS[r]}): {np.mean(res['scores']):.1f} "
                f"(mean length {np.mean(res['lengths']):.0f}, {res['wall_s']:.0f} s)")
    checks = cross_check(store, args.sweep, {s: modip_config(task_name, s, budget).run_id for s in seeds}, results)
    report(results, cfg, task_name, seeds, args.samples or int(cfg.section.planner.samples), checks)
    if tmp is not None:
        tmp.cleanup()
    return 0


def cross_check(store: Path, sweep: str, run_ids: dict[int, str], results: dict[int, dict[str, dict]]) -> list[str]:
    """Rungs 1, 4 and 4b are MODIP's own actors on the weights its run has at env step 0: where the store holds that
    run (the same run id) in another sweep (e.g. diag-hopper), a line with its step-0 scores beside them."""
    from results.store import Store

    root = store / "table=curves"
    sweeps = sorted(p.name.split("=", 1)[1] for p in root.glob("sweep=*")) if root.exists() else []
    lines = []
    for other in (x for x in sweeps if x != sweep):
        c = Store(store).curves(sweep=other, run_ids=list(run_ids.values()))
        if not len(c):
            continue
        c = c[(c.metric == "normalized_score") & (c.env_step == 0) & (c.actor != "")]
        for seed, rid in run_ids.items():
            mine = c[c.run_id == rid]
            if not len(mine):
                continue
            theirs = ", ".join(f"{a} {v:.1f}" for a, v in zip(mine.actor, mine.value))
            here = {r: np.mean(results[seed][r]["scores"]) for r in ("1", "4", "4b") if r in results[seed]}
            lines.append(f"cross-check, seed {seed}: run {rid} in sweep '{other}' at env step 0: {theirs}; here: "
                         + ", ".join(f"rung {r} {v:.1f}" for r, v in here.items()))
    return lines


def make_demo_dataset(root: Path) -> None:
    """For --smoke: the demo dataset where MINARI_DATASETS_PATH has one (a test's), else one made in a temp dir
    at a tiny budget (as benchmarks/restructure_check.py makes it)."""
    from bench.data import DatasetError
    from bench.data.d4rl import make_dataset
    from bench.data.loaders import load_dataset
    from bench.tasks.demo import DEMO_DATASET

    try:
        load_dataset(DEMO_DATASET)
        return
    except DatasetError:
        pass
    os.environ["MINARI_DATASETS_PATH"] = str(root)
    make_dataset(DEMO_DATASET, root=root, agent_steps=2000, dataset_size=1500, progress=False)


def report(results: dict[int, dict[str, dict]], cfg, task: str, seeds: list[int], n: int,
           checks: list[str] = ()) -> None:
    from analysis.stats import mean_ci

    p = cfg.section.planner
    present = [r for r in RUNGS if all(r in results[s] for s in seeds)]
    ladder = [r for r in LADDER if r in present]
    print(f"# MODIP's planner rung by rung on {task}, seeds {seeds} (tuning; eval seed set {cfg.eval.seed_set}, "
          f"{cfg.eval.episodes} episodes), post-offline checkpoint ({cfg.pretrain.steps} offline steps)")
    print(f"settings: sweeps/diag-hopper.yaml, MODIP preset '{cfg.preset}': planner H={p.horizon}, samples "
          f"{p.samples}, elites {p.elites}, iterations {p.iterations}, pi_trajectories {p.pi_trajectories}, "
          f"replan_every {p.replan_every}, terminal {p.terminal}, proposals sampled with "
          f"'{p.dp_sampler or cfg.dp.eval_sampler}'; DP eval sampler '{cfg.dp.eval_sampler}'; N (rungs 2-3) = {n}")

    def flat(r: str, key: str = "scores") -> np.ndarray:
        return np.concatenate([np.asarray(results[s][r][key], float) for s in seeds])

    print("\n| rung | what | score (mean ± 95% CI) | " + " | ".join(f"seed {s}" for s in seeds)
          + " | change from previous rung (paired) | mean length | eval s |")
    print("|---|---|---|" + "---|" * len(seeds) + "---|---|---|")
    prev, first_below = None, None
    for r in present:
        mu, half, _ = mean_ci(flat(r))
        per_seed = " | ".join(f"{np.mean(results[s][r]['scores']):.1f}" for s in seeds)
        ref = prev if r in ladder else "3"
        change = "-"
        if ref is not None and ref in present and ref != r:
            d, dh, _ = mean_ci(flat(r) - flat(ref))
            change = f"{d:+.1f} ± {dh:.1f} (vs {ref})"
            if r in ladder and first_below is None and d < 0:
                first_below = (r, ref, float(flat(ref).mean()), mu, d, dh)
        wall = sum(results[s][r]["wall_s"] for s in seeds)
        print(f"| {r} | {RUNGS[r]} | {mu:.1f} ± {half:.1f} | {per_seed} | {change} | {flat(r, 'lengths').mean():.0f} "
              f"| {wall:.0f} |")
        if r in ladder:
            prev = r
    for s in seeds:
        eps = len(results[s][present[0]]["scores"]) if present else 0
        print(f"\n## seed {s}: normalised score per eval episode")
        print("| rung | " + " | ".join(f"ep {i + 1}" for i in range(eps)) + " |")
        print("|---|" + "---|" * eps)
        for r in present:
            print(f"| {r} | " + " | ".join(f"{x:.1f}" for x in results[s][r]["scores"]) + " |")
    if checks:
        print("\n" + "\n".join(checks))
    summary = ", ".join(f"{r} {flat(r).mean():.1f}" for r in ladder)
    if first_below is None:
        tail = "no rung falls below the one before it"
    else:
        r, ref, before, after, d, dh = first_below
        sig = "CI excludes 0" if d + dh < 0 else "CI includes 0"
        tail = (f"first rung below the one before: {r} ({RUNGS[r]}), {before:.1f} -> {after:.1f} "
                f"(paired {d:+.1f} ± {dh:.1f}, {sig})")
    print(f"modip_rungs: {task} seeds {','.join(map(str, seeds))}: {summary}; {tail}")


if __name__ == "__main__":
    sys.exit(main())
