#!/bin/sh
# Installs the Debian packages a target needs, or names them exactly.
#   sh tools/deps.sh test   build + everything `make test` reads (the PyTorch
#                           cross-checks, and Fashion-MNIST for the examples it runs)
#   sh tools/deps.sh demo   build + the Fashion-MNIST data set
# `make test` and `make demo` call this first; CI calls nothing before them,
# so a package missing from a list here fails CI, not a user's machine.
set -e
BUILD_PKGS="gcc g++ make pkg-config libopenblas-dev libblas-dev zlib1g-dev"
# The C++ embedding example that `make test` runs reads Fashion-MNIST.
TEST_PKGS="libcmocka-dev python3 python3-numpy python3-pytest python3-torch python3-torchvision python3-cffi dataset-fashion-mnist"
# Issue 13: the image companion (libpng, libjpeg-turbo), its PIL cross-check, pip for the binding test.
IMAGE_PKGS="libpng-dev libjpeg-dev python3-pil python3-pip"
DEMO_PKGS="dataset-fashion-mnist"
# The MPI companion and its mpirun tests (make mpi, make test-mpi).
MPI_PKGS="openmpi-bin libopenmpi-dev"
# Issue 28: the medical companion (DCMTK, OpenJPEG, libtiff), and its checks:
# pydicom writes the DICOM files, GDCM's gdcmconv compresses them (an encoder
# other than the decoder's library), tifffile/PIL and libtiff's tools the TIFFs.
MEDICAL_PKGS="libdcmtk-dev libopenjp2-7-dev libtiff-dev python3-pydicom libgdcm-tools python3-tifffile libtiff-tools"
# make test's fuzz-smoke and tsan (clang, libFuzzer runtime) and abi-check (abidw/abidiff).
TEST_PKGS="$TEST_PKGS clang libclang-rt-14-dev abigail-tools"
case "${1:-test}" in
  test) want="$BUILD_PKGS $TEST_PKGS $IMAGE_PKGS $MPI_PKGS $MEDICAL_PKGS" ;;
  demo) want="$BUILD_PKGS $DEMO_PKGS" ;;
  all)  want="$BUILD_PKGS $TEST_PKGS $IMAGE_PKGS $DEMO_PKGS $MPI_PKGS $MEDICAL_PKGS" ;;
  *) echo "deps.sh: unknown set '$1' (test, demo, all)" >&2; exit 2 ;;
esac
missing=""
for p in $want; do
  st=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
  case "$st" in *"install ok installed"*) ;; *) missing="$missing $p" ;; esac
done
[ -z "$missing" ] && exit 0
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "deps: installing$missing"
  export DEBIAN_FRONTEND=noninteractive
  # An old or empty package list finds nothing: refresh it first.
  apt-get update -q >/dev/null
  apt-get install -y -q --no-install-recommends $missing
else
  echo "deps: missing Debian packages. Run as root:" >&2
  echo "  apt-get update && apt-get install -y$missing" >&2
  exit 1
fi
