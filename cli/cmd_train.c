/* simclr train DIR: SimCLR pre-training on a folder of images, each view
 * cropped from its image's full resolution. */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"

static const char *CMD = "train";

typedef struct run_log {
    double *loss, *acc, *lr, *ips;
    int64_t n, cap;
} run_log;

static int log_push(run_log *l, double loss, double acc, double lr, double ips)
{
    if (l->n == l->cap) {
        int64_t cap = l->cap ? 2 * l->cap : 1024;
        double *a = realloc(l->loss, (size_t)cap * sizeof *a);
        if (a) l->loss = a;
        double *b = a ? realloc(l->acc, (size_t)cap * sizeof *b) : NULL;
        if (b) l->acc = b;
        double *c = b ? realloc(l->lr, (size_t)cap * sizeof *c) : NULL;
        if (c) l->lr = c;
        double *d = c ? realloc(l->ips, (size_t)cap * sizeof *d) : NULL;
        if (d) l->ips = d;
        if (!d) return cli_error(CMD, "no memory for the log");
        l->cap = cap;
    }
    l->loss[l->n] = loss, l->acc[l->n] = acc, l->lr[l->n] = lr, l->ips[l->n] = ips;
    l->n++;
    return CLI_OK;
}

static void log_read(run_log *l, const char *path, int64_t upto)
{
    FILE *f = fopen(path, "r");
    if (!f) return;
    char line[256];
    while (fgets(line, sizeof line, f) && l->n < upto) {
        long long step;
        double loss, acc, lr, ips;
        if (sscanf(line, "%lld,%lf,%lf,%lf,%lf", &step, &loss, &acc, &lr, &ips) == 5) log_push(l, loss, acc, lr, ips);
    }
    fclose(f);
}

static int log_write(const char *dir, const run_log *l)
{
    size_t cap = 64 + (size_t)l->n * 96, len = 0;
    char *buf = malloc(cap);
    if (!buf) return cli_error(CMD, "no memory for the log");
    len += (size_t)snprintf(buf, cap, "step,loss,contrastive_accuracy,lr,images_per_s\n");
    for (int64_t i = 0; i < l->n; i++)
        len += (size_t)snprintf(buf + len, cap - len, "%lld,%.6f,%.6f,%.6g,%.1f\n", (long long)i + 1, l->loss[i],
                                l->acc[i], l->lr[i], l->ips[i]);
    char path[4096];
    snprintf(path, sizeof path, "%s/log.csv", dir);
    int rc = write_atomic(CMD, path, buf, len);
    free(buf);
    if (rc) return rc;
    snprintf(path, sizeof path, "%s/curves.png", dir);
    return plot_curves(CMD, path, l->loss, l->acc, l->n);
}

/* A permutation of [0, n) for epoch e (xorshift-driven Fisher-Yates). */
static void permute(int64_t *p, int64_t n, uint64_t seed, int64_t epoch)
{
    uint64_t s = seed * 0x9E3779B97F4A7C15ull + (uint64_t)epoch * 0xBF58476D1CE4E5B9ull + 1;
    for (int64_t i = 0; i < n; i++) p[i] = i;
    for (int64_t i = n - 1; i > 0; i--) {
        s ^= s << 13, s ^= s >> 7, s ^= s << 17;
        int64_t j = (int64_t)(s % (uint64_t)(i + 1));
        int64_t t = p[i];
        p[i] = p[j], p[j] = t;
    }
}

/* Batch `at` of the epoch's order without the images known to be bad;
 * returns how many indices it wrote to out. */
static int64_t batch_indices(const image_input *in, const int64_t *perm, int64_t at, int64_t batch, int64_t *out)
{
    int64_t m = 0;
    for (int64_t k = 0; k < batch; k++)
        if (!in->folder || !simclr_image_folder_is_bad(in->folder, perm[at * batch + k])) out[m++] = perm[at * batch + k];
    return m;
}

static int save_all(const char *dir, simclr_trainer *tr, simclr_module *enc, const run_log *l)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/trainer.ckpt", dir);
    simclr_status st = simclr_trainer_save(tr, path);
    if (st != SIMCLR_OK) return cli_fail(CMD, path, st);
    snprintf(path, sizeof path, "%s/encoder.simclr", dir);
    st = simclr_module_save(enc, path);
    if (st != SIMCLR_OK) return cli_fail(CMD, path, st);
    return log_write(dir, l);
}

int cmd_train(int argc, char **argv)
{
    const char *out = "simclr-run", *optimizer = "sgd";
    int64_t epochs = 10, batch = 64, size = 32, width = 32, depth = 18, channels = 3, threads = 0, seed = 1;
    int64_t every = 100, prefetch = -1;
    double minutes = 0, lr = 0, temperature = 0.2, crop_min = 0.08, weight_decay = 1e-6;
    int resume = 0, skip_bad = 0, quiet = 0;
    const cli_opt opts[] = {
        {"--out", OPT_STRING, &out, "model folder to write (default simclr-run)"},
        {"--epochs", OPT_INT, &epochs, "passes over the images (default 10)"},
        {"--minutes", OPT_DOUBLE, &minutes, "train for this wall-clock budget instead of --epochs"},
        {"--batch", OPT_INT, &batch, "images per step (default 64; two views each)"},
        {"--size", OPT_INT, &size, "side of the square views the encoder sees (default 32)"},
        {"--width", OPT_INT, &width, "ResNet base width (default 32; torchvision's is 64)"},
        {"--depth", OPT_INT, &depth, "ResNet depth: 18, 34, 50, 101, 152 (default 18)"},
        {"--channels", OPT_INT, &channels, "1 (gray) or 3 (RGB, default)"},
        {"--lr", OPT_DOUBLE, &lr, "peak learning rate (default 0.075*sqrt(batch))"},
        {"--optimizer", OPT_STRING, &optimizer, "sgd (default) or lars"},
        {"--weight-decay", OPT_DOUBLE, &weight_decay, "default 1e-6"},
        {"--temperature", OPT_DOUBLE, &temperature, "NT-Xent temperature (default 0.2)"},
        {"--crop-min", OPT_DOUBLE, &crop_min, "smallest crop area fraction (default 0.08)"},
        {"--threads", OPT_INT, &threads, "worker threads (default 0 = all cores)"},
        {"--seed", OPT_INT, &seed, "run seed (default 1)"},
        {"--checkpoint-every", OPT_INT, &every, "steps between checkpoints (default 100)"},
        {"--prefetch", OPT_INT, &prefetch, "threads decoding the next batch during a step, 0 = off (default: 1 if --threads leaves a core free, else 0)"},
        {"--resume", OPT_FLAG, &resume, "continue from OUT/trainer.ckpt"},
        {"--skip-bad", OPT_FLAG, &skip_bad, "skip (and count) unreadable or corrupt images instead of stopping"},
        {"--quiet", OPT_FLAG, &quiet, "no progress bar"},
    };
    char *pos[1];
    int n_pos;
    int rc = cli_parse(argc, argv, 2, "simclr train DIR [options]",
                       "Pre-trains a ResNet encoder with SimCLR on the .png/.jpg/.jpeg images under DIR\n"
                       "(any sizes: each view is cropped from the full-resolution image). Writes OUT/simclr.cfg,\n"
                       "OUT/encoder.simclr, OUT/trainer.ckpt (for --resume), OUT/log.csv and OUT/curves.png\n"
                       "(loss on the left, contrastive accuracy on the right).",
                       opts, (int)(sizeof opts / sizeof opts[0]), pos, 1, &n_pos);
    if (rc) return rc < 0 ? CLI_OK : rc;
    if (n_pos != 1) {
        fprintf(stderr, "simclr train: give one folder of images (see --help)\n");
        return CLI_USAGE;
    }
    if (batch < 2 || epochs < 1 || size < 8 || minutes < 0 || every < 1 || prefetch < -1 || prefetch > 64 ||
        (channels != 1 && channels != 3) ||
        (strcmp(optimizer, "sgd") && strcmp(optimizer, "lars"))) {
        fprintf(stderr, "simclr train: --batch >= 2, --epochs >= 1, --size >= 8, --channels 1 or 3, --optimizer sgd|lars, "
                        "--prefetch 0..64\n");
        return CLI_USAGE;
    }
    struct stat sb;
    if (stat(pos[0], &sb) != 0 || !S_ISDIR(sb.st_mode)) {
        fprintf(stderr, "simclr train: %s: %s\n", pos[0], errno && stat(pos[0], &sb) != 0 ? strerror(errno) : "not a folder");
        return CLI_FAIL;
    }
    if (mkdir(out, 0777) != 0 && errno != EEXIST) {
        fprintf(stderr, "simclr train: cannot create %s: %s\n", out, strerror(errno));
        return CLI_FAIL;
    }
    model_cfg cfg = {depth, width, channels, size, 0, 128, ""};
    snprintf(cfg.stem, sizeof cfg.stem, "%s", size > 96 ? "imagenet" : "cifar");
    if (resume && (rc = cfg_read(CMD, out, &cfg))) return rc;

    simclr_context *ctx = NULL;
    simclr_status st = simclr_context_create(NULL, (int)threads, NULL, &ctx);
    if (st != SIMCLR_OK) return cli_fail(CMD, "context", st);
    image_input in;
    if ((rc = input_open(CMD, ctx, pos, 1, (int)cfg.channels, 0, skip_bad, &in))) {
        simclr_context_destroy(ctx);
        return rc;
    }
    /* Prefetching pays only on a core the step does not use: measured on
     * 2 cores with the step on both, decoding beside it made a run 7% slower
     * (bench/bench_decode.sh), as a fork-join step waits for its slowest
     * worker. */
    if (prefetch < 0) prefetch = simclr_context_threads(ctx) < sysconf(_SC_NPROCESSORS_ONLN) ? 1 : 0;
    if (in.folder && prefetch > 0) simclr_image_folder_set(in.folder, SIMCLR_FOLDER_PREFETCH_THREADS, prefetch);
    if (in.count < 2) {
        input_close(&in);
        simclr_context_destroy(ctx);
        return cli_error(CMD, "need at least 2 images");
    }
    if (batch > in.count) batch = in.count;
    simclr_module *enc = NULL, *head = NULL;
    simclr_augment *aug = NULL;
    simclr_loss *loss = NULL;
    simclr_optimizer *opt = NULL;
    simclr_trainer *tr = NULL;
    simclr_image_list *list = NULL;
    int64_t *perm = malloc((size_t)in.count * sizeof *perm), *idx = malloc((size_t)batch * sizeof *idx),
            *next = malloc((size_t)batch * sizeof *next);
    run_log lg = {0};
    if (!perm || !idx || !next) rc = cli_error(CMD, "no memory");
#define TRY(call, what)                                             \
    do {                                                            \
        if (!rc && (st = (call)) != SIMCLR_OK) rc = cli_fail(CMD, what, st); \
    } while (0)
    TRY(simclr_resnet_create(ctx, (int)cfg.depth, (int)cfg.width, (int)cfg.channels,
                             strcmp(cfg.stem, "imagenet") ? SIMCLR_STEM_CIFAR : SIMCLR_STEM_IMAGENET, (uint64_t)seed, &enc),
        "encoder");
    if (!rc) cfg.head_hidden = simclr_module_output_dim(enc);
    TRY(simclr_mlp_head_create(ctx, (int)cfg.head_hidden, (int)cfg.head_hidden, (int)cfg.head_out, 2, 0,
                               (uint64_t)seed + 1, &head),
        "projection head");
    TRY(simclr_augment_create(ctx, cfg.channels == 3 ? SIMCLR_AUG_PRESET_SIMCLR_V1 : SIMCLR_AUG_PRESET_GRAYSCALE,
                              (int)cfg.size, (int)cfg.size, &aug),
        "augmentation");
    TRY(simclr_augment_set(aug, SIMCLR_AUG_ANTIALIAS, 1), "antialias");
    TRY(simclr_augment_set(aug, SIMCLR_AUG_CROP_SCALE_MIN, crop_min), "--crop-min");
    TRY(simclr_ntxent_create(ctx, temperature, 2, &loss), "--temperature");
    simclr_module *mods[2] = {enc, head};
    TRY(simclr_optimizer_create(ctx, strcmp(optimizer, "lars") ? SIMCLR_OPT_SGD : SIMCLR_OPT_LARS, mods, 2, &opt),
        "optimizer");
    int64_t per_epoch = in.count / batch, total = per_epoch * epochs;
    TRY(simclr_optimizer_set(opt, SIMCLR_OPT_LR, lr > 0 ? lr : simclr_lr_sqrt_scaling(0.075, batch)), "--lr");
    TRY(simclr_optimizer_set(opt, SIMCLR_OPT_WEIGHT_DECAY, weight_decay), "--weight-decay");
    TRY(simclr_optimizer_set(opt, SIMCLR_OPT_TOTAL_STEPS, minutes > 0 ? 1e9 : (double)total), "schedule");
    TRY(simclr_optimizer_set(opt, SIMCLR_OPT_WARMUP_STEPS, minutes > 0 ? 10 : (double)(total / 10)), "warmup");
    TRY(simclr_trainer_create(ctx, enc, head, aug, loss, opt, &tr), "trainer");
    TRY(simclr_image_list_create(ctx, (int)cfg.channels, &list), "image list");
    char path[4096];
    int64_t step = 0;
    if (!rc && resume) {
        snprintf(path, sizeof path, "%s/trainer.ckpt", out);
        TRY(simclr_trainer_load(tr, path), path);
        double s = 0;
        if (!rc) simclr_trainer_stat(tr, SIMCLR_STAT_STEP, &s);
        step = (int64_t)s;
        snprintf(path, sizeof path, "%s/log.csv", out);
        if (!rc) log_read(&lg, path, step);
        if (!rc && !quiet) fprintf(stderr, "simclr train: resuming %s at step %lld\n", out, (long long)step);
    }
    if (!rc) rc = cfg_write(CMD, out, &cfg);
    if (!rc && !quiet)
        fprintf(stderr, "simclr train: %lld images in %s, resnet%lld width %lld, %lldx%lld views, batch %lld, %s\n",
                (long long)in.count, pos[0], (long long)cfg.depth, (long long)cfg.width, (long long)cfg.size,
                (long long)cfg.size, (long long)batch,
                minutes > 0 ? "time budget" : "epochs");
    double t0 = cli_now(), budget = minutes * 60;
    int64_t perm_epoch = -1, start = step, empty = 0;
    while (!rc) {
        double elapsed = cli_now() - t0;
        if (minutes > 0) {
            if (elapsed >= budget) break;
            int64_t done = step - start;
            if (done >= 3 && done % 10 == 0) { /* re-aim the cosine at the budget's end */
                total = step + (int64_t)((budget - elapsed) / (elapsed / (double)done));
                TRY(simclr_optimizer_set(opt, SIMCLR_OPT_TOTAL_STEPS, (double)(total > step ? total : step + 1)),
                    "schedule");
            }
        } else if (step >= total) {
            break;
        }
        int64_t epoch = step / per_epoch, at = step % per_epoch;
        if (epoch != perm_epoch) permute(perm, in.count, (uint64_t)seed, epoch), perm_epoch = epoch;
        int64_t m = batch_indices(&in, perm, at, batch, idx), kept = 0;
        if (m > 0) rc = input_load(CMD, &in, idx, m, list, NULL, &kept);
        if (rc) break;
        /* The next batch decodes in the background while this one trains
         * (within the epoch: the next epoch's order is drawn when it
         * starts). Its load recomputes the same indices -- bad marks change
         * only at loads -- and takes the result; a failed prefetch only
         * means that load decodes the batch itself. */
        if (in.folder && prefetch > 0 && at + 1 < per_epoch) {
            int64_t m_next = batch_indices(&in, perm, at + 1, batch, next);
            if (m_next > 0) (void)simclr_image_folder_prefetch(in.folder, next, m_next);
        }
        if (kept < 2) { /* every image of this batch was bad: move on */
            if (++empty > 1000) rc = cli_error(CMD, "no decodable images left");
            step++;
            continue;
        }
        empty = 0;
        float value;
        TRY(simclr_trainer_step_list(tr, list, (uint64_t)seed * 1000003u + (uint64_t)step, &value), "training step");
        if (rc) break;
        step++;
        double acc = 0, lr_used = 0, ips = 0;
        simclr_trainer_stat(tr, SIMCLR_STAT_ACCURACY, &acc);
        simclr_trainer_stat(tr, SIMCLR_STAT_LR, &lr_used);
        simclr_trainer_stat(tr, SIMCLR_STAT_IMAGES_PER_SEC, &ips);
        rc = log_push(&lg, value, acc, lr_used, ips / 2); /* stat counts views; report images */
        if (!quiet) {
            char extra[128];
            snprintf(extra, sizeof extra, "loss %.4f acc %.3f %.1f img/s", value, acc, ips / 2);
            elapsed = cli_now() - t0;
            if (minutes > 0) progress_line("train", (int64_t)elapsed, (int64_t)budget, elapsed, extra, 0);
            else progress_line("train", step - start, total - start, elapsed, extra, step == total);
        }
        if (!rc && step % every == 0) rc = save_all(out, tr, enc, &lg);
    }
    if (!rc) rc = save_all(out, tr, enc, &lg);
    if (!rc) {
        if (!quiet && minutes > 0) fprintf(stderr, "\n");
        int64_t skipped = in.folder ? simclr_image_folder_skipped(in.folder) : 0;
        printf("trained %lld steps (%lld this run) in %.1f s; last loss %.4f; wrote %s/encoder.simclr, "
               "%s/trainer.ckpt, %s/log.csv, %s/curves.png\n",
               (long long)step, (long long)(step - start), cli_now() - t0, lg.n ? lg.loss[lg.n - 1] : NAN, out, out,
               out, out);
        if (skipped) {
            printf("skipped %lld unreadable images:\n", (long long)skipped);
            for (int64_t i = 0; i < in.count; i++)
                if (simclr_image_folder_is_bad(in.folder, i)) printf("  %s\n", input_path(&in, i));
        }
    }
#undef TRY
    free(lg.loss), free(lg.acc), free(lg.lr), free(lg.ips);
    free(perm), free(idx), free(next);
    simclr_image_list_destroy(list);
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
