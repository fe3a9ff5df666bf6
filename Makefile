# qmux - kdb+ IPC multiplexing proxy.
#
#   make            build build/qmux, build/qmux-standin and build/qmux-client
#   make check      install missing dependencies, build, run unit tests under
#                   AddressSanitizer + UndefinedBehaviorSanitizer, each fuzz target for
#                   10 s, then the integration tests
#   make demo       build, start the stand-in kdb+ and qmux, run the demonstration
#   make soak       run the integration soak test for SOAK_SECONDS (default 600) under the
#                   sanitizers; make check runs it for 30 s
#   make fuzz       build the libFuzzer targets with clang and run each for FUZZ_SECONDS
#   make fuzz-smoke run each libFuzzer target for 10 seconds
#   make bench      build build/qmux-bench and run the benchmarks (bench/run.sh); not
#                   part of make check
#   make install    install into $(DESTDIR)$(PREFIX)

PREFIX ?= /usr/local
DESTDIR ?=
BUILD ?= build

CC ?= cc
OPTFLAGS ?= -O2 -g
WARNFLAGS = -Wall -Wextra -Werror -Wshadow -Wpointer-arith -Wstrict-prototypes \
            -Wmissing-prototypes -Wformat=2 -Wsign-compare -Wno-format-nonliteral
DEPFLAGS = -MMD -MP
# libcrypto (OpenSSL) provides PBKDF2 and SHA-2 for the users file; libssl and
# libevent_openssl (bufferevent_openssl) carry TLS for clients and upstreams.
PKGS = libevent libevent_openssl libconfig zlib libssl libcrypto
PKG_CFLAGS = $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS = $(shell pkg-config --libs $(PKGS) 2>/dev/null)
CHECK_CFLAGS = $(shell pkg-config --cflags check 2>/dev/null)
CHECK_LIBS = $(shell pkg-config --libs check 2>/dev/null)
ALL_CFLAGS = -std=gnu11 $(OPTFLAGS) $(WARNFLAGS) $(DEPFLAGS) -Isrc -Isrc/codec $(PKG_CFLAGS) $(CFLAGS)

# The sanitizer build of the unit tests: fail on the first report, keep frames readable.
SANFLAGS = -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer

# The codec: no libevent dependency, shared by the daemon, the stand-in and the tools.
CODEC_SRCS = src/ipc.c $(wildcard src/codec/*.c)
# The daemon, minus main.c so unit tests can link the same modules.
DAEMON_SRCS = $(filter-out src/main.c src/ipc.c,$(wildcard src/*.c))
STANDIN_SRCS = $(wildcard src/standin/*.c)
CLIENT_SRCS = $(wildcard tests/tools/*.c)
UNIT_SRCS = $(wildcard tests/unit/*.c)

CODEC_OBJS = $(CODEC_SRCS:%.c=$(BUILD)/obj/%.o)
DAEMON_OBJS = $(DAEMON_SRCS:%.c=$(BUILD)/obj/%.o)
STANDIN_OBJS = $(STANDIN_SRCS:%.c=$(BUILD)/obj/%.o)
CLIENT_OBJS = $(CLIENT_SRCS:%.c=$(BUILD)/obj/%.o)
UNIT_OBJS = $(UNIT_SRCS:%.c=$(BUILD)/asan/%.o) $(CODEC_SRCS:%.c=$(BUILD)/asan/%.o) \
            $(DAEMON_SRCS:%.c=$(BUILD)/asan/%.o)

PROGRAMS = $(BUILD)/qmux $(BUILD)/qmux-standin $(BUILD)/qmux-client $(BUILD)/qmux-passwd

.PHONY: all check deps unit integration soak sanitize-build demo install clean

all: $(PROGRAMS)

$(BUILD)/libqcodec.a: $(CODEC_OBJS)
	ar rcs $@ $^

$(BUILD)/qmux: $(BUILD)/obj/src/main.o $(DAEMON_OBJS) $(BUILD)/libqcodec.a
	$(CC) $(ALL_CFLAGS) -o $@ $^ $(PKG_LIBS) -lm

$(BUILD)/qmux-standin: $(STANDIN_OBJS) $(BUILD)/libqcodec.a
	$(CC) $(ALL_CFLAGS) -o $@ $^ $(PKG_LIBS) -lm

$(BUILD)/qmux-client: $(CLIENT_OBJS) $(BUILD)/libqcodec.a
	$(CC) $(ALL_CFLAGS) -o $@ $^ $(PKG_LIBS) -lm

# Writes users-file entries; it needs only the password hashing of src/passwd.c.
$(BUILD)/qmux-passwd: $(BUILD)/obj/tools/qmux-passwd.o $(BUILD)/obj/src/passwd.o
	$(CC) $(ALL_CFLAGS) -o $@ $^ $(PKG_LIBS)

$(BUILD)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -c -o $@ $<

$(BUILD)/asan/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) $(SANFLAGS) $(CHECK_CFLAGS) -c -o $@ $<

$(BUILD)/unit-tests: $(UNIT_OBJS)
	$(CC) $(ALL_CFLAGS) $(SANFLAGS) -o $@ $^ $(CHECK_LIBS) $(PKG_LIBS) -lm

# Installs what is missing first, then re-reads this Makefile so pkg-config sees it.
check:
	scripts/install-deps.sh
	$(MAKE) all $(BUILD)/unit-tests
	$(MAKE) unit
	scripts/check-docs.sh
	$(MAKE) fuzz-smoke
	$(MAKE) integration

deps:
	scripts/install-deps.sh

unit: $(BUILD)/unit-tests
	QMUX_SOURCE_DIR=$(CURDIR) $(BUILD)/unit-tests

# The integration suite runs qmux and the stand-in built with the sanitizers, so a memory
# error or leak in any tested path fails the test that triggered it. Point it at another
# build with `make integration INTEGRATION_BUILD=build`.
SANITIZE_BUILD = $(BUILD)/sanitize
INTEGRATION_BUILD ?= $(SANITIZE_BUILD)

sanitize-build:
	$(MAKE) BUILD=$(SANITIZE_BUILD) OPTFLAGS="-O1 -g $(SANFLAGS)" all

integration: all sanitize-build
	QMUX_BUILD_DIR=$(abspath $(INTEGRATION_BUILD)) tests/integration/run.sh

# The soak test alone, for longer than in make check. It needs node-q installed, which
# make integration does.
SOAK_SECONDS ?= 600

soak: all sanitize-build
	cd tests/integration && SOAK_SECONDS=$(SOAK_SECONDS) QMUX_BUILD_DIR=$(abspath $(INTEGRATION_BUILD)) \
	    node --test --test-concurrency=1 --test-reporter=spec soak.test.js

demo:
	scripts/demo.sh

SYSTEMD_UNIT_DIR ?= /lib/systemd/system

# The unit's paths follow PREFIX; an existing /etc/qmux/qmux.conf is kept.
install: all
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/share/man/man8 \
	    $(DESTDIR)$(PREFIX)/share/man/man5 $(DESTDIR)$(PREFIX)/share/man/man1 \
	    $(DESTDIR)$(PREFIX)/share/doc/qmux $(DESTDIR)/etc/qmux $(DESTDIR)$(SYSTEMD_UNIT_DIR)
	install -m 755 $(BUILD)/qmux $(BUILD)/qmux-standin $(BUILD)/qmux-passwd $(BUILD)/qmux-client \
	    $(DESTDIR)$(PREFIX)/bin/
	install -m 644 README.md docs/*.md $(DESTDIR)$(PREFIX)/share/doc/qmux/
	install -m 644 man/qmux.8 $(DESTDIR)$(PREFIX)/share/man/man8/
	install -m 644 man/qmux.conf.5 $(DESTDIR)$(PREFIX)/share/man/man5/
	install -m 644 man/qmux-passwd.1 $(DESTDIR)$(PREFIX)/share/man/man1/
	[ -e $(DESTDIR)/etc/qmux/qmux.conf ] || \
	    install -m 640 conf/qmux.conf $(DESTDIR)/etc/qmux/qmux.conf
	sed 's|/usr/local/bin/|$(PREFIX)/bin/|g' systemd/qmux.service >$(DESTDIR)$(SYSTEMD_UNIT_DIR)/qmux.service
	chmod 644 $(DESTDIR)$(SYSTEMD_UNIT_DIR)/qmux.service

clean:
	rm -rf $(BUILD)

# libFuzzer targets (tests/fuzz/fuzz_*.c), built with clang under $(BUILD)/fuzz, apart from
# the normal build. Each run reads the committed seeds in tests/fuzz/corpus/<target> and
# writes what it finds to $(BUILD)/fuzz/corpus/<target>; crashing inputs go to
# $(BUILD)/fuzz/artifacts/<target>/.
FUZZ_CC ?= clang
FUZZ_SECONDS ?= 600
FUZZ_TARGETS = qdec decompress header handshake json policy
FUZZ_CFLAGS = -std=gnu11 -O1 -g $(WARNFLAGS) $(DEPFLAGS) -Isrc -Isrc/codec \
              -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer
FUZZ_LIB_SRCS = src/ipc.c src/policy.c src/codec/qdec.c src/codec/compress.c src/codec/json.c \
                src/codec/json_format.c
FUZZ_LIB_OBJS = $(FUZZ_LIB_SRCS:%.c=$(BUILD)/fuzz/obj/%.o)
FUZZ_BINS = $(FUZZ_TARGETS:%=$(BUILD)/fuzz/fuzz_%)
FUZZ_MAIN_OBJS = $(FUZZ_TARGETS:%=$(BUILD)/fuzz/obj/tests/fuzz/fuzz_%.o)

# Keep the targets' objects, which make would otherwise delete as intermediate files.
.SECONDARY: $(FUZZ_MAIN_OBJS)

$(BUILD)/fuzz/obj/%.o: %.c
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer-no-link -c -o $@ $<

$(BUILD)/fuzz/fuzz_%: $(BUILD)/fuzz/obj/tests/fuzz/fuzz_%.o $(FUZZ_LIB_OBJS)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer -o $@ $^ -lconfig -lm

fuzz-build: $(FUZZ_BINS)

fuzz: fuzz-build
	@set -e; for target in $(FUZZ_TARGETS); do \
	    mkdir -p $(BUILD)/fuzz/corpus/$$target $(BUILD)/fuzz/artifacts/$$target; \
	    echo "fuzz_$$target: $(FUZZ_SECONDS) s"; \
	    $(BUILD)/fuzz/fuzz_$$target -max_total_time=$(FUZZ_SECONDS) -print_final_stats=1 \
	        -artifact_prefix=$(BUILD)/fuzz/artifacts/$$target/ \
	        $(BUILD)/fuzz/corpus/$$target tests/fuzz/corpus/$$target; \
	done

fuzz-smoke:
	$(MAKE) fuzz FUZZ_SECONDS=10

# The benchmarks: build/qmux-bench (bench/*.c plus the test client's message helpers in
# tests/tools/qwire.c), run by bench/run.sh against the stand-in and qmux on free loopback
# ports. Results go to $(BUILD)/bench/; docs/benchmarks.md describes the method.
BENCH_SRCS = $(wildcard bench/*.c)
BENCH_OBJS = $(BENCH_SRCS:%.c=$(BUILD)/obj/%.o) $(BUILD)/obj/tests/tools/qwire.o

$(BENCH_SRCS:%.c=$(BUILD)/obj/%.o): ALL_CFLAGS += -Itests/tools

$(BUILD)/qmux-bench: $(BENCH_OBJS) $(BUILD)/libqcodec.a
	$(CC) $(ALL_CFLAGS) -o $@ $^ $(PKG_LIBS) -lm

.PHONY: bench bench-build

bench-build: $(BUILD)/qmux-bench

# Installs what is missing first, then re-reads this Makefile so pkg-config sees it.
bench:
	scripts/install-deps.sh
	$(MAKE) all $(BUILD)/qmux-bench
	QMUX_BUILD_DIR=$(abspath $(BUILD)) bench/run.sh

-include $(shell find $(BUILD) -name '*.d' 2>/dev/null)
