/* Augmentation: invariants of each op, the torchvision crop-parameter rules,
 * the drawn statistics, determinism across threads and seeds, the public
 * API's validation, and allocation behaviour. Numerical agreement with
 * torchvision is checked in tests/python/test_torch_augment.py. */
#include "test_util.h"

#include "augment/ops.h"
#include "augment/policy.h"
#include "core/rng.h"

static simclr_context *make_ctx(int threads, test_alloc *counter)
{
    simclr_context *ctx = NULL;
    simclr_allocator a;
    if (counter) a = test_allocator(counter);
    CHECK_OK(simclr_context_create("cpu", threads, counter ? &a : NULL, &ctx));
    return ctx;
}

/* Colorful deterministic images: gradients plus noise, different per image. */
static void fill_images(uint8_t *p, int64_t n, int64_t h, int64_t w, int c, uint64_t seed)
{
    uint64_t s = seed * 0x9e3779b97f4a7c15ull + 1;
    for (int64_t i = 0; i < n; i++)
        for (int64_t y = 0; y < h; y++)
            for (int64_t x = 0; x < w; x++)
                for (int k = 0; k < c; k++) {
                    int v = (int)((x * 255 / (w > 1 ? w - 1 : 1)) * (k == 0) + (y * 255 / (h > 1 ? h - 1 : 1)) * (k == 1) +
                                  (int)(i * 37 % 256) * (k == 2)) / (c == 1 ? 2 : 1);
                    v += (int)(test_rand_next(&s) % 32) - 16;
                    p[((i * h + y) * w + x) * c + k] = (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v);
                }
}

static simclr_tensor *make_images(simclr_context *ctx, int64_t n, int64_t h, int64_t w, int c, uint64_t seed)
{
    int64_t shape[4] = {n, h, w, c};
    simclr_tensor *t = NULL;
    CHECK_OK(simclr_tensor_create(ctx, SIMCLR_U8, 4, shape, &t));
    fill_images(simclr_tensor_data(t), n, h, w, c, seed);
    return t;
}

static simclr_tensor *make_out(simclr_context *ctx, int64_t n, int64_t c, int64_t h, int64_t w)
{
    int64_t shape[4] = {n, c, h, w};
    simclr_tensor *t = NULL;
    CHECK_OK(simclr_tensor_create(ctx, SIMCLR_F32, 4, shape, &t));
    return t;
}

static void fill_unit(float *x, int64_t n, uint64_t seed)
{
    test_fill(x, n, seed);
    for (int64_t i = 0; i < n; i++) x[i] = 0.5f * (x[i] + 1.0f);
}

/* ------------------------------------------------------------------------ */
/* Ops                                                                       */
/* ------------------------------------------------------------------------ */

static void test_flip_twice_is_identity(void **state)
{
    (void)state;
    float x[3 * 5 * 7], y[3 * 5 * 7];
    fill_unit(x, 105, 1);
    memcpy(y, x, sizeof x);
    simclr__aug_hflip(y, 3, 5, 7);
    assert_true(memcmp(x, y, sizeof x) != 0);
    assert_true(y[0] == x[6] && y[7] == x[13]); /* row 0 mirrored, row 1 mirrored */
    simclr__aug_hflip(y, 3, 5, 7);
    assert_memory_equal(x, y, sizeof x);
}

static void test_neutral_factors_are_identity(void **state)
{
    (void)state;
    enum { HW = 64 };
    for (int c = 1; c <= 3; c += 2) {
        float x[3 * HW], y[3 * HW];
        fill_unit(x, c * HW, 2);
        memcpy(y, x, sizeof x);
        simclr__aug_brightness(y, c, HW, 1.0);
        assert_memory_equal(x, y, c * HW * sizeof(float));
        simclr__aug_contrast(y, c, HW, 1.0);
        assert_memory_equal(x, y, c * HW * sizeof(float));
        simclr__aug_saturation(y, c, HW, 1.0);
        assert_memory_equal(x, y, c * HW * sizeof(float));
        /* hue 0 still round-trips through HSV in float: a few ulps */
        simclr__aug_hue(y, c, HW, 0.0);
        for (int i = 0; i < c * HW; i++) assert_true(fabsf(x[i] - y[i]) <= 1e-6f);
    }
    /* a non-neutral factor does change the image (the test can fail) */
    float x[3 * HW], y[3 * HW];
    fill_unit(x, 3 * HW, 3);
    memcpy(y, x, sizeof x);
    simclr__aug_hue(y, 3, HW, 0.25);
    assert_true(memcmp(x, y, sizeof x) != 0);
}

static void test_color_definitions(void **state)
{
    (void)state;
    /* brightness: multiply and clip */
    float b[2] = {0.25f, 0.75f};
    simclr__aug_brightness(b, 1, 2, 2.0);
    assert_true(b[0] == 0.5f && b[1] == 1.0f);
    /* contrast 0 gives the mean of the grayscale image everywhere */
    float c[6] = {1, 1, 0, 0, 0, 0}; /* two red pixels (planes R, G, B) */
    simclr__aug_contrast(c, 3, 2, 0.0);
    for (int i = 0; i < 6; i++) assert_float_equal(c[i], 0.2989f, 1e-6);
    /* saturation 0 is grayscale */
    float s[3] = {0.2f, 0.6f, 1.0f};
    simclr__aug_saturation(s, 3, 1, 0.0);
    float g = 0.2989f * 0.2f + 0.587f * 0.6f + 0.114f * 1.0f;
    for (int i = 0; i < 3; i++) assert_float_equal(s[i], g, 1e-6);
    /* hue: red shifted by 1/3 is green, by 2/3 blue */
    float h[3] = {1, 0, 0};
    simclr__aug_hue(h, 3, 1, 1.0 / 3);
    assert_float_equal(h[0], 0, 1e-6);
    assert_float_equal(h[1], 1, 1e-6);
    assert_float_equal(h[2], 0, 1e-6);
    /* solarize: at and above the threshold inverted */
    float z[3] = {0.2f, 0.5f, 0.9f};
    simclr__aug_solarize(z, 3, 0.5);
    assert_true(z[0] == 0.2f && z[1] == 0.5f && fabsf(z[2] - 0.1f) < 1e-6f);
}

static void test_grayscale_equal_channels(void **state)
{
    (void)state;
    enum { HW = 50 };
    float x[3 * HW];
    fill_unit(x, 3 * HW, 4);
    simclr__aug_grayscale(x, 3, HW);
    for (int i = 0; i < HW; i++) assert_true(x[i] == x[HW + i] && x[i] == x[2 * HW + i]);
}

static void test_whole_crop_same_size_is_identity(void **state)
{
    (void)state;
    enum { H = 9, W = 13 };
    uint8_t src[H * W * 3];
    fill_images(src, 1, H, W, 3, 5);
    float out[3 * H * W];
    float tmp[4096];
    assert_true(simclr__aug_resize_scratch(H, H, W) <= 4096);
    for (int interp = 0; interp < 2; interp++) {
        simclr__aug_resized_crop(src, H, W, 3, 0, 0, H, W, H, W, interp, out, tmp);
        for (int c = 0; c < 3; c++)
            for (int i = 0; i < H * W; i++) assert_true(out[c * H * W + i] == (float)src[i * 3 + c] / 255.0f);
    }
    /* a crop at its own size is a copy of the box */
    simclr__aug_resized_crop(src, H, W, 3, 2, 3, 4, 5, 4, 5, 0, out, tmp);
    assert_true(out[0] == (float)src[(2 * W + 3) * 3] / 255.0f);
    assert_true(out[4 * 5 + 4 * 5 - 1] == (float)src[(5 * W + 7) * 3 + 1] / 255.0f);
}

static void test_blur_kernel_and_constant(void **state)
{
    (void)state;
    assert_int_equal(simclr__aug_blur_kernel(0.1, 224), 23);
    assert_int_equal(simclr__aug_blur_kernel(0.1, 32), 3);
    assert_int_equal(simclr__aug_blur_kernel(0.1, 100), 11);
    assert_int_equal(simclr__aug_blur_kernel(1.0, 2), 3);
    assert_int_equal(simclr__aug_blur_kernel(0.1, 1), 1);
    enum { H = 6, W = 5 };
    float x[H * W], tmp[256];
    assert_true(simclr__aug_blur_scratch(H, W) <= 256);
    for (int i = 0; i < H * W; i++) x[i] = 0.375f;
    simclr__aug_blur(x, 1, H, W, 11, 9, 2.0, tmp); /* the largest kernels reflect allows */
    for (int i = 0; i < H * W; i++) assert_float_equal(x[i], 0.375f, 1e-6);
    /* an impulse spreads symmetrically */
    memset(x, 0, sizeof x);
    x[2 * W + 2] = 1;
    simclr__aug_blur(x, 1, H, W, 3, 3, 1.0, tmp);
    assert_float_equal(x[1 * W + 2], x[3 * W + 2], 1e-7);
    assert_float_equal(x[2 * W + 1], x[2 * W + 3], 1e-7);
    assert_true(x[2 * W + 2] < 1 && x[2 * W + 2] > x[2 * W + 1]);
}

static void test_erase_box_and_noise(void **state)
{
    (void)state;
    enum { H = 6, W = 7 };
    float x[2 * H * W];
    for (int i = 0; i < 2 * H * W; i++) x[i] = 0.5f;
    simclr__aug_erase(x, 1, H, W, 1, 2, 3, 4, 0.0, NULL);
    int zeros = 0;
    for (int i = 0; i < H * W; i++) zeros += x[i] == 0.0f;
    assert_int_equal(zeros, 12);
    assert_true(x[1 * W + 2] == 0 && x[3 * W + 5] == 0 && x[1 * W + 1] == 0.5f && x[4 * W + 2] == 0.5f);
    simclr__rng r;
    simclr__rng_init(&r, 1, SIMCLR__STREAM_TEST, 0);
    simclr__aug_erase(x + H * W, 1, H, W, 0, 0, H, W, -1.0, &r);
    double sum = 0;
    for (int i = 0; i < H * W; i++) {
        assert_true(x[H * W + i] >= 0 && x[H * W + i] < 1);
        sum += x[H * W + i];
    }
    assert_true(fabs(sum / (H * W) - 0.5) < 5 * sqrt(1.0 / 12 / (H * W)));
}

/* ------------------------------------------------------------------------ */
/* Crop parameters and drawn statistics                                      */
/* ------------------------------------------------------------------------ */

static simclr__aug_params preset(simclr_aug_preset p)
{
    simclr__aug_params params;
    CHECK_OK(simclr__aug_preset(&params, p));
    return params;
}

static void test_crop_fallback_is_torchvision_center_crop(void **state)
{
    (void)state;
    simclr__aug_params p = preset(SIMCLR_AUG_PRESET_SIMCLR_V1);
    simclr__rng r;
    simclr__rng_init(&r, 7, SIMCLR__STREAM_TEST, 0);
    int64_t top, left, h, w;
    /* every attempt wants a 141+ px wide box of a 100 px image: fallback, and
     * the image (ratio 1) is narrower than the allowed minimum 2 -> w = W,
     * h = round(W / 2) */
    p.scale_min = p.scale_max = 1;
    p.ratio_min = 2, p.ratio_max = 3;
    simclr__aug_crop_box(&p, 100, 100, &r, &top, &left, &h, &w);
    assert_true(top == 25 && left == 0 && h == 50 && w == 100);
    /* a 50 x 200 image is wider than 4/3: h = H, w = round(50 * 4/3) = 67 */
    p.ratio_min = 3.0 / 4, p.ratio_max = 4.0 / 3;
    simclr__aug_crop_box(&p, 50, 200, &r, &top, &left, &h, &w);
    assert_true(top == 0 && left == 66 && h == 50 && w == 67);
    /* within the allowed ratios the whole image */
    p.scale_min = 1, p.scale_max = 1, p.ratio_min = 5, p.ratio_max = 6;
    simclr__aug_crop_box(&p, 60, 330, &r, &top, &left, &h, &w);
    assert_true(top == 0 && left == 0 && h == 60 && w == 330);
}

static void test_crop_statistics(void **state)
{
    (void)state;
    simclr__aug_params p = preset(SIMCLR_AUG_PRESET_SIMCLR_V1);
    const int n = 20000;
    const int64_t S = 1000;
    /* with aspect 1 no attempt fails on a square image: the area fraction is
     * uniform on [0.08, 1] up to rounding a side to whole pixels */
    p.ratio_min = p.ratio_max = 1;
    double sum = 0, lo = 1, hi = 0;
    for (int i = 0; i < n; i++) {
        simclr__rng r;
        simclr__rng_init(&r, 11, SIMCLR__STREAM_TEST, (uint64_t)i);
        int64_t top, left, h, w;
        simclr__aug_crop_box(&p, S, S, &r, &top, &left, &h, &w);
        assert_true(top >= 0 && left >= 0 && top + h <= S && left + w <= S && h == w);
        double a = (double)h * w / (S * S);
        sum += a, lo = fmin(lo, a), hi = fmax(hi, a);
    }
    double sd = (1 - 0.08) / sqrt(12.0);
    assert_true(fabs(sum / n - 0.54) < 5 * sd / sqrt(n) + 1e-3);
    assert_true(lo >= 0.08 - 2e-3 && lo < 0.09);
    assert_true(hi <= 1 && hi > 0.99);
    /* default ratios: log(w/h) uniform on [log 3/4, log 4/3] for small areas
     * (no rejection), mean 0 */
    p = preset(SIMCLR_AUG_PRESET_SIMCLR_V1);
    p.scale_min = p.scale_max = 0.1;
    double lsum = 0;
    for (int i = 0; i < n; i++) {
        simclr__rng r;
        simclr__rng_init(&r, 12, SIMCLR__STREAM_TEST, (uint64_t)i);
        int64_t top, left, h, w;
        simclr__aug_crop_box(&p, S, S, &r, &top, &left, &h, &w);
        double lr = log((double)w / h);
        assert_true(lr >= log(0.75) - 0.01 && lr <= log(4.0 / 3) + 0.01);
        assert_true(fabs((double)h * w / (S * S) - 0.1) < 2e-3);
        lsum += lr;
    }
    double lsd = 2 * log(4.0 / 3) / sqrt(12.0);
    assert_true(fabs(lsum / n) < 5 * lsd / sqrt(n));
}

/* |rate - p| within 5 standard errors of a Bernoulli(p) mean */
static void assert_rate(int hits, int n, double p)
{
    double se = sqrt(p * (1 - p) / n);
    if (fabs((double)hits / n - p) > 5 * se + 1e-12)
        fail_msg("rate %g, expected %g (+- %g)", (double)hits / n, p, 5 * se);
}

static void test_plan_rates(void **state)
{
    (void)state;
    simclr__aug_params p = preset(SIMCLR_AUG_PRESET_SIMCLR_V1);
    p.solarize_p = 0.3;
    const int n = 20000;
    int flips = 0, jitters = 0, grays = 0, blurs = 0, sols = 0, first[4] = {0};
    double sigma_sum = 0;
    for (int i = 0; i < n; i++) {
        simclr__rng r;
        simclr__rng_init(&r, 5, SIMCLR__STREAM_AUGMENT, (uint64_t)i);
        simclr__aug_plan plan;
        simclr__aug_plan_draw(&p, 64, 48, 3, 32, 32, &r, &plan);
        flips += plan.flip, jitters += plan.jitter, grays += plan.gray, blurs += plan.blur, sols += plan.solarize;
        first[plan.order[0]]++;
        int seen[4] = {0};
        for (int k = 0; k < 4; k++) seen[plan.order[k]]++;
        for (int k = 0; k < 4; k++) assert_int_equal(seen[k], 1);
        for (int k = 0; k < 4; k++) assert_int_equal(plan.use[k], plan.jitter);
        assert_true(plan.factor[0] >= 0.2 && plan.factor[0] <= 1.8);
        assert_true(plan.factor[1] >= 0.2 && plan.factor[1] <= 1.8);
        assert_true(plan.factor[2] >= 0.2 && plan.factor[2] <= 1.8);
        assert_true(plan.factor[3] >= -0.2 && plan.factor[3] <= 0.2);
        assert_true(plan.sigma >= 0.1 && plan.sigma <= 2.0);
        assert_true(plan.kh == 3 && plan.kw == 3);
        sigma_sum += plan.sigma;
    }
    assert_rate(flips, n, 0.5);
    assert_rate(jitters, n, 0.8);
    assert_rate(grays, n, 0.2);
    assert_rate(blurs, n, 0.5);
    assert_rate(sols, n, 0.3);
    for (int k = 0; k < 4; k++) assert_rate(first[k], n, 0.25);
    assert_true(fabs(sigma_sum / n - 1.05) < 5 * (1.9 / sqrt(12.0)) / sqrt(n));

    /* one channel: saturation, hue and grayscale never fire */
    for (int i = 0; i < 1000; i++) {
        simclr__rng r;
        simclr__rng_init(&r, 5, SIMCLR__STREAM_AUGMENT, (uint64_t)i);
        simclr__aug_plan plan;
        simclr__aug_plan_draw(&p, 28, 28, 1, 28, 28, &r, &plan);
        assert_false(plan.gray || plan.use[SIMCLR__JIT_SATURATION] || plan.use[SIMCLR__JIT_HUE]);
    }
}

/* ------------------------------------------------------------------------ */
/* The public object                                                         */
/* ------------------------------------------------------------------------ */

static void test_view_is_its_plan(void **state)
{
    (void)state;
    simclr_context *ctx = make_ctx(2, NULL);
    simclr_augment *aug = NULL;
    CHECK_OK(simclr_augment_create(ctx, SIMCLR_AUG_PRESET_SIMCLR_V1, 24, 20, &aug));
    CHECK_OK(simclr_augment_set(aug, SIMCLR_AUG_ERASE_P, 0.5));
    CHECK_OK(simclr_augment_set(aug, SIMCLR_AUG_ERASE_VALUE, -1));
    CHECK_OK(simclr_augment_set(aug, SIMCLR_AUG_INTERPOLATION, 1));
    const int64_t N = 6, H = 30, W = 26;
    simclr_tensor *img = make_images(ctx, N, H, W, 3, 9), *out = make_out(ctx, N, 3, 24, 20);
    CHECK_OK(simclr_augment_apply(aug, img, 1234, 1, out));

    simclr__aug_params p = preset(SIMCLR_AUG_PRESET_SIMCLR_V1);
    p.erase_p = 0.5, p.erase_value = -1, p.interpolation = 1;
    float view[3 * 24 * 20], scratch[8192];
    assert_true(simclr__aug_scratch(H, 24, 20) <= 8192);
    for (int64_t i = 0; i < N; i++) {
        simclr__rng r;
        simclr__rng_init(&r, 1234, SIMCLR__STREAM_AUGMENT + 1, (uint64_t)i);
        simclr__aug_plan plan;
        simclr__aug_plan_draw(&p, H, W, 3, 24, 20, &r, &plan);
        simclr__aug_execute(&p, &plan, (uint8_t *)simclr_tensor_data(img) + i * H * W * 3, H, W, 3, 24, 20, view,
                            scratch, &r);
        assert_memory_equal(view, (float *)simclr_tensor_data(out) + i * 3 * 24 * 20, sizeof view);
    }
    simclr_tensor_destroy(img);
    simclr_tensor_destroy(out);
    simclr_augment_destroy(aug);
    simclr_context_destroy(ctx);
}

/* Runs preset on a batch in a context of `threads` threads and returns a copy of both views. */
static float *views_with(int threads, simclr_aug_preset pr, uint64_t seed, int64_t n, int64_t h, int64_t w, int c,
                         int oh, int ow)
{
    simclr_context *ctx = make_ctx(threads, NULL);
    simclr_augment *aug = NULL;
    CHECK_OK(simclr_augment_create(ctx, pr, oh, ow, &aug));
    CHECK_OK(simclr_augment_set(aug, SIMCLR_AUG_SOLARIZE_P, 0.2));
    CHECK_OK(simclr_augment_set(aug, SIMCLR_AUG_ERASE_P, 0.3));
    CHECK_OK(simclr_augment_set(aug, SIMCLR_AUG_ERASE_VALUE, -1));
    simclr_tensor *img = make_images(ctx, n, h, w, c, 21);
    simclr_tensor *v0 = make_out(ctx, n, c, oh, ow), *v1 = make_out(ctx, n, c, oh, ow);
    CHECK_OK(simclr_augment_pair(aug, img, seed, v0, v1));
    size_t bytes = simclr_tensor_bytes(v0);
    float *copy = malloc(2 * bytes);
    memcpy(copy, simclr_tensor_data(v0), bytes);
    memcpy((char *)copy + bytes, simclr_tensor_data(v1), bytes);
    /* pair is apply(0) then apply(1) */
    simclr_tensor *a = make_out(ctx, n, c, oh, ow);
    CHECK_OK(simclr_augment_apply(aug, img, seed, 1, a));
    assert_memory_equal(simclr_tensor_data(a), (char *)copy + bytes, bytes);
    simclr_tensor_destroy(a);
    simclr_tensor_destroy(img);
    simclr_tensor_destroy(v0);
    simclr_tensor_destroy(v1);
    simclr_augment_destroy(aug);
    simclr_context_destroy(ctx);
    return copy;
}

static void test_threads_and_seeds(void **state)
{
    (void)state;
    const int64_t n = 9, h = 40, w = 36;
    size_t bytes = 2 * (size_t)n * 3 * 32 * 32 * sizeof(float);
    float *one = views_with(1, SIMCLR_AUG_PRESET_SIMCLR_V1, 77, n, h, w, 3, 32, 32);
    float *two = views_with(2, SIMCLR_AUG_PRESET_SIMCLR_V1, 77, n, h, w, 3, 32, 32);
    float *three = views_with(3, SIMCLR_AUG_PRESET_SIMCLR_V1, 77, n, h, w, 3, 32, 32);
    float *other = views_with(2, SIMCLR_AUG_PRESET_SIMCLR_V1, 78, n, h, w, 3, 32, 32);
    assert_memory_equal(one, two, bytes);
    assert_memory_equal(one, three, bytes);
    /* another seed changes every image's view; the two views differ */
    size_t per = (size_t)3 * 32 * 32;
    for (int64_t i = 0; i < 2 * n; i++) assert_true(memcmp(one + i * per, other + i * per, per * sizeof(float)) != 0);
    for (int64_t i = 0; i < n; i++) assert_true(memcmp(one + i * per, one + (n + i) * per, per * sizeof(float)) != 0);
    for (size_t i = 0; i < bytes / sizeof(float); i++) assert_true(one[i] >= 0 && one[i] <= 1);
    free(one), free(two), free(three), free(other);

    /* one channel through the full V1 preset */
    float *g1 = views_with(1, SIMCLR_AUG_PRESET_SIMCLR_V1, 5, 4, 28, 28, 1, 28, 28);
    float *g2 = views_with(2, SIMCLR_AUG_PRESET_SIMCLR_V1, 5, 4, 28, 28, 1, 28, 28);
    assert_memory_equal(g1, g2, 2 * 4 * 28 * 28 * sizeof(float));
    free(g1), free(g2);
}

/* A view depends on (seed, view, index) and the image only, not its neighbours. */
static void test_view_depends_on_index_not_batch(void **state)
{
    (void)state;
    simclr_context *ctx = make_ctx(2, NULL);
    simclr_augment *aug = NULL;
    CHECK_OK(simclr_augment_create(ctx, SIMCLR_AUG_PRESET_CIFAR, 32, 32, &aug));
    simclr_tensor *a = make_images(ctx, 5, 32, 32, 3, 1), *b = make_images(ctx, 5, 32, 32, 3, 2);
    size_t img_bytes = 32 * 32 * 3;
    memcpy((uint8_t *)simclr_tensor_data(b) + 3 * img_bytes, (uint8_t *)simclr_tensor_data(a) + 3 * img_bytes,
           img_bytes);
    simclr_tensor *oa = make_out(ctx, 5, 3, 32, 32), *ob = make_out(ctx, 5, 3, 32, 32);
    CHECK_OK(simclr_augment_apply(aug, a, 3, 0, oa));
    CHECK_OK(simclr_augment_apply(aug, b, 3, 0, ob));
    size_t per = 3 * 32 * 32;
    assert_memory_equal((float *)simclr_tensor_data(oa) + 3 * per, (float *)simclr_tensor_data(ob) + 3 * per,
                        per * sizeof(float));
    assert_true(memcmp(simclr_tensor_data(oa), simclr_tensor_data(ob), per * sizeof(float)) != 0);
    simclr_tensor_destroy(a), simclr_tensor_destroy(b), simclr_tensor_destroy(oa), simclr_tensor_destroy(ob);
    simclr_augment_destroy(aug);
    simclr_context_destroy(ctx);
}

/* End to end: the fraction of outputs that were flipped / gray / jittered. */
static void test_output_rates(void **state)
{
    (void)state;
    simclr_context *ctx = make_ctx(2, NULL);
    const int64_t n = 3000;
    simclr_tensor *one = make_images(ctx, 1, 8, 8, 3, 4), *img = NULL;
    int64_t shape[4] = {n, 8, 8, 3};
    CHECK_OK(simclr_tensor_create(ctx, SIMCLR_U8, 4, shape, &img));
    for (int64_t i = 0; i < n; i++) memcpy((uint8_t *)simclr_tensor_data(img) + i * 192, simclr_tensor_data(one), 192);
    simclr_tensor *base = make_out(ctx, 1, 3, 8, 8), *out = make_out(ctx, n, 3, 8, 8);
    simclr_augment *plain = NULL;
    CHECK_OK(simclr_augment_create(ctx, SIMCLR_AUG_PRESET_NONE, 8, 8, &plain));
    CHECK_OK(simclr_augment_apply(plain, one, 0, 0, base));
    const float *b = simclr_tensor_data(base);
    float flipped[192];
    memcpy(flipped, b, sizeof flipped);
    simclr__aug_hflip(flipped, 3, 8, 8);

    struct { simclr_aug_param key; double p; } cases[] = {
        {SIMCLR_AUG_FLIP_P, 0.5}, {SIMCLR_AUG_GRAYSCALE_P, 0.2}, {SIMCLR_AUG_JITTER_P, 0.8}};
    for (int c = 0; c < 3; c++) {
        simclr_augment *aug = NULL;
        CHECK_OK(simclr_augment_create(ctx, SIMCLR_AUG_PRESET_NONE, 8, 8, &aug));
        CHECK_OK(simclr_augment_set(aug, cases[c].key, cases[c].p));
        CHECK_OK(simclr_augment_apply(aug, img, 99, 0, out));
        int hits = 0;
        for (int64_t i = 0; i < n; i++) {
            const float *v = (const float *)simclr_tensor_data(out) + i * 192;
            int same = memcmp(v, b, 192 * sizeof(float)) == 0;
            if (c == 0) {
                int flip = memcmp(v, flipped, sizeof flipped) == 0;
                assert_true(same != flip);
                hits += flip;
            } else if (c == 1) {
                int gray = 1;
                for (int k = 0; k < 64; k++) gray &= v[k] == v[64 + k] && v[k] == v[128 + k];
                assert_true(gray != same);
                hits += gray;
            } else {
                hits += !same;
            }
        }
        assert_rate(hits, (int)n, cases[c].p);
        simclr_augment_destroy(aug);
    }
    simclr_augment_destroy(plain);
    simclr_tensor_destroy(one), simclr_tensor_destroy(img), simclr_tensor_destroy(base), simclr_tensor_destroy(out);
    simclr_context_destroy(ctx);
}

static void test_presets_and_keys(void **state)
{
    (void)state;
    simclr_context *ctx = make_ctx(1, NULL);
    simclr_augment *aug = NULL;
    double v, lo, hi;
    CHECK_OK(simclr_augment_create(ctx, SIMCLR_AUG_PRESET_CIFAR, 32, 32, &aug));
    CHECK_OK(simclr_augment_get(aug, SIMCLR_AUG_JITTER_STRENGTH, &v));
    assert_float_equal(v, 0.5, 0);
    CHECK_OK(simclr_augment_get(aug, SIMCLR_AUG_HUE, &v));
    assert_float_equal(v, 0.1, 1e-15);
    CHECK_OK(simclr_augment_get(aug, SIMCLR_AUG_BLUR_P, &v));
    assert_true(v == 0);
    CHECK_OK(simclr_augment_get(aug, SIMCLR_AUG_CROP_SCALE_MIN, &v));
    assert_true(v == 0.08);
    CHECK_OK(simclr_augment_set(aug, SIMCLR_AUG_JITTER_STRENGTH, 1.0));
    CHECK_OK(simclr_augment_get(aug, SIMCLR_AUG_SATURATION, &v));
    assert_float_equal(v, 0.8, 1e-15);
    CHECK_OK(simclr_augment_set(aug, SIMCLR_AUG_CROP_ATTEMPTS, 100));
    CHECK_OK(simclr_augment_get(aug, SIMCLR_AUG_CROP_ATTEMPTS, &v));
    assert_true(v == 100);
    simclr_augment_destroy(aug);

    CHECK_OK(simclr_augment_create(ctx, SIMCLR_AUG_PRESET_GRAYSCALE, 28, 28, &aug));
    CHECK_OK(simclr_augment_get(aug, SIMCLR_AUG_SATURATION, &v));
    assert_true(v == 0);
    CHECK_OK(simclr_augment_get(aug, SIMCLR_AUG_BRIGHTNESS, &v));
    assert_true(v > 0);
    CHECK_OK(simclr_augment_get(aug, SIMCLR_AUG_GRAYSCALE_P, &v));
    assert_true(v == 0);
    simclr_augment_destroy(aug);

    CHECK_OK(simclr_augment_create(ctx, SIMCLR_AUG_PRESET_SIMCLR_V1, 224, 224, &aug));
    CHECK_OK(simclr_augment_get(aug, SIMCLR_AUG_BLUR_P, &v));
    assert_true(v == 0.5);
    simclr_augment_destroy(aug);

    CHECK_OK(simclr_augment_bounds(SIMCLR_AUG_HUE, &lo, &hi));
    assert_true(lo == 0 && hi == 0.5);
    CHECK_STATUS(simclr_augment_bounds((simclr_aug_param)999, &lo, &hi), SIMCLR_E_INVALID);
    CHECK_STATUS(simclr_augment_bounds(SIMCLR_AUG_HUE, NULL, &hi), SIMCLR_E_INVALID);

    /* NONE is a plain resize of the whole image, with normalization last when asked */
    CHECK_OK(simclr_augment_create(ctx, SIMCLR_AUG_PRESET_NONE, 12, 10, &aug));
    simclr_tensor *img = make_images(ctx, 2, 20, 17, 3, 8), *out = make_out(ctx, 2, 3, 12, 10);
    CHECK_OK(simclr_augment_apply(aug, img, 1, 0, out));
    float want[3 * 12 * 10], tmp[4096];
    simclr__aug_resized_crop((uint8_t *)simclr_tensor_data(img) + 20 * 17 * 3, 20, 17, 3, 0, 0, 20, 17, 12, 10, 0, want,
                             tmp);
    assert_memory_equal(want, (float *)simclr_tensor_data(out) + 360, sizeof want);
    CHECK_OK(simclr_augment_set(aug, SIMCLR_AUG_NORMALIZE, 1));
    CHECK_OK(simclr_augment_set(aug, SIMCLR_AUG_MEAN_1, 0.5));
    CHECK_OK(simclr_augment_set(aug, SIMCLR_AUG_STD_1, 0.25));
    CHECK_OK(simclr_augment_apply(aug, img, 1, 0, out));
    const float *o = (const float *)simclr_tensor_data(out) + 360;
    assert_true(o[0] == want[0]);
    assert_true(o[120 + 7] == (want[120 + 7] - 0.5f) / 0.25f);
    simclr_tensor_destroy(img), simclr_tensor_destroy(out);
    simclr_augment_destroy(aug);
    simclr_context_destroy(ctx);
}

static void test_bad_arguments(void **state)
{
    (void)state;
    simclr_context *ctx = make_ctx(1, NULL);
    simclr_augment *aug = NULL;
    CHECK_STATUS(simclr_augment_create(NULL, SIMCLR_AUG_PRESET_CIFAR, 32, 32, &aug), SIMCLR_E_INVALID);
    CHECK_STATUS(simclr_augment_create(ctx, SIMCLR_AUG_PRESET_CIFAR, 32, 32, NULL), SIMCLR_E_INVALID);
    CHECK_STATUS(simclr_augment_create(ctx, (simclr_aug_preset)9, 32, 32, &aug), SIMCLR_E_INVALID);
    CHECK_STATUS(simclr_augment_create(ctx, SIMCLR_AUG_PRESET_CIFAR, 0, 32, &aug), SIMCLR_E_INVALID);
    CHECK_STATUS(simclr_augment_create(ctx, SIMCLR_AUG_PRESET_CIFAR, 32, 4097, &aug), SIMCLR_E_INVALID);
    assert_null(aug);
    CHECK_OK(simclr_augment_create(ctx, SIMCLR_AUG_PRESET_CIFAR, 32, 32, &aug));

    /* setters: each failure leaves the value as it was */
    double v;
    CHECK_STATUS(simclr_augment_set(NULL, SIMCLR_AUG_FLIP_P, 0.5), SIMCLR_E_INVALID);
    CHECK_STATUS(simclr_augment_set(aug, (simclr_aug_param)12345, 0.5), SIMCLR_E_INVALID);
    assert_non_null(strstr(simclr_last_error(), "unknown key"));
    CHECK_STATUS(simclr_augment_set(aug, SIMCLR_AUG_FLIP_P, 1.5), SIMCLR_E_INVALID);
    assert_non_null(strstr(simclr_last_error(), "FLIP_P"));
    CHECK_STATUS(simclr_augment_set(aug, SIMCLR_AUG_FLIP_P, NAN), SIMCLR_E_INVALID);
    CHECK_STATUS(simclr_augment_set(aug, SIMCLR_AUG_HUE, 0.6), SIMCLR_E_INVALID);
    CHECK_STATUS(simclr_augment_set(aug, SIMCLR_AUG_CROP_ATTEMPTS, 2.5), SIMCLR_E_INVALID);
    CHECK_STATUS(simclr_augment_set(aug, SIMCLR_AUG_CROP_ATTEMPTS, 0), SIMCLR_E_INVALID);
    CHECK_STATUS(simclr_augment_set(aug, SIMCLR_AUG_INTERPOLATION, 2), SIMCLR_E_INVALID);
    CHECK_STATUS(simclr_augment_set(aug, SIMCLR_AUG_CROP_SCALE_MIN, 0), SIMCLR_E_INVALID);
    CHECK_STATUS(simclr_augment_set(aug, SIMCLR_AUG_CROP_SCALE_MAX, 0.05), SIMCLR_E_INVALID); /* < min 0.08 */
    assert_non_null(strstr(simclr_last_error(), "CROP_SCALE_MIN"));
    CHECK_STATUS(simclr_augment_set(aug, SIMCLR_AUG_ERASE_VALUE, -0.5), SIMCLR_E_INVALID);
    CHECK_STATUS(simclr_augment_set(aug, SIMCLR_AUG_JITTER_STRENGTH, 3), SIMCLR_E_INVALID);
    CHECK_STATUS(simclr_augment_set(aug, SIMCLR_AUG_STD_0, 0), SIMCLR_E_INVALID);
    CHECK_OK(simclr_augment_get(aug, SIMCLR_AUG_FLIP_P, &v));
    assert_true(v == 0.5);
    CHECK_OK(simclr_augment_get(aug, SIMCLR_AUG_CROP_SCALE_MAX, &v));
    assert_true(v == 1.0);
    CHECK_OK(simclr_augment_get(aug, SIMCLR_AUG_HUE, &v));
    assert_true(v == 0.1);
    CHECK_OK(simclr_augment_get(aug, SIMCLR_AUG_ERASE_VALUE, &v));
    assert_true(v == 0);
    CHECK_STATUS(simclr_augment_get(aug, (simclr_aug_param)0, &v), SIMCLR_E_INVALID);
    CHECK_STATUS(simclr_augment_get(aug, SIMCLR_AUG_HUE, NULL), SIMCLR_E_INVALID);
    CHECK_STATUS(simclr_augment_get(NULL, SIMCLR_AUG_HUE, &v), SIMCLR_E_INVALID);

    /* tensors */
    simclr_tensor *img = make_images(ctx, 2, 20, 20, 3, 1), *out = make_out(ctx, 2, 3, 32, 32);
    simclr_tensor *out2 = make_out(ctx, 2, 3, 32, 32);
    simclr_tensor *f32img = make_out(ctx, 2, 20, 20, 3);
    simclr_tensor *c2 = NULL, *rank3 = NULL, *u8out = NULL;
    int64_t s4[4] = {2, 20, 20, 2}, s3[3] = {20, 20, 3}, so[4] = {2, 3, 32, 32};
    CHECK_OK(simclr_tensor_create(ctx, SIMCLR_U8, 4, s4, &c2));
    CHECK_OK(simclr_tensor_create(ctx, SIMCLR_U8, 3, s3, &rank3));
    CHECK_OK(simclr_tensor_create(ctx, SIMCLR_U8, 4, so, &u8out));
    simclr_tensor *wrong[] = {make_out(ctx, 3, 3, 32, 32), make_out(ctx, 2, 1, 32, 32), make_out(ctx, 2, 3, 31, 32),
                              make_out(ctx, 2, 3, 32, 33)};
    float *o = simclr_tensor_data(out);
    for (int i = 0; i < 2 * 3 * 32 * 32; i++) o[i] = -7.0f;

    CHECK_STATUS(simclr_augment_apply(NULL, img, 0, 0, out), SIMCLR_E_INVALID);
    CHECK_STATUS(simclr_augment_apply(aug, NULL, 0, 0, out), SIMCLR_E_INVALID);
    CHECK_STATUS(simclr_augment_apply(aug, img, 0, 0, NULL), SIMCLR_E_INVALID);
    CHECK_STATUS(simclr_augment_apply(aug, f32img, 0, 0, out), SIMCLR_E_SHAPE);
    assert_non_null(strstr(simclr_last_error(), "dtype"));
    CHECK_STATUS(simclr_augment_apply(aug, rank3, 0, 0, out), SIMCLR_E_SHAPE);
    CHECK_STATUS(simclr_augment_apply(aug, c2, 0, 0, out), SIMCLR_E_SHAPE);
    assert_non_null(strstr(simclr_last_error(), "channels"));
    CHECK_STATUS(simclr_augment_apply(aug, img, 0, -1, out), SIMCLR_E_INVALID);
    CHECK_STATUS(simclr_augment_apply(aug, img, 0, 16, out), SIMCLR_E_INVALID);
    CHECK_STATUS(simclr_augment_apply(aug, img, 0, 0, u8out), SIMCLR_E_SHAPE);
    for (int k = 0; k < 4; k++) CHECK_STATUS(simclr_augment_apply(aug, img, 0, 0, wrong[k]), SIMCLR_E_SHAPE);
    CHECK_STATUS(simclr_augment_pair(aug, img, 0, out, wrong[2]), SIMCLR_E_SHAPE);
    CHECK_STATUS(simclr_augment_pair(aug, img, 0, out, out), SIMCLR_E_INVALID);
    CHECK_STATUS(simclr_augment_pair(aug, img, 0, NULL, out), SIMCLR_E_INVALID);
    for (int i = 0; i < 2 * 3 * 32 * 32; i++) assert_true(o[i] == -7.0f);
    CHECK_OK(simclr_augment_pair(aug, img, 0, out, out2));

    for (int k = 0; k < 4; k++) simclr_tensor_destroy(wrong[k]);
    simclr_tensor_destroy(img), simclr_tensor_destroy(out), simclr_tensor_destroy(out2);
    simclr_tensor_destroy(f32img), simclr_tensor_destroy(c2), simclr_tensor_destroy(rank3);
    simclr_tensor_destroy(u8out);
    simclr_augment_destroy(aug);
    simclr_augment_destroy(NULL);
    simclr_context_destroy(ctx);
}

/* Every allocation failure is a clean SIMCLR_E_NOMEM; a warm policy allocates nothing. */
static void test_allocation(void **state)
{
    (void)state;
    test_alloc counter = {0};
    simclr_context *ctx = make_ctx(2, &counter);
    simclr_tensor *small = make_images(ctx, 4, 40, 40, 3, 1), *big = make_images(ctx, 2, 90, 60, 3, 2);
    simclr_tensor *o4 = make_out(ctx, 4, 3, 32, 32), *o4b = make_out(ctx, 4, 3, 32, 32), *o2 = make_out(ctx, 2, 3, 32, 32);
    long base = counter.live;

    /* creation */
    simclr_augment *aug = NULL;
    for (long fail = 1;; fail++) {
        counter.fail_at = counter.allocs + fail;
        simclr_status st = simclr_augment_create(ctx, SIMCLR_AUG_PRESET_SIMCLR_V1, 32, 32, &aug);
        counter.fail_at = 0;
        if (st == SIMCLR_OK) break;
        assert_int_equal(st, SIMCLR_E_NOMEM);
        assert_null(aug);
        assert_int_equal(counter.live, base);
    }
    /* the first apply reserves scratch */
    float *o = simclr_tensor_data(o4);
    o[0] = -3.0f;
    counter.fail_at = counter.allocs + 1;
    CHECK_STATUS(simclr_augment_apply(aug, small, 1, 0, o4), SIMCLR_E_NOMEM);
    counter.fail_at = 0;
    assert_true(o[0] == -3.0f);
    CHECK_OK(simclr_augment_pair(aug, small, 1, o4, o4b));
    long allocs = counter.allocs;
    for (int i = 0; i < 3; i++) {
        CHECK_OK(simclr_augment_pair(aug, small, (uint64_t)i, o4, o4b));
        CHECK_OK(simclr_augment_apply(aug, small, (uint64_t)i, 1, o4));
    }
    assert_int_equal(counter.allocs, allocs);
    /* a taller input grows the scratch once; a failed growth keeps the old one */
    counter.fail_at = counter.allocs + 1;
    CHECK_STATUS(simclr_augment_apply(aug, big, 1, 0, o2), SIMCLR_E_NOMEM);
    counter.fail_at = 0;
    CHECK_OK(simclr_augment_apply(aug, small, 1, 0, o4));
    CHECK_OK(simclr_augment_apply(aug, big, 1, 0, o2));
    allocs = counter.allocs;
    CHECK_OK(simclr_augment_apply(aug, big, 2, 0, o2));
    CHECK_OK(simclr_augment_apply(aug, small, 2, 0, o4));
    assert_int_equal(counter.allocs, allocs);

    simclr_augment_destroy(aug);
    assert_int_equal(counter.live, base);
    simclr_tensor_destroy(small), simclr_tensor_destroy(big);
    simclr_tensor_destroy(o4), simclr_tensor_destroy(o4b), simclr_tensor_destroy(o2);
    simclr_context_destroy(ctx);
    assert_int_equal(counter.live, 0);
}

/* Images smaller than the output are upscaled; 1x1 sources and outputs work. */
static void test_extreme_sizes(void **state)
{
    (void)state;
    simclr_context *ctx = make_ctx(2, NULL);
    const int sizes[][4] = {{1, 1, 32, 32}, {3, 2, 224, 224}, {300, 7, 16, 16}, {50, 50, 1, 1}, {5, 80, 2, 9}};
    for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++) {
        simclr_augment *aug = NULL;
        CHECK_OK(simclr_augment_create(ctx, SIMCLR_AUG_PRESET_SIMCLR_V1, sizes[s][2], sizes[s][3], &aug));
        CHECK_OK(simclr_augment_set(aug, SIMCLR_AUG_BLUR_P, 1));
        CHECK_OK(simclr_augment_set(aug, SIMCLR_AUG_BLUR_KERNEL_FRAC, 1));
        CHECK_OK(simclr_augment_set(aug, SIMCLR_AUG_ERASE_P, 1));
        CHECK_OK(simclr_augment_set(aug, SIMCLR_AUG_INTERPOLATION, 1));
        simclr_tensor *img = make_images(ctx, 3, sizes[s][0], sizes[s][1], 3, 3);
        simclr_tensor *out = make_out(ctx, 3, 3, sizes[s][2], sizes[s][3]);
        CHECK_OK(simclr_augment_apply(aug, img, 4, 0, out));
        const float *o = simclr_tensor_data(out);
        for (int64_t i = 0; i < simclr_tensor_numel(out); i++)
            if (!(o[i] >= 0 && o[i] <= 1)) fail_msg("size case %zu: value %g at %lld", s, o[i], (long long)i);
        simclr_tensor_destroy(img), simclr_tensor_destroy(out);
        simclr_augment_destroy(aug);
    }
    simclr_context_destroy(ctx);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_flip_twice_is_identity),
        cmocka_unit_test(test_neutral_factors_are_identity),
        cmocka_unit_test(test_color_definitions),
        cmocka_unit_test(test_grayscale_equal_channels),
        cmocka_unit_test(test_whole_crop_same_size_is_identity),
        cmocka_unit_test(test_blur_kernel_and_constant),
        cmocka_unit_test(test_erase_box_and_noise),
        cmocka_unit_test(test_crop_fallback_is_torchvision_center_crop),
        cmocka_unit_test(test_crop_statistics),
        cmocka_unit_test(test_plan_rates),
        cmocka_unit_test(test_view_is_its_plan),
        cmocka_unit_test(test_threads_and_seeds),
        cmocka_unit_test(test_view_depends_on_index_not_batch),
        cmocka_unit_test(test_output_rates),
        cmocka_unit_test(test_presets_and_keys),
        cmocka_unit_test(test_bad_arguments),
        cmocka_unit_test(test_allocation),
        cmocka_unit_test(test_extreme_sizes),
    };
    return cmocka_run_group_tests_name("augment", tests, NULL, NULL);
}
