/* simclr predict DIR|FILES --model FT -o predictions.csv: the top-k classes
 * and their probabilities of every image, from a fine-tuned model folder. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli.h"

static const char *CMD = "predict";

/* One CSV field: quoted when it holds a comma, a quote or a line break. */
static void csv_field(FILE *f, const char *s)
{
    if (!strpbrk(s, ",\"\r\n")) {
        fputs(s, f);
        return;
    }
    fputc('"', f);
    for (; *s; s++) {
        if (*s == '"') fputc('"', f);
        fputc(*s, f);
    }
    fputc('"', f);
}

int cmd_predict(int argc, char **argv)
{
    const char *model = "simclr-finetune", *out = "predictions.csv";
    int64_t top_k = 5, threads = 0;
    int skip_bad = 0, quiet = 0;
    const cli_opt opts[] = {
        {"--model", OPT_STRING, &model, "fine-tuned model folder from simclr finetune (default simclr-finetune)"},
        {"-o", OPT_STRING, &out, "predictions file, CSV (default predictions.csv)"},
        {"--top-k", OPT_INT, &top_k, "classes per image, >= 1 (default 5; at most the class count)"},
        CLI_OPT_THREADS(&threads),
        {"--skip-bad", OPT_FLAG, &skip_bad, "leave out unreadable or corrupt images instead of stopping"},
        CLI_OPT_QUIET(&quiet),
    };
    char *pos[4096];
    int n_pos;
    int rc = cli_parse(argc, argv, 2, "simclr predict DIR|FILES... --model FT [-o predictions.csv] [--top-k K]",
                       "Class probabilities of every image (the evaluation transform: shorter side resized to\n"
                       "size/0.875, center crop) from a model folder written by simclr finetune. Writes a CSV:\n"
                       "a header path,class1,prob1,...,classK,probK, then one row per image with its K most\n"
                       "probable classes by descending probability (ties: the class listed first).",
                       opts, (int)(sizeof opts / sizeof opts[0]), pos, 4096, &n_pos);
    if (rc) return rc < 0 ? CLI_OK : rc;
    if (n_pos < 1) {
        fprintf(stderr, "simclr predict: give a folder or image files (see --help)\n");
        return CLI_USAGE;
    }
    if ((rc = cli_check_output(CMD, "-o", out))) return rc;
    char path[4096];
    struct stat sb;
    snprintf(path, sizeof path, "%s/head.simclr", model);
    if (stat(path, &sb) != 0) {
        fprintf(stderr, "simclr predict: %s has no classifier (no %s): run `simclr finetune` on labelled images to "
                        "make one\n", model, path);
        return CLI_FAIL;
    }
    char **names = NULL;
    int k = 0;
    if ((rc = cfg_classes(CMD, model, &names, &k))) return rc;
    if (top_k > k) top_k = k;
    simclr_context *ctx = NULL;
    simclr_status st = simclr_context_create(NULL, (int)threads, NULL, &ctx);
    if (st != SIMCLR_OK) {
        for (int i = 0; i < k; i++) free(names[i]);
        free(names);
        return cli_fail(CMD, "context", st);
    }
    model_cfg cfg;
    simclr_module *enc = NULL, *head = NULL;
    simclr_classifier *clf = NULL;
    simclr_image_list *list = NULL;
    image_input in = {0};
    const int64_t chunk = 32;
    int64_t *idx = malloc((size_t)chunk * sizeof *idx), *kept = malloc((size_t)chunk * sizeof *kept);
    int32_t *cls = malloc((size_t)(chunk * top_k) * sizeof *cls);
    float *prob = malloc((size_t)(chunk * top_k) * sizeof *prob);
    char *buf = NULL;
    size_t len = 0;
    FILE *mem = NULL;
    if (!idx || !kept || !cls || !prob) rc = cli_error(CMD, "no memory");
    if (!rc) rc = model_load(CMD, ctx, model, &cfg, &enc);
    if (!rc && (st = simclr_linear_head_create(ctx, simclr_module_output_dim(enc), k, 0, &head)))
        rc = cli_fail(CMD, "classification head", st);
    if (!rc && (st = simclr_module_load(head, path))) rc = cli_fail(CMD, path, st);
    if (!rc && (st = simclr_classifier_create(ctx, enc, head, cfg.size, cfg.size, &clf)))
        rc = cli_fail(CMD, "classifier", st);
    if (!rc) rc = input_open(CMD, ctx, pos, n_pos, (int)cfg.channels, 0, skip_bad, &in);
    if (!rc && (st = simclr_image_list_create(ctx, cfg.channels, &list))) rc = cli_fail(CMD, "image list", st);
    if (!rc && !(mem = open_memstream(&buf, &len))) rc = cli_error(CMD, "no memory");
    if (!rc) {
        fputs("path", mem);
        for (int64_t j = 1; j <= top_k; j++) fprintf(mem, ",class%lld,prob%lld", (long long)j, (long long)j);
        fputc('\n', mem);
    }
    double t0 = cli_now();
    int64_t rows = 0;
    for (int64_t first = 0; !rc && first < in.count; first += chunk) {
        int64_t m = in.count - first < chunk ? in.count - first : chunk, got = 0;
        for (int64_t i = 0; i < m; i++) idx[i] = first + i;
        rc = input_load(CMD, &in, idx, m, list, kept, &got);
        if (rc || got == 0) continue;
        if ((st = simclr_classifier_topk(clf, list, (int)top_k, cls, prob, got * top_k))) {
            rc = cli_fail(CMD, "classify", st);
            break;
        }
        for (int64_t i = 0; i < got; i++, rows++) {
            csv_field(mem, input_path(&in, kept[i]));
            for (int64_t j = 0; j < top_k; j++) {
                fputc(',', mem);
                csv_field(mem, names[cls[i * top_k + j]]);
                fprintf(mem, ",%.6f", (double)prob[i * top_k + j]);
            }
            fputc('\n', mem);
        }
        if (!quiet) progress_line("predict", first + m, in.count, "images", cli_now() - t0, "", first + m == in.count);
    }
    if (mem && fclose(mem) != 0 && !rc) rc = cli_error(CMD, "no memory for the predictions");
    if (!rc) rc = write_atomic(CMD, out, buf, len);
    if (!rc) printf("wrote %s: %lld images, top %lld of %d classes\n", out, (long long)rows, (long long)top_k, k);
    free(buf), free(idx), free(kept), free(cls), free(prob);
    for (int i = 0; i < k; i++) free(names[i]);
    free(names);
    simclr_image_list_destroy(list);
    input_close(&in);
    simclr_classifier_destroy(clf);
    simclr_module_destroy(head);
    simclr_module_destroy(enc);
    simclr_context_destroy(ctx);
    return rc;
}
