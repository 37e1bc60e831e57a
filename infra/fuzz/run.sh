#!/usr/bin/env bash
# Fuzzes what the outside world sends us (cargo-fuzz / libFuzzer): one target per provider's inbound
# verification + parsing (telegram vk viber edna messagebird infobip avito), the e-mail MIME path
# (email_mime), the domain's validation of settings, hours, people and routing (settings) and the API's
# JSON bodies (api_bodies). Targets live in fuzz/ (its own cargo workspace), seeds come from
# tests/fixtures (infra/fuzz/seed.sh).
#
#   infra/fuzz/run.sh [--smoke] [--runs N] [--max-time S] [--sanitizer address|none] [-j N] [targets...]
#
# Default: 1,000,000 executions per target (-runs=1000000), at most --max-time seconds each (1800).
# --smoke: 20,000 executions or 10 s per target, for CI. Prints a table (target, executions, crashes,
# seconds) and exits non-zero when any target crashed (a panic, a failed check, a sanitizer report, a
# time-out or running out of memory); the crashing input is kept in fuzz/artifacts/<target>/.
# Reproduce one with: fuzz/target/x86_64-unknown-linux-gnu/release/<target> <file>. Inputs of crashes
# found and fixed are kept in fuzz/regressions/<target>/ and replayed by every run.
#
# The machine has a stable toolchain only: RUSTC_BOOTSTRAP=1 lets it take cargo-fuzz's -Z flags
# (sanitizer coverage and AddressSanitizer). cargo-fuzz is installed into .tools/ when missing.
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$root"

all_targets=(telegram vk viber edna messagebird infobip avito email_mime settings api_bodies)
runs=1000000
max_time=1800
sanitizer="${OMNICHAT_FUZZ_SANITIZER:-address}"
parallel=1
smoke=false
targets=()
while [[ $# -gt 0 ]]; do
    case "$1" in
        --smoke) smoke=true; runs=20000; max_time=10 ;;
        --runs) runs="$2"; shift ;;
        --max-time) max_time="$2"; shift ;;
        --sanitizer) sanitizer="$2"; shift ;;
        -j) parallel="$2"; shift ;;
        -h|--help) sed -n '2,18p' "$0"; exit 0 ;;
        -*) echo "run.sh: unknown option $1" >&2; exit 2 ;;
        *) targets+=("$1") ;;
    esac
    shift
done
[[ ${#targets[@]} -gt 0 ]] || targets=("${all_targets[@]}")
for target in "${targets[@]}"; do
    [[ -f "fuzz/fuzz_targets/$target.rs" ]] || { echo "run.sh: no fuzz target $target" >&2; exit 2; }
done

cargo_fuzz="$root/.tools/bin/cargo-fuzz"
if [[ ! -x "$cargo_fuzz" ]]; then
    echo "==> installing cargo-fuzz into .tools/"
    cargo install --locked cargo-fuzz --version 0.13.2 --root "$root/.tools"
fi

# fuzz/target by default; OMNICHAT_FUZZ_TARGET_DIR keeps the (slow, instrumented) build elsewhere, e.g.
# in a cache that outlives a fresh clone.
target_dir="${OMNICHAT_FUZZ_TARGET_DIR:-$root/fuzz/target}"
mkdir -p "$target_dir"
target_dir="$(cd "$target_dir" && pwd)"
echo "==> building the fuzz targets (sanitizer: $sanitizer) in $target_dir"
build_started=$(date +%s)
RUSTC_BOOTSTRAP=1 "$cargo_fuzz" build --fuzz-dir fuzz -O --sanitizer "$sanitizer" --target-dir "$target_dir"
echo "    built in $(( $(date +%s) - build_started )) s"

echo "==> seeding the corpora from tests/fixtures"
infra/fuzz/seed.sh > /dev/null

bin_dir="$target_dir/x86_64-unknown-linux-gnu/release"
logs="$target_dir/fuzz-logs"
mkdir -p "$logs"

# run_one TARGET: fuzzes it and writes "target executions crashes seconds status" to its .result file.
run_one() {
    local target=$1 log="$logs/$1.log" artifacts="fuzz/artifacts/$1"
    mkdir -p "$artifacts" "fuzz/corpus/$target"
    local before after started status=0 execs seconds crashes state
    before=$(find "$artifacts" -type f | wc -l)
    # The inputs of crashes found and fixed run first, with the corpus (new inputs go to the corpus only).
    local regressions=""
    if [[ -d "fuzz/regressions/$target" ]]; then regressions="fuzz/regressions/$target"; fi
    started=$(date +%s.%N)
    # -timeout: one input running over 10 s counts as a crash; -rss_limit_mb: so does using over 2 GB.
    ASAN_OPTIONS="detect_odr_violation=0:detect_leaks=0${ASAN_OPTIONS:+:$ASAN_OPTIONS}" \
        "$bin_dir/$target" "fuzz/corpus/$target" $regressions \
        -runs="$runs" -max_total_time="$max_time" -timeout=10 -rss_limit_mb=2048 \
        -artifact_prefix="$artifacts/" -print_final_stats=1 > "$log" 2>&1 || status=$?
    seconds=$(awk -v s="$started" -v e="$(date +%s.%N)" 'BEGIN { printf "%.1f", e - s }')
    after=$(find "$artifacts" -type f | wc -l)
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
    crashes=$(( after - before ))
    if [[ $status -ne 0 && $crashes -eq 0 ]]; then crashes=1; fi
    if [[ $status -ne 0 ]]; then
        state="CRASH"
    elif [[ "${execs:-0}" -lt "$runs" ]]; then
        state="time-limit"
    else
        state="ok"
    fi
    echo "$target ${execs:-?} $crashes $seconds $state" > "$logs/$target.result"
}

echo "==> fuzzing ${#targets[@]} target(s): $runs executions each (at most $max_time s each, $parallel at a time)"
running=0
for target in "${targets[@]}"; do
    rm -f "$logs/$target.result"
    run_one "$target" &
    running=$(( running + 1 ))
    if [[ $running -ge $parallel ]]; then
        wait -n || true
        running=$(( running - 1 ))
    fi
done
wait || true

failed=0
printf '\n%-12s %12s %8s %9s  %s\n' target executions crashes seconds status
for target in "${targets[@]}"; do
    if [[ -f "$logs/$target.result" ]]; then
        read -r name execs crashes seconds state < "$logs/$target.result"
    else
        name=$target execs="?" crashes=1 seconds="?" state="no result"
    fi
    printf '%-12s %12s %8s %9s  %s\n' "$name" "$execs" "$crashes" "$seconds" "$state"
    if [[ "$crashes" != 0 ]]; then
        failed=1
        echo "    log: $logs/$target.log; inputs: fuzz/artifacts/$target/" >&2
        grep -m3 -E "panicked at|ERROR: AddressSanitizer|ERROR: libFuzzer|SUMMARY" "$logs/$target.log" >&2 || true
    fi
done
exit $failed
