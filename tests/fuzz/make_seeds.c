/* Writes the fuzzers' seed corpora with the library itself, so the seeds
 * follow the formats as they are written today:
 *   make_seeds DIR  ->  DIR/{module_ckpt,trainer_ckpt,safetensors,idx,cifar,png,jpeg,dicom,tiff}/
 * Every seed is a valid file (the fuzzers mutate from there). The image
 * seeds are PNGs from the companion's own writer, PNGs libpng writes in the
 * types that writer never makes (palette, 16-bit gray+alpha interlaced with
 * an eXIf orientation), and JPEGs from libjpeg (baseline, progressive, gray,
 * Adobe CMYK, an EXIF orientation): the decoder has no encoder of its own.
 * The medical seeds (issue 28) are native DICOM and uncompressed TIFF files
 * from tests/medical_files.h's hand-written writers; compressed ones
 * (RLE, JPEG, JPEG-LS, JPEG 2000, LZW, Deflate) are committed in
 * tests/fuzz/corpus/{dicom,tiff}. */
#include "fuzz_util.h" /* first: jpeglib.h needs stdio.h's FILE */

#include <errno.h>
#include <sys/stat.h>
#include <zlib.h>

#include <jpeglib.h>
#include <png.h>

#include "../medical_files.h"
#include "fuzz_models.h"
#include "simclr_image.h"

static char root[512];

static void sub(char *out, const char *corpus, const char *name)
{
    snprintf(out, 600, "%s/%s", root, corpus);
    if (mkdir(out, 0755) != 0 && errno != EEXIST) abort();
    snprintf(out, 600, "%s/%s/%s", root, corpus, name);
}

static void put(const char *corpus, const char *name, const void *d, size_t n)
{
    char p[600];
    sub(p, corpus, name);
    fuzz_write(p, d, n);
}

static unsigned char *slurp(const char *path, size_t *n)
{
    FILE *f = fopen(path, "rb");
    if (!f) abort();
    fseek(f, 0, SEEK_END);
    *n = (size_t)ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *d = malloc(*n ? *n : 1);
    if (fread(d, 1, *n, f) != *n) abort();
    fclose(f);
    return d;
}

static void be32(unsigned char *p, uint32_t v)
{
    p[0] = (unsigned char)(v >> 24), p[1] = (unsigned char)(v >> 16), p[2] = (unsigned char)(v >> 8),
    p[3] = (unsigned char)v;
}

static void fill_params(simclr_module *m, unsigned seed)
{
    for (int i = 0; i < simclr_module_param_count(m); i++) {
        simclr_tensor *v;
        FUZZ_OK(simclr_module_param(m, i, NULL, &v, NULL, NULL));
        float *x = simclr_tensor_data(v);
        for (int64_t k = 0; k < simclr_tensor_numel(v); k++) x[k] += 0.01f * (float)((k * 7 + seed) % 13);
    }
}

/* An IDX image file of n images h x w (and its labels), in the fuzz_idx
 * input layout [u16 LE k][images][labels]. */
static void idx_seed(const char *name, int n, int h, int w, int labels, int gzip)
{
    size_t isz = 16 + (size_t)n * h * w, lsz = labels ? 8 + (size_t)n : 0;
    unsigned char *img = malloc(isz), *lbl = malloc(lsz + 1);
    be32(img, 0x803), be32(img + 4, (uint32_t)n), be32(img + 8, (uint32_t)h), be32(img + 12, (uint32_t)w);
    for (size_t i = 16; i < isz; i++) img[i] = (unsigned char)(i * 31);
    if (labels) {
        be32(lbl, 0x801), be32(lbl + 4, (uint32_t)n);
        for (int i = 0; i < n; i++) lbl[8 + i] = (unsigned char)(i % 10);
    }
    if (gzip) {
        const char *tmp = fuzz_path("seed_gz");
        gzFile gz = gzopen(tmp, "wb9");
        if (!gz || gzwrite(gz, img, (unsigned)isz) != (int)isz) abort();
        gzclose(gz);
        free(img);
        img = slurp(tmp, &isz);
        remove(tmp);
    }
    size_t total = 2 + isz + lsz;
    unsigned char *in = malloc(total);
    in[0] = (unsigned char)(isz & 0xff), in[1] = (unsigned char)(isz >> 8);
    memcpy(in + 2, img, isz);
    if (lsz) memcpy(in + 2 + isz, lbl, lsz);
    put("idx", name, in, total);
    free(in);
    free(img);
    free(lbl);
}

static void cifar_seed(const char *name, int mode, int records)
{
    size_t rec = (mode & 1) ? 3074 : 3073, n = 1 + rec * (size_t)records;
    unsigned char *d = malloc(n);
    d[0] = (unsigned char)mode;
    for (size_t i = 1; i < n; i++) d[i] = (unsigned char)(i * 17);
    for (int r = 0; r < records; r++) {
        unsigned char *p = d + 1 + rec * (size_t)r;
        p[0] = (unsigned char)((mode & 1) ? r % 20 : r % 10);
        if (mode & 1) p[1] = (unsigned char)(r * 7 % 100);
    }
    put("cifar", name, d, n);
    free(d);
}

/* A fuzz_png or fuzz_jpeg input (by the file's signature): the option
 * byte, then the file at `path`. */
static void image_seed(const char *name, unsigned char option, const char *path)
{
    size_t n;
    unsigned char *file = slurp(path, &n);
    unsigned char *in = malloc(n + 1);
    in[0] = option;
    memcpy(in + 1, file, n);
    put(n >= 2 && file[0] == 0xff && file[1] == 0xd8 ? "jpeg" : "png", name, in, n + 1);
    free(in);
    free(file);
    remove(path);
}

/* A w x h picture of `comps` channels with edges and gradients. */
static unsigned char *picture(int w, int h, int comps)
{
    unsigned char *px = malloc((size_t)w * h * comps);
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++)
            for (int k = 0; k < comps; k++)
                px[((size_t)y * w + x) * comps + k] = (unsigned char)((x * 9 + y * 5 + k * 70) ^ (x > w / 2 ? 0x40 : 0));
    return px;
}

/* An EXIF payload (big-endian TIFF) holding only Orientation = o. */
static size_t exif_orientation(unsigned char *out, int o, int with_prefix)
{
    static const unsigned char tiff[26] = {'M', 'M', 0, 42, 0, 0, 0, 8, 0, 1, 0x01, 0x12, 0, 3, 0, 0, 0, 1, 0, 0, 0, 0,
                                           0, 0, 0, 0};
    size_t k = 0;
    if (with_prefix) memcpy(out, "Exif\0\0", 6), k = 6;
    memcpy(out + k, tiff, sizeof tiff);
    out[k + 19] = (unsigned char)o;
    return k + sizeof tiff;
}

static void jpeg_seed(const char *name, unsigned char option, int w, int h, int comps, J_COLOR_SPACE cs,
                      int progressive, int orientation)
{
    const char *tmp = fuzz_path("seed_jpg");
    FILE *f = fopen(tmp, "wb");
    if (!f) abort();
    struct jpeg_compress_struct c;
    struct jpeg_error_mgr err;
    c.err = jpeg_std_error(&err);
    jpeg_create_compress(&c);
    jpeg_stdio_dest(&c, f);
    c.image_width = (JDIMENSION)w, c.image_height = (JDIMENSION)h;
    c.input_components = comps, c.in_color_space = cs;
    jpeg_set_defaults(&c);
    jpeg_set_quality(&c, 75, TRUE);
    if (progressive) jpeg_simple_progression(&c);
    jpeg_start_compress(&c, TRUE);
    if (orientation) {
        unsigned char exif[40];
        jpeg_write_marker(&c, JPEG_APP0 + 1, exif, (unsigned)exif_orientation(exif, orientation, 1));
    }
    unsigned char *px = picture(w, h, comps);
    for (int y = 0; y < h; y++) {
        JSAMPROW row = px + (size_t)y * w * comps;
        jpeg_write_scanlines(&c, &row, 1);
    }
    jpeg_finish_compress(&c);
    jpeg_destroy_compress(&c);
    fclose(f);
    free(px);
    image_seed(name, option, tmp);
}

/* PNG types the companion's writer never produces, written by libpng. */
static void png_seed(const char *name, unsigned char option, int w, int h, int color, int depth, int interlace,
                     int orientation)
{
    const char *tmp = fuzz_path("seed_png");
    FILE *f = fopen(tmp, "wb");
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, NULL, NULL, NULL);
    png_infop info = png_create_info_struct(png);
    if (!f || !png || !info || setjmp(png_jmpbuf(png))) abort();
    png_init_io(png, f);
    png_set_IHDR(png, info, (png_uint_32)w, (png_uint_32)h, depth, color,
                 interlace ? PNG_INTERLACE_ADAM7 : PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT,
                 PNG_FILTER_TYPE_DEFAULT);
    png_color palette[16];
    if (color == PNG_COLOR_TYPE_PALETTE) {
        for (int i = 0; i < 16; i++)
            palette[i] = (png_color){(png_byte)(i * 16), (png_byte)(255 - i * 16), (png_byte)(i * 40)};
        png_set_PLTE(png, info, palette, 16);
        static const png_byte alphas[3] = {0, 100, 200}; /* tRNS: a 4th channel after expansion */
        png_set_tRNS(png, info, alphas, 3, NULL);
    }
#ifdef PNG_eXIf_SUPPORTED
    unsigned char exif[40];
    if (orientation) png_set_eXIf_1(png, info, (png_uint_32)exif_orientation(exif, orientation, 0), exif);
#endif
    png_write_info(png, info);
    int samples = (color == PNG_COLOR_TYPE_GRAY_ALPHA ? 2 : color == PNG_COLOR_TYPE_RGB ? 3 : 1);
    size_t rowbytes = ((size_t)w * samples * depth + 7) / 8;
    unsigned char *px = picture((int)rowbytes, h, 1);
    if (color == PNG_COLOR_TYPE_PALETTE)
        for (size_t i = 0; i < rowbytes * h; i++) px[i] &= depth == 8 ? 0x0f : 0xff; /* indices < 16 */
    png_bytep *rows = malloc(sizeof(png_bytep) * h);
    for (int y = 0; y < h; y++) rows[y] = px + (size_t)y * rowbytes;
    png_write_image(png, rows);
    png_write_end(png, NULL);
    png_destroy_write_struct(&png, &info);
    fclose(f);
    free(rows);
    free(px);
    image_seed(name, option, tmp);
}

static void image_seeds(void)
{
    for (int c = 1; c <= 4; c++) {
        if (c == 2) continue;
        char name[32];
        const char *tmp = fuzz_path("seed_own_png");
        unsigned char *px = picture(24, 17, c);
        FUZZ_OK(simclr_image_write_png(tmp, px, 17, 24, c));
        free(px);
        snprintf(name, sizeof name, "own_png_c%d", c);
        image_seed(name, (unsigned char)c, tmp);
    }
    png_seed("palette4", 0, 19, 13, PNG_COLOR_TYPE_PALETTE, 4, 0, 0);
    png_seed("gray_alpha16_adam7_exif6", 1, 21, 11, PNG_COLOR_TYPE_GRAY_ALPHA, 16, 1, 6);
    png_seed("gray1", 0, 33, 9, PNG_COLOR_TYPE_GRAY, 1, 0, 0);
    jpeg_seed("baseline_rgb", 0, 40, 24, 3, JCS_RGB, 0, 0);
    jpeg_seed("progressive_rgb_half", 1, 48, 40, 3, JCS_RGB, 1, 0);
    jpeg_seed("gray_exif8", 0, 24, 16, 1, JCS_GRAYSCALE, 0, 8);
    jpeg_seed("cmyk_exif3", 2, 16, 16, 4, JCS_CMYK, 0, 3);
    jpeg_seed("baseline_exif6_scaled", 1, 64, 40, 3, JCS_RGB, 0, 6);
}

/* [option byte][file]: option 0 (frame 0, from memory) unless given. */
static void medical_put(const char *corpus, const char *name, unsigned char option, const uint8_t *file, size_t n)
{
    uint8_t *in = malloc(n + 1);
    if (!in) abort();
    in[0] = option;
    memcpy(in + 1, file, n);
    put(corpus, name, in, n + 1);
    free(in);
}

static void medical_seeds(void)
{
    uint16_t g16[8 * 6];
    uint8_t rgb[2][5 * 4 * 3];
    for (int i = 0; i < 8 * 6; i++) g16[i] = (uint16_t)(i * 83 % 4096);
    for (int f = 0; f < 2; f++)
        for (int i = 0; i < 5 * 4 * 3; i++) rgb[f][i] = (uint8_t)(i * 7 + f * 40);
    size_t n;
    uint8_t *d;
    mf_dicom ct = {MF_EXPLICIT_LE, 8, 6, 1, 1, 16, 12, 11, 0, 0, "MONOCHROME2", "1", "-1024", "40", "400",
                   "1.2.3.4", "ID", g16, sizeof g16, 0, 0, 0, 0, 0};
    d = mf_dicom_write(&ct, &n);
    medical_put("dicom", "ct_explicit_le", 0, d, n);
    free(d);
    mf_dicom be = ct;
    be.ts = MF_EXPLICIT_BE, be.pr = 1, be.pi = "MONOCHROME1";
    d = mf_dicom_write(&be, &n);
    medical_put("dicom", "mono1_big_endian_file", 4, d, n);
    free(d);
    mf_dicom col = {MF_IMPLICIT_LE, 5, 4, 2, 3, 8, 8, 7, 0, 1, "RGB", NULL, NULL, NULL, NULL, NULL, NULL,
                    rgb, sizeof rgb, 0, 0, 0, 0, 0};
    d = mf_dicom_write(&col, &n);
    medical_put("dicom", "rgb_planar_implicit_frame1", 1, d, n);
    free(d);
    mf_tiff_page gray = {8, 6, 1, 16, 1, 1, 1, 0, 0, 3, g16, 0, 0};
    mf_tiff_page color[2] = {{5, 4, 3, 8, 1, 2, 1, 16, 16, 0, rgb[0], 0, 0}, {5, 4, 3, 8, 1, 2, 2, 0, 0, 2, rgb[1], 0, 0}};
    d = mf_tiff_write(&gray, 1, &n);
    medical_put("tiff", "gray16_strips", 0, d, n);
    free(d);
    d = mf_tiff_write(color, 2, &n);
    medical_put("tiff", "rgb8_tiled_then_separate_page1", 1, d, n);
    free(d);
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: make_seeds DIR\n");
        return 2;
    }
    snprintf(root, sizeof root, "%s", argv[1]);
    mkdir(root, 0755);
    char p[600];

    fuzz_trainer t = {0};
    fuzz_trainer_make(&t);
    fill_params(t.enc, 1);
    fill_params(t.head, 2);
    sub(p, "module_ckpt", "encoder.simclr");
    FUZZ_OK(simclr_module_save(t.enc, p));
    sub(p, "module_ckpt", "head.simclr"); /* another architecture: the refusal path */
    FUZZ_OK(simclr_module_save(t.head, p));
    sub(p, "safetensors", "encoder.safetensors");
    FUZZ_OK(simclr_module_export_safetensors(t.enc, p));
    sub(p, "trainer_ckpt", "fresh.simclr");
    FUZZ_OK(simclr_trainer_save(t.tr, p));
    /* after two optimizer steps on set gradients: momentum and step non-zero */
    simclr_module *mods[2] = {t.enc, t.head};
    for (int s = 0; s < 2; s++) {
        for (int m = 0; m < 2; m++)
            for (int i = 0; i < simclr_module_param_count(mods[m]); i++) {
                simclr_tensor *g;
                FUZZ_OK(simclr_module_param(mods[m], i, NULL, NULL, &g, NULL));
                float *x = g ? simclr_tensor_data(g) : NULL;
                for (int64_t k = 0; x && k < simclr_tensor_numel(g); k++) x[k] = 0.1f * (float)((k + s) % 5) - 0.2f;
            }
        FUZZ_OK(simclr_optimizer_step(t.opt));
    }
    sub(p, "trainer_ckpt", "stepped.simclr");
    FUZZ_OK(simclr_trainer_save(t.tr, p));

    idx_seed("raw_labels", 3, 4, 5, 1, 0);
    idx_seed("raw_only", 2, 28, 28, 0, 0);
    idx_seed("gzip_only", 3, 6, 6, 0, 1);
    cifar_seed("cifar10_one", 0, 2);
    cifar_seed("cifar100_two", 3, 2);
    image_seeds();
    medical_seeds();
    printf("seeds written to %s\n", root);
    return 0;
}
