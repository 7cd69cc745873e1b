/* The public context constructor lives in the backend layer, which owns the
 * registry and the instruction-set choice: core/ only allocates a context
 * around the backend it is handed (core/context.c), so dependencies point
 * down. */
#include <stdlib.h>

#include "backend.h"

simclr_status simclr_context_create(const char *backend, int n_threads, const simclr_allocator *allocator,
                                    simclr_context **out)
{
    static const char fn[] = "simclr_context_create";
    SIMCLR__CHECK_ARG(out, fn, "out is NULL");
    int isa = simclr__isa_machine();
    const char *forced = getenv("SIMCLR_ISA");
    if (forced && *forced) {
        int want = simclr__isa_parse(forced);
        if (want < 0)
            return simclr__fail(SIMCLR_E_INVALID,
                                "%s: environment SIMCLR_ISA='%s' names no instruction set (avx512, avx2, portable)",
                                fn, forced);
        if (want < isa) isa = want;
    }
    const simclr__backend *be = simclr__backend_find(backend ? backend : "cpu", isa);
    if (!be) return simclr__fail(SIMCLR_E_UNSUPPORTED, "%s: unknown backend '%s' (have: cpu, ref)", fn, backend);
    simclr_context *ctx;
    SIMCLR__TRY(simclr__context_new(fn, be, n_threads, allocator, &ctx));
    /* The context's own copy of the table, optional slots filled: per-
     * context backend state can live beside it, and callers never test a
     * slot for NULL. */
    simclr__backend *table = simclr__malloc(ctx, sizeof *table);
    if (!table) {
        simclr__context_free(ctx);
        return simclr__nomem(fn, sizeof *table);
    }
    *table = *be;
    simclr__backend_fill_fallbacks(table);
    ctx->backend = table;
    table->context_acquire(ctx);
    *out = ctx;
    return SIMCLR_OK;
}

void simclr_context_destroy(simclr_context *ctx)
{
    if (!ctx) return;
    ctx->backend->context_release(ctx);
    simclr__free(ctx, (void *)ctx->backend);
    simclr__context_free(ctx);
}

const char *simclr_context_backend(const simclr_context *ctx) { return ctx ? ctx->backend->name : NULL; }

const char *simclr_context_isa(const simclr_context *ctx) { return ctx ? ctx->backend->isa : NULL; }
