/* Argument checks shared by the kNN monitor and the linear probe. */
#ifndef SIMCLR_EVAL_UTIL_H
#define SIMCLR_EVAL_UTIL_H

#include "../core/context.h"
#include "../core/tensor.h"

/* train F32 [Ntr, D], test F32 [Nte, D] (same D), labels in [0, n_classes),
 * every feature finite (else SIMCLR_E_NUMERIC). */
simclr_status simclr__eval_check(const char *fn, const simclr_tensor *train, const int32_t *train_labels,
                                 const simclr_tensor *test, const int32_t *test_labels, int n_classes,
                                 int min_classes);

/* The label-array lengths of the _n variants: each must equal its tensor's
 * rows (SIMCLR_E_SHAPE); the tensors themselves are checked as usual. */
simclr_status simclr__eval_check_lengths(const char *fn, const simclr_tensor *train, int64_t n_train_labels,
                                         const simclr_tensor *test, int64_t n_test_labels);

#endif
