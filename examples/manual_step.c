/*
 * One SimCLR step written out by hand from the public pieces: what
 * simclr_trainer_step does, for a host that wants to change part of it
 * (another loss, a momentum encoder, gradient accumulation). The program
 * runs a few steps on random images and prints the loss of each; it checks
 * every call and exits 1 with the library's message on the first error.
 */
#include <stdio.h>
#include <stdlib.h>

#include "simclr.h"

#define N 16   /* images per step: 2N views */
#define SIDE 32

static void check(simclr_status st, const char *what)
{
    if (st == SIMCLR_OK) return;
    fprintf(stderr, "manual_step: %s: %s (%s)\n", what, simclr_last_error(), simclr_status_string(st));
    exit(1);
}

int main(void)
{
    simclr_context *ctx;
    check(simclr_context_create("cpu", 0, NULL, &ctx), "context");
    simclr_module *enc, *head;
    check(simclr_resnet_create_v2(ctx, 18, 8, 3, SIMCLR_STEM_CIFAR, 1, &enc), "encoder");
    int64_t d = simclr_module_output_dim(enc);
    check(simclr_mlp_head_create_v2(ctx, (int)d, (int)d, 32, 2, 0, 2, &head), "head");
    simclr_augment *aug;
    check(simclr_augment_create_v2(ctx, SIMCLR_AUG_PRESET_CIFAR, SIDE, SIDE, &aug), "augment");
    simclr_loss *loss;
    check(simclr_ntxent_create(ctx, 0.5, 2, &loss), "loss");
    simclr_module *mods[2] = {enc, head};
    simclr_optimizer *opt;
    check(simclr_optimizer_create(ctx, SIMCLR_OPT_LARS, mods, 2, &opt), "optimizer");
    check(simclr_optimizer_set(opt, SIMCLR_OPT_LR, simclr_lr_sqrt_scaling(0.075, N)), "lr");

    /* The images (U8 NHWC, as a decoder gives them) and the step's buffers.
     * The two views live in one [2N, C, H, W] tensor so the encoder sees all
     * 2N views in one batch (shared BN statistics, as in SimCLR); view0 and
     * view1 borrow its two halves. */
    int64_t ishape[4] = {N, SIDE, SIDE, 3}, vshape[4] = {2 * N, 3, SIDE, SIDE}, hshape[4] = {N, 3, SIDE, SIDE};
    int64_t fshape[2] = {2 * N, d}, zshape[2] = {2 * N, 32};
    simclr_tensor *images, *views, *view0, *view1, *h, *dh, *z, *dz;
    check(simclr_tensor_create(ctx, SIMCLR_U8, 4, ishape, &images), "images");
    unsigned char *px = simclr_tensor_data(images);
    for (int64_t i = 0; i < simclr_tensor_numel(images); i++) px[i] = (unsigned char)(rand() & 0xff);
    check(simclr_tensor_create(ctx, SIMCLR_F32, 4, vshape, &views), "views");
    float *vd = simclr_tensor_data(views);
    check(simclr_tensor_wrap(ctx, SIMCLR_F32, 4, hshape, vd, &view0), "view 0");
    check(simclr_tensor_wrap(ctx, SIMCLR_F32, 4, hshape, vd + N * 3 * SIDE * SIDE, &view1), "view 1");
    check(simclr_tensor_create(ctx, SIMCLR_F32, 2, fshape, &h), "features");
    check(simclr_tensor_create(ctx, SIMCLR_F32, 2, fshape, &dh), "feature gradient");
    check(simclr_tensor_create(ctx, SIMCLR_F32, 2, zshape, &z), "projections");
    check(simclr_tensor_create(ctx, SIMCLR_F32, 2, zshape, &dz), "projection gradient");

    for (int step = 0; step < 3; step++) {
        float value, acc;
        check(simclr_augment_pair(aug, images, (uint64_t)step, view0, view1), "augment");
        check(simclr_module_forward(enc, views, SIMCLR_TRAIN, h), "encoder forward");
        check(simclr_module_forward(head, h, SIMCLR_TRAIN, z), "head forward");
        check(simclr_loss_forward(loss, z, &value, &acc), "loss");
        check(simclr_module_zero_grad(enc), "zero grad");
        check(simclr_module_zero_grad(head), "zero grad");
        check(simclr_loss_backward(loss, dz), "loss backward");
        check(simclr_module_backward(head, dz, dh), "head backward");
        check(simclr_module_backward(enc, dh, NULL), "encoder backward"); /* no input gradient needed */
        check(simclr_optimizer_step(opt), "optimizer");
        printf("step %d: loss %.4f, contrastive accuracy %.3f\n", step, value, acc);
    }
    printf("manual step: ok\n");

    simclr_tensor *all[] = {images, views, view0, view1, h, dh, z, dz};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) simclr_tensor_destroy(all[i]);
    simclr_optimizer_destroy(opt);
    simclr_loss_destroy(loss);
    simclr_augment_destroy(aug);
    simclr_module_destroy(head);
    simclr_module_destroy(enc);
    simclr_context_destroy(ctx);
    return 0;
}
