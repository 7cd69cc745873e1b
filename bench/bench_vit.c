/* ViT-Tiny/patch 4 on 32x32x3 (hidden 192, depth 12, 3 heads, MLP 768, 65
 * tokens), the model part of a SimCLR step and the EVAL forward, through
 * the public module API on fixed inputs (no augmentation, so the PyTorch
 * side bench/torch_vit.py does exactly the same work):
 *   step: encoder TRAIN forward of 2*PAIRS views, 192-192-128 head, NT-Xent
 *         (T 0.5), backward through both, AdamW step (views/s);
 *   eval: encoder EVAL forward of BATCH images (images/s).
 * Prints one line per repeat so the driver script can take the median.
 *   bench_vit step|eval THREADS REPEATS BATCH(pairs for step) */
#include "bench_util.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "simclr.h"

static void check(simclr_status st, const char *what)
{
    if (st != SIMCLR_OK) {
        fprintf(stderr, "bench_vit: %s: %s\n", what, simclr_last_error());
        exit(1);
    }
}

static simclr_tensor *tensor(simclr_context *ctx, int ndim, const int64_t *shape)
{
    simclr_tensor *t;
    check(simclr_tensor_create(ctx, SIMCLR_F32, ndim, shape, &t), "tensor");
    float *p = simclr_tensor_data(t);
    for (int64_t i = 0; i < simclr_tensor_numel(t); i++) p[i] = (float)((i * 2654435761u) >> 24) / 128.0f - 1.0f;
    return t;
}

int main(int argc, char **argv)
{
    if (argc < 5 || (strcmp(argv[1], "step") != 0 && strcmp(argv[1], "eval") != 0)) {
        fprintf(stderr, "usage: bench_vit step|eval THREADS REPEATS BATCH\n");
        return 2;
    }
    int step = strcmp(argv[1], "step") == 0, threads = atoi(argv[2]), repeats = atoi(argv[3]);
    int64_t batch = atoi(argv[4]), n = step ? 2 * batch : batch;
    simclr_context *ctx;
    check(simclr_context_create("cpu", threads, NULL, &ctx), "context");
    simclr_module *enc, *head;
    check(simclr_vit_create_preset(ctx, SIMCLR_VIT_TINY_CIFAR, 3, 1, &enc), "encoder");
    check(simclr_mlp_head_create_v2(ctx, 192, 192, 128, 2, 0, 2, &head), "head");
    int64_t xs[4] = {n, 3, 32, 32}, fs[2] = {n, 192}, zs[2] = {n, 128};
    simclr_tensor *x = tensor(ctx, 4, xs), *f = tensor(ctx, 2, fs), *df = tensor(ctx, 2, fs);
    simclr_tensor *z = tensor(ctx, 2, zs);
    simclr_loss *loss;
    check(simclr_ntxent_create(ctx, 0.5, 2, &loss), "loss");
    simclr_module *mods[2] = {enc, head};
    simclr_optimizer *opt;
    check(simclr_optimizer_create(ctx, SIMCLR_OPT_ADAMW, mods, 2, &opt), "optimizer");
    check(simclr_optimizer_set(opt, SIMCLR_OPT_LR, 1e-4), "lr");
    check(simclr_optimizer_set(opt, SIMCLR_OPT_WEIGHT_DECAY, 0.05), "weight decay");
    printf("# %s, %d threads, %s %lld, isa %s\n", simclr_module_arch(enc), threads, step ? "pairs" : "batch",
           (long long)batch, simclr_context_isa(ctx));
    for (int r = -1; r < repeats; r++) { /* r = -1: warm-up (plans the arenas) */
        double t0 = bench_now();
        if (step) {
            check(simclr_module_zero_grad(enc), "zero_grad");
            check(simclr_module_zero_grad(head), "zero_grad");
            check(simclr_module_forward(enc, x, SIMCLR_TRAIN, f), "encoder forward");
            check(simclr_module_forward(head, f, SIMCLR_TRAIN, z), "head forward");
            float value;
            check(simclr_loss_forward(loss, z, &value, NULL), "loss");
            check(simclr_loss_backward(loss, z), "loss backward");
            check(simclr_module_backward(head, z, df), "head backward");
            check(simclr_module_backward(enc, df, NULL), "encoder backward");
            check(simclr_optimizer_step(opt), "AdamW");
        } else {
            check(simclr_module_forward(enc, x, SIMCLR_EVAL, f), "forward");
        }
        if (r >= 0) printf("%.2f\n", (double)n / (bench_now() - t0));
        fflush(stdout);
    }
    simclr_tensor_destroy(x), simclr_tensor_destroy(f), simclr_tensor_destroy(df), simclr_tensor_destroy(z);
    simclr_optimizer_destroy(opt);
    simclr_loss_destroy(loss);
    simclr_module_destroy(head);
    simclr_module_destroy(enc);
    simclr_context_destroy(ctx);
    return 0;
}
