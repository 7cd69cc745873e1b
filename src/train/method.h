/* A self-supervised method as a table the one trainer pipeline calls
 * (src/train/pipeline.c), after SQLite's sqlite3_module / sqlite3_io_methods:
 * a version first, then function pointers; a member added later is read only
 * when `version` says the table has it. A new method is one file with one
 * table, never an `if` in the pipeline.
 *
 * What the pipeline does for every method, in order (docs/architecture.md,
 * "The trainer pipeline"):
 *   views     each image gives two views (simclr__augment_pair_at, keyed by
 *             the image's global index); the first `trained_views` go through
 *             encoder + head with gradient, the other `key_views` are kept for
 *             the method's key path;
 *   forward   encoder + head in TRAIN mode, one micro-batch at a time, keeping
 *             only the embeddings;
 *   keys      the method's key path on the local key views, without gradient
 *             (MoCo: the momentum modules);
 *   gather    embeddings and keys of every rank into the one-process layout;
 *   loss      the method's loss at the global embeddings and its gradient there;
 *   backward  each micro-batch again (re-run when there are several), its slice
 *             of that gradient back through head and encoder;
 *   reduce    gradients summed over ranks with the stop requests;
 *   commit    the optimizer step, then the method's per-step updates (MoCo:
 *             EMA of the key modules, queue push), which cannot fail.
 * Any failure before commit rolls back (src/train/rollback.c): gradients, BN
 * statistics of every module (the method's too), the buffer set; parameters,
 * optimizer state and the method's state are untouched until commit. */
#ifndef SIMCLR_TRAIN_METHOD_H
#define SIMCLR_TRAIN_METHOD_H

#include "../core/context.h"
#include "../core/tensor.h"

#define SIMCLR__METHOD_VERSION 1

/* Combinations a trainer can be asked for: the `refuse` hook's argument. */
enum {
    SIMCLR__WITH_MICRO = 1,     /* SIMCLR_TRAINER_MICRO_BATCH > 0 (gradient caching) */
    SIMCLR__WITH_RANKS = 2,     /* a communicator (simclr_trainer_set_comm) */
    SIMCLR__WITH_BN_SYNC = 4,   /* SIMCLR_BN_SYNC */
    SIMCLR__WITH_BN_FROZEN = 8, /* SIMCLR_BN_FROZEN */
    SIMCLR__WITH_LIST = 16      /* simclr_trainer_step_list */
};

/* One step as the method sees it (filled by the pipeline). */
typedef struct simclr__step {
    const char *fn;
    uint64_t seed;
    int rank, ranks;
    int64_t n, n_global, p; /* local images, ranks * n, embedding width */
    /* The trained embeddings of the global batch [T N, P] (row g + v N: view
     * v of global image g) and the gradient of the loss there, which the
     * method's loss writes (every rank computes the same). */
    simclr_tensor *z, *dz;
    /* The local key views [K n, C, H, W] (row i + v n), the method's local
     * keys [K n, P] written by its key path, and every rank's [K N, P] in
     * the global layout (read by the loss and the commit). */
    simclr_tensor *key_views;
    float *keys_local, *keys;
    void *bufs; /* the method's scratch for this shape (bufs_new) */
} simclr__step;

typedef struct simclr__method {
    int version; /* SIMCLR__METHOD_VERSION */
    const char *name; /* checkpoint architecture: "<name>-trainer v1; ..." */
    int trained_views, key_views; /* of the pair: T + K = 2 */

    /* NULL when the method combines with `with` (SIMCLR__WITH_*), else the
     * reason, which the setter or creation returns as SIMCLR_E_UNSUPPORTED. */
    const char *(*refuse)(const void *state, unsigned with);
    void (*destroy)(simclr_context *ctx, void *state);

    /* Shape checks before anything changes (may be NULL). */
    simclr_status (*check_batch)(const void *state, const char *fn, int64_t n, int64_t n_global);
    /* Scratch for n local images of c channels, built aside and swapped in
     * with the pipeline's buffer set (a failed step puts the old one back).
     * May be NULL (no scratch). */
    simclr_status (*bufs_new)(simclr_trainer *tr, void *state, int64_t n, int64_t n_global, int64_t c,
                              void **out);
    void (*bufs_free)(simclr_context *ctx, void *bufs);

    /* The key path: s->key_views -> s->keys_local, no gradient (may be NULL
     * when key_views is 0; a method without key views may use it for a
     * forward-only path of its own, e.g. fine-tuning's teacher). */
    simclr_status (*keys)(simclr_trainer *tr, void *state, simclr__step *s);
    /* The loss at s->z (with s->keys) and its gradient into s->dz. The
     * trained modules' gradients are zero when it runs; a loss over
     * parameters of its own (SwAV's prototypes, a trained module of the
     * trainer) may add their gradient there directly, counting that the
     * pipeline then sums gradients over ranks (every rank computes the same
     * global loss: write it on one rank, or 1/ranks of it on each). */
    simclr_status (*loss)(simclr_trainer *tr, void *state, simclr__step *s, double *value, double *accuracy);
    /* After the optimizer accepted the gradients: cannot fail (may be NULL). */
    void (*commit)(simclr_trainer *tr, void *state, const simclr__step *s);

    /* Checkpoint section (all may be NULL): the architecture string's tail
     * (after the optimizer's name), and the method's tensors and counters,
     * saved as section + name. A counter's value must lie in 0..limit-1
     * (`what` names it in the message of a file that breaks that). State
     * tensors are also aligned over ranks by simclr_trainer_set_comm. */
    const char *section;
    void (*arch)(const simclr_trainer *tr, const void *state, char *buf, size_t size);
    int (*tensors)(void *state, const char **names, simclr_tensor **out);
    int (*counters)(void *state, const char **names, int64_t **values, int64_t *limits, const char **what);

    /* 1 when the encoder may be left untrained (frozen: the optimizer given
     * at creation does not cover it; it then runs in EVAL mode without
     * backward). SIMCLR_TRAINER_FREEZE_ENCODER reads the trainer's state
     * from its module list, whatever the method. */
    int can_freeze_encoder;
} simclr__method;

/* At most this many tensors and counters in a method's section. */
#define SIMCLR__METHOD_MAX_ENTRIES 4

extern const simclr__method simclr__simclr_method;
extern const simclr__method simclr__moco_method;
extern const simclr__method simclr__swav_method;
extern const simclr__method simclr__finetune_method;

#endif
