#!/usr/bin/env bash
# Helpers for the infra scripts that start processes of their own (infra/bench/run.sh,
# infra/api/schemathesis.sh, infra/mail/with-mail-servers.sh):
#
#   source infra/processes.sh
#
# The caller defines `say` (its messages, with its own prefix) and may set READY_TIMEOUT_SECONDS (default 30).

# Stops one process started by the caller: SIGTERM, SIGKILL after GRACE seconds (default 5), then reaps it.
# A process that is gone already is no error. Arguments: PID [GRACE].
stop_pid() {
    local pid="$1" grace="${2:-5}" tick
    if [[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null; then
        kill "$pid" 2>/dev/null || true
        for ((tick = 0; tick < grace * 10; tick++)); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
        kill -9 "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    fi
}

# Waits until COMMAND succeeds, for at most READY_TIMEOUT_SECONDS, while PID lives; otherwise prints LOG and
# exits 1. Arguments: NAME PID LOG COMMAND...
wait_for() {
    local name="$1" pid="$2" log="$3" limit="${READY_TIMEOUT_SECONDS:-30}"
    local deadline=$((SECONDS + limit))
    shift 3
    until "$@" >/dev/null 2>&1; do
        if ! kill -0 "$pid" 2>/dev/null; then
            say "$name exited before it was ready:"
            cat "$log" >&2
            exit 1
        fi
        if ((SECONDS >= deadline)); then
            say "$name not ready after ${limit}s:"
            cat "$log" >&2
            exit 1
        fi
        sleep 0.1
    done
}

# A free TCP port on 127.0.0.1 (the kernel's choice). Arguments: PYTHON (the interpreter to ask).
free_port() {
    "$1" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}
