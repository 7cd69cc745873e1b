/* Shared helpers for the cmocka test programs. */
#ifndef SIMCLR_TEST_UTIL_H
#define SIMCLR_TEST_UTIL_H

#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "simclr.h"

/* Fails the test with the library's message when a call does not return OK. */
#define CHECK_OK(expr)                                                                       \
    do {                                                                                     \
        simclr_status st_ = (expr);                                                          \
        if (st_ != SIMCLR_OK)                                                                \
            fail_msg("%s -> %s: %s", #expr, simclr_status_string(st_), simclr_last_error()); \
    } while (0)

/* Expects a given failing status and a non-empty message. */
#define CHECK_STATUS(expr, want)                                                                \
    do {                                                                                        \
        simclr_status st_ = (expr);                                                             \
        if (st_ != (want))                                                                      \
            fail_msg("%s -> %s (want %s): %s", #expr, simclr_status_string(st_),                \
                     simclr_status_string(want), simclr_last_error());                          \
        assert_true(strlen(simclr_last_error()) > 0);                                           \
    } while (0)

/* An allocator hook that counts and can be told to fail the Nth allocation
 * (1-based; 0 = never), for leak and out-of-memory sweeps. */
typedef struct test_alloc {
    long allocs, frees, live, fail_at;
} test_alloc;

static inline void *test_alloc_fn(void *user, size_t size, size_t alignment)
{
    test_alloc *a = user;
    a->allocs++;
    if (a->fail_at && a->allocs == a->fail_at) return NULL;
    void *p = NULL;
    if (posix_memalign(&p, alignment, size ? size : 1) != 0) return NULL;
    a->live++;
    return p;
}

static inline void test_free_fn(void *user, void *ptr)
{
    test_alloc *a = user;
    a->frees++;
    a->live--;
    free(ptr);
}

static inline simclr_allocator test_allocator(test_alloc *a)
{
    simclr_allocator h = {test_alloc_fn, test_free_fn, a};
    return h;
}

/* The allocation-failure sweep: for fail = 1, 2, ... below max_fail, a fresh
 * "ref" context with the counting allocator; `prepare` (may be NULL) builds
 * what the call needs on it, then the fail-th allocation after that fails
 * during `call`. Each run must return SIMCLR_OK (which ends the sweep) or
 * SIMCLR_E_NOMEM; `finish` (may be NULL) checks the outputs for that status
 * and frees what `prepare` made; no run may leak; some run must succeed. */
typedef struct test_alloc_sweep {
    void (*prepare)(simclr_context *ctx, void *user);
    simclr_status (*call)(simclr_context *ctx, void *user);
    void (*finish)(simclr_context *ctx, simclr_status st, void *user);
    void *user;
} test_alloc_sweep;

static inline void test_sweep_alloc_failures(long max_fail, const test_alloc_sweep *sw)
{
    int ok = 0;
    for (long fail = 1; fail < max_fail && !ok; fail++) {
        test_alloc a = {0, 0, 0, 0};
        simclr_allocator hooks = test_allocator(&a);
        simclr_context *ctx;
        CHECK_OK(simclr_context_create("ref", 1, &hooks, &ctx));
        if (sw->prepare) sw->prepare(ctx, sw->user);
        a.fail_at = a.allocs + fail;
        simclr_status st = sw->call(ctx, sw->user);
        a.fail_at = 0;
        if (st == SIMCLR_OK) ok = 1;
        else assert_int_equal(st, SIMCLR_E_NOMEM);
        if (sw->finish) sw->finish(ctx, st, sw->user);
        simclr_context_destroy(ctx);
        assert_int_equal(a.live, 0);
    }
    assert_true(ok);
}

/* Deterministic test data (not the library's RNG, so tests stay independent of it). */
static inline uint64_t test_rand_next(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

static inline float test_randf(uint64_t *s) /* uniform [-1, 1) */
{
    return (float)((test_rand_next(s) >> 11) * (2.0 / 9007199254740992.0) - 1.0);
}

static inline void test_fill(float *x, int64_t n, uint64_t seed)
{
    uint64_t s = seed * 2654435761u + 88172645463325252ull;
    for (int64_t i = 0; i < n; i++) x[i] = test_randf(&s);
}

/* max |a - b| / max(1e-6, max |b|): the normalized error the kernel tests use. */
static inline double test_norm_err(const float *a, const float *b, int64_t n)
{
    double num = 0, den = 1e-6;
    for (int64_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - b[i]);
        if (d > num || d != d) num = d != d ? INFINITY : d;
        if (fabs((double)b[i]) > den) den = fabs((double)b[i]);
    }
    return num / den;
}

/* A fresh temporary directory for a test program's files (cmocka group
 * setup), and its removal with everything in it (group teardown). */
static inline int test_tmpdir_make(char *dir, size_t size, const char *tag)
{
    snprintf(dir, size, "/tmp/simclr_%s_XXXXXX", tag);
    return mkdtemp(dir) ? 0 : -1;
}

static inline int test_tmpdir_remove(const char *dir)
{
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    return system(cmd) == 0 ? 0 : -1;
}

#endif
