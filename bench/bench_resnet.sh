#!/bin/sh
# ResNet-18 (CIFAR stem, width 64, 32x32x3, batch 256) training forward +
# backward: libsimclr's "cpu" backend against PyTorch on the same machine, on
# 1 and 2 threads. Each side runs in its own process (so peak RSS is its
# own); the two sides alternate, REPEATS times, and the median is reported.
# PyTorch gets the better of NCHW and channels_last.
#
#   BENCH_BATCH=256 BENCH_ITERS=5 BENCH_REPEATS=3 BENCH_THREADS="1 2" sh bench/bench_resnet.sh
#
# Run from the repository root (make bench does); needs SIMCLR_BUILD (the
# build directory holding bench/bench_resnet) and PYTHON.
set -e
BUILD=${SIMCLR_BUILD:-build/main}
PY=${PYTHON:-/usr/bin/python3}
BATCH=${BENCH_BATCH:-256}
ITERS=${BENCH_ITERS:-5}
REPEATS=${BENCH_REPEATS:-3}
THREADS=${BENCH_THREADS:-"1 2"}
WIDTH=64
SIZE=32
BIN="$BUILD/bench/bench_resnet"
[ -x "$BIN" ] || { echo "bench_resnet.sh: $BIN not built (make bench)"; exit 1; }

field() { sed -n "s/.*$1=\([^ ]*\).*/\1/p"; }
median() { sort -g | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2}'; }

echo "ResNet-18 CIFAR stem, width $WIDTH, ${SIZE}x${SIZE}x3, batch $BATCH, forward(train)+backward; median of $REPEATS runs x $ITERS steps"
for t in $THREADS; do
  ours=""; theirs=""; ours_mem=""; theirs_mem=""; info=""; tinfo=""
  i=0
  while [ $i -lt "$REPEATS" ]; do
    out=$("$BIN" "$BATCH" "$t" "$ITERS" "$WIDTH" "$SIZE")
    ours="$ours $(echo "$out" | field images_per_sec)"; ours_mem="$ours_mem $(echo "$out" | field maxrss_mb)"
    info=$(echo "$out" | field blas)
    best=0; best_mem=0; best_layout=""
    for layout in nchw channels_last; do
      tout=$("$PY" bench/bench_resnet.py "$BATCH" "$t" "$ITERS" "$WIDTH" "$SIZE" "$layout")
      ips=$(echo "$tout" | field images_per_sec)
      if awk "BEGIN {exit !($ips > $best)}"; then best=$ips; best_mem=$(echo "$tout" | field maxrss_mb); best_layout=$layout; fi
      tinfo="torch $(echo "$tout" | field torch), cpu capability $(echo "$tout" | field cpu_capability)"
    done
    theirs="$theirs $best"; theirs_mem="$theirs_mem $best_mem"; tlayout=$best_layout
    i=$((i + 1))
  done
  o=$(echo $ours | tr ' ' '\n' | median); p=$(echo $theirs | tr ' ' '\n' | median)
  om=$(echo $ours_mem | tr ' ' '\n' | median); pm=$(echo $theirs_mem | tr ' ' '\n' | median)
  ratio=$(awk "BEGIN {printf \"%.2f\", $o / $p}")
  echo "threads $t: libsimclr $o img/s (peak RSS $om MB, OpenBLAS kernels $info) | PyTorch $p img/s ($tlayout, peak RSS $pm MB, $tinfo) | ratio $ratio"
done
