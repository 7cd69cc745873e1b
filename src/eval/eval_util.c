#include "eval_util.h"

#include <math.h>

static simclr_status check_labels(const char *fn, const char *what, const int32_t *labels, int64_t n, int n_classes)
{
    if (!labels) return simclr__fail(SIMCLR_E_INVALID, "%s: %s is NULL", fn, what);
    for (int64_t i = 0; i < n; i++)
        if (labels[i] < 0 || labels[i] >= n_classes)
            return simclr__fail(SIMCLR_E_INVALID, "%s: %s[%lld] = %d out of range 0..%d", fn, what, (long long)i,
                                (int)labels[i], n_classes - 1);
    return SIMCLR_OK;
}

static simclr_status check_finite(const char *fn, const char *what, const simclr_tensor *t)
{
    const float *x = simclr__f32(t);
    for (int64_t i = 0; i < t->numel; i++)
        if (!isfinite(x[i]))
            return simclr__fail(SIMCLR_E_NUMERIC, "%s: %s holds a non-finite value at row %lld", fn, what,
                                (long long)(i / t->dims[1]));
    return SIMCLR_OK;
}

simclr_status simclr__eval_check(const char *fn, const simclr_tensor *train, const int32_t *train_labels,
                                 const simclr_tensor *test, const int32_t *test_labels, int n_classes,
                                 int min_classes)
{
    int64_t any[2] = {-1, -1};
    SIMCLR__TRY(simclr__tensor_expect(train, fn, "train", SIMCLR_F32, 2, any));
    int64_t same_d[2] = {-1, train->dims[1]};
    SIMCLR__TRY(simclr__tensor_expect(test, fn, "test", SIMCLR_F32, 2, same_d));
    if (n_classes < min_classes || n_classes > 1000000)
        return simclr__fail(SIMCLR_E_INVALID, "%s: n_classes %d out of range %d..1000000", fn, n_classes, min_classes);
    SIMCLR__TRY(check_labels(fn, "train_labels", train_labels, train->dims[0], n_classes));
    SIMCLR__TRY(check_labels(fn, "test_labels", test_labels, test->dims[0], n_classes));
    SIMCLR__TRY(check_finite(fn, "train", train));
    return check_finite(fn, "test", test);
}

simclr_status simclr__eval_check_lengths(const char *fn, const simclr_tensor *train, int64_t n_train_labels,
                                         const simclr_tensor *test, int64_t n_test_labels)
{
    int64_t any[2] = {-1, -1};
    SIMCLR__TRY(simclr__tensor_expect(train, fn, "train", SIMCLR_F32, 2, any));
    SIMCLR__TRY(simclr__tensor_expect(test, fn, "test", SIMCLR_F32, 2, any));
    if (n_train_labels != train->dims[0])
        return simclr__fail(SIMCLR_E_SHAPE, "%s: %lld train labels for %lld train rows", fn, (long long)n_train_labels,
                            (long long)train->dims[0]);
    if (n_test_labels != test->dims[0])
        return simclr__fail(SIMCLR_E_SHAPE, "%s: %lld test labels for %lld test rows", fn, (long long)n_test_labels,
                            (long long)test->dims[0]);
    return SIMCLR_OK;
}
