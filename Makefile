# evo: `make run` and `make test` each do all the set-up on a fresh Debian 12 machine.
BUILD_DIR ?= build
BUILD_TYPE ?= Release
JOBS ?= $(shell nproc)
ARGS ?=

.PHONY: all deps configure build run test unit e2e bench lint fmt clean sanitize

all: build

deps:
	@bash scripts/install-deps.sh

$(BUILD_DIR)/build.ninja: CMakeLists.txt
	@$(MAKE) --no-print-directory deps
	cmake -S . -B $(BUILD_DIR) -G Ninja -DCMAKE_BUILD_TYPE=$(BUILD_TYPE)

configure: $(BUILD_DIR)/build.ninja

build: deps configure
	cmake --build $(BUILD_DIR) -j $(JOBS)

# Starts evo on embedded storage at http://127.0.0.1:8080 (Ctrl-C to stop).
run: build
	./$(BUILD_DIR)/evo serve $(ARGS)

# Every test: unit tests first, then end-to-end tests on the real binary.
test: build
	cd $(BUILD_DIR) && ctest --output-on-failure -L unit -j $(JOBS)
	cd $(BUILD_DIR) && ctest --output-on-failure -L e2e

unit: build
	cd $(BUILD_DIR) && ctest --output-on-failure -L unit -j $(JOBS)

e2e: build
	cd $(BUILD_DIR) && ctest --output-on-failure -L e2e

# The unit tests built and run under ThreadSanitizer (build-tsan/), then AddressSanitizer with
# UndefinedBehaviorSanitizer (build-asan/). Any report fails the run. Not part of `make test`
# (two more full builds); run it before landing concurrency or memory changes.
SANITIZE_CMAKE = -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DEVO_MIMALLOC=OFF -DEVO_BUILD_BENCHMARKS=OFF
sanitize: deps
	cmake -S . -B build-tsan $(SANITIZE_CMAKE) -DEVO_SANITIZE=thread
	cmake --build build-tsan -j $(JOBS)
	cd build-tsan && TSAN_OPTIONS="halt_on_error=1 second_deadlock_stack=1 suppressions=$(CURDIR)/scripts/tsan.supp" \
	  ctest --output-on-failure -L unit -j $(JOBS)
	cmake -S . -B build-asan $(SANITIZE_CMAKE) -DEVO_SANITIZE=address,undefined
	cmake --build build-asan -j $(JOBS)
	cd build-asan && ASAN_OPTIONS="detect_leaks=1:abort_on_error=1" UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1" \
	  ctest --output-on-failure -L unit -j $(JOBS)

# Micro-benchmarks and load runs beside their peers (never timed tests).
bench: build
	bash bench/run.sh $(BUILD_DIR)

# clang-format check and clang-tidy on files changed against origin/main (or all with ALL=1).
lint: configure
	@bash scripts/lint.sh $(BUILD_DIR)

fmt:
	@git ls-files '*.cpp' '*.hpp' | xargs clang-format -i

clean:
	rm -rf $(BUILD_DIR)
