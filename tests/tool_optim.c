/* Drives an optimizer for tests/python/test_torch_optim.py, which compares it
 * with torch.optim. Modules cannot be built from Python until the ResNet and
 * head land, so this program builds a dummy module with the internal API.
 *
 *   tool_optim IN OUT
 * IN, float64 little-endian: kind, n_steps, n_params, n_settings;
 *   n_settings x (key, value); n_params x (numel, flags);
 *   initial values (all params, concatenated); n_steps x all gradients.
 * OUT, float64: per step: the rate used, the gradient norm, all params after. */
#include <stdio.h>
#include <stdlib.h>

#include "model/module.h"
#include "optim/optimizer.h"

static const simclr__module_ops dummy_ops = {"dummy", NULL, NULL, NULL};

static int fail(const char *what)
{
    fprintf(stderr, "tool_optim: %s: %s\n", what, simclr_last_error());
    return 1;
}

int main(int argc, char **argv)
{
    if (argc != 3 && argc != 4) return fprintf(stderr, "usage: tool_optim IN OUT [THREADS]\n"), 2;
    int threads = argc == 4 ? atoi(argv[3]) : 2;
    FILE *in = fopen(argv[1], "rb");
    if (!in) return perror(argv[1]), 1;
    fseek(in, 0, SEEK_END);
    long bytes = ftell(in);
    rewind(in);
    double *buf = malloc((size_t)bytes);
    if (!buf || fread(buf, 1, (size_t)bytes, in) != (size_t)bytes) return fprintf(stderr, "read failed\n"), 1;
    fclose(in);
    const double *p = buf;
    int kind = (int)*p++, n_steps = (int)*p++, n_params = (int)*p++, n_settings = (int)*p++;
    const double *settings = p;
    p += 2 * n_settings;
    const double *shapes = p;
    p += 2 * n_params;

    simclr_context *ctx;
    simclr_module *m;
    simclr_optimizer *opt;
    if (simclr_context_create("cpu", threads, NULL, &ctx)) return fail("context");
    if (simclr__module_new(ctx, &dummy_ops, "dummy", &m)) return fail("module");
    for (int i = 0; i < n_params; i++) {
        char name[32];
        snprintf(name, sizeof name, "p%d", i);
        int64_t n = (int64_t)shapes[2 * i];
        simclr_tensor *t;
        if (simclr__module_new_param(m, name, 1, &n, (int)shapes[2 * i + 1], &t)) return fail("param");
        for (int64_t k = 0; k < n; k++) simclr__f32(t)[k] = (float)*p++;
    }
    if (simclr_optimizer_create(ctx, (simclr_opt_kind)kind, &m, 1, &opt)) return fail("optimizer");
    for (int s = 0; s < n_settings; s++)
        if (simclr_optimizer_set(opt, (simclr_opt_param)(int)settings[2 * s], settings[2 * s + 1])) return fail("set");
    FILE *out = fopen(argv[2], "wb");
    if (!out) return perror(argv[2]), 1;
    for (int step = 0; step < n_steps; step++) {
        for (int i = 0; i < n_params; i++)
            for (int64_t k = 0; k < m->params[i].grad->numel; k++) simclr__f32(m->params[i].grad)[k] = (float)*p++;
        if (simclr_optimizer_step(opt)) return fail("step");
        double head[2] = {simclr__optimizer_last_lr(opt), simclr__optimizer_last_grad_norm(opt)};
        fwrite(head, sizeof(double), 2, out);
        for (int i = 0; i < n_params; i++)
            for (int64_t k = 0; k < m->params[i].value->numel; k++) {
                double v = simclr__f32(m->params[i].value)[k];
                fwrite(&v, sizeof v, 1, out);
            }
    }
    fclose(out);
    simclr_optimizer_destroy(opt);
    simclr_module_destroy(m);
    simclr_context_destroy(ctx);
    free(buf);
    return 0;
}
