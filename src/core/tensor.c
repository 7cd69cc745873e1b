#include "tensor.h"

#include <stdio.h>
#include <string.h>

#include "context.h"

size_t simclr__dtype_size(simclr_dtype dtype) { return dtype == SIMCLR_F32 ? 4 : 1; }

/* Validates dtype and shape and returns the element count, or fails without
 * touching anything. The byte size must fit PTRDIFF_MAX so every later
 * pointer difference is defined. */
static simclr_status check_shape(const char *fn, simclr_dtype dtype, int ndim, const int64_t *shape,
                                 int64_t *numel)
{
    if (dtype != SIMCLR_F32 && dtype != SIMCLR_U8)
        return simclr__fail(SIMCLR_E_INVALID, "%s: unknown dtype %d", fn, (int)dtype);
    if (ndim < 1 || ndim > SIMCLR_MAX_DIMS)
        return simclr__fail(SIMCLR_E_INVALID, "%s: ndim %d out of range 1..%d", fn, ndim, SIMCLR_MAX_DIMS);
    if (!shape) return simclr__fail(SIMCLR_E_INVALID, "%s: shape is NULL", fn);
    int64_t n = 1;
    int64_t limit = (int64_t)(PTRDIFF_MAX / (ptrdiff_t)simclr__dtype_size(dtype));
    for (int i = 0; i < ndim; i++) {
        if (shape[i] < 1)
            return simclr__fail(SIMCLR_E_INVALID, "%s: dim %d is %lld, must be >= 1", fn, i, (long long)shape[i]);
        if (shape[i] > limit / n)
            return simclr__fail(SIMCLR_E_SHAPE, "%s: shape overflows (dim %d = %lld makes more than %lld elements)",
                                fn, i, (long long)shape[i], (long long)limit);
        n *= shape[i];
    }
    *numel = n;
    return SIMCLR_OK;
}

static simclr_status make(const char *fn, simclr_context *ctx, simclr_dtype dtype, int ndim,
                          const int64_t *shape, void *data, simclr_tensor **out)
{
    SIMCLR__CHECK_ARG(ctx, fn, "ctx is NULL");
    SIMCLR__CHECK_ARG(out, fn, "out is NULL");
    int64_t numel;
    SIMCLR__TRY(check_shape(fn, dtype, ndim, shape, &numel));
    size_t bytes = (size_t)numel * simclr__dtype_size(dtype);
    if (data && ((uintptr_t)data % simclr__dtype_size(dtype)) != 0)
        return simclr__fail(SIMCLR_E_INVALID, "%s: data is not aligned to %zu bytes", fn, simclr__dtype_size(dtype));
    simclr_tensor *t = simclr__malloc(ctx, sizeof *t);
    if (!t) return simclr__nomem(fn, sizeof *t);
    memset(t, 0, sizeof *t);
    if (!data) {
        data = simclr__calloc(ctx, 1, bytes);
        if (!data) {
            simclr__free(ctx, t);
            return simclr__nomem(fn, bytes);
        }
        t->owned = 1;
    }
    t->ctx = ctx;
    t->dtype = dtype;
    t->ndim = ndim;
    for (int i = 0; i < ndim; i++) t->dims[i] = shape[i];
    t->numel = numel;
    t->data = data;
    *out = t;
    return SIMCLR_OK;
}

simclr_status simclr_tensor_create(simclr_context *ctx, simclr_dtype dtype, int ndim,
                                   const int64_t *shape, simclr_tensor **out)
{
    return make("simclr_tensor_create", ctx, dtype, ndim, shape, NULL, out);
}

simclr_status simclr_tensor_wrap(simclr_context *ctx, simclr_dtype dtype, int ndim,
                                 const int64_t *shape, void *data, simclr_tensor **out)
{
    if (!data) return simclr__fail(SIMCLR_E_INVALID, "simclr_tensor_wrap: data is NULL");
    return make("simclr_tensor_wrap", ctx, dtype, ndim, shape, data, out);
}

simclr_status simclr__tensor_f32(simclr_context *ctx, int ndim, const int64_t *shape, simclr_tensor **out)
{
    return make("simclr_tensor_create", ctx, SIMCLR_F32, ndim, shape, NULL, out);
}

void simclr_tensor_destroy(simclr_tensor *t)
{
    if (!t) return;
    if (t->owned) simclr__free(t->ctx, t->data);
    simclr__free(t->ctx, t);
}

int simclr_tensor_ndim(const simclr_tensor *t) { return t ? t->ndim : 0; }

int64_t simclr_tensor_dim(const simclr_tensor *t, int axis)
{
    return (t && axis >= 0 && axis < t->ndim) ? t->dims[axis] : 0;
}

int simclr_tensor_dtype(const simclr_tensor *t) { return t ? (int)t->dtype : -1; }

int64_t simclr_tensor_numel(const simclr_tensor *t) { return t ? t->numel : 0; }

size_t simclr_tensor_bytes(const simclr_tensor *t)
{
    return t ? (size_t)t->numel * simclr__dtype_size(t->dtype) : 0;
}

void *simclr_tensor_data(simclr_tensor *t) { return t ? t->data : NULL; }

simclr_status simclr_tensor_copy_from(simclr_tensor *t, const void *src, size_t bytes)
{
    static const char fn[] = "simclr_tensor_copy_from";
    SIMCLR__CHECK_ARG(t, fn, "tensor is NULL");
    SIMCLR__CHECK_ARG(src, fn, "src is NULL");
    if (bytes != simclr_tensor_bytes(t))
        return simclr__fail(SIMCLR_E_SHAPE, "%s: %zu bytes given, tensor holds %zu", fn, bytes, simclr_tensor_bytes(t));
    memmove(t->data, src, bytes);
    return SIMCLR_OK;
}

simclr_status simclr_tensor_copy_to(const simclr_tensor *t, void *dst, size_t bytes)
{
    static const char fn[] = "simclr_tensor_copy_to";
    SIMCLR__CHECK_ARG(t, fn, "tensor is NULL");
    SIMCLR__CHECK_ARG(dst, fn, "dst is NULL");
    if (bytes != simclr_tensor_bytes(t))
        return simclr__fail(SIMCLR_E_SHAPE, "%s: %zu bytes asked, tensor holds %zu", fn, bytes, simclr_tensor_bytes(t));
    memmove(dst, t->data, bytes);
    return SIMCLR_OK;
}

simclr_status simclr_tensor_reshape(simclr_tensor *t, int ndim, const int64_t *shape)
{
    static const char fn[] = "simclr_tensor_reshape";
    SIMCLR__CHECK_ARG(t, fn, "tensor is NULL");
    int64_t numel;
    SIMCLR__TRY(check_shape(fn, t->dtype, ndim, shape, &numel));
    if (numel != t->numel)
        return simclr__fail(SIMCLR_E_SHAPE, "%s: new shape has %lld elements, tensor has %lld", fn,
                            (long long)numel, (long long)t->numel);
    t->ndim = ndim;
    for (int i = 0; i < SIMCLR_MAX_DIMS; i++) t->dims[i] = i < ndim ? shape[i] : 0;
    return SIMCLR_OK;
}

const char *simclr__shape_str(const simclr_tensor *t, char *buf, size_t size)
{
    size_t used = 0;
    used += (size_t)snprintf(buf + used, size - used, "[");
    for (int i = 0; i < t->ndim && used < size; i++)
        used += (size_t)snprintf(buf + used, size - used, i ? ", %lld" : "%lld", (long long)t->dims[i]);
    if (used < size) snprintf(buf + used, size - used, "]");
    return buf;
}

simclr_status simclr__tensor_expect(const simclr_tensor *t, const char *fn, const char *what,
                                    simclr_dtype dtype, int ndim, const int64_t *dims)
{
    if (!t) return simclr__fail(SIMCLR_E_INVALID, "%s: %s is NULL", fn, what);
    if (t->dtype != dtype)
        return simclr__fail(SIMCLR_E_SHAPE, "%s: %s has dtype %s, expected %s", fn, what,
                            t->dtype == SIMCLR_F32 ? "F32" : "U8", dtype == SIMCLR_F32 ? "F32" : "U8");
    char buf[96];
    if (t->ndim != ndim)
        return simclr__fail(SIMCLR_E_SHAPE, "%s: %s has shape %s, expected %d dims", fn, what,
                            simclr__shape_str(t, buf, sizeof buf), ndim);
    for (int i = 0; dims && i < ndim; i++)
        if (dims[i] >= 0 && t->dims[i] != dims[i])
            return simclr__fail(SIMCLR_E_SHAPE, "%s: %s has shape %s, dim %d should be %lld", fn, what,
                                simclr__shape_str(t, buf, sizeof buf), i, (long long)dims[i]);
    return SIMCLR_OK;
}
