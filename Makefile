# sluice — thin wrapper over CMake/CTest. `make run` and `make test` are the two commands.
BUILD    ?= build
SANITIZE ?= 0
JOBS     ?= $(shell nproc)
ifeq ($(SANITIZE),1)
BUILD    := build-san
CMAKEFLAGS += -DSLUICE_SANITIZE=ON -DCMAKE_BUILD_TYPE=Debug
endif
PREFIX   ?= /usr/local
ADDR     ?= 127.0.0.1:8080
DEV_KEY  ?= sluice-development-key-change-me-0123456789

.PHONY: all build deps run test test-unit bench install clean

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

# The whole suite: unit, integration and browser tests against the real binary,
# then the same suite again under AddressSanitizer + UndefinedBehaviorSanitizer.
# Configured again with SLUICE_UNIT_TESTS=ON: a build directory that `make run` configured before
# cmocka was installed would otherwise go on without its unit tests.
test:
	@scripts/deps.sh build test
	cmake -S . -B $(BUILD) -DCMAKE_INSTALL_PREFIX=$(PREFIX) -DSLUICE_UNIT_TESTS=ON $(CMAKEFLAGS) >/dev/null
	$(MAKE) --no-print-directory build
	cd $(BUILD) && ctest --output-on-failure -j 2 $(CTESTFLAGS)
ifneq ($(SANITIZE),1)
	$(MAKE) --no-print-directory test SANITIZE=1
endif

test-unit: build
	cd $(BUILD) && ctest --output-on-failure -L unit

bench:
	@scripts/deps.sh build bench
	$(MAKE) --no-print-directory build
	bench/run.sh $(BUILD)

install: build
	cmake --install $(BUILD)

clean:
	rm -rf build build-san
