/* The context: backend choice, threads, allocator hooks, log and progress
 * sinks. Everything else hangs off one. */
#ifndef SIMCLR_CORE_CONTEXT_H
#define SIMCLR_CORE_CONTEXT_H

#include "simclr.h"
#include "error.h"
#include "pool.h"

struct simclr__backend;

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
};

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
