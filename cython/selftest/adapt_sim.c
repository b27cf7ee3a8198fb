/*
 * adapt_sim.c - the adaptive rule (eventpoll/adaptive_rule.h) on a
 * synthetic clock, so that its verdicts are tested exactly: no thread, no
 * timing, no eventpoll.
 *
 * A simulated consumer steps the rule every `step_ns` (as wfc_ep_wait does
 * when phases.c reads the clock), with events arriving at `inline_rate` or
 * `pollers_rate` per second by the phase it is in, none after
 * `idle_after_ns` (if > 0).  A switch of phase takes `switch_ns` (the
 * threads' start or join), during which no event arrives.  Every switch is
 * recorded with its time, counted from the first step.
 *
 * Single-threaded; the Cython module wfcloop_selftest includes this file.
 */
#include <stdint.h>

#include "eventpoll/adaptive_rule.h"

struct adapt_sim_switch {
    int64_t at_ns;   /* from the first step */
    int to_phase;    /* WFC_PHASE_INLINE or WFC_PHASE_POLLERS */
};

/* Returns how many switches happened; the first `max` are in `out`. */
static int adapt_sim_run(double inline_rate, double pollers_rate, int64_t duration_ns,
                         int64_t step_ns, int64_t idle_after_ns, int64_t switch_ns,
                         int64_t scale, struct adapt_sim_switch *out, int max)
{
    /* The rule reads a window start of 0 as "none yet": start the clock later. */
    const int64_t t0 = 1000000000LL;
    struct adapt_state a = {0};
    double events = 0.0;   /* fractional arrivals carry over between steps */
    int phase = WFC_PHASE_INLINE, nswitches = 0;
    int64_t now = t0;

    adapt_init(&a, scale);
    while (now - t0 < duration_ns) {
        int want = adapt_step(&a, phase, now, (uint64_t)events);

        if (want >= 0) {
            if (nswitches < max) {
                out[nswitches].at_ns = now - t0;
                out[nswitches].to_phase = want;
            }
            nswitches++;
            phase = want;
            now += switch_ns;
            adapt_restart_window(&a, now, (uint64_t)events);
        }
        now += step_ns;
        if (idle_after_ns <= 0 || now - t0 < idle_after_ns)
            events += (phase == WFC_PHASE_INLINE ? inline_rate : pollers_rate)
                      * (double)step_ns / 1e9;
    }
    return nswitches;
}
