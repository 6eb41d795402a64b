#!/usr/bin/env bash
# Fuzzes every parser with libFuzzer (issue #16): builds Tools/fuzz (a package of its own, so the
# main build never needs the fuzzer runtime) with -sanitize=fuzzer,address and runs each target
# for SECONDS (default 60), starting from its seeds in Tools/fuzz/corpus/<target>/.
#   bash Tools/fuzz.sh [SECONDS] [TARGET...]
# Prints executions per target; exits 1 if any target crashed, trapped, hung (>10 s on one input)
# or ran out of memory. Crash inputs are saved as Tools/fuzz/findings/<target>/crash-* (git-ignored):
# fix the parser, then copy the input to Tools/fuzz/regressions/ (FuzzRegressionTests reads them).
set -uo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
seconds=${1:-60}
shift || true
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(FuzzSafeTensors FuzzConfig FuzzIndex FuzzTokenizer FuzzTrainerState FuzzAdapter)

flags=(-c debug --sanitize=fuzzer --sanitize=address
    -Xswiftc -sanitize-coverage=edge,inline-8bit-counters,trace-cmp,pc-table)
# Swift's -sanitize=fuzzer alone leaves the Swift code without coverage counters (libFuzzer then
# finds nothing new); the -sanitize-coverage flags above add them.
echo "== building Tools/fuzz"
(cd Tools/fuzz && swift build "${flags[@]}" 2>&1 | grep -v "warning: Cannot export local symbol" | tail -3)
bin=$(cd Tools/fuzz && swift build "${flags[@]}" --show-bin-path)
for t in "${targets[@]}"; do
    [ -x "$bin/$t" ] || { echo "fuzz.sh: $bin/$t was not built" >&2; exit 2; }
done

export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=0:allocator_may_return_null=1}
export PARSCALE_FUZZ_SHARDS="$root/Tests/Fixtures/hf-qwen2/model"
work=$(mktemp -d /tmp/parscale-fuzz.XXXXXX)
failed=()
summary=()
for t in "${targets[@]}"; do
    mkdir -p "$work/$t" "Tools/fuzz/findings/$t" "Tools/fuzz/corpus/$t"
    if [ "$t" = FuzzAdapter ]; then
        # A valid adapter depends on the backbone's initialisation, so it is made fresh, not committed.
        PARSCALE_FUZZ_MAKE_SEED="$work/$t/made-seed.safetensors" "$bin/$t" -runs=1 -artifact_prefix="$work/" > /dev/null 2>&1
    fi
    echo "== $t: ${seconds} s"
    start=$(date +%s)
    # New inputs go to $work/$t; the committed seeds are only read.
    "$bin/$t" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=4096 -max_len=65536 -print_final_stats=1 \
        -artifact_prefix="Tools/fuzz/findings/$t/" "$work/$t" "Tools/fuzz/corpus/$t" > "$work/$t.log" 2>&1
    rc=$?
    runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$work/$t.log" | grep -o '[0-9]*$' | tail -1)
    line="$t: ${runs:-?} executions in $(( $(date +%s) - start )) s"
    if [ $rc -ne 0 ]; then
        line="$line: FAILED (rc $rc), see below; inputs in Tools/fuzz/findings/$t/"
        failed+=("$t")
        grep -E "ERROR: |Fatal error|SUMMARY|Test unit written|timeout|out-of-memory" "$work/$t.log" | head -20
    fi
    echo "$line"
    summary+=("$line")
done
echo "== summary"
printf '%s\n' "${summary[@]}"
rm -rf "$work"
if [ ${#failed[@]} -gt 0 ]; then
    echo "fuzz.sh: findings in ${failed[*]}" >&2
    exit 1
fi
