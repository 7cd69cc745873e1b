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
# issue 13: the image companion through pkg-config, the simclr command, its man page
cat > "$prefix/img.c" <<'C'
#include <simclr_image.h>
#include <stdio.h>
int main(int argc, char **argv)
{
    uint8_t px[12] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12}, *back;
    int64_t h, w;
    if (simclr_image_write_png(argv[1], px, 2, 2, 3) != SIMCLR_OK) return 1;
    if (simclr_image_decode_file(argv[1], 3, 0, 0, &back, &h, &w) != SIMCLR_OK) return 1;
    int same = h == 2 && w == 2 && back[11] == 12;
    simclr_image_free(back);
    printf("installed libsimclr_image: PNG round trip %s\n", same ? "ok" : "wrong");
    return same ? 0 : 1;
}
C
cc "$prefix/img.c" -o "$prefix/img" $(pkg-config --cflags --libs libsimclr_image)
LD_LIBRARY_PATH="$prefix/lib" "$prefix/img" "$prefix/x.png"
"$prefix/bin/simclr" --help >/dev/null || { echo "install: simclr --help failed"; exit 1; }
[ -s "$prefix/share/man/man1/simclr.1" ] || { echo "install: no man page"; exit 1; }
rm -f "$prefix/x.png"
# issue 24: the MPI companion, installed when mpicc is found: its header from
# the prefix, its .pc, the shared library, errors through simclr_last_error().
if command -v "${MPICC:-mpicc}" >/dev/null 2>&1; then
  [ -f "$prefix/include/simclr_mpi.h" ] && [ -f "$prefix/lib/pkgconfig/libsimclr_mpi.pc" ] \
    || { echo "install: simclr_mpi.h or libsimclr_mpi.pc not installed"; exit 1; }
  cat > "$prefix/mpiapp.c" <<'C'
#include <simclr_mpi.h>
#include <stdio.h>
#include <string.h>
int main(int argc, char **argv)
{
    MPI_Init(&argc, &argv);
    simclr_mpi *mpi = NULL;
    int ok = simclr_mpi_create(MPI_COMM_WORLD, 0.0, &mpi) == SIMCLR_E_INVALID && mpi == NULL &&
             strncmp(simclr_last_error(), "simclr_mpi_create: ", 19) == 0;
    ok = ok && simclr_mpi_create(MPI_COMM_WORLD, 10.0, &mpi) == SIMCLR_OK && simclr_mpi_size(mpi) == 1;
    simclr_mpi_destroy(mpi);
    MPI_Finalize();
    printf("installed libsimclr_mpi: %s\n", ok ? "ok" : "wrong");
    return ok ? 0 : 1;
}
C
  "${MPICC:-mpicc}" "$prefix/mpiapp.c" -o "$prefix/mpiapp" $(pkg-config --cflags --libs libsimclr_mpi)
  readelf -d "$prefix/mpiapp" | grep -q 'NEEDED.*libsimclr_mpi.so.0' \
    || { echo "install: the MPI app does not link libsimclr_mpi.so.0"; exit 1; }
  LD_LIBRARY_PATH="$prefix/lib" timeout 120 mpirun --mca btl self,vader --mca oob_tcp_if_include lo \
    --allow-run-as-root --quiet -np 1 -x LD_LIBRARY_PATH "$prefix/mpiapp"
  rm -f "$prefix/mpiapp" "$prefix/mpiapp.c"
fi
$make -s uninstall PREFIX="$prefix" >/dev/null
left=$(find "$prefix" -name '*simclr*' | head -5)
[ -z "$left" ] || { echo "install: uninstall left: $left"; exit 1; }
echo "install: make install, pkg-config build, make uninstall ok"
