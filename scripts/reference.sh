#!/usr/bin/env bash
# The committed reference run: every mechanism and primitive at the default sizes, pinned
# cross-core, 5 interleaved repetitions per case (intervals for the median), a core-to-core
# map, then its report. Quick message counts keep five repetitions of ~150 cases to a few
# minutes on 2 vCPUs; the intervals are what make neighbours comparable.
# Writes results/reference/. Usage: scripts/reference.sh [extra `ipcbench run` options]
set -euo pipefail
cd "$(dirname "$0")/.."
out=results/reference
mkdir -p "$out"
cargo run --release -- run --mechanisms all --pin cross --quick --repeat 5 --pin-matrix \
    --matrix-budget 30 --json "$out/results.json" --report "$out" "$@"
echo "reference results and report in $out/"
