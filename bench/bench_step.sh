#!/bin/sh
# Full SimCLR step, ours vs PyTorch, 1 and 2 threads: alternate the sides,
# repeat, report medians and the ratio. Two models: ResNet-18 width 64 on
# 32x32x3 (CIFAR), and the Fashion-MNIST demo's width 16 on 28x28x1.
# Also per model: the step's memory (peak resident size minus the process's
# size before the model existed: parameters, gradients, optimizer state,
# activations, workspaces; for PyTorch also its allocator's caches), and the
# 1 -> 2 thread speedup of each side next to OpenBLAS sgemm's own.
# Needs SIMCLR_BUILD and PYTHON.
ROUNDS=${ROUNDS:-3}; REPS=${REPS:-3}
B=${SIMCLR_BUILD:-build/main}; PY=${PYTHON:-/usr/bin/python3}
median() { sort -n | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }
field() { tr ' ' '\n' | sed -n "s/^$1=//p"; }
ratio() { echo "$1 $2" | awk '{printf "%.2f", ($2 > 0) ? $1/$2 : 0}'; }
"$B/bench/bench_step" 1 0 2 8 | grep -v step_mem
sgemm=$("$B/bench/bench_sgemm" 1536 7)
echo "$sgemm" | grep -v '#'
sgemm1=$(echo "$sgemm" | sed -n 's/.*threads 1: \([0-9.]*\).*/\1/p')
sgemm2=$(echo "$sgemm" | sed -n 's/.*threads 2: \([0-9.]*\).*/\1/p')
for model in ${MODELS:-cifar64 fmnist16}; do
  if [ "$model" = fmnist16 ]; then
    args="16 28 1"
    echo "SimCLR step: ResNet-18 CIFAR stem width 16, 28x28x1 (Fashion-MNIST demo), 128 pairs, augment+fwd+loss+bwd+LARS (views/s)"
  else
    args="64 32 3"
    echo "SimCLR step: ResNet-18 CIFAR stem width 64, 32x32x3, 128 pairs, augment+fwd+loss+bwd+LARS (views/s)"
  fi
  o1=""; b1=""
  for t in ${THREADS:-1 2}; do
    ours=""; nchw=""; cl=""; mo_mem=""; mn_mem=""; mc_mem=""
    for r in $(seq $ROUNDS); do
      out=$("$B/bench/bench_step" $t $REPS 128 $args)
      ours="$ours $(echo "$out" | grep -v '#')"; mo_mem="$mo_mem $(echo "$out" | field step_mem_mb)"
      isa=$(echo "$out" | field isa)
      out=$($PY bench/torch_step.py $t $REPS 128 0 $model)
      nchw="$nchw $(echo "$out" | grep -v '#')"; mn_mem="$mn_mem $(echo "$out" | field step_mem_mb)"
      out=$($PY bench/torch_step.py $t $REPS 128 1 $model)
      cl="$cl $(echo "$out" | grep -v '#')"; mc_mem="$mc_mem $(echo "$out" | field step_mem_mb)"
    done
    mo=$(echo $ours | tr ' ' '\n' | median); mn=$(echo $nchw | tr ' ' '\n' | median); mc=$(echo $cl | tr ' ' '\n' | median)
    best=$(echo "$mn $mc" | awk '{print ($1>$2)?$1:$2}')
    echo "threads $t: libsimclr $mo ($isa) | PyTorch NCHW $mn, channels_last $mc | ratio ours/best $(ratio $mo $best)"
    memo=$(echo $mo_mem | tr ' ' '\n' | median); memn=$(echo $mn_mem | tr ' ' '\n' | median); memc=$(echo $mc_mem | tr ' ' '\n' | median)
    echo "threads $t: step memory MB: libsimclr $memo | PyTorch NCHW $memn, channels_last $memc"
    if [ "$t" = 1 ]; then o1=$mo; b1=$best; fi
    if [ "$t" = 2 ] && [ -n "$o1" ]; then
      echo "1 -> 2 threads: libsimclr x$(ratio $mo $o1) | PyTorch (best layout) x$(ratio $best $b1) | sgemm x$(ratio $sgemm2 $sgemm1)"
    fi
  done
done
