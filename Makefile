# memo: one non-recursive Makefile. Objects, generated parsers, generated
# repositories and binaries all live under $(B).
#
#   make            memoc and libmemo.a
#   make demo       set up (packages, private servers), run examples/blog
#   make check      set up, then every test three times: built as is, under
#                   AddressSanitizer + UndefinedBehaviorSanitizer (with
#                   LeakSanitizer), and the threaded ones under ThreadSanitizer
#   make test       just the first of those (the quick loop while working)
#   make sanitize   just the second; make tsan just the third
#   make bench      the benchmark against raw hiredis and libpq
#   make install PREFIX=/usr/local
#
# CFLAGS, CPPFLAGS and LDFLAGS are yours: they are added to ours.
#
# The set-up targets run tests/deps.sh first, then make themselves again so
# that pkg-config sees the freshly installed libraries.

CFLAGS ?= -O2 -g
MEMO_CFLAGS = -std=c11 -D_POSIX_C_SOURCE=200809L -Wall -Wextra -Werror -Wshadow \
              -Wstrict-prototypes -Wmissing-prototypes -Wwrite-strings -Wformat=2
SAN_CFLAGS ?=
B ?= build
PREFIX ?= /usr/local

PKGS = hiredis libpq jansson
# -isystem: hiredis 0.14's sds.h is not clean under strict warnings.
PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS) 2>/dev/null | sed 's/-I/-isystem /g')
PKG_LIBS := $(shell pkg-config --libs $(PKGS) 2>/dev/null)
RT_LIBS := $(shell pkg-config --libs hiredis libpq 2>/dev/null)
CMOCKA_LIBS := $(shell pkg-config --libs cmocka 2>/dev/null)

ALL_CFLAGS = $(MEMO_CFLAGS) $(CPPFLAGS) $(CFLAGS) $(SAN_CFLAGS) -MMD -MP
# what every link adds
ALL_LDFLAGS = $(CFLAGS) $(SAN_CFLAGS) $(LDFLAGS)
LDLIBS_RT = $(PKG_LIBS) -lpthread -lm

.PHONY: all check test sanitize tsan demo bench torture install clean deps \
        run-check run-demo run-bench run-torture tests
.DEFAULT_GOAL := all
.DELETE_ON_ERROR:
# generated sources are results too: never delete them as intermediates
.SECONDARY:

# ------------------------------------------------------------------ memoc

GEN_SRC = gen/ast.c gen/diag.c gen/names.c gen/check.c gen/lower.c gen/emit.c gen/emit_h.c \
          gen/emit_c.c gen/emit_sql.c gen/migrate.c gen/main.c
GEN_OBJ = $(GEN_SRC:%.c=$(B)/%.o) $(B)/gen/parser.o $(B)/gen/lexer.o $(B)/gen/sha256.o
MEMOC = $(B)/memoc

# grouped (&:): one bison run makes both, even under make -j
$(B)/gen/parser.c $(B)/gen/parser.h &: gen/parser.y
	@mkdir -p $(@D)
	bison -Wall -Werror --header=$(B)/gen/parser.h -o $(B)/gen/parser.c $<

$(B)/gen/lexer.c $(B)/gen/lexer.h &: gen/lexer.l
	@mkdir -p $(@D)
	flex --header-file=$(B)/gen/lexer.h -o $(B)/gen/lexer.c $<

GEN_INC = -Igen -I$(B)/gen -Iruntime/include -Iruntime/src

$(B)/gen/%.o: gen/%.c $(B)/gen/parser.h $(B)/gen/lexer.h
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) $(GEN_INC) -c $< -o $@

# bison's and flex's output: our warnings, less those their skeletons trip.
GEN_OUT_CFLAGS = -Wno-unused-function -Wno-sign-compare -Wno-missing-prototypes
$(B)/gen/parser.o: $(B)/gen/parser.c $(B)/gen/lexer.h
	$(CC) $(ALL_CFLAGS) $(GEN_OUT_CFLAGS) $(GEN_INC) -c $< -o $@
$(B)/gen/lexer.o: $(B)/gen/lexer.c $(B)/gen/parser.h
	$(CC) $(ALL_CFLAGS) $(GEN_OUT_CFLAGS) $(GEN_INC) -c $< -o $@
$(B)/gen/sha256.o: runtime/src/sha256.c
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) -c $< -o $@

$(MEMOC): $(GEN_OBJ)
	$(CC) $(ALL_LDFLAGS) $^ -o $@

all: $(MEMOC)



# ---------------------------------------------------------------- libmemo

RT_SRC = $(wildcard runtime/src/*.c)
RT_OBJ = $(RT_SRC:%.c=$(B)/%.o)
LIBMEMO = $(B)/libmemo.a
RT_INC = -Iruntime/include -Iruntime/src

# Position-independent, so the same objects make the static and the shared
# library.
$(B)/runtime/src/%.o: runtime/src/%.c
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) -fPIC $(RT_INC) $(PKG_CFLAGS) -c $< -o $@

$(LIBMEMO): $(RT_OBJ)
	rm -f $@
	$(AR) rcs $@ $^

# the version is memo.h's MEMO_VERSION, defined there only
VERSION := $(shell sed -n 's/^\#define MEMO_VERSION "\(.*\)"/\1/p' runtime/include/memo/memo.h)
SOMAJOR = 0
LIBMEMO_SO = $(B)/libmemo.so.$(VERSION)
$(LIBMEMO_SO): $(RT_OBJ) runtime/libmemo.map
	$(CC) $(ALL_LDFLAGS) -shared -Wl,-soname,libmemo.so.$(SOMAJOR) \
	    -Wl,--version-script=runtime/libmemo.map $(RT_OBJ) $(RT_LIBS) -lpthread -lm -o $@

all: $(LIBMEMO) $(LIBMEMO_SO)

# ------------------------------------------------------------- memo (tool)

# The tool reads schema files with memoc's front end and lowering (gen/lower.c
# builds the descriptors memoc prints), so one binary serves every schema.
MEMO_TOOL = $(B)/memo
TOOL_GEN_OBJ = $(filter-out $(B)/gen/main.o $(B)/gen/emit.o $(B)/gen/emit_h.o \
                 $(B)/gen/emit_c.o $(B)/gen/emit_sql.o $(B)/gen/migrate.o,$(GEN_OBJ))

$(B)/cli/memo.o: cli/memo.c $(B)/gen/parser.h $(B)/gen/lexer.h
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) $(GEN_INC) $(PKG_CFLAGS) -c $< -o $@

$(MEMO_TOOL): $(B)/cli/memo.o $(TOOL_GEN_OBJ) $(LIBMEMO)
	$(CC) $(ALL_LDFLAGS) $^ $(LDLIBS_RT) -o $@

all: $(MEMO_TOOL)

# --------------------------------------------------- generated repositories

SCHEMAS = $(wildcard schemas/*.memo)
SCHEMA_NAMES = $(notdir $(SCHEMAS:.memo=))
SCHEMA_OBJ = $(SCHEMA_NAMES:%=$(B)/schemas/%.o)
# The generated code must be clean under the strictest flags users may have.
GENERATED_CFLAGS = $(MEMO_CFLAGS) -pedantic

# memoc writes NAME.{h,c,sql} for `schema NAME;`; schemas/NAME.memo declares NAME.
$(B)/schemas/%.c $(B)/schemas/%.h $(B)/schemas/%.sql: schemas/%.memo $(MEMOC)
	@mkdir -p $(@D)
	$(MEMOC) -o $(B)/schemas $<

$(B)/schemas/%.o: $(B)/schemas/%.c $(B)/schemas/%.h
	$(CC) $(GENERATED_CFLAGS) $(CPPFLAGS) $(CFLAGS) $(SAN_CFLAGS) -Iruntime/include $(PKG_CFLAGS) -c $< -o $@

# ------------------------------------------------------------------- tests

TEST_INC = -Itests/support -Iruntime/include -Iruntime/src -I$(B)/schemas $(PKG_CFLAGS)
TEST_LIBS = $(LIBMEMO) $(CMOCKA_LIBS) $(LDLIBS_RT)

# tests/support: what every test links, and what the integration tests add
# (it includes the generated headers)
SUPPORT_OBJ = $(B)/tests/support.o $(B)/tests/process.o
INTEG_SUPPORT_OBJ = $(B)/tests/schema_keys.o $(B)/tests/wiki_fixture.o
$(INTEG_SUPPORT_OBJ): $(SCHEMA_OBJ)
$(B)/tests/%.o: tests/support/%.c tests/support/test.h
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) $(TEST_INC) -c $< -o $@

UNIT_SRC = $(wildcard tests/unit/test_*.c)
UNIT_BIN = $(UNIT_SRC:tests/unit/%.c=$(B)/tests/unit/%)
# unit tests may use the example schemas' descriptors (no servers)
$(UNIT_BIN): $(SCHEMA_OBJ)
$(B)/tests/unit/%: tests/unit/%.c $(LIBMEMO) $(SUPPORT_OBJ) $(SCHEMA_OBJ)
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) $(TEST_INC) $< $(SUPPORT_OBJ) $(SCHEMA_OBJ) $(LDFLAGS) $(TEST_LIBS) \
	    -o $@

INTEG_SRC = $(wildcard tests/integration/test_*.c)
INTEG_BIN = $(INTEG_SRC:tests/integration/%.c=$(B)/tests/integration/%)
$(INTEG_BIN): $(SCHEMA_OBJ)
$(B)/tests/integration/%: tests/integration/%.c $(LIBMEMO) $(SUPPORT_OBJ) \
                          $(INTEG_SUPPORT_OBJ) $(SCHEMA_OBJ)
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) $(TEST_INC) $< $(SUPPORT_OBJ) $(INTEG_SUPPORT_OBJ) $(SCHEMA_OBJ) \
	    $(LDFLAGS) $(TEST_LIBS) -o $@

# The evolving example (examples/desk/v1..v3.memo): each version's generated
# code, and a reader of its rows linked with it, which test_migrate runs
# after each migration.
DESK_VERSIONS = $(notdir $(basename $(wildcard examples/desk/v*.memo)))
DESK_READERS = $(DESK_VERSIONS:%=$(B)/examples/desk/%/reader)
$(B)/examples/desk/%/desk.c $(B)/examples/desk/%/desk.h $(B)/examples/desk/%/desk.sql: \
        examples/desk/%.memo $(MEMOC)
	@mkdir -p $(@D)
	$(MEMOC) -o $(@D) $<
$(B)/examples/desk/%/reader: tests/integration/desk_reader.c $(B)/examples/desk/%/desk.c \
                             $(LIBMEMO)
	$(CC) $(ALL_CFLAGS) -Iruntime/include -I$(@D) $(PKG_CFLAGS) $< $(@D)/desk.c \
	    $(LIBMEMO) $(LDFLAGS) $(LDLIBS_RT) -o $@
$(B)/tests/integration/test_migrate: $(DESK_READERS)

GENTEST_SRC = $(wildcard tests/gen/test_*.c)
GENTEST_BIN = $(GENTEST_SRC:tests/gen/%.c=$(B)/tests/gen/%)
$(B)/tests/gen/%: tests/gen/%.c $(SUPPORT_OBJ) $(LIBMEMO)
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) $(TEST_INC) $< $(SUPPORT_OBJ) $(LDFLAGS) $(TEST_LIBS) -o $@

# The model test holds the lowering (memoc's front end, as the tool links it)
# against the generated descriptors of every example schema: it links both.
$(B)/tests/gen/test_model: tests/gen/test_model.c $(B)/tests/support.o $(TOOL_GEN_OBJ) \
                           $(SCHEMA_OBJ) $(LIBMEMO)
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) $(TEST_INC) $(GEN_INC) $< $(B)/tests/support.o $(TOOL_GEN_OBJ) \
	    $(SCHEMA_OBJ) $(LDFLAGS) $(TEST_LIBS) -o $@

TEST_BIN = $(GENTEST_BIN) $(UNIT_BIN) $(INTEG_BIN)
# subsets, defined before the rules that use them: the threaded tests (for
# ThreadSanitizer) and the long-running ones (make torture)
TSAN_BIN = $(B)/tests/integration/test_race $(B)/tests/integration/test_outage \
           $(B)/tests/integration/test_blog $(B)/tests/integration/test_lock \
           $(B)/tests/integration/test_tool $(B)/tests/integration/test_pool \
           $(B)/tests/integration/test_config $(B)/tests/integration/test_watch \
           $(B)/tests/integration/test_near $(B)/tests/integration/test_cluster
TORTURE_BIN = $(B)/tests/integration/test_race $(B)/tests/integration/test_outage \
              $(B)/tests/integration/test_cluster \
              $(B)/tests/integration/test_watch
tests: all $(TEST_BIN) $(SCHEMA_OBJ)

# The environment every test reads; servers come from tests/with-servers.sh.
TEST_ENV = MEMOC=$(abspath $(MEMOC)) MEMO_TOOL=$(abspath $(MEMO_TOOL)) \
           MEMO_BUILD_DIR=$(abspath $(B)) MEMO_SCHEMAS_DIR=$(abspath $(B)/schemas) \
           MEMO_BAD_DIR=$(abspath tests/gen/bad) MEMO_TOP=$(CURDIR) \
           MEMO_CC="$(CC)" MEMO_SAN_CFLAGS="$(SAN_CFLAGS)"

deps:
	@tests/deps.sh

# Builds run two jobs at a time; the three suites run one after another,
# each on servers of its own (the fault and race tests measure time: two
# suites at once on two cores would make them lie).
check: deps
	@$(MAKE) --no-print-directory -j2 tests
	@$(MAKE) --no-print-directory run-check
	@$(MAKE) --no-print-directory -j2 B=build/asan SAN_CFLAGS="$(SAN)" tests
	@$(MAKE) --no-print-directory B=build/asan SAN_CFLAGS="$(SAN)" run-check
	@$(MAKE) --no-print-directory -j2 B=build/tsan SAN_CFLAGS="$(TSAN)" tests
	@$(MAKE) --no-print-directory B=build/tsan SAN_CFLAGS="$(TSAN)" TEST_BIN='$$(TSAN_BIN)' \
	    run-check

test: deps
	@$(MAKE) --no-print-directory -j2 tests
	@$(MAKE) --no-print-directory run-check

# The suites that also run through PgBouncer in transaction pooling mode:
# configured (MEMO_DB_UNNAMED=1), and not (memo finds out by itself).
PGBOUNCER_BIN = $(B)/tests/integration/test_blog $(B)/tests/integration/test_ticket \
                $(B)/tests/integration/test_team
PGBOUNCER_RUN = $(filter $(PGBOUNCER_BIN),$(TEST_BIN))
# The suites that also run on a Redis Cluster of 3 masters and 3 replicas
# (tests/on-cluster.sh): the blog and wiki suites, the races and stampedes.
CLUSTER_BIN = $(B)/tests/integration/test_blog $(B)/tests/integration/test_wiki_keys \
              $(B)/tests/integration/test_wiki_values $(B)/tests/integration/test_wiki_writes \
              $(B)/tests/integration/test_race $(B)/tests/integration/test_lock \
              $(B)/tests/integration/test_team $(B)/tests/integration/test_ticket \
              $(B)/tests/integration/test_pool
CLUSTER_RUN = $(filter $(CLUSTER_BIN),$(TEST_BIN))
run-check: tests
	$(TEST_ENV) tests/with-servers.sh tests/run.sh $(TEST_BIN)
	$(if $(PGBOUNCER_RUN),$(TEST_ENV) tests/with-servers.sh sh -c \
	    'MEMO_DB_UNNAMED=1 tests/through-pgbouncer.sh tests/run.sh $(PGBOUNCER_RUN) && \
	    MEMO_DB_UNNAMED=0 tests/through-pgbouncer.sh tests/run.sh $(PGBOUNCER_RUN)')
	$(if $(CLUSTER_RUN),$(TEST_ENV) tests/with-servers.sh tests/on-cluster.sh \
	    tests/run.sh $(CLUSTER_RUN))

# The long versions of the concurrency and outage tests, and their table.
# "failed" counts calls that returned an error where none was allowed, and
# for the PostgreSQL restart the calls that needed the database while it was
# down (they fail with MEMO_ERR_DB_CONN, as promised).
torture: deps
	@$(MAKE) --no-print-directory run-torture

run-torture: tests
	@rm -f $(B)/torture.metrics
	$(TEST_ENV) MEMO_TORTURE=1 MEMO_METRICS=$(abspath $(B)/torture.metrics) \
	    MEMO_TEST_TIMEOUT=900 tests/with-servers.sh tests/run.sh $(TORTURE_BIN)
	@tests/torture-report.sh $(B)/torture.metrics

SAN = -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all
TSAN = -fsanitize=thread -fno-omit-frame-pointer
sanitize: deps
	@$(MAKE) --no-print-directory -j2 B=build/asan SAN_CFLAGS="$(SAN)" tests
	@$(MAKE) --no-print-directory B=build/asan SAN_CFLAGS="$(SAN)" run-check

# ------------------------------------------------------------------ bench

BENCH = $(B)/bench/bench
$(BENCH): bench/bench.c $(B)/schemas/blog.o $(B)/schemas/hot.o $(LIBMEMO)
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) -Iruntime/include -I$(B)/schemas $(PKG_CFLAGS) $< \
	    $(B)/schemas/blog.o $(B)/schemas/hot.o $(LIBMEMO) $(LDFLAGS) $(LDLIBS_RT) -o $@

BENCH_WATCH = $(B)/bench/bench_watch
$(BENCH_WATCH): bench/bench_watch.c $(B)/schemas/blog.o $(LIBMEMO)
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) -Iruntime/include -I$(B)/schemas $(PKG_CFLAGS) $< \
	    $(B)/schemas/blog.o $(LIBMEMO) $(LDFLAGS) $(LDLIBS_RT) -o $@

# BENCH_PIN=0 pins the benchmark and both servers to CPU 0; BENCH_ARGS adds
# options (--rounds N, --quick). The change stream's benchmark follows, on
# the same servers, its JSON lines appended.
bench: deps
	@$(MAKE) --no-print-directory run-bench

run-bench: all $(BENCH) $(BENCH_WATCH)
	@tests/with-servers.sh sh -c 'bench/run.sh $(BENCH) --sql $(B)/schemas/blog.sql \
	    --json $(B)/bench.jsonl $(BENCH_ARGS) && bench/run.sh $(BENCH_WATCH) \
	    --sql $(B)/schemas/blog.sql --json $(B)/bench.jsonl $(BENCH_ARGS)'
	@echo "JSON lines: $(B)/bench.jsonl"

# ThreadSanitizer on the tests that run threads (TSAN_BIN, defined above).
tsan: deps
	@$(MAKE) --no-print-directory -j2 B=build/tsan SAN_CFLAGS="$(TSAN)" tests
	@$(MAKE) --no-print-directory B=build/tsan SAN_CFLAGS="$(TSAN)" TEST_BIN='$$(TSAN_BIN)' \
	    run-check

# make install PREFIX=/usr/local (DESTDIR for staging): memoc, memo, the
# static and shared libraries, the public header, memo.pc (links libmemo.so)
# and memo-static.pc (links libmemo.a, with hiredis and libpq shared).
install: all
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/lib/pkgconfig \
	    $(DESTDIR)$(PREFIX)/include/memo
	install -m 755 $(MEMOC) $(MEMO_TOOL) $(DESTDIR)$(PREFIX)/bin/
	install -m 644 $(LIBMEMO) $(DESTDIR)$(PREFIX)/lib/
	install -m 755 $(LIBMEMO_SO) $(DESTDIR)$(PREFIX)/lib/
	ln -sf libmemo.so.$(VERSION) $(DESTDIR)$(PREFIX)/lib/libmemo.so.$(SOMAJOR)
	ln -sf libmemo.so.$(SOMAJOR) $(DESTDIR)$(PREFIX)/lib/libmemo.so
	install -m 644 runtime/include/memo/memo.h $(DESTDIR)$(PREFIX)/include/memo/
	for pc in memo memo-static; do \
	    sed -e 's|@PREFIX@|$(PREFIX)|' -e 's|@VERSION@|$(VERSION)|' runtime/$$pc.pc.in \
	        > $(DESTDIR)$(PREFIX)/lib/pkgconfig/$$pc.pc || exit 1; \
	done

clean:
	rm -rf build

# Flags live here: when this file changes, objects are rebuilt.
$(GEN_OBJ) $(RT_OBJ) $(B)/cli/memo.o: Makefile

-include $(shell find $(B) -name '*.d' 2>/dev/null)

# -------------------------------------------------------------------- demo

DEMO = $(B)/examples/blog/blog-demo
$(DEMO): examples/blog/main.c $(B)/schemas/blog.o $(LIBMEMO)
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) -Iruntime/include -I$(B)/schemas $(PKG_CFLAGS) $< \
	    $(B)/schemas/blog.o $(LIBMEMO) $(LDFLAGS) $(LDLIBS_RT) -o $@

# `make check` builds the benchmark and the demo too, so that they cannot
# stop compiling unnoticed (a change of the generated API reaches them)
tests: $(BENCH) $(BENCH_WATCH) $(DEMO)

demo: deps
	@$(MAKE) --no-print-directory run-demo

run-demo: all $(DEMO)
	@tests/with-servers.sh sh -c 'psql -q -v ON_ERROR_STOP=1 "$$DATABASE_URL" \
	    -f $(B)/schemas/blog.sql && $(DEMO) $(DEMO_OPS)'

# -------------------------------------------------------------------- docs

# Every fenced block of README.md and docs/*.md is compiled, run through
# memoc or otherwise checked (tests/docs/check-docs.sh; the conventions are
# in docs/README.md), with the other tests of make test and make check.
TEST_BIN += tests/docs/check-docs.sh

# ------------------------------------------------------------------ format

# The committed .clang-format, applied (make format) and checked with the
# tests (tests/format.sh).
TEST_BIN += tests/format.sh
.PHONY: format
format:
	git ls-files --cached --others --exclude-standard '*.c' '*.h' | xargs clang-format --style=file -i
