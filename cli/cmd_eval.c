/* simclr eval DIR: kNN and linear probe on the encoder's features, labels
 * from class subfolders, next to raw pixels as the baseline. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli.h"

static const char *CMD = "eval";

typedef struct split {
    float *x;
    int32_t *y;
    int64_t n;
} split;

/* Features (or raw pixels at the eval size) of a labelled folder. */
static int features(simclr_context *ctx, simclr_module *enc, const model_cfg *cfg, const char *dir, int quiet,
                    image_input *in, float **feat, uint8_t **ok)
{
    char *args[1] = {(char *)dir};
    int rc = input_open(CMD, ctx, args, 1, (int)cfg->channels, 1, 0, in);
    if (!rc) rc = embed_all(CMD, ctx, enc, cfg, in, feat, ok, quiet);
    return rc;
}

static int to_tensor(simclr_context *ctx, float *x, int64_t n, int64_t d, simclr_tensor **t)
{
    int64_t s[2] = {n, d};
    simclr_status st = simclr_tensor_wrap(ctx, SIMCLR_F32, 2, s, x, t);
    return st == SIMCLR_OK ? CLI_OK : cli_fail(CMD, "features", st);
}

/* A shuffle of 0..n-1 fixed by seed (Fisher-Yates on splitmix64). Folder
 * order is sorted by class, and the probe validates its weight decay on the
 * last fifth of the train rows: those must be a sample of every class. */
static int64_t *shuffled(int64_t n, uint64_t seed)
{
    int64_t *p = malloc((size_t)(n > 0 ? n : 1) * sizeof *p);
    if (!p) return NULL;
    uint64_t state = seed * 0xD1B54A32D192ED03ull;
    for (int64_t i = 0; i < n; i++) p[i] = i;
    for (int64_t i = n - 1; i > 0; i--) {
        uint64_t z = (state += 0x9E3779B97F4A7C15ull);
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
        z ^= z >> 31;
        int64_t j = (int64_t)(z % (uint64_t)(i + 1)), t = p[i];
        p[i] = p[j], p[j] = t;
    }
    return p;
}

/* How many images of each class go to test: round(test_frac * count), but a
 * class of 2 or more images keeps at least one train image. */
static int64_t *test_quota(const int32_t *y, int64_t n, int n_classes, double test_frac)
{
    int64_t *quota = calloc((size_t)n_classes, sizeof *quota), *count = calloc((size_t)n_classes, sizeof *count);
    if (!quota || !count) {
        free(quota), free(count);
        return NULL;
    }
    for (int64_t i = 0; i < n; i++) count[y[i]]++;
    for (int c = 0; c < n_classes; c++) {
        quota[c] = (int64_t)floor(test_frac * (double)count[c] + 0.5);
        if (count[c] >= 2 && quota[c] > count[c] - 1) quota[c] = count[c] - 1;
    }
    free(count);
    return quota;
}

/* Copies rows in the order perm: the first quota[c] rows of each class c go
 * to test (te may be NULL with quota NULL: all rows train), the others to
 * train. With perm a seeded shuffle, that is an exact stratified split. */
static int split_rows(const float *x, const int32_t *y, int64_t n, int64_t d, const int64_t *perm,
                      const int64_t *quota, int n_classes, split *tr, split *te)
{
    tr->x = malloc((size_t)(n * d) * sizeof(float)), tr->y = malloc((size_t)n * sizeof(int32_t));
    if (te) te->x = malloc((size_t)(n * d) * sizeof(float)), te->y = malloc((size_t)n * sizeof(int32_t));
    int64_t *taken = calloc((size_t)n_classes, sizeof *taken);
    if (!taken || !tr->x || !tr->y || (te && (!te->x || !te->y))) {
        free(taken);
        return cli_error(CMD, "no memory");
    }
    tr->n = 0;
    if (te) te->n = 0;
    for (int64_t r = 0; r < n; r++) {
        int64_t i = perm[r];
        split *s = te && taken[y[i]] < quota[y[i]] ? te : tr;
        if (s == te) taken[y[i]]++;
        memcpy(s->x + s->n * d, x + i * d, (size_t)d * sizeof(float));
        s->y[s->n++] = y[i];
    }
    free(taken);
    return CLI_OK;
}

/* kNN and the linear probe; its weight decay is wd, or with wd NaN the
 * library's choice on the last fifth of the train rows (*decay). */
static int score(simclr_context *ctx, const split *tr, const split *te, int64_t d, int n_classes, int64_t k,
                 int64_t epochs, double wd, double *knn, double *probe, double *decay)
{
    simclr_tensor *a = NULL, *b = NULL;
    int rc = to_tensor(ctx, tr->x, tr->n, d, &a);
    if (!rc) rc = to_tensor(ctx, te->x, te->n, d, &b);
    simclr_status st;
    if (!rc && (st = simclr_knn_eval_n(ctx, a, tr->y, tr->n, b, te->y, te->n, n_classes, (int)(k < tr->n ? k : tr->n),
                                       0.1, knn)))
        rc = cli_fail(CMD, "kNN", st);
    if (!rc && !isnan(wd)) {
        *decay = wd;
        if ((st = simclr_linear_probe_n(ctx, a, tr->y, tr->n, b, te->y, te->n, n_classes, (int)epochs, wd, probe)))
            rc = cli_fail(CMD, "linear probe", st);
    } else if (!rc && (st = simclr_linear_probe_select(ctx, a, tr->y, tr->n, b, te->y, te->n, n_classes, (int)epochs,
                                                       NULL, 0, probe, decay)))
        rc = cli_fail(CMD, "linear probe", st);
    simclr_tensor_destroy(a);
    simclr_tensor_destroy(b);
    return rc;
}

/* Raw pixels at the eval size: the evaluation transform alone, flattened. */
static int raw_pixels(simclr_context *ctx, const model_cfg *cfg, image_input *in, float **out)
{
    int64_t s = cfg->size, c = cfg->channels, d = c * s * s, n = in->count;
    float *x = malloc((size_t)(n * d) * sizeof(float));
    simclr_image_list *list = NULL;
    int64_t *idx = malloc(sizeof *idx);
    int rc = x && idx ? CLI_OK : cli_error(CMD, "no memory");
    simclr_augment *aug = NULL;
    simclr_status st;
    if (!rc && (st = simclr_augment_create_v2(ctx, SIMCLR_AUG_PRESET_NONE, s, s, &aug))) rc = cli_fail(CMD, "resize", st);
    if (!rc && (st = simclr_augment_set(aug, SIMCLR_AUG_ANTIALIAS, 1))) rc = cli_fail(CMD, "resize", st);
    if (!rc && (st = simclr_image_list_create(ctx, (int)c, &list))) rc = cli_fail(CMD, "list", st);
    for (int64_t i = 0; !rc && i < n; i++) {
        idx[0] = i;
        int64_t got = 0;
        rc = input_load(CMD, in, idx, 1, list, NULL, &got);
        simclr_tensor *t = NULL;
        int64_t shape[4] = {1, c, s, s};
        if (!rc && (st = simclr_tensor_wrap(ctx, SIMCLR_F32, 4, shape, x + i * d, &t))) rc = cli_fail(CMD, "pixels", st);
        if (!rc && (st = simclr_augment_apply_list(aug, list, 0, 0, t))) rc = cli_fail(CMD, "pixels", st);
        simclr_tensor_destroy(t);
    }
    simclr_augment_destroy(aug);
    simclr_image_list_destroy(list);
    free(idx);
    if (rc) {
        free(x);
        return rc;
    }
    *out = x;
    return CLI_OK;
}

/* The top-1 accuracy of a fine-tuned folder's classifier (MODEL/head.simclr,
 * simclr finetune) on the test rows' features (the evaluation transform's,
 * the classifier's own input): *has 0 for a folder without one. */
static int finetuned(simclr_context *ctx, const char *model, const simclr_image_folder *folder, int n_classes,
                     const split *te, int64_t d, int *has, double *top1)
{
    char path[4096];
    struct stat sb;
    snprintf(path, sizeof path, "%s/head.simclr", model);
    *has = stat(path, &sb) == 0;
    if (!*has) return CLI_OK;
    char **names = NULL;
    int k = 0, rc = cfg_classes(CMD, model, &names, &k);
    if (rc) return rc;
    for (int c = 0; !rc && c < (k > n_classes ? k : n_classes); c++)
        if (k != n_classes || strcmp(names[c], simclr_image_folder_class_name(folder, c)) != 0) {
            fprintf(stderr, "simclr eval: the classifier of %s knows %d classes, the labelled folder has %d%s%s%s: "
                            "evaluate it on images of its own classes\n", model, k, n_classes,
                    k == n_classes ? " (class " : "", k == n_classes ? names[c] : "", k == n_classes ? " differs)" : "");
            rc = CLI_FAIL;
        }
    cfg_classes_free(names, k);
    simclr_module *head = NULL;
    simclr_tensor *x = NULL, *y = NULL;
    float *logits = malloc((size_t)(te->n * n_classes) * sizeof(float));
    simclr_status st;
    int64_t xs[2] = {te->n, d}, ys[2] = {te->n, n_classes};
    if (!rc && !logits) rc = cli_error(CMD, "no memory");
    if (!rc && (st = simclr_linear_head_create(ctx, d, n_classes, 0, &head))) rc = cli_fail(CMD, "classifier", st);
    if (!rc && (st = simclr_module_load(head, path))) rc = cli_fail(CMD, path, st);
    if (!rc && (st = simclr_tensor_wrap(ctx, SIMCLR_F32, 2, xs, te->x, &x))) rc = cli_fail(CMD, "features", st);
    if (!rc && (st = simclr_tensor_wrap(ctx, SIMCLR_F32, 2, ys, logits, &y))) rc = cli_fail(CMD, "logits", st);
    if (!rc && (st = simclr_module_forward(head, x, SIMCLR_EVAL, y))) rc = cli_fail(CMD, "classifier", st);
    int64_t right = 0;
    for (int64_t i = 0; !rc && i < te->n; i++) {
        int best = 0; /* ties: the lower class, as simclr_classifier_evaluate */
        for (int c = 1; c < n_classes; c++)
            if (logits[i * n_classes + c] > logits[i * n_classes + best]) best = c;
        right += best == te->y[i];
    }
    if (!rc) *top1 = te->n ? (double)right / (double)te->n : 0;
    simclr_tensor_destroy(x);
    simclr_tensor_destroy(y);
    simclr_module_destroy(head);
    free(logits);
    return rc;
}

int cmd_eval(int argc, char **argv)
{
    const char *model = "simclr-run", *test_dir = NULL, *map = NULL;
    int64_t threads = 0, k = 200, epochs = 1000, seed = 1;
    double test_frac = 0.2, wd = NAN; /* NaN: chosen on validation (the parser takes finite numbers only) */
    int quiet = 0, no_baseline = 0;
    const cli_opt opts[] = {
        {"--model", OPT_STRING, &model, "model folder from simclr train or simclr finetune (default simclr-run)"},
        {"--test", OPT_STRING, &test_dir, "a separate labelled test folder (default: hold out --test-fraction)"},
        {"--test-fraction", OPT_DOUBLE, &test_frac,
         "share of each class held out for testing, > 0 and < 1 (default 0.2)"},
        {"--seed", OPT_INT, &seed, "which images are held out (and the probe's validation fifth), >= 0 (default 1)"},
        {"--k", OPT_INT, &k, "kNN neighbours, 1..100000 (default 200, at most the train size)"},
        {"--probe-epochs", OPT_INT, &epochs, "linear-probe iterations, 1..100000 (default 1000)"},
        {"--probe-wd", OPT_DOUBLE, &wd, "fix the probe's weight decay, 0..1000; default: chosen per row"},
        {"--map", OPT_STRING, &map, "PCA map of the features (PNG), coloured by class"},
        {"--no-baseline", OPT_FLAG, &no_baseline, "skip the raw-pixel baseline"},
        CLI_OPT_THREADS(&threads),
        CLI_OPT_QUIET(&quiet),
    };
    char *pos[1];
    int n_pos;
    int rc = cli_parse(argc, argv, 2, "simclr eval DIR [--test DIR2] [options]",
                       "kNN (cosine, k neighbours, temperature 0.1) and linear-probe accuracy of the encoder's\n"
                       "features, labels from class subfolders (DIR/CLASS/image.jpg), next to the same on raw\n"
                       "pixels at the encoder's input size. Without --test, round(fraction * count) images of\n"
                       "each class (chosen by --seed; a class of 2 or more keeps one train image) are held out.\n"
                       "The probe's weight decay is chosen per row from 1e-5..1e-1 on a fixed random fifth of\n"
                       "the train images (never on test images), then the probe is refitted on all train\n"
                       "images; --probe-wd fixes the decay instead. With a model folder of simclr finetune,\n"
                       "its classifier's top-1 accuracy on the same test images is reported too.",
                       opts, (int)(sizeof opts / sizeof opts[0]), pos, 1, &n_pos);
    if (rc) return rc < 0 ? CLI_OK : rc;
    if (n_pos != 1) {
        fprintf(stderr, "simclr eval: give one labelled folder (see --help)\n");
        return CLI_USAGE;
    }
    if (test_dir && cli_given("--test-fraction")) {
        fprintf(stderr, "simclr eval: --test-fraction and --test: give one of them (a share of DIR held out, or "
                        "a separate test folder)\n");
        return CLI_USAGE;
    }
    if (map && (rc = cli_check_output(CMD, "--map", map))) return rc;
    simclr_context *ctx;
    simclr_status st = simclr_context_create(NULL, (int)threads, NULL, &ctx);
    if (st != SIMCLR_OK) return cli_fail(CMD, "context", st);
    model_cfg cfg;
    simclr_module *enc = NULL;
    image_input in = {0}, in2 = {0};
    float *f1 = NULL, *f2 = NULL, *p1 = NULL, *p2 = NULL;
    uint8_t *ok1 = NULL, *ok2 = NULL;
    split tr = {0}, te = {0}, rtr = {0}, rte = {0};
    int32_t *y1 = NULL, *y2 = NULL;
    int64_t *perm = NULL, *quota = NULL;
    rc = model_load(CMD, ctx, model, &cfg, &enc);
    if (!rc) rc = features(ctx, enc, &cfg, pos[0], quiet, &in, &f1, &ok1);
    if (!rc && test_dir) rc = features(ctx, enc, &cfg, test_dir, quiet, &in2, &f2, &ok2);
    int64_t d = enc ? simclr_module_output_dim(enc) : 0, pd = cfg.channels * cfg.size * cfg.size;
    int n_classes = rc ? 0 : simclr_image_folder_class_count(in.folder);
    if (!rc && test_dir && simclr_image_folder_class_count(in2.folder) != n_classes)
        rc = cli_error(CMD, "the test folder has other classes than the train folder");
    if (!rc && n_classes < 2) rc = cli_error(CMD, "need at least 2 classes (subfolders)");
    if (!rc) {
        y1 = malloc((size_t)in.count * sizeof *y1);
        y2 = test_dir ? malloc((size_t)in2.count * sizeof *y2) : NULL;
        if (!y1 || (test_dir && !y2)) rc = cli_error(CMD, "no memory");
        for (int64_t i = 0; !rc && i < in.count; i++) y1[i] = input_label(&in, i);
        for (int64_t i = 0; !rc && test_dir && i < in2.count; i++) y2[i] = input_label(&in2, i);
    }
    if (!rc && !no_baseline) rc = raw_pixels(ctx, &cfg, &in, &p1);
    if (!rc && !no_baseline && test_dir) rc = raw_pixels(ctx, &cfg, &in2, &p2);
    if (!rc && !(perm = shuffled(in.count, (uint64_t)seed))) rc = cli_error(CMD, "no memory");
    if (!rc && !test_dir && !(quota = test_quota(y1, in.count, n_classes, test_frac))) rc = cli_error(CMD, "no memory");
    if (!rc) {
        /* train rows always copied in the shuffled order; test rows either
         * each class's share of DIR (copied) or all of DIR2 (borrowed) */
        rc = split_rows(f1, y1, in.count, d, perm, quota, n_classes, &tr, test_dir ? NULL : &te);
        if (!rc && !no_baseline)
            rc = split_rows(p1, y1, in.count, pd, perm, quota, n_classes, &rtr, test_dir ? NULL : &rte);
        if (test_dir) te = (split){f2, y2, in2.count}, rte = (split){p2, y2, in2.count};
        if (!rc && (tr.n < 1 || te.n < 1)) rc = cli_error(CMD, "too few images for a train/test split");
        if (!rc && isnan(wd) && tr.n < 2)
            rc = cli_error(CMD, "choosing the probe's weight decay needs at least 2 train images (or --probe-wd)");
    }
    double knn = 0, probe = 0, decay = 0, rknn = 0, rprobe = 0, rdecay = 0;
    if (!rc) rc = score(ctx, &tr, &te, d, n_classes, k, epochs, wd, &knn, &probe, &decay);
    if (!rc && !no_baseline) rc = score(ctx, &rtr, &rte, pd, n_classes, k, epochs, wd, &rknn, &rprobe, &rdecay);
    int has_clf = 0;
    double clf_top1 = 0;
    if (!rc) rc = finetuned(ctx, model, in.folder, n_classes, &te, d, &has_clf, &clf_top1);
    if (!rc) {
        printf("%lld train / %lld test images, %d classes\n", (long long)tr.n, (long long)te.n, n_classes);
        printf("%-22s %10s %14s   %s\n", "features", "kNN top-1", "linear probe", "probe decay");
        printf("%-22s %9.2f%% %13.2f%%   %g\n", "simclr encoder", 100 * knn, 100 * probe, decay);
        if (!no_baseline) printf("%-22s %9.2f%% %13.2f%%   %g\n", "raw pixels", 100 * rknn, 100 * rprobe, rdecay);
        if (has_clf)
            printf("fine-tuned classifier  top-1 %.2f%% on the same test images (%s/head.simclr)%s\n", 100 * clf_top1,
                   model, test_dir ? "" : "; it may have been fine-tuned on some of them (its labels.txt): --test "
                                          "with other images gives a fair figure");
        if (isnan(wd))
            printf("(probe decay: chosen per row on a fixed random fifth of the train images, %lld iterations; "
                   "--probe-wd fixes it)\n", (long long)epochs);
    }
    if (!rc && map) {
        rc = plot_pca(CMD, map, f1, in.count, d, y1, in.folder);
        if (!rc) printf("wrote %s (PCA of the features, coloured by class)\n", map);
    }
    free(tr.x), free(tr.y), free(rtr.x), free(rtr.y), free(perm), free(quota);
    if (!test_dir) free(te.x), free(te.y), free(rte.x), free(rte.y);
    free(f1), free(f2), free(p1), free(p2), free(ok1), free(ok2), free(y1), free(y2);
    input_close(&in);
    input_close(&in2);
    simclr_module_destroy(enc);
    simclr_context_destroy(ctx);
    return rc;
}
