"""robomimic hdf5: the reader, and a maker of look-alike demos (scripted OSC grasp-and-place) for Lift and Can.

Why: the paper's manipulation results use robomimic's datasets, whose format is `data/demo_i/{obs/<key>,
next_obs/<key>, actions, rewards, dones, states}` with `data.attrs["env_args"]` (the env they were recorded in),
`mask/<filter>` lists of demo names (train/valid splits; MH files add operator-quality filters such as
`better`, `okay`, `worse`), and per-demo `num_samples` / `model_file` attributes. The reader turns such a file
into our `OfflineDataset`; the maker writes files in exactly that layout (robomimic's own `SequenceDataset`
opens them) so the suite runs here without downloads.

Where files live: a dataset id `robomimic/<task>/<ph|mh>` is the file `<root>/<task>/<ph|mh>/low_dim*.hdf5` with
`<root>` = `ROBOMIMIC_DATASETS_PATH` (default `~/.robomimic/datasets`), i.e. robomimic's download layout. A made
file is `low_dim_made.hdf5`; a real one (`low_dim_v141.hdf5`, `low_dim_v15.hdf5`, `low_dim.hdf5`) wins if present.

Transitions: robomimic's demos go on for a few steps after the first success (reward 1 on each). Our env ends
the episode at the first success (as robomimic's rollouts do), so the reader cuts each demo there and marks that
step terminal; a demo that never succeeds ends in a timeout.
"""
from __future__ import annotations

import dataclasses
import json
import os
import time
from pathlib import Path
from typing import Any

import numpy as np

from bench.data import DatasetError, OfflineDataset

REAL_FILE_NAMES = ("low_dim_v15.hdf5", "low_dim_v141.hdf5", "low_dim.hdf5")
MADE_FILE_NAME = "low_dim_made.hdf5"


def robomimic_root() -> Path:
    env = os.environ.get("ROBOMIMIC_DATASETS_PATH")
    return Path(env) if env else Path.home() / ".robomimic" / "datasets"


def parse_id(dataset_id: str) -> tuple[str, str]:
    parts = dataset_id.split("/")
    from bench.tasks.robomimic import ROBOMIMIC_TASKS

    if len(parts) != 3 or parts[0] != "robomimic" or parts[1] not in ROBOMIMIC_TASKS or parts[2] not in ("ph", "mh"):
        raise DatasetError(f"bad robomimic dataset id '{dataset_id}': expected robomimic/<task>/<ph|mh> with task "
                           f"in {sorted(ROBOMIMIC_TASKS)}")
    return parts[1], parts[2]


def is_robomimic_file(path: str | os.PathLike) -> bool:
    """An hdf5 file with robomimic's layout (a `data` group of `demo_*` groups)."""
    import h5py

    try:
        with h5py.File(path, "r") as f:
            return "data" in f and isinstance(f["data"], h5py.Group) and (
                "env_args" in f["data"].attrs or any(k.startswith("demo") for k in f["data"]))
    except OSError:
        return False


def resolve_path(source: str | os.PathLike) -> Path | None:
    """The hdf5 file of a robomimic id or path; None for anything that is not robomimic data."""
    s = str(source)
    if s.startswith("robomimic/"):
        task, kind = parse_id(s)
        folder = robomimic_root() / task / kind
        for name in REAL_FILE_NAMES + (MADE_FILE_NAME,):
            if (folder / name).exists():
                return folder / name
        raise DatasetError(f"dataset '{s}' not found in {folder}: download robomimic's low_dim file there "
                           f"(robomimic/scripts/download_datasets.py --tasks {task} --dataset_types {kind} "
                           f"--hdf5_types low_dim), or run `mbench data make {s}`, or set ROBOMIMIC_DATASETS_PATH")
    if s.endswith((".hdf5", ".h5")) and os.path.exists(s) and is_robomimic_file(s):
        return Path(s)
    return None


def read_env_args(path: str | os.PathLike) -> dict[str, Any]:
    import h5py

    with h5py.File(path, "r") as f:
        if "data" not in f or "env_args" not in f["data"].attrs:
            raise DatasetError(f"robomimic file '{Path(path).name}' has no data.attrs['env_args']")
        raw = f["data"].attrs["env_args"]
    return json.loads(raw.decode() if isinstance(raw, bytes) else raw)


def _demo_sort_key(name: str) -> int:
    return int(name.split("_")[-1]) if name.split("_")[-1].isdigit() else 1 << 30


def load_robomimic(source: str | os.PathLike, dataset_id: str | None = None, obs_keys: tuple[str, ...] | None = None,
                   filter_key: str | None = None, cut_at_success: bool = True) -> OfflineDataset:
    """Read a robomimic hdf5 file (id or path) into an OfflineDataset.

    obs_keys: default robomimic's low-dim keys for the file's env. filter_key: a `mask/<key>` (e.g. `train`,
    `better`) selecting demos; None reads every demo."""
    import h5py

    from bench.tasks.robomimic import ENV_TO_TASK, ROBOMIMIC_TASKS

    path = resolve_path(source)
    if path is None:
        raise DatasetError(f"'{source}' is not a robomimic hdf5 file (no data/demo_* groups)")
    env_args = read_env_args(path)
    if obs_keys is None:
        task = ENV_TO_TASK.get(env_args.get("env_name"))
        if task is None:
            raise DatasetError(f"robomimic file '{path.name}': unknown env '{env_args.get('env_name')}'; pass obs_keys")
        obs_keys = ROBOMIMIC_TASKS[task][3]
    obs, act, rew, nobs, term, tout = [], [], [], [], [], []
    with h5py.File(path, "r") as f:
        masks = {k: sorted(x.decode() if isinstance(x, bytes) else str(x) for x in f["mask"][k][()])
                 for k in f["mask"]} if "mask" in f else {}
        demos = sorted(f["data"].keys(), key=_demo_sort_key)
        if filter_key is not None:
            if filter_key not in masks:
                raise DatasetError(f"robomimic file '{path.name}' has no mask '{filter_key}' (has {sorted(masks)})")
            demos = sorted(masks[filter_key], key=_demo_sort_key)
        data_attrs = {k: _plain_attr(v) for k, v in f["data"].attrs.items() if k != "env_args"}
        for name in demos:
            g = f["data"][name]
            missing = [k for k in obs_keys if k not in g["obs"]]
            if missing:
                raise DatasetError(f"robomimic file '{path.name}' {name}: obs keys {missing} missing "
                                   f"(has {sorted(g['obs'])})")
            o = np.concatenate([np.asarray(g["obs"][k], np.float64).reshape(len(g["actions"]), -1)
                                for k in obs_keys], axis=1)
            if "next_obs" in g:
                no = np.concatenate([np.asarray(g["next_obs"][k], np.float64).reshape(len(g["actions"]), -1)
                                     for k in obs_keys], axis=1)
            else:  # s' is the next row; the last row repeats itself (it is terminal or cut off)
                no = np.concatenate([o[1:], o[-1:]], axis=0)
            a = np.asarray(g["actions"], np.float64).reshape(len(o), -1)
            r = np.asarray(g["rewards"], np.float64).reshape(len(o)) if "rewards" in g else np.zeros(len(o))
            d = np.asarray(g["dones"]).reshape(len(o)).astype(bool) if "dones" in g else np.zeros(len(o), bool)
            n = len(o)
            if n == 0:
                continue
            t = np.zeros(n, bool)
            hits = np.flatnonzero(r > 0)
            if cut_at_success and hits.size:
                n = int(hits[0]) + 1
                t[n - 1] = True
            elif d.any():
                n = int(np.flatnonzero(d)[0]) + 1
                t[n - 1] = bool(r[n - 1] > 0)
            to = np.zeros(n, bool)
            if not t[n - 1]:
                to[n - 1] = True
            obs.append(o[:n]), nobs.append(no[:n]), act.append(a[:n]), rew.append(r[:n]), term.append(t[:n])
            tout.append(to)
    if not obs:
        raise DatasetError(f"robomimic file '{path.name}' has no demos" + (f" in mask '{filter_key}'" if filter_key else ""))
    return OfflineDataset(
        dataset_id=dataset_id or str(source),
        observations=np.concatenate(obs).astype(np.float32), actions=np.concatenate(act).astype(np.float32),
        rewards=np.concatenate(rew).astype(np.float32), next_observations=np.concatenate(nobs).astype(np.float32),
        terminals=np.concatenate(term), timeouts=np.concatenate(tout),
        provenance={"source": "robomimic_hdf5", "path_name": path.name, "env_args": env_args,
                    "obs_keys": list(obs_keys), "filter_key": filter_key, "demos": len(obs),
                    "masks": {k: len(v) for k, v in masks.items()}, "data_attrs": data_attrs,
                    "made": path.name == MADE_FILE_NAME},
        ref_min=0.0, ref_max=1.0,
    )


def _plain_attr(v: Any) -> Any:
    if isinstance(v, bytes):
        return v.decode(errors="replace")
    if isinstance(v, np.generic):
        return v.item()
    if isinstance(v, np.ndarray):
        return v.tolist()
    return v


# ---- writing (robomimic's layout) ---------------------------------------------------------------------------
def write_robomimic_hdf5(path: str | os.PathLike, env_args: dict[str, Any], demos: list[dict[str, Any]],
                         masks: dict[str, list[str]], attrs: dict[str, Any] | None = None) -> Path:
    """Write demos in robomimic's layout. Each demo: obs/next_obs (dicts of (T, d) arrays), actions, rewards,
    dones, states, and attrs (num_samples, model_file, ...). Written to a temp name, then moved into place."""
    import h5py

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    total = 0
    with h5py.File(tmp, "w") as f:
        data = f.create_group("data")
        for i, d in enumerate(demos):
            g = data.create_group(f"demo_{i}")
            for part in ("obs", "next_obs"):
                pg = g.create_group(part)
                for k, v in d[part].items():
                    pg.create_dataset(k, data=np.asarray(v))
            for k in ("actions", "rewards", "dones", "states"):
                g.create_dataset(k, data=np.asarray(d[k]))
            g.attrs["num_samples"] = len(d["actions"])
            for k, v in d.get("attrs", {}).items():
                g.attrs[k] = v
            total += len(d["actions"])
        data.attrs["total"] = total
        data.attrs["env_args"] = json.dumps(env_args)
        for k, v in (attrs or {}).items():
            data.attrs[k] = v
        mg = f.create_group("mask")
        for k, names in masks.items():
            mg.create_dataset(k, data=np.array([n.encode() for n in names], dtype="S"))
    os.replace(tmp, path)
    return path


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
    from tqdm import tqdm

    from bench.tasks import get_task
    from bench.tasks.robomimic import RobosuiteLowDimEnv, default_env_args

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
    from bench.tasks.robomimic import ROBOMIMIC_TASKS

    return ROBOMIMIC_TASKS[task][3]
