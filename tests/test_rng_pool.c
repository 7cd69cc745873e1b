/* Philox against the Random123 known-answer vectors, the purity of draws,
 * their distribution, and the thread pool's coverage of a range. */
#include "test_util.h"

#include "core/context.h"
#include "core/pool.h"
#include "core/rng.h"

static void test_philox_known_answers(void **state)
{
    (void)state;
    /* Random123 kat_vectors for philox4x32_10. */
    struct { uint32_t ctr[4]; uint64_t key; uint32_t out[4]; } kat[] = {
        {{0, 0, 0, 0}, 0, {0x6627e8d5u, 0xe169c58du, 0xbc57ac4cu, 0x9b00dbd8u}},
        {{0xffffffffu, 0xffffffffu, 0xffffffffu, 0xffffffffu}, 0xffffffffffffffffull,
         {0x408f276du, 0x41c83b0eu, 0xa20bc7c6u, 0x6d5451fdu}},
        {{0x243f6a88u, 0x85a308d3u, 0x13198a2eu, 0x03707344u}, 0x299f31d0a4093822ull,
         {0xd16cfe09u, 0x94fdccebu, 0x5001e420u, 0x24126ea1u}},
    };
    for (size_t i = 0; i < sizeof kat / sizeof kat[0]; i++) {
        uint32_t out[4];
        simclr__philox4x32(kat[i].ctr, kat[i].key, out);
        for (int j = 0; j < 4; j++) assert_int_equal(out[j], kat[i].out[j]);
    }
}

static void test_rng_pure(void **state)
{
    (void)state;
    simclr__rng a, b, c;
    simclr__rng_init(&a, 42, 3, 7);
    simclr__rng_init(&b, 42, 3, 7);
    simclr__rng_init(&c, 42, 3, 8);
    int differ = 0;
    for (int i = 0; i < 100; i++) {
        uint32_t x = simclr__rng_u32(&a), y = simclr__rng_u32(&b), z = simclr__rng_u32(&c);
        assert_int_equal(x, y);
        differ += x != z;
    }
    assert_true(differ > 95);
    /* Another stream or seed gives another sequence. */
    simclr__rng_init(&a, 42, 4, 7);
    simclr__rng_init(&b, 43, 3, 7);
    simclr__rng_init(&c, 42, 3, 7);
    assert_int_not_equal(simclr__rng_u32(&a), simclr__rng_u32(&c));
    simclr__rng_init(&c, 42, 3, 7);
    assert_int_not_equal(simclr__rng_u32(&b), simclr__rng_u32(&c));
}

static void test_rng_distribution(void **state)
{
    (void)state;
    simclr__rng r;
    simclr__rng_init(&r, 1, SIMCLR__STREAM_TEST, 0);
    const int n = 200000;
    double s = 0, s2 = 0, ns = 0, ns2 = 0;
    int buckets[10] = {0};
    for (int i = 0; i < n; i++) {
        double u = simclr__rng_uniform_d(&r);
        assert_true(u >= 0 && u < 1);
        float f = simclr__rng_uniform(&r);
        assert_true(f >= 0 && f < 1);
        s += u, s2 += u * u;
        buckets[(int)(u * 10)]++;
        double g = simclr__rng_normal(&r);
        ns += g, ns2 += g * g;
        uint32_t k = simclr__rng_below(&r, 7);
        assert_true(k < 7);
    }
    /* Means within 5 standard errors. */
    assert_true(fabs(s / n - 0.5) < 5 * sqrt(1.0 / 12 / n));
    assert_true(fabs(s2 / n - 1.0 / 3) < 0.005);
    assert_true(fabs(ns / n) < 5 / sqrt((double)n));
    assert_true(fabs(ns2 / n - 1) < 0.02);
    for (int b = 0; b < 10; b++) assert_true(abs(buckets[b] - n / 10) < 5 * (int)sqrt(n * 0.09));
}

typedef struct { int *hits; int workers_seen[8]; } cover_job;

static void cover_task(void *arg, int64_t b, int64_t e, int w)
{
    cover_job *j = arg;
    for (int64_t i = b; i < e; i++) j->hits[i]++;
    j->workers_seen[w] = 1;
}

static void test_pool_covers_range(void **state)
{
    (void)state;
    simclr_context *ctx;
    assert_int_equal(simclr_context_create("cpu", 3, NULL, &ctx), SIMCLR_OK);
    const int64_t sizes[] = {1, 2, 3, 10, 1001};
    for (size_t s = 0; s < 5; s++) {
        for (int rep = 0; rep < 50; rep++) {
            int64_t n = sizes[s];
            cover_job j = {calloc((size_t)n, sizeof(int)), {0}};
            simclr__pool_for(ctx->pool, n, 1, cover_task, &j);
            for (int64_t i = 0; i < n; i++) assert_int_equal(j.hits[i], 1);
            if (n >= 3) assert_true(j.workers_seen[0] && j.workers_seen[1] && j.workers_seen[2]);
            free(j.hits);
        }
    }
    simclr_context_destroy(ctx);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_philox_known_answers),
        cmocka_unit_test(test_rng_pure),
        cmocka_unit_test(test_rng_distribution),
        cmocka_unit_test(test_pool_covers_range),
    };
    return cmocka_run_group_tests_name("rng_pool", tests, NULL, NULL);
}
