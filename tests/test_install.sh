#!/bin/sh
# make install into a temporary prefix, build a program outside the tree with
# `cc app.c $(pkg-config --cflags --libs simclr)`, run it, then make
# uninstall and check nothing of ours is left.
set -e
make=${MAKE:-make}
prefix=$(mktemp -d)
trap 'rm -rf "$prefix"' EXIT
$make -s install PREFIX="$prefix" >/dev/null
cat > "$prefix/app.c" <<'C'
#include <simclr.h>
#include <stdio.h>
int main(void)
{
    if (simclr_version_number() != SIMCLR_VERSION_NUMBER) return 1;
    simclr_context *ctx;
    if (simclr_context_create(NULL, 1, NULL, &ctx) != SIMCLR_OK) return 1;
    simclr_module *m;
    if (simclr_resnet_create(ctx, 18, 4, 1, SIMCLR_STEM_CIFAR, 1, &m) != SIMCLR_OK) return 1;
    printf("installed libsimclr %s: resnet18 width 4 has %lld parameters\n", simclr_version_string(),
           (long long)simclr_module_param_scalars(m));
    simclr_module_destroy(m);
    simclr_context_destroy(ctx);
    return 0;
}
C
export PKG_CONFIG_PATH="$prefix/lib/pkgconfig"
cc "$prefix/app.c" -o "$prefix/app" $(pkg-config --cflags --libs simclr)
LD_LIBRARY_PATH="$prefix/lib" "$prefix/app"
readelf -d "$prefix/app" | grep -q 'NEEDED.*libsimclr.so.0' || { echo "install: app does not link libsimclr.so.0"; exit 1; }
$make -s uninstall PREFIX="$prefix" >/dev/null
left=$(find "$prefix" -name '*simclr*' | head -5)
[ -z "$left" ] || { echo "install: uninstall left: $left"; exit 1; }
echo "install: make install, pkg-config build, make uninstall ok"
