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

# The simclr command training on these files with the next batch decoded in
# the background (--prefetch 1) or when needed (--prefetch 0): 2 epochs of
# batches of 50 at width 16, 32 px views; the two alternated, 3 runs each,
# medians; with the step on every core (--threads 0), then on one thread
# (a core left free for the prefetch).
CLI=${SIMCLR_CLI:-$BUILD/bin/simclr}
if [ -x "$CLI" ]; then
  for t in 0 1; do
    for r in 1 2 3; do
      for p in 0 1; do
        s=$(date +%s.%N)
        "$CLI" train "$dir" --out "$dir/run" --epochs 2 --batch 50 --width 16 --size 32 --threads $t --prefetch $p \
          --quiet > /dev/null
        e=$(date +%s.%N)
        rm -rf "$dir/run"
        echo "$p $s $e"
      done
    done | awk '{ t[$1, ++n[$1]] = $3 - $2 }
      function med(p,   a, b, c) { a = t[p, 1]; b = t[p, 2]; c = t[p, 3];
        return a > b ? (b > c ? b : (a > c ? c : a)) : (a > c ? a : (b > c ? c : b)) }
      END { printf "simclr train, %d JPEGs, 2 epochs, --threads %s: --prefetch 0 %.2f s, --prefetch 1 %.2f s (medians of 3, alternated): %.2fx\n",
                   '"$N"', "'"$t"'", med(0), med(1), med(0) / med(1) }'
  done
else
  echo "(simclr command not built: make cli for the prefetch rows)"
fi
