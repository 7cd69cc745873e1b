/* ReLU inputs clear of zero, in C: the precondition of every test that
 * compares two float32 runs of a ReLU network over several training steps
 * (the MPI equivalence runs, gradient caching), and its assertion. The
 * C counterpart of tests/python/relu_margin.py, for ResNets with basic
 * blocks and the CIFAR stem plus an MLP head (v1 or v2).
 *
 * Why: two runs that differ only in the order of float sums (ranks,
 * micro-batches) agree to rounding, until a ReLU input lies within rounding
 * of zero: there the masks differ and the gradients part by far more than
 * rounding (measured: 1% differences from the 4th synchronized-BN step on).
 *
 * How: this file's float64 forward (relu_margin_fwd.h) reproduces the
 * library's TRAIN forward on the same views (batch statistics over the
 * whole batch, or the running ones for frozen BN) and records every ReLU
 * input. Before each step, rm_repair shifts each ReLU site's bias (a batch
 * norm's beta, or the head's linear bias) per channel by the smallest amount
 * that leaves no input within a gap of zero, site by site in execution order
 * (a shift moves that channel's ReLU inputs by exactly the shift and no
 * statistic of its layer); the caller applies the same shifts to every run
 * (rm_apply). rm_check then asserts, from the library's parameters as they
 * are, that at every site min |input| >= RM_MARGIN x max |input| and
 * >= RM_NOISE_FACTOR x the float32 noise there, the noise being the
 * difference between the float32 and float64 forwards of this file, scaled
 * up by how much more the library's own output deviates from float64 than
 * this file's float32 output does. rm_check also asserts that the library's
 * output equals the float64 reference (relative 1e-3; rounding gives ~1e-6),
 * so the margin is measured on the network the library actually runs.
 *
 * Include once per test program (the functions are static inline). */
#ifndef SIMCLR_TEST_RELU_MARGIN_H
#define SIMCLR_TEST_RELU_MARGIN_H

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "simclr.h"

#define RM_MARGIN 1e-4       /* min |ReLU input| / max |ReLU input| at a site */
#define RM_NOISE_FACTOR 20.0 /* min |ReLU input| / float32 noise at a site */
#define RM_LIBRARY_TOL 1e-3  /* library output vs float64 reference, relative to the largest |output| */
#define RM_MAX_SITES 64

typedef struct rm_param {
    char name[96];
    int64_t dims[4];
    int64_t numel;
    double *v;
} rm_param;

typedef struct rm_site {
    int mod;         /* 0 encoder, 1 head */
    char prefix[64]; /* the layer whose "<prefix>.bias" feeds the ReLU */
    int64_t c, m;    /* channels, values per channel */
    double *v_d, *v_f; /* ReLU inputs [c][m] of the float64 and float32 forwards */
} rm_site;

typedef struct rm_net {
    simclr_module *mods[2];
    rm_param *params[2];
    int np[2];
    int frozen;  /* batch norms use their running statistics */
    int head_bn; /* v2 head */
    rm_site sites[RM_MAX_SITES];
    int site_count;
    double noise_scale; /* library noise / this file's float32 noise, >= 1 */
    double kappa;       /* largest |batch mean| / batch std of any batch norm input (last double forward) */
    char kappa_at[80];
} rm_net;

typedef struct rm_report {
    double margin;     /* smallest min|input| / max|input| over the sites */
    double noise;      /* smallest min|input| / (float32 noise) over the sites */
    double lib_err;    /* library output vs float64, relative */
    double noise_scale;
    int sites;
    char message[320]; /* why rm_check failed */
} rm_report;

static inline void rm_fatal(const char *what)
{
    fprintf(stderr, "relu_margin: %s\n", what);
    abort();
}

static inline const rm_param *rm_find_opt(const rm_net *net, int mi, const char *prefix, const char *leaf)
{
    char full[128];
    snprintf(full, sizeof full, "%s.%s", prefix, leaf);
    for (int i = 0; i < net->np[mi]; i++)
        if (strcmp(net->params[mi][i].name, full) == 0) return &net->params[mi][i];
    return NULL;
}

static inline const rm_param *rm_find(const rm_net *net, int mi, const char *prefix, const char *leaf)
{
    const rm_param *p = rm_find_opt(net, mi, prefix, leaf);
    if (!p) {
        char msg[160];
        snprintf(msg, sizeof msg, "no tensor %s.%s in the %s", prefix, leaf, mi ? "head" : "encoder");
        rm_fatal(msg);
    }
    return p;
}

/* The next site of the current forward (same order every forward). */
static inline rm_site *rm_site_at(rm_net *net, int mi, const char *prefix, int64_t c, int64_t m)
{
    if (net->site_count == RM_MAX_SITES) rm_fatal("too many ReLU sites");
    rm_site *s = &net->sites[net->site_count++];
    if (s->c != c || s->m != m || s->mod != mi || strcmp(s->prefix, prefix) != 0) {
        free(s->v_d), free(s->v_f);
        s->mod = mi, s->c = c, s->m = m;
        snprintf(s->prefix, sizeof s->prefix, "%s", prefix);
        s->v_d = calloc((size_t)(c * m), sizeof *s->v_d);
        s->v_f = calloc((size_t)(c * m), sizeof *s->v_f);
    }
    return s;
}

/* (Re)reads the double copies from the modules' tensors. */
static inline void rm_reload(rm_net *net)
{
    for (int k = 0; k < 2; k++)
        for (int i = 0; i < net->np[k]; i++) {
            simclr_tensor *t;
            if (simclr_module_param(net->mods[k], i, NULL, &t, NULL, NULL) != SIMCLR_OK) rm_fatal("module_param");
            const float *src = simclr_tensor_data(t);
            for (int64_t j = 0; j < net->params[k][i].numel; j++) net->params[k][i].v[j] = src[j];
        }
}

static inline void rm_init(rm_net *net, simclr_module *enc, simclr_module *head, int frozen)
{
    memset(net, 0, sizeof *net);
    net->mods[0] = enc, net->mods[1] = head;
    net->frozen = frozen;
    net->noise_scale = 1;
    for (int k = 0; k < 2; k++) {
        net->np[k] = simclr_module_param_count(net->mods[k]);
        net->params[k] = calloc((size_t)net->np[k], sizeof(rm_param));
        for (int i = 0; i < net->np[k]; i++) {
            const char *name;
            simclr_tensor *t;
            if (simclr_module_param(net->mods[k], i, &name, &t, NULL, NULL) != SIMCLR_OK) rm_fatal("module_param");
            rm_param *p = &net->params[k][i];
            snprintf(p->name, sizeof p->name, "%s", name);
            for (int d = 0; d < simclr_tensor_ndim(t) && d < 4; d++) p->dims[d] = simclr_tensor_dim(t, d);
            p->numel = simclr_tensor_numel(t);
            p->v = malloc((size_t)p->numel * sizeof *p->v);
        }
    }
    net->head_bn = rm_find_opt(net, 1, "layers.1", "running_mean") != NULL;
    rm_reload(net);
}

static inline void rm_free(rm_net *net)
{
    for (int k = 0; k < 2; k++) {
        for (int i = 0; i < net->np[k]; i++) free(net->params[k][i].v);
        free(net->params[k]);
    }
    for (int i = 0; i < RM_MAX_SITES; i++) free(net->sites[i].v_d), free(net->sites[i].v_f);
    memset(net, 0, sizeof *net);
}

#define R double
#define RM(x) x##_d
#include "relu_margin_fwd.h"
#undef R
#undef RM
#define R float
#define RM(x) x##_f
#include "relu_margin_fwd.h"
#undef R
#undef RM

/* Channels over all sites: the length of a shift vector. */
static inline int64_t rm_shift_count(const rm_net *net)
{
    int64_t n = 0;
    for (int k = 0; k < net->site_count; k++) n += net->sites[k].c;
    return n;
}

/* The d of least |d| with min_i |v_i + d| >= gap (v sorted in place). */
static inline int rm_cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static inline double rm_smallest_shift(double *v, int64_t m, double gap)
{
    double lo_abs = INFINITY;
    for (int64_t i = 0; i < m; i++) lo_abs = fmin(lo_abs, fabs(v[i]));
    if (lo_abs >= gap) return 0.0;
    qsort(v, (size_t)m, sizeof *v, rm_cmp);
    /* t = -d must avoid every [v_i - gap, v_i + gap]: the allowed set is
     * the two outer rays and the gaps between neighbours > 2 gap apart;
     * in each, the point nearest 0. */
    double best = INFINITY;
    for (int64_t i = 0; i <= m; i++) {
        double lo = i == 0 ? -INFINITY : v[i - 1] + gap, hi = i == m ? INFINITY : v[i] - gap;
        if (lo > hi) continue;
        double t = 0.0 < lo ? lo : 0.0 > hi ? hi : 0.0;
        if (fabs(t) < fabs(best)) best = t;
    }
    return -best;
}

static inline double rm_max_abs_diff(const double *a, const double *b, int64_t n)
{
    double e = 0;
    for (int64_t i = 0; i < n; i++) e = fmax(e, fabs(a[i] - b[i]));
    return e;
}

static inline double rm_max_abs(const double *a, int64_t n)
{
    double e = 0;
    for (int64_t i = 0; i < n; i++) e = fmax(e, fabs(a[i]));
    return e;
}

/* Views: F32 [n][c][h][w]. lib_feat [n][D], lib_z [n][P]: the library's
 * output on the same views (rm_library_forward). Compares them with this
 * file's float64 and float32 forwards and sets net->noise_scale; returns the
 * library's relative error. */
static inline double rm_calibrate(rm_net *net, const float *views, int64_t n, int64_t c, int64_t h, int64_t w,
                                  const float *lib_feat, const float *lib_z)
{
    const int64_t d = simclr_module_output_dim(net->mods[0]), p = simclr_module_output_dim(net->mods[1]);
    double *f64 = malloc((size_t)(n * d) * sizeof *f64), *f32 = malloc((size_t)(n * d) * sizeof *f32);
    double *z64 = malloc((size_t)(n * p) * sizeof *z64), *z32 = malloc((size_t)(n * p) * sizeof *z32);
    double *lf = malloc((size_t)(n * d) * sizeof *lf), *lz = malloc((size_t)(n * p) * sizeof *lz);
    forward_d(net, views, n, c, h, w, f64, z64);
    forward_f(net, views, n, c, h, w, f32, z32);
    for (int64_t i = 0; i < n * d; i++) lf[i] = lib_feat[i];
    for (int64_t i = 0; i < n * p; i++) lz[i] = lib_z[i];
    double sf = rm_max_abs(f64, n * d), sz = rm_max_abs(z64, n * p);
    double lib = fmax(rm_max_abs_diff(lf, f64, n * d) / sf, rm_max_abs_diff(lz, z64, n * p) / sz);
    double mine = fmax(rm_max_abs_diff(f32, f64, n * d) / sf, rm_max_abs_diff(z32, z64, n * p) / sz);
    net->noise_scale = fmax(1.0, lib / fmax(mine, 1e-300));
    free(f64), free(f32), free(z64), free(z32), free(lf), free(lz);
    return lib;
}

/* Shifts the sites' biases in net's double copies (not in the modules) so
 * that every ReLU input is 1.5 x max(RM_MARGIN x the site's largest |input|,
 * RM_NOISE_FACTOR x its float32 noise) away from zero; the 1.5 leaves room
 * for the float rounding of the shifted biases and the growth of the largest
 * |input|. shifts receives rm_shift_count values (site order, channel order),
 * which the caller adds to every run's modules with rm_apply. Returns the
 * number of channels shifted. */
static inline int64_t rm_repair(rm_net *net, const float *views, int64_t n, int64_t c, int64_t h, int64_t w,
                                double *shifts, int64_t shift_cap)
{
    int64_t off = 0, shifted = 0;
    forward_d(net, views, n, c, h, w, NULL, NULL);
    const int count = net->site_count;
    if (rm_shift_count(net) > shift_cap) rm_fatal("shift vector too small");
    for (int k = 0; k < count; k++) {
        /* Site k measured after the shifts of sites 0..k-1 (and its values
         * fresh: rm_smallest_shift sorts them). */
        if (k > 0) forward_d(net, views, n, c, h, w, NULL, NULL);
        forward_f(net, views, n, c, h, w, NULL, NULL);
        rm_site *s = &net->sites[k];
        const double noise = net->noise_scale * rm_max_abs_diff(s->v_d, s->v_f, s->c * s->m);
        const double gap = 1.5 * fmax(RM_MARGIN * rm_max_abs(s->v_d, s->c * s->m), RM_NOISE_FACTOR * noise);
        rm_param *bias = (rm_param *)rm_find(net, s->mod, s->prefix, "bias");
        for (int64_t ch = 0; ch < s->c; ch++) {
            double dd = rm_smallest_shift(s->v_d + ch * s->m, s->m, gap); /* sorts: the forward reruns */
            shifts[off + ch] = dd;
            bias->v[ch] += dd;
            shifted += dd != 0;
        }
        off += s->c;
    }
    return shifted;
}

/* Adds the shifts (rm_repair's, same site order) to the biases of enc and
 * head: the same architecture as net's, any replica. */
static inline void rm_apply(const rm_net *net, simclr_module *enc, simclr_module *head, const double *shifts)
{
    simclr_module *mods[2] = {enc, head};
    int64_t off = 0;
    for (int k = 0; k < net->site_count; k++) {
        const rm_site *s = &net->sites[k];
        char full[128];
        snprintf(full, sizeof full, "%s.bias", s->prefix);
        float *b = NULL;
        for (int i = 0; i < simclr_module_param_count(mods[s->mod]) && !b; i++) {
            const char *name;
            simclr_tensor *t;
            if (simclr_module_param(mods[s->mod], i, &name, &t, NULL, NULL) != SIMCLR_OK) rm_fatal("module_param");
            if (strcmp(name, full) == 0) b = simclr_tensor_data(t);
        }
        if (!b) rm_fatal("a site's bias is missing in a replica");
        for (int64_t ch = 0; ch < s->c; ch++) b[ch] = (float)((double)b[ch] + shifts[off + ch]);
        off += s->c;
    }
}

/* The assertion, on the modules' current parameters (re-read): returns 0
 * and fills r when every site is clear of zero and the library's output
 * matches the float64 reference; else 1 with r->message saying where not. */
static inline int rm_check(rm_net *net, const float *views, int64_t n, int64_t c, int64_t h, int64_t w,
                           const float *lib_feat, const float *lib_z, rm_report *r)
{
    memset(r, 0, sizeof *r);
    rm_reload(net);
    r->lib_err = rm_calibrate(net, views, n, c, h, w, lib_feat, lib_z); /* both forwards ran: sites are fresh */
    r->noise_scale = net->noise_scale;
    r->sites = net->site_count;
    r->margin = r->noise = INFINITY;
    if (!(r->lib_err <= RM_LIBRARY_TOL)) {
        snprintf(r->message, sizeof r->message,
                 "the library's forward differs from the float64 reference by %.3g (relative; tolerance %.0e): "
                 "the margin would be measured on another network",
                 r->lib_err, RM_LIBRARY_TOL);
        return 1;
    }
    for (int k = 0; k < net->site_count; k++) {
        const rm_site *s = &net->sites[k];
        double lo = INFINITY;
        for (int64_t i = 0; i < s->c * s->m; i++) lo = fmin(lo, fabs(s->v_d[i]));
        const double hi = rm_max_abs(s->v_d, s->c * s->m);
        const double noise = net->noise_scale * rm_max_abs_diff(s->v_d, s->v_f, s->c * s->m);
        r->margin = fmin(r->margin, lo / hi);
        r->noise = fmin(r->noise, lo / fmax(noise, 1e-300));
        if (lo < RM_MARGIN * hi || lo < RM_NOISE_FACTOR * noise) {
            snprintf(r->message, sizeof r->message,
                     "precondition: ReLU inputs must stay clear of zero, but at %s%s min |input| %.3g is below "
                     "%.0e x max |input| %.3g or %.0f x the float32 noise %.3g",
                     s->mod ? "head " : "", s->prefix, lo, RM_MARGIN, hi, RM_NOISE_FACTOR, noise);
            return 1;
        }
    }
    return 0;
}

/* The library's own forward of enc + head on views [n][c][h][w] (F32
 * tensor) into feat [n][D] and z [n][P]: TRAIN (batch statistics), or EVAL
 * for frozen BN (the running statistics, as the frozen hook). The running
 * statistics a TRAIN forward updates are put back. */
static inline simclr_status rm_library_forward(simclr_context *ctx, simclr_module *enc, simclr_module *head,
                                               const simclr_tensor *views, int frozen, float *feat, float *z)
{
    simclr_module *mods[2] = {enc, head};
    float *saved[2][256] = {{0}};
    if (simclr_module_param_count(enc) > 256 || simclr_module_param_count(head) > 256)
        rm_fatal("rm_library_forward: more than 256 tensors in a module");
    for (int k = 0; k < 2; k++)
        for (int i = 0; i < simclr_module_param_count(mods[k]); i++) {
            simclr_tensor *t;
            int flags;
            simclr_module_param(mods[k], i, NULL, &t, NULL, &flags);
            if (!(flags & SIMCLR_PARAM_BUFFER)) continue;
            saved[k][i] = malloc(simclr_tensor_bytes(t));
            memcpy(saved[k][i], simclr_tensor_data(t), simclr_tensor_bytes(t));
        }
    const int64_t n = simclr_tensor_dim(views, 0);
    int64_t fs[2] = {n, simclr_module_output_dim(enc)}, zs[2] = {n, simclr_module_output_dim(head)};
    simclr_tensor *tf = NULL, *tz = NULL;
    simclr_mode mode = frozen ? SIMCLR_EVAL : SIMCLR_TRAIN;
    simclr_status st = simclr_tensor_wrap(ctx, SIMCLR_F32, 2, fs, feat, &tf);
    if (st == SIMCLR_OK) st = simclr_tensor_wrap(ctx, SIMCLR_F32, 2, zs, z, &tz);
    if (st == SIMCLR_OK) st = simclr_module_forward(enc, views, mode, tf);
    if (st == SIMCLR_OK) st = simclr_module_forward(head, tf, mode, tz);
    simclr_tensor_destroy(tf);
    simclr_tensor_destroy(tz);
    for (int k = 0; k < 2; k++)
        for (int i = 0; i < simclr_module_param_count(mods[k]); i++) {
            if (!saved[k][i]) continue;
            simclr_tensor *t;
            simclr_module_param(mods[k], i, NULL, &t, NULL, NULL);
            memcpy(simclr_tensor_data(t), saved[k][i], simclr_tensor_bytes(t));
            free(saved[k][i]);
        }
    return st;
}

#endif
