"""The method interface and the method registry.

Why: the harness owns the env loop, evaluation, timing, checkpoints and storage; a method owns only its
networks and updates. Every method implements this small contract, and the harness calls it, never the
reverse. Nothing here imports from `bench/`.

Contract, in the order the runner uses it:
  m = build_method(name, cfg, spaces, normalizer, device)
  m.attach_buffer(buffer)                      # offline data (+ online data as it arrives)
  m.pretrain_step(m.pretrain_batch()) -> dict  # N offline updates
  chunk = m.act(obs, actor, state, eval_mode)  # (B, Ta, act_dim) env actions; the harness executes the chunk
  m.observe(transition); m.finetune_step()     # off-policy online phase
  m.act_rollout(obs, state); m.update_rollout(rollout)  # on-policy methods (rollout_kind = "on_policy")
  m.timed_components() -> {name: closure}
  m.state_dict() / m.load_state_dict()
"""
from __future__ import annotations

import dataclasses
import difflib
from typing import Any, Callable, ClassVar

import numpy as np
import torch

from methods.common.normalize import Normalizer
from methods.common.replay import ReplayBuffer


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
    # Extras a method wants stored with the first transition of the chunk it just returned (e.g. MPC labels).
    extras: dict[str, np.ndarray] = dataclasses.field(default_factory=dict)

    def reset(self, env_index: int | None = None) -> None:
        """Episode boundary: forget warm starts (all envs, or one env of a batch)."""
        if env_index is None:
            self.memory.clear()
        else:
            self.memory.setdefault("reset_envs", set()).add(env_index)

    @classmethod
    def create(cls, seed: int, device: str | torch.device = "cpu") -> "ActorState":
        g = torch.Generator(device=torch.device(device))
        g.manual_seed(int(seed))
        return cls(generator=g)


class Method:
    """Base class of every method. Subclasses set `name`, `Config`, and override the updates they use."""

    name: ClassVar[str] = "base"
    Config: ClassVar[type] = object
    # off_policy: observe()/finetune_step(); on_policy: update_rollout(); none: no online phase (BC).
    rollout_kind: ClassVar[str] = "off_policy"
    # Methods built on the shared DP start from the bc_dp checkpoint (the common start).
    uses_pretrained_dp: ClassVar[bool] = False
    # The actors the harness evaluates, in order; the first is the method's headline actor.
    actors: ClassVar[tuple[str, ...]] = ("policy",)
    # False: the method has no offline phase of its own (DPPO starts from the pretrained DP and goes online),
    # so the runner runs no pretrain_step calls and counts no pretrain grad steps for it.
    pretrains_offline: ClassVar[bool] = True
    # Method-section defaults per task suite (e.g. DPPO's gamma per suite), applied under presets and
    # user overrides when the config is resolved, so the resolved config records the values used.
    suite_defaults: ClassVar[dict[str, dict[str, Any]]] = {}

    def __init__(self, cfg, spaces: TaskSpaces, normalizer: Normalizer, device: str | torch.device = "cpu",
                 seed: int = 0):
        self.cfg = cfg
        self.spaces = spaces
        self.normalizer = normalizer.to(device)
        self.device = torch.device(device)
        self.seed = seed
        self.generator = torch.Generator(device="cpu")
        self.generator.manual_seed(seed)
        self.buffer: ReplayBuffer | None = None
        self.grad_steps = 0

    # ---- data -------------------------------------------------------------------------------------------
    def attach_buffer(self, buffer: ReplayBuffer) -> None:
        self.buffer = buffer

    def buffer_extras(self) -> dict[str, tuple[int, ...]]:
        """Extra per-transition fields this method stores in the replay buffer (name -> shape)."""
        return {}

    def pretrain_batch_size(self) -> int:
        return int(getattr(self.cfg, "batch_size", 256))

    def pretrain_batch(self) -> dict[str, torch.Tensor]:
        """The batch for one pretrain step; default: uniform offline transitions."""
        assert self.buffer is not None
        return self.buffer.sample(self.pretrain_batch_size(), source="offline", device=self.device)

    # ---- updates ----------------------------------------------------------------------------------------
    def pretrain_step(self, batch: dict[str, torch.Tensor]) -> dict[str, float]:
        raise NotImplementedError

    def end_pretrain(self) -> None:
        """Called once after the offline phase (e.g. to snapshot EMA weights)."""

    def observe(self, transition: dict[str, Any]) -> None:
        """One env transition of the training env (already stored in the buffer by the harness)."""

    def updates_due(self, env_step: int) -> int:
        """How many finetune_step calls the harness should make now (after an env step)."""
        return 0

    def finetune_step(self) -> dict[str, float]:
        return {}

    # ---- on-policy (rollout_kind = "on_policy"); the runner's loop is bench/runner/on_policy.py -----------
    def rollout_size(self) -> tuple[int, int]:
        """(n_envs, n_steps): vector envs, and chunk decisions per env in one rollout."""
        raise NotImplementedError

    def act_rollout(self, obs: np.ndarray, state: ActorState) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """obs (n_envs, obs_dim) -> (chunks (n_envs, Ta, act_dim) env actions, per-env arrays to keep with
        the decision in the rollout, e.g. DPPO's denoising chains)."""
        raise NotImplementedError

    def update_rollout(self, rollout: dict[str, Any]) -> dict[str, float]:
        """One on-policy update from a rollout (arrays shaped (n_steps, n_envs, ...)); see on_policy.py."""
        raise NotImplementedError

    # ---- acting -----------------------------------------------------------------------------------------
    def act(self, obs: np.ndarray, actor: str, state: ActorState, eval_mode: bool) -> np.ndarray:
        """obs (B, obs_dim) -> a chunk (B, Ta, act_dim) of env actions that the harness executes in order."""
        raise NotImplementedError

    def load_pretrained_dp(self, dp_state: dict[str, Any]) -> None:
        raise NotImplementedError

    def export_pretrained_dp(self) -> dict[str, Any]:
        raise NotImplementedError

    # ---- timing -----------------------------------------------------------------------------------------
    def timed_components(self, batch_size: int = 1) -> dict[str, Callable[[], Any]]:
        return {}

    def compiled_components(self, batch_size: int = 1, mode: str = "default") -> dict[str, Callable[[], Any]] | None:
        """Optional: the method's own compiled or CUDA-graphed versions of some act-path timed components (same
        names, same outputs from the same RNG state), compiled lazily on their first call so that the timing
        harness can time the compile. None (default): the harness wraps each act path in torch.compile itself.
        Either way `mbench time --compile` checks them against the eager closures (bench/timing)."""
        return None

    def cost_settings(self) -> dict[str, Any]:
        """Settings that drive inference cost (horizon, samples, iterations, denoising_steps, terminal)."""
        return {}

    # ---- checkpoints ------------------------------------------------------------------------------------
    def modules(self) -> dict[str, torch.nn.Module | torch.optim.Optimizer]:
        """Every network and optimiser, by name; state_dict/load_state_dict use it."""
        return {}

    def extra_state(self) -> dict[str, Any]:
        return {}

    def load_extra_state(self, state: dict[str, Any]) -> None:
        pass

    def state_dict(self) -> dict[str, Any]:
        return {
            "modules": {k: v.state_dict() for k, v in self.modules().items()},
            "generator": self.generator.get_state(),
            "grad_steps": self.grad_steps,
            "extra": self.extra_state(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        mods = self.modules()
        for k, v in state["modules"].items():
            mods[k].load_state_dict(v)
        self.generator.set_state(state["generator"])
        self.grad_steps = int(state["grad_steps"])
        self.load_extra_state(state.get("extra", {}))

    def parameter_counts(self) -> dict[str, int]:
        return {k: sum(p.numel() for p in m.parameters()) for k, m in self.modules().items()
                if isinstance(m, torch.nn.Module)}


_REGISTRY: dict[str, type[Method]] = {}


def register(name: str):
    def deco(cls: type[Method]) -> type[Method]:
        cls.name = name
        _REGISTRY[name] = cls
        return cls

    return deco


def _load_builtin() -> None:
    import importlib

    for mod in ("bc_gauss", "bc_dp", "modip", "dppo", "tdmpc2"):
        try:
            importlib.import_module(f"methods.{mod}")
        except ModuleNotFoundError as e:
            if e.name not in (f"methods.{mod}",):
                raise


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
