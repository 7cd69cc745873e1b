/* Minimal DICOM and TIFF writers, by hand (no DCMTK, no libtiff), for
 * tests/test_medical.c and the fuzz seeds (tests/fuzz/make_seeds.c): the
 * decoder is checked against files its libraries did not write, and the
 * malformed cases are built from a valid file by changing one field.
 *
 * DICOM: a 128-byte preamble, "DICM", the file meta group (explicit VR
 * little endian) and the data set in the transfer syntax named (implicit or
 * explicit VR little endian, explicit VR big endian), native pixel data.
 * TIFF: classic little-endian TIFF, uncompressed, striped or tiled,
 * contiguous or separate planes, one or more pages. */
#ifndef SIMCLR_TEST_MEDICAL_FILES_H
#define SIMCLR_TEST_MEDICAL_FILES_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MF_IMPLICIT_LE "1.2.840.10008.1.2"
#define MF_EXPLICIT_LE "1.2.840.10008.1.2.1"
#define MF_EXPLICIT_BE "1.2.840.10008.1.2.2"

typedef struct mf_buf {
    uint8_t *p;
    size_t n, cap;
    int big, implicit; /* of the data set being written */
} mf_buf;

static void mf_put(mf_buf *b, const void *d, size_t n)
{
    if (b->n + n > b->cap) {
        size_t cap = b->cap ? b->cap : 1024;
        while (cap < b->n + n) cap *= 2;
        uint8_t *p = realloc(b->p, cap);
        if (!p) abort();
        b->p = p, b->cap = cap;
    }
    memcpy(b->p + b->n, d, n);
    b->n += n;
}

static void mf_u16(mf_buf *b, uint16_t v)
{
    uint8_t x[2] = {(uint8_t)(b->big ? v >> 8 : v), (uint8_t)(b->big ? v : v >> 8)};
    mf_put(b, x, 2);
}

static void mf_u32(mf_buf *b, uint32_t v)
{
    uint8_t x[4];
    for (int i = 0; i < 4; i++) x[b->big ? 3 - i : i] = (uint8_t)(v >> (8 * i));
    mf_put(b, x, 4);
}

/* One element: value len bytes (padded to even with pad, NUL for UI and
 * binary VRs, space for text); vl_override != 0 writes that length instead
 * (the value bytes are still those given). */
static void mf_elem_vl(mf_buf *b, uint16_t g, uint16_t e, const char *vr, const void *val, uint32_t len,
                       uint32_t vl_override)
{
    int text = strcmp(vr, "UI") && strcmp(vr, "OB") && strcmp(vr, "OW") && strcmp(vr, "US") && strcmp(vr, "UL");
    uint32_t padded = len + (len & 1);
    uint32_t vl = vl_override ? vl_override : padded;
    mf_u16(b, g);
    mf_u16(b, e);
    if (b->implicit) mf_u32(b, vl);
    else {
        mf_put(b, vr, 2);
        if (!strcmp(vr, "OB") || !strcmp(vr, "OW") || !strcmp(vr, "SQ") || !strcmp(vr, "UN")) {
            mf_u16(b, 0);
            mf_u32(b, vl);
        } else mf_u16(b, (uint16_t)vl);
    }
    mf_put(b, val, len);
    if (len & 1) mf_put(b, text ? " " : "", 1);
}

static void mf_str(mf_buf *b, uint16_t g, uint16_t e, const char *vr, const char *s)
{
    mf_elem_vl(b, g, e, vr, s, (uint32_t)strlen(s), 0);
}

static void mf_us(mf_buf *b, uint16_t g, uint16_t e, uint16_t v)
{
    uint8_t x[2] = {(uint8_t)(b->big ? v >> 8 : v), (uint8_t)(b->big ? v : v >> 8)};
    mf_elem_vl(b, g, e, "US", x, 2, 0);
}

typedef struct mf_dicom {
    const char *ts;         /* transfer syntax UID (MF_*; another UID is written as given, data as explicit LE) */
    int rows, cols, frames; /* frames > 1 writes Number of Frames */
    int spp, ba, bs, hb, pr, planar;
    const char *pi;
    const char *slope, *intercept, *center, *width; /* NULL: absent */
    const char *sop_uid, *patient_id;               /* NULL: absent */
    const void *pixels;     /* the samples as stored, little endian: rows*cols*frames*spp of ba bits */
    size_t pixel_bytes;     /* how many of them to write (less: a truncated value) */
    uint32_t pixel_vl;      /* != 0: the Pixel Data length written instead of the real one */
    int rows_as_written;    /* != 0: Rows written as this value instead of rows */
    uint32_t private_vl;    /* != 0: a private OB element (0009,1001) holding 4 bytes but declaring this length */
    uint32_t nested_vl;     /* != 0: the same inside an item of an undefined-length sequence (0008,1140) */
    int encapsulated;       /* != 0: pixels is one compressed fragment (an empty offset table before it) */
} mf_dicom;

/* A malloc'ed DICOM file; *size its length. */
static uint8_t *mf_dicom_write(const mf_dicom *d, size_t *size)
{
    mf_buf b = {0};
    uint8_t pre[128] = {0};
    mf_put(&b, pre, 128);
    mf_put(&b, "DICM", 4);
    const char *sop_class = "1.2.840.10008.5.1.4.1.1.7"; /* Secondary Capture */
    const char *sop = d->sop_uid ? d->sop_uid : "1.2.3.4.5";
    /* meta group: its length first */
    mf_buf m = {0};
    uint8_t version[2] = {0, 1};
    mf_elem_vl(&m, 0x0002, 0x0001, "OB", version, 2, 0);
    mf_str(&m, 0x0002, 0x0002, "UI", sop_class);
    mf_str(&m, 0x0002, 0x0003, "UI", sop);
    mf_str(&m, 0x0002, 0x0010, "UI", d->ts);
    mf_str(&m, 0x0002, 0x0012, "UI", "1.2.3.4.999");
    uint8_t gl[4] = {(uint8_t)m.n, (uint8_t)(m.n >> 8), (uint8_t)(m.n >> 16), (uint8_t)(m.n >> 24)};
    mf_elem_vl(&b, 0x0002, 0x0000, "UL", gl, 4, 0);
    mf_put(&b, m.p, m.n);
    free(m.p);
    b.implicit = !strcmp(d->ts, MF_IMPLICIT_LE);
    b.big = !strcmp(d->ts, MF_EXPLICIT_BE);
    mf_str(&b, 0x0008, 0x0016, "UI", sop_class);
    if (d->sop_uid) mf_str(&b, 0x0008, 0x0018, "UI", d->sop_uid);
    mf_str(&b, 0x0008, 0x0060, "CS", "OT");
    uint8_t four[4] = {1, 2, 3, 4};
    if (d->nested_vl) {
        mf_u16(&b, 0x0008), mf_u16(&b, 0x1140);
        if (!b.implicit) mf_put(&b, "SQ\0\0", 4);
        mf_u32(&b, 0xffffffffu);
        mf_u16(&b, 0xfffe), mf_u16(&b, 0xe000), mf_u32(&b, 0xffffffffu); /* an item of undefined length */
        mf_elem_vl(&b, 0x0029, 0x1001, "OB", four, 4, d->nested_vl);
        mf_u16(&b, 0xfffe), mf_u16(&b, 0xe00d), mf_u32(&b, 0);
        mf_u16(&b, 0xfffe), mf_u16(&b, 0xe0dd), mf_u32(&b, 0);
    }
    if (d->private_vl) {
        mf_str(&b, 0x0009, 0x0010, "LO", "SIMCLR TEST");
        mf_elem_vl(&b, 0x0009, 0x1001, "OB", four, 4, d->private_vl);
    }
    if (d->patient_id) mf_str(&b, 0x0010, 0x0020, "LO", d->patient_id);
    mf_us(&b, 0x0028, 0x0002, (uint16_t)d->spp);
    mf_str(&b, 0x0028, 0x0004, "CS", d->pi);
    if (d->spp > 1) mf_us(&b, 0x0028, 0x0006, (uint16_t)d->planar);
    if (d->frames > 1) {
        char nf[16];
        snprintf(nf, sizeof nf, "%d", d->frames);
        mf_str(&b, 0x0028, 0x0008, "IS", nf);
    }
    mf_us(&b, 0x0028, 0x0010, (uint16_t)(d->rows_as_written ? d->rows_as_written : d->rows));
    mf_us(&b, 0x0028, 0x0011, (uint16_t)d->cols);
    mf_us(&b, 0x0028, 0x0100, (uint16_t)d->ba);
    mf_us(&b, 0x0028, 0x0101, (uint16_t)d->bs);
    mf_us(&b, 0x0028, 0x0102, (uint16_t)d->hb);
    mf_us(&b, 0x0028, 0x0103, (uint16_t)d->pr);
    if (d->center) mf_str(&b, 0x0028, 0x1050, "DS", d->center);
    if (d->width) mf_str(&b, 0x0028, 0x1051, "DS", d->width);
    if (d->intercept) mf_str(&b, 0x0028, 0x1052, "DS", d->intercept);
    if (d->slope) mf_str(&b, 0x0028, 0x1053, "DS", d->slope);
    /* pixel data, swapped per sample for big endian */
    uint8_t *px = malloc(d->pixel_bytes + 1);
    if (!px) abort();
    memcpy(px, d->pixels, d->pixel_bytes);
    int sb = d->ba / 8;
    if (b.big && sb > 1)
        for (size_t i = 0; i + (size_t)sb <= d->pixel_bytes; i += (size_t)sb)
            for (int k = 0; k < sb / 2; k++) {
                uint8_t t = px[i + (size_t)k];
                px[i + (size_t)k] = px[i + (size_t)sb - 1 - (size_t)k];
                px[i + (size_t)sb - 1 - (size_t)k] = t;
            }
    if (d->encapsulated) {
        mf_u16(&b, 0x7fe0), mf_u16(&b, 0x0010);
        mf_put(&b, "OB\0\0", 4);
        mf_u32(&b, 0xffffffffu);
        mf_u16(&b, 0xfffe), mf_u16(&b, 0xe000), mf_u32(&b, 0);
        mf_u16(&b, 0xfffe), mf_u16(&b, 0xe000), mf_u32(&b, (uint32_t)(d->pixel_bytes + (d->pixel_bytes & 1)));
        mf_put(&b, d->pixels, d->pixel_bytes);
        if (d->pixel_bytes & 1) mf_put(&b, "", 1);
        mf_u16(&b, 0xfffe), mf_u16(&b, 0xe0dd), mf_u32(&b, 0);
    } else
        mf_elem_vl(&b, 0x7fe0, 0x0010, d->ba > 8 ? "OW" : "OB", px, (uint32_t)d->pixel_bytes, d->pixel_vl);
    free(px);
    *size = b.n;
    return b.p;
}

/* ---- TIFF ---- */

typedef struct mf_tiff_page {
    uint32_t w, h;
    uint16_t spp, bps, fmt, photometric, planar; /* fmt 1 uint, 2 int, 3 float; planar 1 contig, 2 separate */
    uint32_t tile_w, tile_h;                     /* 0: strips */
    uint32_t rows_per_strip;                     /* strips only; 0 = all rows */
    const void *pixels;                          /* [h][w][spp] samples, little endian */
    uint32_t declared_w;                         /* != 0: ImageWidth written as this */
    int cut_last_block;                          /* bytes cut from the last strip/tile's byte count and data */
} mf_tiff_page;

typedef struct mf_tag {
    uint16_t tag, type;
    uint32_t count;
    uint32_t value[64];
} mf_tag;

static void mf_le32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++) p[i] = (uint8_t)(v >> (8 * i));
}

static void mf_tag_add(mf_tag *t, int *n, uint16_t tag, uint16_t type, uint32_t count, const uint32_t *v)
{
    t[*n].tag = tag, t[*n].type = type, t[*n].count = count;
    for (uint32_t i = 0; i < count && i < 64; i++) t[*n].value[i] = v[i];
    (*n)++;
}

/* A malloc'ed TIFF of n pages; *size its length. Blocks (strips or tiles)
 * hold at most 64 per page. */
static uint8_t *mf_tiff_write(const mf_tiff_page *pages, int n, size_t *size)
{
    mf_buf b = {0};
    uint8_t hdr[8] = {'I', 'I', 42, 0, 0, 0, 0, 0};
    mf_put(&b, hdr, 8);
    size_t prev_link = 4; /* where the offset of the next IFD goes */
    for (int pg = 0; pg < n; pg++) {
        const mf_tiff_page *p = &pages[pg];
        int bytes = p->bps / 8, separate = p->planar == 2;
        uint32_t bw = p->tile_w ? p->tile_w : p->w;
        uint32_t bh = p->tile_w ? p->tile_h : (p->rows_per_strip ? p->rows_per_strip : p->h);
        uint32_t across = (p->w + bw - 1) / bw, down = (p->h + bh - 1) / bh;
        int planes = separate ? p->spp : 1, per = separate ? 1 : p->spp;
        uint32_t offsets[64], counts[64], nb = 0;
        for (int pl = 0; pl < planes; pl++)
            for (uint32_t by = 0; by < down; by++)
                for (uint32_t bx = 0; bx < across; bx++) {
                    uint32_t rows = p->tile_w ? bh : (p->h - by * bh < bh ? p->h - by * bh : bh);
                    uint32_t cols = bw;
                    size_t len = (size_t)rows * cols * (size_t)per * (size_t)bytes;
                    uint8_t *blk = calloc(1, len ? len : 1);
                    if (!blk) abort();
                    for (uint32_t r = 0; r < rows; r++)
                        for (uint32_t c = 0; c < cols; c++) {
                            uint32_t y = by * bh + r, x = bx * bw + c;
                            if (y >= p->h || x >= p->w) continue; /* tile padding */
                            for (int k = 0; k < per; k++) {
                                int s = separate ? pl : k;
                                memcpy(blk + (((size_t)r * cols + c) * (size_t)per + (size_t)k) * (size_t)bytes,
                                       (const uint8_t *)p->pixels +
                                           (((size_t)y * p->w + x) * p->spp + (size_t)s) * (size_t)bytes,
                                       (size_t)bytes);
                            }
                        }
                    int last = pl == planes - 1 && by == down - 1 && bx == across - 1;
                    if (last && p->cut_last_block) len -= (size_t)p->cut_last_block;
                    offsets[nb] = (uint32_t)b.n, counts[nb] = (uint32_t)len;
                    nb++;
                    mf_put(&b, blk, len);
                    free(blk);
                }
        if (b.n & 1) mf_put(&b, "", 1);
        mf_tag t[20];
        int nt = 0;
        uint32_t v[64];
        v[0] = p->declared_w ? p->declared_w : p->w;
        mf_tag_add(t, &nt, 256, 4, 1, v);
        v[0] = p->h;
        mf_tag_add(t, &nt, 257, 4, 1, v);
        for (int k = 0; k < p->spp; k++) v[k] = p->bps;
        mf_tag_add(t, &nt, 258, 3, p->spp, v);
        v[0] = 1;
        mf_tag_add(t, &nt, 259, 3, 1, v);
        v[0] = p->photometric;
        mf_tag_add(t, &nt, 262, 3, 1, v);
        if (!p->tile_w) mf_tag_add(t, &nt, 273, 4, nb, offsets);
        v[0] = p->spp;
        mf_tag_add(t, &nt, 277, 3, 1, v);
        if (!p->tile_w) {
            v[0] = bh;
            mf_tag_add(t, &nt, 278, 4, 1, v);
            mf_tag_add(t, &nt, 279, 4, nb, counts);
        }
        v[0] = p->planar;
        mf_tag_add(t, &nt, 284, 3, 1, v);
        if (p->tile_w) {
            v[0] = p->tile_w;
            mf_tag_add(t, &nt, 322, 4, 1, v);
            v[0] = p->tile_h;
            mf_tag_add(t, &nt, 323, 4, 1, v);
            mf_tag_add(t, &nt, 324, 4, nb, offsets);
            mf_tag_add(t, &nt, 325, 4, nb, counts);
        }
        if (p->spp == 2 || p->spp == 4) {
            v[0] = 2; /* unassociated alpha */
            mf_tag_add(t, &nt, 338, 3, 1, v);
        }
        for (int k = 0; k < p->spp; k++) v[k] = p->fmt;
        mf_tag_add(t, &nt, 339, 3, p->spp, v);
        /* out-of-line values first, then the IFD */
        uint32_t where[20];
        for (int i = 0; i < nt; i++) {
            size_t unit = t[i].type == 3 ? 2 : 4;
            if (unit * t[i].count <= 4) continue;
            where[i] = (uint32_t)b.n;
            for (uint32_t k = 0; k < t[i].count; k++) {
                uint8_t x[4];
                mf_le32(x, t[i].value[k]);
                mf_put(&b, x, unit);
            }
        }
        if (b.n & 1) mf_put(&b, "", 1);
        mf_le32(b.p + prev_link, (uint32_t)b.n);
        uint8_t cnt[2] = {(uint8_t)nt, 0};
        mf_put(&b, cnt, 2);
        for (int i = 0; i < nt; i++) {
            uint8_t e[12] = {0};
            e[0] = (uint8_t)t[i].tag, e[1] = (uint8_t)(t[i].tag >> 8);
            e[2] = (uint8_t)t[i].type;
            mf_le32(e + 4, t[i].count);
            size_t unit = t[i].type == 3 ? 2 : 4;
            if (unit * t[i].count <= 4) {
                for (uint32_t k = 0; k < t[i].count; k++) {
                    if (unit == 2) e[8 + 2 * k] = (uint8_t)t[i].value[k], e[9 + 2 * k] = (uint8_t)(t[i].value[k] >> 8);
                    else mf_le32(e + 8, t[i].value[k]);
                }
            } else mf_le32(e + 8, where[i]);
            mf_put(&b, e, 12);
        }
        prev_link = b.n;
        uint8_t zero[4] = {0};
        mf_put(&b, zero, 4);
    }
    *size = b.n;
    return b.p;
}

#endif
