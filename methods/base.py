"""The method contract, `Method`, and `register`, with which a method puts itself in the registry (methods/registry).

Why: the harness owns the env loop, evaluation, timing, checkpoints and storage; a method owns only its
networks and updates. Nothing here imports from `bench/` or from a method: only methods/common (the config
section at run time, the normaliser and the replay buffer for annotations).

A method, as its author sees it (the templates: methods/bc_gauss for any method, methods/bc_dp for a DP method):

    @register("mine")
    class Mine(Method):                          # or DPMethod (methods/dp_method.py): built on the shared DP
        Config = MineConfig                      # its config section (a Section, in its torch-free config.py,
                                                 #   with its presets and suite defaults as class variables)
        actors = ACTORS                          # what the harness evaluates; the first is the headline

        def __init__(self, cfg, ctx): ...        # build networks from cfg and ctx (MethodContext)
        def act(self, obs, actor, state, eval_mode) -> (actions, extras)
        def pretrain(self, buffer) -> metrics    # optional: one offline update (absent: no offline phase)
        def update(self, buffer, env_step) -> [metrics, ...]   # optional: the online updates due now
        def modules(self) -> {name: module or optimiser}
        def extra_state(self) -> {attribute: value}            # optional: non-module state to checkpoint
        def timed_components(self, batch_size) -> {name: TimedComponent}
        def buffer_extras(self) -> {name: shape}               # optional: what `act` stores with transitions
        def actor_sampling(self) -> {actor: how}               # optional: actors exempt from eval.sampler
        def eval_same_as(self) -> {actor: earlier actor}       # optional: actors that act alike under this config

Its torch-free config.py also declares `ACTORS` (the class's `actors`; the first is the method's product, the
headline), beside them `SELECTION`, each actor's action-selection rule at evaluation (methods/common/selection.py:
DP sample, mean, argmax over samples, noise-free plan; runs record it and reports print it), and `USES_DP` (True
for a DPMethod):
methods/catalog reads them there, with the section, so that the CLI and the config layer know a method without
importing it (and torch); tests/contract checks that every class agrees with its declaration.

The verbs:
- `act(obs (B, obs_dim), actor, state, eval_mode)` returns the env actions to execute, (B, n, act_dim), and a
  dict of extras to store with them. `state` (ActorState) is one batched per-actor state: `generator`, the
  actor's one RNG stream, and `memory`, tensors with a leading env dimension that the harness zeroes for the
  envs that start an episode (`reset(env_ids)`) and clears at a whole reset. In training (collecting data) the
  harness passes `actor=None`: the method acts with whatever collects its data. An extra shaped (B, *shape) of
  its declared `buffer_extras()` shape is stored with the decision's first transition; one shaped
  (B, n, *shape) is stored with each executed action.
- `pretrain(buffer)`: one offline update on the buffer's offline data. The harness calls it `pretrain.steps`
  times and counts one grad step per call.
- `update(buffer, env_step)`: called after every env step of the off-policy loop; it makes the updates that
  are due (none, one or several) and returns one metrics dict per update: the harness counts the grad steps
  from the list. The first call starts the online phase, which is where a method switches learning rates or
  resets moments. Finished episodes are in the buffer (`buffer.last_episode()`).
- On-policy methods subclass `OnPolicy` (methods/on_policy.py) instead of implementing `update`:
  `rollout_size()`, `act_rollout(obs, state)`, `update_rollout(rollout, between)`; `between()` is a safe point to
  call before each gradient step, which raises to abandon the update (the harness restores the method's state:
  methods/on_policy.py).
- `modules()` and `extra_state()` are what a checkpoint holds: every network and optimiser by name, and the
  other state by attribute name (restored onto those attributes: an object with `load_state_dict` gets its
  state, a torch.Generator its RNG state, anything else is assigned).
- `timed_components(batch_size)`: closures the timing harness measures, each with its kind, actor, env
  actions per call, updates per env step and the settings that drive its cost.
What follows from the class, never from a flag: the online loop (on-policy for an OnPolicy; off-policy where
`update` is defined; none otherwise), whether there is an offline phase (`pretrain` defined), whether the
method is built on the shared DP and starts from the common start (a DPMethod), and whether the common start
is the method's own product (a DPMethod with neither `pretrain` nor `update`: bc_dp).
"""
from __future__ import annotations

import abc
import dataclasses
import enum
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
import torch

from methods.common.section import Section

if TYPE_CHECKING:
    from methods.common.normalize import Normalizer
    from methods.common.replay import ReplayBuffer


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
    # The task's termination rule, where it has one (bench/tasks/termination.py: MuJoCo locomotion): raw
    # observations (..., obs_dim) -> True where the episode ends. None: unknown (a model must learn it).
    terminal_fn: Callable[[Any], Any] | None = None


@dataclasses.dataclass
class ActorState:
    """One actor's mutable state over a batch of envs, owned by the harness: one for training, a fresh one per
    evaluation batch (evaluation never touches the training state).

    `generator` is the actor's one RNG stream; `memory` holds what the method keeps between calls (warm
    starts), as tensors or arrays whose first dimension is the env."""

    generator: torch.Generator
    memory: dict[str, Any] = dataclasses.field(default_factory=dict)

    def reset(self, env_ids=None) -> None:
        """Episode boundary: forget everything (env_ids None), or zero the rows of `env_ids` in every memory
        entry."""
        if env_ids is None:
            self.memory.clear()
            return
        rows = sorted(int(i) for i in env_ids)
        if not rows:
            return
        for key, value in list(self.memory.items()):
            if isinstance(value, list):  # a resumed state's memory comes back as nested lists
                value = self.memory[key] = torch.as_tensor(value, dtype=torch.float32)
            if isinstance(value, torch.Tensor | np.ndarray):
                value[rows] = 0

    def keep(self, rows) -> None:
        """Keep only the env rows `rows` (in that order) of every memory entry: the other envs are gone for good
        (evaluation acts only on its unfinished episodes, so its batch shrinks as they end)."""
        index = np.asarray(rows, dtype=np.int64)
        for key, value in list(self.memory.items()):
            if isinstance(value, list):  # a resumed state's memory comes back as nested lists
                value = torch.as_tensor(value, dtype=torch.float32)
            if isinstance(value, torch.Tensor):
                self.memory[key] = value[torch.as_tensor(index, device=value.device)]
            elif isinstance(value, np.ndarray):
                self.memory[key] = value[index]

    @classmethod
    def create(cls, seed: int, device: str | torch.device = "cpu") -> ActorState:
        g = torch.Generator(device=torch.device(device))
        g.manual_seed(int(seed))
        return cls(generator=g)


class RolloutKind(str, enum.Enum):
    """Which online loop the harness runs for a method (it follows from the class)."""

    OFF_POLICY = "off_policy"  # `update` after every env step
    ON_POLICY = "on_policy"  # an OnPolicy: whole vector-env rollouts, act_rollout()/update_rollout()
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
    # The settings that drive the method's inference cost (horizon, samples, iterations, denoising_steps,
    # terminal, ...): the same dict on every component of a method; the timing rows carry them as columns.
    settings: dict[str, Any] = dataclasses.field(default_factory=dict)

    def __call__(self) -> Any:
        return self.fn()


@dataclasses.dataclass
class MethodContext:
    """Everything a method is built from, apart from its own config section."""

    spaces: TaskSpaces
    normalizer: Normalizer
    dp_cfg: Any = None  # methods.common.dp_config.DPConfig for a DPMethod, else None
    device: torch.device = dataclasses.field(default_factory=lambda: torch.device("cpu"))
    seed: int = 0
    common_start: Any = None  # methods.common.common_start_config.CommonStartConfig for a DPMethod
    # The run key compile_train: torch.compile the fixed-shape training steps that support it
    # (methods/common/compiling.py).
    compile_train: bool = False

    def __post_init__(self) -> None:
        self.device = torch.device(self.device)


# What the harness reads off a method class; each follows from the class (see the module doc), never set by one.
DERIVED = ("rollout_kind", "pretrains_offline", "uses_dp", "uses_pretrained_dp", "common_start_is_product")


class Method(abc.ABC):
    """Base of every method: the contract is in the module docstring above; the templates are methods/bc_gauss
    and (for a method built on the shared DP) methods/bc_dp."""

    name: ClassVar[str] = "base"
    """The registry name (set by @register)."""
    Config: ClassVar[type] = Section
    """The model of the method's config section (a Section, in the method's torch-free config.py)."""
    actors: ClassVar[tuple[str, ...]] = ("policy",)
    """The actors the harness evaluates, in order; the first is the method's headline actor."""

    # Derived by __init_subclass__ (DERIVED); read by the harness.
    rollout_kind: ClassVar[RolloutKind] = RolloutKind.NONE
    pretrains_offline: ClassVar[bool] = False
    uses_dp: ClassVar[bool] = False
    uses_pretrained_dp: ClassVar[bool] = False
    common_start_is_product: ClassVar[bool] = False

    def __init_subclass__(cls, **kw) -> None:
        super().__init_subclass__(**kw)
        own = [n for n in DERIVED if n in cls.__dict__ and not cls.__dict__.get("_kind_base", False)]
        if own:
            raise TypeError(f"{cls.__name__} sets {', '.join(own)}: these follow from its class (methods/base.py)")
        cls.pretrains_offline = cls.pretrain is not Method.pretrain
        if cls.rollout_kind is not RolloutKind.ON_POLICY:
            cls.rollout_kind = RolloutKind.OFF_POLICY if cls.update is not Method.update else RolloutKind.NONE
        cls.uses_pretrained_dp = cls.uses_dp
        cls.common_start_is_product = (cls.uses_dp and not cls.pretrains_offline
                                       and cls.rollout_kind is RolloutKind.NONE)

    def __init__(self, cfg, ctx: MethodContext):
        self.cfg = cfg
        self.ctx = ctx
        self.spaces = ctx.spaces
        self.normalizer = ctx.normalizer.to(ctx.device)
        self.device = torch.device(ctx.device)
        self.seed = int(ctx.seed)
        self.generator = torch.Generator(device="cpu")
        self.generator.manual_seed(self.seed)
        self.buffer: ReplayBuffer | None = None  # set by the harness (attach_buffer) before any verb is called
        self.grad_steps = 0  # counted by the harness from pretrain/update; checkpointed

    # ---- the verbs ------------------------------------------------------------------------------------------
    @abc.abstractmethod
    def act(self, obs: np.ndarray, actor: str | None, state: ActorState,
            eval_mode: bool) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """obs (B, obs_dim) -> (actions (B, n, act_dim) in env units that the harness executes in order, extras);
        actor None: the actor that collects training data."""

    def pretrain(self, buffer: ReplayBuffer) -> dict[str, float]:
        """One offline update (define it to have an offline phase)."""
        raise NotImplementedError(f"{type(self).__name__} has no offline phase")

    def update(self, buffer: ReplayBuffer, env_step: int) -> list[dict[str, float]]:
        """The online updates due after env step `env_step`, one metrics dict each (define it for an
        off-policy online phase)."""
        return []

    @abc.abstractmethod
    def modules(self) -> dict[str, torch.nn.Module | torch.optim.Optimizer]:
        """Every network and optimiser, by name."""

    def extra_state(self) -> dict[str, Any]:
        """Non-module state to checkpoint, by attribute name."""
        return {}

    @abc.abstractmethod
    def timed_components(self, batch_size: int = 1) -> dict[str, TimedComponent]:
        """The components the timing harness measures at this batch size, each with its metadata."""

    def buffer_extras(self) -> dict[str, tuple[int, ...]]:
        """The extras `act` returns, stored in the replay buffer: name -> shape of one (per decision or per
        executed action, as the returned array's shape says)."""
        return {}

    def actor_sampling(self) -> dict[str, str]:
        """Actors exempt from the harness's one sampling rule (every DP method samples its DP through
        `eval.sampler`), each with how it samples instead; the run records it. Empty: none."""
        return {}

    def eval_same_as(self) -> dict[str, str]:
        """Actors that act exactly as an earlier actor of `actors` under this run's config (the same calls of the
        same code on the same draws, e.g. a planner executing Ta actions of each plan when it replans every Ta
        anyway): {actor: that earlier actor}. The harness evaluates the earlier one once and records its episodes
        for both, so the line stays in every table at half the cost. Empty: every actor is evaluated."""
        return {}

    # ---- what the harness calls (not for a method to override) --------------------------------------------
    def attach_buffer(self, buffer: ReplayBuffer) -> None:
        """The replay buffer (offline data loaded; the harness appends online data)."""
        self.buffer = buffer

    def state_dict(self) -> dict[str, Any]:
        """Everything needed for a resumed run to continue exactly."""
        return {
            "modules": {k: v.state_dict() for k, v in self.modules().items()},
            "generator": self.generator.get_state(),
            "grad_steps": self.grad_steps,
            "extra": self.extra_state(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore a state_dict(): the modules, then each extra onto its attribute."""
        mods = self.modules()
        for k, v in state["modules"].items():
            mods[k].load_state_dict(v)
        self.generator.set_state(state["generator"])
        self.grad_steps = int(state["grad_steps"])
        for key, value in state.get("extra", {}).items():
            restore_attribute(self, key, value)

    def parameter_counts(self) -> dict[str, int]:
        """Parameters per network, for provenance."""
        return {k: sum(p.numel() for p in m.parameters()) for k, m in self.modules().items()
                if isinstance(m, torch.nn.Module)}


def restore_attribute(obj: Any, name: str, value: Any) -> None:
    """Put a checkpointed extra back: into an object with load_state_dict, a generator's state, or assigned."""
    current = getattr(obj, name, None)
    if isinstance(current, torch.Generator):
        current.set_state(value)
    elif hasattr(current, "load_state_dict") and isinstance(value, dict):
        current.load_state_dict(value)
    else:
        setattr(obj, name, value)


def contract_violations(cls: type[Method]) -> list[str]:
    """What a registered method class leaves undefined of the contract (empty: it is complete)."""
    out = [f"abstract hook '{h}' is not implemented" for h in sorted(getattr(cls, "__abstractmethods__", ()))]
    if not cls.actors or not all(isinstance(a, str) and a for a in cls.actors):
        out.append("actors must be a non-empty tuple of names")
    if not (isinstance(cls.Config, type) and issubclass(cls.Config, Section)):
        out.append("Config must be a Section (methods/common/section.py)")
    else:
        for name, p in (cls.Config.presets or {}).items():
            if not isinstance(p, dict):
                out.append(f"preset '{name}' is not a dict of sections")
    return out


_REGISTRY: dict[str, type[Method]] = {}


def register(name: str):
    """Class decorator: register a method under `name` (methods/registry lists and looks them up)."""

    def deco(cls: type[Method]) -> type[Method]:
        cls.name = name
        _REGISTRY[name] = cls
        return cls

    return deco


def registered() -> dict[str, type[Method]]:
    """The methods registered so far, by name (methods.registry imports every method package first)."""
    return dict(_REGISTRY)
