#!/usr/bin/env bash
# Full (non-quick) sweep of every mechanism, written to results/<host>-<date>.json.
# Usage: scripts/sweep.sh [extra `ipcbench run` options, e.g. --pin same]
set -euo pipefail
cd "$(dirname "$0")/.."
out="results/$(hostname)-$(date -u +%Y%m%dT%H%M%SZ).json"
cargo run --release -- run --mechanisms all --json "$out" "$@"
echo "written: $out"
