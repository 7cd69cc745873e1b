/* Internals of libsimclr_image: decoders, EXIF, shared error helpers. */
#ifndef SIMCLR_IMAGE_INTERNAL_H
#define SIMCLR_IMAGE_INTERNAL_H

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

#endif
