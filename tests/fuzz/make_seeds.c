/* Writes the fuzzers' seed corpora with the library itself, so the seeds
 * follow the formats as they are written today:
 *   make_seeds DIR  ->  DIR/{module_ckpt,trainer_ckpt,safetensors,idx,cifar}/
 * Every seed is a valid file (the fuzzers mutate from there). */
#include <errno.h>
#include <sys/stat.h>
#include <zlib.h>

#include "fuzz_util.h"
#include "fuzz_models.h"

static char root[512];

static void sub(char *out, const char *corpus, const char *name)
{
    snprintf(out, 600, "%s/%s", root, corpus);
    if (mkdir(out, 0755) != 0 && errno != EEXIST) abort();
    snprintf(out, 600, "%s/%s/%s", root, corpus, name);
}

static void put(const char *corpus, const char *name, const void *d, size_t n)
{
    char p[600];
    sub(p, corpus, name);
    fuzz_write(p, d, n);
}

static unsigned char *slurp(const char *path, size_t *n)
{
    FILE *f = fopen(path, "rb");
    if (!f) abort();
    fseek(f, 0, SEEK_END);
    *n = (size_t)ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *d = malloc(*n ? *n : 1);
    if (fread(d, 1, *n, f) != *n) abort();
    fclose(f);
    return d;
}

static void be32(unsigned char *p, uint32_t v)
{
    p[0] = (unsigned char)(v >> 24), p[1] = (unsigned char)(v >> 16), p[2] = (unsigned char)(v >> 8),
    p[3] = (unsigned char)v;
}

static void fill_params(simclr_module *m, unsigned seed)
{
    for (int i = 0; i < simclr_module_param_count(m); i++) {
        simclr_tensor *v;
        FUZZ_OK(simclr_module_param(m, i, NULL, &v, NULL, NULL));
        float *x = simclr_tensor_data(v);
        for (int64_t k = 0; k < simclr_tensor_numel(v); k++) x[k] += 0.01f * (float)((k * 7 + seed) % 13);
    }
}

/* An IDX image file of n images h x w (and its labels), in the fuzz_idx
 * input layout [u16 LE k][images][labels]. */
static void idx_seed(const char *name, int n, int h, int w, int labels, int gzip)
{
    size_t isz = 16 + (size_t)n * h * w, lsz = labels ? 8 + (size_t)n : 0;
    unsigned char *img = malloc(isz), *lbl = malloc(lsz + 1);
    be32(img, 0x803), be32(img + 4, (uint32_t)n), be32(img + 8, (uint32_t)h), be32(img + 12, (uint32_t)w);
    for (size_t i = 16; i < isz; i++) img[i] = (unsigned char)(i * 31);
    if (labels) {
        be32(lbl, 0x801), be32(lbl + 4, (uint32_t)n);
        for (int i = 0; i < n; i++) lbl[8 + i] = (unsigned char)(i % 10);
    }
    if (gzip) {
        const char *tmp = fuzz_path("seed_gz");
        gzFile gz = gzopen(tmp, "wb9");
        if (!gz || gzwrite(gz, img, (unsigned)isz) != (int)isz) abort();
        gzclose(gz);
        free(img);
        img = slurp(tmp, &isz);
        remove(tmp);
    }
    size_t total = 2 + isz + lsz;
    unsigned char *in = malloc(total);
    in[0] = (unsigned char)(isz & 0xff), in[1] = (unsigned char)(isz >> 8);
    memcpy(in + 2, img, isz);
    if (lsz) memcpy(in + 2 + isz, lbl, lsz);
    put("idx", name, in, total);
    free(in);
    free(img);
    free(lbl);
}

static void cifar_seed(const char *name, int mode, int records)
{
    size_t rec = (mode & 1) ? 3074 : 3073, n = 1 + rec * (size_t)records;
    unsigned char *d = malloc(n);
    d[0] = (unsigned char)mode;
    for (size_t i = 1; i < n; i++) d[i] = (unsigned char)(i * 17);
    for (int r = 0; r < records; r++) {
        unsigned char *p = d + 1 + rec * (size_t)r;
        p[0] = (unsigned char)((mode & 1) ? r % 20 : r % 10);
        if (mode & 1) p[1] = (unsigned char)(r * 7 % 100);
    }
    put("cifar", name, d, n);
    free(d);
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: make_seeds DIR\n");
        return 2;
    }
    snprintf(root, sizeof root, "%s", argv[1]);
    mkdir(root, 0755);
    char p[600];

    fuzz_trainer t = {0};
    fuzz_trainer_make(&t);
    fill_params(t.enc, 1);
    fill_params(t.head, 2);
    sub(p, "module_ckpt", "encoder.simclr");
    FUZZ_OK(simclr_module_save(t.enc, p));
    sub(p, "module_ckpt", "head.simclr"); /* another architecture: the refusal path */
    FUZZ_OK(simclr_module_save(t.head, p));
    sub(p, "safetensors", "encoder.safetensors");
    FUZZ_OK(simclr_module_export_safetensors(t.enc, p));
    sub(p, "trainer_ckpt", "fresh.simclr");
    FUZZ_OK(simclr_trainer_save(t.tr, p));
    /* after two optimizer steps on set gradients: momentum and step non-zero */
    simclr_module *mods[2] = {t.enc, t.head};
    for (int s = 0; s < 2; s++) {
        for (int m = 0; m < 2; m++)
            for (int i = 0; i < simclr_module_param_count(mods[m]); i++) {
                simclr_tensor *g;
                FUZZ_OK(simclr_module_param(mods[m], i, NULL, NULL, &g, NULL));
                float *x = g ? simclr_tensor_data(g) : NULL;
                for (int64_t k = 0; x && k < simclr_tensor_numel(g); k++) x[k] = 0.1f * (float)((k + s) % 5) - 0.2f;
            }
        FUZZ_OK(simclr_optimizer_step(t.opt));
    }
    sub(p, "trainer_ckpt", "stepped.simclr");
    FUZZ_OK(simclr_trainer_save(t.tr, p));

    idx_seed("raw_labels", 3, 4, 5, 1, 0);
    idx_seed("raw_only", 2, 28, 28, 0, 0);
    idx_seed("gzip_only", 3, 6, 6, 0, 1);
    cifar_seed("cifar10_one", 0, 2);
    cifar_seed("cifar100_two", 3, 2);
    printf("seeds written to %s\n", root);
    return 0;
}
