#!/usr/bin/env bash
# Runs a command against a local moto server (AWS emulation for DynamoDB, Secrets Manager, EventBridge, SQS).
#
#   infra/moto/with-moto.sh cargo test -p omnichat-tests --test integration conformance
#
# Creates (once) a virtualenv at .venv in the repo root with a pinned moto, starts moto's server on a free
# loopback port (serving one request at a time, see below), points the AWS SDK at it (AWS_ENDPOINT_URL,
# dummy credentials, us-east-1), sets OMNICHAT_MOTO=1 so tests that need moto fail instead of skipping, runs
# the command and stops moto on exit (also on failure or interrupt). Answers the command's exit code.
set -euo pipefail

MOTO_VERSION="5.2.1"
READY_TIMEOUT_SECONDS=30

if [[ $# -eq 0 ]]; then
    echo "usage: $0 COMMAND [ARGS...]" >&2
    exit 2
fi

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
venv="$repo_root/.venv"

if [[ ! -x "$venv/bin/python" ]]; then
    echo "with-moto: creating virtualenv at $venv" >&2
    python3 -m venv "$venv"
fi

# moto at the pinned version, with what its server and dynamodb extras bring (flask, flask-cors,
# py-partiql-parser): a plain `pip install moto` alone would not start the server.
installed="$("$venv/bin/python" - "$MOTO_VERSION" <<'PY' 2>/dev/null || true
import importlib.metadata as metadata, sys
try:
    ok = metadata.version("moto") == sys.argv[1] and all(
        metadata.version(extra) for extra in ("flask", "flask-cors", "py-partiql-parser")
    )
except metadata.PackageNotFoundError:
    ok = False
print("yes" if ok else "no")
PY
)"
if [[ "$installed" != "yes" ]] || [[ ! -x "$venv/bin/moto_server" ]]; then
    echo "with-moto: installing moto $MOTO_VERSION" >&2
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check \
        "moto[server,dynamodb,events,secretsmanager]==$MOTO_VERSION"
fi

port="$("$venv/bin/python" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()')"
log_file="$(mktemp "${TMPDIR:-/tmp}/moto.XXXXXX.log")"

moto_pid=""
stop_moto() {
    if [[ -n "$moto_pid" ]] && kill -0 "$moto_pid" 2>/dev/null; then
        kill "$moto_pid" 2>/dev/null || true
        wait "$moto_pid" 2>/dev/null || true
    fi
    rm -f "$log_file"
}
trap stop_moto EXIT
# An interrupt ends the script (and so runs the EXIT trap) with the conventional code.
trap 'exit 130' INT
trap 'exit 143' TERM

# moto's own `moto_server -H 127.0.0.1 -p PORT`, with two differences that make it behave as AWS does:
# - Requests are handled one at a time. moto's DynamoDB keeps no lock of its own, so two concurrent `ADD`s
#   (or conditional puts) on one item can interleave and lose an update, which DynamoDB never does; serving
#   requests in turn restores DynamoDB's per-item atomicity. Connections are still served on threads, so
#   keep-alive works as with moto_server.
# - PutSecretValue on a secret scheduled for deletion answers InvalidRequestException, as Secrets Manager
#   does ("A parameter value is not valid for the current state of the resource. Possible causes: The secret
#   is scheduled for deletion."); moto 5.2 stores the value and leaves the secret deleted.
"$venv/bin/python" - 127.0.0.1 "$port" >"$log_file" 2>&1 <<'PY' &
import os
import runpy
import sys
import threading

from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app
from werkzeug.serving import run_simple

host, port = sys.argv[1], int(sys.argv[2])
os.environ.setdefault("MOTO_PORT", str(port))
moto_app = DomainDispatcherApplication(create_backend_app)

from moto.secretsmanager.exceptions import InvalidRequestException
from moto.secretsmanager.models import SecretsManagerBackend

moto_put_secret_value = SecretsManagerBackend.put_secret_value


def put_secret_value(self, secret_id, *args, **kwargs):
    if self._is_valid_identifier(secret_id) and self.secrets[secret_id].is_deleted():
        raise InvalidRequestException(
            "You can't perform this operation on the secret because it was marked for deletion."
        )
    return moto_put_secret_value(self, secret_id, *args, **kwargs)


SecretsManagerBackend.put_secret_value = put_secret_value
# OMNICHAT_MOTO_PLUGINS: files run in the server before it serves (':'-separated), e.g.
# infra/moto/cfn_models.py, which adds CloudFormation resource types; what they define stays alive here.
plugins = [runpy.run_path(path) for path in os.environ.get("OMNICHAT_MOTO_PLUGINS", "").split(":") if path]
one_at_a_time = threading.Lock()


def serial_app(environ, start_response):
    with one_at_a_time:
        return list(moto_app(environ, start_response))


run_simple(host, port, serial_app, threaded=True)
PY
moto_pid=$!

endpoint="http://127.0.0.1:$port"
deadline=$((SECONDS + READY_TIMEOUT_SECONDS))
until "$venv/bin/python" -c "import urllib.request, sys; urllib.request.urlopen(sys.argv[1], timeout=1)" \
    "$endpoint/moto-api/" >/dev/null 2>&1; do
    if ! kill -0 "$moto_pid" 2>/dev/null; then
        echo "with-moto: moto_server exited before it was ready:" >&2
        cat "$log_file" >&2
        exit 1
    fi
    if ((SECONDS >= deadline)); then
        echo "with-moto: moto_server not ready at $endpoint after ${READY_TIMEOUT_SECONDS}s:" >&2
        cat "$log_file" >&2
        exit 1
    fi
    sleep 0.2
done
echo "with-moto: moto $MOTO_VERSION ready at $endpoint" >&2

export AWS_ENDPOINT_URL="$endpoint"
export AWS_REGION=us-east-1
export AWS_DEFAULT_REGION=us-east-1
export AWS_ACCESS_KEY_ID=testing
export AWS_SECRET_ACCESS_KEY=testing
export OMNICHAT_MOTO=1

status=0
"$@" || status=$?
exit "$status"
