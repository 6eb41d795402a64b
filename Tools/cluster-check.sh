#!/usr/bin/env bash
# The tiny study's grid run three ways, which must agree (issue #16, scale-out):
#   1. serially: parscale sweep;
#   2. through GNU parallel: parscale sweep --emit-jobs | parallel (the printed commands unchanged);
#   3. as a Slurm job array: parscale sweep --slurm FILE, submitted with sbatch to a one-node Slurm
#      started here (Tools/slurm-local.sh: slurmctld, slurmd and munged of its own, stopped at the end);
#   4. the same array in a second folder, cancelled (scancel) once a run has a checkpoint, then
#      submitted again: the tasks resume.
# Every run's validation loss must be the same to the bit in all folders, every run must
# have its result, and `fit` and `report` must read the parallel and Slurm folders. Prints the wall
# time of each way. Exits non-zero on any difference or failure.
#   bash Tools/cluster-check.sh [--binary PATH] [--keep DIR] [--grid "SWEEP FLAGS"]
# Default binary: the debug build (swift build --product parscale). Needs slurm-wlm, munge and
# parallel (Tools/setup.sh installs them).
set -euo pipefail
cd "$(dirname "$0")/.."

bin=""
keep=""
grid="--preset tiny"
while [ $# -gt 0 ]; do
  case "$1" in
    --binary) bin="$2"; shift 2 ;;
    --keep) keep="$2"; shift 2 ;;
    --grid) grid="$2"; shift 2 ;;
    *) echo "usage: $0 [--binary PATH] [--keep DIR] [--grid \"SWEEP FLAGS\"]" >&2; exit 2 ;;
  esac
done
for tool in parallel sbatch slurmctld slurmd munged; do
  command -v "$tool" >/dev/null || { echo "cluster-check: $tool is missing (bash Tools/setup.sh installs slurm-wlm, munge, parallel)" >&2; exit 1; }
done
if [ -z "$bin" ]; then
  swift build --product parscale >/dev/null
  bin="$(swift build --show-bin-path)/parscale"
fi
bin="$(cd "$(dirname "$bin")" && pwd)/$(basename "$bin")"

if [ -n "$keep" ]; then work="$keep"; rm -rf "$work"; mkdir -p "$work"; else work="$(mktemp -d)"; fi
work="$(cd "$work" && pwd)"
source Tools/slurm-local.sh
cleanup() {
  slurm_local_stop
  [ -n "$keep" ] || rm -rf "$work"
}
trap cleanup EXIT

fail() { echo "cluster-check: $*" >&2; exit 1; }
now() { date +%s.%N; }
seconds() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", b - a }'; }
read -r -a flags <<< "$grid"

t0=$(now)
"$bin" sweep "${flags[@]}" --out "$work/serial" 2> "$work/serial.log" || { tail -20 "$work/serial.log" >&2; fail "the serial sweep failed"; }
t1=$(now)
"$bin" sweep "${flags[@]}" --out "$work/parallel" --emit-jobs > "$work/jobs.txt"
jobs=$(wc -l < "$work/jobs.txt")
parallel --will-cite --halt now,fail=1 -j "$(nproc)" < "$work/jobs.txt" 2> "$work/parallel.log" \
  || { tail -20 "$work/parallel.log" >&2; fail "a job under GNU parallel failed"; }
t2=$(now)

slurm_local_start "$work/cluster" || fail "the local Slurm did not start (logs in $work/cluster/log)"
"$bin" sweep "${flags[@]}" --out "$work/slurm" --slurm "$work/grid.sbatch"
t3=$(now)
timeout 1800 sbatch --wait --quiet "$work/grid.sbatch" || { tail -20 "$work"/slurm/logs/task-*.log >&2; fail "the Slurm job array failed"; }
t4=$(now)

# Cancelled part way, submitted again: the tasks resume their runs.
"$bin" sweep "${flags[@]}" --out "$work/resumed" --slurm "$work/resumed.sbatch" 2> /dev/null
job=$(sbatch --parsable "$work/resumed.sbatch")
for _ in $(seq 1 1200); do
  compgen -G "$work/resumed/runs/*/checkpoint" > /dev/null && break
  sleep 0.25
done
compgen -G "$work/resumed/runs/*/checkpoint" > /dev/null || fail "no run of the array reached a checkpoint"
scancel "$job"
for _ in $(seq 1 120); do [ -z "$(squeue -h -j "$job" 2>/dev/null)" ] && break; sleep 0.5; done
finished=$({ compgen -G "$work/resumed/runs/*/result.json" || true; } | wc -l)
timeout 1800 sbatch --wait --quiet "$work/resumed.sbatch" || { tail -20 "$work"/resumed/logs/task-*.log >&2; fail "the resubmitted Slurm job array failed"; }
resumed=$(cat "$work"/resumed/logs/task-*.log | grep -c "resuming" || true)

# The same runs, bit for bit: JSONEncoder writes each double's shortest exact digits.
runs=$(cd "$work/serial/runs" && ls)
[ "$(echo "$runs" | wc -l)" -eq "$jobs" ] || fail "the serial sweep has $(echo "$runs" | wc -l) runs, --emit-jobs printed $jobs"
for way in parallel slurm resumed; do
  for run in $runs; do
    result="$work/$way/runs/$run/result.json"
    [ -f "$result" ] || fail "$way: $run has no result.json"
    a=$(grep '"validationLoss"' "$work/serial/runs/$run/result.json")
    b=$(grep '"validationLoss"' "$result")
    [ "$a" = "$b" ] || fail "$way: $run ended at $b, serially at $a"
  done
  "$bin" fit "$work/$way" --samples 20 --json > "$work/$way-fit.json" || fail "fit could not read the $way folder"
  "$bin" report "$work/$way" > /dev/null 2>&1 || fail "report could not read the $way folder"
  [ -f "$work/$way/report.md" ] || fail "report wrote no report.md for the $way folder"
done
logs=$(ls "$work"/slurm/logs/task-*.log | wc -l)
[ "$logs" -eq "$jobs" ] || fail "$logs Slurm task logs for $jobs runs"

# When the array's last result was written (sbatch --wait itself notices the end only at its next poll).
last=$(stat -c %.3Y "$work"/slurm/runs/*/result.json | sort -n | tail -1)
echo "cluster-check: $jobs runs ($grid), the same validation losses to the bit serially, through parallel, on Slurm and resumed on Slurm; fit and report read them"
echo "cluster-check: serial $(seconds "$t0" "$t1") s; GNU parallel -j $(nproc) $(seconds "$t1" "$t2") s; Slurm array on $(nproc) CPUs: last result $(seconds "$t3" "$last") s after submission, sbatch --wait returned after $(seconds "$t3" "$t4") s"
echo "cluster-check: the array cancelled with $finished of $jobs runs finished and submitted again: $resumed tasks resumed a checkpoint, the same losses"
echo "cluster-check: fit on the Slurm runs: $(cat "$work/slurm-fit.json")"
