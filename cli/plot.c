/* Pictures without a plotting library: lines, dots and text (a built-in
 * 5x7 bitmap font) on an RGB canvas, written with libsimclr_image's PNG
 * writer. curves.png: loss and contrastive accuracy against the step, with
 * axes, ticks and titles; map.png: a PCA of features with a class legend. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

typedef struct canvas {
    uint8_t *px;
    int w, h;
} canvas;

/* Matplotlib's tab10, then darker variants of it for classes 10..19. */
#define N_COLORS 20
static const uint8_t PALETTE[N_COLORS][3] = {
    {31, 119, 180}, {255, 127, 14}, {44, 160, 44},  {214, 39, 40},  {148, 103, 189}, {140, 86, 75}, {227, 119, 194},
    {127, 127, 127}, {188, 189, 34}, {23, 190, 207}, {16, 60, 90},   {150, 70, 5},    {20, 90, 20},  {120, 20, 20},
    {80, 50, 110},  {75, 45, 35},   {150, 40, 110}, {50, 50, 50},   {110, 110, 10},  {10, 105, 115}};
static const uint8_t INK[3] = {40, 40, 40}, AXIS[3] = {60, 60, 60}, GRID[3] = {228, 228, 228},
                     GRAY[3] = {150, 150, 150};

/* ---- the font: ASCII 32..126, 5 columns x 7 rows, bit 4 the left column;
 * g, p, q and y are drawn 2 rows lower (their descenders) ---- */
#define GLYPH_W 5
#define GLYPH_H 7
static const uint8_t FONT[95][GLYPH_H] = {
    {0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00}, /*   */
    {0x04, 0x04, 0x04, 0x04, 0x04, 0x00, 0x04}, /* ! */
    {0x0a, 0x0a, 0x00, 0x00, 0x00, 0x00, 0x00}, /* " */
    {0x0a, 0x0a, 0x1f, 0x0a, 0x1f, 0x0a, 0x0a}, /* # */
    {0x04, 0x0f, 0x14, 0x0e, 0x05, 0x1e, 0x04}, /* $ */
    {0x18, 0x19, 0x02, 0x04, 0x08, 0x13, 0x03}, /* % */
    {0x0c, 0x12, 0x14, 0x08, 0x15, 0x12, 0x0d}, /* & */
    {0x04, 0x04, 0x00, 0x00, 0x00, 0x00, 0x00}, /* ' */
    {0x02, 0x04, 0x08, 0x08, 0x08, 0x04, 0x02}, /* ( */
    {0x08, 0x04, 0x02, 0x02, 0x02, 0x04, 0x08}, /* ) */
    {0x00, 0x04, 0x15, 0x0e, 0x15, 0x04, 0x00}, /* * */
    {0x00, 0x04, 0x04, 0x1f, 0x04, 0x04, 0x00}, /* + */
    {0x00, 0x00, 0x00, 0x00, 0x0c, 0x04, 0x08}, /* , */
    {0x00, 0x00, 0x00, 0x1f, 0x00, 0x00, 0x00}, /* - */
    {0x00, 0x00, 0x00, 0x00, 0x00, 0x0c, 0x0c}, /* . */
    {0x00, 0x01, 0x02, 0x04, 0x08, 0x10, 0x00}, /* / */
    {0x0e, 0x11, 0x13, 0x15, 0x19, 0x11, 0x0e}, /* 0 */
    {0x04, 0x0c, 0x04, 0x04, 0x04, 0x04, 0x0e}, /* 1 */
    {0x0e, 0x11, 0x01, 0x02, 0x04, 0x08, 0x1f}, /* 2 */
    {0x1f, 0x02, 0x04, 0x02, 0x01, 0x11, 0x0e}, /* 3 */
    {0x02, 0x06, 0x0a, 0x12, 0x1f, 0x02, 0x02}, /* 4 */
    {0x1f, 0x10, 0x1e, 0x01, 0x01, 0x11, 0x0e}, /* 5 */
    {0x06, 0x08, 0x10, 0x1e, 0x11, 0x11, 0x0e}, /* 6 */
    {0x1f, 0x01, 0x02, 0x04, 0x08, 0x08, 0x08}, /* 7 */
    {0x0e, 0x11, 0x11, 0x0e, 0x11, 0x11, 0x0e}, /* 8 */
    {0x0e, 0x11, 0x11, 0x0f, 0x01, 0x02, 0x0c}, /* 9 */
    {0x00, 0x0c, 0x0c, 0x00, 0x0c, 0x0c, 0x00}, /* : */
    {0x00, 0x0c, 0x0c, 0x00, 0x0c, 0x04, 0x08}, /* ; */
    {0x02, 0x04, 0x08, 0x10, 0x08, 0x04, 0x02}, /* < */
    {0x00, 0x00, 0x1f, 0x00, 0x1f, 0x00, 0x00}, /* = */
    {0x08, 0x04, 0x02, 0x01, 0x02, 0x04, 0x08}, /* > */
    {0x0e, 0x11, 0x01, 0x02, 0x04, 0x00, 0x04}, /* ? */
    {0x0e, 0x11, 0x01, 0x0d, 0x15, 0x15, 0x0e}, /* @ */
    {0x0e, 0x11, 0x11, 0x1f, 0x11, 0x11, 0x11}, /* A */
    {0x1e, 0x11, 0x11, 0x1e, 0x11, 0x11, 0x1e}, /* B */
    {0x0e, 0x11, 0x10, 0x10, 0x10, 0x11, 0x0e}, /* C */
    {0x1c, 0x12, 0x11, 0x11, 0x11, 0x12, 0x1c}, /* D */
    {0x1f, 0x10, 0x10, 0x1e, 0x10, 0x10, 0x1f}, /* E */
    {0x1f, 0x10, 0x10, 0x1e, 0x10, 0x10, 0x10}, /* F */
    {0x0e, 0x11, 0x10, 0x17, 0x11, 0x11, 0x0f}, /* G */
    {0x11, 0x11, 0x11, 0x1f, 0x11, 0x11, 0x11}, /* H */
    {0x0e, 0x04, 0x04, 0x04, 0x04, 0x04, 0x0e}, /* I */
    {0x07, 0x02, 0x02, 0x02, 0x02, 0x12, 0x0c}, /* J */
    {0x11, 0x12, 0x14, 0x18, 0x14, 0x12, 0x11}, /* K */
    {0x10, 0x10, 0x10, 0x10, 0x10, 0x10, 0x1f}, /* L */
    {0x11, 0x1b, 0x15, 0x15, 0x11, 0x11, 0x11}, /* M */
    {0x11, 0x11, 0x19, 0x15, 0x13, 0x11, 0x11}, /* N */
    {0x0e, 0x11, 0x11, 0x11, 0x11, 0x11, 0x0e}, /* O */
    {0x1e, 0x11, 0x11, 0x1e, 0x10, 0x10, 0x10}, /* P */
    {0x0e, 0x11, 0x11, 0x11, 0x15, 0x12, 0x0d}, /* Q */
    {0x1e, 0x11, 0x11, 0x1e, 0x14, 0x12, 0x11}, /* R */
    {0x0f, 0x10, 0x10, 0x0e, 0x01, 0x01, 0x1e}, /* S */
    {0x1f, 0x04, 0x04, 0x04, 0x04, 0x04, 0x04}, /* T */
    {0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x0e}, /* U */
    {0x11, 0x11, 0x11, 0x11, 0x11, 0x0a, 0x04}, /* V */
    {0x11, 0x11, 0x11, 0x15, 0x15, 0x15, 0x0a}, /* W */
    {0x11, 0x11, 0x0a, 0x04, 0x0a, 0x11, 0x11}, /* X */
    {0x11, 0x11, 0x0a, 0x04, 0x04, 0x04, 0x04}, /* Y */
    {0x1f, 0x01, 0x02, 0x04, 0x08, 0x10, 0x1f}, /* Z */
    {0x0e, 0x08, 0x08, 0x08, 0x08, 0x08, 0x0e}, /* [ */
    {0x00, 0x10, 0x08, 0x04, 0x02, 0x01, 0x00}, /* backslash */
    {0x0e, 0x02, 0x02, 0x02, 0x02, 0x02, 0x0e}, /* ] */
    {0x04, 0x0a, 0x11, 0x00, 0x00, 0x00, 0x00}, /* ^ */
    {0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x1f}, /* _ */
    {0x08, 0x04, 0x00, 0x00, 0x00, 0x00, 0x00}, /* ` */
    {0x00, 0x00, 0x0e, 0x01, 0x0f, 0x11, 0x0f}, /* a */
    {0x10, 0x10, 0x16, 0x19, 0x11, 0x11, 0x1e}, /* b */
    {0x00, 0x00, 0x0e, 0x10, 0x10, 0x11, 0x0e}, /* c */
    {0x01, 0x01, 0x0d, 0x13, 0x11, 0x11, 0x0f}, /* d */
    {0x00, 0x00, 0x0e, 0x11, 0x1f, 0x10, 0x0e}, /* e */
    {0x06, 0x09, 0x08, 0x1c, 0x08, 0x08, 0x08}, /* f */
    {0x0f, 0x11, 0x11, 0x11, 0x0f, 0x01, 0x0e}, /* g */
    {0x10, 0x10, 0x16, 0x19, 0x11, 0x11, 0x11}, /* h */
    {0x04, 0x00, 0x0c, 0x04, 0x04, 0x04, 0x0e}, /* i */
    {0x02, 0x00, 0x06, 0x02, 0x02, 0x12, 0x0c}, /* j */
    {0x10, 0x10, 0x12, 0x14, 0x18, 0x14, 0x12}, /* k */
    {0x0c, 0x04, 0x04, 0x04, 0x04, 0x04, 0x0e}, /* l */
    {0x00, 0x00, 0x1a, 0x15, 0x15, 0x11, 0x11}, /* m */
    {0x00, 0x00, 0x16, 0x19, 0x11, 0x11, 0x11}, /* n */
    {0x00, 0x00, 0x0e, 0x11, 0x11, 0x11, 0x0e}, /* o */
    {0x1e, 0x11, 0x11, 0x11, 0x1e, 0x10, 0x10}, /* p */
    {0x0f, 0x11, 0x11, 0x11, 0x0f, 0x01, 0x01}, /* q */
    {0x00, 0x00, 0x16, 0x19, 0x10, 0x10, 0x10}, /* r */
    {0x00, 0x00, 0x0e, 0x10, 0x0e, 0x01, 0x1e}, /* s */
    {0x08, 0x08, 0x1c, 0x08, 0x08, 0x09, 0x06}, /* t */
    {0x00, 0x00, 0x11, 0x11, 0x11, 0x13, 0x0d}, /* u */
    {0x00, 0x00, 0x11, 0x11, 0x11, 0x0a, 0x04}, /* v */
    {0x00, 0x00, 0x11, 0x11, 0x15, 0x15, 0x0a}, /* w */
    {0x00, 0x00, 0x11, 0x0a, 0x04, 0x0a, 0x11}, /* x */
    {0x11, 0x11, 0x11, 0x11, 0x0f, 0x01, 0x0e}, /* y */
    {0x00, 0x00, 0x1f, 0x02, 0x04, 0x08, 0x1f}, /* z */
    {0x02, 0x04, 0x04, 0x08, 0x04, 0x04, 0x02}, /* { */
    {0x04, 0x04, 0x04, 0x04, 0x04, 0x04, 0x04}, /* | */
    {0x08, 0x04, 0x04, 0x02, 0x04, 0x04, 0x08}, /* } */
    {0x00, 0x00, 0x08, 0x15, 0x02, 0x00, 0x00}, /* ~ */
};

static void pixel(canvas *c, int x, int y, const uint8_t *rgb)
{
    if (x < 0 || y < 0 || x >= c->w || y >= c->h) return;
    memcpy(c->px + ((size_t)y * c->w + x) * 3, rgb, 3);
}

static void rect(canvas *c, int x0, int y0, int w, int h, const uint8_t *rgb)
{
    for (int y = y0; y < y0 + h; y++)
        for (int x = x0; x < x0 + w; x++) pixel(c, x, y, rgb);
}

/* Width in pixels of n characters at scale s (one blank column between). */
static int text_w(size_t n, int s) { return n ? (int)n * (GLYPH_W + 1) * s - s : 0; }

/* s at (x, y) = its top left, each font pixel s x s; characters outside
 * ASCII 32..126 as '?'. vertical: rotated a quarter turn counterclockwise
 * (read bottom to top), (x, y) then its bottom left. */
static void text(canvas *c, int x, int y, const char *str, int s, const uint8_t *rgb, int vertical)
{
    for (int k = 0; str[k]; k++) {
        unsigned char ch = (unsigned char)str[k];
        const uint8_t *g = FONT[(ch >= 32 && ch < 127 ? ch : '?') - 32];
        int drop = ch == 'g' || ch == 'p' || ch == 'q' || ch == 'y' ? 2 : 0;
        for (int row = drop; row < GLYPH_H + drop; row++)
            for (int col = 0; col < GLYPH_W; col++) {
                if (!(g[row - drop] >> (GLYPH_W - 1 - col) & 1)) continue;
                int along = k * (GLYPH_W + 1) + col; /* along the text, then across it */
                if (vertical) rect(c, x + row * s, y - (along + 1) * s + 1, s, s, rgb);
                else rect(c, x + along * s, y + row * s, s, s, rgb);
            }
    }
}

/* align: 0 left, 1 centred, 2 right of x. */
static void label(canvas *c, int x, int y, const char *str, int s, const uint8_t *rgb, int align)
{
    text(c, x - text_w(strlen(str), s) * align / 2, y, str, s, rgb, 0);
}

static void dot(canvas *c, int x, int y, const uint8_t *rgb, int r)
{
    for (int dy = -r; dy <= r; dy++)
        for (int dx = -r; dx <= r; dx++)
            if (dx * dx + dy * dy <= r * r) pixel(c, x + dx, y + dy, rgb);
}

static void line(canvas *c, double x0, double y0, double x1, double y1, const uint8_t *rgb, int r)
{
    int steps = (int)(fabs(x1 - x0) > fabs(y1 - y0) ? fabs(x1 - x0) : fabs(y1 - y0)) + 1;
    for (int s = 0; s <= steps; s++) {
        double t = (double)s / steps;
        int x = (int)lround(x0 + t * (x1 - x0)), y = (int)lround(y0 + t * (y1 - y0));
        if (r) dot(c, x, y, rgb, r);
        else pixel(c, x, y, rgb);
    }
}

static int canvas_make(const char *cmd, canvas *c, int w, int h)
{
    c->w = w, c->h = h;
    c->px = malloc((size_t)w * h * 3);
    if (!c->px) return cli_error(cmd, "no memory for the picture");
    memset(c->px, 255, (size_t)w * h * 3);
    return CLI_OK;
}

static int canvas_save(const char *cmd, canvas *c, const char *path)
{
    simclr_status st = simclr_image_write_png(path, c->px, c->h, c->w, 3);
    free(c->px);
    return st == SIMCLR_OK ? CLI_OK : cli_fail(cmd, "picture", st);
}

/* ---- curves.png ---- */

/* A "nice" tick spacing (1, 2 or 5 x 10^k) giving about `want` intervals
 * over span, at least `min_step`. */
static double nice_step(double span, int want, double min_step)
{
    double raw = span / want, p = pow(10, floor(log10(raw))), f = raw / p;
    double step = (f < 1.5 ? 1 : f < 3.5 ? 2 : f < 7.5 ? 5 : 10) * p;
    return step < min_step ? min_step : step;
}

static void tick_label(char *buf, size_t size, double v, double step, int percent)
{
    if (percent) {
        snprintf(buf, size, "%.0f%%", 100 * v);
        return;
    }
    int dec = step >= 1 ? 0 : (int)ceil(-log10(step) - 1e-9);
    if (fabs(v) < step * 1e-6) v = 0; /* no "-0.0" */
    if (fabs(v) >= 1e5 && dec == 0) snprintf(buf, size, "%.0fk", v / 1000);
    else snprintf(buf, size, "%.*f", dec > 6 ? 6 : dec, v);
}

typedef struct axis {
    double lo, hi, step;
} axis;

/* The axis over [lo, hi] widened to whole ticks. */
static axis make_axis(double lo, double hi, int want, double min_step)
{
    if (!(hi > lo)) hi = lo + (min_step > 0 ? min_step : 1);
    axis a;
    a.step = nice_step(hi - lo, want, min_step);
    a.lo = floor(lo / a.step + 1e-9) * a.step;
    a.hi = ceil(hi / a.step - 1e-9) * a.step;
    if (!(a.hi > a.lo)) a.hi = a.lo + a.step;
    return a;
}

/* One panel: plot area (x0, y0, w, h), the series v[0..n) at steps 1..n,
 * gridlines and ticks, titles. With many steps the per-step values are drawn
 * light and their moving average (over `window` steps) dark. */
static void panel(canvas *c, int x0, int y0, int w, int h, const double *v, int64_t n, axis ya, int percent,
                  const char *title, const char *ytitle, const uint8_t *rgb)
{
    axis xa = make_axis(0, (double)(n > 1 ? n : 1), 5, 1);
    char buf[64];
    int label_w = 0; /* the widest tick label, to place the axis title */
    /* gridlines and tick labels */
    for (int k = 0;; k++) {
        double v0 = ya.lo + k * ya.step;
        if (v0 > ya.hi + ya.step * 1e-6) break;
        int y = y0 + h - (int)lround((v0 - ya.lo) / (ya.hi - ya.lo) * h);
        if (v0 > ya.lo) line(c, x0 + 1, y, x0 + w, y, GRID, 0);
        line(c, x0 - 5, y, x0, y, AXIS, 0);
        tick_label(buf, sizeof buf, v0, ya.step, percent);
        label(c, x0 - 9, y - GLYPH_H, buf, 2, INK, 2);
        if (text_w(strlen(buf), 2) > label_w) label_w = text_w(strlen(buf), 2);
    }
    for (int k = 0;; k++) {
        double v0 = xa.lo + k * xa.step;
        if (v0 > xa.hi + xa.step * 1e-6) break;
        int x = x0 + (int)lround((v0 - xa.lo) / (xa.hi - xa.lo) * w);
        if (v0 > xa.lo) line(c, x, y0, x, y0 + h - 1, GRID, 0);
        line(c, x, y0 + h, x, y0 + h + 5, AXIS, 0);
        tick_label(buf, sizeof buf, v0, xa.step, 0);
        label(c, x, y0 + h + 10, buf, 2, INK, 1);
    }
    /* the series: light per-step values, then the dark moving average */
    int64_t window = n >= 200 ? n / 50 : 1;
    for (int pass = window > 1 ? 0 : 1; pass < 2; pass++) {
        uint8_t col[3];
        for (int k = 0; k < 3; k++) col[k] = pass ? rgb[k] : (uint8_t)(255 - (255 - rgb[k]) * 35 / 100);
        double px = 0, py = 0, sum = 0;
        int64_t count = 0;
        int prev = 0;
        for (int64_t i = 0; i < n; i++) {
            double y = v[i];
            if (pass && window > 1) { /* trailing mean of the finite values among the last window */
                if (isfinite(v[i])) sum += v[i], count++;
                if (i >= window && isfinite(v[i - window])) sum -= v[i - window], count--;
                y = count ? sum / (double)count : NAN;
                if (i + 1 < window) y = NAN; /* a full window first */
            }
            if (!isfinite(y)) {
                prev = 0;
                continue;
            }
            double t = (y - ya.lo) / (ya.hi - ya.lo);
            double X = x0 + ((double)(i + 1) - xa.lo) / (xa.hi - xa.lo) * w;
            double Y = y0 + h - h * (t < 0 ? 0 : t > 1 ? 1 : t);
            if (prev) line(c, px, py, X, Y, col, pass && window > 1 ? 1 : 0);
            if (!prev || n <= 60) dot(c, (int)lround(X), (int)lround(Y), col, n <= 60 ? 3 : 1); /* few: markers */
            px = X, py = Y, prev = 1;
        }
    }
    /* axes on top */
    line(c, x0, y0 + h, x0 + w, y0 + h, AXIS, 0);
    line(c, x0, y0, x0, y0 + h, AXIS, 0);
    label(c, x0 + w / 2, y0 - 46, title, 2, INK, 1);
    if (window > 1) {
        snprintf(buf, sizeof buf, "light: each step, dark: mean of %lld", (long long)window);
        label(c, x0 + w / 2, y0 - 22, buf, 2, GRAY, 1);
    }
    label(c, x0 + w / 2, y0 + h + 34, "step", 2, INK, 1);
    text(c, x0 - 9 - label_w - 12 - 2 * GLYPH_H, y0 + h / 2 + text_w(strlen(ytitle), 2) / 2, ytitle, 2, INK, 1);
}

int plot_curves(const char *cmd, const char *path, const double *loss, const double *acc, int64_t n)
{
    canvas c;
    int rc = canvas_make(cmd, &c, 1200, 530);
    if (rc) return rc;
    double lo = INFINITY, hi = -INFINITY;
    for (int64_t i = 0; i < n; i++)
        if (isfinite(loss[i])) {
            if (loss[i] < lo) lo = loss[i];
            if (loss[i] > hi) hi = loss[i];
        }
    if (!(hi >= lo)) lo = 0, hi = 1;
    if (lo > 0) lo = 0; /* the loss from 0 up */
    char title[96];
    snprintf(title, sizeof title, "simclr train: %lld step%s", (long long)n, n == 1 ? "" : "s");
    label(&c, c.w / 2, 14, title, 3, INK, 1);
    panel(&c, 110, 110, 450, 330, loss, n, make_axis(lo, hi, 5, 0), 0, "NT-Xent loss", "loss", PALETTE[0]);
    axis acc_axis = {0, 1, 0.2};
    panel(&c, 710, 110, 450, 330, acc, n, acc_axis, 1, "contrastive accuracy", "accuracy", PALETTE[1]);
    return canvas_save(cmd, &c, path);
}

/* ---- map.png ---- */

/* The top eigenvector of the covariance cov (d x d) orthogonal to `not`
 * (may be NULL), by power iteration. */
static void top_eigvec(const double *cov, int64_t d, const double *not, double *v)
{
    double *t = malloc((size_t)d * sizeof *t);
    for (int64_t i = 0; i < d; i++) v[i] = 1.0 / sqrt((double)d) * (1 + 0.01 * (double)(i % 7));
    for (int it = 0; it < 200 && t; it++) {
        if (not) {
            double p = 0;
            for (int64_t i = 0; i < d; i++) p += v[i] * not[i];
            for (int64_t i = 0; i < d; i++) v[i] -= p * not[i];
        }
        double norm = 0;
        for (int64_t i = 0; i < d; i++) {
            double s = 0;
            for (int64_t j = 0; j < d; j++) s += cov[i * d + j] * v[j];
            t[i] = s;
            norm += s * s;
        }
        norm = sqrt(norm);
        if (norm == 0) break;
        for (int64_t i = 0; i < d; i++) v[i] = t[i] / norm;
    }
    free(t);
}

/* v' cov v / trace(cov): the share of the variance along unit vector v. */
static double variance_share(const double *cov, int64_t d, const double *v)
{
    double q = 0, tr = 0;
    for (int64_t i = 0; i < d; i++) {
        double s = 0;
        for (int64_t j = 0; j < d; j++) s += cov[i * d + j] * v[j];
        q += v[i] * s;
        tr += cov[i * d + i];
    }
    return tr > 0 ? q / tr : 0;
}

/* name as printable ASCII (each UTF-8 sequence or control byte one '?'),
 * at most max characters, ".." ending a cut one. */
static void legend_name(char *out, size_t size, const char *name, size_t max)
{
    size_t n = 0;
    for (const unsigned char *p = (const unsigned char *)name; *p && n + 1 < size; p++) {
        if (*p >= 0x80 && *p < 0xc0) continue; /* a UTF-8 continuation byte */
        out[n++] = *p >= 32 && *p < 127 ? (char)*p : '?';
    }
    out[n] = '\0';
    if (n > max && max >= 3) strcpy(out + max - 2, "..");
}

/* The legend at (x, y), at most h pixels tall: a swatch and the class name
 * (cut to fit) with its count per class; "+K more" when they do not fit. */
static void legend(canvas *c, int x, int y, int w, int h, const int32_t *labels, int64_t n,
                   const simclr_image_folder *classes)
{
    int k_max = -1, unlabelled = 0;
    for (int64_t i = 0; i < n; i++) {
        if (labels[i] > k_max) k_max = labels[i];
        if (labels[i] < 0) unlabelled = 1;
    }
    int k_count = classes ? simclr_image_folder_class_count(classes) : 0;
    if (k_count < k_max + 1) k_count = k_max + 1;
    int64_t *count = calloc((size_t)k_count + 1, sizeof *count);
    if (!count) return;
    for (int64_t i = 0; i < n; i++)
        if (labels[i] >= 0) count[labels[i]]++;
    int row = 22, rows = h / row - 1 - (k_count > N_COLORS ? 2 : 0), entries = k_count + unlabelled;
    label(c, x, y, entries > rows ? "classes (first ones)" : "classes", 2, INK, 0);
    y += row + 4;
    int shown = entries <= rows ? entries : rows - 1;
    size_t max_chars = (size_t)((w - 22) / ((GLYPH_W + 1) * 2));
    for (int e = 0; e < shown; e++) {
        int k = e < k_count ? e : -1;
        char name[160], num[32], full[200];
        const char *raw = k < 0 ? "(no class)" : classes ? simclr_image_folder_class_name(classes, k) : NULL;
        char fallback[32];
        if (!raw) snprintf(fallback, sizeof fallback, "class %d", k), raw = fallback;
        snprintf(num, sizeof num, " (%lld)", (long long)(k < 0 ? 0 : count[k]));
        if (k < 0) {
            int64_t u = 0;
            for (int64_t i = 0; i < n; i++) u += labels[i] < 0;
            snprintf(num, sizeof num, " (%lld)", (long long)u);
        }
        size_t room = max_chars > strlen(num) + 3 ? max_chars - strlen(num) : 3;
        legend_name(name, sizeof name, raw, room);
        snprintf(full, sizeof full, "%s%s", name, num);
        rect(c, x, y + 1, 12, 12, k < 0 ? GRAY : PALETTE[k % N_COLORS]);
        text(c, x + 20, y, full, 2, INK, 0);
        y += row;
    }
    if (shown < entries) {
        char more[48];
        snprintf(more, sizeof more, "+%d more", entries - shown);
        text(c, x + 20, y, more, 2, GRAY, 0);
        y += row;
    }
    if (k_count > N_COLORS) {
        char note[48];
        snprintf(note, sizeof note, "every %d classes)", N_COLORS);
        text(c, x, y + 6, "(colours repeat", 2, GRAY, 0);
        text(c, x, y + 6 + row, note, 2, GRAY, 0);
    }
    free(count);
}

int plot_pca(const char *cmd, const char *path, const float *x, int64_t n, int64_t d, const int32_t *labels,
             const simclr_image_folder *classes)
{
    double *mean = calloc((size_t)d, sizeof *mean), *cov = calloc((size_t)(d * d), sizeof *cov);
    double *e1 = malloc((size_t)d * sizeof *e1), *e2 = malloc((size_t)d * sizeof *e2);
    double *p = malloc((size_t)(2 * n + 1) * sizeof *p);
    if (!mean || !cov || !e1 || !e2 || !p) {
        free(mean), free(cov), free(e1), free(e2), free(p);
        return cli_error(cmd, "no memory for the PCA");
    }
    for (int64_t i = 0; i < n; i++)
        for (int64_t j = 0; j < d; j++) mean[j] += x[i * d + j] / (double)n;
    for (int64_t i = 0; i < n; i++)
        for (int64_t a = 0; a < d; a++) {
            double xa = x[i * d + a] - mean[a];
            for (int64_t b = 0; b <= a; b++) cov[a * d + b] += xa * (x[i * d + b] - mean[b]);
        }
    for (int64_t a = 0; a < d; a++)
        for (int64_t b = 0; b < a; b++) cov[b * d + a] = cov[a * d + b];
    top_eigvec(cov, d, NULL, e1);
    top_eigvec(cov, d, e1, e2);
    double share[2] = {variance_share(cov, d, e1), variance_share(cov, d, e2)};
    double lo[2] = {INFINITY, INFINITY}, hi[2] = {-INFINITY, -INFINITY};
    for (int64_t i = 0; i < n; i++)
        for (int k = 0; k < 2; k++) {
            const double *e = k ? e2 : e1;
            double s = 0;
            for (int64_t j = 0; j < d; j++) s += (x[i * d + j] - mean[j]) * e[j];
            p[2 * i + k] = s;
            if (s < lo[k]) lo[k] = s;
            if (s > hi[k]) hi[k] = s;
        }
    canvas c;
    const int X0 = 50, Y0 = 70, S = 600; /* the square plot area */
    int rc = canvas_make(cmd, &c, labels ? 960 : 700, 740);
    if (!rc) {
        char buf[96];
        snprintf(buf, sizeof buf, "PCA of %lld embedding%s", (long long)n, n == 1 ? "" : "s");
        label(&c, X0 + S / 2, 14, buf, 3, INK, 1);
        line(&c, X0, Y0, X0 + S, Y0, GRID, 0);
        line(&c, X0 + S, Y0, X0 + S, Y0 + S, GRID, 0);
        /* Points in a scrambled order (a stride coprime with n), so that no
         * class is drawn entirely over the others. */
        int64_t stride = 1;
        for (int64_t cand = 7919; n > 1; cand += 2) {
            int64_t a = cand, b = n;
            while (b) { int64_t t = a % b; a = b, b = t; }
            if (a == 1) { stride = cand % n ? cand % n : 1; break; }
        }
        int r = n > 2000 ? 1 : n > 300 ? 2 : 3;
        for (int64_t q = 0; q < n; q++) {
            int64_t i = (int64_t)(((unsigned long long)q * (unsigned long long)stride) % (unsigned long long)n);
            double u = hi[0] > lo[0] ? (p[2 * i] - lo[0]) / (hi[0] - lo[0]) : 0.5;
            double v = hi[1] > lo[1] ? (p[2 * i + 1] - lo[1]) / (hi[1] - lo[1]) : 0.5;
            int32_t l = labels ? labels[i] : -1;
            dot(&c, X0 + 8 + (int)(u * (S - 16)), Y0 + S - 8 - (int)(v * (S - 16)), l >= 0 ? PALETTE[l % N_COLORS] : GRAY,
                r);
        }
        line(&c, X0, Y0 + S, X0 + S, Y0 + S, AXIS, 0);
        line(&c, X0, Y0, X0, Y0 + S, AXIS, 0);
        snprintf(buf, sizeof buf, "PC 1 (%.0f%% of the variance)", 100 * share[0]);
        label(&c, X0 + S / 2, Y0 + S + 14, buf, 2, INK, 1);
        snprintf(buf, sizeof buf, "PC 2 (%.0f%%)", 100 * share[1]);
        text(&c, X0 - 30, Y0 + S / 2 + text_w(strlen(buf), 2) / 2, buf, 2, INK, 1);
        if (labels) legend(&c, X0 + S + 30, Y0, c.w - (X0 + S + 30) - 10, S, labels, n, classes);
        else label(&c, X0 + S / 2, Y0 + S + 40, "no class subfolders: every image gray", 2, GRAY, 1);
        rc = canvas_save(cmd, &c, path);
    }
    free(mean), free(cov), free(e1), free(e2), free(p);
    return rc;
}
