/* File plumbing shared by the data-set, checkpoint and safetensors code:
 * reading a whole file (raw or gzip) into memory, and writing a file
 * atomically (temporary file, fsync, rename). */
#ifndef SIMCLR_IO_FILE_H
#define SIMCLR_IO_FILE_H

#include <stdio.h>

#include "../core/context.h"

/* Reads the whole file at path into a buffer from the context's allocator
 * (*data, *len; free with simclr__free). With allow_gzip, a file starting
 * with the gzip magic is decompressed (its CRC and length are checked by
 * zlib); its decompressed size is bounded by deflate's maximum ratio before
 * anything that large is allocated. SIMCLR_E_IO (open/read), SIMCLR_E_FORMAT
 * (corrupt gzip), SIMCLR_E_NOMEM; fn names the caller in messages. */
simclr_status simclr__read_file(simclr_context *ctx, const char *fn, const char *path, int allow_gzip,
                                unsigned char **data, size_t *len);

/* An atomic writer: everything goes to "<path>.tmp.<pid>"; commit flushes,
 * fsyncs and renames it over path; abort (or a failed commit) removes it and
 * leaves any previous file at path untouched. */
typedef struct simclr__afile {
    simclr_context *ctx;
    FILE *f;
    char *tmp;        /* owned */
    const char *path; /* borrowed */
    const char *fn;
    int failed;       /* a write failed: commit refuses */
} simclr__afile;

simclr_status simclr__afile_open(simclr_context *ctx, const char *fn, const char *path, simclr__afile *af);
/* Writes n bytes; on failure the file is marked failed and SIMCLR_E_IO returned. */
simclr_status simclr__afile_write(simclr__afile *af, const void *data, size_t n);
/* Finishes the file; on any failure the temporary file is removed. Either way
 * af is released. */
simclr_status simclr__afile_commit(simclr__afile *af);
/* Removes the temporary file and releases af. Safe after a failed open. */
void simclr__afile_abort(simclr__afile *af);

#ifdef SIMCLR_FAULT_INJECTION
/* Test builds only (tests/test_faults.c compiles file.c with this macro and
 * links it ahead of the library): when simclr__io_fault_at is k > 0, the
 * k-th I/O operation of the atomic writer (create, write, flush, fsync,
 * close, rename), counted in simclr__io_calls, fails with EIO. Release
 * builds have neither the variables nor a branch. */
extern long simclr__io_fault_at;
extern long simclr__io_calls;
#endif

/* Little-endian encoding helpers for the file formats. */
static inline void simclr__put_u32(unsigned char *p, uint32_t v)
{
    for (int i = 0; i < 4; i++) p[i] = (unsigned char)(v >> (8 * i));
}
static inline void simclr__put_u64(unsigned char *p, uint64_t v)
{
    for (int i = 0; i < 8; i++) p[i] = (unsigned char)(v >> (8 * i));
}
static inline uint32_t simclr__get_u32(const unsigned char *p)
{
    uint32_t v = 0;
    for (int i = 3; i >= 0; i--) v = (v << 8) | p[i];
    return v;
}
static inline uint64_t simclr__get_u64(const unsigned char *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--) v = (v << 8) | p[i];
    return v;
}
static inline uint32_t simclr__get_be32(const unsigned char *p)
{
    return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}

/* zlib allocation through the context's hooks, so allocation-failure tests
 * reach zlib's internal buffers too. */
void *simclr__zalloc(void *opaque, unsigned items, unsigned size);
void simclr__zfree(void *opaque, void *ptr);

/* One inflate() call on what is left of src and dst, in pieces of at most
 * 1 GiB each side (zlib counts in uInt); advances *src_used and *dst_used.
 * Returns inflate's result; *moved is 0 when the call consumed and produced
 * nothing. zs is a z_stream * (void here so this header needs no zlib.h). */
int simclr__inflate_piece(void *zs, const unsigned char *src, size_t src_len, size_t *src_used, unsigned char *dst,
                          size_t dst_len, size_t *dst_used, int *moved);

#endif
