"""The method interface and the method registry.

Why: the harness owns the env loop, evaluation, timing, checkpoints and storage; a method owns only its
networks and updates. Every method implements this contract, declared here on `Method` (each hook with a type
and a one-line docstring, the required ones abstract), and the harness calls it, never the reverse. Nothing
here imports from `bench/`.

Contract, in the order the runner uses it:
  m = cls(cfg, MethodContext(spaces, normalizer, dp_cfg, device, seed, common_start))
  m.attach_buffer(buffer)                      # offline data (+ online data as it arrives)
  m.load_pretrained_dp(state)                  # uses_pretrained_dp: the common-start DP
  m.pretrain_step(m.pretrain_batch()) -> dict  # pretrains_offline: N offline updates
  chunk = m.act(obs, actor, state, eval_mode)  # (B, Ta, act_dim) env actions; the harness executes the chunk
  m.observe(transition); m.finetune_step()     # RolloutKind.OFF_POLICY
  m.observe_episode(episode)                   # a finished training episode's arrays, in one call
  m.act_rollout(obs, state); m.update_rollout(rollout)  # RolloutKind.ON_POLICY
  m.timed_components() -> {name: TimedComponent}
  m.state_dict() / m.load_state_dict()
"""
from __future__ import annotations

import abc
import dataclasses
import difflib
import enum
from collections.abc import Callable
from typing import Any, ClassVar

import numpy as np
import torch

from methods.common.normalize import Normalizer
from methods.common.replay import ReplayBuffer
from methods.common.section import Section


class MethodError(ValueError):
    pass


@dataclasses.dataclass
class TaskSpaces:
    """What a method may know about a task: its spaces and protocol constants, never the env itself."""

    obs_dim: int
    act_dim: int
    act_low: np.ndarray
    act_high: np.ndarray
    max_episode_steps: int
    gamma: float = 0.99
    chunk: int = 4
    reward_scale: float = 1.0


@dataclasses.dataclass
class ActorState:
    """Per-actor mutable state owned by the harness: one for training, a fresh one per eval episode batch.

    Evaluating never touches the training ActorState, so warm starts and chunk queues used by training are
    never disturbed by evaluation. `generator` is the actor's own RNG stream.
    """

    generator: torch.Generator
    memory: dict[str, Any] = dataclasses.field(default_factory=dict)
    # Extras a method wants stored with the transitions of the chunk it just returned: per decision (with the
    # chunk's first transition, e.g. a plan's predicted reward), or per executed action for the names in
    # `Method.per_action_extras()` (shaped (B, chunk, ...), e.g. MODIP's noise-free planned actions).
    extras: dict[str, np.ndarray] = dataclasses.field(default_factory=dict)

    def reset(self, env_index: int | None = None) -> None:
        """Episode boundary: forget warm starts (all envs, or one env of a batch)."""
        if env_index is None:
            self.memory.clear()
        else:
            self.memory.setdefault("reset_envs", set()).add(env_index)

    @classmethod
    def create(cls, seed: int, device: str | torch.device = "cpu") -> ActorState:
        g = torch.Generator(device=torch.device(device))
        g.manual_seed(int(seed))
        return cls(generator=g)


class RolloutKind(str, enum.Enum):
    """Which online loop the harness runs for a method."""

    OFF_POLICY = "off_policy"  # observe()/finetune_step() after every env step
    ON_POLICY = "on_policy"  # whole vector-env rollouts: act_rollout()/update_rollout()
    NONE = "none"  # no online phase (BC): the online curve is flat


class ComponentKind(str, enum.Enum):
    """What a timed component measures: an action, a plan, or a training update."""

    ACT = "act"
    PLAN = "plan"
    UPDATE = "update"


@dataclasses.dataclass(frozen=True)
class TimedComponent:
    """A zero-argument closure the timing harness measures, with what analysis needs to compare it fairly."""

    fn: Callable[[], Any]
    kind: ComponentKind
    actor: str = ""  # the actor an act or plan serves ("" for updates)
    actions_per_call: int = 1  # env actions one call yields (a DP chunk's executed actions, replan_every)
    updates_per_env_step: float | None = None  # for updates: how many the method makes per env step

    def __call__(self) -> Any:
        return self.fn()


@dataclasses.dataclass
class MethodContext:
    """Everything a method is built from, apart from its own config section."""

    spaces: TaskSpaces
    normalizer: Normalizer
    dp_cfg: Any = None  # methods.common.diffusion.DPConfig for methods with uses_dp, else None
    device: torch.device = dataclasses.field(default_factory=lambda: torch.device("cpu"))
    seed: int = 0
    common_start: Any = None  # methods.common.common_start.CommonStartConfig where the method starts from it

    def __post_init__(self) -> None:
        self.device = torch.device(self.device)


class Method(abc.ABC):
    """Base of every method. A subclass sets `Config`, declares the class attributes below that differ from
    the defaults, and implements the abstract hooks plus those of its rollout kind."""

    name: ClassVar[str] = "base"
    """The registry name (set by @register)."""
    Config: ClassVar[type] = Section
    """The model of the method's config section (a Section, in the method's torch-free config.py)."""
    rollout_kind: ClassVar[RolloutKind] = RolloutKind.OFF_POLICY
    """Which online loop the harness runs (off-policy: observe/finetune_step; on-policy: rollouts; none)."""
    actors: ClassVar[tuple[str, ...]] = ("policy",)
    """The actors the harness evaluates, in order; the first is the method's headline actor."""
    train_actor: ClassVar[str] = ""
    """The actor that collects training data in the off-policy loop ("" = the first of `actors`)."""
    uses_dp: ClassVar[bool] = False
    """Whether the method is built on the shared diffusion policy (it then has a `dp` config section)."""
    uses_pretrained_dp: ClassVar[bool] = False
    """Whether the method starts from the common-start DP (the harness builds, caches and hands it over)."""
    common_start_is_product: ClassVar[bool] = False
    """Whether the common start's training is this method's own pretraining (bc_dp): its curve and grad steps."""
    pretrains_offline: ClassVar[bool] = True
    """Whether the harness runs `pretrain.steps` pretrain_step calls (False: e.g. DPPO goes online at once)."""
    presets: ClassVar[dict[str, dict[str, Any]]] = {}
    """Labelled config presets by name (e.g. "demo", "test"), each a nested dict of sections."""
    suite_defaults: ClassVar[dict[str, dict[str, Any]]] = {}
    """Method-section defaults per task suite, applied under presets and user overrides."""

    def __init_subclass__(cls, **kw) -> None:
        super().__init_subclass__(**kw)
        cls.rollout_kind = RolloutKind(cls.rollout_kind)
        if "train_actor" not in cls.__dict__ and cls.train_actor not in cls.actors:
            cls.train_actor = cls.actors[0]  # "" or inherited from a base with other actors

    def __init__(self, cfg, ctx: MethodContext):
        self.cfg = cfg
        self.ctx = ctx
        self.spaces = ctx.spaces
        self.normalizer = ctx.normalizer.to(ctx.device)
        self.device = torch.device(ctx.device)
        self.seed = int(ctx.seed)
        self.generator = torch.Generator(device="cpu")
        self.generator.manual_seed(self.seed)
        self.buffer: ReplayBuffer | None = None
        self.grad_steps = 0

    # ---- data -------------------------------------------------------------------------------------------
    def attach_buffer(self, buffer: ReplayBuffer) -> None:
        """Receive the replay buffer (offline data loaded; the harness appends online data)."""
        self.buffer = buffer

    def buffer_extras(self) -> dict[str, tuple[int, ...]]:
        """Extra per-transition fields this method stores in the replay buffer (name -> shape)."""
        return {}

    def per_action_extras(self) -> tuple[str, ...]:
        """The extras that `act` gives per executed action, (B, chunk, *shape); the others are per decision and
        are stored with the decision's first transition."""
        return ()

    def pretrain_batch_size(self) -> int:
        """The batch size of the default pretrain batch."""
        return int(getattr(self.cfg, "batch_size", 256))

    def pretrain_batch(self) -> dict[str, torch.Tensor] | None:
        """The batch for one pretrain step; default: uniform offline transitions."""
        assert self.buffer is not None
        return self.buffer.sample(self.pretrain_batch_size(), source="offline", device=self.device)

    # ---- updates ----------------------------------------------------------------------------------------
    def pretrain_step(self, batch: dict[str, torch.Tensor] | None) -> dict[str, float]:
        """One offline update (required where `pretrains_offline`)."""
        raise NotImplementedError(f"{self.name} declares pretrains_offline but has no pretrain_step")

    def end_pretrain(self) -> None:
        """Called once after the offline phase (e.g. to snapshot EMA weights)."""

    def observe(self, transition: dict[str, Any]) -> None:
        """One env transition of the training env (already stored in the buffer by the harness)."""

    def observe_episode(self, episode: dict[str, np.ndarray]) -> None:
        """A finished training episode's arrays (obs, action, reward, next_obs, terminal, timeout), in one call."""

    def updates_due(self, env_step: int) -> int:
        """How many finetune_step calls the harness should make now (after an env step)."""
        return 0

    def finetune_step(self) -> dict[str, float]:
        """One online update from the replay buffer (off-policy methods)."""
        return {}

    # ---- on-policy (RolloutKind.ON_POLICY); the runner's loop is bench/runner/on_policy.py -----------------
    def rollout_size(self) -> tuple[int, int]:
        """(n_envs, n_steps): vector envs, and chunk decisions per env in one rollout."""
        raise NotImplementedError(f"{self.name} is on-policy but has no rollout_size")

    def act_rollout(self, obs: np.ndarray, state: ActorState) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """obs (n_envs, obs_dim) -> (chunks (n_envs, Ta, act_dim) env actions, per-env arrays to keep with
        the decision in the rollout, e.g. DPPO's denoising chains)."""
        raise NotImplementedError(f"{self.name} is on-policy but has no act_rollout")

    def update_rollout(self, rollout: dict[str, Any]) -> dict[str, float]:
        """One on-policy update from a rollout (arrays shaped (n_steps, n_envs, ...)); see on_policy.py."""
        raise NotImplementedError(f"{self.name} is on-policy but has no update_rollout")

    def decision_length(self) -> int:
        """Env actions one decision executes in the on-policy loop's chunk steps (the task's chunk by default)."""
        return int(self.spaces.chunk)

    # ---- acting -----------------------------------------------------------------------------------------
    @abc.abstractmethod
    def act(self, obs: np.ndarray, actor: str, state: ActorState, eval_mode: bool) -> np.ndarray:
        """obs (B, obs_dim) -> a chunk (B, Ta, act_dim) of env actions that the harness executes in order."""

    def load_pretrained_dp(self, dp_state: dict[str, Any]) -> None:
        """Take the common-start DP (required where `uses_pretrained_dp`)."""
        raise NotImplementedError(f"{self.name} declares uses_pretrained_dp but has no load_pretrained_dp")

    # ---- timing -----------------------------------------------------------------------------------------
    @abc.abstractmethod
    def timed_components(self, batch_size: int = 1) -> dict[str, TimedComponent]:
        """The components the timing harness measures at this batch size, each with its metadata."""

    def compiled_components(self, batch_size: int = 1, mode: str = "default") -> dict[str, Callable[[], Any]] | None:
        """Optional: the method's own compiled or CUDA-graphed versions of some act-path timed components (same
        names, same outputs from the same RNG state), compiled lazily on their first call so that the timing
        harness can time the compile. None (default): the harness wraps each act path in torch.compile itself.
        Either way `mbench time --compile` checks them against the eager closures (bench/timing)."""
        return None

    def cost_settings(self) -> dict[str, Any]:
        """Settings that drive inference cost (horizon, samples, iterations, denoising_steps, terminal)."""
        return {}

    def actor_sampling(self) -> dict[str, str]:
        """Actors exempt from the harness's one sampling rule (every DP method samples its DP through
        `eval.sampler`), each with how it samples instead; the run records it and the report lists it. Empty
        (default): every actor follows the rule."""
        return {}

    # ---- checkpoints ------------------------------------------------------------------------------------
    @abc.abstractmethod
    def modules(self) -> dict[str, torch.nn.Module | torch.optim.Optimizer]:
        """Every network and optimiser, by name; state_dict/load_state_dict use it."""

    def extra_state(self) -> dict[str, Any]:
        """Non-module state to checkpoint (counters, scalers), as plain values or tensors."""
        return {}

    def load_extra_state(self, state: dict[str, Any]) -> None:
        """Restore what extra_state returned."""

    def state_dict(self) -> dict[str, Any]:
        """Everything needed for a resumed run to continue exactly."""
        return {
            "modules": {k: v.state_dict() for k, v in self.modules().items()},
            "generator": self.generator.get_state(),
            "grad_steps": self.grad_steps,
            "extra": self.extra_state(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore a state_dict()."""
        mods = self.modules()
        for k, v in state["modules"].items():
            mods[k].load_state_dict(v)
        self.generator.set_state(state["generator"])
        self.grad_steps = int(state["grad_steps"])
        self.load_extra_state(state.get("extra", {}))

    def parameter_counts(self) -> dict[str, int]:
        """Parameters per network, for provenance."""
        return {k: sum(p.numel() for p in m.parameters()) for k, m in self.modules().items()
                if isinstance(m, torch.nn.Module)}


def contract_violations(cls: type[Method]) -> list[str]:
    """What a registered method class leaves undefined of the contract (empty: it is complete)."""
    out = [f"abstract hook '{h}' is not implemented" for h in sorted(getattr(cls, "__abstractmethods__", ()))]
    if not isinstance(cls.rollout_kind, RolloutKind):
        out.append(f"rollout_kind {cls.rollout_kind!r} is not a RolloutKind")
    if not cls.actors or not all(isinstance(a, str) and a for a in cls.actors):
        out.append("actors must be a non-empty tuple of names")
    if cls.train_actor not in cls.actors:
        out.append(f"train_actor '{cls.train_actor}' is not one of its actors {cls.actors}")
    if not (isinstance(cls.Config, type) and issubclass(cls.Config, Section)):
        out.append("Config must be a Section (methods/common/section.py)")
    need: list[tuple[str, bool]] = [
        ("pretrain_step", cls.pretrains_offline and not cls.common_start_is_product),
        ("load_pretrained_dp", cls.uses_pretrained_dp),
        ("finetune_step", cls.rollout_kind is RolloutKind.OFF_POLICY),
        ("updates_due", cls.rollout_kind is RolloutKind.OFF_POLICY),
        ("rollout_size", cls.rollout_kind is RolloutKind.ON_POLICY),
        ("act_rollout", cls.rollout_kind is RolloutKind.ON_POLICY),
        ("update_rollout", cls.rollout_kind is RolloutKind.ON_POLICY),
    ]
    for hook, required in need:
        if required and getattr(cls, hook) is getattr(Method, hook):
            out.append(f"hook '{hook}' is required by its declarations but not implemented")
    if cls.common_start_is_product and not cls.uses_pretrained_dp:
        out.append("common_start_is_product needs uses_pretrained_dp")
    if cls.uses_pretrained_dp and not cls.uses_dp:
        out.append("uses_pretrained_dp needs uses_dp")
    for name, p in (cls.presets or {}).items():
        if not isinstance(p, dict):
            out.append(f"preset '{name}' is not a dict of sections")
    return out


_REGISTRY: dict[str, type[Method]] = {}


def register(name: str):
    def deco(cls: type[Method]) -> type[Method]:
        cls.name = name
        _REGISTRY[name] = cls
        return cls

    return deco


def _load_builtin() -> None:
    import importlib

    for mod in ("bc_gauss", "bc_dp", "modip", "dppo", "tdmpc2", "idql", "parl", "dsrl"):
        importlib.import_module(f"methods.{mod}")


def registered_methods() -> dict[str, type[Method]]:
    _load_builtin()
    return dict(_REGISTRY)


def get_method_class(name: str) -> type[Method]:
    _load_builtin()
    if name not in _REGISTRY:
        close = difflib.get_close_matches(name, list(_REGISTRY), n=1, cutoff=0.5)
        hint = f" (did you mean '{close[0]}'?)" if close else f" (known: {', '.join(sorted(_REGISTRY))})"
        raise MethodError(f"unknown method '{name}'{hint}")
    return _REGISTRY[name]
