#!/bin/sh
# Embedding extraction (EVAL forward), ours vs PyTorch (NCHW and
# channels_last), 1 and 2 threads, batch 256 and batch 1 (latency): sides
# alternated, ROUNDS rounds, medians and the ratio to PyTorch's best layout.
# Needs SIMCLR_BUILD and PYTHON.
ROUNDS=${ROUNDS:-3}; ITERS=${ITERS:-5}
B=${SIMCLR_BUILD:-build/main}; PY=${PYTHON:-/usr/bin/python3}
median() { sort -n | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }
"$B/bench/bench_eval" 1 1 2 8 16 1 | grep '#'
for model in ${MODELS:-cifar64 fmnist16}; do
  if [ "$model" = fmnist16 ]; then args="16 28 1"; name="width 16, 28x28x1"; else args="64 32 3"; name="width 64, 32x32x3"; fi
  for batch in ${BATCHES:-256 1}; do
    echo "EVAL forward: ResNet-18 CIFAR stem $name, batch $batch (images/s)"
    for t in ${THREADS:-1 2}; do
      ours=""; nchw=""; cl=""
      for r in $(seq $ROUNDS); do
        ours="$ours $("$B/bench/bench_eval" $t $ITERS $batch $args | grep -v '#')"
        nchw="$nchw $($PY bench/torch_eval.py $t $ITERS $batch $args 0 2>/dev/null)"
        cl="$cl $($PY bench/torch_eval.py $t $ITERS $batch $args 1 2>/dev/null)"
      done
      mo=$(echo $ours | tr ' ' '\n' | median); mn=$(echo $nchw | tr ' ' '\n' | median); mc=$(echo $cl | tr ' ' '\n' | median)
      best=$(echo "$mn $mc" | awk '{print ($1>$2)?$1:$2}')
      echo "threads $t: libsimclr $mo | PyTorch NCHW $mn, channels_last $mc | ratio ours/best $(echo "$mo $best" | awk '{printf "%.2f", $1/$2}')"
    done
  done
done
