/* The `simclr` command: shared pieces of the subcommands. */
#ifndef SIMCLR_CLI_H
#define SIMCLR_CLI_H

#include <stdint.h>
#include <stdio.h>

#include "simclr.h"
#include "simclr_image.h"

/* Exit codes: 0 done, 1 an input or run-time error (the message names the
 * file), 2 a usage error. */
enum { CLI_OK = 0, CLI_FAIL = 1, CLI_USAGE = 2 };

/* ---- options ---- */
typedef enum { OPT_INT, OPT_DOUBLE, OPT_STRING, OPT_FLAG } opt_type;
typedef struct cli_opt {
    const char *name; /* "--batch" */
    opt_type type;
    void *dst;        /* int64_t*, double*, const char**, int* */
    const char *help;
} cli_opt;

/* The rows every command that runs a model shares (one wording, one range:
 * common.c's validation table holds the ranges). */
#define CLI_OPT_THREADS(dst) {"--threads", OPT_INT, (dst), "worker threads, 0..256 (default 0 = all cores)"}
#define CLI_OPT_QUIET(dst) {"--quiet", OPT_FLAG, (dst), "no progress bar"}

/* Parses argv[first..] against opts (--name value or --name=value);
 * positional arguments are collected into pos (up to max_pos, the count in
 * *n_pos). Every value is checked against the accepted values of its option
 * (one table in common.c for all subcommands: give a new option its row
 * there). Prints usage on --help (returns -1) and, for an unknown option, a
 * missing value or a value out of range, a message naming the option and
 * what it accepts (returns CLI_USAGE); 0 when fine. */
int cli_parse(int argc, char **argv, int first, const char *usage, const char *about, const cli_opt *opts,
              int n_opts, char **pos, int max_pos, int *n_pos);
/* A share given as "N%" (0 < N <= 100) or a fraction (0 < x <= 1): the
 * fraction, or -1 when the text is neither. */
double cli_share(const char *text);
/* Whether the last cli_parse saw the option name on the command line. */
int cli_given(const char *name);
/* Exit status 1 with a message when the folder an output file goes to does
 * not exist (checked before any work, so nothing is written in vain). */
int cli_check_output(const char *cmd, const char *flag, const char *path);

/* Prints "simclr CMD: what: last error" and returns CLI_FAIL. */
int cli_fail(const char *cmd, const char *what, simclr_status st);
/* Prints "simclr CMD: message" and returns CLI_FAIL. */
int cli_error(const char *cmd, const char *message);

double cli_now(void);

/* ---- the model folder: simclr.cfg + encoder.simclr (+ trainer.ckpt, log.csv) ---- */
typedef struct model_cfg {
    int64_t depth, width, channels, size, head_hidden, head_out;
    char stem[16];
} model_cfg;

int cfg_write(const char *cmd, const char *dir, const model_cfg *cfg);
int cfg_read(const char *cmd, const char *dir, model_cfg *cfg);
/* The class names of a fine-tuned folder's simclr.cfg ("class NAME" lines,
 * in label order, at least 2), malloc'ed; *k their count. */
int cfg_classes(const char *cmd, const char *dir, char ***names, int *k);
void cfg_classes_free(char **names, int k);
/* Creates the encoder of cfg and loads DIR/encoder.simclr into it. */
int model_load(const char *cmd, simclr_context *ctx, const char *dir, model_cfg *cfg, simclr_module **enc);

/* Writes a file atomically from a buffer (temporary + fsync + rename). */
int write_atomic(const char *cmd, const char *path, const void *data, size_t size);
/* F32 [n, d] as a NumPy .npy file, atomically. */
int write_npy(const char *cmd, const char *path, const float *x, int64_t n, int64_t d);

/* ---- input images: a folder (labels from class subfolders when it has
 * them) or a list of files ---- */
typedef struct image_input {
    simclr_image_folder *folder;
    char **files;
    int64_t n_files;
    int64_t count;
    int labeled;
    /* file mode: the current batch's pixels */
    uint8_t **px;
    int64_t n_px;
} image_input;

/* Opens args[0] as a folder when it is one (and n_args == 1), else every
 * arg as an image file. labels: 1 require class subfolders, 0 never,
 * -1 when present. */
int input_open(const char *cmd, simclr_context *ctx, char **args, int n_args, int channels, int labels,
               int skip_bad, image_input *in);
void input_close(image_input *in);
const char *input_path(const image_input *in, int64_t i);
int32_t input_label(const image_input *in, int64_t i);
/* Loads images [first, first + n) into list; *n_kept and kept[] as
 * simclr_image_folder_load (skipped images only with skip_bad). */
int input_load(const char *cmd, image_input *in, const int64_t *indices, int64_t n, simclr_image_list *list,
               int64_t *kept, int64_t *n_kept);

/* Features of every image (F32 [count, D], malloc'ed) through an embedder;
 * kept[i] = 1 for embedded images (skipped ones stay 0 rows). */
int embed_all(const char *cmd, simclr_context *ctx, simclr_module *enc, const model_cfg *cfg, image_input *in,
              float **feat, uint8_t **kept, int quiet);

/* ---- progress ---- */
/* "what [####....]  50% done/total unit extra elapsed 0:12 ETA 0:12" on
 * stderr: redrawn in place on a terminal, sparse lines otherwise (a log). */
void progress_line(const char *what, int64_t done, int64_t total, const char *unit, double elapsed, const char *extra,
                   int final);

/* ---- pictures ---- */
/* Loss and contrastive-accuracy curves (two panels), PNG. */
int plot_curves(const char *cmd, const char *path, const double *loss, const double *acc, int64_t n);
/* PCA of features [n, d] to 2-D, dots coloured by label (-1: gray), PNG; a
 * legend names the classes (classes NULL: "class K"). */
int plot_pca(const char *cmd, const char *path, const float *x, int64_t n, int64_t d, const int32_t *labels,
             const simclr_image_folder *classes);

/* ---- subcommands ---- */
int cmd_train(int argc, char **argv);
int cmd_embed(int argc, char **argv);
int cmd_eval(int argc, char **argv);
int cmd_export(int argc, char **argv);
int cmd_preview(int argc, char **argv);
int cmd_finetune(int argc, char **argv);
int cmd_predict(int argc, char **argv);

#endif
