#!/usr/bin/env bash
# Crash-and-retry harness (issue 10 part 2): runs omnichat-local under provider-style load over Telegram, VK
# and Viber webhooks (retries until 2xx, duplicates), SIGKILLs and restarts it at random moments while
# employees reply through the API to a local fake of the providers, then checks that every delivery is
# stored exactly once, one open dialog per customer, no reply is lost or sent twice, and every customer's
# document (one Telegram update in five carries one) is fetched and kept exactly once with the provider's bytes.
#
#   infra/crash/run.sh            # full size: 5,400 deliveries, 6 SIGKILLs (a few minutes)
#   infra/crash/run.sh --quick    # CI size (also CRASH_QUICK=1): 1,200 deliveries, 5 SIGKILLs, < 2 minutes
#   infra/crash/run.sh --seed 7 --keep   # repeat a run; keep its work dir (server.log, report.json)
#
# Builds omnichat-local first (release unless CRASH_PROFILE=debug; a no-op when it is up to date). Needs only python3 (standard
# library); everything listens on 127.0.0.1, in a fresh temp dir. Exit 0: all checks passed; 1: a violation
# (listed, evidence kept); 2: the harness could not run.
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$repo_root"

# CRASH_PROFILE=debug uses the debug build instead (CI has it already from `cargo test`; the invariants
# checked do not depend on the optimizer).
profile="${CRASH_PROFILE:-release}"
case "$profile" in
  release) build_flags=(--release) ;;
  debug) build_flags=() ;;
  *) echo "crash/run.sh: CRASH_PROFILE must be release or debug, not $profile" >&2; exit 2 ;;
esac
started=$SECONDS
printf 'crash/run.sh: building omnichat-local (%s)\n' "$profile" >&2
cargo build "${build_flags[@]}" --locked --quiet -p omnichat-local
printf 'crash/run.sh: built in %ss\n' "$((SECONDS - started))" >&2
binary="${CARGO_TARGET_DIR:-$repo_root/target}/$profile/omnichat-local"

exec python3 -B "$repo_root/infra/crash/harness.py" --binary "$binary" "$@"
