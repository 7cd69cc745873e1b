/* simclr export: the encoder as safetensors for torchvision, and the
 * PyTorch code that builds the matching torchvision model and loads it. */
#include <stdlib.h>
#include <string.h>

#include "cli.h"

/* s as a Python string literal: quotes, backslashes and control characters
 * escaped; other bytes (UTF-8 names) as they are. */
static void py_string(FILE *f, const char *s)
{
    fputc('"', f);
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\') fprintf(f, "\\%c", c);
        else if (c < 0x20 || c == 0x7f) fprintf(f, "\\x%02x", c);
        else fputc(c, f);
    }
    fputc('"', f);
}

/* Prints Python code that builds the torchvision ResNet holding exactly the
 * exported tensors and loads `path` into it with strict=True. torchvision's
 * ResNet class is 64 channels wide at its first layer (inplanes = 64, layers
 * of 64, 128, 256, 512 planes); width_per_group only widens a Bottleneck's
 * inner 3x3 conv. At width 64 the stock constructor fits (the CIFAR stem
 * swaps conv1 and the max pool); at any other width the snippet rebuilds
 * conv1, bn1 and layer1..4 with ResNet._make_layer at planes w, 2w, 4w, 8w
 * (tests/python/test_torch_export.py runs it). Returns 0, or -1 for a depth
 * torchvision does not have. */
static int print_torch_snippet(FILE *f, const model_cfg *cfg, const char *path, int64_t out_dim)
{
    static const struct { int depth; const char *block; const char *layers[4]; } arch[] = {
        {18, "BasicBlock", {"2", "2", "2", "2"}},  {34, "BasicBlock", {"3", "4", "6", "3"}},
        {50, "Bottleneck", {"3", "4", "6", "3"}},  {101, "Bottleneck", {"3", "4", "23", "3"}},
        {152, "Bottleneck", {"3", "8", "36", "3"}}};
    int a = -1;
    for (int i = 0; i < 5; i++)
        if (arch[i].depth == cfg->depth) a = i;
    if (a < 0) return -1;
    const int cifar = strcmp(cfg->stem, "imagenet") != 0;
    const long long c = (long long)cfg->channels, w = (long long)cfg->width;
    fprintf(f, "# PyTorch: torchvision's ResNet-%d, width %lld, %lld input channel%s, %s stem; loads ", arch[a].depth,
            w, c, c == 1 ? "" : "s", cifar ? "CIFAR" : "ImageNet");
    py_string(f, path);
    fprintf(f, "\nimport torch\n");
    if (w == 64) {
        fprintf(f, "import torchvision\nfrom safetensors.torch import load_file\n\n");
        fprintf(f, "model = torchvision.models.resnet%d()\n", arch[a].depth);
        if (cifar)
            fprintf(f, "model.conv1 = torch.nn.Conv2d(%lld, 64, 3, 1, 1, bias=False)  # CIFAR stem: 3x3 conv, stride 1\n"
                       "model.maxpool = torch.nn.Identity()  # CIFAR stem: no max pool\n", c);
        else if (c != 3)
            fprintf(f, "model.conv1 = torch.nn.Conv2d(%lld, 64, 7, 2, 3, bias=False)  # %lld input channel%s\n", c, c,
                    c == 1 ? "" : "s");
    } else {
        fprintf(f, "from torchvision.models.resnet import ResNet, %s\nfrom safetensors.torch import load_file\n\n",
                arch[a].block);
        fprintf(f, "# torchvision's ResNet is 64 channels wide: rebuild its stem and layers %lld wide\n", w);
        fprintf(f, "w = %lld\n", w);
        fprintf(f, "model = ResNet(%s, [%s, %s, %s, %s])\n", arch[a].block, arch[a].layers[0], arch[a].layers[1],
                arch[a].layers[2], arch[a].layers[3]);
        if (cifar)
            fprintf(f, "model.conv1 = torch.nn.Conv2d(%lld, w, 3, 1, 1, bias=False)  # CIFAR stem: 3x3 conv, stride 1\n"
                       "model.bn1 = torch.nn.BatchNorm2d(w)\n"
                       "model.maxpool = torch.nn.Identity()  # CIFAR stem: no max pool\n", c);
        else
            fprintf(f, "model.conv1 = torch.nn.Conv2d(%lld, w, 7, 2, 3, bias=False)\n"
                       "model.bn1 = torch.nn.BatchNorm2d(w)\n", c);
        fprintf(f, "model.inplanes = w  # the input width of the next _make_layer\n"
                   "model.layer1 = model._make_layer(%s, w, %s)\n"
                   "model.layer2 = model._make_layer(%s, 2 * w, %s, stride=2)\n"
                   "model.layer3 = model._make_layer(%s, 4 * w, %s, stride=2)\n"
                   "model.layer4 = model._make_layer(%s, 8 * w, %s, stride=2)\n",
                arch[a].block, arch[a].layers[0], arch[a].block, arch[a].layers[1], arch[a].block, arch[a].layers[2],
                arch[a].block, arch[a].layers[3]);
    }
    fprintf(f, "model.fc = torch.nn.Identity()  # the encoder's features, no classifier\n");
    fprintf(f, "model.load_state_dict(load_file(");
    py_string(f, path);
    fprintf(f, "), strict=True)\n");
    fprintf(f, "model.eval()\n"
               "# features = model(x): x float [N, %lld, %lld, %lld], pixels / 255 without mean/std normalization\n"
               "# (simclr embed resizes the shorter side to %lld/0.875 and center crops); features [N, %lld]\n",
            c, (long long)cfg->size, (long long)cfg->size, (long long)cfg->size, (long long)out_dim);
    return 0;
}

int cmd_export(int argc, char **argv)
{
    const char *model = "simclr-run", *out = "encoder.safetensors";
    const cli_opt opts[] = {
        {"--model", OPT_STRING, &model, "model folder from simclr train (default simclr-run)"},
        {"-o", OPT_STRING, &out, "output file (default encoder.safetensors)"},
    };
    char *pos[1];
    int n_pos;
    int rc = cli_parse(argc, argv, 2, "simclr export [--model DIR] [-o encoder.safetensors]",
                       "Writes the encoder's weights under torchvision's names, with the architecture in the\n"
                       "file's metadata (simclr.arch, simclr.depth, simclr.width, simclr.in_channels,\n"
                       "simclr.stem, simclr.version), and prints the PyTorch code that builds the matching\n"
                       "torchvision ResNet and loads the file with strict=True. The CLI's default encoder\n"
                       "(width 32, CIFAR stem) is not torchvision.models.resnet18(): use the printed code.",
                       opts, 2, pos, 0, &n_pos);
    if (rc) return rc < 0 ? CLI_OK : rc;
    simclr_context *ctx;
    simclr_status st = simclr_context_create(NULL, 1, NULL, &ctx);
    if (st != SIMCLR_OK) return cli_fail("export", "context", st);
    model_cfg cfg;
    simclr_module *enc = NULL;
    rc = model_load("export", ctx, model, &cfg, &enc);
    if (!rc && (st = simclr_module_export_safetensors(enc, out)) != SIMCLR_OK) rc = cli_fail("export", out, st);
    if (!rc) {
        printf("wrote %s (%s)\n\n", out, simclr_module_arch(enc));
        if (print_torch_snippet(stdout, &cfg, out, simclr_module_output_dim(enc)) != 0)
            printf("(no torchvision ResNet has depth %lld)\n", (long long)cfg.depth);
    }
    simclr_module_destroy(enc);
    simclr_context_destroy(ctx);
    return rc;
}
