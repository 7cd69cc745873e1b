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
    simclr__pool *pool;
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
void simclr__progress(simclr_context *ctx, const char *what, int64_t done, int64_t total);

#endif
