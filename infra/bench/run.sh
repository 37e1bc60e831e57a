#!/usr/bin/env bash
# The benchmarks of issue 9: builds what they need, runs everything on 127.0.0.1 with bounded loops and
# time-outs, and writes BENCHMARKS.md at the repo root (machine, date, commit, one table per part, each
# figure beside its baseline measured in the same run, the ratio and whether the goal is met).
#
#   infra/bench/run.sh                 # every part
#   infra/bench/run.sh cold-start      # one part (or several: run.sh ingest roundtrips); the others keep
#                                      # their last results (target/bench/*.json) in BENCHMARKS.md
#
# Parts:
#   cold-start    every function binary (host release build) as a process against a local Lambda Runtime
#                 API (runtime_api.py), moto behind a counting proxy; spawn -> first answer, median of
#                 BENCH_COLD_RUNS (11) starts, beside the hello-world lambda_http binary (hello-lambda)
#   package-size  `cargo lambda build --release --arm64 --output-format zip` of every function and of
#                 hello-lambda; zipped and unzipped sizes
#   ingest        omnichat-local (release, fresh data dir, a Telegram channel connected against the provider
#                 stub) under wrk at its Telegram webhook, unique update ids, ~1,000 customers; the same wrk
#                 run against bare-axum; then both at half omnichat's rate; then the exactly-once check
#   roundtrips    webhook-telegram in one warm process against moto: AWS calls per delivered message
#   memory        peak RSS (VmHWM) of every function after its largest event
#   timer-drain   the timer-drain binary's markdown table: one auto-reply run and one inactivity-close run over
#                 BENCH_DRAIN_DUE (10000) due each on the embedded store, BENCH_DRAIN_MOTO_DUE (100) on moto
#   tick-cost     the tick-cost binary's markdown table: embedded store at BENCH_TICK_SIZES (1000,10000,100000)
#                 open dialogs, moto at BENCH_TICK_MOTO_SIZES (1000,10000; seeded on an embedded store, copied in)
#   mailbox-fanout  the mailbox-fanout binary's table: one dispatch, 8 workers, a mailbox fake; in-process queue
#                 at BENCH_MAILBOXES (2000) mailboxes, SQS on moto at BENCH_MAILBOXES_SQS (500)
#   media         the media-fetch binary's table: peak RSS while a 1 MiB and a 25 MiB customer's file is fetched and
#                 stored (omnichat-local in process, a Viber fake generating the bytes), and webhook -> stored
#                 for BENCH_MEDIA_DELIVERIES (50) files of 100 KiB
#   units         the units binary's JSON: capacity units (DynamoDB's rules, adapters::units), events and router
#                 invocations of each step of a dialog, embedded store and moto; report.py prices them (run it
#                 after cold-start, whose warm handler times it uses)
#
# Knobs: BENCH_COLD_RUNS (11), BENCH_MEMORY_RUNS (3), BENCH_STEADY_RUNS (5), BENCH_DURATION (12s),
# BENCH_THREADS (2), BENCH_CONNECTIONS (32), BENCH_CUSTOMERS (1000); BENCH_FUNCTIONS (a comma-separated subset
# of the functions for the Lambda parts; the baseline always runs), BENCH_NO_BUILD=1 (use the binaries in
# target/release as they are), BENCH_LAMBDA_TARGET_DIR (the arm64 build's own target dir; default the
# workspace's).
# Installs what is missing: wrk (apt-get), moto (infra/moto/with-moto.sh), cargo-lambda + zig
# (infra/tools.sh). Stops every process it started on exit, also on failure or interrupt.
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
bench="$repo_root/infra/bench"
venv="$repo_root/.venv"
target_dir="${CARGO_TARGET_DIR:-$repo_root/target}"
results="$target_dir/bench"
bins="$target_dir/release"
READY_TIMEOUT_SECONDS=30
ALL_PARTS=(cold-start package-size ingest roundtrips memory tick-cost timer-drain mailbox-fanout units media)

COLD_RUNS="${BENCH_COLD_RUNS:-11}"
MEMORY_RUNS="${BENCH_MEMORY_RUNS:-3}"
STEADY_RUNS="${BENCH_STEADY_RUNS:-5}"
DURATION="${BENCH_DURATION:-12s}"
THREADS="${BENCH_THREADS:-2}"
CONNECTIONS="${BENCH_CONNECTIONS:-32}"
CUSTOMERS="${BENCH_CUSTOMERS:-1000}"

cd "$repo_root"
mkdir -p "$results"
say() { printf 'bench: %s\n' "$*" >&2; }

python_bin() {
    if [[ -x "$venv/bin/python" ]]; then echo "$venv/bin/python"; else echo python3; fi
}

# ---- processes: every one started here is stopped on exit ----

work="$(mktemp -d "${TMPDIR:-/tmp}/omnichat-bench.XXXXXX")"
pids=()
# shellcheck source=infra/processes.sh
source infra/processes.sh
# shellcheck disable=SC2317
stop_all() {
    local pid
    for pid in "${pids[@]}"; do stop_pid "$pid"; done
    pids=()
    if [[ -z "${BENCH_KEEP_WORK:-}" ]]; then rm -rf "$work"; fi
}
trap stop_all EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# The provider stub (infra/api/provider_stub.py): Telegram's Bot API for a valid token; every setWebhook's
# secret_token lands in $work/webhooks.txt. Sets $stub.
start_stub() {
    rm -f "$work/stub.port"
    "$(python_bin)" infra/api/provider_stub.py "$work/stub.port" "$work/webhooks.txt" >"$work/stub.log" 2>&1 &
    pids+=($!)
    wait_for "the provider stub" "$!" "$work/stub.log" test -s "$work/stub.port"
    stub="http://127.0.0.1:$(cat "$work/stub.port")"
}

build_host_bins() {
    if [[ -z "${bench_built:-}" && -z "${BENCH_NO_BUILD:-}" ]]; then
        say "building the release binaries (cargo build --release --workspace --bins)"
        cargo build --release --locked --workspace --bins
        bench_built=1
    fi
}

# ---- cold-start, memory, roundtrips: Lambda processes against moto ----

# Runs inside infra/moto/with-moto.sh (AWS_ENDPOINT_URL is moto): the counting proxy in front of moto, the
# provider stub, the seed, then lambdas.py for each part asked.
lambda_parts_inside_moto() {
    local moto="$AWS_ENDPOINT_URL" part proxy seeded secret admin_key
    "$(python_bin)" "$bench/counting_proxy.py" "$moto" "$work/proxy.port" >"$work/proxy.log" 2>&1 &
    pids+=($!)
    wait_for "the counting proxy" "$!" "$work/proxy.log" test -s "$work/proxy.port"
    proxy="http://127.0.0.1:$(cat "$work/proxy.port")"
    start_stub

    admin_key="ock_bench_$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')"
    export AWS_ENDPOINT_URL="$proxy" TABLE_NAME="omnichat-bench" EVENT_BUS_NAME="omnichat-bench" \
        SECRET_PREFIX="omnichat/bench/" PUBLIC_BASE_URL="https://aaaaaaaaaa.execute-api.eu-central-1.amazonaws.com" \
        TELEGRAM_API_BASE="$stub" VK_API_BASE="$stub" VK_OAUTH_BASE="$stub" VIBER_API_BASE="$stub" \
        EDNA_API_BASE="$stub" MESSAGEBIRD_API_BASE="$stub" AVITO_API_BASE="$stub" RUST_LOG="${RUST_LOG:-info}" \
        BENCH_ADMIN_KEY="$admin_key" LIVE_CALLBACK_URL="$stub/live"
    seeded="$(timeout 60 "$bins/seed")"
    secret="$(tail -n 1 "$work/webhooks.txt" | cut -d ' ' -f 2)"
    "$(python_bin)" - "$seeded" "$secret" "$admin_key" >"$work/seed.json" <<'PY'
import json, sys
seed = json.loads(sys.argv[1])
seed.update(secret=sys.argv[2], admin_key=sys.argv[3])
print(json.dumps(seed))
PY
    say "seeded moto: $(cat "$work/seed.json")"
    mkdir -p "$results/logs"
    for part in "$@"; do
        local runs="$COLD_RUNS"
        [[ "$part" == memory ]] && runs="$MEMORY_RUNS"
        [[ "$part" == roundtrips ]] && runs="$STEADY_RUNS"
        say "$part"
        (cd "$bench" && "$(python_bin)" lambdas.py "$part" --bins "$bins" --seed "$work/seed.json" \
            --runs "$runs" --proxy "$proxy" --logs "$results/logs" --out "$results/$part.json.tmp" \
            ${BENCH_FUNCTIONS:+--functions "$BENCH_FUNCTIONS"})
        mv "$results/$part.json.tmp" "$results/$part.json"
    done
}

run_lambda_parts() {
    build_host_bins
    # with-moto.sh installs moto into .venv if needed, starts it, and stops it when this inner run ends.
    infra/moto/with-moto.sh "$bench/run.sh" --inside-moto "$@"
}

# ---- package size ----

package_size() {
    local built=() bin
    # shellcheck source=../tools.sh
    source infra/tools.sh
    for bin in hello-lambda api auto-reply email-poller inactivity-close router live webhook-telegram webhook-vk \
        webhook-viber webhook-whatsapp webhook-avito; do
        built+=(--bin "$bin")
    done
    say "cargo lambda build --release --arm64 --output-format zip ${built[*]}"
    # BENCH_LAMBDA_TARGET_DIR: a target dir of its own for the arm64 build (not waiting on the host build's lock).
    local lambda_target="${BENCH_LAMBDA_TARGET_DIR:-$target_dir}"
    rm -rf "$lambda_target/lambda"
    CARGO_TARGET_DIR="$lambda_target" cargo lambda build --release --arm64 --output-format zip "${built[@]}"
    "$(python_bin)" - "$lambda_target/lambda" "$results/package-size.json" <<'PY'
import json, os, sys, zipfile
root, out = sys.argv[1], sys.argv[2]
sizes = {}
for name in sorted(os.listdir(root)):
    path = os.path.join(root, name, "bootstrap.zip")
    if os.path.exists(path):
        with zipfile.ZipFile(path) as archive:
            unzipped = sum(info.file_size for info in archive.infolist())
        sizes[name] = {"zipped": os.path.getsize(path), "unzipped": unzipped}
with open(out, "w") as handle:
    json.dump(sizes, handle, indent=2)
print(json.dumps(sizes))
PY
}

# ---- ingest throughput ----

ensure_wrk() {
    if ! command -v wrk >/dev/null; then
        say "installing wrk (apt-get)"
        apt-get install -y wrk >/dev/null 2>&1 || { apt-get update >/dev/null && apt-get install -y wrk >/dev/null; }
    fi
}

# NAME URL SECRET UPDATE_BASE CONNECTIONS [DELAY_MS]: one wrk run; its BENCH_JSON line to $results/ingest-NAME.json
wrk_run() {
    local name="$1" url="$2" secret="$3" base="$4" connections="$5" delay="${6:-0}"
    say "wrk $name: -t$THREADS -c$connections -d$DURATION (delay ${delay} ms per connection) $url"
    BENCH_SECRET="$secret" BENCH_UPDATE_BASE="$base" BENCH_CUSTOMERS="$CUSTOMERS" BENCH_DELAY_MS="$delay" \
        timeout 120 wrk -t"$THREADS" -c"$connections" -d"$DURATION" --timeout 5s --latency \
        -s "$bench/telegram.lua" "$url" >"$work/wrk-$name.txt"
    grep '^BENCH_JSON ' "$work/wrk-$name.txt" | sed 's/^BENCH_JSON //' >"$work/ingest-$name.json"
    cat "$work/wrk-$name.txt" >&2
}

json_field() {
    "$(python_bin)" -c 'import json, sys
value = json.load(open(sys.argv[1]))
for key in sys.argv[2].split("."):
    value = value[key]
print(value)' "$1" "$2"
}

ingest() {
    ensure_wrk
    build_host_bins
    start_stub
    local port base admin_key channel secret omnichat_pid axum_port axum_pid rps half connections delay
    port="$(free_port "$(python_bin)")"
    base="http://127.0.0.1:$port"
    admin_key="ock_bench_$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')"
    env PORT="$port" OMNICHAT_DATA_DIR="$work/data" OMNICHAT_ADMIN_KEY="$admin_key" PUBLIC_BASE_URL="$base" \
        TELEGRAM_API_BASE="$stub" VK_API_BASE="$stub" VK_OAUTH_BASE="$stub" VIBER_API_BASE="$stub" \
        EDNA_API_BASE="$stub" MESSAGEBIRD_API_BASE="$stub" AVITO_API_BASE="$stub" RUST_LOG="${RUST_LOG:-info}" \
        "$bins/omnichat-local" >"$work/omnichat-local.log" 2>&1 &
    omnichat_pid=$!
    pids+=("$omnichat_pid")
    wait_for "omnichat-local" "$omnichat_pid" "$work/omnichat-local.log" curl -fsS -o /dev/null "$base/openapi.json"
    channel="$(curl -sS --fail-with-body --max-time 30 -H "Authorization: Bearer $admin_key" \
        -H 'Content-Type: application/json' "$base/v1/channels" \
        --data '{"provider": "telegram", "name": "Bench bot", "credentials": {"token": "4242:benchBenchBenchBenchBench0123"}}' |
        "$(python_bin)" -c 'import json, sys; print(json.load(sys.stdin)["id"])')"
    secret="$(tail -n 1 "$work/webhooks.txt" | cut -d ' ' -f 2)"
    local webhook="$base/webhooks/telegram/$channel"
    # One delivery by hand first: a wrong secret or route fails here, not as 12 s of 4xx.
    curl -sS --fail-with-body --max-time 10 -o /dev/null -H 'Content-Type: application/json' \
        -H "X-Telegram-Bot-Api-Secret-Token: $secret" --data "$(<"$repo_root/tests/fixtures/telegram_text.json")" \
        "$webhook"

    axum_port="$(free_port "$(python_bin)")"
    "$bins/bare-axum" "$axum_port" >"$work/bare-axum.log" 2>&1 &
    axum_pid=$!
    pids+=("$axum_pid")
    wait_for "bare-axum" "$axum_pid" "$work/bare-axum.log" curl -fsS -o /dev/null -X POST "http://127.0.0.1:$axum_port/"
    local axum_url="http://127.0.0.1:$axum_port/webhooks/telegram/$channel"

    wrk_run bare-full "$axum_url" "$secret" 100000000 "$CONNECTIONS"
    wrk_run omnichat-full "$webhook" "$secret" 100000000 "$CONNECTIONS"
    rps="$("$(python_bin)" -c 'import json, sys; r = json.load(open(sys.argv[1])); print(r["requests"] / (r["duration_us"] / 1e6))' "$work/ingest-omnichat-full.json")"
    # Half omnichat's rate, held by wrk's delay(): every connection waits DELAY ms after each answer, so
    # rate = connections * 1000 / (DELAY + latency). A 3 s calibration run at connections = rate * DELAY / 1000
    # measures the real rate; the measured run scales the connections by what was missing.
    delay=50
    half="$("$(python_bin)" -c 'import sys; print(float(sys.argv[1]) / 2)' "$rps")"
    connections="$("$(python_bin)" -c 'import sys; print(max(int(sys.argv[2]), round(float(sys.argv[1]) * int(sys.argv[3]) / 1000)))' "$half" "$THREADS" "$delay")"
    DURATION=3s wrk_run omnichat-calibration "$webhook" "$secret" 200000000 "$connections" "$delay"
    connections="$("$(python_bin)" - "$work/ingest-omnichat-calibration.json" "$half" "$connections" "$THREADS" <<'PY'
import json, sys
run = json.load(open(sys.argv[1]))
achieved = run["requests"] / (run["duration_us"] / 1e6)
print(max(int(sys.argv[4]), round(int(sys.argv[3]) * float(sys.argv[2]) / max(achieved, 1.0))))
PY
)"
    wrk_run omnichat-half "$webhook" "$secret" 300000000 "$connections" "$delay"
    wrk_run bare-half "$axum_url" "$secret" 300000000 "$connections" "$delay"

    # Exactly once: what the API lists against what wrk sent and saw acknowledged in the three omnichat runs
    # and the delivery by hand (message id 1365, the fixture's).
    local verified=0
    timeout 600 "$(python_bin)" "$bench/verify_stored.py" "$base" "$admin_key" "$work/ingest-verify.json" 1365 \
        "$work/ingest-omnichat-full.json" "$work/ingest-omnichat-calibration.json" \
        "$work/ingest-omnichat-half.json" || verified=$?
    "$(python_bin)" - "$work" "$results/ingest.json" "$half" "$connections" "$delay" <<PY
import json, sys
work, out = sys.argv[1], sys.argv[2]
runs = {name: json.load(open(f"{work}/ingest-{name}.json"))
        for name in ("bare-full", "omnichat-full", "omnichat-calibration", "omnichat-half", "bare-half")}
result = {"runs": runs, "verify": json.load(open(f"{work}/ingest-verify.json")),
          "settings": {"threads": $THREADS, "connections": $CONNECTIONS, "duration": "$DURATION",
                       "customers": $CUSTOMERS, "half_rate_target": float(sys.argv[3]),
                       "half_rate_connections": int(sys.argv[4]), "half_rate_delay_ms": int(sys.argv[5])}}
json.dump(result, open(out, "w"), indent=2)
PY
    stop_pid "$axum_pid"
    stop_pid "$omnichat_pid"
    if [[ $verified -ne 0 ]]; then
        say "exactly-once check FAILED: see $results/ingest.json"
    fi
}

# ---- tick cost (the lead's binary) ----

tick_cost() {
    # The embedded store at 1,000, 10,000 and 100,000 open dialogs, then moto (with-moto.sh starts it for
    # this run only) at 1,000 and 10,000: tick-cost ingests moto's dialogs into a scratch embedded store and
    # copies the items in (moto's TransactWriteItems deep-copies the whole table once per item it writes).
    say "tick-cost: embedded at ${BENCH_TICK_SIZES:-1000,10000,100000}, moto at ${BENCH_TICK_MOTO_SIZES:-1000,10000}"
    # Part of the workspace build: building the package alone would unify other features and rebuild the
    # dependencies for it.
    build_host_bins
    infra/moto/with-moto.sh "$bins/tick-cost" --store embedded --sizes "${BENCH_TICK_SIZES:-1000,10000,100000}" \
        --store moto --sizes "${BENCH_TICK_MOTO_SIZES:-1000,10000}" >"$results/tick-cost.md.tmp"
    mv "$results/tick-cost.md.tmp" "$results/tick-cost.md"
}

# ---- timer drain (issue 16) ----

timer_drain() {
    # One scheduled run of each job over N due timers: 10,000 on the embedded store; on moto (seeded through a
    # scratch embedded store, as tick-cost does) far fewer, with 2 requests in flight: moto answers one at a
    # time and copies its table per written item, so its rows show moto's speed, not DynamoDB's.
    say "timer-drain: embedded at ${BENCH_DRAIN_DUE:-10000} due, moto at ${BENCH_DRAIN_MOTO_DUE:-100}"
    build_host_bins
    infra/moto/with-moto.sh "$bins/timer-drain" --store embedded --due "${BENCH_DRAIN_DUE:-10000}" \
        --store moto --due "${BENCH_DRAIN_MOTO_DUE:-100}" >"$results/timer-drain.md.tmp"
    mv "$results/timer-drain.md.tmp" "$results/timer-drain.md"
}

# ---- mailbox fan-out (issue 16, goal 4) ----

mailbox_fanout() {
    say "mailbox-fanout: in-process at ${BENCH_MAILBOXES:-2000} mailboxes, SQS on moto at ${BENCH_MAILBOXES_SQS:-500}"
    build_host_bins
    infra/moto/with-moto.sh "$bins/mailbox-fanout" --queue in-process --mailboxes "${BENCH_MAILBOXES:-2000}" \
        --queue sqs --mailboxes "${BENCH_MAILBOXES_SQS:-500}" >"$results/mailbox-fanout.md.tmp"
    mv "$results/mailbox-fanout.md.tmp" "$results/mailbox-fanout.md"
}

# ---- media (issue 17) ----

media() {
    say "media: peak RSS of 1 MiB and 25 MiB fetches, webhook -> stored for ${BENCH_MEDIA_DELIVERIES:-50} files"
    build_host_bins
    "$bins/media-fetch" --deliveries "${BENCH_MEDIA_DELIVERIES:-50}" >"$results/media.md.tmp"
    mv "$results/media.md.tmp" "$results/media.md"
}

# ---- capacity units and cost (issue 16, goals 1 and 7) ----

units() {
    say "units: the steps of a dialog on the embedded store and on moto"
    build_host_bins
    infra/moto/with-moto.sh "$bins/units" --store embedded --store moto >"$results/units.json.tmp"
    mv "$results/units.json.tmp" "$results/units.json"
}

# ---- main ----

if [[ "${1:-}" == "--inside-moto" ]]; then
    shift
    lambda_parts_inside_moto "$@"
    exit 0
fi

parts=("$@")
if [[ ${#parts[@]} -eq 0 || "${parts[0]}" == all ]]; then parts=("${ALL_PARTS[@]}"); fi
lambda_parts=()
for part in "${parts[@]}"; do
    case "$part" in
        cold-start | roundtrips | memory) lambda_parts+=("$part") ;;
        package-size | ingest | tick-cost | timer-drain | mailbox-fanout | units | media) ;;
        *)
            echo "usage: $0 [all | ${ALL_PARTS[*]}]..." >&2
            exit 2
            ;;
    esac
done

started=$SECONDS
for part in "${parts[@]}"; do
    case "$part" in
        package-size) package_size ;;
        ingest) ingest ;;
        tick-cost) tick_cost ;;
        timer-drain) timer_drain ;;
        mailbox-fanout) mailbox_fanout ;;
        media) media ;;
    esac
done
if [[ ${#lambda_parts[@]} -gt 0 ]]; then run_lambda_parts "${lambda_parts[@]}"; fi
# After the Lambda parts: its cost uses their warm handler times.
for part in "${parts[@]}"; do
    if [[ "$part" == units ]]; then units; fi
done

"$(python_bin)" "$bench/report.py" "$results" "$repo_root" >"$repo_root/BENCHMARKS.md.tmp"
mv "$repo_root/BENCHMARKS.md.tmp" "$repo_root/BENCHMARKS.md"
say "wrote BENCHMARKS.md in $((SECONDS - started)) s"
