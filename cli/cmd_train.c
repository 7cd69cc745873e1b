/* simclr train DIR: SimCLR pre-training on a folder of images, each view
 * cropped from its image's full resolution. */
#define _DEFAULT_SOURCE /* flock */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"

static const char *CMD = "train";

/* The run's log, one row per trainer step, each with its own step number.
 * log.csv on disk is always a prefix of it: rewritten whole (atomically) at
 * the first save of a process, then appended to, and flushed and fsynced
 * before every checkpoint, so the file holds every row the checkpoint
 * covers. A process killed between two saves leaves rows past the
 * checkpoint (perhaps half a row); --resume keeps only the complete rows up
 * to the checkpoint's step. */
typedef struct run_log {
    int64_t *step;
    double *loss, *acc, *lr, *ips;
    int64_t n, cap;
    int64_t synced; /* rows already in the file */
    FILE *f;        /* log.csv, open for appending after the first full write */
} run_log;

static void log_free(run_log *l)
{
    if (l->f) fclose(l->f);
    free(l->step), free(l->loss), free(l->acc), free(l->lr), free(l->ips);
    memset(l, 0, sizeof *l);
}

static int log_push(run_log *l, int64_t step, double loss, double acc, double lr, double ips)
{
    if (l->n == l->cap) {
        int64_t cap = l->cap ? 2 * l->cap : 1024;
        double **cols[4] = {&l->loss, &l->acc, &l->lr, &l->ips};
        for (int c = 0; c < 4; c++) {
            double *p = realloc(*cols[c], (size_t)cap * sizeof *p);
            if (!p) return cli_error(CMD, "no memory for the log");
            *cols[c] = p;
        }
        int64_t *s = realloc(l->step, (size_t)cap * sizeof *s);
        if (!s) return cli_error(CMD, "no memory for the log");
        l->step = s;
        l->cap = cap;
    }
    l->step[l->n] = step, l->loss[l->n] = loss, l->acc[l->n] = acc, l->lr[l->n] = lr, l->ips[l->n] = ips;
    l->n++;
    return CLI_OK;
}

/* The rows of an earlier log.csv up to step upto (the checkpoint's): whole
 * lines only, steps increasing. */
static int log_read(run_log *l, const char *path, int64_t upto)
{
    FILE *f = fopen(path, "r");
    if (!f) return CLI_OK;
    char line[256];
    int rc = CLI_OK;
    while (!rc && fgets(line, sizeof line, f)) {
        long long step;
        double loss, acc, lr, ips;
        int used = 0;
        size_t len = strlen(line);
        if (len == 0 || line[len - 1] != '\n') break; /* a row cut short by a kill */
        if (sscanf(line, "%lld,%lf,%lf,%lf,%lf%n", &step, &loss, &acc, &lr, &ips, &used) != 5 || line[used] != '\n')
            continue;
        if (step < 1 || step > upto) break;
        if (l->n && step <= l->step[l->n - 1]) continue;
        rc = log_push(l, step, loss, acc, lr, ips);
    }
    fclose(f);
    return rc;
}

static int log_row(char *buf, size_t cap, const run_log *l, int64_t i)
{
    return snprintf(buf, cap, "%lld,%.6f,%.6f,%.6g,%.1f\n", (long long)l->step[i], l->loss[i], l->acc[i], l->lr[i],
                    l->ips[i]);
}

/* Makes log.csv hold every row (durably). */
static int log_sync(const char *dir, run_log *l)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/log.csv", dir);
    if (!l->f) {
        size_t cap = 64 + (size_t)l->n * 96, len = 0;
        char *buf = malloc(cap);
        if (!buf) return cli_error(CMD, "no memory for the log");
        len += (size_t)snprintf(buf, cap, "step,loss,contrastive_accuracy,lr,images_per_s\n");
        for (int64_t i = 0; i < l->n; i++) len += (size_t)log_row(buf + len, cap - len, l, i);
        int rc = write_atomic(CMD, path, buf, len);
        free(buf);
        if (rc) return rc;
        if (!(l->f = fopen(path, "a"))) {
            fprintf(stderr, "simclr train: cannot open %s: %s\n", path, strerror(errno));
            return CLI_FAIL;
        }
        l->synced = l->n;
        return CLI_OK;
    }
    for (int64_t i = l->synced; i < l->n; i++) {
        char row[128];
        log_row(row, sizeof row, l, i);
        fputs(row, l->f);
    }
    if (fflush(l->f) != 0 || ferror(l->f) || fsync(fileno(l->f)) != 0) {
        fprintf(stderr, "simclr train: cannot write %s: %s\n", path, strerror(errno));
        return CLI_FAIL;
    }
    l->synced = l->n;
    return CLI_OK;
}

/* The run folder is held (flock on the folder itself, released when the
 * process ends) so two trainings cannot write into one folder. Returns 1
 * when held, 0 when the file system has no locks, -1 when another process
 * holds it. */
static int hold_run(const char *dir)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY);
    if (fd < 0) return 0;
    if (flock(fd, LOCK_EX | LOCK_NB) == 0) return 1; /* fd stays open: the lock lasts until exit */
    int e = errno;
    close(fd);
    return e == EWOULDBLOCK ? -1 : 0;
}

/* Removes the temporary files (NAME.tmp.PID) a killed process left in the
 * run folder, for the files a run writes only: all of them when the run is
 * held, else those whose process is gone. */
static void remove_stale_tmp(const char *dir, int held)
{
    static const char *const names[] = {"simclr.cfg", "encoder.simclr", "trainer.ckpt", "log.csv", "curves.png"};
    DIR *d = opendir(dir);
    if (!d) return;
    struct dirent *e;
    while ((e = readdir(d))) {
        for (size_t k = 0; k < sizeof names / sizeof names[0]; k++) {
            size_t n = strlen(names[k]);
            const char *p = e->d_name + n;
            if (strncmp(e->d_name, names[k], n) || strncmp(p, ".tmp.", 5)) continue;
            p += 5;
            if (!*p || strspn(p, "0123456789") != strlen(p) || strlen(p) > 18) continue;
            long long pid = atoll(p);
            if (!held && (pid == (long long)getpid() || kill((pid_t)pid, 0) == 0 || errno != ESRCH)) continue;
            char path[4400];
            snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
            remove(path);
        }
    }
    closedir(d);
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

/* Every file of the run, in the order that keeps them consistent after a
 * kill at any point: the log first (its rows up to this step, durably), the
 * configuration (the first time), the checkpoint, the encoder, the curves.
 * *saved is set once anything has been written. */
static int save_all(const char *dir, simclr_trainer *tr, simclr_module *enc, run_log *l, const model_cfg *cfg,
                    int *saved)
{
    int rc = log_sync(dir, l);
    if (rc) return rc;
    if (!*saved && (rc = cfg_write(CMD, dir, cfg))) return rc;
    *saved = 1;
    char path[4096];
    snprintf(path, sizeof path, "%s/trainer.ckpt", dir);
    simclr_status st = simclr_trainer_save(tr, path);
    if (st != SIMCLR_OK) return cli_fail(CMD, path, st);
    snprintf(path, sizeof path, "%s/encoder.simclr", dir);
    st = simclr_module_save(enc, path);
    if (st != SIMCLR_OK) return cli_fail(CMD, path, st);
    snprintf(path, sizeof path, "%s/curves.png", dir);
    return plot_curves(CMD, path, l->loss, l->acc, l->n);
}

/* Images per wall-clock second over the last steps, end to end: decoding
 * (or waiting for the prefetch), the step, checkpoints. */
enum { RATE_WINDOW = 16 };
typedef struct rate {
    double t[RATE_WINDOW];
    int64_t images[RATE_WINDOW];
    int64_t n;
} rate;

static void rate_add(rate *r, double t, int64_t images)
{
    r->t[r->n % RATE_WINDOW] = t, r->images[r->n % RATE_WINDOW] = images;
    r->n++;
}

static double rate_get(const rate *r)
{
    if (r->n < 2) return 0;
    int64_t last = (r->n - 1) % RATE_WINDOW, first = r->n < RATE_WINDOW ? 0 : r->n % RATE_WINDOW;
    double dt = r->t[last] - r->t[first];
    return dt > 0 ? (double)(r->images[last] - r->images[first]) / dt : 0;
}

/* The progress bar: steps of --epochs, or seconds of the --minutes budget
 * ("111/120 s"); images/s end to end. */
static void show_progress(int budgeted, double budget, int64_t done, int64_t total, double t0, float loss, double acc,
                          double ips, int final)
{
    char extra[128];
    snprintf(extra, sizeof extra, "loss %.4f acc %.3f %.1f img/s", loss, acc, ips);
    double elapsed = cli_now() - t0;
    if (budgeted) {
        int64_t secs = (int64_t)(budget + 0.5), at = (int64_t)elapsed < secs ? (int64_t)elapsed : secs;
        progress_line("train", at, secs, "s", elapsed, extra, final);
    } else {
        progress_line("train", done, total, "steps", elapsed, extra, final);
    }
}

/* With --resume, an architecture option given again must be the one the
 * checkpoint was trained with. */
static int same_architecture(const char *out, const model_cfg *cfg, int64_t depth, int64_t width, int64_t size,
                             int64_t channels)
{
    const struct {
        const char *flag;
        int64_t given, saved;
    } a[] = {{"--depth", depth, cfg->depth},
             {"--width", width, cfg->width},
             {"--size", size, cfg->size},
             {"--channels", channels, cfg->channels}};
    for (size_t i = 0; i < sizeof a / sizeof a[0]; i++)
        if (cli_given(a[i].flag) && a[i].given != a[i].saved) {
            fprintf(stderr,
                    "simclr train: %s %lld: the checkpoint in %s was trained with %s %lld (%s/simclr.cfg); "
                    "--resume continues that model: drop %s, or train a new one into another --out\n",
                    a[i].flag, (long long)a[i].given, out, a[i].flag, (long long)a[i].saved, out, a[i].flag);
            return CLI_USAGE;
        }
    return CLI_OK;
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
        {"--epochs", OPT_INT, &epochs, "passes over the images, 1..1000000 (default 10)"},
        {"--minutes", OPT_DOUBLE, &minutes, "train for this wall-clock budget (> 0) instead of --epochs"},
        {"--batch", OPT_INT, &batch, "images per step, 2..65536 (default 64; two views each)"},
        {"--size", OPT_INT, &size, "side of the square views the encoder sees, 8..1024 (default 32)"},
        {"--width", OPT_INT, &width, "ResNet base width, 1..1024 (default 32; torchvision's is 64)"},
        {"--depth", OPT_INT, &depth, "ResNet depth: 18, 34, 50, 101, 152 (default 18)"},
        {"--channels", OPT_INT, &channels, "1 (gray) or 3 (RGB, default)"},
        {"--lr", OPT_DOUBLE, &lr, "peak learning rate, > 0 and <= 100 (default 0.075*sqrt(batch))"},
        {"--optimizer", OPT_STRING, &optimizer, "sgd (default) or lars"},
        {"--weight-decay", OPT_DOUBLE, &weight_decay, "0..1 (default 1e-6)"},
        {"--temperature", OPT_DOUBLE, &temperature, "NT-Xent temperature, 0.001..100 (default 0.2)"},
        {"--crop-min", OPT_DOUBLE, &crop_min, "smallest crop area fraction, > 0 and <= 1 (default 0.08)"},
        CLI_OPT_THREADS(&threads),
        {"--seed", OPT_INT, &seed, "run seed, >= 0 (default 1)"},
        {"--checkpoint-every", OPT_INT, &every, "steps between checkpoints, >= 1 (default 100)"},
        {"--prefetch", OPT_INT, &prefetch, "threads decoding the next batch during a step, 0..64, 0 = off (default: 1 if --threads leaves a core free, else 0)"},
        {"--resume", OPT_FLAG, &resume, "continue from OUT/trainer.ckpt"},
        {"--skip-bad", OPT_FLAG, &skip_bad, "skip (and count) unreadable or corrupt images instead of stopping"},
        CLI_OPT_QUIET(&quiet),
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
    const int budgeted = cli_given("--minutes");
    if (budgeted && cli_given("--epochs")) {
        fprintf(stderr, "simclr train: --epochs and --minutes: give one of them (passes over the images, or a "
                        "wall-clock budget)\n");
        return CLI_USAGE;
    }
    /* Nothing is created before every check has passed: a run that stops
     * here leaves no folder and no file. */
    struct stat sb;
    if (stat(pos[0], &sb) != 0 || !S_ISDIR(sb.st_mode)) {
        fprintf(stderr, "simclr train: %s: %s\n", pos[0], errno && stat(pos[0], &sb) != 0 ? strerror(errno) : "not a folder");
        return CLI_FAIL;
    }
    int out_exists = stat(out, &sb) == 0;
    if (out_exists && !S_ISDIR(sb.st_mode)) {
        fprintf(stderr, "simclr train: --out %s exists and is not a folder\n", out);
        return CLI_FAIL;
    }
    model_cfg cfg = {depth, width, channels, size, 0, 128, ""};
    snprintf(cfg.stem, sizeof cfg.stem, "%s", size > 96 ? "imagenet" : "cifar");
    char path[4096];
    if (resume) {
        snprintf(path, sizeof path, "%s/trainer.ckpt", out);
        if (!out_exists || stat(path, &sb) != 0) {
            fprintf(stderr, "simclr train: --resume: no checkpoint %s (nothing to resume; without --resume a new "
                            "run starts)\n", path);
            return CLI_FAIL;
        }
        if ((rc = cfg_read(CMD, out, &cfg))) return rc;
        if ((rc = same_architecture(out, &cfg, depth, width, size, channels))) return rc;
    }

    simclr_context *ctx = NULL;
    simclr_status st = simclr_context_create(NULL, (int)threads, NULL, &ctx);
    if (st != SIMCLR_OK) return cli_fail(CMD, "context", st);
    image_input in;
    if ((rc = input_open(CMD, ctx, pos, 1, cfg.channels, 0, skip_bad, &in))) {
        simclr_context_destroy(ctx);
        return rc;
    }
    /* Prefetching pays only on a core the step does not use: measured on
     * 2 cores with the step on both, decoding beside it made a run 7% slower
     * (bench/bench_decode.sh), as a fork-join step waits for its slowest
     * worker. */
    if (!cli_given("--prefetch")) prefetch = simclr_context_threads(ctx) < sysconf(_SC_NPROCESSORS_ONLN) ? 1 : 0;
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
    int created = 0, saved = 0;
    if (!perm || !idx || !next) rc = cli_error(CMD, "no memory");
    /* The run folder: made now, held, and rid of what a killed run left. */
    if (!rc && !out_exists) {
        if (mkdir(out, 0777) == 0) created = 1;
        else if (errno != EEXIST) {
            fprintf(stderr, "simclr train: cannot create %s: %s\n", out, strerror(errno));
            rc = CLI_FAIL;
        }
    }
    if (!rc) {
        int held = hold_run(out);
        if (held < 0) {
            fprintf(stderr, "simclr train: %s is in use by another simclr train\n", out);
            rc = CLI_FAIL;
        } else {
            remove_stale_tmp(out, held);
        }
    }
#define TRY(call, what)                                             \
    do {                                                            \
        if (!rc && (st = (call)) != SIMCLR_OK) rc = cli_fail(CMD, what, st); \
    } while (0)
    TRY(simclr_resnet_create_v2(ctx, (int)cfg.depth, cfg.width, cfg.channels,
                             strcmp(cfg.stem, "imagenet") ? SIMCLR_STEM_CIFAR : SIMCLR_STEM_IMAGENET, (uint64_t)seed, &enc),
        "encoder");
    if (!rc) cfg.head_hidden = simclr_module_output_dim(enc);
    TRY(simclr_mlp_head_create_v2(ctx, cfg.head_hidden, cfg.head_hidden, cfg.head_out, 2, 0,
                               (uint64_t)seed + 1, &head),
        "projection head");
    TRY(simclr_augment_create_v2(ctx, cfg.channels == 3 ? SIMCLR_AUG_PRESET_SIMCLR_V1 : SIMCLR_AUG_PRESET_GRAYSCALE,
                              cfg.size, cfg.size, &aug),
        "augmentation");
    TRY(simclr_augment_set(aug, SIMCLR_AUG_ANTIALIAS, 1), "antialias");
    TRY(simclr_augment_set(aug, SIMCLR_AUG_CROP_SCALE_MIN, crop_min), "--crop-min");
    TRY(simclr_ntxent_create(ctx, temperature, 2, &loss), "--temperature");
    simclr_module *mods[2] = {enc, head};
    TRY(simclr_optimizer_create(ctx, strcmp(optimizer, "lars") ? SIMCLR_OPT_SGD : SIMCLR_OPT_LARS, mods, 2, &opt),
        "optimizer");
    int64_t per_epoch = in.count / batch, total = per_epoch * epochs;
    TRY(simclr_optimizer_set(opt, SIMCLR_OPT_LR, cli_given("--lr") ? lr : simclr_lr_sqrt_scaling(0.075, batch)), "--lr");
    TRY(simclr_optimizer_set(opt, SIMCLR_OPT_WEIGHT_DECAY, weight_decay), "--weight-decay");
    TRY(simclr_optimizer_set(opt, SIMCLR_OPT_TOTAL_STEPS, budgeted ? 1e9 : (double)total), "schedule");
    TRY(simclr_optimizer_set(opt, SIMCLR_OPT_WARMUP_STEPS, budgeted ? 10 : (double)(total / 10)), "warmup");
    TRY(simclr_trainer_create(ctx, enc, head, aug, loss, opt, &tr), "trainer");
    TRY(simclr_image_list_create(ctx, cfg.channels, &list), "image list");
    int64_t step = 0;
    if (!rc && resume) {
        snprintf(path, sizeof path, "%s/trainer.ckpt", out);
        TRY(simclr_trainer_load(tr, path), path);
        double s = 0;
        if (!rc) simclr_trainer_stat(tr, SIMCLR_STAT_STEP, &s);
        step = (int64_t)s;
        /* the log as of the checkpoint: rows past it (a kill between two
         * saves) go, and the file is rewritten so */
        snprintf(path, sizeof path, "%s/log.csv", out);
        if (!rc) rc = log_read(&lg, path, step);
        if (!rc) rc = log_sync(out, &lg);
        if (!rc && !quiet) fprintf(stderr, "simclr train: resuming %s at step %lld\n", out, (long long)step);
    }
    if (!rc && !quiet)
        fprintf(stderr, "simclr train: %lld images in %s, resnet%lld width %lld, %lldx%lld views, batch %lld, %s\n",
                (long long)in.count, pos[0], (long long)cfg.depth, (long long)cfg.width, (long long)cfg.size,
                (long long)cfg.size, (long long)batch, budgeted ? "time budget" : "epochs");
    double t0 = cli_now(), budget = minutes * 60, ips = 0, elapsed = 0;
    /* step counts trainer steps (the rows of the log); drawn counts batches
     * drawn from the data order, which also moves over a batch without 2
     * decodable images. */
    int64_t perm_epoch = -1, start = step, drawn = step, empty = 0, images = 0;
    float value = NAN;
    double acc = 0;
    rate rt = {0};
    rate_add(&rt, t0, 0);
    while (!rc) {
        elapsed = cli_now() - t0;
        if (budgeted) {
            if (elapsed >= budget) break;
            int64_t done = step - start;
            if (done >= 3 && done % 10 == 0) { /* re-aim the cosine at the budget's end */
                total = step + (int64_t)((budget - elapsed) / (elapsed / (double)done));
                TRY(simclr_optimizer_set(opt, SIMCLR_OPT_TOTAL_STEPS, (double)(total > step ? total : step + 1)),
                    "schedule");
            }
        } else if (drawn >= total) {
            break;
        }
        int64_t epoch = drawn / per_epoch, at = drawn % per_epoch;
        if (epoch != perm_epoch) permute(perm, in.count, (uint64_t)seed, epoch), perm_epoch = epoch;
        int64_t m = batch_indices(&in, perm, at, batch, idx), kept = 0;
        if (m > 0) rc = input_load(CMD, &in, idx, m, list, NULL, &kept);
        if (rc) break;
        drawn++;
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
            int64_t bad = in.folder ? simclr_image_folder_skipped(in.folder) : 0;
            if (in.count - bad < 2) {
                fprintf(stderr, "simclr train: %s: %lld of its %lld images are unreadable: fewer than 2 left to "
                                "train on\n", pos[0], (long long)bad, (long long)in.count);
                rc = CLI_FAIL;
            } else if (++empty > 1000) {
                rc = cli_error(CMD, "no decodable images left");
            }
            continue;
        }
        empty = 0;
        TRY(simclr_trainer_step_list(tr, list, (uint64_t)seed * 1000003u + (uint64_t)step, &value), "training step");
        if (rc) break;
        step++;
        images += kept;
        rate_add(&rt, cli_now(), images);
        ips = rate_get(&rt);
        double lr_used = 0;
        simclr_trainer_stat(tr, SIMCLR_STAT_ACCURACY, &acc);
        simclr_trainer_stat(tr, SIMCLR_STAT_LR, &lr_used);
        rc = log_push(&lg, step, value, acc, lr_used, ips);
        if (!quiet) show_progress(budgeted, budget, drawn - start, total - start, t0, value, acc, ips, 0);
        if (!rc && step % every == 0) rc = save_all(out, tr, enc, &lg, &cfg, &saved);
    }
    if (!rc && step == start && drawn > start) {
        fprintf(stderr, "simclr train: no batch of %s had 2 decodable images (%lld of its %lld images unreadable): "
                        "nothing trained\n", pos[0], (long long)(in.folder ? simclr_image_folder_skipped(in.folder) : 0),
                (long long)in.count);
        rc = CLI_FAIL;
    }
    if (!rc) rc = save_all(out, tr, enc, &lg, &cfg, &saved);
    if (!rc) {
        if (!quiet) show_progress(budgeted, budget, drawn - start, total - start, t0, value, acc, ips, 1);
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
    /* a run that stopped before its first save leaves no folder behind */
    if (rc && created && !saved) rmdir(out);
#undef TRY
    log_free(&lg);
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
