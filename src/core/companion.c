/* What companion libraries (image decoding, the CLI) need from the core
 * through the public ABI: the calling thread's error message, and the
 * context's thread pool for their own parallel loops. */
#include <stdio.h>

#include "context.h"

simclr_status simclr_error_set(simclr_status status, const char *message)
{
    if (status == SIMCLR_OK) return SIMCLR_OK;
    return simclr__fail(status, "%s", message ? message : "");
}

typedef struct task {
    simclr_task_fn fn;
    void *user;
} task;

static void run(void *arg, int64_t begin, int64_t end, int worker)
{
    const task *t = arg;
    t->fn(t->user, begin, end, worker);
}

simclr_status simclr_context_parallel_for(simclr_context *ctx, int64_t n, int64_t grain, simclr_task_fn fn,
                                          void *user)
{
    static const char fn_name[] = "simclr_context_parallel_for";
    SIMCLR__CHECK_ARG(ctx, fn_name, "ctx is NULL");
    SIMCLR__CHECK_ARG(fn, fn_name, "fn is NULL");
    if (n < 0 || grain < 1)
        return simclr__fail(SIMCLR_E_INVALID, "%s: n %lld must be >= 0 and grain %lld >= 1", fn_name, (long long)n,
                            (long long)grain);
    if (n == 0) return SIMCLR_OK;
    task t = {fn, user};
    simclr__pool_for(ctx->pool, n, grain, run, &t);
    return SIMCLR_OK;
}
