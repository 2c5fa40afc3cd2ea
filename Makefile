# sluice — thin wrapper over CMake/CTest. `make run` and `make test` are the two commands.
BUILD    ?= build
SANITIZE ?= 0
TSAN     ?= 0
JOBS     ?= $(shell nproc)
ifeq ($(SANITIZE)$(TSAN),11)
$(error SANITIZE=1 and TSAN=1 exclude each other: run them one after the other, as `make test` does)
endif
ifeq ($(SANITIZE),1)
BUILD    := build-san
CMAKEFLAGS += -DSLUICE_SANITIZE=ON -DCMAKE_BUILD_TYPE=Debug
endif
# ThreadSanitizer: every report is printed (halt_on_error=0) and makes the process exit 66, which
# the tests see as a failure; the integration tests also look for the reports in the hub's log.
ifeq ($(TSAN),1)
BUILD    := build-tsan
CMAKEFLAGS += -DSLUICE_TSAN=ON -DCMAKE_BUILD_TYPE=Debug
export TSAN_OPTIONS ?= halt_on_error=0 exitcode=66 second_deadlock_stack=1 suppressions=$(CURDIR)/tests/tsan.supp
endif
# The fuzz build: clang, libFuzzer, ASan and UBSan, in a build directory of its own (fuzz/).
FUZZ_BUILD   ?= build-fuzz
FUZZ_SECONDS ?= 300
FUZZ_TARGETS ?= http form validate token topic urlpattern
PREFIX   ?= /usr/local
ADDR     ?= 127.0.0.1:8080
DEV_KEY  ?= sluice-development-key-change-me-0123456789

.PHONY: all build deps run test test-tsan test-unit test-fuzz fuzz fuzz-build bench install clean

all: build

deps:
	@scripts/deps.sh build

$(BUILD)/CMakeCache.txt:
	@scripts/deps.sh build
	cmake -S . -B $(BUILD) -DCMAKE_INSTALL_PREFIX=$(PREFIX) $(CMAKEFLAGS) >/dev/null

build: $(BUILD)/CMakeCache.txt
	cmake --build $(BUILD) -j $(JOBS)

run: build
	@scripts/run-dev.sh $(BUILD)/sluice $(ADDR) $(DEV_KEY)

# The whole suite: unit, integration and browser tests against the real binary, a short run of
# each fuzz target (`make test-fuzz`), then the same suite again under AddressSanitizer +
# UndefinedBehaviorSanitizer, then again under ThreadSanitizer. On a kernel whose address layout
# ThreadSanitizer cannot work with ("FATAL: ThreadSanitizer: unexpected memory mapping"), the
# TSan pass runs with ASLR off (setarch -R), which every process ctest starts inherits.
# Configured again with SLUICE_UNIT_TESTS=ON: a build directory that `make run` configured before
# cmocka was installed would otherwise go on without its unit tests.
test:
	@scripts/deps.sh build test
	cmake -S . -B $(BUILD) -DCMAKE_INSTALL_PREFIX=$(PREFIX) -DSLUICE_UNIT_TESTS=ON $(CMAKEFLAGS) >/dev/null
	$(MAKE) --no-print-directory build
ifeq ($(TSAN),1)
	cd $(BUILD) && wrap=; \
	  if ./sluice --version 2>&1 | grep -q 'unexpected memory mapping'; then \
	    echo "ThreadSanitizer cannot map its shadow memory with ASLR on: running with setarch -R"; \
	    wrap="setarch $$(uname -m) -R"; \
	  fi; \
	  $$wrap ctest --output-on-failure -j 2 $(CTESTFLAGS)
else
	cd $(BUILD) && ctest --output-on-failure -j 2 $(CTESTFLAGS)
endif
ifeq ($(SANITIZE)$(TSAN),00)
	$(MAKE) --no-print-directory test-fuzz
	$(MAKE) --no-print-directory test SANITIZE=1
	$(MAKE) --no-print-directory test TSAN=1
endif

# Only the ThreadSanitizer pass of `make test`.
test-tsan:
	$(MAKE) --no-print-directory test TSAN=1

# The fuzz targets, built with clang in $(FUZZ_BUILD). CC is read only when the directory is
# first configured.
fuzz-build:
	@scripts/deps.sh build test
	CC=clang cmake -S . -B $(FUZZ_BUILD) -DSLUICE_FUZZ=ON >/dev/null
	cmake --build $(FUZZ_BUILD) -j $(JOBS)

# Each fuzz target for about 10 seconds over its seeds and its regression inputs (fuzz/crashes/).
test-fuzz: fuzz-build
	cd $(FUZZ_BUILD) && ctest --output-on-failure -j 2 -L fuzz

# Each fuzz target in turn for FUZZ_SECONDS (default 300); new coverage stays in
# $(FUZZ_BUILD)/fuzz-out/corpus/, a crash in $(FUZZ_BUILD)/fuzz-out/artifacts/ (fuzz/README.md).
fuzz: fuzz-build
	@for t in $(FUZZ_TARGETS); do \
	  echo "== fuzz_$$t for $(FUZZ_SECONDS) s"; \
	  fuzz/run.sh $(FUZZ_BUILD)/fuzz_$$t $$t $(FUZZ_SECONDS) $(FUZZ_BUILD)/fuzz-out || exit 1; \
	done

test-unit: build
	cd $(BUILD) && ctest --output-on-failure -L unit

bench:
	@scripts/deps.sh build bench
	$(MAKE) --no-print-directory build
	bench/run.sh $(BUILD)

install: build
	cmake --install $(BUILD)

clean:
	rm -rf build build-san build-tsan $(FUZZ_BUILD)
