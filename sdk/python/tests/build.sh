#!/usr/bin/env bash
# Builds the Python SDK's test components through `proctor-eval build` (the SDK installed from
# this repo with pip, componentize-py from PyPI) into $1 (default:
# $HOME/.cache/proctor-toolchains/pysdk): arith.wasm (examples/arith), hostile.wasm and
# describe-model.wasm (tests/guests), and arith-isolation.wasm (the example built for 0.2.0
# with WASI, so that both flags are covered).
# Python builds are not reproducible, so outputs are cached by input digest only to save time,
# never compared with earlier builds.
set -euo pipefail
sdk="$(cd "$(dirname "$0")/.." && pwd)"
cache="${PROCTOR_TOOLCHAIN_CACHE:-$HOME/.cache/proctor-toolchains}"
out="${1:-$cache/pysdk}"
mkdir -p "$cache" "$out"
# Test binaries may build at the same time: one build at a time.
exec 9>"$cache/pysdk.lock"
flock 9
stamp="$(cd "$sdk" && cat pyproject.toml src/proctor_eval/*.py src/proctor_eval/wit/*.wit \
    examples/arith/app.py tests/guests/*.py tests/build.sh | sha256sum | cut -c1-16)"
if [ -f "$out/$stamp.done" ]; then exit 0; fi

venv="$cache/pysdk-venv"
if [ ! -x "$venv/bin/python" ]; then
    python3 -m venv "$venv"
fi
# The SDK as a user installs it (its pinned componentize-py comes with it); reinstalled when
# its sources change.
"$venv/bin/pip" install -q --disable-pip-version-check --force-reinstall --no-cache-dir --no-deps "$sdk" >/dev/null
"$venv/bin/pip" install -q --disable-pip-version-check "$sdk" >/dev/null
build() { "$venv/bin/proctor-eval" build "$@"; }
build "$sdk/examples/arith/app.py" -o "$out/arith.wasm"
build "$sdk/tests/guests/hostile.py" -o "$out/hostile.wasm"
build "$sdk/tests/guests/describe_model.py" -o "$out/describe-model.wasm"
build "$sdk/examples/arith/app.py" --isolation --wasi -o "$out/arith-isolation.wasm"
rm -f "$out"/*.done
touch "$out/$stamp.done"
