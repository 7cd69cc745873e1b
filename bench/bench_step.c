/* A full SimCLR step (augment + forward + loss + backward + LARS) through the
 * public trainer: ResNet-18, CIFAR stem, width 64, 32x32x3, 128 pairs
 * (256 views), images (views) per second. Prints one line per repeat so the
 * driver script can take the median. SIZE 28 CHANNELS 1 WIDTH 16 is the
 * Fashion-MNIST demo's model (GRAYSCALE augmentation).
 *   bench_step THREADS REPEATS [PAIRS] [WIDTH] [SIZE] [CHANNELS] */
#include "bench_util.h"
#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "simclr.h"

#ifdef SIMCLR_OPENBLAS
char *openblas_get_corename(void);
#endif

static void check(simclr_status st, const char *what)
{
    if (st != SIMCLR_OK) {
        fprintf(stderr, "bench_step: %s: %s\n", what, simclr_last_error());
        exit(1);
    }
}

/* Resident size now, in MB (from /proc; 0 where there is none). */
static double rss_mb(void)
{
    long pages = 0, resident = 0;
    FILE *f = fopen("/proc/self/statm", "r");
    if (f) {
        if (fscanf(f, "%ld %ld", &pages, &resident) != 2) resident = 0;
        fclose(f);
    }
    return (double)resident * (double)sysconf(_SC_PAGESIZE) / 1048576.0;
}

int main(int argc, char **argv)
{
    /* The step's memory: peak resident size minus what the process held
     * before the model existed (as torch_step.py measures it). */
    double rss_base = rss_mb();
    int threads = argc > 1 ? atoi(argv[1]) : 2, repeats = argc > 2 ? atoi(argv[2]) : 3;
    int pairs = argc > 3 ? atoi(argv[3]) : 128, width = argc > 4 ? atoi(argv[4]) : 64;
    int size = argc > 5 ? atoi(argv[5]) : 32, channels = argc > 6 ? atoi(argv[6]) : 3;
    simclr_context *ctx;
    check(simclr_context_create("cpu", threads, NULL, &ctx), "context");
    simclr_module *enc, *head;
    check(simclr_resnet_create_v2(ctx, 18, width, channels, SIMCLR_STEM_CIFAR, 1, &enc), "encoder");
    int d = (int)simclr_module_output_dim(enc);
    check(simclr_mlp_head_create_v2(ctx, d, d, 128, 2, 0, 2, &head), "head");
    simclr_augment *aug;
    check(simclr_augment_create_v2(ctx, channels == 1 ? SIMCLR_AUG_PRESET_GRAYSCALE : SIMCLR_AUG_PRESET_CIFAR, size,
                                size, &aug), "augment");
    simclr_loss *loss;
    check(simclr_ntxent_create(ctx, 0.5, 2, &loss), "loss");
    simclr_module *mods[2] = {enc, head};
    simclr_optimizer *opt;
    check(simclr_optimizer_create(ctx, SIMCLR_OPT_LARS, mods, 2, &opt), "optimizer");
    check(simclr_optimizer_set(opt, SIMCLR_OPT_LR, 0.3), "lr");
    simclr_trainer *tr;
    check(simclr_trainer_create(ctx, enc, head, aug, loss, opt, &tr), "trainer");
    int64_t shape[4] = {pairs, size, size, channels};
    simclr_tensor *img;
    check(simclr_tensor_create(ctx, SIMCLR_U8, 4, shape, &img), "images");
    unsigned char *px = simclr_tensor_data(img);
    for (int64_t i = 0; i < simclr_tensor_numel(img); i++) px[i] = (unsigned char)((i * 2654435761u) >> 24);
    check(simclr_trainer_step(tr, img, 0, NULL), "warm-up step");
#ifdef SIMCLR_OPENBLAS
    printf("# openblas core: %s\n", openblas_get_corename());
#endif
    for (int r = 0; r < repeats; r++) {
        double t0 = bench_now();
        check(simclr_trainer_step(tr, img, (uint64_t)r + 1, NULL), "step");
        printf("%.2f\n", 2.0 * pairs / (bench_now() - t0));
        fflush(stdout);
    }
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    printf("# step_mem_mb=%.0f isa=%s\n", (double)ru.ru_maxrss / 1024.0 - rss_base, simclr_context_isa(ctx));
    simclr_tensor_destroy(img);
    simclr_trainer_destroy(tr);
    simclr_optimizer_destroy(opt);
    simclr_loss_destroy(loss);
    simclr_augment_destroy(aug);
    simclr_module_destroy(head);
    simclr_module_destroy(enc);
    simclr_context_destroy(ctx);
    return 0;
}
