#!/bin/sh
# MoCo v2 against SimCLR at equal wall time on Fashion-MNIST (issue 16): for
# each batch size, SimCLR pre-trains for EPOCHS epochs of TRAIN_IMAGES; a
# short calibration measures both methods' seconds per step on this machine;
# MoCo then gets as many steps as fit in SimCLR's pre-training time (its step
# runs the key encoder forward only, so it fits more). Both are evaluated by
# the demo's kNN and linear probe on the test set. Same recipe otherwise:
# ResNet-18 width WIDTH, GRAYSCALE augmentation, LARS 0.075*sqrt(B), 10%
# warmup + cosine, temperature 0.2. Slow (about 1 h per batch size at the
# defaults): runs only with MOCO_QUALITY=1 (or QUALITY=1) on an idle machine:
#   MOCO_QUALITY=1 sh bench/bench_moco_quality.sh
#   MOCO_QUALITY=1 BATCHES="64" EPOCHS=1 TRAIN_IMAGES=12800 sh bench/bench_moco_quality.sh
# (EVAL_TRAIN must be a multiple of 500: the demo embeds in batches of 500.)
[ "${MOCO_QUALITY:-${QUALITY:-0}}" = 1 ] || { echo "MoCo quality benchmark skipped (set MOCO_QUALITY=1)"; exit 0; }
set -e
B=${SIMCLR_BUILD:-build/main}; DEMO="$B/examples/train_fashion_mnist"
[ -x "$DEMO" ] || { echo "build the demo first: make examples"; exit 1; }
EPOCHS=${EPOCHS:-3}; TRAIN_IMAGES=${TRAIN_IMAGES:-60000}; WIDTH=${WIDTH:-16}; THREADS=${THREADS:-2}
QUEUE=${QUEUE:-4096}; MOCO_M=${MOCO_M:-0.99}
COMMON="--width $WIDTH --threads $THREADS --temperature 0.2 --crop-min 0.2 --eval-train ${EVAL_TRAIN:-60000} --probe-epochs ${PROBE_EPOCHS:-300} --probe-wd 1e-4"
# The recipe of the recorded table: LARS 0.075*sqrt(B) (the demo's default has moved on).
recipe_lr() { echo "--lr $(awk -v b="$1" 'BEGIN { print 0.075 * sqrt(b) }')"; }
OUT=${OUT:-build/moco-quality}; mkdir -p "$OUT"

# "pre-training: N steps in T s" -> seconds per step
sec_per_step() { sed -n 's/^pre-training: \([0-9]*\) steps in \([0-9.]*\) s.*/\2 \1/p' "$1" | awk '{ printf "%.6f", $1 / $2 }'; }
scores() { grep "ResNet-18 (ours)" "$1" | sed 's/.*(ours) *//'; }

echo "recipe: $COMMON, LARS 0.075*sqrt(B), SimCLR $EPOCHS epoch(s) of $TRAIN_IMAGES images; MoCo queue $QUEUE, m $MOCO_M"
printf "%-8s %6s %7s %9s %10s %14s\n" method batch steps train_s "kNN top-1" "linear top-1" > "$OUT/table.txt"
for BATCH in ${BATCHES:-64 256}; do
  for M in simclr moco; do   # calibration: 40 steps each, minimal evaluation
    "$DEMO" --method $M --batch $BATCH --queue $QUEUE --moco-momentum $MOCO_M --width $WIDTH --threads $THREADS \
      --epochs 1 --train-images $((40 * BATCH)) --eval-train 500 --eval-test 500 --probe-epochs 1 --out "$OUT/cal-$M-$BATCH" \
      2>/dev/null > "$OUT/cal-$M-$BATCH.txt"
  done
  s_simclr=$(sec_per_step "$OUT/cal-simclr-$BATCH.txt"); s_moco=$(sec_per_step "$OUT/cal-moco-$BATCH.txt")
  moco_images=$(awk -v n="$TRAIN_IMAGES" -v a="$s_simclr" -v b="$s_moco" -v bs="$BATCH" \
                'BEGIN { m = int(n * a / b / bs) * bs; print (m > 60000 * 100 ? 60000 * 100 : m) }')
  echo "batch $BATCH: SimCLR $s_simclr s/step, MoCo $s_moco s/step -> MoCo gets $moco_images images per epoch"
  echo "--- SimCLR, batch $BATCH"
  "$DEMO" --method simclr --batch $BATCH --epochs $EPOCHS --train-images $TRAIN_IMAGES $COMMON $(recipe_lr $BATCH) \
    --out "$OUT/simclr-$BATCH" 2>/dev/null | tee "$OUT/simclr-$BATCH.txt" | tail -4
  # More images than the data set holds: the demo caps an epoch at 60000, so
  # MoCo's extra steps go into more epochs instead.
  ep=$EPOCHS; per=$moco_images
  while [ "$per" -gt 60000 ]; do ep=$((ep * 2)); per=$((per / 2 / BATCH * BATCH)); done
  echo "--- MoCo v2, batch $BATCH ($ep epoch(s) of $per images)"
  "$DEMO" --method moco --batch $BATCH --queue $QUEUE --moco-momentum $MOCO_M --epochs $ep --train-images $per \
    $COMMON $(recipe_lr $BATCH) --out "$OUT/moco-$BATCH" 2>/dev/null | tee "$OUT/moco-$BATCH.txt" | tail -4
  for M in simclr moco; do
    line=$(sed -n 's/^pre-training: \([0-9]*\) steps in \([0-9.]*\) s.*/\1 \2/p' "$OUT/$M-$BATCH.txt")
    printf "%-8s %6s %7s %9s %s\n" $M $BATCH $line "$(scores "$OUT/$M-$BATCH.txt")" >> "$OUT/table.txt"
  done
done
echo; cat "$OUT/table.txt"
echo "OpenBLAS: ${OPENBLAS_CORETYPE:-native kernels}; threads $THREADS"
