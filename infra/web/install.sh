#!/usr/bin/env bash
# Installs what the browser tests need, idempotently:
#   - Debian's chromium and chromium-driver (/usr/bin/chromium, /usr/bin/chromedriver, the same version) when
#     /usr/bin/chromedriver is missing. Nothing is downloaded outside the package manager: no driver or browser
#     manager, no prebuilt browser build.
#   - axe-core, pinned in infra/web/package.json and package-lock.json, into infra/web/node_modules
#     (`npm ci`), when the installed one is not the pinned version.
#
#   infra/web/install.sh
set -euo pipefail

web="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
say() { echo "web/install: $*" >&2; }

as_root() {
    if [[ $(id -u) -eq 0 ]]; then "$@"; else sudo "$@"; fi
}

if [[ ! -x /usr/bin/chromedriver || ! -x /usr/bin/chromium ]]; then
    say "installing Debian's chromium and chromium-driver"
    # A fresh machine has no package lists yet: update only when the install fails without them.
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium chromium-driver >/dev/null 2>&1 || {
        as_root apt-get update -q >/dev/null
        as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium chromium-driver >/dev/null
    }
fi

pinned="$(node -p 'require(process.argv[1]).devDependencies["axe-core"]' "$web/package.json")"
installed="$(node -p 'try { require(process.argv[1]).version } catch { "" }' \
    "$web/node_modules/axe-core/package.json" 2>/dev/null || true)"
if [[ "$installed" != "$pinned" || ! -f "$web/node_modules/axe-core/axe.min.js" ]]; then
    say "installing axe-core $pinned (npm ci)"
    npm ci --prefix "$web" --ignore-scripts --no-audit --no-fund --loglevel=error >/dev/null
fi
