#!/bin/sh
# abi-check: compares the ABI of a built libsimclr.so with a committed
# baseline of a release (tests/abi/libsimclr-X.Y.Z.abi, made by abidw from
# that release's library; make abi-check runs this once per baseline). Fails
# on any incompatible change: a removed or changed function or variable
# (signature, parameter or return type, a struct's layout, an enum's
# values), a symbol moved to another version node. New functions are
# compatible and only listed; abidiff files a type's new name (a typedef
# kept as an alias) as harmless.
#   sh tools/abi_check.sh LIB.so [BASELINE.abi]
#   sh tools/abi_check.sh --abi CURRENT.abi [BASELINE.abi]   (compare two dumps)
#   sh tools/abi_check.sh --dump LIB.so OUT.abi   (write a baseline: make abi-baseline)
set -eu
dump() { # dump LIB.so OUT.abi: the one abidw invocation baselines and checks share
  abidw --headers-dir include --drop-private-types --no-corpus-path --short-locs --no-comp-dir-path \
        --out-file "$2" "$1"
}
if [ "$1" = "--dump" ]; then dump "$2" "$3"; echo "abi-baseline: wrote $3 from $2"; exit 0; fi
if [ "$1" = "--abi" ]; then cur="$2"; shift 2; else
  so="$1"; shift
  cur="${TMPDIR:-/tmp}/simclr_abi.$$.abi"
  trap 'rm -f "$cur"' EXIT
  dump "$so" "$cur"
fi
base="${1:-tests/abi/libsimclr-0.1.0.abi}"
set +e
report=$(abidiff "$base" "$cur")
rc=$?
set -e
# abidiff's exit code: bit 1 error, 2 usage, 4 some ABI change, 8 a change
# it knows to be incompatible. Bit 4 alone also covers changed signatures
# and types, so the summary lines decide between those and additions.
if [ $((rc & 3)) -ne 0 ]; then echo "$report"; echo "abi-check: abidiff failed (exit $rc)"; exit 1; fi
removed_changed=$(printf '%s\n' "$report" | sed -n 's/^\(Functions\|Variables\) changes summary: \([0-9]*\) Removed[^,]*, \([0-9]*\) Changed.*/\2 \3/p' |
                  awk '{s += $1 + $2} END {print s + 0}')
symbols_removed=$(printf '%s\n' "$report" | sed -n 's/^\(Function\|Variable\) symbols changes summary: \([0-9]*\) Removed.*/\2/p' |
                  awk '{s += $1} END {print s + 0}')
if [ $((rc & 8)) -ne 0 ] || [ "$removed_changed" -ne 0 ] || [ "$symbols_removed" -ne 0 ]; then
  echo "$report"
  echo "abi-check: INCOMPATIBLE with $(basename "$base") (abidiff exit $rc)"
  exit 1
fi
added=$(printf '%s\n' "$report" | sed -n 's/^Functions changes summary: .* \([0-9]*\) Added.*/\1/p')
echo "abi-check: compatible with $(basename "$base") (${added:-0} functions added, none removed or changed)"
