#!/bin/sh
# Runs every bench/bench_*.sh in order. Benchmarks compare against PyTorch on
# the same machine in the same run; run them on an idle machine.
# OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE are unset here, for benchmarks only, so
# OpenBLAS (ours and numpy/torch's) picks its native kernels; each script
# reports which kernel set it ran with.
unset OPENBLAS_CORETYPE OPENBLAS_L2_SIZE
cd "$(dirname "$0")/.."
status=0
for s in bench/bench_*.sh; do
  [ -f "$s" ] || continue
  echo "=== $s"
  sh "$s" || status=1
done
exit $status
