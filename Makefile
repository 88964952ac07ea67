# shmx -- the two commands that matter:
#   make demo   a live producer and readers for ~10 s, then exits 0
#   make test   every test (C, sanitizers, Python, fuzz smoke), installing
#               what it needs on a fresh Debian machine
SHELL := /bin/bash
PY ?= python3
VENV := .venv
VPY := $(VENV)/bin/python
BUILD := build
ASAN_BUILD := build-asan
TSAN_BUILD := build-tsan
FUZZ_BUILD := build-fuzz
MESON := $(VENV)/bin/meson
PIP_DEPS := meson ninja meson-python pytest pytest-timeout numpy mcap zstandard lz4 \
  mcap-protobuf-support protobuf
JOBS ?= 2
FUZZ_SECONDS ?= 20

.PHONY: all build demo test deps sys-deps test-users test-c test-install test-asan test-tsan test-python \
        test-python-nodictver test-python-asan test-python-tsan test-fuzz fuzz-deps bench bench-record \
        test-windows bench-windows bench-peers \
        clean py

all: build

# ---- dependencies ---------------------------------------------------------
$(VENV)/.stamp:
	$(PY) -m venv $(VENV)
	$(VPY) -m pip install -q --upgrade pip
	$(VPY) -m pip install -q $(PIP_DEPS)
	touch $@
deps: $(VENV)/.stamp sys-deps

# Debian packages the C build links: libzmq (shmx bridge), zstd and lz4
# (compressed bridge messages and recordings), zlib (CRC32 of recordings),
# pkg-config to find them.
SYS_PKGS := pkg-config libzmq3-dev libzstd-dev liblz4-dev zlib1g-dev
sys-deps:
	@pkg-config --exists libzmq libzstd liblz4 zlib 2>/dev/null || \
	  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(SYS_PKGS) >/dev/null; }

# clang + libFuzzer runtime for the fuzz targets (Debian packages).
fuzz-deps:
	@command -v clang-14 >/dev/null && [ -e "$$(clang-14 -print-resource-dir)/lib/linux/libclang_rt.fuzzer-x86_64.a" ] || \
	  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq clang-14 libclang-rt-14-dev >/dev/null; }

# ---- C build --------------------------------------------------------------
$(BUILD)/build.ninja: | deps
	$(MESON) setup $(BUILD) --buildtype=release
build: $(BUILD)/build.ninja
	$(MESON) compile -C $(BUILD) -j $(JOBS)

demo: build
	$(BUILD)/tools/shmx demo --duration 10

bench: build
	$(BUILD)/bench/shmx-bench

# Recordings (issue 12): vs write(2), missed frames at offered rates, random
# seek in a 10 GiB recording (in /dev/shm: needs ~11 GiB free), replay timing.
bench-record: build
	$(BUILD)/bench/shmx-bench-record --cli $(BUILD)/tools/shmx

# Peers from Python (issue 16): iceoryx2, pyzmq, zenoh, eCAL and shmx 1.0.1
# from PyPI in their own venvs (.venv-peers, .venv-shmx101), the stdlib
# baselines, this package; latency and throughput at 64 B..8 MiB in
# interleaved rounds (about 15 minutes). BENCH_PEERS_ARGS=--no-pin for the
# unpinned run, --quick for a short one, --json FILE for JSON lines.
BENCH_PEERS_ARGS ?=
bench-peers: py
	$(VPY) bench/bench_peers.py $(BENCH_PEERS_ARGS)

# ---- tests ----------------------------------------------------------------
test: test-c test-install test-asan test-tsan test-python test-python-nodictver test-python-asan \
      test-python-tsan test-fuzz test-windows
	@echo "make test: all suites passed"

# Two unprivileged accounts for the other-user tests (tests/reliability/
# test_names.c, tests/python/test_hostile.py); root only, idempotent.
TEST_USERS := shmx-mon shmx-other
test-users:
	@if [ "$$(id -u)" = 0 ]; then for u in $(TEST_USERS); do id -u $$u >/dev/null 2>&1 || \
	  useradd --system --no-create-home --shell /usr/sbin/nologin $$u; done; fi

test-c: build test-users
	$(MESON) test -C $(BUILD) --print-errorlogs --num-processes $(JOBS)

# Windows (issue 14): cross-build with mingw-w64 and run the C suites, the
# Linux/Windows segment comparison and the CLI smoke tests under Wine
# (installs both from Debian if missing). See tests/win/run.sh.
WIN_BUILD := build-win
test-windows: build
	bash tests/win/run.sh $(MESON) $(BUILD) $(WIN_BUILD)

# Install into a staging dir; build and run examples/quickstart.c via pkg-config.
test-install: build
	@command -v pkg-config >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq pkg-config >/dev/null; }
	MESON=$(MESON) bash tests/install/check.sh $(BUILD)

$(ASAN_BUILD)/build.ninja: | deps
	$(MESON) setup $(ASAN_BUILD) --buildtype=debug -Db_sanitize=address,undefined \
	  -Db_lundef=false -Dc_args=-fno-sanitize-recover=undefined
test-asan: $(ASAN_BUILD)/build.ninja test-users
	$(MESON) compile -C $(ASAN_BUILD) -j $(JOBS)
	ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	  $(MESON) test -C $(ASAN_BUILD) --print-errorlogs --num-processes $(JOBS) --timeout-multiplier 3

$(TSAN_BUILD)/build.ninja: | deps
	$(MESON) setup $(TSAN_BUILD) --buildtype=debug -Db_sanitize=thread -Db_lundef=false
test-tsan: $(TSAN_BUILD)/build.ninja
	$(MESON) compile -C $(TSAN_BUILD) -j $(JOBS)
	TSAN_OPTIONS=halt_on_error=1:second_deadlock_stack=1 \
	  $(MESON) test -C $(TSAN_BUILD) --suite threads --print-errorlogs --num-processes 1 --timeout-multiplier 4

# Python: install the package into the venv (serialised: helpers share it).
py: deps
	flock $(VENV)/.lock $(VPY) -m pip install -q --no-build-isolation --force-reinstall --no-deps .
test-python: py build
	cd tests/python && ../../$(VENV)/bin/pytest -q -p no:cacheprovider . 2>&1 | tail -n 40; exit $${PIPESTATUS[0]}

# get_latest_frame() recycles results by dict version tags up to Python 3.11
# and by comparing entries on 3.12+; this runs the Frame/dict tests against a
# build that takes the 3.12+ path on this interpreter.
test-python-nodictver: deps
	rm -rf build-nodictver-py/site
	$(VPY) -m pip install -q --no-build-isolation --no-deps --target build-nodictver-py/site \
	  -Csetup-args=-Dc_args=-DSHMX_NO_DICT_VERSION -Cbuild-dir=build-nodictver-py/build .
	cd tests/python && PYTHONPATH=../../build-nodictver-py/site ../../$(VPY) -c \
	  "import shmx, sys; sys.exit('build-nodictver-py' not in shmx.__file__)"
	cd tests/python && PYTHONPATH=../../build-nodictver-py/site ../../$(VPY) -m pytest -q \
	  -p no:cacheprovider test_shmx_api.py test_shmx_readme.py test_shmx_misuse.py 2>&1 | tail -n 20; \
	  exit $${PIPESTATUS[0]}

# The extension built with ASan+UBSan, run with the runtime preloaded.
$(VENV)-asan/.stamp:
	$(PY) -m venv $(VENV)-asan
	$(VENV)-asan/bin/python -m pip install -q --upgrade pip
	$(VENV)-asan/bin/python -m pip install -q $(PIP_DEPS)
	touch $@
test-python-asan: $(VENV)-asan/.stamp
	$(VENV)-asan/bin/python -m pip install -q --no-build-isolation --force-reinstall --no-deps \
	  -Csetup-args=-Db_sanitize=address,undefined -Csetup-args=-Db_lundef=false \
	  -Csetup-args=-Dbuildtype=debug -Cbuild-dir=$(ASAN_BUILD)-py .
	cd tests/python && LD_PRELOAD="$$(gcc -print-file-name=libasan.so) $$(gcc -print-file-name=libubsan.so)" \
	  ASAN_OPTIONS=detect_leaks=0:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	  SHMX_SANITIZED=1 ../../$(VENV)-asan/bin/pytest -q -p no:cacheprovider -m "not nosan" . 2>&1 | tail -n 40; exit $${PIPESTATUS[0]}

# Where Python threads meet (one Client, one Server, one smmap manager):
# the extensions built with ThreadSanitizer, libtsan preloaded. CPython's GIL
# is pthread mutexes and condition variables, which TSan intercepts.
PY_THREAD_TESTS := test_threads.py test_smmap.py::test_threads_share_one_manager \
  test_smmap.py::test_one_cursor_misused_by_threads_never_crashes \
  test_shmx_api.py::test_wait_releases_gil_and_close_from_other_thread \
  test_recording.py::test_recorder_stop_from_another_thread
$(VENV)-tsan/.stamp:
	$(PY) -m venv $(VENV)-tsan
	$(VENV)-tsan/bin/python -m pip install -q --upgrade pip
	$(VENV)-tsan/bin/python -m pip install -q $(PIP_DEPS)
	touch $@
test-python-tsan: $(VENV)-tsan/.stamp
	$(VENV)-tsan/bin/python -m pip install -q --no-build-isolation --force-reinstall --no-deps \
	  -Csetup-args=-Db_sanitize=thread -Csetup-args=-Db_lundef=false \
	  -Csetup-args=-Dbuildtype=debug -Cbuild-dir=$(TSAN_BUILD)-py .
	cd tests/python && LD_PRELOAD="$$(gcc -print-file-name=libtsan.so)" TSAN_OPTIONS=halt_on_error=1 \
	  SHMX_SANITIZED=1 ../../$(VENV)-tsan/bin/pytest -q -p no:cacheprovider $(PY_THREAD_TESTS) 2>&1 | tail -n 20; exit $${PIPESTATUS[0]}

$(FUZZ_BUILD)/build.ninja: | deps fuzz-deps
	CC=clang-14 $(MESON) setup $(FUZZ_BUILD) --buildtype=debug -Dfuzz=true -Dtests=false \
	  -Db_sanitize=address,undefined -Db_lundef=false
test-fuzz: $(FUZZ_BUILD)/build.ninja
	$(MESON) compile -C $(FUZZ_BUILD) -j $(JOBS)
	bash fuzz/run.sh $(FUZZ_BUILD) $(FUZZ_SECONDS)

clean:
	rm -rf $(BUILD) $(ASAN_BUILD) $(TSAN_BUILD) $(FUZZ_BUILD) $(ASAN_BUILD)-py $(TSAN_BUILD)-py
