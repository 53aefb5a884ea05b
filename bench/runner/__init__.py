"""The runner: one run, end to end (pretrain offline -> fine-tune online -> eval on a fixed grid -> store).

Why: the harness owns the loop, evaluation, timing, checkpoints and storage so that every method obeys the
same protocol (DESIGN.md, "Protocol rules"):
- env steps count every `env.step` of the training env, a chunk counts its length; eval happens at the first
  chunk boundary at or after each grid step and records the actual env_step;
- evaluation uses its own envs, the task's fixed eval seeds and its own RNG stream, and a fresh ActorState, so
  it never disturbs training (warm starts, chunk queues, RNG);
- TD targets see `terminal` and `timeout` apart (the buffer keeps both);
- bc_dp, dppo and modip start from the same cached bc_dp checkpoint (EMA weights and normalisers);
- checkpoints are atomic, taken at episode boundaries (off-policy) or rollout boundaries (on-policy), and hold
  everything needed for a resumed run's curve to equal an uninterrupted one on the CPU.
"""
from __future__ import annotations

import contextlib
import dataclasses
import datetime as _dt
import json
import os
import platform
import random
import socket
import subprocess
import time
import traceback
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from bench.runner.config import ConfigError, method_config, resolve_config, run_id_of  # noqa: F401
from methods.base import ActorState, Method, TaskSpaces
from methods.common.normalize import Normalizer
from methods.common.replay import ReplayBuffer

CHECKPOINT_VERSION = 1


class Preempted(RuntimeError):
    """Raised after a stop request: the run saved a checkpoint and recorded status=preempted."""


_STOP_REQUESTED = False
_STOP_AT: dict[str, int | None] = {"grad_step": None, "env_step": None}


def request_stop() -> None:
    """Ask the active run to checkpoint at its next safe point and raise Preempted (for submitit/SIGTERM)."""
    global _STOP_REQUESTED
    _STOP_REQUESTED = True


def request_stop_at(grad_step: int | None = None, env_step: int | None = None) -> None:
    """Stop at the first safe point at or after these counters (tests of resume, and `--stop-at`)."""
    _STOP_AT.update(grad_step=grad_step, env_step=env_step)


def _clear_stop() -> None:
    global _STOP_REQUESTED
    _STOP_REQUESTED = False


# ---- provenance ---------------------------------------------------------------------------------------------
def git_state() -> tuple[str, bool]:
    root = Path(__file__).resolve().parents[2]
    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True,
                             timeout=10).stdout.strip() or "unknown"
        dirty = bool(subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root,
                                    capture_output=True, text=True, timeout=10).stdout.strip())
    except (OSError, subprocess.SubprocessError):
        sha, dirty = "unknown", False
    return sha, dirty


def package_versions() -> dict[str, str]:
    from importlib import metadata

    out = {"python": platform.python_version()}
    for pkg in ("torch", "numpy", "gymnasium", "mujoco", "minari", "gymnasium-robotics", "robosuite", "pandas"):
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            pass
    return out


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


# ---- checkpoints --------------------------------------------------------------------------------------------
def atomic_torch_save(obj: Any, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def load_checkpoint(path: Path) -> dict[str, Any]:
    return torch.load(path, map_location="cpu", weights_only=True)


def _rng_states() -> dict[str, Any]:
    np_state = np.random.get_state()
    return {"torch": torch.get_rng_state(), "numpy": [np_state[0], torch.from_numpy(np_state[1].astype(np.int64)),
                                                      int(np_state[2]), int(np_state[3]), float(np_state[4])],
            "python": json.dumps(random.getstate())}


def _set_rng_states(st: dict[str, Any]) -> None:
    torch.set_rng_state(st["torch"])
    n = st["numpy"]
    np.random.set_state((n[0], n[1].numpy().astype(np.uint32), n[2], n[3], n[4]))
    py = json.loads(st["python"])
    random.setstate((py[0], tuple(py[1]), py[2]))


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % (2 ** 32))
    torch.manual_seed(seed)


# ---- the pretrained DP shared by bc_dp, dppo and modip (the common start) -----------------------------------
def pretrained_dp_key(cfg: dict[str, Any], dataset_hash: str) -> str:
    import hashlib

    keyed = {"task": cfg["task"], "dataset": dataset_hash, "dp": {k: v for k, v in cfg["dp"].items()
                                                                    if k not in ("eval_sampler", "sampler")},
             "steps": cfg["pretrain"]["steps"], "seed": cfg["seed"], "reward_scale": cfg["reward_scale"],
             "bc": cfg.get("bc_dp_batch", 256)}
    return hashlib.sha256(json.dumps(keyed, sort_keys=True).encode()).hexdigest()[:16]


# ---- the run ------------------------------------------------------------------------------------------------
@dataclasses.dataclass
class RunContext:
    cfg: dict[str, Any]
    run_id: str
    sweep_id: str
    store_root: Path
    ckpt_dir: Path
    progress: bool
    # Called once after setup and resume, before the first training step: on_start(run, resumed).
    on_start: Callable[["Run", bool], None] | None = None


class Run:
    """One run. `execute()` drives it; every piece of mutable progress lives in `self.counters`/`self.curve`."""

    def __init__(self, ctx: RunContext):
        self.ctx = ctx
        self.cfg = cfg = ctx.cfg
        from bench.tasks import get_task

        self.task = get_task(cfg["task"])
        self.cls, self.mcfg, self.dp_cfg = method_config(cfg)
        self.device = torch.device(cfg["device"])
        self.curve: list[dict[str, Any]] = []
        self.counters = {"phase": "pretrain", "grad_step": 0, "env_step": 0, "episode": 0, "next_eval": 0,
                         "last_ckpt_env_step": 0, "wall_s": 0.0, "attempt": 1, "pretrain_done": False}
        self._t0 = time.perf_counter()
        self._wall_before = 0.0

    # ---- setup ----
    def setup(self) -> None:
        from bench.data.loaders import load_dataset

        cfg = self.cfg
        torch.set_num_threads(int(cfg["threads"]))
        if cfg["deterministic"]:
            torch.use_deterministic_algorithms(True, warn_only=True)
        seed_everything(cfg["seed"])
        source = cfg["dataset_path"] or self.task.dataset_id
        self.task = self.task.for_dataset(source)  # e.g. robomimic: the env comes from the dataset's env_args
        env = self.task.make_env()
        obs_dim = int(np.prod(env.observation_space.shape))
        act_dim = int(np.prod(env.action_space.shape))
        self.act_low = np.asarray(env.action_space.low, np.float32).reshape(-1)
        self.act_high = np.asarray(env.action_space.high, np.float32).reshape(-1)
        env.close()
        self.dataset = load_dataset(source, obs_dim=obs_dim, act_dim=act_dim)
        self.dataset_hash = self.dataset.content_hash()
        if self.task.ref_min is None and self.dataset.ref_min is not None:
            self.task = self.task.with_refs(self.dataset.ref_min, self.dataset.ref_max,
                                            "measured when the dataset was made (dataset metadata)")
        self.spaces = TaskSpaces(obs_dim=obs_dim, act_dim=act_dim, act_low=self.act_low, act_high=self.act_high,
                                 max_episode_steps=self.task.max_episode_steps, gamma=self.task.gamma,
                                 chunk=self.task.chunk, reward_scale=float(cfg["reward_scale"]))
        self.normalizer = Normalizer.fit(self.dataset.observations, self.act_low, self.act_high)
        self.method: Method = self.cls(self.mcfg, self.spaces, self.normalizer, device=self.device,
                                       seed=cfg["seed"], dp_cfg=self.dp_cfg)
        self.buffer = ReplayBuffer(obs_dim, act_dim, extras=self.method.buffer_extras(), seed=cfg["seed"],
                                   capacity=len(self.dataset) + 1024)
        d = self.dataset
        self.buffer.add_offline(d.observations, d.actions, d.rewards * float(cfg["reward_scale"]),
                                d.next_observations, d.terminals, d.timeouts)
        self.method.attach_buffer(self.buffer)
        self.train_state = ActorState.create(cfg["seed"] * 7919 + 1, self.device)
        self.eval_seeds = list(self.task.eval_seeds if cfg["eval"]["seed_set"] == "report"
                               else __import__("bench.tasks", fromlist=["TUNE_EVAL_SEEDS"]).TUNE_EVAL_SEEDS)
        n_eval = int(cfg["eval"]["episodes"])
        if n_eval > len(self.eval_seeds):
            raise ConfigError(f"config key 'eval.episodes'={n_eval} exceeds the task's {len(self.eval_seeds)} eval seeds")
        self.eval_seeds = self.eval_seeds[:n_eval]

    # ---- store rows ----
    def run_row(self, status: str, error: str = "") -> dict[str, Any]:
        sha, dirty = git_state()
        cfg = self.cfg
        params = self.method.parameter_counts() if hasattr(self, "method") else {}
        ds = getattr(self, "dataset", None)
        return {
            "run_id": self.ctx.run_id, "sweep_id": self.ctx.sweep_id, "method": cfg["method"],
            "variant": cfg["variant"], "suite": self.task.suite, "task": cfg["task"],
            "dataset": cfg["dataset_path"] or self.task.dataset_id, "seed": int(cfg["seed"]),
            "config_json": json.dumps(cfg, sort_keys=True), "status": status, "error": error,
            "git_sha": sha, "git_dirty": dirty, "host": socket.gethostname(), "device": str(self.device),
            "versions": json.dumps(package_versions()),
            "provenance_json": json.dumps({
                "dataset_hash": getattr(self, "dataset_hash", ""),
                "dataset_provenance": ds.provenance if ds is not None else {},
                "env_id": self.task.env_id, "ref_min": self.task.ref_min, "ref_max": self.task.ref_max,
                "ref_source": self.task.ref_source, "torch_threads": torch.get_num_threads(),
                "parameter_counts": params, "seeds": {"run": int(cfg["seed"]), "eval": self.eval_seeds
                                                      if hasattr(self, "eval_seeds") else []},
            }, default=str),
            "started_at": self.started_at, "finished_at": _now() if status in ("finished", "failed") else None,
            "wall_s": float(self.counters["wall_s"] + (time.perf_counter() - self._t0)),
            "env_steps": int(self.counters["env_step"]), "grad_steps": int(self.counters["grad_step"]),
            "attempt": int(self.counters["attempt"]),
        }

    def _wall(self) -> float:
        return self._wall_before + (time.perf_counter() - self._t0)

    def log(self, phase: str, metrics: dict[str, float], actor: str = "", n_episodes: int = 0) -> None:
        for k, v in metrics.items():
            if v is None or not np.isfinite(v):
                if k.startswith("loss"):
                    raise FloatingPointError(f"non-finite {k} at grad step {self.counters['grad_step']}")
                continue
            self.curve.append({"run_id": self.ctx.run_id, "phase": phase, "env_step": int(self.counters["env_step"]),
                               "grad_step": int(self.counters["grad_step"]), "wall_s": float(self._wall()),
                               "actor": actor, "metric": k, "value": float(v), "n_episodes": int(n_episodes)})

    # ---- checkpoints ----
    @property
    def ckpt_path(self) -> Path:
        return self.ctx.ckpt_dir / "last.pt"

    def save_checkpoint(self) -> None:
        self.counters["wall_s"] = self._wall()
        state = {
            "version": CHECKPOINT_VERSION, "run_id": self.ctx.run_id, "method": self.method.state_dict(),
            "buffer": self.buffer.state_dict(), "normalizer": self.normalizer.state_dict(),
            "train_state": {"generator": self.train_state.generator.get_state(),
                            "memory": json.dumps(_plain(self.train_state.memory))},
            "rng": _rng_states(), "counters": json.dumps(self.counters), "curve": json.dumps(self.curve),
        }
        atomic_torch_save(state, self.ckpt_path)
        self.counters["last_ckpt_env_step"] = self.counters["env_step"]

    def try_resume(self) -> bool:
        if not self.ckpt_path.exists():
            return False
        st = load_checkpoint(self.ckpt_path)
        if st.get("run_id") != self.ctx.run_id or st.get("version") != CHECKPOINT_VERSION:
            return False
        self.method.load_state_dict(st["method"])
        self.buffer.load_state_dict(st["buffer"])
        self.normalizer.load_state_dict(st["normalizer"])
        self.train_state.generator.set_state(st["train_state"]["generator"])
        self.train_state.memory = json.loads(st["train_state"]["memory"])
        _set_rng_states(st["rng"])
        counters = json.loads(st["counters"])
        counters["attempt"] = int(counters.get("attempt", 1)) + 1
        self.counters = counters
        self._wall_before = float(counters["wall_s"])
        self._t0 = time.perf_counter()
        self.curve = json.loads(st["curve"])
        return True

    def _maybe_stop(self) -> None:
        at_g, at_e = _STOP_AT["grad_step"], _STOP_AT["env_step"]
        due = (at_g is not None and self.counters["grad_step"] >= at_g) or \
              (at_e is not None and self.counters["env_step"] >= at_e)
        if _STOP_REQUESTED or due:
            _STOP_AT.update(grad_step=None, env_step=None)
            self.save_checkpoint()
            self.write_progress("preempted")
            raise Preempted(f"run {self.ctx.run_id} stopped at env_step {self.counters['env_step']}")

    def write_progress(self, status: str, error: str = "") -> None:
        from results.store import Store

        store = Store(self.ctx.store_root)
        store.write_curves(self.ctx.sweep_id, self.ctx.run_id, self.curve)
        store.write_run(self.run_row(status, error))

    # ---- evaluation ----
    def evaluate(self, phase: str) -> dict[str, dict[str, float]]:
        """Evaluate every actor on the fixed eval seeds, in lockstep envs with a batched actor."""
        out = {}
        for actor in self.method.actors:
            res = evaluate_actor(self.method, self.task, actor, self.eval_seeds, self.device)
            metrics = {"return": res["return"], "normalized_score": res["normalized_score"]}
            if res.get("success") is not None:
                metrics["success"] = res["success"]
            for k, v in res.get("diagnostics", {}).items():
                metrics[k] = v
            self.log(phase, metrics, actor=actor, n_episodes=len(self.eval_seeds))
            out[actor] = metrics
        return out

    # ---- phases ----
    def pretrain(self, bar) -> None:
        cfg = self.cfg
        steps = int(cfg["pretrain"]["steps"])
        if self.method.uses_pretrained_dp or cfg["method"] == "bc_dp":
            if self.counters["grad_step"] == 0 and not self.counters.get("dp_loaded"):
                rng_before = self.buffer.rng.bit_generator.state
                dp_state, dp_curve = obtain_pretrained_dp(self, bar)
                # A cache hit and a cache miss must leave every RNG in the same state.
                self.buffer.rng.bit_generator.state = rng_before
                seed_everything(cfg["seed"] + 1)
                self.method.load_pretrained_dp(dp_state)
                if cfg["method"] == "bc_dp":
                    self.curve.extend(dict(r, run_id=self.ctx.run_id) for r in dp_curve)
                    self.counters["grad_step"] = steps
                self.counters["dp_loaded"] = True
        if cfg["method"] != "bc_dp" and self.method.pretrains_offline:
            acc: dict[str, list[float]] = {}
            log_every = max(1, int(cfg["pretrain"]["log_every"]))
            while self.counters["grad_step"] < steps:
                metrics = self.method.pretrain_step(self.method.pretrain_batch())
                self.counters["grad_step"] += 1
                for k, v in metrics.items():
                    acc.setdefault(k, []).append(v)
                if self.counters["grad_step"] % log_every == 0 or self.counters["grad_step"] == steps:
                    self.log("pretrain", {k: float(np.mean(v)) for k, v in acc.items()})
                    acc = {}
                    if _STOP_REQUESTED:  # a log boundary holds no pending state: safe to stop here
                        self._maybe_stop()
                bar.update(1)
                if self.counters["grad_step"] % int(cfg["pretrain"]["checkpoint_every"]) == 0:
                    self.save_checkpoint()
                    self._maybe_stop()
        self.method.end_pretrain()
        self.counters["pretrain_done"] = True
        self.counters["phase"] = "finetune"
        self.evaluate("pretrain")
        self.counters["next_eval"] = int(cfg["eval"]["every"])
        self.save_checkpoint()
        self.write_progress("running")
        self._maybe_stop()

    def online_off_policy(self, bar) -> None:
        cfg = self.cfg
        total = int(cfg["online"]["steps"])
        if total <= 0 or self.method.rollout_kind == "none":
            return
        env = self.task.make_env()
        train_actor = getattr(self.method, "train_actor", self.method.actors[0])
        acc: dict[str, list[float]] = {}
        log_every = max(1, int(cfg["online"]["log_every"]))
        last_log = self.counters["env_step"]
        rs = float(cfg["reward_scale"])
        while self.counters["env_step"] < total:
            ep_seed = episode_seed(cfg["seed"], self.counters["episode"])
            obs, _ = env.reset(seed=ep_seed)
            env.action_space.seed(ep_seed)
            self.train_state.reset()
            ep_return, done = 0.0, False
            while not done and self.counters["env_step"] < total:
                chunk = self.method.act(obs[None].astype(np.float32), train_actor, self.train_state, False)[0]
                extras = {k: v[0] for k, v in self.train_state.extras.items()}
                self.train_state.extras = {}
                for i, action in enumerate(chunk):
                    nobs, reward, term, trunc, info = env.step(action)
                    tr = {"obs": obs, "action": action, "reward": float(reward) * rs, "next_obs": nobs,
                          "terminal": bool(term), "timeout": bool(trunc and not term), "info": info}
                    if i == 0:
                        tr.update(extras)
                    self.buffer.add(tr)
                    self.method.observe(tr)
                    self.counters["env_step"] += 1
                    bar.update(1)
                    ep_return += float(reward)
                    obs = nobs
                    for _ in range(self.method.updates_due(self.counters["env_step"])):
                        m = self.method.finetune_step()
                        self.counters["grad_step"] += 1
                        for k, v in m.items():
                            acc.setdefault(k, []).append(v)
                    done = term or trunc
                    if done or self.counters["env_step"] >= total:
                        break
                if self.counters["env_step"] - last_log >= log_every and acc:
                    self.log("finetune", {k: float(np.mean(v)) for k, v in acc.items()})
                    acc, last_log = {}, self.counters["env_step"]
                if self.counters["env_step"] >= self.counters["next_eval"]:
                    self.evaluate("finetune")
                    every = int(cfg["eval"]["every"])
                    while self.counters["next_eval"] <= self.counters["env_step"]:
                        self.counters["next_eval"] += every
            if done:
                self.counters["episode"] += 1
                self.log("finetune", {"train/return": ep_return})
            if acc:
                self.log("finetune", {k: float(np.mean(v)) for k, v in acc.items()})
                acc, last_log = {}, self.counters["env_step"]
            if self.counters["env_step"] - self.counters["last_ckpt_env_step"] >= int(cfg["online"]["checkpoint_every"]):
                self.save_checkpoint()
                self.write_progress("running")
            self._maybe_stop()
        env.close()

    def online_on_policy(self, bar) -> None:
        from bench.runner.on_policy import run_on_policy

        run_on_policy(self, bar)

    def final(self) -> None:
        cfg = self.cfg
        last_eval = max((r["env_step"] for r in self.curve if r["metric"] == "return" and r["actor"]), default=-1)
        if last_eval < self.counters["env_step"]:
            self.evaluate("finetune" if self.counters["env_step"] > 0 else "pretrain")
        if cfg["eval"]["timing"]:
            self.write_timings()

    def write_timings(self) -> None:
        """Time the method's components at batch 1 and eval.timing_batch (bench/timing) into the store."""
        from bench.timing import time_components
        from results.store import Store

        ev = self.cfg["eval"]
        rows = time_components(self.method, (1, int(ev["timing_batch"])), warmup=2, reps=int(ev["timing_reps"]),
                               device=self.device)
        for row in rows:
            row["run_id"] = self.ctx.run_id
        if rows:
            Store(self.ctx.store_root).write_timings(self.ctx.sweep_id, self.ctx.run_id, rows)

    def execute(self) -> str:
        from tqdm import tqdm

        self.started_at = _now()
        self.setup()
        resumed = self.try_resume()
        if not resumed:
            # A fresh start of a run that was tried before (e.g. --rerun-stale) continues the attempt count,
            # so the store's "latest attempt wins" picks this one.
            self.counters["attempt"] = previous_attempt(self.ctx.store_root, self.ctx.sweep_id, self.ctx.run_id) + 1
        if self.ctx.on_start is not None:
            self.ctx.on_start(self, resumed)
        self.write_progress("running")
        cfg = self.cfg
        disable = not self.ctx.progress
        if not self.counters["pretrain_done"]:
            with tqdm(total=int(cfg["pretrain"]["steps"]), initial=self.counters["grad_step"],
                      desc=f"{cfg['method']} pretrain", disable=disable, leave=False) as bar:
                self.pretrain(bar)
        online_total = int(cfg["online"]["steps"]) if self.method.rollout_kind != "none" else 0
        with tqdm(total=online_total, initial=self.counters["env_step"], desc=f"{cfg['method']} online",
                  disable=disable or online_total == 0, leave=False) as bar:
            if self.method.rollout_kind == "on_policy":
                self.online_on_policy(bar)
            else:
                self.online_off_policy(bar)
        self.final()
        self.counters["wall_s"] = self._wall()
        self.write_progress("finished")
        with contextlib.suppress(OSError):
            self.ckpt_path.unlink()
        del resumed
        return self.ctx.run_id


def previous_attempt(store_root: Path, sweep_id: str, run_id: str) -> int:
    from results.store import Store

    try:
        runs = Store(store_root).runs(sweep=sweep_id, run_ids=[run_id])
    except Exception:  # an empty or unreadable store: no previous attempt
        return 0
    return int(runs.attempt.max()) if len(runs) and runs.attempt.notna().any() else 0


def episode_seed(run_seed: int, episode: int) -> int:
    return int((run_seed * 1_000_003 + episode * 7_919 + 12_345) % (2 ** 31 - 1))


def _plain(x: Any) -> Any:
    if isinstance(x, dict):
        return {str(k): _plain(v) for k, v in x.items()}
    if isinstance(x, (list, tuple, set)):
        return [_plain(v) for v in x]
    if isinstance(x, np.ndarray):
        return x.tolist()
    if isinstance(x, torch.Tensor):
        return x.detach().cpu().tolist()
    if isinstance(x, (np.floating, np.integer)):
        return x.item()
    return x


@torch.no_grad()
def evaluate_actor(method: Method, task, actor: str, eval_seeds: list[int], device) -> dict[str, Any]:
    """Run len(eval_seeds) episodes in lockstep envs; the actor sees a batch of observations.

    A fresh ActorState with its own generator (seeded from the eval seeds) is used, so evaluation is a pure
    function of the method's weights and never touches the training actor state."""
    envs = [task.make_env() for _ in eval_seeds]
    obs = np.stack([env.reset(seed=s)[0] for env, s in zip(envs, eval_seeds)]).astype(np.float32)
    state = ActorState.create(int(eval_seeds[0]) * 31 + 17, device)
    n = len(envs)
    returns = np.zeros(n)
    done = np.zeros(n, bool)
    infos: list[dict] = [{} for _ in range(n)]
    while not done.all():
        chunks = method.act(obs, actor, state, True)
        state.extras = {}
        for t in range(chunks.shape[1]):
            for i, env in enumerate(envs):
                if done[i]:
                    continue
                o, r, term, trunc, info = env.step(chunks[i, t])
                returns[i] += float(r)
                obs[i] = o
                if term or trunc:
                    done[i] = True
                    infos[i] = info
            if done.all():
                break
    for env in envs:
        env.close()
    scores = np.array([task.normalized_score(r, info) for r, info in zip(returns, infos)])
    succ = [info.get("success", info.get("is_success")) for info in infos]
    out = {"return": float(returns.mean()), "normalized_score": float(np.mean(scores)),
           "returns": returns.tolist()}
    if task.success_metric or any(s is not None for s in succ):
        out["success"] = float(np.mean([float(bool(s)) for s in succ]))
    return out


def obtain_pretrained_dp(run: "Run", bar) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The bc_dp checkpoint every DP method of this (task, dataset, dp config, seed) starts from.

    Trained once by a bc_dp with the run's seed and cached under <store>/pretrained/, so bc_dp, dppo and modip
    all start from the same EMA weights and normalisers (their env-step-0 scores are equal)."""
    from methods.base import get_method_class
    from methods.config import from_dict

    cfg = run.cfg
    key = pretrained_dp_key(cfg, run.dataset_hash)
    path = run.ctx.store_root / "pretrained" / f"{key}.pt"
    if path.exists():
        st = load_checkpoint(path)
        return st["dp_state"], json.loads(st["curve"])
    bc_cls = get_method_class("bc_dp")
    seed_everything(cfg["seed"])
    # The run's normaliser (fitted once on the same offline data); the bc_dp only reads it.
    bc = bc_cls(from_dict(bc_cls.Config, {}), run.spaces, run.normalizer, device=run.device, seed=cfg["seed"],
                dp_cfg=run.dp_cfg)
    bc.attach_buffer(run.buffer)
    steps = int(cfg["pretrain"]["steps"])
    log_every = max(1, int(cfg["pretrain"]["log_every"]))
    curve, acc, t0 = [], [], time.perf_counter()
    for step in range(1, steps + 1):
        acc.append(bc.pretrain_step(None)["loss/denoise"])
        if step % log_every == 0 or step == steps:
            curve.append({"run_id": "", "phase": "pretrain", "env_step": 0, "grad_step": step,
                          "wall_s": time.perf_counter() - t0, "actor": "", "metric": "loss/denoise",
                          "value": float(np.mean(acc)), "n_episodes": 0})
            if not np.isfinite(curve[-1]["value"]):
                raise FloatingPointError(f"non-finite loss/denoise at grad step {step}")
            acc = []
        bar.update(1)
    state = bc.export_pretrained_dp()
    atomic_torch_save({"dp_state": state, "curve": json.dumps(curve)}, path)
    return state, curve


def run_one(cfg: dict[str, Any], store_root: str | os.PathLike = "results", sweep_id: str = "adhoc",
            ckpt_dir: str | os.PathLike | None = None, resume: bool = True, progress: bool = True,
            on_start: Callable[["Run", bool], None] | None = None) -> str:
    """Run one resolved config end to end; returns its run_id. Failures are recorded as status=failed."""
    from results.store import Store

    from results.store import validate_name

    validate_name(sweep_id, "sweep")
    rid = run_id_of(cfg)
    store_root = Path(store_root)
    ckpt = Path(ckpt_dir) if ckpt_dir else store_root / "checkpoints" / sweep_id / rid
    if not resume and ckpt.exists():
        for f in ckpt.glob("*.pt"):
            f.unlink()
    run = Run(RunContext(cfg=cfg, run_id=rid, sweep_id=sweep_id, store_root=store_root, ckpt_dir=ckpt,
                         progress=progress, on_start=on_start))
    run.started_at = _now()
    _clear_stop()
    try:
        return run.execute()
    except Preempted:
        raise
    except BaseException as e:  # record, then re-raise: nothing is recorded as a success
        err = f"{type(e).__name__}: {e}".splitlines()[0] if str(e) else type(e).__name__
        try:
            row = run.run_row("failed", err + "\n" + traceback.format_exc())
            Store(store_root).write_run(row)
            if run.curve:
                Store(store_root).write_curves(sweep_id, rid, run.curve)
        except Exception:  # the store itself may be the failure
            pass
        raise


def run(method: str, task: str, seed: int, overrides=None, **kw) -> str:
    return run_one(resolve_config(method, task, seed, overrides), **kw)


__all__ = ["resolve_config", "run_id_of", "run_one", "run", "request_stop", "Preempted", "evaluate_actor",
           "ConfigError", "Callable"]
