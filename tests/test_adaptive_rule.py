"""The adaptive rule's verdicts (cython/eventpoll/adaptive_rule.h), exactly.

wfcloop_selftest.adaptive_rule_trace runs the rule the core runs, on a
synthetic clock (cython/selftest/adapt_sim.c): events arrive at one rate
inline and another with the pollers, and the trace lists every switch of
phase with its time.  So the rule's schedule (first trial 2 s into a load,
20 ms to settle, 200 ms measured, backoff doubling from 2 s, a recheck of
inline every 10 s once the pollers won) is checked here without depending
on this machine's speed; the stress tests check the same rule under real
threads (tests/test_eventpoll_stress.py).
"""
import pytest

import selftest_build  # noqa: E402  (tests/ is on sys.path; needs Cython, a test extra)

_selftest = selftest_build.load()
trace = _selftest.adaptive_rule_trace

INLINE = 140_000.0   # events/s: protocol echo, 1 KiB, 100 connections, 2 CPUs


def durations(switches, phase):
    """How long each stay in `phase` lasted (a switch into it, then out)."""
    return [round(t_out - t_in, 6) for (t_in, p), (t_out, _) in zip(switches, switches[1:])
            if p == phase]


def test_light_load_never_tries_the_pollers():
    # 5,000 events/s: 500 per 100 ms window, under ADAPT_MIN_EVENTS.
    assert trace(5_000, 50_000, 30) == []


def test_clearly_losing_trial_ends_after_its_early_look():
    """Pollers at 0.6x inline (what 2 CPUs measure): each trial ends 70 ms
    after it began (20 ms settling + a 50 ms look), and the next waits
    twice as long as the one before."""
    sw = trace(INLINE, 0.6 * INLINE, 40)
    assert [p for _, p in sw] == ["pollers", "inline"] * 4
    assert sw[0][0] == pytest.approx(2.0)
    assert durations(sw, "pollers") == pytest.approx([0.07] * 4)
    starts = [t for t, p in sw if p == "pollers"]
    gaps = [b - a for a, b in zip(starts, starts[1:])]
    assert gaps == pytest.approx([4.07, 8.07, 16.07])


def test_close_trial_runs_its_whole_measure():
    """Pollers at 0.97x inline: not clearly losing, so the trial is measured
    for its full 200 ms (after 20 ms settling) before inline wins."""
    sw = trace(INLINE, 0.97 * INLINE, 10)
    assert [p for _, p in sw] == ["pollers", "inline", "pollers", "inline"]
    assert durations(sw, "pollers") == pytest.approx([0.22, 0.22])


@pytest.mark.parametrize("ratio", [0.81, 1.0, 1.04])
def test_pollers_need_five_percent_more_to_stay(ratio):
    sw = trace(INLINE, ratio * INLINE, 3)
    assert sw == [(pytest.approx(2.0), "pollers"), (pytest.approx(2.22), "inline")]


def test_winning_pollers_stay_and_inline_is_rechecked():
    """Pollers at 1.3x inline stay; inline is tried again 10 s after each
    win, loses clearly (0.77x the pollers' rate) and ends after its early
    look."""
    sw = trace(INLINE, 1.3 * INLINE, 25)
    assert [p for _, p in sw] == ["pollers", "inline", "pollers", "inline", "pollers"]
    assert sw[0][0] == pytest.approx(2.0)
    assert sw[1][0] == pytest.approx(2.22 + 10.0)
    assert durations(sw, "inline") == pytest.approx([0.07, 0.07])


def test_inline_wins_back_at_the_tie():
    """Pollers at 1.052x inline are kept (more than 5% better), but at the
    recheck inline delivers 1/1.052 = 0.951x their rate: within the tie
    (0.95), so inline wins back, being cheaper in CPU, and the pollers are
    tried again 2 s later."""
    sw = trace(INLINE, 1.052 * INLINE, 15)
    assert [p for _, p in sw] == ["pollers", "inline", "pollers"]
    assert sw[1][0] == pytest.approx(12.22)
    assert sw[2][0] == pytest.approx(12.22 + 0.22 + 2.0)


def test_inline_below_the_tie_gives_the_pollers_back():
    """Pollers at 1.06x inline: at the recheck inline measures 0.943x their
    rate, below the tie but not clearly losing, so its trial runs the whole
    measure before the pollers come back."""
    sw = trace(INLINE, 1.06 * INLINE, 13)
    assert [p for _, p in sw] == ["pollers", "inline", "pollers"]
    assert durations(sw, "inline") == pytest.approx([0.22])


def test_load_gone_during_a_trial_returns_to_inline():
    # The load stops 1 ms into the trial's measure: the window is light.
    sw = trace(INLINE, INLINE, 10, idle_after=2.021)
    assert sw == [(pytest.approx(2.0), "pollers"), (pytest.approx(2.22), "inline")]


def test_switch_cost_is_not_counted_as_either_phase():
    """A switch that takes 5 ms (threads started or joined) delays the
    schedule by its length, and the settling time absorbs its aftermath:
    the verdict is the same as with free switches."""
    sw = trace(INLINE, 0.6 * INLINE, 10, switch_us=5_000)
    assert [p for _, p in sw] == ["pollers", "inline", "pollers", "inline"]
    assert durations(sw, "pollers") == pytest.approx([0.075, 0.075])


def test_scaled_clock_keeps_the_schedule_in_proportion():
    sw = trace(INLINE * 1000, 0.6 * INLINE * 1000, 0.04, step_us=0.1, scale=1000)
    assert sw[0] == (pytest.approx(0.002), "pollers")
    assert durations(sw, "pollers")[0] == pytest.approx(0.00007)


def test_bad_arguments_raise_value_error():
    with pytest.raises(ValueError):
        trace(INLINE, INLINE, 0)
    with pytest.raises(ValueError):
        trace(-1.0, INLINE, 1)
