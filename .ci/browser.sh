#!/usr/bin/env bash
# The web view's tests, in node and in a real browser: everything under
# crates/proctor-server/web/tests/*.test.mjs, with Node's own test runner.
#
# - verify.test.mjs: the browser verifier (web/verify.js) on known answers and against the Rust
#   verifier, on bundles `proctor demo --out` writes;
# - signed-text.test.mjs: job.js writes figures exactly as the server does;
# - public.browser.test.mjs: the public pages (log, attestation, history) in Debian's chromium,
#   driven by playwright-core (no browser download): the demo's attestation verifies in the
#   browser, a changed byte or figure fails, search and paging, no-JavaScript reading, axe-core
#   accessibility, the attestation page's size and first render, the security headers;
# - app.browser.test.mjs: the signed-in views (a vendor revokes a grant, an evaluator watches a
#   job finish).
#
# Installs Debian's `chromium` when /usr/bin/chromium is missing, and the pinned npm packages
# (`npm ci`, skipped while node_modules matches package-lock.json). Screenshots land in
# crates/proctor-server/web/tests/screenshots/ and are copied, as CI's artifacts, to
# $PROCTOR_ARTIFACTS_DIR (default ~/.cache/proctor-ci-artifacts/screenshots-TIME; both paths
# are printed at the end). Needs PROCTOR_BIN (the release `proctor` binary). About two minutes on two cores
# once chromium and node_modules are there (installing chromium adds a minute or two).
set -euo pipefail
cd "$(dirname "$0")/.."

: "${PROCTOR_BIN:?set PROCTOR_BIN to the release proctor binary}"
if [ ! -x "$PROCTOR_BIN" ]; then
    echo "browser: PROCTOR_BIN=$PROCTOR_BIN is not an executable" >&2
    exit 1
fi
PROCTOR_BIN="$(cd "$(dirname "$PROCTOR_BIN")" && pwd)/$(basename "$PROCTOR_BIN")"
export PROCTOR_BIN
started=$(date +%s)

as_root() {
    if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi
}
apt_install() { # apt_install PACKAGE...: with `apt-get update` first only if it fails without
    if ! as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "$@"; then
        as_root apt-get update
        as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "$@"
    fi
}

# --- the browser and node. ------------------------------------------------------------------
if [ ! -x /usr/bin/chromium ]; then
    echo "browser: installing Debian's chromium"
    apt_install chromium
fi
/usr/bin/chromium --version 2>/dev/null | grep -i chromium || true
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
    echo "browser: installing node and npm"
    apt_install nodejs npm
fi
echo "browser: node $(node --version), npm $(npm --version)"

# --- the npm packages (pinned by package-lock.json), reused while the lock is unchanged. -----
cd crates/proctor-server/web
lock_sum="$(sha256sum package-lock.json | cut -d' ' -f1)"
stamp=node_modules/.proctor-package-lock.sha256
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$lock_sum" ] \
    && [ -d node_modules/playwright-core ] && [ -d node_modules/axe-core ]; then
    echo "browser: node_modules matches package-lock.json; npm ci skipped"
else
    npm ci --no-audit --no-fund
    echo "$lock_sum" >"$stamp"
fi

# --- the tests. -------------------------------------------------------------------------------
rm -rf tests/screenshots
status=0
node --test tests/*.test.mjs || status=$?

shots="$(pwd)/tests/screenshots"
if [ -d "$shots" ]; then
    # CI's clone is removed after the run: the screenshots are kept outside it, one folder per
    # run, the latest ten.
    artifacts="${PROCTOR_ARTIFACTS_DIR:-$HOME/.cache/proctor-ci-artifacts}"
    kept="$artifacts/screenshots-$(date -u +%Y%m%dT%H%M%SZ)"
    mkdir -p "$kept" && cp "$shots"/*.png "$kept"/ 2>/dev/null || true
    { ls -1d "$artifacts"/screenshots-* | head -n -10 | xargs -r rm -rf; } 2>/dev/null || true
    echo "browser: screenshots ($(find "$shots" -name '*.png' | wc -l)) in $shots, kept in $kept:"
    find "$shots" -name '*.png' -printf '  %f\n' | sort
else
    echo "browser: no screenshots were written"
fi
echo "browser: done in $(($(date +%s) - started)) s (exit $status)"
exit "$status"
