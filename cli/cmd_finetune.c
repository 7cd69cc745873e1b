/* simclr finetune DIR --model RUN --out FT: supervised fine-tuning of a
 * pre-trained encoder with a linear classification head on a seeded,
 * class-balanced subset of the labelled images under DIR/CLASS/. */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"

static const char *CMD = "finetune";

/* The images of the subset, each resized once (whole image, antialiased) to
 * side x side and kept as U8 [n, side, side, C]: the fine-tuning views are
 * cropped from these at every step. */
static int prepare(simclr_context *ctx, image_input *in, const int64_t *sub, int64_t n, int64_t side, int64_t c,
                   uint8_t *px, int quiet)
{
    const int64_t chunk = 32, d = c * side * side;
    simclr_augment *aug = NULL;
    simclr_image_list *list = NULL;
    float *f = malloc((size_t)(chunk * d) * sizeof(float));
    int64_t *kept = malloc((size_t)chunk * sizeof *kept);
    int rc = f && kept ? CLI_OK : cli_error(CMD, "no memory");
    simclr_status st;
    if (!rc && (st = simclr_augment_create_v2(ctx, SIMCLR_AUG_PRESET_NONE, side, side, &aug)))
        rc = cli_fail(CMD, "resize", st);
    if (!rc && (st = simclr_augment_set(aug, SIMCLR_AUG_ANTIALIAS, 1))) rc = cli_fail(CMD, "resize", st);
    if (!rc && (st = simclr_image_list_create(ctx, c, &list))) rc = cli_fail(CMD, "image list", st);
    double t0 = cli_now();
    for (int64_t first = 0; !rc && first < n; first += chunk) {
        int64_t m = n - first < chunk ? n - first : chunk, got = 0;
        rc = input_load(CMD, in, sub + first, m, list, kept, &got);
        if (!rc && got != m) rc = cli_error(CMD, "an image of the labelled subset could not be decoded");
        simclr_tensor *t = NULL;
        int64_t shape[4] = {m, c, side, side};
        if (!rc && (st = simclr_tensor_wrap(ctx, SIMCLR_F32, 4, shape, f, &t))) rc = cli_fail(CMD, "pixels", st);
        if (!rc && (st = simclr_augment_apply_list(aug, list, 0, 0, t))) rc = cli_fail(CMD, "resize", st);
        simclr_tensor_destroy(t);
        for (int64_t i = 0; !rc && i < m; i++)
            for (int64_t ch = 0; ch < c; ch++)
                for (int64_t p = 0; p < side * side; p++) {
                    double v = f[i * d + ch * side * side + p] * 255.0;
                    v = v < 0 ? 0 : v > 255 ? 255 : v;
                    px[(first + i) * d + p * c + ch] = (uint8_t)lrint(v);
                }
        if (!rc && !quiet) progress_line("load", first + m, n, "images", cli_now() - t0, "", first + m == n);
    }
    simclr_image_list_destroy(list);
    simclr_augment_destroy(aug);
    free(f), free(kept);
    return rc;
}

/* simclr.cfg of the fine-tuned folder: the encoder's lines, then the
 * classes (one "class NAME" line each, in label order). */
static int write_cfg(const char *out, const model_cfg *cfg, const simclr_image_folder *folder, int k)
{
    size_t cap = 1024, len = 0;
    for (int i = 0; i < k; i++) cap += strlen(simclr_image_folder_class_name(folder, i)) + 8;
    char *text = malloc(cap);
    if (!text) return cli_error(CMD, "no memory");
    len += (size_t)snprintf(text, cap,
                            "# simclr model configuration (written by simclr finetune)\n"
                            "depth %lld\nwidth %lld\nchannels %lld\nsize %lld\nstem %s\nhead_hidden %lld\n"
                            "head_out %lld\nclasses %d\n",
                            (long long)cfg->depth, (long long)cfg->width, (long long)cfg->channels,
                            (long long)cfg->size, cfg->stem, (long long)cfg->head_hidden, (long long)cfg->head_out, k);
    for (int i = 0; i < k; i++)
        len += (size_t)snprintf(text + len, cap - len, "class %s\n", simclr_image_folder_class_name(folder, i));
    char path[4096];
    snprintf(path, sizeof path, "%s/simclr.cfg", out);
    int rc = write_atomic(CMD, path, text, len);
    free(text);
    return rc;
}

int cmd_finetune(int argc, char **argv)
{
    const char *model = "simclr-run", *out = "simclr-finetune", *labels = NULL;
    int64_t epochs = 30, batch = 64, per_class = 0, seed = 1, threads = 0;
    double lr = 0.1;
    int freeze = 0, quiet = 0;
    const cli_opt opts[] = {
        {"--model", OPT_STRING, &model, "pre-trained model folder from simclr train (default simclr-run)"},
        {"--out", OPT_STRING, &out, "fine-tuned model folder to write (default simclr-finetune)"},
        {"--labels", OPT_STRING, &labels, "share of each class's images used: 10% or 0.1 (default all)"},
        {"--per-class", OPT_INT, &per_class, "or this many images of each class, >= 1"},
        {"--epochs", OPT_INT, &epochs, "passes over the labelled subset, 1..1000000 (default 30)"},
        {"--batch", OPT_INT, &batch, "images per step, 2..65536 (default 64, at most the subset)"},
        {"--lr", OPT_DOUBLE, &lr, "peak learning rate (SGD, cosine), > 0 and <= 100 (default 0.1)"},
        {"--freeze-encoder", OPT_FLAG, &freeze, "train the head only (a linear classifier on frozen features)"},
        {"--seed", OPT_INT, &seed, "which images form the subset, the head's start and the views, >= 0 (default 1)"},
        CLI_OPT_THREADS(&threads),
        CLI_OPT_QUIET(&quiet),
    };
    char *pos[1];
    int n_pos;
    int rc = cli_parse(argc, argv, 2, "simclr finetune DIR --model RUN [--out FT] [--labels 10% | --per-class N] [options]",
                       "Fine-tunes the pre-trained encoder of RUN together with a new linear classification\n"
                       "head on labelled images (DIR/CLASS/image.jpg; the classes are the subfolders). A seeded,\n"
                       "class-balanced subset is used: round(share * count) images of each class (at least 1)\n"
                       "with --labels, N of each with --per-class, all without either. Each image is resized once\n"
                       "to the model's input size; every step draws SimCLR's fine-tuning views (random resized\n"
                       "crop + flip) from it. Writes FT/simclr.cfg (architecture and class names),\n"
                       "FT/encoder.simclr, FT/head.simclr, FT/trainer.ckpt and FT/labels.txt (the subset's\n"
                       "indices into DIR's sorted images, to repeat the run). simclr predict uses FT.",
                       opts, (int)(sizeof opts / sizeof opts[0]), pos, 1, &n_pos);
    if (rc) return rc < 0 ? CLI_OK : rc;
    if (n_pos != 1) {
        fprintf(stderr, "simclr finetune: give one labelled folder (see --help)\n");
        return CLI_USAGE;
    }
    if (labels && per_class) {
        fprintf(stderr, "simclr finetune: --labels and --per-class: give one of them (a share of each class, or a "
                        "number of images per class)\n");
        return CLI_USAGE;
    }
    double fraction = labels ? cli_share(labels) : per_class ? 0 : 1;
    struct stat sb;
    int out_exists = stat(out, &sb) == 0;
    if (out_exists && !S_ISDIR(sb.st_mode)) {
        fprintf(stderr, "simclr finetune: --out %s exists and is not a folder\n", out);
        return CLI_FAIL;
    }
    struct stat sm;
    if (out_exists && stat(model, &sm) == 0 && sm.st_dev == sb.st_dev && sm.st_ino == sb.st_ino) {
        fprintf(stderr, "simclr finetune: --out %s is the --model folder: its pre-trained encoder would be "
                        "overwritten; give another --out\n", out);
        return CLI_FAIL;
    }
    simclr_context *ctx = NULL;
    simclr_status st = simclr_context_create(NULL, (int)threads, NULL, &ctx);
    if (st != SIMCLR_OK) return cli_fail(CMD, "context", st);
    model_cfg cfg;
    simclr_module *enc = NULL, *head = NULL;
    image_input in = {0};
    simclr_augment *aug = NULL;
    simclr_loss *loss = NULL;
    simclr_optimizer *opt = NULL;
    simclr_trainer *tr = NULL;
    int32_t *y = NULL, *ysub = NULL, *yb = NULL;
    int64_t *sub = NULL, *count = NULL, *perm = NULL, n_sub = 0;
    uint8_t *px = NULL, *bx = NULL;
    int created = 0, k = 0;
    rc = model_load(CMD, ctx, model, &cfg, &enc);
    if (!rc) rc = input_open(CMD, ctx, pos, 1, (int)cfg.channels, 1, 0, &in);
    if (!rc && (k = simclr_image_folder_class_count(in.folder)) < 2)
        rc = cli_error(CMD, "need at least 2 classes (subfolders of the labelled folder)");
    if (!rc) {
        y = malloc((size_t)in.count * sizeof *y);
        count = calloc((size_t)k, sizeof *count);
        if (!y || !count) rc = cli_error(CMD, "no memory");
        for (int64_t i = 0; !rc && i < in.count; i++) count[y[i] = input_label(&in, i)]++;
    }
    for (int c = 0; !rc && c < k; c++)
        if (per_class > count[c]) {
            fprintf(stderr, "simclr finetune: --per-class %lld: class '%s' has only %lld labelled images\n",
                    (long long)per_class, simclr_image_folder_class_name(in.folder, c), (long long)count[c]);
            rc = CLI_FAIL;
        }
    if (!rc) {
        st = per_class ? simclr_label_subset_per_class(ctx, y, in.count, k, per_class, (uint64_t)seed, NULL, 0, &n_sub)
                       : simclr_label_subset_fraction(ctx, y, in.count, k, fraction, (uint64_t)seed, NULL, 0, &n_sub);
        if (st) rc = cli_fail(CMD, "labelled subset", st);
    }
    if (!rc && !(sub = malloc((size_t)n_sub * sizeof *sub))) rc = cli_error(CMD, "no memory");
    if (!rc) {
        st = per_class ? simclr_label_subset_per_class(ctx, y, in.count, k, per_class, (uint64_t)seed, sub, n_sub, &n_sub)
                       : simclr_label_subset_fraction(ctx, y, in.count, k, fraction, (uint64_t)seed, sub, n_sub, &n_sub);
        if (st) rc = cli_fail(CMD, "labelled subset", st);
    }
    if (!rc && n_sub < 2) rc = cli_error(CMD, "the labelled subset has fewer than 2 images");
    if (!rc && batch > n_sub) batch = n_sub;
    const int64_t side = cfg.size, c = cfg.channels, d = side * side * c;
    if (!rc) {
        px = malloc((size_t)(n_sub * d)), bx = malloc((size_t)(batch * d));
        ysub = malloc((size_t)n_sub * sizeof *ysub), yb = malloc((size_t)batch * sizeof *yb);
        perm = malloc((size_t)n_sub * sizeof *perm);
        if (!px || !bx || !ysub || !yb || !perm) rc = cli_error(CMD, "no memory for the labelled images");
        for (int64_t i = 0; !rc && i < n_sub; i++) ysub[i] = y[sub[i]];
    }
    if (!rc && !quiet)
        fprintf(stderr, "simclr finetune: %lld of %lld labelled images (%d classes) in %s, encoder %s%s\n",
                (long long)n_sub, (long long)in.count, k, pos[0], model, freeze ? " (frozen)" : "");
    if (!rc) rc = prepare(ctx, &in, sub, n_sub, side, c, px, quiet);
#define TRY(call, what)                                                      \
    do {                                                                     \
        if (!rc && (st = (call)) != SIMCLR_OK) rc = cli_fail(CMD, what, st); \
    } while (0)
    TRY(simclr_linear_head_create(ctx, simclr_module_output_dim(enc), k, (uint64_t)seed, &head), "classification head");
    TRY(simclr_augment_create_v2(ctx, SIMCLR_AUG_PRESET_FINETUNE, side, side, &aug), "augmentation");
    TRY(simclr_augment_set(aug, SIMCLR_AUG_ANTIALIAS, 1), "antialias");
    TRY(simclr_cross_entropy_create(ctx, k, &loss), "loss");
    simclr_module *mods[2] = {enc, head};
    TRY(simclr_optimizer_create(ctx, SIMCLR_OPT_SGD, freeze ? mods + 1 : mods, freeze ? 1 : 2, &opt), "optimizer");
    int64_t per_epoch = rc ? 1 : (n_sub + batch - 1) / batch, total = rc ? 0 : per_epoch * epochs;
    TRY(simclr_optimizer_set(opt, SIMCLR_OPT_LR, lr), "--lr");
    TRY(simclr_optimizer_set(opt, SIMCLR_OPT_TOTAL_STEPS, (double)total), "schedule");
    TRY(simclr_optimizer_set(opt, SIMCLR_OPT_WARMUP_STEPS, 0), "warmup");
    TRY(simclr_finetune_trainer_create(ctx, enc, head, aug, loss, opt, &tr), "trainer");
    /* the folder is made only now: every check has passed */
    if (!rc && !out_exists) {
        if (mkdir(out, 0777) == 0) created = 1;
        else if (errno != EEXIST) {
            fprintf(stderr, "simclr finetune: cannot create %s: %s\n", out, strerror(errno));
            rc = CLI_FAIL;
        }
    }
    char path[4096];
    snprintf(path, sizeof path, "%s/labels.txt", out);
    TRY(simclr_label_subset_save(ctx, path, sub, n_sub, in.count, per_class ? 0 : fraction, per_class, (uint64_t)seed),
        path);
    double t0 = cli_now(), acc = 0;
    float value = NAN;
    for (int64_t step = 0; !rc && step < total; step++) {
        int64_t epoch = step / per_epoch, at = step % per_epoch;
        if (at == 0) { /* a seeded shuffle of the subset per epoch (Fisher-Yates, splitmix64) */
            uint64_t s = ((uint64_t)seed + 1) * 0x9E3779B97F4A7C15ull + (uint64_t)epoch * 0xD1B54A32D192ED03ull;
            for (int64_t i = 0; i < n_sub; i++) perm[i] = i;
            for (int64_t i = n_sub - 1; i > 0; i--) {
                uint64_t z = (s += 0x9E3779B97F4A7C15ull);
                z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
                z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
                z ^= z >> 31;
                int64_t j = (int64_t)(z % (uint64_t)(i + 1)), t = perm[i];
                perm[i] = perm[j], perm[j] = t;
            }
        }
        int64_t first = at * batch, m = n_sub - first < batch ? n_sub - first : batch;
        if (m < 2 && at > 0) first = n_sub - 2, m = 2; /* a last batch of one: BN needs two */
        for (int64_t i = 0; i < m; i++) {
            memcpy(bx + i * d, px + perm[first + i] * d, (size_t)d);
            yb[i] = ysub[perm[first + i]];
        }
        simclr_tensor *t = NULL;
        int64_t shape[4] = {m, side, side, c};
        TRY(simclr_tensor_wrap(ctx, SIMCLR_U8, 4, shape, bx, &t), "batch");
        TRY(simclr_trainer_step_labels(tr, t, yb, m, (uint64_t)seed * 1000003u + (uint64_t)step, &value),
            "fine-tuning step");
        simclr_tensor_destroy(t);
        if (rc) break;
        simclr_trainer_stat(tr, SIMCLR_STAT_ACCURACY, &acc);
        if (!quiet) {
            char extra[96];
            snprintf(extra, sizeof extra, "epoch %lld  loss %.4f  acc %.0f%%", (long long)epoch + 1, (double)value,
                     100 * acc);
            progress_line("finetune", step + 1, total, "steps", cli_now() - t0, extra, step + 1 == total);
        }
    }
    if (!rc) rc = write_cfg(out, &cfg, in.folder, k);
    snprintf(path, sizeof path, "%s/encoder.simclr", out);
    TRY(simclr_module_save(enc, path), path);
    snprintf(path, sizeof path, "%s/head.simclr", out);
    TRY(simclr_module_save(head, path), path);
    snprintf(path, sizeof path, "%s/trainer.ckpt", out);
    TRY(simclr_trainer_save(tr, path), path);
    if (!rc)
        printf("fine-tuned %lld steps on %lld labelled images (%d classes) in %.1f s; last loss %.4f, batch accuracy "
               "%.1f%%; wrote %s/simclr.cfg, %s/encoder.simclr, %s/head.simclr, %s/trainer.ckpt, %s/labels.txt\n",
               (long long)total, (long long)n_sub, k, cli_now() - t0, (double)value, 100 * acc, out, out, out, out,
               out);
    if (rc && created) { /* a failed run leaves no folder it made */
        static const char *files[] = {"labels.txt", "simclr.cfg", "encoder.simclr", "head.simclr", "trainer.ckpt"};
        for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
            snprintf(path, sizeof path, "%s/%s", out, files[i]);
            remove(path);
        }
        rmdir(out);
    }
#undef TRY
    free(y), free(ysub), free(yb), free(sub), free(count), free(perm), free(px), free(bx);
    simclr_trainer_destroy(tr);
    simclr_optimizer_destroy(opt);
    simclr_loss_destroy(loss);
    simclr_augment_destroy(aug);
    simclr_module_destroy(head);
    simclr_module_destroy(enc);
    input_close(&in);
    simclr_context_destroy(ctx);
    return rc;
}
