#!/usr/bin/env bash
# Checks that results do not depend on the order mechanisms run in: the same mechanisms
# in two opposite orders, 5 interleaved repetitions each, compared with `ipcbench compare`
# (changes beyond the threshold would mean order matters).
# Usage: scripts/order-check.sh [MECHANISMS, default pipe,unix-stream,shm-futex] [THRESHOLD%]
set -euo pipefail
cd "$(dirname "$0")/.."
mechs="${1:-pipe,unix-stream,shm-futex}"
threshold="${2:-50}"
reversed="$(echo "$mechs" | tr ',' '\n' | tac | paste -sd, -)"
dir="$(mktemp -d)"
trap 'rm -rf "$dir"' EXIT
cargo build --release -q
run() { ./target/release/ipcbench run --quick --repeat 5 --workloads latency,throughput \
        --mechanisms "$1" --json "$2" --no-report >/dev/null; }
run "$mechs" "$dir/forward.json"
run "$reversed" "$dir/backward.json"
./target/release/ipcbench compare "$dir/forward.json" "$dir/backward.json" --threshold "$threshold" --fail-on-regression
