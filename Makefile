# nested: memsrv (library + CLI + server), the GDB extension, tests, benchmarks.
# `make` builds build/; `make asan` builds build-asan/ with ASan+UBSan;
# `make test` runs everything (see tests/run); `make demo` is the README's main job.
# `make install PREFIX=/usr/local DESTDIR=` installs the program, its manual, the
# library (header, static library, pkg-config file) and the GDB extension;
# `make uninstall` (same PREFIX and DESTDIR) removes exactly those.

CC      ?= cc
BUILD   ?= build
OPT     ?= -O2
SAN     ?=
PKGS    := libelf capstone
CPPFLAGS += -D_GNU_SOURCE -Imemsrv -Imemsrv/remote $(shell pkg-config --cflags $(PKGS))
CFLAGS  += -std=c11 $(OPT) -g -fPIC -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes \
           -Wno-missing-field-initializers $(SAN)
LDLIBS  += $(shell pkg-config --libs $(PKGS)) -ldwarf -lz -lm -lpthread
LDFLAGS += $(SAN)

PREFIX  ?= /usr/local
DESTDIR ?=
BINDIR  := $(PREFIX)/bin
LIBDIR  := $(PREFIX)/lib
INCDIR  := $(PREFIX)/include
DATADIR := $(PREFIX)/share
MANDIR  := $(DATADIR)/man
GDBEXTDIR := $(DATADIR)/nested/gdbext
VERSION := $(shell sed -n 's/^\#define MS_VERSION "\(.*\)"/\1/p' memsrv/target.c)

LIB_SRCS  := $(sort $(wildcard memsrv/*.c memsrv/remote/*.c))
CLI_SRCS  := $(sort $(wildcard memsrv/cli/*.c))
TEST_SRCS := $(sort $(wildcard tests/unit/test_*.c))
BENCH_SRCS := $(sort $(wildcard bench/*.c))
SUPPORT_SRCS := $(sort $(wildcard tests/support/*.c))
SUPPORT_OBJS := $(SUPPORT_SRCS:%.c=$(BUILD)/obj/%.o)

LIB_OBJS  := $(LIB_SRCS:%.c=$(BUILD)/obj/%.o)
CLI_OBJS  := $(CLI_SRCS:%.c=$(BUILD)/obj/%.o)
TEST_BINS := $(TEST_SRCS:tests/unit/%.c=$(BUILD)/tests/%)
BENCH_BINS := $(BENCH_SRCS:bench/%.c=$(BUILD)/bench/%)

.PHONY: all asan test unit demo bench bench-deps clean format fuzz gdbext deps guest install \
        uninstall
all: $(BUILD)/memsrv $(BUILD)/libmemsrv.a $(BUILD)/memsrv.1 $(TEST_BINS) $(BENCH_BINS) gdbext

$(BUILD)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(CFLAGS) -MMD -MP -c $< -o $@

$(BUILD)/libmemsrv.a: $(LIB_OBJS)
	@rm -f $@
	ar rcs $@ $^

$(BUILD)/memsrv: $(CLI_OBJS) $(BUILD)/libmemsrv.a
	$(CC) $(LDFLAGS) -o $@ $(CLI_OBJS) $(BUILD)/libmemsrv.a $(LDLIBS)

# The manual page is the program's own help, rendered (one source: main.c).
$(BUILD)/memsrv.1: $(BUILD)/memsrv scripts/gen-manpage
	scripts/gen-manpage $(BUILD)/memsrv > $@.tmp && mv $@.tmp $@

$(BUILD)/tests/%: $(BUILD)/obj/tests/unit/%.o $(SUPPORT_OBJS) $(BUILD)/libmemsrv.a
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $< $(SUPPORT_OBJS) $(BUILD)/libmemsrv.a $(LDLIBS)

$(BUILD)/bench/%: $(BUILD)/obj/bench/%.o $(SUPPORT_OBJS) $(BUILD)/libmemsrv.a
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $< $(SUPPORT_OBJS) $(BUILD)/libmemsrv.a $(LDLIBS)

# The C extension module for GDB's embedded Python (gdbext/Makefile asks GDB
# for its include directory and extension suffix).
gdbext: $(BUILD)/libmemsrv.a
	@if [ -f gdbext/Makefile ]; then $(MAKE) -C gdbext BUILD=$(abspath $(BUILD)) SAN="$(SAN)"; fi

install: $(BUILD)/memsrv $(BUILD)/libmemsrv.a $(BUILD)/memsrv.1 gdbext
	install -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(LIBDIR)/pkgconfig $(DESTDIR)$(INCDIR)/memsrv \
	    $(DESTDIR)$(MANDIR)/man1
	install -m 755 $(BUILD)/memsrv $(DESTDIR)$(BINDIR)/memsrv
	install -m 644 $(BUILD)/libmemsrv.a $(DESTDIR)$(LIBDIR)/libmemsrv.a
	install -m 644 memsrv/memsrv.h $(DESTDIR)$(INCDIR)/memsrv/memsrv.h
	install -m 644 $(BUILD)/memsrv.1 $(DESTDIR)$(MANDIR)/man1/memsrv.1
	sed -e 's|@PREFIX@|$(PREFIX)|' \
	    -e 's|@VERSION@|$(VERSION)|' memsrv/memsrv.pc.in > $(DESTDIR)$(LIBDIR)/pkgconfig/memsrv.pc
	$(MAKE) -C gdbext install BUILD=$(abspath $(BUILD)) DEST=$(DESTDIR)$(GDBEXTDIR)

uninstall:
	rm -f $(DESTDIR)$(BINDIR)/memsrv $(DESTDIR)$(LIBDIR)/libmemsrv.a \
	    $(DESTDIR)$(LIBDIR)/pkgconfig/memsrv.pc $(DESTDIR)$(INCDIR)/memsrv/memsrv.h \
	    $(DESTDIR)$(MANDIR)/man1/memsrv.1
	rm -rf $(DESTDIR)$(GDBEXTDIR)
	-rmdir $(DESTDIR)$(INCDIR)/memsrv $(DESTDIR)$(DATADIR)/nested 2>/dev/null

asan:
	$(MAKE) BUILD=build-asan OPT=-O1 SAN="-fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all"

deps:
	scripts/install-deps

test: deps
	tests/run

demo: deps
	$(MAKE) all
	scripts/demo

bench-deps:
	scripts/install-deps --bench

bench: bench-deps all
	bench/run

fuzz:
	tests/fuzz/run

# The test guests' initramfs, cached under ${NESTED_CACHE:-~/.cache/nested}.
guest:
	scripts/build-guest

format:
	clang-format -i $(LIB_SRCS) $(CLI_SRCS) $(TEST_SRCS) $(wildcard memsrv/*.h memsrv/remote/*.h tests/unit/*.h tests/fuzz/*.c gdbext/*.c bench/*.c)

clean:
	rm -rf build build-asan build-fuzz

-include $(shell find $(BUILD) -name '*.d' 2>/dev/null)
