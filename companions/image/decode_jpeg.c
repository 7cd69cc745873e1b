/* JPEG through libjpeg-turbo: baseline and progressive; gray, YCbCr/RGB and
 * CMYK/YCCK (Adobe's inverted CMYK, as PIL reads it) out; the EXIF
 * orientation read from APP1. Any warning (a truncated file, corrupt data)
 * is an error: libjpeg would otherwise fill the rest with gray. Errors leave
 * libjpeg by longjmp inside this file only. */
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jpeglib.h>

#include "internal.h"

typedef struct err_mgr {
    struct jpeg_error_mgr base;
    jmp_buf jump;
    char message[JMSG_LENGTH_MAX];
} err_mgr;

static void on_error(j_common_ptr cinfo)
{
    err_mgr *e = (err_mgr *)cinfo->err;
    if (!e->message[0]) cinfo->err->format_message(cinfo, e->message);
    longjmp(e->jump, 1);
}

static void on_message(j_common_ptr cinfo, int level)
{
    err_mgr *e = (err_mgr *)cinfo->err;
    if (level < 0) { /* a warning: corrupt or truncated data */
        if (!e->message[0]) cinfo->err->format_message(cinfo, e->message);
        longjmp(e->jump, 1);
    }
}

simclr_status simclr__img_decode_jpeg(const uint8_t *data, size_t size, const char *name, int64_t max_pixels,
                                int min_side, simclr__img_raw *raw)
{
    struct jpeg_decompress_struct cinfo;
    err_mgr err;
    memset(&err, 0, sizeof err);
    cinfo.err = jpeg_std_error(&err.base);
    err.base.error_exit = on_error;
    err.base.emit_message = on_message;
    uint8_t *volatile px = NULL;
    volatile simclr_status st = SIMCLR_E_FORMAT;
    volatile int reported = 0; /* st's message already set */
    if (setjmp(err.jump)) {
        free(px);
        jpeg_destroy_decompress(&cinfo);
        if (!reported) return simclr__img_fail(st, "%s: corrupt JPEG: %s", name, err.message);
        return st;
    }
    jpeg_create_decompress(&cinfo);
    jpeg_mem_src(&cinfo, data, (unsigned long)size);
    jpeg_save_markers(&cinfo, JPEG_APP0 + 1, 0xffff);
    jpeg_read_header(&cinfo, TRUE);
    int orientation = 1;
    for (jpeg_saved_marker_ptr m = cinfo.marker_list; m; m = m->next)
        if (m->marker == JPEG_APP0 + 1 && m->data_length >= 6 && memcmp(m->data, "Exif\0\0", 6) == 0) {
            orientation = simclr__img_exif_orientation(m->data, m->data_length);
            break;
        }
    if ((int64_t)cinfo.image_width * (int64_t)cinfo.image_height > max_pixels) {
        reported = 1;
        st = simclr__img_fail(SIMCLR_E_FORMAT, "%s: JPEG of %u x %u pixels exceeds the limit of %lld pixels", name,
                        cinfo.image_width, cinfo.image_height, (long long)max_pixels);
        longjmp(err.jump, 1);
    }
    int cmyk = cinfo.jpeg_color_space == JCS_CMYK || cinfo.jpeg_color_space == JCS_YCCK;
    if (cinfo.jpeg_color_space == JCS_GRAYSCALE) cinfo.out_color_space = JCS_GRAYSCALE;
    else if (cmyk) cinfo.out_color_space = JCS_CMYK;
    else cinfo.out_color_space = JCS_RGB;
    /* DCT-domain downscaling (1/2, 1/4, 1/8) while the shorter side stays >= min_side */
    if (min_side > 0) {
        unsigned short_side = cinfo.image_width < cinfo.image_height ? cinfo.image_width : cinfo.image_height;
        unsigned denom = 1;
        while (denom < 8 && short_side / (denom * 2) >= (unsigned)min_side) denom *= 2;
        cinfo.scale_num = 1;
        cinfo.scale_denom = denom;
    }
    jpeg_start_decompress(&cinfo);
    int c = cinfo.output_components;
    size_t stride = (size_t)cinfo.output_width * (size_t)c;
    px = malloc(stride * cinfo.output_height);
    if (!px) {
        reported = 1;
        st = simclr__img_fail(SIMCLR_E_NOMEM, "%s: JPEG: no memory for %u x %u pixels", name, cinfo.output_width,
                        cinfo.output_height);
        longjmp(err.jump, 1);
    }
    while (cinfo.output_scanline < cinfo.output_height) {
        JSAMPROW row = px + stride * cinfo.output_scanline;
        jpeg_read_scanlines(&cinfo, &row, 1);
    }
    jpeg_finish_decompress(&cinfo);
    int64_t h = cinfo.output_height, w = cinfo.output_width;
    int inverted = cmyk && cinfo.saw_Adobe_marker;
    jpeg_destroy_decompress(&cinfo);
    if (cmyk && !inverted) /* plain CMYK: store as "ink amount" like the inverted case after flipping */
        for (size_t i = 0; i < stride * (size_t)h; i++) px[i] = (uint8_t)(255 - px[i]);
    *raw = (simclr__img_raw){px, h, w, c, orientation};
    return SIMCLR_OK;
}
