/*
 * SimCLR on Fashion-MNIST, end to end, through the public API only:
 * pre-train a ResNet-18 (CIFAR stem, reduced width) or a Vision Transformer
 * (--encoder vit) with the GRAYSCALE
 * augmentation policy, then compare kNN and linear-probe accuracy on the test
 * set for raw pixels, a randomly initialized encoder and the trained encoder.
 *
 * Writes into --out (default demo-out/): metrics.csv (one row per step),
 * checkpoint.simclr (the whole trainer; --resume continues from it),
 * encoder.safetensors (torchvision names) and test_embeddings.npy.
 *
 *   train_fashion_mnist [--data DIR] [--epochs E] [--width W] [--batch B]
 *                       [--lr LR] [--threads T] [--resume] [--out DIR] ...
 * Run with --help for every flag.
 */
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "simclr.h"

typedef struct {
    const char *data_dir, *out_dir;
    int epochs, width, batch, threads, resume, knn_k, probe_epochs;
    int head_layers, head_hidden, head_bn; /* projection head: layers, hidden width (0 = D), SimCLR v2 BN */
    int64_t steps;        /* a fixed step count on the budget's schedule (0 = off) */
    double lr, temperature, weight_decay, crop_min, probe_wd;
    double minutes;       /* pre-training wall-clock budget (0 = run --epochs) */
    int64_t train_images; /* images used for pre-training (0 = all) */
    int64_t eval_train;   /* labelled train images the probes fit on (0 = all) */
    int64_t eval_test;    /* test images evaluated (0 = all) */
    uint64_t seed;
    const char *optimizer;
    const char *method;    /* "simclr" or "moco" */
    int64_t queue;         /* MoCo's queue size K */
    double moco_momentum;  /* MoCo's key-encoder momentum m */
    const char *encoder;   /* "resnet18" or "vit" */
    int vit_dim, vit_depth, vit_patch; /* the ViT's hidden size, blocks and patch size */
} options;

static void usage(void)
{
    puts("usage: train_fashion_mnist [flags]\n"
         "  --data DIR          folder with the four Fashion-MNIST IDX .gz files\n"
         "                      (default /usr/share/datasets/fashion-mnist)\n"
         "  --out DIR           output folder (default demo-out)\n"
         "  --minutes M         pre-training budget in wall-clock minutes (default 5): trains as\n"
         "                      many steps as fit, the cosine schedule aimed at the budget's end\n"
         "  --steps N           exactly N steps on the budget's schedule (20 warmup steps, cosine to N):\n"
         "                      replays a budget run of N steps on any machine, at any thread count\n"
         "  --epochs E          fixed pre-training epochs over --train-images instead of a budget\n"
         "  --train-images N    images per pre-training epoch, 0 = all 60000 (default 51200:\n"
         "                      400 steps, about 5 minutes on 2 cores with the evaluation)\n"
         "  --encoder NAME      resnet18 (default) or vit (a Vision Transformer: patches of\n"
         "                      --vit-patch, --vit-depth pre-norm blocks of --vit-dim, one head\n"
         "                      per 64 dimensions, MLP 4x, class-token pooling)\n"
         "  --width W           ResNet-18 stem width (default 16; torchvision uses 64)\n"
         "  --vit-dim D         ViT hidden size (default 192, ViT-Tiny's)\n"
         "  --vit-depth L       ViT blocks (default 12, ViT-Tiny's)\n"
         "  --vit-patch P       ViT patch size, must divide the image size 28 (default 4)\n"
         "  --batch B           images per step, 2B views (default 128)\n"
         "  --head-layers L     projection head linear layers (default 2)\n"
         "  --head-hidden H     projection head hidden width, 0 = the encoder's D (default 0)\n"
         "  --head-bn 0|1       1 = SimCLR v2 head with batch norm after every layer (default 0)\n"
         "  --method NAME       simclr (default) or moco (MoCo v2: momentum key encoder, queue of\n"
         "                      negatives, InfoNCE at --temperature, shuffled key sub-batches of B/8)\n"
         "  --queue K           MoCo queue size, a multiple of B (default 4096)\n"
         "  --moco-momentum M   MoCo key-encoder momentum (default 0.99 for these short runs;\n"
         "                      the paper's 0.999 suits hundreds of epochs)\n"
         "  --optimizer NAME    lars (default), sgd or adamw\n"
         "  --lr LR             peak learning rate (default 0.13*sqrt(B): the paper's square-root\n"
         "                      scaling with 0.13 for 0.075, which a 400-step run measured better;\n"
         "                      AdamW 1e-3)\n"
         "  --temperature T     NT-Xent temperature (default 0.2; learns faster in a short run)\n"
         "  --crop-min S        smallest crop area fraction (default 0.2; the paper's 0.08 learns\n"
         "                      slower on 28 px images)\n"
         "  --weight-decay WD   (default 1e-6 for LARS, 5e-4 for SGD, 0.05 for AdamW)\n"
         "  --threads T         threads, 0 = all cores (default 0)\n"
         "  --eval-train N      labelled train images for the probes, 0 = all (default 10000)\n"
         "  --eval-test N       test images evaluated, 0 = all (default 0)\n"
         "  --probe-epochs N    linear-probe iterations (default 1000: learned features need them)\n"
         "  --probe-wd WD       linear-probe weight decay; default: chosen per representation from\n"
         "                      1e-5..1e-1 on a validation fifth of the labelled train images\n"
         "  --seed S            (default 1)\n"
         "  --resume            continue from OUT/checkpoint.simclr");
}

static int parse(int argc, char **argv, options *o)
{
    *o = (options){.data_dir = "/usr/share/datasets/fashion-mnist", .out_dir = "demo-out", .epochs = 1,
                   .width = 16, .batch = 128, .threads = 0, .knn_k = 200, .probe_epochs = 1000, .lr = 0,
                   .temperature = 0.2, .crop_min = 0.2, .weight_decay = -1, .train_images = 51200, .eval_train = 10000,
                   .eval_test = 0, .seed = 1, .optimizer = "lars", .method = "simclr", .queue = 4096,
                   .moco_momentum = 0.99, .minutes = 5, .encoder = "resnet18", .vit_dim = 192,
                   .vit_depth = 12, .vit_patch = 4, .head_layers = 2, .head_hidden = 0, .head_bn = 0, .probe_wd = -1};
    int epochs_set = 0, minutes_set = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
#define FLAG(name) (strcmp(a, name) == 0 && v && (i++, 1))
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) return usage(), 1;
        else if (strcmp(a, "--resume") == 0) o->resume = 1;
        else if (FLAG("--data")) o->data_dir = v;
        else if (FLAG("--out")) o->out_dir = v;
        else if (FLAG("--epochs")) o->epochs = atoi(v), epochs_set = 1;
        else if (FLAG("--minutes")) o->minutes = atof(v), minutes_set = 1;
        else if (FLAG("--steps")) o->steps = atoll(v);
        else if (FLAG("--head-layers")) o->head_layers = atoi(v);
        else if (FLAG("--head-hidden")) o->head_hidden = atoi(v);
        else if (FLAG("--head-bn")) o->head_bn = atoi(v);
        else if (FLAG("--train-images")) o->train_images = atoll(v);
        else if (FLAG("--width")) o->width = atoi(v);
        else if (FLAG("--encoder")) o->encoder = v;
        else if (FLAG("--vit-dim")) o->vit_dim = atoi(v);
        else if (FLAG("--vit-depth")) o->vit_depth = atoi(v);
        else if (FLAG("--vit-patch")) o->vit_patch = atoi(v);
        else if (FLAG("--batch")) o->batch = atoi(v);
        else if (FLAG("--optimizer")) o->optimizer = v;
        else if (FLAG("--method")) o->method = v;
        else if (FLAG("--queue")) o->queue = atoll(v);
        else if (FLAG("--moco-momentum")) o->moco_momentum = atof(v);
        else if (FLAG("--lr")) o->lr = atof(v);
        else if (FLAG("--temperature")) o->temperature = atof(v);
        else if (FLAG("--crop-min")) o->crop_min = atof(v);
        else if (FLAG("--weight-decay")) o->weight_decay = atof(v);
        else if (FLAG("--threads")) o->threads = atoi(v);
        else if (FLAG("--eval-train")) o->eval_train = atoll(v);
        else if (FLAG("--eval-test")) o->eval_test = atoll(v);
        else if (FLAG("--probe-epochs")) o->probe_epochs = atoi(v);
        else if (FLAG("--probe-wd")) o->probe_wd = atof(v);
        else if (FLAG("--seed")) o->seed = strtoull(v, NULL, 10);
        else {
            fprintf(stderr, "train_fashion_mnist: unknown or incomplete flag '%s' (see --help)\n", a);
            return 2;
        }
#undef FLAG
    }
    if (o->epochs < 0 || o->width < 1 || o->batch < 2 || o->threads < 0 || o->probe_epochs < 1) {
        fprintf(stderr, "train_fashion_mnist: --epochs >= 0, --width >= 1, --batch >= 2, --threads >= 0\n");
        return 2;
    }
    if (strcmp(o->optimizer, "lars") != 0 && strcmp(o->optimizer, "sgd") != 0 && strcmp(o->optimizer, "adamw") != 0) {
        fprintf(stderr, "train_fashion_mnist: --optimizer must be lars, sgd or adamw\n");
        return 2;
    }
    if (strcmp(o->encoder, "resnet18") != 0 && strcmp(o->encoder, "vit") != 0) {
        fprintf(stderr, "train_fashion_mnist: --encoder must be resnet18 or vit\n");
        return 2;
    }
    /* The library checks the ViT's sizes itself (simclr_vit_create names the
     * bad one); only the head count derived here needs a rule. */
    if (o->vit_dim < 1 || o->vit_depth < 1 || o->vit_patch < 1) {
        fprintf(stderr, "train_fashion_mnist: --vit-dim, --vit-depth and --vit-patch must be >= 1\n");
        return 2;
    }
    if (epochs_set && !minutes_set) o->minutes = 0; /* --epochs alone: the fixed-length run */
    if (o->steps < 0 || o->head_hidden < 0) {
        fprintf(stderr, "train_fashion_mnist: --steps >= 0, --head-hidden >= 0\n");
        return 2;
    }
    if (o->steps > 0) o->minutes = 0; /* --steps replaces the budget */
    if (!(o->minutes >= 0)) {
        fprintf(stderr, "train_fashion_mnist: --minutes >= 0\n");
        return 2;
    }
    if (strcmp(o->method, "simclr") != 0 && strcmp(o->method, "moco") != 0) {
        fprintf(stderr, "train_fashion_mnist: --method must be simclr or moco\n");
        return 2;
    }
    int adamw = strcmp(o->optimizer, "adamw") == 0;
    if (o->lr <= 0) o->lr = adamw ? 1e-3 : simclr_lr_sqrt_scaling(0.13, o->batch);
    if (o->weight_decay < 0) o->weight_decay = adamw ? 0.05 : strcmp(o->optimizer, "lars") == 0 ? 1e-6 : 5e-4;
    return 0;
}

/* Stops the program with the library's message: the demo has nothing to
 * recover, a library user would. */
static void check(simclr_status st, const char *what)
{
    if (st == SIMCLR_OK) return;
    fprintf(stderr, "\ntrain_fashion_mnist: %s failed: %s (%s)\n", what, simclr_last_error(),
            simclr_status_string(st));
    exit(1);
}

/* The encoder --encoder names, for square images of `size` pixels. */
static simclr_module *create_encoder(simclr_context *ctx, const options *o, int64_t size, int64_t channels,
                                     uint64_t seed, const char *what)
{
    simclr_module *m;
    if (strcmp(o->encoder, "vit") == 0) {
        int heads = o->vit_dim >= 64 && o->vit_dim % 64 == 0 ? o->vit_dim / 64 : 1;
        check(simclr_vit_create(ctx, (int32_t)size, o->vit_patch, (int32_t)channels, o->vit_dim, o->vit_depth, heads,
                                4 * o->vit_dim, SIMCLR_VIT_POOL_CLS, seed, &m),
              what);
    } else {
        check(simclr_resnet_create_v2(ctx, 18, o->width, (int)channels, SIMCLR_STEM_CIFAR, seed, &m), what);
    }
    return m;
}

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static uint64_t xorshift(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

static void shuffle(int64_t *idx, int64_t n, uint64_t seed)
{
    uint64_t s = seed * 0x9E3779B97F4A7C15ull + 1;
    for (int64_t i = n - 1; i > 0; i--) {
        int64_t j = (int64_t)(xorshift(&s) % (uint64_t)(i + 1));
        int64_t t = idx[i];
        idx[i] = idx[j];
        idx[j] = t;
    }
}

static void fmt_time(double s, char *buf, size_t size)
{
    int t = (int)(s + 0.5);
    snprintf(buf, size, "%d:%02d", t / 60, t % 60);
}

/* Progress on stderr. On a terminal: one line redrawn in place ('\r', at
 * most 10 times a second). In a file or a pipe (a CI log, nohup): a line of
 * its own when a phase starts, at each further 5% of it (at most one a
 * second), every 10 s, and at its end; so a redirected run writes at most
 * 22 lines a phase plus one per 10 s, not thousands of frames. */
static struct {
    int tty;          /* stderr is a terminal (-1: not looked yet) */
    char what[32];    /* the current phase */
    int bucket;       /* the twentieth of the phase last drawn */
    double t;         /* when the last line was drawn */
    int open;         /* terminal: a line is drawn and not ended */
    char pending[256]; /* file: the latest line not written */
} prog = {-1, "", 0, 0, 0, ""};

/* Draws line, the progress frac (0..1) of phase `what`, when it is due;
 * final: the phase's last update (always drawn); keep: on a terminal, end
 * the final line instead of erasing it. */
static void progress(const char *what, double frac, int final, int keep, const char *line)
{
    if (prog.tty < 0) prog.tty = isatty(fileno(stderr));
    double t = now();
    int bucket = (int)((frac < 0 ? 0 : frac > 1 ? 1 : frac) * 20);
    int fresh = strcmp(prog.what, what) != 0 || bucket < prog.bucket;
    if (fresh) snprintf(prog.what, sizeof prog.what, "%s", what);
    int due = final || fresh ||
              (prog.tty ? t - prog.t >= 0.1 : (bucket > prog.bucket && t - prog.t >= 1) || t - prog.t >= 10);
    if (!due) {
        if (!prog.tty) snprintf(prog.pending, sizeof prog.pending, "%s", line);
        return;
    }
    prog.bucket = bucket, prog.t = t, prog.pending[0] = '\0';
    if (!prog.tty) {
        fprintf(stderr, "%s\n", line);
    } else if (final && !keep) {
        fprintf(stderr, "\r\033[K"); /* the phase is over: erase its line */
        prog.open = 0;
    } else {
        fprintf(stderr, "\r%s\033[K%s", line, final ? "\n" : "");
        prog.open = !final;
    }
    fflush(stderr);
}

/* Ends a phase that may not have drawn its last update (a time budget). */
static void progress_end(void)
{
    if (prog.tty > 0 && prog.open) fprintf(stderr, "\n");
    if (prog.tty == 0 && prog.pending[0]) fprintf(stderr, "%s\n", prog.pending);
    prog.open = 0, prog.pending[0] = '\0', prog.what[0] = '\0';
}

/* Progress lines for the library's long phases (feature extraction, probe). */
static void on_progress(void *user, const char *what, int64_t done, int64_t total)
{
    (void)user;
    if (strcmp(what, "train") == 0) return; /* the training loop draws its own bar */
    char line[96];
    snprintf(line, sizeof line, "  %-8s %lld/%lld", what, (long long)done, (long long)total);
    progress(what, total > 0 ? (double)done / (double)total : 1, done >= total, 0, line);
}

static simclr_dataset *open_split(simclr_context *ctx, const char *dir, const char *split)
{
    char img[1024], lab[1024];
    snprintf(img, sizeof img, "%s/%s-images-idx3-ubyte.gz", dir, split);
    snprintf(lab, sizeof lab, "%s/%s-labels-idx1-ubyte.gz", dir, split);
    simclr_dataset *ds = NULL;
    simclr_status st = simclr_dataset_open_idx(ctx, img, lab, &ds);
    if (st == SIMCLR_E_IO)
        fprintf(stderr, "train_fashion_mnist: cannot read %s: install Debian's dataset-fashion-mnist "
                        "(apt-get install dataset-fashion-mnist) or pass --data DIR\n", img);
    check(st, "opening the data set");
    return ds;
}

/* The first n images (n = 0: all) of a data set as a labelled subset. */
typedef struct {
    int64_t n;
    int64_t *idx;
    int32_t *labels;
} subset;

static subset first_n(const simclr_dataset *ds, int64_t n)
{
    int64_t count = simclr_dataset_count(ds);
    subset s = {n <= 0 || n > count ? count : n, NULL, NULL};
    s.idx = malloc((size_t)s.n * sizeof *s.idx);
    s.labels = malloc((size_t)s.n * sizeof *s.labels);
    if (!s.idx || !s.labels) check(SIMCLR_E_NOMEM, "allocating a subset");
    /* A fixed stride spreads a subset over the whole file (classes are not sorted, but be safe). */
    const int32_t *labels = simclr_dataset_labels(ds);
    for (int64_t i = 0; i < s.n; i++) {
        s.idx[i] = (int64_t)((double)i * (double)count / (double)s.n);
        s.labels[i] = labels[s.idx[i]];
    }
    return s;
}

/* Encoder features of a subset, EVAL mode, batch by batch: [n, D]. */
static simclr_tensor *embed(simclr_context *ctx, simclr_module *enc, const simclr_dataset *ds, const subset *s)
{
    int64_t h, w, c, d = simclr_module_output_dim(enc), bs = 500;
    check(simclr_dataset_shape(ds, &h, &w, &c), "dataset shape");
    int64_t fshape[2] = {s->n, d};
    simclr_tensor *feat, *img, *x, *y;
    check(simclr_tensor_create(ctx, SIMCLR_F32, 2, fshape, &feat), "feature tensor");
    float *out = simclr_tensor_data(feat);
    int64_t ishape[4] = {bs, h, w, c}, xshape[4] = {bs, c, h, w}, yshape[2] = {bs, d};
    check(simclr_tensor_create(ctx, SIMCLR_U8, 4, ishape, &img), "batch tensor");
    check(simclr_tensor_create(ctx, SIMCLR_F32, 4, xshape, &x), "input tensor");
    check(simclr_tensor_create(ctx, SIMCLR_F32, 2, yshape, &y), "output tensor");
    for (int64_t b = 0; b < s->n; b += bs) {
        int64_t m = s->n - b < bs ? s->n - b : bs;
        if (m != bs) { /* the last, smaller batch: tensors of its size (a reshape keeps the element count) */
            ishape[0] = xshape[0] = yshape[0] = m;
            simclr_tensor_destroy(img), simclr_tensor_destroy(x), simclr_tensor_destroy(y);
            check(simclr_tensor_create(ctx, SIMCLR_U8, 4, ishape, &img), "batch tensor");
            check(simclr_tensor_create(ctx, SIMCLR_F32, 4, xshape, &x), "input tensor");
            check(simclr_tensor_create(ctx, SIMCLR_F32, 2, yshape, &y), "output tensor");
        }
        check(simclr_dataset_batch(ds, s->idx + b, m, img), "dataset batch");
        const uint8_t *p = simclr_tensor_data(img);
        float *q = simclr_tensor_data(x);
        for (int64_t i = 0; i < m; i++) /* NHWC u8 -> NCHW [0, 1] */
            for (int64_t k = 0; k < c; k++)
                for (int64_t j = 0; j < h * w; j++) q[(i * c + k) * h * w + j] = p[(i * h * w + j) * c + k] / 255.0f;
        check(simclr_module_forward(enc, x, SIMCLR_EVAL, y), "encoder forward");
        memcpy(out + b * d, simclr_tensor_data(y), (size_t)(m * d) * sizeof(float));
        on_progress(NULL, "embed", b + m, s->n);
    }
    simclr_tensor_destroy(img);
    simclr_tensor_destroy(x);
    simclr_tensor_destroy(y);
    return feat;
}

static simclr_tensor *raw_pixels(simclr_context *ctx, const simclr_dataset *ds, const subset *s)
{
    int64_t h, w, c;
    check(simclr_dataset_shape(ds, &h, &w, &c), "dataset shape");
    int64_t d = h * w * c, fshape[2] = {s->n, d}, ishape[4] = {s->n, h, w, c};
    simclr_tensor *feat, *img;
    check(simclr_tensor_create(ctx, SIMCLR_F32, 2, fshape, &feat), "pixel features");
    check(simclr_tensor_create(ctx, SIMCLR_U8, 4, ishape, &img), "pixel batch");
    check(simclr_dataset_batch(ds, s->idx, s->n, img), "dataset batch");
    const uint8_t *p = simclr_tensor_data(img);
    float *q = simclr_tensor_data(feat);
    for (int64_t i = 0; i < s->n * d; i++) q[i] = p[i] / 255.0f;
    simclr_tensor_destroy(img);
    return feat;
}

typedef struct {
    double knn, linear, probe_wd, seconds;
} scores;

/* The probe's weight decay, unless --probe-wd fixes it, is chosen per
 * representation as a practitioner would, by simclr_linear_probe_select:
 * fit on the first four fifths of the labelled train images, score on the
 * last fifth (never the test set), keep the best of 1e-5..1e-1, refit on all
 * of them. A fixed setting favours whichever representation it happens to
 * suit. Measured on one 400-step encoder (test accuracy, raw pixels /
 * SimCLR): 300 iterations at decay 1e-4 gave 83.03 / 82.06 (raw pixels
 * stopped early, which regularizes them; the learned features not
 * converged), 1000 iterations 81.37 / 83.23, 1000 at 1e-2 83.27 / 79.91. */
static scores evaluate(simclr_context *ctx, simclr_tensor *ftr, const subset *tr, simclr_tensor *fte,
                       const subset *te, const options *o)
{
    scores s;
    double t0 = now();
    check(simclr_knn_eval_n(ctx, ftr, tr->labels, tr->n, fte, te->labels, te->n, 10, o->knn_k, 0.1, &s.knn), "kNN");
    if (o->probe_wd >= 0) {
        s.probe_wd = o->probe_wd;
        check(simclr_linear_probe_n(ctx, ftr, tr->labels, tr->n, fte, te->labels, te->n, 10, o->probe_epochs,
                                    s.probe_wd, &s.linear),
              "linear probe");
    } else {
        check(simclr_linear_probe_select(ctx, ftr, tr->labels, tr->n, fte, te->labels, te->n, 10, o->probe_epochs,
                                         NULL, 0, &s.linear, &s.probe_wd),
              "linear probe (decay chosen on validation)");
    }
    s.seconds = now() - t0;
    return s;
}

static void write_npy(const char *path, const simclr_tensor *t)
{
    FILE *f = fopen(path, "wb");
    if (!f) {
        fprintf(stderr, "train_fashion_mnist: cannot write %s: %s\n", path, strerror(errno));
        return;
    }
    char header[128];
    int len = snprintf(header, sizeof header, "{'descr': '<f4', 'fortran_order': False, 'shape': (%lld, %lld), }",
                       (long long)simclr_tensor_dim(t, 0), (long long)simclr_tensor_dim(t, 1));
    int pad = 64 - (10 + len + 1) % 64; /* header padded so data starts 64-aligned */
    uint16_t hlen = (uint16_t)(len + pad + 1);
    fwrite("\x93NUMPY\x01\x00", 1, 8, f);
    fputc(hlen & 0xff, f);
    fputc(hlen >> 8, f);
    fwrite(header, 1, (size_t)len, f);
    for (int i = 0; i < pad; i++) fputc(' ', f);
    fputc('\n', f);
    fwrite(simclr_tensor_data((simclr_tensor *)t), 1, simclr_tensor_bytes(t), f);
    fclose(f);
}

int main(int argc, char **argv)
{
    options o;
    int rc = parse(argc, argv, &o);
    if (rc) return rc == 1 ? 0 : rc;
    if (mkdir(o.out_dir, 0777) != 0 && errno != EEXIST) {
        fprintf(stderr, "train_fashion_mnist: cannot create %s: %s\n", o.out_dir, strerror(errno));
        return 1;
    }
    /* Results go to stdout, the progress bar to stderr: keep them in order on a terminal. */
    setvbuf(stdout, NULL, _IOLBF, 0);
    double t_start = now();
    simclr_context *ctx;
    check(simclr_context_create("cpu", o.threads, NULL, &ctx), "context");
    check(simclr_context_set_progress(ctx, on_progress, NULL), "progress");
    simclr_dataset *train = open_split(ctx, o.data_dir, "train"), *test = open_split(ctx, o.data_dir, "t10k");
    int64_t h, w, c;
    check(simclr_dataset_shape(train, &h, &w, &c), "dataset shape");

    simclr_module *enc, *head;
    enc = create_encoder(ctx, &o, h, c, o.seed, "encoder (--encoder, --vit-*)");
    int64_t d = simclr_module_output_dim(enc);
    int head_hidden = o.head_hidden > 0 ? o.head_hidden : (int)d;
    check(simclr_mlp_head_create_v2(ctx, (int)d, head_hidden, 128, o.head_layers, o.head_bn, o.seed + 1, &head),
          "projection head (--head-*)");
    simclr_augment *aug;
    check(simclr_augment_create_v2(ctx, SIMCLR_AUG_PRESET_GRAYSCALE, (int)h, (int)w, &aug), "augmentation");
    check(simclr_augment_set(aug, SIMCLR_AUG_CROP_SCALE_MIN, o.crop_min), "--crop-min");
    simclr_loss *loss;
    check(simclr_ntxent_create(ctx, o.temperature, 2, &loss), "loss");
    simclr_module *mods[2] = {enc, head};
    simclr_optimizer *opt;
    simclr_opt_kind kind = strcmp(o.optimizer, "lars") == 0    ? SIMCLR_OPT_LARS
                                 : strcmp(o.optimizer, "adamw") == 0 ? SIMCLR_OPT_ADAMW
                                                                     : SIMCLR_OPT_SGD;
    check(simclr_optimizer_create(ctx, kind, mods, 2, &opt), "optimizer");
    int64_t n_train = o.train_images <= 0 || o.train_images > simclr_dataset_count(train)
                          ? simclr_dataset_count(train) : o.train_images;
    int64_t steps_per_epoch = n_train / o.batch, total_steps = steps_per_epoch * o.epochs;
    /* A time budget: the schedule is re-aimed every 10 steps at the step the
     * budget will end on (measured speed), after a fixed 20-step warmup. */
    double budget = o.minutes * 60;
    if (budget > 0) total_steps = INT64_MAX / 2;
    if (o.steps > 0) total_steps = o.steps;
    int short_warmup = budget > 0 || o.steps > 0; /* the budget's 20 steps, not a tenth of the run */
    check(simclr_optimizer_set(opt, SIMCLR_OPT_LR, o.lr), "lr");
    if (kind != SIMCLR_OPT_ADAMW) check(simclr_optimizer_set(opt, SIMCLR_OPT_MOMENTUM, 0.9), "momentum");
    check(simclr_optimizer_set(opt, SIMCLR_OPT_WEIGHT_DECAY, o.weight_decay), "weight decay");
    check(simclr_optimizer_set(opt, SIMCLR_OPT_WARMUP_STEPS, short_warmup ? 20.0 : (double)(total_steps / 10)), "warmup");
    check(simclr_optimizer_set(opt, SIMCLR_OPT_TOTAL_STEPS, budget > 0 ? 1e12 : (double)total_steps), "schedule");
    simclr_trainer *tr;
    int moco = strcmp(o.method, "moco") == 0;
    simclr_module *key_enc = NULL, *key_head = NULL;
    if (moco) {
        /* MoCo v2: key modules of the same architectures (the trainer copies
         * the query weights into them), the queue, InfoNCE at --temperature. */
        key_enc = create_encoder(ctx, &o, h, c, o.seed, "key encoder");
        check(simclr_mlp_head_create_v2(ctx, (int)d, head_hidden, 128, o.head_layers, o.head_bn, o.seed + 1, &key_head),
              "key head");
        check(simclr_moco_trainer_create(ctx, enc, head, key_enc, key_head, aug, opt, o.queue, o.seed, &tr),
              "MoCo trainer (--queue must be a multiple of --batch)");
        check(simclr_moco_set(tr, SIMCLR_MOCO_TEMPERATURE, o.temperature), "--temperature");
        check(simclr_moco_set(tr, SIMCLR_MOCO_MOMENTUM, o.moco_momentum), "--moco-momentum");
        if (o.batch % 8 != 0) check(simclr_moco_set(tr, SIMCLR_MOCO_KEY_SPLITS, o.batch % 4 == 0 ? 4 : 2), "splits");
    } else {
        check(simclr_trainer_create(ctx, enc, head, aug, loss, opt, &tr), "trainer");
    }

    char ckpt[1024], csv_path[1024], path[1024];
    snprintf(ckpt, sizeof ckpt, "%s/checkpoint.simclr", o.out_dir);
    snprintf(csv_path, sizeof csv_path, "%s/metrics.csv", o.out_dir);
    int64_t start_step = 0;
    if (o.resume) {
        check(simclr_trainer_load(tr, ckpt), "resuming from the checkpoint");
        double s;
        check(simclr_trainer_stat(tr, SIMCLR_STAT_STEP, &s), "step");
        start_step = (int64_t)s;
        fprintf(stderr, "resumed %s at step %lld\n", ckpt, (long long)start_step);
    }
    FILE *csv = fopen(csv_path, o.resume ? "a" : "w");
    if (!csv) {
        fprintf(stderr, "train_fashion_mnist: cannot write %s: %s\n", csv_path, strerror(errno));
        return 1;
    }
    if (!o.resume) fprintf(csv, "step,epoch,loss,contrastive_acc,lr,grad_norm,images_per_s,elapsed_s\n");

    printf("libsimclr %s: %s on Fashion-MNIST (%lld train / %lld test images, %lldx%lldx%lld)\n",
           simclr_version_string(), moco ? "MoCo v2" : "SimCLR", (long long)simclr_dataset_count(train), (long long)simclr_dataset_count(test),
           (long long)h, (long long)w, (long long)c);
    char length[64];
    if (budget > 0) snprintf(length, sizeof length, "%.3g minutes of pre-training", o.minutes);
    else if (o.steps > 0) snprintf(length, sizeof length, "%lld steps", (long long)o.steps);
    else snprintf(length, sizeof length, "%d epoch(s)", o.epochs);
    char arch[64], desc[96];
    if (strcmp(o.encoder, "vit") == 0) {
        snprintf(arch, sizeof arch, "ViT %dx%d", o.vit_dim, o.vit_depth);
        snprintf(desc, sizeof desc, "ViT hidden %d depth %d patch %d", o.vit_dim, o.vit_depth, o.vit_patch);
    } else {
        snprintf(arch, sizeof arch, "ResNet-18");
        snprintf(desc, sizeof desc, "ResNet-18 width %d", o.width);
    }
    printf("encoder %s (%lld parameters), head %lld-%d-128 (%d layers%s), %s lr %.3g, T %.2g, "
           "crop %.2g-1, batch %d, %s over %lld images, %d threads\n",
           desc, (long long)simclr_module_param_scalars(enc), (long long)d, head_hidden, o.head_layers,
           o.head_bn ? ", BN" : "", o.optimizer, o.lr,
           o.temperature, o.crop_min, o.batch, length, (long long)n_train, simclr_context_threads(ctx));

    int64_t *order = malloc((size_t)simclr_dataset_count(train) * sizeof *order);
    simclr_tensor *batch;
    int64_t bshape[4] = {o.batch, h, w, c};
    check(simclr_tensor_create(ctx, SIMCLR_U8, 4, bshape, &batch), "batch tensor");
    double t_train = now(), last_ips = 0;
    int64_t step = start_step;
    for (; budget > 0 ? now() - t_train < budget : step < total_steps; step++) {
        if (budget > 0 && step > start_step && (step - start_step) % 10 == 0) {
            double spent = now() - t_train, per_step = spent / (double)(step - start_step);
            int64_t end = step + (int64_t)((budget - spent) / per_step) + 1;
            check(simclr_optimizer_set(opt, SIMCLR_OPT_TOTAL_STEPS, (double)end), "schedule");
        }
        int64_t epoch = step / steps_per_epoch, in_epoch = step % steps_per_epoch;
        if (in_epoch == 0 || step == start_step) { /* each epoch draws a fresh subset order */
            for (int64_t i = 0; i < simclr_dataset_count(train); i++) order[i] = i;
            shuffle(order, simclr_dataset_count(train), o.seed * 1000003u + (uint64_t)epoch);
        }
        check(simclr_dataset_batch(train, order + in_epoch * o.batch, o.batch, batch), "dataset batch");
        float l;
        check(simclr_trainer_step(tr, batch, o.seed * 0x100000000ull + (uint64_t)step, &l), "training step");
        double acc, lr, gn, ips;
        simclr_trainer_stat(tr, SIMCLR_STAT_ACCURACY, &acc);
        simclr_trainer_stat(tr, SIMCLR_STAT_LR, &lr);
        simclr_trainer_stat(tr, SIMCLR_STAT_GRAD_NORM, &gn);
        simclr_trainer_stat(tr, SIMCLR_STAT_IMAGES_PER_SEC, &ips);
        last_ips = last_ips == 0 ? ips : 0.9 * last_ips + 0.1 * ips;
        double elapsed = now() - t_train;
        fprintf(csv, "%lld,%lld,%.6f,%.4f,%.6g,%.6g,%.1f,%.2f\n", (long long)step + 1, (long long)epoch + 1, l, acc,
                lr, gn, ips, elapsed);
        char eta[16], el[16];
        double frac = budget > 0 ? elapsed / budget : (double)(step + 1) / (double)total_steps;
        fmt_time(budget > 0 ? budget - elapsed : (double)(total_steps - step - 1) * 2.0 * o.batch / last_ips, eta,
                 sizeof eta);
        fmt_time(elapsed, el, sizeof el);
        int width = 24, fill = (int)((frac > 1 ? 1 : frac) * width);
        char bar[32], line[256];
        for (int i = 0; i < width; i++) bar[i] = i < fill ? '#' : '.';
        bar[width] = 0;
        if (budget > 0)
            snprintf(line, sizeof line, "epoch %lld [%s] step %lld loss %.4f acc %.3f %.0f img/s %s ETA %s",
                     (long long)epoch + 1, bar, (long long)step + 1, l, acc, last_ips, el, eta);
        else
            snprintf(line, sizeof line, "epoch %lld/%lld [%s] step %lld/%lld loss %.4f acc %.3f %.0f img/s %s ETA %s",
                     (long long)epoch + 1, (long long)((total_steps + steps_per_epoch - 1) / steps_per_epoch), bar,
                     (long long)step + 1, (long long)total_steps, l, acc, last_ips, el, eta);
        progress("train", frac, budget <= 0 && step + 1 == total_steps, 1, line);
        if (in_epoch == steps_per_epoch - 1) check(simclr_trainer_save(tr, ckpt), "saving the checkpoint");
    }
    fclose(csv);
    if (budget > 0) check(simclr_trainer_save(tr, ckpt), "saving the checkpoint");
    total_steps = step;
    progress_end();
    double train_seconds = now() - t_train;
    printf("pre-training: %lld steps in %.1f s; ln(2B-1) = %.3f for reference\n", (long long)(total_steps - start_step),
           train_seconds, log(2.0 * o.batch - 1));
    snprintf(path, sizeof path, "%s/encoder.safetensors", o.out_dir);
    check(simclr_module_export_safetensors(enc, path), "exporting the encoder");

    /* Evaluation: the same probes on three representations. */
    subset str = first_n(train, o.eval_train), ste = first_n(test, o.eval_test);
    printf("evaluating on %lld labelled train / %lld test images (kNN k=%d T=0.1; linear probe %d epochs)\n",
           (long long)str.n, (long long)ste.n, o.knn_k, o.probe_epochs);
    simclr_tensor *a = raw_pixels(ctx, train, &str), *b = raw_pixels(ctx, test, &ste);
    scores raw = evaluate(ctx, a, &str, b, &ste, &o);
    simclr_tensor_destroy(a);
    simclr_tensor_destroy(b);

    simclr_module *rnd;
    rnd = create_encoder(ctx, &o, h, c, o.seed + 7, "random encoder");
    a = embed(ctx, rnd, train, &str), b = embed(ctx, rnd, test, &ste);
    scores random = evaluate(ctx, a, &str, b, &ste, &o);
    simclr_tensor_destroy(a);
    simclr_tensor_destroy(b);
    simclr_module_destroy(rnd);

    a = embed(ctx, enc, train, &str), b = embed(ctx, enc, test, &ste);
    scores trained = evaluate(ctx, a, &str, b, &ste, &o);
    snprintf(path, sizeof path, "%s/test_embeddings.npy", o.out_dir);
    write_npy(path, b);
    simclr_tensor_destroy(a);
    simclr_tensor_destroy(b);

    printf("\n%-28s %12s %14s   %s\n", "representation (test set)", "kNN top-1", "linear top-1", "probe decay");
    printf("%-28s %11.2f%% %13.2f%%   %g\n", "raw pixels", 100 * raw.knn, 100 * raw.linear, raw.probe_wd);
    char label[96];
    snprintf(label, sizeof label, "random %s", arch);
    printf("%-28s %11.2f%% %13.2f%%   %g\n", label, 100 * random.knn, 100 * random.linear, random.probe_wd);
    snprintf(label, sizeof label, "%s %s (ours)", moco ? "MoCo v2" : "SimCLR", arch);
    printf("%-28s %11.2f%% %13.2f%%   %g\n", label, 100 * trained.knn, 100 * trained.linear, trained.probe_wd);
    if (o.probe_wd < 0)
        printf("(the linear probe's weight decay is chosen per row on a validation fifth of the labelled train "
               "images; --probe-wd fixes it)\n");
    printf("\nwrote %s/{metrics.csv, checkpoint.simclr, encoder.safetensors, test_embeddings.npy}; total %.1f s\n",
           o.out_dir, now() - t_start);

    free(order), free(str.idx), free(str.labels), free(ste.idx), free(ste.labels);
    simclr_tensor_destroy(batch);
    simclr_trainer_destroy(tr);
    simclr_module_destroy(key_head);
    simclr_module_destroy(key_enc);
    simclr_optimizer_destroy(opt);
    simclr_loss_destroy(loss);
    simclr_augment_destroy(aug);
    simclr_module_destroy(head);
    simclr_module_destroy(enc);
    simclr_dataset_destroy(train);
    simclr_dataset_destroy(test);
    simclr_context_destroy(ctx);
    return 0;
}
