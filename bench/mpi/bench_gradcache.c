/* Gradient caching and data-parallel steps: peak memory and views/s.
 *
 *   mpirun -np P bench_gradcache PAIRS MICRO [WIDTH [STEPS [THREADS]]]
 *
 * PAIRS is the global batch (pairs of 32x32x3 views; each rank takes
 * PAIRS/P), MICRO the micro-batch in pairs (0 = no gradient caching),
 * ResNet-18 of WIDTH (64) with a v1 head, LARS, synchronized BN when P > 1.
 * One untimed step, then STEPS (2) timed ones. Prints one line: global
 * views/s, the largest peak resident memory of any rank (getrusage, so run
 * one configuration per process), and the payload bytes per step and rank.
 * Not a test: bench/bench_gradcache.sh runs it; run on an idle machine. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "simclr.h"
#include "simclr_mpi.h"

#define CHECK(expr)                                                                                          \
    do {                                                                                                     \
        simclr_status st_ = (expr);                                                                          \
        if (st_ != SIMCLR_OK) {                                                                              \
            fprintf(stderr, "%s -> %s: %s\n", #expr, simclr_status_string(st_), simclr_last_error());        \
            MPI_Abort(MPI_COMM_WORLD, 2);                                                                    \
        }                                                                                                    \
    } while (0)

static double now_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

int main(int argc, char **argv)
{
    MPI_Init(&argc, &argv);
    int rank, size;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    if (argc < 3) {
        if (rank == 0) fprintf(stderr, "usage: bench_gradcache PAIRS MICRO [WIDTH [STEPS [THREADS]]]\n");
        MPI_Finalize();
        return 2;
    }
    const int64_t pairs = atoll(argv[1]), micro = atoll(argv[2]);
    const int width = argc > 3 ? atoi(argv[3]) : 64, steps = argc > 4 ? atoi(argv[4]) : 2;
    const int threads = argc > 5 ? atoi(argv[5]) : 0;
    if (pairs % size || (micro && (pairs / size) % micro)) {
        if (rank == 0) fprintf(stderr, "bench_gradcache: %d ranks and micro-batch %lld must divide %lld pairs\n", size,
                               (long long)micro, (long long)pairs);
        MPI_Finalize();
        return 2;
    }
    const int64_t n = pairs / size;

    simclr_context *ctx;
    simclr_module *enc, *head;
    simclr_augment *aug;
    simclr_loss *loss;
    simclr_optimizer *opt;
    simclr_trainer *tr;
    CHECK(simclr_context_create("cpu", threads, NULL, &ctx));
    CHECK(simclr_resnet_create_v2(ctx, 18, width, 3, SIMCLR_STEM_CIFAR, 1, &enc));
    int d = (int)simclr_module_output_dim(enc);
    CHECK(simclr_mlp_head_create_v2(ctx, d, d, 128, 2, 0, 2, &head));
    CHECK(simclr_augment_create_v2(ctx, SIMCLR_AUG_PRESET_CIFAR, 32, 32, &aug));
    CHECK(simclr_ntxent_create(ctx, 0.2, 2, &loss));
    simclr_module *mods[2] = {enc, head};
    CHECK(simclr_optimizer_create(ctx, SIMCLR_OPT_LARS, mods, 2, &opt));
    CHECK(simclr_optimizer_set(opt, SIMCLR_OPT_LR, simclr_lr_sqrt_scaling(0.075, pairs)));
    CHECK(simclr_trainer_create(ctx, enc, head, aug, loss, opt, &tr));
    CHECK(simclr_trainer_set(tr, SIMCLR_TRAINER_MICRO_BATCH, (double)micro));
    simclr_mpi *mpi = NULL;
    if (size > 1) {
        if (simclr_mpi_create(MPI_COMM_WORLD, 3600.0, &mpi) != SIMCLR_OK) {
            fprintf(stderr, "%s\n", simclr_last_error());
            MPI_Abort(MPI_COMM_WORLD, 2);
        }
        CHECK(simclr_trainer_set(tr, SIMCLR_TRAINER_BN_MODE, SIMCLR_BN_SYNC));
        CHECK(simclr_trainer_set_comm(tr, simclr_mpi_comm(mpi)));
    }
    int64_t shape[4] = {n, 32, 32, 3};
    simclr_tensor *img;
    CHECK(simclr_tensor_create(ctx, SIMCLR_U8, 4, shape, &img));
    uint8_t *px = simclr_tensor_data(img);
    uint64_t s = 1234567 + (uint64_t)rank;
    for (int64_t i = 0; i < n * 32 * 32 * 3; i++) {
        s ^= s << 13, s ^= s >> 7, s ^= s << 17;
        px[i] = (uint8_t)(s >> 56);
    }
    CHECK(simclr_trainer_step(tr, img, 0, NULL)); /* sizes every buffer */
    MPI_Barrier(MPI_COMM_WORLD);
    double t0 = now_seconds();
    float l = 0;
    for (int k = 1; k <= steps; k++) CHECK(simclr_trainer_step(tr, img, (uint64_t)k, &l));
    MPI_Barrier(MPI_COMM_WORLD);
    double dt = (now_seconds() - t0) / steps, bytes = 0;
    CHECK(simclr_trainer_stat(tr, SIMCLR_STAT_COMM_BYTES, &bytes));
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    long peak_kb = ru.ru_maxrss, max_kb = 0;
    MPI_Reduce(&peak_kb, &max_kb, 1, MPI_LONG, MPI_MAX, 0, MPI_COMM_WORLD);
    if (rank == 0)
        printf("gradcache B=%lld pairs micro=%lld ranks=%d width=%d threads/rank=%d: %.1f views/s "
               "(%.2f s/step), peak RSS %.2f GB (largest rank), %.1f MB/step/rank to collectives, loss %.4f\n",
               (long long)pairs, (long long)micro, size, width, simclr_context_threads(ctx), 2.0 * pairs / dt, dt,
               max_kb / 1048576.0, bytes / 1048576.0, (double)l);
    simclr_tensor_destroy(img);
    simclr_trainer_destroy(tr);
    simclr_mpi_destroy(mpi);
    simclr_optimizer_destroy(opt);
    simclr_loss_destroy(loss);
    simclr_augment_destroy(aug);
    simclr_module_destroy(head);
    simclr_module_destroy(enc);
    simclr_context_destroy(ctx);
    MPI_Finalize();
    return 0;
}
