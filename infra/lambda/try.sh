#!/usr/bin/env bash
# Every function of functions/, invoked through `cargo lambda invoke` from its example events, as a new user
# would try them locally (README, "One function at a time, against moto"):
#
#   infra/lambda/try.sh
#
# Starts moto (infra/moto/with-moto.sh) and the dev stack (infra/lambda/dev-stack.sh: the table, bus and
# secrets of template.yaml, fake Telegram, VK and Viber APIs, `cargo lambda watch` on a free 127.0.0.1 port,
# the first tenant and a Telegram, a VK and a Viber channel seeded through first-tenant and api), then
# infra/lambda/lambda_try.py check: one line per invocation, each answer checked (status and body, and the
# effect where there is one: the Telegram, VK and Viber messages each store one message, their repeats
# nothing, VK's confirmation answers the fake's code, a forged Viber signature is 401 and stores nothing, the
# reply reaches the fake, the schedules change nothing, the live function's authorizer takes an API ticket once
# and its push reaches the fakes' @connections), exit 1 on the first surprise. Everything started is
# stopped on exit, also on failure.
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$repo_root"
started=$SECONDS

# shellcheck source=infra/tools.sh
source infra/tools.sh
# shellcheck source=infra/processes.sh
source infra/processes.sh

DEV_STACK_DIR="$(mktemp -d "${TMPDIR:-/tmp}/omnichat-lambda-try.XXXXXX")"
DEV_STACK_PORT="$(free_port python3)"
export DEV_STACK_DIR DEV_STACK_PORT
status=0
infra/moto/with-moto.sh infra/lambda/dev-stack.sh -- .venv/bin/python infra/lambda/lambda_try.py check ||
    status=$?
if [[ $status -eq 0 ]]; then
    rm -rf "$DEV_STACK_DIR"
    printf 'try.sh: passed in %ss\n' "$((SECONDS - started))"
else
    printf 'try.sh: FAILED after %ss; the dev stack'"'"'s files (watch.log, fakes.log, events) are in %s\n' \
        "$((SECONDS - started))" "$DEV_STACK_DIR" >&2
fi
exit "$status"
