#!/bin/sh
# Soak test of an embedding service (issue 24): SOAK_THREADS threads (4),
# each with its own context and embedder over one shared encoder, embed
# random images for SOAK_SECONDS seconds (600) while the resident set is
# sampled every SOAK_INTERVAL seconds (5); fails (exit 1) when RSS or its
# peak grows after warm-up (SOAK_WARMUP seconds, default 10% of the run, at
# most 60) by more than 2% + 4 MB. `make soak` runs it; not part of
# `make test` (it takes 10 minutes). SOAK_REQUESTS=fixed: every request
# 16 images (the control; default varying, 1..16). Needs SIMCLR_BUILD.
# The library never tunes glibc's allocator (mallopt is the host's call);
# to see a host's setting, run e.g. MALLOC_ARENA_MAX=2 make soak: the header
# line records MALLOC_ARENA_MAX and MALLOC_TRIM_THRESHOLD_ when they are set.
B=${SIMCLR_BUILD:-build/main}
SECONDS_=${SOAK_SECONDS:-600}
echo "# $(date -u '+%Y-%m-%d %H:%M UTC'), commit $(git rev-parse --short HEAD 2>/dev/null || echo '?'), \
$(grep -m1 'model name' /proc/cpuinfo 2>/dev/null | sed 's/.*: //'), $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg)\
${MALLOC_ARENA_MAX:+, MALLOC_ARENA_MAX=$MALLOC_ARENA_MAX}${MALLOC_TRIM_THRESHOLD_:+, MALLOC_TRIM_THRESHOLD_=$MALLOC_TRIM_THRESHOLD_}"
exec "$B/bench/soak_embed" "$SECONDS_" "${SOAK_THREADS:-4}" "${SOAK_INTERVAL:-5}" "${SOAK_WARMUP:-0}" "${SOAK_REQUESTS:-varying}"
