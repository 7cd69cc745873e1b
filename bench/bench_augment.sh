#!/bin/sh
# Augmentation throughput (views/s), libsimclr next to torchvision 0.14 on the
# same images and the same recipe, 1 and 2 threads:
#   CIFAR preset, 32x32 -> 32x32;  SimCLR v1 preset, 256x256 -> 224x224.
# torchvision runs per image in one process (torch.set_num_threads as given),
# on float tensors (what we compute) and through PIL (the common setup).
# Sizes via env for smoke tests: AUG_BENCH_N_CIFAR, AUG_BENCH_N_V1, AUG_BENCH_ITERS.
# No BLAS is involved in augmentation, so the OpenBLAS kernel set does not matter.
set -e
B=${SIMCLR_BUILD:-build/main}
PY=${PYTHON:-/usr/bin/python3}
N_CIFAR=${AUG_BENCH_N_CIFAR:-4096}
N_V1=${AUG_BENCH_N_V1:-128}
ITERS=${AUG_BENCH_ITERS:-3}
HERE=$(dirname "$0")

rate() { sed -n 's/^views_per_s //p'; }

printf '%-26s %7s %12s %14s %12s %8s\n' workload threads "ours v/s" "tv-tensor v/s" "tv-PIL v/s" "ours/tv"
for cfg in "cifar 32 32 $N_CIFAR" "v1 256 224 $N_V1"; do
  set -- $cfg
  for t in 1 2; do
    ours=$("$B/bench/bench_augment" "$1" "$2" "$3" "$4" "$ITERS" "$t" | rate)
    tvt=$("$PY" "$HERE/bench_augment.py" "$1" "$2" "$3" "$4" "$ITERS" "$t" tensor | rate)
    tvp=$("$PY" "$HERE/bench_augment.py" "$1" "$2" "$3" "$4" "$ITERS" "$t" pil | rate)
    ratio=$(awk -v a="$ours" -v b="$tvt" 'BEGIN { printf "%.1fx", a / b }')
    printf '%-26s %7s %12s %14s %12s %8s\n' "$1 ${2}px->${3}px N=$4" "$t" "$ours" "$tvt" "$tvp" "$ratio"
  done
done
echo "(ours/tv = ours vs torchvision on float tensors; N images x 2 views x $ITERS iterations)"
