/* Shared by the libFuzzer harnesses: the loaders take paths, so each input
 * is written to a per-process file first (in /dev/shm when it exists, so
 * the round trip stays in memory), and the objects a loader fills are made
 * once per process. */
#ifndef SIMCLR_FUZZ_UTIL_H
#define SIMCLR_FUZZ_UTIL_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "simclr.h"

/* Aborts (a finding) when setup fails: a harness that cannot start must not
 * report success. */
#define FUZZ_OK(expr)                                                                     \
    do {                                                                                  \
        simclr_status st_ = (expr);                                                       \
        if (st_ != SIMCLR_OK) {                                                           \
            fprintf(stderr, "fuzz setup: %s -> %s\n", #expr, simclr_last_error());        \
            abort();                                                                      \
        }                                                                                 \
    } while (0)

/* The prologue every harness shares: one context for the whole process,
 * made at the first input (libFuzzer calls the harness millions of times;
 * a context per call would measure context creation, not the parser). */
static inline simclr_context *fuzz_context(void)
{
    static simclr_context *ctx;
    if (!ctx) FUZZ_OK(simclr_context_create("ref", 1, NULL, &ctx));
    return ctx;
}

/* A path of this process for file `tag`. */
static inline const char *fuzz_path(const char *tag)
{
    static char buf[4][256];
    static int next;
    char *p = buf[next++ & 3];
    const char *dir = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : (getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    snprintf(p, 256, "%s/simclr_fuzz_%s_%ld", dir, tag, (long)getpid());
    return p;
}

static inline void fuzz_write(const char *path, const uint8_t *data, size_t size)
{
    FILE *f = fopen(path, "wb");
    if (!f) abort();
    if (size && fwrite(data, 1, size, f) != size) abort();
    if (fclose(f) != 0) abort();
}

/* Every status a loader may return for a bad file; anything else (or a
 * crash, or a sanitizer report) is a finding. */
static inline void fuzz_expect_load_status(simclr_status st)
{
    if (st == SIMCLR_OK || st == SIMCLR_E_FORMAT || st == SIMCLR_E_SHAPE || st == SIMCLR_E_IO ||
        st == SIMCLR_E_NOMEM)
        return;
    fprintf(stderr, "unexpected status %s: %s\n", simclr_status_string(st), simclr_last_error());
    abort();
}

/* Reads image `index` of a data set that opened (images of h x w x c):
 * every byte the loader claims must be there for ASan to see. Skipped for
 * declared sizes over 1 MiB per image (the fuzzer's memory limit). */
static inline void fuzz_read_image(simclr_context *ctx, simclr_dataset *ds, int64_t index, int64_t h, int64_t w,
                                   int64_t c)
{
    if (h * w * c > (1 << 20)) return;
    int64_t shape[4] = {1, h, w, c}, idx[1] = {index};
    simclr_tensor *t;
    FUZZ_OK(simclr_tensor_create(ctx, SIMCLR_U8, 4, shape, &t));
    FUZZ_OK(simclr_dataset_batch(ds, idx, 1, t));
    simclr_tensor_destroy(t);
}

#endif
