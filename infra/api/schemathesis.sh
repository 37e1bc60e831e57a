#!/usr/bin/env bash
# Fuzzes the REST API and the webhooks with schemathesis, against the OpenAPI document the code serves.
#
#   infra/api/schemathesis.sh
#   SCHEMATHESIS_MAX_EXAMPLES=200 SCHEMATHESIS_SEED=7 infra/api/schemathesis.sh    # a longer, other run
#
# Installs the pinned schemathesis into the repo's .venv (holding `flock .venv`, like infra/tools.sh),
# builds omnichat-local and starts it on a free 127.0.0.1 port with a fresh data dir and a known admin key,
# with a stub standing in for the providers' APIs (provider_stub.py: the machine has no way out), seeds an
# employee, a group, a chatbot, working hours, a Telegram channel with a dialog and a reply, then runs
# schemathesis on GET /openapi.json. Fails on any 5xx and on any response whose status, content type or
# body the document does not allow. Stops what it started on exit, also on failure or interrupt.
set -euo pipefail

SCHEMATHESIS_VERSION="4.32.5"
# Per operation and phase; with the coverage phase's own cases this keeps the run near a minute on 2 cores.
MAX_EXAMPLES="${SCHEMATHESIS_MAX_EXAMPLES:-25}"
# Fixed by default so that CI is repeatable; set SCHEMATHESIS_SEED to explore.
SEED="${SCHEMATHESIS_SEED:-1}"
READY_TIMEOUT_SECONDS=30 # read by wait_for (infra/processes.sh)

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
venv="$repo_root/.venv"
cd "$repo_root"
started=$SECONDS

say() { printf 'schemathesis.sh: %s\n' "$*" >&2; }

# ---- schemathesis in .venv ----

install_schemathesis() {
    local site log status=0
    site="$(compgen -G "$venv/lib/python3*/site-packages" | head -n 1 || true)"
    if [[ -n "$site" && -d "$site/schemathesis-$SCHEMATHESIS_VERSION.dist-info" ]] &&
        [[ -x "$venv/bin/schemathesis" ]]; then
        return 0
    fi
    say "installing schemathesis $SCHEMATHESIS_VERSION into $venv"
    mkdir -p "$venv"
    log="$(mktemp "${TMPDIR:-/tmp}/omnichat-schemathesis-pip.XXXXXX")"
    # The venv folder is the lock (fd 9), as in infra/tools.sh. What is installed already is a constraint,
    # so that schemathesis' dependencies cannot move the SAM CLI's or moto's exact pins.
    # shellcheck disable=SC2094
    (
        flock 9 || exit 1
        if [[ ! -x "$venv/bin/python" ]]; then
            python3 -m venv "$venv" || exit 1
        fi
        constraints="$(mktemp "${TMPDIR:-/tmp}/omnichat-constraints.XXXXXX")"
        "$venv/bin/python" -m pip freeze --disable-pip-version-check --exclude-editable |
            grep '==' | grep -iv '^schemathesis==' >"$constraints" || true
        "$venv/bin/python" -m pip install --quiet --disable-pip-version-check \
            --constraint "$constraints" "schemathesis==$SCHEMATHESIS_VERSION"
        code=$?
        rm -f "$constraints"
        exit "$code"
    ) 9<"$venv" >"$log" 2>&1 || status=$?
    if [[ $status -ne 0 ]]; then
        say "installing schemathesis failed:"
        cat "$log" >&2
    fi
    rm -f "$log"
    return "$status"
}

install_schemathesis

# ---- omnichat-local and the provider stub ----

say "building omnichat-local"
cargo build --locked --quiet -p omnichat-local
say "built in $((SECONDS - started))s"
binary="${CARGO_TARGET_DIR:-$repo_root/target}/debug/omnichat-local"

work="$(mktemp -d "${TMPDIR:-/tmp}/omnichat-schemathesis.XXXXXX")"
server_pid=""
stub_pid=""
# shellcheck source=infra/processes.sh
source infra/processes.sh
# Run by the EXIT trap. SIGTERM first (omnichat-local finishes its requests in flight), SIGKILL after 10 s.
# shellcheck disable=SC2317
stop_all() {
    stop_pid "$server_pid" 10
    stop_pid "$stub_pid" 10
    rm -rf "$work"
}
trap stop_all EXIT
# An interrupt ends the script (and so runs the EXIT trap) with the conventional code.
trap 'exit 130' INT
trap 'exit 143' TERM

"$venv/bin/python" infra/api/provider_stub.py "$work/stub.port" "$work/webhooks.txt" >"$work/stub.log" 2>&1 &
stub_pid=$!
wait_for "the provider stub" "$stub_pid" "$work/stub.log" test -s "$work/stub.port"
stub="http://127.0.0.1:$(cat "$work/stub.port")"

port="$(free_port "$venv/bin/python")"
base="http://127.0.0.1:$port"
admin_key="ock_schemathesis_$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')"
env PORT="$port" OMNICHAT_DATA_DIR="$work/data" OMNICHAT_ADMIN_KEY="$admin_key" PUBLIC_BASE_URL="$base" \
    TELEGRAM_API_BASE="$stub" VK_API_BASE="$stub" VK_OAUTH_BASE="$stub" VIBER_API_BASE="$stub" \
    EDNA_API_BASE="$stub" MESSAGEBIRD_API_BASE="$stub" AVITO_API_BASE="$stub" RUST_LOG="${RUST_LOG:-warn}" \
    OMNICHAT_ALLOW_LOOPBACK_PROVIDERS=1 \
    "$binary" >"$work/server.log" 2>&1 &
server_pid=$!
wait_for "omnichat-local" "$server_pid" "$work/server.log" curl -fsS -o /dev/null "$base/openapi.json"
say "omnichat-local ready at $base (provider stub at $stub)"

# ---- seed data, so that lists and reads answer real objects ----

# METHOD PATH [BODY]: the response body; fails on any status but 2xx.
api() {
    local args=(-sS --fail-with-body -X "$1" -H "Authorization: Bearer $admin_key")
    if [[ $# -ge 3 ]]; then
        args+=(-H 'Content-Type: application/json' --data "$3")
    fi
    curl "${args[@]}" "$base$2" || {
        say "seeding failed: $1 $2"
        cat "$work/server.log" >&2
        exit 1
    }
}
# FIELD: that top-level field of the JSON object on stdin (or of its first item, for a page).
field() {
    "$venv/bin/python" -c 'import json, sys
body = json.load(sys.stdin)
print((body["items"][0] if "items" in body else body)[sys.argv[1]])' "$1"
}

employee="$(api POST /v1/employees '{"name": "Seed Employee", "status": "online", "max_dialogs": 5}' | field id)"
group="$(api POST /v1/groups "{\"name\": \"Seed group\", \"members\": [\"$employee\"], \"wait_seconds\": 60}" | field id)"
api POST /v1/chatbots "{\"name\": \"Seed bot\", \"webhook_url\": \"$stub/chatbot\"}" >/dev/null
api PUT /v1/working-hours '{"time_zone": "Europe/Moscow", "weekly": {"mon": [{"from": "00:00", "to": "24:00"}],
    "tue": [{"from": "00:00", "to": "24:00"}], "wed": [{"from": "00:00", "to": "24:00"}],
    "thu": [{"from": "00:00", "to": "24:00"}], "fri": [{"from": "00:00", "to": "24:00"}],
    "sat": [{"from": "00:00", "to": "24:00"}], "sun": [{"from": "22:00", "to": "22:00"}]},
    "extra_days": [{"date": "2030-01-05", "intervals": [{"from": "10:00", "to": "15:00"}]}]}' >/dev/null
channel="$(api POST /v1/channels "{\"provider\": \"telegram\", \"name\": \"Seed channel\",
    \"credentials\": {\"token\": \"4242:seedSeedSeedSeedSeedSeed0123\"},
    \"settings\": {\"handling\": {\"group_id\": \"$group\"},
        \"auto_replies\": [{\"text\": \"We will answer soon\", \"delay_seconds\": 3600}],
        \"off_hours\": {\"auto_replies\": true}, \"auto_close\": {\"after\": 2, \"unit\": \"days\"}}}" | field id)"
# The secret_token omnichat registered with the stub's setWebhook (the only one so far): Telegram's header.
secret="$(tail -n 1 "$work/webhooks.txt" | cut -d ' ' -f 2)"
update='{"update_id": 1, "message": {"message_id": 1, "date": 1767600000, "text": "Hello, is anyone there?",
    "chat": {"id": 1111111, "type": "private", "first_name": "Seed"},
    "from": {"id": 1111111, "is_bot": false, "first_name": "Seed", "last_name": "Customer"}}}'
curl -sS --fail-with-body -o /dev/null -X POST -H 'Content-Type: application/json' \
    -H "X-Telegram-Bot-Api-Secret-Token: $secret" --data "$update" "$base/webhooks/telegram/$channel" || {
    say "seeding failed: the Telegram webhook"
    cat "$work/server.log" >&2
    exit 1
}
dialog="$(api GET /v1/dialogs | field id)"
api POST "/v1/dialogs/$dialog/messages" '{"text": "Hello from the seed", "buttons": ["Yes", "No"]}' >/dev/null
say "seeded employee $employee, group $group, channel $channel, dialog $dialog"

# ---- schemathesis ----

checks="not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance"
say "schemathesis $SCHEMATHESIS_VERSION: checks $checks, at most $MAX_EXAMPLES examples per operation, seed $SEED"
# One worker: with two, hypothesis describes filter lambdas via ast.parse on two threads at once, which
# CPython 3.11 does not survive ("AST constructor recursion depth mismatch", a runtime error of the run).
# Run from the work dir: schemathesis keeps a crash cache in ./.schemathesis, which must not land in the repo.
set +e
fuzz_started=$SECONDS
(
    cd "$work" &&
        "$venv/bin/schemathesis" run "$base/openapi.json" \
            --header "Authorization: Bearer $admin_key" \
            --checks "$checks" \
            --max-examples "$MAX_EXAMPLES" \
            --seed "$SEED" \
            --workers 1 \
            --generation-database none \
            --request-timeout 30 \
            --no-color
) 2>&1 | tee "$work/schemathesis.log"
status=${PIPESTATUS[0]}
set -e

if [[ $status -ne 0 ]]; then
    say "schemathesis found failures (exit $status); the server's log:"
    tail -n 200 "$work/server.log" >&2
fi
operations="$(grep -m 1 -oE 'Tested: +[0-9]+' "$work/schemathesis.log" | grep -oE '[0-9]+' || echo '?')"
cases="$(grep -m 1 -A 1 '^Test cases:' "$work/schemathesis.log" | tail -n 1 | sed 's/^ *//' || true)"
say "figures: ${operations} operations tested, test cases: ${cases:-?}; exit $status;" \
    "schemathesis $((SECONDS - fuzz_started))s, the whole script $((SECONDS - started))s"
exit "$status"
