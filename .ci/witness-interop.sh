#!/usr/bin/env bash
# Witnessing across implementations: `aics-witness` (a C2SP tlog-witness from PyPI, written by
# others) runs as the third of three witnesses beside two `proctor witness` processes, and the
# Rust test crates/proctor-cli/tests/witness_interop.rs drives them: jobs on `proctor serve`
# are cosigned at a quorum of 2, and a forked copy of the log is refused by every witness,
# which keeps it as evidence.
#
# The test skips when aics-witness is absent; here PROCTOR_REQUIRE_AICS_WITNESS=1 makes its
# absence a failure. Run with CARGO_TARGET_DIR as .ci/run sets it.
set -euo pipefail
cd "$(dirname "$0")/.."

# Pinned: the version this test was written against.
AICS_WITNESS_VERSION="0.1.0"

python=""
for candidate in python3.12 "$HOME/.pyenv/versions/3.12.1/bin/python3.12" /usr/bin/python3.12; do
    if command -v "$candidate" >/dev/null 2>&1 && "$candidate" -c 'import sys' >/dev/null 2>&1; then
        python="$(command -v "$candidate")"
        break
    fi
done
if [ -z "$python" ]; then
    echo "witness-interop: aics-witness needs Python >= 3.12 and no python3.12 was found" >&2
    exit 1
fi

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
"$python" -m venv "$work/venv"
"$work/venv/bin/pip" install --quiet --disable-pip-version-check "aics-witness==$AICS_WITNESS_VERSION"
"$work/venv/bin/aics-witness" --version

PROCTOR_AICS_WITNESS="$work/venv/bin/aics-witness" PROCTOR_REQUIRE_AICS_WITNESS=1 \
    cargo test --release -p proctor-cli --test witness_interop
