#!/bin/sh
# Gradient caching and 2 MPI ranks vs 1 process (issue 14): peak memory and
# views/s for B = 256, 1024 and 4096 pairs of 32x32x3 views, ResNet-18 w64,
# micro-batches of MICRO (128) pairs. Each configuration runs in its own
# processes (peak RSS is per process). On one 2-core machine the 2 ranks
# share the cores (1 thread each vs 2 threads for the single process): this
# measures the overhead of the distribution (collectives, the duplicated
# loss), not a speed-up. Long: B = 4096 is ~25 minutes per run at 2 cores.
# --bind-to none: Open MPI binds each rank to one core by default when there
# are at most 2 ranks, which would put the single process's 2 threads on one core.
# Environment: PAIRS ("256 1024 4096"), MICRO (128), WIDTH (64), STEPS (2).
build=${SIMCLR_BUILD:-build/main}
bin="$build/bench/bench_gradcache"
[ -x "$bin" ] || { echo "bench_gradcache: build it first (make bench)"; exit 1; }
command -v mpirun >/dev/null || { echo "bench_gradcache: mpirun not found (apt-get install openmpi-bin libopenmpi-dev)"; exit 1; }
MPIRUN="mpirun --bind-to none --mca btl self,vader --mca oob_tcp_if_include lo --mca btl_tcp_if_include lo --allow-run-as-root --oversubscribe --quiet"
cores=$(nproc)
echo "OPENBLAS_CORETYPE=${OPENBLAS_CORETYPE:-native}; $cores cores"
echo "gradient caching: micro-batches of ${MICRO:-128} pairs; goal: B = 4096 pairs in <= 4 GB peak per process"
echo "ranks=2 runs both ranks on these same $cores cores (threads per rank: $(( cores / 2 > 0 ? cores / 2 : 1 ))):" \
     "it measures the overhead of distribution (collectives, the loss computed on every rank), not a speed-up"
for b in ${PAIRS:-256 1024 4096}; do
  $MPIRUN -np 1 "$bin" "$b" "${MICRO:-128}" "${WIDTH:-64}" "${STEPS:-2}" "$cores" || exit 1
  $MPIRUN -np 2 "$bin" "$b" "${MICRO:-128}" "${WIDTH:-64}" "${STEPS:-2}" $(( cores / 2 > 0 ? cores / 2 : 1 )) || exit 1
done
