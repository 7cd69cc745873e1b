/* Checkpoints and safetensors: the container round trip, module save/load
 * (bit-exact, arch and shape checks, nothing changed on error), every
 * truncation and bit flip of a checkpoint, atomic saves that leave the old
 * file on failure, allocation-failure sweeps, and safetensors export/import. */
#include <dirent.h>
#include <sys/stat.h>
#include <unistd.h>

#include "test_util.h"
#include "io/ckpt.h"
#include "model/module.h"

static char dir[64];

static void tpath(char *out, const char *name) { snprintf(out, 256, "%s/%s", dir, name); }

static unsigned char *read_bytes(const char *path, size_t *n)
{
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    fseek(f, 0, SEEK_END);
    *n = (size_t)ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *d = malloc(*n ? *n : 1);
    assert_int_equal(fread(d, 1, *n, f), *n);
    fclose(f);
    return d;
}

static void write_bytes(const char *path, const void *d, size_t n)
{
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(d, 1, n, f), n);
    fclose(f);
}

/* Number of directory entries containing ".tmp." (leftover temporaries). */
static int count_temps(void)
{
    DIR *d = opendir(dir);
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d))) n += strstr(e->d_name, ".tmp.") != NULL;
    closedir(d);
    return n;
}

/* A dummy module with torchvision-like names: no forward needed here. */
static const simclr__module_ops dummy_ops = {"dummy", NULL, NULL, NULL};

static simclr_module *dummy(simclr_context *ctx, const char *arch, int64_t d, int64_t in, int with_extra, uint64_t seed)
{
    simclr_module *m;
    CHECK_OK(simclr__module_new(ctx, &dummy_ops, arch, &m));
    int64_t w[4] = {d, in, 3, 3}, v[1] = {d}, one[1] = {1};
    simclr_tensor *t;
    CHECK_OK(simclr__module_new_param(m, "conv1.weight", 4, w, 0, &t));
    test_fill(simclr__f32(t), t->numel, seed);
    CHECK_OK(simclr__module_new_param(m, "bn1.weight", 1, v, SIMCLR_PARAM_NO_DECAY, &t));
    test_fill(simclr__f32(t), t->numel, seed + 1);
    CHECK_OK(simclr__module_new_param(m, "bn1.bias", 1, v, SIMCLR_PARAM_NO_DECAY, &t));
    test_fill(simclr__f32(t), t->numel, seed + 2);
    CHECK_OK(simclr__module_new_param(m, "bn1.running_mean", 1, v, SIMCLR_PARAM_BUFFER, &t));
    test_fill(simclr__f32(t), t->numel, seed + 3);
    CHECK_OK(simclr__module_new_param(m, "bn1.running_var", 1, v, SIMCLR_PARAM_BUFFER, &t));
    for (int64_t i = 0; i < d; i++) simclr__f32(t)[i] = 1.0f + (float)i;
    CHECK_OK(simclr__module_new_param(m, "bn1.num_batches_tracked", 1, one, SIMCLR_PARAM_BUFFER, &t));
    simclr__f32(t)[0] = 1234.0f + (float)seed;
    if (with_extra) {
        CHECK_OK(simclr__module_new_param(m, "layer1.0.conv1.weight", 4, w, 0, &t));
        test_fill(simclr__f32(t), t->numel, seed + 4);
    }
    simclr__module_finalize(m);
    m->out_dim = d;
    return m;
}

/* Concatenated bytes of every tensor, to compare whole modules. */
static unsigned char *snapshot(simclr_module *m, size_t *n)
{
    size_t total = 0;
    for (int i = 0; i < m->n_params; i++) total += simclr_tensor_bytes(m->params[i].value);
    unsigned char *s = malloc(total), *p = s;
    for (int i = 0; i < m->n_params; i++) {
        size_t b = simclr_tensor_bytes(m->params[i].value);
        memcpy(p, m->params[i].value->data, b);
        p += b;
    }
    *n = total;
    return s;
}

static int same_snapshot(simclr_module *m, const unsigned char *s, size_t n)
{
    size_t k;
    unsigned char *now = snapshot(m, &k);
    int same = k == n && memcmp(now, s, n) == 0;
    free(now);
    return same;
}

static void test_container_roundtrip(void **state)
{
    (void)state;
    simclr_context *ctx;
    CHECK_OK(simclr_context_create("ref", 1, NULL, &ctx));
    char path[256];
    tpath(path, "c.ckpt");
    float f[6];
    test_fill(f, 6, 3);
    unsigned char u[5] = {1, 2, 3, 250, 0};
    int64_t zeros_dims[2] = {100, 100}, fd[2] = {2, 3}, ud[1] = {5};
    float *zeros = calloc(10000, sizeof(float));
    simclr__ckpt *ck;
    CHECK_OK(simclr__ckpt_new(ctx, "trainer v1 \"quoted\"", &ck));
    CHECK_OK(simclr__ckpt_add(ck, "encoder.", "w", SIMCLR__CK_F32, 2, fd, f));
    CHECK_OK(simclr__ckpt_add(ck, "head.", "w", SIMCLR__CK_F32, 2, fd, f));
    CHECK_OK(simclr__ckpt_add(ck, "optim.", "zeros", SIMCLR__CK_F32, 2, zeros_dims, zeros));
    CHECK_OK(simclr__ckpt_add(ck, NULL, "bytes", SIMCLR__CK_U8, 1, ud, u));
    CHECK_OK(simclr__ckpt_add_i64(ck, "trainer.", "step", -5000000000LL));
    CHECK_OK(simclr__ckpt_add_f64(ck, "trainer.", "lr", 0.125));
    CHECK_STATUS(simclr__ckpt_add_i64(ck, "trainer.", "step", 1), SIMCLR_E_INVALID); /* duplicate */
    char longname[300];
    memset(longname, 'a', 299);
    longname[299] = '\0';
    CHECK_STATUS(simclr__ckpt_add_i64(ck, NULL, longname, 1), SIMCLR_E_INVALID);
    CHECK_OK(simclr__ckpt_save(ck, "test", path));
    simclr__ckpt_free(ck);
    free(zeros);
    /* zero tensors compress: the 40 kB of zeros take far less on disk */
    size_t n;
    free(read_bytes(path, &n));
    assert_true(n < 2000);

    CHECK_OK(simclr__ckpt_load(ctx, "test", path, &ck));
    assert_string_equal(simclr__ckpt_arch(ck), "trainer v1 \"quoted\"");
    assert_int_equal(simclr__ckpt_count(ck), 6);
    const simclr__ckpt_entry *e = simclr__ckpt_find(ck, "head.", "w");
    assert_non_null(e);
    assert_int_equal(e->dtype, SIMCLR__CK_F32);
    assert_int_equal(e->ndim, 2);
    assert_true(e->dims[0] == 2 && e->dims[1] == 3);
    assert_memory_equal(e->data, f, sizeof f);
    e = simclr__ckpt_find(ck, NULL, "bytes");
    assert_memory_equal(e->data, u, 5);
    assert_null(simclr__ckpt_find(ck, "head.", "zeros"));
    int64_t step;
    double lr;
    CHECK_OK(simclr__ckpt_get_i64(ck, "test", "trainer.", "step", &step));
    CHECK_OK(simclr__ckpt_get_f64(ck, "test", "trainer.", "lr", &lr));
    assert_true(step == -5000000000LL && lr == 0.125);
    CHECK_STATUS(simclr__ckpt_get_f64(ck, "test", "trainer.", "step", &lr), SIMCLR_E_FORMAT);
    CHECK_STATUS(simclr__ckpt_get_i64(ck, "test", "trainer.", "nothing", &step), SIMCLR_E_FORMAT);
    /* expect_tensor: shape and dtype checks against a destination */
    simclr_tensor *t;
    int64_t good[2] = {2, 3}, bad[2] = {3, 2};
    CHECK_OK(simclr_tensor_create(ctx, SIMCLR_F32, 2, good, &t));
    CHECK_OK(simclr__ckpt_expect_tensor(ck, "test", "encoder.", "w", t));
    simclr__ckpt_copy_into(simclr__ckpt_find(ck, "encoder.", "w"), t);
    assert_memory_equal(t->data, f, sizeof f);
    simclr_tensor_destroy(t);
    CHECK_OK(simclr_tensor_create(ctx, SIMCLR_F32, 2, bad, &t));
    CHECK_STATUS(simclr__ckpt_expect_tensor(ck, "test", "encoder.", "w", t), SIMCLR_E_SHAPE);
    assert_non_null(strstr(simclr_last_error(), "[2, 3]"));
    assert_non_null(strstr(simclr_last_error(), "[3, 2]"));
    CHECK_STATUS(simclr__ckpt_expect_tensor(ck, "test", NULL, "bytes", t), SIMCLR_E_FORMAT);
    simclr_tensor_destroy(t);
    simclr__ckpt_free(ck);
    simclr_context_destroy(ctx);
}

static void test_module_save_load(void **state)
{
    (void)state;
    simclr_context *ctx;
    CHECK_OK(simclr_context_create("ref", 1, NULL, &ctx));
    char path[256], other[256];
    tpath(path, "m.ckpt");
    tpath(other, "other.ckpt");
    simclr_module *a = dummy(ctx, "dummy d=4", 4, 2, 1, 10), *b = dummy(ctx, "dummy d=4", 4, 2, 1, 99);
    CHECK_OK(simclr_module_save(a, path));
    size_t na, nb;
    unsigned char *sa = snapshot(a, &na), *sb = snapshot(b, &nb);
    assert_true(memcmp(sa, sb, na) != 0);
    CHECK_OK(simclr_module_load(b, path));
    assert_true(same_snapshot(b, sa, na)); /* bit-exact */
    free(sb);
    sb = snapshot(b, &nb);

    /* another architecture string: SHAPE naming both, b unchanged */
    simclr_module *c = dummy(ctx, "dummy d=4 v2", 4, 2, 1, 5);
    CHECK_OK(simclr_module_save(c, other));
    CHECK_STATUS(simclr_module_load(b, other), SIMCLR_E_SHAPE);
    assert_non_null(strstr(simclr_last_error(), "dummy d=4 v2"));
    assert_non_null(strstr(simclr_last_error(), "'dummy d=4'"));
    assert_true(same_snapshot(b, sb, nb));
    simclr_module_destroy(c);
    /* same arch string, other shapes */
    c = dummy(ctx, "dummy d=4", 5, 2, 1, 5);
    CHECK_OK(simclr_module_save(c, other));
    CHECK_STATUS(simclr_module_load(b, other), SIMCLR_E_SHAPE);
    assert_true(same_snapshot(b, sb, nb));
    simclr_module_destroy(c);
    /* a tensor missing, or one too many */
    c = dummy(ctx, "dummy d=4", 4, 2, 0, 5);
    CHECK_OK(simclr_module_save(c, other));
    CHECK_STATUS(simclr_module_load(b, other), SIMCLR_E_FORMAT);
    assert_non_null(strstr(simclr_last_error(), "layer1.0.conv1.weight"));
    assert_true(same_snapshot(b, sb, nb));
    CHECK_OK(simclr_module_save(b, other));
    CHECK_STATUS(simclr_module_load(c, other), SIMCLR_E_FORMAT);
    assert_non_null(strstr(simclr_last_error(), "does not have"));
    simclr_module_destroy(c);

    CHECK_STATUS(simclr_module_save(NULL, path), SIMCLR_E_INVALID);
    CHECK_STATUS(simclr_module_save(a, NULL), SIMCLR_E_INVALID);
    CHECK_STATUS(simclr_module_load(NULL, path), SIMCLR_E_INVALID);
    CHECK_STATUS(simclr_module_load(b, NULL), SIMCLR_E_INVALID);
    tpath(other, "does-not-exist");
    CHECK_STATUS(simclr_module_load(b, other), SIMCLR_E_IO);
    tpath(other, "no-such-dir/x.ckpt");
    CHECK_STATUS(simclr_module_save(b, other), SIMCLR_E_IO);
    assert_true(same_snapshot(b, sb, nb));
    free(sa);
    free(sb);
    simclr_module_destroy(a);
    simclr_module_destroy(b);
    simclr_context_destroy(ctx);
}

/* Every truncation of a checkpoint fails with SIMCLR_E_FORMAT. Every
 * single-bit flip either fails with SIMCLR_E_FORMAT, leaving the module
 * unchanged, or loads exactly the saved values: every byte is under a CRC or
 * a checked length except the padding bits after deflate's last block, which
 * inflate ignores. */
static void test_checkpoint_corruption(void **state)
{
    (void)state;
    simclr_context *ctx;
    CHECK_OK(simclr_context_create("ref", 1, NULL, &ctx));
    char path[256], victim[256];
    tpath(path, "small.ckpt");
    tpath(victim, "victim.ckpt");
    simclr_module *a = dummy(ctx, "dummy", 2, 1, 0, 1), *b = dummy(ctx, "dummy", 2, 1, 0, 2);
    CHECK_OK(simclr_module_save(a, path));
    size_t n, nb;
    unsigned char *file = read_bytes(path, &n), *buf = malloc(n);
    unsigned char *sb = snapshot(b, &nb);
    size_t na;
    unsigned char *sa = snapshot(a, &na);
    int formats = 0, oks = 0;
    for (size_t len = 0; len < n; len++) {
        write_bytes(victim, file, len);
        simclr_status st = simclr_module_load(b, victim);
        if (st != SIMCLR_E_FORMAT) fail_msg("truncated to %zu of %zu: %s: %s", len, n, simclr_status_string(st), simclr_last_error());
    }
    for (size_t pos = 0; pos < n; pos++)
        for (int bit = 0; bit < 8; bit++) {
            memcpy(buf, file, n);
            buf[pos] ^= (unsigned char)(1u << bit);
            write_bytes(victim, buf, n);
            simclr_status st = simclr_module_load(b, victim);
            if (st == SIMCLR_OK) {
                oks++;
                assert_true(same_snapshot(b, sa, na));
                CHECK_OK(simclr_module_load(b, victim)); /* idempotent */
                for (int i = 0, off = 0; i < b->n_params; i++) { /* restore b */
                    size_t bytes = simclr_tensor_bytes(b->params[i].value);
                    memcpy(b->params[i].value->data, sb + off, bytes);
                    off += (int)bytes;
                }
            } else if (st == SIMCLR_E_FORMAT) {
                formats++;
                assert_true(same_snapshot(b, sb, nb));
            } else {
                fail_msg("bit %d of byte %zu/%zu: %s: %s", bit, pos, n, simclr_status_string(st), simclr_last_error());
            }
        }
    /* only a few padding bits may be harmless */
    assert_true(oks <= 8 * (int)b->n_params);
    assert_true(formats > 0);
    free(sa);
    /* trailing garbage */
    memcpy(buf, file, n);
    FILE *f = fopen(victim, "wb");
    fwrite(buf, 1, n, f);
    fputc(0, f);
    fclose(f);
    CHECK_STATUS(simclr_module_load(b, victim), SIMCLR_E_FORMAT);
    assert_non_null(strstr(simclr_last_error(), "trailing"));
    CHECK_OK(simclr_module_load(b, path));
    free(file);
    free(buf);
    free(sb);
    simclr_module_destroy(a);
    simclr_module_destroy(b);
    simclr_context_destroy(ctx);
}

/* A save that fails at any allocation leaves the previous file byte-identical
 * and no temporary behind; a failed rename does too. A load that fails at any
 * allocation changes nothing. Nothing leaks. */
static void test_atomic_and_alloc_failures(void **state)
{
    (void)state;
    char path[256];
    tpath(path, "atomic.ckpt");
    for (int op = 0; op < 3; op++) {
        int succeeded = 0;
        for (long fail = 1; fail < 500 && !succeeded; fail++) {
            test_alloc al = {0, 0, 0, 0};
            simclr_allocator hooks = test_allocator(&al);
            simclr_context *ctx;
            CHECK_OK(simclr_context_create("ref", 1, &hooks, &ctx));
            simclr_module *old = dummy(ctx, "dummy", 3, 2, 1, 7), *m = dummy(ctx, "dummy", 3, 2, 1, 8);
            if (op == 0) CHECK_OK(simclr_module_save(old, path));
            else CHECK_OK(simclr_module_export_safetensors(old, path));
            size_t n0, nm;
            unsigned char *before = read_bytes(path, &n0), *sm = snapshot(m, &nm);
            al.fail_at = al.allocs + fail;
            simclr_status st = op == 0 ? simclr_module_save(m, path)
                             : op == 1 ? simclr_module_export_safetensors(m, path)
                                       : simclr_module_import_safetensors(m, path);
            al.fail_at = 0;
            if (st == SIMCLR_OK) {
                succeeded = 1;
            } else {
                if (st != SIMCLR_E_NOMEM) fail_msg("op %d fail_at %ld: %s", op, fail, simclr_last_error());
                size_t n1;
                unsigned char *after = read_bytes(path, &n1);
                assert_true(n0 == n1 && memcmp(before, after, n0) == 0);
                free(after);
                assert_true(same_snapshot(m, sm, nm));
            }
            assert_int_equal(count_temps(), 0);
            free(before);
            free(sm);
            simclr_module_destroy(old);
            simclr_module_destroy(m);
            simclr_context_destroy(ctx);
            assert_int_equal(al.live, 0);
        }
        assert_true(succeeded);
    }
    /* load sweep */
    int succeeded = 0;
    for (long fail = 1; fail < 500 && !succeeded; fail++) {
        test_alloc al = {0, 0, 0, 0};
        simclr_allocator hooks = test_allocator(&al);
        simclr_context *ctx;
        CHECK_OK(simclr_context_create("ref", 1, &hooks, &ctx));
        simclr_module *old = dummy(ctx, "dummy", 3, 2, 1, 7), *m = dummy(ctx, "dummy", 3, 2, 1, 8);
        CHECK_OK(simclr_module_save(old, path));
        size_t nm;
        unsigned char *sm = snapshot(m, &nm);
        al.fail_at = al.allocs + fail;
        simclr_status st = simclr_module_load(m, path);
        al.fail_at = 0;
        if (st == SIMCLR_OK) succeeded = 1;
        else {
            assert_int_equal(st, SIMCLR_E_NOMEM);
            assert_true(same_snapshot(m, sm, nm));
        }
        free(sm);
        simclr_module_destroy(old);
        simclr_module_destroy(m);
        simclr_context_destroy(ctx);
        assert_int_equal(al.live, 0);
    }
    assert_true(succeeded);

    /* rename fails (the target is a non-empty directory): E_IO, temp removed */
    simclr_context *ctx;
    CHECK_OK(simclr_context_create("ref", 1, NULL, &ctx));
    char dpath[256], inner[300];
    tpath(dpath, "adir");
    mkdir(dpath, 0755);
    snprintf(inner, sizeof inner, "%s/keep", dpath);
    write_bytes(inner, "x", 1);
    simclr_module *m = dummy(ctx, "dummy", 3, 2, 1, 8);
    CHECK_STATUS(simclr_module_save(m, dpath), SIMCLR_E_IO);
    assert_non_null(strstr(simclr_last_error(), "rename"));
    CHECK_STATUS(simclr_module_export_safetensors(m, dpath), SIMCLR_E_IO);
    assert_int_equal(count_temps(), 0);
    simclr_module_destroy(m);
    simclr_context_destroy(ctx);
}

/* ---- safetensors -------------------------------------------------------- */

/* Minimal independent writer: the header text is given verbatim. */
/* Writes a safetensors file; a header of 2 bytes or more is padded with
 * spaces to a multiple of 8, as writers do, so the data is aligned and a
 * case fails for the defect it was written for. */
static void write_st(const char *path, const char *json, const void *data, size_t n)
{
    size_t h = strlen(json), pad = h >= 2 ? (8 - h % 8) % 8 : 0;
    unsigned char len[8];
    for (int i = 0; i < 8; i++) len[i] = (unsigned char)((uint64_t)(h + pad) >> (8 * i));
    FILE *f = fopen(path, "wb");
    fwrite(len, 1, 8, f);
    fwrite(json, 1, h, f);
    fwrite("        ", 1, pad, f);
    fwrite(data, 1, n, f);
    fclose(f);
}

static void test_safetensors_roundtrip(void **state)
{
    (void)state;
    simclr_context *ctx;
    CHECK_OK(simclr_context_create("ref", 1, NULL, &ctx));
    char path[256];
    tpath(path, "m.safetensors");
    simclr_module *a = dummy(ctx, "dummy", 4, 2, 1, 1), *b = dummy(ctx, "dummy", 4, 2, 1, 2);
    CHECK_OK(simclr_module_export_safetensors(a, path));
    size_t n;
    unsigned char *f = read_bytes(path, &n);
    uint64_t h = 0;
    for (int i = 7; i >= 0; i--) h = (h << 8) | f[i];
    assert_int_equal((8 + h) % 8, 0); /* data 8-byte aligned */
    char *json = calloc(1, h + 1);
    memcpy(json, f + 8, h);
    /* I64 0-dim num_batches_tracked first (largest element), then F32 by name */
    assert_non_null(strstr(json, "\"bn1.num_batches_tracked\":{\"dtype\":\"I64\",\"shape\":[],\"data_offsets\":[0,8]}"));
    assert_non_null(strstr(json, "\"bn1.bias\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[8,24]}"));
    assert_non_null(strstr(json, "\"conv1.weight\":{\"dtype\":\"F32\",\"shape\":[4,2,3,3]"));
    assert_int_equal(f[8 + h], 1234 + 1 - 1024); /* 1235 = 0x4d3: low byte 0xd3 */
    assert_int_equal(f[8 + h + 1], 0x04);
    free(json);
    size_t na;
    unsigned char *sa = snapshot(a, &na);
    CHECK_OK(simclr_module_import_safetensors(b, path));
    assert_true(same_snapshot(b, sa, na));
    free(sa);
    free(f);

    /* hand-written files: extras ignored, escapes decoded, metadata skipped */
    simclr_module *s;
    CHECK_OK(simclr__module_new(ctx, &dummy_ops, "tiny", &s));
    int64_t two[1] = {2}, one[1] = {1};
    simclr_tensor *w, *nbt;
    CHECK_OK(simclr__module_new_param(s, "w", 1, two, 0, &w));
    CHECK_OK(simclr__module_new_param(s, "x.num_batches_tracked", 1, one, SIMCLR_PARAM_BUFFER, &nbt));
    simclr__module_finalize(s);
    struct {
        float w[2];
        int64_t nbt;
        float fc[3];
    } data = {{1.5f, -2.0f}, 77, {9, 9, 9}};
    char good[] = "{\"__metadata__\":{\"format\":\"pt\",\"nested\":{\"a\":[1,2.5e3,true,null]}},"
                  "\"\\u0077\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
                  "\"x.num_batches_tracked\":{\"dtype\":\"I64\",\"shape\":[],\"data_offsets\":[8,16]},"
                  "\"fc.weight\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[16,28]}}  ";
    /* the tensors end at byte 28: the struct's 4 padding bytes would be unindexed */
    write_st(path, good, &data, 28);
    CHECK_OK(simclr_module_import_safetensors(s, path));
    assert_true(simclr__f32(w)[0] == 1.5f && simclr__f32(w)[1] == -2.0f && simclr__f32(nbt)[0] == 77.0f);
    simclr__f32(w)[0] = 0;

    static const struct {
        const char *json;
        simclr_status want;
        const char *msg;
    } bad[] = {
        {"", SIMCLR_E_FORMAT, "header length"},
        {"{", SIMCLR_E_FORMAT, "header length"},
        {"{ ", SIMCLR_E_FORMAT, "bad safetensors header"},
        {"[]", SIMCLR_E_FORMAT, "expected '{'"},
        {"{\"w\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}", SIMCLR_E_FORMAT, "expected"},
        {"{\"w\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}x", SIMCLR_E_FORMAT, "trailing"},
        {"{\"w\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,800]},"
         "\"x.num_batches_tracked\":{\"dtype\":\"I64\",\"shape\":[],\"data_offsets\":[8,16]}}", SIMCLR_E_FORMAT, "outside"},
        {"{\"w\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8,0]},"
         "\"x.num_batches_tracked\":{\"dtype\":\"I64\",\"shape\":[],\"data_offsets\":[8,16]}}", SIMCLR_E_FORMAT, "end before"},
        {"{\"w\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,8]},"
         "\"x.num_batches_tracked\":{\"dtype\":\"I64\",\"shape\":[],\"data_offsets\":[8,16]}}", SIMCLR_E_FORMAT, "do not match"},
        {"{\"w\":{\"dtype\":\"F16\",\"shape\":[4],\"data_offsets\":[0,8]},"
         "\"x.num_batches_tracked\":{\"dtype\":\"I64\",\"shape\":[],\"data_offsets\":[8,16]}}", SIMCLR_E_FORMAT, "F16"},
        {"{\"w\":{\"dtype\":\"F32\",\"shape\":[1,2],\"data_offsets\":[0,8]},"
         "\"x.num_batches_tracked\":{\"dtype\":\"I64\",\"shape\":[],\"data_offsets\":[8,16]}}", SIMCLR_E_SHAPE, "[1, 2]"},
        {"{\"x.num_batches_tracked\":{\"dtype\":\"I64\",\"shape\":[],\"data_offsets\":[8,16]},"
         "\"fc\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", SIMCLR_E_FORMAT, "no tensor 'w'"},
        {"{\"w\":{\"dtype\":\"F32\",\"shape\":[2]},"
         "\"x.num_batches_tracked\":{\"dtype\":\"I64\",\"shape\":[],\"data_offsets\":[8,16]}}", SIMCLR_E_FORMAT, "lacks"},
        {"{\"w\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
         "\"w\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", SIMCLR_E_FORMAT, "twice"},
        {"{\"w\":{\"dtype\":\"F32\",\"shape\":[-2],\"data_offsets\":[0,8]}}", SIMCLR_E_FORMAT, "non-negative"},
        {"{\"w\":{\"dtype\":\"F32\",\"shape\":[99999999999999999999],\"data_offsets\":[0,8]}}", SIMCLR_E_FORMAT, "overflow"},
        {"{\"\\ud800\":{}}", SIMCLR_E_FORMAT, "surrogate"},
        {"{\"a\x01\":{}}", SIMCLR_E_FORMAT, "control"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        write_st(path, bad[i].json, &data, 16); /* w and num_batches_tracked */
        simclr_status st = simclr_module_import_safetensors(s, path);
        if (st != bad[i].want || !strstr(simclr_last_error(), bad[i].msg))
            fail_msg("case %zu: %s: %s", i, simclr_status_string(st), simclr_last_error());
        assert_true(simclr__f32(w)[0] == 0.0f && simclr__f32(nbt)[0] == 77.0f); /* unchanged */
    }
    /* the data section must be the tensors end to end: the order in the JSON
     * does not matter, but holes, overlaps and unindexed bytes are refused */
    static const struct {
        const char *json;
        size_t n;
        const char *msg;
    } layout[] = {
        {"{\"w\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8,16]},"
         "\"x.num_batches_tracked\":{\"dtype\":\"I64\",\"shape\":[],\"data_offsets\":[0,8]}}", 16, NULL},
        {"{\"w\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
         "\"x.num_batches_tracked\":{\"dtype\":\"I64\",\"shape\":[],\"data_offsets\":[8,16]}}", 20,
         "4 bytes after the last tensor are not indexed"},
        {"{\"w\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
         "\"x.num_batches_tracked\":{\"dtype\":\"I64\",\"shape\":[],\"data_offsets\":[16,24]}}", 24,
         "8 unindexed data bytes before tensor 'x.num_batches_tracked'"},
        {"{\"w\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8,16]},"
         "\"x.num_batches_tracked\":{\"dtype\":\"I64\",\"shape\":[],\"data_offsets\":[16,24]}}", 24,
         "8 unindexed data bytes before tensor 'w'"},
        {"{\"w\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
         "\"x.num_batches_tracked\":{\"dtype\":\"I64\",\"shape\":[],\"data_offsets\":[8,16]},"
         "\"fc\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}", 16, "overlaps"},
        {"{\"w\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
         "\"x.num_batches_tracked\":{\"dtype\":\"I64\",\"shape\":[],\"data_offsets\":[4,12]}}", 12,
         "not a multiple of 8"},
        {"{\"w\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
         "\"x.num_batches_tracked\":{\"dtype\":\"I64\",\"shape\":[],\"data_offsets\":[8,16]},"
         "\"x.num_batches_tracked\":{\"dtype\":\"I64\",\"shape\":[],\"data_offsets\":[16,24]}}", 24, "twice"},
    };
    unsigned char raw[32] = {0};
    for (size_t i = 0; i < sizeof layout / sizeof layout[0]; i++) {
        simclr__f32(w)[0] = 0;
        write_st(path, layout[i].json, raw, layout[i].n);
        simclr_status st = simclr_module_import_safetensors(s, path);
        if (!layout[i].msg) {
            CHECK_OK(st);
            continue;
        }
        if (st != SIMCLR_E_FORMAT || !strstr(simclr_last_error(), layout[i].msg))
            fail_msg("layout case %zu: %s: %s", i, simclr_status_string(st), simclr_last_error());
    }
    simclr__f32(w)[0] = 0;
    simclr__f32(nbt)[0] = 77.0f;
    /* a header one byte longer than its padding moves every tensor off its alignment */
    {
        char odd[] = "{\"w\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
                     "\"x.num_batches_tracked\":{\"dtype\":\"I64\",\"shape\":[],\"data_offsets\":[8,16]}}";
        size_t ho = strlen(odd), hl = ho + (8 - ho % 8) % 8 + 1;
        unsigned char len[8];
        for (int i = 0; i < 8; i++) len[i] = (unsigned char)((uint64_t)hl >> (8 * i));
        FILE *fo = fopen(path, "wb");
        fwrite(len, 1, 8, fo);
        fwrite(odd, 1, ho, fo);
        for (size_t i = ho; i < hl; i++) fputc(' ', fo);
        fwrite(raw, 1, 16, fo);
        fclose(fo);
        CHECK_STATUS(simclr_module_import_safetensors(s, path), SIMCLR_E_FORMAT);
        assert_non_null(strstr(simclr_last_error(), "not a multiple of"));
    }
    assert_true(simclr__f32(w)[0] == 0.0f && simclr__f32(nbt)[0] == 77.0f); /* unchanged */
    /* header length beyond the file */
    unsigned char tiny[12] = {200, 0, 0, 0, 0, 0, 0, 0, '{', '}', ' ', ' '};
    write_bytes(path, tiny, sizeof tiny);
    CHECK_STATUS(simclr_module_import_safetensors(s, path), SIMCLR_E_FORMAT);
    write_bytes(path, tiny, 5);
    CHECK_STATUS(simclr_module_import_safetensors(s, path), SIMCLR_E_FORMAT);

    /* every truncation and bit flip of a real export: OK, FORMAT or SHAPE, never
     * a crash; a failure leaves the module as it was */
    CHECK_OK(simclr_module_export_safetensors(s, path));
    unsigned char *file = read_bytes(path, &n), *buf = malloc(n);
    char victim[256];
    tpath(victim, "victim.safetensors");
    for (size_t len = 0; len < n; len++) {
        write_bytes(victim, file, len);
        simclr_status st = simclr_module_import_safetensors(s, victim);
        if (st != SIMCLR_E_FORMAT) fail_msg("truncated to %zu: %s", len, simclr_last_error());
    }
    int oks = 0;
    for (size_t pos = 0; pos < n; pos++)
        for (int bit = 0; bit < 8; bit++) {
            CHECK_OK(simclr_module_import_safetensors(s, path));
            size_t ns;
            unsigned char *ss = snapshot(s, &ns);
            memcpy(buf, file, n);
            buf[pos] ^= (unsigned char)(1u << bit);
            write_bytes(victim, buf, n);
            simclr_status st = simclr_module_import_safetensors(s, victim);
            if (st == SIMCLR_OK) oks++;
            else if (st == SIMCLR_E_FORMAT || st == SIMCLR_E_SHAPE) assert_true(same_snapshot(s, ss, ns));
            else fail_msg("bit %d of byte %zu: %s", bit, pos, simclr_last_error());
            free(ss);
        }
    assert_true(oks > 0); /* flips in the data area load */
    free(file);
    free(buf);
    CHECK_STATUS(simclr_module_import_safetensors(NULL, path), SIMCLR_E_INVALID);
    CHECK_STATUS(simclr_module_import_safetensors(s, NULL), SIMCLR_E_INVALID);
    CHECK_STATUS(simclr_module_export_safetensors(NULL, path), SIMCLR_E_INVALID);
    CHECK_STATUS(simclr_module_export_safetensors(s, NULL), SIMCLR_E_INVALID);
    simclr_module_destroy(s);
    simclr_module_destroy(a);
    simclr_module_destroy(b);
    simclr_context_destroy(ctx);
}

static int setup(void **state)
{
    (void)state;
    return test_tmpdir_make(dir, sizeof dir, "ck");
}

static int teardown(void **state)
{
    (void)state;
    return test_tmpdir_remove(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_container_roundtrip),
        cmocka_unit_test(test_module_save_load),
        cmocka_unit_test(test_checkpoint_corruption),
        cmocka_unit_test(test_atomic_and_alloc_failures),
        cmocka_unit_test(test_safetensors_roundtrip),
    };
    return cmocka_run_group_tests_name("checkpoint", tests, setup, teardown);
}
