/* Label fractions: seeded, class-balanced subsets of a labelled set (the 1%
 * and 10% of SimCLR's semi-supervised evaluation), and their text file.
 *
 * Selection: every index i gets a 64-bit key from Philox(seed, i); class c
 * keeps its k_c indices of smallest (key, index). Keys depend on nothing
 * but (seed, i), so the subset is the same for any thread count or order of
 * work, and a smaller k_c takes a prefix of the same per-class order (the
 * 1% subset lies inside the 10% one for one seed).
 *
 * File (docs/label-subsets.md):
 *   simclr-label-subset 1 seed=S fraction=F per_class=P total=T count=K
 *   i_1
 *   ...
 *   i_K            (ascending, each < T, lines end in \n or \r\n) */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../core/rng.h"
#include "file.h"

#define MAX_CLASSES (1 << 20)
#define MAX_PER_CLASS ((int64_t)1 << 31)
#define MAGIC "simclr-label-subset 1 "

typedef struct entry {
    uint64_t key;
    int64_t index;
} entry;

static int entry_cmp(const void *a, const void *b)
{
    const entry *x = a, *y = b;
    if (x->key != y->key) return x->key < y->key ? -1 : 1;
    return (x->index > y->index) - (x->index < y->index);
}

static int i64_cmp(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

/* k_c of class c with n_c images. */
static int64_t class_take(double fraction, int64_t per_class, int64_t n_c)
{
    if (per_class > 0) return per_class;
    int64_t k = (int64_t)round(fraction * (double)n_c);
    return k < 1 ? 1 : k;
}

static simclr_status subset(const char *fn, simclr_context *ctx, const int32_t *labels, int64_t n, int n_classes,
                            double fraction, int64_t per_class, uint64_t seed, int64_t *indices, int64_t capacity,
                            int64_t *count)
{
    SIMCLR__CHECK_ARG(ctx, fn, "ctx is NULL");
    SIMCLR__CHECK_ARG(labels, fn, "labels is NULL");
    SIMCLR__CHECK_ARG(count, fn, "count is NULL");
    if (n < 1) return simclr__fail(SIMCLR_E_INVALID, "%s: n_labels %lld must be at least 1", fn, (long long)n);
    if (n_classes < 1 || n_classes > MAX_CLASSES)
        return simclr__fail(SIMCLR_E_INVALID, "%s: n_classes %d out of range 1..%d", fn, n_classes, MAX_CLASSES);
    for (int64_t i = 0; i < n; i++)
        if (labels[i] < 0 || labels[i] >= n_classes)
            return simclr__fail(SIMCLR_E_INVALID, "%s: labels[%lld] = %d out of range 0..%d", fn, (long long)i,
                                (int)labels[i], n_classes - 1);
    /* counts[c]: images of class c; then, after the scan, bucket starts. */
    int64_t *counts = simclr__calloc(ctx, (size_t)n_classes + 1, sizeof *counts);
    if (!counts) return simclr__nomem(fn, ((size_t)n_classes + 1) * sizeof *counts);
    for (int64_t i = 0; i < n; i++) counts[labels[i]]++;
    int64_t total = 0;
    for (int c = 0; c < n_classes; c++) {
        int64_t k = class_take(fraction, per_class, counts[c]);
        if (k > counts[c]) {
            int64_t have = counts[c];
            simclr__free(ctx, counts);
            return simclr__fail(SIMCLR_E_INVALID, "%s: class %d has %lld labelled image%s, %lld requested", fn, c,
                                (long long)have, have == 1 ? "" : "s", (long long)k);
        }
        total += k;
    }
    if (!indices) {
        simclr__free(ctx, counts);
        *count = total;
        return SIMCLR_OK;
    }
    if (capacity < total) {
        simclr__free(ctx, counts);
        return simclr__fail(SIMCLR_E_SHAPE, "%s: the subset has %lld indices, indices holds %lld", fn,
                            (long long)total, (long long)capacity);
    }
    entry *e = simclr__malloc(ctx, (size_t)n * sizeof *e);
    if (!e) {
        simclr__free(ctx, counts);
        return simclr__nomem(fn, (size_t)n * sizeof *e);
    }
    /* Buckets by class (stable: ascending index inside each). */
    int64_t start = 0;
    for (int c = 0; c <= n_classes; c++) {
        int64_t len = counts[c];
        counts[c] = start;
        start += len;
    }
    for (int64_t i = 0; i < n; i++) {
        simclr__rng r;
        simclr__rng_init(&r, seed, SIMCLR__STREAM_LABEL_SUBSET, (uint64_t)i);
        uint64_t hi = simclr__rng_u32(&r);
        e[counts[labels[i]]++] = (entry){(hi << 32) | simclr__rng_u32(&r), i};
    }
    /* counts[c] is now the end of bucket c (= the start of c + 1). */
    int64_t out = 0, begin = 0;
    for (int c = 0; c < n_classes; c++) {
        int64_t end = counts[c], n_c = end - begin, k = class_take(fraction, per_class, n_c);
        qsort(e + begin, (size_t)n_c, sizeof *e, entry_cmp);
        for (int64_t j = 0; j < k; j++) indices[out++] = e[begin + j].index;
        begin = end;
    }
    qsort(indices, (size_t)out, sizeof *indices, i64_cmp);
    simclr__free(ctx, e);
    simclr__free(ctx, counts);
    *count = out;
    return SIMCLR_OK;
}

simclr_status simclr_label_subset_fraction(simclr_context *ctx, const int32_t *labels, int64_t n_labels,
                                           int n_classes, double fraction, uint64_t seed, int64_t *indices,
                                           int64_t capacity, int64_t *count)
{
    static const char fn[] = "simclr_label_subset_fraction";
    if (!(fraction > 0 && fraction <= 1))
        return simclr__fail(SIMCLR_E_INVALID, "%s: fraction %g out of range (0, 1]", fn, fraction);
    return subset(fn, ctx, labels, n_labels, n_classes, fraction, 0, seed, indices, capacity, count);
}

simclr_status simclr_label_subset_per_class(simclr_context *ctx, const int32_t *labels, int64_t n_labels,
                                            int n_classes, int64_t per_class, uint64_t seed, int64_t *indices,
                                            int64_t capacity, int64_t *count)
{
    static const char fn[] = "simclr_label_subset_per_class";
    if (per_class < 1 || per_class > MAX_PER_CLASS)
        return simclr__fail(SIMCLR_E_INVALID, "%s: per_class %lld out of range 1..%lld", fn, (long long)per_class,
                            (long long)MAX_PER_CLASS);
    return subset(fn, ctx, labels, n_labels, n_classes, 0, per_class, seed, indices, capacity, count);
}

/* ---- the file -------------------------------------------------------------- */

simclr_status simclr_label_subset_save(simclr_context *ctx, const char *path, const int64_t *indices, int64_t count,
                                       int64_t n_labels, double fraction, int64_t per_class, uint64_t seed)
{
    static const char fn[] = "simclr_label_subset_save";
    SIMCLR__CHECK_ARG(ctx, fn, "ctx is NULL");
    SIMCLR__CHECK_ARG(path, fn, "path is NULL");
    SIMCLR__CHECK_ARG(indices, fn, "indices is NULL");
    if (n_labels < 1) return simclr__fail(SIMCLR_E_INVALID, "%s: n_labels %lld must be at least 1", fn, (long long)n_labels);
    if (count < 1 || count > n_labels)
        return simclr__fail(SIMCLR_E_INVALID, "%s: count %lld out of range 1..%lld", fn, (long long)count,
                            (long long)n_labels);
    if (!(fraction >= 0 && fraction <= 1))
        return simclr__fail(SIMCLR_E_INVALID, "%s: fraction %g out of range [0, 1]", fn, fraction);
    if (per_class < 0)
        return simclr__fail(SIMCLR_E_INVALID, "%s: per_class %lld must be >= 0", fn, (long long)per_class);
    if (fraction != 0 && per_class != 0)
        return simclr__fail(SIMCLR_E_INVALID, "%s: fraction %g and per_class %lld: a subset is made by one of them", fn,
                            fraction, (long long)per_class);
    for (int64_t i = 0; i < count; i++) {
        if (indices[i] < 0 || indices[i] >= n_labels)
            return simclr__fail(SIMCLR_E_INVALID, "%s: indices[%lld] = %lld out of range 0..%lld", fn, (long long)i,
                                (long long)indices[i], (long long)n_labels - 1);
        if (i > 0 && indices[i] <= indices[i - 1])
            return simclr__fail(SIMCLR_E_INVALID, "%s: indices[%lld] = %lld does not ascend from indices[%lld] = %lld",
                                fn, (long long)i, (long long)indices[i], (long long)i - 1, (long long)indices[i - 1]);
    }
    enum { CHUNK = 1 << 16 };
    char *buf = simclr__malloc(ctx, CHUNK + 256);
    if (!buf) return simclr__nomem(fn, CHUNK + 256);
    simclr__afile af;
    simclr_status st = simclr__afile_open(ctx, fn, path, &af);
    if (st != SIMCLR_OK) {
        simclr__free(ctx, buf);
        return st;
    }
    size_t len = (size_t)snprintf(buf, 256, MAGIC "seed=%llu fraction=%.17g per_class=%lld total=%lld count=%lld\n",
                                  (unsigned long long)seed, fraction, (long long)per_class, (long long)n_labels,
                                  (long long)count);
    for (int64_t i = 0; i < count && st == SIMCLR_OK; i++) {
        len += (size_t)snprintf(buf + len, 32, "%lld\n", (long long)indices[i]);
        if (len >= CHUNK) {
            st = simclr__afile_write(&af, buf, len);
            len = 0;
        }
    }
    if (st == SIMCLR_OK && len) st = simclr__afile_write(&af, buf, len);
    simclr__free(ctx, buf);
    if (st != SIMCLR_OK) {
        simclr__afile_abort(&af);
        return st;
    }
    return simclr__afile_commit(&af);
}

typedef struct cursor {
    const char *p, *end;
    const char *fn, *path;
    int64_t line;
} cursor;

static simclr_status bad(const cursor *c, const char *what)
{
    return simclr__fail(SIMCLR_E_FORMAT, "%s: '%s' line %lld: %s", c->fn, c->path, (long long)c->line, what);
}

/* Decimal digits (at least one, no sign) into *v, at most max. */
static int digits(cursor *c, uint64_t max, uint64_t *v)
{
    uint64_t x = 0;
    const char *s = c->p;
    while (c->p < c->end && *c->p >= '0' && *c->p <= '9') {
        unsigned d = (unsigned)(*c->p - '0');
        if (d > max || x > (max - d) / 10) return 0;
        x = x * 10 + d;
        c->p++;
    }
    *v = x;
    return c->p > s;
}

static int literal(cursor *c, const char *lit)
{
    size_t n = strlen(lit);
    if ((size_t)(c->end - c->p) < n || memcmp(c->p, lit, n) != 0) return 0;
    c->p += n;
    return 1;
}

/* The end of a line: \n, \r\n, or (the last line only) the end of the file. */
static int eol(cursor *c, int allow_eof)
{
    if (c->p == c->end) return allow_eof;
    if (*c->p == '\r') c->p++;
    if (c->p < c->end && *c->p == '\n') {
        c->p++;
        c->line++;
        return 1;
    }
    return 0;
}

simclr_status simclr_label_subset_load(simclr_context *ctx, const char *path, int64_t n_labels, int64_t *indices,
                                       int64_t capacity, int64_t *count, uint64_t *seed, double *fraction,
                                       int64_t *per_class)
{
    static const char fn[] = "simclr_label_subset_load";
    SIMCLR__CHECK_ARG(ctx, fn, "ctx is NULL");
    SIMCLR__CHECK_ARG(path, fn, "path is NULL");
    SIMCLR__CHECK_ARG(count, fn, "count is NULL");
    if (n_labels < 0)
        return simclr__fail(SIMCLR_E_INVALID, "%s: n_labels %lld must be >= 0 (0: any)", fn, (long long)n_labels);
    unsigned char *data;
    size_t size;
    SIMCLR__TRY(simclr__read_file(ctx, fn, path, 0, &data, &size));
    cursor c = {(const char *)data, (const char *)data + size, fn, path, 1};
    simclr_status st = SIMCLR_OK;
    uint64_t s = 0, pc = 0, total = 0, k = 0;
    double frac = 0;
    const uint64_t i64max = (uint64_t)INT64_MAX;
    if (!literal(&c, MAGIC)) st = bad(&c, "not a label subset (the first line must start with \"" MAGIC "\")");
    if (st == SIMCLR_OK && !(literal(&c, "seed=") && digits(&c, UINT64_MAX, &s)))
        st = bad(&c, "expected seed=<decimal 64-bit number>");
    if (st == SIMCLR_OK) {
        char tmp[64];
        size_t n = 0;
        if (literal(&c, " fraction="))
            while (c.p < c.end && n < sizeof tmp - 1 && *c.p != ' ' && *c.p != '\r' && *c.p != '\n') tmp[n++] = *c.p++;
        tmp[n] = '\0';
        char *e = NULL;
        errno = 0;
        frac = n ? strtod(tmp, &e) : NAN;
        if (!n || *e != '\0' || errno != 0 || !(frac >= 0 && frac <= 1))
            st = bad(&c, "expected fraction=<number in [0, 1]>");
    }
    if (st == SIMCLR_OK && !(literal(&c, " per_class=") && digits(&c, i64max, &pc)))
        st = bad(&c, "expected per_class=<decimal number>");
    if (st == SIMCLR_OK && !(literal(&c, " total=") && digits(&c, i64max, &total) && total >= 1))
        st = bad(&c, "expected total=<decimal number >= 1>");
    if (st == SIMCLR_OK && !(literal(&c, " count=") && digits(&c, total, &k) && k >= 1))
        st = bad(&c, "expected count=<decimal number in 1..total>");
    if (st == SIMCLR_OK && !eol(&c, 0)) st = bad(&c, "the header must end after count=");
    if (st == SIMCLR_OK && n_labels != 0 && (uint64_t)n_labels != total)
        st = simclr__fail(SIMCLR_E_SHAPE, "%s: '%s' indexes a labelled set of %llu images, this one has %lld", fn, path,
                          (unsigned long long)total, (long long)n_labels);
    if (st == SIMCLR_OK && indices && (uint64_t)capacity < k)
        st = simclr__fail(SIMCLR_E_SHAPE, "%s: '%s' holds %llu indices, indices holds %lld", fn, path,
                          (unsigned long long)k, (long long)capacity);
    /* Every line is validated before anything is written (also with indices NULL). */
    const char *first = c.p;
    int64_t first_line = c.line;
    uint64_t prev = 0;
    for (uint64_t i = 0; i < k && st == SIMCLR_OK; i++) {
        uint64_t v = 0;
        if (c.p == c.end) st = bad(&c, "fewer indices than the header's count");
        else if (!digits(&c, i64max, &v)) st = bad(&c, "expected an index (decimal digits only)");
        else if (v >= total) st = bad(&c, "index not below the header's total");
        else if (i > 0 && v <= prev) st = bad(&c, "indices must ascend strictly");
        else if (!eol(&c, i + 1 == k)) st = bad(&c, "expected the end of the line after the index");
        prev = v;
    }
    if (st == SIMCLR_OK && c.p != c.end) st = bad(&c, "more lines than the header's count");
    if (st == SIMCLR_OK && indices) {
        c.p = first;
        c.line = first_line;
        for (uint64_t i = 0; i < k; i++) {
            uint64_t v = 0;
            digits(&c, i64max, &v);
            eol(&c, 1);
            indices[i] = (int64_t)v;
        }
    }
    simclr__free(ctx, data);
    if (st != SIMCLR_OK) return st;
    *count = (int64_t)k;
    if (seed) *seed = s;
    if (fraction) *fraction = frac;
    if (per_class) *per_class = (int64_t)pc;
    return SIMCLR_OK;
}
