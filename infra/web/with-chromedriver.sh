#!/usr/bin/env bash
# Runs a command with chromedriver (Debian's, driving Debian's headless Chromium) on 127.0.0.1:
#
#   infra/web/with-chromedriver.sh cargo test -p omnichat-tests --test integration e2e_workspace:: -- --test-threads=1
#
# Installs what is missing (infra/web/install.sh), starts chromedriver on a free loopback port that only
# 127.0.0.1 may use, waits (bounded) until its /status answers, exports where it is and where axe-core is
# (below), runs the command and stops chromedriver on exit (also on failure or interrupt). Answers the
# command's exit code. The browser tests fail, not skip, without CHROMEDRIVER_URL.
#
# Exported: CHROMEDRIVER_URL (http://127.0.0.1:<port>), AXE_JS (the absolute path of the pinned axe.min.js).
# OMNICHAT_SCREENSHOTS=1 (set by the caller) makes the tests rewrite docs/screenshots/*.png.
set -euo pipefail

READY_TIMEOUT_SECONDS=30

if [[ $# -eq 0 ]]; then
    echo "usage: $0 COMMAND [ARGS...]" >&2
    exit 2
fi

web="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo_root="$(cd "$web/../.." && pwd)"
say() { echo "with-chromedriver: $*" >&2; }

"$web/install.sh"

# shellcheck source=infra/processes.sh
source "$repo_root/infra/processes.sh"
port="$(free_port python3)"
work="$(mktemp -d "${TMPDIR:-/tmp}/omnichat-chromedriver.XXXXXX")"
log="$work/chromedriver.log"

driver_pid=""
# shellcheck disable=SC2317  # called by the EXIT trap
stop_driver() {
    stop_pid "$driver_pid"
    rm -rf "$work"
}
trap stop_driver EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

/usr/bin/chromedriver --port="$port" --allowed-ips=127.0.0.1 --log-path="$log" >"$work/chromedriver.out" 2>&1 &
driver_pid=$!

status_ready() {
    python3 - "$port" <<'PY'
import json, sys, urllib.request
with urllib.request.urlopen(f"http://127.0.0.1:{sys.argv[1]}/status", timeout=1) as answer:
    sys.exit(0 if json.load(answer)["value"]["ready"] else 1)
PY
}
wait_for chromedriver "$driver_pid" "$work/chromedriver.out" status_ready
say "$(/usr/bin/chromedriver --version | cut -d' ' -f1-2) on 127.0.0.1:$port, $(/usr/bin/chromium --version 2>/dev/null | cut -d' ' -f1-2)"

export CHROMEDRIVER_URL="http://127.0.0.1:$port"
export AXE_JS="$web/node_modules/axe-core/axe.min.js"

status=0
"$@" || status=$?
if [[ $status -ne 0 && -s "$log" ]]; then
    say "last lines of chromedriver.log:"
    # Lines cut short: a script's text (axe-core's is 500 KB on one line) is logged with its command.
    tail -n 40 "$log" | cut -c1-400 >&2 || true
fi
exit "$status"
