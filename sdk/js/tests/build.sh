#!/usr/bin/env bash
# Builds the JS SDK's test components with the SDK's own `proctor-eval build`, into
# $PROCTOR_TOOLCHAIN_CACHE/js-sdk (default ~/.cache/proctor-toolchains/js-sdk):
#   sdk/    a copy of sdk/js with its pinned dependencies (`npm ci`, redone when the lock changes)
#   out/    arith.wasm (examples/arith/arith.js, no WASI), arith-ts-wasi.wasm (arith.ts with
#           --wasi), hostile.wasm, describe-calls-model.wasm and isolated.wasm (built with
#           --isolation) (tests/guests/), template.wasm
#           (template/ rendered as `proctor eval new` would, installed by path and built with
#           `npm run build`), and build-times.txt
# JS builds are not reproducible, so outputs are cached by input digest only to save time,
# never compared with earlier builds. Used by crates/proctor-sandbox/tests/js_sdk.rs and
# crates/proctor-cli/tests/sdk_js.rs.
set -euo pipefail
src="$(cd "$(dirname "$0")/.." && pwd)"
cache="${PROCTOR_TOOLCHAIN_CACHE:-$HOME/.cache/proctor-toolchains}/js-sdk"
mkdir -p "$cache"
exec 9>"$cache/lock"
flock 9

stamp="$( (cd "$src" && find . -path ./node_modules -prune -o -type f -print0 | LC_ALL=C sort -z \
    | xargs -0 sha256sum) | sha256sum | cut -c1-16)"
if [ -f "$cache/out/$stamp.done" ]; then exit 0; fi

# The SDK as a user installs it: its files, then its pinned dependencies.
sdk="$cache/sdk"
mkdir -p "$sdk"
find "$sdk" -mindepth 1 -maxdepth 1 ! -name node_modules -exec rm -rf {} +
(cd "$src" && tar --exclude=./node_modules -cf - .) | (cd "$sdk" && tar -xf -)
lock="$(sha256sum "$sdk/package-lock.json" | cut -c1-64)"
if [ "$(cat "$sdk/node_modules/.lock-digest" 2>/dev/null)" != "$lock" ]; then
    (cd "$sdk" && npm ci --silent --no-audit --no-fund >/dev/null)
    echo "$lock" > "$sdk/node_modules/.lock-digest"
fi

rm -rf "$cache/out.new"
mkdir -p "$cache/out.new"
times="$cache/out.new/build-times.txt"
timed() { # NAME COMMAND...: runs COMMAND, appending "NAME MILLISECONDS BYTES" to build-times.txt
    local name="$1" start
    shift
    start="$(date +%s%N)"
    "$@"
    echo "$name $(( ($(date +%s%N) - start) / 1000000 )) $(stat -c %s "$cache/out.new/$name")" >> "$times"
}
build() { node "$sdk/bin/proctor-eval.js" build "$@"; }
timed arith.wasm build "$sdk/examples/arith/arith.js" -o "$cache/out.new/arith.wasm"
timed arith-ts-wasi.wasm build "$sdk/examples/arith/arith.ts" -o "$cache/out.new/arith-ts-wasi.wasm" --wasi
timed hostile.wasm build "$sdk/tests/guests/hostile.js" -o "$cache/out.new/hostile.wasm"
timed isolated.wasm build "$sdk/tests/guests/isolated.js" -o "$cache/out.new/isolated.wasm" --isolation
timed describe-calls-model.wasm build "$sdk/tests/guests/describe-calls-model.js" -o "$cache/out.new/describe-calls-model.wasm"

# The template, rendered as `proctor eval new js-template --lang js` does.
project="$cache/template-project"
rm -rf "$project"
cp -r "$sdk/template" "$project"
for f in "$project"/*; do
    sed -i -e 's|{{name}}|js-template|g' -e "s|{{sdk_path}}|$sdk|g" "$f"
done
(cd "$project" && npm install --silent --no-audit --no-fund >/dev/null)
template() { (cd "$project" && npm run --silent build) && cp "$project/eval.wasm" "$cache/out.new/template.wasm"; }
timed template.wasm template
cp "$project/arith.jsonl" "$cache/out.new/template.jsonl"

rm -rf "$cache/out"
mv "$cache/out.new" "$cache/out"
touch "$cache/out/$stamp.done"
