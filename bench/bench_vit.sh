#!/bin/sh
# ViT-Tiny/patch 4 on 32x32x3: the model part of a SimCLR step (AdamW) and
# the EVAL forward, ours (bench/bench_vit.c) vs PyTorch (bench/torch_vit.py)
# on the same work, 1 and 2 threads: sides alternated, ROUNDS rounds,
# medians and the ratio ours/PyTorch. Needs SIMCLR_BUILD and PYTHON.
# Run it on an idle machine: the figures mean nothing under load.
ROUNDS=${ROUNDS:-3}; REPS=${REPS:-3}
B=${SIMCLR_BUILD:-build/main}; PY=${PYTHON:-/usr/bin/python3}
median() { sort -n | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }
for mode in step eval; do
  if [ "$mode" = step ]; then batch=${PAIRS:-64}; what="SimCLR model step, $batch pairs (views/s)";
  else batch=${BATCH:-256}; what="EVAL forward, batch $batch (images/s)"; fi
  echo "ViT-Tiny patch 4, 32x32x3: $what"
  "$B/bench/bench_vit" $mode 1 0 1 | grep '#'
  for t in ${THREADS:-1 2}; do
    ours=""; theirs=""
    for r in $(seq $ROUNDS); do
      ours="$ours $("$B/bench/bench_vit" $mode $t $REPS $batch | grep -v '#')"
      theirs="$theirs $($PY bench/torch_vit.py $mode $t $REPS $batch 2>/dev/null)"
    done
    mo=$(echo $ours | tr ' ' '\n' | median); mt=$(echo $theirs | tr ' ' '\n' | median)
    echo "threads $t: libsimclr $mo | PyTorch $mt | ratio ours/PyTorch $(echo "$mo $mt" | awk '{printf "%.2f", $1/$2}')"
  done
done
