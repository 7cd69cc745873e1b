#!/bin/sh
# A ViT next to the ResNet at equal pre-training time on Fashion-MNIST
# (issue 17): each encoder pre-trains with SimCLR for MINUTES of wall clock
# on this machine (the demo's time budget: the cosine schedule aimed at the
# budget's end), then the demo's kNN and linear probe on the test set.
# Recipes: ResNet-18 width WIDTH with LARS 0.075*sqrt(B) (the demo's);
# ViTs (patch 4 on 28x28: 49 tokens + the class token, one head per 64
# dimensions, MLP 4x) with AdamW lr 1e-3, weight decay 0.05, as ViTs are
# trained. Slow (about 10 minutes per encoder at the defaults): runs only
# with VIT_QUALITY=1 (or QUALITY=1) on an idle machine:
#   VIT_QUALITY=1 sh bench/bench_vit_quality.sh
#   VIT_QUALITY=1 MINUTES=2 VITS="192:12" sh bench/bench_vit_quality.sh
[ "${VIT_QUALITY:-${QUALITY:-0}}" = 1 ] || { echo "ViT quality benchmark skipped (set VIT_QUALITY=1)"; exit 0; }
set -e
B=${SIMCLR_BUILD:-build/main}; DEMO="$B/examples/train_fashion_mnist"
[ -x "$DEMO" ] || { echo "build the demo first: make examples"; exit 1; }
MINUTES=${MINUTES:-5}; BATCH=${BATCH:-128}; THREADS=${THREADS:-2}
COMMON="--minutes $MINUTES --batch $BATCH --threads $THREADS --temperature 0.2 --crop-min 0.2 --train-images 60000 \
--eval-train ${EVAL_TRAIN:-10000} --eval-test ${EVAL_TEST:-0} --probe-epochs ${PROBE_EPOCHS:-300} --probe-wd 1e-4"
OUT=${OUT:-build/vit-quality}; mkdir -p "$OUT"
scores() { grep "(ours)" "$1" | sed 's/.*(ours) *//'; }
steps() { sed -n 's/^pre-training: \([0-9]*\) steps in \([0-9.]*\) s.*/\1 \2/p' "$1"; }
params() { sed -n 's/^encoder .*(\([0-9]*\) parameters).*/\1/p' "$1"; }

echo "recipe: SimCLR, $MINUTES minutes of pre-training each, batch $BATCH, T 0.2, crop 0.2-1, $THREADS threads"
printf "%-28s %10s %6s %8s %10s %14s\n" encoder parameters steps train_s "kNN top-1" "linear top-1" > "$OUT/table.txt"
run() { # name, demo flags
  name=$1; shift
  echo "--- $name"
  "$DEMO" $COMMON "$@" --out "$OUT/$name" 2>/dev/null | tee "$OUT/$name.txt" | tail -3
  printf "%-28s %10s %6s %8s %s\n" "$name" "$(params "$OUT/$name.txt")" $(steps "$OUT/$name.txt") \
    "$(scores "$OUT/$name.txt")" >> "$OUT/table.txt"
}
run "resnet18-w${WIDTH:-16}-lars" --encoder resnet18 --width "${WIDTH:-16}" \
  --lr "$(awk -v b="$BATCH" 'BEGIN { print 0.075 * sqrt(b) }')"
for v in ${VITS:-192:12 128:6}; do
  d=${v%%:*}; l=${v##*:}
  run "vit-d$d-l$l-adamw" --encoder vit --vit-dim "$d" --vit-depth "$l" --optimizer adamw
done
echo; cat "$OUT/table.txt"
echo "OpenBLAS: ${OPENBLAS_CORETYPE:-native kernels}; threads $THREADS"
