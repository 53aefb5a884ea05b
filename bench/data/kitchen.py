"""Kitchen data: the flattener for Minari's `D4RL/kitchen/*-v2` datasets, and a maker of look-alike data.

Why: Minari's kitchen datasets store dict observations (`observation`: 59 numbers; `achieved_goal` and
`desired_goal`: dicts per subtask). The suite's env observes only `observation` (bench/tasks/kitchen.py says
why), so the loader must flatten the data the same way; `flatten_kitchen_obs` is that one rule, used by
every `D4RL/kitchen/` id through the suite registry (`bench.data.suites`).

The maker writes a real Minari dataset through the one Minari writer (`bench.data.minari_io.write_minari`):
same dict observations, env spec FrankaKitchen-v1 with the task's subtasks, episode seeds; so
`minari.load_dataset` opens it and the suite runs here without downloads. Its
demonstrations are scripted, in closed loop: an end-effector controller (damped least squares on MuJoCo's site
Jacobian with a gravity feed-forward, the env's own joint-velocity actions) runs one script per subtask; each
script reads the simulator's state (site positions, the object's joint) to choose its next action, e.g. it pulls
the microwave door along its arc until the hinge reads open. Gaussian action noise and jittered targets give
variety. With each variant's noise the scripts complete all four subtasks in most episodes (the dataset's
provenance records each subtask's success rate and the all-four rate); partial and mixed episodes, like D4RL's
play data, attempt a random subset of the subtasks. The scripts never set state, so replaying an episode's
actions from its reset seed reproduces its rewards (the tests check this).
"""
from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from bench.data import DatasetError
from bench.data.minari_io import minari_root, write_minari
from bench.tasks.kitchen import KITCHEN_MAX_STEPS, KITCHEN_TASK_SETS

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
    if not dataset_id.startswith(KITCHEN_PREFIX):
        raise DatasetError(f"'{dataset_id}' is not a kitchen id ({KITCHEN_PREFIX}<complete|partial|mixed>-v2)")
    name = dataset_id[len(KITCHEN_PREFIX):].rsplit("-v", 1)[0]
    if name not in KITCHEN_TASK_SETS:
        raise DatasetError(f"bad kitchen id '{dataset_id}': variant must be one of {sorted(KITCHEN_TASK_SETS)}")
    return name


# ---- the scripted controller -----------------------------------------------------------------------------------
class EndEffectorController:
    """Joint-velocity actions that move FrankaKitchen's `end_effector` site toward a goal pose.

    dq = J^+ [dx; k_w w] over the 7 arm joints, with J^+ = J^T (J J^T + lambda I)^-1 (damped least squares on
    MuJoCo's site Jacobian). w rotates the hand toward its target orientation: the reset orientation
    (gripper pointing +y, fingers spread along world x), turned by `yaw` about world z and by `roll` about the
    gripper's own pointing axis, and tilted down by -`pitch` (reaching low objects, the microwave and the kettle,
    needs the hand tilted down: held level, the arm runs into its joint limits above them).
    FrankaKitchen's actuators are position servos fed with q_observed + a * 2 rad/s * dt (dt = 0.08 s), so the
    action is dq / (2 * dt) plus a gravity feed-forward, kept inside the env's joint bounds, and scaled down as
    a whole (not clipped per joint, which would bend the path) to fit [-1, 1]. Fingers: +1 opens, -1 closes."""

    def __init__(self, env, max_step: float = 0.05, damping: float = 1e-3):
        import mujoco

        self.mujoco = mujoco
        self.u = env.unwrapped
        self.model, self.data = self.u.model, self.u.data
        self.eef_id = mujoco.mj_name2id(self.model, mujoco.mjtObj.mjOBJ_SITE, "end_effector")
        self.max_step, self.damping = max_step, damping
        self.dt = float(self.u.robot_env.dt)
        self.vel_scale = float(np.asarray(self.u.robot_env.act_rng)[0])
        self.R_home = self.rotation()
        # The env's own position bounds (franka_config.xml), which it clips the servo targets to.
        self.q_lo, self.q_hi = np.asarray(self.u.robot_env.robot_pos_bound[:7], float).T
        self.kp = self.model.actuator_gainprm[:7, 0].copy()

    def site(self, name: str) -> np.ndarray:
        sid = self.mujoco.mj_name2id(self.model, self.mujoco.mjtObj.mjOBJ_SITE, name)
        return self.data.site_xpos[sid].copy()

    def qpos(self, joint: str) -> float:
        jid = self.mujoco.mj_name2id(self.model, self.mujoco.mjtObj.mjOBJ_JOINT, joint)
        return float(self.data.qpos[self.model.jnt_qposadr[jid]])

    def eef(self) -> np.ndarray:
        return self.data.site_xpos[self.eef_id].copy()

    def rotation(self) -> np.ndarray:
        return self.data.site_xmat[self.eef_id].reshape(3, 3).copy()

    def target_rotation(self, yaw: float, roll: float, pitch: float) -> np.ndarray:
        cy, sy, cr, sr, cp, sp = np.cos(yaw), np.sin(yaw), np.cos(roll), np.sin(roll), np.cos(pitch), np.sin(pitch)
        Rz = np.array([[cy, -sy, 0.0], [sy, cy, 0.0], [0.0, 0.0, 1.0]])
        Rx = np.array([[1.0, 0.0, 0.0], [0.0, cp, -sp], [0.0, sp, cp]])  # pitch < 0 tilts the hand down
        Rroll = np.array([[cr, -sr, 0.0], [sr, cr, 0.0], [0.0, 0.0, 1.0]])  # about the site's z (pointing) axis
        return Rz @ Rx @ self.R_home @ Rroll

    def action(self, goal: np.ndarray, grip: float, yaw: float = 0.0, roll: float = 0.0,
               pitch: float = 0.0) -> np.ndarray:
        jp = np.zeros((3, self.model.nv))
        jr = np.zeros((3, self.model.nv))
        self.mujoco.mj_jacSite(self.model, self.data, jp, jr, self.eef_id)
        J = np.vstack([jp[:, :7], jr[:, :7]])
        dx = np.asarray(goal, float) - self.eef()
        n = np.linalg.norm(dx)
        if n > self.max_step:
            dx *= self.max_step / n
        R, Rt = self.rotation(), self.target_rotation(yaw, roll, pitch)
        w = 0.5 * sum(np.cross(R[:, i], Rt[:, i]) for i in range(3))
        wn = np.linalg.norm(w)
        if wn > 0.15:
            w *= 0.15 / wn
        err = np.concatenate([dx, 0.7 * w])
        q = self.data.qpos[:7]
        # Gravity feed-forward: a position servo holds q_ctrl - q = bias / kp at rest, so aim that much further
        # (qfrc_bias: gravity and Coriolis torques at the current state), or the hand sags centimetres.
        ff = self.data.qfrc_bias[:7] / self.kp
        # Joint bounds: a joint whose step would cross its bound (further than it already is) is held there and
        # the step is solved again over the other joints, so the hand still moves the way it should (clipping
        # the joints one by one would bend the path, sometimes right away from the goal).
        lo, hi = np.minimum(self.q_lo, q) - q, np.maximum(self.q_hi, q) - q
        free = np.ones(7, bool)
        dq = np.zeros(7)
        for _ in range(4):
            Jf = J[:, free]
            dq[:] = 0.0
            dq[free] = Jf.T @ np.linalg.solve(Jf @ Jf.T + self.damping * np.eye(6), err)
            dq += ff
            out = free & ((dq < lo) | (dq > hi))
            if not out.any():
                break
            free &= ~out
        dq = np.clip(dq, lo, hi)
        a = np.zeros(9)
        a[:7] = dq / (self.vel_scale * self.dt)
        m = np.abs(a[:7]).max()
        if m > 1.0:
            a[:7] /= m
        a[7:9] = grip
        return np.clip(a, -1.0, 1.0)


# ---- subtask scripts -------------------------------------------------------------------------------------------
# Each script is a generator of actions: it yields one action, the episode loop steps the env with it (plus the
# data's action noise), and the script reads the new state before choosing the next. So the scripts close the
# loop on the simulator (e.g. pull the microwave door until its hinge reads open), which makes them reliable
# under noise; they only ever choose actions.
def _move(ctrl: EndEffectorController, goal, grip: float, steps: int, tol: float = 0.015, yaw: float = 0.0,
          roll: float = 0.0, pitch: float = 0.0):
    goal = np.asarray(goal, float)
    for _ in range(steps):
        yield ctrl.action(goal, grip, yaw, roll, pitch)
        if np.linalg.norm(goal - ctrl.eef()) < tol:
            return


def _hold(ctrl: EndEffectorController, grip: float, steps: int, yaw: float = 0.0, roll: float = 0.0,
          pitch: float = 0.0):
    goal = ctrl.eef()
    for _ in range(steps):
        yield ctrl.action(goal, grip, yaw, roll, pitch)


def _script_slide_cabinet(ctrl, j):
    # Put the fingertips left of the cabinet's handle and sweep right: the door slides open (goal 0.37 m).
    s = ctrl.site("slide_site") + j
    yield from _move(ctrl, s + [-0.08, -0.12, 0.0], 1.0, 40, tol=0.03)
    yield from _move(ctrl, s + [-0.08, 0.0, 0.0], 1.0, 20)
    for _ in range(40):
        if ctrl.qpos("slide_cabinet") > 0.3:
            break
        yield ctrl.action(s + [0.3, 0.0, 0.0], 1.0)
    yield from _move(ctrl, ctrl.eef() + [0.0, -0.12, 0.0], 1.0, 8, tol=0.03)


def _script_light_switch(ctrl, j):
    # Closed fingers (a narrow hand that clears the oven knobs to the right) push the switch lever's tip from its
    # right side to the left: it turns about its vertical pivot toward the goal (-0.69 rad).
    s = ctrl.site("light_site") + j
    yield from _move(ctrl, s + [0.05, -0.10, 0.0], -1.0, 40, tol=0.03)
    yield from _move(ctrl, s + [0.05, 0.0, 0.0], -1.0, 15)
    for _ in range(30):
        if ctrl.qpos("light_switch") < -0.6:
            break
        yield ctrl.action(s + [-0.12, 0.0, 0.0], -1.0)
    yield from _move(ctrl, ctrl.eef() + [0.0, -0.12, 0.0], -1.0, 8, tol=0.03)


def _rot2(v, ang):
    c, s = np.cos(ang), np.sin(ang)
    return np.array([c * v[0] - s * v[1], s * v[0] + c * v[1]])


def _script_microwave(ctrl, j):
    # Grasp the door's vertical handle bar and pull it along the door's arc about the hinge, always aiming a
    # little ahead of the door's current angle (and turning the hand with the door), until the door reads open.
    s = ctrl.site("microhandle_site") + j
    hinge = ctrl.data.xanchor[ctrl.mujoco.mj_name2id(ctrl.model, ctrl.mujoco.mjtObj.mjOBJ_JOINT, "microwave")][:2]
    grasp = s + [0.0, 0.01, 0.0]
    yield from _move(ctrl, s + [0.0, -0.12, 0.0], 1.0, 45, tol=0.03, pitch=-0.6)
    yield from _move(ctrl, grasp, 1.0, 12, pitch=-0.6)
    yield from _hold(ctrl, -1.0, 5, pitch=-0.6)
    rel = grasp[:2] - hinge
    for _ in range(50):
        ang = ctrl.qpos("microwave")
        # The goal is -0.75 +- 0.3: past -0.47 the subtask has counted. Pulling on costs many steps (the arm is
        # near the end of its reach there and the grasp starts to slip) for an angle that no longer matters.
        if ang < -0.47:
            break
        target = ang - 0.1
        p = hinge + _rot2(rel, target)
        yield ctrl.action([p[0], p[1], grasp[2]], -1.0, yaw=0.6 * target, pitch=-0.6)
    ang = ctrl.qpos("microwave")
    yield from _hold(ctrl, 1.0, 4, yaw=0.6 * ang, pitch=-0.6)
    out = _rot2(np.array([0.0, -0.12]), ang)  # the door's outward normal, turned with the door
    yield from _move(ctrl, ctrl.eef() + [out[0], out[1], 0.05], 1.0, 10, tol=0.03, yaw=0.6 * ang, pitch=-0.6)


def _script_kettle(ctrl, j):
    # The kettle's handle is an arch: a thick bar along x on two uprights. Its bar is too thick to clamp, so
    # the closed fingers go through the arch under the bar, lift the kettle by it (the bar rests on the fingers,
    # the palm behind it pushes), carry it 0.4 m back onto the top-left burner, set it down and slide out.
    s = ctrl.site("kettle_site") + j
    kw = {"pitch": -0.3}  # tilted down to reach under the handle
    yield from _move(ctrl, s + [0.0, -0.12, -0.07], -1.0, 45, tol=0.03, **kw)
    yield from _move(ctrl, s + [0.0, 0.03, -0.07], -1.0, 12, **kw)
    yield from _move(ctrl, s + [0.0, 0.03, 0.0], -1.0, 10, **kw)
    yield from _move(ctrl, s + [0.04, 0.43, 0.0], -1.0, 30, tol=0.02, **kw)
    yield from _move(ctrl, s + [0.04, 0.43, -0.07], -1.0, 8, **kw)
    yield from _move(ctrl, s + [0.04, 0.25, -0.07], -1.0, 8, tol=0.03, **kw)


def _script_bottom_burner(ctrl, j):
    # Clamp the knob's grip bar (fingers spread along x) and turn the wrist about the gripper's pointing axis
    # (the knob's axis) until the knob reads -0.65 rad: the goal is -0.88 +- 0.3, so the subtask has counted.
    s = ctrl.site("knob2_site") + j
    yield from _move(ctrl, s + [0.0, -0.12, 0.0], 1.0, 40, tol=0.03)
    yield from _move(ctrl, s + [0.0, 0.0, 0.0], 1.0, 12)
    yield from _hold(ctrl, -1.0, 5)
    goal = ctrl.eef()
    for k in range(25):
        if ctrl.qpos("knob_Joint_2") < -0.65:
            break
        yield ctrl.action(goal, -1.0, roll=min(1.0, 0.15 * (k + 1)))
    yield from _hold(ctrl, 1.0, 4, roll=1.0)
    yield from _move(ctrl, ctrl.eef() + [0.0, -0.12, 0.0], 1.0, 8, tol=0.03, roll=1.0)


SUBTASK_SCRIPTS = {"slide cabinet": _script_slide_cabinet, "light switch": _script_light_switch,
                   "microwave": _script_microwave, "kettle": _script_kettle, "bottom burner": _script_bottom_burner}

# The order the script works in (any order scores the same in FrankaKitchen-v1): the two low ones first, from
# the reset pose, then up to the knob, the switch and the cabinet, which sit close together high on the wall.
SCRIPT_ORDER = ("microwave", "kettle", "bottom burner", "light switch", "slide cabinet")


def scripted_episode(env, tasks: tuple[str, ...], seed: int, rng: np.random.Generator, action_std: float,
                     jitter_std: float, max_steps: int) -> dict[str, Any]:
    """One scripted episode from env.reset(seed); returns Minari-ready arrays (dict observations)."""
    raw_obs, info = env.reset(seed=seed)
    ctrl = EndEffectorController(env)
    obs_list, acts, rews, terms, truncs = [raw_obs], [], [], [], []
    done = False
    completed: list[str] = []

    def step(a: np.ndarray) -> None:
        nonlocal raw_obs, info, done, completed
        if action_std:
            a = np.clip(a + rng.normal(0.0, action_std, a.shape), -1.0, 1.0)
        a = a.astype(np.float32)  # stored as float32: step with exactly what is stored
        raw_obs, r, term, trunc, info = env.step(a)
        trunc = bool(trunc) or len(acts) + 1 >= max_steps
        obs_list.append(raw_obs), acts.append(a), rews.append(float(r)), terms.append(bool(term))
        truncs.append(bool(trunc and not term))
        completed = list(info.get("episode_task_completions", []))
        done = bool(term or trunc)

    for subtask in [t for t in SCRIPT_ORDER if t in tasks]:
        for a in SUBTASK_SCRIPTS[subtask](ctrl, rng.normal(0.0, jitter_std, 3)):
            step(a)
            if done:
                break
        if done:
            break
    while not done:  # the script ran out of subtasks: hold still until the time limit
        step(ctrl.action(ctrl.eef(), 1.0))
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


# Data qualities per variant: action noise and target jitter (std). complete: clean demos of the task; partial
# and mixed: noisier play data over random subsets of the subtasks (make_kitchen_dataset). The noise stays low
# enough for the scripts to finish (the microwave grasp is the first to slip as noise grows).
VARIANT_NOISE = {"complete": (0.02, 0.005), "partial": (0.04, 0.01), "mixed": (0.05, 0.01)}


def make_kitchen_dataset(dataset_id: str, *, root: str | os.PathLike | None = None, n_episodes: int | None = None,
                         seed: int = 0, progress: bool = True, force: bool = False) -> dict[str, Any]:
    """Make `D4RL/kitchen/<variant>-v2` as a Minari dataset of scripted episodes."""
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
        if variant != "complete":  # play data: a random subset of the subtasks, in the script's order
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
    path = write_minari(
        root, dataset_id, episodes, env.spec, provenance=provenance, ref_min=0.0, ref_max=4.0,
        num_episodes_average_score=n_episodes, algorithm_name="mbench-scripted-kitchen",
        code_permalink="modip-bench: bench/data/kitchen.py",
        description=f"Look-alike of {dataset_id} made offline by scripted demonstrations (`mbench data make`).")
    env.close()
    return {"dataset_id": dataset_id, "path": str(path), "status": "made", "episodes": n_episodes,
            "env_steps": steps, "steps_per_s": steps / max(wall, 1e-9), **{k: provenance[k] for k in
                                                                          ("subtask_success", "mean_completed",
                                                                           "all_four_rate")}}

