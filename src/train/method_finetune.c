/* Supervised fine-tuning (SimCLR v1 section 6, SimCLR v2) as a method of the
 * pipeline (src/train/method.h): one view per image (the policy's view 0,
 * normally SIMCLR_AUG_PRESET_FINETUNE), encoder + head in TRAIN mode (the
 * encoder in EVAL mode without backward when it is frozen), softmax
 * cross-entropy of the head's class logits against the step's labels, or,
 * with a distillation loss, the distillation loss against a teacher's logits
 * (the teacher runs in EVAL mode without gradient over the same views, in
 * the pipeline's key phase), nothing after commit.
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
    simclr_loss *loss; /* borrowed cross-entropy or distillation loss */
    int classes;
    int frozen;
    int distill; /* the loss is a distillation loss: steps take a teacher */
    /* Lent by the current step call (NULL outside it): its labels (NULL for
     * a distillation step without labels), and for distillation its images,
     * the teacher modules and the teacher's scratch (made by the call). */
    int in_step;
    const int32_t *labels;
    int64_t n_labels;
    const simclr_tensor *images;
    simclr_module *t_enc, *t_head;
    simclr_tensor *t_views, *t_feat, *t_logits;
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
    if (!f->in_step)
        return simclr__fail(SIMCLR_E_INVALID, "%s: a fine-tuning trainer needs labels: use %s", fn,
                            f->distill ? "simclr_trainer_step_distill" : "simclr_trainer_step_labels");
    return SIMCLR_OK;
}

static simclr_status bufs_new(simclr_trainer *tr, void *state, int64_t n, int64_t n_global, int64_t c, void **out)
{
    (void)tr, (void)n, (void)c, (void)out;
    finetune *f = state;
    return simclr__supervised_reserve(f->loss, n_global);
}

/* The teacher's logits over the local batch, in EVAL mode, without
 * gradient: the same views the student trains on (view 0, keyed by each
 * image's index), made again for the whole batch. Runs after the student's
 * forward and before its backward (the pipeline's key phase). */
static simclr_status teacher(simclr_trainer *tr, void *state, simclr__step *s)
{
    finetune *f = state;
    if (!f->distill) return SIMCLR_OK;
    SIMCLR__TRY(simclr__augment_view_at(tr->aug, f->images, s->seed, 0, 0, f->t_views));
    SIMCLR__TRY(simclr_module_forward(f->t_enc, f->t_views, SIMCLR_EVAL, f->t_feat));
    return simclr_module_forward(f->t_head, f->t_feat, SIMCLR_EVAL, f->t_logits);
}

static simclr_status loss(simclr_trainer *tr, void *state, simclr__step *s, double *value, double *accuracy)
{
    (void)tr;
    finetune *f = state;
    float v = 0, a = 0;
    if (f->distill)
        SIMCLR__TRY(simclr_loss_forward_distill(f->loss, s->z, f->t_logits, f->labels, f->n_labels, &v, &a));
    else
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
    snprintf(buf, size, "; finetune: classes=%d encoder=%s%s", f->classes, f->frozen ? "frozen" : "trained",
             f->distill ? " loss=distillation" : "");
}

const simclr__method simclr__finetune_method = {
    .version = SIMCLR__METHOD_VERSION,
    .name = "finetune",
    .can_freeze_encoder = 1,
    .trained_views = 1,
    .key_views = 0,
    .refuse = refuse,
    .destroy = destroy,
    .check_batch = check_batch,
    .bufs_new = bufs_new,
    .keys = teacher,
    .loss = loss,
    .arch = arch,
};

simclr_status simclr_finetune_trainer_create(simclr_context *ctx, simclr_module *encoder, simclr_module *head,
                                             simclr_augment *aug, simclr_loss *loss, simclr_optimizer *opt,
                                             simclr_trainer **out)
{
    static const char fn[] = "simclr_finetune_trainer_create";
    SIMCLR__TRY(simclr__trainer_check_pieces(fn, ctx, encoder, head, aug, loss, opt, out));
    const simclr__loss_ops *ops = simclr__loss_ops_of(loss);
    if (!ops) return simclr__fail(SIMCLR_E_INVALID, "%s: the loss is NT-Xent; fine-tuning takes a cross-entropy loss "
                                                    "(simclr_cross_entropy_create)", fn);
    const int distill = strcmp(ops->kind, "distillation") == 0;
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
    *f = (finetune){.loss = loss, .classes = (int)classes, .frozen = frozen, .distill = distill};
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
    if (((finetune *)tr->method_state)->distill)
        return simclr__fail(SIMCLR_E_INVALID, "%s: the trainer's loss is a distillation loss: its steps take a "
                                              "teacher (simclr_trainer_step_distill)", fn);
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
    f->labels = labels, f->n_labels = n, f->in_step = 1;
    simclr_status st = simclr__pipeline_step(tr, images, NULL, seed, loss);
    f->labels = NULL, f->n_labels = 0, f->in_step = 0;
    return st;
}

simclr_status simclr_trainer_step_distill(simclr_trainer *tr, const simclr_tensor *images,
                                          simclr_module *teacher_encoder, simclr_module *teacher_head,
                                          const int32_t *labels, int64_t n_labels, uint64_t seed, float *loss)
{
    static const char fn[] = "simclr_trainer_step_distill";
    SIMCLR__CHECK_ARG(tr, fn, "trainer is NULL");
    SIMCLR__CHECK_ARG(teacher_encoder, fn, "teacher_encoder is NULL");
    SIMCLR__CHECK_ARG(teacher_head, fn, "teacher_head is NULL");
    if (tr->method != &simclr__finetune_method || !((finetune *)tr->method_state)->distill)
        return simclr__fail(SIMCLR_E_INVALID, "%s: not a fine-tuning trainer with a distillation loss", fn);
    finetune *f = tr->method_state;
    int64_t want[4] = {-1, -1, -1, tr->encoder->in_dim};
    SIMCLR__TRY(simclr__tensor_expect(images, fn, "images", SIMCLR_U8, 4, want));
    const int64_t n = images->dims[0];
    if (!labels && n_labels != 0)
        return simclr__fail(SIMCLR_E_INVALID, "%s: labels is NULL with n_labels = %lld", fn, (long long)n_labels);
    if (labels && n_labels != n)
        return simclr__fail(SIMCLR_E_SHAPE, "%s: %lld labels for %lld images", fn, (long long)n_labels, (long long)n);
    for (int64_t i = 0; labels && i < n; i++)
        if (labels[i] < -1 || labels[i] >= f->classes)
            return simclr__fail(SIMCLR_E_INVALID, "%s: labels[%lld] = %d is outside -1..%d (-1: unlabelled)", fn,
                                (long long)i, (int)labels[i], f->classes - 1);
    if (teacher_encoder == teacher_head || teacher_encoder == tr->encoder || teacher_encoder == tr->head ||
        teacher_head == tr->encoder || teacher_head == tr->head)
        return simclr__fail(SIMCLR_E_INVALID, "%s: the teacher's encoder and head must be two modules other than the "
                                              "student's (self-distillation: a copy of it)", fn);
    if (teacher_encoder->ctx != tr->ctx || teacher_head->ctx != tr->ctx)
        return simclr__fail(SIMCLR_E_INVALID, "%s: the teacher's %s was made from another context", fn,
                            teacher_encoder->ctx != tr->ctx ? "encoder" : "head");
    if (teacher_encoder->in_dim != tr->encoder->in_dim || teacher_head->in_dim != teacher_encoder->out_dim ||
        teacher_head->out_dim != f->classes)
        return simclr__fail(SIMCLR_E_SHAPE,
                            "%s: the teacher takes %lld channels (the student %lld), its head takes %lld features "
                            "(its encoder gives %lld) and gives %lld logits (the loss has %d classes)",
                            fn, (long long)teacher_encoder->in_dim, (long long)tr->encoder->in_dim,
                            (long long)teacher_head->in_dim, (long long)teacher_encoder->out_dim,
                            (long long)teacher_head->out_dim, f->classes);
    /* The teacher's scratch for this call (built before anything changes). */
    const int64_t c = tr->encoder->in_dim;
    simclr_status st = simclr__tensor_f32(tr->ctx, 4, (const int64_t[]){n, c, tr->out_h, tr->out_w}, &f->t_views);
    if (st == SIMCLR_OK)
        st = simclr__tensor_f32(tr->ctx, 2, (const int64_t[]){n, teacher_encoder->out_dim}, &f->t_feat);
    if (st == SIMCLR_OK) st = simclr__tensor_f32(tr->ctx, 2, (const int64_t[]){n, f->classes}, &f->t_logits);
    if (st == SIMCLR_OK) {
        f->labels = labels, f->n_labels = labels ? n : 0, f->in_step = 1;
        f->images = images, f->t_enc = teacher_encoder, f->t_head = teacher_head;
        st = simclr__pipeline_step(tr, images, NULL, seed, loss);
    }
    simclr_tensor_destroy(f->t_views);
    simclr_tensor_destroy(f->t_feat);
    simclr_tensor_destroy(f->t_logits);
    f->t_views = f->t_feat = f->t_logits = NULL;
    f->labels = NULL, f->n_labels = 0, f->in_step = 0;
    f->images = NULL, f->t_enc = f->t_head = NULL;
    return st;
}
