"""The one replay buffer every method shares.

Why: the runner builds it from the offline dataset, hands it to the method, and saves it in checkpoints, so
offline/online mixing, sequence sampling and resume behave the same for every method.
- typed fields (obs, action, reward, next_obs, terminal, timeout, episode) plus per-method extras with a mask
  (e.g. MODIP's planned labels);
- uniform sampling and sequence sampling (length L, never crossing an episode boundary), chunks, and decision
  transitions for chunk critics (which decisions are cut short and why: decisions.py);
- an offline/online mixing ratio;
- save and load as plain tensors (loadable with torch.load(weights_only=True)).
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from methods.common.decisions import decision_span, whole_decisions
from methods.common.rng_state import rng_from_plain, rng_state_to_plain

CORE_FIELDS = ("obs", "action", "reward", "next_obs", "terminal", "timeout")


class ReplayBuffer:
    def __init__(self, obs_dim: int, act_dim: int, extras: dict[str, tuple[int, ...]] | None = None,
                 seed: int = 0, capacity: int = 1024):
        self.obs_dim, self.act_dim = obs_dim, act_dim
        self.extras_spec = {k: tuple(v) for k, v in (extras or {}).items()}
        self._rng = np.random.Generator(np.random.PCG64(seed))
        self._size = 0
        self._n_offline = 0
        self._next_episode = 0
        self._open_episode: int | None = None
        self.online_ratio: float | None = None  # None: uniform over all data
        self._seq_cache: dict[int, np.ndarray] = {}
        self._episode_cache: dict[tuple[int, int, int], tuple[np.ndarray, np.ndarray]] = {}
        self._alloc(capacity)

    # ---- storage ----------------------------------------------------------------------------------------
    def _alloc(self, capacity: int) -> None:
        def grow(old, shape, dtype):
            new = np.zeros((capacity, *shape), dtype=dtype)
            if old is not None:
                new[: self._size] = old[: self._size]
            return new

        d = getattr(self, "_data", None) or {}
        self._data = {
            "obs": grow(d.get("obs"), (self.obs_dim,), np.float32),
            "action": grow(d.get("action"), (self.act_dim,), np.float32),
            "reward": grow(d.get("reward"), (), np.float32),
            "next_obs": grow(d.get("next_obs"), (self.obs_dim,), np.float32),
            "terminal": grow(d.get("terminal"), (), np.bool_),
            "timeout": grow(d.get("timeout"), (), np.bool_),
            "episode": grow(d.get("episode"), (), np.int64),
        }
        for name, shape in self.extras_spec.items():
            self._data[name] = grow(d.get(name), shape, np.float32)
            self._data["has_" + name] = grow(d.get("has_" + name), (), np.bool_)
        self.capacity = capacity

    def _ensure(self, n_more: int) -> None:
        if self._size + n_more > self.capacity:
            cap = self.capacity
            while cap < self._size + n_more:
                cap *= 2
            self._alloc(cap)

    def add_offline(self, observations, actions, rewards, next_observations, terminals, timeouts,
                    extras: dict[str, np.ndarray] | None = None) -> None:
        """Bulk-load the offline dataset; must come before any online data."""
        if self._size != self._n_offline:
            raise RuntimeError("offline data must be added before online data")
        n = len(observations)
        self._ensure(n)
        s = slice(self._size, self._size + n)
        self._data["obs"][s] = observations
        self._data["action"][s] = actions
        self._data["reward"][s] = rewards
        self._data["next_obs"][s] = next_observations
        self._data["terminal"][s] = terminals
        self._data["timeout"][s] = timeouts
        ends = np.asarray(terminals, bool) | np.asarray(timeouts, bool)
        ep = np.concatenate([[0], np.cumsum(ends)[:-1]]) + self._next_episode
        self._data["episode"][s] = ep
        self._next_episode = int(ep[-1]) + 1
        for name, arr in (extras or {}).items():
            self._data[name][s] = arr
            self._data["has_" + name][s] = True
        self._size += n
        self._n_offline = self._size
        self._seq_cache.clear()
        self._episode_cache.clear()

    def add(self, transition: dict[str, Any]) -> None:
        """Append one online transition. The harness calls this; episode ids follow terminal/timeout flags."""
        self._ensure(1)
        i = self._size
        if self._open_episode is None:
            self._open_episode = self._next_episode
            self._next_episode += 1
        for k in CORE_FIELDS:
            self._data[k][i] = transition[k]
        self._data["episode"][i] = self._open_episode
        for name in self.extras_spec:
            val = transition.get(name)
            if val is not None:
                self._data[name][i] = val
                self._data["has_" + name][i] = True
        if transition["terminal"] or transition["timeout"]:
            self._open_episode = None
        self._size += 1
        self._seq_cache.clear()

    @property
    def size(self) -> int:
        """Transitions stored (offline + online)."""
        return self._size

    @property
    def n_offline(self) -> int:
        """Offline transitions (the first n_offline rows)."""
        return self._n_offline

    @property
    def n_online(self) -> int:
        return self._size - self._n_offline

    def offline_stats(self, fields: tuple[str, ...] = ("obs", "next_obs", "reward"),
                      limit: int | None = None) -> dict[str, np.ndarray]:
        """Copies of the offline data's fields (writing to them never changes the buffer), for exact statistics
        over it (value scales, target statistics); `limit` keeps only the first rows. Empty offline data gives
        one zero row per field."""
        n = max(self._n_offline, 1) if limit is None else min(max(self._n_offline, 1), int(limit))
        return {k: self._data[k][:n].copy() for k in fields}

    def episode_ended(self) -> bool:
        """Whether the last added online transition ended its episode (terminal or timeout)."""
        return self.n_online > 0 and self._open_episode is None

    def last_episode(self) -> dict[str, np.ndarray]:
        """The arrays of the latest online episode (the one the last added transition belongs to): the core
        fields, each extra and its `has_` mask."""
        if self.n_online == 0:
            raise RuntimeError("no online transitions yet")
        ep = self._data["episode"][self._size - 1]
        idx = np.flatnonzero(self._data["episode"][self._n_offline: self._size] == ep) + self._n_offline
        out = {k: self._data[k][idx].copy() for k in (*CORE_FIELDS, *self.extras_spec,
                                                        *("has_" + k for k in self.extras_spec))}
        out["index"] = idx
        return out

    def get_rng_state(self) -> dict[str, str]:
        """The sampling RNG's state (plain strings), for the harness to save and restore."""
        return rng_state_to_plain(self._rng)

    def set_rng_state(self, state: dict[str, str]) -> None:
        self._rng = rng_from_plain(state)

    # ---- sampling ---------------------------------------------------------------------------------------
    def _indices(self, n: int, source: str, online_ratio: float | None, groups: int = 1) -> np.ndarray:
        """n indices; with groups=g, g consecutive blocks of n // g, each drawn with the mix on its own (so that
        a (g, n // g) view gives every block, e.g. a world-model member, `online_ratio` online data)."""
        if groups > 1:
            if n % groups:
                raise ValueError(f"{n} samples do not split into {groups} equal groups")
            return np.concatenate([self._indices(n // groups, source, online_ratio) for _ in range(groups)])
        if source == "offline" or (source == "mixed" and self.n_online == 0):
            return self._rng.integers(0, max(self._n_offline, 1), size=n)
        if source == "online":
            return self._rng.integers(self._n_offline, self._size, size=n)
        ratio = self.online_ratio if online_ratio is None else online_ratio
        if ratio is None or self._n_offline == 0:
            return self._rng.integers(0, self._size, size=n)
        n_on = int(round(n * ratio))
        on = self._rng.integers(self._n_offline, self._size, size=n_on)
        off = self._rng.integers(0, max(self._n_offline, 1), size=n - n_on)
        return np.concatenate([off, on])

    def _to(self, idx: np.ndarray, fields, device) -> dict[str, torch.Tensor]:
        out = {}
        for k in fields:
            out[k] = torch.as_tensor(self._data[k][idx], device=device)
        return out

    def sample(self, n: int, source: str = "mixed", device: str | torch.device = "cpu",
               online_ratio: float | None = None, fields: tuple[str, ...] | None = None,
               require: str | None = None, recent: int = 0, groups: int = 1) -> dict[str, torch.Tensor]:
        """Uniform transitions. source: offline | online | mixed (offline/online at `online_ratio`).

        require=<extra> samples uniformly among the transitions of `source` that carry that extra (e.g. planned
        labels; mixed = all of them), and recent=k only among the last k stored transitions (0 = no limit).
        groups=g draws n // g transitions g times, each block with its own offline/online mix."""
        if require is not None:
            idx = self.draw_carrying(n, require, source, recent)
        else:
            idx = self._indices(n, source, online_ratio, groups)
        fields = fields or (*CORE_FIELDS, *self.extras_spec, *("has_" + k for k in self.extras_spec))
        return self._to(idx, fields, device)

    def draw_carrying(self, n: int, extra: str, source: str = "mixed", recent: int = 0,
                      complete: int = 0) -> np.ndarray:
        """n indices drawn uniformly among the transitions of `source` (within the last `recent`) that carry
        `extra`. complete=k leaves out starts whose k steps still wait on steps of the open episode (while any
        other start remains)."""
        pool = self._carrying(extra, source, recent)
        if len(pool) == 0:
            raise RuntimeError(f"no transitions with '{extra}' yet")
        if complete and self._open_episode is not None:
            waiting = (pool + complete > self._size) & (self._data["episode"][pool] == self._open_episode)
            if not waiting.all():
                pool = pool[~waiting]
        return pool[self._rng.integers(0, len(pool), size=n)]

    def fields_at(self, idx: np.ndarray, fields: tuple[str, ...],
                  device: str | torch.device = "cpu") -> dict[str, torch.Tensor]:
        """The stored `fields` (core fields or extras) of transitions `idx`."""
        return self._to(np.asarray(idx), fields, device)

    def carries(self, extra: str, source: str = "mixed", recent: int = 0) -> bool:
        """Whether `sample(require=extra, source=source, recent=recent)` has anything to draw from."""
        return len(self._carrying(extra, source, recent)) > 0

    def count_carrying(self, extra: str, source: str = "mixed", recent: int = 0) -> int:
        """How many transitions of `source` (within the last `recent`; 0 = all) carry `extra`."""
        return len(self._carrying(extra, source, recent))

    def _carrying(self, extra: str, source: str, recent: int) -> np.ndarray:
        lo = self._n_offline if source == "online" else 0
        hi = self._n_offline if source == "offline" else self._size
        if recent > 0:
            lo = max(lo, self._size - recent)
        return np.flatnonzero(self._data["has_" + extra][lo:hi]) + lo

    def _valid_starts(self, length: int) -> np.ndarray:
        if length not in self._seq_cache:
            ep = self._data["episode"][: self._size]
            if self._size < length:
                starts = np.zeros(0, dtype=np.int64)
            else:
                starts = np.flatnonzero(ep[: self._size - length + 1] == ep[length - 1:])
            self._seq_cache[length] = starts
        return self._seq_cache[length]

    def sample_sequences(self, n: int, length: int, source: str = "mixed",
                         device: str | torch.device = "cpu",
                         online_ratio: float | None = None, by_episode: bool = False) -> dict[str, torch.Tensor]:
        """Sequences of `length` consecutive transitions of one episode: tensors shaped (n, length, ...).

        by_episode=False draws start indices uniformly over all valid starts (long episodes weigh more);
        by_episode=True draws an episode uniformly among those long enough, then a start uniformly within it
        (torchrl's SliceSampler, which TD-MPC2 uses), so short, terminating episodes are not drowned out."""
        starts = self._valid_starts(length)
        if len(starts) == 0:
            raise RuntimeError(f"no episode segment of length {length} in the buffer")
        ratio = self.online_ratio if online_ratio is None else online_ratio
        off = starts[starts < self._n_offline]
        on = starts[starts >= self._n_offline]
        pick = self._pick_by_episode if by_episode else (lambda pool, k: pool[self._rng.integers(0, len(pool), size=k)])
        if source == "offline" or (source == "mixed" and len(on) == 0):
            pool_idx = pick(off, n)
        elif source == "online":
            pool_idx = pick(on, n)
        elif ratio is None or len(off) == 0 or len(on) == 0:
            pool_idx = pick(starts, n)
        else:
            n_on = int(round(n * ratio))
            pool_idx = np.concatenate([pick(off, n - n_on), pick(on, n_on)])
        idx = pool_idx[:, None] + np.arange(length)[None, :]
        return self._to(idx, CORE_FIELDS, device)

    def _pick_by_episode(self, pool: np.ndarray, k: int) -> np.ndarray:
        """k starts from the sorted pool: an episode uniformly, then one of its starts uniformly."""
        if len(pool) == 0:
            raise RuntimeError("no episode segment in the requested part of the buffer")
        # Cached per pool: the offline pool stays the same through the online phase. A pool is identified by
        # (size, first, last start); the cache is cleared whenever stored data can change under the same key.
        key = (len(pool), int(pool[0]), int(pool[-1]))
        if key not in self._episode_cache:
            ep = self._data["episode"][pool]  # each episode is one contiguous run of the sorted pool
            first = np.concatenate([[0], np.flatnonzero(ep[1:] != ep[:-1]) + 1])
            if len(self._episode_cache) > 8:
                self._episode_cache.clear()
            self._episode_cache[key] = (first, np.diff(np.append(first, len(pool))))
        first, counts = self._episode_cache[key]
        e = self._rng.integers(0, len(first), size=k)
        return pool[first[e] + (self._rng.random(k) * counts[e]).astype(np.int64)]

    def sample_chunks(self, n: int, chunk: int, source: str = "offline", device: str | torch.device = "cpu",
                      online_ratio: float | None = None, idx: np.ndarray | None = None, field: str = "action",
                      require: str | None = None, recent: int = 0, complete: bool = False) -> dict[str, torch.Tensor]:
        """States with the chunk of `chunk` values of `field` (the actions, or an extra such as MODIP's
        noise-free planned actions) that followed them in the same episode.

        A chunk that runs past its episode's end repeats the episode's last value (DPPO's padding), so the DP is
        trained on every state, including the last few of an episode. For an extra field, a step that does not
        carry it counts as past the end. require=<extra> / recent=k draw the start states as `sample` does;
        complete=True leaves out starts whose chunk still waits on steps of the open episode (while any remain)."""
        if idx is None:
            if require is not None:
                idx = self.draw_carrying(n, require, source, recent, complete=chunk if complete else 0)
            else:
                idx = self._indices(n, source, online_ratio)
        steps = idx[:, None] + np.arange(chunk)[None, :]
        steps = np.minimum(steps, self._size - 1)
        ep = self._data["episode"]
        same = ep[steps] == ep[idx][:, None]
        if field != "action":
            same &= self._data["has_" + field][steps]
            same[:, 0] = True
            same = np.logical_and.accumulate(same, axis=1)  # the chunk ends at the first step without it
        # index of the last step still in the episode, carried forward
        valid_last = np.where(same, steps, -1)
        valid_last = np.maximum.accumulate(valid_last, axis=1)
        values = self._data[field][valid_last]
        return {
            "obs": torch.as_tensor(self._data["obs"][idx], device=device),
            "action_chunk": torch.as_tensor(values, device=device),
            "index": torch.as_tensor(idx, device=device),
        }

    def sample_decisions(self, n: int, length: int, source: str = "mixed", device: str | torch.device = "cpu",
                         online_ratio: float | None = None, idx: np.ndarray | None = None, step_gamma: float = 1.0,
                         whole: bool = False, redraw: Callable | None = None) -> dict[str, torch.Tensor]:
        """Decision transitions: from a stored state, the `length` actions that followed it in its episode, as
        one transition of a chunk critic (DPPO's MultiStep wrapper, `reward_agg_method: sum`).

        Returns obs, action_chunk (n, length, act_dim; past the episode's end the last action is repeated),
        reward (Σ_i step_gamma^i r_i over the steps inside the episode; step_gamma 1 is DPPO's plain sum),
        next_obs and terminal (of the chunk's last step inside the episode), steps (how many it took) and index.
        A chunk that reaches the end of the stored data is cut there (the bootstrap starts from the last stored
        next_obs). whole=True redraws each decision cut short by a timeout or by the end of the stored data
        (methods/common/decisions.py says why; one cut by a terminal stays), with `redraw(starts)` (default:
        each from the part of the buffer, offline or online, its start is in, then from all the data)."""
        if idx is None:
            idx = self._indices(n, source, online_ratio)
        d = self._data

        def span(i):
            return decision_span(d["episode"], d["terminal"], d["timeout"], self._size, i, length)

        if whole:  # a caller's own redraw has no fallback: its starts are its own (DSRL's decision starts)
            fallback = None if redraw is not None else (lambda bad: self._rng.integers(0, self._size, len(bad)))
            idx = whole_decisions(span, d["terminal"], idx, redraw or self._redraw_like, fallback)
        steps, inside = span(idx)
        last = np.maximum.accumulate(np.where(inside, steps, -1), axis=1)
        reward = (d["reward"][steps] * inside * step_gamma ** np.arange(length)[None, :]).sum(1)
        end = last[:, -1]
        return {
            "obs": torch.as_tensor(d["obs"][idx], device=device),
            "action_chunk": torch.as_tensor(d["action"][last], device=device),
            "reward": torch.as_tensor(reward.astype(np.float32), device=device),
            "next_obs": torch.as_tensor(d["next_obs"][end], device=device),
            "terminal": torch.as_tensor(d["terminal"][end], device=device),
            "steps": torch.as_tensor(inside.sum(1), device=device),
            "index": torch.as_tensor(idx, device=device),
        }

    def _redraw_like(self, idx: np.ndarray) -> np.ndarray:
        """New indices, each uniform over the part of the buffer (offline or online) its index is in."""
        out = self._rng.integers(0, max(self._n_offline, 1), size=len(idx))
        online = idx >= self._n_offline
        if online.any():
            out[online] = self._rng.integers(self._n_offline, self._size, size=int(online.sum()))
        return out

    # ---- save / load ------------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        return {
            "data": {k: torch.from_numpy(v[: self._size].copy()) for k, v in self._data.items()},
            "size": self._size,
            "n_offline": self._n_offline,
            "next_episode": self._next_episode,
            "open_episode": -1 if self._open_episode is None else self._open_episode,
            "online_ratio": -1.0 if self.online_ratio is None else float(self.online_ratio),
            "rng": rng_state_to_plain(self._rng),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        size = int(state["size"])
        self._size = 0
        self._alloc(max(size, 16))
        for k, v in state["data"].items():
            self._data[k][:size] = v.numpy()
        self._size = size
        self._n_offline = int(state["n_offline"])
        self._next_episode = int(state["next_episode"])
        self._open_episode = None if int(state["open_episode"]) < 0 else int(state["open_episode"])
        r = float(state["online_ratio"])
        self.online_ratio = None if r < 0 else r
        self._rng = rng_from_plain(state["rng"])
        self._seq_cache.clear()
        self._episode_cache.clear()
