/* eventpoll/adaptive_rule.h: the ADAPTIVE RULE of poller mode, as a state
 * machine with no thread, lock or clock of its own.  The consumer
 * (phases.c: adapt_phase, at the start of each wfc_ep_wait) feeds it the
 * time and the count of events delivered so far and applies the phase it
 * asks for; cython/selftest/adapt_sim.c feeds it a synthetic clock and
 * synthetic rates, so that its verdicts are tested without timing.
 * Everything here is the consumer's alone (struct adapt_state lives in the
 * eventpoll, touched by no other thread): no atomics, no ordering.
 *
 * The phase that delivers more events per second wins, by trial: proxies
 * such as "the consumer sleeps, so inline is free" proved unreliable here
 * (sock_* echo on 2 CPUs: the loop thread slept 25% of the time inline, and
 * pinned pollers still measured 0.8-1.1x inline from run to run, by
 * overlapping the kernel's work with the Python callbacks; protocol echo:
 * 0.6-0.8x).
 *   - Time is cut in windows of ADAPT_WINDOW_NS.  The phase starts INLINE,
 *     where a hand-off costs nothing.
 *   - Once a window has load (ADAPT_MIN_EVENTS) and the next trial is due,
 *     the pollers are tried: ADAPT_WARMUP_NS to settle, then
 *     ADAPT_MEASURE_NS measured.  They stay only if they delivered
 *     ADAPT_GAIN more events per second than the inline window before (a
 *     window's spread here is a few percent); else the next trial waits
 *     twice as long (ADAPT_BACKOFF_MIN_NS .. _MAX_NS), so a losing trial
 *     costs under 1% of the time once backed off.
 *   - A trial that is clearly losing ends early: after ADAPT_EARLY_NS of
 *     its measure, with ADAPT_MIN_EVENTS counted, below ADAPT_EARLY_LOSS of
 *     the baseline (far outside a window's spread) is the verdict.  On 2
 *     CPUs the pollers deliver about 0.6x inline (protocol echo), and the
 *     first trial, 2 s into a load, cost a 2 s window about 5%; ending it
 *     after 70 ms instead of 220 ms cuts that to a third.  A trial that is
 *     close, or winning, runs its whole measure.
 *   - With the pollers kept, inline is tried again every ADAPT_RECHECK_NS
 *     and wins back at ADAPT_TIE of the pollers' rate (inline is cheaper in
 *     CPU).
 *   - A window with fewer than ADAPT_MIN_EVENTS events is light load:
 *     inline, at once.  With an open-loop load both phases deliver the same
 *     rate, so inline stays.
 * A test divides every duration (and the clock's sampling, in phases.c) by
 * `scale`, so that trials happen within a short stress run.
 */
#ifndef WFC_ADAPTIVE_RULE_H
#define WFC_ADAPTIVE_RULE_H

#include <stdint.h>
#include <stdio.h>

#include "eventpoll_core.h"   /* WFC_PHASE_INLINE, WFC_PHASE_POLLERS */

#define ADAPT_WINDOW_NS 100000000LL        /* 100 ms */
#define ADAPT_WARMUP_NS 20000000LL         /* 20 ms */
#define ADAPT_MEASURE_NS 200000000LL       /* 200 ms: a trial's verdict */
#define ADAPT_EARLY_NS 50000000LL          /* 50 ms: an early look at a trial */
#define ADAPT_EARLY_LOSS 0.8
#define ADAPT_MIN_EVENTS 1000
#define ADAPT_GAIN 1.05
#define ADAPT_TIE 0.95
#define ADAPT_BACKOFF_MIN_NS 2000000000LL  /* 2 s */
#define ADAPT_BACKOFF_MAX_NS 64000000000LL /* 64 s */
#define ADAPT_RECHECK_NS 10000000000LL     /* 10 s */
enum { ADAPT_STEADY, ADAPT_WARMUP, ADAPT_MEASURE };

struct adapt_state {
    int64_t window_start_ns;      /* 0: no window yet (the first step opens one) */
    uint64_t delivered_at_start;
    int stage;                    /* ADAPT_STEADY, _WARMUP, _MEASURE */
    double baseline_rate;         /* events/s in the phase we probed away from */
    int64_t next_probe_ns;
    int64_t backoff_ns;
    int64_t scale;                /* every duration of the rule / scale (tests) */
    unsigned waits_unclocked;     /* phases.c: waits since the clock was last read */
    uint64_t delivered_seen;      /* phases.c: `delivered` at the last wait's start */
};

/* Before the first step; `scale` >= 1 (a test's speed-up, 1 in use). */
static inline void adapt_init(struct adapt_state *a, int64_t scale)
{
    a->scale = scale > 0 ? scale : 1;
    a->backoff_ns = ADAPT_BACKOFF_MIN_NS / a->scale;
}

/* A new window from `now`: after each step's verdict, and again by the
 * caller after a switch of phase (a switch takes time; the window starts
 * after it). */
static inline void adapt_restart_window(struct adapt_state *a, int64_t now, uint64_t delivered)
{
    a->window_start_ns = now;
    a->delivered_at_start = delivered;
}

static inline int64_t adapt_window_ns(const struct adapt_state *a)
{
    return (a->stage == ADAPT_WARMUP ? ADAPT_WARMUP_NS
            : a->stage == ADAPT_MEASURE ? ADAPT_MEASURE_NS : ADAPT_WINDOW_NS) / a->scale;
}

static inline uint64_t adapt_min_events(const struct adapt_state *a)
{
    return (uint64_t)((ADAPT_MIN_EVENTS + a->scale - 1) / a->scale);
}

/* A loaded window of `rate` events/s ended in `phase`: the phase wanted
 * next (-1: stay). */
static int adapt_window_end(struct adapt_state *a, int phase, int64_t now, double rate)
{
#ifdef WFC_ADAPT_DEBUG
    fprintf(stderr, "adapt: phase=%s stage=%d rate=%.0f baseline=%.0f\n",
            phase == WFC_PHASE_INLINE ? "inline" : "pollers", a->stage, rate,
            a->baseline_rate);
#endif
    switch (a->stage) {
    case ADAPT_STEADY:
        if (now < a->next_probe_ns)
            return -1;
        /* A trial of the other phase against this window's rate. */
        a->baseline_rate = rate;
        a->stage = ADAPT_WARMUP;
        return phase == WFC_PHASE_INLINE ? WFC_PHASE_POLLERS : WFC_PHASE_INLINE;
    case ADAPT_MEASURE:
        a->stage = ADAPT_STEADY;
        if (phase == WFC_PHASE_POLLERS) {
            if (rate > a->baseline_rate * ADAPT_GAIN) {
                a->backoff_ns = ADAPT_BACKOFF_MIN_NS / a->scale;
                a->next_probe_ns = now + ADAPT_RECHECK_NS / a->scale;
                return -1;
            }
            a->backoff_ns = a->backoff_ns * 2 < ADAPT_BACKOFF_MAX_NS / a->scale
                          ? a->backoff_ns * 2 : ADAPT_BACKOFF_MAX_NS / a->scale;
            a->next_probe_ns = now + a->backoff_ns;
            return WFC_PHASE_INLINE;
        }
        if (rate >= a->baseline_rate * ADAPT_TIE) {
            a->next_probe_ns = now + a->backoff_ns;
            return -1;
        }
        a->next_probe_ns = now + ADAPT_RECHECK_NS / a->scale;
        return WFC_PHASE_POLLERS;
    default:   /* ADAPT_WARMUP: adapt_step ends it without a verdict */
        return -1;
    }
}

/* One step, in `phase`, at time `now` with `delivered` events counted so
 * far: the phase wanted (-1: stay).  Where it returns a phase, the caller
 * switches to it and then calls adapt_restart_window() with the time and
 * count after the switch. */
static int adapt_step(struct adapt_state *a, int phase, int64_t now, uint64_t delivered)
{
    int64_t wall;
    uint64_t events;
    int want = -1;

    if (a->window_start_ns == 0) {
        a->next_probe_ns = now + a->backoff_ns;
        adapt_restart_window(a, now, delivered);
        return -1;
    }
    wall = now - a->window_start_ns;
    events = delivered - a->delivered_at_start;
    if (wall < adapt_window_ns(a)) {
        /* Not over, unless it is a trial that is clearly losing. */
        if (a->stage != ADAPT_MEASURE || wall < ADAPT_EARLY_NS / a->scale
                || events < adapt_min_events(a)
                || (double)events * 1e9 / (double)wall >= a->baseline_rate * ADAPT_EARLY_LOSS)
            return -1;
    }
    if (a->stage == ADAPT_WARMUP) {
        a->stage = ADAPT_MEASURE;   /* what it measured is the switch's cost */
    } else if (events >= adapt_min_events(a)) {
        want = adapt_window_end(a, phase, now, (double)events * 1e9 / (double)wall);
    } else if (a->stage != ADAPT_STEADY || phase == WFC_PHASE_POLLERS) {
        /* Light load, or it went away in the middle of a try: inline. */
        a->stage = ADAPT_STEADY;
        a->next_probe_ns = now + a->backoff_ns;
        want = WFC_PHASE_INLINE;
    }
    adapt_restart_window(a, now, delivered);
    return want == phase ? -1 : want;
}

#endif /* WFC_ADAPTIVE_RULE_H */
