#!/usr/bin/env bash
# Measures two builds of ipcbench against each other, interleaved (old, new, old, new, ...)
# so machine drift hits both alike: by default the 64 B round trip of pipe, unix-stream and
# shm-futex and the hand-off of pthread-mutex and futex, pinned to one CPU, 5 repetitions
# of 20,000 per run. Prints each case's median p50 over all runs of each build and the
# ratio new/old. Use it to show a refactoring changed nothing measured.
# Usage: scripts/compare-builds.sh OLD_BINARY NEW_BINARY [ROUNDS, default 3]
# Build an old binary with: git worktree add /tmp/old REV && (cd /tmp/old && cargo build --release)
set -euo pipefail
old="$1"; new="$2"; rounds="${3:-3}"
dir="$(mktemp -d)"
trap 'rm -rf "$dir"' EXIT
args=(run --pin same --repeat 5 --messages 20000 --sizes 64 --no-report
      --mechanisms pipe,unix-stream,shm-futex,pthread-mutex,futex --workloads latency,handoff)
for r in $(seq 1 "$rounds"); do
    "$old" "${args[@]}" --json "$dir/old-$r.json" >/dev/null 2>&1
    "$new" "${args[@]}" --json "$dir/new-$r.json" >/dev/null 2>&1
done
python3 - "$dir" "$rounds" <<'PY'
import json, statistics, sys
d, rounds = sys.argv[1], int(sys.argv[2])
def p50s(build):
    out = {}
    for r in range(1, rounds + 1):
        for c in json.load(open(f"{d}/{build}-{r}.json"))["results"]:
            if c["status"] == "ok" and c.get("rtt_ns"):
                # every repetition's p50 where there are repetitions, else the one
                vals = [x["rtt_ns"]["p50"] for x in c.get("repeats", []) if x.get("rtt_ns")] or [c["rtt_ns"]["p50"]]
                out.setdefault((c["mechanism"], c["workload"]), []).extend(vals)
    return out
old, new = p50s("old"), p50s("new")
print(f"{'case':<28} {'old p50 ns':>11} {'new p50 ns':>11} {'new/old':>8}  (median over {rounds} runs x 5 repetitions)")
worst = 0.0
for key in sorted(old):
    if key not in new:
        print(f"{key[0] + ' ' + key[1]:<28} missing in the new build"); continue
    a, b = statistics.median(old[key]), statistics.median(new[key])
    worst = max(worst, abs(b / a - 1))
    print(f"{key[0] + ' ' + key[1]:<28} {a:>11.0f} {b:>11.0f} {b / a:>8.3f}")
print(f"largest difference: {100 * worst:.1f}%")
PY
