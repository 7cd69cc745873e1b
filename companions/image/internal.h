/* Internals of libsimclr_image: decoders, EXIF, shared error helpers. */
#ifndef SIMCLR_IMAGE_INTERNAL_H
#define SIMCLR_IMAGE_INTERNAL_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include "simclr_image.h"

#if defined(__GNUC__)
#define SIMCLR__IMG_PRINTF(a, b) __attribute__((format(printf, a, b)))
#define SIMCLR__IMG_HIDDEN __attribute__((visibility("hidden")))
#else
#define SIMCLR__IMG_PRINTF(a, b)
#define SIMCLR__IMG_HIDDEN
#endif

/* Formats the calling thread's simclr_last_error() and returns status. */
SIMCLR__IMG_HIDDEN simclr_status simclr__img_fail(simclr_status status, const char *fmt, ...) SIMCLR__IMG_PRINTF(2, 3);

/* A decoded image before conversion: 8-bit samples, 1 (gray), 3 (RGB) or
 * 4 (CMYK stored inverted as Adobe writes it: 255 = no ink) channels,
 * row-major. */
typedef struct simclr__img_raw {
    uint8_t *px;
    int64_t h, w;
    int c;
    int orientation; /* EXIF 1..8 (1 = as stored) */
} simclr__img_raw;

/* Decoders: fill raw (px malloc'ed) or fail naming `name`. max_pixels is
 * checked against the declared size before anything is allocated. */
SIMCLR__IMG_HIDDEN simclr_status simclr__img_decode_png(const uint8_t *data, size_t size, const char *name, int64_t max_pixels,
                                            simclr__img_raw *raw);
SIMCLR__IMG_HIDDEN simclr_status simclr__img_decode_jpeg(const uint8_t *data, size_t size, const char *name,
                                             int64_t max_pixels, int min_side, simclr__img_raw *raw);

/* Reads a whole file into a malloc'ed buffer; SIMCLR_E_IO naming it. */
SIMCLR__IMG_HIDDEN simclr_status simclr__img_read_file(const char *path, uint8_t **data, size_t *size);

/* The orientation (1..8) in an Exif payload (starting at "Exif\0\0" or at
 * the TIFF header); 1 when absent or malformed. */
SIMCLR__IMG_HIDDEN int simclr__img_exif_orientation(const uint8_t *data, size_t size);

/* ---- decoding batches (batch.c) and prefetching them (prefetch.c) ---- */


/* The decoding settings a batch was decoded with (a prefetch keeps its own
 * copy: the folder's may change before the load that takes it). */
typedef struct simclr__img_settings {
    int channels, min_side;
    int64_t max_pixels;
} simclr__img_settings;

/* One slot per image of a batch: its pixels (malloc'ed, owned by the batch)
 * or its failure (status and a malloc'ed copy of the message, may be NULL). */
typedef struct simclr__img_batch {
    uint8_t **px;
    int64_t *h, *w;
    simclr_status *st;
    char **msg;
    int64_t slots;
} simclr__img_batch;

typedef struct simclr__img_decode_job {
    char *const *paths;      /* the folder's paths */
    const int64_t *indices;  /* slot k decodes paths[indices[k]] */
    simclr__img_settings settings;
    simclr__img_batch *batch;
} simclr__img_decode_job;

/* Grows b to n slots (new ones empty); SIMCLR_E_NOMEM leaves b as it was. */
SIMCLR__IMG_HIDDEN simclr_status simclr__img_batch_reserve(simclr__img_batch *b, int64_t n);
/* Frees every slot and the arrays; b is then empty. */
SIMCLR__IMG_HIDDEN void simclr__img_batch_free(simclr__img_batch *b);
/* Decodes slots [begin, end) of job->batch, freeing what they held. Any
 * thread; disjoint ranges may run concurrently. */
SIMCLR__IMG_HIDDEN void simclr__img_batch_decode(const simclr__img_decode_job *job, int64_t begin, int64_t end);

#define SIMCLR__IMG_MAX_PREFETCH_THREADS 64

typedef struct simclr__img_prefetch simclr__img_prefetch;
typedef struct simclr__img_worker_arg {
    const simclr__img_prefetch *pf;
    int first, stride;
} simclr__img_worker_arg;

/* One batch being decoded in the background. pending: a batch was started
 * (and is complete once simclr__img_prefetch_wait returns); running:
 * threads to join. Empty (all zero) = nothing in flight. */
struct simclr__img_prefetch {
    simclr__img_batch batch;
    simclr__img_decode_job job;
    int64_t *indices, n, cap;
    int pending, running;
    pthread_t threads[SIMCLR__IMG_MAX_PREFETCH_THREADS];
    simclr__img_worker_arg args[SIMCLR__IMG_MAX_PREFETCH_THREADS];
};

/* Waits for the batch in flight, discards any pending one, and starts
 * decoding paths[indices[0..n)] on `threads` new threads (1..64). On
 * SIMCLR_E_NOMEM nothing is pending. */
SIMCLR__IMG_HIDDEN simclr_status simclr__img_prefetch_start(simclr__img_prefetch *pf, char *const *paths,
                                                            const int64_t *indices, int64_t n,
                                                            simclr__img_settings settings, int threads);
/* Joins the threads in flight (the pending batch, if any, is then complete). */
SIMCLR__IMG_HIDDEN void simclr__img_prefetch_wait(simclr__img_prefetch *pf);
/* 1 if the pending batch is exactly indices[0..n) decoded with settings. */
SIMCLR__IMG_HIDDEN int simclr__img_prefetch_matches(const simclr__img_prefetch *pf, const int64_t *indices,
                                                    int64_t n, simclr__img_settings settings);
/* Waits, then frees everything; pf is then empty. */
SIMCLR__IMG_HIDDEN void simclr__img_prefetch_free(simclr__img_prefetch *pf);

#endif
