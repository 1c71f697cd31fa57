#!/usr/bin/env bash
# Every C file of the project is formatted as .clang-format says (run
# `make format` to apply it). Generated code and the parser's inputs are not
# C files of ours to format.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
command -v clang-format >/dev/null || { echo "format: clang-format is not installed (tests/deps.sh)" >&2; exit 1; }
bad=0
while IFS= read -r f; do
    if ! clang-format --style=file --dry-run --Werror "$f" 2>/dev/null; then
        echo "format: $f is not formatted (make format)"
        bad=1
    fi
done < <(git ls-files --cached --others --exclude-standard '*.c' '*.h' 2>/dev/null || find runtime gen cli tests bench examples -name '*.[ch]')
[ $bad -eq 0 ] && echo "format: every C file as .clang-format says"
exit $bad
