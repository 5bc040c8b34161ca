#!/usr/bin/env bash
# A short fuzz run of every cargo-fuzz target (nightly toolchain, libFuzzer) from the corpus
# committed in fuzz/corpus: any crash, panic or sanitizer report fails CI. The corpus is copied
# first, so a run does not write new inputs into the checkout.
set -euo pipefail
cd "$(dirname "$0")/../fuzz"

export CARGO_TARGET_DIR="${FUZZ_TARGET_DIR:-$HOME/.cache/proctor-fuzz-target}"
seconds="${FUZZ_SECONDS:-20}"

rustup run nightly rustc --version
if ! command -v cargo-fuzz >/dev/null; then
    cargo +nightly install cargo-fuzz --locked --version 0.13.2
fi

cargo +nightly fuzz build -O
for target in $(cargo +nightly fuzz list); do
    work="$(mktemp -d)"
    cp -r "corpus/$target/." "$work/"
    echo "fuzz: $target for ${seconds} s from $(ls "$work" | wc -l) inputs"
    cargo +nightly fuzz run -O "$target" "$work" -- \
        -max_total_time="$seconds" -print_final_stats=1 2>&1 \
        | grep -E '^(Done|stat::number_of_executed_units)|ERROR|SUMMARY|panicked'
    rm -rf "$work"
done
