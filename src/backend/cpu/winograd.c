/* Winograd convolution for 3x3 stride-1 layers on the "cpu" backend:
 * F(2x2,3x3) and F(4x4,3x3) (Lavin & Gray 2016), forward, input gradient
 * and weight gradient, as tile transforms around batched GEMMs in the
 * transformed domain.
 *
 * For an m x m output tile (alpha = m + 2, T = alpha^2 positions):
 *
 *   forward   Y  = A^T [ (G g G^T) .* (B^T d B) ] A        per tile, summed over cin
 *   weights   dg = G^T [ sum over tiles (A dY A^T) .* (B^T d B) ] G
 *   input     dx = the forward pass of dy with the kernel flipped and its
 *                  channels swapped, padded by 2 - pad (a full correlation)
 *
 * The sum over input channels (forward) and over tiles (weights) is, per
 * transformed position t, one product:
 *
 *   forward   M_t [cout, tiles] = U_t [cout, cin] x V_t [cin, tiles]
 *   weights   dU_t [cout, cin] += Yd_t [cout, tiles] x V_t [cin, tiles]^T
 *
 * Tiles run in fixed chunks (a number that depends only on the layer's
 * shape, sized so the transformed buffers stay a few MB) processed one after
 * the other; inside a chunk three parallel regions run the input transform
 * (over channels x groups of tiles), the T products (over positions x row
 * blocks, single-threaded sgemm each) and the output transform. No region
 * splits a sum, and the weight gradient's sum over chunks runs in chunk
 * order, so the bytes are the same for any thread count.
 *
 * Transforms work on LANES tiles at once, the tile index innermost: plain
 * loops of constant length that the vectorizer turns into SIMD code, each
 * lane independent (no reassociation, so every ISA copy gives the same
 * bytes). Zero coefficients are skipped: the loops over the constant tables
 * are unrolled completely (the pragmas; without them gcc 12 keeps the
 * coefficient tests as branches and leaves the F(4x4) transforms scalar),
 * so the tests fold away and what remains is straight-line SIMD. */
#include <cblas.h>
#include <string.h>

#include "kernels.h"

#define LANES 16
#define MAX_A 6
#define MAX_T (MAX_A * MAX_A)

/* Transformed buffers (V and M of one chunk) target this many floats (4 MB). */
#define CHUNK_BUDGET ((int64_t)1 << 20)
#define CHUNK_MIN 64
#define CHUNK_MAX 4096
/* Rows of one product task: splits wide layers into more tasks than positions. */
#define ROW_BLOCK 128

/* F(2x2,3x3) */
static const float BT2[4][4] = {{1, 0, -1, 0}, {0, 1, 1, 0}, {0, -1, 1, 0}, {0, 1, 0, -1}};
static const double G2[4][3] = {{1, 0, 0}, {0.5, 0.5, 0.5}, {0.5, -0.5, 0.5}, {0, 0, 1}};
static const float AT2[2][4] = {{1, 1, 1, 0}, {0, 1, -1, -1}};

/* F(4x4,3x3), interpolation points 0, +-1, +-2, infinity. */
static const float BT4[6][6] = {{4, 0, -5, 0, 1, 0},  {0, -4, -4, 1, 1, 0}, {0, 4, -4, -1, 1, 0},
                                {0, -2, -1, 2, 1, 0}, {0, 2, -1, -2, 1, 0}, {0, 4, 0, -5, 0, 1}};
static const double G4[6][3] = {{1.0 / 4, 0, 0},
                                {-1.0 / 6, -1.0 / 6, -1.0 / 6},
                                {-1.0 / 6, 1.0 / 6, -1.0 / 6},
                                {1.0 / 24, 1.0 / 12, 1.0 / 6},
                                {1.0 / 24, -1.0 / 12, 1.0 / 6},
                                {0, 0, 1}};
static const float AT4[4][6] = {
    {1, 1, 1, 1, 1, 0}, {0, 1, -1, 2, -2, 0}, {0, 1, 1, 4, 4, 0}, {0, 1, -1, 8, -8, 1}};

int simclr__cpu_winograd_eligible(const simclr__conv_desc *d)
{
    /* pad <= 2 keeps the input gradient's padding (2 - pad) non-negative. */
    return d->kh == 3 && d->kw == 3 && d->stride == 1 && d->pad >= 0 && d->pad <= 2 && d->oh >= 1 &&
           d->ow >= 1 && d->n >= 1 && d->cin >= 1 && d->cout >= 1;
}

/* ---- Chunk geometry: a function of the shape only (never of the thread
 * count), so the same tiles meet in the same products on every run. ---- */

static int64_t tiles_y(const simclr__conv_desc *d, int m) { return (d->oh + m - 1) / m; }
static int64_t tiles_x(const simclr__conv_desc *d, int m) { return (d->ow + m - 1) / m; }
static int64_t tiles_total(const simclr__conv_desc *d, int m) { return d->n * tiles_y(d, m) * tiles_x(d, m); }

static int64_t chunk_tiles(const simclr__conv_desc *d, int m)
{
    int64_t t = (int64_t)(m + 2) * (m + 2);
    int64_t ct = CHUNK_BUDGET / (t * (d->cin + d->cout));
    if (ct < CHUNK_MIN) ct = CHUNK_MIN;
    if (ct > CHUNK_MAX) ct = CHUNK_MAX;
    int64_t total = tiles_total(d, m);
    if (ct > total) ct = total;
    return (ct + LANES - 1) / LANES * LANES;
}

/* The input gradient as a forward convolution: dy [cout][n][oh][ow] in,
 * dx [cin][n][h][w] out, padding 2 - pad. */
static simclr__conv_desc transposed_desc(const simclr__conv_desc *d)
{
    simclr__conv_desc t = {.n = d->n, .cin = d->cout, .h = d->oh, .w = d->ow, .cout = d->cin, .kh = 3, .kw = 3,
                           .stride = 1, .pad = 2 - d->pad, .oh = d->h, .ow = d->w};
    return t;
}

/* Floats of U (transformed weights) plus one chunk of V and M. The weight
 * gradient reuses the same space: dU where U was, V and Yd where V and M were. */
static size_t wino_workspace(const simclr__conv_desc *d, int m)
{
    int64_t t = (int64_t)(m + 2) * (m + 2);
    simclr__conv_desc td = transposed_desc(d);
    int64_t ct = chunk_tiles(d, m), ctt = chunk_tiles(&td, m);
    if (ctt > ct) ct = ctt;
    return (size_t)(t * d->cin * d->cout) + (size_t)(t * (d->cin + d->cout) * ct);
}

size_t simclr__cpu_winograd_workspace(const simclr__conv_desc *d, int m)
{
    if (!simclr__cpu_winograd_eligible(d) || (m != 2 && m != 4)) return 0;
    return wino_workspace(d, m);
}

/* ---- Tile transforms ---- */

typedef struct {
    int m, a, t;
    const float *bt; /* a x a */
    const double *g; /* a x 3 */
    const float *at; /* m x a */
} tile_kind;

static tile_kind kind_of(int m)
{
    tile_kind k;
    k.m = m;
    k.a = m + 2;
    k.t = k.a * k.a;
    k.bt = m == 2 ? &BT2[0][0] : &BT4[0][0];
    k.g = m == 2 ? &G2[0][0] : &G4[0][0];
    k.at = m == 2 ? &AT2[0][0] : &AT4[0][0];
    return k;
}

/* Where tile `g` (a global index over images, tile rows, tile columns) sits. */
typedef struct {
    int64_t n, y0, x0;
} tile_pos;

static tile_pos locate(const simclr__conv_desc *d, int m, int64_t g)
{
    int64_t tx = tiles_x(d, m), per_image = tiles_y(d, m) * tx, r = g % per_image;
    tile_pos p = {g / per_image, (r / tx) * m, (r % tx) * m};
    return p;
}

/* The one tile transform every direction needs: out [r*r][LANES] =
 * L in L^T for in [k*k][LANES], with L an r x k matrix given as `MAT`
 * (TR = 0: L = MAT, MAT is r x k) or as its transpose (TR = 1: MAT is
 * k x r). Input transform: L = B^T (r = k = a); output transform: L = A^T
 * (r = m, k = a); gradient transform, the output transform's adjoint: L = A
 * (r = a, k = m). Expanded for constant sizes, so every loop has a constant
 * trip count, TR and the zero tests fold. */
#define L_AT(MAT, TR, i, k) ((TR) ? (MAT)[k][i] : (MAT)[i][k])
#define SANDWICH(R, K, MAT, TR)                                                                \
    do {                                                                                       \
        float tmp_[(R) * (K)][LANES];                                                          \
        _Pragma("GCC unroll 8") for (int i = 0; i < (R); i++)                                  \
            _Pragma("GCC unroll 8") for (int c = 0; c < (K); c++) {                            \
                float *o_ = tmp_[i * (K) + c];                                                 \
                for (int l = 0; l < LANES; l++) o_[l] = 0;                                     \
                _Pragma("GCC unroll 8") for (int k = 0; k < (K); k++) {                        \
                    float a_ = L_AT(MAT, TR, i, k);                                            \
                    if (a_ == 0) continue;                                                     \
                    const float *s_ = in[k * (K) + c];                                         \
                    for (int l = 0; l < LANES; l++) o_[l] += a_ * s_[l];                       \
                }                                                                              \
            }                                                                                  \
        _Pragma("GCC unroll 8") for (int i = 0; i < (R); i++)                                  \
            _Pragma("GCC unroll 8") for (int j = 0; j < (R); j++) {                            \
                float *o_ = out[i * (R) + j];                                                  \
                for (int l = 0; l < LANES; l++) o_[l] = 0;                                     \
                _Pragma("GCC unroll 8") for (int k = 0; k < (K); k++) {                        \
                    float a_ = L_AT(MAT, TR, j, k);                                            \
                    if (a_ == 0) continue;                                                     \
                    const float *s_ = tmp_[i * (K) + k];                                       \
                    for (int l = 0; l < LANES; l++) o_[l] += a_ * s_[l];                       \
                }                                                                              \
            }                                                                                  \
    } while (0)

static void input_transform_2(float in[16][LANES], float out[16][LANES]) { SANDWICH(4, 4, BT2, 0); }
static void input_transform_4(float in[36][LANES], float out[36][LANES]) { SANDWICH(6, 6, BT4, 0); }
static void output_transform_2(float in[16][LANES], float out[4][LANES]) { SANDWICH(2, 4, AT2, 0); }
static void output_transform_4(float in[36][LANES], float out[16][LANES]) { SANDWICH(4, 6, AT4, 0); }
static void grad_transform_2(float in[4][LANES], float out[16][LANES]) { SANDWICH(4, 2, AT2, 1); }
static void grad_transform_4(float in[16][LANES], float out[36][LANES]) { SANDWICH(6, 4, AT4, 1); }

/* ---- Parallel regions ---- */

typedef struct {
    const simclr__conv_desc *d;
    tile_kind k;
    int64_t ct;         /* leading dimension of the transformed buffers (tiles per chunk) */
    int64_t g0, cnt;    /* the chunk's tiles */
    int64_t groups;     /* LANES-tile groups in the chunk */
    const float *src;   /* planes transformed in (x, or dy for the weight gradient) */
    float *dst;         /* planes written out (y) */
    const float *w;     /* torch-layout weights */
    int flip;           /* weights of the transposed convolution (input gradient) */
    int accumulate;     /* dst += instead of dst = */
    float *u, *v, *mm;  /* [T][rows][cols] buffers */
    float *dw;
    int64_t row_blocks; /* product tasks per position */
} wjob;

/* U[t][co][ci] = (G g G^T)[t], in double and rounded once. With flip, the
 * kernel is the transposed convolution's: g(co, ci) = w[ci][co] rotated 180
 * degrees (d describes the transposed convolution). */
/* U[t][pair] for the (cout, cin) pairs [b, e), in blocks of WEIGHT_BLOCK
 * pairs laid out pair-minor (gb[tap][k], tmp[i][c][k]), so every step of
 * G g G^T is one vector operation over the block's pairs, and each t's
 * results leave as one contiguous run. Writing each pair's T values
 * straight to U stored at a stride of cout*cin floats (1 MB apart for
 * 512 x 512) and ran one pair at a time: measured, that made the transform
 * 78% of a width-64 batch-1 forward. The arithmetic of every value is the
 * same (double, same order), so the same bytes on every ISA copy. */
#define WEIGHT_BLOCK 32

static void weight_task(void *arg, int64_t b, int64_t e, int wk)
{
    (void)wk;
    const wjob *j = arg;
    const simclr__conv_desc *d = j->d;
    int a = j->k.a;
    const double *G = j->k.g;
    int64_t pairs = d->cout * d->cin;
    double gb[9][WEIGHT_BLOCK], tmp[MAX_A][3][WEIGHT_BLOCK];
    float block[MAX_T][WEIGHT_BLOCK];
    for (int64_t q0 = b; q0 < e; q0 += WEIGHT_BLOCK) {
        int64_t nb = e - q0 < WEIGHT_BLOCK ? e - q0 : WEIGHT_BLOCK;
        for (int64_t k = nb; k < WEIGHT_BLOCK; k++) /* a short last block: zeros, not garbage */
            for (int tap = 0; tap < 9; tap++) gb[tap][k] = 0.0;
        for (int64_t k = 0; k < nb; k++) {
            int64_t q = q0 + k, co = q / d->cin, ci = q % d->cin;
            if (j->flip) {
                const float *src = j->w + (ci * d->cout + co) * 9;
                for (int tap = 0; tap < 9; tap++) gb[tap][k] = src[8 - tap];
            } else {
                const float *src = j->w + (co * d->cin + ci) * 9;
                for (int tap = 0; tap < 9; tap++) gb[tap][k] = src[tap];
            }
        }
        for (int i = 0; i < a; i++)
            for (int c = 0; c < 3; c++) {
                const double g0 = G[i * 3], g1 = G[i * 3 + 1], g2 = G[i * 3 + 2];
                for (int64_t k = 0; k < WEIGHT_BLOCK; k++)
                    tmp[i][c][k] = g0 * gb[c][k] + g1 * gb[3 + c][k] + g2 * gb[6 + c][k];
            }
        for (int i = 0; i < a; i++)
            for (int jj = 0; jj < a; jj++) {
                const double h0 = G[jj * 3], h1 = G[jj * 3 + 1], h2 = G[jj * 3 + 2];
                float *out = block[i * a + jj];
                for (int64_t k = 0; k < WEIGHT_BLOCK; k++)
                    out[k] = (float)(tmp[i][0][k] * h0 + tmp[i][1][k] * h1 + tmp[i][2][k] * h2);
            }
        for (int t = 0; t < a * a; t++)
            memcpy(j->u + (size_t)t * (size_t)pairs + (size_t)q0, block[t], (size_t)nb * sizeof(float));
    }
}

/* V[t][c][tile] for channel c of j->src over one LANES group of the chunk:
 * gather the alpha x alpha input tiles (zeros outside the image), transform. */
static void input_task(void *arg, int64_t b, int64_t e, int wk)
{
    (void)wk;
    const wjob *j = arg;
    const simclr__conv_desc *d = j->d;
    int m = j->k.m, a = j->k.a, t = j->k.t;
    int64_t rows = d->cin, plane = d->h * d->w;
    float in[MAX_T][LANES], out[MAX_T][LANES];
    for (int64_t q = b; q < e; q++) {
        int64_t c = q / j->groups, l0 = (q % j->groups) * LANES;
        int64_t lanes = j->cnt - l0 < LANES ? j->cnt - l0 : LANES;
        for (int64_t l = 0; l < LANES; l++) {
            if (l >= lanes) {
                for (int p = 0; p < t; p++) in[p][l] = 0;
                continue;
            }
            tile_pos tp = locate(d, m, j->g0 + l0 + l);
            const float *src = j->src + (c * d->n + tp.n) * plane;
            for (int r = 0; r < a; r++) {
                int64_t iy = tp.y0 - d->pad + r;
                for (int cc = 0; cc < a; cc++) {
                    int64_t ix = tp.x0 - d->pad + cc;
                    in[r * a + cc][l] = iy >= 0 && iy < d->h && ix >= 0 && ix < d->w ? src[iy * d->w + ix] : 0.0f;
                }
            }
        }
        if (m == 2)
            input_transform_2(in, out);
        else
            input_transform_4(in, out);
        float *dst = j->v + c * j->ct + l0;
        for (int p = 0; p < t; p++) memcpy(dst + (size_t)p * (size_t)(rows * j->ct), out[p], (size_t)lanes * sizeof(float));
    }
}

/* Yd[t][co][tile] = (A dY A^T)[t] for output-gradient tiles (zeros beyond
 * the output). */
static void grad_task(void *arg, int64_t b, int64_t e, int wk)
{
    (void)wk;
    const wjob *j = arg;
    const simclr__conv_desc *d = j->d;
    int m = j->k.m, t = j->k.t;
    int64_t rows = d->cout, plane = d->oh * d->ow;
    float in[16][LANES], out[MAX_T][LANES];
    for (int64_t q = b; q < e; q++) {
        int64_t c = q / j->groups, l0 = (q % j->groups) * LANES;
        int64_t lanes = j->cnt - l0 < LANES ? j->cnt - l0 : LANES;
        for (int64_t l = 0; l < LANES; l++) {
            if (l >= lanes) {
                for (int p = 0; p < m * m; p++) in[p][l] = 0;
                continue;
            }
            tile_pos tp = locate(d, m, j->g0 + l0 + l);
            const float *src = j->src + (c * d->n + tp.n) * plane;
            for (int r = 0; r < m; r++) {
                int64_t oy = tp.y0 + r;
                for (int cc = 0; cc < m; cc++) {
                    int64_t ox = tp.x0 + cc;
                    in[r * m + cc][l] = oy < d->oh && ox < d->ow ? src[oy * d->ow + ox] : 0.0f;
                }
            }
        }
        if (m == 2)
            grad_transform_2(in, out);
        else
            grad_transform_4(in, out);
        float *dst = j->mm + c * j->ct + l0;
        for (int p = 0; p < t; p++) memcpy(dst + (size_t)p * (size_t)(rows * j->ct), out[p], (size_t)lanes * sizeof(float));
    }
}

/* y tiles = A^T M A for output channel c over one LANES group. */
static void output_task(void *arg, int64_t b, int64_t e, int wk)
{
    (void)wk;
    const wjob *j = arg;
    const simclr__conv_desc *d = j->d;
    int m = j->k.m, t = j->k.t;
    int64_t rows = d->cout, plane = d->oh * d->ow;
    float in[MAX_T][LANES], out[16][LANES];
    for (int64_t q = b; q < e; q++) {
        int64_t c = q / j->groups, l0 = (q % j->groups) * LANES;
        int64_t lanes = j->cnt - l0 < LANES ? j->cnt - l0 : LANES;
        const float *src = j->mm + c * j->ct + l0;
        for (int p = 0; p < t; p++) {
            memcpy(in[p], src + (size_t)p * (size_t)(rows * j->ct), (size_t)lanes * sizeof(float));
            for (int64_t l = lanes; l < LANES; l++) in[p][l] = 0;
        }
        if (m == 2)
            output_transform_2(in, out);
        else
            output_transform_4(in, out);
        for (int64_t l = 0; l < lanes; l++) {
            tile_pos tp = locate(d, m, j->g0 + l0 + l);
            float *dst = j->dst + (c * d->n + tp.n) * plane;
            int64_t ry = d->oh - tp.y0 < m ? d->oh - tp.y0 : m, rx = d->ow - tp.x0 < m ? d->ow - tp.x0 : m;
            for (int64_t r = 0; r < ry; r++)
                for (int64_t cc = 0; cc < rx; cc++) {
                    float *o = dst + (tp.y0 + r) * d->ow + tp.x0 + cc;
                    *o = j->accumulate ? *o + out[r * m + cc][l] : out[r * m + cc][l];
                }
        }
    }
}

/* M_t = U_t x V_t for position t, rows [r0, r1) of M_t. */
static void forward_gemm_task(void *arg, int64_t b, int64_t e, int wk)
{
    (void)wk;
    const wjob *j = arg;
    const simclr__conv_desc *d = j->d;
    for (int64_t q = b; q < e; q++) {
        int64_t p = q / j->row_blocks, r0 = (q % j->row_blocks) * ROW_BLOCK;
        int64_t r1 = r0 + ROW_BLOCK < d->cout ? r0 + ROW_BLOCK : d->cout;
        const float *u = j->u + (size_t)p * (size_t)(d->cout * d->cin) + (size_t)(r0 * d->cin);
        const float *v = j->v + (size_t)p * (size_t)(d->cin * j->ct);
        float *mm = j->mm + (size_t)p * (size_t)(d->cout * j->ct) + (size_t)(r0 * j->ct);
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)(r1 - r0), (int)j->cnt, (int)d->cin, 1.0f, u,
                    (int)d->cin, v, (int)j->ct, 0.0f, mm, (int)j->ct);
    }
}

/* dU_t (+)= Yd_t x V_t^T for position t, rows [r0, r1); the first chunk
 * (g0 = 0) writes, later ones add. */
static void weight_gemm_task(void *arg, int64_t b, int64_t e, int wk)
{
    (void)wk;
    const wjob *j = arg;
    const simclr__conv_desc *d = j->d;
    for (int64_t q = b; q < e; q++) {
        int64_t p = q / j->row_blocks, r0 = (q % j->row_blocks) * ROW_BLOCK;
        int64_t r1 = r0 + ROW_BLOCK < d->cout ? r0 + ROW_BLOCK : d->cout;
        float *du = j->u + (size_t)p * (size_t)(d->cout * d->cin) + (size_t)(r0 * d->cin);
        const float *v = j->v + (size_t)p * (size_t)(d->cin * j->ct);
        const float *yd = j->mm + (size_t)p * (size_t)(d->cout * j->ct) + (size_t)(r0 * j->ct);
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)(r1 - r0), (int)d->cin, (int)j->cnt, 1.0f, yd,
                    (int)j->ct, v, (int)j->ct, j->g0 == 0 ? 0.0f : 1.0f, du, (int)d->cin);
    }
}

/* dw[co][ci] += G^T dU G (3x3), in double. */
static void weight_grad_back_task(void *arg, int64_t b, int64_t e, int wk)
{
    (void)wk;
    const wjob *j = arg;
    const simclr__conv_desc *d = j->d;
    int a = j->k.a;
    const double *G = j->k.g;
    int64_t pairs = d->cout * d->cin;
    for (int64_t q = b; q < e; q++) {
        double du[MAX_A][MAX_A], tmp[3][MAX_A];
        for (int i = 0; i < a; i++)
            for (int jj = 0; jj < a; jj++) du[i][jj] = j->u[(size_t)(i * a + jj) * (size_t)pairs + (size_t)q];
        for (int k = 0; k < 3; k++)
            for (int jj = 0; jj < a; jj++) {
                double s = 0;
                for (int i = 0; i < a; i++) s += G[i * 3 + k] * du[i][jj];
                tmp[k][jj] = s;
            }
        float *dst = j->dw + q * 9;
        for (int k = 0; k < 3; k++)
            for (int l = 0; l < 3; l++) {
                double s = 0;
                for (int jj = 0; jj < a; jj++) s += tmp[k][jj] * G[jj * 3 + l];
                dst[k * 3 + l] += (float)s;
            }
    }
}

/* Work items smaller than this many floats touched are batched per task. */
static int64_t grain_for(int64_t per_item)
{
    int64_t g = SIMCLR__GRAIN / (per_item > 0 ? per_item : 1);
    return g > 0 ? g : 1;
}

/* y = (or +=) conv(x, w) for the geometry d (flip: w belongs to the
 * convolution d transposes, see transposed_desc). */
static void wino_conv(simclr_context *ctx, const simclr__conv_desc *d, int m, const float *x, const float *w,
                      int flip, float *y, int accumulate, float *ws)
{
    wjob j = {.d = d, .k = kind_of(m), .ct = chunk_tiles(d, m), .src = x, .dst = y, .w = w, .flip = flip,
              .accumulate = accumulate};
    int64_t t = j.k.t, total = tiles_total(d, m);
    j.u = ws;
    j.v = j.u + (size_t)(t * d->cout * d->cin);
    j.mm = j.v + (size_t)(t * d->cin * j.ct);
    j.row_blocks = (d->cout + ROW_BLOCK - 1) / ROW_BLOCK;
    simclr__pool_for(ctx->pool, d->cout * d->cin, grain_for(t * 4), weight_task, &j);
    for (j.g0 = 0; j.g0 < total; j.g0 += j.ct) {
        j.cnt = total - j.g0 < j.ct ? total - j.g0 : j.ct;
        j.groups = (j.cnt + LANES - 1) / LANES;
        simclr__pool_for(ctx->pool, d->cin * j.groups, grain_for(2 * t * LANES), input_task, &j);
        simclr__pool_for(ctx->pool, t * j.row_blocks, 1, forward_gemm_task, &j);
        simclr__pool_for(ctx->pool, d->cout * j.groups, grain_for(2 * t * LANES), output_task, &j);
    }
}

void simclr__cpu_winograd_forward(simclr_context *ctx, const simclr__conv_desc *d, int m, const float *x,
                                  const float *w, float *y, float *ws)
{
    wino_conv(ctx, d, m, x, w, 0, y, 0, ws);
}

void simclr__cpu_winograd_backward(simclr_context *ctx, const simclr__conv_desc *d, int m, const float *x,
                                   const float *w, const float *dy, float *dw, float *dx, int accumulate, float *ws)
{
    /* Weight gradient: dU over all tiles, chunk after chunk, then back. */
    wjob j = {.d = d, .k = kind_of(m), .ct = chunk_tiles(d, m), .src = x, .dw = dw};
    int64_t t = j.k.t, total = tiles_total(d, m);
    j.u = ws;
    j.v = j.u + (size_t)(t * d->cout * d->cin);
    j.mm = j.v + (size_t)(t * d->cin * j.ct);
    j.row_blocks = (d->cout + ROW_BLOCK - 1) / ROW_BLOCK;
    for (j.g0 = 0; j.g0 < total; j.g0 += j.ct) {
        j.cnt = total - j.g0 < j.ct ? total - j.g0 : j.ct;
        j.groups = (j.cnt + LANES - 1) / LANES;
        j.src = x;
        simclr__pool_for(ctx->pool, d->cin * j.groups, grain_for(2 * t * LANES), input_task, &j);
        j.src = dy;
        simclr__pool_for(ctx->pool, d->cout * j.groups, grain_for(2 * t * LANES), grad_task, &j);
        simclr__pool_for(ctx->pool, t * j.row_blocks, 1, weight_gemm_task, &j);
    }
    simclr__pool_for(ctx->pool, d->cout * d->cin, grain_for(t * 4), weight_grad_back_task, &j);
    if (!dx) return;
    simclr__conv_desc td = transposed_desc(d);
    wino_conv(ctx, &td, m, dy, w, 1, dx, accumulate, ws);
}

/* ---- Choosing the algorithm per layer ----
 *
 * Error rule (docs/architecture.md, "Winograd"): a Winograd result must stay
 * within WINO_ERROR_BOUND = 1e-4 normalized error (max|a - b| / max|b|, the
 * kernel tests' measure) of the exact convolution, 10x the direct path's
 * 1e-5. F(2x2,3x3) measures like the direct path (<= 2e-6 on every ResNet
 * layer shape). F(4x4,3x3) measures <= 1.5e-5 up to 512 channels, growing
 * with the length of its sums (cin in the forward pass, cout in the input
 * gradient); it is used only where both are within what was measured. */
#define F4_MAX_CHANNELS 512

/* Cost model for AUTO, in units of one multiply-add at sgemm's peak:
 *  - an sgemm with inner dimension k runs at k / (k + GEMM_K_HALF) of peak
 *    (small products are dominated by packing and edge work);
 *  - direct: n*oh*ow*cout*9cin multiply-adds at efficiency(9 cin), plus
 *    IM2COL_COST per im2col element;
 *  - Winograd: tiles*T*cin*cout at efficiency(cin), plus XFORM_COST per
 *    transformed value read or written (tiles*T*(cin + cout)), plus the
 *    weight transform WEIGHT_COST*T*cin*cout once per call (what makes it
 *    lose at batch 1; double arithmetic without FMA, hence 16 units: at 3
 *    the 512-channel layers ran F(2x2) at batch 1, 2.5x slower).
 * The constants are first estimates; bench/bench_conv prints direct and both
 * tiles per layer, and the model's numbers, so they can be fitted on an idle
 * machine. */
#define GEMM_K_HALF 32.0
#define IM2COL_COST 1.0
#define XFORM_COST 4.0
#define WEIGHT_COST 16.0
/* And a floor the model does not capture: AUTO runs Winograd only where
 * cin and cout are both at least this. Measured on an idle 2-core Zen 3
 * (bench_conv, batch 256, 2 threads, ms forward/backward against the best
 * exact path): F(4x4) won from 64 channels up (64 @7: 11.0/27.8 vs
 * 18.5/36.6; 64 @32: 202/529 vs 238/545; 128 @16: 142/277 vs 247/433) and
 * lost below (32 @14: 16.9/40.3 vs 12.1/32.2). */
#define AUTO_MIN_CHANNELS 64

static double gemm_time(double macs, double k) { return macs * (k + GEMM_K_HALF) / k; }

double simclr__cpu_winograd_cost(const simclr__conv_desc *d, int m)
{
    double cin = (double)d->cin, cout = (double)d->cout;
    if (m == 0) {
        double outputs = (double)d->n * (double)d->oh * (double)d->ow;
        return gemm_time(outputs * cout * 9.0 * cin, 9.0 * cin) + IM2COL_COST * outputs * 9.0 * cin;
    }
    double t = (double)(m + 2) * (m + 2), tiles = (double)tiles_total(d, m);
    return gemm_time(tiles * t * cin * cout, cin) + XFORM_COST * tiles * t * (cin + cout) +
           WEIGHT_COST * t * cin * cout;
}

int simclr__cpu_winograd_choose(const simclr_context *ctx, const simclr__conv_desc *d)
{
    if (!simclr__cpu_winograd_eligible(d)) return 0;
    if (ctx->conv_tile == 2 || ctx->conv_tile == 4) return ctx->conv_tile; /* tests and benchmarks */
    if (ctx->conv_algo == SIMCLR_CONV_DIRECT) return 0;
    /* WINOGRAD: the cheaper of the tiles the error rule allows; AUTO: that
     * or direct, whichever the model finds cheaper. */
    int tile = 2;
    if (d->cin <= F4_MAX_CHANNELS && d->cout <= F4_MAX_CHANNELS &&
        simclr__cpu_winograd_cost(d, 4) < simclr__cpu_winograd_cost(d, 2))
        tile = 4;
    if (ctx->conv_algo == SIMCLR_CONV_WINOGRAD) return tile;
    if (d->cin < AUTO_MIN_CHANNELS || d->cout < AUTO_MIN_CHANNELS) return 0;
    return simclr__cpu_winograd_cost(d, tile) < simclr__cpu_winograd_cost(d, 0) ? tile : 0;
}
