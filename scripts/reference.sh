#!/usr/bin/env bash
# The committed reference run: every mechanism at the default sizes with full message
# counts (not --quick), pinned cross-core, then its report. Writes results/reference/.
# Usage: scripts/reference.sh [extra `ipcbench run` options]
set -euo pipefail
cd "$(dirname "$0")/.."
out=results/reference
mkdir -p "$out"
cargo run --release -- run --mechanisms all --pin cross --json "$out/results.json" --report "$out" "$@"
echo "reference results and report in $out/"
