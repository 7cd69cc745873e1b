/* simclr embed DIR|FILES -o embeddings.npy: encoder features of images. */
#include <stdlib.h>
#include <string.h>

#include "cli.h"

static const char *CMD = "embed";

int cmd_embed(int argc, char **argv)
{
    const char *model = "simclr-run", *out = "embeddings.npy", *map = NULL;
    int64_t threads = 0;
    int skip_bad = 0, quiet = 0;
    const cli_opt opts[] = {
        {"--model", OPT_STRING, &model, "model folder from simclr train (default simclr-run)"},
        {"-o", OPT_STRING, &out, "features file, F32 [N, D] .npy (default embeddings.npy)"},
        {"--map", OPT_STRING, &map, "also draw a PCA map of the features (PNG), coloured by class"},
        CLI_OPT_THREADS(&threads),
        {"--skip-bad", OPT_FLAG, &skip_bad, "leave out unreadable or corrupt images (listed) instead of stopping"},
        CLI_OPT_QUIET(&quiet),
    };
    char *pos[4096];
    int n_pos;
    int rc = cli_parse(argc, argv, 2, "simclr embed DIR|FILES... [-o embeddings.npy] [options]",
                       "Encoder features of every image (resized so the shorter side is size/0.875, center\n"
                       "crop of size x size, as torchvision's evaluation transform). Writes the .npy and, next\n"
                       "to it, OUT.paths.txt: one image path per row of the array (and its class when DIR has\n"
                       "class subfolders).",
                       opts, (int)(sizeof opts / sizeof opts[0]), pos, 4096, &n_pos);
    if (rc) return rc < 0 ? CLI_OK : rc;
    if (n_pos < 1) {
        fprintf(stderr, "simclr embed: give a folder or image files (see --help)\n");
        return CLI_USAGE;
    }
    if ((rc = cli_check_output(CMD, "-o", out)) || (map && (rc = cli_check_output(CMD, "--map", map)))) return rc;
    simclr_context *ctx;
    simclr_status st = simclr_context_create(NULL, (int)threads, NULL, &ctx);
    if (st != SIMCLR_OK) return cli_fail(CMD, "context", st);
    model_cfg cfg;
    simclr_module *enc = NULL;
    image_input in = {0};
    float *feat = NULL;
    uint8_t *ok = NULL;
    rc = model_load(CMD, ctx, model, &cfg, &enc);
    if (!rc) rc = input_open(CMD, ctx, pos, n_pos, (int)cfg.channels, -1, skip_bad, &in);
    if (!rc) rc = embed_all(CMD, ctx, enc, &cfg, &in, &feat, &ok, quiet);
    int64_t d = enc ? simclr_module_output_dim(enc) : 0, n = 0;
    int32_t *labels = NULL;
    char *paths = NULL;
    size_t plen = 0, pcap = 0;
    if (!rc) {
        labels = malloc((size_t)in.count * sizeof *labels);
        for (int64_t i = 0; i < in.count && labels; i++) {
            if (!ok[i]) continue;
            if (n != i) memmove(feat + n * d, feat + i * d, (size_t)d * sizeof(float));
            labels[n] = input_label(&in, i);
            const char *p = input_path(&in, i);
            const char *cls = labels[n] >= 0 ? simclr_image_folder_class_name(in.folder, labels[n]) : NULL;
            size_t need = strlen(p) + (cls ? strlen(cls) : 0) + 4;
            if (plen + need >= pcap) {
                pcap = (plen + need) * 2;
                char *b = realloc(paths, pcap);
                if (!b) break;
                paths = b;
            }
            plen += (size_t)snprintf(paths + plen, pcap - plen, cls ? "%s\t%s\n" : "%s\n", p, cls);
            n++;
        }
        if (!labels || n < in.count - (in.folder ? simclr_image_folder_skipped(in.folder) : 0))
            rc = cli_error(CMD, "no memory");
    }
    if (!rc && n == 0) { /* every image skipped: no array of 0 rows, no file at all */
        fprintf(stderr, "simclr embed: none of the %lld images could be read: nothing written\n", (long long)in.count);
        rc = CLI_FAIL;
    }
    if (!rc) rc = write_npy(CMD, out, feat, n, d);
    if (!rc) {
        char ppath[4200];
        snprintf(ppath, sizeof ppath, "%s.paths.txt", out);
        rc = write_atomic(CMD, ppath, paths ? paths : "", plen);
        if (!rc) printf("wrote %s (%lld x %lld) and %s\n", out, (long long)n, (long long)d, ppath);
    }
    if (!rc && map) {
        rc = plot_pca(CMD, map, feat, n, d, in.labeled ? labels : NULL, in.folder);
        if (!rc) printf("wrote %s (PCA of the features%s)\n", map, in.labeled ? ", coloured by class" : "");
    }
    if (!rc && in.folder && simclr_image_folder_skipped(in.folder)) {
        printf("skipped %lld unreadable images:\n", (long long)simclr_image_folder_skipped(in.folder));
        for (int64_t i = 0; i < in.count; i++)
            if (!ok[i]) printf("  %s\n", input_path(&in, i));
    }
    free(paths), free(labels), free(feat), free(ok);
    input_close(&in);
    simclr_module_destroy(enc);
    simclr_context_destroy(ctx);
    return rc;
}
