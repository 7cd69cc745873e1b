/* The context's thread pool: persistent workers that split an index range
 * into static, contiguous chunks. Static chunks make results independent of
 * scheduling; the calling thread runs chunk 0 itself. */
#ifndef SIMCLR_CORE_POOL_H
#define SIMCLR_CORE_POOL_H

#include "simclr.h"

typedef struct simclr__pool simclr__pool;

/* Work on [begin, end); `worker` is the chunk number, 0 .. pool size - 1,
 * usable to index per-thread scratch. */
typedef void (*simclr__task_fn)(void *arg, int64_t begin, int64_t end, int worker);

simclr_status simclr__pool_create(simclr_context *ctx, int n_threads, simclr__pool **out);
void simclr__pool_destroy(simclr__pool *pool);
int simclr__pool_size(const simclr__pool *pool);

/* Runs fn over [0, n) in at most pool-size chunks of at least `grain` items
 * and returns when all are done. A call from inside a task runs inline (no
 * nested parallelism, no deadlock). */
void simclr__pool_for(simclr__pool *pool, int64_t n, int64_t grain, simclr__task_fn fn, void *arg);

#endif
