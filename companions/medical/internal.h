/* Internals of libsimclr_medical: the image object, the two decoders (the
 * DICOM one in C++ over GDCM, dicom.cpp; the TIFF one over libtiff,
 * tiff.c) and the error helper. */
#ifndef SIMCLR_MEDICAL_INTERNAL_H
#define SIMCLR_MEDICAL_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "simclr_medical.h"

#if defined(__GNUC__)
#define SIMCLR__MED_PRINTF(a, b) __attribute__((format(printf, a, b)))
#define SIMCLR__MED_HIDDEN __attribute__((visibility("hidden")))
#else
#define SIMCLR__MED_PRINTF(a, b)
#define SIMCLR__MED_HIDDEN
#endif

#ifdef __cplusplus
extern "C" {
#endif

struct simclr_medical_image {
    float *data;             /* malloc'ed [h, w, c] */
    int64_t h, w, frames, frame;
    int c, format, inverted, bits, is_signed, has_window;
    double slope, intercept, center, width;
    const char *photometric; /* static */
    char *sop_uid, *group_id; /* malloc'ed, never NULL in a returned image */
};

/* Formats "medical: " + the message into the calling thread's
 * simclr_last_error() and returns status. */
SIMCLR__MED_HIDDEN simclr_status simclr__med_fail(simclr_status status, const char *fmt, ...) SIMCLR__MED_PRINTF(2, 3);

/* Where a decoder reads from: a buffer (data, size) or, when fd >= 0, an
 * open regular file of `size` bytes (read with pread; not closed). */
typedef struct simclr__med_source {
    const uint8_t *data;
    size_t size;
    int fd;
    const char *name; /* for messages: the path or the caller's name */
} simclr__med_source;

/* Decoders: fill *img (data and strings malloc'ed; every other field set)
 * or fail naming src->name with nothing left allocated and *img as it was.
 * max_pixels >= 1. */
SIMCLR__MED_HIDDEN simclr_status simclr__med_dicom(const simclr__med_source *src, int64_t frame, int64_t max_pixels,
                                                   simclr_medical_image *img);
SIMCLR__MED_HIDDEN simclr_status simclr__med_tiff(const simclr__med_source *src, int64_t frame, int64_t max_pixels,
                                                  simclr_medical_image *img);

#ifdef __cplusplus
}
#endif
#endif
