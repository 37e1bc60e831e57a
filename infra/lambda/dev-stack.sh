#!/usr/bin/env bash
# The dev stack for trying the functions one at a time with cargo lambda, on moto (or any loopback
# AWS_ENDPOINT_URL):
#
#   source infra/tools.sh
#   infra/moto/with-moto.sh infra/lambda/dev-stack.sh            # until Ctrl-C; invoke from another terminal
#   infra/moto/with-moto.sh infra/lambda/dev-stack.sh -- CMD...  # runs CMD once the stack is up, then stops
#
# 1. Creates the table, the event bus and the two platform secrets exactly as template.yaml defines them
#    (infra/lambda/dev_stack.py reads the template), for a stack named `dev`; the secrets hold the known
#    dev keys below, which the first-tenant custom resource then takes instead of generating keys.
# 2. Starts a fake Telegram Bot API (and VK, Viber; infra/lambda/fakes.py) on a free 127.0.0.1 port, which
#    also records custom resource answers and stands in for the WebSocket API's @connections (the live
#    function's LIVE_CALLBACK_URL).
# 3. Starts `cargo lambda watch` on 127.0.0.1:PORT (9000, or DEV_STACK_PORT) with the template's function
#    environment (written to DIR/watch.env) plus the fakes' base URLs and the AWS endpoint.
# 4. Seeds through the functions themselves (infra/lambda/lambda_try.py seed): invokes first-tenant with its
#    Create event (the first tenant, whose admin key is the dev key), then api with POST /v1/channels events
#    connecting a Telegram bot, a VK community and a Viber bot against the fakes. Writes every function's
#    example events with this stack's values filled in under DIR/events/<function>/, and prints the commands
#    to invoke them.
#
# DIR is DEV_STACK_DIR (default .dev-stack in the repo root, emptied at start). Idempotent: run again on the
# same moto, the resources are checked and kept, the tenant is the same, and the bots and the community are
# connected again (each new channel displaces the old one). Everything it starts is stopped on exit, also on failure.
set -euo pipefail

# The known dev keys (the dev stack prints the admin key; nothing else secret is printed).
DEV_ADMIN_KEY="ock_dev_admin_key_0123456789ab"
DEV_OPERATOR_KEY="ock_dev_operator_key_0123456789"
STACK_NAME="dev"
READY_TIMEOUT_SECONDS=60 # read by wait_for (infra/processes.sh)

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$repo_root"
say() { printf 'dev-stack: %s\n' "$*" >&2; }

command=()
if [[ $# -gt 0 ]]; then
    if [[ "$1" != "--" ]]; then
        echo "usage: $0 [-- COMMAND [ARGS...]]   (DEV_STACK_PORT, DEV_STACK_DIR in the environment)" >&2
        exit 2
    fi
    shift
    command=("$@")
fi
if [[ -z "${AWS_ENDPOINT_URL:-}" ]]; then
    say "AWS_ENDPOINT_URL is not set: run under infra/moto/with-moto.sh (this never touches a real account)"
    exit 2
fi

# shellcheck source=infra/tools.sh
source infra/tools.sh
# shellcheck source=infra/processes.sh
source infra/processes.sh
python="$repo_root/.venv/bin/python"

port="${DEV_STACK_PORT:-9000}"
dir="${DEV_STACK_DIR:-$repo_root/.dev-stack}"
rm -rf "$dir"
mkdir -p "$dir"
chmod 0700 "$dir"

fakes_pid=""
watch_pid=""
stop_all() {
    # cargo lambda watch runs the functions as processes of its own: its whole process group goes.
    if [[ -n "$watch_pid" ]] && kill -0 "$watch_pid" 2>/dev/null; then
        kill -TERM -- "-$watch_pid" 2>/dev/null || true
        for ((tick = 0; tick < 50; tick++)); do
            kill -0 -- "-$watch_pid" 2>/dev/null || break
            sleep 0.1
        done
        kill -KILL -- "-$watch_pid" 2>/dev/null || true
        wait "$watch_pid" 2>/dev/null || true
    fi
    stop_pid "$fakes_pid" 5
}
trap stop_all EXIT
# An interrupt ends the script (and so runs the EXIT trap) with the conventional code.
trap 'exit 130' INT
trap 'exit 143' TERM

# ---- fakes ----
"$python" infra/lambda/fakes.py "$dir/fakes.port" >"$dir/fakes.log" 2>&1 &
fakes_pid=$!
wait_for "the fakes" "$fakes_pid" "$dir/fakes.log" test -s "$dir/fakes.port"
fakes="http://127.0.0.1:$(cat "$dir/fakes.port")"

# ---- table, bus, secrets from template.yaml; the functions' environment ----
"$python" infra/lambda/dev_stack.py resources "$STACK_NAME" template.yaml "$dir/watch.env" \
    "$DEV_ADMIN_KEY" "$DEV_OPERATOR_KEY" "http://127.0.0.1:$port"
{
    echo "TELEGRAM_API_BASE=$fakes"
    echo "VK_API_BASE=$fakes"
    echo "VIBER_API_BASE=$fakes/pa"
    # The live function's pushes go to the fakes' stand-in for the WebSocket stage's @connections API.
    echo "LIVE_CALLBACK_URL=$fakes/live"
    echo "AWS_ENDPOINT_URL=$AWS_ENDPOINT_URL"
    echo "AWS_REGION=${AWS_REGION:-us-east-1}"
    echo "AWS_ACCESS_KEY_ID=${AWS_ACCESS_KEY_ID:-testing}"
    echo "AWS_SECRET_ACCESS_KEY=${AWS_SECRET_ACCESS_KEY:-testing}"
} >>"$dir/watch.env"

# ---- cargo lambda watch, in a process group of its own ----
if "$python" -c 'import socket, sys; socket.create_connection(("127.0.0.1", int(sys.argv[1])), 1)' "$port" 2>/dev/null; then
    say "127.0.0.1:$port is in use (another cargo lambda watch?); set DEV_STACK_PORT to a free port"
    exit 1
fi
setsid cargo lambda watch --invoke-address 127.0.0.1 --invoke-port "$port" --env-file "$dir/watch.env" \
    >"$dir/watch.log" 2>&1 &
watch_pid=$!
wait_for "cargo lambda watch" "$watch_pid" "$dir/watch.log" \
    "$python" -c 'import socket, sys; socket.create_connection(("127.0.0.1", int(sys.argv[1])), 1)' "$port"
say "cargo lambda watch serving on 127.0.0.1:$port (log: $dir/watch.log)"

# ---- the first tenant and the Telegram, VK and Viber channels, through the functions ----
export DEV_STACK_DIR="$dir" DEV_STACK_PORT="$port" DEV_STACK_FAKES="$fakes"
if ! "$python" infra/lambda/lambda_try.py seed; then
    say "seeding failed; the functions' log:"
    tail -n 60 "$dir/watch.log" >&2
    exit 1
fi

cat <<EOF

The dev stack is up: table, bus and secrets of template.yaml on $AWS_ENDPOINT_URL, fake Telegram, VK and
Viber APIs at $fakes, and cargo lambda watch on 127.0.0.1:$port with this environment ($dir/watch.env):

$(sed -e 's/^/    /' "$dir/watch.env")

The first tenant's admin key (a dev key): $DEV_ADMIN_KEY
Example events with this stack's values (channel ids, webhook secrets, Viber's signature, response URL) are
in $dir/events/.
Try, from another terminal in $repo_root:

    cargo lambda invoke api --invoke-address 127.0.0.1 --invoke-port $port --data-file functions/api/events/list-dialogs.json
    cargo lambda invoke webhook-telegram --invoke-address 127.0.0.1 --invoke-port $port --data-file $dir/events/webhook-telegram/telegram-text.json
    cargo lambda invoke webhook-vk --invoke-address 127.0.0.1 --invoke-port $port --data-file $dir/events/webhook-vk/vk-message-new.json
    cargo lambda invoke router --invoke-address 127.0.0.1 --invoke-port $port --data-file functions/router/events/scheduled.json

The functions' output: tail -f $dir/watch.log
EOF

if [[ ${#command[@]} -gt 0 ]]; then
    status=0
    "${command[@]}" || status=$?
    if [[ $status -ne 0 ]]; then
        say "the command failed ($status); the last lines of the functions' log:"
        tail -n 60 "$dir/watch.log" >&2
    fi
    exit "$status"
fi
say "serving until Ctrl-C"
wait "$watch_pid"
