#include "ckpt.h"

#include <stdio.h>
#include <string.h>
#include <zlib.h>

#include "file.h"

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "the checkpoint format stores tensor bytes as little-endian: add byte swapping for this host"
#endif

#define CK_MAGIC "SIMCLRCK"
#define CK_VERSION 1u
#define CK_HEAD 24          /* magic, version, count, arch length, CRC */
#define CK_MAX_COUNT 1000000u
#define CK_DEFLATE_RATIO 1032u /* deflate's maximum expansion on inflate */

struct simclr__ckpt {
    simclr_context *ctx;
    char *arch;
    simclr__ckpt_entry *e;
    int n, cap;
};

static size_t dtype_size(simclr__ckpt_dtype d) { return d == SIMCLR__CK_U8 ? 1 : d == SIMCLR__CK_F32 ? 4 : 8; }
static const char *dtype_name(simclr__ckpt_dtype d)
{
    static const char *names[] = {"F32", "U8", "I64", "F64"};
    return (unsigned)d < 4 ? names[d] : "?";
}

static void shape_str(int ndim, const int64_t *dims, char *buf, size_t size)
{
    size_t k = (size_t)snprintf(buf, size, "[");
    for (int i = 0; i < ndim && k < size; i++) k += (size_t)snprintf(buf + k, size - k, i ? ", %lld" : "%lld", (long long)dims[i]);
    if (k < size) snprintf(buf + k, size - k, "]");
}

simclr_status simclr__ckpt_new(simclr_context *ctx, const char *arch, simclr__ckpt **out)
{
    static const char fn[] = "checkpoint";
    size_t alen = strlen(arch);
    if (alen > SIMCLR__CKPT_MAX_ARCH)
        return simclr__fail(SIMCLR_E_INVALID, "%s: architecture string of %zu bytes exceeds %d", fn, alen,
                            SIMCLR__CKPT_MAX_ARCH);
    simclr__ckpt *ck = simclr__calloc(ctx, 1, sizeof *ck);
    char *a = ck ? simclr__malloc(ctx, alen + 1) : NULL;
    if (!a) {
        simclr__free(ctx, ck);
        return simclr__nomem(fn, alen + 1);
    }
    memcpy(a, arch, alen + 1);
    ck->ctx = ctx;
    ck->arch = a;
    *out = ck;
    return SIMCLR_OK;
}

void simclr__ckpt_free(simclr__ckpt *ck)
{
    if (!ck) return;
    for (int i = 0; i < ck->n; i++) {
        simclr__free(ck->ctx, ck->e[i].name);
        simclr__free(ck->ctx, ck->e[i].owned);
    }
    simclr__free(ck->ctx, ck->e);
    simclr__free(ck->ctx, ck->arch);
    simclr__free(ck->ctx, ck);
}

const char *simclr__ckpt_arch(const simclr__ckpt *ck) { return ck->arch; }
int simclr__ckpt_count(const simclr__ckpt *ck) { return ck->n; }
const simclr__ckpt_entry *simclr__ckpt_at(const simclr__ckpt *ck, int index) { return &ck->e[index]; }

static int name_is(const char *full, const char *prefix, const char *name)
{
    size_t p = prefix ? strlen(prefix) : 0;
    if (p && strncmp(full, prefix, p) != 0) return 0;
    return strcmp(full + p, name) == 0;
}

const simclr__ckpt_entry *simclr__ckpt_find(const simclr__ckpt *ck, const char *prefix, const char *name)
{
    for (int i = 0; i < ck->n; i++)
        if (name_is(ck->e[i].name, prefix, name)) return &ck->e[i];
    return NULL;
}

/* Appends an entry with a copied name; data left for the caller to set. */
static simclr_status push(simclr__ckpt *ck, const char *fn, const char *prefix, const char *name,
                          simclr__ckpt_dtype dtype, int ndim, const int64_t *dims, simclr__ckpt_entry **out)
{
    size_t p = prefix ? strlen(prefix) : 0, n = strlen(name);
    if (p + n == 0 || p + n > SIMCLR__CKPT_MAX_NAME)
        return simclr__fail(SIMCLR_E_INVALID, "%s: tensor name '%s%s' must have 1..%d bytes", fn, prefix ? prefix : "",
                            name, SIMCLR__CKPT_MAX_NAME);
    if ((unsigned)dtype > SIMCLR__CK_F64 || ndim < 0 || ndim > SIMCLR_MAX_DIMS)
        return simclr__fail(SIMCLR_E_INVALID, "%s: tensor '%s%s': bad dtype %d or ndim %d", fn, prefix ? prefix : "",
                            name, (int)dtype, ndim);
    if (simclr__ckpt_find(ck, prefix, name))
        return simclr__fail(SIMCLR_E_INVALID, "%s: duplicate tensor name '%s%s'", fn, prefix ? prefix : "", name);
    if ((unsigned)ck->n >= CK_MAX_COUNT)
        return simclr__fail(SIMCLR_E_INVALID, "%s: more than %u tensors", fn, CK_MAX_COUNT);
    size_t bytes = dtype_size(dtype);
    for (int i = 0; i < ndim; i++) {
        if (dims[i] < 1 || (uint64_t)dims[i] > (uint64_t)PTRDIFF_MAX / bytes)
            return simclr__fail(SIMCLR_E_INVALID, "%s: tensor '%s%s': dim %d is %lld", fn, prefix ? prefix : "", name, i,
                                (long long)dims[i]);
        bytes *= (size_t)dims[i];
    }
    if (ck->n == ck->cap) {
        int cap = ck->cap ? 2 * ck->cap : 64;
        simclr__ckpt_entry *e = simclr__calloc(ck->ctx, (size_t)cap, sizeof *e);
        if (!e) return simclr__nomem(fn, (size_t)cap * sizeof *e);
        if (ck->n) memcpy(e, ck->e, (size_t)ck->n * sizeof *e);
        simclr__free(ck->ctx, ck->e);
        ck->e = e;
        ck->cap = cap;
    }
    char *copy = simclr__malloc(ck->ctx, p + n + 1);
    if (!copy) return simclr__nomem(fn, p + n + 1);
    if (p) memcpy(copy, prefix, p);
    memcpy(copy + p, name, n + 1);
    simclr__ckpt_entry *e = &ck->e[ck->n++];
    memset(e, 0, sizeof *e);
    e->name = copy;
    e->dtype = dtype;
    e->ndim = ndim;
    for (int i = 0; i < ndim; i++) e->dims[i] = dims[i];
    e->bytes = bytes;
    *out = e;
    return SIMCLR_OK;
}

simclr_status simclr__ckpt_add(simclr__ckpt *ck, const char *prefix, const char *name, simclr__ckpt_dtype dtype,
                               int ndim, const int64_t *dims, const void *data)
{
    simclr__ckpt_entry *e;
    SIMCLR__TRY(push(ck, "checkpoint", prefix, name, dtype, ndim, dims, &e));
    e->data = data;
    return SIMCLR_OK;
}

simclr_status simclr__ckpt_add_tensor(simclr__ckpt *ck, const char *prefix, const char *name, const simclr_tensor *t)
{
    return simclr__ckpt_add(ck, prefix, name, t->dtype == SIMCLR_U8 ? SIMCLR__CK_U8 : SIMCLR__CK_F32, t->ndim,
                            t->dims, t->data);
}

simclr_status simclr__ckpt_add_i64(simclr__ckpt *ck, const char *prefix, const char *name, int64_t v)
{
    simclr__ckpt_entry *e;
    SIMCLR__TRY(push(ck, "checkpoint", prefix, name, SIMCLR__CK_I64, 0, NULL, &e));
    memcpy(e->inline_, &v, 8);
    e->data = e->inline_;
    return SIMCLR_OK;
}

simclr_status simclr__ckpt_add_f64(simclr__ckpt *ck, const char *prefix, const char *name, double v)
{
    simclr__ckpt_entry *e;
    SIMCLR__TRY(push(ck, "checkpoint", prefix, name, SIMCLR__CK_F64, 0, NULL, &e));
    memcpy(e->inline_, &v, 8);
    e->data = e->inline_;
    return SIMCLR_OK;
}

/* ---- writing ------------------------------------------------------------ */

static simclr_status deflate_all(simclr_context *ctx, const char *fn, const void *src, size_t n, unsigned char **out,
                                 size_t *out_len)
{
    z_stream zs;
    memset(&zs, 0, sizeof zs);
    zs.zalloc = simclr__zalloc;
    zs.zfree = simclr__zfree;
    zs.opaque = ctx;
    /* Level 1: weights are nearly incompressible noise, so higher levels cost
     * time and save little; the compression is there for the zero-filled
     * buffers and optimizer states. */
    if (deflateInit(&zs, 1) != Z_OK) return simclr__nomem(fn, 268000);
    size_t cap = (size_t)deflateBound(&zs, (uLong)n);
    unsigned char *buf = simclr__malloc(ctx, cap);
    if (!buf) {
        deflateEnd(&zs);
        return simclr__nomem(fn, cap);
    }
    size_t in_done = 0, out_done = 0;
    int zr;
    do {
        size_t in_left = n - in_done, out_left = cap - out_done;
        zs.next_in = (unsigned char *)(uintptr_t)((const unsigned char *)src + in_done);
        zs.avail_in = (uInt)(in_left > (1u << 30) ? (1u << 30) : in_left);
        zs.next_out = buf + out_done;
        zs.avail_out = (uInt)(out_left > (1u << 30) ? (1u << 30) : out_left);
        uInt ai = zs.avail_in, ao = zs.avail_out;
        zr = deflate(&zs, in_left == zs.avail_in ? Z_FINISH : Z_NO_FLUSH);
        in_done += ai - zs.avail_in;
        out_done += ao - zs.avail_out;
    } while (zr == Z_OK || (zr == Z_BUF_ERROR && out_done < cap));
    deflateEnd(&zs);
    if (zr != Z_STREAM_END) {
        simclr__free(ctx, buf);
        return simclr__fail(SIMCLR_E_INTERNAL, "%s: deflate failed (%d)", fn, zr);
    }
    *out = buf;
    *out_len = out_done;
    return SIMCLR_OK;
}

static uint32_t crc(uint32_t c, const void *data, size_t n)
{
    const unsigned char *p = data;
    uLong v = c;
    while (n) {
        uInt k = (uInt)(n > (1u << 30) ? (1u << 30) : n);
        v = crc32(v, p, k);
        p += k;
        n -= k;
    }
    return (uint32_t)v;
}

static simclr_status write_entry(const simclr__ckpt *ck, simclr__afile *af, const simclr__ckpt_entry *e)
{
    unsigned char *z = NULL;
    size_t zlen = 0;
    SIMCLR__TRY(deflate_all(ck->ctx, af->fn, e->data, e->bytes, &z, &zlen));
    unsigned char h[32 + 8 * SIMCLR_MAX_DIMS];
    size_t L = strlen(e->name), k = 0;
    simclr__put_u32(h, (uint32_t)L);
    h[4] = (unsigned char)e->dtype;
    h[5] = (unsigned char)e->ndim;
    h[6] = h[7] = 0;
    k = 8;
    for (int i = 0; i < e->ndim; i++, k += 8) simclr__put_u64(h + k, (uint64_t)e->dims[i]);
    simclr__put_u64(h + k, (uint64_t)e->bytes);
    simclr__put_u64(h + k + 8, (uint64_t)zlen);
    simclr__put_u32(h + k + 16, crc(0, e->data, e->bytes));
    k += 20;
    simclr__put_u32(h + k, crc(crc(0, h, k), e->name, L));
    k += 4;
    simclr_status st = simclr__afile_write(af, h, k);
    if (st == SIMCLR_OK) st = simclr__afile_write(af, e->name, L);
    if (st == SIMCLR_OK) st = simclr__afile_write(af, z, zlen);
    simclr__free(ck->ctx, z);
    return st;
}

simclr_status simclr__ckpt_save(const simclr__ckpt *ck, const char *fn, const char *path)
{
    simclr__afile af;
    SIMCLR__TRY(simclr__afile_open(ck->ctx, fn, path, &af));
    unsigned char h[CK_HEAD];
    size_t alen = strlen(ck->arch);
    memcpy(h, CK_MAGIC, 8);
    simclr__put_u32(h + 8, CK_VERSION);
    simclr__put_u32(h + 12, (uint32_t)ck->n);
    simclr__put_u32(h + 16, (uint32_t)alen);
    simclr__put_u32(h + 20, crc(crc(0, h, 20), ck->arch, alen));
    simclr_status st = simclr__afile_write(&af, h, CK_HEAD);
    if (st == SIMCLR_OK) st = simclr__afile_write(&af, ck->arch, alen);
    for (int i = 0; i < ck->n && st == SIMCLR_OK; i++) st = write_entry(ck, &af, &ck->e[i]);
    if (st != SIMCLR_OK) {
        simclr__afile_abort(&af);
        return st;
    }
    return simclr__afile_commit(&af);
}

/* ---- reading ------------------------------------------------------------ */

static simclr_status inflate_exact(simclr_context *ctx, const char *fn, const char *path, const char *name,
                                   const unsigned char *src, size_t n, unsigned char *dst, size_t want)
{
    z_stream zs;
    memset(&zs, 0, sizeof zs);
    zs.zalloc = simclr__zalloc;
    zs.zfree = simclr__zfree;
    zs.opaque = ctx;
    if (inflateInit(&zs) != Z_OK) return simclr__nomem(fn, 7168);
    size_t in_done = 0, out_done = 0;
    int zr;
    int moved;
    do zr = simclr__inflate_piece(&zs, src, n, &in_done, dst, want, &out_done, &moved);
    while (zr == Z_OK && moved);
    inflateEnd(&zs);
    if (zr == Z_MEM_ERROR) return simclr__nomem(fn, 32768);
    if (zr != Z_STREAM_END || in_done != n || out_done != want)
        return simclr__fail(SIMCLR_E_FORMAT,
                            "%s: '%s': tensor '%s': compressed data is corrupt (zlib %d, %zu of %zu bytes used, %zu of %zu produced)",
                            fn, path, name, zr, in_done, n, out_done, want);
    return SIMCLR_OK;
}

/* Parses and checks one record at d[*pos..len); on success adds it to ck. */
static simclr_status read_entry(simclr__ckpt *ck, const char *fn, const char *path, const unsigned char *d, size_t len,
                                size_t *pos, uint32_t index)
{
    size_t p = *pos, left = len - p;
#define BAD(...) simclr__fail(SIMCLR_E_FORMAT, __VA_ARGS__)
    if (left < 8) return BAD("%s: '%s': tensor %u: file ends inside its header", fn, path, (unsigned)index);
    uint32_t L = simclr__get_u32(d + p);
    int dtype = d[p + 4], ndim = d[p + 5];
    if (ndim > SIMCLR_MAX_DIMS)
        return BAD("%s: '%s': tensor %u: ndim %d exceeds %d", fn, path, (unsigned)index, ndim, SIMCLR_MAX_DIMS);
    size_t hsize = 32 + 8 * (size_t)ndim;
    if (left < hsize) return BAD("%s: '%s': tensor %u: file ends inside its header", fn, path, (unsigned)index);
    if (L == 0 || L > SIMCLR__CKPT_MAX_NAME)
        return BAD("%s: '%s': tensor %u: name length %u out of range 1..%d", fn, path, (unsigned)index, (unsigned)L,
                   SIMCLR__CKPT_MAX_NAME);
    if (left - hsize < L) return BAD("%s: '%s': tensor %u: file ends inside its name", fn, path, (unsigned)index);
    uint32_t hcrc = simclr__get_u32(d + p + hsize - 4);
    if (crc(crc(0, d + p, hsize - 4), d + p + hsize, L) != hcrc)
        return BAD("%s: '%s': tensor %u: header CRC mismatch", fn, path, (unsigned)index);
    /* The header is now known to be what was written; still check every field. */
    char name[SIMCLR__CKPT_MAX_NAME + 1];
    memcpy(name, d + p + hsize, L);
    name[L] = '\0';
    if (strlen(name) != L) return BAD("%s: '%s': tensor %u: name contains a NUL byte", fn, path, (unsigned)index);
    if (dtype > SIMCLR__CK_F64 || d[p + 6] || d[p + 7])
        return BAD("%s: '%s': tensor '%s': unknown dtype %d", fn, path, name, dtype);
    int64_t dims[SIMCLR_MAX_DIMS];
    uint64_t bytes = dtype_size((simclr__ckpt_dtype)dtype);
    for (int i = 0; i < ndim; i++) {
        uint64_t v = simclr__get_u64(d + p + 8 + 8 * (size_t)i);
        if (v == 0 || v > (uint64_t)PTRDIFF_MAX / bytes)
            return BAD("%s: '%s': tensor '%s': dim %d is %llu", fn, path, name, i, (unsigned long long)v);
        dims[i] = (int64_t)v;
        bytes *= v;
    }
    size_t q = p + 8 + 8 * (size_t)ndim;
    uint64_t raw = simclr__get_u64(d + q), zlen = simclr__get_u64(d + q + 8);
    uint32_t dcrc = simclr__get_u32(d + q + 16);
    if (raw != bytes)
        return BAD("%s: '%s': tensor '%s': data length %llu, its shape needs %llu", fn, path, name,
                   (unsigned long long)raw, (unsigned long long)bytes);
    if (zlen == 0 || zlen > left - hsize - L)
        return BAD("%s: '%s': tensor '%s': compressed length %llu, the file has %zu bytes left", fn, path, name,
                   (unsigned long long)zlen, left - hsize - L);
    if (raw > zlen * CK_DEFLATE_RATIO + 64)
        return BAD("%s: '%s': tensor '%s': %llu compressed bytes cannot hold %llu bytes", fn, path, name,
                   (unsigned long long)zlen, (unsigned long long)raw);
    if (simclr__ckpt_find(ck, NULL, name)) return BAD("%s: '%s': tensor '%s' appears twice", fn, path, name);
    simclr__ckpt_entry *e;
    SIMCLR__TRY(push(ck, fn, NULL, name, (simclr__ckpt_dtype)dtype, ndim, dims, &e));
    unsigned char *buf = simclr__malloc(ck->ctx, (size_t)raw);
    if (!buf) return simclr__nomem(fn, (size_t)raw);
    e->owned = buf;
    e->data = buf;
    SIMCLR__TRY(inflate_exact(ck->ctx, fn, path, name, d + p + hsize + L, (size_t)zlen, buf, (size_t)raw));
    if (crc(0, buf, (size_t)raw) != dcrc) return BAD("%s: '%s': tensor '%s': data CRC mismatch", fn, path, name);
    *pos = p + hsize + L + (size_t)zlen;
    return SIMCLR_OK;
#undef BAD
}

simclr_status simclr__ckpt_load(simclr_context *ctx, const char *fn, const char *path, simclr__ckpt **out)
{
    unsigned char *d = NULL;
    size_t len = 0;
    SIMCLR__TRY(simclr__read_file(ctx, fn, path, 0, &d, &len));
    simclr_status st = SIMCLR_OK;
    simclr__ckpt *ck = NULL;
    uint32_t count = 0, alen = 0;
    if (len < CK_HEAD || memcmp(d, CK_MAGIC, 8) != 0)
        st = simclr__fail(SIMCLR_E_FORMAT, "%s: '%s' is not a libsimclr checkpoint (bad magic)", fn, path);
    else if (simclr__get_u32(d + 8) != CK_VERSION)
        st = simclr__fail(SIMCLR_E_FORMAT, "%s: '%s': format version %u, this library reads %u", fn, path,
                          (unsigned)simclr__get_u32(d + 8), CK_VERSION);
    else {
        count = simclr__get_u32(d + 12);
        alen = simclr__get_u32(d + 16);
        if (alen > SIMCLR__CKPT_MAX_ARCH || alen > len - CK_HEAD)
            st = simclr__fail(SIMCLR_E_FORMAT, "%s: '%s': architecture length %u exceeds the file or %d", fn, path,
                              (unsigned)alen, SIMCLR__CKPT_MAX_ARCH);
        else if (crc(crc(0, d, 20), d + CK_HEAD, alen) != simclr__get_u32(d + 20))
            st = simclr__fail(SIMCLR_E_FORMAT, "%s: '%s': header CRC mismatch", fn, path);
        else if (count > CK_MAX_COUNT || count > (len - CK_HEAD - alen) / 33)
            st = simclr__fail(SIMCLR_E_FORMAT, "%s: '%s': tensor count %u does not fit the file", fn, path,
                              (unsigned)count);
        else if (memchr(d + CK_HEAD, 0, alen))
            st = simclr__fail(SIMCLR_E_FORMAT, "%s: '%s': architecture string contains a NUL byte", fn, path);
    }
    char arch[SIMCLR__CKPT_MAX_ARCH + 1];
    if (st == SIMCLR_OK) {
        memcpy(arch, d + CK_HEAD, alen);
        arch[alen] = '\0';
        st = simclr__ckpt_new(ctx, arch, &ck);
    }
    size_t pos = CK_HEAD + (size_t)alen;
    for (uint32_t i = 0; i < count && st == SIMCLR_OK; i++) st = read_entry(ck, fn, path, d, len, &pos, i);
    if (st == SIMCLR_OK && pos != len)
        st = simclr__fail(SIMCLR_E_FORMAT, "%s: '%s': %zu bytes of trailing data after the last tensor", fn, path,
                          len - pos);
    simclr__free(ctx, d);
    if (st != SIMCLR_OK) {
        simclr__ckpt_free(ck);
        return st;
    }
    *out = ck;
    return SIMCLR_OK;
}

simclr_status simclr__ckpt_expect_tensor(const simclr__ckpt *ck, const char *fn, const char *prefix,
                                         const char *name, const simclr_tensor *t)
{
    const simclr__ckpt_entry *e = simclr__ckpt_find(ck, prefix, name);
    simclr__ckpt_dtype want = t->dtype == SIMCLR_U8 ? SIMCLR__CK_U8 : SIMCLR__CK_F32;
    if (!e) return simclr__fail(SIMCLR_E_FORMAT, "%s: checkpoint has no tensor '%s%s'", fn, prefix ? prefix : "", name);
    if (e->dtype != want)
        return simclr__fail(SIMCLR_E_FORMAT, "%s: checkpoint tensor '%s' is %s, expected %s", fn, e->name,
                            dtype_name(e->dtype), dtype_name(want));
    int same = e->ndim == t->ndim;
    for (int i = 0; same && i < t->ndim; i++) same = e->dims[i] == t->dims[i];
    if (!same) {
        char a[96], b[96];
        shape_str(e->ndim, e->dims, a, sizeof a);
        shape_str(t->ndim, t->dims, b, sizeof b);
        return simclr__fail(SIMCLR_E_SHAPE, "%s: checkpoint tensor '%s' has shape %s, the destination %s", fn, e->name,
                            a, b);
    }
    return SIMCLR_OK;
}

void simclr__ckpt_copy_into(const simclr__ckpt_entry *e, simclr_tensor *t) { memcpy(t->data, e->data, e->bytes); }

static simclr_status get_scalar(const simclr__ckpt *ck, const char *fn, const char *prefix, const char *name,
                                simclr__ckpt_dtype dtype, void *v)
{
    const simclr__ckpt_entry *e = simclr__ckpt_find(ck, prefix, name);
    if (!e) return simclr__fail(SIMCLR_E_FORMAT, "%s: checkpoint has no value '%s%s'", fn, prefix ? prefix : "", name);
    if (e->dtype != dtype || e->ndim != 0)
        return simclr__fail(SIMCLR_E_FORMAT, "%s: checkpoint value '%s' is not a %s scalar", fn, e->name,
                            dtype_name(dtype));
    memcpy(v, e->data, 8);
    return SIMCLR_OK;
}

simclr_status simclr__ckpt_get_i64(const simclr__ckpt *ck, const char *fn, const char *prefix, const char *name,
                                   int64_t *v)
{
    return get_scalar(ck, fn, prefix, name, SIMCLR__CK_I64, v);
}

simclr_status simclr__ckpt_get_f64(const simclr__ckpt *ck, const char *fn, const char *prefix, const char *name,
                                   double *v)
{
    return get_scalar(ck, fn, prefix, name, SIMCLR__CK_F64, v);
}
