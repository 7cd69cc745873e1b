/* Version, errors, context, tensors: the API's base and its bad-input paths. */
#include "test_util.h"

static void test_version(void **state)
{
    (void)state;
    assert_int_equal(simclr_version_number(), SIMCLR_VERSION_NUMBER);
    char buf[32];
    snprintf(buf, sizeof buf, "%d.%d.%d", SIMCLR_VERSION_MAJOR, SIMCLR_VERSION_MINOR, SIMCLR_VERSION_PATCH);
    assert_string_equal(simclr_version_string(), buf);
}

static void test_status_strings(void **state)
{
    (void)state;
    for (int s = SIMCLR_OK; s <= SIMCLR_E_INTERNAL; s++) {
        const char *txt = simclr_status_string((simclr_status)s);
        assert_non_null(txt);
        assert_true(strlen(txt) > 0);
        assert_string_not_equal(txt, "unknown status");
    }
    assert_string_equal(simclr_status_string((simclr_status)12345), "unknown status");
}

static void test_backends(void **state)
{
    (void)state;
    assert_int_equal(simclr_backend_count(), 2);
    int have_cpu = 0, have_ref = 0;
    for (int i = 0; i < simclr_backend_count(); i++) {
        have_cpu |= strcmp(simclr_backend_name(i), "cpu") == 0;
        have_ref |= strcmp(simclr_backend_name(i), "ref") == 0;
    }
    assert_true(have_cpu && have_ref);
    assert_null(simclr_backend_name(-1));
    assert_null(simclr_backend_name(2));
}

static void test_context(void **state)
{
    (void)state;
    simclr_context *ctx = NULL;
    CHECK_OK(simclr_context_create(NULL, 0, NULL, &ctx));
    assert_string_equal(simclr_context_backend(ctx), "cpu");
    assert_true(simclr_context_threads(ctx) >= 1);
    simclr_context_destroy(ctx);

    CHECK_OK(simclr_context_create("ref", 3, NULL, &ctx));
    assert_string_equal(simclr_context_backend(ctx), "ref");
    assert_int_equal(simclr_context_threads(ctx), 3);
    simclr_context_destroy(ctx);

    ctx = (simclr_context *)0x1;
    CHECK_STATUS(simclr_context_create("gpu", 1, NULL, &ctx), SIMCLR_E_UNSUPPORTED);
    assert_ptr_equal(ctx, (simclr_context *)0x1); /* out untouched on error */
    assert_non_null(strstr(simclr_last_error(), "gpu"));
    CHECK_STATUS(simclr_context_create(NULL, -1, NULL, &ctx), SIMCLR_E_INVALID);
    CHECK_STATUS(simclr_context_create(NULL, 1000, NULL, &ctx), SIMCLR_E_INVALID);
    CHECK_STATUS(simclr_context_create(NULL, 1, NULL, NULL), SIMCLR_E_INVALID);
    simclr_allocator bad = {NULL, NULL, NULL};
    CHECK_STATUS(simclr_context_create(NULL, 1, &bad, &ctx), SIMCLR_E_INVALID);
    simclr_context_destroy(NULL);
    assert_null(simclr_context_backend(NULL));
    assert_int_equal(simclr_context_threads(NULL), 0);
    CHECK_STATUS(simclr_context_set_log(NULL, NULL, NULL, SIMCLR_LOG_INFO), SIMCLR_E_INVALID);
    CHECK_STATUS(simclr_context_set_progress(NULL, NULL, NULL), SIMCLR_E_INVALID);
}

/* SIMCLR_ISA: a narrower copy on request, the machine's widest by default,
 * never a wider one than the CPU runs, a clear error for a misspelling. */
static void test_isa_switch(void **state)
{
    (void)state;
    static const char *const isas[] = {"portable", "avx2", "avx512"};
    const char *widest = "portable";
    for (int i = 0; i < 3; i++)
        if (simclr_isa_supported(isas[i])) widest = isas[i];
    assert_true(simclr_isa_supported("portable"));
    assert_false(simclr_isa_supported("sse9"));
    assert_false(simclr_isa_supported(NULL));
    simclr_context *ctx;
    unsetenv("SIMCLR_ISA");
    CHECK_OK(simclr_context_create("cpu", 1, NULL, &ctx));
    assert_string_equal(simclr_context_isa(ctx), widest);
    simclr_context_destroy(ctx);
    for (int i = 0; i < 3; i++) {
        setenv("SIMCLR_ISA", isas[i], 1);
        CHECK_OK(simclr_context_create("cpu", 1, NULL, &ctx));
        /* Capped at the machine's widest: avx512 on an AVX2 machine runs avx2. */
        assert_string_equal(simclr_context_isa(ctx), simclr_isa_supported(isas[i]) ? isas[i] : widest);
        simclr_context_destroy(ctx);
        CHECK_OK(simclr_context_create("ref", 1, NULL, &ctx));
        assert_string_equal(simclr_context_isa(ctx), "portable");
        simclr_context_destroy(ctx);
    }
    setenv("SIMCLR_ISA", "avx3", 1);
    ctx = (simclr_context *)&ctx;
    assert_int_equal(simclr_context_create("cpu", 1, NULL, &ctx), SIMCLR_E_INVALID);
    assert_ptr_equal(ctx, (simclr_context *)&ctx); /* output untouched */
    assert_non_null(strstr(simclr_last_error(), "SIMCLR_ISA='avx3'"));
    assert_non_null(strstr(simclr_last_error(), "simclr_context_create"));
    setenv("SIMCLR_ISA", "", 1); /* empty: as if unset */
    CHECK_OK(simclr_context_create("cpu", 1, NULL, &ctx));
    assert_string_equal(simclr_context_isa(ctx), widest);
    simclr_context_destroy(ctx);
    unsetenv("SIMCLR_ISA");
    assert_null(simclr_context_isa(NULL));
}

#ifdef SIMCLR_OPENBLAS
void openblas_set_num_threads(int num_threads);
int openblas_get_num_threads(void);
#endif

/* OpenBLAS's process-wide thread count: 1 while a cpu context lives, the
 * host's count back after the last goes; a count the host sets meanwhile
 * is kept. */
static void test_openblas_threads_restored(void **state)
{
    (void)state;
#ifdef SIMCLR_OPENBLAS
    openblas_set_num_threads(2);
    assert_int_equal(openblas_get_num_threads(), 2);
    simclr_context *a, *b, *r;
    CHECK_OK(simclr_context_create("cpu", 2, NULL, &a));
    assert_int_equal(openblas_get_num_threads(), 1);
    CHECK_OK(simclr_context_create("cpu", 1, NULL, &b));
    CHECK_OK(simclr_context_create("ref", 1, NULL, &r));
    simclr_context_destroy(a);
    assert_int_equal(openblas_get_num_threads(), 1); /* b still lives */
    simclr_context_destroy(r);
    simclr_context_destroy(b);
    assert_int_equal(openblas_get_num_threads(), 2);
    /* The host raised it while a context lived: its value stays. */
    CHECK_OK(simclr_context_create("cpu", 1, NULL, &a));
    openblas_set_num_threads(3);
    simclr_context_destroy(a);
    assert_int_equal(openblas_get_num_threads(), 3);
    openblas_set_num_threads(1);
#else
    skip();
#endif
}

static void test_tensor_basics(void **state)
{
    (void)state;
    simclr_context *ctx;
    CHECK_OK(simclr_context_create("ref", 1, NULL, &ctx));
    simclr_tensor *t;
    int64_t shape[4] = {2, 3, 4, 5};
    CHECK_OK(simclr_tensor_create(ctx, SIMCLR_F32, 4, shape, &t));
    assert_int_equal(simclr_tensor_ndim(t), 4);
    for (int i = 0; i < 4; i++) assert_int_equal(simclr_tensor_dim(t, i), shape[i]);
    assert_int_equal(simclr_tensor_dim(t, 4), 0);
    assert_int_equal(simclr_tensor_dim(t, -1), 0);
    assert_int_equal(simclr_tensor_numel(t), 120);
    assert_int_equal(simclr_tensor_bytes(t), 480);
    assert_int_equal(simclr_tensor_dtype(t), SIMCLR_F32);
    float *d = simclr_tensor_data(t);
    for (int i = 0; i < 120; i++) assert_true(d[i] == 0.0f); /* zeroed */

    float src[120], dst[120];
    for (int i = 0; i < 120; i++) src[i] = (float)i;
    CHECK_OK(simclr_tensor_copy_from(t, src, sizeof src));
    CHECK_OK(simclr_tensor_copy_to(t, dst, sizeof dst));
    assert_memory_equal(src, dst, sizeof src);
    CHECK_STATUS(simclr_tensor_copy_from(t, src, sizeof src - 4), SIMCLR_E_SHAPE);
    CHECK_STATUS(simclr_tensor_copy_to(t, dst, sizeof dst + 4), SIMCLR_E_SHAPE);
    CHECK_STATUS(simclr_tensor_copy_from(t, NULL, sizeof src), SIMCLR_E_INVALID);
    CHECK_STATUS(simclr_tensor_copy_to(NULL, dst, sizeof dst), SIMCLR_E_INVALID);

    int64_t flat[2] = {6, 20};
    CHECK_OK(simclr_tensor_reshape(t, 2, flat));
    assert_int_equal(simclr_tensor_dim(t, 1), 20);
    int64_t wrong[2] = {7, 20};
    CHECK_STATUS(simclr_tensor_reshape(t, 2, wrong), SIMCLR_E_SHAPE);
    assert_int_equal(simclr_tensor_dim(t, 0), 6); /* unchanged */
    simclr_tensor_destroy(t);
    simclr_tensor_destroy(NULL);

    /* Accessors on NULL. */
    assert_int_equal(simclr_tensor_ndim(NULL), 0);
    assert_int_equal(simclr_tensor_numel(NULL), 0);
    assert_int_equal(simclr_tensor_bytes(NULL), 0);
    assert_int_equal(simclr_tensor_dtype(NULL), -1);
    assert_null(simclr_tensor_data(NULL));
    simclr_context_destroy(ctx);
}

static void test_tensor_wrap(void **state)
{
    (void)state;
    simclr_context *ctx;
    CHECK_OK(simclr_context_create("ref", 1, NULL, &ctx));
    uint8_t buf[2 * 3 * 3];
    memset(buf, 7, sizeof buf);
    int64_t shape[3] = {2, 3, 3};
    simclr_tensor *t;
    CHECK_OK(simclr_tensor_wrap(ctx, SIMCLR_U8, 3, shape, buf, &t));
    assert_ptr_equal(simclr_tensor_data(t), buf); /* zero-copy */
    assert_int_equal(simclr_tensor_bytes(t), 18);
    simclr_tensor_destroy(t);
    assert_int_equal(buf[0], 7); /* the caller's buffer survives */
    CHECK_STATUS(simclr_tensor_wrap(ctx, SIMCLR_U8, 3, shape, NULL, &t), SIMCLR_E_INVALID);
    float f[4];
    int64_t s1 = 3;
    CHECK_STATUS(simclr_tensor_wrap(ctx, SIMCLR_F32, 1, &s1, (char *)f + 1, &t), SIMCLR_E_INVALID);
    simclr_context_destroy(ctx);
}

static void test_tensor_bad_shapes(void **state)
{
    (void)state;
    simclr_context *ctx;
    CHECK_OK(simclr_context_create("ref", 1, NULL, &ctx));
    simclr_tensor *t = (simclr_tensor *)0x1;
    int64_t zero[2] = {3, 0}, neg[2] = {-1, 2}, huge[2] = {(int64_t)1 << 40, (int64_t)1 << 40};
    int64_t ok[5] = {1, 1, 1, 1, 1};
    CHECK_STATUS(simclr_tensor_create(ctx, SIMCLR_F32, 2, zero, &t), SIMCLR_E_INVALID);
    CHECK_STATUS(simclr_tensor_create(ctx, SIMCLR_F32, 2, neg, &t), SIMCLR_E_INVALID);
    CHECK_STATUS(simclr_tensor_create(ctx, SIMCLR_F32, 2, huge, &t), SIMCLR_E_SHAPE);
    assert_non_null(strstr(simclr_last_error(), "overflow"));
    CHECK_STATUS(simclr_tensor_create(ctx, SIMCLR_F32, 5, ok, &t), SIMCLR_E_INVALID);
    CHECK_STATUS(simclr_tensor_create(ctx, SIMCLR_F32, 0, ok, &t), SIMCLR_E_INVALID);
    CHECK_STATUS(simclr_tensor_create(ctx, (simclr_dtype)9, 1, ok, &t), SIMCLR_E_INVALID);
    CHECK_STATUS(simclr_tensor_create(ctx, SIMCLR_F32, 1, NULL, &t), SIMCLR_E_INVALID);
    CHECK_STATUS(simclr_tensor_create(NULL, SIMCLR_F32, 1, ok, &t), SIMCLR_E_INVALID);
    CHECK_STATUS(simclr_tensor_create(ctx, SIMCLR_F32, 1, ok, NULL), SIMCLR_E_INVALID);
    assert_ptr_equal(t, (simclr_tensor *)0x1);
    simclr_context_destroy(ctx);
}

/* Every creating call, with the Nth allocation failing for N = 1, 2, ...
 * until it succeeds: each failure is SIMCLR_E_NOMEM with nothing leaked. */
static void test_oom_sweep(void **state)
{
    (void)state;
    int succeeded = 0;
    for (long n = 1; n < 100 && !succeeded; n++) {
        test_alloc a = {0};
        a.fail_at = n;
        simclr_allocator h = test_allocator(&a);
        simclr_context *ctx = NULL;
        simclr_status st = simclr_context_create("cpu", 2, &h, &ctx);
        if (st != SIMCLR_OK) {
            assert_int_equal(st, SIMCLR_E_NOMEM);
            assert_int_equal(a.live, 0);
            continue;
        }
        simclr_tensor *t = NULL;
        int64_t shape[2] = {4, 4};
        st = simclr_tensor_create(ctx, SIMCLR_F32, 2, shape, &t);
        if (st != SIMCLR_OK) assert_int_equal(st, SIMCLR_E_NOMEM);
        else succeeded = 1;
        simclr_tensor_destroy(t);
        simclr_context_destroy(ctx);
        assert_int_equal(a.live, 0);
    }
    assert_true(succeeded);
}

static void test_allocator_used(void **state)
{
    (void)state;
    test_alloc a = {0};
    simclr_allocator h = test_allocator(&a);
    simclr_context *ctx;
    CHECK_OK(simclr_context_create("cpu", 2, &h, &ctx));
    long before = a.allocs;
    simclr_tensor *t;
    int64_t n = 10;
    CHECK_OK(simclr_tensor_create(ctx, SIMCLR_U8, 1, &n, &t));
    assert_true(a.allocs > before);
    simclr_tensor_destroy(t);
    simclr_context_destroy(ctx);
    assert_int_equal(a.live, 0);
    assert_int_equal(a.allocs, a.frees);
}

static void test_error_thread_local(void **state)
{
    (void)state;
    simclr_context *ctx;
    CHECK_STATUS(simclr_context_create("nope", 1, NULL, &ctx), SIMCLR_E_UNSUPPORTED);
    const char *msg = simclr_last_error();
    assert_non_null(strstr(msg, "simclr_context_create"));
    CHECK_OK(simclr_context_create("ref", 1, NULL, &ctx)); /* success keeps the old message */
    assert_non_null(strstr(simclr_last_error(), "nope"));
    simclr_context_destroy(ctx);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_version),          cmocka_unit_test(test_status_strings),
        cmocka_unit_test(test_backends),         cmocka_unit_test(test_context),
        cmocka_unit_test(test_isa_switch),       cmocka_unit_test(test_openblas_threads_restored),
        cmocka_unit_test(test_tensor_basics),    cmocka_unit_test(test_tensor_wrap),
        cmocka_unit_test(test_tensor_bad_shapes), cmocka_unit_test(test_oom_sweep),
        cmocka_unit_test(test_allocator_used),   cmocka_unit_test(test_error_thread_local),
    };
    return cmocka_run_group_tests_name("core", tests, NULL, NULL);
}
