/* simclr export: the encoder as safetensors for torchvision. */
#include "cli.h"

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
                       "Writes the encoder's weights under torchvision's names: in Python,\n"
                       "  m = torchvision.models.resnet18(); m.fc = torch.nn.Identity()\n"
                       "  m.load_state_dict(safetensors.torch.load_file(PATH))\n"
                       "(first conv and width as trained; see simclr.cfg in the model folder).",
                       opts, 2, pos, 0, &n_pos);
    if (rc) return rc < 0 ? CLI_OK : rc;
    simclr_context *ctx;
    simclr_status st = simclr_context_create(NULL, 1, NULL, &ctx);
    if (st != SIMCLR_OK) return cli_fail("export", "context", st);
    model_cfg cfg;
    simclr_module *enc = NULL;
    rc = model_load("export", ctx, model, &cfg, &enc);
    if (!rc && (st = simclr_module_export_safetensors(enc, out)) != SIMCLR_OK) rc = cli_fail("export", out, st);
    if (!rc) printf("wrote %s (%s)\n", out, simclr_module_arch(enc));
    simclr_module_destroy(enc);
    simclr_context_destroy(ctx);
    return rc;
}
