#!/usr/bin/env bash
# Every test of the project, as CI runs it: formatting, lints, the template checks (lint, a stack on moto's
# CloudFormation, and a `sam build` of every function), all Rust tests
# (unit, handler, end-to-end, and the conformance suite against the embedded adapters and against
# DynamoDB / Secrets Manager / EventBridge on moto's server), the operator workspace in headless Chromium
# (infra/web), schemathesis against omnichat-local, a smoke run of every fuzz target, the crash-and-retry
# harness at reduced size, and every function invoked through cargo lambda from its example events
# (infra/lambda/try.sh).
# Installs what it needs into .venv.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n==> %s\n' "$*"; }
started=$(date +%s)

# One full run from a clean clone: incremental compilation only fills the disk (gigabytes under
# target/*/incremental) and slows a build that is never repeated. The whole run needs about 12 GB free.
export CARGO_INCREMENTAL="${CARGO_INCREMENTAL:-0}"
df -h . | awk 'NR == 2 { print "disk: " $4 " free of " $2 " where the build goes" }'

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy (all targets, warnings are errors)"
cargo clippy --workspace --all-targets --locked -- -D warnings

step "template: sam validate --lint and cfn-lint"
infra/aws/lint-template.sh

step "template: a stack on moto's CloudFormation, its table, bus, rules, logs, alarms and grants checked"
infra/aws/moto-stack.sh

step "cargo test (moto started on 127.0.0.1 for the AWS adapters; the e-mail and browser end to end tests run below)"
# `--skip e2e_email::` and `--skip e2e_workspace::` reach every test binary of the workspace, and only the
# integration binary has tests under those module paths: its e-mail tests (which need mail servers) and its
# operator workspace tests (which need chromedriver and fail without it); both run in their own steps below.
infra/moto/with-moto.sh cargo test --workspace --locked --no-fail-fast -- --skip e2e_email:: --skip e2e_workspace::

step "cargo lambda: every function invoked from its example events against the dev stack on moto (infra/lambda/try.sh)"
infra/lambda/try.sh

step "e-mail end to end against real servers on 127.0.0.1 (dovecot IMAP, aiosmtpd SMTP)"
infra/mail/with-mail-servers.sh cargo test -p omnichat-tests --locked --test integration e2e_email::

step "the operator workspace in headless Chromium (infra/web/with-chromedriver.sh)"
infra/web/with-chromedriver.sh cargo test -p omnichat-tests --locked --test integration e2e_workspace:: -- --test-threads=1

step "schemathesis against omnichat-local (the OpenAPI document against the running API)"
infra/api/schemathesis.sh

step "fuzz smoke: every fuzz target (providers, e-mail MIME, settings, API bodies), 20,000 executions or 10 s each"
infra/fuzz/run.sh --smoke -j 2

step "sam build: every function of the template, release arm64 through cargo lambda (infra/aws/build.sh)"
infra/aws/build.sh

step "crash-and-retry harness, reduced size (SIGKILLs under provider load; infra/crash/run.sh --quick)"
CRASH_PROFILE=debug infra/crash/run.sh --quick

printf '\nAll checks passed in %ss.\n' "$(( $(date +%s) - started ))"
