/* Image lists: batches of images of different sizes for the augmentation and
 * the trainer, each view cropped from its image's full resolution. */
#include "test_util.h"

typedef struct imgs {
    uint8_t *px[4];
    int64_t h[4], w[4];
} imgs;

static void make_images(imgs *m, int C)
{
    const int64_t hs[4] = {40, 23, 64, 9}, ws[4] = {30, 51, 64, 7};
    uint64_t s = 99;
    for (int i = 0; i < 4; i++) {
        m->h[i] = hs[i], m->w[i] = ws[i];
        size_t n = (size_t)(hs[i] * ws[i] * C);
        m->px[i] = malloc(n);
        assert_non_null(m->px[i]);
        for (size_t k = 0; k < n; k++) m->px[i][k] = (uint8_t)(test_rand_next(&s) >> 56);
    }
}

static void free_images(imgs *m)
{
    for (int i = 0; i < 4; i++) free(m->px[i]);
}

static void test_list_basics_and_errors(void **state)
{
    (void)state;
    simclr_context *ctx;
    CHECK_OK(simclr_context_create(NULL, 1, NULL, &ctx));
    simclr_image_list *l;
    CHECK_STATUS(simclr_image_list_create(ctx, 2, &l), SIMCLR_E_INVALID);
    CHECK_STATUS(simclr_image_list_create(NULL, 3, &l), SIMCLR_E_INVALID);
    CHECK_OK(simclr_image_list_create(ctx, 3, &l));
    uint8_t px[12] = {0};
    CHECK_STATUS(simclr_image_list_add(l, NULL, 2, 2), SIMCLR_E_INVALID);
    CHECK_STATUS(simclr_image_list_add(l, px, 0, 2), SIMCLR_E_SHAPE);
    CHECK_STATUS(simclr_image_list_add(l, px, 2, (int64_t)1 << 25), SIMCLR_E_SHAPE);
    assert_int_equal(simclr_image_list_count(l), 0);
    for (int i = 0; i < 200; i++) CHECK_OK(simclr_image_list_add(l, px, 2, 2)); /* grows past 64 */
    assert_int_equal(simclr_image_list_count(l), 200);
    int64_t h, w;
    CHECK_OK(simclr_image_list_size(l, 199, &h, &w));
    assert_true(h == 2 && w == 2);
    CHECK_STATUS(simclr_image_list_size(l, 200, &h, &w), SIMCLR_E_INVALID);
    CHECK_OK(simclr_image_list_clear(l));
    assert_int_equal(simclr_image_list_count(l), 0);
    assert_int_equal(simclr_image_list_channels(l), 3);
    simclr_augment *aug;
    CHECK_OK(simclr_augment_create(ctx, SIMCLR_AUG_PRESET_SIMCLR_V1, 8, 8, &aug));
    int64_t shape[4] = {1, 3, 8, 8};
    simclr_tensor *out;
    CHECK_OK(simclr_tensor_create(ctx, SIMCLR_F32, 4, shape, &out));
    CHECK_STATUS(simclr_augment_apply_list(aug, l, 1, 0, out), SIMCLR_E_INVALID); /* empty */
    CHECK_OK(simclr_image_list_add(l, px, 2, 2));
    CHECK_OK(simclr_image_list_add(l, px, 2, 2));
    CHECK_STATUS(simclr_augment_apply_list(aug, l, 1, 0, out), SIMCLR_E_SHAPE); /* 2 images, 1 row */
    CHECK_STATUS(simclr_augment_pair_list(aug, l, 1, out, out), SIMCLR_E_SHAPE);
    simclr_tensor_destroy(out);
    simclr_augment_destroy(aug);
    simclr_image_list_destroy(l);
    simclr_image_list_destroy(NULL);
    simclr_context_destroy(ctx);
}

/* Image i of a list gives the view that a tensor batch holding that image at
 * index i gives, bit for bit, whatever sizes the other images have. */
static void check_list_matches_batches(int C, int antialias, int threads)
{
    simclr_context *ctx;
    CHECK_OK(simclr_context_create(NULL, threads, NULL, &ctx));
    imgs m;
    make_images(&m, C);
    simclr_augment *aug;
    CHECK_OK(simclr_augment_create(ctx, C == 3 ? SIMCLR_AUG_PRESET_SIMCLR_V1 : SIMCLR_AUG_PRESET_GRAYSCALE, 12, 10,
                                   &aug));
    CHECK_OK(simclr_augment_set(aug, SIMCLR_AUG_ANTIALIAS, antialias));
    simclr_image_list *l;
    CHECK_OK(simclr_image_list_create(ctx, C, &l));
    for (int i = 0; i < 4; i++) CHECK_OK(simclr_image_list_add(l, m.px[i], m.h[i], m.w[i]));
    int64_t vs[4] = {4, C, 12, 10};
    simclr_tensor *v0, *v1;
    CHECK_OK(simclr_tensor_create(ctx, SIMCLR_F32, 4, vs, &v0));
    CHECK_OK(simclr_tensor_create(ctx, SIMCLR_F32, 4, vs, &v1));
    CHECK_OK(simclr_augment_pair_list(aug, l, 77, v0, v1));
    int64_t per = (int64_t)C * 12 * 10;
    for (int i = 0; i < 4; i++) {
        /* a batch of i + 1 copies of image i: its row i is drawn with index i */
        int64_t bs[4] = {i + 1, m.h[i], m.w[i], C}, os[4] = {i + 1, C, 12, 10};
        simclr_tensor *batch, *o0, *o1;
        CHECK_OK(simclr_tensor_create(ctx, SIMCLR_U8, 4, bs, &batch));
        size_t bytes = (size_t)(m.h[i] * m.w[i] * C);
        for (int k = 0; k <= i; k++) memcpy((uint8_t *)simclr_tensor_data(batch) + k * bytes, m.px[i], bytes);
        CHECK_OK(simclr_tensor_create(ctx, SIMCLR_F32, 4, os, &o0));
        CHECK_OK(simclr_tensor_create(ctx, SIMCLR_F32, 4, os, &o1));
        CHECK_OK(simclr_augment_pair(aug, batch, 77, o0, o1));
        assert_memory_equal((float *)simclr_tensor_data(o0) + i * per, (float *)simclr_tensor_data(v0) + i * per,
                            (size_t)per * sizeof(float));
        assert_memory_equal((float *)simclr_tensor_data(o1) + i * per, (float *)simclr_tensor_data(v1) + i * per,
                            (size_t)per * sizeof(float));
        /* apply_list's view 1 is pair_list's second view */
        simclr_tensor_destroy(batch);
        simclr_tensor_destroy(o0);
        simclr_tensor_destroy(o1);
    }
    simclr_tensor *a1;
    CHECK_OK(simclr_tensor_create(ctx, SIMCLR_F32, 4, vs, &a1));
    CHECK_OK(simclr_augment_apply_list(aug, l, 77, 1, a1));
    assert_memory_equal(simclr_tensor_data(a1), simclr_tensor_data(v1), simclr_tensor_bytes(v1));
    /* the views differ between the two views (the augmentation is random) */
    assert_memory_not_equal(simclr_tensor_data(v0), simclr_tensor_data(v1), simclr_tensor_bytes(v1));
    const float *p = simclr_tensor_data(v0);
    for (int64_t k = 0; k < 4 * per; k++) assert_true(p[k] >= 0 && p[k] <= 1);
    simclr_tensor_destroy(a1);
    simclr_tensor_destroy(v0);
    simclr_tensor_destroy(v1);
    simclr_image_list_destroy(l);
    simclr_augment_destroy(aug);
    free_images(&m);
    simclr_context_destroy(ctx);
}

static void test_list_matches_batches_rgb(void **state) { (void)state; check_list_matches_batches(3, 0, 2); }
static void test_list_matches_batches_gray_aa(void **state) { (void)state; check_list_matches_batches(1, 1, 1); }
static void test_list_matches_batches_rgb_aa(void **state) { (void)state; check_list_matches_batches(3, 1, 2); }

/* Same-size lists: the list step is the tensor step, bit for bit. */
static void test_trainer_step_list_equals_tensor_step(void **state)
{
    (void)state;
    float losses[2];
    float *weights[2] = {NULL, NULL};
    int64_t nw = 0;
    for (int run = 0; run < 2; run++) {
        simclr_context *ctx;
        CHECK_OK(simclr_context_create(NULL, 1, NULL, &ctx));
        simclr_module *enc, *head;
        CHECK_OK(simclr_resnet_create(ctx, 18, 4, 3, SIMCLR_STEM_CIFAR, 5, &enc));
        CHECK_OK(simclr_mlp_head_create(ctx, (int)simclr_module_output_dim(enc), 16, 8, 2, 0, 6, &head));
        simclr_augment *aug;
        CHECK_OK(simclr_augment_create(ctx, SIMCLR_AUG_PRESET_CIFAR, 8, 8, &aug));
        simclr_loss *loss;
        CHECK_OK(simclr_ntxent_create(ctx, 0.5, 2, &loss));
        simclr_module *mods[2] = {enc, head};
        simclr_optimizer *opt;
        CHECK_OK(simclr_optimizer_create(ctx, SIMCLR_OPT_SGD, mods, 2, &opt));
        simclr_trainer *tr;
        CHECK_OK(simclr_trainer_create(ctx, enc, head, aug, loss, opt, &tr));
        int64_t bs[4] = {4, 12, 12, 3};
        simclr_tensor *batch;
        CHECK_OK(simclr_tensor_create(ctx, SIMCLR_U8, 4, bs, &batch));
        uint8_t *px = simclr_tensor_data(batch);
        uint64_t s = 3;
        for (int64_t k = 0; k < 4 * 12 * 12 * 3; k++) px[k] = (uint8_t)(test_rand_next(&s) >> 56);
        if (run == 0) {
            CHECK_OK(simclr_trainer_step(tr, batch, 9, &losses[0]));
        } else {
            simclr_image_list *l;
            CHECK_OK(simclr_image_list_create(ctx, 3, &l));
            for (int i = 0; i < 4; i++) CHECK_OK(simclr_image_list_add(l, px + i * 12 * 12 * 3, 12, 12));
            CHECK_OK(simclr_trainer_step_list(tr, l, 9, &losses[1]));
            simclr_image_list *gray;
            CHECK_OK(simclr_image_list_create(ctx, 1, &gray));
            CHECK_OK(simclr_image_list_add(gray, px, 12, 12));
            CHECK_STATUS(simclr_trainer_step_list(tr, gray, 9, NULL), SIMCLR_E_SHAPE);
            CHECK_STATUS(simclr_trainer_step_list(tr, NULL, 9, NULL), SIMCLR_E_INVALID);
            simclr_image_list_destroy(gray);
            simclr_image_list_destroy(l);
        }
        simclr_tensor *wt;
        CHECK_OK(simclr_module_param(enc, 0, NULL, &wt, NULL, NULL));
        nw = simclr_tensor_numel(wt);
        weights[run] = malloc((size_t)nw * sizeof(float));
        memcpy(weights[run], simclr_tensor_data(wt), (size_t)nw * sizeof(float));
        simclr_tensor_destroy(batch);
        simclr_trainer_destroy(tr);
        simclr_optimizer_destroy(opt);
        simclr_loss_destroy(loss);
        simclr_augment_destroy(aug);
        simclr_module_destroy(head);
        simclr_module_destroy(enc);
        simclr_context_destroy(ctx);
    }
    assert_true(losses[0] == losses[1]);
    assert_memory_equal(weights[0], weights[1], (size_t)nw * sizeof(float));
    free(weights[0]);
    free(weights[1]);
}

/* Images of different sizes train: the loss is finite and the step count moves. */
static void test_trainer_step_list_mixed_sizes(void **state)
{
    (void)state;
    simclr_context *ctx;
    CHECK_OK(simclr_context_create(NULL, 2, NULL, &ctx));
    simclr_module *enc, *head;
    CHECK_OK(simclr_resnet_create(ctx, 18, 4, 3, SIMCLR_STEM_CIFAR, 5, &enc));
    CHECK_OK(simclr_mlp_head_create(ctx, (int)simclr_module_output_dim(enc), 16, 8, 2, 0, 6, &head));
    simclr_augment *aug;
    CHECK_OK(simclr_augment_create(ctx, SIMCLR_AUG_PRESET_SIMCLR_V1, 8, 8, &aug));
    CHECK_OK(simclr_augment_set(aug, SIMCLR_AUG_ANTIALIAS, 1));
    simclr_loss *loss;
    CHECK_OK(simclr_ntxent_create(ctx, 0.5, 2, &loss));
    simclr_module *mods[2] = {enc, head};
    simclr_optimizer *opt;
    CHECK_OK(simclr_optimizer_create(ctx, SIMCLR_OPT_SGD, mods, 2, &opt));
    simclr_trainer *tr;
    CHECK_OK(simclr_trainer_create(ctx, enc, head, aug, loss, opt, &tr));
    imgs m;
    make_images(&m, 3);
    simclr_image_list *l;
    CHECK_OK(simclr_image_list_create(ctx, 3, &l));
    for (int i = 0; i < 4; i++) CHECK_OK(simclr_image_list_add(l, m.px[i], m.h[i], m.w[i]));
    float value;
    for (int step = 0; step < 2; step++) {
        CHECK_OK(simclr_trainer_step_list(tr, l, (uint64_t)step, &value));
        assert_true(isfinite(value) && value > 0);
    }
    double steps;
    CHECK_OK(simclr_trainer_stat(tr, SIMCLR_STAT_STEP, &steps));
    assert_true(steps == 2);
    simclr_image_list_destroy(l);
    free_images(&m);
    simclr_trainer_destroy(tr);
    simclr_optimizer_destroy(opt);
    simclr_loss_destroy(loss);
    simclr_augment_destroy(aug);
    simclr_module_destroy(head);
    simclr_module_destroy(enc);
    simclr_context_destroy(ctx);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_list_basics_and_errors),
        cmocka_unit_test(test_list_matches_batches_rgb),
        cmocka_unit_test(test_list_matches_batches_gray_aa),
        cmocka_unit_test(test_list_matches_batches_rgb_aa),
        cmocka_unit_test(test_trainer_step_list_equals_tensor_step),
        cmocka_unit_test(test_trainer_step_list_mixed_sizes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
