/* The PNG writer (8-bit gray, RGB or RGBA; zlib only, no libpng needed to
 * write), atomic: a temporary file in the same directory, flushed, then
 * renamed over the target, so a failure never leaves half a file. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <zlib.h>

#include "internal.h"

static void be32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24), p[1] = (uint8_t)(v >> 16), p[2] = (uint8_t)(v >> 8), p[3] = (uint8_t)v;
}

static int chunk(FILE *f, const char *type, const uint8_t *data, uint32_t len)
{
    uint8_t head[8], tail[4];
    be32(head, len);
    memcpy(head + 4, type, 4);
    uLong crc = crc32(0L, (const Bytef *)type, 4);
    if (len) crc = crc32(crc, data, len);
    be32(tail, (uint32_t)crc);
    return fwrite(head, 1, 8, f) == 8 && (len == 0 || fwrite(data, 1, len, f) == len) && fwrite(tail, 1, 4, f) == 4
               ? 0
               : -1;
}

simclr_status simclr_image_write_png(const char *path, const uint8_t *pixels, int64_t height, int64_t width,
                                     int channels)
{
    static const char fn[] = "simclr_image_write_png";
    if (!path || !pixels) return simclr__img_fail(SIMCLR_E_INVALID, "%s: path or pixels is NULL", fn);
    if (channels != 1 && channels != 3 && channels != 4)
        return simclr__img_fail(SIMCLR_E_INVALID, "%s: %s: channels %d must be 1, 3 or 4", fn, path, channels);
    if (height < 1 || width < 1 || height > (1 << 24) || width > (1 << 24) ||
        (double)height * (double)(width * channels + 1) > 2e9)
        return simclr__img_fail(SIMCLR_E_INVALID, "%s: %s: %lld x %lld pixels out of range", fn, path, (long long)height,
                          (long long)width);
    size_t stride = (size_t)width * (size_t)channels + 1, raw_len = stride * (size_t)height;
    uint8_t *raw = malloc(raw_len);
    uLongf z_len = compressBound((uLong)raw_len);
    uint8_t *z = malloc(z_len);
    if (!raw || !z) {
        free(raw);
        free(z);
        return simclr__img_fail(SIMCLR_E_NOMEM, "%s: %s: no memory for %zu bytes", fn, path, raw_len);
    }
    for (int64_t y = 0; y < height; y++) {
        raw[(size_t)y * stride] = 0; /* filter: none */
        memcpy(raw + (size_t)y * stride + 1, pixels + (size_t)y * (stride - 1), stride - 1);
    }
    int zrc = compress2(z, &z_len, raw, (uLong)raw_len, 6);
    free(raw);
    if (zrc != Z_OK) {
        free(z);
        return simclr__img_fail(SIMCLR_E_INTERNAL, "%s: %s: zlib error %d", fn, path, zrc);
    }
    size_t plen = strlen(path);
    char *tmp = malloc(plen + 32);
    if (!tmp) {
        free(z);
        return simclr__img_fail(SIMCLR_E_NOMEM, "%s: %s: no memory", fn, path);
    }
    snprintf(tmp, plen + 32, "%s.tmp.%ld", path, (long)getpid());
    FILE *f = fopen(tmp, "wb");
    if (!f) {
        int e = errno;
        free(z);
        free(tmp);
        return simclr__img_fail(SIMCLR_E_IO, "%s: cannot create %s: %s", fn, path, strerror(e));
    }
    uint8_t ihdr[13];
    be32(ihdr, (uint32_t)width);
    be32(ihdr + 4, (uint32_t)height);
    ihdr[8] = 8;
    ihdr[9] = channels == 1 ? 0 : channels == 3 ? 2 : 6;
    ihdr[10] = ihdr[11] = ihdr[12] = 0;
    int bad = fwrite("\x89PNG\r\n\x1a\n", 1, 8, f) != 8 || chunk(f, "IHDR", ihdr, 13) ||
              chunk(f, "IDAT", z, (uint32_t)z_len) || chunk(f, "IEND", NULL, 0);
    free(z);
    bad |= fflush(f) != 0;
    bad |= fsync(fileno(f)) != 0;
    int e = errno;
    bad |= fclose(f) != 0;
    if (!bad && rename(tmp, path) != 0) bad = 1, e = errno;
    if (bad) {
        remove(tmp);
        free(tmp);
        return simclr__img_fail(SIMCLR_E_IO, "%s: cannot write %s: %s", fn, path, strerror(e));
    }
    free(tmp);
    return SIMCLR_OK;
}
