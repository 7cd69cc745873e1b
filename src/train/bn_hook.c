/* The batch-norm hook a trainer step installs on its context
 * (core/context.h): synchronized statistics over ranks, or frozen ones.
 *
 * SYNC forward: every rank holds the mean and biased variance of the same
 * number m of values per channel (the step checks that all ranks have the
 * same shard and micro-batch sizes), so the global statistics over P*m values
 * are, by the parallel-variance identity,
 *   mean = (1/P) sum_r mean_r,  var = (1/P) sum_r (var_r + (mean_r - mean)^2),
 * computed in double in rank order from one all-gather of [mean_r, var_r]
 * (the same bits on every rank). This avoids E[x^2] - mean^2 and its
 * cancellation. SYNC backward: the sums of g and g*(x - mean) are summed over
 * ranks (dgamma/dbeta already took the local sums: the trainer's gradient
 * all-reduce adds those up), and dx divides by P*m.
 *
 * FROZEN: mean and variance are the running statistics, which are not
 * updated; the backward drops the batch-statistics terms of dx (they are
 * constants now), leaving dx = gamma * invstd * g.
 *
 * A failed collective leaves the local statistics in place; the comm state
 * records it and the step fails after the forward or backward returns. */
#include <string.h>

#include "distributed.h"

static int hook_forward(void *user, int64_t c, int64_t *count, float *mean, float *var, const float *running_mean,
                        const float *running_var)
{
    struct simclr__trainer_ext *e = user;
    if (e->bn_mode == SIMCLR_BN_FROZEN) {
        memcpy(mean, running_mean, (size_t)c * sizeof *mean);
        memcpy(var, running_var, (size_t)c * sizeof *var);
        return 0;
    }
    simclr__comm_state *s = &e->comm;
    if (e->bn_mode != SIMCLR_BN_SYNC || s->size == 1 || s->failed) return 1;
    if (c > e->b.bn_cap) { /* cannot happen: bn_cap is the largest BN of every module */
        s->failed = 1;
        s->st = SIMCLR_E_INTERNAL;
        strcpy(s->message, "simclr_trainer_step: a batch norm wider than the trainer planned for");
        return 1;
    }
    memcpy(e->b.bn_send, mean, (size_t)c * sizeof *mean);
    memcpy(e->b.bn_send + c, var, (size_t)c * sizeof *var);
    if (simclr__comm_all_gather(s, "simclr_trainer_step (synchronized batch norm)", e->b.bn_send, 2 * c, e->b.bn_recv) !=
        SIMCLR_OK)
        return 1;
    const int p = s->size;
    for (int64_t i = 0; i < c; i++) {
        double mu = 0, v = 0;
        for (int r = 0; r < p; r++) mu += e->b.bn_recv[(int64_t)r * 2 * c + i];
        mu /= p;
        for (int r = 0; r < p; r++) {
            double d = e->b.bn_recv[(int64_t)r * 2 * c + i] - mu;
            v += e->b.bn_recv[(int64_t)r * 2 * c + c + i] + d * d;
        }
        mean[i] = (float)mu;
        var[i] = (float)(v / p);
    }
    *count *= p;
    return 1;
}

static void hook_backward(void *user, int64_t c, int64_t *count, float *sum_g, float *sum_gx)
{
    struct simclr__trainer_ext *e = user;
    if (e->bn_mode == SIMCLR_BN_FROZEN) {
        memset(sum_g, 0, (size_t)c * sizeof *sum_g);
        memset(sum_gx, 0, (size_t)c * sizeof *sum_gx);
        return;
    }
    simclr__comm_state *s = &e->comm;
    if (e->bn_mode != SIMCLR_BN_SYNC || s->size == 1 || s->failed || c > e->b.bn_cap) return;
    memcpy(e->b.bn_send, sum_g, (size_t)c * sizeof *sum_g);
    memcpy(e->b.bn_send + c, sum_gx, (size_t)c * sizeof *sum_gx);
    if (simclr__comm_all_reduce(s, "simclr_trainer_step (synchronized batch norm)", e->b.bn_send, 2 * c) != SIMCLR_OK)
        return;
    memcpy(sum_g, e->b.bn_send, (size_t)c * sizeof *sum_g);
    memcpy(sum_gx, e->b.bn_send + c, (size_t)c * sizeof *sum_gx);
    *count *= s->size;
}

void simclr__bn_hook_init(struct simclr__trainer_ext *e)
{
    e->hook = (simclr__bn_hook){hook_forward, hook_backward, e};
}
