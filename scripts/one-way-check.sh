#!/usr/bin/env bash
# Checks the one-way clock against the round trip: at an idle rate (1,000 requests/s) with
# both processes on one CPU, a request's one-way time (send to the peer's receive, both
# stamped with CLOCK_MONOTONIC) should be about half the open-loop round trip measured in
# the same phase. Prints, per mechanism, the one-way p50, half the round-trip p50 and how
# far apart they are, with PASS within 15% and DIFFERS otherwise (a difference is not
# necessarily an error: the two legs need not cost the same, see the README).
# Usage: scripts/one-way-check.sh [BINARY, default target/release/ipcbench] [MECHANISMS]
set -euo pipefail
bin="${1:-target/release/ipcbench}"
mechanisms="${2:-pipe,unix-stream}"
dir="$(mktemp -d)"
trap 'rm -rf "$dir"' EXIT
"$bin" run --pin same --mechanisms "$mechanisms" --sizes 64 --workloads rate --rate 1000 \
    --messages 5000 --repeat 1 --no-report --json "$dir/r.json" >/dev/null
python3 - "$dir/r.json" <<'PY'
import json, sys
for c in json.load(open(sys.argv[1]))["results"]:
    if c["status"] != "ok" or "one_way_ns" not in c:
        print(f'{c["mechanism"]:<12} {c["status"]}: {c.get("reason", "no one-way times")}')
        continue
    one_way = c["one_way_ns"]["p50"]
    half = c["rtt_ns"]["p50"] / 2
    off = (one_way - half) / half * 100
    verdict = "PASS" if abs(off) <= 15 else "DIFFERS"
    print(f'{c["mechanism"]:<12} one-way p50 {one_way / 1000:6.2f} us, half round trip {half / 1000:6.2f} us, {off:+6.1f}%  {verdict}')
PY
