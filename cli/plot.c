/* Pictures without a plotting library: lines and dots on an RGB canvas,
 * written with libsimclr_image's PNG writer. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

typedef struct canvas {
    uint8_t *px;
    int w, h;
} canvas;

static const uint8_t PALETTE[10][3] = {{31, 119, 180}, {255, 127, 14}, {44, 160, 44},  {214, 39, 40},
                                       {148, 103, 189}, {140, 86, 75}, {227, 119, 194}, {127, 127, 127},
                                       {188, 189, 34},  {23, 190, 207}};

static void dot(canvas *c, int x, int y, const uint8_t *rgb, int r)
{
    for (int dy = -r; dy <= r; dy++)
        for (int dx = -r; dx <= r; dx++) {
            int xx = x + dx, yy = y + dy;
            if (dx * dx + dy * dy > r * r || xx < 0 || yy < 0 || xx >= c->w || yy >= c->h) continue;
            memcpy(c->px + ((size_t)yy * c->w + xx) * 3, rgb, 3);
        }
}

static void line(canvas *c, double x0, double y0, double x1, double y1, const uint8_t *rgb)
{
    int steps = (int)(fabs(x1 - x0) > fabs(y1 - y0) ? fabs(x1 - x0) : fabs(y1 - y0)) + 1;
    for (int s = 0; s <= steps; s++) {
        double t = (double)s / steps;
        dot(c, (int)lround(x0 + t * (x1 - x0)), (int)lround(y0 + t * (y1 - y0)), rgb, 1);
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

/* One panel at (x0, y0) of size w x h: axes, faint grid, the series scaled
 * to [lo, hi]. */
static void panel(canvas *c, int x0, int y0, int w, int h, const double *v, int64_t n, double lo, double hi,
                  const uint8_t *rgb)
{
    static const uint8_t axis[3] = {60, 60, 60}, grid[3] = {225, 225, 225};
    for (int k = 1; k < 4; k++) {
        double y = y0 + h * k / 4.0;
        for (int x = x0; x < x0 + w; x += 2) c->px[((size_t)lround(y) * c->w + x) * 3 + 0] = grid[0],
                                                c->px[((size_t)lround(y) * c->w + x) * 3 + 1] = grid[1],
                                                c->px[((size_t)lround(y) * c->w + x) * 3 + 2] = grid[2];
    }
    line(c, x0, y0 + h, x0 + w, y0 + h, axis);
    line(c, x0, y0, x0, y0 + h, axis);
    if (n < 1 || !(hi > lo)) return;
    double px = 0, py = 0;
    for (int64_t i = 0; i < n; i++) {
        double x = x0 + (n == 1 ? 0 : (double)w * (double)i / (double)(n - 1));
        double t = (v[i] - lo) / (hi - lo);
        double y = y0 + h - h * (t < 0 ? 0 : t > 1 ? 1 : t);
        if (i) line(c, px, py, x, y, rgb);
        px = x, py = y;
    }
}

int plot_curves(const char *cmd, const char *path, const double *loss, const double *acc, int64_t n)
{
    canvas c;
    int rc = canvas_make(cmd, &c, 960, 360);
    if (rc) return rc;
    double lo = INFINITY, hi = -INFINITY;
    for (int64_t i = 0; i < n; i++) {
        if (loss[i] < lo) lo = loss[i];
        if (loss[i] > hi) hi = loss[i];
    }
    if (!(hi > lo)) lo -= 1, hi += 1;
    lo = lo > 0 ? 0 : lo; /* the loss from 0 up */
    panel(&c, 30, 20, 420, 310, loss, n, lo, hi, PALETTE[0]);
    panel(&c, 510, 20, 420, 310, acc, n, 0.0, 1.0, PALETTE[1]);
    return canvas_save(cmd, &c, path);
}

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

int plot_pca(const char *cmd, const char *path, const float *x, int64_t n, int64_t d, const int32_t *labels)
{
    double *mean = calloc((size_t)d, sizeof *mean), *cov = calloc((size_t)(d * d), sizeof *cov);
    double *e1 = malloc((size_t)d * sizeof *e1), *e2 = malloc((size_t)d * sizeof *e2);
    double *p = malloc((size_t)(2 * n) * sizeof *p);
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
    int rc = canvas_make(cmd, &c, 640, 640);
    if (!rc) {
        static const uint8_t gray[3] = {150, 150, 150};
        for (int64_t i = 0; i < n; i++) {
            double u = hi[0] > lo[0] ? (p[2 * i] - lo[0]) / (hi[0] - lo[0]) : 0.5;
            double v = hi[1] > lo[1] ? (p[2 * i + 1] - lo[1]) / (hi[1] - lo[1]) : 0.5;
            int32_t l = labels ? labels[i] : -1;
            dot(&c, 20 + (int)(u * 600), 620 - (int)(v * 600), l >= 0 ? PALETTE[l % 10] : gray, n > 2000 ? 1 : 3);
        }
        rc = canvas_save(cmd, &c, path);
    }
    free(mean), free(cov), free(e1), free(e2), free(p);
    return rc;
}
