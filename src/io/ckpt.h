/* The checkpoint container: an architecture string plus named tensors, each
 * zlib-compressed with a CRC32, written atomically. docs/checkpoint-format.md
 * describes the bytes. simclr_module_save/load and the trainer's save/load
 * are built on it.
 *
 * Writing:  simclr__ckpt_new(ctx, arch) -> add tensors/scalars (borrowed data,
 *           must stay valid until save) -> simclr__ckpt_save(ck, path) -> free.
 * Reading:  simclr__ckpt_load(ctx, path) (every length and CRC checked) ->
 *           look entries up by (prefix, name), validate ALL of them against the
 *           destination (simclr__ckpt_expect_tensor / get_*), and only then
 *           copy (simclr__ckpt_copy_into), so a failed load changes nothing. */
#ifndef SIMCLR_IO_CKPT_H
#define SIMCLR_IO_CKPT_H

#include "../core/context.h"
#include "../core/tensor.h"

typedef enum simclr__ckpt_dtype {
    SIMCLR__CK_F32 = 0,
    SIMCLR__CK_U8 = 1,
    SIMCLR__CK_I64 = 2,
    SIMCLR__CK_F64 = 3
} simclr__ckpt_dtype;

#define SIMCLR__CKPT_MAX_NAME 255  /* bytes of a full (prefixed) tensor name */
#define SIMCLR__CKPT_MAX_ARCH 4096 /* bytes of the architecture string */

typedef struct simclr__ckpt_entry {
    char *name;                 /* owned, prefix included */
    simclr__ckpt_dtype dtype;
    int ndim;                   /* 0 (scalar) .. 4 */
    int64_t dims[SIMCLR_MAX_DIMS];
    size_t bytes;               /* numel * element size */
    const void *data;           /* borrowed (written entries) or owned (loaded) */
    void *owned;                /* non-NULL when data is owned */
    unsigned char inline_[8];   /* storage of scalars added by value */
} simclr__ckpt_entry;

typedef struct simclr__ckpt simclr__ckpt;

simclr_status simclr__ckpt_new(simclr_context *ctx, const char *arch, simclr__ckpt **out);
void simclr__ckpt_free(simclr__ckpt *ck);

/* Adds a tensor named prefix+name (prefix may be NULL). data is borrowed.
 * ndim 0 is a scalar. SIMCLR_E_INVALID for a duplicate or too long name. */
simclr_status simclr__ckpt_add(simclr__ckpt *ck, const char *prefix, const char *name, simclr__ckpt_dtype dtype,
                               int ndim, const int64_t *dims, const void *data);
/* A public tensor (F32 or U8) with its shape; data borrowed. */
simclr_status simclr__ckpt_add_tensor(simclr__ckpt *ck, const char *prefix, const char *name,
                                      const simclr_tensor *t);
/* Scalars, stored by value (no borrowing). */
simclr_status simclr__ckpt_add_i64(simclr__ckpt *ck, const char *prefix, const char *name, int64_t v);
simclr_status simclr__ckpt_add_f64(simclr__ckpt *ck, const char *prefix, const char *name, double v);

/* Writes the file atomically; fn names the public caller in messages. */
simclr_status simclr__ckpt_save(const simclr__ckpt *ck, const char *fn, const char *path);

/* Reads and fully validates a file; the result owns its data. */
simclr_status simclr__ckpt_load(simclr_context *ctx, const char *fn, const char *path, simclr__ckpt **out);

const char *simclr__ckpt_arch(const simclr__ckpt *ck);
int simclr__ckpt_count(const simclr__ckpt *ck);
const simclr__ckpt_entry *simclr__ckpt_at(const simclr__ckpt *ck, int index);
/* Entry named prefix+name, NULL when absent. */
const simclr__ckpt_entry *simclr__ckpt_find(const simclr__ckpt *ck, const char *prefix, const char *name);

/* Checks that prefix+name exists as F32/U8 with exactly t's dtype and shape:
 * SIMCLR_E_FORMAT when missing or of another dtype, SIMCLR_E_SHAPE (both
 * shapes in the message) when the shape differs. Changes nothing. */
simclr_status simclr__ckpt_expect_tensor(const simclr__ckpt *ck, const char *fn, const char *prefix,
                                         const char *name, const simclr_tensor *t);
/* Copies a validated entry's bytes into t (sizes must have been checked). */
void simclr__ckpt_copy_into(const simclr__ckpt_entry *e, simclr_tensor *t);

/* Reads a scalar written by add_i64 / add_f64: SIMCLR_E_FORMAT when missing
 * or not a scalar of that kind. */
simclr_status simclr__ckpt_get_i64(const simclr__ckpt *ck, const char *fn, const char *prefix, const char *name,
                                   int64_t *v);
simclr_status simclr__ckpt_get_f64(const simclr__ckpt *ck, const char *fn, const char *prefix, const char *name,
                                   double *v);

#endif
