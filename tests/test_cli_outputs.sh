#!/bin/sh
# What a user sees in the `simclr` command's outputs (issue 24, defect 8),
# run by make test-cli: curves.png has a title, axes with tick marks, tick
# labels and axis titles; map.png has a legend (a colour swatch and the
# class name per class, the names cut to fit the picture); `simclr preview`
# says what its first column is (the whole image, squashed to the tile) and
# draws that; `simclr export` prints the PyTorch code that loads its file
# (tests/python/test_torch_export.py runs that code).
set -u
S=${SIMCLR_CLI:?set SIMCLR_CLI to the simclr binary}
PY=${PYTHON:-/usr/bin/python3}
T=$(mktemp -d /tmp/simclr_outputs.XXXXXX)
trap 'rm -rf "$T"' EXIT
fails=0 passes=0
ok() { echo "ok - $1"; passes=$((passes + 1)); }
bad() { echo "FAIL - $1"; fails=$((fails + 1)); }
run() { # run DESCRIPTION CMD...: exit 0 or a failure with the output
  what=$1; shift
  if out=$("$@" 2>&1); then ok "$what"; else bad "$what: $out"; fi
}

# three classes (one with a name far too long for the legend) of stripes,
# and a wide image of three vertical bands: red | green | blue
"$PY" - "$T" <<'PYEOF'
import os, sys
import numpy as np
from PIL import Image
root = sys.argv[1]
rng = np.random.default_rng(0)
for cls in ["horizontal", "vertical", "a_class_name_much_longer_than_the_legend_has_room_for"]:
    os.makedirs(os.path.join(root, "data", cls))
    for i in range(8):
        yy, xx = np.mgrid[0:40, 0:40]
        v = ((yy if cls == "horizontal" else xx if cls == "vertical" else yy + xx) // 4) % 2
        img = (v[..., None] * rng.integers(80, 256, size=3) + rng.integers(0, 30, size=(40, 40, 3))).clip(0, 255)
        Image.fromarray(img.astype(np.uint8)).save(os.path.join(root, "data", cls, "%d.png" % i))
bands = np.zeros((30, 90, 3), np.uint8)
bands[:, :30, 0] = bands[:, 30:60, 1] = bands[:, 60:, 2] = 255
Image.fromarray(bands).save(os.path.join(root, "bands.png"))
PYEOF
cd "$T" || exit 1

run "train" "$S" train data --out run --epochs 2 --batch 8 --size 16 --width 4 --threads 2 --quiet
run "embed --map" "$S" embed data --model run -o emb.npy --map map.png --quiet

# curves.png: find the two panels' axes (long dark lines), then look for what
# a reader needs around them.
out=$("$PY" - run/curves.png <<'PYEOF'
import sys
import numpy as np
from PIL import Image
a = np.asarray(Image.open(sys.argv[1]).convert("RGB")).astype(int)
ink = a.max(axis=2) < 110  # dark gray text and axes; the series are coloured
h, w = ink.shape
problems = []
def runs(mask, gap):
    """Number of groups of True entries separated by at least gap False ones."""
    idx = np.flatnonzero(mask)
    return 0 if idx.size == 0 else 1 + int(np.sum(np.diff(idx) > gap))
cols = [x for x in range(w) if ink[:, x].sum() > 0.4 * h]
rows = [y for y in range(h) if ink[y, :].sum() > 0.4 * w]
yaxes = [x for i, x in enumerate(cols) if i == 0 or x - cols[i - 1] > 1]
if len(yaxes) != 2 or not rows:
    print("expected two panels with axes, found y axes at %s, x axes at rows %s" % (yaxes, rows[:4]))
    sys.exit(0)
xaxis = rows[-1]
def longest_run_start(col):
    best, start, length = (0, 0), None, 0
    for y, v in enumerate(list(col) + [False]):
        if v and start is None:
            start = y
        elif not v and start is not None:
            best, start = max(best, (y - start, start)), None
    return best[1]
top = min(longest_run_start(ink[:, x]) for x in yaxes)  # the top of the y axes
if ink[: max(top - 30, 0), :].sum() < 50:
    problems.append("no title above the panels")
for x in yaxes:
    band = ink[top:xaxis - 2, max(x - 70, 0):x - 8]
    if runs(band.any(axis=1), 6) < 4:
        problems.append("fewer than 4 tick labels left of the y axis at x=%d" % x)
    if runs(ink[top:xaxis + 1, x - 4], 3) < 4:
        problems.append("fewer than 4 tick marks on the y axis at x=%d" % x)
    if runs(ink[top:xaxis, max(x - 150, 0):x - 8].any(axis=0), 5) < 2:  # the title, then the labels
        problems.append("no y-axis title left of the tick labels at x=%d" % x)
    below = ink[xaxis + 8:xaxis + 28, x:x + 440]
    if runs(below.any(axis=0), 12) < 3:
        problems.append("fewer than 3 tick labels under the x axis from x=%d" % x)
    if ink[xaxis + 30:xaxis + 60, x:x + 440].sum() < 30:
        problems.append("no x-axis title under the axis from x=%d" % x)
print("; ".join(problems))
PYEOF
)
[ -z "$out" ] && ok "curves.png: title, tick marks, tick labels, axis titles" || bad "curves.png: $out"

# map.png: a legend of filled squares (the dots are at most 7 px wide), one
# per class, each with text to its right, its colour that of some dots, and
# nothing drawn past the right edge (the long name is cut).
out=$("$PY" - map.png 3 <<'PYEOF'
import sys
import numpy as np
from PIL import Image
a = np.asarray(Image.open(sys.argv[1]).convert("RGB")).astype(int)
want = int(sys.argv[2])
h, w, _ = a.shape
ink = a.max(axis=2) < 110
problems, swatches = [], []
for y in range(h - 10):
    for x in range(w - 10):
        p = a[y, x]
        if p.max() - p.min() < 40 or (x > 0 and (a[y, x - 1] == p).all()) or (y > 0 and (a[y - 1, x] == p).all()):
            continue  # gray or white, or not a top-left corner
        if (a[y:y + 10, x:x + 10] == p).all():  # dots are at most 7 px wide
            swatches.append((y, x, tuple(p)))
if len(swatches) != want:
    problems.append("%d legend swatches, want %d" % (len(swatches), want))
for y, x, rgb in swatches:
    if ink[y:y + 12, x + 14:x + 200].sum() < 40:
        problems.append("no class name right of the swatch at (%d, %d)" % (x, y))
    dots = (a[:, : x - 20] == np.array(rgb)).all(axis=2).sum()
    if dots == 0:
        problems.append("no dot has the colour %s of the swatch at (%d, %d)" % (rgb, x, y))
if len({s[2] for s in swatches}) != len(swatches):
    problems.append("two classes share a colour")
if ink[:, w - 4:].any():
    problems.append("text runs into the right edge (a long class name not cut)")
print("; ".join(problems))
PYEOF
)
[ -z "$out" ] && ok "map.png: a legend swatch and name per class, names cut to fit" || bad "map.png: $out"

# preview: the help says what the first column is, and it is that: the whole
# wide image squashed into the square tile shows all three bands (the
# evaluation view, a center crop, would be all green).
help=$("$S" preview --help 2>&1)
if printf '%s\n' "$help" | grep -q "whole image" && ! printf '%s\n' "$help" | grep -q "evaluation view"; then
  ok "preview --help: the first column is the whole image"
else
  bad "preview --help does not say the first column is the whole image: $help"
fi
run "preview a wide image" "$S" preview bands.png -o grid.png --views 1 --size 48
out=$("$PY" - grid.png <<'PYEOF'
import sys
import numpy as np
from PIL import Image
a = np.asarray(Image.open(sys.argv[1]).convert("RGB")).astype(int)
tile = a[4:52, 4:52]  # the first tile: 4 px margin, 48 px
share = [float(np.mean(tile.argmax(axis=2) == k)) for k in range(3)]
if min(share) < 0.25:
    print("first tile's red, green, blue shares %s: not the whole 90x30 image" % share)
PYEOF
)
[ -z "$out" ] && ok "preview: the first tile is the whole image, squashed" || bad "preview: $out"

run "export" "$S" export --model run -o enc.safetensors
"$S" export --model run -o enc.safetensors | grep -q '^model.load_state_dict(load_file("enc.safetensors"), strict=True)$' &&
  ok "export prints the PyTorch code that loads the file" || bad "export printed no PyTorch loading code"

echo "cli outputs: $passes passed, $fails failed"
[ "$fails" -eq 0 ]
