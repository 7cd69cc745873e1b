#include "file.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#ifdef SIMCLR_FAULT_INJECTION
long simclr__io_fault_at;
long simclr__io_calls;
/* True when this operation is the one to fail; sets errno as the OS would. */
static int io_fault(void)
{
    if (!simclr__io_fault_at || ++simclr__io_calls != simclr__io_fault_at) return 0;
    errno = EIO;
    return 1;
}
#define IO_FAULT() io_fault()
#else
#define IO_FAULT() 0
#endif

/* deflate cannot shrink data by more than about 1032:1, so a gzip file of
 * c bytes decompresses to at most this many; a header claiming more is a lie
 * we refuse before allocating. */
static size_t gzip_bound(size_t compressed)
{
    if (compressed > (SIZE_MAX - 4096) / 1032) return SIZE_MAX;
    return compressed * 1032 + 4096;
}

void *simclr__zalloc(void *opaque, unsigned items, unsigned size)
{
    return simclr__calloc((simclr_context *)opaque, items, size);
}

void simclr__zfree(void *opaque, void *ptr) { simclr__free((simclr_context *)opaque, ptr); }

static simclr_status read_exact(const char *fn, const char *path, FILE *f, unsigned char *dst, size_t n)
{
    size_t got = fread(dst, 1, n, f);
    if (got != n) {
        if (ferror(f)) return simclr__fail(SIMCLR_E_IO, "%s: '%s': read error: %s", fn, path, strerror(errno));
        return simclr__fail(SIMCLR_E_IO, "%s: '%s': file shrank while reading (%zu of %zu bytes)", fn, path, got, n);
    }
    return SIMCLR_OK;
}

static simclr_status gunzip(simclr_context *ctx, const char *fn, const char *path, const unsigned char *src,
                            size_t src_len, unsigned char **data, size_t *len)
{
    /* The trailer's ISIZE (length mod 2^32) is only a hint for the first
     * allocation; the buffer grows when it was wrong, up to the ratio bound. */
    size_t bound = gzip_bound(src_len);
    size_t cap = src_len >= 4 ? simclr__get_u32(src + src_len - 4) : 0;
    if (cap < 64) cap = 64;
    if (cap > bound) cap = bound;
    unsigned char *out = simclr__malloc(ctx, cap);
    if (!out) return simclr__nomem(fn, cap);
    z_stream zs;
    memset(&zs, 0, sizeof zs);
    zs.zalloc = simclr__zalloc;
    zs.zfree = simclr__zfree;
    zs.opaque = ctx;
    int zr = inflateInit2(&zs, 15 + 16);
    if (zr != Z_OK) {
        simclr__free(ctx, out);
        return zr == Z_MEM_ERROR ? simclr__nomem(fn, 7168) : simclr__fail(SIMCLR_E_INTERNAL, "%s: inflateInit2 failed", fn);
    }
    size_t done = 0, consumed = 0;
    simclr_status st = SIMCLR_OK;
    for (;;) {
        if (done == cap) {
            if (cap >= bound) {
                st = simclr__fail(SIMCLR_E_FORMAT, "%s: '%s': gzip data expands beyond %zu bytes", fn, path, bound);
                break;
            }
            size_t ncap = cap > bound / 2 ? bound : cap * 2;
            unsigned char *n = simclr__malloc(ctx, ncap);
            if (!n) {
                st = simclr__nomem(fn, ncap);
                break;
            }
            memcpy(n, out, done);
            simclr__free(ctx, out);
            out = n;
            cap = ncap;
        }
        int moved;
        zr = simclr__inflate_piece(&zs, src, src_len, &consumed, out, cap, &done, &moved);
        if (zr == Z_STREAM_END) {
            if (consumed != src_len)
                st = simclr__fail(SIMCLR_E_FORMAT, "%s: '%s': %zu bytes of trailing data after the gzip stream", fn,
                                  path, src_len - consumed);
            break;
        }
        if (zr == Z_MEM_ERROR) {
            st = simclr__nomem(fn, 32768);
            break;
        }
        if (zr == Z_NEED_DICT || zr == Z_DATA_ERROR) {
            st = simclr__fail(SIMCLR_E_FORMAT, "%s: '%s': corrupt gzip data (%s)", fn, path,
                              zs.msg ? zs.msg : "bad stream");
            break;
        }
        if (zr == Z_BUF_ERROR && consumed == src_len && done < cap) {
            st = simclr__fail(SIMCLR_E_FORMAT, "%s: '%s': gzip stream is truncated", fn, path);
            break;
        }
    }
    inflateEnd(&zs);
    if (st != SIMCLR_OK) {
        simclr__free(ctx, out);
        return st;
    }
    *data = out;
    *len = done;
    return SIMCLR_OK;
}

simclr_status simclr__read_file(simclr_context *ctx, const char *fn, const char *path, int allow_gzip,
                                unsigned char **data, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f) return simclr__fail(SIMCLR_E_IO, "%s: cannot open '%s': %s", fn, path, strerror(errno));
    struct stat sb;
    if (fstat(fileno(f), &sb) != 0 || !S_ISREG(sb.st_mode)) {
        fclose(f);
        return simclr__fail(SIMCLR_E_IO, "%s: '%s' is not a regular file", fn, path);
    }
    if ((uint64_t)sb.st_size > (uint64_t)PTRDIFF_MAX) {
        fclose(f);
        return simclr__fail(SIMCLR_E_IO, "%s: '%s' is too large", fn, path);
    }
    size_t size = (size_t)sb.st_size;
    unsigned char *raw = simclr__malloc(ctx, size);
    if (!raw) {
        fclose(f);
        return simclr__nomem(fn, size);
    }
    simclr_status st = read_exact(fn, path, f, raw, size);
    fclose(f);
    if (st != SIMCLR_OK) {
        simclr__free(ctx, raw);
        return st;
    }
    if (allow_gzip && size >= 2 && raw[0] == 0x1f && raw[1] == 0x8b) {
        st = gunzip(ctx, fn, path, raw, size, data, len);
        simclr__free(ctx, raw);
        return st;
    }
    *data = raw;
    *len = size;
    return SIMCLR_OK;
}

simclr_status simclr__afile_open(simclr_context *ctx, const char *fn, const char *path, simclr__afile *af)
{
    memset(af, 0, sizeof *af);
    af->ctx = ctx;
    af->path = path;
    af->fn = fn;
    size_t n = strlen(path) + 32;
    af->tmp = simclr__malloc(ctx, n);
    if (!af->tmp) return simclr__nomem(fn, n);
    snprintf(af->tmp, n, "%s.tmp.%ld", path, (long)getpid());
    af->f = IO_FAULT() ? NULL : fopen(af->tmp, "wb");
    if (!af->f) {
        simclr_status st = simclr__fail(SIMCLR_E_IO, "%s: cannot create '%s': %s", fn, af->tmp, strerror(errno));
        simclr__free(ctx, af->tmp);
        af->tmp = NULL;
        return st;
    }
    return SIMCLR_OK;
}

simclr_status simclr__afile_write(simclr__afile *af, const void *data, size_t n)
{
    if (af->failed) return SIMCLR_E_IO;
    if (n && (IO_FAULT() || fwrite(data, 1, n, af->f) != n)) {
        af->failed = 1;
        return simclr__fail(SIMCLR_E_IO, "%s: writing '%s' failed: %s", af->fn, af->tmp, strerror(errno));
    }
    return SIMCLR_OK;
}

void simclr__afile_abort(simclr__afile *af)
{
    if (af->f) fclose(af->f);
    if (af->tmp) {
        remove(af->tmp);
        simclr__free(af->ctx, af->tmp);
    }
    af->f = NULL;
    af->tmp = NULL;
}

/* Makes the rename itself durable; a failure here loses nothing already
 * visible, so it is not reported. */
static void sync_parent_dir(simclr_context *ctx, const char *path)
{
    const char *slash = strrchr(path, '/');
    size_t n = slash ? (size_t)(slash - path) : 0;
    char *dir = simclr__malloc(ctx, n + 2);
    if (!dir) return;
    if (n == 0) memcpy(dir, slash ? "/" : ".", 2);
    else {
        memcpy(dir, path, n);
        dir[n] = '\0';
    }
    int fd = open(dir, O_RDONLY);
    if (fd >= 0) {
        fsync(fd);
        close(fd);
    }
    simclr__free(ctx, dir);
}

simclr_status simclr__afile_commit(simclr__afile *af)
{
    if (af->failed) {
        simclr__afile_abort(af);
        return SIMCLR_E_IO;
    }
    simclr_status st = SIMCLR_OK;
    if (IO_FAULT() || fflush(af->f) != 0 || IO_FAULT() || fsync(fileno(af->f)) != 0)
        st = simclr__fail(SIMCLR_E_IO, "%s: flushing '%s' failed: %s", af->fn, af->tmp, strerror(errno));
    int rc = fclose(af->f);
    if (st == SIMCLR_OK && rc == 0 && IO_FAULT()) rc = -1;
    af->f = NULL;
    if (st == SIMCLR_OK && rc != 0)
        st = simclr__fail(SIMCLR_E_IO, "%s: closing '%s' failed: %s", af->fn, af->tmp, strerror(errno));
    if (st == SIMCLR_OK && (IO_FAULT() || rename(af->tmp, af->path) != 0))
        st = simclr__fail(SIMCLR_E_IO, "%s: cannot rename '%s' to '%s': %s", af->fn, af->tmp, af->path,
                          strerror(errno));
    if (st != SIMCLR_OK) {
        simclr__afile_abort(af);
        return st;
    }
    sync_parent_dir(af->ctx, af->path);
    simclr__free(af->ctx, af->tmp);
    af->tmp = NULL;
    return SIMCLR_OK;
}

int simclr__inflate_piece(void *zsp, const unsigned char *src, size_t src_len, size_t *src_used, unsigned char *dst,
                          size_t dst_len, size_t *dst_used, int *moved)
{
    z_stream *zs = zsp;
    size_t in_left = src_len - *src_used, out_left = dst_len - *dst_used;
    zs->next_in = (unsigned char *)(uintptr_t)(src + *src_used);
    zs->avail_in = (uInt)(in_left > (1u << 30) ? (1u << 30) : in_left);
    zs->next_out = dst + *dst_used;
    zs->avail_out = (uInt)(out_left > (1u << 30) ? (1u << 30) : out_left);
    uInt ai = zs->avail_in, ao = zs->avail_out;
    int zr = inflate(zs, Z_NO_FLUSH);
    *src_used += ai - zs->avail_in;
    *dst_used += ao - zs->avail_out;
    *moved = ai != zs->avail_in || ao != zs->avail_out;
    return zr;
}
