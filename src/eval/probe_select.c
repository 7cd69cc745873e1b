/* The linear probe with its weight decay chosen on held-out train rows:
 * for every decay of a grid, fit on the first four fifths of the train rows
 * and score on the last fifth; keep the best (ties: the first in the grid);
 * refit on every train row with it and score the test set. The fits run in
 * place on the caller's rows (the split is a prefix and a suffix of train),
 * in one workspace allocated before the first. */
#include "../core/error.h"
#include "probe.h"

/* 1e-5 .. 1e-1: covers learned features (little decay) to raw pixels (more). */
static const double default_grid[] = {1e-5, 1e-4, 1e-3, 1e-2, 3e-2, 1e-1};
enum { DEFAULT_GRID = (int)(sizeof default_grid / sizeof default_grid[0]), MAX_DECAYS = 1000 };

simclr_status simclr_linear_probe_select(simclr_context *ctx, const simclr_tensor *train,
                                         const int32_t *train_labels, int64_t n_train_labels,
                                         const simclr_tensor *test, const int32_t *test_labels,
                                         int64_t n_test_labels, int n_classes, int epochs, const double *decays,
                                         int n_decays, double *top1, double *chosen_decay)
{
    static const char fn[] = "simclr_linear_probe_select";
    SIMCLR__CHECK_ARG(ctx, fn, "ctx is NULL");
    SIMCLR__CHECK_ARG(top1, fn, "top1 is NULL");
    SIMCLR__TRY(simclr__eval_check_lengths(fn, train, n_train_labels, test, n_test_labels));
    SIMCLR__TRY(simclr__eval_check(fn, train, train_labels, test, test_labels, n_classes, 2));
    if (n_decays < 0 || n_decays > MAX_DECAYS)
        return simclr__fail(SIMCLR_E_INVALID, "%s: n_decays %d out of range 0..%d (0 = the default grid)", fn,
                            n_decays, MAX_DECAYS);
    if (n_decays > 0 && !decays)
        return simclr__fail(SIMCLR_E_INVALID, "%s: decays is NULL with n_decays %d", fn, n_decays);
    const double *grid = n_decays ? decays : default_grid;
    int64_t n_grid = n_decays ? n_decays : DEFAULT_GRID;
    SIMCLR__TRY(simclr__probe_check_epochs(fn, epochs));
    for (int64_t i = 0; i < n_grid; i++) SIMCLR__TRY(simclr__probe_check_decay(fn, i, grid[i]));
    /* fit rows [0, cut), validation rows [cut, n): cut = floor(4 n / 5) */
    int64_t n = train->dims[0], d = train->dims[1], nte = test->dims[0], cut = n - (n + 4) / 5;
    if (cut < 1 || n - cut < 1)
        return simclr__fail(SIMCLR_E_SHAPE,
                            "%s: %lld train rows cannot be split into fit and validation rows (need at least 2)", fn,
                            (long long)n);
    int64_t rows = n > nte ? n : nte;
    size_t floats = simclr__probe_floats(d, n_classes, rows);
    float *mem = simclr__malloc(ctx, floats * sizeof(float));
    if (!mem) return simclr__nomem(fn, floats * sizeof(float));

    const float *x = simclr__f32(train);
    simclr__probe_data val = {x, train_labels, cut, x + cut * d, train_labels + cut, n - cut, d, n_classes};
    simclr__probe_report rep = {fn, "probe_select", 0, (n_grid + 1) * (int64_t)epochs, 0};
    simclr_status st = SIMCLR_OK;
    int64_t best = -1, correct = 0;
    double best_decay = grid[0];
    for (int64_t i = 0; i < n_grid && st == SIMCLR_OK; i++, rep.done += epochs) {
        st = simclr__probe_fit(ctx, mem, &val, epochs, grid[i], &rep, &correct);
        if (st == SIMCLR_OK && correct > best) best = correct, best_decay = grid[i];
    }
    if (st == SIMCLR_OK) {
        simclr__probe_data all = {x, train_labels, n, simclr__f32(test), test_labels, nte, d, n_classes};
        rep.warn_constant = 1;
        st = simclr__probe_fit(ctx, mem, &all, epochs, best_decay, &rep, &correct);
    }
    simclr__free(ctx, mem);
    if (st != SIMCLR_OK) return st;
    simclr__log(ctx, SIMCLR_LOG_INFO, "%s: weight_decay %g chosen (%lld of %lld validation rows right)", fn,
                best_decay, (long long)best, (long long)(n - cut));
    *top1 = (double)correct / (double)nte;
    if (chosen_decay) *chosen_decay = best_decay;
    return SIMCLR_OK;
}
