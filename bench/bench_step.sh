#!/bin/sh
# Full SimCLR step, ours vs PyTorch, 1 and 2 threads: alternate the sides,
# repeat, report medians and the ratio. Two models: ResNet-18 width 64 on
# 32x32x3 (CIFAR), and the Fashion-MNIST demo's width 16 on 28x28x1.
# Needs SIMCLR_BUILD and PYTHON.
ROUNDS=${ROUNDS:-3}; REPS=${REPS:-3}
B=${SIMCLR_BUILD:-build/main}; PY=${PYTHON:-/usr/bin/python3}
median() { sort -n | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }
"$B/bench/bench_step" 1 0 2 8 | grep core
for model in ${MODELS:-cifar64 fmnist16}; do
  if [ "$model" = fmnist16 ]; then
    args="16 28 1"
    echo "SimCLR step: ResNet-18 CIFAR stem width 16, 28x28x1 (Fashion-MNIST demo), 128 pairs, augment+fwd+loss+bwd+LARS (views/s)"
  else
    args="64 32 3"
    echo "SimCLR step: ResNet-18 CIFAR stem width 64, 32x32x3, 128 pairs, augment+fwd+loss+bwd+LARS (views/s)"
  fi
  for t in ${THREADS:-1 2}; do
    ours=""; nchw=""; cl=""
    for r in $(seq $ROUNDS); do
      ours="$ours $("$B/bench/bench_step" $t $REPS 128 $args | grep -v '#')"
      nchw="$nchw $($PY bench/torch_step.py $t $REPS 128 0 $model)"
      cl="$cl $($PY bench/torch_step.py $t $REPS 128 1 $model)"
    done
    mo=$(echo $ours | tr ' ' '\n' | median); mn=$(echo $nchw | tr ' ' '\n' | median); mc=$(echo $cl | tr ' ' '\n' | median)
    best=$(echo "$mn $mc" | awk '{print ($1>$2)?$1:$2}')
    echo "threads $t: libsimclr $mo | PyTorch NCHW $mn, channels_last $mc | ratio ours/best $(echo "$mo $best" | awk '{printf "%.2f", $1/$2}')"
  done
done
