#!/bin/sh
# The `simclr` command end to end on a small generated folder (make test-cli):
# every subcommand's --help, train / resume / embed / eval / export /
# preview, and bad input: a clear message naming the file, a non-zero exit,
# nothing half written.
set -u
S=${SIMCLR_CLI:?set SIMCLR_CLI to the simclr binary}
PY=${PYTHON:-/usr/bin/python3}
T=$(mktemp -d /tmp/simclr_cli.XXXXXX)
trap 'rm -rf "$T"' EXIT
fails=0
ok() { echo "ok - $1"; }
bad() { echo "FAIL - $1"; fails=$((fails + 1)); }
# expect RC PATTERN DESCRIPTION -- CMD...: exit status and a line of its output
expect() {
  want=$1 pat=$2 what=$3; shift 4
  out=$("$@" 2>&1); rc=$?
  if [ "$rc" -ne "$want" ]; then bad "$what: exit $rc, want $want: $out"; return; fi
  if [ -n "$pat" ] && ! printf '%s\n' "$out" | grep -q -- "$pat"; then bad "$what: no '$pat' in: $out"; return; fi
  ok "$what"
}

# two classes of stripes, images of different sizes, PNG and JPEG
"$PY" - "$T/data" <<'PYEOF'
import os, sys
import numpy as np
from PIL import Image
root = sys.argv[1]
rng = np.random.default_rng(0)
for cls in ["horizontal", "vertical"]:
    os.makedirs(os.path.join(root, cls), exist_ok=True)
    for i in range(16):
        h, w = (int(v) for v in rng.integers(36, 80, size=2))
        yy, xx = np.mgrid[0:h, 0:w]
        v = ((yy if cls == "horizontal" else xx) // int(rng.integers(3, 7))) % 2
        img = (v[..., None] * rng.integers(80, 256, size=3) + rng.integers(0, 30, size=(h, w, 3))).clip(0, 255)
        Image.fromarray(img.astype(np.uint8)).save(os.path.join(root, cls, f"{i:03d}.{'jpg' if i % 2 else 'png'}"))
PYEOF
cd "$T" || exit 1

for c in "" train embed eval export preview finetune predict; do
  expect 0 "usage: simclr" "simclr $c --help" -- "$S" $c --help
done
expect 2 "unknown command" "unknown command" -- "$S" frobnicate
expect 2 "unknown option '--bogus'" "unknown option" -- "$S" train data --bogus
expect 2 "option --batch .x.: must be a whole number in 2..65536" "bad number" -- "$S" train data --batch x

expect 0 "trained 4 steps" "train 2 epochs" -- "$S" train data --out run --epochs 2 --batch 16 --size 24 --width 8 --quiet
for f in simclr.cfg encoder.simclr trainer.ckpt log.csv curves.png; do
  [ -s "run/$f" ] && ok "run/$f written" || bad "run/$f missing"
done
expect 0 "resuming run at step 4" "resume to 4 epochs" -- "$S" train data --out run --epochs 4 --batch 16 --resume
[ "$(grep -c '^[0-9]' run/log.csv)" -eq 8 ] && ok "log.csv has 8 steps after resume" || bad "log.csv after resume: $(cat run/log.csv)"
# SIGKILL at several moments, then --resume (issue 24, defect 5): log.csv
# must agree with the checkpoint the run resumes from -- steps 1..N once each,
# every row the numbers of its own step, the same as an uninterrupted run with
# the same seed (resuming is bit-identical: the encoder too) -- and no
# temporary file of a killed process may stay. Checkpoints every 2 steps; each
# run is killed once log.csv has reached a number of rows (a checkpoint is
# then being saved) plus a delay of 0 to 0.3 s, so the kills fall mid-training
# and in different phases of a save on a fast machine as on a slow one.
KA="data --epochs 40 --batch 8 --size 16 --width 4 --threads 1 --checkpoint-every 2 --quiet"
"$S" train $KA --out kref --prefetch 0 >/dev/null 2>&1 || bad "uninterrupted run for the kill test failed"
rows() { cat "$1" 2>/dev/null | grep -c '^[0-9]'; }
kills=0 resumed=0
for at in 6:0 20:0.01 34:0.3 50:0 66:0.02 84:0.1 100:0 118:0.05 136:0.003; do
  r=""; [ -e kill/trainer.ckpt ] && r=--resume && resumed=$((resumed + 1))
  "$S" train $KA --out kill --prefetch 1 $r >/dev/null 2>&1 &
  p=$!
  i=0
  while kill -0 $p 2>/dev/null && [ "$(rows kill/log.csv)" -lt "${at%:*}" ] && [ $i -lt 1500 ]; do
    sleep 0.02; i=$((i + 1))
  done
  sleep "${at#*:}"
  kill -9 $p 2>/dev/null && kills=$((kills + 1))
  wait $p 2>/dev/null
done
r=""; [ -e kill/trainer.ckpt ] && r=--resume
expect 0 "trained 160 steps" "run killed $kills times, resumed $resumed times, completes" -- "$S" train $KA --out kill --prefetch 1 $r
[ "$kills" -ge 6 ] && [ "$resumed" -ge 5 ] && ok "runs were killed mid-training ($kills) and resumed ($resumed)" \
  || bad "kill test did not interrupt training: $kills kills, $resumed resumes"
awk -F, 'NR > 1 && $1 != NR - 1 { print "row " NR - 1 " has step " $1; bad = 1 } END { if (NR != 161) print NR - 1 " rows"; exit bad || NR != 161 }' \
  kill/log.csv && ok "log.csv after kills: steps 1..160, each once" || bad "log.csv after kills: steps out of order"
cut -d, -f1-4 kref/log.csv > kref.rows; cut -d, -f1-4 kill/log.csv > kill.rows
cmp -s kref.rows kill.rows && ok "log.csv after kills: every row as in the uninterrupted run" \
  || bad "log.csv after kills differs from the uninterrupted run: $(diff kref.rows kill.rows | head -4)"
cmp -s kref/encoder.simclr kill/encoder.simclr && ok "killed and resumed run: the same encoder, bit for bit" \
  || bad "killed and resumed run trained another encoder"
left=$(ls kill | grep '\.tmp\.')
[ -z "$left" ] && ok "no temporary files of killed runs left" || bad "temporary files of killed runs left: $left"
expect 0 "time budget" "train --minutes" -- "$S" train data --out run2 --minutes 0.05 --batch 8 --size 16 --width 4
# What the progress shows (issue 24, defect 8): with --minutes the count is
# seconds and says so; images/s is end to end (decoding included: large noisy
# JPEGs decode slower than an 8x8 step trains); into a file, sparse lines and
# no carriage-return frames.
"$S" train data --out runm --minutes 0.05 --batch 8 --size 16 --width 4 --threads 1 >/dev/null 2>prog_m.txt
grep -q '\] 100% 3/3 s  loss' prog_m.txt && ok "--minutes progress counts seconds, labelled" \
  || bad "--minutes progress: $(tail -1 prog_m.txt)"
"$S" train data --out runl --epochs 40 --batch 8 --size 16 --width 4 --threads 1 >/dev/null 2>prog_e.txt
n_lines=$(grep -c '^train  \[' prog_e.txt)
! grep -q "$(printf '\r')" prog_e.txt && [ "$n_lines" -ge 2 ] && [ "$n_lines" -le 25 ] \
  && grep -q '\] 100% 160/160 steps  loss' prog_e.txt && ok "train progress into a file: $n_lines lines, no frames" \
  || bad "train progress into a file: $n_lines lines: $(head -c 300 prog_e.txt | tr '\r' '|')"
"$S" embed data --model run -o prog.npy 2>prog_x.txt >/dev/null
! grep -q "$(printf '\r')" prog_x.txt && grep -q '^embed  \[#*\] 100% 32/32 images  [0-9.]* img/s' prog_x.txt \
  && ok "embed progress into a file" || bad "embed progress into a file: $(cat prog_x.txt | tr '\r' '|')"
"$PY" -c "
import numpy as np, os
from PIL import Image
os.makedirs('big', exist_ok=True)
r = np.random.default_rng(0)
for i in range(8):
    Image.fromarray(r.integers(0, 256, (1000, 1000, 3), dtype=np.uint8)).save(f'big/{i:02d}.jpg', quality=90)
"
out=$("$S" train big --out rbig --epochs 12 --batch 4 --size 8 --width 1 --threads 1 --prefetch 0 --quiet)
secs=$(printf '%s\n' "$out" | sed -n 's/.* in \([0-9.]*\) s;.*/\1/p')
awk -F, -v s="$secs" 'NR > 1 { sum += $5; n++ } END { real = 4 * n / s; printf "logged %.1f img/s, real %.1f: ", sum / n, real;
  exit !(s > 0 && sum / n <= 1.5 * real) }' rbig/log.csv > ips.txt \
  && ok "images/s is end to end: $(cat ips.txt)" || bad "images/s leaves out decoding: $(cat ips.txt)"
# one training per run folder: a second one on the same --out is refused
"$S" train data --out busy --minutes 0.1 --batch 8 --size 16 --width 4 --threads 1 --quiet >/dev/null 2>&1 &
busy=$!
i=0; while [ ! -d busy ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done; sleep 0.3
expect 1 "busy is in use by another simclr train" "a second training on a held run folder is refused" -- \
  "$S" train data --out busy --epochs 1 --batch 8 --size 16 --width 4 --quiet
wait $busy
expect 1 "nowhere/x.npy: the folder nowhere does not exist" "embed -o into a missing folder stops before any work" -- \
  "$S" embed data --model run -o nowhere/x.npy --quiet
expect 1 "-o run: is a folder" "embed -o naming a folder stops before any work" -- "$S" embed data --model run -o run --quiet
# the next batch decoded in the background or when needed: the same training, byte for byte
for p in 0 2; do
  expect 0 "trained 8 steps" "train --prefetch $p" -- "$S" train data --out "runp$p" --epochs 2 --batch 8 --size 16 \
    --width 4 --threads 1 --prefetch $p --quiet
done
cmp -s runp0/encoder.simclr runp2/encoder.simclr && ok "prefetching changes nothing" || bad "--prefetch 2 trained other weights"

expect 0 "wrote emb.npy (32 x 64)" "embed a folder" -- "$S" embed data --model run -o emb.npy --map map.png --quiet
"$PY" -c "
import numpy as np, sys
a = np.load('emb.npy'); p = open('emb.npy.paths.txt').read().splitlines()
assert a.shape == (32, 64) and a.dtype == np.float32 and np.isfinite(a).all(), a.shape
assert len(p) == 32 and p[0].startswith('data/horizontal/000.png') and p[0].endswith('horizontal'), p[:2]
assert a.std(0).max() > 0
" && ok "embeddings.npy and paths agree" || bad "embeddings.npy content"
[ -s map.png ] && ok "PCA map written" || bad "PCA map missing"
expect 0 "wrote two.npy (2 x 64)" "embed files" -- "$S" embed data/vertical/001.jpg data/horizontal/000.png --model run -o two.npy --quiet
expect 0 "linear probe" "eval" -- "$S" eval data --model run --k 5 --probe-epochs 50 --quiet
expect 0 "raw pixels" "eval prints the baseline" -- "$S" eval data --model run --k 5 --probe-epochs 50 --quiet
# the probe's decay: chosen per row from the library's grid unless --probe-wd fixes it
out=$("$S" eval data --model run --k 5 --probe-epochs 50 --quiet 2>&1)
printf '%s\n' "$out" | grep -q "probe decay" && ok "eval has a probe decay column" || bad "no probe decay column: $out"
printf '%s\n' "$out" | grep -Eq '^simclr encoder .*%   (1e-05|0\.0001|0\.001|0\.01|0\.03|0\.1)$' \
  && printf '%s\n' "$out" | grep -Eq '^raw pixels .*%   (1e-05|0\.0001|0\.001|0\.01|0\.03|0\.1)$' \
  && ok "eval prints the decay chosen for each row" || bad "eval decay per row: $out"
printf '%s\n' "$out" | grep -q "chosen per row" && ok "eval says the decay was chosen" || bad "eval note: $out"
out=$("$S" eval data --model run --k 5 --probe-epochs 50 --probe-wd 0.25 --quiet 2>&1)
printf '%s\n' "$out" | grep -Eq '^simclr encoder .*%   0\.25$' && printf '%s\n' "$out" | grep -Eq '^raw pixels .*%   0\.25$' \
  && ! printf '%s\n' "$out" | grep -q "chosen per row" && ok "eval --probe-wd fixes the decay" || bad "eval --probe-wd: $out"
# the held-out share is exact and stratified (issue 24, defect 7): per class
# round(fraction * count), a class of 2 or more keeping one train image
mkdir -p split42/h split42/v split3/a split3/b split3/c
cp data/horizontal/* split42/h/ && cp data/vertical/* split42/v/
for f in data/horizontal/00[0-4].*; do cp "$f" "split42/h/dup_${f##*/}"; done
for f in data/vertical/00[0-4].*; do cp "$f" "split42/v/dup_${f##*/}"; done
cp data/horizontal/00[0-9].* split3/a/ && cp data/horizontal/01[0-4].* split3/b/ && cp data/vertical/00[01].* split3/c/
EV="--model run --k 5 --probe-epochs 20 --no-baseline --quiet"
expect 0 "^34 train / 8 test images, 2 classes" "eval holds out 4 of 21 per class at 0.2" -- "$S" eval split42 $EV
expect 0 "^8 train / 9 test images, 3 classes" "eval: 10/5/2 images at 0.5 hold out 5+3+1" -- \
  "$S" eval split3 $EV --test-fraction 0.5
expect 0 "^3 train / 14 test images, 3 classes" "eval: every class keeps a train image at 0.9" -- \
  "$S" eval split3 $EV --test-fraction 0.9
a=$("$S" eval split42 $EV --seed 7 2>&1); b=$("$S" eval split42 $EV --seed 7 2>&1)
[ "$a" = "$b" ] && ok "eval: the same --seed, the same split and scores" || bad "eval --seed 7 twice: $a / $b"
expect 2 "test-fraction and --test" "eval refuses --test with --test-fraction" -- \
  "$S" eval data --model run --test data --test-fraction 0.3
expect 0 "32 train / 32 test images" "eval --test DIR2" -- "$S" eval data --model run --test data --k 5 --probe-epochs 20 --quiet
expect 2 "option --probe-wd .-1.: must be a number >= 0" "eval refuses a negative --probe-wd" -- "$S" eval data --model run --probe-wd -1
expect 2 "option --probe-epochs .0.: must be a whole number in 1..100000" "eval refuses --probe-epochs 0" -- "$S" eval data --model run --probe-epochs 0
expect 0 "wrote enc.safetensors" "export" -- "$S" export --model run -o enc.safetensors
"$PY" -c "
import json, struct
b = open('enc.safetensors', 'rb').read(); n = struct.unpack('<Q', b[:8])[0]; h = json.loads(b[8:8 + n])
assert 'conv1.weight' in h and 'layer4.1.bn2.running_var' in h, list(h)[:5]
" && ok "safetensors has torchvision names" || bad "safetensors content"
expect 0 "wrote prev.png" "preview" -- "$S" preview data -o prev.png --images 3 --views 4 --size 32

# finetune -> predict (issue 25): the fine-tuned folder, the labelled subset
# written so the run can be repeated, and a classifier above chance on the
# two stripe classes (the pre-trained encoder of run/ is 8 steps old; the
# fine-tuning trains it and the head on every image, 40 steps).
expect 0 "fine-tuned 40 steps on 32 labelled images (2 classes)" "finetune on all labels" -- \
  "$S" finetune data --model run --out ft --epochs 10 --batch 8 --quiet
for f in simclr.cfg encoder.simclr head.simclr trainer.ckpt labels.txt; do
  [ -s "ft/$f" ] && ok "ft/$f written" || bad "ft/$f missing"
done
grep -qx "class horizontal" ft/simclr.cfg && grep -qx "class vertical" ft/simclr.cfg && ok "ft/simclr.cfg names the classes" \
  || bad "ft/simclr.cfg classes: $(cat ft/simclr.cfg)"
expect 0 "wrote pred.csv: 32 images, top 2 of 2 classes" "predict" -- "$S" predict data --model ft -o pred.csv --quiet
"$PY" - pred.csv <<'PYEOF' && ok "pred.csv: a row per image, probabilities sum to 1, accuracy above chance" || bad "pred.csv: $(head -3 pred.csv)"
import csv, sys
rows = list(csv.reader(open(sys.argv[1])))
assert rows[0] == ["path", "class1", "prob1", "class2", "prob2"], rows[0]
rows = rows[1:]
assert len(rows) == 32, len(rows)
right = 0
for r in rows:
    p1, p2 = float(r[2]), float(r[4])
    assert abs(p1 + p2 - 1) < 1e-4 and p1 >= p2 and {r[1], r[3]} == {"horizontal", "vertical"}, r
    right += r[0].split("/")[1] == r[1]
print("accuracy", right / 32)
assert right / 32 > 0.6, right
PYEOF
# eval with a fine-tuned folder: its classifier's top-1 next to the probe,
# on --test data the same figure as predict's CSV (another path: the
# classifier on the images, against the head on eval's features)
want=$(awk -F, 'NR > 1 { split($1, a, "/"); r += a[2] == $2; n++ } END { printf "%.2f%%", 100 * r / n }' pred.csv)
expect 0 "fine-tuned classifier  top-1 $want on the same test images" "eval --model ft reports the classifier's top-1 ($want)" -- \
  "$S" eval data --model ft --test data --k 5 --probe-epochs 5 --no-baseline --quiet
out=$("$S" eval data --model run --k 5 --probe-epochs 5 --no-baseline --quiet 2>&1)
printf '%s\n' "$out" | grep -q "fine-tuned" && bad "eval of a pre-trained folder reports a classifier: $out" || ok "eval --model run: no classifier row"
mkdir -p three/a three/b three/c && cp data/horizontal/00[0-3].* three/a && cp data/vertical/00[0-3].* three/b && cp data/vertical/01[0-3].* three/c
expect 1 "knows 2 classes, the labelled folder has 3" "eval of a fine-tuned folder on other classes" -- \
  "$S" eval three --model ft --k 3 --probe-epochs 5 --no-baseline --quiet
expect 0 "wrote pred1.csv: 2 images, top 1 of 2 classes" "predict image files, --top-k 1" -- \
  "$S" predict data/vertical/000.png data/horizontal/001.jpg --model ft -o pred1.csv --top-k 1 --quiet
[ "$(head -1 pred1.csv)" = "path,class1,prob1" ] && [ "$(wc -l < pred1.csv)" -eq 3 ] && ok "pred1.csv: 2 rows of one class" \
  || bad "pred1.csv: $(cat pred1.csv)"
# subsets: --labels 25% is round(0.25 * 16) = 4 of each class, --per-class 3 is 6
expect 0 "on 8 labelled images" "finetune --labels 25%" -- "$S" finetune data --model run --out ft25 --labels 25% --epochs 1 --quiet
[ "$(head -1 ft25/labels.txt)" = "simclr-label-subset 1 seed=1 fraction=0.25 per_class=0 total=32 count=8" ] \
  && [ "$(sed 1d ft25/labels.txt | wc -l)" -eq 8 ] && ok "ft25/labels.txt: 8 indices" || bad "ft25/labels.txt: $(cat ft25/labels.txt)"
[ "$(sed 1d ft25/labels.txt | awk '$1 < 16' | wc -l)" -eq 4 ] && ok "ft25/labels.txt: 4 of each class" || bad "ft25 balance: $(cat ft25/labels.txt)"
expect 0 "on 8 labelled images" "finetune --labels 0.25 (the same subset)" -- "$S" finetune data --model run --out ft25b --labels 0.25 --epochs 1 --quiet
cmp -s ft25/labels.txt ft25b/labels.txt && ok "--labels 25% and 0.25: the same labels.txt" || bad "25% vs 0.25 subsets differ"
expect 0 "on 6 labelled images" "finetune --per-class 3" -- "$S" finetune data --model run --out ft3 --per-class 3 --epochs 1 --freeze-encoder --quiet
[ "$(head -1 ft3/labels.txt)" = "simclr-label-subset 1 seed=1 fraction=0 per_class=3 total=32 count=6" ] \
  && [ "$(sed 1d ft3/labels.txt | wc -l)" -eq 6 ] && ok "ft3/labels.txt: 6 indices" || bad "ft3/labels.txt: $(cat ft3/labels.txt)"
cmp -s ft3/encoder.simclr run/encoder.simclr \
  && ok "--freeze-encoder: the encoder is the pre-trained one" || bad "--freeze-encoder changed the encoder"
# the same comparison with a barely trained classifier (one step, frozen
# encoder), whose accuracy is not 100%
"$S" predict data --model ft3 -o pred3.csv --quiet >/dev/null 2>&1 || bad "predict --model ft3 failed"
want=$(awk -F, 'NR > 1 { split($1, a, "/"); r += a[2] == $2; n++ } END { printf "%.2f%%", 100 * r / n }' pred3.csv)
expect 0 "fine-tuned classifier  top-1 $want on the same test images" "eval --model ft3: predict's accuracy ($want)" -- \
  "$S" eval data --model ft3 --test data --k 5 --probe-epochs 5 --no-baseline --quiet
# refusals: exit 1, the reason named, no folder left
expect 1 "class 'horizontal' has only 16 labelled images" "finetune --per-class 17: more labels than a class has" -- \
  "$S" finetune data --model run --out ftx --per-class 17 --quiet
mkdir -p flat && cp data/horizontal/000.png flat/
expect 1 "no class subfolders" "finetune on a folder without class subfolders" -- "$S" finetune flat --model run --out ftx --quiet
mkdir -p noenc && cp run/simclr.cfg noenc/
expect 1 "noenc/encoder.simclr" "finetune from a model folder without an encoder" -- "$S" finetune data --model noenc --out ftx --quiet
cp run/encoder.simclr enc.before
expect 1 "is the --model folder" "finetune --out the --model folder" -- "$S" finetune data --model run --out ./run/ --quiet
cmp -s run/encoder.simclr enc.before && [ ! -e run/head.simclr ] && ok "the pre-trained folder untouched" || bad "finetune wrote into run/"
[ ! -e ftx ] && ok "refused finetunes left no folder" || bad "refused finetune left ftx: $(ls ftx)"
expect 1 "run \`simclr finetune\`" "predict with a model without a classifier" -- "$S" predict data --model run -o predx.csv --quiet
[ ! -e predx.csv ] && ok "refused predict wrote nothing" || bad "refused predict wrote predx.csv"

# Every option of every subcommand, bad values (issue 24, defect 7): exit
# status 2, the option named on stderr with what it accepts, and nothing
# created (each case runs in an empty folder, the other arguments valid so
# that a value let through would write files there).
n_refuse=0
refuse() { # refuse SUBCOMMAND OPTION ARG...
  sub=$1 flag=$2; shift 2; n_refuse=$((n_refuse + 1))
  d="$T/refuse$n_refuse"; mkdir "$d"
  err=$( (cd "$d" && timeout 30 "$S" $sub "$@") 2>&1 >/dev/null); rc=$?
  what="$sub $(echo "$*" | sed "s|$T/||g")"
  if [ "$rc" -ne 2 ]; then bad "$what: exit $rc, want 2: $err"
  elif ! printf '%s\n' "$err" | grep -qF -- "$flag"; then bad "$what: $flag not named: $err"
  elif ! printf '%s\n' "$err" | grep -q "must be\|needs a value\|takes no value\|unknown option\|give one\|give a\|checkpoint in"; then
    bad "$what: no accepted values in: $err"
  elif [ -n "$(ls -A "$d")" ]; then bad "$what: left $(ls -A "$d")"
  else ok "refused: $what"; fi
}
TR="$T/data --batch 16 --size 16 --width 4 --threads 1 --quiet"
for v in x 0 -1 1.5 1000001 ""; do refuse train --epochs $TR --epochs=$v; done
refuse train --epochs $TR --epochs
for v in x 0 -1 nan inf 1e7 ""; do refuse train --minutes $TR --minutes=$v; done
refuse train --minutes $TR --minutes
refuse train --minutes $TR --epochs 2 --minutes 1
for v in x 0 1 -1 65537 2.5; do refuse train --batch $TR --batch $v; done
refuse train --batch $TR --batch
for v in x 0 7 -1 1025; do refuse train --size $TR --size $v; done
for v in x 0 -1 1025; do refuse train --width $TR --width $v; done
refuse train --width $TR --width
for v in x 0 17 19 -18 1e2; do refuse train --depth $TR --depth $v; done
for v in x 0 2 4 -1 3.0; do refuse train --channels $TR --channels $v; done
for v in x 0 -1 101 nan; do refuse train --lr $TR --lr $v; done
refuse train --lr $TR --lr
for v in adam SGD ""; do refuse train --optimizer $TR --optimizer=$v; done
refuse train --optimizer $TR --optimizer
for v in x -1 -1e-9 2; do refuse train --weight-decay $TR --weight-decay $v; done
for v in x 0 -1 0.0001 101; do refuse train --temperature $TR --temperature $v; done
for v in x 0 -0.1 1.5; do refuse train --crop-min $TR --crop-min $v; done
for v in x -1 257; do refuse train --threads $TR --threads $v; done
for v in x -1 1.5; do refuse train --seed $TR --seed $v; done
for v in x 0 -1; do refuse train --checkpoint-every $TR --checkpoint-every $v; done
for v in x -1 65; do refuse train --prefetch $TR --prefetch $v; done
refuse train --out $TR --out=
refuse train --out $TR --out
refuse train --out $TR --out --quiet
refuse train --resume $TR --resume=1
refuse train --skip-bad $TR --skip-bad=yes
refuse train --quiet $TR --quiet=1
refuse train --bogus $TR --bogus
refuse train -x $TR -x
refuse train "give one folder" --quiet
EM="$T/data --model $T/run --quiet"
refuse embed --model $EM --model=
refuse embed --model $EM --model
refuse embed -o $EM -o=
refuse embed -o $EM -o
refuse embed --map $EM --map=
refuse embed --map $EM --map
for v in x -1 257; do refuse embed --threads $EM --threads $v; done
refuse embed --skip-bad $EM --skip-bad=1
refuse embed --quiet $EM --quiet=1
refuse embed --bogus $EM --bogus
refuse embed "give a folder" --quiet
EV="$T/data --model $T/run --k 5 --probe-epochs 5 --no-baseline --quiet"
refuse eval --model $EV --model=
refuse eval --test $EV --test=
refuse eval --test $EV --test
for v in x 0 1 -0.2 1.5; do refuse eval --test-fraction $EV --test-fraction $v; done
refuse eval --test-fraction $EV --test "$T/data" --test-fraction 0.3
for v in x -1 1.5; do refuse eval --seed $EV --seed $v; done
for v in x 0 -1 100001; do refuse eval --k $EV --k $v; done
for v in x 0 -1 100001; do refuse eval --probe-epochs $EV --probe-epochs $v; done
for v in x -1 1001 nan; do refuse eval --probe-wd $EV --probe-wd $v; done
refuse eval --map $EV --map=
refuse eval --map $EV --map
refuse eval --no-baseline $EV --no-baseline=1
for v in x -1 257; do refuse eval --threads $EV --threads $v; done
refuse eval --quiet $EV --quiet=1
refuse eval --bogus $EV --bogus
refuse eval "give one" --quiet
refuse export --model --model "$T/run" --model=
refuse export --model --model "$T/run" --model
refuse export -o --model "$T/run" -o=
refuse export -o --model "$T/run" -o
refuse export --bogus --model "$T/run" --bogus
PV="$T/data --images 2 --views 2 --size 16"
refuse preview -o $PV -o=
refuse preview -o $PV -o
for v in x 0 -1 1001; do refuse preview --images $PV --images $v; done
for v in x 0 -1 16; do refuse preview --views $PV --views $v; done
for v in x 0 7 1025; do refuse preview --size $PV --size $v; done
for v in x 0 2 4; do refuse preview --channels $PV --channels $v; done
for v in x 0 1.5; do refuse preview --crop-min $PV --crop-min $v; done
for v in x -1; do refuse preview --seed $PV --seed $v; done
refuse preview --bogus $PV --bogus
FT="$T/data --model $T/run --out ft --epochs 1 --batch 8 --quiet"
refuse finetune --model $FT --model=
refuse finetune --out $FT --out=
for v in x 0 0% 101% -5% 1.5 "10 %" "%" nan ""; do refuse finetune --labels $FT --labels="$v"; done
refuse finetune --labels $FT --labels
for v in x 0 -1 1.5 2147483649; do refuse finetune --per-class $FT --per-class $v; done
refuse finetune --per-class $FT --labels 10% --per-class 2
for v in x 0 -1 1000001; do refuse finetune --epochs $FT --epochs $v; done
for v in x 0 1 65537; do refuse finetune --batch $FT --batch $v; done
for v in x 0 -1 101; do refuse finetune --lr $FT --lr $v; done
refuse finetune --freeze-encoder $FT --freeze-encoder=1
for v in x -1 1.5; do refuse finetune --seed $FT --seed $v; done
for v in x -1 257; do refuse finetune --threads $FT --threads $v; done
refuse finetune --quiet $FT --quiet=1
refuse finetune --bogus $FT --bogus
refuse finetune "give one" --quiet
PR="$T/data --model $T/ft --quiet"
refuse predict --model $PR --model=
refuse predict -o $PR -o=
refuse predict -o $PR -o
for v in x 0 -1 1.5 1048577; do refuse predict --top-k $PR --top-k $v; done
refuse predict --top-k $PR --top-k
for v in x -1 257; do refuse predict --threads $PR --threads $v; done
refuse predict --skip-bad $PR --skip-bad=1
refuse predict --quiet $PR --quiet=1
refuse predict --bogus $PR --bogus
refuse predict "give a folder" --quiet
# --resume continues the checkpoint's model: another architecture is refused,
# and the run folder is left as it was
sum_before=$(cksum run/* | sort)
for f in "--width 16" "--depth 34" "--size 32" "--channels 1"; do
  set -- $f
  expect 2 "$1 $2: the checkpoint in run was trained with $1" "--resume refuses $f" -- \
    "$S" train data --out run --epochs 5 --batch 16 --resume $f --quiet
done
[ "$(cksum run/* | sort)" = "$sum_before" ] && ok "refused --resume left the run folder as it was" \
  || bad "a refused --resume changed the run folder"
expect 0 "resuming run at step 8" "--resume with the checkpoint's own --width and --size" -- \
  "$S" train data --out run --epochs 4 --batch 16 --resume --width 8 --size 24
expect 1 "no checkpoint nowhere/trainer.ckpt" "--resume without a checkpoint" -- "$S" train data --out nowhere --resume
[ ! -e nowhere ] && ok "--resume without a checkpoint creates nothing" || bad "--resume created nowhere/"

# bad input
mkdir -p empty onlytext broken/a broken/b
echo hi > onlytext/readme.txt
cp data/horizontal/000.png data/horizontal/002.png broken/a/
cp data/vertical/001.jpg broken/b/
head -c 200 data/vertical/003.jpg > broken/b/cut.jpg
printf 'not an image' > broken/a/fake.png
expect 1 "missing: No such file" "missing folder" -- "$S" train missing
expect 1 "empty: no .png/.jpg/.jpeg images" "empty folder" -- "$S" train empty --out r_empty
expect 1 "no .png/.jpg/.jpeg images" "folder without images" -- "$S" train onlytext --out r_text
expect 1 "broken/a/fake.png: not a PNG or JPEG" "non-image file stops training" -- "$S" train broken --out r_bad --epochs 1 --batch 6 --quiet
[ ! -e r_bad/encoder.simclr ] && ok "nothing written for a failed run" || bad "r_bad/encoder.simclr exists"
expect 0 "skipped 2 unreadable images" "--skip-bad counts and names" -- "$S" train broken --out r_skip --epochs 1 --batch 6 --skip-bad --quiet
# a folder where no image decodes (issue 24, defect 6): --skip-bad must not
# train an untrained model or write a 0-row array
mkdir -p allbad/a allbad/b
for i in 1 2 3 4 5; do printf 'not an image' > allbad/a/$i.png; head -c 300 data/vertical/001.jpg > allbad/b/$i.jpg; done
expect 1 "no batch of allbad had 2 decodable images" "--skip-bad with no decodable image refuses (--epochs)" -- \
  "$S" train allbad --out r_allbad --epochs 1 --batch 4 --skip-bad --quiet
expect 1 "fewer than 2 left to train on" "--skip-bad with no decodable image refuses (--epochs 3)" -- \
  "$S" train allbad --out r_allbad --epochs 3 --batch 4 --skip-bad --quiet
expect 1 "fewer than 2 left to train on" "--skip-bad with no decodable image refuses (--minutes)" -- \
  "$S" train allbad --out r_allbad --minutes 0.2 --batch 4 --skip-bad --quiet
[ ! -e r_allbad ] && ok "no run folder for a run that trained nothing" || bad "r_allbad left: $(ls r_allbad)"
expect 1 "none of the 10 images could be read" "embed --skip-bad with no decodable image refuses" -- \
  "$S" embed allbad --model run -o allbad.npy --skip-bad --quiet
[ ! -e allbad.npy ] && [ ! -e allbad.npy.paths.txt ] && ok "no .npy for an embed with nothing read" || bad "allbad.npy written"
expect 1 "cut.jpg: corrupt JPEG" "truncated JPEG on embed" -- "$S" embed broken/b/cut.jpg --model run -o cut.npy
[ ! -e cut.npy ] && ok "no .npy for a failed embed" || bad "cut.npy exists"
expect 1 "nope.jpg: No such file" "missing file" -- "$S" embed nope.jpg --model run -o n.npy
expect 1 "nomodel/simclr.cfg" "missing model" -- "$S" embed data --model nomodel
expect 1 "Permission denied\|cannot" "unwritable output" -- "$S" export --model run -o /proc/nope.safetensors
if [ "$(id -u)" != 0 ]; then
  cp data/horizontal/000.png locked.png && chmod 000 locked.png
  expect 1 "locked.png: cannot open" "unreadable file" -- "$S" embed locked.png --model run -o l.npy
fi
# folders that used to hang the walk (issue 24, defect 4): two symlink loops
# in one folder, then a FIFO named like an image; `timeout` turns a hang
# into a failure
mkdir -p loops/a
cp data/horizontal/000.png loops/a/x.png
ln -s . loops/a/x; ln -s . loops/a/y; ln -s .. loops/a/up
expect 0 "wrote loops.png" "preview of a folder with symlink loops ends" -- timeout 30 "$S" preview loops -o loops.png --images 4
expect 0 "1 images" "embed lists each image of a looping folder once" -- timeout 30 "$S" embed loops --model run -o loops.npy
mkdir -p fifo/a && cp data/horizontal/000.png fifo/a/ok.png && mkfifo fifo/a/p.png
expect 1 "p.png: not a regular file (a FIFO)" "a FIFO named p.png is refused by name, not waited on" -- \
  timeout 30 "$S" embed fifo --model run -o fifo.npy
expect 0 "" "--skip-bad leaves the FIFO out" -- timeout 30 "$S" embed fifo --model run -o fifo.npy --skip-bad --quiet
leftovers=$(find . -name '*.tmp.*' | head -3)
[ -z "$leftovers" ] && ok "no temporary files left" || bad "temporary files left: $leftovers"

if [ "$fails" -ne 0 ]; then echo "test_cli: $fails failed"; exit 1; fi
echo "test_cli: all passed"
