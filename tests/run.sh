#!/usr/bin/env bash
# Runs test binaries one after another, each bounded in time, and prints a
# summary. Exit status 1 if any failed.
set -u
limit=${MEMO_TEST_TIMEOUT:-300}
passed=0
failed=()
for t in "$@"; do
    echo "=== $t"
    t0=$(date +%s)
    if timeout --kill-after=10 "$limit" "$t"; then
        passed=$((passed + 1))
        echo "=== $t: ok ($(($(date +%s) - t0))s)"
    else
        rc=$?
        [ $rc -eq 124 ] && echo "=== $t: timed out after ${limit}s"
        failed+=("$t")
        echo "=== $t: FAILED ($(($(date +%s) - t0))s)"
    fi
done
echo
echo "$passed passed, ${#failed[@]} failed"
for t in "${failed[@]}"; do echo "  FAILED: $t"; done
[ ${#failed[@]} -eq 0 ]
