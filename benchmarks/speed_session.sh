#!/usr/bin/env bash
# The speed issue's quiet-machine measurements, in order, each into its own log under OUTDIR (default
# ../speed-session-<date>, outside the repository). Run it with nothing else on the machine: it refuses to
# start a step while the 1-minute load average is above QUIET_LOAD (default 0.6), and logs the load at each end.
#
#   benchmarks/speed_session.sh [OUTDIR] [STEP ...]
#   steps: base demo report throughput-demo throughput-hopper profile suite (default: all, in this order)
#
#   base               git worktree of 05edce8 at $MBENCH_BASE (default ../base-05edce8), if absent
#   demo               `time make demo` on a fresh clone of HEAD after `make venv`, into an empty Minari root (the
#                      demo dataset is made inside the timed run) and the clone's own results/ store
#   report             the demo report again from that store, timed (the bootstraps' cost)
#   throughput-demo    benchmarks/throughput.py --tasks demo against 05edce8, 3 repetitions interleaved
#   throughput-hopper  the same on hopper-medium ($MINARI_DATASETS_PATH must hold mujoco/hopper/medium-v0)
#   profile            benchmarks/profile_floor.py --base for MODIP, PA-RL, DSRL and TD-MPC2 on both tasks
#   suite              `time make test` in the fresh clone (the Slurm tests need scripts/slurm-local.sh up)
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
OUT=${1:-../speed-session-$(date +%Y%m%d-%H%M)}
shift || true
STEPS=("$@")
for step in "${STEPS[@]}"; do
  case $step in base|demo|report|throughput-demo|throughput-hopper|profile|suite) ;;
    *) echo "speed_session: unknown step '$step' (steps: base demo report throughput-demo throughput-hopper profile suite)" >&2
       exit 2 ;;
  esac
done
mkdir -p "$OUT" && OUT=$(cd "$OUT" && pwd)
[[ ${#STEPS[@]} -gt 0 ]] || STEPS=(base demo report throughput-demo throughput-hopper profile suite)
BASE=${MBENCH_BASE:-$ROOT/../base-05edce8}
QUIET_LOAD=${QUIET_LOAD:-0.6}
PY=${PYTHON:-$ROOT/.venv/bin/python}
CLONE=$OUT/clone
export OMP_NUM_THREADS=1

load() { cut -d' ' -f1 /proc/loadavg; }
wait_quiet() {
  local n=0
  while awk -v l="$(load)" -v q="$QUIET_LOAD" 'BEGIN{exit !(l > q)}'; do
    n=$((n + 1))
    if [[ $n -gt 40 ]]; then echo "speed_session: load $(load) stays above $QUIET_LOAD; stop what runs" >&2; exit 1; fi
    sleep 15
  done
}
stamp() { echo "$(date -u +%FT%TZ) $1 load $(load)" | tee -a "$OUT/steps.log"; }

for step in "${STEPS[@]}"; do
  if [[ $step == report || $step == suite ]] && [[ ! -d $CLONE/.venv ]]; then
    echo "speed_session: step '$step' needs the demo step's clone at $CLONE; run the demo step first" >&2; exit 2
  fi
  wait_quiet
  stamp "start $step"
  case $step in
    base)
      [[ -d $BASE ]] || git worktree add --detach "$BASE" 05edce8 ;;
    demo)
      rm -rf "$CLONE" "$OUT/minari-demo" && git clone -q "$ROOT" "$CLONE" && mkdir -p "$OUT/minari-demo"
      (cd "$CLONE" && make venv > "$OUT/venv.log" 2>&1)
      wait_quiet
      (cd "$CLONE" && export MINARI_DATASETS_PATH=$OUT/minari-demo && { time make demo; } > "$OUT/demo.log" 2>&1) ;;
    report)
      (cd "$CLONE" && { time .venv/bin/mbench report demo --store results --out "$OUT/demo-report"; } \
        > "$OUT/report.log" 2>&1) ;;
    throughput-demo)
      "$PY" benchmarks/throughput.py --base "$BASE" --tasks demo --out "$OUT/throughput-demo.json" \
        > "$OUT/throughput-demo.md" 2> "$OUT/throughput-demo.err" ;;
    throughput-hopper)
      "$PY" benchmarks/throughput.py --base "$BASE" --tasks hopper-medium --out "$OUT/throughput-hopper.json" \
        > "$OUT/throughput-hopper.md" 2> "$OUT/throughput-hopper.err" ;;
    profile)
      "$PY" benchmarks/profile_floor.py --base "$BASE" --families modip,parl,dsrl,tdmpc2 \
        --tasks demo,hopper-medium --out "$OUT/profile.json" > "$OUT/profile.md" 2> "$OUT/profile.err" ;;
    suite)
      (cd "$CLONE" && { time make test; } > "$OUT/suite.log" 2>&1) ;;
  esac
  stamp "end $step"
done
