#!/bin/sh
# Full SimCLR step, ours vs PyTorch, 1 and 2 threads: alternate the sides,
# repeat, report medians and the ratio. Needs SIMCLR_BUILD and PYTHON.
ROUNDS=${ROUNDS:-3}; REPS=${REPS:-3}
B=${SIMCLR_BUILD:-build/main}; PY=${PYTHON:-/usr/bin/python3}
median() { sort -n | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }
echo "SimCLR step: ResNet-18 CIFAR stem width 64, 32x32x3, 128 pairs, augment+fwd+loss+bwd+LARS (views/s)"
"$B/bench/bench_step" 1 0 2 8 | grep core
for t in ${THREADS:-1 2}; do
  ours=""; nchw=""; cl=""
  for r in $(seq $ROUNDS); do
    ours="$ours $("$B/bench/bench_step" $t $REPS | grep -v '#')"
    nchw="$nchw $($PY bench/torch_step.py $t $REPS 128 0)"
    cl="$cl $($PY bench/torch_step.py $t $REPS 128 1)"
  done
  mo=$(echo $ours | tr ' ' '\n' | median); mn=$(echo $nchw | tr ' ' '\n' | median); mc=$(echo $cl | tr ' ' '\n' | median)
  best=$(echo "$mn $mc" | awk '{print ($1>$2)?$1:$2}')
  echo "threads $t: libsimclr $mo | PyTorch NCHW $mn, channels_last $mc | ratio ours/best $(echo "$mo $best" | awk '{printf "%.2f", $1/$2}')"
done
