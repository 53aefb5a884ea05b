"""Kitchen data: the flattener for Minari's `D4RL/kitchen/*-v2` datasets, and a maker of look-alike data.

Why: Minari's kitchen datasets store dict observations (`observation`: 59 numbers; `achieved_goal` and
`desired_goal`: dicts per subtask). The suite's env observes only `observation` (bench/tasks/kitchen.py says
why), so the loader must flatten the data the same way; `flatten_kitchen_obs` is that one rule, used by
`bench.data.loaders.load_dataset` for every `D4RL/kitchen/` id.

The maker writes a real Minari dataset (same dict observations, env spec FrankaKitchen-v1 with the task's
subtasks, episode seeds) so `minari.load_dataset` opens it and the suite runs here without downloads. Its
demonstrations are scripted: an end-effector controller (damped least-squares on MuJoCo's site Jacobian, the
env's own joint-velocity actions) follows waypoints for each subtask, in D4RL's order, with Gaussian action
noise and jittered waypoints for variety. The script is imperfect (the dataset's provenance records each
subtask's success rate): its demos complete some of the subtasks, like D4RL's partial and mixed play data.
The script reads the simulator's state (site positions) to choose actions; it never sets state, so replaying
an episode's actions from its reset seed reproduces its rewards (the tests check this).
"""
from __future__ import annotations

import contextlib
import json
import os
import shutil
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from bench.data import DatasetError

KITCHEN_PREFIX = "D4RL/kitchen/"


def flatten_kitchen_obs(obs: Any) -> np.ndarray:
    """(T, 59) from Minari kitchen observations (a dict with `observation`), or a flat array as it is."""
    if isinstance(obs, dict):
        if "observation" not in obs:
            raise DatasetError(f"kitchen observations lack the 'observation' entry (has {sorted(obs)})")
        obs = obs["observation"]
    arr = np.asarray(obs)
    return arr.reshape(arr.shape[0], -1)


def variant_of(dataset_id: str) -> str:
    from bench.tasks.kitchen import KITCHEN_TASK_SETS

    if not dataset_id.startswith(KITCHEN_PREFIX):
        raise DatasetError(f"'{dataset_id}' is not a kitchen id ({KITCHEN_PREFIX}<complete|partial|mixed>-v2)")
    name = dataset_id[len(KITCHEN_PREFIX):].rsplit("-v", 1)[0]
    if name not in KITCHEN_TASK_SETS:
        raise DatasetError(f"bad kitchen id '{dataset_id}': variant must be one of {sorted(KITCHEN_TASK_SETS)}")
    return name


# ---- the scripted controller -----------------------------------------------------------------------------------
class EndEffectorController:
    """Joint-velocity actions that move FrankaKitchen's `end_effector` site toward a goal position.

    dq = J^T (J J^T + lambda I)^-1 [dx; k_w w] over the 7 arm joints (damped least squares), where w rotates
    the hand back to its reset orientation. FrankaKitchen's actuators are position servos fed with
    q + a * 2 rad/s * dt (dt = 0.08 s), so the action is dq / (2 * dt), clipped to [-1, 1]. Fingers: +1 opens,
    -1 closes."""

    def __init__(self, env, max_step: float = 0.04, damping: float = 1e-2):
        import mujoco

        self.mujoco = mujoco
        self.u = env.unwrapped
        self.model, self.data = self.u.model, self.u.data
        self.eef_id = mujoco.mj_name2id(self.model, mujoco.mjtObj.mjOBJ_SITE, "end_effector")
        self.max_step, self.damping = max_step, damping
        self.dt = float(self.u.robot_env.dt)
        self.vel_scale = float(np.asarray(self.u.robot_env.act_rng)[0])
        self.R_home = self.rotation()

    def site(self, name: str) -> np.ndarray:
        sid = self.mujoco.mj_name2id(self.model, self.mujoco.mjtObj.mjOBJ_SITE, name)
        return self.data.site_xpos[sid].copy()

    def eef(self) -> np.ndarray:
        return self.data.site_xpos[self.eef_id].copy()

    def rotation(self) -> np.ndarray:
        return self.data.site_xmat[self.eef_id].reshape(3, 3).copy()

    def action(self, goal: np.ndarray, grip: float) -> np.ndarray:
        jp = np.zeros((3, self.model.nv))
        jr = np.zeros((3, self.model.nv))
        self.mujoco.mj_jacSite(self.model, self.data, jp, jr, self.eef_id)
        J = np.vstack([jp[:, :7], jr[:, :7]])
        dx = np.asarray(goal, float) - self.eef()
        n = np.linalg.norm(dx)
        if n > self.max_step:
            dx *= self.max_step / n
        R = self.rotation()
        w = 0.5 * sum(np.cross(R[:, i], self.R_home[:, i]) for i in range(3))
        err = np.concatenate([dx, 0.5 * w])
        dq = J.T @ np.linalg.solve(J @ J.T + self.damping * np.eye(6), err)
        a = np.zeros(9)
        a[:7] = dq / (self.vel_scale * self.dt)
        a[7:9] = grip
        return np.clip(a, -1.0, 1.0)


# Waypoint scripts per subtask: (name, offset from a site or "here", grip, max steps). Offsets in metres.
def _subtask_waypoints(ctrl: EndEffectorController, subtask: str, jitter: np.ndarray) -> list[tuple[np.ndarray, float, int]]:
    if subtask == "slide cabinet":
        s = ctrl.site("slide_site") + jitter
        return [(s + [-0.08, -0.12, 0.0], 1.0, 60), (s + [-0.08, 0.0, 0.0], 1.0, 30), (s + [0.30, 0.0, 0.0], 1.0, 60),
                (s + [0.30, -0.15, 0.0], 1.0, 25)]
    if subtask == "light switch":
        s = ctrl.site("light_site") + jitter
        return [(s + [0.07, -0.12, 0.0], 1.0, 60), (s + [0.07, 0.05, 0.0], 1.0, 40), (s + [-0.15, 0.05, 0.0], 1.0, 40),
                (s + [-0.15, -0.15, 0.0], 1.0, 25)]
    if subtask == "microwave":
        s = ctrl.site("microhandle_site") + jitter
        hinge = np.array([-1.128, 0.455])  # microdoorroot's hinge axis (vertical), in world x, y
        out = [(s + [0.0, -0.1, 0.0], 1.0, 50), (s + [0.0, 0.03, 0.0], 1.0, 30), (s + [0.0, 0.03, 0.0], -1.0, 8)]
        rel = s[:2] - hinge
        for ang in np.linspace(0.0, -1.3, 14):  # pull the handle along the door's arc
            c, si = np.cos(ang), np.sin(ang)
            p = hinge + np.array([c * rel[0] - si * rel[1], si * rel[0] + c * rel[1]])
            out.append((np.array([p[0], p[1], s[2]]), -1.0, 6))
        out.append((out[-1][0] + [0.1, -0.05, 0.0], 1.0, 20))
        return out
    if subtask == "kettle":
        s = ctrl.site("kettle_site") + jitter
        return [(s + [0.0, -0.15, 0.0], 1.0, 60), (s, 1.0, 30), (s, -1.0, 10), (s + [0.0, 0.0, 0.05], -1.0, 20),
                (s + [0.04, 0.4, 0.05], -1.0, 60), (s + [0.04, 0.4, 0.0], -1.0, 20), (s + [0.04, 0.4, 0.0], 1.0, 10),
                (s + [0.04, 0.2, 0.1], 1.0, 20)]
    if subtask == "bottom burner":
        s = ctrl.site("knob2_site") + jitter
        # Press the knob's right side and sweep down: its rim turns it toward the goal angle (-0.88 rad).
        return [(s + [0.03, -0.12, 0.03], 1.0, 50), (s + [0.03, 0.0, 0.03], -1.0, 30), (s + [0.03, 0.0, -0.06], -1.0, 30),
                (s + [0.03, -0.15, -0.06], 1.0, 25)]
    raise ValueError(f"no script for subtask '{subtask}'")


SCRIPT_ORDER = ("slide cabinet", "kettle", "microwave", "light switch", "bottom burner")


def scripted_episode(env, tasks: tuple[str, ...], seed: int, rng: np.random.Generator, action_std: float,
                     jitter_std: float, max_steps: int) -> dict[str, Any]:
    """One scripted episode from env.reset(seed); returns Minari-ready arrays (dict observations)."""
    raw_obs, info = env.reset(seed=seed)
    ctrl = EndEffectorController(env)
    obs_list, acts, rews, terms, truncs = [raw_obs], [], [], [], []
    done = False
    completed: list[str] = []
    # The script tries its most reliable subtasks first (any order scores the same in FrankaKitchen-v1).
    order = [t for t in SCRIPT_ORDER if t in tasks]
    for subtask in order:
        if done:
            break
        for goal, grip, steps in _subtask_waypoints(ctrl, subtask, rng.normal(0.0, jitter_std, 3)):
            for _ in range(steps):
                a = ctrl.action(goal, grip)
                if action_std:
                    a = np.clip(a + rng.normal(0.0, action_std, a.shape), -1.0, 1.0)
                a = a.astype(np.float32)  # stored as float32: step with exactly what is stored
                raw_obs, r, term, trunc, info = env.step(a)
                trunc = bool(trunc) or len(acts) + 1 >= max_steps
                obs_list.append(raw_obs), acts.append(a), rews.append(float(r)), terms.append(bool(term))
                truncs.append(bool(trunc and not term))
                completed = list(info.get("episode_task_completions", []))
                if term or trunc:
                    done = True
                    break
                if np.linalg.norm(goal - ctrl.eef()) < 0.015:
                    break
            if done:
                break
    while not done:  # the script ran out of waypoints: hold still until the time limit
        a = ctrl.action(ctrl.eef(), 1.0).astype(np.float32)
        raw_obs, r, term, trunc, info = env.step(a)
        trunc = bool(trunc) or len(acts) + 1 >= max_steps
        obs_list.append(raw_obs), acts.append(a), rews.append(float(r)), terms.append(bool(term))
        truncs.append(bool(trunc and not term))
        completed = list(info.get("episode_task_completions", []))
        done = bool(term or trunc)
    return {"observations": _stack_obs(obs_list), "actions": np.asarray(acts, np.float32),
            "rewards": np.asarray(rews, np.float64), "terminations": np.asarray(terms, bool),
            "truncations": np.asarray(truncs, bool), "seed": int(seed), "completed": completed}


def _stack_obs(obs_list: list[Any]) -> Any:
    if isinstance(obs_list[0], dict):
        return {k: _stack_obs([o[k] for o in obs_list]) for k in obs_list[0]}
    return np.stack([np.asarray(o, np.float64) for o in obs_list])


def _raw_kitchen_env(tasks: tuple[str, ...], max_steps: int):
    import gymnasium as gym
    import gymnasium_robotics

    gym.register_envs(gymnasium_robotics)
    return gym.make("FrankaKitchen-v1", tasks_to_complete=list(tasks), max_episode_steps=max_steps)


# Data qualities per variant: action noise and waypoint jitter (std), like D4RL's complete (clean demos of the
# task), partial (play data, some of which solves it) and mixed (play data that never solves the whole task).
VARIANT_NOISE = {"complete": (0.02, 0.005), "partial": (0.1, 0.02), "mixed": (0.15, 0.03)}


def make_kitchen_dataset(dataset_id: str, *, root: str | os.PathLike | None = None, n_episodes: int | None = None,
                         seed: int = 0, progress: bool = True, force: bool = False) -> dict[str, Any]:
    """Make `D4RL/kitchen/<variant>-v2` as a Minari dataset of scripted episodes."""
    from tqdm import tqdm

    from bench.data.loaders import PROVENANCE_KEY, minari_root
    from bench.tasks.kitchen import KITCHEN_MAX_STEPS, KITCHEN_TASK_SETS

    variant = variant_of(dataset_id)
    root = Path(root) if root is not None else minari_root()
    target = root / dataset_id
    if (target / "data").exists() and not force:
        return {"dataset_id": dataset_id, "path": str(target), "status": "exists"}
    tasks = KITCHEN_TASK_SETS[variant]
    n_episodes = int(n_episodes or 50)
    action_std, jitter_std = VARIANT_NOISE[variant]
    env = _raw_kitchen_env(tasks, KITCHEN_MAX_STEPS)
    rng = np.random.default_rng(seed)
    t0 = time.time()
    episodes = []
    for i in tqdm(range(n_episodes), desc=f"make {dataset_id}", disable=not progress):
        ep_tasks = tasks
        if variant != "complete":  # play data: a random ordered subset of the subtasks, tried in D4RL's order
            keep = rng.random(len(tasks)) < 0.75
            ep_tasks = tuple(t for t, k in zip(tasks, keep) if k) or tasks[:1]
        episodes.append(scripted_episode(env, ep_tasks, seed * 1_000_003 + i, rng, action_std, jitter_std,
                                         KITCHEN_MAX_STEPS))
    steps = sum(len(e["actions"]) for e in episodes)
    wall = time.time() - t0
    per_subtask = {t: float(np.mean([t in e["completed"] for e in episodes])) for t in tasks}
    completed = [len(e["completed"]) for e in episodes]
    provenance = {"source": "made", "made_by": "bench.data.kitchen scripted end-effector controller",
                  "dataset_id": dataset_id, "variant": variant, "tasks": list(tasks), "dataset_seed": seed,
                  "episodes": n_episodes, "action_std": action_std, "jitter_std": jitter_std,
                  "subtask_success": per_subtask, "mean_completed": float(np.mean(completed)),
                  "all_four_rate": float(np.mean([c == 4 for c in completed])),
                  "collected": {"mean_return": float(np.mean([e["rewards"].sum() for e in episodes])),
                                "episodes": n_episodes, "steps": steps}}
    path = _write_minari(root, dataset_id, episodes, env.spec, provenance, PROVENANCE_KEY)
    env.close()
    return {"dataset_id": dataset_id, "path": str(path), "status": "made", "episodes": n_episodes,
            "env_steps": steps, "steps_per_s": steps / max(wall, 1e-9), **{k: provenance[k] for k in
                                                                          ("subtask_success", "mean_completed",
                                                                           "all_four_rate")}}


def _write_minari(root: Path, dataset_id: str, episodes: list[dict[str, Any]], env_spec, provenance: dict,
                  provenance_key: str) -> Path:
    """Minari's own writer into a staging root, then moved into place (readers never see a torn dataset)."""
    import minari
    from minari.data_collector.episode_buffer import EpisodeBuffer

    from bench.data.make import _datasets_path

    staging = root / ".mbench-staging" / f"{os.getpid()}-{time.time_ns()}"
    buffers = [EpisodeBuffer(id=i, seed=e["seed"], observations=e["observations"], actions=e["actions"],
                             rewards=e["rewards"], terminations=e["terminations"], truncations=e["truncations"])
               for i, e in enumerate(episodes)]
    with _datasets_path(staging), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds = minari.create_dataset_from_buffers(
            dataset_id, buffers, env=env_spec, eval_env=env_spec, algorithm_name="mbench-scripted-kitchen",
            author="modip-bench", author_email="n/a", code_permalink="modip-bench: bench/data/kitchen.py",
            ref_min_score=0.0, ref_max_score=4.0, num_episodes_average_score=len(episodes),
            description=f"Look-alike of {dataset_id} made offline by scripted demonstrations (`mbench data make`).")
        ds.storage.update_metadata({provenance_key: json.dumps(provenance)})
    target = root / dataset_id
    target.parent.mkdir(parents=True, exist_ok=True)
    if target.exists():
        shutil.rmtree(target)
    os.replace(staging / dataset_id, target)
    shutil.rmtree(staging, ignore_errors=True)
    with contextlib.suppress(OSError):
        staging.parent.rmdir()
    from minari.dataset.minari_dataset import parse_dataset_id
    from minari.namespace import create_namespace, list_local_namespaces

    with _datasets_path(root):
        ns = parse_dataset_id(dataset_id)[0]
        if ns is not None and ns not in list_local_namespaces():
            create_namespace(ns)
    return target


def obs_flattener_for(dataset_id: str) -> Callable[[Any], np.ndarray] | None:
    return flatten_kitchen_obs if str(dataset_id).startswith(KITCHEN_PREFIX) else None
