/* Decoding entry points: the format told by its signature (never by the
 * file name), then conversion to the channels asked for (PIL's rules:
 * gray = (19595 R + 38470 G + 7471 B + 32768) >> 16, CMYK as PIL's
 * cmyk2rgb) and the EXIF orientation applied (PIL's exif_transpose). */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "internal.h"

simclr_status simclr__img_fail(simclr_status status, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return simclr_error_set(status, msg);
}

static uint8_t muldiv255(unsigned a, unsigned b)
{
    unsigned t = a * b + 128;
    return (uint8_t)(((t >> 8) + t) >> 8);
}

static uint8_t gray_of(const uint8_t *p) { return (uint8_t)((19595u * p[0] + 38470u * p[1] + 7471u * p[2] + 0x8000u) >> 16); }

/* raw (1, 3 or 4 channels) -> out (channels 1 or 3), same geometry. */
static void convert(const simclr__img_raw *raw, int channels, uint8_t *out)
{
    int64_t n = raw->h * raw->w;
    for (int64_t i = 0; i < n; i++) {
        const uint8_t *s = raw->px + i * raw->c;
        uint8_t rgb[3];
        if (raw->c == 1) rgb[0] = rgb[1] = rgb[2] = s[0];
        else if (raw->c == 3) rgb[0] = s[0], rgb[1] = s[1], rgb[2] = s[2];
        else {
            unsigned nk = s[3]; /* stored inverted: 255 - ink */
            for (int k = 0; k < 3; k++) {
                int v = (int)nk - muldiv255(255u - s[k], nk);
                rgb[k] = (uint8_t)(v < 0 ? 0 : v);
            }
        }
        if (channels == 3) memcpy(out + i * 3, rgb, 3);
        else out[i] = raw->c == 1 ? s[0] : gray_of(rgb);
    }
}

/* Applies EXIF orientation o to src (h x w x c) into dst; returns the new size. */
static void orient(const uint8_t *src, int64_t h, int64_t w, int c, int o, uint8_t *dst, int64_t *oh, int64_t *ow)
{
    int swap = o >= 5;
    *oh = swap ? w : h, *ow = swap ? h : w;
    for (int64_t y = 0; y < *oh; y++)
        for (int64_t x = 0; x < *ow; x++) {
            int64_t sy, sx;
            switch (o) {
            case 2: sy = y, sx = w - 1 - x; break;
            case 3: sy = h - 1 - y, sx = w - 1 - x; break;
            case 4: sy = h - 1 - y, sx = x; break;
            case 5: sy = x, sx = y; break;
            case 6: sy = h - 1 - x, sx = y; break;
            case 7: sy = h - 1 - x, sx = w - 1 - y; break;
            case 8: sy = x, sx = w - 1 - y; break;
            default: sy = y, sx = x; break;
            }
            memcpy(dst + (y * *ow + x) * c, src + (sy * w + sx) * c, (size_t)c);
        }
}

simclr_status simclr_image_decode_memory(const void *data, size_t size, const char *name, int channels,
                                            int64_t max_pixels, int min_side, uint8_t **pixels, int64_t *height,
                                            int64_t *width)
{
    static const char fn[] = "simclr_image_decode";
    if (!name) name = "<memory>";
    if (!data || !pixels || !height || !width)
        return simclr__img_fail(SIMCLR_E_INVALID, "%s: %s: data, pixels, height or width is NULL", fn, name);
    if (channels != 1 && channels != 3)
        return simclr__img_fail(SIMCLR_E_INVALID, "%s: %s: channels %d must be 1 or 3", fn, name, channels);
    if (max_pixels < 1) max_pixels = SIMCLR_IMAGE_DEFAULT_MAX_PIXELS;
    const uint8_t *d = data;
    simclr__img_raw raw = {0};
    simclr_status st;
    if (size >= 8 && memcmp(d, "\x89PNG\r\n\x1a\n", 8) == 0)
        st = simclr__img_decode_png(d, size, name, max_pixels, &raw);
    else if (size >= 3 && d[0] == 0xff && d[1] == 0xd8 && d[2] == 0xff)
        st = simclr__img_decode_jpeg(d, size, name, max_pixels, min_side, &raw);
    else if (size == 0)
        return simclr__img_fail(SIMCLR_E_FORMAT, "%s: the file is empty", name);
    else
        return simclr__img_fail(SIMCLR_E_FORMAT, "%s: not a PNG or JPEG image (unknown signature)", name);
    if (st != SIMCLR_OK) return st;
    if (raw.h < 1 || raw.w < 1) {
        free(raw.px);
        return simclr__img_fail(SIMCLR_E_FORMAT, "%s: the image has no pixels (%lld x %lld)", name, (long long)raw.h,
                          (long long)raw.w);
    }
    size_t bytes = (size_t)raw.h * (size_t)raw.w * (size_t)channels;
    uint8_t *conv = (raw.c == channels) ? raw.px : malloc(bytes);
    if (!conv) {
        free(raw.px);
        return simclr__img_fail(SIMCLR_E_NOMEM, "%s: no memory to convert %lld x %lld pixels", name, (long long)raw.h,
                          (long long)raw.w);
    }
    if (conv != raw.px) {
        convert(&raw, channels, conv);
        free(raw.px);
    }
    int64_t h = raw.h, w = raw.w;
    if (raw.orientation != 1) {
        uint8_t *o = malloc(bytes);
        if (!o) {
            free(conv);
            return simclr__img_fail(SIMCLR_E_NOMEM, "%s: no memory to orient %lld x %lld pixels", name, (long long)h,
                              (long long)w);
        }
        orient(conv, raw.h, raw.w, channels, raw.orientation, o, &h, &w);
        free(conv);
        conv = o;
    }
    *pixels = conv;
    *height = h;
    *width = w;
    return SIMCLR_OK;
}

static const char *kind_of(mode_t mode)
{
    return S_ISDIR(mode) ? "a directory" : S_ISFIFO(mode) ? "a FIFO" : S_ISSOCK(mode) ? "a socket"
         : S_ISCHR(mode) ? "a character device" : S_ISBLK(mode) ? "a block device" : "not a file";
}

/* Reads a whole regular file; SIMCLR_E_IO naming it. Anything else is
 * refused before it is opened (a FIFO would block open() until a writer
 * comes, /dev/zero would be read until memory runs out, a device may act
 * on open) and again on the opened descriptor, in case the entry changed in
 * between: O_NONBLOCK makes that open return at once whatever it finds. */
simclr_status simclr__img_read_file(const char *path, uint8_t **data, size_t *size)
{
    struct stat sb;
    if (stat(path, &sb) != 0) return simclr__img_fail(SIMCLR_E_IO, "%s: cannot open: %s", path, strerror(errno));
    if (!S_ISREG(sb.st_mode))
        return simclr__img_fail(SIMCLR_E_IO, "%s: not a regular file (%s)", path, kind_of(sb.st_mode));
    int fd;
    do fd = open(path, O_RDONLY | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
    while (fd < 0 && errno == EINTR);
    if (fd < 0) return simclr__img_fail(SIMCLR_E_IO, "%s: cannot open: %s", path, strerror(errno));
    int flags = fcntl(fd, F_GETFL);
    if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode) || flags < 0 || fcntl(fd, F_SETFL, flags & ~O_NONBLOCK) != 0) {
        int saved = errno;
        int regular = S_ISREG(sb.st_mode);
        close(fd);
        return regular ? simclr__img_fail(SIMCLR_E_IO, "%s: cannot open: %s", path, strerror(saved))
                       : simclr__img_fail(SIMCLR_E_IO, "%s: not a regular file (%s)", path, kind_of(sb.st_mode));
    }
    /* The size is a hint (the file may grow or shrink while it is read):
     * one byte more than it, so that the read meeting the end needs no
     * reallocation. */
    size_t cap = sb.st_size >= 0 && (uintmax_t)sb.st_size < (uintmax_t)SIZE_MAX / 2 ? (size_t)sb.st_size + 1 : 1 << 16;
    size_t n = 0;
    uint8_t *buf = malloc(cap);
    int err = 0;
    while (buf) {
        if (n == cap) {
            uint8_t *bigger = cap > SIZE_MAX / 2 ? NULL : realloc(buf, cap * 2);
            if (!bigger) {
                free(buf);
                buf = NULL;
                break;
            }
            buf = bigger, cap *= 2;
        }
        size_t want = cap - n < (size_t)1 << 30 ? cap - n : (size_t)1 << 30;
        ssize_t got = read(fd, buf + n, want);
        if (got < 0 && errno == EINTR) continue;
        if (got < 0) err = errno;
        if (got <= 0) break;
        n += (size_t)got;
    }
    close(fd);
    if (!buf) return simclr__img_fail(SIMCLR_E_NOMEM, "%s: no memory to read the file", path);
    if (err) {
        free(buf);
        return simclr__img_fail(SIMCLR_E_IO, "%s: read error: %s", path, strerror(err));
    }
    *data = buf;
    *size = n;
    return SIMCLR_OK;
}

simclr_status simclr_image_decode_file(const char *path, int channels, int64_t max_pixels, int min_side,
                                          uint8_t **pixels, int64_t *height, int64_t *width)
{
    if (!path) return simclr__img_fail(SIMCLR_E_INVALID, "simclr_image_decode_file: path is NULL");
    uint8_t *data;
    size_t size;
    simclr_status st = simclr__img_read_file(path, &data, &size);
    if (st != SIMCLR_OK) return st;
    st = simclr_image_decode_memory(data, size, path, channels, max_pixels, min_side, pixels, height, width);
    free(data);
    return st;
}

void simclr_image_free(uint8_t *pixels) { free(pixels); }
