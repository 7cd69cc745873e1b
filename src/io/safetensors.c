/* safetensors export/import under torchvision names.
 *
 * The format: an 8-byte little-endian header length N, N bytes of JSON
 * ({"name": {"dtype": "F32", "shape": [..], "data_offsets": [begin, end]},
 * "__metadata__": {string: string}}), then the data buffer; offsets are
 * relative to the buffer. Writers pad the JSON with spaces so the buffer
 * starts 8-byte aligned, and the buffer is covered by the tensors without
 * holes; tensors are ordered by element size (largest first), then name, so
 * each one is naturally aligned. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../model/linear_head.h"
#include "../model/module.h"
#include "file.h"

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "safetensors data is little-endian: add byte swapping for this host"
#endif

#define ST_MAX_HEADER (100u << 20) /* the reference implementation's limit */
#define ST_MAX_DIMS 8

static int is_nbt(const char *name)
{
    static const char suffix[] = "num_batches_tracked";
    size_t n = strlen(name), s = sizeof suffix - 1;
    return n >= s && strcmp(name + n - s, suffix) == 0;
}

/* ---- export ------------------------------------------------------------- */

typedef struct sbuf {
    simclr_context *ctx;
    char *p;
    size_t len, cap;
    int oom;
} sbuf;

static void sb_put(sbuf *b, const char *s, size_t n)
{
    if (b->oom) return;
    if (b->len + n + 1 > b->cap) {
        size_t cap = (b->len + n + 1) * 2;
        char *p = simclr__malloc(b->ctx, cap);
        if (!p) {
            b->oom = 1;
            return;
        }
        if (b->len) memcpy(p, b->p, b->len);
        simclr__free(b->ctx, b->p);
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

static void sb_str(sbuf *b, const char *s) { sb_put(b, s, strlen(s)); }

static void sb_printf(sbuf *b, const char *fmt, ...) SIMCLR__PRINTF(2, 3);
static void sb_printf(sbuf *b, const char *fmt, ...)
{
    char tmp[128];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    if (n > 0) sb_put(b, tmp, (size_t)n < sizeof tmp ? (size_t)n : sizeof tmp - 1);
}

static void sb_json_string(sbuf *b, const char *s)
{
    sb_put(b, "\"", 1);
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\') {
            char e[2] = {'\\', (char)c};
            sb_put(b, e, 2);
        } else if (c < 0x20) {
            sb_printf(b, "\\u%04x", c);
        } else {
            sb_put(b, (const char *)&c, 1);
        }
    }
    sb_put(b, "\"", 1);
}

/* The architecture as separate metadata entries (every value a string, as
 * the safetensors format requires), from the module's architecture string
 * "NAME key=value ...": "resnet18 width=32 in=3 stem=cifar" gives
 * "simclr.arch": "resnet18", "simclr.depth": "18", "simclr.width": "32",
 * "simclr.in_channels": "3", "simclr.stem": "cifar". The short keys of the
 * string get their constructor argument's name. */
static void sb_arch_metadata(sbuf *b, const char *arch)
{
    static const struct { const char *key, *name; } names[] = {
        {"in", "in_channels"}, {"d", "hidden_dim"}, {"image", "image_size"}, {"patch", "patch_size"},
        {"mlp", "mlp_dim"},    {"hidden", "hidden_dim"}, {"out", "out_dim"}, {"layers", "n_layers"},
        {"bn", "batch_norm"}};
    size_t n = strcspn(arch, " ");
    char word[64];
    snprintf(word, sizeof word, "%.*s", (int)(n < sizeof word ? n : sizeof word - 1), arch);
    int head = strncmp(word, "mlp_head", 8) == 0 || strncmp(word, "linear_head", 11) == 0;
    sb_str(b, ",\"simclr.arch\":");
    sb_json_string(b, word);
    if (strncmp(word, "resnet", 6) == 0 && word[6]) {
        sb_str(b, ",\"simclr.depth\":");
        sb_json_string(b, word + 6);
    }
    for (const char *s = arch + n; *s;) {
        s += strspn(s, " ");
        size_t len = strcspn(s, " "), k = strcspn(s, "=");
        if (len == 0) break;
        if (k < len && k > 0 && k < 32) {
            char key[32], val[64];
            snprintf(key, sizeof key, "%.*s", (int)k, s);
            snprintf(val, sizeof val, "%.*s", (int)(len - k - 1 < sizeof val ? len - k - 1 : sizeof val - 1), s + k + 1);
            const char *name = key;
            for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
                if (strcmp(key, names[i].key) == 0) name = head && strcmp(key, "in") == 0 ? "in_dim" : names[i].name;
            char full[48];
            snprintf(full, sizeof full, "simclr.%s", name);
            sb_put(b, ",", 1);
            sb_json_string(b, full);
            sb_put(b, ":", 1);
            sb_json_string(b, val);
        }
        s += len;
    }
}

/* num_batches_tracked is an F32 [1] buffer here and an I64 0-dim tensor in torch. */
static int as_i64(const simclr__param *p) { return is_nbt(p->name) && p->value->numel == 1; }
static size_t elem_size(const simclr__param *p) { return as_i64(p) ? 8 : 4; }

/* One tensor of a file: its name there and the module's tensor. */
typedef struct st_item {
    const char *name;
    const simclr__param *p;
} st_item;

/* Writes items[0 .. n) with the metadata of the module whose architecture is
 * arch (and extra, already JSON: ',"key":"value"...', may be ""). */
static simclr_status export_items(simclr_context *ctx, const char *fn, const char *path, const st_item *items, int n,
                                  const char *arch, const char *extra)
{
    int *order = simclr__malloc(ctx, (size_t)(n ? n : 1) * sizeof *order);
    if (!order) return simclr__nomem(fn, (size_t)n * sizeof *order);
    /* Insertion sort: a few hundred tensors. */
    for (int i = 0; i < n; i++) {
        int j = i;
        while (j > 0) {
            const st_item *a = &items[order[j - 1]], *b = &items[i];
            size_t sa = elem_size(a->p), sb = elem_size(b->p);
            if (sa > sb || (sa == sb && strcmp(a->name, b->name) < 0)) break;
            order[j] = order[j - 1];
            j--;
        }
        order[j] = i;
    }
    sbuf b = {ctx, NULL, 0, 0, 0};
    sb_put(&b, "{\"__metadata__\":{\"format\":\"pt\",\"simclr_arch\":", 45);
    sb_json_string(&b, arch);
    sb_arch_metadata(&b, arch);
    sb_str(&b, extra);
    sb_str(&b, ",\"simclr.version\":");
    sb_json_string(&b, simclr_version_string());
    sb_put(&b, "}", 1);
    uint64_t off = 0;
    for (int k = 0; k < n; k++) {
        const simclr__param *p = items[order[k]].p;
        int nbt = as_i64(p);
        uint64_t bytes = (uint64_t)p->value->numel * (nbt ? 8 : 4);
        sb_put(&b, ",", 1);
        sb_json_string(&b, items[order[k]].name);
        sb_printf(&b, ":{\"dtype\":\"%s\",\"shape\":[", nbt ? "I64" : "F32");
        /* torchvision's num_batches_tracked is a 0-dim tensor. */
        for (int i = 0; !nbt && i < p->value->ndim; i++) sb_printf(&b, i ? ",%lld" : "%lld", (long long)p->value->dims[i]);
        sb_printf(&b, "],\"data_offsets\":[%llu,%llu]}", (unsigned long long)off, (unsigned long long)(off + bytes));
        off += bytes;
    }
    sb_put(&b, "}", 1);
    while (!b.oom && (8 + b.len) % 8 != 0) sb_put(&b, " ", 1);
    if (b.oom) {
        simclr__free(ctx, b.p);
        simclr__free(ctx, order);
        return simclr__nomem(fn, b.len * 2);
    }
    simclr__afile af;
    simclr_status st = simclr__afile_open(ctx, fn, path, &af);
    if (st != SIMCLR_OK) {
        simclr__free(ctx, b.p);
        simclr__free(ctx, order);
        return st;
    }
    unsigned char h[8];
    simclr__put_u64(h, b.len);
    st = simclr__afile_write(&af, h, 8);
    if (st == SIMCLR_OK) st = simclr__afile_write(&af, b.p, b.len);
    for (int k = 0; k < n && st == SIMCLR_OK; k++) {
        const simclr__param *p = items[order[k]].p;
        if (as_i64(p)) {
            float v = simclr__f32(p->value)[0];
            int64_t iv = v >= 0 && v < 9.2e18f ? (int64_t)(v + 0.5f) : 0;
            unsigned char le[8];
            simclr__put_u64(le, (uint64_t)iv);
            st = simclr__afile_write(&af, le, 8);
        } else {
            /* F32 little-endian: the host order on every supported target. */
            st = simclr__afile_write(&af, p->value->data, simclr_tensor_bytes(p->value));
        }
    }
    simclr__free(ctx, b.p);
    simclr__free(ctx, order);
    if (st != SIMCLR_OK) {
        simclr__afile_abort(&af);
        return st;
    }
    return simclr__afile_commit(&af);
}

simclr_status simclr_module_export_safetensors(const simclr_module *m, const char *path)
{
    static const char fn[] = "simclr_module_export_safetensors";
    SIMCLR__CHECK_ARG(m, fn, "module is NULL");
    SIMCLR__CHECK_ARG(path, fn, "path is NULL");
    st_item *items = simclr__malloc(m->ctx, (size_t)(m->n_params ? m->n_params : 1) * sizeof *items);
    if (!items) return simclr__nomem(fn, (size_t)m->n_params * sizeof *items);
    for (int i = 0; i < m->n_params; i++) items[i] = (st_item){m->params[i].name, &m->params[i]};
    simclr_status st = export_items(m->ctx, fn, path, items, m->n_params, m->arch, "");
    simclr__free(m->ctx, items);
    return st;
}

simclr_status simclr_export_classifier_safetensors(const simclr_module *encoder, const simclr_module *head,
                                                   const char *path)
{
    static const char fn[] = "simclr_export_classifier_safetensors";
    SIMCLR__CHECK_ARG(encoder, fn, "encoder is NULL");
    SIMCLR__CHECK_ARG(head, fn, "head is NULL");
    SIMCLR__CHECK_ARG(path, fn, "path is NULL");
    if (!simclr__is_linear_head(head))
        return simclr__fail(SIMCLR_E_INVALID, "%s: the head '%s' is not a linear head from simclr_linear_head_create",
                            fn, head->arch);
    /* torchvision's classifier names after each encoder kind */
    const char *w_name, *b_name;
    if (strcmp(encoder->ops->kind, "resnet") == 0) {
        w_name = "fc.weight", b_name = "fc.bias";
    } else if (strcmp(encoder->ops->kind, "vit") == 0) {
        w_name = "heads.head.weight", b_name = "heads.head.bias";
    } else {
        return simclr__fail(SIMCLR_E_INVALID, "%s: the encoder '%s' is neither a ResNet nor a ViT", fn, encoder->arch);
    }
    if (head->in_dim != encoder->out_dim)
        return simclr__fail(SIMCLR_E_SHAPE, "%s: the head '%s' takes %lld features, the encoder '%s' gives %lld", fn,
                            head->arch, (long long)head->in_dim, encoder->arch, (long long)encoder->out_dim);
    simclr_context *ctx = encoder->ctx;
    int n = encoder->n_params + head->n_params;
    st_item *items = simclr__malloc(ctx, (size_t)n * sizeof *items);
    if (!items) return simclr__nomem(fn, (size_t)n * sizeof *items);
    for (int i = 0; i < encoder->n_params; i++) items[i] = (st_item){encoder->params[i].name, &encoder->params[i]};
    for (int i = 0; i < head->n_params; i++) {
        const simclr__param *p = &head->params[i];
        items[encoder->n_params + i] = (st_item){strcmp(p->name, "fc.weight") == 0 ? w_name : b_name, p};
    }
    sbuf extra = {ctx, NULL, 0, 0, 0};
    sb_printf(&extra, ",\"simclr.classes\":\"%lld\",\"simclr.head\":", (long long)head->out_dim);
    sb_json_string(&extra, head->arch);
    simclr_status st = extra.oom ? simclr__nomem(fn, extra.len * 2)
                                 : export_items(ctx, fn, path, items, n, encoder->arch, extra.p);
    simclr__free(ctx, extra.p);
    simclr__free(ctx, items);
    return st;
}

/* ---- import ------------------------------------------------------------- */

typedef struct st_entry {
    char name[256];
    char dtype[16];
    int ndim;
    uint64_t dims[ST_MAX_DIMS];
    uint64_t begin, end;
} st_entry;

typedef struct jparser {
    const char *s, *end, *base;
    const char *fn, *path;
    simclr_status st; /* first error */
} jparser;

static int jfail(jparser *j, const char *what)
{
    if (j->st == SIMCLR_OK)
        j->st = simclr__fail(SIMCLR_E_FORMAT, "%s: '%s': bad safetensors header: %s at JSON byte %ld", j->fn, j->path,
                             what, (long)(j->s - j->base));
    return 0;
}

static void jws(jparser *j)
{
    while (j->s < j->end && (*j->s == ' ' || *j->s == '\t' || *j->s == '\n' || *j->s == '\r')) j->s++;
}

static int jlit(jparser *j, char c)
{
    jws(j);
    if (j->s < j->end && *j->s == c) {
        j->s++;
        return 1;
    }
    return 0;
}

static int hexval(char c)
{
    return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
}

/* A JSON string into out (UTF-8, NUL-terminated, at most cap-1 bytes);
 * out NULL just skips it. */
static int jstring(jparser *j, char *out, size_t cap)
{
    size_t n = 0;
    if (!jlit(j, '"')) return jfail(j, "expected a string");
    for (;;) {
        if (j->s >= j->end) return jfail(j, "unterminated string");
        unsigned char c = (unsigned char)*j->s++;
        uint32_t cp = c;
        if (c == '"') break;
        if (c < 0x20) return jfail(j, "control character in a string");
        if (c == '\\') {
            if (j->s >= j->end) return jfail(j, "unterminated escape");
            char e = *j->s++;
            switch (e) {
            case '"': case '\\': case '/': cp = (unsigned char)e; break;
            case 'b': cp = '\b'; break;
            case 'f': cp = '\f'; break;
            case 'n': cp = '\n'; break;
            case 'r': cp = '\r'; break;
            case 't': cp = '\t'; break;
            case 'u': {
                cp = 0;
                if (j->end - j->s < 4) return jfail(j, "short \\u escape");
                for (int i = 0; i < 4; i++) {
                    int h = hexval(j->s[i]);
                    if (h < 0) return jfail(j, "bad \\u escape");
                    cp = cp * 16 + (uint32_t)h;
                }
                j->s += 4;
                if (cp >= 0xd800 && cp < 0xdc00) { /* a surrogate pair */
                    uint32_t lo = 0;
                    if (j->end - j->s < 6 || j->s[0] != '\\' || j->s[1] != 'u') return jfail(j, "lone surrogate");
                    for (int i = 0; i < 4; i++) {
                        int h = hexval(j->s[2 + i]);
                        if (h < 0) return jfail(j, "bad \\u escape");
                        lo = lo * 16 + (uint32_t)h;
                    }
                    if (lo < 0xdc00 || lo > 0xdfff) return jfail(j, "lone surrogate");
                    j->s += 6;
                    cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
                } else if (cp >= 0xdc00 && cp < 0xe000) {
                    return jfail(j, "lone surrogate");
                }
                if (cp == 0) return jfail(j, "NUL in a string");
                break;
            }
            default: return jfail(j, "unknown escape");
            }
        }
        if (!out) continue;
        unsigned char u[4];
        size_t k;
        if (c != '\\' || cp < 0x80) u[0] = (unsigned char)cp, k = 1;
        else if (cp < 0x800) u[0] = (unsigned char)(0xc0 | (cp >> 6)), u[1] = (unsigned char)(0x80 | (cp & 0x3f)), k = 2;
        else if (cp < 0x10000)
            u[0] = (unsigned char)(0xe0 | (cp >> 12)), u[1] = (unsigned char)(0x80 | ((cp >> 6) & 0x3f)),
            u[2] = (unsigned char)(0x80 | (cp & 0x3f)), k = 3;
        else
            u[0] = (unsigned char)(0xf0 | (cp >> 18)), u[1] = (unsigned char)(0x80 | ((cp >> 12) & 0x3f)),
            u[2] = (unsigned char)(0x80 | ((cp >> 6) & 0x3f)), u[3] = (unsigned char)(0x80 | (cp & 0x3f)), k = 4;
        if (n + k >= cap) return jfail(j, "string too long");
        memcpy(out + n, u, k);
        n += k;
    }
    if (out) out[n] = '\0';
    return 1;
}

static int juint(jparser *j, uint64_t *v)
{
    jws(j);
    if (j->s >= j->end || *j->s < '0' || *j->s > '9') return jfail(j, "expected a non-negative integer");
    uint64_t x = 0;
    while (j->s < j->end && *j->s >= '0' && *j->s <= '9') {
        unsigned d = (unsigned)(*j->s++ - '0');
        if (x > (UINT64_MAX - d) / 10) return jfail(j, "integer overflow");
        x = x * 10 + d;
    }
    if (j->s < j->end && (*j->s == '.' || *j->s == 'e' || *j->s == 'E')) return jfail(j, "expected an integer");
    *v = x;
    return 1;
}

/* Skips any JSON value (for __metadata__ and unknown keys). */
static int jskip(jparser *j, int depth)
{
    if (depth > 32) return jfail(j, "nesting too deep");
    jws(j);
    if (j->s >= j->end) return jfail(j, "unexpected end");
    char c = *j->s;
    if (c == '"') return jstring(j, NULL, 0);
    if (c == '{' || c == '[') {
        char close = c == '{' ? '}' : ']';
        j->s++;
        if (jlit(j, close)) return 1;
        do {
            if (c == '{' && (!jstring(j, NULL, 0) || (!jlit(j, ':') && !jfail(j, "expected ':'")))) return 0;
            if (!jskip(j, depth + 1)) return 0;
        } while (jlit(j, ','));
        return jlit(j, close) ? 1 : jfail(j, "expected ',' or a closing bracket");
    }
    static const char *lits[] = {"true", "false", "null"};
    for (int i = 0; i < 3; i++) {
        size_t n = strlen(lits[i]);
        if ((size_t)(j->end - j->s) >= n && memcmp(j->s, lits[i], n) == 0) {
            j->s += n;
            return 1;
        }
    }
    if (c == '-' || (c >= '0' && c <= '9')) {
        j->s++;
        while (j->s < j->end && strchr("0123456789.eE+-", *j->s)) j->s++;
        return 1;
    }
    return jfail(j, "unexpected character");
}

static int jtensor(jparser *j, st_entry *e)
{
    int have_dtype = 0, have_shape = 0, have_off = 0;
    if (!jlit(j, '{')) return jfail(j, "expected a tensor object");
    if (jlit(j, '}')) return jfail(j, "empty tensor object");
    do {
        char key[32];
        if (!jstring(j, key, sizeof key)) return 0;
        if (!jlit(j, ':')) return jfail(j, "expected ':'");
        if (strcmp(key, "dtype") == 0) {
            if (!jstring(j, e->dtype, sizeof e->dtype)) return 0;
            have_dtype = 1;
        } else if (strcmp(key, "shape") == 0) {
            e->ndim = 0;
            if (!jlit(j, '[')) return jfail(j, "expected a shape array");
            if (!jlit(j, ']')) {
                do {
                    if (e->ndim == ST_MAX_DIMS) return jfail(j, "too many dimensions");
                    if (!juint(j, &e->dims[e->ndim++])) return 0;
                } while (jlit(j, ','));
                if (!jlit(j, ']')) return jfail(j, "expected ']'");
            }
            have_shape = 1;
        } else if (strcmp(key, "data_offsets") == 0) {
            if (!jlit(j, '[') || !juint(j, &e->begin) || !jlit(j, ',') || !juint(j, &e->end) || !jlit(j, ']'))
                return jfail(j, "data_offsets must be [begin, end]");
            have_off = 1;
        } else if (!jskip(j, 1)) {
            return 0;
        }
    } while (jlit(j, ','));
    if (!jlit(j, '}')) return jfail(j, "expected '}'");
    if (!have_dtype || !have_shape || !have_off) return jfail(j, "a tensor lacks dtype, shape or data_offsets");
    return 1;
}

static int dtype_bytes(const char *d)
{
    static const struct { const char *name; int size; } t[] = {
        {"BOOL", 1}, {"U8", 1}, {"I8", 1}, {"F8_E5M2", 1}, {"F8_E4M3", 1}, {"I16", 2}, {"U16", 2}, {"F16", 2},
        {"BF16", 2}, {"I32", 4}, {"U32", 4}, {"F32", 4}, {"F64", 8}, {"I64", 8}, {"U64", 8}};
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++)
        if (strcmp(d, t[i].name) == 0) return t[i].size;
    return 0;
}

static int by_offsets(const void *a, const void *b)
{
    const st_entry *x = *(const st_entry *const *)a, *y = *(const st_entry *const *)b;
    if (x->begin != y->begin) return x->begin < y->begin ? -1 : 1;
    if (x->end != y->end) return x->end < y->end ? -1 : 1;
    return 0;
}

static int by_name(const void *a, const void *b)
{
    return strcmp((*(const st_entry *const *)a)->name, (*(const st_entry *const *)b)->name);
}

/* The data buffer must be exactly the tensors laid end to end, as the
 * reference implementation requires: in offset order the first starts at 0,
 * each starts where the one before ends (no overlap, no hole), the last ends
 * at the end of the file (no unindexed trailing bytes); and no name twice.
 * Sorting keeps this O(k log k) for headers of many entries. */
static simclr_status check_layout(simclr_context *ctx, const char *fn, const char *path, st_entry *e, int k,
                                  uint64_t data_len)
{
    st_entry **v = simclr__malloc(ctx, (size_t)(k ? k : 1) * sizeof *v);
    if (!v) return simclr__nomem(fn, (size_t)k * sizeof *v);
    for (int i = 0; i < k; i++) v[i] = &e[i];
    simclr_status st = SIMCLR_OK;
    qsort(v, (size_t)k, sizeof *v, by_name);
    for (int i = 1; i < k && st == SIMCLR_OK; i++)
        if (strcmp(v[i - 1]->name, v[i]->name) == 0)
            st = simclr__fail(SIMCLR_E_FORMAT, "%s: '%s': tensor '%s' appears twice", fn, path, v[i]->name);
    if (st == SIMCLR_OK) qsort(v, (size_t)k, sizeof *v, by_offsets);
    uint64_t at = 0;
    for (int i = 0; i < k && st == SIMCLR_OK; i++) {
        if (v[i]->begin > at)
            st = simclr__fail(SIMCLR_E_FORMAT, "%s: '%s': %llu unindexed data bytes before tensor '%s' (offset %llu)", fn,
                              path, (unsigned long long)(v[i]->begin - at), v[i]->name,
                              (unsigned long long)v[i]->begin);
        else if (v[i]->begin < at)
            st = simclr__fail(SIMCLR_E_FORMAT, "%s: '%s': tensor '%s' [%llu, %llu] overlaps tensor '%s'", fn, path,
                              v[i]->name, (unsigned long long)v[i]->begin, (unsigned long long)v[i]->end,
                              v[i - 1]->name);
        else
            at = v[i]->end;
    }
    if (st == SIMCLR_OK && at != data_len)
        st = simclr__fail(SIMCLR_E_FORMAT, "%s: '%s': %llu bytes after the last tensor are not indexed by the header",
                          fn, path, (unsigned long long)(data_len - at));
    simclr__free(ctx, v);
    return st;
}

/* Parses the header into a new entry array (*out, *count) and checks every
 * entry's offsets and size against the data buffer of data_len bytes. */
static simclr_status parse_header(simclr_context *ctx, const char *fn, const char *path, const char *h, size_t n,
                                  uint64_t data_len, st_entry **out, int *count)
{
    jparser j = {h, h + n, h, fn, path, SIMCLR_OK};
    /* Upper bound on entries: each takes more than 30 header bytes. */
    size_t cap = n / 30 + 1;
    st_entry *e = simclr__malloc(ctx, cap * sizeof *e);
    if (!e) return simclr__nomem(fn, cap * sizeof *e);
    int k = 0, ok = jlit(&j, '{') || jfail(&j, "expected '{'");
    if (ok && !jlit(&j, '}')) {
        do {
            char name[256];
            if (!(ok = jstring(&j, name, sizeof name))) break;
            if (!(ok = jlit(&j, ':') || jfail(&j, "expected ':'"))) break;
            if (strcmp(name, "__metadata__") == 0) {
                if (!(ok = jskip(&j, 1))) break;
                continue;
            }
            if ((size_t)k == cap) {
                ok = jfail(&j, "too many tensors");
                break;
            }
            memset(&e[k], 0, sizeof e[k]);
            memcpy(e[k].name, name, sizeof name);
            if (!(ok = jtensor(&j, &e[k]))) break;
            k++;
        } while (jlit(&j, ','));
        if (ok) ok = jlit(&j, '}') || jfail(&j, "expected ',' or '}'");
    }
    if (ok) {
        jws(&j);
        if (j.s != j.end) ok = jfail(&j, "trailing characters after the header object");
    }
    if (!ok) {
        simclr__free(ctx, e);
        return j.st;
    }
    simclr_status st = SIMCLR_OK;
    for (int i = 0; i < k && st == SIMCLR_OK; i++) {
        uint64_t numel = 1, sz = (uint64_t)dtype_bytes(e[i].dtype);
        for (int d = 0; d < e[i].ndim; d++)
            numel = e[i].dims[d] && numel > UINT64_MAX / e[i].dims[d] ? UINT64_MAX : numel * e[i].dims[d];
        if (e[i].begin > e[i].end)
            st = simclr__fail(SIMCLR_E_FORMAT, "%s: '%s': tensor '%s': data_offsets [%llu, %llu] end before they begin",
                              fn, path, e[i].name, (unsigned long long)e[i].begin, (unsigned long long)e[i].end);
        else if (e[i].end > data_len)
            st = simclr__fail(SIMCLR_E_FORMAT, "%s: '%s': tensor '%s': data_offsets [%llu, %llu] outside the %llu-byte data",
                              fn, path, e[i].name, (unsigned long long)e[i].begin, (unsigned long long)e[i].end,
                              (unsigned long long)data_len);
        else if (sz && (numel > UINT64_MAX / sz || numel * sz != e[i].end - e[i].begin))
            st = simclr__fail(SIMCLR_E_FORMAT, "%s: '%s': tensor '%s': %llu data bytes do not match its %s shape", fn,
                              path, e[i].name, (unsigned long long)(e[i].end - e[i].begin), e[i].dtype);
        /* The data of every tensor starts at a multiple of its element size
         * counted from the start of the file, as writers pad the header. */
        else if (sz && (8 + n + e[i].begin) % sz != 0)
            st = simclr__fail(SIMCLR_E_FORMAT, "%s: '%s': tensor '%s' (%s) starts at file offset %llu, not a multiple of %llu",
                              fn, path, e[i].name, e[i].dtype, (unsigned long long)(8 + n + e[i].begin),
                              (unsigned long long)sz);
    }
    if (st == SIMCLR_OK) st = check_layout(ctx, fn, path, e, k, data_len);
    if (st != SIMCLR_OK) {
        simclr__free(ctx, e);
        return st;
    }
    *out = e;
    *count = k;
    return SIMCLR_OK;
}

static const st_entry *find_entry(const st_entry *e, int n, const char *name)
{
    for (int i = 0; i < n; i++)
        if (strcmp(e[i].name, name) == 0) return &e[i];
    return NULL;
}

/* Checks one module tensor against its file entry. */
static simclr_status check_param(const char *fn, const char *path, const simclr__param *p, const st_entry *e)
{
    const simclr_tensor *t = p->value;
    if (!e) return simclr__fail(SIMCLR_E_FORMAT, "%s: '%s' has no tensor '%s'", fn, path, p->name);
    int nbt = as_i64(p);
    int dtype_ok = strcmp(e->dtype, "F32") == 0 || (nbt && strcmp(e->dtype, "I64") == 0);
    if (!dtype_ok)
        return simclr__fail(SIMCLR_E_FORMAT, "%s: '%s': tensor '%s' is %s, expected F32%s", fn, path, p->name,
                            e->dtype, nbt ? " or I64" : "");
    int same = e->ndim == t->ndim;
    for (int i = 0; same && i < t->ndim; i++) same = e->dims[i] == (uint64_t)t->dims[i];
    if (nbt && e->ndim == 0) same = 1; /* torch's 0-dim scalar */
    if (!same) {
        char a[128], b[96];
        size_t k = (size_t)snprintf(a, sizeof a, "[");
        for (int i = 0; i < e->ndim && k < sizeof a; i++)
            k += (size_t)snprintf(a + k, sizeof a - k, i ? ", %llu" : "%llu", (unsigned long long)e->dims[i]);
        if (k < sizeof a) snprintf(a + k, sizeof a - k, "]");
        return simclr__fail(SIMCLR_E_SHAPE, "%s: '%s': tensor '%s' has shape %s, the module's is %s", fn, path,
                            p->name, a, simclr__shape_str(t, b, sizeof b));
    }
    return SIMCLR_OK;
}

simclr_status simclr_module_import_safetensors(simclr_module *m, const char *path)
{
    static const char fn[] = "simclr_module_import_safetensors";
    SIMCLR__CHECK_ARG(m, fn, "module is NULL");
    SIMCLR__CHECK_ARG(path, fn, "path is NULL");
    unsigned char *d = NULL;
    size_t len = 0;
    SIMCLR__TRY(simclr__read_file(m->ctx, fn, path, 0, &d, &len));
    simclr_status st = SIMCLR_OK;
    uint64_t hlen = len >= 8 ? simclr__get_u64(d) : 0;
    if (len < 8)
        st = simclr__fail(SIMCLR_E_FORMAT, "%s: '%s' is too short for a safetensors file (%zu bytes)", fn, path, len);
    else if (hlen < 2 || hlen > ST_MAX_HEADER || hlen > len - 8)
        st = simclr__fail(SIMCLR_E_FORMAT, "%s: '%s': header length %llu does not fit the %zu-byte file", fn, path,
                          (unsigned long long)hlen, len);
    st_entry *e = NULL;
    int n = 0;
    if (st == SIMCLR_OK)
        st = parse_header(m->ctx, fn, path, (const char *)d + 8, (size_t)hlen, len - 8 - hlen, &e, &n);
    for (int i = 0; i < m->n_params && st == SIMCLR_OK; i++)
        st = check_param(fn, path, &m->params[i], find_entry(e, n, m->params[i].name));
    if (st == SIMCLR_OK) {
        const unsigned char *data = d + 8 + hlen;
        for (int i = 0; i < m->n_params; i++) {
            const simclr__param *p = &m->params[i];
            const st_entry *s = find_entry(e, n, p->name);
            if (strcmp(s->dtype, "I64") == 0) {
                simclr__f32(p->value)[0] = (float)(int64_t)simclr__get_u64(data + s->begin);
            } else {
                memcpy(p->value->data, data + s->begin, simclr_tensor_bytes(p->value));
            }
        }
        /* Extras (a classifier's fc.*) are skipped data: say so. */
        if (n > m->n_params)
            simclr__log(m->ctx, SIMCLR_LOG_INFO, "%s: '%s': %d tensors the module does not have were ignored", fn, path,
                        n - m->n_params);
    }
    simclr__free(m->ctx, e);
    simclr__free(m->ctx, d);
    return st;
}
