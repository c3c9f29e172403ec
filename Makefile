# Developer front end. `make build`, `make test`, `make demo` install the Debian packages they
# need (scripts/install-deps.sh) on a fresh Debian 12 machine.
BUILD ?= build
BUILD_TYPE ?= RelWithDebInfo
VENV ?= .venv-test
PYTHON ?= python3
JOBS ?= $(shell nproc)

.PHONY: all deps build test unit-test integration-test exact-test demo format sanitize bench bench-smoke bench-build python clean

all: build

deps:
	@scripts/install-deps.sh build

$(BUILD)/build.ninja:
	cmake -S . -B $(BUILD) -G Ninja -DCMAKE_BUILD_TYPE=$(BUILD_TYPE) $(CMAKE_ARGS)

build: deps $(BUILD)/build.ninja
	cmake --build $(BUILD) -j $(JOBS)

# A private virtual environment with pytest, for the integration tests.
$(VENV)/.ready: tests/requirements.txt
	@scripts/install-deps.sh test
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q --disable-pip-version-check -r tests/requirements.txt
	touch $@

# Configures again first: a build folder made by `make build` before GoogleTest was installed has
# no unit tests, and ctest must not pass on none.
unit-test: build
	@scripts/install-deps.sh test
	cmake -S . -B $(BUILD) >/dev/null
	cmake --build $(BUILD) -j $(JOBS)
	ctest --test-dir $(BUILD) --output-on-failure --no-tests=error -j $(JOBS)

integration-test: build $(VENV)/.ready
	SPYGLASS_BIN=$(abspath $(BUILD))/spyglass $(VENV)/bin/python -m pytest -ra --durations=15 tests/integration $(PYTEST_ARGS)

# The stages of `make test`, each timed (the times are printed at the end, so CI's log shows
# where the suite's time goes). The robustness suite runs once, under the sanitizers (`sanitize`
# runs it with the ASan+UBSan spyglass, which sees more than a plain run would); `fuzz` is the
# rest of `robustness-test`. `make robustness-test` alone still runs both.
TEST_STAGES ?= unit-test integration-test formats-test exact-test bench-smoke fuzz sanitize valgrind

test: deps
	@scripts/install-deps.sh test
	@mkdir -p $(BUILD) && rm -f $(BUILD)/test-stage-times
	@for stage in $(TEST_STAGES); do \
	  started=$$(date +%s); \
	  $(MAKE) $$stage || exit 1; \
	  echo "$$stage $$(( $$(date +%s) - started ))" >> $(BUILD)/test-stage-times; \
	done; \
	echo "make test: every stage passed; seconds per stage:"; \
	awk '{ printf "  %-18s %5d s\n", $$1, $$2; total += $$2 } END { printf "  %-18s %5d s\n", "total", total }' $(BUILD)/test-stage-times

# Exact mode's extension for any interpreter, pip or not: builds it in a folder of its own and
# prints, as the last line, the folder to put on PYTHONPATH.
python:
	@src/extension/make_python.sh $(PYTHON)

# Exact mode's tests: they build the extension for every interpreter found (make python).
exact-test: build $(VENV)/.ready
	SPYGLASS_BIN=$(abspath $(BUILD))/spyglass $(VENV)/bin/python -m pytest -ra --durations=10 tests/exact $(PYTEST_ARGS)

# Each export format checked by its real consumer (speedscope's schema, protoc, headless
# Chromium), on files written by the spyglass_export_sample tool.
.PHONY: formats-test
formats-test: build $(VENV)/.ready
	SPYGLASS_BUILD=$(abspath $(BUILD)) $(VENV)/bin/python -m pytest -ra tests/formats $(PYTEST_ARGS)

# The benchmark (bench/run.py, docs/benchmarks.md): spyglass, py-spy and Austin side by side on
# the reference workload, every interpreter found. `bench-smoke` is its short run, no thresholds,
# so it never rots (part of `make test`). BENCH_ARGS passes flags, e.g. BENCH_ARGS=--tools=spyglass.
bench-build: deps
	cmake -S . -B $(BUILD) -G Ninja -DCMAKE_BUILD_TYPE=$(BUILD_TYPE) -DSPYGLASS_BENCH=ON $(CMAKE_ARGS)
	cmake --build $(BUILD) -j $(JOBS)

bench: bench-build
	$(PYTHON) bench/run.py --build $(BUILD) $(BENCH_ARGS)

bench-smoke: bench-build
	$(PYTHON) bench/run.py --quick --build $(BUILD) $(BENCH_ARGS)

demo: build
	@$(PYTHON) examples/demo.py --spyglass $(BUILD)/spyglass

# --- Sanitizers (issue 7; docs/robustness.md) ------------------------------------------------
# AddressSanitizer + UBSan (+ LeakSanitizer) build of spyglass, its unit tests and the export
# tool, in a folder of its own; tests/robustness/sanitize.sh runs against it the unit tests, the
# integration, formats and robustness suites (every suite that runs spyglass's C++), with
# ASAN_OPTIONS/UBSAN_OPTIONS making any finding fail the run (halt_on_error, detect_leaks,
# print_stacktrace; reports also land in $(ASAN_BUILD)/sanitizer-logs, and any file there fails
# the stage, so a test that ignores spyglass's exit status cannot hide one).
# -O1, not Debug's -O0: ASan's usual level, about twice as fast at run time, same findings;
# -g1: line tables are all a sanitizer's stack traces need, and build much faster than -g.
# Left out, each for a reason: exact-test (the extension runs inside CPython, which would need
# LD_PRELOAD of libasan for every interpreter; sanitize.sh prints this), bench-smoke (timings,
# no new code paths), fuzzing (already built with ASan+UBSan in build-fuzz).
# SANITIZE_STAGES picks stages (unit integration formats robustness), PYTEST_ARGS passes flags.
ASAN_BUILD ?= build-asan
SANITIZE_STAGES ?= unit integration formats robustness

$(ASAN_BUILD)/build.ninja:
	cmake -S . -B $(ASAN_BUILD) -G Ninja -DCMAKE_BUILD_TYPE=Debug "-DCMAKE_CXX_FLAGS_DEBUG=-g1 -O1" \
	  -DSPYGLASS_SANITIZE=ON

sanitize: deps $(ASAN_BUILD)/build.ninja $(VENV)/.ready
	cmake --build $(ASAN_BUILD) -j $(JOBS)
	tests/robustness/sanitize.sh $(ASAN_BUILD) $(abspath $(VENV))/bin/python $(SANITIZE_STAGES)

# --- Robustness (issue 7; docs/robustness.md) -----------------------------------------------
# Bounded fuzzing: libFuzzer targets built with clang + ASan/UBSan in a folder of their own,
# seeded with memory images captured from every local interpreter.
FUZZ_BUILD ?= build-fuzz
FUZZ_SECONDS ?= 60

$(FUZZ_BUILD)/build.ninja:
	CC=clang-14 CXX=clang++-14 cmake -S . -B $(FUZZ_BUILD) -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
	  -DSPYGLASS_FUZZ=ON -DSPYGLASS_SANITIZE=ON -DSPYGLASS_TESTS=OFF

.PHONY: fuzz robustness-test valgrind soak
fuzz: build $(FUZZ_BUILD)/build.ninja
	cmake --build $(FUZZ_BUILD) -j $(JOBS) --target fuzz_walker fuzz_linetable
	tests/fuzz/run.sh $(FUZZ_BUILD) $(abspath $(BUILD))/spyglass $(FUZZ_SECONDS)

# Hostile and changing targets, signals, pipes, --blocking, permissions; then 60 s of fuzzing.
robustness-test: build $(VENV)/.ready
	SPYGLASS_BIN=$(abspath $(BUILD))/spyglass $(VENV)/bin/python -m pytest -ra tests/robustness $(PYTEST_ARGS)
	$(MAKE) fuzz FUZZ_SECONDS=60

# memcheck over `dump`, `dump --json` and a 2 s `record` (about 1 min; part of `make test`).
valgrind: build
	@scripts/install-deps.sh test
	tests/robustness/valgrind.sh $(abspath $(BUILD))/spyglass $(PYTHON)

# Not part of `make test`: 10 minutes at 10 kHz against the reference workload.
soak: build
	$(PYTHON) bench/soak.py --spyglass $(BUILD)/spyglass $(SOAK_ARGS)

format:
	clang-format -i $$(git ls-files '*.cpp' '*.h')

# src/cpython/layout_generated.cpp from src/cpython/versions.toml, the one spec of the supported
# CPython versions (docs/versions.md); the unit tests fail while it is out of date.
.PHONY: layouts
layouts:
	$(PYTHON) tools/gen_layouts.py

clean:
	rm -rf $(BUILD) build-asan $(FUZZ_BUILD) $(VENV)
