#!/usr/bin/env bash
# The README's two commands share one build: every package that `cargo run --release` (the
# demo, the default member) builds must resolve with the same features under
# `cargo test --release --workspace`, or the tests compile it, and all above it, a second time.
# A cold cache shows this as `Compiling wasmtime` in the test phase; a warm one hides it, since
# it keeps both builds. So compare the resolved features themselves.
set -euo pipefail
cd "$(dirname "$0")/.."
tree() { cargo tree "$@" -f '{p} {f}' --prefix none | sed 's/ (\*)$//' | grep -v '^proctor' | sort -u; }
demo="$(mktemp)"; tests="$(mktemp)"
trap 'rm -f "$demo" "$tests"' EXIT
tree -p proctor-cli -e normal,build > "$demo"
tree --workspace -e normal,build,dev > "$tests"
# A package both builds share, resolved with features in one that the other lacks.
split="$(awk '{print $1, $2}' "$demo" | sort -u | while read -r name version; do
    a="$(grep -E "^$name $version( |$)" "$demo" || true)"
    b="$(grep -E "^$name $version( |$)" "$tests" || true)"
    [ "$a" = "$b" ] || printf '%s %s\n  demo:  %s\n  tests: %s\n' "$name" "$version" "$(echo "$a" | tr '\n' ';')" "$(echo "$b" | tr '\n' ';')"
done)"
if [ -n "$split" ]; then
    echo "one-feature-set: these packages resolve differently for the demo and for the tests;"
    echo "turn the tests' features on in crates/proctor-workspace-hack:"
    echo "$split"
    exit 1
fi
echo "one-feature-set: the demo's $(awk '{print $1}' "$demo" | sort -u | wc -l) packages resolve as in the tests"
