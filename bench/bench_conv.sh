#!/bin/sh
# Direct vs Winograd F(2x2)/F(4x4) per 3x3 stride-1 layer shape of ResNet-18
# (w16 28x28, w64 32x32), forward and backward, at 1 and 2 threads; effective
# GFLOP/s = direct-convolution FLOPs / time. Needs SIMCLR_BUILD.
B=${SIMCLR_BUILD:-build/main}
for t in ${THREADS:-1 2}; do
  "$B/bench/bench_conv" "$t" "${BATCH:-256}" "${REPS:-5}" || exit 1
done
