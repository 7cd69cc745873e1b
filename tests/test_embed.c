/* Embedding from memory: the embedder's features equal the encoder's on the
 * same transformed pixels, and several threads embedding with one encoder
 * at once (each with its own context and embedder) get exactly the
 * sequential result. `make tsan-embed` runs this program under
 * ThreadSanitizer, which fails on any data race between the threads. */
#include <pthread.h>

#include "test_util.h"

#define THREADS 4
#define N_IMG 5

typedef struct fixture {
    simclr_context *ctx;
    simclr_module *enc;
    uint8_t *px[N_IMG];
    int64_t h[N_IMG], w[N_IMG];
} fixture;

static void fixture_make(fixture *f)
{
    CHECK_OK(simclr_context_create(NULL, 1, NULL, &f->ctx));
    CHECK_OK(simclr_resnet_create(f->ctx, 18, 4, 3, SIMCLR_STEM_CIFAR, 21, &f->enc));
    const int64_t hs[N_IMG] = {16, 40, 23, 64, 9}, ws[N_IMG] = {16, 30, 51, 17, 7};
    uint64_t s = 5;
    for (int i = 0; i < N_IMG; i++) {
        f->h[i] = hs[i], f->w[i] = ws[i];
        size_t n = (size_t)(hs[i] * ws[i] * 3);
        f->px[i] = malloc(n);
        for (size_t k = 0; k < n; k++) f->px[i][k] = (uint8_t)(test_rand_next(&s) >> 56);
    }
}

static void fixture_free(fixture *f)
{
    for (int i = 0; i < N_IMG; i++) free(f->px[i]);
    simclr_module_destroy(f->enc);
    simclr_context_destroy(f->ctx);
}

/* A 16x16 image with RESIZE 16 and a 16x16 crop passes unchanged (the
 * triangle filter at scale 1 is the identity): the features must be the
 * encoder's own on pixels / 255. */
static void test_identity_transform_gives_encoder_features(void **state)
{
    (void)state;
    fixture f;
    fixture_make(&f);
    simclr_embedder *e;
    CHECK_OK(simclr_embedder_create(f.ctx, f.enc, 16, 16, &e));
    CHECK_OK(simclr_embedder_set(e, SIMCLR_EMBED_RESIZE, 16));
    simclr_image_list *l;
    CHECK_OK(simclr_image_list_create(f.ctx, 3, &l));
    CHECK_OK(simclr_image_list_add(l, f.px[0], 16, 16));
    int64_t d = simclr_module_output_dim(f.enc), os[2] = {1, d}, xs[4] = {1, 3, 16, 16};
    simclr_tensor *y, *ref, *x;
    CHECK_OK(simclr_tensor_create(f.ctx, SIMCLR_F32, 2, os, &y));
    CHECK_OK(simclr_tensor_create(f.ctx, SIMCLR_F32, 2, os, &ref));
    CHECK_OK(simclr_tensor_create(f.ctx, SIMCLR_F32, 4, xs, &x));
    float *xp = simclr_tensor_data(x);
    for (int c = 0; c < 3; c++)
        for (int p = 0; p < 256; p++) xp[c * 256 + p] = (float)f.px[0][p * 3 + c] / 255.0f;
    CHECK_OK(simclr_embedder_run(e, l, y));
    CHECK_OK(simclr_module_forward(f.enc, x, SIMCLR_EVAL, ref));
    double err = test_norm_err(simclr_tensor_data(y), simclr_tensor_data(ref), d);
    assert_true(err < 1e-5);
    /* and the features are not all equal (the network sees the image) */
    const float *yp = simclr_tensor_data(y);
    int distinct = 0;
    for (int64_t k = 1; k < d; k++) distinct += yp[k] != yp[0];
    assert_true(distinct > 0);
    simclr_tensor_destroy(x);
    simclr_tensor_destroy(ref);
    simclr_tensor_destroy(y);
    simclr_image_list_destroy(l);
    simclr_embedder_destroy(e);
    fixture_free(&f);
}

static void test_errors(void **state)
{
    (void)state;
    fixture f;
    fixture_make(&f);
    simclr_embedder *e;
    CHECK_STATUS(simclr_embedder_create(NULL, f.enc, 16, 16, &e), SIMCLR_E_INVALID);
    CHECK_STATUS(simclr_embedder_create(f.ctx, f.enc, 0, 16, &e), SIMCLR_E_INVALID);
    simclr_module *head;
    CHECK_OK(simclr_mlp_head_create(f.ctx, 8, 8, 4, 2, 0, 1, &head));
    CHECK_STATUS(simclr_embedder_create(f.ctx, head, 16, 16, &e), SIMCLR_E_INVALID);
    simclr_module_destroy(head);
    CHECK_OK(simclr_embedder_create(f.ctx, f.enc, 16, 16, &e));
    double v;
    CHECK_OK(simclr_embedder_get(e, SIMCLR_EMBED_RESIZE, &v));
    assert_true(v == 18); /* round(16 / 0.875) */
    CHECK_STATUS(simclr_embedder_set(e, SIMCLR_EMBED_RESIZE, 15), SIMCLR_E_INVALID);
    CHECK_STATUS(simclr_embedder_set(e, SIMCLR_EMBED_BATCH, 2.5), SIMCLR_E_INVALID);
    CHECK_STATUS(simclr_embedder_set(e, (simclr_embed_param)999, 1), SIMCLR_E_INVALID);
    CHECK_OK(simclr_embedder_get(e, SIMCLR_EMBED_RESIZE, &v));
    assert_true(v == 18);
    simclr_image_list *gray, *l;
    CHECK_OK(simclr_image_list_create(f.ctx, 1, &gray));
    CHECK_OK(simclr_image_list_create(f.ctx, 3, &l));
    int64_t os[2] = {1, simclr_module_output_dim(f.enc)};
    simclr_tensor *y;
    CHECK_OK(simclr_tensor_create(f.ctx, SIMCLR_F32, 2, os, &y));
    CHECK_STATUS(simclr_embedder_run(e, l, y), SIMCLR_E_INVALID); /* empty */
    CHECK_OK(simclr_image_list_add(gray, f.px[0], 4, 4));
    CHECK_STATUS(simclr_embedder_run(e, gray, y), SIMCLR_E_SHAPE);
    CHECK_OK(simclr_image_list_add(l, f.px[0], 4, 4));
    CHECK_OK(simclr_image_list_add(l, f.px[0], 4, 4));
    CHECK_STATUS(simclr_embedder_run(e, l, y), SIMCLR_E_SHAPE); /* 2 images, 1 row */
    simclr_tensor_destroy(y);
    simclr_image_list_destroy(gray);
    simclr_image_list_destroy(l);
    simclr_embedder_destroy(e);
    simclr_embedder_destroy(NULL);
    fixture_free(&f);
}

typedef struct worker {
    const fixture *f;
    simclr_context *ctx; /* the thread's own */
    float *out;
    int rounds;
    simclr_status st;
} worker;

static void *embed_thread(void *arg)
{
    worker *wk = arg;
    simclr_embedder *e = NULL;
    simclr_image_list *l = NULL;
    simclr_tensor *y = NULL;
    int64_t os[2] = {N_IMG, simclr_module_output_dim(wk->f->enc)};
    wk->st = simclr_embedder_create(wk->ctx, wk->f->enc, 16, 16, &e);
    if (wk->st == SIMCLR_OK) wk->st = simclr_embedder_set(e, SIMCLR_EMBED_BATCH, 2);
    if (wk->st == SIMCLR_OK) wk->st = simclr_image_list_create(wk->ctx, 3, &l);
    for (int i = 0; i < N_IMG && wk->st == SIMCLR_OK; i++)
        wk->st = simclr_image_list_add(l, wk->f->px[i], wk->f->h[i], wk->f->w[i]);
    if (wk->st == SIMCLR_OK) wk->st = simclr_tensor_wrap(wk->ctx, SIMCLR_F32, 2, os, wk->out, &y);
    for (int r = 0; r < wk->rounds && wk->st == SIMCLR_OK; r++) wk->st = simclr_embedder_run(e, l, y);
    simclr_tensor_destroy(y);
    simclr_image_list_destroy(l);
    simclr_embedder_destroy(e);
    return NULL;
}

static void test_concurrent_equals_sequential(void **state)
{
    (void)state;
    fixture f;
    fixture_make(&f);
    int64_t d = simclr_module_output_dim(f.enc);
    /* sequential reference on the encoder's own context */
    float *ref = malloc((size_t)(N_IMG * d) * sizeof(float));
    worker seq = {&f, f.ctx, ref, 1, SIMCLR_OK};
    embed_thread(&seq);
    CHECK_OK(seq.st);
    worker wk[THREADS];
    pthread_t th[THREADS];
    for (int t = 0; t < THREADS; t++) {
        wk[t] = (worker){&f, NULL, malloc((size_t)(N_IMG * d) * sizeof(float)), 3, SIMCLR_OK};
        CHECK_OK(simclr_context_create(NULL, t % 2 ? 1 : 2, NULL, &wk[t].ctx));
    }
    for (int t = 0; t < THREADS; t++) assert_int_equal(pthread_create(&th[t], NULL, embed_thread, &wk[t]), 0);
    for (int t = 0; t < THREADS; t++) pthread_join(th[t], NULL);
    for (int t = 0; t < THREADS; t++) {
        CHECK_OK(wk[t].st);
        /* 1-thread contexts give the reference's bytes; 2-thread ones split the
         * products differently, so within rounding */
        if (t % 2) assert_memory_equal(wk[t].out, ref, (size_t)(N_IMG * d) * sizeof(float));
        else assert_true(test_norm_err(wk[t].out, ref, N_IMG * d) < 1e-5);
        free(wk[t].out);
        simclr_context_destroy(wk[t].ctx);
    }
    free(ref);
    fixture_free(&f);
}

/* Counts the allocations of at least 1 KB (arenas, workspaces, the input
 * batch; not the small tensor headers a run wraps its slices in) and fills
 * every new block with 0xff bytes, so nothing can lean on fresh memory
 * reading as zero. */
typedef struct {
    long large, live;
} big_count;

static void *big_alloc(void *user, size_t size, size_t align)
{
    big_count *c = user;
    void *p = NULL;
    if (posix_memalign(&p, align, size) != 0) return NULL;
    memset(p, 0xff, size);
    c->large += size >= 1024;
    c->live++;
    return p;
}

static void big_free(void *user, void *ptr)
{
    big_count *c = user;
    c->live--;
    free(ptr);
}

/* Issue 24's soak: a service embeds requests of varying sizes. Requests of
 * 8, 3, 8, 1, 5 images through an embedder of batch 4 (encoder forwards of
 * 4+4, 3, 4+4, 1, 4+1 images): after the first request no workspace, input
 * batch or activation arena is allocated again (before the fix, every
 * change of size replaced the input batch and the encoder's arena), and
 * every request gives the bytes of a fresh embedder's. */
static void test_varying_requests_keep_workspace(void **state)
{
    (void)state;
    enum { MAX_REQ = 8 };
    static const int req[] = {8, 3, 8, 1, 5};
    fixture f;
    fixture_make(&f);
    big_count bc = {0, 0};
    simclr_allocator hooks = {big_alloc, big_free, &bc};
    simclr_context *ctx;
    CHECK_OK(simclr_context_create(NULL, 1, &hooks, &ctx));
    uint8_t *px[MAX_REQ];
    int64_t h[MAX_REQ], w[MAX_REQ];
    uint64_t s = 17;
    for (int i = 0; i < MAX_REQ; i++) {
        h[i] = 9 + (int64_t)(test_rand_next(&s) % 56), w[i] = 9 + (int64_t)(test_rand_next(&s) % 56);
        size_t n = (size_t)(h[i] * w[i] * 3);
        px[i] = malloc(n);
        for (size_t k = 0; k < n; k++) px[i][k] = (uint8_t)(test_rand_next(&s) >> 56);
    }
    /* The first request holds all eight images, so it sizes the resample
     * scratch for the largest. */
    simclr_embedder *e;
    CHECK_OK(simclr_embedder_create(ctx, f.enc, 16, 16, &e));
    CHECK_OK(simclr_embedder_set(e, SIMCLR_EMBED_BATCH, 4));
    int64_t d = simclr_module_output_dim(f.enc);
    for (int r = 0; r < 5; r++) {
        int n = req[r];
        simclr_image_list *l;
        CHECK_OK(simclr_image_list_create(ctx, 3, &l));
        for (int i = 0; i < n; i++) CHECK_OK(simclr_image_list_add(l, px[(i + r) % MAX_REQ], h[(i + r) % MAX_REQ],
                                                                   w[(i + r) % MAX_REQ]));
        int64_t os[2] = {n, d};
        simclr_tensor *y, *fy;
        CHECK_OK(simclr_tensor_create(ctx, SIMCLR_F32, 2, os, &y));
        CHECK_OK(simclr_tensor_create(ctx, SIMCLR_F32, 2, os, &fy));
        long before = bc.large;
        CHECK_OK(simclr_embedder_run(e, l, y));
        long allocated = bc.large - before;
        if (r == 0 && !allocated) fail_msg("the first request allocated no workspace");
        if (r > 0 && allocated)
            fail_msg("request %d (%d images) allocated %ld blocks of 1 KB or more after a request of %d", r, n,
                     allocated, MAX_REQ);
        simclr_embedder *fresh;
        CHECK_OK(simclr_embedder_create(ctx, f.enc, 16, 16, &fresh));
        CHECK_OK(simclr_embedder_set(fresh, SIMCLR_EMBED_BATCH, 4));
        CHECK_OK(simclr_embedder_run(fresh, l, fy));
        const float *yp = simclr_tensor_data(y);
        for (int64_t k = 0; k < n * d; k++)
            if (!isfinite(yp[k])) fail_msg("request %d: feature %lld = %g", r, (long long)k, yp[k]);
        if (memcmp(yp, simclr_tensor_data(fy), simclr_tensor_bytes(y)) != 0)
            fail_msg("request %d (%d images): features differ from a fresh embedder's (normalized %g)", r, n,
                     test_norm_err(yp, simclr_tensor_data(fy), n * d));
        simclr_embedder_destroy(fresh);
        simclr_tensor_destroy(y);
        simclr_tensor_destroy(fy);
        simclr_image_list_destroy(l);
    }
    simclr_embedder_destroy(e);
    simclr_context_destroy(ctx);
    assert_int_equal(bc.live, 0);
    for (int i = 0; i < MAX_REQ; i++) free(px[i]);
    fixture_free(&f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_identity_transform_gives_encoder_features),
        cmocka_unit_test(test_errors),
        cmocka_unit_test(test_concurrent_equals_sequential),
        cmocka_unit_test(test_varying_requests_keep_workspace),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
