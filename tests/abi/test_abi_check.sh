#!/bin/sh
# Self-test of tools/abi_check.sh: each kind of incompatible change, made
# by editing a copy of the 0.1.0 baseline dump, must fail the check, and an
# appended enum value must pass; against the 0.2.0 baseline, a changed or
# removed 0.2 function must fail too. A check that passed everything would
# fail here.
set -eu
base=tests/abi/libsimclr-0.1.0.abi
tmp="${TMPDIR:-/tmp}/simclr_abi_selftest.$$"
mkdir -p "$tmp"; trap 'rm -rf "$tmp"' EXIT
double=$(sed -n "s/.*<type-decl name='double'.* id='\(type-id-[0-9]*\)'.*/\1/p" "$base" | head -1)
int=$(sed -n "s/.*<type-decl name='int'.* id='\(type-id-[0-9]*\)'.*/\1/p" "$base" | head -1)
[ -n "$double" ] && [ -n "$int" ] || { echo "abi self-test: baseline lacks int/double"; exit 1; }
expect() { # expect pass|fail NAME SED-SCRIPT
  sed "$3" "$base" > "$tmp/cur.abi"
  if cmp -s "$tmp/cur.abi" "$base"; then echo "abi self-test: '$2' edited nothing"; exit 1; fi
  if sh tools/abi_check.sh --abi "$tmp/cur.abi" "$base" > "$tmp/out" 2>&1; then got=pass; else got=fail; fi
  if [ "$got" != "$1" ]; then cat "$tmp/out"; echo "abi self-test: '$2' should $1, did $got"; exit 1; fi
  echo "abi self-test: $2 -> $got (as it should)"
}
expect fail "an enum value renumbered" "s/<enumerator name='SIMCLR_E_IO' value='4'/<enumerator name='SIMCLR_E_IO' value='40'/"
expect pass "an enum value appended" "s|<enumerator name='SIMCLR_E_INTERNAL' value='9'/>|&<enumerator name='SIMCLR_E_NEW' value='10'/>|"
expect fail "a parameter's type changed" "/function-decl name='simclr_tensor_reshape'/,/<\/function-decl>/s/<parameter type-id='$int' name='ndim'/<parameter type-id='$double' name='ndim'/"
expect fail "a function removed" "/<elf-symbol name='simclr_tensor_reshape'/d"
expect fail "a symbol moved to another version node" "s/<elf-symbol name='simclr_knn_eval' version='SIMCLR_0'/<elf-symbol name='simclr_knn_eval' version='SIMCLR_0.1'/;s/elf-symbol-id='simclr_knn_eval@@SIMCLR_0'/elf-symbol-id='simclr_knn_eval@@SIMCLR_0.1'/"
expect fail "a struct member moved" "/layout-offset-in-bits='128'>/{N;s/layout-offset-in-bits='128'>\(\n *<var-decl name='user'\)/layout-offset-in-bits='192'>\1/}"
n=6
base=tests/abi/libsimclr-0.2.0.abi
if [ -f "$base" ]; then
  double=$(sed -n "s/.*<type-decl name='double'.* id='\(type-id-[0-9]*\)'.*/\1/p" "$base" | head -1)
  int=$(sed -n "s/.*<type-decl name='int'.* id='\(type-id-[0-9]*\)'.*/\1/p" "$base" | head -1)
  [ -n "$double" ] && [ -n "$int" ] || { echo "abi self-test: 0.2.0 baseline lacks int/double"; exit 1; }
  expect fail "a 0.2 function's parameter type changed (0.2.0 baseline)" "/function-decl name='simclr_context_set'/,/<\/function-decl>/s/<parameter type-id='$double' name='value'/<parameter type-id='$int' name='value'/"
  expect fail "a 0.2 function removed (0.2.0 baseline)" "/<elf-symbol name='simclr_knn_eval_n'/d"
  n=8
fi
echo "abi self-test: all $n cases behave"
