#!/bin/sh
# JPEG decode throughput, 256 x 256 px (issue 13): libsimclr_image next to
# PIL on the same files in the same run. Run on an idle machine:
#   make bench-decode      (or: sh bench/bench_decode.sh after make image)
set -e
BUILD=${SIMCLR_BUILD:-build/main}
PYTHON=${PYTHON:-/usr/bin/python3}
N=${DECODE_FILES:-500}
dir=$(mktemp -d /tmp/simclr_bench_decode.XXXXXX)
trap 'rm -rf "$dir"' EXIT
$PYTHON bench/bench_decode.py write "$dir" "$N" 256
"$BUILD/bench/bench_decode" "$dir" 5 2
$PYTHON bench/bench_decode.py run "$dir" 5
