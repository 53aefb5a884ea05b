"""Seconds from SIGTERM to the exit of a real `mbench run` on a hopper-size task, at each kind of point of a run.

Why (issue 26, medium 3): Slurm sends SIGTERM and kills about 30 s later, so a run must reach a safe point,
checkpoint and record `preempted` within 20 s, wherever the signal finds it: in the common start, in the offline
phase, mid-episode in the online phase (a hopper episode is up to 1000 env steps of planning and updates), or
in an eval (50 hopper episodes with a planning actor take minutes). This script starts one real `mbench run`
(MODIP's `demo` preset on hopper-medium, the diag-hopper sweep's shape at small budgets so that the run reaches
its online phase and an eval quickly; eval.episodes 50, the D4RL final eval's size, since an eval decision's
cost grows with its batch), sends SIGTERM at each point in turn, and reruns the same command after each stop
(it resumes) to reach the next one:

1. common start: at 20% of the common-start DP's build (nothing of the run to save yet: a rerun rebuilds it);
2. offline: at 30% of MODIP's offline updates, between two checkpoints;
3. offline eval: 1 s into the eval at env step 0 (3 actors x 50 episodes), which is abandoned;
4. online: 150 env steps into the online phase, outside an eval (mid-episode, unless the decision in progress
   ends its episode; the table says which);
5. online eval: 1 s into the eval at the first grid step after 0, which is abandoned.

With `--method dppo` it runs DPPO's own points instead, at DPPO's hopper defaults (no preset: 40 envs x 500
decisions of 4 env steps per rollout, minibatch 50000, 5 epochs; online.steps two such rollouts, and no online
eval before the first update):

1. online: 2000 env steps into the rollout (between two decisions; the checkpoint holds the rollout so far);
2. update: `--update-delay` seconds (default 3) after the rollout's end (its bar still that long: hopper's
   episodes end early, so env steps do not say where a rollout ends), in its update, which is abandoned
   before its next gradient step (or pass over the rollout): the checkpoint holds the method as before the
   update, its whole rollout pending, no grad step counted.

Each row: the seconds from the signal to the process's exit, its exit status (143 = 128 + SIGTERM), the status
recorded in the store, and where the checkpoint it saved is (env step, grad step, mid-episode or not). The timing
depends on the machine's load: say what it was when quoting it (the header and the last line print the load
average). The last line is the worst latency.

    MINARI_DATASETS_PATH=../shared/data nice -n 10 python benchmarks/stop_latency.py [--store DIR] [--keep]
        [--method modip|dppo] [--seed 10] [--set KEY=VALUE ...] [--update-delay S] [--finish]
"""
from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

SWEEP = "stop-latency"
LIMIT_S = 20.0  # the bound: Slurm kills ~30 s after SIGTERM
# diag-hopper's settings (sweeps/diag-hopper.yaml) at budgets that reach the online phase and its first evals
# in minutes; periodic checkpoints as rare as there, so that no stop is helped by one just taken.
SETTINGS = {
    "preset": "demo",
    "threads": 1,
    "common_start.steps": 400,
    "common_start.log_every": 50,
    "pretrain.steps": 600,
    "pretrain.log_every": 250,
    "pretrain.checkpoint_every": 5000,
    "online.steps": 3000,
    "online.checkpoint_every": 2000,
    "online.log_every": 500,
    "eval.every": 1000,
    "eval.episodes": 50,
    "eval.final_episodes": 50,
    "eval.seed_set": "tune",
    "eval.timing": False,
}
# DPPO's: its hopper defaults (the class's, DPPO's gym configs), two rollouts' budget (40 envs x 500 decisions x 4
# env steps each, so the first is whole), evals only at env step 0 and at the end (small: the points are the
# rollout and its update).
DPPO_SETTINGS = {
    "threads": 1,
    "common_start.steps": 400,
    "common_start.log_every": 50,
    "online.steps": 160_000,
    "online.checkpoint_every": 10 ** 6,
    "eval.every": 10 ** 6,
    "eval.episodes": 10,
    "eval.final_episodes": 10,
    "eval.seed_set": "tune",
    "eval.timing": False,
}
SETTINGS_OF = {"dppo": DPPO_SETTINGS}
EVAL_START = re.compile(r"eval at env step (\d+): [\w, ]+ x (\d+) episodes \.\.\.")
EVAL_END = re.compile(r"eval at env step (\d+): (?!.* episodes \.\.\.)(.*\d)")


class Child:
    """A `mbench run` child whose stderr (progress bars and lines, split at \\r and \\n) is read as it comes."""

    def __init__(self, argv: list[str], env: dict[str, str]):
        self.proc = subprocess.Popen([sys.executable, "-m", "bench.cli", *argv], cwd=ROOT, env=env,
                                     stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self.pieces: list[str] = []
        self.lock = threading.Lock()
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()
        self.out = b""

    def _read(self) -> None:
        rest = b""
        while True:
            data = os.read(self.proc.stderr.fileno(), 65536)
            if not data:
                break
            parts = re.split(rb"[\r\n]", rest + data)
            rest = parts.pop()
            with self.lock:
                self.pieces.extend(p.decode(errors="replace").strip() for p in parts if p.strip())
        if rest.strip():
            with self.lock:
                self.pieces.append(rest.decode(errors="replace").strip())

    def seen(self) -> list[str]:
        with self.lock:
            return list(self.pieces)

    def wait_for(self, test, what: str, timeout: float):
        """Poll the stderr read so far with `test(pieces)` until it returns something; fail if the run ends."""
        deadline = time.monotonic() + timeout
        while True:
            got = test(self.seen())
            if got:
                return got
            if self.proc.poll() is not None:
                raise RuntimeError(f"the run ended (status {self.proc.returncode}) before {what}:\n"
                                   + "\n".join(self.seen()[-15:]))
            if time.monotonic() > deadline:
                raise RuntimeError(f"no {what} within {timeout:.0f} s:\n" + "\n".join(self.seen()[-15:]))
            time.sleep(0.05)

    def terminate(self) -> tuple[float, int]:
        """SIGTERM; (seconds to the exit, exit status)."""
        t0 = time.monotonic()
        self.proc.send_signal(signal.SIGTERM)
        code = self.proc.wait()
        dt = time.monotonic() - t0
        self.reader.join(timeout=10)
        self.out = self.proc.stdout.read()
        return dt, code

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def bar_at(name: str, pieces: list[str]) -> tuple[int, int] | None:
    """(n, total) of the last progress bar `name` ("modip pretrain: 31%|...| 186/600 [...]")."""
    for p in reversed(pieces):
        m = re.search(re.escape(name) + r":\s*\d+%\|[^|]*\|\s*(\d+)/(\d+)", p)
        if m:
            return int(m.group(1)), int(m.group(2))
    return None


def in_eval(pieces: list[str]) -> int | None:
    """The env step of the eval in progress (its start line seen, not its result line), else None."""
    for p in reversed(pieces):
        start = EVAL_START.search(p)
        if start:
            return int(start.group(1))
        if EVAL_END.search(p):
            return None
    return None


def points(method: str, update_delay: float = 3.0):
    """(name, what the wait looks for, test on the stderr so far, seconds to wait after it) for each point."""
    def share(bar: str, at: float):
        def test(pieces):
            got = bar_at(f"{method} {bar}", pieces)
            return got if got and got[0] >= at * got[1] else None
        return test

    def eval_started(first: bool):
        def test(pieces):
            step = in_eval(pieces)
            return step is not None and (step == 0) == first
        return test

    def online_steps(n: int):
        def test(pieces):
            first = next((i for i, p in enumerate(pieces) if f"{method} online:" in p), None)
            if first is None or in_eval(pieces) is not None:
                return None
            start, now = bar_at(f"{method} online", pieces[:first + 1]), bar_at(f"{method} online", pieces)
            return now if start and now and now[0] - start[0] >= n else None
        return test

    def bar_still(after: int, still_s: float):
        """The online bar past `after` env steps and still for `still_s` seconds outside an eval: the rollout has
        ended (hopper's episodes end early, so its env steps do not say when) and its update runs."""
        seen = {"n": None, "since": 0.0}

        def test(pieces):
            got = bar_at(f"{method} online", pieces)
            now = time.monotonic()
            if in_eval(pieces) is not None or not got or got[0] < after or got[0] != seen["n"]:
                seen.update(n=got[0] if got else None, since=now)
                return None
            return got if now - seen["since"] >= still_s else None
        return test

    if method == "dppo":
        return [("online", "2000 online env steps outside an eval", online_steps(2000), 0.0),
                ("update", f"the rollout's end, then {update_delay:.0f} s", bar_still(4000, update_delay), 0.0)]
    return [("common start", "20% of the common start", share("common start", 0.2), 0.0),
            ("offline", "30% of the offline phase", share("pretrain", 0.3), 0.0),
            ("offline eval", "the eval at env step 0", eval_started(True), 1.0),
            ("online", "150 online env steps outside an eval", online_steps(150), 0.0),
            ("online eval", "an online eval", eval_started(False), 1.0)]


def where(store: Path, cfg) -> str:
    """Where the run's checkpoint is: its counters and whether it holds an open episode or a partial rollout."""
    from bench.config.run import run_id_of
    from results.checkpoint_files import load_checkpoint

    path = store / "checkpoints" / SWEEP / run_id_of(cfg) / "last.pt"
    if not path.exists():
        return "no checkpoint"
    st = load_checkpoint(path)
    c = json.loads(st["counters"])
    off = (st.get("loop") or {}).get("off_policy")
    partial = ((st.get("loop") or {}).get("on_policy") or {}).get("partial")
    text = f"env {c['env_step']}, grad {c['grad_step']}"
    if partial is not None:  # on-policy: the rollout so far, or (whole) the rollout whose update was abandoned
        n = partial["buf"]["obs"].shape[0]
        whole = n == getattr(cfg.section, "n_steps", None)
        text += (f", rollout {c['rollout'] + 1} whole ({n} decisions) pending: saved mid-update, as before it"
                 if whole else f", rollout {c['rollout'] + 1} so far ({n} decisions)")
    if not c["pretrain_done"]:
        text += ", offline phase"
    if off and off["open"]:
        text += ", mid-episode" if not off["done"] else ", at an episode's end"
        if "env" in off:
            text += f" (episode step {off['env']['elapsed_steps']})"
    return text


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--method", default="modip")
    ap.add_argument("--task", default="hopper-medium")
    ap.add_argument("--seed", type=int, default=10, help="a tuning seed (10-19): nothing reported is run")
    ap.add_argument("--store", default=None, help="the store (default: a temporary one, removed at the end)")
    ap.add_argument("--keep", action="store_true", help="keep the temporary store")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a setting")
    ap.add_argument("--timeout", type=float, default=1800.0, help="seconds to wait for each point")
    ap.add_argument("--update-delay", type=float, default=3.0,
                    help="dppo: seconds after the rollout's end (the online bar still) to send SIGTERM, in its update")
    ap.add_argument("--finish", action="store_true", help="after the last point, rerun the run to its end")
    args = ap.parse_args()

    from bench.config.dotted import parse_value
    from bench.config.layers import resolve_config
    from results.store import Store

    if "MINARI_DATASETS_PATH" not in os.environ and args.task != "demo":
        print("set MINARI_DATASETS_PATH to the Minari root that holds the task's dataset", file=sys.stderr)
        return 2
    settings = dict(SETTINGS_OF.get(args.method, SETTINGS))
    settings.update({k: parse_value(v) for k, v in (kv.split("=", 1) for kv in args.set)})
    sets = [f"{k}={v}" for k, v in settings.items()]
    cfg = resolve_config(args.method, args.task, args.seed, sets)  # as the command resolves it: its run id
    temp = args.store is None
    store = Path(args.store or tempfile.mkdtemp(prefix="stop-latency-"))
    argv = ["--store", str(store), "run", "--method", args.method, "--task", args.task, "--seed", str(args.seed),
            "--sweep", SWEEP] + [a for kv in sets for a in ("--set", kv)]
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    load = os.getloadavg()
    print(f"stop_latency: `mbench run` of {args.method} on {args.task}, seed {args.seed}; SIGTERM at each point, "
          f"then a rerun that resumes")
    print(f"  settings: {' '.join(f'{k}={v}' for k, v in settings.items())}")
    print(f"  machine: {os.cpu_count()} cores, load average {load[0]:.2f} / {load[1]:.2f} / {load[2]:.2f} at the "
          f"start, this process at nice {os.nice(0)}: the figures are taken under that load")
    print(f"{'point':14s} {'waited for':38s} {'latency_s':>9s} {'exit':>5s} {'recorded':>10s}  saved at")
    rows = []
    try:
        for name, what, test, delay in points(args.method, args.update_delay):
            child = Child(argv, env)
            try:
                child.wait_for(test, what, args.timeout)
                if delay:
                    time.sleep(delay)
                dt, code = child.terminate()
            finally:
                child.kill()
            att = Store(store).attempts(sweep=SWEEP)
            status = att.status.iloc[-1] if len(att) else "none"
            pieces = child.seen()
            abandoned = any("abandoned to stop" in p for p in pieces)
            saved = where(store, cfg) + ("; eval abandoned" if abandoned else "")
            rows.append((name, dt, code, status))
            print(f"{name:14s} {what:38s} {dt:9.2f} {code:5d} {status:>10s}  {saved}")
            last = pieces[-1] if pieces else ""
            if status != "preempted" or code != 128 + signal.SIGTERM:
                print(f"  unexpected ending; its last stderr line: {last}")
        if args.finish:
            done = subprocess.run([sys.executable, "-m", "bench.cli", *argv], cwd=ROOT, env=env,
                                  capture_output=True, text=True, check=False)
            print(f"finish: {done.stdout.strip() or done.stderr.strip().splitlines()[-1]}")
    finally:
        if temp and not args.keep:
            shutil.rmtree(store, ignore_errors=True)
        elif temp:
            print(f"store kept: {store}")
    load = os.getloadavg()
    worst = max(rows, key=lambda r: r[1])
    ok = all(s == "preempted" and c == 128 + signal.SIGTERM for _, _, c, s in rows)
    print(f"stop_latency worst: {worst[1]:.2f} s from SIGTERM to exit ({worst[0]}), limit {LIMIT_S:.0f} s: "
          f"{'within' if worst[1] <= LIMIT_S else 'OVER'}; {len(rows)} points, "
          f"{'all recorded preempted' if ok else 'NOT all recorded preempted'}; under load (load average "
          f"{load[0]:.2f} on {os.cpu_count()} cores at the end, nice {os.nice(0)})")
    return 0 if ok and worst[1] <= LIMIT_S else 1


if __name__ == "__main__":
    sys.exit(main())
