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

/* ---- the walk ----
 * Every folder is walked once, known by its (st_dev, st_ino): a symlink loop
 * (x -> .), a link to a parent or to a folder listed elsewhere, two links to
 * one folder or a bind mount would otherwise list the same images again and
 * again (two loops in one folder: 2^40 paths, up to the kernel's limit of 40
 * links in a path). The real folders of the whole tree (every class) are
 * walked first, then the links to folders met on the way, in the order they
 * were met: a folder with a real path in the tree is listed under it, one
 * reached only through links under the first of them. */

/* The folders walked so far: open addressing over (st_dev, st_ino), with the
 * label (class) each was walked for. */
typedef struct seen_dir {
    dev_t dev;
    ino_t ino;
    int32_t label;
    int used;
} seen_dir;

typedef struct seen_set {
    seen_dir *v;
    size_t cap, n; /* cap a power of 2, at most half full */
} seen_set;

static size_t seen_slot(const seen_set *s, dev_t dev, ino_t ino)
{
    uint64_t h = ((uint64_t)ino * UINT64_C(0x9E3779B97F4A7C15)) ^ ((uint64_t)dev * UINT64_C(0xC2B2AE3D27D4EB4F));
    size_t i = (size_t)(h ^ (h >> 31)) & (s->cap - 1);
    while (s->v[i].used && (s->v[i].dev != dev || s->v[i].ino != ino)) i = (i + 1) & (s->cap - 1);
    return i;
}

/* The folder sb describes if it was walked, else NULL. */
static const seen_dir *seen_find(const seen_set *s, const struct stat *sb)
{
    if (!s->cap) return NULL;
    const seen_dir *e = &s->v[seen_slot(s, sb->st_dev, sb->st_ino)];
    return e->used ? e : NULL;
}

/* Records a folder not yet in the set; SIMCLR_E_NOMEM naming path. */
static simclr_status seen_add(seen_set *s, const struct stat *sb, int32_t label, const char *path)
{
    if (2 * (s->n + 1) > s->cap) {
        size_t cap = s->cap ? 2 * s->cap : 64;
        seen_dir *v = cap > SIZE_MAX / sizeof *v ? NULL : calloc(cap, sizeof *v);
        if (!v) return simclr__img_fail(SIMCLR_E_NOMEM, "%s: no memory", path);
        seen_set grown = {v, cap, s->n};
        for (size_t i = 0; i < s->cap; i++)
            if (s->v[i].used) v[seen_slot(&grown, s->v[i].dev, s->v[i].ino)] = s->v[i];
        free(s->v);
        *s = grown;
    }
    s->v[seen_slot(s, sb->st_dev, sb->st_ino)] = (seen_dir){sb->st_dev, sb->st_ino, label, 1};
    s->n++;
    return SIMCLR_OK;
}

/* A folder to list (or a link to one, to follow): path malloc'ed. */
typedef struct dir_rec {
    char *path;
    int32_t label;
    int depth;
} dir_rec;

typedef struct dir_vec {
    dir_rec *v;
    size_t n, cap;
} dir_vec;

/* Appends path (taken: freed on failure); SIMCLR_E_NOMEM. */
static simclr_status dir_push(dir_vec *d, char *path, int32_t label, int depth)
{
    if (d->n == d->cap) {
        size_t cap = d->cap ? 2 * d->cap : 16;
        dir_rec *v = realloc(d->v, cap * sizeof *v);
        if (!v) {
            simclr_status st = simclr__img_fail(SIMCLR_E_NOMEM, "%s: no memory", path);
            free(path);
            return st;
        }
        d->v = v, d->cap = cap;
    }
    d->v[d->n++] = (dir_rec){path, label, depth};
    return SIMCLR_OK;
}

static void dir_vec_free(dir_vec *d)
{
    for (size_t i = 0; i < d->n; i++) free(d->v[i].path);
    free(d->v);
}

typedef struct walker {
    seen_set seen;
    dir_vec dirs;  /* the folders walked, whose images are listed */
    dir_vec links; /* links to folders, followed after the real folders */
} walker;

static void walker_free(walker *w)
{
    free(w->seen.v);
    dir_vec_free(&w->dirs);
    dir_vec_free(&w->links);
}

/* Walks path (taken), a folder not yet seen whose stat is sb, and the real
 * folders below it; the links to folders found are queued in w->links. */
static simclr_status enter(walker *w, char *path, const struct stat *sb, int32_t label, int depth)
{
    simclr_status st = SIMCLR_OK;
    if (depth > 64) st = simclr__img_fail(SIMCLR_E_FORMAT, "%s: folders nested more than 64 deep", path);
    if (st == SIMCLR_OK) st = seen_add(&w->seen, sb, label, path);
    if (st != SIMCLR_OK) {
        free(path);
        return st;
    }
    st = dir_push(&w->dirs, path, label, depth);
    if (st != SIMCLR_OK) return st;
    /* path now belongs to w->dirs, which may move but never frees it */
    char **names = NULL;
    size_t n = 0;
    st = list_dir(path, &names, &n);
    for (size_t i = 0; i < n; i++) {
        char *child = st == SIMCLR_OK ? join(path, names[i]) : NULL;
        if (st == SIMCLR_OK && !child) st = simclr__img_fail(SIMCLR_E_NOMEM, "%s: no memory", path);
        struct stat cs;
        if (child && lstat(child, &cs) == 0) {
            if (S_ISDIR(cs.st_mode)) {
                if (!seen_find(&w->seen, &cs)) st = enter(w, child, &cs, label, depth + 1), child = NULL;
            } else if (S_ISLNK(cs.st_mode) && stat(child, &cs) == 0 && S_ISDIR(cs.st_mode)) {
                st = dir_push(&w->links, child, label, depth + 1), child = NULL;
            }
        }
        free(child);
        free(names[i]);
    }
    free(names);
    return st;
}

/* Follows the queued links (and those found below them) to folders not yet
 * walked; a link to a folder already walked is skipped. */
static simclr_status follow_links(walker *w)
{
    simclr_status st = SIMCLR_OK;
    for (size_t k = 0; k < w->links.n; k++) { /* grows as links are found */
        dir_rec l = w->links.v[k];
        w->links.v[k].path = NULL;
        struct stat sb;
        if (st != SIMCLR_OK || stat(l.path, &sb) != 0 || !S_ISDIR(sb.st_mode) || seen_find(&w->seen, &sb))
            free(l.path);
        else
            st = enter(w, l.path, &sb, l.label, l.depth);
    }
    return st;
}

static int cmp_dir(const void *a, const void *b)
{
    const dir_rec *x = a, *y = b;
    if (x->label != y->label) return x->label < y->label ? -1 : 1;
    return strcmp(x->path, y->path);
}

/* Adds the images of the walked folders, class by class, in the order of
 * torchvision's make_dataset: sorted(os.walk(class_dir)) sorts the folders
 * by their full path string, and each folder's files by name. An entry
 * named like an image is listed unless it is a folder (walked as one):
 * one that is not a regular file (a FIFO, a socket, a device, a dangling
 * link) is refused when it is loaded, as an unreadable file is. */
static simclr_status list_images(simclr_image_folder *f, walker *w)
{
    if (w->dirs.n > 1) qsort(w->dirs.v, w->dirs.n, sizeof *w->dirs.v, cmp_dir);
    simclr_status st = SIMCLR_OK;
    for (size_t k = 0; k < w->dirs.n && st == SIMCLR_OK; k++) {
        const char *d = w->dirs.v[k].path;
        char **names = NULL;
        size_t n = 0;
        st = list_dir(d, &names, &n);
        for (size_t i = 0; i < n; i++) {
            if (st == SIMCLR_OK && has_image_extension(names[i])) {
                char *path = join(d, names[i]);
                struct stat sb;
                if (!path) st = simclr__img_fail(SIMCLR_E_NOMEM, "%s: no memory", d);
                else if (stat(path, &sb) == 0 && S_ISDIR(sb.st_mode)) free(path);
                else st = add_path(f, path, w->dirs.v[k].label);
            }
            free(names[i]);
        }
        free(names);
    }
    return st;
}

/* labels = 1: the classes are root's subfolders (links to folders
 * included, a link to root itself skipped), in sorted order; each is walked
 * (the real ones first) and must not be a folder another class holds. */
static simclr_status walk_classes(simclr_image_folder *f, walker *w, const char *root, const struct stat *root_sb)
{
    simclr_status st = seen_add(&w->seen, root_sb, -1, root);
    char **names = NULL;
    size_t n = 0;
    if (st == SIMCLR_OK) st = list_dir(root, &names, &n);
    if (st != SIMCLR_OK) return st;
    if (!(f->classes = calloc(n ? n : 1, sizeof *f->classes)))
        st = simclr__img_fail(SIMCLR_E_NOMEM, "simclr_image_folder_open: no memory");
    for (size_t i = 0; i < n; i++) {
        char *path = st == SIMCLR_OK ? join(root, names[i]) : NULL;
        if (st == SIMCLR_OK && !path) st = simclr__img_fail(SIMCLR_E_NOMEM, "%s: no memory", root);
        struct stat sb;
        if (path && stat(path, &sb) == 0 && S_ISDIR(sb.st_mode) &&
            !(sb.st_dev == root_sb->st_dev && sb.st_ino == root_sb->st_ino))
            f->classes[f->n_classes++] = names[i], names[i] = NULL;
        free(path);
        free(names[i]);
    }
    free(names);
    for (int pass = 0; pass < 2; pass++) /* the real folders, then the links */
        for (int k = 0; k < f->n_classes && st == SIMCLR_OK; k++) {
            char *path = join(root, f->classes[k]);
            struct stat sb;
            if (!path) {
                st = simclr__img_fail(SIMCLR_E_NOMEM, "%s: no memory", root);
            } else if (lstat(path, &sb) != 0 || (S_ISDIR(sb.st_mode) ? 0 : 1) != pass) {
                free(path);
            } else if (stat(path, &sb) != 0 || !S_ISDIR(sb.st_mode)) {
                st = simclr__img_fail(SIMCLR_E_IO, "%s: the class folder changed while it was listed", path);
                free(path);
            } else {
                const seen_dir *again = seen_find(&w->seen, &sb);
                if (again) {
                    st = simclr__img_fail(SIMCLR_E_FORMAT,
                                          "%s: class folder '%s' is a folder already listed under class '%s' (a link?): "
                                          "each folder is listed once",
                                          root, f->classes[k], again->label >= 0 ? f->classes[again->label] : "(none)");
                    free(path);
                } else {
                    st = enter(w, path, &sb, k, 0);
                }
            }
        }
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
    walker w = {0};
    char *top = NULL;
    simclr_status st = labels ? walk_classes(f, &w, root, &sb)
                     : !(top = strdup(root)) ? simclr__img_fail(SIMCLR_E_NOMEM, "%s: no memory", fn)
                                             : enter(&w, top, &sb, -1, 0);
    if (st == SIMCLR_OK) st = follow_links(&w);
    if (st == SIMCLR_OK) st = list_images(f, &w);
    walker_free(&w);
    if (st == SIMCLR_OK && labels) {
        if (f->n_classes == 0)
            st = simclr__img_fail(SIMCLR_E_FORMAT,
                                  "%s: no class subfolders (labels come from subfolder names: root/CLASS/image.jpg)",
                                  root);
        /* the first class (in order) without an image */
        for (int k = 0, i = 0; st == SIMCLR_OK && k < f->n_classes; k++) {
            while (i < f->count && f->labels[i] < k) i++;
            if (i == f->count || f->labels[i] != k)
                st = simclr__img_fail(SIMCLR_E_FORMAT, "%s: class folder '%s' holds no .png/.jpg/.jpeg image", root,
                                      f->classes[k]);
        }
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
