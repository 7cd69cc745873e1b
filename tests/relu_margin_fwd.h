/* The reference forward of tests/relu_margin.h, written once and included
 * twice: with R = double (the exact reference) and R = float (a plain float32
 * implementation, whose difference from the double one is the rounding noise
 * the margin must exceed). RM(x) names this instantiation's functions; the
 * records of ReLU inputs go to each site's RM(v) array (v_d or v_f).
 *
 * Layout: activations NCHW [n][c][hw]; a ResNet with basic blocks and the
 * CIFAR stem, then the MLP head (v1: Linear + bias, v2: Linear + BatchNorm1d),
 * read by torchvision names from the double copies in rm_net. */

/* x [n][ci][h][w] -> [n][co][oh][ow]; weight [co][ci][k][k], padding k/2. */
static R *RM(conv)(const rm_param *wt, const R *x, int64_t n, int64_t h, int64_t w, int64_t stride, int64_t *oh_,
                   int64_t *ow_)
{
    const int64_t co = wt->dims[0], ci = wt->dims[1], k = wt->dims[2], pad = k / 2;
    const int64_t oh = (h + 2 * pad - k) / stride + 1, ow = (w + 2 * pad - k) / stride + 1;
    R *y = malloc((size_t)(n * co * oh * ow) * sizeof *y);
    for (int64_t b = 0; b < n; b++)
        for (int64_t o = 0; o < co; o++)
            for (int64_t yy = 0; yy < oh; yy++)
                for (int64_t xx = 0; xx < ow; xx++) {
                    R s = 0;
                    for (int64_t i = 0; i < ci; i++)
                        for (int64_t ky = 0; ky < k; ky++) {
                            int64_t iy = yy * stride - pad + ky;
                            if (iy < 0 || iy >= h) continue;
                            for (int64_t kx = 0; kx < k; kx++) {
                                int64_t ix = xx * stride - pad + kx;
                                if (ix < 0 || ix >= w) continue;
                                s += (R)wt->v[((o * ci + i) * k + ky) * k + kx] * x[((b * ci + i) * h + iy) * w + ix];
                            }
                        }
                    y[((b * co + o) * oh + yy) * ow + xx] = s;
                }
    *oh_ = oh, *ow_ = ow;
    return y;
}

/* In place over x [n][c][hw]: batch norm `prefix` of module mi (batch
 * statistics, biased variance, eps 1e-5; the running ones when frozen),
 * + res, then, when relu, records the ReLU input as the next site (fed by
 * "<prefix>.bias") and applies the ReLU. */
static void RM(bn)(rm_net *net, int mi, const char *prefix, R *x, int64_t n, int64_t c, int64_t hw, const R *res,
                   int relu)
{
    const rm_param *gamma = rm_find(net, mi, prefix, "weight"), *beta = rm_find_opt(net, mi, prefix, "bias");
    const rm_param *rmean = rm_find(net, mi, prefix, "running_mean"), *rvar = rm_find(net, mi, prefix, "running_var");
    const int64_t m = n * hw;
    rm_site *site = relu ? rm_site_at(net, mi, prefix, c, m) : NULL;
    for (int64_t ch = 0; ch < c; ch++) {
        R mean, var;
        if (net->frozen) {
            mean = (R)rmean->v[ch], var = (R)rvar->v[ch];
        } else {
            R s = 0, q = 0;
            for (int64_t b = 0; b < n; b++)
                for (int64_t p = 0; p < hw; p++) s += x[(b * c + ch) * hw + p];
            mean = s / (R)m;
            for (int64_t b = 0; b < n; b++)
                for (int64_t p = 0; p < hw; p++) {
                    R d = x[(b * c + ch) * hw + p] - mean;
                    q += d * d;
                }
            var = q / (R)m;
            /* How far float32 loses x - mean: |mean| / std (double run only). */
            double kappa = fabs((double)mean) / sqrt((double)var + 1e-5);
            if (sizeof(R) == sizeof(double) && kappa > net->kappa) {
                net->kappa = kappa;
                snprintf(net->kappa_at, sizeof net->kappa_at, "%s%s", mi ? "head " : "", prefix);
            }
        }
        const R scale = (R)gamma->v[ch] / (R)sqrt((double)var + 1e-5), shift = beta ? (R)beta->v[ch] : 0;
        for (int64_t b = 0; b < n; b++)
            for (int64_t p = 0; p < hw; p++) {
                int64_t at = (b * c + ch) * hw + p;
                R y = (x[at] - mean) * scale + shift + (res ? res[at] : 0);
                if (site) site->RM(v)[ch * m + b * hw + p] = (double)y;
                x[at] = relu && y < 0 ? 0 : y;
            }
    }
}

/* Float64 / float32 forward of encoder + head on views x [n][cin][h][w]
 * (F32 as the trainer's augmentation writes them). Fills each site's RM(v)
 * and, when not NULL, feat [n][D] and z [n][P] (as double). */
static void RM(forward)(rm_net *net, const float *x32, int64_t n, int64_t cin, int64_t h, int64_t w, double *feat,
                        double *z)
{
    net->site_count = 0;
    if (sizeof(R) == sizeof(double)) net->kappa = 0;
    R *x = malloc((size_t)(n * cin * h * w) * sizeof *x);
    for (int64_t i = 0; i < n * cin * h * w; i++) x[i] = (R)x32[i];
    int64_t oh, ow, c;
    const rm_param *w0 = rm_find(net, 0, "conv1", "weight");
    R *cur = RM(conv)(w0, x, n, h, w, 1, &oh, &ow);
    free(x);
    c = w0->dims[0], h = oh, w = ow;
    RM(bn)(net, 0, "bn1", cur, n, c, h * w, NULL, 1);
    char p1[64], p2[64], pd[64];
    for (int stage = 1; stage <= 4; stage++)
        for (int blk = 0;; blk++) {
            snprintf(p1, sizeof p1, "layer%d.%d.conv1", stage, blk);
            if (!rm_find_opt(net, 0, p1, "weight")) break;
            const int64_t stride = stage > 1 && blk == 0 ? 2 : 1;
            int64_t h1, w1, h2, w2;
            R *a = RM(conv)(rm_find(net, 0, p1, "weight"), cur, n, h, w, stride, &h1, &w1);
            const int64_t c1 = rm_find(net, 0, p1, "weight")->dims[0];
            snprintf(p1, sizeof p1, "layer%d.%d.bn1", stage, blk);
            RM(bn)(net, 0, p1, a, n, c1, h1 * w1, NULL, 1);
            snprintf(p2, sizeof p2, "layer%d.%d.conv2", stage, blk);
            R *b2 = RM(conv)(rm_find(net, 0, p2, "weight"), a, n, h1, w1, 1, &h2, &w2);
            free(a);
            const int64_t c2 = rm_find(net, 0, p2, "weight")->dims[0];
            R *res = cur;
            snprintf(pd, sizeof pd, "layer%d.%d.downsample.0", stage, blk);
            if (rm_find_opt(net, 0, pd, "weight")) {
                int64_t hd, wd;
                res = RM(conv)(rm_find(net, 0, pd, "weight"), cur, n, h, w, stride, &hd, &wd);
                snprintf(pd, sizeof pd, "layer%d.%d.downsample.1", stage, blk);
                RM(bn)(net, 0, pd, res, n, c2, hd * wd, NULL, 0);
            }
            snprintf(p2, sizeof p2, "layer%d.%d.bn2", stage, blk);
            RM(bn)(net, 0, p2, b2, n, c2, h2 * w2, res, 1);
            if (res != cur) free(res);
            free(cur);
            cur = b2, c = c2, h = h2, w = w2;
        }
    /* Global average pooling: [n][c]. */
    R *f = malloc((size_t)(n * c) * sizeof *f);
    for (int64_t b = 0; b < n; b++)
        for (int64_t ch = 0; ch < c; ch++) {
            R s = 0;
            for (int64_t p = 0; p < h * w; p++) s += cur[(b * c + ch) * h * w + p];
            f[b * c + ch] = s / (R)(h * w);
            if (feat) feat[b * c + ch] = (double)f[b * c + ch];
        }
    free(cur);
    /* The head: layers.{2i} (v1) or layers.{3i} + layers.{3i+1} (v2). */
    for (int i = 0;; i++) {
        char lin[32], bnp[32];
        snprintf(lin, sizeof lin, "layers.%d", net->head_bn ? 3 * i : 2 * i);
        const rm_param *wt = rm_find_opt(net, 1, lin, "weight");
        if (!wt) break;
        const int64_t out = wt->dims[0], in = wt->dims[1];
        snprintf(bnp, sizeof bnp, "layers.%d", net->head_bn ? 3 * i + 3 : 2 * i + 2);
        const int last = rm_find_opt(net, 1, bnp, "weight") == NULL;
        const rm_param *bias = rm_find_opt(net, 1, lin, "bias");
        R *y = malloc((size_t)(n * out) * sizeof *y);
        for (int64_t b = 0; b < n; b++)
            for (int64_t o = 0; o < out; o++) {
                R s = bias ? (R)bias->v[o] : 0;
                for (int64_t k = 0; k < in; k++) s += (R)wt->v[o * in + k] * f[b * in + k];
                y[b * out + o] = s;
            }
        free(f);
        if (net->head_bn) {
            snprintf(bnp, sizeof bnp, "layers.%d", 3 * i + 1);
            RM(bn)(net, 1, bnp, y, n, out, 1, NULL, !last);
        } else if (!last) {
            rm_site *site = rm_site_at(net, 1, lin, out, n);
            for (int64_t b = 0; b < n; b++)
                for (int64_t o = 0; o < out; o++) {
                    site->RM(v)[o * n + b] = (double)y[b * out + o];
                    if (y[b * out + o] < 0) y[b * out + o] = 0;
                }
        }
        f = y, c = out;
    }
    if (z)
        for (int64_t i = 0; i < n * c; i++) z[i] = (double)f[i];
    free(f);
}
