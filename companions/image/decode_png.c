/* PNG through libpng: every colour type and bit depth is normalized to 8-bit
 * gray or RGB (palette expanded, low bit depths expanded, 16-bit scaled
 * with rounding, alpha dropped as PIL's convert("RGB") does, tRNS ignored).
 * libpng reports errors by longjmp inside this file only. */
#include <png.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

typedef struct reader {
    const uint8_t *data;
    size_t size, pos;
    size_t alloc_cap; /* the largest block libpng may allocate for this file */
    char message[200];
} reader;

/* libpng's allocations for one file. Some chunk handlers allocate what a
 * field of the file declares before checking it against the data (a
 * 101-byte file asked for 1.2 GB): nothing libpng legitimately needs for a
 * file of this size and declared width exceeds alloc_cap, so larger
 * requests fail here (libpng reports them, or drops the chunk). */
static png_voidp on_malloc(png_structp png, png_alloc_size_t n)
{
    reader *r = png_get_mem_ptr(png);
    if (n > r->alloc_cap) {
        if (!r->message[0])
            snprintf(r->message, sizeof r->message, "a chunk asks for %llu bytes, more than a file of %llu bytes can hold",
                     (unsigned long long)n, (unsigned long long)r->size);
        return NULL;
    }
    return malloc(n);
}

static void on_free(png_structp png, png_voidp p)
{
    (void)png;
    free(p);
}

static void on_read(png_structp png, png_bytep out, png_size_t n)
{
    reader *r = png_get_io_ptr(png);
    if (n > r->size - r->pos) {
        snprintf(r->message, sizeof r->message, "truncated (the file ends inside the image data)");
        png_longjmp(png, 1);
    }
    memcpy(out, r->data + r->pos, n);
    r->pos += n;
}

static void on_error(png_structp png, png_const_charp msg)
{
    reader *r = png_get_error_ptr(png);
    if (!r->message[0]) snprintf(r->message, sizeof r->message, "%s", msg);
    png_longjmp(png, 1);
}

static void on_warning(png_structp png, png_const_charp msg) { (void)png, (void)msg; }

simclr_status simclr__img_decode_png(const uint8_t *data, size_t size, const char *name, int64_t max_pixels,
                               simclr__img_raw *raw)
{
    /* The declared size, checked before libpng reads on (IHDR is always the
     * first chunk: a signature, length, "IHDR", width, height). */
    uint32_t declared_w = 0;
    if (size >= 24 && memcmp(data + 12, "IHDR", 4) == 0) {
        uint32_t dw = (uint32_t)data[16] << 24 | (uint32_t)data[17] << 16 | (uint32_t)data[18] << 8 | data[19];
        uint32_t dh = (uint32_t)data[20] << 24 | (uint32_t)data[21] << 16 | (uint32_t)data[22] << 8 | data[23];
        declared_w = dw;
        /* unsigned: two 32-bit sizes overflow int64_t (found by tests/fuzz/fuzz_image) */
        if ((uint64_t)dw * dh > (uint64_t)max_pixels)
            return simclr__img_fail(SIMCLR_E_FORMAT, "%s: PNG of %u x %u pixels exceeds the limit of %lld pixels", name,
                              (unsigned)dw, (unsigned)dh, (long long)max_pixels);
    }
    /* libpng's own largest blocks: a chunk (at most the file), the inflated
     * ancillary data it is allowed (chunk_limit below), and row buffers of
     * at most 8 bytes per pixel of the declared width (RGBA, 16-bit), a few
     * of them; our pixel buffer is allocated here, not by libpng. */
    size_t chunk_limit = size < (8000000 - 65536) / 2 ? 2 * size + 65536 : 8000000;
    reader r = {data, size, 0, chunk_limit + 64 * (size_t)declared_w + 65536, ""};
    png_structp png = png_create_read_struct_2(PNG_LIBPNG_VER_STRING, &r, on_error, on_warning, &r, on_malloc, on_free);
    if (!png) return simclr__img_fail(SIMCLR_E_NOMEM, "%s: PNG: cannot create a decoder", name);
    /* libpng allocates an ancillary chunk's declared length before reading
     * it (8 MB by default): a 40-byte file could make every decode allocate
     * and clear megabytes. No chunk holds more than the file does; the
     * margin leaves room for the compressed ancillary chunks (iCCP, zTXt)
     * that libpng inflates, which this decoder never uses, and past it
     * libpng drops such a chunk with a warning, not an error. */
    png_set_chunk_malloc_max(png, (png_alloc_size_t)chunk_limit);
    png_infop info = png_create_info_struct(png);
    if (!info) {
        png_destroy_read_struct(&png, NULL, NULL);
        return simclr__img_fail(SIMCLR_E_NOMEM, "%s: PNG: cannot create a decoder", name);
    }
    uint8_t *volatile px = NULL;
    png_bytep *volatile rows = NULL;
    volatile simclr_status st = SIMCLR_E_FORMAT;
    volatile int reported = 0; /* st's message already set */
    if (setjmp(png_jmpbuf(png))) {
        free(px);
        free(rows);
        png_destroy_read_struct(&png, &info, NULL);
        if (!reported) return simclr__img_fail(st, "%s: corrupt PNG: %s", name, r.message[0] ? r.message : "?");
        return st;
    }
    png_set_read_fn(png, &r, on_read);
    /* the limit is ours (max_pixels); libpng's own stays as a second guard */
    png_read_info(png, info);
    png_uint_32 w = png_get_image_width(png, info), h = png_get_image_height(png, info);
    int color = png_get_color_type(png, info), depth = png_get_bit_depth(png, info);
    if ((int64_t)w * (int64_t)h > max_pixels) {
        reported = 1;
        st = simclr__img_fail(SIMCLR_E_FORMAT, "%s: PNG of %u x %u pixels exceeds the limit of %lld pixels", name,
                        (unsigned)w, (unsigned)h, (long long)max_pixels);
        png_longjmp(png, 1);
    }
    int orientation = 1;
#ifdef PNG_eXIf_SUPPORTED
    png_bytep exif = NULL;
    png_uint_32 exif_len = 0;
    if (png_get_eXIf_1(png, info, &exif_len, &exif)) orientation = simclr__img_exif_orientation(exif, exif_len);
#endif
    if (color == PNG_COLOR_TYPE_PALETTE) png_set_palette_to_rgb(png);
    if (color == PNG_COLOR_TYPE_GRAY && depth < 8) png_set_expand_gray_1_2_4_to_8(png);
    if (depth == 16) png_set_scale_16(png);
    /* a palette's tRNS becomes a 4th channel in png_set_palette_to_rgb: dropped too */
    if ((color & PNG_COLOR_MASK_ALPHA) || (color == PNG_COLOR_TYPE_PALETTE && png_get_valid(png, info, PNG_INFO_tRNS)))
        png_set_strip_alpha(png);
    png_set_interlace_handling(png);
    png_read_update_info(png, info);
    int c = png_get_channels(png, info);
    if (c != 1 && c != 3) {
        snprintf(r.message, sizeof r.message, "unexpected %d channels after conversion", c);
        png_longjmp(png, 1);
    }
    size_t stride = (size_t)w * (size_t)c;
    if (png_get_rowbytes(png, info) != stride) {
        snprintf(r.message, sizeof r.message, "unexpected row size");
        png_longjmp(png, 1);
    }
    px = malloc(stride * h);
    rows = malloc(sizeof(png_bytep) * h);
    if (!px || !rows) {
        reported = 1;
        st = simclr__img_fail(SIMCLR_E_NOMEM, "%s: PNG: no memory for %u x %u pixels", name, (unsigned)w, (unsigned)h);
        png_longjmp(png, 1);
    }
    for (png_uint_32 y = 0; y < h; y++) rows[y] = px + y * stride;
    png_read_image(png, rows);
    png_read_end(png, NULL);
    free(rows);
    png_destroy_read_struct(&png, &info, NULL);
    *raw = (simclr__img_raw){px, h, w, c, orientation};
    return SIMCLR_OK;
}
