/* The linear probe's fit, shared by simclr_linear_probe and
 * simclr_linear_probe_select (which fits it once per weight decay of its
 * grid on a validation split, then once more on every train row). */
#ifndef SIMCLR_EVAL_PROBE_H
#define SIMCLR_EVAL_PROBE_H

#include "eval_util.h"

/* Rows of a fit: the classifier trains on x [n, d] with labels y and is
 * scored on xt [nt, d] with labels yt; k classes. Arguments already checked. */
typedef struct simclr__probe_data {
    const float *x;
    const int32_t *y;
    int64_t n;
    const float *xt;
    const int32_t *yt;
    int64_t nt;
    int64_t d, k;
} simclr__probe_data;

/* How a fit reports: messages name fn; progress `what` with done counted
 * from `done` (iterations of earlier fits of the call) out of `total` (a
 * stop request is honoured at every report but the call's last);
 * warn_constant: log the constant-feature warning. */
typedef struct simclr__probe_report {
    const char *fn;
    const char *what;
    int64_t done, total;
    int warn_constant;
} simclr__probe_report;

/* epochs 1..100000; a weight decay finite and >= 0, named weight_decay in
 * the message (index < 0) or decays[index]. SIMCLR_E_INVALID. */
simclr_status simclr__probe_check_epochs(const char *fn, int epochs);
simclr_status simclr__probe_check_decay(const char *fn, int64_t index, double weight_decay);

/* Floats of the workspace of a fit with d features, k classes and at most
 * `rows` rows in the fitted and in the scored set (one block, reusable for
 * every fit that fits in it). */
size_t simclr__probe_floats(int64_t d, int64_t k, int64_t rows);

/* One fit in mem (simclr__probe_floats(d, k, max(n, nt)) floats at least):
 * *correct = scored rows predicted right. SIMCLR_E_CANCELLED or
 * SIMCLR_E_NUMERIC (diverged weights) with the message set. Its workspace
 * is mem, the caller's to free either way. */
simclr_status simclr__probe_fit(simclr_context *ctx, float *mem, const simclr__probe_data *data, int epochs,
                                double weight_decay, const simclr__probe_report *rep, int64_t *correct);

#endif
