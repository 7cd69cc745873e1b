#!/bin/sh
# Runs every cmocka test program, prints one summary line, fails if any failed.
passed=0; failed=0; failed_names=""
for t in "$@"; do
  if "$t"; then passed=$((passed + 1)); else failed=$((failed + 1)); failed_names="$failed_names $(basename "$t")"; fi
done
echo "programs: $passed passed, $failed failed"
[ "$failed" -eq 0 ] || { echo "failed:$failed_names"; exit 1; }
