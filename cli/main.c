/* simclr: SimCLR self-supervised learning on folders of images, from the
 * command line. One subcommand per task; `simclr CMD --help` for each. */
#include <stdio.h>
#include <string.h>

#include "cli.h"

static const struct {
    const char *name;
    int (*run)(int, char **);
    const char *what;
} commands[] = {
    {"train", cmd_train, "pre-train an encoder on a folder of images (SimCLR)"},
    {"embed", cmd_embed, "features of images as a .npy array (+ the list of paths)"},
    {"eval", cmd_eval, "kNN and linear-probe accuracy, labels from class subfolders"},
    {"finetune", cmd_finetune, "fine-tune an encoder + linear classifier on labelled images"},
    {"predict", cmd_predict, "class probabilities of images from a fine-tuned model (CSV)"},
    {"export", cmd_export, "the encoder as safetensors for torchvision"},
    {"preview", cmd_preview, "a PNG grid of augmented views"},
};

static void help(FILE *f)
{
    fprintf(f, "usage: simclr COMMAND [options]   (simclr COMMAND --help for its options)\n\ncommands:\n");
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        fprintf(f, "  %-9s %s\n", commands[i].name, commands[i].what);
    fprintf(f, "\n  --version  print the library version\n\nman simclr for the whole manual.\n");
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        help(stderr);
        return CLI_USAGE;
    }
    if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
        help(stdout);
        return CLI_OK;
    }
    if (!strcmp(argv[1], "--version")) {
        printf("simclr (libsimclr %s)\n", simclr_version_string());
        return CLI_OK;
    }
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        if (!strcmp(argv[1], commands[i].name)) {
            setvbuf(stdout, NULL, _IOLBF, 0);
            return commands[i].run(argc, argv);
        }
    fprintf(stderr, "simclr: unknown command '%s'\n\n", argv[1]);
    help(stderr);
    return CLI_USAGE;
}
