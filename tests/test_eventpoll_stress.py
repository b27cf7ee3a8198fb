"""Stress tests of the eventpoll core (cython/eventpoll_core.c) through
wfcloop_selftest.eventpoll_stress (built by tests/selftest_build.py), the C
harness cython/selftest/ep_stress.c.

Writer threads write counted tokens into pipes, eventfds and socketpairs;
storm threads delete, re-add, close, reopen and modify the registrations;
the calling thread (GIL released) runs wfc_ep_wait and reads a channel only
when an event says so.  The harness checks that no token is left unread (no
lost event), that no event is delivered for a registration removed before
the wait began, that one wait never returns a registration twice, and more
(see the file's header comment).  WFCLOOP_STRESS=long multiplies the sizes.
"""
import os

import pytest

import selftest_build  # noqa: E402  (tests/ is on sys.path; needs Cython, a test extra)

_selftest = selftest_build.load()
if not hasattr(_selftest, "eventpoll_stress"):
    pytest.skip("wfcloop_selftest has no eventpoll_stress", allow_module_level=True)

pytestmark = pytest.mark.stress

SCALE = 10 if os.environ.get("WFCLOOP_STRESS") == "long" else 1


def run(**kw):
    kw.setdefault("tokens_per_writer", 3000)
    kw.setdefault("storm_ops", 600)
    kw["tokens_per_writer"] *= SCALE
    kw["storm_ops"] *= SCALE
    r = _selftest.eventpoll_stress(**kw)
    check(r, kw)
    return r


def check(r, kw):
    ctx = f"config={kw} seed={r['seed']:#x} result={r}"
    channels = kw.get("channels", 32)

    assert r["violation_names"] == [], ctx
    assert r["lost"] == 0, ctx
    assert r["after_removal"] == 0, ctx
    assert r["after_reuse"] == 0, ctx
    assert r["duplicates"] == 0, ctx
    assert r["wrong_fd"] == 0, ctx
    assert r["bad_events"] == 0, ctx
    assert r["errors"] == 0, ctx
    assert r["writer_stuck"] == 0, ctx
    if not r["spurious_allowed"]:
        assert r["spurious"] == 0, ctx

    # every token written is read after an event or discarded at a close
    assert r["written"] == kw.get("writers", 2) * kw["tokens_per_writer"], ctx
    assert r["read"] + r["discarded"] == r["written"], ctx
    # the core counted what it returned
    assert r["st_delivered"] == r["events"], ctx
    assert r["events"] >= 1, ctx
    # one initial add per channel, then one per storm del/reopen
    assert r["adds"] == channels + r["dels"] + r["closes_without_del"], ctx
    if not kw.get("close_without_del", True):
        # every registration went through wfc_ep_del: the core's count is exact
        assert r["st_registered"] == channels, ctx
    else:
        # closed-without-del registrations linger until their fd number is
        # registered again or a re-arm fails
        assert r["st_registered"] >= channels, ctx
    if kw.get("pollers", 2) == 0:
        assert r["st_harvested"] == r["st_harvested_inline"], ctx
    if kw.get("storms", 2) == 0:
        assert r["discarded"] == 0 and r["stale"] == 0, ctx


@pytest.mark.parametrize(
    "config",
    [
        dict(mode="lt", mods=False),
        dict(mode="lt", mods=False, pollers=0),                 # inline mode
        dict(mode="lt", mods=False, pollers=4, close_without_del=False),
        dict(mode="lt", mods=False, ready_list="mutex"),
        dict(mode="oneshot", mods=False),
        dict(mode="oneshot", mods=True),
        dict(mode="lt", mods=True),
        dict(mode="lt", mods=True, ready_list="mutex", close_without_del=False),
        dict(mode="et", mods=False),
        dict(mode="et", mods=True, pollers=3),
        dict(mode="lt", mods=True, channels=4),                 # many collisions
        dict(mode="lt", mods=1, channels=8, maxevents=4, close_without_del=False),
        dict(mode="lt", mods=True, maxevents=1),
        dict(mode="lt", mods=False, fd_kinds=("eventfd",), channels=8),
        dict(mode="lt", mods=False, fd_kinds=("socketpair",)),
    ],
    ids=lambda c: "-".join(f"{k}={v}" for k, v in c.items()),
)
def test_eventpoll_storm(config):
    run(**config)


@pytest.mark.parametrize(
    "config",
    [
        dict(mode="lt", mods=True, phase_flips=3),
        dict(mode="lt", mods=False, pollers=4, phase_flips=2, close_without_del=False),
        dict(mode="et", mods=True, pollers=3, phase_flips=3),
        dict(mode="oneshot", mods=True, phase_flips=5, maxevents=4),
        dict(mode="lt", mods=True, phase_flips=7, ready_list="mutex"),
    ],
    ids=lambda c: "-".join(f"{k}={v}" for k, v in c.items()),
)
def test_eventpoll_storm_phase_flips(config):
    """The consumer parks and unparks the pollers at random while storms
    run: every check of the harness still holds, across the switches, and
    every switch asked for was made (an unpark that cannot start its
    threads parks again: two switches for one request)."""
    r = run(**config)
    assert r["phase_requests_in_storm"] >= 1, r
    assert r["phase_requests"] >= 2, r
    assert r["st_phase_switches"] >= r["phase_requests"], r


@pytest.mark.parametrize("mode", ["lt", "et", "oneshot"])
def test_eventpoll_storm_adaptive(mode):
    """The adaptive rule on, its clock 1000x faster: it runs trials and
    switches by itself while the storms run, and every check still holds."""
    r = run(mode=mode, mods=True, adaptive=1000)
    assert r["st_phase_switches"] >= 2, r


def test_eventpoll_storm_adaptive_clock_every_few_waits():
    """The rule 16x faster: under load it reads the clock every other wait
    only (ADAPT_CLOCK_EVERY / 16), the rest of the time counting waits; the
    harness's checks still hold whatever it decides."""
    r = run(mode="lt", mods=True, adaptive=16)
    assert r["st_phase_switches"] >= 1, r   # it parked the pollers at least


def test_no_storm_every_token_read():
    r = run(mode="lt", mods=False, storms=0)
    assert r["read"] == r["written"] and r["discarded"] == 0


def test_bad_configuration():
    with pytest.raises(ValueError):
        _selftest.eventpoll_stress(mode="level")
    with pytest.raises(ValueError):
        _selftest.eventpoll_stress(fd_kinds=("fifo",))
    with pytest.raises(ValueError):
        _selftest.eventpoll_stress(channels=0)
    with pytest.raises(ValueError):
        _selftest.eventpoll_stress(fd_kinds=())


# ---- poller-side I/O (cython/selftest/io_stress.c) ------------------------

@pytest.mark.parametrize("pollers", [1, 4])
def test_poller_side_io_stress(pollers):
    """Echo streams through pollers' reads and sends, with pause/resume
    storms; victim connections closed and reopened (fd numbers reused)
    under the pollers: every value echoed once and in order, and no read
    from a closed or reused fd."""
    r = _selftest.io_stress(conns=16, pollers=pollers, values=3000 * SCALE,
                            victims=8, seconds_cap=120.0)
    ctx = f"pollers={pollers} result={r}"
    assert r["violations"] == 0, ctx
    assert r["corrupt"] == 0 and r["lost"] == 0 and r["foreign"] == 0, ctx
    assert r["values"] == 16 * 3000 * SCALE, ctx
    # The protocol ran: pollers read and sent, pauses and victim cycles
    # happened.
    assert r["io_reads"] > 0 and r["io_flushes"] > 0 and r["io_handbacks"] > 0, ctx
    assert r["pauses"] > 0 and r["victim_cycles"] > 0, ctx
