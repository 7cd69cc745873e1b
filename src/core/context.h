/* The context: backend choice, threads, allocator hooks, log and progress
 * sinks. Everything else hangs off one. */
#ifndef SIMCLR_CORE_CONTEXT_H
#define SIMCLR_CORE_CONTEXT_H

#include "simclr.h"
#include "error.h"
#include "pool.h"

struct simclr__backend;

/* Batch-norm statistics hook (distributed and frozen BN, set by the trainer
 * for the span of a step; src/train/bn_hook.c). nn/batchnorm.c consults it in
 * a TRAIN forward right after the per-channel batch mean/variance of `*count`
 * values per channel are computed (it may replace them and *count; returning
 * 0 skips the running-statistics update), and in the backward right after the
 * per-channel sums of g and g*(x - mean) are computed and dgamma/dbeta have
 * taken them (it may replace the sums and *count used for dx). A hook that
 * fails records the failure in its own state; the caller checks it after. */
typedef struct simclr__bn_hook {
    int (*forward)(void *user, int64_t c, int64_t *count, float *mean, float *var,
                   const float *running_mean, const float *running_var);
    void (*backward)(void *user, int64_t c, int64_t *count, float *sum_g, float *sum_gx);
    void *user;
} simclr__bn_hook;

struct simclr_context {
    const struct simclr__backend *backend;
    int n_threads;
    simclr_allocator allocator;
    simclr_log_fn log_fn;
    void *log_user;
    simclr_log_level log_level;
    simclr_progress_fn progress_fn;
    void *progress_user;
    simclr_progress_cancel_fn cancel_fn; /* the stoppable progress callback (0.2) */
    void *cancel_user;
    simclr__pool *pool;
    const simclr__bn_hook *bn_hook; /* NULL: plain per-batch statistics */
    int64_t conv_algo; /* SIMCLR_CTX_CONV_ALGO, a simclr_conv_algo value */
    int conv_tile;     /* tests and benchmarks only: 2 or 4 forces that Winograd tile
                          wherever Winograd applies (over conv_algo); 0 = conv_algo decides */
    int conv_exact;    /* tests and benchmarks only: which exact path non-Winograd layers
                          take: 1 im2col + sgemm, 2 the sliding-window kernel wherever
                          it applies, 0 = the rule in backend/cpu/sliding.c */
};

/* A context on `backend` (opaque here: the backend layer, above core, picks
 * it and owns its registry; backend/context_create.c holds the public
 * simclr_context_create): validates the thread count and allocator, makes
 * the pool. fn names the public caller in messages. */
simclr_status simclr__context_new(const char *fn, const struct simclr__backend *backend, int n_threads,
                                  const simclr_allocator *allocator, simclr_context **out);
/* Frees the pool and the context (the backend has released it already). */
void simclr__context_free(simclr_context *ctx);

/* Allocation through the context's hooks: 64-byte aligned, NULL on failure
 * (the caller reports SIMCLR_E_NOMEM with its own message). size 0 is legal
 * and returns a unique pointer. */
void *simclr__malloc(simclr_context *ctx, size_t size);
void *simclr__calloc(simclr_context *ctx, size_t count, size_t size);
void simclr__free(simclr_context *ctx, void *ptr);

/* Reports SIMCLR_E_NOMEM with a message naming the caller and the size. */
simclr_status simclr__nomem(const char *fn, size_t size);

void simclr__log(simclr_context *ctx, simclr_log_level level, const char *fmt, ...)
    SIMCLR__PRINTF(3, 4);
/* Reports progress to both callbacks; returns nonzero when the stoppable
 * one asks to stop (the caller decides whether it can). */
int simclr__progress(simclr_context *ctx, const char *what, int64_t done, int64_t total);
/* Asks only the stoppable callback (a stopping point without a report for
 * the plain one); nonzero = stop. */
int simclr__cancel_poll(simclr_context *ctx, const char *what, int64_t done, int64_t total);
/* The SIMCLR_E_CANCELLED failure: message and a log line. */
simclr_status simclr__cancelled(simclr_context *ctx, const char *fn, const char *what, int64_t done, int64_t total);

#endif
