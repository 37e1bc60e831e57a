#!/usr/bin/env bash
# Every test of the project, as CI runs it: formatting, lints, the template checks, and all Rust tests
# (unit, handler, end-to-end, and the conformance suite against the embedded adapters and against
# DynamoDB / Secrets Manager / EventBridge on moto's server). Installs what it needs into .venv.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n==> %s\n' "$*"; }
started=$(date +%s)

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy (all targets, warnings are errors)"
cargo clippy --workspace --all-targets --locked -- -D warnings

step "template: sam validate --lint and cfn-lint"
infra/aws/lint-template.sh

step "cargo test (moto started on 127.0.0.1 for the AWS adapters)"
infra/moto/with-moto.sh cargo test --workspace --locked --no-fail-fast

printf '\nAll checks passed in %ss.\n' "$(( $(date +%s) - started ))"
