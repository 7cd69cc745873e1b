#include "context.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define SIMCLR__ALIGN 64

static void *default_alloc(void *user, size_t size, size_t alignment)
{
    (void)user;
    void *p = NULL;
    if (posix_memalign(&p, alignment, size ? size : 1) != 0) return NULL;
    return p;
}

static void default_free(void *user, void *ptr)
{
    (void)user;
    free(ptr);
}

void *simclr__malloc(simclr_context *ctx, size_t size)
{
    if (size > (size_t)PTRDIFF_MAX) return NULL;
    return ctx->allocator.alloc(ctx->allocator.user, size ? size : 1, SIMCLR__ALIGN);
}

void *simclr__calloc(simclr_context *ctx, size_t count, size_t size)
{
    if (size != 0 && count > (size_t)PTRDIFF_MAX / size) return NULL;
    void *p = simclr__malloc(ctx, count * size);
    if (p) memset(p, 0, count * size);
    return p;
}

void simclr__free(simclr_context *ctx, void *ptr)
{
    if (ptr) ctx->allocator.free(ctx->allocator.user, ptr);
}

simclr_status simclr__nomem(const char *fn, size_t size)
{
    return simclr__fail(SIMCLR_E_NOMEM, "%s: out of memory allocating %zu bytes", fn, size);
}

void simclr__log(simclr_context *ctx, simclr_log_level level, const char *fmt, ...)
{
    if (!ctx || !ctx->log_fn || level > ctx->log_level) return;
    char buf[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    ctx->log_fn(ctx->log_user, level, buf);
}

int simclr__progress(simclr_context *ctx, const char *what, int64_t done, int64_t total)
{
    if (!ctx) return 0;
    if (ctx->progress_fn) ctx->progress_fn(ctx->progress_user, what, done, total);
    return ctx->cancel_fn ? ctx->cancel_fn(ctx->cancel_user, what, done, total) != 0 : 0;
}

int simclr__cancel_poll(simclr_context *ctx, const char *what, int64_t done, int64_t total)
{
    return ctx && ctx->cancel_fn ? ctx->cancel_fn(ctx->cancel_user, what, done, total) != 0 : 0;
}

simclr_status simclr__cancelled(simclr_context *ctx, const char *fn, const char *what, int64_t done, int64_t total)
{
    simclr__log(ctx, SIMCLR_LOG_INFO, "%s: cancelled by the progress callback at %s %lld of %lld", fn, what,
                (long long)done, (long long)total);
    return simclr__fail(SIMCLR_E_CANCELLED, "%s: cancelled by the progress callback at %s %lld of %lld", fn, what,
                        (long long)done, (long long)total);
}

simclr_status simclr__context_new(const char *fn, const struct simclr__backend *backend, int n_threads,
                                  const simclr_allocator *allocator, simclr_context **out)
{
    if (n_threads < 0 || n_threads > 256)
        return simclr__fail(SIMCLR_E_INVALID, "%s: n_threads %d out of range 0..256", fn, n_threads);
    if (allocator && (!allocator->alloc || !allocator->free))
        return simclr__fail(SIMCLR_E_INVALID, "%s: allocator has a NULL alloc or free", fn);
    if (n_threads == 0) {
        long n = sysconf(_SC_NPROCESSORS_ONLN);
        n_threads = n < 1 ? 1 : n > 256 ? 256 : (int)n;
    }
    simclr_allocator a = allocator ? *allocator : (simclr_allocator){default_alloc, default_free, NULL};
    simclr_context *ctx = a.alloc(a.user, sizeof *ctx, SIMCLR__ALIGN);
    if (!ctx) return simclr__nomem(fn, sizeof *ctx);
    memset(ctx, 0, sizeof *ctx);
    ctx->backend = backend;
    ctx->n_threads = n_threads;
    ctx->allocator = a;
    simclr_status st = simclr__pool_create(ctx, n_threads, &ctx->pool);
    if (st != SIMCLR_OK) {
        a.free(a.user, ctx);
        return st;
    }
    *out = ctx;
    return SIMCLR_OK;
}

void simclr__context_free(simclr_context *ctx)
{
    simclr__pool_destroy(ctx->pool);
    simclr_allocator a = ctx->allocator;
    a.free(a.user, ctx);
}

int simclr_context_threads(const simclr_context *ctx) { return ctx ? ctx->n_threads : 0; }


simclr_status simclr_context_set_log(simclr_context *ctx, simclr_log_fn fn, void *user,
                                     simclr_log_level max_level)
{
    SIMCLR__CHECK_ARG(ctx, "simclr_context_set_log", "ctx is NULL");
    if ((int)max_level < SIMCLR_LOG_ERROR || (int)max_level > SIMCLR_LOG_DEBUG)
        return simclr__fail(SIMCLR_E_INVALID, "simclr_context_set_log: level %d out of range 0..3", (int)max_level);
    ctx->log_fn = fn;
    ctx->log_user = user;
    ctx->log_level = max_level;
    return SIMCLR_OK;
}

simclr_status simclr_context_set_progress_cancel(simclr_context *ctx, simclr_progress_cancel_fn fn, void *user)
{
    SIMCLR__CHECK_ARG(ctx, "simclr_context_set_progress_cancel", "ctx is NULL");
    ctx->cancel_fn = fn;
    ctx->cancel_user = user;
    return SIMCLR_OK;
}

simclr_status simclr_context_set_progress(simclr_context *ctx, simclr_progress_fn fn, void *user)
{
    SIMCLR__CHECK_ARG(ctx, "simclr_context_set_progress", "ctx is NULL");
    ctx->progress_fn = fn;
    ctx->progress_user = user;
    return SIMCLR_OK;
}

/* ---- Enum-keyed settings (simclr_context_set/get) ---- */

simclr_status simclr_context_set(simclr_context *ctx, simclr_context_param key, double value)
{
    static const char fn[] = "simclr_context_set";
    SIMCLR__CHECK_ARG(ctx, fn, "ctx is NULL");
    switch (key) {
    case SIMCLR_CTX_CONV_ALGO:
        /* a whole value of the enum; NaN and fractions compare unequal to all three */
        if (!(value == SIMCLR_CONV_AUTO || value == SIMCLR_CONV_DIRECT || value == SIMCLR_CONV_WINOGRAD))
            return simclr__fail(SIMCLR_E_INVALID,
                                "%s: SIMCLR_CTX_CONV_ALGO value %g is not one of 0 (AUTO), 1 (DIRECT), 2 (WINOGRAD)",
                                fn, value);
        ctx->conv_algo = (int64_t)value;
        return SIMCLR_OK;
    }
    return simclr__fail(SIMCLR_E_INVALID, "%s: unknown key %d (have: SIMCLR_CTX_CONV_ALGO = 100)", fn, (int)key);
}

simclr_status simclr_context_get(const simclr_context *ctx, simclr_context_param key, double *value)
{
    static const char fn[] = "simclr_context_get";
    SIMCLR__CHECK_ARG(ctx, fn, "ctx is NULL");
    SIMCLR__CHECK_ARG(value, fn, "value is NULL");
    switch (key) {
    case SIMCLR_CTX_CONV_ALGO:
        *value = (double)ctx->conv_algo;
        return SIMCLR_OK;
    }
    return simclr__fail(SIMCLR_E_INVALID, "%s: unknown key %d (have: SIMCLR_CTX_CONV_ALGO = 100)", fn, (int)key);
}
