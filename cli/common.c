/* Options, messages, the model folder, atomic files, input images,
 * embedding and progress for the `simclr` subcommands. */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"

double cli_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

int cli_fail(const char *cmd, const char *what, simclr_status st)
{
    fprintf(stderr, "simclr %s: %s: %s (%s)\n", cmd, what, simclr_last_error(), simclr_status_string(st));
    return CLI_FAIL;
}

int cli_error(const char *cmd, const char *message)
{
    fprintf(stderr, "simclr %s: %s\n", cmd, message);
    return CLI_FAIL;
}

static void usage(const char *usage_line, const char *about, const cli_opt *opts, int n_opts, FILE *f)
{
    fprintf(f, "usage: %s\n\n%s\n\noptions:\n", usage_line, about);
    for (int i = 0; i < n_opts; i++) {
        const char *arg = opts[i].type == OPT_INT ? " N" : opts[i].type == OPT_DOUBLE ? " X"
                          : opts[i].type == OPT_STRING ? " S" : "";
        char left[64];
        snprintf(left, sizeof left, "%s%s", opts[i].name, arg);
        fprintf(f, "  %-22s %s\n", left, opts[i].help);
    }
    fprintf(f, "  %-22s %s\n", "--help", "show this help");
}

int cli_parse(int argc, char **argv, int first, const char *usage_line, const char *about, const cli_opt *opts,
              int n_opts, char **pos, int max_pos, int *n_pos)
{
    *n_pos = 0;
    for (int i = first; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            usage(usage_line, about, opts, n_opts, stdout);
            return -1;
        }
        int is_opt = 0;
        for (int k = 0; k < n_opts; k++) is_opt |= strcmp(opts[k].name, a) == 0;
        if (!is_opt && (a[0] != '-' || a[1] == 0 || strcmp(a, "--") == 0)) {
            if (strcmp(a, "--") == 0) a = ++i < argc ? argv[i] : NULL;
            if (!a) break;
            if (*n_pos >= max_pos) {
                fprintf(stderr, "simclr %s: too many arguments at '%s'\nusage: %s\n", argv[1], a, usage_line);
                return CLI_USAGE;
            }
            pos[(*n_pos)++] = (char *)a;
            continue;
        }
        const cli_opt *o = NULL;
        for (int k = 0; k < n_opts; k++)
            if (strcmp(opts[k].name, a) == 0) o = &opts[k];
        if (!o) {
            fprintf(stderr, "simclr %s: unknown option '%s' (see --help)\n", argv[1], a);
            return CLI_USAGE;
        }
        if (o->type == OPT_FLAG) {
            *(int *)o->dst = 1;
            continue;
        }
        if (i + 1 >= argc) {
            fprintf(stderr, "simclr %s: option %s needs a value\n", argv[1], a);
            return CLI_USAGE;
        }
        const char *v = argv[++i];
        char *end = NULL;
        errno = 0;
        if (o->type == OPT_INT) {
            long long x = strtoll(v, &end, 10);
            if (errno || !*v || *end) goto bad;
            *(int64_t *)o->dst = x;
        } else if (o->type == OPT_DOUBLE) {
            double x = strtod(v, &end);
            if (errno || !*v || *end || !isfinite(x)) goto bad;
            *(double *)o->dst = x;
        } else {
            *(const char **)o->dst = v;
        }
        continue;
    bad:
        fprintf(stderr, "simclr %s: option %s: '%s' is not a %s\n", argv[1], a, v, o->type == OPT_INT ? "whole number" : "number");
        return CLI_USAGE;
    }
    return 0;
}

/* ---- files ---- */

int write_atomic(const char *cmd, const char *path, const void *data, size_t size)
{
    char tmp[4200];
    snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid());
    FILE *f = fopen(tmp, "wb");
    if (!f) {
        fprintf(stderr, "simclr %s: cannot create %s: %s\n", cmd, path, strerror(errno));
        return CLI_FAIL;
    }
    int bad = size && fwrite(data, 1, size, f) != size;
    bad |= fflush(f) != 0;
    bad |= fsync(fileno(f)) != 0;
    int e = errno;
    bad |= fclose(f) != 0;
    if (!bad && rename(tmp, path) != 0) bad = 1, e = errno;
    if (bad) {
        remove(tmp);
        fprintf(stderr, "simclr %s: cannot write %s: %s\n", cmd, path, strerror(e));
        return CLI_FAIL;
    }
    return CLI_OK;
}

int write_npy(const char *cmd, const char *path, const float *x, int64_t n, int64_t d)
{
    char header[128];
    int len = snprintf(header, sizeof header, "{'descr': '<f4', 'fortran_order': False, 'shape': (%lld, %lld), }",
                       (long long)n, (long long)d);
    int pad = 64 - (10 + len + 1) % 64;
    size_t hlen = (size_t)(len + pad + 1), total = 10 + hlen + (size_t)(n * d) * sizeof(float);
    uint8_t *buf = malloc(total);
    if (!buf) return cli_error(cmd, "no memory for the .npy file");
    memcpy(buf, "\x93NUMPY\x01\x00", 8);
    buf[8] = (uint8_t)(hlen & 0xff), buf[9] = (uint8_t)(hlen >> 8);
    memcpy(buf + 10, header, (size_t)len);
    memset(buf + 10 + len, ' ', (size_t)pad);
    buf[10 + hlen - 1] = '\n';
    memcpy(buf + 10 + hlen, x, (size_t)(n * d) * sizeof(float));
    int rc = write_atomic(cmd, path, buf, total);
    free(buf);
    return rc;
}

/* ---- the model folder ---- */

int cfg_write(const char *cmd, const char *dir, const model_cfg *c)
{
    char path[4096], text[512];
    snprintf(path, sizeof path, "%s/simclr.cfg", dir);
    int n = snprintf(text, sizeof text,
                     "# simclr model configuration (written by simclr train)\n"
                     "depth %lld\nwidth %lld\nchannels %lld\nsize %lld\nstem %s\nhead_hidden %lld\nhead_out %lld\n",
                     (long long)c->depth, (long long)c->width, (long long)c->channels, (long long)c->size, c->stem,
                     (long long)c->head_hidden, (long long)c->head_out);
    return write_atomic(cmd, path, text, (size_t)n);
}

int cfg_read(const char *cmd, const char *dir, model_cfg *c)
{
    char path[4096], line[256];
    snprintf(path, sizeof path, "%s/simclr.cfg", dir);
    FILE *f = fopen(path, "r");
    if (!f) {
        fprintf(stderr, "simclr %s: cannot open %s: %s (is %s a folder written by `simclr train`?)\n", cmd, path,
                strerror(errno), dir);
        return CLI_FAIL;
    }
    memset(c, 0, sizeof *c);
    while (fgets(line, sizeof line, f)) {
        char key[64], val[64];
        if (line[0] == '#' || sscanf(line, "%63s %63s", key, val) != 2) continue;
        long long v = atoll(val);
        if (!strcmp(key, "depth")) c->depth = v;
        else if (!strcmp(key, "width")) c->width = v;
        else if (!strcmp(key, "channels")) c->channels = v;
        else if (!strcmp(key, "size")) c->size = v;
        else if (!strcmp(key, "head_hidden")) c->head_hidden = v;
        else if (!strcmp(key, "head_out")) c->head_out = v;
        else if (!strcmp(key, "stem")) snprintf(c->stem, sizeof c->stem, "%.15s", val);
    }
    fclose(f);
    if (c->depth < 1 || c->width < 1 || (c->channels != 1 && c->channels != 3) || c->size < 1 || !c->stem[0]) {
        fprintf(stderr, "simclr %s: %s: incomplete or invalid configuration\n", cmd, path);
        return CLI_FAIL;
    }
    return CLI_OK;
}

int model_load(const char *cmd, simclr_context *ctx, const char *dir, model_cfg *cfg, simclr_module **enc)
{
    int rc = cfg_read(cmd, dir, cfg);
    if (rc) return rc;
    simclr_status st = simclr_resnet_create(ctx, (int)cfg->depth, (int)cfg->width, (int)cfg->channels,
                                            strcmp(cfg->stem, "imagenet") == 0 ? SIMCLR_STEM_IMAGENET
                                                                               : SIMCLR_STEM_CIFAR,
                                            0, enc);
    if (st != SIMCLR_OK) return cli_fail(cmd, "encoder", st);
    char path[4096];
    snprintf(path, sizeof path, "%s/encoder.simclr", dir);
    st = simclr_module_load(*enc, path);
    if (st != SIMCLR_OK) {
        simclr_module_destroy(*enc);
        *enc = NULL;
        return cli_fail(cmd, path, st);
    }
    return CLI_OK;
}

/* ---- input images ---- */

static int is_dir(const char *p)
{
    struct stat sb;
    return stat(p, &sb) == 0 && S_ISDIR(sb.st_mode);
}

int input_open(const char *cmd, simclr_context *ctx, char **args, int n_args, int channels, int labels,
               int skip_bad, image_input *in)
{
    memset(in, 0, sizeof *in);
    if (n_args < 1) return cli_error(cmd, "no input: give a folder or image files");
    if (n_args == 1 && is_dir(args[0])) {
        simclr_status st = SIMCLR_E_FORMAT;
        if (labels != 0) {
            st = simclr_image_folder_open(ctx, args[0], channels, 1, &in->folder);
            in->labeled = st == SIMCLR_OK;
            if (st != SIMCLR_OK && labels == 1) return cli_fail(cmd, "labels from class subfolders", st);
        }
        if (st != SIMCLR_OK) {
            st = simclr_image_folder_open(ctx, args[0], channels, 0, &in->folder);
            if (st != SIMCLR_OK) return cli_fail(cmd, "input folder", st);
        }
        if (skip_bad) simclr_image_folder_set(in->folder, SIMCLR_FOLDER_ON_ERROR, SIMCLR_FOLDER_SKIP);
        in->count = simclr_image_folder_count(in->folder);
        return CLI_OK;
    }
    if (labels == 1) return cli_error(cmd, "labels need one folder with class subfolders (DIR/CLASS/image.jpg)");
    for (int i = 0; i < n_args; i++) {
        struct stat sb;
        if (stat(args[i], &sb) != 0) {
            fprintf(stderr, "simclr %s: %s: %s\n", cmd, args[i], strerror(errno));
            return CLI_FAIL;
        }
        if (S_ISDIR(sb.st_mode)) {
            fprintf(stderr, "simclr %s: %s is a folder: give one folder or image files, not both\n", cmd, args[i]);
            return CLI_FAIL;
        }
    }
    in->files = args;
    in->n_files = in->count = n_args;
    return CLI_OK;
}

void input_close(image_input *in)
{
    simclr_image_folder_destroy(in->folder);
    for (int64_t i = 0; i < in->n_px; i++) simclr_image_free(in->px[i]);
    free(in->px);
    memset(in, 0, sizeof *in);
}

const char *input_path(const image_input *in, int64_t i)
{
    return in->folder ? simclr_image_folder_path(in->folder, i) : in->files[i];
}

int32_t input_label(const image_input *in, int64_t i)
{
    return in->folder && in->labeled ? simclr_image_folder_label(in->folder, i) : -1;
}

int input_load(const char *cmd, image_input *in, const int64_t *indices, int64_t n, simclr_image_list *list,
               int64_t *kept, int64_t *n_kept)
{
    if (in->folder) {
        simclr_status st = simclr_image_folder_load(in->folder, indices, n, list, kept, n_kept);
        return st == SIMCLR_OK ? CLI_OK : cli_fail(cmd, "decode", st);
    }
    for (int64_t i = 0; i < in->n_px; i++) simclr_image_free(in->px[i]);
    free(in->px);
    in->n_px = 0;
    in->px = calloc((size_t)n, sizeof *in->px);
    if (!in->px) return cli_error(cmd, "no memory");
    simclr_image_list_clear(list);
    for (int64_t k = 0; k < n; k++) {
        int64_t h, w;
        simclr_status st = simclr_image_decode_file(in->files[indices[k]], simclr_image_list_channels(list), 0, 0,
                                                    &in->px[k], &h, &w);
        if (st != SIMCLR_OK) return cli_fail(cmd, "decode", st);
        in->n_px = k + 1;
        st = simclr_image_list_add(list, in->px[k], h, w);
        if (st != SIMCLR_OK) return cli_fail(cmd, in->files[indices[k]], st);
        if (kept) kept[k] = indices[k];
    }
    if (n_kept) *n_kept = n;
    return CLI_OK;
}

int embed_all(const char *cmd, simclr_context *ctx, simclr_module *enc, const model_cfg *cfg, image_input *in,
              float **feat_out, uint8_t **kept_out, int quiet)
{
    int64_t d = simclr_module_output_dim(enc), n = in->count, chunk = 64;
    float *feat = calloc((size_t)(n * d), sizeof(float));
    uint8_t *ok = calloc((size_t)n, 1);
    int64_t *idx = malloc((size_t)chunk * sizeof *idx), *kept = malloc((size_t)chunk * sizeof *kept),
            *next = malloc((size_t)chunk * sizeof *next);
    simclr_image_list *list = NULL;
    simclr_embedder *emb = NULL;
    simclr_tensor *y = NULL;
    float *rows = malloc((size_t)(chunk * d) * sizeof(float));
    int rc = CLI_OK;
    simclr_status st;
    if (!feat || !ok || !idx || !kept || !next || !rows) rc = cli_error(cmd, "no memory for the features");
    if (!rc && (st = simclr_image_list_create(ctx, (int)cfg->channels, &list)) != SIMCLR_OK)
        rc = cli_fail(cmd, "image list", st);
    if (!rc && (st = simclr_embedder_create(ctx, enc, (int)cfg->size, (int)cfg->size, &emb)) != SIMCLR_OK)
        rc = cli_fail(cmd, "embedder", st);
    /* Decoding the next chunk beside the embedding pays only on a core the
     * embedding leaves free (as simclr train's --prefetch default). */
    const int prefetch = in->folder && simclr_context_threads(ctx) < sysconf(_SC_NPROCESSORS_ONLN);
    double t0 = cli_now();
    for (int64_t first = 0; !rc && first < n; first += chunk) {
        int64_t m = n - first < chunk ? n - first : chunk, got = 0;
        for (int64_t k = 0; k < m; k++) idx[k] = first + k;
        rc = input_load(cmd, in, idx, m, list, kept, &got);
        if (!rc && prefetch && first + m < n) { /* the next chunk decodes while this one embeds */
            int64_t m_next = n - first - m < chunk ? n - first - m : chunk;
            for (int64_t k = 0; k < m_next; k++) next[k] = first + m + k;
            (void)simclr_image_folder_prefetch(in->folder, next, m_next); /* failing, the load decodes it */
        }
        if (rc || got == 0) continue;
        int64_t ys[2] = {got, d};
        simclr_tensor_destroy(y);
        y = NULL;
        st = simclr_tensor_wrap(ctx, SIMCLR_F32, 2, ys, rows, &y);
        if (st == SIMCLR_OK) st = simclr_embedder_run(emb, list, y);
        if (st != SIMCLR_OK) {
            rc = cli_fail(cmd, "embedding", st);
            break;
        }
        for (int64_t k = 0; k < got; k++) {
            memcpy(feat + kept[k] * d, rows + k * d, (size_t)d * sizeof(float));
            ok[kept[k]] = 1;
        }
        if (!quiet) progress_line("embed", first + m, n, cli_now() - t0, "", first + m == n);
    }
    simclr_tensor_destroy(y);
    simclr_embedder_destroy(emb);
    simclr_image_list_destroy(list);
    free(idx), free(kept), free(next), free(rows);
    if (rc) {
        free(feat), free(ok);
        return rc;
    }
    *feat_out = feat;
    *kept_out = ok;
    return CLI_OK;
}

/* ---- progress ---- */

static void fmt_time(char *buf, size_t size, double s)
{
    if (!(s >= 0) || s > 1e7) {
        snprintf(buf, size, "--:--");
        return;
    }
    long t = (long)(s + 0.5);
    if (t >= 3600) snprintf(buf, size, "%ld:%02ld:%02ld", t / 3600, t / 60 % 60, t % 60);
    else snprintf(buf, size, "%ld:%02ld", t / 60, t % 60);
}

void progress_line(const char *what, int64_t done, int64_t total, double elapsed, const char *extra, int final)
{
    static double last = -1;
    int tty = isatty(2);
    /* on a terminal: redraw up to 10 times a second; in a log: a line every 10 s */
    if (!final && last >= 0 && elapsed - last < (tty ? 0.1 : 10.0) && elapsed >= last) return;
    last = final ? -1 : elapsed;
    double frac = total > 0 ? (double)done / (double)total : 0;
    if (frac > 1) frac = 1;
    char bar[32], eta[32], el[32];
    int filled = (int)(frac * 24 + 0.5);
    for (int i = 0; i < 24; i++) bar[i] = i < filled ? '#' : '.';
    bar[24] = 0;
    fmt_time(el, sizeof el, elapsed);
    fmt_time(eta, sizeof eta, done > 0 ? elapsed * (1 - frac) / frac : -1);
    fprintf(stderr, "%s%-6s [%s] %3.0f%% %lld/%lld %s elapsed %s ETA %s%s", tty ? "\r" : "", what, bar, 100 * frac,
            (long long)done, (long long)total, extra, el, eta, tty && !final ? "\033[K" : "\n");
    fflush(stderr);
}
