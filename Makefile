# Sanitizer runs of the C stress harnesses (cython/selftest/*.c), built
# standalone, outside the Python extension.  Not part of `pip install`.
#
#   make selftest     the tests' module of the harnesses (build/selftest/)
#   make sanitize     tsan + asan
#   make tsan         ThreadSanitizer: wfcq_stress [+ ep_stress, io_stress], then
#                     tsan-selfcheck (TSAN must catch a planted race)
#   make asan         AddressSanitizer + UndefinedBehaviorSanitizer
#   make clean-sanitize
#
# Sizes: WFCQ_TSAN_ARGS / WFCQ_ASAN_ARGS = "producers nodes_per_producer
# rounds"; EP_TSAN_ARGS / EP_ASAN_ARGS for ep_stress (see its usage line).
# Any sanitizer report makes the target fail.  Outputs: build/sanitize/.
# gcc needs the sanitizer runtimes: scripts/install-sanitizers.sh.

ifeq ($(origin CC),default)
CC := gcc
endif

SAN_DIR := build/sanitize
SAN_CFLAGS := -std=gnu11 -O1 -g -fno-omit-frame-pointer -Wall -Wextra \
              -Wno-unused-function -Wno-unused-parameter -pthread -Icython
TSAN_FLAGS := -fsanitize=thread
ASAN_FLAGS := -fsanitize=address,undefined -fno-sanitize-recover=all

# halt_on_error: stop at the first report and exit non-zero (TSAN: 66).
TSAN_ENV := TSAN_OPTIONS="halt_on_error=1 second_deadlock_stack=1 $(TSAN_OPTIONS)"
ASAN_ENV := ASAN_OPTIONS="halt_on_error=1 detect_leaks=1 abort_on_error=0 $(ASAN_OPTIONS)" \
            UBSAN_OPTIONS="halt_on_error=1 print_stacktrace=1 $(UBSAN_OPTIONS)"
# gcc 12's TSAN runtime dies with "unexpected memory mapping" on kernels
# with high mmap randomisation (vm.mmap_rnd_bits = 32); running it without
# ASLR avoids that.  Empty where setarch is missing or not permitted.
TSAN_LAUNCH ?= $(shell setarch $$(uname -m) -R true >/dev/null 2>&1 && echo setarch $$(uname -m) -R)

WFCQ_SRC := cython/selftest/wfcq_stress.c
WFCQ_DEPS := $(WFCQ_SRC) cython/wfcqueue.h cython/selftest/stress_common.h
WFCQ_TSAN_ARGS ?= 4 40000 2
WFCQ_ASAN_ARGS ?= 4 200000 2

# Eventpoll-core stress (uses only eventpoll_core.h; linked with the core).
EP_SRC := cython/selftest/ep_stress.c
EP_CORE := cython/eventpoll_core.c
# The parts it includes (one translation unit).
EP_PARTS := $(wildcard cython/eventpoll/*.c cython/eventpoll/*.h)
EP_DEPS := $(EP_SRC) $(EP_CORE) $(EP_PARTS) cython/eventpoll_core.h cython/wfcqueue.h cython/selftest/stress_common.h
# channels tokens_per_writer storm_ops rounds [close_without_del]
EP_TSAN_ARGS ?= 32 3000 600 1
EP_ASAN_ARGS ?= 32 5000 1000 2
EP_TSAN_SUPP := $(abspath cython/selftest/tsan.supp)

# Poller-side I/O stress (real sockets; linked with the core).
IO_SRC := cython/selftest/io_stress.c
IO_DEPS := $(IO_SRC) $(EP_CORE) $(EP_PARTS) cython/eventpoll_core.h cython/wfcqueue.h cython/selftest/stress_common.h
# echo_conns pollers values_per_conn victims seconds_cap
IO_TSAN_ARGS ?= 32 4 40000 16 300
IO_ASAN_ARGS ?= 32 4 40000 16 300

.PHONY: selftest sanitize tsan asan wfcq-tsan wfcq-asan ep-tsan ep-asan io-tsan io-asan tsan-selfcheck clean-sanitize

sanitize: tsan asan

# The tests' Python module of the stress harnesses (wfcloop_selftest, not
# installed for users): build/selftest/.  The tests build it themselves.
PYTHON ?= $(if $(wildcard .venv/bin/python),.venv/bin/python,python3)
selftest:
	$(PYTHON) tests/selftest_build.py

tsan: wfcq-tsan ep-tsan io-tsan tsan-selfcheck
asan: wfcq-asan ep-asan io-asan

$(SAN_DIR):
	mkdir -p $@

# ---------------------------------------------------------------- wfcqueue

$(SAN_DIR)/wfcq_stress.tsan: $(WFCQ_DEPS) | $(SAN_DIR)
	$(CC) $(SAN_CFLAGS) $(TSAN_FLAGS) -DWFCQ_STRESS_MAIN $(WFCQ_SRC) -o $@

$(SAN_DIR)/wfcq_stress.asan: $(WFCQ_DEPS) | $(SAN_DIR)
	$(CC) $(SAN_CFLAGS) $(ASAN_FLAGS) -DWFCQ_STRESS_MAIN $(WFCQ_SRC) -o $@

wfcq-tsan: $(SAN_DIR)/wfcq_stress.tsan
	$(TSAN_ENV) $(TSAN_LAUNCH) ./$< $(WFCQ_TSAN_ARGS) > $(SAN_DIR)/wfcq_stress.tsan.log 2>&1 \
	  || { cat $(SAN_DIR)/wfcq_stress.tsan.log; echo "wfcq-tsan: FAILED"; exit 1; }
	@tail -n 1 $(SAN_DIR)/wfcq_stress.tsan.log

wfcq-asan: $(SAN_DIR)/wfcq_stress.asan
	$(ASAN_ENV) ./$< $(WFCQ_ASAN_ARGS) > $(SAN_DIR)/wfcq_stress.asan.log 2>&1 \
	  || { cat $(SAN_DIR)/wfcq_stress.asan.log; echo "wfcq-asan: FAILED"; exit 1; }
	@tail -n 1 $(SAN_DIR)/wfcq_stress.asan.log

# TSAN must report a race when the queue's link store is weakened from
# release to relaxed (a copy of wfcqueue.h, edited here, shadows the real
# one): proves that the TSAN build really checks the queue's ordering.
$(SAN_DIR)/selfcheck/wfcqueue.h: cython/wfcqueue.h | $(SAN_DIR)
	mkdir -p $(dir $@)
	sed 's/atomic_store_explicit(&old_tail->next, first, memory_order_release)/atomic_store_explicit(\&old_tail->next, first, memory_order_relaxed)/' $< > $@
	@! cmp -s $< $@ || { echo "tsan-selfcheck: the link store in wfcqueue.h changed; update the sed"; rm -f $@; exit 1; }

$(SAN_DIR)/wfcq_selfcheck.tsan: $(WFCQ_SRC) $(SAN_DIR)/selfcheck/wfcqueue.h
	$(CC) $(SAN_CFLAGS:-Icython=) -I$(SAN_DIR)/selfcheck -Icython $(TSAN_FLAGS) -DWFCQ_STRESS_MAIN $(WFCQ_SRC) -o $@

tsan-selfcheck: $(SAN_DIR)/wfcq_selfcheck.tsan
	@if $(TSAN_ENV) $(TSAN_LAUNCH) ./$< $(WFCQ_TSAN_ARGS) > $(SAN_DIR)/wfcq_selfcheck.tsan.log 2>&1; then \
	  echo "tsan-selfcheck: FAILED: TSAN did not catch the planted race"; exit 1; \
	elif grep -q "WARNING: ThreadSanitizer: data race" $(SAN_DIR)/wfcq_selfcheck.tsan.log; then \
	  echo "tsan-selfcheck: ok (the planted race was reported)"; \
	else cat $(SAN_DIR)/wfcq_selfcheck.tsan.log; echo "tsan-selfcheck: FAILED: no race report"; exit 1; fi

# ------------------------------------------------------ eventpoll core

$(SAN_DIR)/ep_stress.tsan: $(EP_DEPS) | $(SAN_DIR)
	$(CC) $(SAN_CFLAGS) $(TSAN_FLAGS) -DEP_STRESS_MAIN $(EP_SRC) $(EP_CORE) -o $@

$(SAN_DIR)/ep_stress.asan: $(EP_DEPS) | $(SAN_DIR)
	$(CC) $(SAN_CFLAGS) $(ASAN_FLAGS) -DEP_STRESS_MAIN $(EP_SRC) $(EP_CORE) -o $@

# Twice: without close-without-del and without suppressions, then with
# close-without-del and cython/selftest/tsan.supp, which hides the fd races
# (epoll_ctl on a closed or reused fd number) that closing registered fds
# causes, and nothing else.  gcc warns that TSAN does not model
# atomic_thread_fence (-Wtsan): the core's fence-based wake-up protocol is
# not checked by TSAN, only exercised.
ep-tsan: $(SAN_DIR)/ep_stress.tsan
	$(TSAN_ENV) $(TSAN_LAUNCH) ./$< $(EP_TSAN_ARGS) 0 > $(SAN_DIR)/ep_stress.tsan.log 2>&1 \
	  || { cat $(SAN_DIR)/ep_stress.tsan.log; echo "ep-tsan: FAILED"; exit 1; }
	@tail -n 1 $(SAN_DIR)/ep_stress.tsan.log
	TSAN_OPTIONS="halt_on_error=1 second_deadlock_stack=1 suppressions=$(EP_TSAN_SUPP) $(TSAN_OPTIONS)" \
	  $(TSAN_LAUNCH) ./$< $(EP_TSAN_ARGS) 1 > $(SAN_DIR)/ep_stress_cwd.tsan.log 2>&1 \
	  || { cat $(SAN_DIR)/ep_stress_cwd.tsan.log; echo "ep-tsan (close without del): FAILED"; exit 1; }
	@tail -n 1 $(SAN_DIR)/ep_stress_cwd.tsan.log

$(SAN_DIR)/io_stress.tsan: $(IO_DEPS) | $(SAN_DIR)
	$(CC) $(SAN_CFLAGS) $(TSAN_FLAGS) -DIO_STRESS_MAIN $(IO_SRC) $(EP_CORE) -o $@

$(SAN_DIR)/io_stress.asan: $(IO_DEPS) | $(SAN_DIR)
	$(CC) $(SAN_CFLAGS) $(ASAN_FLAGS) -DIO_STRESS_MAIN $(IO_SRC) $(EP_CORE) -o $@

io-tsan: $(SAN_DIR)/io_stress.tsan
	TSAN_OPTIONS="halt_on_error=1 second_deadlock_stack=1 suppressions=$(EP_TSAN_SUPP) $(TSAN_OPTIONS)" \
	  $(TSAN_LAUNCH) ./$< $(IO_TSAN_ARGS) > $(SAN_DIR)/io_stress.tsan.log 2>&1 \
	  || { cat $(SAN_DIR)/io_stress.tsan.log; echo "io-tsan: FAILED"; exit 1; }
	@tail -n 1 $(SAN_DIR)/io_stress.tsan.log

io-asan: $(SAN_DIR)/io_stress.asan
	$(ASAN_ENV) ./$< $(IO_ASAN_ARGS) > $(SAN_DIR)/io_stress.asan.log 2>&1 \
	  || { cat $(SAN_DIR)/io_stress.asan.log; echo "io-asan: FAILED"; exit 1; }
	@tail -n 1 $(SAN_DIR)/io_stress.asan.log

ep-asan: $(SAN_DIR)/ep_stress.asan
	$(ASAN_ENV) ./$< $(EP_ASAN_ARGS) > $(SAN_DIR)/ep_stress.asan.log 2>&1 \
	  || { cat $(SAN_DIR)/ep_stress.asan.log; echo "ep-asan: FAILED"; exit 1; }
	@tail -n 1 $(SAN_DIR)/ep_stress.asan.log

clean-sanitize:
	rm -rf $(SAN_DIR)
