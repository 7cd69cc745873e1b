/* Options, messages, the model folder, atomic files, input images,
 * embedding and progress for the `simclr` subcommands. */
#include <ctype.h>
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

/* Every option's accepted values, one table for all subcommands (an option
 * means the same in each). cli_parse checks each value against it before a
 * subcommand sees it, so a bad value stops the command with exit status 2
 * and a message naming the option and the range, before anything is created
 * on disk. Kinds: 'i' a whole number in [lo, hi]; 'd' a number from lo to hi
 * (lo_open / hi_open: the end itself excluded); 'e' one of the words of set;
 * 's' any non-empty text; 'p' a share: a percentage "N%" with N > 0 and
 * <= 100, or a fraction > 0 and <= 1 (cli_share reads it). */
typedef struct flag_rule {
    const char *name;
    char kind;
    double lo, hi;
    int lo_open, hi_open;
    const char *set;
} flag_rule;

#define NO_LIMIT 9.2e18
static const flag_rule rules[] = {
    /* train */
    {"--epochs", 'i', 1, 1000000, 0, 0, NULL},
    {"--minutes", 'd', 0, 1000000, 1, 0, NULL},
    {"--batch", 'i', 2, 65536, 0, 0, NULL},
    {"--size", 'i', 8, 1024, 0, 0, NULL},
    {"--width", 'i', 1, 1024, 0, 0, NULL},
    {"--depth", 'e', 0, 0, 0, 0, "18 34 50 101 152"},
    {"--channels", 'e', 0, 0, 0, 0, "1 3"},
    {"--lr", 'd', 0, 100, 1, 0, NULL},
    {"--optimizer", 'e', 0, 0, 0, 0, "sgd lars"},
    {"--weight-decay", 'd', 0, 1, 0, 0, NULL},
    {"--temperature", 'd', 0.001, 100, 0, 0, NULL},
    {"--crop-min", 'd', 0, 1, 1, 0, NULL},
    {"--threads", 'i', 0, 256, 0, 0, NULL},
    {"--seed", 'i', 0, NO_LIMIT, 0, 0, NULL},
    {"--checkpoint-every", 'i', 1, 1000000000, 0, 0, NULL},
    {"--prefetch", 'i', 0, 64, 0, 0, NULL},
    {"--out", 's', 0, 0, 0, 0, NULL},
    /* embed, eval, export */
    {"--model", 's', 0, 0, 0, 0, NULL},
    {"-o", 's', 0, 0, 0, 0, NULL},
    {"--map", 's', 0, 0, 0, 0, NULL},
    {"--test", 's', 0, 0, 0, 0, NULL},
    {"--test-fraction", 'd', 0, 1, 1, 1, NULL},
    {"--k", 'i', 1, 100000, 0, 0, NULL},
    {"--probe-epochs", 'i', 1, 100000, 0, 0, NULL},
    {"--probe-wd", 'd', 0, 1000, 0, 0, NULL},
    /* finetune, predict */
    {"--labels", 'p', 0, 1, 1, 0, NULL},
    {"--per-class", 'i', 1, 2147483648.0, 0, 0, NULL},
    {"--top-k", 'i', 1, 1048576, 0, 0, NULL},
    /* preview */
    {"--images", 'i', 1, 1000, 0, 0, NULL},
    {"--views", 'i', 1, 15, 0, 0, NULL},
};

static const flag_rule *rule_of(const char *name)
{
    for (size_t i = 0; i < sizeof rules / sizeof rules[0]; i++)
        if (strcmp(rules[i].name, name) == 0) return &rules[i];
    return NULL;
}

/* "a whole number in 1..1024", "a number > 0 and <= 100", "one of 1, 3". */
static void describe(const flag_rule *r, opt_type type, char *buf, size_t size)
{
    if (!r) {
        snprintf(buf, size, "%s", type == OPT_INT ? "a whole number" : type == OPT_DOUBLE ? "a number" : "a value");
    } else if (r->kind == 'e') {
        size_t len = (size_t)snprintf(buf, size, "one of ");
        for (const char *p = r->set; *p && len < size;) {
            size_t w = strcspn(p, " ");
            len += (size_t)snprintf(buf + len, size - len, "%.*s%s", (int)w, p, p[w] ? ", " : "");
            p += w + (p[w] != 0);
        }
    } else if (r->kind == 's') {
        snprintf(buf, size, "a non-empty name");
    } else if (r->kind == 'p') {
        snprintf(buf, size, "a percentage > 0%% and <= 100%% (10%%) or a fraction > 0 and <= 1 (0.1)");
    } else if (r->kind == 'i') {
        if (r->hi >= NO_LIMIT) snprintf(buf, size, "a whole number >= %.0f", r->lo);
        else snprintf(buf, size, "a whole number in %.0f..%.0f", r->lo, r->hi);
    } else {
        snprintf(buf, size, "a number %s %.15g and %s %.15g", r->lo_open ? ">" : ">=", r->lo, r->hi_open ? "<" : "<=", r->hi);
    }
}

/* Whether text (an option's value) is a word of the rule's set. */
static int in_set(const flag_rule *r, const char *text)
{
    size_t n = strlen(text);
    for (const char *p = r->set; *p;) {
        size_t w = strcspn(p, " ");
        if (w == n && strncmp(p, text, n) == 0) return 1;
        p += w + (p[w] != 0);
    }
    return 0;
}

double cli_share(const char *v)
{
    if (!v || !*v || isspace((unsigned char)v[0])) return -1;
    char *end = NULL;
    errno = 0;
    double x = strtod(v, &end);
    if (errno || end == v || !isfinite(x)) return -1;
    if (end[0] == '%' && end[1] == 0) x /= 100;
    else if (*end) return -1;
    return x > 0 && x <= 1 ? x : -1;
}

static const char *given[64];
static int n_given;

int cli_given(const char *name)
{
    for (int i = 0; i < n_given; i++)
        if (strcmp(given[i], name) == 0) return 1;
    return 0;
}

static const cli_opt *find_opt(const cli_opt *opts, int n_opts, const char *name, size_t len)
{
    for (int k = 0; k < n_opts; k++)
        if (strlen(opts[k].name) == len && strncmp(opts[k].name, name, len) == 0) return &opts[k];
    return NULL;
}

/* Parses and checks one option's value; CLI_USAGE with a message naming it. */
static int take_value(const char *cmd, const cli_opt *o, const cli_opt *opts, int n_opts, const char *v)
{
    const flag_rule *r = rule_of(o->name);
    char range[96];
    describe(r, o->type, range, sizeof range);
    if (!v || (v[0] == '-' && find_opt(opts, n_opts, v, strcspn(v, "=")))) {
        fprintf(stderr, "simclr %s: option %s needs a value (%s)%s%s\n", cmd, o->name, range, v ? ", not the option " : "",
                v ? v : "");
        return CLI_USAGE;
    }
    char *end = NULL;
    errno = 0;
    if (o->type == OPT_INT) {
        long long x = isspace((unsigned char)v[0]) ? 0 : strtoll(v, &end, 10);
        if (isspace((unsigned char)v[0]) || errno || !*v || *end) goto bad;
        if (r && r->kind == 'e' ? !in_set(r, v) : r && ((double)x < r->lo || (double)x > r->hi)) goto bad;
        *(int64_t *)o->dst = x;
    } else if (o->type == OPT_DOUBLE) {
        double x = isspace((unsigned char)v[0]) ? 0 : strtod(v, &end);
        if (isspace((unsigned char)v[0]) || errno || !*v || *end || !isfinite(x)) goto bad;
        if (r && (x < r->lo || x > r->hi || (r->lo_open && x == r->lo) || (r->hi_open && x == r->hi))) goto bad;
        *(double *)o->dst = x;
    } else {
        if (!*v || (r && r->kind == 'e' && !in_set(r, v))) goto bad;
        if (r && r->kind == 'p' && !(cli_share(v) > 0)) goto bad;
        *(const char **)o->dst = v;
    }
    return 0;
bad:
    fprintf(stderr, "simclr %s: option %s '%s': must be %s\n", cmd, o->name, v, range);
    return CLI_USAGE;
}

int cli_parse(int argc, char **argv, int first, const char *usage_line, const char *about, const cli_opt *opts,
              int n_opts, char **pos, int max_pos, int *n_pos)
{
    const char *cmd = argv[1];
    *n_pos = 0;
    n_given = 0;
    for (int i = first; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            usage(usage_line, about, opts, n_opts, stdout);
            return -1;
        }
        /* --name=value as well as --name value */
        size_t len = strncmp(a, "--", 2) == 0 ? strcspn(a, "=") : strlen(a);
        const cli_opt *o = a[0] == '-' && a[1] ? find_opt(opts, n_opts, a, len) : NULL;
        if (!o && (a[0] != '-' || a[1] == 0 || strcmp(a, "--") == 0)) {
            if (strcmp(a, "--") == 0) a = ++i < argc ? argv[i] : NULL;
            if (!a) break;
            if (*n_pos >= max_pos) {
                fprintf(stderr, "simclr %s: too many arguments at '%s'\nusage: %s\n", cmd, a, usage_line);
                return CLI_USAGE;
            }
            pos[(*n_pos)++] = (char *)a;
            continue;
        }
        if (!o) {
            fprintf(stderr, "simclr %s: unknown option '%.*s' (see simclr %s --help)\n", cmd, (int)len, a, cmd);
            return CLI_USAGE;
        }
        if (n_given < (int)(sizeof given / sizeof given[0])) given[n_given++] = o->name;
        const char *v = a[len] == '=' ? a + len + 1 : NULL;
        if (o->type == OPT_FLAG) {
            if (v) {
                fprintf(stderr, "simclr %s: option %s takes no value\n", cmd, o->name);
                return CLI_USAGE;
            }
            *(int *)o->dst = 1;
            continue;
        }
        if (!v && i + 1 < argc) v = argv[++i];
        int rc = take_value(cmd, o, opts, n_opts, v);
        if (rc) return rc;
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

int cli_check_output(const char *cmd, const char *flag, const char *path)
{
    struct stat sb;
    if (stat(path, &sb) == 0 && S_ISDIR(sb.st_mode)) {
        fprintf(stderr, "simclr %s: %s %s: is a folder (give a file name)\n", cmd, flag, path);
        return CLI_FAIL;
    }
    const char *slash = strrchr(path, '/');
    if (!slash) return CLI_OK;
    char dir[4096];
    snprintf(dir, sizeof dir, "%.*s", slash == path ? 1 : (int)(slash - path), path);
    if (stat(dir, &sb) != 0 || !S_ISDIR(sb.st_mode)) {
        fprintf(stderr, "simclr %s: %s %s: the folder %s %s\n", cmd, flag, path, dir,
                stat(dir, &sb) != 0 ? "does not exist" : "is not a folder");
        return CLI_FAIL;
    }
    return CLI_OK;
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
    simclr_status st = simclr_resnet_create_v2(ctx, (int)cfg->depth, cfg->width, cfg->channels,
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

/* The class names of a fine-tuned folder's simclr.cfg ("class NAME" lines,
 * in label order); *k their count. */
int cfg_classes(const char *cmd, const char *dir, char ***names, int *k)
{
    char path[4096], line[4200];
    snprintf(path, sizeof path, "%s/simclr.cfg", dir);
    FILE *f = fopen(path, "r");
    if (!f) {
        fprintf(stderr, "simclr %s: cannot open %s: %s\n", cmd, path, strerror(errno));
        return CLI_FAIL;
    }
    char **v = NULL;
    int n = 0, rc = CLI_OK;
    while (!rc && fgets(line, sizeof line, f)) {
        if (strncmp(line, "class ", 6) != 0) continue;
        line[strcspn(line, "\r\n")] = 0;
        char **g = realloc(v, (size_t)(n + 1) * sizeof *v);
        char *s = g ? malloc(strlen(line + 6) + 1) : NULL;
        if (g) v = g;
        if (!s) {
            rc = cli_error(cmd, "no memory");
            break;
        }
        strcpy(s, line + 6);
        v[n++] = s;
    }
    fclose(f);
    if (!rc && n < 2) {
        fprintf(stderr, "simclr %s: %s names no classes: is %s a folder written by `simclr finetune`?\n", cmd, path,
                dir);
        rc = CLI_FAIL;
    }
    if (rc) {
        for (int i = 0; i < n; i++) free(v[i]);
        free(v);
        return rc;
    }
    *names = v;
    *k = n;
    return CLI_OK;
}

void cfg_classes_free(char **names, int k)
{
    for (int i = 0; i < k; i++) free(names[i]);
    free(names);
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
    if (!rc && (st = simclr_image_list_create(ctx, cfg->channels, &list)) != SIMCLR_OK)
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
        if (!quiet) {
            char extra[64];
            double el = cli_now() - t0;
            snprintf(extra, sizeof extra, "%.1f img/s", el > 0 ? (double)(first + m) / el : 0.0);
            progress_line("embed", first + m, n, "images", el, extra, first + m == n);
        }
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

/* On a terminal the line is redrawn in place (\r) up to 10 times a second.
 * Into a file or a pipe (a CI log, nohup) each update is a line of its own,
 * so they are sparse: one when 5% more is done (at most every 2 s) or 30 s
 * have passed, and the last one. */
void progress_line(const char *what, int64_t done, int64_t total, const char *unit, double elapsed, const char *extra,
                   int final)
{
    static double last = -1, last_frac = 0;
    int tty = isatty(2);
    double frac = total > 0 ? (double)done / (double)total : 0;
    if (frac > 1) frac = 1;
    if (!final && last >= 0 && elapsed >= last) {
        double since = elapsed - last;
        if (tty ? since < 0.1 : since < 30 && !(frac - last_frac >= 0.05 && since >= 2)) return;
    }
    last = final ? -1 : elapsed;
    last_frac = final ? 0 : frac;
    char bar[32], eta[32], el[32];
    int filled = (int)(frac * 24 + 0.5);
    for (int i = 0; i < 24; i++) bar[i] = i < filled ? '#' : '.';
    bar[24] = 0;
    fmt_time(el, sizeof el, elapsed);
    fmt_time(eta, sizeof eta, done > 0 ? elapsed * (1 - frac) / frac : -1);
    fprintf(stderr, "%s%-6s [%s] %3.0f%% %lld/%lld%s%s%s%s  elapsed %s ETA %s%s", tty ? "\r" : "", what, bar, 100 * frac,
            (long long)done, (long long)total, unit[0] ? " " : "", unit, extra[0] ? "  " : "", extra, el, eta,
            tty && !final ? "\033[K" : "\n");
    fflush(stderr);
}
