/* Supervised fine-tuning (SimCLR v1 section 6, SimCLR v2) as a method of the
 * pipeline (src/train/method.h): one view per image (the policy's view 0,
 * normally SIMCLR_AUG_PRESET_FINETUNE), encoder + head in TRAIN mode (the
 * encoder in EVAL mode without backward when it is frozen), softmax
 * cross-entropy of the head's class logits against the step's labels, no
 * key path, nothing after commit.
 *
 * Freezing follows the optimizer given at creation: one that covers the
 * encoder fine-tunes the whole network; one that covers only the head
 * freezes the encoder (it is then not a trained module: no gradient, no
 * update, EVAL mode so its BN statistics stay as they were). The labels
 * are the caller's, borrowed for the duration of one
 * simclr_trainer_step_labels call. Micro-batches combine (cross-entropy is
 * a sum over rows: the gradient at the whole batch's logits is exact);
 * communicators and image lists are refused for now. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "../loss/loss.h"
#include "../loss/supervised.h"
#include "../model/module.h"
#include "distributed.h"

typedef struct finetune {
    simclr_loss *loss; /* borrowed cross-entropy */
    int classes;
    int frozen;
    const int32_t *labels; /* the current step's (NULL outside simclr_trainer_step_labels) */
} finetune;

static const char *refuse(const void *state, unsigned with)
{
    (void)state;
    if (with & SIMCLR__WITH_RANKS)
        return "does not run on a communicator yet (the labels are not gathered over ranks)";
    if (with & SIMCLR__WITH_LIST) return "takes labelled image tensors (simclr_trainer_step_labels), not image lists";
    return NULL;
}

static void destroy(simclr_context *ctx, void *state) { simclr__free(ctx, state); }

static simclr_status check_batch(const void *state, const char *fn, int64_t n, int64_t n_global)
{
    (void)n, (void)n_global;
    const finetune *f = state;
    if (!f->labels)
        return simclr__fail(SIMCLR_E_INVALID, "%s: a fine-tuning trainer needs labels: use simclr_trainer_step_labels",
                            fn);
    return SIMCLR_OK;
}

static simclr_status bufs_new(simclr_trainer *tr, void *state, int64_t n, int64_t n_global, int64_t c, void **out)
{
    (void)tr, (void)n, (void)c, (void)out;
    finetune *f = state;
    return simclr__supervised_reserve(f->loss, n_global);
}

static simclr_status loss(simclr_trainer *tr, void *state, simclr__step *s, double *value, double *accuracy)
{
    (void)tr;
    finetune *f = state;
    float v = 0, a = 0;
    SIMCLR__TRY(simclr_loss_forward_labels(f->loss, s->z, f->labels, s->n_global, &v, &a));
    *value = simclr__supervised_value(f->loss);
    *accuracy = a;
    if (!isfinite(*value)) return SIMCLR_OK; /* the pipeline refuses it */
    return simclr_loss_backward(f->loss, s->dz);
}

static void arch(const simclr_trainer *tr, const void *state, char *buf, size_t size)
{
    (void)tr;
    const finetune *f = state;
    snprintf(buf, size, "; finetune: classes=%d encoder=%s", f->classes, f->frozen ? "frozen" : "trained");
}

const simclr__method simclr__finetune_method = {
    .version = SIMCLR__METHOD_VERSION,
    .name = "finetune",
    .trained_views = 1,
    .key_views = 0,
    .refuse = refuse,
    .destroy = destroy,
    .check_batch = check_batch,
    .bufs_new = bufs_new,
    .loss = loss,
    .arch = arch,
};

int simclr__finetune_frozen(const simclr_trainer *tr)
{
    return tr->method == &simclr__finetune_method && ((const finetune *)tr->method_state)->frozen;
}

simclr_status simclr_finetune_trainer_create(simclr_context *ctx, simclr_module *encoder, simclr_module *head,
                                             simclr_augment *aug, simclr_loss *loss, simclr_optimizer *opt,
                                             simclr_trainer **out)
{
    static const char fn[] = "simclr_finetune_trainer_create";
    SIMCLR__CHECK_ARG(ctx, fn, "ctx is NULL");
    SIMCLR__CHECK_ARG(encoder, fn, "encoder is NULL");
    SIMCLR__CHECK_ARG(head, fn, "head is NULL");
    SIMCLR__CHECK_ARG(aug, fn, "aug is NULL");
    SIMCLR__CHECK_ARG(loss, fn, "loss is NULL");
    SIMCLR__CHECK_ARG(opt, fn, "opt is NULL");
    SIMCLR__CHECK_ARG(out, fn, "out is NULL");
    if (encoder == head) return simclr__fail(SIMCLR_E_INVALID, "%s: encoder and head are the same module", fn);
    if (encoder->ctx != ctx || head->ctx != ctx || simclr__augment_ctx(aug) != ctx || simclr__loss_ctx(loss) != ctx ||
        opt->ctx != ctx)
        return simclr__fail(SIMCLR_E_INVALID, "%s: %s was made from another context", fn,
                            encoder->ctx != ctx ? "the encoder" : head->ctx != ctx ? "the head"
                            : simclr__augment_ctx(aug) != ctx ? "the augmentation policy"
                            : simclr__loss_ctx(loss) != ctx ? "the loss" : "the optimizer");
    if (head->in_dim != encoder->out_dim)
        return simclr__fail(SIMCLR_E_SHAPE, "%s: head takes %lld features, encoder gives %lld", fn,
                            (long long)head->in_dim, (long long)encoder->out_dim);
    const simclr__loss_ops *ops = simclr__loss_ops_of(loss);
    if (!ops) return simclr__fail(SIMCLR_E_INVALID, "%s: the loss is NT-Xent; fine-tuning takes a cross-entropy loss "
                                                    "(simclr_cross_entropy_create)", fn);
    if (strcmp(ops->kind, "cross-entropy") != 0)
        return simclr__fail(SIMCLR_E_UNSUPPORTED, "%s: a %s loss needs a teacher, and the teacher step "
                                                  "(distillation) is not implemented yet; fine-tuning takes a "
                                                  "cross-entropy loss", fn, ops->kind);
    double classes = 0;
    SIMCLR__TRY(simclr_loss_get(loss, SIMCLR_LOSS_CLASSES, &classes));
    if (head->out_dim != (int64_t)classes)
        return simclr__fail(SIMCLR_E_SHAPE, "%s: the head gives %lld class logits, the loss has %d classes", fn,
                            (long long)head->out_dim, (int)classes);
    /* Freezing follows the optimizer: it covers every encoder parameter
     * (fine-tune all) or none (frozen encoder). */
    int covered = 0, total = 0;
    for (int i = 0; i < encoder->n_params; i++) {
        const simclr__param *p = &encoder->params[i];
        if (p->flags & SIMCLR_PARAM_BUFFER) continue;
        total++;
        for (int q = 0; q < opt->n_slots; q++)
            if (opt->slots[q].value == p->value) {
                covered++;
                break;
            }
    }
    if (covered != 0 && covered != total)
        return simclr__fail(SIMCLR_E_INVALID,
                            "%s: the optimizer covers %d of the encoder's %d parameters: create it over encoder and "
                            "head (fine-tune all) or over the head only (frozen encoder)", fn, covered, total);
    const int frozen = total > 0 && covered == 0;
    simclr_trainer probe = {.encoder = encoder, .head = head, .opt = opt};
    simclr__trainer_add_module(&probe, encoder, "encoder.", !frozen);
    simclr__trainer_add_module(&probe, head, "head.", 1);
    SIMCLR__TRY(simclr__trainer_check_coverage(&probe, fn));
    simclr_trainer *tr = simclr__calloc(ctx, 1, sizeof *tr);
    if (!tr) return simclr__nomem(fn, sizeof *tr);
    *tr = probe;
    tr->ctx = ctx, tr->aug = aug, tr->method = &simclr__finetune_method;
    finetune *f = simclr__calloc(ctx, 1, sizeof *f);
    if (!f) {
        simclr__free(ctx, tr);
        return simclr__nomem(fn, sizeof *f);
    }
    *f = (finetune){.loss = loss, .classes = (int)classes, .frozen = frozen};
    tr->method_state = f;
    simclr_status st = simclr__trainer_finish(tr, fn);
    if (st != SIMCLR_OK) {
        simclr_trainer_destroy(tr);
        return st;
    }
    *out = tr;
    return SIMCLR_OK;
}

simclr_status simclr_trainer_step_labels(simclr_trainer *tr, const simclr_tensor *images, const int32_t *labels,
                                         int64_t n_labels, uint64_t seed, float *loss)
{
    static const char fn[] = "simclr_trainer_step_labels";
    SIMCLR__CHECK_ARG(tr, fn, "trainer is NULL");
    SIMCLR__CHECK_ARG(labels, fn, "labels is NULL");
    if (tr->method != &simclr__finetune_method)
        return simclr__fail(SIMCLR_E_INVALID, "%s: a %s trainer takes no labels (simclr_trainer_step)", fn,
                            tr->method->name);
    int64_t want[4] = {-1, -1, -1, tr->encoder->in_dim};
    SIMCLR__TRY(simclr__tensor_expect(images, fn, "images", SIMCLR_U8, 4, want));
    const int64_t n = images->dims[0];
    if (n_labels != n)
        return simclr__fail(SIMCLR_E_SHAPE, "%s: %lld labels for %lld images", fn, (long long)n_labels, (long long)n);
    finetune *f = tr->method_state;
    for (int64_t i = 0; i < n; i++)
        if (labels[i] < 0 || labels[i] >= f->classes)
            return simclr__fail(SIMCLR_E_INVALID, "%s: labels[%lld] = %d is outside 0..%d", fn, (long long)i,
                                (int)labels[i], f->classes - 1);
    f->labels = labels;
    simclr_status st = simclr__pipeline_step(tr, images, NULL, seed, loss);
    f->labels = NULL;
    return st;
}
