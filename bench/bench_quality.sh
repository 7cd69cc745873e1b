#!/bin/sh
# Representation quality, ours vs PyTorch, on the identical recipe: pre-train
# on Fashion-MNIST, then the same kNN and linear probe on the test set. Slow
# (minutes to hours): it runs only with QUALITY=1, e.g.
#   QUALITY=1 make bench     (the README recipe: 12 epochs, about 2 h in all)
#   QUALITY=1 EPOCHS=2 make bench
[ "${QUALITY:-0}" = 1 ] || { echo "quality benchmark skipped (set QUALITY=1; see README)"; exit 0; }
B=${SIMCLR_BUILD:-build/main}; PY=${PYTHON:-/usr/bin/python3}
ARGS="--epochs ${EPOCHS:-12} --train-images ${TRAIN_IMAGES:-60000} --width ${WIDTH:-16} --batch ${BATCH:-128} \
--temperature ${TEMPERATURE:-0.2} --crop-min ${CROP_MIN:-0.2} --threads ${THREADS:-2} --eval-train ${EVAL_TRAIN:-60000} --probe-epochs ${PROBE_EPOCHS:-300} \
--probe-wd 1e-4 --lr $(awk -v b="${BATCH:-128}" 'BEGIN { print 0.075 * sqrt(b) }')"
echo "recipe: $ARGS (LARS 0.075*sqrt(B), 10% warmup + cosine)"
echo "--- libsimclr"; /usr/bin/time -f "wall %e s" "$B/examples/train_fashion_mnist" $ARGS --out build/quality-ours 2>&1 | tr '\r' '\n' | grep -v '^ *\(embed\|probe\|extract\)' | grep -v '^epoch' | tail -9
echo "--- PyTorch"; /usr/bin/time -f "wall %e s" $PY bench/torch_fashion_mnist.py $ARGS 2>&1 | tr '\r' '\n' | grep -v '^step' | tail -9
