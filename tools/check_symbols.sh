#!/bin/sh
# Compares the shared object's exported functions with the committed list:
# a removed or renamed symbol breaks the ABI and fails; a new one must be
# added to the list on purpose (append-only).
set -e
so="$1"; list="$2"
actual=$(nm -D --defined-only "$so" | awk '$2 != "A" {print $3}' | sed 's/@.*//' | sort -u)
bad=$(echo "$actual" | grep -v '^simclr_' | grep -v '^SIMCLR_' || true)
if [ -n "$bad" ]; then echo "symbols: exported names outside simclr_*:"; echo "$bad"; exit 1; fi
internal=$(echo "$actual" | grep '^simclr__' || true)
if [ -n "$internal" ]; then echo "symbols: internal simclr__ names exported:"; echo "$internal"; exit 1; fi
expected=$(grep -v '^#' "$list" | sort -u)
missing=$(printf '%s\n' "$expected" > /tmp/simclr_exp.$$; printf '%s\n' "$actual" > /tmp/simclr_act.$$; comm -23 /tmp/simclr_exp.$$ /tmp/simclr_act.$$)
extra=$(comm -13 /tmp/simclr_exp.$$ /tmp/simclr_act.$$)
rm -f /tmp/simclr_exp.$$ /tmp/simclr_act.$$
if [ -n "$missing" ]; then echo "symbols: ABI break, these are no longer exported:"; echo "$missing"; exit 1; fi
if [ -n "$extra" ]; then echo "symbols: new exports not in $list (add them):"; echo "$extra"; exit 1; fi
echo "symbols: $(echo "$actual" | wc -l) exported, all simclr_*, matching $list"
# Every function the header declares must be exported (a declared but
# missing function would only fail when a host links it).
declared=$(grep -o '^SIMCLR_API[^(]*(' include/simclr.h | sed 's/.*[^a-z0-9_]\(simclr_[a-z0-9_]*\)($/\1/' | sort -u)
undeclared=$(printf '%s\n' "$declared" > /tmp/simclr_dec.$$; printf '%s\n' "$actual" > /tmp/simclr_act.$$; comm -23 /tmp/simclr_dec.$$ /tmp/simclr_act.$$)
rm -f /tmp/simclr_dec.$$ /tmp/simclr_act.$$
if [ -n "$undeclared" ]; then echo "symbols: declared in simclr.h but not exported:"; echo "$undeclared"; exit 1; fi
echo "symbols: all $(echo "$declared" | wc -l) functions declared in simclr.h are exported"
