/* TIFF through libtiff: one page (directory) of a striped or tiled file,
 * 8/16/32-bit integer or 32-bit float samples, gray or RGB, to float32
 * [H, W, C]. libtiff reads from the caller's buffer or descriptor through
 * client procedures (never mapping, never closing it), reports its errors
 * and warnings to this handle's own handlers (libtiff >= 4.5: no global
 * state, nothing printed), and allocates at most a bound derived from
 * max_pixels at once. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <tiffio.h>

#include "internal.h"

typedef struct tctx {
    const simclr__med_source *src;
    uint64_t pos;
    int has_err;
    char err[320];
} tctx;

static tmsize_t t_read(thandle_t h, void *buf, tmsize_t n)
{
    tctx *c = h;
    if (n <= 0) return 0;
    if (c->pos >= c->src->size) return 0;
    uint64_t left = c->src->size - c->pos;
    size_t want = (uint64_t)n < left ? (size_t)n : (size_t)left;
    size_t done = 0;
    if (c->src->fd < 0) {
        memcpy(buf, c->src->data + c->pos, want);
        done = want;
    } else {
        while (done < want) {
            ssize_t got = pread(c->src->fd, (char *)buf + done, want - done, (off_t)(c->pos + done));
            if (got < 0 && errno == EINTR) continue;
            if (got < 0) return done ? (tmsize_t)done : -1;
            if (got == 0) break;
            done += (size_t)got;
        }
    }
    c->pos += done;
    return (tmsize_t)done;
}

static tmsize_t t_write(thandle_t h, void *buf, tmsize_t n)
{
    (void)h, (void)buf, (void)n;
    return -1;
}

static toff_t t_seek(thandle_t h, toff_t off, int whence)
{
    tctx *c = h;
    uint64_t base = whence == SEEK_SET ? 0 : whence == SEEK_CUR ? c->pos : c->src->size;
    if (whence != SEEK_SET && whence != SEEK_CUR && whence != SEEK_END) return (toff_t)-1;
    if (off > UINT64_MAX / 2 || base > UINT64_MAX / 2) return (toff_t)-1;
    c->pos = base + off;
    return c->pos;
}

static int t_close(thandle_t h)
{
    (void)h;
    return 0;
}

static toff_t t_size(thandle_t h) { return ((tctx *)h)->src->size; }

static int t_map(thandle_t h, void **base, toff_t *size)
{
    (void)h, (void)base, (void)size;
    return 0;
}

static void t_unmap(thandle_t h, void *base, toff_t size) { (void)h, (void)base, (void)size; }

static int t_error(TIFF *tif, void *user, const char *module, const char *fmt, va_list ap)
{
    (void)tif, (void)module;
    tctx *c = user;
    if (!c->has_err) {
        vsnprintf(c->err, sizeof c->err, fmt, ap);
        c->has_err = 1;
    }
    return 1; /* handled: libtiff's global handler (stderr) is not called */
}

static int t_warning(TIFF *tif, void *user, const char *module, const char *fmt, va_list ap)
{
    (void)tif, (void)user, (void)module, (void)fmt, (void)ap;
    return 1;
}

/* One sample as float: fmt 1 unsigned, 2 signed, 3 IEEE float. */
static float sample_at(const uint8_t *p, int bytes, int fmt)
{
    if (fmt == SAMPLEFORMAT_IEEEFP) {
        float f;
        memcpy(&f, p, 4);
        return f;
    }
    if (bytes == 1) return fmt == SAMPLEFORMAT_INT ? (float)(int8_t)p[0] : (float)p[0];
    if (bytes == 2) {
        uint16_t u;
        memcpy(&u, p, 2);
        return fmt == SAMPLEFORMAT_INT ? (float)(int16_t)u : (float)u;
    }
    uint32_t u;
    memcpy(&u, p, 4);
    return fmt == SAMPLEFORMAT_INT ? (float)(int32_t)u : (float)u;
}

static const char *libtiff_says(const tctx *c) { return c->has_err ? c->err : "no detail"; }

static simclr_status decode(TIFF *tif, tctx *c, int64_t frame, int64_t max_pixels, simclr_medical_image *img)
{
    const char *name = c->src->name;
    tdir_t pages = TIFFNumberOfDirectories(tif);
    if (pages < 1) return simclr__med_fail(SIMCLR_E_FORMAT, "%s: TIFF without a readable page (%s)", name, libtiff_says(c));
    if (frame >= (int64_t)pages)
        return simclr__med_fail(SIMCLR_E_INVALID, "%s: page %lld is out of range (the file has %lld)", name,
                                (long long)frame, (long long)pages);
    if (!TIFFSetDirectory(tif, (tdir_t)frame))
        return simclr__med_fail(SIMCLR_E_FORMAT, "%s: TIFF page %lld cannot be read: %s", name, (long long)frame,
                                libtiff_says(c));
    uint32_t w = 0, h = 0;
    uint16_t spp = 1, bps = 1, fmt = SAMPLEFORMAT_UINT, photo = 0, planar = PLANARCONFIG_CONTIG,
             compression = COMPRESSION_NONE, extra_n = 0, *extra = NULL;
    if (!TIFFGetField(tif, TIFFTAG_IMAGEWIDTH, &w) || !TIFFGetField(tif, TIFFTAG_IMAGELENGTH, &h))
        return simclr__med_fail(SIMCLR_E_FORMAT, "%s: TIFF page %lld has no image size", name, (long long)frame);
    TIFFGetFieldDefaulted(tif, TIFFTAG_SAMPLESPERPIXEL, &spp);
    TIFFGetFieldDefaulted(tif, TIFFTAG_BITSPERSAMPLE, &bps);
    TIFFGetFieldDefaulted(tif, TIFFTAG_SAMPLEFORMAT, &fmt);
    TIFFGetFieldDefaulted(tif, TIFFTAG_PLANARCONFIG, &planar);
    TIFFGetFieldDefaulted(tif, TIFFTAG_COMPRESSION, &compression);
    TIFFGetFieldDefaulted(tif, TIFFTAG_EXTRASAMPLES, &extra_n, &extra);
    if (!TIFFGetField(tif, TIFFTAG_PHOTOMETRIC, &photo))
        return simclr__med_fail(SIMCLR_E_FORMAT, "%s: TIFF page %lld has no photometric interpretation", name,
                                (long long)frame);
    if (w < 1 || h < 1)
        return simclr__med_fail(SIMCLR_E_FORMAT, "%s: the image has no pixels (%u x %u)", name, (unsigned)h,
                                (unsigned)w);
    if ((int64_t)h > max_pixels / (int64_t)w)
        return simclr__med_fail(SIMCLR_E_FORMAT, "%s: %u x %u pixels exceed max_pixels %lld", name, (unsigned)h,
                                (unsigned)w, (long long)max_pixels);
    if (!TIFFIsCODECConfigured(compression))
        return simclr__med_fail(SIMCLR_E_UNSUPPORTED, "%s: TIFF compression %u is not supported by this libtiff", name,
                                (unsigned)compression);
    int color = spp > extra_n ? spp - extra_n : 0;
    int channels;
    const char *photometric;
    if ((photo == PHOTOMETRIC_MINISBLACK || photo == PHOTOMETRIC_MINISWHITE) && color == 1) {
        channels = 1;
        photometric = photo == PHOTOMETRIC_MINISWHITE ? "MONOCHROME1" : "MONOCHROME2";
    } else if (photo == PHOTOMETRIC_RGB && color == 3) {
        channels = 3;
        photometric = "RGB";
    } else if (photo == PHOTOMETRIC_YCBCR && color == 3 && compression == COMPRESSION_JPEG && bps == 8) {
        if (!TIFFSetField(tif, TIFFTAG_JPEGCOLORMODE, JPEGCOLORMODE_RGB))
            return simclr__med_fail(SIMCLR_E_FORMAT, "%s: TIFF JPEG YCbCr cannot be read as RGB: %s", name,
                                    libtiff_says(c));
        channels = 3;
        photometric = "RGB";
    } else {
        return simclr__med_fail(SIMCLR_E_UNSUPPORTED, "%s: TIFF photometric interpretation %u with %u samples per "
                                "pixel (%u extra) is not supported (gray or RGB)", name, (unsigned)photo,
                                (unsigned)spp, (unsigned)extra_n);
    }
    int ok_fmt = ((fmt == SAMPLEFORMAT_UINT || fmt == SAMPLEFORMAT_INT) && (bps == 8 || bps == 16 || bps == 32)) ||
                 (fmt == SAMPLEFORMAT_IEEEFP && bps == 32);
    if (!ok_fmt)
        return simclr__med_fail(SIMCLR_E_UNSUPPORTED, "%s: TIFF samples of %u bits in sample format %u are not "
                                "supported (8, 16, 32-bit integers, 32-bit float)", name, (unsigned)bps,
                                (unsigned)fmt);
    if (planar != PLANARCONFIG_CONTIG && planar != PLANARCONFIG_SEPARATE)
        return simclr__med_fail(SIMCLR_E_FORMAT, "%s: TIFF planar configuration %u is invalid", name, (unsigned)planar);
    int separate = planar == PLANARCONFIG_SEPARATE && spp > 1;
    int bytes = bps / 8;
    int64_t stride = separate ? 1 : spp; /* samples per pixel in a decoded block */
    int tiled = TIFFIsTiled(tif);
    uint32_t bw = w, bh = 0; /* block (strip or tile) width and height */
    if (tiled) {
        if (!TIFFGetField(tif, TIFFTAG_TILEWIDTH, &bw) || !TIFFGetField(tif, TIFFTAG_TILELENGTH, &bh) || bw < 1 ||
            bh < 1)
            return simclr__med_fail(SIMCLR_E_FORMAT, "%s: TIFF tile size missing or 0", name);
        int64_t cap = max_pixels > ((int64_t)1 << 20) ? max_pixels : ((int64_t)1 << 20);
        if ((int64_t)bh > cap / (int64_t)bw)
            return simclr__med_fail(SIMCLR_E_FORMAT, "%s: TIFF tiles of %u x %u pixels are too large", name,
                                    (unsigned)bh, (unsigned)bw);
    } else {
        TIFFGetFieldDefaulted(tif, TIFFTAG_ROWSPERSTRIP, &bh);
        if (bh < 1 || bh > h) bh = h;
    }
    size_t block = (size_t)bw * bh * (size_t)stride * (size_t)bytes;
    size_t count = (size_t)w * h * (size_t)channels;
    uint8_t *buf = malloc(block);
    float *out = malloc(count * sizeof(float));
    char *sop = calloc(1, 1), *gid = calloc(1, 1);
    if (!buf || !out || !sop || !gid) {
        free(buf), free(out), free(sop), free(gid);
        return simclr__med_fail(SIMCLR_E_NOMEM, "%s: no memory for %u x %u x %d values", name, (unsigned)h, (unsigned)w,
                                channels);
    }
    int planes = separate ? channels : 1;
    for (int pl = 0; pl < planes; pl++)
        for (uint32_t y0 = 0; y0 < h; y0 += bh)
            for (uint32_t x0 = 0; x0 < w; x0 += bw) {
                uint32_t rows = h - y0 < bh ? h - y0 : bh, cols = w - x0 < bw ? w - x0 : bw;
                tmsize_t need, got;
                uint32_t id;
                id = tiled ? TIFFComputeTile(tif, x0, y0, 0, (uint16_t)pl) : TIFFComputeStrip(tif, y0, (uint16_t)pl);
                need = tiled ? (tmsize_t)block : (tmsize_t)((size_t)rows * w * (size_t)stride * (size_t)bytes);
                /* Uncompressed, libtiff reads what the geometry asks for
                 * whatever the byte count says (the bytes after a short
                 * block would become pixels): the count must cover it. */
                uint64_t have = TIFFGetStrileByteCount(tif, id);
                if (compression == COMPRESSION_NONE && have < (uint64_t)need) {
                    free(buf), free(out), free(sop), free(gid);
                    return simclr__med_fail(SIMCLR_E_FORMAT, "%s: TIFF %s %u holds %llu bytes, %lld needed (truncated)",
                                            name, tiled ? "tile" : "strip", (unsigned)id, (unsigned long long)have,
                                            (long long)need);
                }
                got = tiled ? TIFFReadEncodedTile(tif, id, buf, need) : TIFFReadEncodedStrip(tif, id, buf, need);
                if (got < need) {
                    free(buf), free(out), free(sop), free(gid);
                    return simclr__med_fail(SIMCLR_E_FORMAT, "%s: TIFF %s %u is corrupt or truncated (%lld of %lld "
                                            "bytes decoded): %s", name, tiled ? "tile" : "strip", (unsigned)id,
                                            (long long)got, (long long)need, libtiff_says(c));
                }
                for (uint32_t r = 0; r < rows; r++)
                    for (uint32_t x = 0; x < cols; x++) {
                        const uint8_t *px = buf + ((size_t)r * bw + x) * (size_t)stride * (size_t)bytes;
                        float *o = out + (((size_t)(y0 + r) * w) + x0 + x) * (size_t)channels;
                        if (separate) o[pl] = sample_at(px, bytes, fmt);
                        else
                            for (int k = 0; k < channels; k++) o[k] = sample_at(px + (size_t)k * bytes, bytes, fmt);
                    }
            }
    free(buf);
    img->data = out;
    img->h = h, img->w = w, img->c = channels;
    img->frames = pages, img->frame = frame;
    img->format = SIMCLR_MEDICAL_TIFF;
    img->photometric = photometric;
    img->inverted = photo == PHOTOMETRIC_MINISWHITE;
    img->bits = bps, img->is_signed = fmt != SAMPLEFORMAT_UINT;
    img->slope = 1, img->intercept = 0, img->has_window = 0;
    img->sop_uid = sop, img->group_id = gid;
    return SIMCLR_OK;
}

simclr_status simclr__med_tiff(const simclr__med_source *src, int64_t frame, int64_t max_pixels,
                               simclr_medical_image *img)
{
    tctx c = {src, 0, 0, {0}};
    TIFFOpenOptions *opts = TIFFOpenOptionsAlloc();
    if (!opts) return simclr__med_fail(SIMCLR_E_NOMEM, "%s: no memory for libtiff's options", src->name);
    TIFFOpenOptionsSetErrorHandlerExtR(opts, t_error, &c);
    TIFFOpenOptionsSetWarningHandlerExtR(opts, t_warning, &c);
    /* libtiff's largest single allocation: a strip or tile of the largest
     * allowed image (16 bytes a pixel) plus 64 MB of directories. */
    int64_t room = (INT64_MAX - ((int64_t)1 << 26)) / 16;
    TIFFOpenOptionsSetMaxSingleMemAlloc(opts, max_pixels > room ? 0 : (tmsize_t)(max_pixels * 16 + ((int64_t)1 << 26)));
    /* "rm": read-only, never memory-mapped. */
    TIFF *tif = TIFFClientOpenExt(src->name, "rm", &c, t_read, t_write, t_seek, t_close, t_size, t_map, t_unmap, opts);
    TIFFOpenOptionsFree(opts);
    if (!tif) return simclr__med_fail(SIMCLR_E_FORMAT, "%s: not a TIFF libtiff can read: %s", src->name, libtiff_says(&c));
    simclr_status st = decode(tif, &c, frame, max_pixels, img);
    TIFFClose(tif);
    return st;
}
