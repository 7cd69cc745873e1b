/* Fault injection over the public API: the header promises that a failed
 * call leaves every handle as it was and leaks nothing. For each public
 * function that allocates, the k-th allocation fails for k = 1, 2, ... until
 * the call succeeds; for each function that writes a file, the k-th I/O
 * operation (create, write, flush, fsync, close, rename) fails the same way.
 * After every failure the whole world (every parameter, gradient and buffer,
 * optimizer state and step, trainer counters, the caller's output tensors,
 * the files on disk) is compared byte for byte with before, and the live
 * allocation count with before. The program prints how many injection points
 * it covered. Run under SAN=1 too (make sanitize), where ASan/LSan watch
 * every failure path.
 *
 * The I/O hook lives in src/io/file.c under SIMCLR_FAULT_INJECTION: the
 * Makefile compiles that file with the macro into this program only, ahead
 * of the library archive, so the release objects carry no hook. */
#include <dirent.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "test_util.h"

/* The hook of the fault build of src/io/file.c. */
extern long simclr__io_fault_at;
extern long simclr__io_calls;

#define IMG 8

static char dir[64];
static test_alloc ta;
static long points_alloc, points_io;

typedef struct world {
    simclr_context *ctx;
    simclr_module *enc, *head;
    simclr_augment *aug;
    simclr_loss *loss;
    simclr_optimizer *opt;
    simclr_trainer *tr;
    simclr_dataset *ds;
    simclr_tensor *images, *images_tall, *x, *y, *z, *feats, *ftrain, *ftest;
    int32_t ytrain[40], ytest[20];
    char idx_path[128], idx_gz_path[128], lbl_path[128], cifar_path[128];
    char mod_path[128], tr_path[128], st_path[128];
} world;

static world W;

/* ---- the fingerprint: every observable byte of the world ---------------- */

typedef struct fp {
    unsigned char *p;
    size_t n, cap;
} fp;

static void fp_put(fp *f, const void *d, size_t n)
{
    if (f->n + n > f->cap) {
        f->cap = (f->n + n) * 2;
        f->p = realloc(f->p, f->cap);
        assert_non_null(f->p);
    }
    memcpy(f->p + f->n, d, n);
    f->n += n;
}

static void fp_tensor(fp *f, simclr_tensor *t)
{
    if (t) fp_put(f, simclr_tensor_data(t), simclr_tensor_bytes(t));
}

static void fp_module(fp *f, simclr_module *m)
{
    if (!m) return;
    for (int i = 0; i < simclr_module_param_count(m); i++) {
        simclr_tensor *v, *g;
        CHECK_OK(simclr_module_param(m, i, NULL, &v, &g, NULL));
        fp_tensor(f, v);
        fp_tensor(f, g);
    }
}

static void fp_file(fp *f, const char *path)
{
    FILE *fl = fopen(path, "rb");
    if (!fl) return;
    unsigned char buf[4096];
    size_t k;
    while ((k = fread(buf, 1, sizeof buf, fl)) > 0) fp_put(f, buf, k);
    fclose(fl);
}

/* Leftover temporaries of the atomic writer in the test directory. */
static int count_temps(void)
{
    DIR *d = opendir(dir);
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d))) n += strstr(e->d_name, ".tmp.") != NULL;
    closedir(d);
    return n;
}

static fp fingerprint(void)
{
    fp f = {0};
    fp_module(&f, W.enc);
    fp_module(&f, W.head);
    if (W.opt) {
        for (int i = 0; i < simclr_optimizer_state_count(W.opt); i++) {
            simclr_tensor *t;
            CHECK_OK(simclr_optimizer_state(W.opt, i, NULL, &t));
            fp_tensor(&f, t);
        }
        double v;
        CHECK_OK(simclr_optimizer_get(W.opt, SIMCLR_OPT_STEP, &v));
        fp_put(&f, &v, sizeof v);
    }
    if (W.tr)
        for (int key = SIMCLR_STAT_LOSS; key <= SIMCLR_STAT_STEP; key++) {
            double v;
            CHECK_OK(simclr_trainer_stat(W.tr, (simclr_stat)key, &v));
            fp_put(&f, &v, sizeof v);
        }
    simclr_tensor *ts[] = {W.images, W.images_tall, W.x, W.y, W.z, W.feats, W.ftrain, W.ftest};
    for (size_t i = 0; i < sizeof ts / sizeof ts[0]; i++) fp_tensor(&f, ts[i]);
    if (W.ds) {
        int64_t c = simclr_dataset_count(W.ds);
        fp_put(&f, &c, sizeof c);
    }
    const char *files[] = {W.mod_path, W.tr_path, W.st_path};
    for (size_t i = 0; i < 3; i++) fp_file(&f, files[i]);
    return f;
}

/* ---- the sweeps --------------------------------------------------------- */

/* A call under test. It returns the status; on success it may release what
 * it made (creates destroy their object) so the sweep can go on. */
typedef simclr_status (*call_fn)(void);

/* Fails allocation k = 1, 2, ... of `call` until it succeeds; after each
 * failure the world and the live allocation count must be as before. */
static void sweep_alloc(const char *name, call_fn call)
{
    long failures = 0;
    for (long k = 1;; k++) {
        fp before = fingerprint();
        long live = ta.live;
        ta.allocs = 0;
        ta.fail_at = k;
        simclr_status st = call();
        ta.fail_at = 0;
        if (st == SIMCLR_OK) {
            free(before.p);
            break;
        }
        if (st != SIMCLR_E_NOMEM)
            fail_msg("%s: allocation %ld failed -> %s (want SIMCLR_E_NOMEM): %s", name, k, simclr_status_string(st),
                     simclr_last_error());
        if (ta.live != live) fail_msg("%s: allocation %ld failed: %ld allocations leaked", name, k, ta.live - live);
        fp after = fingerprint();
        if (after.n != before.n || memcmp(after.p, before.p, before.n) != 0)
            fail_msg("%s: allocation %ld failed and the state changed", name, k);
        if (count_temps() != 0) fail_msg("%s: allocation %ld failed and left a temporary file", name, k);
        free(before.p);
        free(after.p);
        failures++;
        if (k > 100000) fail_msg("%s: no success after %ld allocations", name, k);
    }
    print_message("  alloc %-34s %4ld injection points\n", name, failures);
    points_alloc += failures;
}

/* Fails I/O operation k = 1, 2, ... of a save until it succeeds; the file
 * at the path keeps its previous bytes, no temporary remains, and the world
 * is unchanged. */
static void sweep_io(const char *name, call_fn call)
{
    long failures = 0;
    for (long k = 1;; k++) {
        fp before = fingerprint();
        long live = ta.live;
        simclr__io_calls = 0;
        simclr__io_fault_at = k;
        simclr_status st = call();
        simclr__io_fault_at = 0;
        if (st == SIMCLR_OK) {
            free(before.p);
            break;
        }
        if (st != SIMCLR_E_IO)
            fail_msg("%s: I/O operation %ld failed -> %s (want SIMCLR_E_IO): %s", name, k, simclr_status_string(st),
                     simclr_last_error());
        if (ta.live != live) fail_msg("%s: I/O operation %ld failed: %ld allocations leaked", name, k, ta.live - live);
        fp after = fingerprint();
        if (after.n != before.n || memcmp(after.p, before.p, before.n) != 0)
            fail_msg("%s: I/O operation %ld failed and the state or the old file changed", name, k);
        if (count_temps() != 0) fail_msg("%s: I/O operation %ld failed and left a temporary file", name, k);
        free(before.p);
        free(after.p);
        failures++;
        if (k > 100000) fail_msg("%s: no success after %ld I/O operations", name, k);
    }
    print_message("  io    %-34s %4ld injection points\n", name, failures);
    points_io += failures;
}

/* ---- the calls ---------------------------------------------------------- */

static simclr_status c_context_create(void)
{
    simclr_allocator al = test_allocator(&ta);
    simclr_context *c = NULL;
    simclr_status st = simclr_context_create("cpu", 2, &al, &c);
    simclr_context_destroy(c);
    return st;
}

static simclr_status c_tensor_create(void)
{
    int64_t shape[3] = {2, 3, 4};
    simclr_tensor *t = NULL;
    simclr_status st = simclr_tensor_create(W.ctx, SIMCLR_F32, 3, shape, &t);
    simclr_tensor_destroy(t);
    return st;
}

static simclr_status c_tensor_wrap(void)
{
    static float buf[6];
    int64_t shape[2] = {2, 3};
    simclr_tensor *t = NULL;
    simclr_status st = simclr_tensor_wrap(W.ctx, SIMCLR_F32, 2, shape, buf, &t);
    simclr_tensor_destroy(t);
    return st;
}

static simclr_status c_resnet_create(void)
{
    simclr_module *m = NULL;
    simclr_status st = simclr_resnet_create(W.ctx, 18, 2, 1, SIMCLR_STEM_CIFAR, 5, &m);
    simclr_module_destroy(m);
    return st;
}

static simclr_status c_resnet50_create(void)
{
    simclr_module *m = NULL;
    simclr_status st = simclr_resnet_create(W.ctx, 50, 1, 3, SIMCLR_STEM_IMAGENET, 5, &m);
    simclr_module_destroy(m);
    return st;
}

static simclr_status c_head_create_v2(void)
{
    simclr_module *m = NULL;
    simclr_status st = simclr_mlp_head_create(W.ctx, 16, 16, 8, 3, 1, 6, &m);
    simclr_module_destroy(m);
    return st;
}

static simclr_status c_augment_create(void)
{
    simclr_augment *a = NULL;
    simclr_status st = simclr_augment_create(W.ctx, SIMCLR_AUG_PRESET_SIMCLR_V1, 12, 12, &a);
    simclr_augment_destroy(a);
    return st;
}

static simclr_status c_ntxent_create(void)
{
    simclr_loss *l = NULL;
    simclr_status st = simclr_ntxent_create(W.ctx, 0.2, 3, &l);
    simclr_loss_destroy(l);
    return st;
}

static simclr_status c_optimizer_create(void)
{
    simclr_optimizer *o = NULL;
    simclr_module *mods[2] = {W.enc, W.head};
    simclr_status st = simclr_optimizer_create(W.ctx, SIMCLR_OPT_ADAMW, mods, 2, &o);
    simclr_optimizer_destroy(o);
    return st;
}

static simclr_status c_trainer_create(void)
{
    simclr_trainer *t = NULL;
    simclr_status st = simclr_trainer_create(W.ctx, W.enc, W.head, W.aug, W.loss, W.opt, &t);
    simclr_trainer_destroy(t);
    return st;
}

/* A forward of a batch shape the module has not seen sizes its arena. */
static int64_t fwd_batch = 3;
static simclr_status new_forward_input(void)
{
    int64_t xs[4] = {fwd_batch, 1, IMG, IMG}, ys[2] = {fwd_batch, simclr_module_output_dim(W.enc)};
    simclr_tensor_destroy(W.x);
    simclr_tensor_destroy(W.y);
    W.x = W.y = NULL;
    ta.fail_at = 0; /* the test's own tensors */
    CHECK_OK(simclr_tensor_create(W.ctx, SIMCLR_F32, 4, xs, &W.x));
    CHECK_OK(simclr_tensor_create(W.ctx, SIMCLR_F32, 2, ys, &W.y));
    test_fill(simclr_tensor_data(W.x), simclr_tensor_numel(W.x), 3);
    return SIMCLR_OK;
}

static simclr_status c_forward_train(void) { return simclr_module_forward(W.enc, W.x, SIMCLR_TRAIN, W.y); }
static simclr_status c_forward_eval(void) { return simclr_module_forward(W.enc, W.x, SIMCLR_EVAL, W.y); }

static simclr_status c_backward(void) { return simclr_module_backward(W.enc, W.y, NULL); }

static simclr_status c_augment_pair(void)
{
    int64_t n = simclr_tensor_dim(W.images_tall, 0);
    int64_t vs[4] = {n, 1, IMG, IMG};
    simclr_tensor *v0, *v1;
    long f = ta.fail_at;
    ta.fail_at = 0;
    CHECK_OK(simclr_tensor_create(W.ctx, SIMCLR_F32, 4, vs, &v0));
    CHECK_OK(simclr_tensor_create(W.ctx, SIMCLR_F32, 4, vs, &v1));
    ta.allocs = 0;
    ta.fail_at = f;
    simclr_status st = simclr_augment_pair(W.aug, W.images_tall, 9, v0, v1);
    ta.fail_at = 0;
    simclr_tensor_destroy(v0);
    simclr_tensor_destroy(v1);
    return st;
}

static simclr_status c_loss_forward(void)
{
    float v;
    return simclr_loss_forward(W.loss, W.z, &v, NULL);
}

/* z with more rows than any step so far: the loss grows its scratch. */
static void new_loss_input(int64_t rows)
{
    int64_t zs[2] = {rows, 8};
    simclr_tensor_destroy(W.z);
    CHECK_OK(simclr_tensor_create(W.ctx, SIMCLR_F32, 2, zs, &W.z));
    test_fill(simclr_tensor_data(W.z), simclr_tensor_numel(W.z), 4);
}

static simclr_status c_trainer_step(void) { return simclr_trainer_step(W.tr, W.images, 77, NULL); }

static simclr_status c_open_idx(void)
{
    simclr_dataset *d = NULL;
    simclr_status st = simclr_dataset_open_idx(W.ctx, W.idx_path, W.lbl_path, &d);
    simclr_dataset_destroy(d);
    return st;
}

static simclr_status c_open_idx_gz(void)
{
    simclr_dataset *d = NULL;
    simclr_status st = simclr_dataset_open_idx(W.ctx, W.idx_gz_path, NULL, &d);
    simclr_dataset_destroy(d);
    return st;
}

static simclr_status c_open_cifar(void)
{
    simclr_dataset *d = NULL;
    const char *paths[2] = {W.cifar_path, W.cifar_path};
    simclr_status st = simclr_dataset_open_cifar(W.ctx, paths, 2, 0, &d);
    simclr_dataset_destroy(d);
    return st;
}

static simclr_status c_dataset_batch(void)
{
    int64_t idx[2] = {3, 1}, s[4] = {2, IMG, IMG, 1};
    simclr_tensor *t;
    long f = ta.fail_at;
    ta.fail_at = 0;
    CHECK_OK(simclr_tensor_create(W.ctx, SIMCLR_U8, 4, s, &t));
    ta.allocs = 0;
    ta.fail_at = f;
    simclr_status st = simclr_dataset_batch(W.ds, idx, 2, t);
    ta.fail_at = 0;
    simclr_tensor_destroy(t);
    return st;
}

static simclr_status c_module_save(void) { return simclr_module_save(W.enc, W.mod_path); }
static simclr_status c_module_load(void) { return simclr_module_load(W.enc, W.mod_path); }
static simclr_status c_trainer_save(void) { return simclr_trainer_save(W.tr, W.tr_path); }
static simclr_status c_trainer_load(void) { return simclr_trainer_load(W.tr, W.tr_path); }
static simclr_status c_export(void) { return simclr_module_export_safetensors(W.enc, W.st_path); }
static simclr_status c_import(void) { return simclr_module_import_safetensors(W.enc, W.st_path); }

static simclr_status c_extract(void) { return simclr_extract_features(W.enc, W.ds, NULL, 4, W.feats); }
static simclr_status c_extract_aug(void) { return simclr_extract_features(W.enc, W.ds, W.aug, 5, W.feats); }

static simclr_status c_knn(void)
{
    double top1;
    return simclr_knn_eval(W.ctx, W.ftrain, W.ytrain, W.ftest, W.ytest, 4, 5, 0.1, &top1);
}

static simclr_status c_knn_n(void)
{
    double top1;
    return simclr_knn_eval_n(W.ctx, W.ftrain, W.ytrain, 40, W.ftest, W.ytest, 20, 4, 5, 0.1, &top1);
}

static simclr_status c_probe(void)
{
    double top1;
    return simclr_linear_probe(W.ctx, W.ftrain, W.ytrain, W.ftest, W.ytest, 4, 5, 1e-3, &top1);
}

static simclr_status c_probe_n(void)
{
    double top1;
    return simclr_linear_probe_n(W.ctx, W.ftrain, W.ytrain, 40, W.ftest, W.ytest, 20, 4, 5, 1e-3, &top1);
}

static simclr_status c_probe_select(void)
{
    double top1, decay;
    static const double grid[] = {1e-4, 1e-2, 1e-1};
    return simclr_linear_probe_select(W.ctx, W.ftrain, W.ytrain, 40, W.ftest, W.ytest, 20, 4, 5, grid, 3, &top1,
                                      &decay);
}

/* ---- the world ---------------------------------------------------------- */

static void write_file(const char *path, const void *d, size_t n)
{
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(d, 1, n, f), n);
    fclose(f);
}

static void be32(unsigned char *p, uint32_t v)
{
    p[0] = (unsigned char)(v >> 24), p[1] = (unsigned char)(v >> 16), p[2] = (unsigned char)(v >> 8),
    p[3] = (unsigned char)v;
}

static void make_files(void)
{
    enum { N = 9 };
    snprintf(W.idx_path, sizeof W.idx_path, "%s/images.idx", dir);
    snprintf(W.idx_gz_path, sizeof W.idx_gz_path, "%s/images.idx.gz", dir);
    snprintf(W.lbl_path, sizeof W.lbl_path, "%s/labels.idx", dir);
    snprintf(W.cifar_path, sizeof W.cifar_path, "%s/data_batch.bin", dir);
    snprintf(W.mod_path, sizeof W.mod_path, "%s/enc.simclr", dir);
    snprintf(W.tr_path, sizeof W.tr_path, "%s/trainer.simclr", dir);
    snprintf(W.st_path, sizeof W.st_path, "%s/enc.safetensors", dir);
    unsigned char img[16 + N * IMG * IMG], lbl[8 + N];
    be32(img, 0x803), be32(img + 4, N), be32(img + 8, IMG), be32(img + 12, IMG);
    for (int i = 0; i < N * IMG * IMG; i++) img[16 + i] = (unsigned char)(i * 37 + 11);
    be32(lbl, 0x801), be32(lbl + 4, N);
    for (int i = 0; i < N; i++) lbl[8 + i] = (unsigned char)(i % 3);
    write_file(W.idx_path, img, sizeof img);
    write_file(W.lbl_path, lbl, sizeof lbl);
    gzFile gz = gzopen(W.idx_gz_path, "wb");
    assert_non_null(gz);
    assert_int_equal(gzwrite(gz, img, sizeof img), (int)sizeof img);
    gzclose(gz);
    unsigned char rec[3 * 3073];
    for (size_t i = 0; i < sizeof rec; i++) rec[i] = (unsigned char)(i * 13 + 1);
    for (int r = 0; r < 3; r++) rec[r * 3073] = (unsigned char)(r * 3);
    write_file(W.cifar_path, rec, sizeof rec);
}

static void make_world(void)
{
    memset(&W, 0, sizeof W);
    memset(&ta, 0, sizeof ta);
    make_files();
    simclr_allocator al = test_allocator(&ta);
    CHECK_OK(simclr_context_create("cpu", 2, &al, &W.ctx));
    CHECK_OK(simclr_resnet_create(W.ctx, 18, 2, 1, SIMCLR_STEM_CIFAR, 1, &W.enc));
    CHECK_OK(simclr_mlp_head_create(W.ctx, 16, 16, 8, 2, 0, 2, &W.head));
    CHECK_OK(simclr_augment_create(W.ctx, SIMCLR_AUG_PRESET_GRAYSCALE, IMG, IMG, &W.aug));
    CHECK_OK(simclr_ntxent_create(W.ctx, 0.5, 2, &W.loss));
    simclr_module *mods[2] = {W.enc, W.head};
    CHECK_OK(simclr_optimizer_create(W.ctx, SIMCLR_OPT_LARS, mods, 2, &W.opt));
    CHECK_OK(simclr_trainer_create(W.ctx, W.enc, W.head, W.aug, W.loss, W.opt, &W.tr));
    CHECK_OK(simclr_dataset_open_idx(W.ctx, W.idx_path, W.lbl_path, &W.ds));
    int64_t is[4] = {4, IMG, IMG, 1}, ts[4] = {3, 3 * IMG, 2 * IMG, 1};
    CHECK_OK(simclr_tensor_create(W.ctx, SIMCLR_U8, 4, is, &W.images));
    CHECK_OK(simclr_tensor_create(W.ctx, SIMCLR_U8, 4, ts, &W.images_tall));
    unsigned char *px = simclr_tensor_data(W.images);
    for (int64_t i = 0; i < simclr_tensor_numel(W.images); i++) px[i] = (unsigned char)(i * 7 + i / 13);
    px = simclr_tensor_data(W.images_tall);
    for (int64_t i = 0; i < simclr_tensor_numel(W.images_tall); i++) px[i] = (unsigned char)(i * 5 + 3);
    int64_t fs[2] = {9, simclr_module_output_dim(W.enc)}, trs[2] = {40, 6}, tes[2] = {20, 6};
    CHECK_OK(simclr_tensor_create(W.ctx, SIMCLR_F32, 2, fs, &W.feats));
    CHECK_OK(simclr_tensor_create(W.ctx, SIMCLR_F32, 2, trs, &W.ftrain));
    CHECK_OK(simclr_tensor_create(W.ctx, SIMCLR_F32, 2, tes, &W.ftest));
    test_fill(simclr_tensor_data(W.ftrain), 40 * 6, 21);
    test_fill(simclr_tensor_data(W.ftest), 20 * 6, 22);
    for (int i = 0; i < 40; i++) W.ytrain[i] = i % 4;
    for (int i = 0; i < 20; i++) W.ytest[i] = (i * 3) % 4;
    /* One good step, so gradients, momentum and counters are non-zero: a
     * failure that zeroed any of them would show. */
    CHECK_OK(simclr_trainer_step(W.tr, W.images, 1, NULL));
}

static void free_world(void)
{
    simclr_tensor *ts[] = {W.images, W.images_tall, W.x, W.y, W.z, W.feats, W.ftrain, W.ftest};
    for (size_t i = 0; i < sizeof ts / sizeof ts[0]; i++) simclr_tensor_destroy(ts[i]);
    simclr_trainer_destroy(W.tr);
    simclr_optimizer_destroy(W.opt);
    simclr_loss_destroy(W.loss);
    simclr_augment_destroy(W.aug);
    simclr_module_destroy(W.head);
    simclr_module_destroy(W.enc);
    simclr_dataset_destroy(W.ds);
    simclr_context_destroy(W.ctx);
    assert_int_equal(ta.live, 0);
}

/* Takes a step so the world differs from what is on disk: a save that
 * half-replaced the old file would show. */
static void change_world(uint64_t seed) { CHECK_OK(simclr_trainer_step(W.tr, W.images, seed, NULL)); }

static void test_allocation_failures(void **state)
{
    (void)state;
    make_world();
    print_message("allocation failures (k-th allocation of the call fails, k = 1, 2, ...):\n");
    sweep_alloc("simclr_context_create", c_context_create);
    sweep_alloc("simclr_tensor_create", c_tensor_create);
    sweep_alloc("simclr_tensor_wrap", c_tensor_wrap);
    sweep_alloc("simclr_resnet_create (18)", c_resnet_create);
    sweep_alloc("simclr_resnet_create (50)", c_resnet50_create);
    sweep_alloc("simclr_mlp_head_create (v2)", c_head_create_v2);
    sweep_alloc("simclr_augment_create", c_augment_create);
    sweep_alloc("simclr_ntxent_create", c_ntxent_create);
    sweep_alloc("simclr_optimizer_create", c_optimizer_create);
    sweep_alloc("simclr_trainer_create", c_trainer_create);
    new_forward_input();
    sweep_alloc("simclr_module_forward (TRAIN)", c_forward_train);
    fwd_batch = 5;
    new_forward_input();
    sweep_alloc("simclr_module_forward (EVAL)", c_forward_eval);
    CHECK_OK(simclr_module_forward(W.enc, W.x, SIMCLR_TRAIN, W.y));
    sweep_alloc("simclr_module_backward", c_backward);
    sweep_alloc("simclr_augment_pair (taller)", c_augment_pair);
    new_loss_input(40);
    sweep_alloc("simclr_loss_forward (larger)", c_loss_forward);
    /* a batch size the trainer has not seen rebuilds its buffers */
    simclr_tensor_destroy(W.images);
    int64_t is[4] = {6, IMG, IMG, 1};
    CHECK_OK(simclr_tensor_create(W.ctx, SIMCLR_U8, 4, is, &W.images));
    unsigned char *px = simclr_tensor_data(W.images);
    for (int64_t i = 0; i < simclr_tensor_numel(W.images); i++) px[i] = (unsigned char)(i * 11 + i / 7);
    sweep_alloc("simclr_trainer_step (new batch)", c_trainer_step);
    sweep_alloc("simclr_trainer_step", c_trainer_step);
    /* The gradient-caching step (tests/test_gradcache.c sweeps its other
     * failures and the distributed settings). */
    CHECK_OK(simclr_trainer_set(W.tr, SIMCLR_TRAINER_MICRO_BATCH, 2));
    sweep_alloc("simclr_trainer_step (micro, new)", c_trainer_step);
    sweep_alloc("simclr_trainer_step (micro)", c_trainer_step);
    CHECK_OK(simclr_trainer_set(W.tr, SIMCLR_TRAINER_BN_MODE, SIMCLR_BN_SYNC));
    sweep_alloc("simclr_trainer_step (micro, sync BN)", c_trainer_step);
    CHECK_OK(simclr_trainer_set(W.tr, SIMCLR_TRAINER_MICRO_BATCH, 0));
    CHECK_OK(simclr_trainer_set(W.tr, SIMCLR_TRAINER_BN_MODE, SIMCLR_BN_LOCAL));
    sweep_alloc("simclr_dataset_open_idx", c_open_idx);
    sweep_alloc("simclr_dataset_open_idx (gzip)", c_open_idx_gz);
    sweep_alloc("simclr_dataset_open_cifar", c_open_cifar);
    sweep_alloc("simclr_dataset_batch", c_dataset_batch);
    sweep_alloc("simclr_module_save", c_module_save);
    change_world(2);
    sweep_alloc("simclr_module_load", c_module_load);
    sweep_alloc("simclr_trainer_save", c_trainer_save);
    change_world(3);
    sweep_alloc("simclr_trainer_load", c_trainer_load);
    sweep_alloc("simclr_module_export_safetensors", c_export);
    change_world(4);
    sweep_alloc("simclr_module_import_safetensors", c_import);
    sweep_alloc("simclr_extract_features", c_extract);
    sweep_alloc("simclr_extract_features (aug)", c_extract_aug);
    sweep_alloc("simclr_knn_eval", c_knn);
    sweep_alloc("simclr_knn_eval_n", c_knn_n);
    sweep_alloc("simclr_linear_probe", c_probe);
    sweep_alloc("simclr_linear_probe_n", c_probe_n);
    sweep_alloc("simclr_linear_probe_select", c_probe_select);
    print_message("allocation injection points covered: %ld\n", points_alloc);
    free_world();
    assert_true(points_alloc > 200);
}

static void test_io_failures(void **state)
{
    (void)state;
    make_world();
    /* old files on disk first, then a changed world to save over them */
    CHECK_OK(simclr_module_save(W.enc, W.mod_path));
    CHECK_OK(simclr_trainer_save(W.tr, W.tr_path));
    CHECK_OK(simclr_module_export_safetensors(W.enc, W.st_path));
    print_message("I/O failures (k-th create/write/flush/fsync/close/rename fails):\n");
    change_world(5);
    sweep_io("simclr_module_save", c_module_save);
    change_world(6);
    sweep_io("simclr_trainer_save", c_trainer_save);
    /* the save that finally succeeded wrote the new state: load it back */
    fp now = fingerprint();
    CHECK_OK(simclr_trainer_load(W.tr, W.tr_path));
    fp again = fingerprint();
    assert_int_equal(now.n, again.n);
    assert_memory_equal(now.p, again.p, now.n);
    free(now.p);
    free(again.p);
    change_world(7);
    sweep_io("simclr_module_export_safetensors", c_export);
    print_message("I/O injection points covered: %ld\n", points_io);
    free_world();
    assert_true(points_io >= 15);
}

static int setup(void **state)
{
    (void)state;
    return test_tmpdir_make(dir, sizeof dir, "faults");
}

static int teardown(void **state)
{
    (void)state;
    print_message("fault injection: %ld allocation + %ld I/O = %ld injection points, every one left the state "
                  "unchanged and leaked nothing\n",
                  points_alloc, points_io, points_alloc + points_io);
    return test_tmpdir_remove(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_allocation_failures),
        cmocka_unit_test(test_io_failures),
    };
    return cmocka_run_group_tests_name("faults", tests, setup, teardown);
}
