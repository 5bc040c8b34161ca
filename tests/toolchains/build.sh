#!/usr/bin/env bash
# Builds the arithmetic eval with componentize-py and componentize-js, in both their default
# (WASI-importing) and zero-WASI forms, into $1 (default: $HOME/.cache/proctor-toolchains/out).
# Python and JS builds are not reproducible, so outputs are cached by input digest only to save
# time, never compared with earlier builds.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
wit="$here/../../crates/proctor-sandbox/wit"
cache="${PROCTOR_TOOLCHAIN_CACHE:-$HOME/.cache/proctor-toolchains}"
out="${1:-$cache/out}"
mkdir -p "$cache" "$out"
stamp="$(cat "$here/python/app.py" "$here/js/arith.js" "$here/js/package.json" "$wit/proctor.wit" "$0" | sha256sum | cut -c1-16)"
if [ -f "$out/$stamp.done" ]; then exit 0; fi

if [ ! -x "$cache/venv/bin/componentize-py" ]; then
    python3 -m venv "$cache/venv"
    "$cache/venv/bin/pip" install -q componentize-py==0.25.1
fi
"$cache/venv/bin/componentize-py" -d "$wit" -w eval componentize -p "$here/python" app -o "$out/arith-py.wasm"
"$cache/venv/bin/componentize-py" -d "$wit" -w eval componentize --stub-wasi -p "$here/python" app -o "$out/arith-py-nowasi.wasm"

js="$cache/js"
mkdir -p "$js"
cp "$here/js/package.json" "$here/js/arith.js" "$js/"
(cd "$js" && npm install --silent --no-audit --no-fund >/dev/null)
cjs="$js/node_modules/.bin/componentize-js"
(cd "$js" && "$cjs" --wit "$wit" --world-name eval --out "$out/arith-js.wasm" arith.js >/dev/null)
(cd "$js" && "$cjs" --wit "$wit" --world-name eval -d stdio random clocks http fetch-event --out "$out/arith-js-nowasi.wasm" arith.js >/dev/null)
touch "$out/$stamp.done"
