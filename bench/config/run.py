"""The run config: the harness's sections, the shared DP's, the common start's and the method's, typed.

Why: one typed config describes a run completely. It is parsed once (bench/config/layers.py) and carried as
this object by `Run`, the loops and the method (which gets its own section, `cfg.section`); the store alone
sees its JSON (`to_json`), whose canonical form (with the seed) hashes into the run id, so relaunching the same
config finds the same run.

JSON layout (what the store keeps, and what the run id hashes):
  method, task, seed, device, threads, deterministic, reward_scale, dataset_path, preset, variant,
  compile_train (id-neutral: left out of the run id while false)
  pretrain: {steps, log_every, checkpoint_every}
  online:   {steps, checkpoint_every, log_every}
  eval:     {every, dense_every, dense_until, episodes, final_episodes, states, sampler, seed_set, timing,
             timing_reps, timing_batch}
  dp:       {...}   for methods built on the shared diffusion policy
  common_start: {...}  for methods that start from the common-start DP
  <method>: {...}   the method's own section (e.g. modip.planner.terminal)

Run-id rule: a key added later at its default value must not change an id. Declare such a key with
`Field(default, json_schema_extra={"id_neutral": True})`: `run_id` leaves it out while it holds its default.
"""
from __future__ import annotations

import hashlib
import json
import re
from typing import Any, Literal

from pydantic import Field

from methods.common.common_start_config import CommonStartConfig
from methods.common.dp_config import DPConfig
from methods.common.section import ConfigError, Section

# The largest run seed: every RNG the run seeds (torch, numpy, the env's, the training actor's) takes it.
MAX_SEED = 2 ** 31 - 1
DEVICE_RE = re.compile(r"^(cpu|mps|cuda(:\d{1,3})?)$")


def check_device_name(name: str, key: str = "config key 'device'") -> None:
    """The spelling of a torch device this harness runs on (cpu, cuda, cuda:N, mps); one line otherwise."""
    if not isinstance(name, str) or not DEVICE_RE.match(name):
        raise ConfigError(f"{key}='{name}' is not a device: use cpu, cuda, cuda:N (N a GPU index) or mps")


def check_device_here(name: str, key: str = "config key 'device'") -> None:
    """Before a run or a timing builds anything: the device exists on this machine (a sweep resolves configs
    elsewhere, so this is not part of resolving)."""
    import torch  # only a run needs torch; reading and checking a config does not

    check_device_name(name, key)
    kind, _, index = name.partition(":")
    if kind == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError(f"{key}='{name}' but CUDA is not available here (torch {torch.__version__}); "
                              "use device=cpu")
        if index and int(index) >= torch.cuda.device_count():
            raise ConfigError(f"{key}='{name}' but this machine has {torch.cuda.device_count()} GPU(s) "
                              f"(cuda:0 to cuda:{torch.cuda.device_count() - 1})")
    if kind == "mps" and not torch.backends.mps.is_available():
        raise ConfigError(f"{key}='{name}' but MPS is not available here (an Apple GPU); use device=cpu")


def _at_least(obj: Section, section: str, **minimum: int) -> None:
    """Each named int field of obj must be >= its minimum; one line naming the key otherwise."""
    for key, lo in minimum.items():
        v = getattr(obj, key)
        if v < lo:
            name = f"{section}.{key}" if section else key
            raise ConfigError(f"config key '{name}' must be >= {lo}, got {v}")


class PretrainConfig(Section):
    steps: int = 20_000  # offline gradient steps of the method's own pretraining
    log_every: int = 250
    checkpoint_every: int = 5_000

    def check(self, prefix: str) -> None:
        _at_least(self, "pretrain", steps=0, log_every=1, checkpoint_every=1)


class OnlineConfig(Section):
    steps: int = 200_000  # env steps
    checkpoint_every: int = 10_000  # env steps; checkpoints land at the next episode boundary
    log_every: int = 1_000

    def check(self, prefix: str) -> None:
        _at_least(self, "online", steps=0, checkpoint_every=1, log_every=1)


class EvalConfig(Section):
    every: int = 10_000  # the env-step grid
    # An optional denser grid early on: every `dense_every` env steps up to `dense_until` (0 = none), where a
    # fine-tuning dip would hide between points of the main grid (MODIP's distillation benchmark).
    dense_every: int = 0
    dense_until: int = 0
    episodes: int = 10  # per eval point (every task suite sets its own: bench/tasks, `eval_defaults`)
    # The last eval of every actor, at the run's end: 0 = `episodes` (D4RL's tasks set 50).
    final_episodes: int = Field(0, json_schema_extra={"id_neutral": True})
    # Which initial states evals start from (bench/tasks/eval_states.py): `per_seed`, a block of its own per run
    # seed, the same for every method (every task suite sets it); or `fixed`, the task's fixed seeds for every run,
    # the protocol of runs recorded before store schema 3 (a stored config without the key reads as fixed, so its
    # run id is unchanged).
    states: Literal["fixed", "per_seed"] = Field("fixed", json_schema_extra={"id_neutral": True})
    sampler: Literal["ddpm", "ddim"] = "ddpm"  # how every DP method samples at eval
    seed_set: Literal["report", "tune"] = "report"  # tune: states no reported run sees (tuning)
    timing: bool = True  # time the method's components at the end of the run
    timing_reps: int = 10
    timing_batch: int = 16

    def check(self, prefix: str) -> None:
        _at_least(self, "eval", every=1, episodes=1, final_episodes=0, timing_reps=1, timing_batch=1, dense_every=0,
                  dense_until=0)
        if self.dense_until > 0 and self.dense_every < 1:
            raise ConfigError(f"config key 'eval.dense_every' must be >= 1 when eval.dense_until > 0 "
                              f"(got {self.dense_every}); set it, or eval.dense_until=0")

    @property
    def last_episodes(self) -> int:
        """Episodes of the run's final eval of every actor."""
        return self.final_episodes or self.episodes

    def grid(self) -> tuple[int, int, int]:
        """(every, dense_every, dense_until): the eval grid's arguments."""
        return self.every, self.dense_every, self.dense_until


class HarnessConfig(Section):
    """The harness's own keys of a run (everything but the dp, common_start and method sections)."""

    method: str = ""
    task: str = ""
    seed: int = 0
    device: str = "cpu"
    threads: int = 1
    deterministic: bool = True
    reward_scale: float = 1.0
    dataset_path: str = ""  # optional raw D4RL / robomimic hdf5 file instead of the task's dataset id
    preset: str = ""  # a labelled method preset (e.g. "demo": small networks, few planner samples)
    variant: str = ""  # a short label for non-default overrides (filled in automatically)
    # torch.compile the fixed-shape training steps that support it (the DP's denoising step, IQL's and MODIP's
    # critic losses; methods/common/compiling.py): equal up to float rounding, faster per step on long runs.
    compile_train: bool = Field(False, json_schema_extra={"id_neutral": True})
    pretrain: PretrainConfig = PretrainConfig()
    online: OnlineConfig = OnlineConfig()
    eval: EvalConfig = EvalConfig()

    def check(self, prefix: str) -> None:
        _at_least(self, "", seed=0, threads=1)
        if self.seed > MAX_SEED:
            raise ConfigError(f"config key 'seed' must be <= {MAX_SEED}, got {self.seed}")
        if not self.reward_scale > 0:
            raise ConfigError(f"config key 'reward_scale' must be a finite number > 0, got {self.reward_scale}")
        check_device_name(self.device)


HARNESS_KEYS = frozenset(HarnessConfig.model_fields)


class RunConfig(HarnessConfig):
    """A resolved run: the harness's keys, plus the sections of the method that runs."""

    dp: DPConfig | None = None  # for methods built on the shared diffusion policy
    common_start: CommonStartConfig | None = None  # for methods that start from the common-start DP
    section: Section = Field(default_factory=Section, exclude=True)  # the method's own section

    def to_json(self) -> dict[str, Any]:
        """The JSON the store keeps (module docstring's layout)."""
        out = self.model_dump(mode="json", exclude={"dp", "common_start", "section"})
        out[self.method] = self.section.model_dump(mode="json")
        for name in ("dp", "common_start"):
            sec = getattr(self, name)
            if sec is not None:
                out[name] = sec.model_dump(mode="json")
        return out

    @property
    def run_id(self) -> str:
        return run_id_of(self)

    def check_device(self) -> None:
        """Before a run does any work: its device exists on this machine (a sweep resolves configs elsewhere)."""
        check_device_here(self.device)


def _drop_neutral(model: Section, data: dict[str, Any]) -> dict[str, Any]:
    """`data` (model's JSON) without the id-neutral keys that hold their defaults, at every depth."""
    out = {}
    for name, value in data.items():
        field = type(model).model_fields.get(name)
        extra = (field.json_schema_extra or {}) if field is not None else {}
        sub = getattr(model, name, None)
        if isinstance(extra, dict) and extra.get("id_neutral") and sub == field.get_default(call_default_factory=True):
            continue
        out[name] = _drop_neutral(sub, value) if isinstance(sub, Section) and isinstance(value, dict) else value
    return out


def canonical_json(cfg: RunConfig) -> str:
    """The id's input: the config's JSON without device and threads (where a run runs, not what it computes)
    and without id-neutral keys at their defaults, keys sorted, no spaces."""
    data = cfg.to_json()
    keyed = {k: v for k, v in _drop_neutral(cfg, data).items() if k not in ("device", "threads", cfg.method)}
    if cfg.method in data:
        keyed[cfg.method] = _drop_neutral(cfg.section, data[cfg.method])
    return json.dumps(keyed, sort_keys=True, separators=(",", ":"))


def run_id_of(cfg: RunConfig) -> str:
    """hash(config, seed): the same resolved config and seed always give the same run id."""
    return hashlib.sha256(canonical_json(cfg).encode()).hexdigest()[:16]
