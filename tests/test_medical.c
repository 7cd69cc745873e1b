/* libsimclr_medical: DICOM and TIFF files written by hand here
 * (tests/medical_files.h: neither DCMTK nor libtiff wrote them), decoded
 * from memory and from files, compared exactly with the values the test
 * generated (the rescale applied here in double, then rounded to float);
 * the window functions against DICOM's LINEAR formula at its edges; and the
 * malformed files (truncated, wrong lengths, huge sizes, unknown transfer
 * syntax, not a regular file) refused with a message naming the file,
 * never the patient ID, and nothing returned. The pydicom/PIL/tifffile
 * cross-checks are tests/python/test_medical_pydicom.py. */
#include <errno.h>
#include <pthread.h>
#include <sys/stat.h>
#include <unistd.h>

#include "medical_files.h"
#include "simclr_medical.h"
#include "test_util.h"

static char dir[256];

static void path_of(char *out, size_t size, const char *name) { snprintf(out, size, "%s/%s", dir, name); }

static void write_file(const char *path, const void *d, size_t n)
{
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(d, 1, n, f), n);
    assert_int_equal(fclose(f), 0);
}

/* A deterministic sample pattern: stored sample i of a file (any value in
 * [lo, hi]). */
static int64_t pattern(int64_t i, int64_t lo, int64_t hi) { return lo + (int64_t)((uint64_t)(i * 2654435761u) % (uint64_t)(hi - lo + 1)); }

static void put_sample(uint8_t *p, int bytes, uint32_t v)
{
    for (int k = 0; k < bytes; k++) p[k] = (uint8_t)(v >> (8 * k));
}

#define SENTINEL ((simclr_medical_image *)(uintptr_t)0x5e17)

/* Decodes from memory and from a file; both must succeed and agree. */
static simclr_medical_image *decode_both(const uint8_t *data, size_t n, const char *file, int64_t frame)
{
    char p[320];
    path_of(p, sizeof p, file);
    write_file(p, data, n);
    simclr_medical_image *a = SENTINEL, *b = SENTINEL;
    CHECK_OK(simclr_medical_decode_memory(data, n, file, frame, 0, &a));
    CHECK_OK(simclr_medical_decode_file(p, frame, 0, &b));
    int64_t count = simclr_medical_image_height(a) * simclr_medical_image_width(a) * simclr_medical_image_channels(a);
    assert_int_equal(simclr_medical_image_height(a), simclr_medical_image_height(b));
    assert_int_equal(simclr_medical_image_width(a), simclr_medical_image_width(b));
    assert_memory_equal(simclr_medical_image_data(a), simclr_medical_image_data(b), (size_t)count * sizeof(float));
    simclr_medical_image_destroy(b);
    return a;
}

/* Expects a refusal from memory and from a file, with status want, a
 * message that names the file and contains `needle`, never the patient
 * ID, and *out untouched. */
static void refused(const uint8_t *data, size_t n, const char *file, int64_t frame, int64_t max_pixels,
                    simclr_status want, const char *needle)
{
    char p[320];
    path_of(p, sizeof p, file);
    write_file(p, data, n);
    for (int from_file = 0; from_file < 2; from_file++) {
        simclr_medical_image *out = SENTINEL;
        simclr_status st = from_file ? simclr_medical_decode_file(p, frame, max_pixels, &out)
                                     : simclr_medical_decode_memory(data, n, file, frame, max_pixels, &out);
        const char *msg = simclr_last_error();
        if (st != want || !strstr(msg, from_file ? p : file) || !strstr(msg, needle) || strncmp(msg, "medical: ", 9))
            fail_msg("%s (%s): got %s \"%s\", want %s with \"%s\"", file, from_file ? "file" : "memory",
                     simclr_status_string(st), msg, simclr_status_string(want), needle);
        assert_null(strstr(msg, "SECRET"));
        assert_ptr_equal(out, SENTINEL);
    }
}

/* ---- DICOM ---- */

typedef struct depth_case {
    int ba, bs, hb, pr;
} depth_case;

static void test_dicom_syntaxes_depths_rescale(void **state)
{
    (void)state;
    const char *syntaxes[3] = {MF_IMPLICIT_LE, MF_EXPLICIT_LE, MF_EXPLICIT_BE};
    const depth_case cases[] = {
        {8, 8, 7, 0}, {16, 12, 11, 0}, {16, 12, 11, 1}, {16, 16, 15, 1}, {16, 16, 15, 0},
        {16, 12, 15, 0}, /* high bit 15: the stored bits are 4..15 */
        {32, 32, 31, 1}, {32, 24, 23, 0},
    };
    const int rows = 7, cols = 5;
    for (int t = 0; t < 3; t++)
        for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
            depth_case dc = cases[c];
            int bytes = dc.ba / 8;
            int64_t lo = dc.pr ? -((int64_t)1 << (dc.bs - 1)) : 0;
            int64_t hi = dc.pr ? ((int64_t)1 << (dc.bs - 1)) - 1 : ((int64_t)1 << dc.bs) - 1;
            uint8_t px[7 * 5 * 4];
            int64_t stored[7 * 5];
            int shift = dc.hb + 1 - dc.bs;
            for (int i = 0; i < rows * cols; i++) {
                stored[i] = i < 2 ? (i ? hi : lo) : pattern(i + (int)c * 31, lo, hi); /* the extremes too */
                uint64_t bits = ((uint64_t)stored[i] & (((uint64_t)1 << dc.bs) - 1)) << shift;
                /* garbage in the bits outside [hb - bs + 1, hb] (overlays): the decoder must ignore it */
                uint64_t garbage = dc.ba - dc.bs > 0 ? (0xA5A5A5A5u & ~((((uint64_t)1 << dc.bs) - 1) << shift)) : 0;
                put_sample(px + i * bytes, bytes, (uint32_t)((bits | garbage) & (dc.ba == 32 ? 0xffffffffu : ((1u << dc.ba) - 1))));
            }
            mf_dicom d = {syntaxes[t], rows, cols, 1, 1, dc.ba, dc.bs, dc.hb, dc.pr, 0, "MONOCHROME2",
                          "2.5", "-1024", "40", "400", "1.2.826.0.1.3680043.2.1125.7", "SECRET-PATIENT-7",
                          px, (size_t)rows * cols * bytes, 0, 0, 0, 0, 0};
            size_t n;
            uint8_t *file = mf_dicom_write(&d, &n);
            char name[64];
            snprintf(name, sizeof name, "depth_%d_%zu.dcm", t, c);
            simclr_medical_image *img = decode_both(file, n, name, 0);
            assert_int_equal(simclr_medical_image_format(img), SIMCLR_MEDICAL_DICOM);
            assert_int_equal(simclr_medical_image_height(img), rows);
            assert_int_equal(simclr_medical_image_width(img), cols);
            assert_int_equal(simclr_medical_image_channels(img), 1);
            assert_int_equal(simclr_medical_image_frames(img), 1);
            assert_int_equal(simclr_medical_image_bits_stored(img), dc.bs);
            assert_int_equal(simclr_medical_image_is_signed(img), dc.pr);
            assert_int_equal(simclr_medical_image_inverted(img), 0);
            assert_string_equal(simclr_medical_image_photometric(img), "MONOCHROME2");
            assert_string_equal(simclr_medical_image_sop_instance_uid(img), "1.2.826.0.1.3680043.2.1125.7");
            assert_string_equal(simclr_medical_image_group_id(img), "SECRET-PATIENT-7");
            double slope = 0, intercept = 0, center = 0, width = 0;
            simclr_medical_image_rescale(img, &slope, &intercept);
            assert_true(slope == 2.5 && intercept == -1024);
            assert_int_equal(simclr_medical_image_window(img, &center, &width), 1);
            assert_true(center == 40 && width == 400);
            const float *v = simclr_medical_image_data(img);
            for (int i = 0; i < rows * cols; i++) {
                float want = (float)((double)stored[i] * 2.5 + -1024.0);
                if (v[i] != want)
                    fail_msg("%s, %d/%d/%d/%d: value %d is %.9g, want %.9g (stored %lld)", syntaxes[t], dc.ba, dc.bs,
                             dc.hb, dc.pr, i, v[i], want, (long long)stored[i]);
            }
            simclr_medical_image_destroy(img);
            free(file);
        }
}

static void test_dicom_rgb_planar_frames(void **state)
{
    (void)state;
    enum { R = 6, C = 4, F = 3 };
    uint8_t inter[F][R * C * 3], planar[F][R * C * 3];
    for (int f = 0; f < F; f++)
        for (int p = 0; p < R * C; p++)
            for (int k = 0; k < 3; k++) {
                uint8_t v = (uint8_t)pattern(f * 1000 + p * 3 + k, 0, 255);
                inter[f][p * 3 + k] = v;
                planar[f][k * R * C + p] = v;
            }
    for (int pc = 0; pc < 2; pc++)
        for (int t = 0; t < 2; t++) {
            mf_dicom d = {t ? MF_EXPLICIT_BE : MF_EXPLICIT_LE, R, C, F, 3, 8, 8, 7, 0, pc, "RGB", "3", "7",
                          NULL, NULL, NULL, NULL, pc ? (const void *)planar : (const void *)inter, sizeof inter, 0, 0, 0, 0, 0};
            size_t n;
            uint8_t *file = mf_dicom_write(&d, &n);
            for (int f = 0; f < F; f++) {
                simclr_medical_image *img = decode_both(file, n, "rgb.dcm", f);
                assert_int_equal(simclr_medical_image_channels(img), 3);
                assert_int_equal(simclr_medical_image_frames(img), F);
                assert_int_equal(simclr_medical_image_frame(img), f);
                assert_string_equal(simclr_medical_image_photometric(img), "RGB");
                assert_string_equal(simclr_medical_image_sop_instance_uid(img), "");
                assert_string_equal(simclr_medical_image_group_id(img), "");
                assert_int_equal(simclr_medical_image_window(img, NULL, NULL), 0);
                const float *v = simclr_medical_image_data(img);
                for (int i = 0; i < R * C * 3; i++) /* RGB: no rescale */
                    if (v[i] != (float)inter[f][i]) fail_msg("planar %d frame %d sample %d: %g, want %d", pc, f, i, v[i], inter[f][i]);
                simclr_medical_image_destroy(img);
            }
            refused(file, n, "rgb_frame3.dcm", F, 0, SIMCLR_E_INVALID, "frame 3 is out of range (the file has 3)");
            free(file);
        }
}

static void test_dicom_monochrome1_and_window(void **state)
{
    (void)state;
    uint16_t px[4] = {0, 100, 1000, 4095};
    mf_dicom d = {MF_EXPLICIT_LE, 2, 2, 1, 1, 16, 12, 11, 0, 0, "MONOCHROME1", NULL, NULL, "2048", "4096",
                  NULL, NULL, px, sizeof px, 0, 0, 0, 0, 0};
    size_t n;
    uint8_t *file = mf_dicom_write(&d, &n);
    simclr_medical_image *img = decode_both(file, n, "mono1.dcm", 0);
    assert_string_equal(simclr_medical_image_photometric(img), "MONOCHROME1");
    assert_int_equal(simclr_medical_image_inverted(img), 1);
    const float *v = simclr_medical_image_data(img);
    for (int i = 0; i < 4; i++) assert_true(v[i] == (float)px[i]); /* physical values, not inverted */
    double c, w;
    assert_int_equal(simclr_medical_image_window(img, &c, &w), 1);
    uint8_t u8[4];
    CHECK_OK(simclr_medical_window_u8(v, 4, c, w, simclr_medical_image_inverted(img), u8));
    assert_int_equal(u8[0], 255); /* the lowest value displays white */
    assert_int_equal(u8[3], 0);
    simclr_medical_image_destroy(img);
    free(file);
}

/* DICOM PS3.3 C.11.2.1.2.1, LINEAR, written out here for c = 40, w = 400:
 * x <= 40 - 0.5 - 199.5 = -160 -> 0; x > 40 - 0.5 + 199.5 = 239 -> 1;
 * else (x - 39.5) / 399 + 0.5. */
static void test_window_functions(void **state)
{
    (void)state;
    float x[8] = {-1000, -160, -159.75f, 39.5f, 238.75f, 239, 239.25f, NAN};
    double want[8] = {0, 0, (-159.75 - 39.5) / 399 + 0.5, 0.5, (238.75 - 39.5) / 399 + 0.5, 1, 1, 0};
    float f[8], inv[8];
    uint8_t u[8];
    CHECK_OK(simclr_medical_window_f32(x, 8, 40, 400, 0, f));
    CHECK_OK(simclr_medical_window_f32(x, 8, 40, 400, 1, inv));
    CHECK_OK(simclr_medical_window_u8(x, 8, 40, 400, 0, u));
    for (int i = 0; i < 8; i++) {
        if (f[i] != (float)want[i]) fail_msg("f32 %d: %.9g want %.9g", i, f[i], want[i]);
        double wi = isnan(x[i]) ? 0 : 1 - want[i];
        if (inv[i] != (float)wi) fail_msg("inverted %d: %.9g want %.9g", i, inv[i], wi);
        if (u[i] != (uint8_t)floor(255 * want[i] + 0.5)) fail_msg("u8 %d: %d", i, u[i]);
    }
    /* width 1: a step at center - 0.5 */
    float s[3] = {9.5f, 9.51f, 9.4f};
    CHECK_OK(simclr_medical_window_f32(s, 3, 10, 1, 0, s)); /* in place */
    assert_true(s[0] == 0 && s[1] == 1 && s[2] == 0);
    CHECK_STATUS(simclr_medical_window_f32(x, 8, 40, 0.5, 0, f), SIMCLR_E_INVALID);
    CHECK_STATUS(simclr_medical_window_u8(x, 8, NAN, 400, 0, u), SIMCLR_E_INVALID);
    CHECK_STATUS(simclr_medical_window_u8(x, -1, 40, 400, 0, u), SIMCLR_E_INVALID);
    CHECK_STATUS(simclr_medical_window_u8(NULL, 8, 40, 400, 0, u), SIMCLR_E_INVALID);
    CHECK_OK(simclr_medical_window_u8(NULL, 0, 40, 400, 0, NULL));
}

static void test_dicom_malformed(void **state)
{
    (void)state;
    enum { R = 16, C = 16 };
    uint16_t px[R * C];
    for (int i = 0; i < R * C; i++) px[i] = (uint16_t)pattern(i, 0, 4095);
    mf_dicom good = {MF_EXPLICIT_LE, R, C, 1, 1, 16, 12, 11, 0, 0, "MONOCHROME2", "1", "-1024", NULL, NULL,
                     "1.2.3.SECRET", "SECRET^PATIENT", px, sizeof px, 0, 0, 0, 0, 0};
    size_t n;
    uint8_t *file = mf_dicom_write(&good, &n);
    simclr_medical_image *ok = decode_both(file, n, "good.dcm", 0);
    simclr_medical_image_destroy(ok);

    /* the file cut inside its pixel data, and at other places */
    refused(file, n - 100, "cut_pixels.dcm", 0, 0, SIMCLR_E_FORMAT, "cut_pixels.dcm");
    refused(file, 200, "cut_header.dcm", 0, 0, SIMCLR_E_FORMAT, "cut_header.dcm");
    refused(file, 0, "empty.dcm", 0, 0, SIMCLR_E_FORMAT, "the file is empty");
    free(file);

    /* a Pixel Data value shorter than the image (its length consistent) */
    mf_dicom shortpx = good;
    shortpx.pixel_bytes = sizeof px - 64;
    file = mf_dicom_write(&shortpx, &n);
    refused(file, n, "short_pixels.dcm", 0, 0, SIMCLR_E_FORMAT, "truncated pixel data");
    free(file);
    /* Rows larger than the pixel data holds */
    mf_dicom rows = good;
    rows.rows_as_written = R + 1;
    file = mf_dicom_write(&rows, &n);
    refused(file, n, "more_rows.dcm", 0, 0, SIMCLR_E_FORMAT, "truncated pixel data");
    free(file);
    /* a Pixel Data length beyond the end of the file */
    mf_dicom vl = good;
    vl.pixel_vl = 0x7ffffff0u;
    file = mf_dicom_write(&vl, &n);
    refused(file, n, "long_vl.dcm", 0, 0, SIMCLR_E_FORMAT, "long_vl.dcm");
    free(file);
    /* a length past the end on another element, and nested in a sequence's
     * item: refused before DCMTK reads the file (it would allocate the
     * declared 4 GB first) */
    for (int t = 0; t < 3; t++) {
        const char *tss[3] = {MF_EXPLICIT_LE, MF_IMPLICIT_LE, MF_EXPLICIT_BE};
        mf_dicom priv = good;
        priv.ts = tss[t];
        priv.private_vl = 0xfffffff0u;
        file = mf_dicom_write(&priv, &n);
        refused(file, n, "private_vl.dcm", 0, 0, SIMCLR_E_FORMAT, "element (0009,1001) declares 4294967280 bytes");
        free(file);
        mf_dicom nested = good;
        nested.ts = tss[t];
        nested.nested_vl = 0xfffffff0u;
        file = mf_dicom_write(&nested, &n);
        refused(file, n, "nested_vl.dcm", 0, 0, SIMCLR_E_FORMAT, "element (0029,1001) declares 4294967280 bytes");
        free(file);
        nested.nested_vl = 4; /* the same file, well formed, decodes */
        file = mf_dicom_write(&nested, &n);
        simclr_medical_image_destroy(decode_both(file, n, "nested_ok.dcm", 0));
        free(file);
    }
    /* Pixel Data with another VR (OV): DCMTK makes it a plain 64-bit element,
     * not pixel data (fuzz_dicom found the cast) */
    file = mf_dicom_write(&good, &n);
    for (size_t i = 0; i + 6 <= n; i++)
        if (!memcmp(file + i, "\xe0\x7f\x10\x00OW", 6)) file[i + 5] = 'V';
    refused(file, n, "pixel_ov.dcm", 0, 0, SIMCLR_E_FORMAT, "Pixel Data");
    free(file);
    /* a JPEG fragment with a TEM marker (FF 01) before its frame header:
     * Debian's dcmjpeg loops forever on it (DCMTK bug #1190; fuzz_dicom) */
    static const uint8_t tem[] = {0xff, 0xd8, 0xff, 0x01, 0xff, 0xdb, 0x00, 0x04, 0x00, 0x00, 0xff, 0xd9};
    mf_dicom jpeg = good;
    jpeg.ts = "1.2.840.10008.1.2.4.50", jpeg.ba = 8, jpeg.bs = 8, jpeg.hb = 7;
    jpeg.encapsulated = 1, jpeg.pixels = tem, jpeg.pixel_bytes = sizeof tem;
    file = mf_dicom_write(&jpeg, &n);
    refused(file, n, "jpeg_tem.dcm", 0, 0, SIMCLR_E_FORMAT, "a TEM marker before the frame header");
    free(file);
    /* RLE: decoded here (dcmdata's decoder read out of bounds on a bad
     * segment table, fuzz_dicom); a good frame, then broken ones */
    {
        uint8_t rle[64 + 4 * 3] = {2}; /* 2 segments (16-bit gray, 2 x 2): MSB plane, LSB plane */
        rle[4] = 64, rle[8] = 64 + 6;
        const uint8_t segs[12] = {3, 0x01, 0x02, 0x03, 0x04, 0, 3, 0x10, 0x20, 0x30, 0x40, 0}; /* literal runs of 4 */
        memcpy(rle + 64, segs, 12);
        uint16_t want[4] = {0x0110, 0x0220, 0x0330, 0x0440};
        mf_dicom r = good;
        r.ts = "1.2.840.10008.1.2.5", r.rows = r.cols = 2, r.bs = 16, r.hb = 15, r.slope = NULL, r.intercept = NULL;
        r.encapsulated = 1, r.pixels = rle, r.pixel_bytes = sizeof rle;
        file = mf_dicom_write(&r, &n);
        simclr_medical_image *img = decode_both(file, n, "rle_ok.dcm", 0);
        for (int i = 0; i < 4; i++) assert_true(simclr_medical_image_data(img)[i] == (float)want[i]);
        simclr_medical_image_destroy(img);
        free(file);
        rle[8] = 200; /* the second segment past the frame */
        file = mf_dicom_write(&r, &n);
        refused(file, n, "rle_offset.dcm", 0, 0, SIMCLR_E_FORMAT, "RLE segment offset is out of order or past the frame");
        free(file);
        rle[8] = 64 + 6, rle[64 + 6] = 9; /* a literal run longer than its segment */
        file = mf_dicom_write(&r, &n);
        refused(file, n, "rle_run.dcm", 0, 0, SIMCLR_E_FORMAT, "RLE literal run past its segment");
        free(file);
        rle[64 + 6] = 3, rle[0] = 3; /* three segments for two bytes a pixel */
        file = mf_dicom_write(&r, &n);
        refused(file, n, "rle_count.dcm", 0, 0, SIMCLR_E_FORMAT, "segment count");
        free(file);
    }
    /* file meta without a transfer syntax: dcmdata would guess the data set's
     * encoding whatever it is told (fuzz_dicom: it then read a 3 GB length) */
    file = mf_dicom_write(&good, &n);
    for (size_t i = 132; i + 6 <= n; i++)
        if (!memcmp(file + i, "\x02\x00\x10\x00UI", 6)) file[i + 2] = 0x11; /* (0002,0010) -> (0002,0011) */
    refused(file, n, "meta_no_ts.dcm", 0, 0, SIMCLR_E_FORMAT, "file meta information without a transfer syntax");
    free(file);
    /* millions of empty elements: dcmdata would make an object of each (GBs) */
    file = mf_dicom_write(&good, &n);
    size_t many = ((size_t)1 << 22) + 1, big = n + many * 12;
    uint8_t *bloated = malloc(big);
    assert_non_null(bloated);
    memcpy(bloated, file, n);
    for (size_t i = 0; i < many; i++) memcpy(bloated + n + i * 12, "\xe1\x7f\x10\x00OB\0\0\0\0\0\0", 12);
    refused(bloated, big, "many_elements.dcm", 0, 0, SIMCLR_E_FORMAT, "more than 4194304 elements");
    free(bloated), free(file);
    /* huge dimensions: refused by max_pixels before the pixel data is looked at */
    mf_dicom huge = good;
    huge.rows_as_written = 65535;
    huge.cols = 65535;
    file = mf_dicom_write(&huge, &n);
    refused(file, n, "huge.dcm", 0, 0, SIMCLR_E_FORMAT, "65535 rows x 65535 columns exceed max_pixels 89478485");
    free(file);
    file = mf_dicom_write(&good, &n);
    refused(file, n, "max_pixels.dcm", 0, R * C - 1, SIMCLR_E_FORMAT, "exceed max_pixels 255");
    free(file);
    /* unknown and unsupported transfer syntaxes */
    mf_dicom ts = good;
    ts.ts = "1.2.3.4.5.6.7";
    file = mf_dicom_write(&ts, &n);
    refused(file, n, "unknown_ts.dcm", 0, 0, SIMCLR_E_UNSUPPORTED, "unknown transfer syntax 1.2.3.4.5.6.7");
    free(file);
    ts.ts = "1.2.840.10008.1.2.4.100"; /* MPEG2 */
    file = mf_dicom_write(&ts, &n);
    refused(file, n, "mpeg2.dcm", 0, 0, SIMCLR_E_UNSUPPORTED, "1.2.840.10008.1.2.4.100");
    free(file);
    /* what is not supported */
    mf_dicom pal = good;
    pal.pi = "PALETTE COLOR";
    file = mf_dicom_write(&pal, &n);
    refused(file, n, "palette.dcm", 0, 0, SIMCLR_E_UNSUPPORTED, "photometric interpretation PALETTECOLOR");
    free(file);
    mf_dicom ybr = good;
    uint8_t rgb[R * C * 3] = {0};
    ybr.spp = 3, ybr.ba = 8, ybr.bs = 8, ybr.hb = 7, ybr.pi = "YBR_FULL", ybr.pixels = rgb, ybr.pixel_bytes = sizeof rgb;
    file = mf_dicom_write(&ybr, &n);
    refused(file, n, "ybr.dcm", 0, 0, SIMCLR_E_UNSUPPORTED, "YBR_FULL");
    free(file);
    mf_dicom bits = good;
    bits.bs = 17;
    file = mf_dicom_write(&bits, &n);
    refused(file, n, "bits.dcm", 0, 0, SIMCLR_E_FORMAT, "bits stored 17");
    free(file);
    /* not DICOM at all */
    uint8_t junk[300];
    for (int i = 0; i < 300; i++) junk[i] = (uint8_t)pattern(i, 0, 255);
    junk[0] = 0x08; /* not a TIFF magic */
    refused(junk, sizeof junk, "junk.bin", 0, 0, SIMCLR_E_FORMAT, "junk.bin");
}

static void test_arguments_and_files(void **state)
{
    (void)state;
    simclr_medical_image *out = SENTINEL;
    uint8_t b[4] = {0};
    CHECK_STATUS(simclr_medical_decode_memory(NULL, 4, "x", 0, 0, &out), SIMCLR_E_INVALID);
    CHECK_STATUS(simclr_medical_decode_memory(b, 4, "x", 0, 0, NULL), SIMCLR_E_INVALID);
    CHECK_STATUS(simclr_medical_decode_memory(b, 4, "x", -1, 0, &out), SIMCLR_E_INVALID);
    CHECK_STATUS(simclr_medical_decode_memory(b, 4, "x", 0, -1, &out), SIMCLR_E_INVALID);
    CHECK_STATUS(simclr_medical_decode_file(NULL, 0, 0, &out), SIMCLR_E_INVALID);
    assert_ptr_equal(out, SENTINEL);
    char p[320];
    path_of(p, sizeof p, "missing.dcm");
    CHECK_STATUS(simclr_medical_decode_file(p, 0, 0, &out), SIMCLR_E_IO);
    assert_non_null(strstr(simclr_last_error(), p));
    CHECK_STATUS(simclr_medical_decode_file(dir, 0, 0, &out), SIMCLR_E_IO);
    assert_non_null(strstr(simclr_last_error(), "not a regular file (a directory)"));
    path_of(p, sizeof p, "fifo.dcm");
    assert_int_equal(mkfifo(p, 0600), 0);
    CHECK_STATUS(simclr_medical_decode_file(p, 0, 0, &out), SIMCLR_E_IO); /* without blocking */
    assert_non_null(strstr(simclr_last_error(), "not a regular file (a FIFO)"));
    unlink(p);
    assert_ptr_equal(out, SENTINEL);
    /* the accessors on NULL */
    assert_null(simclr_medical_image_data(NULL));
    assert_int_equal(simclr_medical_image_height(NULL), 0);
    assert_int_equal(simclr_medical_image_frame(NULL), -1);
    assert_string_equal(simclr_medical_image_photometric(NULL), "");
    assert_string_equal(simclr_medical_image_group_id(NULL), "");
    double s = 0, i = 5;
    simclr_medical_image_rescale(NULL, &s, &i);
    assert_true(s == 1 && i == 0);
    assert_int_equal(simclr_medical_image_window(NULL, &s, &i), 0);
    simclr_medical_image_destroy(NULL);
}

/* ---- TIFF ---- */

typedef struct tiff_case {
    const char *name;
    uint16_t spp, bps, fmt, photometric, planar;
    uint32_t tile_w, tile_h, rps;
    int channels;
    const char *pi;
} tiff_case;

static void test_tiff_layouts(void **state)
{
    (void)state;
    const tiff_case cases[] = {
        {"gray8_strips", 1, 8, 1, 1, 1, 0, 0, 3, 1, "MONOCHROME2"},
        {"gray16_tiles", 1, 16, 1, 1, 1, 16, 16, 0, 1, "MONOCHROME2"},
        {"gray16_signed", 1, 16, 2, 1, 1, 0, 0, 7, 1, "MONOCHROME2"},
        {"gray32_float", 1, 32, 3, 1, 1, 0, 0, 0, 1, "MONOCHROME2"},
        {"gray32_uint_tiles", 1, 32, 1, 1, 1, 32, 16, 0, 1, "MONOCHROME2"},
        {"miniswhite16", 1, 16, 1, 0, 1, 0, 0, 5, 1, "MONOCHROME1"},
        {"gray_alpha8", 2, 8, 1, 1, 1, 0, 0, 4, 1, "MONOCHROME2"},
        {"rgb8_contig", 3, 8, 1, 2, 1, 0, 0, 6, 3, "RGB"},
        {"rgb8_separate", 3, 8, 1, 2, 2, 0, 0, 6, 3, "RGB"},
        {"rgb16_tiles", 3, 16, 1, 2, 1, 16, 32, 0, 3, "RGB"},
        {"rgb16_separate_tiles", 3, 16, 1, 2, 2, 16, 16, 0, 3, "RGB"},
        {"rgba8", 4, 8, 1, 2, 1, 0, 0, 0, 3, "RGB"},
    };
    const uint32_t W = 37, H = 23; /* not multiples of the tiles */
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        tiff_case tc = cases[c];
        int bytes = tc.bps / 8;
        size_t ns = (size_t)W * H * tc.spp;
        uint8_t *px = malloc(ns * (size_t)bytes);
        float *want = malloc(ns * sizeof(float));
        assert_non_null(px);
        assert_non_null(want);
        for (size_t i = 0; i < ns; i++) {
            float v;
            if (tc.fmt == 3) {
                v = (float)pattern((int64_t)i, -100000, 100000) / 64.0f;
                memcpy(px + i * 4, &v, 4);
            } else {
                int64_t lo = tc.fmt == 2 ? -((int64_t)1 << (tc.bps - 1)) : 0;
                int64_t hi = tc.fmt == 2 ? ((int64_t)1 << (tc.bps - 1)) - 1 : (int64_t)((((uint64_t)1) << tc.bps) - 1);
                int64_t s = i == 0 ? lo : i == 1 ? hi : pattern((int64_t)i + (int64_t)c, lo, hi);
                put_sample(px + i * (size_t)bytes, bytes, (uint32_t)s);
                v = (float)(double)s;
            }
            want[i] = v;
        }
        mf_tiff_page page = {W, H, tc.spp, tc.bps, tc.fmt, tc.photometric, tc.planar, tc.tile_w, tc.tile_h, tc.rps,
                             px, 0, 0};
        size_t n;
        uint8_t *file = mf_tiff_write(&page, 1, &n);
        char name[64];
        snprintf(name, sizeof name, "%s.tif", tc.name);
        simclr_medical_image *img = decode_both(file, n, name, 0);
        assert_int_equal(simclr_medical_image_format(img), SIMCLR_MEDICAL_TIFF);
        assert_int_equal(simclr_medical_image_height(img), H);
        assert_int_equal(simclr_medical_image_width(img), W);
        assert_int_equal(simclr_medical_image_channels(img), tc.channels);
        assert_int_equal(simclr_medical_image_bits_stored(img), tc.bps);
        assert_int_equal(simclr_medical_image_is_signed(img), tc.fmt != 1);
        assert_int_equal(simclr_medical_image_inverted(img), tc.photometric == 0);
        assert_string_equal(simclr_medical_image_photometric(img), tc.pi);
        const float *v = simclr_medical_image_data(img);
        for (size_t p = 0; p < (size_t)W * H; p++)
            for (int k = 0; k < tc.channels; k++)
                if (v[p * (size_t)tc.channels + (size_t)k] != want[p * tc.spp + (size_t)k])
                    fail_msg("%s: pixel %zu channel %d is %.9g, want %.9g", tc.name, p, k,
                             v[p * (size_t)tc.channels + (size_t)k], want[p * tc.spp + (size_t)k]);
        simclr_medical_image_destroy(img);
        free(file), free(px), free(want);
    }
}

static void test_tiff_pages_and_malformed(void **state)
{
    (void)state;
    enum { W = 20, H = 12 };
    static uint16_t px[3][W * H];
    mf_tiff_page pages[3];
    for (int pg = 0; pg < 3; pg++) {
        for (int i = 0; i < W * H; i++) px[pg][i] = (uint16_t)(pg * 10000 + i);
        mf_tiff_page p = {W, H, 1, 16, 1, 1, 1, pg == 1 ? 16 : 0, pg == 1 ? 16 : 0, 5, px[pg], 0, 0};
        pages[pg] = p;
    }
    size_t n;
    uint8_t *file = mf_tiff_write(pages, 3, &n);
    for (int pg = 0; pg < 3; pg++) {
        simclr_medical_image *img = decode_both(file, n, "pages.tif", pg);
        assert_int_equal(simclr_medical_image_frames(img), 3);
        assert_int_equal(simclr_medical_image_frame(img), pg);
        const float *v = simclr_medical_image_data(img);
        for (int i = 0; i < W * H; i++) assert_true(v[i] == (float)px[pg][i]);
        simclr_medical_image_destroy(img);
    }
    refused(file, n, "pages3.tif", 3, 0, SIMCLR_E_INVALID, "page 3 is out of range (the file has 3)");
    refused(file, n, "pages_max.tif", 0, W * H - 1, SIMCLR_E_FORMAT, "exceed max_pixels 239");
    free(file);

    /* a truncated strip, and a truncated file */
    mf_tiff_page cut = pages[0];
    cut.cut_last_block = 10;
    file = mf_tiff_write(&cut, 1, &n);
    refused(file, n, "cut_strip.tif", 0, 0, SIMCLR_E_FORMAT, "strip");
    free(file);
    file = mf_tiff_write(&pages[0], 1, &n);
    refused(file, 100, "cut_file.tif", 0, 0, SIMCLR_E_FORMAT, "cut_file.tif");
    free(file);
    /* a huge declared width: refused before anything that size is allocated */
    mf_tiff_page huge = pages[0];
    huge.declared_w = 4000000000u;
    file = mf_tiff_write(&huge, 1, &n);
    refused(file, n, "huge.tif", 0, 0, SIMCLR_E_FORMAT, "huge.tif");
    free(file);
    /* separated (CMYK-like) ink, and 16-bit floats (a palette without a
     * colour map libtiff itself reads as gray) */
    mf_tiff_page ink = pages[0];
    ink.photometric = 5;
    file = mf_tiff_write(&ink, 1, &n);
    refused(file, n, "separated.tif", 0, 0, SIMCLR_E_UNSUPPORTED, "photometric interpretation 5");
    free(file);
    mf_tiff_page half = pages[0];
    half.fmt = 3; /* 16-bit float */
    file = mf_tiff_write(&half, 1, &n);
    refused(file, n, "half.tif", 0, 0, SIMCLR_E_UNSUPPORTED, "16 bits in sample format 3");
    free(file);
}

/* "Threads: any thread": threads decoding at once (DICOM through DCMTK's
 * shared registry and dictionary, TIFF through libtiff) get what one does. */
typedef struct thread_job {
    const uint8_t *dcm, *tif;
    size_t ndcm, ntif;
    const float *want_dcm, *want_tif;
    size_t count_dcm, count_tif;
    int bad;
} thread_job;

static void *decode_thread(void *arg)
{
    thread_job *j = arg;
    for (int r = 0; r < 20; r++) {
        simclr_medical_image *a = NULL, *b = NULL;
        if (simclr_medical_decode_memory(j->dcm, j->ndcm, "t.dcm", 0, 0, &a) != SIMCLR_OK ||
            simclr_medical_decode_memory(j->tif, j->ntif, "t.tif", 0, 0, &b) != SIMCLR_OK ||
            memcmp(simclr_medical_image_data(a), j->want_dcm, j->count_dcm * sizeof(float)) ||
            memcmp(simclr_medical_image_data(b), j->want_tif, j->count_tif * sizeof(float)))
            j->bad++;
        simclr_medical_image_destroy(a);
        simclr_medical_image_destroy(b);
    }
    return NULL;
}

static void test_threads(void **state)
{
    (void)state;
    enum { R = 32, C = 24, T = 4 };
    static uint16_t px[R * C];
    for (int i = 0; i < R * C; i++) px[i] = (uint16_t)pattern(i, 0, 65535);
    mf_dicom d = {MF_EXPLICIT_LE, R, C, 1, 1, 16, 16, 15, 0, 0, "MONOCHROME2", "0.5", "-100", NULL, NULL,
                  NULL, NULL, px, sizeof px, 0, 0, 0, 0, 0};
    mf_tiff_page p = {C, R, 1, 16, 1, 1, 1, 16, 16, 0, px, 0, 0};
    size_t ndcm, ntif;
    uint8_t *dcm = mf_dicom_write(&d, &ndcm), *tif = mf_tiff_write(&p, 1, &ntif);
    float want_dcm[R * C], want_tif[R * C];
    for (int i = 0; i < R * C; i++) want_dcm[i] = (float)(px[i] * 0.5 - 100), want_tif[i] = (float)px[i];
    thread_job jobs[T];
    pthread_t th[T];
    for (int t = 0; t < T; t++) {
        thread_job j = {dcm, tif, ndcm, ntif, want_dcm, want_tif, R * C, R * C, 0};
        jobs[t] = j;
        assert_int_equal(pthread_create(&th[t], NULL, decode_thread, &jobs[t]), 0);
    }
    for (int t = 0; t < T; t++) {
        assert_int_equal(pthread_join(th[t], NULL), 0);
        assert_int_equal(jobs[t].bad, 0);
    }
    free(dcm), free(tif);
}

static int setup(void **state)
{
    (void)state;
    snprintf(dir, sizeof dir, "%s/simclr_medical_XXXXXX", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    return mkdtemp(dir) ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    char cmd[400];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    return system(cmd) == 0 ? 0 : -1;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_dicom_syntaxes_depths_rescale),
        cmocka_unit_test(test_dicom_rgb_planar_frames),
        cmocka_unit_test(test_dicom_monochrome1_and_window),
        cmocka_unit_test(test_window_functions),
        cmocka_unit_test(test_dicom_malformed),
        cmocka_unit_test(test_arguments_and_files),
        cmocka_unit_test(test_tiff_layouts),
        cmocka_unit_test(test_tiff_pages_and_malformed),
        cmocka_unit_test(test_threads),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
