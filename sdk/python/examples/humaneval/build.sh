#!/usr/bin/env bash
# Builds the HumanEval eval through the Python SDK (`proctor-eval build app.py --isolation`) into
# $1 (default: $HOME/.cache/proctor-toolchains/pysdk) and prints the component's path. Python
# builds are not reproducible, so the output is cached by the digest of its inputs (this eval,
# the SDK's sources, this script) only to save time, never compared with an earlier build. It
# shares the SDK's venv and lock with sdk/python/tests/build.sh.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
sdk="$(cd "$here/../.." && pwd)"
cache="${PROCTOR_TOOLCHAIN_CACHE:-$HOME/.cache/proctor-toolchains}"
out="${1:-$cache/pysdk}"
mkdir -p "$cache" "$out"
exec 9>"$cache/pysdk.lock"
flock 9
stamp="$(cd "$sdk" && cat pyproject.toml src/proctor_eval/*.py src/proctor_eval/wit/*.wit \
    "$here/app.py" "$here/build.sh" | sha256sum | cut -c1-16)"
wasm="$out/humaneval-$stamp.wasm"
if [ -f "$wasm" ]; then
    echo "$wasm"
    exit 0
fi

venv="$cache/pysdk-venv"
if [ ! -x "$venv/bin/python" ]; then
    python3 -m venv "$venv" >&2
fi
# The SDK as a user installs it (its pinned componentize-py comes with it).
"$venv/bin/pip" install -q --disable-pip-version-check --force-reinstall --no-cache-dir --no-deps "$sdk" >&2
"$venv/bin/pip" install -q --disable-pip-version-check "$sdk" >&2
rm -f "$out"/humaneval-*.wasm
"$venv/bin/proctor-eval" build "$here/app.py" --isolation -o "$out/humaneval-building.wasm" >&2
mv "$out/humaneval-building.wasm" "$wasm"
echo "$wasm"
