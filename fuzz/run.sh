#!/usr/bin/env bash
# Runs every fuzz target (or those named) for a bounded time each, all at
# once, and prints executions and crashes per target.
#
#   fuzz/run.sh [SECONDS_PER_TARGET] [TARGET...]      (default: 60 s, all)
#
# Installs cargo-fuzz from crates.io if it is missing. cargo-fuzz passes
# nightly flags (-Zsanitizer=address): a nightly toolchain is used if there
# is one, else the stable toolchain with RUSTC_BOOTSTRAP=1.
#
# Each run grows its corpus in fuzz/target/corpus/TARGET, apart from the
# checked-in corpus in fuzz/corpus/TARGET; to keep what a run found, merge
# it in: cargo fuzz run TARGET corpus/TARGET target/corpus/TARGET -- -merge=1
# A crash is written to
# fuzz/artifacts/TARGET/; once fixed, keep it there: `cargo test -p tests
# --test fuzz_corpus` replays every seed and artifact in CI.
set -euo pipefail
cd "$(dirname "$0")"

seconds=${1:-60}
shift || true
if [ $# -gt 0 ]; then
    targets=("$@")
else
    targets=()
    for file in fuzz_targets/*.rs; do
        name=${file##*/}
        targets+=("${name%.rs}")
    done
fi

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "== installing cargo-fuzz"
    cargo install cargo-fuzz --locked
fi

toolchain=()
if rustup run nightly rustc --version >/dev/null 2>&1; then
    toolchain=(+nightly)
else
    export RUSTC_BOOTSTRAP=1
fi

echo "== building ${targets[*]}"
for target in "${targets[@]}"; do
    # Debug assertions on: an overflow is a crash too.
    cargo "${toolchain[@]}" fuzz build --debug-assertions "$target"
done

echo "== fuzzing each target for ${seconds}s"
mkdir -p target/logs
for target in "${targets[@]}"; do
    mkdir -p "target/corpus/$target" "corpus/$target"
    cargo "${toolchain[@]}" fuzz run --debug-assertions "$target" \
        "target/corpus/$target" "corpus/$target" -- \
        -max_total_time="$seconds" -print_final_stats=1 \
        >"target/logs/$target.log" 2>&1 &
done
# `wait` without operands always returns 0: the logs tell each outcome.
wait
status=0

echo "== results"
total=0
for target in "${targets[@]}"; do
    log="target/logs/$target.log"
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
    crashes=$(find "artifacts/$target" -type f 2>/dev/null | wc -l)
    if grep -q "^==[0-9]*== ERROR\|panicked at\|deadly signal" "$log"; then
        status=1
        echo "$target: CRASHED after ${execs:-?} executions; see fuzz/$log"
    fi
    echo "$target: ${execs:-0} executions, ${crashes} artifact(s) in fuzz/artifacts/$target"
    total=$((total + ${execs:-0}))
done
echo "total: $total executions"
exit "$status"
