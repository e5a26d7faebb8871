#!/usr/bin/env bash
# Opens a report in headless Chromium, takes a screenshot and checks that the page rendered
# every chart: the rendered DOM must hold as many <svg> elements as the report has charts,
# every chart's labelled ticks must span the data it declares (data-lo..data-hi), and the
# screenshot must not be blank.
# Usage: scripts/check-report.sh [results/report/report.html] [screenshot.png]
# Needs Debian's `chromium` package (apt-get install chromium).
set -euo pipefail
html="$(realpath "${1:-results/report/report.html}")"
shot="$(realpath -m "${2:-$(dirname "$html")/screenshot.png}")"
profile="$(mktemp -d)"
trap 'rm -rf "$profile"' EXIT

# Flags: no sandbox (CI runs as root), and no background networking: the page is a local file.
flags=(--headless --no-sandbox --disable-gpu --disable-quic --no-first-run
       --disable-background-networking --disable-component-update --disable-sync
       --user-data-dir="$profile" --window-size=1300,5000 --hide-scrollbars)

dom="$profile/dom.html"
expected=$(grep -o '<figure>' "$html" | wc -l)
chromium "${flags[@]}" --dump-dom "file://$html" 2>/dev/null >"$dom"
rendered=$(grep -o '<svg' "$dom" | wc -l)
chromium "${flags[@]}" --screenshot="$shot" "file://$html" >/dev/null 2>&1

python3 - "$shot" "$expected" "$rendered" "$dom" <<'PY'
import re, struct, sys, zlib

path, expected, rendered = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
# Tick labels: in every rendered chart, labelled ticks whose values span its data.
dom = open(sys.argv[4], encoding="utf-8").read()
ticks_ok = True
for i, svg in enumerate(re.findall(r"<svg.*?</svg>", dom, re.S)):
    title = (re.search(r"<title>(.*?)</title>", svg) or [None, f"chart {i + 1}"])[1]
    lo, hi = re.search(r'data-lo="([^"]+)"', svg), re.search(r'data-hi="([^"]+)"', svg)
    ticks = [float(v) for v, label in re.findall(r'class="tick" data-v="([^"]+)"[^>]*>([^<]+)<', svg) if label.strip()]
    if not (lo and hi and len(ticks) >= 2 and min(ticks) <= float(lo[1]) and max(ticks) >= float(hi[1])):
        print(f"chart without tick labels spanning its data: {title} (ticks {ticks})")
        ticks_ok = False
print(f"tick labels: {'span the data of every chart' if ticks_ok else 'MISSING'}")
data = open(path, "rb").read()
assert data[:8] == b"\x89PNG\r\n\x1a\n", "screenshot is not a PNG"
pos, idat, width, height, ctype = 8, b"", 0, 0, 0
while pos < len(data):
    n, kind = struct.unpack(">I4s", data[pos:pos + 8])
    body = data[pos + 8:pos + 8 + n]
    if kind == b"IHDR":
        width, height, depth, ctype = struct.unpack(">IIBB", body[:10])
        assert depth == 8, "unexpected bit depth"
    elif kind == b"IDAT":
        idat += body
    pos += 12 + n
bpp = {2: 3, 6: 4}[ctype]
raw, stride = zlib.decompress(idat), width * bpp
prev, colours, ink = bytearray(stride), set(), 0
for y in range(height):
    f, line = raw[y * (stride + 1)], bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
    for i in range(stride):  # undo the PNG row filter
        a = line[i - bpp] if i >= bpp else 0
        b, c = prev[i], prev[i - bpp] if i >= bpp else 0
        if f == 1: line[i] = (line[i] + a) & 255
        elif f == 2: line[i] = (line[i] + b) & 255
        elif f == 3: line[i] = (line[i] + (a + b) // 2) & 255
        elif f == 4:
            p = a + b - c
            pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
            line[i] = (line[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
    if y % 4 == 0:
        for x in range(0, width, 4):
            px = tuple(line[x * bpp:x * bpp + 3])
            colours.add(px)
            ink += px != (255, 255, 255)
    prev = line
sampled = (height // 4 + 1) * (width // 4 + 1)
print(f"screenshot {path}: {width}x{height}, {len(colours)} colours, {100 * ink / sampled:.1f}% non-white")
print(f"charts: {expected} in the report, {rendered} <svg> elements rendered")
ok = rendered >= expected > 0 and len(colours) > 20 and ink > sampled // 100 and ticks_ok
print("browser check: " + ("OK" if ok else "FAILED"))
sys.exit(0 if ok else 1)
PY
