/*
 * libsimclr — SimCLR contrastive self-supervised learning as an embeddable C library.
 *
 * This header is the whole public interface and its reference manual.
 *
 * Conventions that hold for every function below unless its comment says otherwise:
 *
 *  - Every fallible function returns a simclr_status. SIMCLR_OK (0) is success.
 *    On any other value, simclr_last_error() holds a precise message for the
 *    calling thread, every output argument is left untouched, and every handle
 *    passed in is exactly as it was before the call (no half-updates).
 *  - "out" pointers must not be NULL unless the comment says "may be NULL".
 *  - Handles are opaque. simclr_x_create() makes one; the caller owns it and
 *    releases it with simclr_x_destroy(), which accepts NULL and does nothing.
 *    Objects created from a context must be destroyed before the context.
 *  - Borrowed handles (passed to a create function and not said to be taken
 *    over) must outlive the object that borrows them.
 *  - Threads: distinct contexts are independent and may be used from different
 *    threads at once. One context and the objects made from it are used from
 *    one thread at a time; the library parallelizes inside calls on its own.
 *    Functions that take no handle (versions, simclr_status_string,
 *    simclr_last_error, simclr_backend_count/_name, simclr_augment_bounds,
 *    the learning-rate scalings, simclr_context_create) may be called from
 *    any thread at any time. Callbacks run on the calling thread, inside the
 *    call. Every function's comment ends its rule with a "Threads:" clause.
 *    tests/test_threads.c checks these rules under ThreadSanitizer (make tsan).
 *  - The library never prints, never calls abort()/exit(), and never keeps
 *    global mutable state (the thread-local error message aside, and
 *    OpenBLAS's process-wide thread count: see simclr_context_create).
 *  - Shapes are int64_t: tensor dimensions, image sides, channel counts,
 *    feature and layer sizes, batch, row and element counts. int is kept for
 *    small counts and choices (threads, ndim and axis, a ResNet's depth,
 *    layers, heads, views, classes, k, epochs, indices of parameters).
 *    Images are U8 [N, H, W, C] (as decoders produce), network inputs are
 *    F32 [N, C, H, W] with values in [0, 1].
 *  - Every enum-keyed setting is a double (simclr_X_set / simclr_X_get, and
 *    simclr_trainer_stat); whole-number keys refuse a fractional value. The
 *    key type of simclr_X_set is simclr_X_param (simclr_context_param,
 *    simclr_augment_param, simclr_optimizer_param, ...); the enum constants
 *    keep their short prefixes (SIMCLR_CTX_, SIMCLR_AUG_, SIMCLR_OPT_, ...),
 *    and the 0.1 type names (simclr_aug_param, simclr_stat, ...) stay as
 *    aliases of the same types.
 *  - Deprecated functions (each says "Deprecated since 0.2.0: use ...") stay
 *    exported and keep working for every 0.x release; only new code should
 *    prefer their replacements.
 *
 * Contents: one section per subject, in this order (functions added in 0.2
 * sit with the subject they belong to; simclr.map says which release added
 * each symbol):
 *    1. Version                             11. Augmentation policies
 *    2. Status and errors                   12. Losses: NT-Xent, cross-entropy,
 *    3. Contexts: creation, backends, ISA       distillation
 *    4. Contexts: logging, progress,        13. Optimizers and LR schedule
 *       cancellation                        14. Trainer: one step pipeline
 *    5. Contexts: settings                  15. Distributed training and
 *    6. Contexts: the thread pool               gradient caching
 *    7. Tensors                             16. MoCo v2
 *    8. Image lists                         17. SwAV
 *    9. Modules: forward, backward,         18. Data sets and label fractions
 *       parameters                          19. Checkpoints and export
 *   10. Encoders and heads: ResNet, ViT,    20. Feature extraction, embedding
 *       MLP, linear                             and classification
 *                                           21. Evaluation: kNN, linear probes,
 *                                               classification metrics
 */
#ifndef SIMCLR_H
#define SIMCLR_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ======================================================================== */
/* Version                                                                   */
/* ======================================================================== */

/* The only place the version is written; the Makefile reads it from here. */
#define SIMCLR_VERSION_MAJOR 0
#define SIMCLR_VERSION_MINOR 2
#define SIMCLR_VERSION_PATCH 0
#define SIMCLR_VERSION_NUMBER \
    (SIMCLR_VERSION_MAJOR * 10000 + SIMCLR_VERSION_MINOR * 100 + SIMCLR_VERSION_PATCH)

#if defined(_WIN32)
#  if defined(SIMCLR_BUILDING)
#    define SIMCLR_API __declspec(dllexport)
#  else
#    define SIMCLR_API
#  endif
#elif defined(__GNUC__) && __GNUC__ >= 4
#  define SIMCLR_API __attribute__((visibility("default")))
#else
#  define SIMCLR_API
#endif

/* Returns SIMCLR_VERSION_NUMBER of the library actually loaded, so a host can
 * compare it with the header it was compiled against. Never fails.
 * Takes nothing. Threads: any thread, any time. */
SIMCLR_API unsigned simclr_version_number(void);

/* Returns "MAJOR.MINOR.PATCH" of the loaded library; a static string.
 * Never NULL, never fails; not to be freed. Threads: any thread, any time. */
SIMCLR_API const char *simclr_version_string(void);

/* ======================================================================== */
/* Status and errors                                                         */
/* ======================================================================== */

/* Append-only: values are never renumbered or reused. */
typedef enum simclr_status {
    SIMCLR_OK            = 0,
    SIMCLR_E_INVALID     = 1, /* a NULL handle, an out-of-range value, an unknown key */
    SIMCLR_E_SHAPE       = 2, /* a tensor of the wrong rank, size or dtype */
    SIMCLR_E_NOMEM       = 3, /* an allocation failed (or the allocator hook refused) */
    SIMCLR_E_IO          = 4, /* a file could not be opened, read, written or renamed */
    SIMCLR_E_FORMAT      = 5, /* a file is corrupt, truncated or of another kind */
    SIMCLR_E_NUMERIC     = 6, /* a NaN or infinity in a loss, gradient or input */
    SIMCLR_E_UNSUPPORTED = 7, /* valid but not implemented (e.g. an unknown backend) */
    SIMCLR_E_STATE       = 8, /* calls in the wrong order (backward before forward) */
    SIMCLR_E_INTERNAL    = 9, /* a bug in the library: please report it */
    SIMCLR_E_CANCELLED   = 10 /* (0.2) a stoppable progress callback asked a long call to stop */
} simclr_status;

/* Returns a fixed English text for a status ("invalid argument"); never NULL,
 * also for values it does not know ("unknown status").
 * The string is static: not to be freed. Threads: any thread, any time. */
SIMCLR_API const char *simclr_status_string(simclr_status status);

/* Returns the detailed message of the last failing call on the calling thread,
 * e.g. "conv2d 'layer1.0.conv1': input has 3 channels, layer expects 1".
 * "" when no call on this thread has failed yet. The text stays valid until
 * the next failing call on the same thread. Successful calls do not clear it.
 * Never NULL; owned by the library (per-thread storage), not to be freed.
 * Threads: any thread, any time. Each thread reads its own message. */
SIMCLR_API const char *simclr_last_error(void);

/* Sets the calling thread's simclr_last_error() to message (copied,
 * truncated to 511 bytes; NULL = "") and returns status, so a companion
 * library (libsimclr_image) or a binding reports errors through the same
 * channel. SIMCLR_OK leaves the message alone. Thread-safe.
 * Never fails: returns status as given. Threads: any thread, any time. */
SIMCLR_API simclr_status simclr_error_set(simclr_status status, const char *message);

/* ======================================================================== */
/* Contexts: creation, backends, instruction sets                            */
/* ======================================================================== */

typedef struct simclr_context simclr_context;

/* Memory hooks. Frozen forever: fields are never added, removed or reordered.
 * alloc returns memory aligned to `alignment` (a power of two, >= 16) or NULL;
 * free accepts what alloc returned (never NULL). */
typedef struct simclr_allocator {
    void *(*alloc)(void *user, size_t size, size_t alignment);
    void  (*free)(void *user, void *ptr);
    void   *user;
} simclr_allocator;

/* Creates a context.
 *  backend:   "cpu" (fast, default when NULL) or "ref" (plain loops, the oracle).
 *  n_threads: threads used inside calls; 0 = all online cores; 1..256.
 *             The "cpu" backend runs its own threads and keeps OpenBLAS
 *             single-threaded. OpenBLAS's thread count is process-wide (the
 *             library's only process-wide state): in an OpenBLAS build the
 *             first live "cpu" context saves the host's count and sets 1; the
 *             last one destroyed restores the saved count, unless the host
 *             set another meanwhile (then its own stays). So while a "cpu"
 *             context exists the host's own OpenBLAS calls (NumPy, SciPy)
 *             run single-threaded; a host that raises the count meanwhile
 *             gets correct but oversubscribed products from us.
 *  allocator: copied; NULL = aligned malloc/free.
 * Instruction set: the "cpu" backend is compiled once per instruction set
 * ("avx512": AVX-512 F/VL/BW/DQ; "avx2": AVX2 + FMA; "portable": the
 * baseline of the architecture) and a context runs the widest one the CPU
 * has. The environment variable SIMCLR_ISA, read here at every creation,
 * caps it: SIMCLR_ISA=avx2 or =portable forces a narrower path (for tests,
 * or to compare); a wider value than the CPU runs is capped at the CPU's.
 * Every copy computes the same operations in the same order and gives the
 * same bytes (OpenBLAS picks its own kernels by CPU, not by this setting;
 * tests compare the copies). simclr_context_isa() tells which one a context
 * runs.
 * Reproducibility: on the "cpu" backend, module forward and backward passes,
 * the loss and a whole trainer step give the same bytes for any n_threads
 * and any instruction-set copy on one machine (work is cut into pieces by
 * shape, never by thread count, and partial sums are added in a fixed
 * order; tests check 1 to 4 threads). Another machine may differ in the
 * last bits where OpenBLAS picks other kernels for its CPU.
 * Returns SIMCLR_E_UNSUPPORTED for an unknown backend name, SIMCLR_E_INVALID
 * for a bad thread count, an allocator with a NULL function or a SIMCLR_ISA
 * value that names no instruction set, SIMCLR_E_NOMEM.
 * *out receives the new context, owned by the caller.
 * backend and allocator may be NULL (see above); out may not. On error *out is
 * untouched and nothing stays allocated. Threads: any thread, any time (each
 * context is independent). */
SIMCLR_API simclr_status simclr_context_create(const char *backend, int n_threads,
                                               const simclr_allocator *allocator,
                                               simclr_context **out);

/* Destroys the context and its thread pool. NULL is a no-op. Every object made
 * from the context must already be destroyed.
 * Threads: not while any call on ctx or its objects runs (on any thread). */
SIMCLR_API void simclr_context_destroy(simclr_context *ctx);

/* Returns the backend name of the context ("cpu" or "ref"); NULL for NULL.
 * The string is static. Never fails. Threads: may run concurrently with calls
 * on other contexts only. */
SIMCLR_API const char *simclr_context_backend(const simclr_context *ctx);

/* Returns the number of threads the context uses; 0 for NULL.
 * Never fails. Threads: may run concurrently with calls on other contexts only. */
SIMCLR_API int simclr_context_threads(const simclr_context *ctx);

/* Returns the instruction set the context's kernels run: "avx512", "avx2" or
 * "portable" (the "ref" backend is always "portable"); NULL for NULL. The
 * string is static, not to be freed. Never fails. Threads: any thread, also
 * while ctx is in use elsewhere (the value is fixed when ctx is created). */
SIMCLR_API const char *simclr_context_isa(const simclr_context *ctx);

/* Returns 1 when this machine and this build can run the "cpu" backend's copy
 * for instruction set `isa` ("avx512", "avx2", "portable"), else 0 (also for
 * NULL or an unknown name). Tests use it to run every path the machine has.
 * isa is only read. Never fails. Threads: any thread, any time. */
SIMCLR_API int simclr_isa_supported(const char *isa);

/* Number of compiled-in backends, and the name of backend `index`
 * (NULL when index is out of range).
 * Both never fail; the names are static strings. Threads: any thread, any time. */
SIMCLR_API int simclr_backend_count(void);
SIMCLR_API const char *simclr_backend_name(int index);

/* ======================================================================== */
/* Contexts: logging, progress and cancellation                              */
/* ======================================================================== */

typedef enum simclr_log_level {
    SIMCLR_LOG_ERROR = 0,
    SIMCLR_LOG_WARN  = 1,
    SIMCLR_LOG_INFO  = 2,
    SIMCLR_LOG_DEBUG = 3
} simclr_log_level;

/* A log sink. Called synchronously on the thread that made the call that logs.
 * Must return normally (no longjmp, no C++ exception). */
typedef void (*simclr_log_fn)(void *user, simclr_log_level level, const char *message);

/* Installs (or with fn = NULL removes) the log sink. Default: none (silent).
 * fn NULL removes the sink; user may be NULL (it is only passed back to fn).
 * SIMCLR_E_INVALID for a NULL ctx or a max_level outside
 * SIMCLR_LOG_ERROR..SIMCLR_LOG_DEBUG; the sink is then unchanged. The sink then
 * receives the messages of max_level and more severe levels. Threads: may run
 * concurrently with calls on other contexts only. */
SIMCLR_API simclr_status simclr_context_set_log(simclr_context *ctx, simclr_log_fn fn, void *user,
                                                simclr_log_level max_level);

/* Progress of long work (training steps, feature extraction, probe epochs).
 * `what` is a short static phase name ("extract", "probe", "train"); `done`
 * counts up to `total`. Called on the calling thread; must return normally. */
typedef void (*simclr_progress_fn)(void *user, const char *what, int64_t done, int64_t total);

/* Installs (or with fn = NULL removes) the progress callback. Default: none.
 * user may be NULL (it is only passed back to fn). SIMCLR_E_INVALID for a NULL
 * ctx (nothing changes). Threads: may run concurrently with calls on other
 * contexts only. */
SIMCLR_API simclr_status simclr_context_set_progress(simclr_context *ctx, simclr_progress_fn fn,
                                                     void *user);

/* Progress that can stop the call reporting it: the same reports as
 * simclr_progress_fn (what, done, total), and the return value decides:
 * 0 = go on, anything else = stop. Called synchronously on the calling
 * thread; must return normally (no longjmp, no C++ exception) and must not
 * call into the library with the same context.
 * A stop request makes the long call return SIMCLR_E_CANCELLED (message:
 * the function and how far it got) at its next stopping point, with the
 * state the function's failure rule gives (every call below leaves its
 * handles and outputs as they were before the call):
 *  - simclr_extract_features: polled after every batch ("extract"); out untouched.
 *  - simclr_linear_probe(_n): after every iteration ("probe"); *top1 untouched.
 *  - simclr_linear_probe_select: after every iteration of every fit
 *    ("probe_select", done = iterations over all its fits, total =
 *    (grid size + 1) * epochs: the validation fits in grid order, then the
 *    refit); *top1 and *chosen_decay untouched.
 *  - simclr_knn_eval(_n): after every block of test rows ("knn", done = test
 *    rows finished); *top1 untouched.
 *  - simclr_classifier_evaluate: after every batch of images ("classify",
 *    done = images classified); every output untouched.
 *  - simclr_trainer_step: polled ("train", done = steps so far) before the
 *    forward pass and again before the optimizer commits; a stop there
 *    cancels the step with parameters, gradients, BN statistics, optimizer
 *    state and counters as before. The report after a finished step cannot
 *    undo it: its return value is ignored. The same holds with
 *    micro-batches, with a communicator and for MoCo trainers; with a
 *    communicator a stop asked on any rank cancels the step on every rank
 *    at the same poll (the others get SIMCLR_E_CANCELLED too).
 * Also receives the reports of simclr_progress_fn (which keeps working and
 * may be installed at the same time: both are called, the plain one first). */
typedef int (*simclr_progress_cancel_fn)(void *user, const char *what, int64_t done, int64_t total);

/* Installs (or with fn = NULL removes) the stoppable progress callback of
 * ctx; it replaces the previous one. Default: none. user may be NULL (it is
 * only passed back to fn). Returns SIMCLR_OK; SIMCLR_E_INVALID for a NULL ctx
 * (nothing changes). Threads: may run concurrently with calls on other
 * contexts only (not while another thread runs a call on ctx). */
SIMCLR_API simclr_status simclr_context_set_progress_cancel(simclr_context *ctx,
                                                            simclr_progress_cancel_fn fn,
                                                            void *user);

/* ======================================================================== */
/* Contexts: settings (convolution algorithm)                                */
/* ======================================================================== */

/* Keys for simclr_context_set/get. Append-only, grouped by subsystem. */
typedef enum simclr_context_param {
    SIMCLR_CTX_CONV_ALGO = 100 /* a simclr_conv_algo value; default SIMCLR_CONV_AUTO */
} simclr_context_param;
typedef enum simclr_context_param simclr_ctx_param; /* older name, kept as an alias */

/* Values of SIMCLR_CTX_CONV_ALGO: how the "cpu" backend runs 3x3 stride-1
 * convolutions (padding 0..2); every other convolution always runs one of
 * the exact direct paths (im2col + sgemm, or for few-channel stride-1
 * layers a sliding-window kernel; which one is the backend's choice and
 * changes only rounding). The "ref" backend ignores the setting and always
 * runs its exact direct loops.
 *  AUTO:     per layer, Winograd where a cost model says it is faster, with
 *            the tile its error rule allows (docs/architecture.md, "Winograd":
 *            F(4x4,3x3) only where its measured normalized error stays within
 *            the documented bound, else F(2x2,3x3)).
 *  DIRECT:   never Winograd: results as close to exact as float32 products
 *            get (choose this when exactness matters more than speed).
 *  WINOGRAD: Winograd on every layer the shape allows, tile by the same
 *            error rule; direct elsewhere.
 * Winograd results differ from the direct path by rounding only (the
 * documented bound); for a given setting they are bit-identical for any
 * thread count. */
typedef enum simclr_conv_algo {
    SIMCLR_CONV_AUTO     = 0,
    SIMCLR_CONV_DIRECT   = 1,
    SIMCLR_CONV_WINOGRAD = 2
} simclr_conv_algo;

/* Sets one context parameter. Values are doubles, as in every set/get
 * family; SIMCLR_CTX_CONV_ALGO takes a simclr_conv_algo value (a whole
 * number). Returns SIMCLR_OK; SIMCLR_E_INVALID for a NULL ctx, an unknown
 * key or a value outside the key's enum, fractional or not finite (the
 * message names both); the context is then unchanged. Takes effect from the
 * next call that runs a convolution; modules made earlier need no rebuild
 * (their workspace covers every algorithm). Threads: may run concurrently
 * with calls on other contexts only (not while another call uses ctx). */
SIMCLR_API simclr_status simclr_context_set(simclr_context *ctx, simclr_context_param key, double value);

/* Reads one context parameter into *value (SIMCLR_CTX_CONV_ALGO: its
 * simclr_conv_algo value as a double). Returns SIMCLR_OK; SIMCLR_E_INVALID
 * for a NULL ctx or value, or an unknown key (*value then untouched).
 * Threads: may run concurrently with calls on other contexts only. */
SIMCLR_API simclr_status simclr_context_get(const simclr_context *ctx, simclr_context_param key, double *value);

/* ======================================================================== */
/* Contexts: the thread pool, for companion libraries and hosts              */
/* ======================================================================== */

/* Work on [begin, end) of an index range; worker is 0 .. threads - 1 (for
 * per-thread scratch). Must not longjmp out nor call back into the same
 * context's parallel functions from another thread. */
typedef void (*simclr_task_fn)(void *user, int64_t begin, int64_t end, int worker);

/* Runs fn over [0, n) on the context's threads in at most
 * simclr_context_threads(ctx) static contiguous chunks of at least grain
 * items, the calling thread running the first; returns when all are done.
 * A call from inside a task runs inline. user may be NULL (only passed to
 * fn); fn may not. Returns SIMCLR_OK once every chunk ran (n = 0: at once);
 * SIMCLR_E_INVALID for a NULL ctx or fn, n < 0 or grain < 1, and then fn is
 * never called. Threads: may run concurrently with calls on other contexts
 * only (one context's calls come from one thread at a time). */
SIMCLR_API simclr_status simclr_context_parallel_for(simclr_context *ctx, int64_t n, int64_t grain,
                                                     simclr_task_fn fn, void *user);

/* ======================================================================== */
/* Tensors                                                                   */
/* ======================================================================== */

typedef struct simclr_tensor simclr_tensor;

typedef enum simclr_dtype {
    SIMCLR_F32 = 0,
    SIMCLR_U8  = 1
} simclr_dtype;

#define SIMCLR_MAX_DIMS 4

/* Creates a row-major contiguous tensor of 1..4 dims, zero-filled, whose memory
 * the tensor owns. Every dim must be >= 1 and the byte size must fit in
 * size_t / PTRDIFF_MAX (else SIMCLR_E_INVALID / SIMCLR_E_SHAPE); SIMCLR_E_NOMEM.
 * SIMCLR_E_INVALID also for a NULL ctx, shape or out, an unknown dtype or ndim
 * outside 1..4. The context is borrowed; *out is owned by the caller
 * (simclr_tensor_destroy); on error *out is untouched. Threads: may run
 * concurrently with calls on other contexts only. */
SIMCLR_API simclr_status simclr_tensor_create(simclr_context *ctx, simclr_dtype dtype, int ndim,
                                              const int64_t *shape, simclr_tensor **out);

/* Like simclr_tensor_create, but borrows `data` (zero-copy, e.g. a NumPy
 * array): the caller keeps ownership and must keep the buffer alive and
 * unmoved until the tensor is destroyed. data must be non-NULL and aligned to
 * the dtype's size. The library writes into it only where a call says so.
 * Errors as simclr_tensor_create, and SIMCLR_E_INVALID for a NULL or misaligned
 * data. *out is owned by the caller (destroying it never frees data). Threads:
 * may run concurrently with calls on other contexts only. */
SIMCLR_API simclr_status simclr_tensor_wrap(simclr_context *ctx, simclr_dtype dtype, int ndim,
                                            const int64_t *shape, void *data, simclr_tensor **out);

/* Frees the tensor (and its memory when owned). NULL is a no-op.
 * Not while a call using the tensor runs. Threads: may run concurrently with
 * calls on other contexts only. */
SIMCLR_API void simclr_tensor_destroy(simclr_tensor *t);

/* Accessors. For NULL (or an axis out of range) they return 0 / NULL / -1 (dtype).
 * They never fail. Threads: may run concurrently with calls on other contexts
 * only. */
SIMCLR_API int          simclr_tensor_ndim(const simclr_tensor *t);
SIMCLR_API int64_t      simclr_tensor_dim(const simclr_tensor *t, int axis);
SIMCLR_API int          simclr_tensor_dtype(const simclr_tensor *t);
SIMCLR_API int64_t      simclr_tensor_numel(const simclr_tensor *t);
SIMCLR_API size_t       simclr_tensor_bytes(const simclr_tensor *t);
/* The data pointer: owned by the tensor (or borrowed from the caller by wrap).
 * Valid until the tensor is destroyed or reshaped to another size (never).
 * NULL for NULL. Never fails. Threads: may run concurrently with calls on other
 * contexts only. */
SIMCLR_API void        *simclr_tensor_data(simclr_tensor *t);

/* Copies `bytes` bytes from src into the tensor; bytes must equal
 * simclr_tensor_bytes(t) exactly (else SIMCLR_E_SHAPE).
 * src may overlap the tensor's data. SIMCLR_E_INVALID for a NULL t or src; on
 * error the tensor is unchanged. Threads: may run concurrently with calls on
 * other contexts only. */
SIMCLR_API simclr_status simclr_tensor_copy_from(simclr_tensor *t, const void *src, size_t bytes);

/* Copies the tensor's bytes into dst; bytes must equal simclr_tensor_bytes(t).
 * SIMCLR_E_INVALID for a NULL t or dst, SIMCLR_E_SHAPE for another byte count;
 * dst is untouched on error. Threads: may run concurrently with calls on other
 * contexts only. */
SIMCLR_API simclr_status simclr_tensor_copy_to(const simclr_tensor *t, void *dst, size_t bytes);

/* Changes the shape in place to another with the same element count
 * (else SIMCLR_E_SHAPE). The data is not touched.
 * SIMCLR_E_INVALID for a NULL t or shape, ndim outside 1..4 or a dim < 1; on
 * error the shape is unchanged. Threads: may run concurrently with calls on
 * other contexts only. */
SIMCLR_API simclr_status simclr_tensor_reshape(simclr_tensor *t, int ndim, const int64_t *shape);

/* ======================================================================== */
/* Image lists: host images of different sizes                               */
/* ======================================================================== */

/* An image list: borrowed pointers to U8 [H, W, C] images (row-major,
 * contiguous, C = the list's channel count) of any sizes, so a batch is
 * cropped from each image's full resolution instead of from a copy resized
 * to a common size first (which loses detail and changes the augmentation).
 * The list owns only its arrays: the pixels stay the caller's and must
 * outlive every call that reads the list. A list is used from one thread at
 * a time; several threads may read one list that nobody modifies. */
typedef struct simclr_image_list simclr_image_list;

/* Creates an empty list for images of `channels` (1 or 3) channels.
 * SIMCLR_E_INVALID for NULL ctx/out or another channel count; SIMCLR_E_NOMEM.
 * The context is borrowed; *out is owned by the caller
 * (simclr_image_list_destroy) and untouched on error. Threads: may run
 * concurrently with calls on other contexts only. */
SIMCLR_API simclr_status simclr_image_list_create(simclr_context *ctx, int64_t channels,
                                                  simclr_image_list **out);
/* Frees the list's arrays (never the pixels). NULL is a no-op.
 * Threads: may run concurrently with calls on other contexts only. */
SIMCLR_API void simclr_image_list_destroy(simclr_image_list *list);
/* Empties the list, keeping its capacity (no allocation for the next batch
 * of the same size). SIMCLR_E_INVALID for NULL (nothing changes).
 * Cannot fail otherwise. Threads: may run concurrently with calls on other
 * contexts only. */
SIMCLR_API simclr_status simclr_image_list_clear(simclr_image_list *list);
/* Appends an image of height x width pixels (each side 1..2^24), borrowed.
 * SIMCLR_E_INVALID for NULLs, SIMCLR_E_SHAPE for a side out of range (naming
 * the image's index), SIMCLR_E_NOMEM; the list is unchanged on error.
 * Threads: may run concurrently with calls on other contexts only. */
SIMCLR_API simclr_status simclr_image_list_add(simclr_image_list *list, const uint8_t *pixels,
                                               int64_t height, int64_t width);
/* Number of images (0 for NULL) and the channel count (0 for NULL).
 * Never fail; the list is only read. Threads: may run concurrently with
 * calls on other contexts only. */
SIMCLR_API int64_t simclr_image_list_count(const simclr_image_list *list);
SIMCLR_API int64_t simclr_image_list_channels(const simclr_image_list *list);
/* Size of image `index` into *height and *width; either output may be NULL.
 * Returns SIMCLR_OK; SIMCLR_E_INVALID for a NULL list or an index out of
 * range. Outputs untouched on error. Threads: may run concurrently with calls on other
 * contexts only. */
SIMCLR_API simclr_status simclr_image_list_size(const simclr_image_list *list, int64_t index,
                                                int64_t *height, int64_t *width);
/* Appends every image of a U8 tensor [N, H, W, C] (C = the list's channel
 * count), borrowed: image i is the tensor's data from i*H*W*C on, so the
 * tensor must outlive every call that reads the list (a data set's batch,
 * a NumPy array). All N images or none: SIMCLR_E_INVALID for a NULL list or
 * images, SIMCLR_E_SHAPE for another dtype, rank or channel count or a side
 * outside 1..2^24, SIMCLR_E_NOMEM; the list is unchanged on error. Returns
 * SIMCLR_OK. images is only read by this call. Threads: may run
 * concurrently with calls on other contexts only. */
SIMCLR_API simclr_status simclr_image_list_add_tensor(simclr_image_list *list, const simclr_tensor *images);

/* ======================================================================== */
/* Modules: forward, backward, parameters                                    */
/* ======================================================================== */

typedef struct simclr_module simclr_module;

typedef enum simclr_mode {
    SIMCLR_EVAL  = 0, /* batch norm uses running statistics; no backward possible */
    SIMCLR_TRAIN = 1  /* batch statistics, running statistics updated, backward allowed */
} simclr_mode;

/* Parameter flags (a bit set). */
#define SIMCLR_PARAM_NO_DECAY 1 /* BN weight/bias or a bias: no weight decay, no LARS adaptation */
#define SIMCLR_PARAM_BUFFER   2 /* not trained (BN running_mean, running_var, num_batches_tracked) */

/* Frees the module, its parameters and its activation arena. NULL is a no-op.
 * Optimizers, trainers and embedders borrowing the module must be destroyed
 * first. Tensors returned by simclr_module_param become invalid. Threads: may run concurrently with calls on other contexts only. */
SIMCLR_API void simclr_module_destroy(simclr_module *m);

/* Feature size D of the module's output; 0 for NULL.
 * Never fails. Threads: may run concurrently with calls on other contexts only. */
SIMCLR_API int64_t simclr_module_output_dim(const simclr_module *m);

/* A short architecture string, e.g. "resnet18 width=16 in=1 stem=cifar";
 * owned by the module, valid for its life, not to be freed. Checkpoints
 * store and compare it.
 * NULL for NULL; never fails. Threads: may run concurrently with calls on other
 * contexts only. */
SIMCLR_API const char *simclr_module_arch(const simclr_module *m);

/* Runs the module on x and writes y (caller-allocated F32 [N, D]).
 * SIMCLR_E_SHAPE names the layer and the reason (wrong channel count, image
 * too small, y of the wrong shape). A TRAIN forward updates BN running
 * statistics and keeps the activations for simclr_module_backward. The first
 * call for a batch shape plans the activation arena for it. A module keeps
 * its largest arena: a later call whose plan fits it (the same shape, or a
 * smaller batch, in either mode) is planned again in place and allocates
 * nothing, so a service with varying request sizes allocates once, at its
 * largest request; the memory is returned by simclr_module_destroy.
 * Memory: a ResNet first run in EVAL keeps only four cycled activation
 * buffers and no gradient buffers (an encoder used only to embed stays
 * small); its first TRAIN forward grows that into the training arena (every
 * unit's outputs and the gradient buffers), which later EVAL calls reuse.
 * Returns SIMCLR_OK; SIMCLR_E_INVALID for a NULL m, x or y or an unknown mode;
 * SIMCLR_E_NOMEM when the arena cannot grow. Every check and allocation
 * comes before the first write: on error y, the BN running statistics and
 * the activations kept for backward are untouched. x is only read; y is the
 * caller's. Threads: may run concurrently with calls on other contexts only. */
SIMCLR_API simclr_status simclr_module_forward(simclr_module *m, const simclr_tensor *x,
                                               simclr_mode mode, simclr_tensor *y);

/* Back-propagates dy (F32, the shape of the last TRAIN forward's y): adds the
 * parameter gradients into the grad tensors and, when dx is not NULL, writes
 * the input gradient (the shape of that forward's x). SIMCLR_E_STATE when the
 * last forward was not TRAIN or the module was planned for another shape
 * since.
 * dy is only read; dx may be NULL. Returns SIMCLR_OK; SIMCLR_E_INVALID for a
 * NULL m or dy, SIMCLR_E_SHAPE for a dy or dx of another dtype or shape; on
 * error the gradients and dx are untouched. May be called again for the same
 * forward (the gradients then add up again). Threads: may run concurrently
 * with calls on other contexts only. */
SIMCLR_API simclr_status simclr_module_backward(simclr_module *m, const simclr_tensor *dy,
                                                simclr_tensor *dx);

/* Sets every parameter gradient to zero. Returns SIMCLR_OK;
 * SIMCLR_E_INVALID for a NULL m (nothing changes); cannot fail otherwise. Threads: may run
 * concurrently with calls on other contexts only. */
SIMCLR_API simclr_status simclr_module_zero_grad(simclr_module *m);

/* Number of named tensors: parameters first, then buffers. 0 for NULL.
 * Never fails. Threads: may run concurrently with calls on other contexts only. */
SIMCLR_API int simclr_module_param_count(const simclr_module *m);

/* Number of trainable scalars (the sum of parameter sizes, buffers excluded).
 * 0 for NULL; never fails. Threads: may run concurrently with calls on other
 * contexts only. */
SIMCLR_API int64_t simclr_module_param_scalars(const simclr_module *m);

/* Describes named tensor `index` (0 <= index < param_count) through *name,
 * *value, *grad and *flags; every output may be NULL. Returns SIMCLR_OK. name: torchvision name ("layer2.0.downsample.1.weight"), valid for
 * the module's life. value: the parameter itself (owned by the module; writing
 * into its data changes the model). grad: its gradient, NULL for buffers.
 * flags: SIMCLR_PARAM_* bits.
 * SIMCLR_E_INVALID for a NULL m or an index out of range (the outputs are then
 * untouched). Threads: may run concurrently with calls on other contexts only. */
SIMCLR_API simclr_status simclr_module_param(simclr_module *m, int index, const char **name,
                                             simclr_tensor **value, simclr_tensor **grad,
                                             int *flags);

/* Momentum (exponential moving average) update of target from source, two
 * modules of the same architecture (equal simclr_module_arch, same tensor
 * names and shapes): for every parameter and every BN running_mean /
 * running_var, target = momentum * target + (1 - momentum) * source
 * (computed in double, rounded to float once). num_batches_tracked keeps the
 * target's own count. momentum 0 copies, 1 changes nothing. Gradients are not
 * touched. SIMCLR_E_INVALID for NULLs, target == source, modules of two
 * contexts, momentum outside [0, 1]; SIMCLR_E_SHAPE (both architectures
 * named) for another architecture. Nothing changes on error. Cannot fail
 * after validation; allocates nothing.
 * Threads: may run concurrently with calls on other contexts only. Both modules
 * count as objects of their contexts. */
SIMCLR_API simclr_status simclr_module_momentum_update(simclr_module *target,
                                                       const simclr_module *source,
                                                       double momentum);

/* ======================================================================== */
/* Encoders and heads: ResNet, Vision Transformer, MLP, linear               */
/* ======================================================================== */

typedef enum simclr_stem {
    SIMCLR_STEM_CIFAR    = 0, /* 3x3 conv stride 1, no max pool (images <= 32 px) */
    SIMCLR_STEM_IMAGENET = 1  /* 7x7 conv stride 2, BN, ReLU, 3x3 max pool stride 2 */
} simclr_stem;

/* Creates a ResNet encoder (torchvision layout, no fc): depth 18 or 34 (basic
 * blocks), 50, 101 or 152 (bottleneck, stride on the 3x3 conv); width is the
 * stem width (64 in torchvision, 1..1024); in_channels 1..64. Input F32
 * [N, in_channels, H, W]; output F32 [N, D] after global average pooling,
 * D = 8*width (basic) or 32*width (bottleneck). Initialization as torchvision:
 * convs Kaiming normal (fan_out, ReLU), BN weight 1 bias 0; deterministic from seed.
 * Names are torchvision's ("layer2.0.downsample.1.running_var"); BN buffers
 * follow PyTorch (momentum 0.1, eps 1e-5, unbiased running variance) and
 * num_batches_tracked is an F32 [1] holding the count. A TRAIN forward fails
 * with SIMCLR_E_SHAPE (naming the layer) when some batch norm would see a
 * single value per channel (batch 1 with an image reduced to 1x1).
 * Returns SIMCLR_OK and the module in *out; SIMCLR_E_INVALID for a NULL ctx or
 * out, or a depth, width, in_channels or stem out of range; SIMCLR_E_NOMEM.
 * The context is borrowed; *out is owned by the caller (simclr_module_destroy)
 * and untouched on error. Threads: may run concurrently with calls on other
 * contexts only. (0.2.0; _v2 names the second signature of this function.) */
SIMCLR_API simclr_status simclr_resnet_create_v2(simclr_context *ctx, int depth, int64_t width,
                                                 int64_t in_channels, simclr_stem stem, uint64_t seed,
                                                 simclr_module **out);

/* Deprecated since 0.2.0: use simclr_resnet_create_v2 (int64_t sizes, as
 * every shape in this header). The same module, errors and ownership for the
 * same values (a NULL ctx or out: SIMCLR_E_INVALID; *out untouched on error);
 * messages name simclr_resnet_create. Threads: may run concurrently with calls
 * on other contexts only. */
SIMCLR_API simclr_status simclr_resnet_create(simclr_context *ctx, int depth, int width,
                                              int in_channels, simclr_stem stem, uint64_t seed,
                                              simclr_module **out);

/* How a ViT pools its tokens into the [N, D] feature. */
typedef enum simclr_vit_pool {
    SIMCLR_VIT_POOL_CLS  = 0, /* a learned class token, its final state (torchvision) */
    SIMCLR_VIT_POOL_MEAN = 1  /* no class token; the mean of the patch tokens' final states */
} simclr_vit_pool;

/* Standard sizes for simclr_vit_create_preset. */
typedef enum simclr_vit_preset {
    SIMCLR_VIT_TINY_16     = 1, /* 224x224 images, patch 16; hidden 192, depth 12, 3 heads, MLP 768 */
    SIMCLR_VIT_SMALL_16    = 2, /* 224x224 images, patch 16; hidden 384, depth 12, 6 heads, MLP 1536 */
    SIMCLR_VIT_TINY_CIFAR  = 3, /* 32x32 images, patch 4 (64 patches); ViT-Tiny's sizes */
    SIMCLR_VIT_SMALL_CIFAR = 4  /* 32x32 images, patch 4; ViT-Small's sizes */
} simclr_vit_preset;

/* Creates a Vision Transformer encoder (torchvision's VisionTransformer
 * without its classification heads): patch embedding (a convolution with
 * kernel and stride patch_size), class token (SIMCLR_VIT_POOL_CLS), learned
 * position embedding, `depth` pre-norm blocks (LayerNorm, multi-head
 * self-attention, residual; LayerNorm, MLP Linear-GELU-Linear, residual),
 * final LayerNorm (eps 1e-6, as every LayerNorm here), then the class
 * token's state or the mean of the patch tokens. Input F32
 * [N, in_channels, image_size, image_size]; output F32 [N, hidden_dim]. The
 * module works wherever a ResNet encoder does (heads, trainer, optimizers,
 * checkpoints, safetensors, feature extraction, probes, the embedder).
 *
 * Names and shapes are torchvision's ("conv_proj.weight", "class_token"
 * [1, 1, D], "encoder.pos_embedding" [1, T, D],
 * "encoder.layers.encoder_layer_0.self_attention.in_proj_weight" [3D, D],
 * "...mlp.0.weight", "...mlp.3.bias", "encoder.ln.weight"), so a safetensors
 * export loads into torchvision.models.VisionTransformer (strict=False for
 * its heads) and back. Layer norms, biases, the position embedding and the
 * class token carry SIMCLR_PARAM_NO_DECAY. Initialization as torchvision's,
 * deterministic from seed. There are no buffers and no batch statistics:
 * TRAIN and EVAL compute the same forward (no dropout).
 *
 * Arguments: image_size 1..4096 and a multiple of patch_size (1..image_size);
 * in_channels 1..64; hidden_dim 1..65536 and a multiple of heads (>= 1);
 * depth 1..256; mlp_dim 1..262144; at most 65536 tokens; pool a
 * simclr_vit_pool value.
 * Returns SIMCLR_OK and the module in *out (owned by the caller; free with
 * simclr_module_destroy); SIMCLR_E_INVALID for a NULL ctx or out or any
 * argument out of range (the message names the function and the argument,
 * e.g. "image_size 30 is not a multiple of patch_size 4"), SIMCLR_E_NOMEM;
 * *out is untouched on error. The context is borrowed. Threads: may run
 * concurrently with calls on other contexts only (the module belongs to ctx). */
SIMCLR_API simclr_status simclr_vit_create(simclr_context *ctx, int64_t image_size, int64_t patch_size,
                                           int64_t in_channels, int64_t hidden_dim, int depth, int heads,
                                           int64_t mlp_dim, simclr_vit_pool pool, uint64_t seed,
                                           simclr_module **out);

/* simclr_vit_create with a preset's image size, patch size, hidden size,
 * depth, heads and MLP size, class-token pooling. Returns SIMCLR_OK and the
 * module in *out (owned by the caller, as simclr_vit_create's);
 * SIMCLR_E_INVALID for an unknown preset, a NULL ctx or out, in_channels out
 * of 1..64; SIMCLR_E_NOMEM. *out is untouched on error. Threads: may run
 * concurrently with calls on other contexts only. */
SIMCLR_API simclr_status simclr_vit_create_preset(simclr_context *ctx, simclr_vit_preset preset,
                                                  int64_t in_channels, uint64_t seed, simclr_module **out);

/* Creates an MLP projection head with n_layers >= 1 linear layers
 * in_dim -> hidden_dim -> ... -> out_dim, ReLU between layers.
 * batch_norm = 0: SimCLR v1 (biases on every layer, no BN).
 * batch_norm = 1: SimCLR v2 (BN after every linear layer; the linear layers
 * followed by BN carry no bias; the last layer has BN without affine bias and no ReLU).
 * Linear layers are initialized as torch.nn.Linear (uniform +-1/sqrt(fan_in)).
 * Names are those of a torch.nn.Sequential attribute "layers": v1 puts layer
 * i at layers.{2i} (Linear, ReLU between); v2 puts its Linear at layers.{3i}
 * and its BatchNorm1d at layers.{3i+1} (ReLU at 3i+2). The last v2 batch norm
 * has "weight" but no "bias" entry (in torch: a BatchNorm1d whose bias is
 * frozen at zero). Training a v2 head needs a batch of at least 2.
 * in_dim, out_dim and (when n_layers > 1; else ignored) hidden_dim 1..2^20.
 * Returns SIMCLR_OK and the module in *out; SIMCLR_E_INVALID for a NULL ctx
 * or out, a dimension out of range, n_layers outside 1..16 or batch_norm not
 * 0 or 1; SIMCLR_E_NOMEM. The context is borrowed; *out is owned by the
 * caller (simclr_module_destroy) and untouched on error. Threads: may run
 * concurrently with calls on other contexts only. (0.2.0; _v2 names the
 * second signature of this function, not SimCLR v2: that is batch_norm = 1.) */
SIMCLR_API simclr_status simclr_mlp_head_create_v2(simclr_context *ctx, int64_t in_dim, int64_t hidden_dim,
                                                   int64_t out_dim, int n_layers, int batch_norm,
                                                   uint64_t seed, simclr_module **out);

/* Deprecated since 0.2.0: use simclr_mlp_head_create_v2 (int64_t sizes). The
 * same module, errors and ownership for the same values (a NULL ctx or out:
 * SIMCLR_E_INVALID; *out untouched on error); messages name
 * simclr_mlp_head_create. Threads: may run concurrently with calls on other
 * contexts only. */
SIMCLR_API simclr_status simclr_mlp_head_create(simclr_context *ctx, int in_dim, int hidden_dim,
                                                int out_dim, int n_layers, int batch_norm,
                                                uint64_t seed, simclr_module **out);

/* Creates a linear classification head, Linear(in_dim, n_classes) with a
 * bias, named as torchvision's classifier: "fc.weight" [n_classes, in_dim]
 * and "fc.bias" [n_classes] (SIMCLR_PARAM_NO_DECAY), so an encoder and this
 * head export together into torchvision's ResNet with its fc
 * (simclr_export_classifier_safetensors). Input F32 [N, in_dim]; output the
 * logits F32 [N, n_classes]. No batch norm: TRAIN and EVAL compute the same
 * forward; backward as every module's. Initialized as torch.nn.Linear (and
 * torchvision's fc): weight and bias uniform in +-1/sqrt(in_dim),
 * deterministic from seed. (SimCLR v2's code starts its supervised head
 * from N(0, 0.01^2) weights and a zero bias: write those through
 * simclr_module_param for that recipe.) Architecture string
 * "linear_head in=D out=K". in_dim 1..2^20, n_classes 2..2^20.
 * Returns SIMCLR_OK and the module in *out; SIMCLR_E_INVALID for a NULL ctx
 * or out or a size out of range; SIMCLR_E_NOMEM. The context is borrowed;
 * *out is owned by the caller (simclr_module_destroy) and untouched on
 * error. Threads: may run concurrently with calls on other contexts only. */
SIMCLR_API simclr_status simclr_linear_head_create(simclr_context *ctx, int64_t in_dim, int n_classes,
                                                   uint64_t seed, simclr_module **out);

/* ======================================================================== */
/* Augmentation policies                                                     */
/* ======================================================================== */

typedef struct simclr_augment simclr_augment;

/* A policy turns U8 images into F32 views with, in this order: random resized
 * crop, horizontal flip, color jitter (brightness, contrast, saturation, hue in
 * a random order, clipped to [0, 1] after each), random grayscale, gaussian
 * blur, solarize, random erasing, normalization. Each operation follows
 * torchvision.transforms.functional on float tensors (0.14): crop parameters
 * as RandomResizedCrop.get_params, resize with antialias=False and half-pixel
 * centres, grayscale weights 0.2989/0.587/0.114, reflect-padded blur.
 * For 1-channel images saturation, hue and grayscale do nothing. */
typedef enum simclr_augment_preset {
    SIMCLR_AUG_PRESET_NONE      = 0, /* resize of the whole image + convert only (evaluation):
                                        every probability 0, the V1 values otherwise */
    SIMCLR_AUG_PRESET_SIMCLR_V1 = 1, /* ImageNet recipe: crop, flip, jitter s=1.0 p=0.8, gray 0.2,
                                        blur 0.5 */
    SIMCLR_AUG_PRESET_CIFAR     = 2, /* crop, flip, jitter s=0.5 p=0.8, gray 0.2, no blur */
    SIMCLR_AUG_PRESET_GRAYSCALE = 3, /* single-channel data (Fashion-MNIST): crop, flip, and
                                        brightness and contrast 0.4 (p=0.8) only */
    SIMCLR_AUG_PRESET_FINETUNE  = 4  /* SimCLR's fine-tuning views: random resized crop
                                        (the V1 values) and flip only (0.2.0) */
} simclr_augment_preset;
typedef enum simclr_augment_preset simclr_aug_preset; /* the 0.1 name, kept as an alias */

/* Keys for simclr_augment_set/get. Append-only, grouped by operation.
 * Probabilities are in [0, 1]; simclr_augment_bounds gives every range. */
typedef enum simclr_augment_param {
    SIMCLR_AUG_CROP_P          = 100, /* probability of the random resized crop (else resize) */
    SIMCLR_AUG_CROP_SCALE_MIN  = 101, /* area fraction, (0, 1], default 0.08 */
    SIMCLR_AUG_CROP_SCALE_MAX  = 102, /* default 1.0 */
    SIMCLR_AUG_CROP_RATIO_MIN  = 103, /* aspect w/h, default 3/4, sampled log-uniformly */
    SIMCLR_AUG_CROP_RATIO_MAX  = 104, /* default 4/3 */
    SIMCLR_AUG_CROP_ATTEMPTS   = 105, /* 1..1000, default 10, then the center-crop fallback */
    SIMCLR_AUG_INTERPOLATION   = 106, /* 0 bilinear (default), 1 bicubic (a = -0.75, clamped) */
    SIMCLR_AUG_ANTIALIAS       = 107, /* 0 (default) or 1: the crop is resized with the
                                         antialiased triangle filter of
                                         interpolate(antialias=True) / PIL (bilinear only;
                                         INTERPOLATION is then ignored). Use 1 when crops of
                                         large images shrink a lot. */

    SIMCLR_AUG_FLIP_P          = 200, /* horizontal flip, default 0.5 */

    SIMCLR_AUG_JITTER_P        = 300, /* color jitter, default 0.8 */
    SIMCLR_AUG_JITTER_STRENGTH = 301, /* s in [0, 2.5]: sets the four below to 0.8s, 0.8s, 0.8s,
                                         0.2s; get returns the s last set (or the preset's) */
    SIMCLR_AUG_BRIGHTNESS      = 302, /* factor in [max(0,1-b), 1+b], b >= 0; 0 = off */
    SIMCLR_AUG_CONTRAST        = 303, /* same form; blends with the mean gray level */
    SIMCLR_AUG_SATURATION      = 304, /* same form; blends with the grayscale image */
    SIMCLR_AUG_HUE             = 305, /* shift in [-h, h], 0 <= h <= 0.5; 0 = off */

    SIMCLR_AUG_GRAYSCALE_P     = 400, /* default 0.2 (channel count kept) */

    SIMCLR_AUG_BLUR_P          = 500, /* gaussian blur, default 0.5 (V1 preset), else 0 */
    SIMCLR_AUG_BLUR_SIGMA_MIN  = 501, /* in pixels, default 0.1 */
    SIMCLR_AUG_BLUR_SIGMA_MAX  = 502, /* default 2.0 */
    SIMCLR_AUG_BLUR_KERNEL_FRAC= 503, /* kernel side / output side, default 0.1 (made odd, >= 3,
                                         at most 2 * side - 1) */

    SIMCLR_AUG_SOLARIZE_P      = 600, /* default 0 */
    SIMCLR_AUG_SOLARIZE_THRESHOLD = 601, /* in [0, 1], default 0.5: v >= t becomes 1 - v */

    SIMCLR_AUG_ERASE_P         = 700, /* random erasing (torchvision RandomErasing), default 0 */
    SIMCLR_AUG_ERASE_SCALE_MIN = 701, /* default 0.02 */
    SIMCLR_AUG_ERASE_SCALE_MAX = 702, /* default 0.33 */
    SIMCLR_AUG_ERASE_RATIO_MIN = 703, /* default 0.3 */
    SIMCLR_AUG_ERASE_RATIO_MAX = 704, /* default 3.3 */
    SIMCLR_AUG_ERASE_VALUE     = 705, /* fill in [0, 1], or -1 for uniform noise in [0, 1)
                                         (torchvision's "random" is N(0, 1)); default 0 */

    SIMCLR_AUG_NORMALIZE       = 800, /* 0 (default) or 1: (v - mean) / std per channel, last */
    SIMCLR_AUG_MEAN_0          = 801, SIMCLR_AUG_MEAN_1 = 802, SIMCLR_AUG_MEAN_2 = 803,
    SIMCLR_AUG_STD_0           = 804, SIMCLR_AUG_STD_1  = 805, SIMCLR_AUG_STD_2  = 806
} simclr_augment_param;
typedef enum simclr_augment_param simclr_aug_param; /* the 0.1 name, kept as an alias */

/* Creates a policy from a preset producing out_h x out_w views (each
 * 1..4096). Returns SIMCLR_OK and the policy in *out; SIMCLR_E_INVALID for a
 * NULL ctx/out, an unknown preset or a size out of range; SIMCLR_E_NOMEM.
 * The context is borrowed; *out is owned by the caller
 * (simclr_augment_destroy) and untouched on error. Threads: may run
 * concurrently with calls on other contexts only. (0.2.0; _v2 names the
 * second signature of this function.) */
SIMCLR_API simclr_status simclr_augment_create_v2(simclr_context *ctx, simclr_augment_preset preset,
                                                  int64_t out_h, int64_t out_w, simclr_augment **out);

/* Deprecated since 0.2.0: use simclr_augment_create_v2 (int64_t sizes). The
 * same policy, errors and ownership for the same values (a NULL ctx or out:
 * SIMCLR_E_INVALID; *out untouched on error); messages name
 * simclr_augment_create. Threads: may run concurrently with calls on other
 * contexts only. */
SIMCLR_API simclr_status simclr_augment_create(simclr_context *ctx, simclr_augment_preset preset,
                                               int out_h, int out_w, simclr_augment **out);

/* Frees the policy and its scratch. NULL is a no-op.
 * A trainer borrowing the policy must be destroyed first. Threads: may run
 * concurrently with calls on other contexts only. */
SIMCLR_API void simclr_augment_destroy(simclr_augment *aug);

/* Sets one parameter. Returns SIMCLR_OK; SIMCLR_E_INVALID for a NULL aug, an
 * unknown key, a value out of its range or not whole for an integral key (the
 * message gives the range), or a MIN above its MAX (set the other end first);
 * the policy is then unchanged.
 * Threads: may run concurrently with calls on other contexts only. */
SIMCLR_API simclr_status simclr_augment_set(simclr_augment *aug, simclr_augment_param key, double value);
/* Reads one parameter into *value. Returns SIMCLR_OK; SIMCLR_E_INVALID for
 * NULLs or an unknown key. *value is untouched on error. Threads: may run
 * concurrently with calls on other contexts only. */
SIMCLR_API simclr_status simclr_augment_get(const simclr_augment *aug, simclr_augment_param key,
                                            double *value);

/* The valid range of a key into *lo and *hi, for building UIs and validating
 * configs. Returns SIMCLR_OK; SIMCLR_E_INVALID for an unknown key or a NULL
 * lo/hi. *lo and *hi are untouched on error. Threads: any thread, any time. */
SIMCLR_API simclr_status simclr_augment_bounds(simclr_augment_param key, double *lo, double *hi);

/* Produces one view of each image: images U8 [N, H, W, C] (C = 1 or 3, any
 * H, W >= 1 up to 2^24; smaller images than the output are upscaled) -> out
 * F32 [N, C, out_h, out_w] in [0, 1] (unless normalizing). view: 0..15.
 * Every random choice is a pure function of (seed, view, index), where index is
 * the image's position in this batch: the result is bit-identical for any
 * thread count, but splitting a batch changes the indices, so pass a seed per
 * batch (e.g. the step number mixed with a run seed). Runs on the context's
 * threads; allocates only when a taller image than before arrives (scratch kept
 * in the policy). Errors: SIMCLR_E_INVALID (NULLs, view out of range),
 * SIMCLR_E_SHAPE (wrong dtype, rank, channel count, or out shape), SIMCLR_E_NOMEM;
 * out is then untouched.
 * images is only read. Threads: may run concurrently with calls on other
 * contexts only. */
SIMCLR_API simclr_status simclr_augment_apply(simclr_augment *aug, const simclr_tensor *images,
                                              uint64_t seed, int view, simclr_tensor *out);

/* Both SimCLR views at once (one parallel pass): view0 = apply(view 0),
 * view1 = apply(view 1), bit for bit. view0 and view1 must be distinct
 * buffers. Errors as simclr_augment_apply.
 * SIMCLR_E_INVALID for NULLs (neither view may be NULL) or views sharing their
 * memory. Threads: may run concurrently with calls on other contexts only. */
SIMCLR_API simclr_status simclr_augment_pair(simclr_augment *aug, const simclr_tensor *images,
                                             uint64_t seed, simclr_tensor *view0,
                                             simclr_tensor *view1);

/* simclr_augment_apply / simclr_augment_pair over an image list: the random
 * resized crop's box is drawn on each image's own H x W (torchvision's
 * RandomResizedCrop.get_params: scale and log-ratio sampling, 10 attempts by
 * default, then the center crop of the nearest allowed ratio) and the box is
 * resized to out_h x out_w. out (view0, view1) F32 [count, C, out_h, out_w].
 * Random choices depend on (seed, view, index in the list) exactly as for a
 * tensor batch: an image of the list gives the same view as the same image at
 * the same index of a tensor batch. Scratch grows to the largest image.
 * Errors as simclr_augment_apply (SIMCLR_E_INVALID for a NULL aug, images
 * or output, out / view0 / view1 untouched on error); SIMCLR_E_INVALID also
 * for an empty list. images is only read. Threads: may run concurrently with
 * calls on other contexts only. */
SIMCLR_API simclr_status simclr_augment_apply_list(simclr_augment *aug,
                                                   const simclr_image_list *images, uint64_t seed,
                                                   int view, simclr_tensor *out);
SIMCLR_API simclr_status simclr_augment_pair_list(simclr_augment *aug,
                                                  const simclr_image_list *images, uint64_t seed,
                                                  simclr_tensor *view0, simclr_tensor *view1);

/* ======================================================================== */
/* Losses: NT-Xent, cross-entropy, distillation                              */
/* ======================================================================== */

typedef struct simclr_loss simclr_loss;

/* NT-Xent over z F32 [V*N, D], where row i + v*N is view v of sample i.
 * temperature in [0.001, 100]; n_views >= 2 (else SIMCLR_E_INVALID). Rows are
 * L2-normalized inside (as F.normalize, eps 1e-12: a zero row stays finite),
 * logits are cosine / temperature with the self-similarity excluded from the
 * softmax. The loss is the mean over all V*N anchors of the cross-entropy
 * against the anchor's positives (uniform target over the V-1 other views of
 * its sample: SupCon's L_out; plain NT-Xent for V = 2). The official
 * TensorFlow code reports loss_a + loss_b, twice this value for V = 2.
 * Stable (log-sum-exp; checked against PyTorch at temperature 0.01, D 8192).
 * Scratch (about (V*N)^2 + V*N*D floats) is kept in the loss and grown when
 * the batch grows.
 * Returns SIMCLR_OK and the loss in *out; SIMCLR_E_INVALID for a NULL ctx or
 * out, a temperature out of range; SIMCLR_E_NOMEM. The context is borrowed;
 * *out is owned by the caller (simclr_loss_destroy) and untouched on error.
 * Threads: may run concurrently with calls on other contexts only. */
SIMCLR_API simclr_status simclr_ntxent_create(simclr_context *ctx, double temperature, int n_views,
                                              simclr_loss **out);

/* Frees the loss and its scratch. NULL is a no-op. A trainer borrowing the
 * loss must be destroyed first; not concurrently with a call using it.
 * Threads: may run concurrently with calls on other contexts only. */
SIMCLR_API void simclr_loss_destroy(simclr_loss *loss);

/* Computes the NT-Xent loss of z and keeps what backward needs (z itself is
 * not kept: the caller may reuse it). A cross-entropy or distillation loss
 * is refused (SIMCLR_E_INVALID: they take labels or a teacher, see
 * simclr_loss_forward_labels and simclr_loss_forward_distill). accuracy may be NULL: the fraction of
 * anchors whose most similar other row is a positive (contrastive top-1).
 * SIMCLR_E_SHAPE unless z is F32 [rows, D] with rows a multiple of n_views;
 * SIMCLR_E_NUMERIC when z holds a NaN or infinity; SIMCLR_E_NOMEM when the
 * scratch cannot grow. On any error the previous forward stays usable.
 * value may not be NULL (SIMCLR_E_INVALID, as for a NULL loss or z); *value and
 * *accuracy are written only on success. Threads: may run concurrently with
 * calls on other contexts only. */
SIMCLR_API simclr_status simclr_loss_forward(simclr_loss *loss, const simclr_tensor *z,
                                             float *value, float *accuracy);

/* Writes d(loss)/dz into dz (F32, z's shape, may be z's own buffer) for the
 * last forward; may be called again for the same forward. For every kind of
 * loss: after simclr_loss_forward_labels dz is d(loss)/d(logits), after
 * simclr_loss_forward_distill d(loss)/d(student logits) (the teacher gets
 * no gradient), both F32 [N, classes].
 * SIMCLR_E_STATE without a preceding forward, SIMCLR_E_SHAPE for another shape.
 * SIMCLR_E_INVALID for a NULL loss or dz; dz is untouched on error. Threads:
 * may run concurrently with calls on other contexts only. */
SIMCLR_API simclr_status simclr_loss_backward(simclr_loss *loss, simclr_tensor *dz);

/* Supervised losses for fine-tuning and distillation (SimCLR v2): simclr_loss
 * objects like NT-Xent (simclr_loss_destroy, simclr_loss_backward), computed
 * with the forward of their kind. Every value and gradient is computed in
 * double from a log-sum-exp with the row maximum subtracted, so logits up to
 * the float range give finite, exact-to-rounding results. The gradient is
 * computed with the value and kept (N x classes floats of scratch, grown
 * when the batch grows); the logits, labels and teacher are not kept. */

/* Keys for simclr_loss_set/get. Append-only, grouped. A key that does not
 * apply to the loss's kind is refused. */
typedef enum simclr_loss_param {
    SIMCLR_LOSS_TEMPERATURE       = 100, /* read-only: NT-Xent's or the distillation's
                                            temperature (fixed at creation) */
    SIMCLR_LOSS_N_VIEWS           = 101, /* read-only: NT-Xent's views per sample */
    SIMCLR_LOSS_CLASSES           = 200, /* read-only: classes of a cross-entropy or
                                            distillation loss */
    SIMCLR_LOSS_LABEL_SMOOTHING   = 201, /* cross-entropy, and the distillation's label
                                            term: eps in [0, 1], default 0 */
    SIMCLR_LOSS_LABEL_WEIGHT      = 300, /* distillation: weight w in [0, 1] of the
                                            cross-entropy on labelled rows, default 0
                                            (the paper's alpha is 1 - w) */
    SIMCLR_LOSS_TEMPERATURE_SCALE = 301  /* distillation: 1 (default) multiplies the
                                            distillation term by tau^2, 0 does not */
} simclr_loss_param;

/* Softmax cross-entropy over class logits F32 [N, n_classes] with integer
 * labels: torch.nn.functional.cross_entropy(logits, labels,
 * label_smoothing=eps) with its mean reduction. With p = softmax(row) and
 * the target q_k = (1 - eps) [k = label] + eps / n_classes,
 *   loss = mean over the N rows of -sum_k q_k log p_k,
 *   d(loss)/d(logits) = (p - q) / N.
 * eps = SIMCLR_LOSS_LABEL_SMOOTHING (default 0). Compute it with
 * simclr_loss_forward_labels, then simclr_loss_backward.
 * n_classes 2..1048576. Returns SIMCLR_OK and the loss in *out;
 * SIMCLR_E_INVALID for a NULL ctx or out or n_classes out of range;
 * SIMCLR_E_NOMEM. The context is borrowed; *out is owned by the caller
 * (simclr_loss_destroy) and untouched on error. Threads: may run
 * concurrently with calls on other contexts only. */
SIMCLR_API simclr_status simclr_cross_entropy_create(simclr_context *ctx, int n_classes, simclr_loss **out);

/* The distillation loss of SimCLR v2 (Chen et al. 2020, section 2.3) over a
 * student's logits s and a teacher's logits t, both F32 [N, n_classes]:
 * the teacher's softened probabilities p_t = softmax(t / tau) are the
 * targets (no gradient), log p_s = log_softmax(s / tau), and
 *   L_distill = mean over rows of -c sum_k p_t,k log p_s,k,
 * a cross-entropy (its minimum is c times the teacher's entropy, not 0).
 * c = tau^2 when SIMCLR_LOSS_TEMPERATURE_SCALE is 1 (the default), as the
 * official code does (google-research/simclr, tf2/colabs/
 * distillation_self_training.ipynb, add_kd_loss; Hinton et al. 2015): it
 * keeps the gradient's size about independent of tau. c = 1 when it is 0:
 * the paper's equation (3) as printed. Both agree at tau = 1, the paper's
 * setting. With labels (-1 marks an unlabelled row) and w =
 * SIMCLR_LOSS_LABEL_WEIGHT, the cross-entropy of the student's plain logits
 * on the labelled rows is mixed in (the paper's equation (4), its alpha =
 * 1 - w):
 *   loss = (1 - w) L_distill + w L_label,
 * L_label = the mean over the labelled rows of simclr_cross_entropy_create's
 * row loss (label smoothing included), 0 when no row is labelled.
 * Gradient at s: (1 - w) c (p_s - p_t) / (tau N), plus on labelled rows
 * w (softmax(s) - q) / N_labelled.
 * temperature in [0.01, 100]; n_classes 2..1048576. Compute it with
 * simclr_loss_forward_distill, then simclr_loss_backward. Returns SIMCLR_OK
 * and the loss in *out; SIMCLR_E_INVALID for a NULL ctx or out, a
 * temperature or n_classes out of range; SIMCLR_E_NOMEM. The context is
 * borrowed; *out is owned by the caller (simclr_loss_destroy) and untouched
 * on error. Threads: may run concurrently with calls on other contexts
 * only. */
SIMCLR_API simclr_status simclr_distill_create(simclr_context *ctx, int n_classes, double temperature,
                                               simclr_loss **out);

/* Sets / reads (into *value) a setting of a loss (simclr_loss_param); the
 * next forward uses it. Returns SIMCLR_OK; SIMCLR_E_INVALID for a NULL loss
 * (or get's value), an unknown key, a key that does not apply to the loss's
 * kind (the message names both), a read-only key (set), a value out of
 * range or not whole for TEMPERATURE_SCALE. A failing set changes nothing;
 * get leaves *value untouched on error. Threads: may run concurrently with
 * calls on other contexts only. */
SIMCLR_API simclr_status simclr_loss_set(simclr_loss *loss, simclr_loss_param key, double value);
SIMCLR_API simclr_status simclr_loss_get(const simclr_loss *loss, simclr_loss_param key, double *value);

/* Computes a cross-entropy loss (simclr_cross_entropy_create) of logits F32
 * [N, classes] against labels[0 .. n_labels), n_labels = N, each label in
 * [0, classes), and keeps its gradient for simclr_loss_backward. *value =
 * the loss; accuracy may be NULL, else *accuracy = the top-1 accuracy of the
 * batch: the fraction of rows whose largest logit (ties: the lower class)
 * is the label. Returns SIMCLR_OK; SIMCLR_E_INVALID for a NULL loss,
 * logits, labels or value, a loss of another kind, a label out of range
 * (the message names the row and the label); SIMCLR_E_SHAPE when logits
 * are not F32 [N, classes] or n_labels is not N (checked before a label is
 * read); SIMCLR_E_NUMERIC for a NaN or infinite logit (the row named);
 * SIMCLR_E_NOMEM when the scratch cannot grow. On error *value and
 * *accuracy are untouched and the previous forward stays usable. logits
 * and labels are only read. Threads: may run concurrently with calls on
 * other contexts only. */
SIMCLR_API simclr_status simclr_loss_forward_labels(simclr_loss *loss, const simclr_tensor *logits,
                                                    const int32_t *labels, int64_t n_labels, float *value,
                                                    float *accuracy);

/* Computes a distillation loss (simclr_distill_create) of the student's
 * logits against the teacher's, both F32 [N, classes], and keeps its
 * gradient at the student's logits for simclr_loss_backward. labels may be
 * NULL (n_labels 0: no row labelled), else n_labels = N and each label is
 * -1 (unlabelled) or in [0, classes). *value = the loss; accuracy may be
 * NULL, else *accuracy = the fraction of rows whose top-1 class (ties: the
 * lower class) is the teacher's. Returns SIMCLR_OK; SIMCLR_E_INVALID for a
 * NULL loss, student, teacher or value, a loss of another kind, labels NULL
 * with n_labels > 0, a label out of range (row and label named);
 * SIMCLR_E_SHAPE when student or teacher is not F32 [N, classes] (the same
 * N) or n_labels is neither 0 nor N; SIMCLR_E_NUMERIC for a NaN or infinite
 * logit (which tensor and row named); SIMCLR_E_NOMEM. On error *value and
 * *accuracy are untouched and the previous forward stays usable. The
 * tensors and labels are only read. Threads: may run concurrently with
 * calls on other contexts only. */
SIMCLR_API simclr_status simclr_loss_forward_distill(simclr_loss *loss, const simclr_tensor *student,
                                                     const simclr_tensor *teacher, const int32_t *labels,
                                                     int64_t n_labels, float *value, float *accuracy);

/* ======================================================================== */
/* Optimizers and learning-rate schedule                                     */
/* ======================================================================== */

typedef struct simclr_optimizer simclr_optimizer;

typedef enum simclr_optimizer_kind {
    SIMCLR_OPT_SGD   = 0,
    SIMCLR_OPT_ADAMW = 1,
    SIMCLR_OPT_LARS  = 2
} simclr_optimizer_kind;
typedef enum simclr_optimizer_kind simclr_opt_kind; /* the 0.1 name, kept as an alias */

/* Keys for simclr_optimizer_set/get. Append-only, grouped by rule. */
typedef enum simclr_optimizer_param {
    SIMCLR_OPT_LR              = 100, /* base (peak) learning rate, default 0.1 (AdamW 1e-3) */
    SIMCLR_OPT_MOMENTUM        = 101, /* SGD/LARS, [0, 1), default 0.9 */
    SIMCLR_OPT_NESTEROV        = 102, /* SGD/LARS, 0 or 1, default 0 */
    SIMCLR_OPT_WEIGHT_DECAY    = 103, /* >= 0, default 1e-6 (AdamW 1e-2) */
    SIMCLR_OPT_EXCLUDE_NO_DECAY= 104, /* 1 (default): SIMCLR_PARAM_NO_DECAY tensors get no
                                         decay and (LARS) no trust ratio */
    SIMCLR_OPT_BETA1           = 200, /* AdamW, default 0.9 */
    SIMCLR_OPT_BETA2           = 201, /* AdamW, default 0.999 */
    SIMCLR_OPT_EPS             = 202, /* AdamW, > 0, default 1e-8 */
    SIMCLR_OPT_LARS_ETA        = 300, /* LARS trust coefficient, > 0, default 0.001 */
    SIMCLR_OPT_WARMUP_STEPS    = 400, /* linear warmup from 0, default 0 */
    SIMCLR_OPT_TOTAL_STEPS     = 401, /* cosine decay to 0 at this step; 0 (default) = constant */
    SIMCLR_OPT_STEP            = 402  /* the schedule's step counter (read/write, for resuming);
                                         AdamW's bias correction uses STEP + 1 */
} simclr_optimizer_param;
typedef enum simclr_optimizer_param simclr_opt_param; /* the 0.1 name, kept as an alias */

/* Update rules (per element, float32):
 *  SGD   as torch.optim.SGD (dampening 0): d = g + wd*w; buf = momentum*buf + d
 *        (buf starts at 0, so the first step has buf = d); w -= lr * (nesterov ?
 *        d + momentum*buf : buf).
 *  AdamW as torch.optim.AdamW (decoupled decay w *= 1 - lr*wd, bias correction).
 *  LARS  as the official SimCLR tf2/lars_optimizer.py (classic momentum):
 *        g' = g + wd*w; ratio = eta*||w||/||g'|| (1 when either norm is 0);
 *        v = momentum*v + lr*ratio*g'; w -= nesterov ? momentum*v + lr*ratio*g' : v.
 * With SIMCLR_OPT_EXCLUDE_NO_DECAY, SIMCLR_PARAM_NO_DECAY tensors get wd = 0
 * and (LARS) ratio 1. Buffers (SIMCLR_PARAM_BUFFER) are never touched.
 * Schedule (the official tf2 WarmUpAndCosineDecay): with base = SIMCLR_OPT_LR,
 * W = WARMUP_STEPS, T = TOTAL_STEPS, s = STEP:
 *   s >= T > 0: 0;  s < W: base*s/W (the first step runs at rate 0);
 *   T = 0: base;    else base * (1 + cos(pi*(s-W)/(T-W))) / 2.
 *
 * Creates an optimizer over the trained parameters of n_modules (1..16)
 * distinct borrowed modules of ctx (they must outlive it). State tensors are
 * allocated, zeroed, now. Returns SIMCLR_OK and the optimizer in *out;
 * SIMCLR_E_INVALID for a NULL ctx, modules or out, a bad kind, count, a NULL
 * or repeated module or one of another context; SIMCLR_E_NOMEM. The modules
 * array is only read during the call. *out is owned by the caller
 * (simclr_optimizer_destroy) and untouched on error. Threads: may run
 * concurrently with calls on other contexts only. */
SIMCLR_API simclr_status simclr_optimizer_create(simclr_context *ctx, simclr_optimizer_kind kind,
                                                 simclr_module *const *modules, int n_modules,
                                                 simclr_optimizer **out);

/* Frees the optimizer and its state tensors (the modules it borrows are
 * untouched). NULL is a no-op. A trainer borrowing it must be destroyed
 * first; not concurrently with a call using it.
 * Threads: may run concurrently with calls on other contexts only. */
SIMCLR_API void simclr_optimizer_destroy(simclr_optimizer *opt);
/* Sets / reads (into *value) one setting. Returns SIMCLR_OK;
 * SIMCLR_E_INVALID (message naming the key and kind) for an unknown key, a key that does not apply to the optimizer's kind, or a value out of
 * range (a failing set changes nothing). Step counts must be whole numbers.
 * SIMCLR_E_INVALID also for a NULL opt (or get's value); get leaves *value
 * untouched on error. Threads: may run concurrently with calls on other
 * contexts only. */
SIMCLR_API simclr_status simclr_optimizer_set(simclr_optimizer *opt, simclr_optimizer_param key,
                                              double value);
SIMCLR_API simclr_status simclr_optimizer_get(const simclr_optimizer *opt, simclr_optimizer_param key,
                                              double *value);

/* The learning rate the next step will use (warmup and cosine applied), into
 * *lr. Returns SIMCLR_OK; SIMCLR_E_INVALID for a NULL opt or lr (*lr then untouched). Threads: may run
 * concurrently with calls on other contexts only. */
SIMCLR_API simclr_status simclr_optimizer_lr(const simclr_optimizer *opt, double *lr);

/* Updates every parameter from its gradient at the scheduled rate and advances
 * the step. Gradients are all checked before anything is written:
 * SIMCLR_E_NUMERIC (naming the tensor; parameters, state and STEP unchanged)
 * when a gradient is not finite; past that check a step cannot fail and does
 * not allocate. Gradients are not zeroed. Returns SIMCLR_OK;
 * SIMCLR_E_INVALID for a NULL opt (nothing changes). Threads: may run concurrently with calls on
 * other contexts only. */
SIMCLR_API simclr_status simclr_optimizer_step(simclr_optimizer *opt);

/* Optimizer state tensors (momentum buffers, Adam moments) for checkpoints.
 * simclr_optimizer_state_count returns their number (0 for NULL; never
 * fails). simclr_optimizer_state gives entry index's name
 * ("momentum.layer1.0.conv1.weight") in *name and its tensor in *value, both
 * owned by the optimizer and valid for its life; either output may be NULL.
 * Returns SIMCLR_OK; SIMCLR_E_INVALID for a NULL opt or an index out of range
 * (the outputs then untouched). Threads: may run concurrently with calls on
 * other contexts only. */
SIMCLR_API int simclr_optimizer_state_count(const simclr_optimizer *opt);
SIMCLR_API simclr_status simclr_optimizer_state(simclr_optimizer *opt, int index, const char **name,
                                                simclr_tensor **value);

/* SimCLR learning-rate scaling: 0.3 * batch / 256 style (linear) and
 * 0.075 * sqrt(batch) style (square root). Returns base * batch / 256 and
 * base * sqrt(batch); 0 for a batch < 1. Pure functions: no pointer, no
 * state. Never fail. Threads: any thread, any time. */
SIMCLR_API double simclr_lr_linear_scaling(double base, int64_t batch);
SIMCLR_API double simclr_lr_sqrt_scaling(double base, int64_t batch);

/* ======================================================================== */
/* Trainer: one step pipeline                                                */
/* ======================================================================== */

typedef struct simclr_trainer simclr_trainer;

/* Keys for simclr_trainer_stat. Append-only, grouped. */
typedef enum simclr_trainer_stat_key {
    SIMCLR_STAT_LOSS           = 100,
    SIMCLR_STAT_ACCURACY       = 101, /* contrastive top-1 */
    SIMCLR_STAT_LR             = 102, /* learning rate used by the step */
    SIMCLR_STAT_GRAD_NORM      = 103, /* global L2 norm of all gradients */
    SIMCLR_STAT_IMAGES_PER_SEC = 104, /* views per second of the whole step */
    SIMCLR_STAT_STEP           = 105, /* steps done */
    /* Distributed training and gradient caching (see simclr_trainer_set_comm). */
    SIMCLR_STAT_COMM_BYTES     = 200, /* payload bytes this rank passed to collectives
                                         in the last step (0 without a communicator
                                         attached, whatever the micro-batch and BN
                                         settings; an attached simclr_comm_single counts) */
    SIMCLR_STAT_MICRO_BATCHES  = 201  /* micro-batches the last step ran */
} simclr_trainer_stat_key;
typedef enum simclr_trainer_stat_key simclr_stat; /* the 0.1 name, kept as an alias */

/* Composes borrowed pieces (all must outlive the trainer): aug makes the two
 * views, encoder and head map them to z, loss is NT-Xent with n_views = 2,
 * opt covers encoder and head. Every piece must come from ctx, encoder and
 * head must be distinct, and opt must train exactly the parameters of encoder
 * and head (SIMCLR_E_INVALID naming the piece or the first parameter left
 * out); SIMCLR_E_SHAPE when the head's input is not the encoder's output;
 * SIMCLR_E_NOMEM. Returns SIMCLR_OK and the trainer in *out, owned by the
 * caller (simclr_trainer_destroy) and untouched on error.
 * SIMCLR_E_INVALID also for any NULL argument. Threads: may run concurrently
 * with calls on other contexts only. */
SIMCLR_API simclr_status simclr_trainer_create(simclr_context *ctx, simclr_module *encoder,
                                               simclr_module *head, simclr_augment *aug,
                                               simclr_loss *loss, simclr_optimizer *opt,
                                               simclr_trainer **out);

/* Frees the trainer and its step buffers; the borrowed pieces (encoder,
 * head, policy, loss, optimizer) are untouched and stay the caller's.
 * NULL is a no-op. Not concurrently with a call using the trainer.
 * Threads: may run concurrently with calls on other contexts only. */
SIMCLR_API void simclr_trainer_destroy(simclr_trainer *tr);

/* One step on images U8 [N, H, W, C] (N >= 1): two views from seed, encoder +
 * head on the 2N views, loss, backward, optimizer step. loss may be NULL.
 * On success the parameter gradients hold this step's gradients. On any
 * error (SIMCLR_E_NUMERIC for a non-finite loss or gradient, SIMCLR_E_NOMEM,
 * SIMCLR_E_SHAPE, SIMCLR_E_IO from the communicator, SIMCLR_E_CANCELLED)
 * parameters, gradients, BN running statistics, optimizer state and both
 * step counters are exactly as before the call, with or without
 * micro-batches and a communicator.
 * images is only read. SIMCLR_E_INVALID for a NULL tr or images, SIMCLR_E_SHAPE
 * for images that are not U8 [N, H, W, C] of the encoder's channel count;
 * SIMCLR_E_CANCELLED (see simclr_progress_cancel_fn). Returns SIMCLR_OK and
 * the step's loss in *loss, which is written only on success. Threads: may
 * run concurrently with calls on other contexts only. */
SIMCLR_API simclr_status simclr_trainer_step(simclr_trainer *tr, const simclr_tensor *images,
                                             uint64_t seed, float *loss);

/* simclr_trainer_step over an image list (count >= 1, channels = the
 * encoder's input channels): the same step, views cropped from each image's
 * full resolution. Same guarantees and errors as simclr_trainer_step (loss
 * may be NULL; SIMCLR_E_INVALID for a NULL tr or images or an empty list;
 * on error the trainer and *loss are untouched). images is only read.
 * Threads: may run concurrently with calls on other
 * contexts only. */
SIMCLR_API simclr_status simclr_trainer_step_list(simclr_trainer *tr,
                                                  const simclr_image_list *images, uint64_t seed,
                                                  float *loss);

/* Reads a statistic of the last successful step into *value. Returns
 * SIMCLR_OK; SIMCLR_E_INVALID for a NULL tr or value or an
 * unknown key (*value then untouched). Threads: may run concurrently with
 * calls on other contexts only. */
SIMCLR_API simclr_status simclr_trainer_stat(const simclr_trainer *tr, simclr_trainer_stat_key key,
                                             double *value);

/* Supervised fine-tuning (SimCLR v1 section 6, SimCLR v2) as a trainer:
 * a fine-tuning trainer is a simclr_trainer (simclr_trainer_stat, _set /
 * _get, _save / _load and _destroy take it as any other), stepped with
 * simclr_trainer_step_labels. Borrowed pieces (all must outlive it, all from
 * ctx): encoder, head (any module mapping the encoder's features to class
 * logits, e.g. simclr_linear_head_create, or a projection head's first layers
 * followed by one), aug (makes one view per image: its view 0;
 * SIMCLR_AUG_PRESET_FINETUNE is SimCLR's fine-tuning choice, crop + flip),
 * loss (simclr_cross_entropy_create with the head's class count, label
 * smoothing as set on it; or simclr_distill_create for a distillation
 * student, stepped with simclr_trainer_step_distill) and opt. opt decides freezing: over encoder and
 * head it fine-tunes the whole network; over the head only the encoder is
 * frozen (it runs in EVAL mode, without backward, and is never updated:
 * SIMCLR_TRAINER_FREEZE_ENCODER reads 1). The checkpoint's architecture
 * string records the class count and the freezing ("finetune-trainer v1;
 * ...; finetune: classes=K encoder=frozen|trained", then " loss=distillation"
 * for a distillation student).
 * Returns SIMCLR_OK and the trainer in *out, owned by the caller
 * (simclr_trainer_destroy) and untouched on error. SIMCLR_E_INVALID for a
 * NULL argument, encoder == head, a piece of another context, an NT-Xent
 * loss, an opt that covers part of the encoder or misses a head parameter
 * (the parameter named); SIMCLR_E_SHAPE when the head's
 * input is not the encoder's output or its output is not the loss's class
 * count; SIMCLR_E_NOMEM. Threads: may run concurrently with calls on other
 * contexts only. (0.2.0) */
SIMCLR_API simclr_status simclr_finetune_trainer_create(simclr_context *ctx, simclr_module *encoder,
                                                        simclr_module *head, simclr_augment *aug,
                                                        simclr_loss *loss, simclr_optimizer *opt,
                                                        simclr_trainer **out);

/* One fine-tuning step on images U8 [N, H, W, C] (N >= 1) with labels[0 ..
 * n_labels), n_labels = N, each in [0, classes): one view per image (view 0
 * of the policy, drawn from seed and the image's index), encoder + head in
 * TRAIN mode (BN batch statistics, running statistics updated; a frozen
 * encoder in EVAL mode), the cross-entropy of the logits against the labels
 * (mean over the N rows), backward, optimizer step. With
 * SIMCLR_TRAINER_MICRO_BATCH m the N images are run m at a time and the
 * gradient is that of the whole batch's loss (exact up to BN, see
 * simclr_trainer_set). loss may be NULL; on success *loss is the step's
 * loss, SIMCLR_STAT_LOSS its double value and SIMCLR_STAT_ACCURACY the
 * batch's top-1 accuracy (ties: the lower class). Errors and guarantees as
 * simclr_trainer_step (a failed step leaves parameters, gradients, BN
 * statistics, optimizer state and counters as they were), and, before
 * anything runs: SIMCLR_E_INVALID for a NULL tr, images or labels, a
 * trainer that is not a fine-tuning one, a label out of range (the message
 * names the row: "labels[3] = 12 is outside 0..9"); SIMCLR_E_SHAPE for
 * images that are not U8 [N, H, W, C] of the encoder's channels or n_labels
 * != N, and SIMCLR_E_INVALID for a trainer with a distillation loss (it
 * takes simclr_trainer_step_distill). simclr_trainer_step on a fine-tuning
 * trainer fails with SIMCLR_E_INVALID (it needs labels). images and labels
 * are only read.
 * Threads: may run concurrently with calls on other contexts only.
 * (0.2.0) */
SIMCLR_API simclr_status simclr_trainer_step_labels(simclr_trainer *tr, const simclr_tensor *images,
                                                    const int32_t *labels, int64_t n_labels, uint64_t seed,
                                                    float *loss);

/* One distillation step (SimCLR v2 section 2.3) of a fine-tuning trainer
 * created with a distillation loss (simclr_distill_create; the trained
 * encoder + head are the student): the step of simclr_trainer_step_labels,
 * except that the teacher (teacher_encoder + teacher_head, borrowed for the
 * call, any architecture with the student's input channels and class count)
 * also runs over the same views, in EVAL mode and without gradient (its
 * parameters, BN statistics and gradients are not touched), and the loss is
 * simclr_loss_forward_distill of the student's logits against the
 * teacher's, with labels (labels NULL and n_labels 0: none; else n_labels =
 * N, each -1 for an unlabelled image or in [0, classes)).
 * SIMCLR_STAT_ACCURACY is the fraction of images whose top-1 class is the
 * teacher's. The teacher's views and logits are scratch of the call
 * (allocated and freed by it). Returns SIMCLR_OK and *loss (may be NULL);
 * errors and guarantees as simclr_trainer_step_labels (a failed step leaves
 * the student, its optimizer and the counters as they were), and, before
 * anything runs: SIMCLR_E_INVALID for a NULL tr, images or teacher module,
 * a trainer without a distillation loss, labels NULL with n_labels > 0, a
 * label out of range (row named), a teacher module that is one of the
 * student's or the same for both roles, or of another context;
 * SIMCLR_E_SHAPE for images as simclr_trainer_step_labels, n_labels neither
 * 0 nor N, a teacher whose input channels, inner widths or class count do
 * not fit. images, labels and the teacher's parameters are only read.
 * Threads: may run concurrently with calls on other contexts only; the
 * teacher must not be used by another call at the same time. (0.2.0) */
SIMCLR_API simclr_status simclr_trainer_step_distill(simclr_trainer *tr, const simclr_tensor *images,
                                                     simclr_module *teacher_encoder,
                                                     simclr_module *teacher_head, const int32_t *labels,
                                                     int64_t n_labels, uint64_t seed, float *loss);

/* ======================================================================== */
/* Distributed training and gradient caching                                 */
/* ======================================================================== */

/* Data-parallel training over P processes (ranks) and contrastive batches
 * larger than memory. libsimclr has no MPI (or any network) dependency: the
 * host fills in a communicator, normally through the optional companion
 * library libsimclr_mpi (include/simclr_mpi.h, built by `make mpi`; its
 * errors come through simclr_last_error() like the core's).
 * docs/distributed.md: launching, sharding, what is synchronized, memory.
 *
 * The communicator. Frozen forever: fields are never added, removed or
 * reordered. Every function receives `user`. Counts are float32 elements.
 *  rank, size:     this process's index 0..size-1 and the number of ranks
 *                  (size >= 1); constant for the communicator's life.
 *  all_reduce_sum: replaces data[0..count) on every rank by the element-wise
 *                  sum over all ranks. Every rank must receive bit-identical
 *                  results (reduce to one rank, then broadcast, does; some
 *                  all-reduce algorithms do not), else replicas drift apart.
 *  all_gather:     recv[r*count .. (r+1)*count) = rank r's send[0..count);
 *                  recv holds size*count floats and does not overlap send.
 *  broadcast:      data[0..count) of rank `root` is copied to every rank.
 *  error_string:   may be NULL; a short static text for a code a collective
 *                  returned (used in simclr_last_error()).
 * Error and timeout convention: a collective returns 0 on success and any
 * other value on failure. It must return within a bounded time: a peer that
 * died or stopped calling must become a failure (a timeout), never a hang.
 * After a collective fails the library makes no further call to the
 * communicator within the same library call and returns SIMCLR_E_IO naming
 * the collective, the rank and the host's error text; the job is then in an
 * unknown state (other ranks fail too, by error or timeout) and the host
 * should end it (MPI_Abort). All ranks make the same sequence of calls with
 * the same counts; calls come from the thread that called the library. */
typedef struct simclr_comm {
    int (*rank)(void *user);
    int (*size)(void *user);
    int (*all_reduce_sum)(void *user, float *data, int64_t count);
    int (*all_gather)(void *user, const float *send, int64_t count, float *recv);
    int (*broadcast)(void *user, float *data, int64_t count, int root);
    const char *(*error_string)(void *user, int code);
    void *user;
} simclr_comm;

/* Checks a communicator: comm and every function but error_string non-NULL,
 * size >= 1 and 0 <= rank < size. Returns SIMCLR_OK; SIMCLR_E_INVALID naming
 * the fault. Makes no collective call and changes nothing (comm is only
 * read). comm may be NULL (SIMCLR_E_INVALID). Calls only comm's rank and size.
 * Threads: any thread, as far as those two functions allow. */
SIMCLR_API simclr_status simclr_comm_validate(const simclr_comm *comm);

/* Fills *out with the single-process communicator (rank 0 of 1: the sum and
 * the broadcast leave data as it is, the gather copies). Its user is NULL;
 * it needs no destruction and may be shared by any number of trainers.
 * SIMCLR_E_INVALID for a NULL out; cannot fail otherwise. Threads: any thread,
 * any time. */
SIMCLR_API simclr_status simclr_comm_single(simclr_comm *out);

/* Batch-norm statistics in a trainer step (SIMCLR_TRAINER_BN_MODE). */
typedef enum simclr_bn_mode {
    SIMCLR_BN_LOCAL  = 0, /* per replica and per micro-batch (default) */
    SIMCLR_BN_SYNC   = 1, /* mean and variance over the same micro-batch of every
                             rank (synchronized BN); the backward matches */
    SIMCLR_BN_FROZEN = 2  /* running statistics, not updated (EVAL-like
                             normalization with gradients; affine still trained) */
} simclr_bn_mode;

/* Trainer settings (simclr_trainer_set / simclr_trainer_get). */
typedef enum simclr_trainer_param {
    SIMCLR_TRAINER_MICRO_BATCH  = 100, /* gradient caching: pairs per micro-batch,
                                          0 (default) = the whole local batch at once;
                                          must divide the local batch */
    SIMCLR_TRAINER_BN_MODE      = 200, /* a simclr_bn_mode, default SIMCLR_BN_LOCAL */
    SIMCLR_TRAINER_BUCKET_BYTES = 300, /* gradient all-reduce bucket, 4096..2^31,
                                          default 4 MiB (a multiple of 4) */
    SIMCLR_TRAINER_FREEZE_ENCODER = 400 /* fine-tuning trainers: 1 when the encoder is frozen
                                           (EVAL mode, no backward, not updated), 0 when it
                                           is fine-tuned. It follows the optimizer given to
                                           simclr_finetune_trainer_create (head only: 1);
                                           set accepts only that value (SIMCLR_E_INVALID
                                           otherwise, SIMCLR_E_UNSUPPORTED for other
                                           methods) (0.2.0) */
} simclr_trainer_param;

/* Sets / reads (into *value) a trainer setting. Returns SIMCLR_OK;
 * SIMCLR_E_INVALID (naming the key) for an unknown key or a value out of range; a failing set changes nothing;
 * SIMCLR_E_UNSUPPORTED when the trainer's method cannot run the combination
 * (see "What combines" below). With a
 * micro-batch of m pairs, simclr_trainer_step embeds the B local pairs m at a
 * time keeping only the embeddings, computes the loss and its gradient at the
 * embeddings of the whole (global) batch, then re-runs each micro-batch
 * (identical augmentation: draws are keyed by the pair's index) and
 * back-propagates its slice of that gradient: peak activation memory is that
 * of m pairs, for about 1.3x the compute. Batch norm then normalizes each
 * micro-batch by its own statistics (SIMCLR_BN_LOCAL / SYNC) and updates the
 * running statistics once per micro-batch: the gradients equal the
 * whole-batch ones exactly only with SIMCLR_BN_FROZEN or a model without BN.
 * SIMCLR_E_INVALID also for a NULL tr (or get's value); get leaves *value
 * untouched on error. Threads: may run concurrently with calls on other
 * contexts only. */
SIMCLR_API simclr_status simclr_trainer_set(simclr_trainer *tr, simclr_trainer_param key,
                                            double value);
SIMCLR_API simclr_status simclr_trainer_get(const simclr_trainer *tr, simclr_trainer_param key,
                                            double *value);

/* Attaches a communicator (copied; comm NULL detaches and the trainer is a
 * single process again). A collective call: every rank calls it, and it
 * broadcasts rank 0's parameters, buffers, optimizer state and step so every
 * replica starts identical (SIMCLR_E_SHAPE, on every rank, when the ranks'
 * models differ in size). From then on simclr_trainer_step on each rank takes
 * that rank's shard (the same N >= 1 on every rank, else SIMCLR_E_SHAPE on
 * every rank): rank r's image i is pair r*N + i of the global batch of P*N
 * pairs (augmentation keyed by that index, so P ranks augment exactly as one
 * process with all P*N images). Embeddings are all-gathered, every rank
 * computes NT-Xent over the global batch and back-propagates the exact
 * gradient of the global loss at its own embeddings; parameter gradients are
 * summed over ranks in buckets; every rank applies the same update. BN per
 * SIMCLR_TRAINER_BN_MODE (with SIMCLR_BN_LOCAL rank 0's running statistics
 * are broadcast after each step). simclr_trainer_save then writes the file
 * from rank 0 only (atomically) and returns rank 0's status on every rank;
 * simclr_trainer_load reads it on each rank (any number of ranks).
 * Communication failures: SIMCLR_E_IO (see simclr_comm); like every failed
 * step, parameters, BN statistics and optimizer state are left as they were.
 * A failure inside simclr_trainer_set_comm itself, past the size check, may
 * leave this rank with part of rank 0's state: the job must end then.
 * Returns SIMCLR_OK; SIMCLR_E_INVALID for a NULL tr or a communicator that
 * simclr_comm_validate refuses (nothing changes then); comm is only read.
 * A MoCo trainer also broadcasts its key modules, the queue and its
 * position.
 * Threads: may run concurrently with calls on
 * other contexts only. */
SIMCLR_API simclr_status simclr_trainer_set_comm(simclr_trainer *tr, const simclr_comm *comm);

/* What combines. Every trainer runs one step pipeline (views, forward,
 * the method's loss and its gradient at the embeddings, backward, gradient
 * reduction, optimizer commit, one rollback for every failure); a method is
 * an entry of it. A combination a trainer's method cannot run is refused
 * with SIMCLR_E_UNSUPPORTED and the reason, by the call that makes it
 * (simclr_trainer_set, simclr_trainer_set_comm, simclr_trainer_step_list),
 * before anything changes; never from inside a step.
 *                        SimCLR  MoCo v2  SwAV  fine-tuning / distillation
 *   micro-batches          yes     yes      yes   yes
 *   communicator (ranks)   yes     yes      yes   no (labels not gathered yet)
 *   SIMCLR_BN_SYNC         yes     yes      yes   yes
 *   SIMCLR_BN_FROZEN       yes     yes      yes   yes
 *   image lists            yes     yes      yes   no (the step takes a labelled tensor)
 * MoCo v2: with micro-batches the keys are computed once per step over the
 * local batch and gradient caching runs over the queries; on ranks queries
 * and keys are gathered, InfoNCE runs over the global batch, every rank
 * enqueues the P*N keys, and shuffling BN permutes per rank, not across
 * ranks; with SIMCLR_BN_SYNC the key modules' BN is synchronized too.
 * SwAV: exact with micro-batches (the loss depends on the embeddings and
 * the prototypes only); on ranks the Sinkhorn sums run over the global
 * batch.
 * Fine-tuning (simclr_finetune_trainer_create): micro-batches yes (the
 * cross-entropy is a mean over rows: the gradient at the whole batch's
 * logits, back-propagated per micro-batch); SIMCLR_BN_SYNC and
 * SIMCLR_BN_FROZEN yes (they act on the trained modules; a frozen encoder
 * runs in EVAL mode whatever the mode); communicator no (the labels are not
 * gathered over ranks yet); image lists no (the step takes a labelled
 * tensor). Distillation (simclr_trainer_step_distill) likewise; with
 * micro-batches the teacher runs once per step over the local batch. */

/* ======================================================================== */
/* MoCo v2: a momentum key encoder and a queue of negatives                  */
/* ======================================================================== */

/* MoCo v2 (He et al. 2020, "Momentum Contrast"; Chen, Fan, Girshick, He 2020,
 * "Improved Baselines with Momentum Contrastive Learning") next to SimCLR:
 * the query path (encoder + head) is trained by the optimizer; the key path
 * (key_encoder + key_head, the same architectures) is a momentum copy of it
 * that carries no gradient; the negatives are a queue of K keys of past
 * steps instead of the other images of the batch. A MoCo trainer is a
 * simclr_trainer: simclr_trainer_step, simclr_trainer_stat,
 * simclr_trainer_save / load, simclr_trainer_step_list, simclr_trainer_set /
 * get, simclr_trainer_set_comm and simclr_trainer_destroy take it as they
 * take a SimCLR trainer, so a host switches method at creation only.
 *
 * One step on images U8 [N, H, W, C] with seed s:
 *  1. two views as simclr_augment_pair(aug, images, s): view 0 is the query
 *     x_q, view 1 the key x_k;
 *  2. q = head(encoder(x_q)) in TRAIN mode over the whole batch;
 *  3. shuffling BN, emulated on one process: the key views are permuted (a
 *     permutation drawn from s, see simclr_moco_key_order) and run through
 *     key_encoder + key_head in TRAIN mode in SIMCLR_MOCO_KEY_SPLITS
 *     consecutive sub-batches of N / splits images, each with its own batch
 *     statistics (each sub-batch also advances the key modules' BN running
 *     statistics once), then put back in sample order. MoCo shuffles keys
 *     across GPUs so that a query and its positive key never share BN
 *     statistics; its single-GPU code splits the batch the same way. The
 *     queries keep whole-batch statistics (their backward needs one forward);
 *     with splits = 1 keys use whole-batch statistics and are not permuted;
 *  4. InfoNCE: u = q / ||q||, k = key / ||key|| (F.normalize, eps 1e-12),
 *     logits of row i = [u_i . k_i, u_i . queue_j for the K queue rows j] / T,
 *     loss = mean over i of the cross-entropy with target 0 (the positive);
 *     the gradient flows into the queries only;
 *  5. backward through head and encoder, optimizer step;
 *  6. momentum update of the key modules (simclr_module_momentum_update)
 *     with the coefficient of this step, m_t (see SIMCLR_MOCO_MOMENTUM);
 *  7. the N normalized keys overwrite queue rows pos, pos + 1, ...,
 *     pos + N - 1 modulo K (the oldest) and pos advances by N modulo K.
 * A failing step (SIMCLR_E_NUMERIC for a non-finite loss or gradient,
 * SIMCLR_E_SHAPE for a batch that does not fit the queue or the splits)
 * leaves parameters, gradients, BN statistics, optimizer state, key modules,
 * queue and counters exactly as they were. SIMCLR_STAT_ACCURACY is the fraction of
 * queries whose positive logit is at least every negative one;
 * SIMCLR_STAT_IMAGES_PER_SEC counts 2N views per step. */

/* Keys for simclr_moco_set/get. Append-only, grouped. */
typedef enum simclr_moco_param {
    SIMCLR_MOCO_MOMENTUM       = 100, /* m in [0, 1], default 0.999 */
    SIMCLR_MOCO_MOMENTUM_STEPS = 101, /* BYOL's cosine schedule over T steps, a whole number
                                         >= 0; 0 (default): m_t = m at every step; T > 0:
                                         m_t = 1 - (1 - m) (cos(pi t / T) + 1) / 2 for the
                                         step t = SIMCLR_STAT_STEP before it, 1 from t = T on */
    SIMCLR_MOCO_TEMPERATURE    = 200, /* T in [0.001, 100], default 0.2 (MoCo v2) */
    SIMCLR_MOCO_KEY_SPLITS     = 300, /* shuffled key sub-batches, 1..256, default 8 (MoCo's
                                         single-GPU demo); the local N must be a multiple of it */
    SIMCLR_MOCO_QUEUE_SIZE     = 400, /* K (read-only: fixed at creation) */
    SIMCLR_MOCO_QUEUE_POS      = 401  /* the next queue row to overwrite, 0..K-1 (read/write,
                                         for hosts that restore a queue by hand) */
} simclr_moco_param;

/* Creates a MoCo v2 trainer from borrowed pieces (all must outlive it):
 * encoder and head (the query path, trained by opt, which must cover them),
 * key_encoder and key_head (the key path: the same architectures as encoder
 * and head, four distinct modules of ctx), aug (makes the views), and a queue
 * of queue_size keys (K, 1..2^24; every global batch size P*N used must divide K)
 * initialized as MoCo does: rows drawn from N(0, 1) from seed, then
 * L2-normalized. Creation copies every parameter and buffer of encoder and
 * head into key_encoder and key_head (MoCo's initialization): this is the
 * only call that writes into them outside steps and loads. Defaults: see
 * simclr_moco_param. SIMCLR_E_INVALID (NULLs, repeated modules, a module or
 * opt of another context, K out of range, an opt that misses a parameter of
 * encoder or head or trains one of the key modules), SIMCLR_E_SHAPE (head input != encoder output, a key module of
 * another architecture), SIMCLR_E_NOMEM (the queue is K x head output
 * floats). Returns SIMCLR_OK and the trainer in *out, owned by the caller;
 * free it with simclr_trainer_destroy. On error *out is untouched. Threads: may run concurrently with calls on other
 * contexts only. */
SIMCLR_API simclr_status simclr_moco_trainer_create(simclr_context *ctx, simclr_module *encoder,
                                                    simclr_module *head,
                                                    simclr_module *key_encoder,
                                                    simclr_module *key_head, simclr_augment *aug,
                                                    simclr_optimizer *opt, int64_t queue_size,
                                                    uint64_t seed, simclr_trainer **out);

/* Sets / reads (into *value) a MoCo setting. Returns SIMCLR_OK;
 * SIMCLR_E_INVALID for a NULL trainer, a SimCLR
 * trainer ("not a MoCo trainer"), an unknown or read-only key, a value out of
 * range (the message gives it); a failing set changes nothing.
 * get leaves *value untouched on error. Threads: may run concurrently with
 * calls on other contexts only. */
SIMCLR_API simclr_status simclr_moco_set(simclr_trainer *tr, simclr_moco_param key, double value);
SIMCLR_API simclr_status simclr_moco_get(const simclr_trainer *tr, simclr_moco_param key,
                                         double *value);

/* The queue: *queue receives the trainer's own F32 [K, P] tensor (P = the
 * head's output size), row j one normalized key. Borrowed: valid for the
 * trainer's life; the host may read it, or write it (its rows are used as
 * given, not renormalized) between steps. Returns SIMCLR_OK;
 * SIMCLR_E_INVALID for NULLs or a SimCLR trainer.
 * *queue is untouched on error. Threads: may run concurrently with calls on
 * other contexts only. */
SIMCLR_API simclr_status simclr_moco_queue(simclr_trainer *tr, simclr_tensor **queue);

/* The order in which the last successful step fed the key views to the key
 * modules: order[j] is the batch index of the j-th key; sub-batch s holds
 * positions [s N / splits, (s + 1) N / splits). n must equal that step's N.
 * The permutation is this rank's, a pure function of the step's seed, the
 * rank and N (identity when splits = 1). Returns SIMCLR_OK; SIMCLR_E_INVALID for NULLs or a SimCLR
 * trainer,
 * SIMCLR_E_STATE before the first successful step, SIMCLR_E_SHAPE for
 * another n.
 * order is written only on success. Threads: may run concurrently with calls on
 * other contexts only. */
SIMCLR_API simclr_status simclr_moco_key_order(const simclr_trainer *tr, int64_t *order, int64_t n);

/* ======================================================================== */
/* SwAV: online clustering with swapped assignments                          */
/* ======================================================================== */

/* SwAV (Caron et al. 2020, "Unsupervised Learning of Visual Features by
 * Contrasting Cluster Assignments", Algorithm 1 and the Sinkhorn-Knopp
 * function of its appendix; facebookresearch/swav's main_swav.py for the
 * details) next to SimCLR and MoCo: encoder + head give embeddings z, which
 * are scored against K trained prototypes; each view's codes (a soft
 * assignment of the batch to the prototypes, spread equally over them) are
 * predicted from the other view. The prototypes are a module of their own
 * (simclr_swav_prototypes_create) that the host passes to the optimizer
 * with encoder and head, so that the optimizer, its settings and its
 * checkpointed state cover them like any parameter. A SwAV trainer is a
 * simclr_trainer: simclr_trainer_step, simclr_trainer_stat,
 * simclr_trainer_save / load, simclr_trainer_step_list, simclr_trainer_set /
 * get (micro-batches: exact, the loss depends on the embeddings and the
 * prototypes only), simclr_trainer_set_comm and simclr_trainer_destroy take
 * it as they take a SimCLR trainer.
 *
 * One step on images U8 [N, H, W, C] with seed s (N the global batch: every
 * rank's shard together):
 *  1. two views as simclr_augment_pair(aug, images, s), both trained
 *     (multi-crop, more views of other sizes, is not implemented yet);
 *  2. z = head(encoder(x)) in TRAIN mode; u = z / max(||z||, 1e-12) row-wise;
 *     scores S = u C^T [2N, K] with C the prototypes' "weight" [K, P], used
 *     as it is (unit rows, see below);
 *  3. codes, without gradient, for each view v over its N rows (the paper's
 *     distributed_sinkhorn; with a communicator the sums run over the global
 *     batch, which every rank holds after the gather): Q = exp(S_v / eps)
 *     scaled to total 1, then SIMCLR_SWAV_SINKHORN_ITERATIONS times: each
 *     prototype's sum to 1/K, each sample's sum to 1/N; q_v = N Q (each row
 *     sums to 1). Computed in double;
 *  4. loss = 1/2 sum over (s, t) in {(0, 1), (1, 0)} of
 *     1/N sum_i -sum_k q_s[i, k] log softmax(S_t[i] / T)_k
 *     (main_swav.py's averaging: over the views that give codes, over the
 *     other views, over the batch);
 *  5. backward through the normalization, head and encoder; the gradient at
 *     C goes to the prototypes' gradient, except during the first
 *     SIMCLR_SWAV_FREEZE_PROTOTYPES_STEPS steps (SIMCLR_STAT_STEP below it),
 *     when it stays zero; the optimizer steps;
 *  6. every prototype row is L2-normalized (also done at creation).
 * During the freeze the prototypes' gradient is zero rather than absent (as
 * torch's p.grad = None): an optimizer with weight decay shrinks them along
 * themselves, which step 6 undoes, but its momentum (SGD, LARS) then holds
 * that decay term when they thaw. A failing step (SIMCLR_E_NUMERIC for a
 * non-finite loss, gradient, prototype or a Sinkhorn that breaks down)
 * leaves parameters (prototypes included), gradients, BN statistics,
 * optimizer state and counters exactly as they were. SIMCLR_STAT_ACCURACY
 * is the fraction of (view, image) whose most probable prototype under one
 * view is the largest code of the other; SIMCLR_STAT_IMAGES_PER_SEC counts
 * 2N views per step. Checkpoints carry the prototypes as the module
 * "prototypes." ("prototypes.weight"), the architecture string ends in
 * "; prototypes: K x P". The feature queue for small batches is not
 * implemented yet. */

/* Keys for simclr_swav_set/get. Append-only, grouped. Defaults are
 * main_swav.py's. */
typedef enum simclr_swav_param {
    SIMCLR_SWAV_TEMPERATURE             = 100, /* T in [0.001, 100], default 0.1 */
    SIMCLR_SWAV_EPSILON                 = 200, /* eps of exp(S / eps) in [0.01, 100], default 0.05 */
    SIMCLR_SWAV_SINKHORN_ITERATIONS     = 201, /* 1..1000, default 3 */
    SIMCLR_SWAV_FREEZE_PROTOTYPES_STEPS = 300, /* steps with frozen prototypes, a whole number >= 0,
                                                  default 313 (main_swav.py: about one epoch of
                                                  ImageNet at batch 4096) */
    SIMCLR_SWAV_PROTOTYPES              = 400, /* K (read-only: the prototypes module's) */
    SIMCLR_SWAV_QUEUE_LENGTH            = 500, /* the feature queue: 0 only (set: any other value is
                                                  SIMCLR_E_UNSUPPORTED, not implemented yet) */
    SIMCLR_SWAV_CODE_VIEWS              = 501  /* views that give codes: 2 only (set: any other value
                                                  is SIMCLR_E_UNSUPPORTED until multi-crop) */
} simclr_swav_param;

/* Creates SwAV's prototypes: a module of one parameter "weight" [k, dim]
 * (k prototypes of the head's output size dim; torch's
 * nn.Linear(dim, k, bias=False) of main_swav.py), drawn uniform in
 * +-1/sqrt(dim) from seed, then each row L2-normalized. As a module its
 * forward is y [N, k] = x [N, dim] weight^T (TRAIN keeps x for backward,
 * which adds to the weight's gradient); the SwAV trainer does not call it,
 * it reads the weight. dim and k 1..2^20. Returns SIMCLR_OK and the module
 * in *out (owned by the caller; free with simclr_module_destroy after the
 * trainer and optimizer that borrow it); SIMCLR_E_INVALID for a NULL ctx or
 * out or a size out of range; SIMCLR_E_NOMEM. *out is untouched on error.
 * Threads: may run concurrently with calls on other contexts only. */
SIMCLR_API simclr_status simclr_swav_prototypes_create(simclr_context *ctx, int64_t dim, int64_t k,
                                                       uint64_t seed, simclr_module **out);

/* Creates a SwAV trainer from borrowed pieces (all must outlive it): encoder
 * and head, prototypes (made by simclr_swav_prototypes_create, its dim the
 * head's output size), aug (makes the views) and opt, which must cover the
 * three modules (simclr_optimizer_create over {encoder, head, prototypes}).
 * Creation L2-normalizes the prototypes' rows. Defaults: see
 * simclr_swav_param. Returns SIMCLR_OK and the trainer in *out, owned by
 * the caller; free it with simclr_trainer_destroy. SIMCLR_E_INVALID (NULLs,
 * repeated modules, a piece of another context, prototypes not made by
 * simclr_swav_prototypes_create, an opt that misses a parameter of the
 * three or trains another module), SIMCLR_E_SHAPE (head input != encoder
 * output, prototypes dim != head output), SIMCLR_E_NOMEM. On error *out and
 * the modules are untouched. Threads: may run concurrently with calls on
 * other contexts only. */
SIMCLR_API simclr_status simclr_swav_trainer_create(simclr_context *ctx, simclr_module *encoder,
                                                    simclr_module *head, simclr_module *prototypes,
                                                    simclr_augment *aug, simclr_optimizer *opt,
                                                    simclr_trainer **out);

/* Sets / reads (into *value) a SwAV setting. Returns SIMCLR_OK;
 * SIMCLR_E_INVALID for a NULL trainer, a trainer of another method ("not a
 * SwAV trainer"), an unknown or read-only key, a value out of range (the
 * message gives it); SIMCLR_E_UNSUPPORTED for a value of a feature not
 * implemented yet (the message says which). A failing set changes nothing;
 * get leaves *value untouched on error. Threads: may run concurrently with
 * calls on other contexts only. */
SIMCLR_API simclr_status simclr_swav_set(simclr_trainer *tr, simclr_swav_param key, double value);
SIMCLR_API simclr_status simclr_swav_get(const simclr_trainer *tr, simclr_swav_param key,
                                         double *value);

/* ======================================================================== */
/* Data sets and label fractions                                             */
/* ======================================================================== */

typedef struct simclr_dataset simclr_dataset;

/* Opens an IDX image file (MNIST, Fashion-MNIST; gzip or raw, told apart by
 * the gzip magic) and optionally its IDX label file (labels_path may be NULL).
 * Everything is read into memory and validated now: magic 0x00000803 (images,
 * [N, H, W] unsigned bytes, C = 1) / 0x00000801 (labels), every dimension
 * >= 1, the data exactly as long as the header announces, the label count
 * equal to the image count. SIMCLR_E_IO (open/read), SIMCLR_E_FORMAT (a
 * message naming the file and the field), SIMCLR_E_NOMEM.
 * SIMCLR_E_INVALID for a NULL ctx, images_path or out. The context is borrowed;
 * *out is owned by the caller (simclr_dataset_destroy) and untouched on error.
 * Threads: may run concurrently with calls on other contexts only. */
SIMCLR_API simclr_status simclr_dataset_open_idx(simclr_context *ctx, const char *images_path,
                                                 const char *labels_path, simclr_dataset **out);

/* Opens CIFAR binary batches (n_paths files, 1..1024, concatenated in order;
 * images 32x32x3, converted from the file's planar RGB to [H, W, C]).
 * cifar100 = 0: the CIFAR-10 record (1 label byte, < 10); 1: CIFAR-100
 * (coarse < 20, fine < 100; the fine label is used). A file whose length is
 * not a positive multiple of the record, or a label out of range, is
 * SIMCLR_E_FORMAT; SIMCLR_E_IO, SIMCLR_E_INVALID (cifar100 not 0/1, a NULL path).
 * SIMCLR_E_INVALID also for a NULL ctx, paths or out or n_paths outside
 * 1..1024. The context is borrowed; *out is owned by the caller
 * (simclr_dataset_destroy) and untouched on error. Threads: may run
 * concurrently with calls on other contexts only. */
SIMCLR_API simclr_status simclr_dataset_open_cifar(simclr_context *ctx, const char *const *paths,
                                                   int n_paths, int cifar100,
                                                   simclr_dataset **out);
/* Frees the data set: its pixels and labels (pointers from
 * simclr_dataset_labels become invalid). NULL is a no-op. Not concurrently
 * with a call using it.
 * Threads: may run concurrently with calls on other contexts only. */
SIMCLR_API void simclr_dataset_destroy(simclr_dataset *ds);

/* Number of images; 0 for NULL. Never fails.
 * Threads: may run concurrently with calls on other contexts only. */
SIMCLR_API int64_t simclr_dataset_count(const simclr_dataset *ds);
/* Image shape into *height, *width, *channels; any output may be NULL.
 * Returns SIMCLR_OK; SIMCLR_E_INVALID for a NULL ds (outputs untouched). Threads: may run concurrently with calls on
 * other contexts only. */
SIMCLR_API simclr_status simclr_dataset_shape(const simclr_dataset *ds, int64_t *height,
                                              int64_t *width, int64_t *channels);
/* Labels (count entries, owned by the data set), NULL when it has none.
 * NULL for NULL; never fails. Threads: may run concurrently with calls on other
 * contexts only. */
SIMCLR_API const int32_t *simclr_dataset_labels(const simclr_dataset *ds);
/* Number of classes (max label + 1), 0 without labels.
 * 0 for NULL; never fails. Threads: may run concurrently with calls on other
 * contexts only. */
SIMCLR_API int simclr_dataset_class_count(const simclr_dataset *ds);

/* Copies the images at indices[0..n) into out, U8 [n, H, W, C] exactly
 * (else SIMCLR_E_SHAPE). Returns SIMCLR_OK; SIMCLR_E_INVALID for n < 1 or an
 * index out of range (out is untouched on every error). indices is only read.
 * SIMCLR_E_INVALID also for a NULL ds, indices or out. Threads: may run
 * concurrently with calls on other contexts only. */
SIMCLR_API simclr_status simclr_dataset_batch(const simclr_dataset *ds, const int64_t *indices,
                                              int64_t n, simclr_tensor *out);

/* Label fractions: the class-balanced labelled subsets of SimCLR's
 * semi-supervised setting (fine-tuning on 1% or 10% of the labels). From
 * labels[0 .. n_labels), each in [0, n_classes), every class c with n_c
 * images contributes k_c of them:
 *  - simclr_label_subset_fraction: k_c = max(1, round(fraction * n_c))
 *    (halves rounded away from zero), fraction in (0, 1];
 *  - simclr_label_subset_per_class: k_c = per_class, 1..2^31.
 * A class with fewer than k_c images (also one with none) is refused with
 * SIMCLR_E_INVALID naming the class and both counts ("class 3 has 5
 * labelled images, 6 requested"). Which images: index i gets a 64-bit key
 * drawn from (seed, i) by the library's counter-based generator, and class
 * c keeps its k_c images of smallest key (ties: the lower index). So the
 * subset is a pure function of (labels, k_c, seed), the same on every
 * machine and thread count, and for one seed a smaller subset lies inside a
 * larger one (the 1% inside the 10%). The indices come out ascending.
 * Two calls: with indices NULL, *count receives the subset's size
 * (capacity is ignored); then indices[0 .. *count) receives the subset,
 * capacity >= that size (else SIMCLR_E_SHAPE naming both).
 * Returns SIMCLR_OK; SIMCLR_E_INVALID for a NULL ctx, labels or count,
 * n_labels < 1, n_classes outside 1..2^20, a label out of range (its index
 * named), fraction or per_class out of range, a class too small;
 * SIMCLR_E_NOMEM (scratch of 16 bytes per label and 8 per class). On error *count and
 * indices are untouched. labels is only read. Threads: may run
 * concurrently with calls on other contexts only. */
SIMCLR_API simclr_status simclr_label_subset_fraction(simclr_context *ctx, const int32_t *labels,
                                                      int64_t n_labels, int n_classes, double fraction,
                                                      uint64_t seed, int64_t *indices, int64_t capacity,
                                                      int64_t *count);
SIMCLR_API simclr_status simclr_label_subset_per_class(simclr_context *ctx, const int32_t *labels,
                                                       int64_t n_labels, int n_classes, int64_t per_class,
                                                       uint64_t seed, int64_t *indices, int64_t capacity,
                                                       int64_t *count);

/* Writes a subset to a text file so a run can be repeated, atomically (as
 * simclr_module_save). The format (docs/fine-tuning.md), ASCII:
 *   simclr-label-subset 1 seed=S fraction=F per_class=P total=T count=K
 * then the K indices, one decimal number per line, ascending, each line
 * ending in "\n". S, F (17 significant digits) and P say how the subset was
 * made (F = 0 and P = 0: some other way); T = n_labels, the size of the
 * labelled set the indices point into. indices[0 .. count) must be
 * strictly ascending and in [0, n_labels); count 1..n_labels; fraction in
 * [0, 1]; per_class >= 0; fraction and per_class not both nonzero.
 * Returns SIMCLR_OK; SIMCLR_E_INVALID for a NULL ctx, path or indices or a
 * value out of range (an index out of order or range named by its
 * position); SIMCLR_E_IO naming the path; SIMCLR_E_NOMEM. Any previous
 * file at path is intact on error. indices is only read. Threads: may run
 * concurrently with calls on other contexts only. */
SIMCLR_API simclr_status simclr_label_subset_save(simclr_context *ctx, const char *path, const int64_t *indices,
                                                  int64_t count, int64_t n_labels, double fraction,
                                                  int64_t per_class, uint64_t seed);

/* Reads a file in the format of simclr_label_subset_save (lines may also
 * end in "\r\n"; no blank lines, signs or spaces in the indices).
 * n_labels: the size of the caller's labelled set, which must equal the
 * file's total (else SIMCLR_E_SHAPE naming both), or 0 to accept any.
 * Two calls as simclr_label_subset_fraction: with indices NULL, *count
 * receives the file's count; else indices (capacity >= the count, else
 * SIMCLR_E_SHAPE) receives the indices. seed, fraction and per_class may be
 * NULL, else they receive the header's values. Returns SIMCLR_OK;
 * SIMCLR_E_INVALID for a NULL ctx, path or count or n_labels < 0;
 * SIMCLR_E_IO naming the path; SIMCLR_E_FORMAT naming the path and the line
 * for another header or version, a malformed number, indices not strictly
 * ascending or not below the total, or another number of lines than the
 * header's count; SIMCLR_E_NOMEM. Every output is untouched on error.
 * Threads: may run concurrently with calls on other contexts only. */
SIMCLR_API simclr_status simclr_label_subset_load(simclr_context *ctx, const char *path, int64_t n_labels,
                                                  int64_t *indices, int64_t capacity, int64_t *count,
                                                  uint64_t *seed, double *fraction, int64_t *per_class);

/* ======================================================================== */
/* Checkpoints and export                                                    */
/* ======================================================================== */

/* Saves the module's parameters and buffers (atomically: temporary file,
 * fsync, rename; a failure leaves any previous file intact).
 * Returns SIMCLR_OK; SIMCLR_E_INVALID for a NULL m or path, SIMCLR_E_IO naming
 * the path (open, write, fsync or rename failed), SIMCLR_E_NOMEM; on error
 * any previous file at path is intact and no temporary file stays. The
 * module is only read. Threads: may run concurrently with calls on other
 * contexts only. */
SIMCLR_API simclr_status simclr_module_save(const simclr_module *m, const char *path);

/* Loads a file written by simclr_module_save into a module of the same
 * architecture. Every length and CRC is checked before use, and every tensor
 * is validated before the first is copied; on any error the module is
 * unchanged: SIMCLR_E_IO, SIMCLR_E_FORMAT (corrupt file, a tensor missing or
 * one the module does not have), SIMCLR_E_SHAPE (another architecture string
 * -- both are named -- or a tensor of another shape). Format:
 * docs/checkpoint-format.md.
 * SIMCLR_E_INVALID for a NULL m or path; SIMCLR_E_NOMEM. Threads: may run
 * concurrently with calls on other contexts only. */
SIMCLR_API simclr_status simclr_module_load(simclr_module *m, const char *path);

/* Saves / loads a whole trainer: encoder, head, optimizer state and step, and
 * the trainer's counters, so a resumed run continues bit-identically.
 * A MoCo trainer's file also holds the key modules, the queue and its
 * position (not its settings: create the trainer with the same ones); a
 * SimCLR file does not load into a MoCo trainer, nor the other way round.
 * save: atomic as simclr_module_save (a failure leaves any previous file
 * intact), reads the trainer only. load: every piece is validated before
 * anything is copied; on any error the trainer, its modules and optimizer are
 * unchanged. Errors: SIMCLR_E_INVALID (a NULL tr or path), SIMCLR_E_IO,
 * SIMCLR_E_FORMAT (a corrupt file), SIMCLR_E_SHAPE (other architectures or
 * another kind of trainer, both named), SIMCLR_E_NOMEM. Threads: may run
 * concurrently with calls on other contexts only. */
SIMCLR_API simclr_status simclr_trainer_save(const simclr_trainer *tr, const char *path);
SIMCLR_API simclr_status simclr_trainer_load(simclr_trainer *tr, const char *path);

/* Writes the module's tensors as safetensors (F32; num_batches_tracked as a
 * 0-dim I64) under torchvision names. A ResNet of width 64 with the ImageNet
 * stem and 3 input channels loads into torchvision.models.resnet*() with
 * strict=True once its fc is removed (m.fc = torch.nn.Identity()); other
 * stems, channel counts and widths need that model's conv1/maxpool or layers
 * rebuilt (`simclr export` prints the code). Written atomically like
 * simclr_module_save. Metadata (string values) holds "format": "pt",
 * "simclr_arch" (simclr_module_arch), the architecture key by key --
 * "simclr.arch" ("resnet18", "vit", "mlp_head"), for a ResNet
 * "simclr.depth", "simclr.width", "simclr.in_channels", "simclr.stem"
 * ("cifar" or "imagenet"), for other kinds their constructor's arguments as
 * "simclr.NAME" -- and "simclr.version" (simclr_version_string()).
 * SIMCLR_E_INVALID for a NULL m or path, SIMCLR_E_IO naming the path,
 * SIMCLR_E_NOMEM; any previous file is intact on error. The module is only
 * read. Threads: may run concurrently with calls on other contexts only. */
SIMCLR_API simclr_status simclr_module_export_safetensors(const simclr_module *m, const char *path);

/* Reads a safetensors file into the module: every tensor of the module must be
 * present as F32 with its shape (num_batches_tracked may also be I64 and 0-dim);
 * extra tensors such as fc.* are ignored. Malformed JSON, offsets outside the
 * file, a size that does not match dtype x shape, or another dtype is
 * SIMCLR_E_FORMAT; another shape SIMCLR_E_SHAPE. The data section must be
 * exactly the tensors end to end (SIMCLR_E_FORMAT for unindexed bytes before,
 * between or after them, overlapping offsets, begin > end, a name given
 * twice, a header length beyond the file, or a tensor whose file offset is
 * not a multiple of its element size). On error the module is unchanged.
 * SIMCLR_E_INVALID for a NULL m or path, SIMCLR_E_IO, SIMCLR_E_NOMEM. Threads:
 * may run concurrently with calls on other contexts only. */
SIMCLR_API simclr_status simclr_module_import_safetensors(simclr_module *m, const char *path);

/* Writes an encoder and its classification head (simclr_linear_head_create
 * with in_dim = the encoder's output) as one safetensors file that loads
 * into torchvision with its classifier. The encoder's tensors keep their
 * names; the head's become those of torchvision's classifier: "fc.weight"
 * and "fc.bias" after a ResNet (torchvision.models.resnet*(num_classes=K)
 * loads it with strict=True for width 64, the ImageNet stem and 3 input
 * channels; other stems, channels and widths need conv1/maxpool or layers
 * rebuilt as for simclr_module_export_safetensors), "heads.head.weight" and
 * "heads.head.bias" after a ViT (torchvision's VisionTransformer with
 * num_classes=K). Dtypes, layout, atomic writing and metadata as
 * simclr_module_export_safetensors for the encoder, plus "simclr.classes"
 * (K) and "simclr.head" (the head's architecture string). A ResNet
 * classifier's file imports back into both modules with
 * simclr_module_import_safetensors. Returns SIMCLR_OK; SIMCLR_E_INVALID for
 * a NULL encoder, head or path, a head that is not a linear head or an
 * encoder that is neither a ResNet nor a ViT; SIMCLR_E_SHAPE when the
 * head's input is not the encoder's output (both named); SIMCLR_E_IO
 * naming the path; SIMCLR_E_NOMEM. Any previous file is intact on error.
 * The modules are only read. Threads: may run concurrently with calls on
 * other contexts only. */
SIMCLR_API simclr_status simclr_export_classifier_safetensors(const simclr_module *encoder,
                                                              const simclr_module *head, const char *path);

/* ======================================================================== */
/* Feature extraction, embedding and classification                          */
/* ======================================================================== */

/* Runs the encoder in EVAL mode over the whole data set in batches of
 * batch_size (>= 1; larger than the data set means one batch) and writes
 * features F32 [count, D] into out (D = simclr_module_output_dim; else
 * SIMCLR_E_SHAPE). aug may be NULL (pixels / 255 at the native size, [N, C,
 * H, W]) or a policy (normally SIMCLR_AUG_PRESET_NONE) applied as view 0
 * with seed 0. Reports progress "extract" (0, then after every batch, up to
 * count). The encoder's own errors come through unchanged. The features are
 * computed into a private buffer (count x D floats, SIMCLR_E_NOMEM when it
 * cannot be had) and copied into out only when every batch succeeded: on
 * error out is untouched.
 * aug may be NULL; encoder, ds and out may not (SIMCLR_E_INVALID). Returns
 * SIMCLR_OK. The encoder's BN statistics are not changed (EVAL);
 * SIMCLR_E_CANCELLED (see simclr_progress_cancel_fn). Threads: may run concurrently with calls on other
 * contexts only. */
SIMCLR_API simclr_status simclr_extract_features(simclr_module *encoder, const simclr_dataset *ds,
                                                 simclr_augment *aug, int64_t batch_size,
                                                 simclr_tensor *out);

/* An embedder turns host images of any size into encoder features, without a
 * data set, through torchvision's evaluation transform: resize so the shorter
 * side is RESIZE pixels (the longer side int(RESIZE * long / short)), center
 * crop out_h x out_w (offsets rounded as torchvision's center_crop), values
 * v/255, optional per-channel normalization; then the encoder in EVAL mode.
 * The resize uses the antialiased triangle filter (interpolate(antialias=True),
 * as PIL does for the usual pipeline), computed only for the cropped window.
 *
 * Concurrency rule: an embedder shares the encoder's parameters and BN
 * statistics read-only and owns its workspace (activations, scratch, and the
 * context it was created on). Several threads may embed with one encoder at
 * once, each through its own embedder created on its own context (contexts
 * are one-thread objects). While any embedder of an encoder exists, the
 * encoder must not be trained, loaded into or destroyed. tests/test_embed.c
 * runs this under ThreadSanitizer (make tsan-embed). */
typedef struct simclr_embedder simclr_embedder;

/* Keys for simclr_embedder_set/get. Append-only, grouped. */
typedef enum simclr_embedder_param {
    SIMCLR_EMBED_RESIZE     = 100, /* shorter side before the crop, 1..65536; default
                                      round(max(out_h, out_w) / 0.875) (e.g. 256 for 224) */
    SIMCLR_EMBED_BATCH      = 101, /* images per encoder forward, 1..4096, default 32 */
    SIMCLR_EMBED_NORMALIZE  = 200, /* 0 (default) or 1: (v - mean) / std per channel */
    SIMCLR_EMBED_MEAN_0     = 201, SIMCLR_EMBED_MEAN_1 = 202, SIMCLR_EMBED_MEAN_2 = 203,
    SIMCLR_EMBED_STD_0      = 204, SIMCLR_EMBED_STD_1  = 205, SIMCLR_EMBED_STD_2  = 206
} simclr_embedder_param;
typedef enum simclr_embedder_param simclr_embed_param; /* older name, kept as an alias */

/* Creates an embedder on ctx (the calling thread's context; its threads run
 * the forward) for a ResNet encoder made by simclr_resnet_create_v2 or a ViT
 * made by simclr_vit_create (possibly on another context), producing
 * features of simclr_module_output_dim(encoder).
 * out_h, out_w: 1..4096, the size the encoder sees (for a ViT its image
 * size; another size fails at simclr_embedder_run with SIMCLR_E_SHAPE). Reads the encoder's
 * architecture now and its weights at every run (so a later
 * simclr_module_load is seen by the next run, when no run is in flight).
 * Returns SIMCLR_OK and the embedder in *out; SIMCLR_E_INVALID for NULLs, a
 * size out of range or another kind of module; SIMCLR_E_NOMEM. *out is owned
 * by the caller (simclr_embedder_destroy) and untouched on error.
 * The encoder is borrowed read-only (see the concurrency rule above); ctx is
 * borrowed. An embedder's workspace (input batch, resample scratch, its
 * activation arena) grows to its largest request and is kept until
 * simclr_embedder_destroy: smaller requests allocate nothing larger than a
 * tensor header. Threads: the concurrency rule above (one embedder per
 * thread, on its own context). */
SIMCLR_API simclr_status simclr_embedder_create(simclr_context *ctx, const simclr_module *encoder,
                                                int64_t out_h, int64_t out_w, simclr_embedder **out);

/* Frees the embedder and its workspace (never the encoder). NULL is a no-op.
 * Threads: not while a run on this embedder is in flight. */
SIMCLR_API void simclr_embedder_destroy(simclr_embedder *emb);

/* Sets / reads (into *value) a parameter. Returns SIMCLR_OK; SIMCLR_E_INVALID
 * for NULLs, an unknown key or a value out of range or not whole for an
 * integral key (the embedder is then unchanged). get leaves *value untouched
 * on error. Threads: one thread at a time per embedder. */
SIMCLR_API simclr_status simclr_embedder_set(simclr_embedder *emb, simclr_embedder_param key,
                                             double value);
SIMCLR_API simclr_status simclr_embedder_get(const simclr_embedder *emb, simclr_embedder_param key,
                                             double *value);

/* Features of every image of the list into out, F32 [count, D]. The list's
 * channel count must be the encoder's input channels (else SIMCLR_E_SHAPE).
 * Deterministic: the same images give the same bytes whatever else runs
 * concurrently. Returns SIMCLR_OK; errors: SIMCLR_E_INVALID (NULLs, an empty
 * list), SIMCLR_E_SHAPE, SIMCLR_E_NOMEM; out is untouched on error. Up to
 * SIMCLR_EMBED_BATCH images run as one forward straight into out; more run
 * batch by batch into a private buffer of count x D floats (SIMCLR_E_NOMEM
 * when it cannot be had) copied into out once every batch succeeded.
 * images is only read. Threads: one thread at a time per embedder; embedders of
 * one encoder run concurrently (above). */
SIMCLR_API simclr_status simclr_embedder_run(simclr_embedder *emb, const simclr_image_list *images,
                                             simclr_tensor *out);

/* A classifier turns host images of any size into class probabilities: an
 * embedder (the evaluation transform and the encoder in EVAL mode, exactly
 * as simclr_embedder_create describes) followed by a classification head
 * (simclr_linear_head_create): logits = features W^T + b, probabilities =
 * softmax(logits) per image (computed in double, rounded to float once).
 * The fine-tuned or distilled modules come from training, or from
 * simclr_module_load / simclr_module_import_safetensors (a file of
 * simclr_export_classifier_safetensors fills both).
 *
 * Concurrency rule, as the embedder's: a classifier shares the encoder's
 * and the head's parameters (and BN statistics) read-only and owns its
 * workspace and the context it was created on. Several threads may
 * classify with the same modules at once, each through its own classifier
 * on its own context. While any classifier of them exists the modules must
 * not be trained, loaded into or destroyed. */
typedef struct simclr_classifier simclr_classifier;

/* Keys for simclr_classifier_set/get. Append-only, grouped; the transform's
 * keys mean what the embedder's of the same value mean. */
typedef enum simclr_classifier_param {
    SIMCLR_CLASSIFIER_RESIZE    = 100, /* shorter side before the crop, 1..65536; default
                                          round(max(out_h, out_w) / 0.875) */
    SIMCLR_CLASSIFIER_BATCH     = 101, /* images per encoder forward, 1..4096, default 32 */
    SIMCLR_CLASSIFIER_NORMALIZE = 200, /* 0 (default) or 1: (v - mean) / std per channel */
    SIMCLR_CLASSIFIER_MEAN_0    = 201, SIMCLR_CLASSIFIER_MEAN_1 = 202, SIMCLR_CLASSIFIER_MEAN_2 = 203,
    SIMCLR_CLASSIFIER_STD_0     = 204, SIMCLR_CLASSIFIER_STD_1  = 205, SIMCLR_CLASSIFIER_STD_2  = 206,
    SIMCLR_CLASSIFIER_CLASSES   = 300  /* read-only: the head's number of classes */
} simclr_classifier_param;

/* Creates a classifier on ctx (the calling thread's context; its threads
 * run the forward) for an encoder that simclr_embedder_create accepts and a
 * head made by simclr_linear_head_create whose input is the encoder's
 * output (both possibly on other contexts). out_h, out_w: as
 * simclr_embedder_create's. Reads the architectures now and the weights at
 * every run (a later simclr_module_load is seen by the next run, when no
 * run is in flight). Returns SIMCLR_OK and the classifier in *out;
 * SIMCLR_E_INVALID for NULLs, a size out of range, an encoder of another
 * kind or a head that is not a linear head; SIMCLR_E_SHAPE when the head's
 * input is not the encoder's output (both named); SIMCLR_E_NOMEM. *out is
 * owned by the caller (simclr_classifier_destroy) and untouched on error.
 * The modules are borrowed read-only (see the concurrency rule above); ctx
 * is borrowed. Threads: the concurrency rule above (one classifier per
 * thread, on its own context). */
SIMCLR_API simclr_status simclr_classifier_create(simclr_context *ctx, const simclr_module *encoder,
                                                  const simclr_module *head, int64_t out_h, int64_t out_w,
                                                  simclr_classifier **out);

/* Frees the classifier and its workspace (never the modules). NULL is a
 * no-op. Threads: not while a call on this classifier is in flight. */
SIMCLR_API void simclr_classifier_destroy(simclr_classifier *clf);

/* Sets / reads (into *value) a parameter. Returns SIMCLR_OK;
 * SIMCLR_E_INVALID for NULLs, an unknown key, a read-only key (set), or a
 * value out of range or not whole for an integral key (the classifier is
 * then unchanged). get leaves *value untouched on error. Threads: one
 * thread at a time per classifier. */
SIMCLR_API simclr_status simclr_classifier_set(simclr_classifier *clf, simclr_classifier_param key,
                                               double value);
SIMCLR_API simclr_status simclr_classifier_get(const simclr_classifier *clf, simclr_classifier_param key,
                                               double *value);

/* Class probabilities of every image of the list into probs, F32 [count,
 * classes] (each row a softmax: non-negative, summing to 1 up to rounding).
 * The list's channel count must be the encoder's input channels (else
 * SIMCLR_E_SHAPE). Deterministic: the same images give the same bytes
 * whatever else runs concurrently. Returns SIMCLR_OK; SIMCLR_E_INVALID for
 * NULLs or an empty list; SIMCLR_E_SHAPE (the list, or probs not F32
 * [count, classes]); SIMCLR_E_NUMERIC when a logit is not finite;
 * SIMCLR_E_NOMEM (a private buffer of count x classes floats, the
 * features of one batch and the embedder's workspace). probs is written
 * only once every batch succeeded: untouched on error. images is only read.
 * Threads: one thread at a time per classifier; classifiers of the same
 * modules run concurrently (above). */
SIMCLR_API simclr_status simclr_classifier_run(simclr_classifier *clf, const simclr_image_list *images,
                                               simclr_tensor *probs);

/* The k most probable classes of every image of the list, as
 * simclr_classifier_run computes them: classes[i*k + j] is image i's j-th
 * class by descending probability (ties: the lower class first) and, when
 * probs is not NULL, probs[i*k + j] its probability. k 1..classes; n_out
 * = count * k, the length of classes (and of probs). Returns SIMCLR_OK;
 * errors as simclr_classifier_run, SIMCLR_E_INVALID also for a NULL
 * classes or k out of range, SIMCLR_E_SHAPE for another n_out. Both arrays
 * are written only on success. images is only read. Threads: as
 * simclr_classifier_run. */
SIMCLR_API simclr_status simclr_classifier_topk(simclr_classifier *clf, const simclr_image_list *images, int k,
                                                int32_t *classes, float *probs, int64_t n_out);

/* Classifies every image of a labelled list (labels[0 .. n_labels),
 * n_labels = count, each in [0, classes)) and scores the predictions (the
 * top-1 class, ties: the lower) as simclr_classification_metrics does:
 * *accuracy, and unless NULL the confusion matrix (n_confusion = classes^2)
 * and the per-class recall (n_recall = classes). Runs batch by batch,
 * keeping only the predictions; reports progress "classify" after every
 * batch and stops on request (simclr_progress_cancel_fn). Returns
 * SIMCLR_OK; errors as simclr_classifier_run, and SIMCLR_E_INVALID for a
 * NULL labels or accuracy or a label out of range (index named),
 * SIMCLR_E_SHAPE for a length that does not match (checked before a label
 * is read), SIMCLR_E_CANCELLED. Every output is written only on success.
 * images and labels are only read. Threads: as simclr_classifier_run. */
SIMCLR_API simclr_status simclr_classifier_evaluate(simclr_classifier *clf, const simclr_image_list *images,
                                                    const int32_t *labels, int64_t n_labels, double *accuracy,
                                                    int64_t *confusion, int64_t n_confusion, double *recall,
                                                    int64_t n_recall);

/* ======================================================================== */
/* Evaluation: kNN, linear probes, classification metrics                    */
/* ======================================================================== */

/* Weighted kNN (cosine similarity, k neighbours, weights exp(sim / temperature),
 * the SSL-benchmark monitor: k = 200, temperature = 0.1). train F32 [Ntr, D]
 * with train_labels (n_train_labels = Ntr entries) in [0, n_classes); test
 * F32 [Nte, D] with test_labels (n_test_labels = Nte entries). The lengths
 * are checked before a label is read (else SIMCLR_E_SHAPE), so a short array
 * is an error instead of a read past its end. Each test row's k most similar
 * train rows (ties: the lower train index) vote for their label with weight
 * exp(sim / temperature); the heaviest class wins (ties: the lower class).
 * Returns SIMCLR_OK and *top1 = fraction of test rows predicted right, in
 * [0, 1]. Similarities come from the backend's gemm in blocks of test rows
 * (at most 16 MB of them at a time). SIMCLR_E_INVALID for k outside 1..Ntr,
 * temperature not finite and > 0, n_classes < 1, a label out of range;
 * SIMCLR_E_SHAPE for other D, non-F32 or a label length that is not the row
 * count; SIMCLR_E_NUMERIC for a non-finite feature; SIMCLR_E_CANCELLED (see
 * simclr_progress_cancel_fn, "knn").
 * SIMCLR_E_INVALID also for a NULL ctx, tensor, label array or top1; *top1 is
 * written only on success. The tensors and label arrays are only read.
 * Threads: may run concurrently with calls on other contexts only. (0.2.0) */
SIMCLR_API simclr_status simclr_knn_eval_n(simclr_context *ctx, const simclr_tensor *train,
                                           const int32_t *train_labels, int64_t n_train_labels,
                                           const simclr_tensor *test, const int32_t *test_labels,
                                           int64_t n_test_labels, int n_classes, int k,
                                           double temperature, double *top1);

/* Deprecated since 0.2.0: use simclr_knn_eval_n, which checks the lengths of
 * the label arrays. Here train_labels must hold Ntr entries and test_labels
 * Nte (unchecked: a shorter array is read past its end). Otherwise exactly
 * simclr_knn_eval_n: results, errors (a NULL argument: SIMCLR_E_INVALID;
 * *top1 written only on success), progress. Threads: may run concurrently
 * with calls on other contexts only. */
SIMCLR_API simclr_status simclr_knn_eval(simclr_context *ctx, const simclr_tensor *train,
                                         const int32_t *train_labels, const simclr_tensor *test,
                                         const int32_t *test_labels, int n_classes, int k,
                                         double temperature, double *top1);

/* Linear probe: standardizes every feature with the train set's mean and
 * standard deviation (a constant feature is ignored), then trains a
 * multinomial logistic regression (weights and bias, starting from zero) on
 * mean cross-entropy + weight_decay / 2 * |weights|^2 (the bias is not
 * decayed) by full-batch Nesterov accelerated gradient descent: `epochs`
 * iterations, each one gradient over the whole train set (two gemms), step
 * 1/L with L = 0.5 * lambda_max(A^T A / Ntr) * 1.1 + weight_decay (A = the
 * standardized features plus a bias column; lambda_max by power iteration).
 * Reports progress "probe" after every iteration. Returns SIMCLR_OK and
 * *top1 = test accuracy. Deterministic for a given backend and thread count.
 * epochs 1..100000 (iterations needed grow with how correlated the features
 * are: raw pixels settle in a few hundred, learned features may need a
 * thousand or more, e.g. a short SimCLR run's ResNet features on
 * Fashion-MNIST gained 1.2 points from 300 to 1000; choose epochs and
 * weight_decay on held-out data: simclr_linear_probe_select chooses the
 * decay); weight_decay finite and >= 0; n_classes >= 2. Labels and their
 * lengths as simclr_knn_eval_n (SIMCLR_E_SHAPE before a label is read when a
 * length is not the row count); errors as simclr_knn_eval_n (SIMCLR_E_INVALID
 * for a NULL ctx, tensor, label array or top1), and SIMCLR_E_NUMERIC if the
 * weights diverge. *top1 is written only on success. SIMCLR_E_CANCELLED (see
 * simclr_progress_cancel_fn). The tensors and label arrays are only read.
 * Threads: may run concurrently with calls on other contexts only. (0.2.0) */
SIMCLR_API simclr_status simclr_linear_probe_n(simclr_context *ctx, const simclr_tensor *train,
                                               const int32_t *train_labels, int64_t n_train_labels,
                                               const simclr_tensor *test,
                                               const int32_t *test_labels, int64_t n_test_labels,
                                               int n_classes, int epochs, double weight_decay,
                                               double *top1);

/* Deprecated since 0.2.0: use simclr_linear_probe_n, which checks the lengths
 * of the label arrays. Here train_labels must hold Ntr entries and
 * test_labels Nte (unchecked). Otherwise exactly simclr_linear_probe_n:
 * results, errors (a NULL argument: SIMCLR_E_INVALID; *top1 written only on
 * success), progress. Threads: may run concurrently with calls on other
 * contexts only. */
SIMCLR_API simclr_status simclr_linear_probe(simclr_context *ctx, const simclr_tensor *train,
                                             const int32_t *train_labels,
                                             const simclr_tensor *test,
                                             const int32_t *test_labels, int n_classes,
                                             int epochs, double weight_decay, double *top1);

/* The linear probe of simclr_linear_probe_n with its weight decay chosen on
 * held-out train rows, never on the test set: a fixed decay favours
 * whichever features it happens to suit (raw pixels want more than learned
 * features). With Ntr the rows of train and cut = floor(4 * Ntr / 5):
 *  1. for every decay of the grid, in grid order, a probe fitted on train
 *     rows 0 .. cut-1 (standardized with their own statistics) is scored on
 *     the validation rows cut .. Ntr-1 (the last ceil(Ntr / 5) rows, in the
 *     caller's order: shuffle beforehand if the rows are sorted by class);
 *  2. the decay that gets the most validation rows right is chosen (ties:
 *     the first in grid order, i.e. the smaller one for an ascending grid);
 *  3. a probe with that decay is fitted on all Ntr train rows and scored on
 *     test.
 * Each fit is exactly simclr_linear_probe_n's (epochs iterations from zero):
 * *top1 equals simclr_linear_probe_n on the same tensors with the chosen
 * decay, and each validation score equals simclr_linear_probe_n on copies
 * of the two parts, for the same backend and thread count. Deterministic.
 * Costs (grid size + 1) probes.
 *
 * decays: n_decays weight decays, each finite and >= 0 (duplicates allowed);
 * n_decays = 0 selects the default grid {1e-5, 1e-4, 1e-3, 1e-2, 3e-2, 1e-1}
 * (decays is then ignored and may be NULL); n_decays 0..1000. Labels are
 * length-checked as in simclr_linear_probe_n: n_train_labels must equal Ntr
 * and n_test_labels the rows of test (else SIMCLR_E_SHAPE, before a label
 * is read). epochs 1..100000 (learned features may need 1000, see
 * simclr_linear_probe_n), n_classes >= 2.
 * Returns SIMCLR_OK; on success *top1 = the refit's test accuracy, in [0, 1], and, unless
 * chosen_decay is NULL, *chosen_decay = the decay chosen (a value of the
 * grid); an INFO log line names it and its validation score (the
 * constant-feature warning of simclr_linear_probe_n comes once, for the refit).
 * Errors found before any fit runs: SIMCLR_E_INVALID for a NULL ctx,
 * tensor, label array or top1, decays NULL with n_decays > 0, n_decays out of
 * range, a decay negative or not finite (the message names its index:
 * "decays[2] = nan must be finite and >= 0"), epochs or n_classes out of
 * range, a label out of range; SIMCLR_E_SHAPE for a label length that is not
 * the row count, fewer than 2 train rows (no validation split), non-F32 or
 * non-2-D tensors, another D in test; SIMCLR_E_NUMERIC for a non-finite
 * feature; SIMCLR_E_NOMEM (one workspace, allocated before the first fit).
 * During the fits only SIMCLR_E_NUMERIC (a fit's weights diverged; the
 * message names its decay) and SIMCLR_E_CANCELLED. Messages start with
 * "simclr_linear_probe_select:". On error *top1 and *chosen_decay are
 * untouched. Progress and SIMCLR_E_CANCELLED: see simclr_progress_cancel_fn
 * ("probe_select"). The caller's tensors and arrays are only read and owned
 * by the caller. Threads: may run concurrently with calls on other contexts
 * only. */
SIMCLR_API simclr_status simclr_linear_probe_select(simclr_context *ctx, const simclr_tensor *train,
                                                    const int32_t *train_labels, int64_t n_train_labels,
                                                    const simclr_tensor *test,
                                                    const int32_t *test_labels, int64_t n_test_labels,
                                                    int n_classes, int epochs, const double *decays,
                                                    int n_decays, double *top1, double *chosen_decay);

/* Scores class predictions against labels, both n entries (n >= 1) in
 * [0, n_classes): *accuracy = the fraction of i with predicted[i] =
 * labels[i]; unless confusion is NULL, confusion[t * n_classes + p] = the
 * number of i with labels[i] = t and predicted[i] = p (rows: the true class,
 * as scikit-learn's confusion_matrix), n_confusion = n_classes^2; unless
 * recall is NULL, recall[c] = confusion[c][c] / (the number of labels c),
 * NaN for a class without labels, n_recall = n_classes. Returns SIMCLR_OK;
 * SIMCLR_E_INVALID for a NULL predicted, labels or accuracy, n < 1,
 * n_classes outside 1..2^20, a value out of range (array and index named);
 * SIMCLR_E_SHAPE for a length that does not match. Allocates nothing;
 * every output is written only on success. The inputs are only read.
 * Threads: any thread, any time (no handle). */
SIMCLR_API simclr_status simclr_classification_metrics(const int32_t *predicted, const int32_t *labels, int64_t n,
                                                       int n_classes, double *accuracy, int64_t *confusion,
                                                       int64_t n_confusion, double *recall, int64_t n_recall);

#ifdef __cplusplus
}
#endif
#endif /* SIMCLR_H */
