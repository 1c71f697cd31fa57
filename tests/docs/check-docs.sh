#!/usr/bin/env bash
# Checks every fenced block of README.md and docs/*.md, so the docs cannot
# rot: C is compiled (and linked against libmemo and the generated blog
# repository), schemas go through `memoc --check`, Makefile snippets are run,
# shell is parsed, the ACL is the one tests/integration/test_acl.c tests.
# What each tag means is docs/README.md's "How the examples are checked";
# a block whose tag has no rule here, or a fence without a tag, fails.
#
#   tests/docs/check-docs.sh [FILE.md...]     default: README.md docs/*.md
#
# Run by `make check` and `make test` (with the environment of TEST_ENV);
# alone it uses build/. Needs build/memoc, build/libmemo.a and
# build/schemas/*.{h,o}. Prints FILE:LINE for every block that fails and
# exits 1.
set -u

top=${MEMO_TOP:-$(cd "$(dirname "$0")/../.." && pwd)}
build=${MEMO_BUILD_DIR:-$top/build}
memoc=${MEMOC:-$build/memoc}
schemas=${MEMO_SCHEMAS_DIR:-$build/schemas}
cc=${MEMO_CC:-cc}
# shellcheck disable=SC2206 # words on purpose
san=(${MEMO_SAN_CFLAGS:-})
cflags=(-std=c11 -Wall -Wextra -Werror -pedantic "${san[@]}"
        -I"$top/runtime/include" -I"$schemas")
# shellcheck disable=SC2207
libs=("$schemas"/*.o "$build/libmemo.a" $(pkg-config --libs hiredis libpq) -lpthread -lm)

cd "$top" || exit 2
if [ $# -eq 0 ]; then
    set -- README.md docs/*.md
fi
for f in "$memoc" "$build/libmemo.a" "$schemas/blog.h"; do
    [ -e "$f" ] || { echo "check-docs: $f is missing: run make first" >&2; exit 2; }
done

tmp=$(mktemp -d "${TMPDIR:-/tmp}/memo-docs.XXXXXX") || exit 2
trap 'rm -rf "$tmp"' EXIT

failed=0
declare -A checked=()
listings=0

# fail WHERE WHAT [LOG]: one failure, with the log indented under it.
fail() {
    failed=$((failed + 1))
    echo "$1: error: $2"
    [ -n "${3:-}" ] && [ -s "$3" ] && sed 's/^/    /' "$3"
}

# Split the files into blocks: $tmp/N.block holds block N's lines, and a
# manifest line "N <tab> FILE <tab> LINE <tab> LANG <tab> ATTRIBUTES" says
# where it starts (LINE: its first content line). Fences start at column 0;
# an indented one would escape the check, so it is an error.
awk -v dir="$tmp" '
    FNR == 1 && inblock { print FILENAME0 ":" start ": error: unclosed fence" > "/dev/stderr"; bad = 1; inblock = 0 }
    FNR == 1 { FILENAME0 = FILENAME }
    inblock && /^```[ \t]*$/ { inblock = 0; close(file); next }
    inblock { print > file; next }
    /^[ \t]+```/ { print FILENAME ":" FNR ": error: indented fence (blocks start at column 0)" > "/dev/stderr"; bad = 1; next }
    /^```/ {
        info = substr($0, 4); sub(/^[ \t]+/, "", info); sub(/[ \t]+$/, "", info)
        lang = info; sub(/[ \t].*/, "", lang)
        attrs = substr(info, length(lang) + 1); sub(/^[ \t]+/, "", attrs)
        n++; inblock = 1; start = FNR
        file = dir "/" n ".block"; printf "" > file
        printf "%d\t%s\t%d\t%s\t%s\n", n, FILENAME, FNR + 1, lang, attrs > (dir "/manifest")
        next
    }
    END {
        if (inblock) { print FILENAME0 ":" start ": error: unclosed fence" > "/dev/stderr"; bad = 1 }
        exit bad
    }' "$@" || failed=$((failed + 1))
touch "$tmp/manifest"

has_attr() { [[ " $1 " == *" $2 "* ]]; }
attr_value() { # attr_value ATTRS NAME: the VALUE of NAME=VALUE
    local a
    for a in $1; do [[ $a == "$2="* ]] && { echo "${a#*=}"; return; }; done
}

# --------------------------------------------------------------------- C

# A block with `main(` is a whole program: compiled as it stands and linked.
check_c_program() { # N FILE LINE
    local src=$tmp/$1.c
    { printf '#line %d "%s"\n' "$3" "$2"; cat "$tmp/$1.block"; } > "$src"
    "$cc" "${cflags[@]}" "$src" "${libs[@]}" -o "$tmp/$1.bin" > "$tmp/$1.log" 2>&1 ||
        { fail "$2:$3" "C program does not build" "$tmp/$1.log"; return; }
}

# Any other ```c block is a fragment: statements, wrapped in a function
# `void doc_block_N(memo_repo *repo)` after <stdio.h>, <stdlib.h>,
# <string.h>, <memo/memo.h> and "blog.h"; its own #include lines move to the
# top. Its variables live in a block of their own, so it may declare `repo`.
# Each fragment is then linked with libmemo and the generated code.
fragments=()
check_c_fragment() { # N FILE LINE
    local src=$tmp/$1.c
    {
        printf '#include <stdio.h>\n#include <stdlib.h>\n#include <string.h>\n'
        printf '#include <memo/memo.h>\n#include "blog.h"\n'
        grep -E '^[[:space:]]*#[[:space:]]*include' "$tmp/$1.block"
        printf 'void doc_block_%d(memo_repo *repo);\n' "$1"
        printf 'void doc_block_%d(memo_repo *repo)\n{\n    (void)repo;\n    {\n' "$1"
        printf '#line %d "%s"\n' "$3" "$2"
        sed -E 's/^[[:space:]]*#[[:space:]]*include.*//' "$tmp/$1.block"
        printf '    }\n}\n'
    } > "$src"
    "$cc" "${cflags[@]}" -c "$src" -o "$tmp/$1.o" > "$tmp/$1.log" 2>&1 ||
        { fail "$2:$3" "C fragment does not compile" "$tmp/$1.log"; return; }
    fragments+=("$1")
}

# ```c declarations: an excerpt of a generated header. It must compile on its
# own (after <memo/memo.h>), and agree with the real header: its prototypes
# are redeclared after "blog.h" and "team.h" (so a wrong type is a conflict) and linked
# (so a function that does not exist is an undefined reference), and every
# member of its `typedef struct NAME { ... } NAME;` must be a member of the
# real NAME, of the same type. It may show fewer members than there are.
check_c_declarations() { # N FILE LINE
    local src=$tmp/$1.c
    { printf '#include <memo/memo.h>\n#line %d "%s"\n' "$3" "$2"; cat "$tmp/$1.block"; } > "$src"
    "$cc" "${cflags[@]}" -fsyntax-only "$src" > "$tmp/$1.log" 2>&1 ||
        { fail "$2:$3" "C declarations do not compile on their own" "$tmp/$1.log"; return; }
    src=$tmp/$1.against.c
    awk -v n="$1" -v md="$2" -v first="$3" '
        # struct definitions: blanked (lines kept), members collected
        !instruct && /^[ \t]*typedef[ \t]+struct[ \t]+[A-Za-z_][A-Za-z0-9_]*[ \t]*\{/ {
            name = $0; sub(/^[ \t]*typedef[ \t]+struct[ \t]+/, "", name); sub(/[^A-Za-z0-9_].*/, "", name)
            instruct = 1; body = ""; sline = first + NR - 1
        }
        instruct {
            body = body " " $0; print ""
            if ($0 ~ ("}[ \t]*" name "[ \t]*;")) {
                instruct = 0
                sub(/^[^{]*\{/, "", body); sub(/}[^}]*$/, "", body)
                while (match(body, /\/\*([^*]|\*[^\/])*\*\//))
                    body = substr(body, 1, RSTART - 1) " " substr(body, RSTART + RLENGTH)
                k = split(body, decls, ";")
                for (i = 1; i <= k; i++) {
                    d = decls[i]; gsub(/^[ \t]+|[ \t]+$/, "", d)
                    if (d == "") continue
                    if (!match(d, /[A-Za-z_][A-Za-z0-9_]*$/)) {
                        asserts[++na] = sprintf("#line %d \"%s\"\n#error \"a member of %s the check does not understand: %s\"", sline, md, name, d)
                        continue
                    }
                    member = substr(d, RSTART); type = substr(d, 1, RSTART - 1)
                    sub(/[ \t]+$/, "", type)
                    asserts[++na] = sprintf("#line %d \"%s\"\n_Static_assert(__builtin_types_compatible_p(__typeof__(((%s *)0)->%s), %s), \"%s.%s is not %s in the generated header\");", sline, md, name, member, type, name, member, type)
                }
            }
            next
        }
        { print; text = text " " $0 }
        END {
            while (match(text, /\/\*([^*]|\*[^\/])*\*\//))
                text = substr(text, 1, RSTART - 1) " " substr(text, RSTART + RLENGTH)
            print "#line 1 \"check-docs\""
            for (i = 1; i <= na; i++) print asserts[i]
            # every function the excerpt declares, referenced so the link
            # finds it
            print "void (*const doc_refs_" n "[])(void) = {"
            k = split(text, decls, ";")
            for (i = 1; i <= k; i++)
                if (match(decls[i], /[A-Za-z_][A-Za-z0-9_]*[ \t]*\(/)) {
                    f = substr(decls[i], RSTART, RLENGTH - 1); sub(/[ \t]+$/, "", f)
                    print "    (void (*)(void))" f ","
                }
            print "    0};"
        }' "$tmp/$1.block" > "$tmp/$1.body"
    { printf '#include <memo/memo.h>\n#include "blog.h"\n#include "team.h"\n#line %d "%s"\n' "$3" "$2"
      cat "$tmp/$1.body"; } > "$src"
    "$cc" "${cflags[@]}" -c "$src" -o "$tmp/$1.o" > "$tmp/$1.log" 2>&1 ||
        { fail "$2:$3" "C declarations disagree with the generated header" "$tmp/$1.log"; return; }
    fragments+=("$1")
}

# ------------------------------------------------------------------ memo

# ```memo: `memoc --check` must accept it. A block without a `schema` line is
# a fragment of entities: `schema doc;` is put before it. `memo fails`: memoc
# must refuse it (exit status 1). `file=PATH` names the file memoc reads
# (messages show it). A ```text output block right after gets memoc's output,
# which must be the same, byte for byte.
last_output=""
check_memo() { # N FILE LINE ATTRS
    local rel offset=0 rc want=0
    rel=$(attr_value "$4" file)
    rel=${rel:-doc.memo}
    mkdir -p "$tmp/$1.memo.d/$(dirname "$rel")"
    local src=$tmp/$1.memo.d/$rel
    if ! grep -Eq '^[[:space:]]*schema[[:space:]]' "$tmp/$1.block"; then
        printf 'schema doc;\n' > "$src"
        offset=1
    fi
    cat "$tmp/$1.block" >> "$src"
    (cd "$tmp/$1.memo.d" && "$memoc" --check "$rel") > "$tmp/$1.out" 2>&1
    rc=$?
    has_attr "$4" fails && want=1
    last_output=$tmp/$1.out
    if [ $rc -ne $want ]; then
        # memoc's positions, turned into the Markdown file's
        awk -v rel="$rel" -v md="$2" -v base="$(($3 - 1 - offset))" '
            index($0, rel ":") == 1 {
                rest = substr($0, length(rel) + 2); l = rest; sub(/:.*/, "", l)
                if (l ~ /^[0-9]+$/) { print md ":" (l + base) substr(rest, length(l) + 1); next }
            }
            { print }' "$tmp/$1.out" > "$tmp/$1.log"
        fail "$2:$3" "memoc --check exited $rc, expected $want" "$tmp/$1.log"
    fi
}

# ``` text output: the output of the block before it, exactly.
check_output() { # N FILE LINE
    if [ -z "$last_output" ]; then
        fail "$2:$3" "an output block must follow a block that runs (\`\`\`memo)"
        return
    fi
    diff -u --label "docs ($2:$3)" --label "memoc" "$tmp/$1.block" "$last_output" \
        > "$tmp/$1.log" 2>&1 || fail "$2:$3" "the output shown is not memoc's" "$tmp/$1.log"
}

# ------------------------------------------------------------ make and sh

# ```make: a Makefile fragment, run (its first target) in an empty directory
# holding a copy of schemas/, with memoc and memo on PATH.
check_make() { # N FILE LINE
    local dir=$tmp/$1.make.d
    mkdir -p "$dir"
    cp -r schemas "$dir/"
    cp "$tmp/$1.block" "$dir/doc.mk"
    (cd "$dir" && PATH="$(dirname "$memoc"):$PATH" env -u MAKEFLAGS -u MFLAGS -u MAKELEVEL \
        make --no-print-directory -f doc.mk) \
        > "$tmp/$1.log" 2>&1 || fail "$2:$3" "the Makefile fragment fails" "$tmp/$1.log"
}

# ```sh: commands for a reader to run (they install, start servers or run
# the suites), so they are not run here, only parsed.
check_sh() { # N FILE LINE
    bash -n "$tmp/$1.block" 2>&1 |
        awk -v f="$tmp/$1.block: line " -v md="$2" -v base="$(($3 - 1))" '
            index($0, f) == 1 { rest = substr($0, length(f) + 1); l = rest; sub(/:.*/, "", l)
                                $0 = md ":" (l + base) substr(rest, length(l) + 1) }
            { print }' > "$tmp/$1.log"
    [ "${PIPESTATUS[0]}" -eq 0 ] || fail "$2:$3" "shell that does not parse" "$tmp/$1.log"
}

# ```redis: commands for redis-cli. An `ACL SETUSER USER RULES` line must
# give exactly the rules tests/integration/test_acl.c tests (MINIMAL_ACL).
check_redis() { # N FILE LINE
    local tested line rules
    tested=$(awk '/^#define MINIMAL_ACL/ { on = 1; next }
                  on { while (match($0, /"[^"]*"/)) { s = s substr($0, RSTART + 1, RLENGTH - 2)
                                                       $0 = substr($0, RSTART + RLENGTH) }
                       if ($0 !~ /\\[ \t]*$/) on = 0 }
                  END { print s }' tests/integration/test_acl.c)
    [ -n "$tested" ] || { fail "$2:$3" "MINIMAL_ACL not found in test_acl.c"; return; }
    while IFS= read -r line; do
        [[ $line =~ ^ACL\ SETUSER\ [^\ ]+\ (.*)$ ]] || continue
        rules=${BASH_REMATCH[1]}
        [ "$rules" = "$tested" ] || {
            printf 'docs:   %s\ntested: %s\n' "$rules" "$tested" > "$tmp/$1.log"
            fail "$2:$3" "this ACL is not the one test_acl.c tests" "$tmp/$1.log"
        }
    done < "$tmp/$1.block"
}

# -------------------------------------------------------------- the loop

while IFS=$'\t' read -r n file line lang attrs; do
    kind=$lang
    case $lang in
    c)
        if has_attr "$attrs" declarations; then
            kind="c declarations"
            check_c_declarations "$n" "$file" "$line"
        elif grep -Eq '(^|[^A-Za-z0-9_])main[[:space:]]*\(' "$tmp/$n.block"; then
            kind="c program"
            check_c_program "$n" "$file" "$line"
        else
            kind="c fragment"
            check_c_fragment "$n" "$file" "$line"
        fi ;;
    memo) check_memo "$n" "$file" "$line" "$attrs" ;;
    make) check_make "$n" "$file" "$line" ;;
    sh) check_sh "$n" "$file" "$line" ;;
    redis) check_redis "$n" "$file" "$line" ;;
    text | console)
        if has_attr "$attrs" output; then
            kind=output
            check_output "$n" "$file" "$line"
        else
            listings=$((listings + 1))
            continue # a listing: output or a session, shown as it was
        fi ;;
    "") fail "$file:$((line - 1))" "a fence without a tag (\`\`\`text for a listing)"; continue ;;
    *) fail "$file:$((line - 1))" "no rule checks \`\`\`$lang blocks (see docs/README.md)"; continue ;;
    esac
    [ "$lang" = memo ] || last_output=""
    checked[$kind]=$((${checked[$kind]:-0} + 1))
done < "$tmp/manifest"

# Relative links, outside code blocks: the file exists, and an anchor names a
# heading of the target page (GitHub's ids: lower case, punctuation dropped,
# spaces made hyphens). Links to the web are not followed.
awk -v q="'" '
    function norm(path,    n, i, k, part, out) {
        n = split(path, part, "/"); k = 0
        for (i = 1; i <= n; i++) {
            if (part[i] == "" || part[i] == ".") continue
            if (part[i] == ".." && k > 0 && out[k] != "..") { k--; continue }
            out[++k] = part[i]
        }
        path = ""
        for (i = 1; i <= k; i++) path = path (i > 1 ? "/" : "") out[i]
        return path
    }
    FNR == 1 { fence = 0; dir = FILENAME; if (!sub(/\/[^\/]*$/, "", dir)) dir = "." }
    /^```/ { fence = !fence; next }
    fence { next }
    pass == 1 && /^#+ / {
        h = $0; sub(/^#+ +/, "", h); h = tolower(h)
        gsub(/[^a-z0-9 _-]/, "", h); gsub(/ /, "-", h)
        ids[FILENAME "#" h] = 1
    }
    pass == 2 {
        line = $0; gsub(/`[^`]*`/, "", line)      # not in inline code
        while (match(line, /\]\([^)]*\)/)) {
            t = substr(line, RSTART + 2, RLENGTH - 3); line = substr(line, RSTART + RLENGTH)
            if (t ~ /^[a-z]+:/) continue
            anchor = ""
            if (i = index(t, "#")) { anchor = substr(t, i + 1); t = substr(t, 1, i - 1) }
            target = t == "" ? FILENAME : norm(dir "/" t)
            if (system("test -e " q target q) != 0) {
                print FILENAME ":" FNR ": error: link to a missing file: " t; bad++; continue
            }
            if (anchor != "" && target ~ /\.md$/ && !((target "#" anchor) in ids)) {
                print FILENAME ":" FNR ": error: no heading #" anchor " in " target; bad++
            }
        }
    }
    END { exit bad > 0 }' pass=1 README.md docs/*.md "$@" pass=2 "$@" > "$tmp/links.log"
links_failed=$?
[ -s "$tmp/links.log" ] && cat "$tmp/links.log"
if [ $links_failed -ne 0 ]; then
    failed=$((failed + $(grep -c ': error: ' "$tmp/links.log")))
fi

# Each fragment and declarations block, linked: every function it names
# exists.
printf 'int main(void)\n{\n    return 0;\n}\n' > "$tmp/main.c"
"$cc" "${cflags[@]}" -c "$tmp/main.c" -o "$tmp/main.o" || exit 2
for n in "${fragments[@]}"; do
    where=$(awk -F '\t' -v n="$n" '$1 == n { print $2 ":" $3 }' "$tmp/manifest")
    "$cc" "${san[@]}" "$tmp/main.o" "$tmp/$n.o" "${libs[@]}" -o "$tmp/$n.bin" \
        > "$tmp/$n.log" 2>&1 || fail "$where" "C block does not link" "$tmp/$n.log"
done

total=0
summary=""
for kind in "${!checked[@]}"; do
    total=$((total + checked[$kind]))
    summary="$summary ${checked[$kind]} $kind,"
done
echo "check-docs: $total blocks checked (${summary# }${summary:+ }$listings listings not checked)," \
     "links checked, $failed failed"
[ $failed -eq 0 ]
