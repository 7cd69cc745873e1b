/* Tensors inside the library: the struct and the shape checks every layer
 * uses to turn a wrong argument into a precise message. */
#ifndef SIMCLR_CORE_TENSOR_H
#define SIMCLR_CORE_TENSOR_H

#include "simclr.h"

struct simclr_tensor {
    simclr_context *ctx;
    simclr_dtype dtype;
    int ndim;
    int64_t dims[SIMCLR_MAX_DIMS];
    int64_t numel;
    void *data;
    int owned;
};

size_t simclr__dtype_size(simclr_dtype dtype);

/* Checks that t is non-NULL, of dtype and rank ndim, and that dims match
 * `dims` where those are >= 0 (-1 = any). `fn` and `what` name the caller and
 * the argument in the message. Returns SIMCLR_E_INVALID / SIMCLR_E_SHAPE. */
simclr_status simclr__tensor_expect(const simclr_tensor *t, const char *fn, const char *what,
                                    simclr_dtype dtype, int ndim, const int64_t *dims);

/* Formats "[a, b, c]" into buf for messages. */
const char *simclr__shape_str(const simclr_tensor *t, char *buf, size_t size);

/* Creates an owned F32 tensor; shorthand for internal buffers. */
simclr_status simclr__tensor_f32(simclr_context *ctx, int ndim, const int64_t *shape,
                                 simclr_tensor **out);

static inline float *simclr__f32(const simclr_tensor *t) { return (float *)t->data; }

#endif
