"""The measuring side of benchmarks/profile_floor.py: run inside the tree being measured, it times, profiles and
counts the FLOPs of that tree's training window and prints one JSON line of results.

Why a subprocess per tree: as benchmarks/throughput_probe.py (whose run_job, Recorder and patches this drives,
loaded from its file, with a Hook), the old tree (05edce8) and this one share package names, so each is measured
in a process whose sys.path[0] is that tree (the working directory), and nothing of either tree is edited.

Each job is one run of the tree's own `run_one` in one of three modes, the same seed and budgets for all three
(a run is deterministic on one CPU thread, so the three see the same window; the FLOP run's window is reported
next to the timed one's so that a mismatch shows):
  time     throughput_probe's timing alone (no hook): the measured cost;
  profile  cProfile on over the training window only (paused during evaluations): per function, calls, self
           and inclusive seconds (the top of them by self time, and every frame of the tree's bench/ and methods/
           among the top by inclusive time);
  flops    torch.utils.flop_counter.FlopCounterMode around every outermost act/update/pretrain call in the
           window (the common start: over its steps), and around every evaluation, the FLOPs kept per
           (op, argument shapes); then, in this process, each of the shapes that make up most of the FLOPs is
           timed on this machine (one thread, float32, best of repeats): the floor is the sum over shapes of
           FLOPs / that shape's measured rate (shapes not timed: the timed ones' overall rate).
The training window is `training`: "online" (throughput_probe's window [w0, w1) of env steps), "pretrain" (the
offline grad steps after the first fifth, as throughput_probe's pretrain_cost) or "common_start" (the BC steps
after the first fifth, as its common_start_cost).

Usage (from benchmarks/profile_floor.py): cd <tree> && python <this file> '<json list of jobs>'
A job is throughput_probe's run job plus {"mode": "time" | "profile" | "flops", "training": ..., "top": n}; a
job that fails gives {"error": ...} and the next one runs. The last stdout line is the JSON results, with
"rates": the reference matmul rates (GFLOP/s) of REFERENCE.
"""
from __future__ import annotations

import contextlib
import cProfile
import importlib.util
import json
import os
import pstats
import sys
import tempfile
import time
import traceback
from pathlib import Path

sys.path[0] = os.getcwd()  # the tree being measured, not this file's folder

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")

import torch
from torch.utils.flop_counter import FlopCounterMode

import bench  # the tree's own (sys.path[0] above)

torch.set_num_threads(1)


def _load_probe():
    spec = importlib.util.spec_from_file_location("throughput_probe",
                                                  Path(__file__).resolve().with_name("throughput_probe.py"))
    mod = importlib.util.module_from_spec(spec)
    sys.modules["throughput_probe"] = mod
    spec.loader.exec_module(mod)
    return mod


tp = _load_probe()

# Matmul shapes timed for reference: (op, [M, K] @ [K, N]) at the layer widths of the DPs and critics.
REFERENCE = (("mm", 256, 512, 512), ("mm", 1024, 512, 512), ("mm", 64, 512, 512), ("mm", 256, 256, 256),
             ("mm", 1, 512, 512))
COVER = 0.98  # shapes are timed until they hold this share of a job's FLOPs
MAX_SHAPES = 24


# ---- FLOPs per (op, argument shapes) ------------------------------------------------------------------------
class ShapeFlops(FlopCounterMode):
    """FlopCounterMode that adds every counted call to `sink`: (op, arguments' signature) -> [calls, FLOPs, a
    rebuilder of the arguments]. Without its per-module tracking, whose backward hooks break autograd.grad inside
    the window (PA-RL's action ascent) and which the floor does not need."""

    def __init__(self, sink: dict):
        super().__init__(display=False)
        self.mod_tracker = contextlib.nullcontext()
        self.sink = sink

    def _count_flops(self, func_packet, out, args, kwargs):
        if func_packet in self.flop_registry:
            n = self.flop_registry[func_packet](*args, **kwargs, out_val=out)
            key = (str(func_packet).split(".")[-1], signature(args), signature(kwargs))
            entry = self.sink.get(key)
            if entry is None:
                entry = self.sink[key] = [0, 0, (func_packet, spec(args), spec(kwargs))]
            entry[0] += 1
            entry[1] += int(n)
        return out


def signature(x) -> str:
    """A short printable signature of an op's arguments: tensors by shape, a transposed layout marked T and an
    expanded one (a zero stride) E."""
    if isinstance(x, torch.Tensor):
        t = "T" if x.dim() == 2 and x.stride(0) == 1 and x.size(0) > 1 and x.size(1) > 1 else ""
        e = "E" if 0 in x.stride() and x.numel() > 1 else ""
        return "[" + "x".join(str(d) for d in x.shape) + "]" + t + e
    if isinstance(x, (list, tuple)):
        return ",".join(s for s in (signature(v) for v in x) if s)
    if isinstance(x, dict):
        return ",".join(f"{k}={signature(v)}" for k, v in x.items() if signature(v))
    return "" if x is None else repr(x)


def spec(x):
    """What rebuilds an op's arguments: tensors as (shape, stride, dtype); plain values as they are."""
    if isinstance(x, torch.Tensor):
        return ("tensor", tuple(x.shape), tuple(x.stride()), x.dtype)
    if isinstance(x, (list, tuple)):
        return type(x)(spec(v) for v in x)
    if isinstance(x, dict):
        return {k: spec(v) for k, v in x.items()}
    return x


def build(s):
    if isinstance(s, tuple) and len(s) == 4 and s[0] == "tensor":
        shape, stride, dtype = s[1:]
        n = 1 + sum((d - 1) * st for d, st in zip(shape, stride)) if all(shape) else 0
        base = torch.randn(n) if dtype.is_floating_point else torch.zeros(n)  # then the same layout over it
        return base.to(dtype).as_strided(shape, stride)
    if isinstance(s, (list, tuple)):
        return type(s)(build(v) for v in s)
    if isinstance(s, dict):
        return {k: build(v) for k, v in s.items()}
    return s


_SHAPE_TIMES: dict[tuple, float | None] = {}


def op_seconds(key: tuple, rebuild: tuple) -> float | None:
    """Best seconds per call of the op on fresh arguments of the same shapes and layout (cached per process)."""
    if key not in _SHAPE_TIMES:
        func, args_spec, kwargs_spec = rebuild
        try:
            args, kwargs = build(args_spec), build(kwargs_spec)
            with torch.no_grad():
                for _ in range(3):
                    func(*args, **kwargs)
                reps, dt = 1, 0.0
                while True:  # enough calls for a block of >= 5 ms
                    t0 = time.perf_counter()
                    for _ in range(reps):
                        func(*args, **kwargs)
                    dt = time.perf_counter() - t0
                    if dt >= 0.005 or reps >= 1 << 16:
                        break
                    reps *= 4
                best = dt / reps
                for _ in range(6):
                    t0 = time.perf_counter()
                    for _ in range(reps):
                        func(*args, **kwargs)
                    best = min(best, (time.perf_counter() - t0) / reps)
            _SHAPE_TIMES[key] = best
        except Exception:  # noqa: BLE001 - an op not callable again from its shapes: the others' rate stands in
            _SHAPE_TIMES[key] = None
    return _SHAPE_TIMES[key]


def floor_of(sink: dict) -> dict:
    """{flops, floor_s, rate, timed_share, shapes}: the floor of the FLOPs in `sink` at this machine's rates."""
    total = sum(e[1] for e in sink.values())
    rows, timed_flops, timed_s, covered = [], 0, 0.0, 0
    for key, (calls, flops, rebuild) in sorted(sink.items(), key=lambda kv: -kv[1][1]):
        if (total and covered / total >= COVER) or len(rows) >= MAX_SHAPES:
            break
        covered += flops
        per = op_seconds(key, rebuild)
        if per is None or flops == 0:
            continue
        rows.append({"op": key[0], "args": key[1], "calls": calls, "flops": flops,
                     "gflops_per_s": flops / calls / per / 1e9, "seconds": per * calls})
        timed_flops += flops
        timed_s += per * calls
    rate = timed_flops / timed_s if timed_s > 0 else None  # FLOP/s over the timed shapes
    rest = total - timed_flops
    floor = timed_s + (rest / rate if rate else 0.0)
    return {"flops": total, "floor_s": floor, "rate": rate, "timed_share": timed_flops / total if total else None,
            "shapes": rows[:8]}


def reference_rates() -> list[dict]:
    out = []
    for op, m, k, n in REFERENCE:
        per = op_seconds(("ref", m, k, n), (torch.ops.aten.mm, (("tensor", (m, k), (k, 1), torch.float32),
                                                                  ("tensor", (k, n), (n, 1), torch.float32)), {}))
        out.append({"op": op, "args": f"[{m}x{k}],[{k}x{n}]", "gflops_per_s": 2 * m * k * n / per / 1e9})
    return out


# ---- the hooks ------------------------------------------------------------------------------------------------
class WindowHook(tp.Hook):
    """Common to both instruments: which calls are in the training window."""

    def __init__(self, training: str, first: int):
        self.training = training
        self.first = first  # pretrain and common start: the first step of the window (after the first fifth)
        self.counts: dict[str, int] = {}
        self.cs_open = False

    def in_window(self, kind: str, name: str, phase: str, in_window: bool) -> bool:
        if phase != "train":
            return False
        if self.training == "online":
            return in_window and kind in ("act", "update")
        if self.training == "pretrain" and kind == "pretrain":
            i = self.counts[name] = self.counts.get(name, 0) + 1
            return i > self.first
        return False

    def common_start(self, n: int | None) -> None:
        if self.training != "common_start":
            return
        if n is not None and n == self.first and not self.cs_open:
            self.cs_open = True
            self.start()
        elif n is None and self.cs_open:
            self.cs_open = False
            self.stop()

    def start(self) -> None:
        pass

    def stop(self) -> None:
        pass


class ProfileHook(WindowHook):
    """cProfile over the window: on while it is open (online), around its calls (pretrain), over its steps (common
    start); off during evaluations."""

    def __init__(self, training: str, first: int):
        super().__init__(training, first)
        self.prof = cProfile.Profile()
        self.on = False
        self.wall = 0.0
        self._t0 = 0.0

    def start(self) -> None:
        if not self.on:
            self.on = True
            self._t0 = time.perf_counter()
            self.prof.enable()

    def stop(self) -> None:
        if self.on:
            self.prof.disable()
            self.on = False
            self.wall += time.perf_counter() - self._t0

    def window(self, is_open: bool) -> None:
        if self.training == "online":
            (self.start if is_open else self.stop)()

    @contextlib.contextmanager
    def call(self, kind, name, phase, in_window):
        if self.training == "pretrain" and self.in_window(kind, name, phase, in_window):
            self.start()
            try:
                yield
            finally:
                self.stop()
        else:
            yield

    @contextlib.contextmanager
    def eval(self, actor):
        was = self.on
        self.stop()
        try:
            yield
        finally:
            if was:
                self.start()

    def stats(self, top: int) -> dict:
        """The top functions by self time (leaf ops) and the tree's own frames by inclusive time."""
        self.stop()
        st = pstats.Stats(self.prof).stats
        total = sum(v[2] for v in st.values()) or 1.0
        tree = os.getcwd()
        own = [os.path.join(tree, d) + os.sep for d in ("bench", "methods")]
        leaves, frames = [], []
        for (file, line, func), (_cc, nc, tt, ct, _callers) in st.items():
            if file == "~":  # a built-in
                label = func
            else:
                where = os.path.relpath(file, tree) if file.startswith(tree) else file.split("site-packages/")[-1]
                label = f"{where}:{line}({func})"
            leaves.append({"frame": label, "calls": nc, "self": tt / total, "incl": ct / total})
            if any(file.startswith(d) for d in own):
                frames.append({"frame": label, "calls": nc, "self": tt / total, "incl": ct / total})
        leaves.sort(key=lambda r: -r["self"])
        frames.sort(key=lambda r: -r["incl"])
        return {"total_s": total, "wall_s": self.wall, "leaves": leaves[:top], "frames": frames[:top]}


class FlopHook(WindowHook):
    """FLOPs of the window's calls (all in one sink) and of each evaluation (a sink per call)."""

    def __init__(self, training: str, first: int):
        super().__init__(training, first)
        self.train: dict = {}
        self.evals: list[tuple[str, dict]] = []
        self._cs: ShapeFlops | None = None

    def call(self, kind, name, phase, in_window):
        if self.training != "common_start" and self.in_window(kind, name, phase, in_window):
            return ShapeFlops(self.train)
        return contextlib.nullcontext()

    def eval(self, actor):
        sink: dict = {}
        self.evals.append((actor, sink))
        return ShapeFlops(sink)

    def start(self) -> None:
        self._cs = ShapeFlops(self.train)
        self._cs.__enter__()

    def stop(self) -> None:
        if self._cs is not None:
            self._cs.__exit__(None, None, None)
            self._cs = None


# ---- jobs -------------------------------------------------------------------------------------------------------
def first_step(job: dict) -> int:
    """The window's first step for pretrain and common start: the first fifth left out, as throughput_probe."""
    key = {"pretrain": "pretrain.steps", "common_start": "common_start.steps"}.get(job["training"])
    return max(1, int(job["overrides"].get(key, 0)) // 5) if key else 0


def floor_job(job: dict, scratch: str) -> dict:
    mode, training = job["mode"], job["training"]
    first = first_step(job)
    hook = {"time": None, "profile": ProfileHook, "flops": FlopHook}[mode]
    hook = hook(training, first) if hook else None
    res = tp.run_job(job, scratch, hook)
    out = {"mode": mode, "training": training, "preset": res["preset"], "wall_s": res["wall_s"]}
    # the window's cost and its unit count, as throughput_probe measured it
    if training == "online":
        tr = res["train"]
        out["window"] = tr and {"seconds": tr["total"], "act_update": tr["act"] + tr["update"], "steps": tr["steps"],
                                "span": tr["window"], "load": tr["load"], "unit": "env step"}
    else:
        c = res[training]
        out["window"] = c and {"seconds": c["per_step"], "act_update": c["per_step"], "steps": c["steps"],
                               "span": None, "load": c.get("load"), "unit": "grad step"}
    out["eval"] = {a: {"seconds": e["per_step"], "act": e["act_per_step"], "steps": e["steps"]}
                   for a, e in res["eval"].items()}
    if mode == "profile":
        out["profile"] = hook.stats(int(job.get("top", 8)))
    if mode == "flops":
        out["train_floor"] = floor_of(hook.train)
        out["eval_floor"] = {}
        rec_evals = tp.Patches.rec.evals
        for actor in dict.fromkeys(a for a, _ in hook.evals):
            idx = [i for i, (a, _) in enumerate(hook.evals) if a == actor]
            used = idx[1:] if len(idx) > 1 else idx  # as eval_costs: the first left out where there are more
            sink: dict = {}
            for i in used:
                for key, (calls, flops, rebuild) in hook.evals[i][1].items():
                    e = sink.setdefault(key, [0, 0, rebuild])
                    e[0] += calls
                    e[1] += flops
            f = floor_of(sink)
            f["steps"] = sum(rec_evals[i]["steps"] for i in used)
            out["eval_floor"][actor] = f
    return out


def main(argv: list[str]) -> int:
    jobs = json.loads(argv[0])
    results = []
    with tempfile.TemporaryDirectory(prefix="floor-") as scratch:
        for i, job in enumerate(jobs):
            sub = os.path.join(scratch, str(i))
            os.makedirs(sub)
            try:
                res = floor_job(job, sub)
            except Exception as e:  # noqa: BLE001 - this tree cannot be driven so: said in its row, and go on
                res = {"error": f"{type(e).__name__}: {e}", "trace": traceback.format_exc()[-2000:]}
            res["threads"] = tp.one_thread()
            results.append(res)
    print(json.dumps({"tree": os.path.dirname(os.path.dirname(os.path.abspath(bench.__file__))),
                      "results": results, "rates": reference_rates()}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
