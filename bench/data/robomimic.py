"""robomimic look-alike data: a maker of scripted demos (OSC grasp-and-place) for Lift and Can.

Why: the suite must run here without downloads. The maker records scripted demos in the suite's own env
(`bench.tasks.robomimic.RobosuiteLowDimEnv`) and writes them in robomimic's layout (robomimic's own
`SequenceDataset` opens them) through `bench.data.robomimic_hdf5`, which also holds the reader; its names are
importable from here too.
"""
from __future__ import annotations

import dataclasses
import json
import os
import time
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from bench.data import DatasetError
from bench.data.robomimic_hdf5 import (
    MADE_FILE_NAME,
    _demo_sort_key,
    parse_id,
    robomimic_root,
    write_robomimic_hdf5,
)
from bench.tasks import get_task
from bench.tasks.robomimic import ROBOMIMIC_TASKS, RobosuiteLowDimEnv, default_env_args


# ---- scripted demos ---------------------------------------------------------------------------------------------
@dataclasses.dataclass
class ScriptNoise:
    """MH-like variety: Gaussian action noise, a per-demo speed, and random pauses (an operator hesitating)."""
    action_std: float = 0.0
    speed: float = 1.0
    pause_prob: float = 0.0


class ScriptedPickPlace:
    """Grasp-and-place with OSC_POSE deltas, from privileged state (object and target positions).

    Phases: hover above the object, descend, close, lift, (Can: carry over the target bin quadrant, lower,
    open, retreat). Actions are deltas in [-1, 1] (x 0.05 m per step by the controller); orientation deltas are 0
    so the gripper keeps pointing down. The scripted policy only chooses actions: the env does everything else.
    """

    def __init__(self, env, task: str, noise: ScriptNoise, rng: np.random.Generator):
        self.env, self.task, self.noise, self.rng = env, task, noise, rng
        self.phase, self.count = "hover", 0
        self.gain = 10.0 * noise.speed
        self.grasp_offset = rng.uniform(-0.005, 0.005, size=3) * (1 + 4 * noise.action_std)
        self.grasp_offset[2] = 0.0

    def _obj_pos(self) -> np.ndarray:
        rs = self.env.env
        if self.task == "lift":
            return np.array(rs.sim.data.body_xpos[rs.cube_body_id])
        return np.array(rs.sim.data.body_xpos[rs.obj_body_id["Can"]])

    def _target(self) -> np.ndarray:
        rs = self.env.env
        return np.array(rs.target_bin_placements[rs.object_to_id["can"]])

    def _move(self, eef: np.ndarray, goal: np.ndarray, grip: float) -> np.ndarray:
        a = np.zeros(7)
        a[:3] = np.clip(self.gain * (goal - eef), -1.0, 1.0)
        a[6] = grip
        return a

    def act(self) -> np.ndarray:
        rs = self.env.env
        eef = np.array(rs.sim.data.site_xpos[rs.robots[0].eef_site_id["right"]])
        obj = self._obj_pos() + self.grasp_offset
        self.count += 1
        if self.noise.pause_prob and self.phase not in ("close", "open") and self.rng.random() < self.noise.pause_prob:
            a = np.zeros(7)
            a[6] = 1.0 if self.phase in ("lift", "carry", "lower") else -1.0
            return a
        if self.phase == "hover":
            goal = obj + np.array([0, 0, 0.08])
            if np.linalg.norm(goal - eef) < 0.01 or self.count > 80:
                self.phase, self.count = "descend", 0
            a = self._move(eef, goal, -1.0)
        elif self.phase == "descend":
            goal = obj + np.array([0, 0, -0.005 if self.task == "lift" else 0.0])
            if np.linalg.norm(goal - eef) < 0.008 or self.count > 60:
                self.phase, self.count = "close", 0
            a = self._move(eef, goal, -1.0)
        elif self.phase == "close":
            a = self._move(eef, eef, 1.0)
            if self.count >= 12:
                self.phase, self.count = "lift", 0
        elif self.phase == "lift":
            # Lift: raise the cube well above the table. Can: clear the bin walls before carrying.
            height = obj[2] + 0.25 if self.task == "lift" else self._target()[2] + 0.22
            goal = np.array([eef[0], eef[1], height])
            if self.task == "can" and (eef[2] > height - 0.02 or self.count > 60):
                self.phase, self.count = "carry", 0
            a = self._move(eef, goal, 1.0)
        elif self.phase == "carry":
            t = self._target()
            goal = np.array([t[0], t[1], t[2] + 0.22])
            if np.linalg.norm(goal[:2] - eef[:2]) < 0.015 or self.count > 120:
                self.phase, self.count = "lower", 0
            a = self._move(eef, goal, 1.0)
        elif self.phase == "lower":
            t = self._target()
            goal = np.array([t[0], t[1], t[2] + 0.12])
            if eef[2] < goal[2] + 0.01 or self.count > 40:
                self.phase, self.count = "open", 0
            a = self._move(eef, goal, 1.0)
        elif self.phase == "open":
            a = self._move(eef, eef, -1.0)
            if self.count >= 8:
                self.phase, self.count = "retreat", 0
        else:  # retreat: move up, away from the can, so the env counts it as placed
            a = self._move(eef, eef + np.array([0, 0, 0.05]), -1.0)
        if self.noise.action_std:
            a[:3] = np.clip(a[:3] + self.rng.normal(0, self.noise.action_std, 3), -1, 1)
        return a


def _raw_obs(env) -> dict[str, np.ndarray]:
    """robosuite's observation dict plus robomimic's `object` key (robosuite's `object-state`)."""
    raw = env.last_raw
    out = {k: np.asarray(v) for k, v in raw.items() if not k.endswith("image")}
    out["object"] = np.asarray(raw["object-state"])
    return out


def record_demo(env, task: str, noise: ScriptNoise, seed: int, max_steps: int) -> dict[str, Any]:
    """Run the scripted policy once from env.reset(seed) and record it in robomimic's per-demo layout."""
    rng = np.random.default_rng(seed + 1)
    env.reset(seed=seed)
    policy = ScriptedPickPlace(env, task, noise, rng)
    obs_l, nobs_l, acts, rews, dones, states = [], [], [], [], [], []
    raw = _raw_obs(env)
    success = False
    for t in range(max_steps):
        states.append(env.get_state())
        a = policy.act()
        _, r, term, trunc, info = env.step(a)
        nraw = _raw_obs(env)
        obs_l.append(raw), nobs_l.append(nraw), acts.append(a), rews.append(r)
        success = info["success"]
        dones.append(bool(term or trunc))
        raw = nraw
        if term or trunc:
            break
    keys = [k for k in obs_l[0] if np.asarray(obs_l[0][k]).ndim <= 1]
    stack = {k: np.stack([np.asarray(o[k], np.float64).reshape(-1) for o in obs_l]) for k in keys}
    nstack = {k: np.stack([np.asarray(o[k], np.float64).reshape(-1) for o in nobs_l]) for k in keys}
    model = env.env.sim.model.get_xml() if hasattr(env.env.sim.model, "get_xml") else ""
    return {"obs": stack, "next_obs": nstack, "actions": np.stack(acts), "rewards": np.asarray(rews, np.float64),
            "dones": np.asarray(dones, np.int64), "states": np.stack(states), "success": bool(success),
            "attrs": {"model_file": model, "reset_seed": int(seed)}}


MH_OPERATORS = {"better": ScriptNoise(0.05, 1.0, 0.02), "okay": ScriptNoise(0.15, 0.8, 0.05),
                "worse": ScriptNoise(0.3, 0.6, 0.1)}


def make_robomimic_dataset(dataset_id: str, *, root: str | os.PathLike | None = None, n_demos: int | None = None,
                           seed: int = 0, progress: bool = True, force: bool = False,
                           keep_failures: bool = False) -> dict[str, Any]:
    """Make `robomimic/<lift|can>/<ph|mh>` as a robomimic hdf5 file of scripted demos.

    ph: one clean scripted operator (robomimic's PH has 200 demos). mh: three operator qualities, better / okay /
    worse (noisier, slower, hesitant), a third each, with robomimic's MH masks. Like robomimic, only successful
    demos are kept (unless keep_failures). train/valid masks are a 90/10 split."""
    task, kind = parse_id(dataset_id)
    if task not in ("lift", "can"):
        raise DatasetError(f"cannot make '{dataset_id}': scripted demos exist for lift and can only")
    root = Path(root) if root is not None else robomimic_root()
    path = root / task / kind / MADE_FILE_NAME
    if path.exists() and not force:
        return {"dataset_id": dataset_id, "path": str(path), "status": "exists"}
    n_demos = int(n_demos or (200 if kind == "ph" else 300))  # robomimic's PH and MH sizes
    spec = get_task(f"{task}-{kind}")
    env_args = default_env_args(task)
    env = RobosuiteLowDimEnv(env_args, spec_keys(task), spec.max_episode_steps)
    t0 = time.time()
    operators = ["ph"] if kind == "ph" else list(MH_OPERATORS)
    demos, groups, tried, steps = [], {o: [] for o in operators}, 0, 0
    ep_seed = seed * 1_000_003
    with tqdm(total=n_demos, desc=f"make {dataset_id}", disable=not progress) as bar:
        while len(demos) < n_demos:
            op = operators[len(demos) % len(operators)]
            noise = ScriptNoise() if op == "ph" else MH_OPERATORS[op]
            ep_seed += 1
            tried += 1
            d = record_demo(env, task, noise, ep_seed, spec.max_episode_steps)
            steps += len(d["actions"])
            if tried > 5 * n_demos + 20 and not demos:
                raise DatasetError(f"scripted {task} demos never succeed ({tried} tries): the script is broken")
            if not (d["success"] or keep_failures):
                continue
            groups[op].append(f"demo_{len(demos)}")
            demos.append(d)
            bar.update(1)
    env.close()
    names = [f"demo_{i}" for i in range(len(demos))]
    rng = np.random.default_rng(seed)
    valid = sorted(rng.choice(names, size=max(1, len(names) // 10), replace=False).tolist(), key=_demo_sort_key)
    masks = {"train": [n for n in names if n not in valid], "valid": valid}
    if kind == "mh":
        masks.update({op: groups[op] for op in operators})
        for op in operators:
            masks[f"{op}_train"] = [n for n in groups[op] if n not in valid]
            masks[f"{op}_valid"] = [n for n in groups[op] if n in valid]
    success_rate = len(demos) / max(tried, 1)
    prov = {"made_by": "bench.data.robomimic scripted OSC grasp-and-place", "kind": kind, "seed": seed,
            "tried": tried, "kept": len(demos), "scripted_success_rate": success_rate,
            "operators": {op: dataclasses.asdict(MH_OPERATORS[op]) for op in operators if op in MH_OPERATORS}}
    write_robomimic_hdf5(path, env_args, demos, masks, attrs={"mbench_provenance": json.dumps(prov)})
    return {"dataset_id": dataset_id, "path": str(path), "status": "made", "demos": len(demos), "tried": tried,
            "scripted_success_rate": success_rate, "env_steps": steps, "wall_s": time.time() - t0}


def spec_keys(task: str) -> tuple[str, ...]:
    return ROBOMIMIC_TASKS[task][3]
