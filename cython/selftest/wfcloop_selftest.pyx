# cython: language_level=3
"""Stress harnesses for the C core, run by the test suite.

Not needed at run time.  Each function runs a C harness with the GIL
released and returns a dict of counters; the tests assert on them.
"""

import os

from libc.stdint cimport int64_t, uint32_t, uint64_t
from libc.string cimport strerror


# ---------------------------------------------------------------------------
# wfcqueue.h: cython/selftest/wfcq_stress.c
# ---------------------------------------------------------------------------

cdef extern from "selftest/wfcq_stress.c" nogil:
    cdef struct wfcq_stress_config:
        int producers
        int feeders
        int64_t nodes_per_producer
        int splice_every
        int feed_every
        int yield_shift
        uint64_t seed

    cdef struct wfcq_stress_result:
        int64_t total
        int64_t enqueued
        int64_t enq_found_empty
        int64_t dequeued
        int64_t took_last
        int64_t found_empty
        int64_t splices
        int64_t spliced_nonempty
        int64_t spliced_dest_empty
        int64_t spliced_out
        int64_t private_took_last
        int64_t private_resets
        int64_t feed_enqueued
        int64_t feed_enq_found_empty
        int64_t feed_splices
        int64_t feed_spliced_nonempty
        int64_t feed_dest_empty
        int64_t peeked
        int64_t rounds
        int64_t duplicates
        int64_t lost
        int64_t order_violations
        int64_t bad_nodes
        int64_t empty_violations
        int64_t splice_ret_violations
        int64_t stuck
        int64_t violations
        double seconds

    int wfcq_stress_run_config(const wfcq_stress_config *cfg, wfcq_stress_result *res)

    enum:
        WFCQ_STRESS_V_LOST
        WFCQ_STRESS_V_DUPLICATE
        WFCQ_STRESS_V_ORDER
        WFCQ_STRESS_V_BAD_NODE
        WFCQ_STRESS_V_EMPTY
        WFCQ_STRESS_V_SPLICE_RET
        WFCQ_STRESS_V_SHARED_IDENTITY
        WFCQ_STRESS_V_FEED_IDENTITY
        WFCQ_STRESS_V_PRIVATE_IDENTITY
        WFCQ_STRESS_V_COUNT
        WFCQ_STRESS_V_STUCK


#: Bit of ``result["violations"]`` -> name.
WFCQ_VIOLATION_BITS = {
    WFCQ_STRESS_V_LOST: "lost",
    WFCQ_STRESS_V_DUPLICATE: "duplicate",
    WFCQ_STRESS_V_ORDER: "order",
    WFCQ_STRESS_V_BAD_NODE: "bad_node",
    WFCQ_STRESS_V_EMPTY: "empty",
    WFCQ_STRESS_V_SPLICE_RET: "splice_ret",
    WFCQ_STRESS_V_SHARED_IDENTITY: "shared_identity",
    WFCQ_STRESS_V_FEED_IDENTITY: "feed_identity",
    WFCQ_STRESS_V_PRIVATE_IDENTITY: "private_identity",
    WFCQ_STRESS_V_COUNT: "count",
    WFCQ_STRESS_V_STUCK: "stuck",
}


def wfcqueue_violation_names(int64_t violations):
    """Names of the bits set in ``result["violations"]``."""
    return [name for bit, name in WFCQ_VIOLATION_BITS.items() if violations & bit]



cdef _check_rc(int rc, describe):
    """Turn a harness's negative errno into the exception, once: EINVAL is a
    bad configuration (ValueError, described by describe()), the rest
    OSError."""
    if rc == -22:  # EINVAL
        raise ValueError(describe())
    if rc < 0:
        raise OSError(-rc, strerror(-rc).decode(errors="replace"))

def wfcqueue_stress(int producers, int64_t nodes_per_producer, int splice_every=4, *,
                    int feeders=0, int feed_every=1, int yield_shift=6, seed=None):
    """Stress wfcqueue.h: ``producers`` threads enqueue ``nodes_per_producer``
    nodes each into a shared queue while the calling thread (GIL released)
    takes them out, mixing wfcq_dequeue and wfcq_splice into a private queue.

    splice_every: >0 splice every Nth consumer round, 0 never (dequeue only),
    <0 splice with probability 1/-N per round.
    feeders: extra threads that enqueue into a second queue which the
    consumer splices into the shared queue (feed_every: same encoding as
    splice_every) while the producers keep enqueueing into it.
    yield_shift: producers call sched_yield() after an enqueue with
    probability 2**-yield_shift (0: never).
    seed: PRNG seed (random when None; returned in the result).

    Returns a dict of the C counters (see struct wfcq_stress_result) plus
    ``seed`` and ``violation_names``; ``violations == 0`` means every check
    passed.
    """
    cdef wfcq_stress_config cfg
    cdef wfcq_stress_result res
    cdef int rc
    cdef dict out

    if seed is None:
        seed = int.from_bytes(os.urandom(8), "little")
    cfg.producers = producers
    cfg.feeders = feeders
    cfg.nodes_per_producer = nodes_per_producer
    cfg.splice_every = splice_every
    cfg.feed_every = feed_every
    cfg.yield_shift = yield_shift
    cfg.seed = <uint64_t>(seed & 0xFFFFFFFFFFFFFFFF)
    with nogil:
        rc = wfcq_stress_run_config(&cfg, &res)
    _check_rc(rc, lambda: (
        f"bad wfcqueue_stress configuration: producers={producers} feeders={feeders} "
        f"nodes_per_producer={nodes_per_producer} yield_shift={yield_shift}"))
    out = res  # Cython converts the struct to a dict of its fields
    out["seed"] = cfg.seed
    out["violation_names"] = wfcqueue_violation_names(res.violations)
    return out


# ---------------------------------------------------------------------------
# eventpoll core (eventpoll_core.h): cython/selftest/ep_stress.c
# ---------------------------------------------------------------------------
#
# The harness uses only the eventpoll_core.h API; eventpoll_core.c is linked
# into this module (setup.py lists it among this extension's sources).

cdef extern from "selftest/ep_stress.c" nogil:
    cdef struct ep_stress_config:
        int pollers
        int ready_list_kind
        int mode
        int fd_kinds
        int channels
        int writers
        int64_t tokens_per_writer
        int storms
        int64_t storm_ops
        int mods
        int close_without_del
        int drain_timeout_ms
        int maxevents
        int phase_flips
        int adaptive
        uint64_t seed

    cdef struct ep_stress_result:
        int64_t written
        int64_t read
        int64_t discarded
        int64_t lost
        int64_t events
        int64_t batches
        int64_t waits
        int64_t stale
        int64_t spurious
        int64_t after_removal
        int64_t after_reuse
        int64_t duplicates
        int64_t wrong_fd
        int64_t bad_events
        int64_t errors
        int64_t writer_stuck
        int64_t adds
        int64_t dels
        int64_t mods
        int64_t reopens
        int64_t closes_without_del
        int64_t user_rearms
        int64_t full
        int64_t spurious_allowed
        int64_t st_pollers
        int64_t st_harvested
        int64_t st_harvested_inline
        int64_t st_enqueued
        int64_t st_enqueued_found_empty
        int64_t st_coalesced
        int64_t st_stale
        int64_t st_wakeups
        int64_t st_sleeps
        int64_t st_splices
        int64_t st_delivered
        int64_t st_rearms
        int64_t st_reaped
        int64_t st_registered
        int64_t st_phase_switches
        int64_t phase_requests
        int64_t phase_requests_in_storm
        int64_t violations
        double seconds

    int ep_stress_run_config(const ep_stress_config *cfg, ep_stress_result *res)

    enum:
        EP_STRESS_LT
        EP_STRESS_ET
        EP_STRESS_ONESHOT
        EP_STRESS_PIPE
        EP_STRESS_EVENTFD
        EP_STRESS_SOCKETPAIR
        EP_STRESS_V_LOST
        EP_STRESS_V_AFTER_REMOVAL
        EP_STRESS_V_AFTER_REUSE
        EP_STRESS_V_DUPLICATE
        EP_STRESS_V_WRONG_FD
        EP_STRESS_V_BAD_EVENT
        EP_STRESS_V_SPURIOUS
        EP_STRESS_V_STATS
        EP_STRESS_V_ERRORS
        EP_STRESS_V_WRITER_STUCK

cdef extern from "eventpoll_core.h" nogil:
    enum:
        WFC_READY_LIST_WFCQUEUE
        WFC_READY_LIST_MUTEX
        WFC_PHASE_INLINE
        WFC_PHASE_POLLERS


#: Bit of ``result["violations"]`` -> name.
EP_VIOLATION_BITS = {
    EP_STRESS_V_LOST: "lost",
    EP_STRESS_V_AFTER_REMOVAL: "after_removal",
    EP_STRESS_V_AFTER_REUSE: "after_reuse",
    EP_STRESS_V_DUPLICATE: "duplicate",
    EP_STRESS_V_WRONG_FD: "wrong_fd",
    EP_STRESS_V_BAD_EVENT: "bad_event",
    EP_STRESS_V_SPURIOUS: "spurious",
    EP_STRESS_V_STATS: "stats",
    EP_STRESS_V_ERRORS: "errors",
    EP_STRESS_V_WRITER_STUCK: "writer_stuck",
}

_EP_MODES = {"lt": EP_STRESS_LT, "et": EP_STRESS_ET, "oneshot": EP_STRESS_ONESHOT}
_EP_KINDS = {"pipe": EP_STRESS_PIPE, "eventfd": EP_STRESS_EVENTFD,
             "socketpair": EP_STRESS_SOCKETPAIR}
_EP_LISTS = {"wfcqueue": WFC_READY_LIST_WFCQUEUE, "mutex": WFC_READY_LIST_MUTEX}


def eventpoll_violation_names(int64_t violations):
    """Names of the bits set in ``result["violations"]``."""
    return [name for bit, name in EP_VIOLATION_BITS.items() if violations & bit]


def eventpoll_stress(*, int pollers=2, mode="lt", ready_list="wfcqueue",
                     fd_kinds=("pipe", "eventfd", "socketpair"), int channels=32,
                     int writers=2, int64_t tokens_per_writer=3000, int storms=2,
                     int64_t storm_ops=600, int mods=1, bint close_without_del=True,
                     int drain_timeout_ms=2000, int maxevents=64, int phase_flips=0,
                     int adaptive=0, seed=None):
    """Stress the eventpoll core: writer threads write counted tokens into
    pipes/eventfds/socketpairs, storm threads del/re-add/close/reopen/mod
    the registrations, the calling thread (GIL released) runs wfc_ep_wait
    and reads a channel only when an event says so.

    mode: "lt" (level-triggered), "et" (EPOLLET) or "oneshot" (EPOLLONESHOT,
    re-armed with wfc_ep_mod after each event).  pollers=0: inline mode.
    mods: weight (0..8) of wfc_ep_mod among the storm actions, against 1 for
    each of del+re-add, del+close+reopen and (close_without_del) close
    without del + reopen; 0: storms never modify.
    maxevents: what the consumer passes to wfc_ep_wait (1..64).
    phase_flips (poller mode): before about one wait in phase_flips the
    consumer asks for a random phase, parking or unparking the pollers;
    0: never.  adaptive (> 0): the core's adaptive rule picks the phase,
    its time constants divided by this (1000: a trial every few ms).

    Returns a dict of the C counters (see struct ep_stress_result) plus
    ``seed`` and ``violation_names``; ``violations == 0`` means every check
    passed.  ``st_*`` are the core's own wfc_ep_get_stats() counters.
    """
    cdef ep_stress_config cfg
    cdef ep_stress_result res
    cdef int rc
    cdef dict out

    if seed is None:
        seed = int.from_bytes(os.urandom(8), "little")
    try:
        cfg.mode = _EP_MODES[mode]
        cfg.ready_list_kind = _EP_LISTS[ready_list]
        cfg.fd_kinds = 0
        for kind in fd_kinds:
            cfg.fd_kinds |= _EP_KINDS[kind]
    except KeyError as exc:
        raise ValueError(f"unknown eventpoll_stress option {exc}") from None
    cfg.pollers = pollers
    cfg.channels = channels
    cfg.writers = writers
    cfg.tokens_per_writer = tokens_per_writer
    cfg.storms = storms
    cfg.storm_ops = storm_ops
    cfg.mods = mods
    cfg.close_without_del = close_without_del
    cfg.drain_timeout_ms = drain_timeout_ms
    cfg.maxevents = maxevents
    cfg.phase_flips = phase_flips
    cfg.adaptive = adaptive
    cfg.seed = <uint64_t>(seed & 0xFFFFFFFFFFFFFFFF)
    with nogil:
        rc = ep_stress_run_config(&cfg, &res)
    _check_rc(rc, lambda: "bad eventpoll_stress configuration")
    out = res  # Cython converts the struct to a dict of its fields
    out["seed"] = cfg.seed
    out["violation_names"] = eventpoll_violation_names(res.violations)
    return out


# ---------------------------------------------------------------------------
# The adaptive rule on a synthetic clock: cython/selftest/adapt_sim.c
# ---------------------------------------------------------------------------

cdef extern from "selftest/adapt_sim.c" nogil:
    cdef struct adapt_sim_switch:
        int64_t at_ns
        int to_phase

    int adapt_sim_run(double inline_rate, double pollers_rate, int64_t duration_ns,
                      int64_t step_ns, int64_t idle_after_ns, int64_t switch_ns,
                      int64_t scale, adapt_sim_switch *out, int max)


def adaptive_rule_trace(double inline_rate, double pollers_rate, double seconds, *,
                        double step_us=100.0, double idle_after=0.0,
                        double switch_us=0.0, int scale=1):
    """Run the core's adaptive rule (eventpoll/adaptive_rule.h) for
    `seconds` of a synthetic clock, stepped every `step_us`, with events
    arriving at `inline_rate` or `pollers_rate` per second by phase (none
    after `idle_after` seconds, if > 0; none during a switch's `switch_us`).

    Returns the switches, in order, as (seconds from the start, "inline" or
    "pollers").  The phase starts inline.
    """
    cdef adapt_sim_switch out[256]
    cdef int n
    if seconds <= 0 or step_us <= 0 or inline_rate < 0 or pollers_rate < 0:
        raise ValueError("adaptive_rule_trace: seconds and step_us must be > 0, rates >= 0")
    with nogil:
        n = adapt_sim_run(inline_rate, pollers_rate, <int64_t>(seconds * 1e9),
                          <int64_t>(step_us * 1e3), <int64_t>(idle_after * 1e9),
                          <int64_t>(switch_us * 1e3), scale, out, 256)
    if n > 256:
        raise OverflowError(f"adaptive_rule_trace: {n} switches, more than 256 recorded")
    return [(out[i].at_ns / 1e9, "pollers" if out[i].to_phase == WFC_PHASE_POLLERS else "inline")
            for i in range(n)]


# ---------------------------------------------------------------------------
# Poller-side I/O: cython/selftest/io_stress.c
# ---------------------------------------------------------------------------

cdef extern from "selftest/io_stress.c" nogil:
    cdef struct io_stress_result:
        int64_t values
        int64_t corrupt
        int64_t lost
        int64_t foreign
        int64_t pauses
        int64_t settled_writes
        int64_t victim_cycles
        int64_t io_reads
        int64_t io_flushes
        int64_t io_handbacks
        int violations
        double seconds

    int io_stress_run(int nconns, int npollers, uint32_t values, int nvictims, double cap,
                      io_stress_result *res)


def io_stress(*, int conns=16, int pollers=4, int values=5000, int victims=8,
              double seconds_cap=60.0):
    """Run the poller-side I/O harness (echo connections with pause/resume
    storms, victim connections closed and reopened under the pollers) and
    return its counters."""
    cdef io_stress_result res
    cdef int r
    with nogil:
        r = io_stress_run(conns, pollers, <uint32_t>values, victims, seconds_cap, &res)
    if r < 0:
        raise OSError(-r, strerror(-r).decode())
    return {
        "values": res.values, "corrupt": res.corrupt, "lost": res.lost,
        "foreign": res.foreign, "pauses": res.pauses,
        "settled_writes": res.settled_writes, "victim_cycles": res.victim_cycles,
        "io_reads": res.io_reads, "io_flushes": res.io_flushes,
        "io_handbacks": res.io_handbacks, "violations": res.violations,
        "seconds": res.seconds,
    }
