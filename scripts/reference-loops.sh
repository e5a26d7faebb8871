#!/usr/bin/env bash
# The harness against bare loops: `ipcbench floor --reference` with both processes on one
# CPU (where the kernel mechanisms' bare ping-pongs are compared) and on two (where the
# cache-line bounce and shm-spin are), each bare loop interleaved with the mechanism it
# stands for; then shm-spin's 1 MiB throughput, copying out and checking in place, as a
# fraction of the run's own memcpy at 1 MiB (the xN in its table), REPEAT times each.
# Usage: scripts/reference-loops.sh [REPEAT (5)] [COUNT (20000)]
set -euo pipefail
cd "$(dirname "$0")/.."
repeat="${1:-5}"
count="${2:-20000}"
cargo build --release --quiet
for pin in same cross; do
    echo "== --pin $pin"
    ./target/release/ipcbench floor --pin "$pin" --sizes 64 --reference \
        --repeat "$repeat" --count "$count"
done
scratch="$(mktemp -d)"
trap 'rm -rf "$scratch"' EXIT
for read in copy in-place; do
    echo "== shm-spin 1 MiB throughput, --shm-read $read"
    ./target/release/ipcbench run --mechanisms shm-spin --workloads throughput --sizes 1M \
        --pin cross --repeat "$repeat" --shm-read "$read" \
        --json "$scratch/$read.json" --no-report
done
