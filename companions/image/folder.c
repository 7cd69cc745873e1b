/* The image-folder data set: file paths (and labels from the first level of
 * subfolders, as torchvision's ImageFolder: classes are the sorted
 * subfolder names, files found recursively below each, ordered as a
 * sorted os.walk lists them), decoded on demand, one batch at a time, in
 * parallel over the context's threads, or the next batch in the background
 * while the caller trains on this one (prefetch.c). Nothing is decoded at
 * open: a data set larger than memory costs its path list and two batches. */
#include <dirent.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include "internal.h"

struct simclr_image_folder {
    simclr_context *ctx;
    char *root;
    char **paths;
    int32_t *labels; /* NULL without labels */
    uint8_t *bad;    /* 1 = failed to decode once (skip mode) */
    int64_t count, cap;
    char **classes;
    int n_classes, cap_classes;
    int channels;
    int labels_mode, on_error, min_side, prefetch_threads;
    int64_t max_pixels, skipped;
    simclr__img_batch last;        /* the batch the last load handed out */
    simclr__img_prefetch prefetch; /* the next one, decoding in the background */
};

static simclr__img_settings settings_of(const simclr_image_folder *f)
{
    return (simclr__img_settings){.channels = f->channels, .min_side = f->min_side, .max_pixels = f->max_pixels};
}

static int has_image_extension(const char *name)
{
    const char *dot = strrchr(name, '.');
    return dot && (strcasecmp(dot, ".png") == 0 || strcasecmp(dot, ".jpg") == 0 || strcasecmp(dot, ".jpeg") == 0);
}

static char *join(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    char *s = malloc(la + lb + 2);
    if (!s) return NULL;
    memcpy(s, a, la);
    s[la] = '/';
    memcpy(s + la + 1, b, lb + 1);
    return s;
}

static int is_dir(const char *path)
{
    struct stat sb;
    return stat(path, &sb) == 0 && S_ISDIR(sb.st_mode);
}

static simclr_status add_path(simclr_image_folder *f, char *path, int32_t label)
{
    if (f->count == f->cap) {
        int64_t cap = f->cap ? 2 * f->cap : 256;
        char **p = realloc(f->paths, (size_t)cap * sizeof *p);
        if (p) f->paths = p;
        int32_t *l = p ? realloc(f->labels, (size_t)cap * sizeof *l) : NULL;
        if (l) f->labels = l;
        if (!p || !l) {
            free(path);
            return simclr__img_fail(SIMCLR_E_NOMEM, "simclr_image_folder_open: no memory for %lld paths", (long long)cap);
        }
        f->cap = cap;
    }
    f->paths[f->count] = path;
    f->labels[f->count] = label;
    f->count++;
    return SIMCLR_OK;
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

/* Sorted entries of a directory (names malloc'ed); SIMCLR_E_IO naming it. */
static simclr_status list_dir(const char *dir, char ***names, size_t *n)
{
    DIR *d = opendir(dir);
    if (!d) return simclr__img_fail(SIMCLR_E_IO, "%s: cannot open the folder: %s", dir, strerror(errno));
    size_t cap = 0, k = 0;
    char **v = NULL;
    struct dirent *e;
    simclr_status st = SIMCLR_OK;
    while ((e = readdir(d))) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) continue;
        if (k == cap) {
            cap = cap ? 2 * cap : 64;
            char **nv = realloc(v, cap * sizeof *nv);
            if (!nv) {
                st = simclr__img_fail(SIMCLR_E_NOMEM, "%s: no memory to list the folder", dir);
                break;
            }
            v = nv;
        }
        if (!(v[k] = strdup(e->d_name))) {
            st = simclr__img_fail(SIMCLR_E_NOMEM, "%s: no memory to list the folder", dir);
            break;
        }
        k++;
    }
    closedir(d);
    if (st != SIMCLR_OK) {
        for (size_t i = 0; i < k; i++) free(v[i]);
        free(v);
        return st;
    }
    if (k > 1) qsort(v, k, sizeof *v, cmp_str); /* qsort(NULL, 0) is undefined */
    *names = v;
    *n = k;
    return SIMCLR_OK;
}

typedef struct dirs {
    char **v;
    size_t n, cap;
} dirs;

/* Collects dir and every folder below it (paths malloc'ed). */
static simclr_status collect_dirs(const char *dir, dirs *out, int depth)
{
    if (depth > 64) return simclr__img_fail(SIMCLR_E_FORMAT, "%s: folders nested more than 64 deep", dir);
    if (out->n == out->cap) {
        size_t cap = out->cap ? 2 * out->cap : 16;
        char **v = realloc(out->v, cap * sizeof *v);
        if (!v) return simclr__img_fail(SIMCLR_E_NOMEM, "%s: no memory", dir);
        out->v = v, out->cap = cap;
    }
    if (!(out->v[out->n] = strdup(dir))) return simclr__img_fail(SIMCLR_E_NOMEM, "%s: no memory", dir);
    out->n++;
    char **names = NULL;
    size_t n = 0;
    simclr_status st = list_dir(dir, &names, &n);
    for (size_t i = 0; i < n; i++) {
        char *path = st == SIMCLR_OK ? join(dir, names[i]) : NULL;
        if (st == SIMCLR_OK && !path) st = simclr__img_fail(SIMCLR_E_NOMEM, "%s: no memory", dir);
        if (path && is_dir(path)) st = collect_dirs(path, out, depth + 1);
        free(path);
        free(names[i]);
    }
    free(names);
    return st;
}

/* Adds every image below dir in the order of torchvision's make_dataset:
 * sorted(os.walk(dir)) sorts the folders by their full path string, and
 * each folder's files by name. */
static simclr_status walk(simclr_image_folder *f, const char *dir, int32_t label)
{
    dirs d = {0};
    simclr_status st = collect_dirs(dir, &d, 0);
    if (st == SIMCLR_OK) qsort(d.v, d.n, sizeof *d.v, cmp_str);
    for (size_t k = 0; k < d.n; k++) {
        char **names = NULL;
        size_t n = 0;
        if (st == SIMCLR_OK) st = list_dir(d.v[k], &names, &n);
        for (size_t i = 0; i < n; i++) {
            if (st == SIMCLR_OK && has_image_extension(names[i])) {
                char *path = join(d.v[k], names[i]);
                if (!path) st = simclr__img_fail(SIMCLR_E_NOMEM, "%s: no memory", d.v[k]);
                else if (is_dir(path)) free(path);
                else st = add_path(f, path, label);
            }
            free(names[i]);
        }
        free(names);
        free(d.v[k]);
    }
    free(d.v);
    return st;
}

void simclr_image_folder_destroy(simclr_image_folder *f)
{
    if (!f) return;
    simclr__img_prefetch_free(&f->prefetch); /* first: joins threads that still read the paths */
    for (int64_t i = 0; i < f->count; i++) free(f->paths[i]);
    for (int i = 0; i < f->n_classes; i++) free(f->classes[i]);
    simclr__img_batch_free(&f->last);
    free(f->paths), free(f->labels), free(f->bad), free(f->classes), free(f->root);
    free(f);
}

simclr_status simclr_image_folder_open(simclr_context *ctx, const char *root, int channels, int labels,
                                       simclr_image_folder **out)
{
    static const char fn[] = "simclr_image_folder_open";
    if (!ctx || !root || !out) return simclr__img_fail(SIMCLR_E_INVALID, "%s: ctx, root or out is NULL", fn);
    if (channels != 1 && channels != 3)
        return simclr__img_fail(SIMCLR_E_INVALID, "%s: channels %d must be 1 or 3", fn, channels);
    if (labels != 0 && labels != 1) return simclr__img_fail(SIMCLR_E_INVALID, "%s: labels %d must be 0 or 1", fn, labels);
    struct stat sb;
    if (stat(root, &sb) != 0) return simclr__img_fail(SIMCLR_E_IO, "%s: %s", root, strerror(errno));
    if (!S_ISDIR(sb.st_mode)) return simclr__img_fail(SIMCLR_E_INVALID, "%s: not a folder", root);
    simclr_image_folder *f = calloc(1, sizeof *f);
    if (!f || !(f->root = strdup(root))) {
        free(f);
        return simclr__img_fail(SIMCLR_E_NOMEM, "%s: no memory", fn);
    }
    f->ctx = ctx;
    f->channels = channels;
    f->labels_mode = labels;
    f->max_pixels = SIMCLR_IMAGE_DEFAULT_MAX_PIXELS;
    f->prefetch_threads = 1;
    simclr_status st = SIMCLR_OK;
    if (labels) {
        char **names;
        size_t n;
        st = list_dir(root, &names, &n);
        if (st == SIMCLR_OK) {
            f->classes = calloc(n ? n : 1, sizeof *f->classes);
            if (!f->classes) st = simclr__img_fail(SIMCLR_E_NOMEM, "%s: no memory", fn);
            for (size_t i = 0; i < n; i++) {
                char *path = st == SIMCLR_OK ? join(root, names[i]) : NULL;
                if (path && is_dir(path)) {
                    int64_t before = f->count;
                    f->classes[f->n_classes] = names[i], names[i] = NULL;
                    st = walk(f, path, f->n_classes);
                    if (st == SIMCLR_OK && f->count == before)
                        st = simclr__img_fail(SIMCLR_E_FORMAT, "%s: class folder '%s' holds no .png/.jpg/.jpeg image", root,
                                        f->classes[f->n_classes]);
                    f->n_classes++;
                }
                free(path);
                free(names[i]);
            }
            free(names);
            if (st == SIMCLR_OK && f->n_classes == 0)
                st = simclr__img_fail(SIMCLR_E_FORMAT,
                                "%s: no class subfolders (labels come from subfolder names: root/CLASS/image.jpg)",
                                root);
        }
    } else {
        st = walk(f, root, -1);
    }
    if (st == SIMCLR_OK && f->count == 0)
        st = simclr__img_fail(SIMCLR_E_FORMAT, "%s: no .png/.jpg/.jpeg images found", root);
    if (st == SIMCLR_OK && !(f->bad = calloc((size_t)f->count, 1))) st = simclr__img_fail(SIMCLR_E_NOMEM, "%s: no memory", fn);
    if (st != SIMCLR_OK) {
        simclr_image_folder_destroy(f);
        return st;
    }
    *out = f;
    return SIMCLR_OK;
}

simclr_status simclr_image_folder_set(simclr_image_folder *f, simclr_folder_param key, int64_t value)
{
    static const char fn[] = "simclr_image_folder_set";
    if (!f) return simclr__img_fail(SIMCLR_E_INVALID, "%s: folder is NULL", fn);
    switch (key) {
    case SIMCLR_FOLDER_ON_ERROR:
        if (value != SIMCLR_FOLDER_FAIL && value != SIMCLR_FOLDER_SKIP) break;
        f->on_error = (int)value;
        return SIMCLR_OK;
    case SIMCLR_FOLDER_MAX_PIXELS:
        if (value < 1) break;
        f->max_pixels = value;
        return SIMCLR_OK;
    case SIMCLR_FOLDER_MIN_SIDE:
        if (value < 0 || value > 65536) break;
        f->min_side = (int)value;
        return SIMCLR_OK;
    case SIMCLR_FOLDER_PREFETCH_THREADS:
        if (value < 1 || value > SIMCLR__IMG_MAX_PREFETCH_THREADS) break;
        f->prefetch_threads = (int)value;
        return SIMCLR_OK;
    default: return simclr__img_fail(SIMCLR_E_INVALID, "%s: unknown key %d", fn, (int)key);
    }
    return simclr__img_fail(SIMCLR_E_INVALID, "%s: key %d: value %lld out of range", fn, (int)key, (long long)value);
}

int64_t simclr_image_folder_count(const simclr_image_folder *f) { return f ? f->count : 0; }
const char *simclr_image_folder_path(const simclr_image_folder *f, int64_t i)
{
    return f && i >= 0 && i < f->count ? f->paths[i] : NULL;
}
int32_t simclr_image_folder_label(const simclr_image_folder *f, int64_t i)
{
    return f && f->labels_mode && i >= 0 && i < f->count ? f->labels[i] : -1;
}
int simclr_image_folder_class_count(const simclr_image_folder *f) { return f ? f->n_classes : 0; }
const char *simclr_image_folder_class_name(const simclr_image_folder *f, int k)
{
    return f && k >= 0 && k < f->n_classes ? f->classes[k] : NULL;
}
int64_t simclr_image_folder_skipped(const simclr_image_folder *f) { return f ? f->skipped : 0; }
int simclr_image_folder_is_bad(const simclr_image_folder *f, int64_t i)
{
    return f && i >= 0 && i < f->count ? f->bad[i] : 0;
}

/* The checks load and prefetch share; fn names the caller in the message. */
static simclr_status check_indices(const simclr_image_folder *f, const int64_t *indices, int64_t n, const char *fn)
{
    if (n < 1) return simclr__img_fail(SIMCLR_E_INVALID, "%s: n %lld must be >= 1", fn, (long long)n);
    for (int64_t k = 0; k < n; k++)
        if (indices[k] < 0 || indices[k] >= f->count)
            return simclr__img_fail(SIMCLR_E_INVALID, "%s: index %lld out of range 0..%lld", fn, (long long)indices[k],
                                    (long long)f->count - 1);
    return SIMCLR_OK;
}

static void decode_task(void *user, int64_t begin, int64_t end, int worker)
{
    (void)worker;
    simclr__img_batch_decode(user, begin, end);
}

simclr_status simclr_image_folder_prefetch(simclr_image_folder *f, const int64_t *indices, int64_t n)
{
    static const char fn[] = "simclr_image_folder_prefetch";
    if (!f || !indices) return simclr__img_fail(SIMCLR_E_INVALID, "%s: folder or indices is NULL", fn);
    simclr_status st = check_indices(f, indices, n, fn);
    if (st != SIMCLR_OK) return st;
    return simclr__img_prefetch_start(&f->prefetch, f->paths, indices, n, settings_of(f), f->prefetch_threads);
}

simclr_status simclr_image_folder_load(simclr_image_folder *f, const int64_t *indices, int64_t n,
                                       simclr_image_list *list, int64_t *kept, int64_t *n_kept)
{
    static const char fn[] = "simclr_image_folder_load";
    if (!f || !indices || !list) return simclr__img_fail(SIMCLR_E_INVALID, "%s: folder, indices or list is NULL", fn);
    simclr_status st = check_indices(f, indices, n, fn);
    if (st != SIMCLR_OK) return st;
    if (simclr_image_list_channels(list) != f->channels)
        return simclr__img_fail(SIMCLR_E_SHAPE, "%s: the list holds %d-channel images, the folder decodes to %d", fn,
                                (int)simclr_image_list_channels(list), f->channels);
    /* A prefetch of exactly this batch is taken (after its threads finish);
     * any other is finished and dropped, so its threads never outlive the
     * batch they were started for. */
    simclr__img_prefetch_wait(&f->prefetch);
    int prefetched = simclr__img_prefetch_matches(&f->prefetch, indices, n, settings_of(f));
    f->prefetch.pending = 0;
    if (!prefetched) {
        st = simclr__img_batch_reserve(&f->last, n);
        if (st != SIMCLR_OK) return st;
    }
    st = simclr_image_list_clear(list);
    if (st != SIMCLR_OK) return st;
    if (prefetched) {
        /* The batch handed out before becomes the next prefetch's slots
         * (its pixels are freed as they are overwritten). */
        simclr__img_batch t = f->last;
        f->last = f->prefetch.batch, f->prefetch.batch = t;
    } else {
        simclr__img_decode_job job = {.paths = f->paths, .indices = indices, .settings = settings_of(f), .batch = &f->last};
        st = simclr_context_parallel_for(f->ctx, n, 1, decode_task, &job);
        if (st != SIMCLR_OK) return st;
    }
    const simclr__img_batch *b = &f->last;
    /* Validate, then fill the list, then commit: a failure (a fatal image,
     * a list that cannot grow) leaves kept, *n_kept and the bad marks as
     * they were and the list empty. */
    for (int64_t k = 0; k < n; k++)
        if (b->st[k] != SIMCLR_OK && (f->on_error == SIMCLR_FOLDER_FAIL || b->st[k] == SIMCLR_E_NOMEM))
            return simclr_error_set(b->st[k], b->msg[k] ? b->msg[k] : f->paths[indices[k]]);
    for (int64_t k = 0; k < n; k++) {
        if (b->st[k] != SIMCLR_OK) continue;
        st = simclr_image_list_add(list, b->px[k], b->h[k], b->w[k]);
        if (st != SIMCLR_OK) {
            simclr_image_list_clear(list);
            return st;
        }
    }
    int64_t m = 0;
    for (int64_t k = 0; k < n; k++) {
        if (b->st[k] != SIMCLR_OK) {
            if (!f->bad[indices[k]]) f->skipped++;
            f->bad[indices[k]] = 1;
            continue;
        }
        if (kept) kept[m] = indices[k];
        m++;
    }
    if (n_kept) *n_kept = m;
    return SIMCLR_OK;
}
