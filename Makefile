# memo: one non-recursive Makefile. Objects, generated parsers, generated
# repositories and binaries all live under $(B).
#
#   make            memoc and libmemo.a
#   make demo       set up (packages, private servers), run examples/blog
#   make check      set up, build with -Werror, run every test
#   make sanitize   the tests under AddressSanitizer + UndefinedBehaviorSanitizer
#   make tsan       the threaded tests under ThreadSanitizer
#   make bench      the benchmark against raw hiredis and libpq
#   make install PREFIX=/usr/local
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
CMOCKA_LIBS := $(shell pkg-config --libs cmocka 2>/dev/null)

ALL_CFLAGS = $(MEMO_CFLAGS) $(CFLAGS) $(SAN_CFLAGS) -MMD -MP
LDLIBS_RT = $(PKG_LIBS) -lpthread -lm

.PHONY: all check sanitize tsan demo bench torture install clean deps \
        run-check run-demo run-bench run-torture tests
.DEFAULT_GOAL := all
.DELETE_ON_ERROR:

# ------------------------------------------------------------------ memoc

GEN_SRC = gen/ast.c gen/diag.c gen/check.c gen/emit.c gen/emit_h.c gen/emit_c.c \
          gen/emit_sql.c gen/main.c
GEN_OBJ = $(GEN_SRC:%.c=$(B)/%.o) $(B)/gen/parser.o $(B)/gen/lexer.o $(B)/gen/sha256.o
MEMOC = $(B)/memoc

$(B)/gen/parser.c $(B)/gen/parser.h: gen/parser.y
	@mkdir -p $(@D)
	bison -Wall -Werror --header=$(B)/gen/parser.h -o $(B)/gen/parser.c $<

$(B)/gen/lexer.c $(B)/gen/lexer.h: gen/lexer.l
	@mkdir -p $(@D)
	flex --header-file=$(B)/gen/lexer.h -o $(B)/gen/lexer.c $<

GEN_INC = -Igen -I$(B)/gen -Iruntime/src

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
	$(CC) $(CFLAGS) $(SAN_CFLAGS) $^ -o $@

all: $(MEMOC)

clean:
	rm -rf build

-include $(shell find $(B) -name '*.d' 2>/dev/null)

# ---------------------------------------------------------------- libmemo

RT_SRC = $(wildcard runtime/src/*.c)
RT_OBJ = $(RT_SRC:%.c=$(B)/%.o)
LIBMEMO = $(B)/libmemo.a
RT_INC = -Iruntime/include -Iruntime/src

$(B)/runtime/src/%.o: runtime/src/%.c
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) $(RT_INC) $(PKG_CFLAGS) -c $< -o $@

$(LIBMEMO): $(RT_OBJ)
	rm -f $@
	$(AR) rcs $@ $^

all: $(LIBMEMO)
