"""Stress tests of cython/wfcqueue.h through wfcloop_selftest (tests/selftest_build.py).

Each case runs the C harness cython/selftest/wfcq_stress.c: producer
pthreads enqueue while the calling thread (GIL released) dequeues and
splices; the harness counts what came out and the tests assert on the
counts.  The short form takes a few seconds in total on two cores;
WFCLOOP_STRESS=long multiplies the node counts by 10.
"""
import os
import threading
import time

import pytest

import selftest_build  # noqa: E402  (tests/ is on sys.path; needs Cython, a test extra)

_selftest = selftest_build.load()

pytestmark = pytest.mark.stress

SCALE = 10 if os.environ.get("WFCLOOP_STRESS") == "long" else 1


def stress(producers, nodes, splice_every, scale=SCALE, **kw):
    r = _selftest.wfcqueue_stress(producers, nodes * scale, splice_every, **kw)
    check(r, producers, kw.get("feeders", 0), nodes * scale, splice_every)
    return r


def check(r, producers, feeders, nodes, splice_every):
    ctx = f"seed={r['seed']:#x} result={r}"
    total = (producers + feeders) * nodes

    # every node out exactly once, with its payload, in per-producer order
    assert r["violation_names"] == [], ctx
    assert r["lost"] == 0, ctx
    assert r["duplicates"] == 0, ctx
    assert r["order_violations"] == 0, ctx
    assert r["bad_nodes"] == 0, ctx
    assert r["empty_violations"] == 0, ctx
    assert r["splice_ret_violations"] == 0, ctx
    assert r["stuck"] == 0, ctx
    assert r["violations"] == 0, ctx

    # counts that add up
    assert r["total"] == total, ctx
    assert r["enqueued"] == total, ctx
    assert r["feed_enqueued"] == feeders * nodes, ctx
    assert r["dequeued"] + r["spliced_out"] == total, ctx

    # empty -> non-empty transitions == non-empty -> empty transitions
    assert (r["enq_found_empty"] + r["feed_dest_empty"]
            == r["took_last"] + r["spliced_nonempty"]), ctx
    assert r["feed_enq_found_empty"] == r["feed_spliced_nonempty"], ctx
    assert (r["spliced_dest_empty"]
            == r["private_took_last"] + r["private_resets"]), ctx
    assert r["spliced_dest_empty"] <= r["spliced_nonempty"] <= r["splices"], ctx
    assert r["feed_dest_empty"] <= r["feed_spliced_nonempty"] <= r["feed_splices"], ctx

    # the first enqueue into each queue found it empty
    if producers:
        assert r["enq_found_empty"] >= 1, ctx
    if feeders:
        assert r["feed_enq_found_empty"] >= 1, ctx
        assert r["feed_spliced_nonempty"] >= 1, ctx

    # the mix asked for is the mix that ran
    if splice_every == 0:
        assert r["splices"] == 0 and r["spliced_out"] == 0, ctx
        assert r["dequeued"] == total, ctx
    else:
        assert r["splices"] >= 1, ctx
        if splice_every == 1:
            assert r["dequeued"] == 0 and r["spliced_out"] == total, ctx


@pytest.mark.parametrize(
    "producers,nodes,splice_every,yield_shift",
    [
        (1, 300_000, 0, 6),    # dequeue only
        (1, 300_000, 1, 6),    # splice only
        (2, 400_000, 2, 4),
        (2, 400_000, -3, 6),
        (4, 300_000, 0, 6),
        (4, 300_000, 4, 0),    # producers never yield
        (4, 300_000, -2, 3),
        (8, 160_000, 0, 6),
        (8, 160_000, 3, 6),
        (8, 160_000, -5, 2),    # producers yield often: many small interleavings
        (16, 40_000, -3, 1),
    ],
)
def test_dequeue_and_splice(producers, nodes, splice_every, yield_shift):
    stress(producers, nodes, splice_every, yield_shift=yield_shift)


@pytest.mark.parametrize(
    "producers,feeders,nodes,splice_every,feed_every",
    [
        (1, 1, 400_000, 0, 1),
        (2, 2, 300_000, -4, -2),
        (4, 4, 120_000, 0, 1),
        (4, 2, 160_000, 3, -3),
        (0, 3, 200_000, -2, 1),  # shared queue fed by splices only
    ],
)
def test_splice_into_concurrent_with_enqueue(producers, feeders, nodes, splice_every,
                                             feed_every):
    stress(producers, nodes, splice_every, feeders=feeders, feed_every=feed_every)


def test_same_seed_same_consumer_mix_is_still_checked():
    # Thread scheduling makes runs differ even with one seed; both must pass.
    for _ in range(2):
        stress(3, 100_000, -2, seed=12345)


def test_tiny_runs():
    # One node, one producer: the empty -> non-empty -> empty path exactly once.
    r = stress(1, 1, 0, scale=1)
    assert r["enq_found_empty"] == 1 and r["took_last"] == 1
    r = stress(1, 1, 1, scale=1)
    assert r["enq_found_empty"] == 1 and r["spliced_nonempty"] == 1
    for _ in range(20):
        stress(4, 50, -2, scale=1, feeders=2, feed_every=-2)


def test_bad_configuration():
    with pytest.raises(ValueError):
        _selftest.wfcqueue_stress(0, 10, 0)          # no thread at all
    with pytest.raises(ValueError):
        _selftest.wfcqueue_stress(2, 0, 0)           # no node
    with pytest.raises(ValueError):
        _selftest.wfcqueue_stress(-1, 10, 0)
    with pytest.raises(ValueError):
        _selftest.wfcqueue_stress(2, 10, 0, yield_shift=63)
    with pytest.raises(ValueError):
        _selftest.wfcqueue_stress(2, 1 << 40, 0)     # would not fit in memory


def test_violation_names():
    assert _selftest.wfcqueue_violation_names(0) == []
    assert _selftest.wfcqueue_violation_names(1 | 4) == ["lost", "order"]
    assert len(_selftest.WFCQ_VIOLATION_BITS) == 11


def test_runs_without_the_gil():
    result = {}
    started = threading.Event()

    def worker():
        started.set()
        result["r"] = _selftest.wfcqueue_stress(2, 300_000, -3, yield_shift=2)

    t = threading.Thread(target=worker)
    t.start()
    started.wait()
    spins = 0
    deadline = time.monotonic() + 60
    while t.is_alive() and time.monotonic() < deadline:
        spins += 1
        time.sleep(0)
    t.join()
    check(result["r"], 2, 0, 300_000, -3)
    # With the GIL held for the whole C call this loop runs a few dozen times
    # at most (measured: 1-40, against ~10000 with the GIL released).
    assert spins > 500, (spins, result["r"]["seconds"])
