#!/usr/bin/env bash
# Prints the summary table of a torture run from its metrics file: one line
# per scenario, "NAME... OPS STALE FAILED DEGRADED RECOVERY_MS".
set -eu
file=${1:?metrics file}
[ -s "$file" ] || { echo "no metrics in $file" >&2; exit 1; }
printf '\n%-40s %10s %7s %7s %9s %12s\n' scenario operations stale failed degraded recovery_ms
awk '{
    n = NF; name = $1
    for (i = 2; i <= n - 5; i++) name = name " " $i
    printf "%-40s %10d %7d %7d %9d %12d\n", name, $(n-4), $(n-3), $(n-2), $(n-1), $n
}' "$file"
