/* eventpoll/phases.c: part of eventpoll_core.c, which includes it (one
 * translation unit: these functions stay static).  Its state machine,
 * locking rules and the ordering argument of each atomic are explained at
 * the top of eventpoll_core.c.
 *
 * This file: PHASES and ADAPTIVE: parking and unparking the pollers, and the
 * adaptive rule that wfc_ep_wait (consumer.c) runs at each call.
 */

/* ------------------------------------------------------------- phases */

/* Consumer, no lock held: POLLERS -> INLINE (see PHASES): the poller
 * threads leave and are joined. */
static void park_pollers(wfc_ep *ep)
{
    uint64_t one = 1, count;
    ssize_t r;
    bool all_left;

    pthread_mutex_lock(&ep->park_lock);
    /* Release: pairs with the pollers' acquire load in poller_main. */
    atomic_store_explicit(&ep->park_request, 1, memory_order_release);
    pthread_mutex_unlock(&ep->park_lock);
    r = write(ep->park_efd, &one, sizeof(one));

    pthread_mutex_lock(&ep->park_lock);
    /* Relaxed `closing`: read under park_lock, which wfc_ep_shutdown takes
     * to broadcast after setting it, so the wait cannot miss it.  (Once
     * closing, the wait returns -EBADF before it could block inline.) */
    while (ep->parked < ep->running && !atomic_load_explicit(&ep->closing, memory_order_relaxed))
        pthread_cond_wait(&ep->parked_cond, &ep->park_lock);
    all_left = ep->parked >= ep->running;
    pthread_mutex_unlock(&ep->park_lock);
    /* Every poller has left poller_main: join them, so that the process is
     * single-threaded again while INLINE.  (Shutdown began otherwise, and
     * wfc_ep_destroy joins them.) */
    if (all_left)
        join_pollers(ep);
    /* Nobody needs the fd any more. */
    r = read(ep->park_efd, &count, sizeof(count));
    (void)r;
    /* A hand-back no poller took before parking is ours to run, still
     * with the pollers' masks (the phase is still POLLERS). */
    run_handback(ep, take_handback(ep), NULL, &ep->inline_stats);
    pthread_mutex_lock(&ep->ctl_lock);
    ep->phase = WFC_PHASE_INLINE;
    pthread_mutex_unlock(&ep->ctl_lock);
    STAT_ADD(ep->phase_switches, 1);
}

/* Consumer, no lock held: INLINE -> POLLERS (see PHASES).  No poller
 * thread exists: the last park joined them all. */
static void unpark_pollers(wfc_ep *ep)
{
    pthread_mutex_lock(&ep->ctl_lock);
    ep->phase = WFC_PHASE_POLLERS;
    /* The pollers are parked: the kernel is ours alone while items armed
     * level-triggered get their EPOLLONESHOT back. */
    for (uint32_t idx = 0; idx < ep->nslots; idx++) {
        struct wfc_item *item = slot_lookup(ep, idx);
        /* Relaxed: no poller runs; every other writer holds ctl_lock. */
        unsigned st = w_state(atomic_load_explicit(&item->word, memory_order_relaxed));

        if ((st != ST_IDLE && st != ST_READY) || item->k_oneshot || !level_triggered(item->mask))
            continue;
        rearm_or_retire(ep, idx, item,
                        make_tag(idx, w_gen(atomic_load_explicit(&item->word, memory_order_relaxed))));
    }
    pthread_mutex_unlock(&ep->ctl_lock);
    pthread_mutex_lock(&ep->park_lock);
    /* Relaxed would do: pthread_create below orders this store before
     * everything the new threads do; release keeps the pair with the
     * pollers' acquire load plain to read. */
    atomic_store_explicit(&ep->park_request, 0, memory_order_release);
    ep->parked = 0;
    pthread_mutex_unlock(&ep->park_lock);
    STAT_ADD(ep->phase_switches, 1);
    if (start_pollers(ep) != 0) {
        /* Out of threads (EAGAIN) or memory: back to INLINE, with the
         * ones that did start parked again.  The adaptive rule's trial
         * then measures inline against inline, and keeps it. */
        park_pollers(ep);
    }
}

static void switch_phase(wfc_ep *ep, int phase)
{
    if (phase == ep->phase)
        return;
    if (phase == WFC_PHASE_INLINE)
        park_pollers(ep);
    else
        unpark_pollers(ep);
}

/*
 * ADAPTIVE RULE (consumer, at the start of each wait; poller mode only).
 * The phase that delivers more events per second wins, by trial: proxies
 * such as "the consumer sleeps, so inline is free" proved unreliable here
 * (sock_* echo on 2 CPUs: the loop thread slept 25% of the time inline, and
 * pinned pollers still measured 0.8-1.1x inline from run to run, by
 * overlapping the kernel's work with the Python callbacks; protocol echo:
 * 0.6-0.8x).  Time is
 * cut in windows of ADAPT_WINDOW_NS.  The phase starts INLINE, where a
 * hand-off costs nothing.  Once a window has load (ADAPT_MIN_EVENTS) and
 * the next trial is due, the pollers are tried: ADAPT_WARMUP_NS to settle,
 * then ADAPT_MEASURE_NS measured.  They stay only if they delivered
 * ADAPT_GAIN more events per second than the inline window before (a
 * window's spread here is a few percent); else the next trial waits twice
 * as long (ADAPT_BACKOFF_MIN_NS .. _MAX_NS), so a losing trial costs under
 * 1% of the time once backed off.  With the pollers kept, inline is tried
 * again every ADAPT_RECHECK_NS and wins back at ADAPT_TIE of the pollers'
 * rate (inline is cheaper in CPU).  A window with fewer than
 * ADAPT_MIN_EVENTS events is light load: inline, at once.  With an
 * open-loop load both phases deliver the same rate, so inline stays.
 */
#define ADAPT_WINDOW_NS 100000000LL        /* 100 ms */
#define ADAPT_WARMUP_NS 20000000LL         /* 20 ms */
#define ADAPT_MEASURE_NS 200000000LL       /* 200 ms: a trial's verdict */
#define ADAPT_MIN_EVENTS 1000
#define ADAPT_GAIN 1.05
#define ADAPT_TIE 0.95
#define ADAPT_BACKOFF_MIN_NS 2000000000LL  /* 2 s */
#define ADAPT_BACKOFF_MAX_NS 64000000000LL /* 64 s */
#define ADAPT_RECHECK_NS 10000000000LL     /* 10 s */
#define ADAPT_CLOCK_EVERY 32               /* waits between clock reads under load */
enum { ADAPT_STEADY, ADAPT_WARMUP, ADAPT_MEASURE };

static void adapt_window_end(wfc_ep *ep, struct adapt_state *a, int64_t now, double rate)
{
#ifdef WFC_ADAPT_DEBUG
    fprintf(stderr, "adapt: phase=%s stage=%d rate=%.0f baseline=%.0f\n",
            ep->phase == WFC_PHASE_INLINE ? "inline" : "pollers", a->stage, rate,
            a->baseline_rate);
#endif
    switch (a->stage) {
    case ADAPT_STEADY:
        if (now < a->next_probe_ns)
            break;
        /* A trial of the other phase against this window's rate. */
        a->baseline_rate = rate;
        a->stage = ADAPT_WARMUP;
        switch_phase(ep, ep->phase == WFC_PHASE_INLINE ? WFC_PHASE_POLLERS : WFC_PHASE_INLINE);
        break;
    case ADAPT_WARMUP:   /* adapt_phase() ends it without a verdict */
        break;
    case ADAPT_MEASURE:
        a->stage = ADAPT_STEADY;
        if (ep->phase == WFC_PHASE_POLLERS) {
            if (rate > a->baseline_rate * ADAPT_GAIN) {
                a->backoff_ns = ADAPT_BACKOFF_MIN_NS / a->scale;
                a->next_probe_ns = now + ADAPT_RECHECK_NS / a->scale;
            } else {
                a->backoff_ns = a->backoff_ns * 2 < ADAPT_BACKOFF_MAX_NS / a->scale
                              ? a->backoff_ns * 2 : ADAPT_BACKOFF_MAX_NS / a->scale;
                a->next_probe_ns = now + a->backoff_ns;
                switch_phase(ep, WFC_PHASE_INLINE);
            }
        } else if (rate >= a->baseline_rate * ADAPT_TIE) {
            a->next_probe_ns = now + a->backoff_ns;
        } else {
            a->next_probe_ns = now + ADAPT_RECHECK_NS / a->scale;
            switch_phase(ep, WFC_PHASE_POLLERS);
        }
        break;
    }
}

/* Consumer, at the start of a wait: apply a requested phase, or let the
 * adaptive rule decide when a window ends. */
static void adapt_phase(wfc_ep *ep)
{
    struct adapt_state *a = &ep->adapt;
    int64_t now, wall;
    uint64_t delivered;

    /* Relaxed load first, so that a wait with no request pending (nearly
     * every one) makes no atomic read-modify-write; the exchange takes a
     * request exactly once.  Relaxed: the request carries no data. */
    if (atomic_load_explicit(&ep->phase_request, memory_order_relaxed) >= 0) {
        int req = atomic_exchange_explicit(&ep->phase_request, -1, memory_order_relaxed);
        if (req >= 0)
            switch_phase(ep, req);
    }
    if (!atomic_load_explicit(&ep->adaptive, memory_order_relaxed))
        return;
    /* The clock is read once every ADAPT_CLOCK_EVERY waits while waits
     * deliver events (a loaded loop waits 10^4..10^5 times a second, and
     * a window is 20 ms or more), and at every wait after one that
     * delivered nothing (the loop was idle: a clock read costs nothing
     * next to that).  Relaxed: the consumer is the only thread that adds
     * to `delivered`. */
    delivered = atomic_load_explicit(&ep->delivered, memory_order_relaxed);
    if (a->window_start_ns != 0 && delivered != a->delivered_seen
            && ++a->waits_unclocked < (unsigned)(ADAPT_CLOCK_EVERY / a->scale)) {
        a->delivered_seen = delivered;
        return;
    }
    a->delivered_seen = delivered;
    a->waits_unclocked = 0;
    now = now_ns();
    if (a->window_start_ns == 0) {
        a->window_start_ns = now;
        a->next_probe_ns = now + a->backoff_ns;
        a->delivered_at_start = atomic_load_explicit(&ep->delivered, memory_order_relaxed);
        return;
    }
    wall = now - a->window_start_ns;
    if (wall < (a->stage == ADAPT_WARMUP ? ADAPT_WARMUP_NS
                : a->stage == ADAPT_MEASURE ? ADAPT_MEASURE_NS : ADAPT_WINDOW_NS) / a->scale)
        return;
    if (a->stage == ADAPT_WARMUP) {
        a->stage = ADAPT_MEASURE;   /* what it measured is the switch's cost */
    } else if (delivered - a->delivered_at_start
               >= (uint64_t)((ADAPT_MIN_EVENTS + a->scale - 1) / a->scale)) {   /* scale >= 1 */
        double rate = (double)(delivered - a->delivered_at_start) * 1e9 / (double)wall;
        adapt_window_end(ep, a, now, rate);
        now = now_ns();   /* a switch takes time; start the window after it */
    } else if (a->stage != ADAPT_STEADY || ep->phase == WFC_PHASE_POLLERS) {
        /* Light load, or it went away in the middle of a try: inline. */
        a->stage = ADAPT_STEADY;
        a->next_probe_ns = now + a->backoff_ns;
        switch_phase(ep, WFC_PHASE_INLINE);
        now = now_ns();
    }
    a->window_start_ns = now;
    a->delivered_at_start = atomic_load_explicit(&ep->delivered, memory_order_relaxed);
}

void wfc_ep_set_adaptive_timescale(wfc_ep *ep, int divisor)
{
    /* Before the first wait of an adaptive eventpoll (the consumer reads
     * it without a lock): a test's setting. */
    ep->adapt.scale = divisor > 0 ? divisor : 1;
    ep->adapt.backoff_ns = ADAPT_BACKOFF_MIN_NS / ep->adapt.scale;
}

void wfc_ep_set_adaptive(wfc_ep *ep, int on)
{
    atomic_store_explicit(&ep->adaptive, on, memory_order_relaxed);
    if (ep->npollers > 0)
        atomic_store_explicit(&ep->phase_request, on ? WFC_PHASE_INLINE : WFC_PHASE_POLLERS,
                              memory_order_relaxed);
}

int wfc_ep_request_phase(wfc_ep *ep, int phase)
{
    if (phase != WFC_PHASE_POLLERS && phase != WFC_PHASE_INLINE)
        return -EINVAL;
    if (ep->npollers == 0)
        return phase == WFC_PHASE_INLINE ? 0 : -EINVAL;
    atomic_store_explicit(&ep->phase_request, phase, memory_order_relaxed);
    return 0;
}

int wfc_ep_phase(wfc_ep *ep)
{
    int phase;
    pthread_mutex_lock(&ep->ctl_lock);
    phase = ep->npollers == 0 ? WFC_PHASE_INLINE : ep->phase;
    pthread_mutex_unlock(&ep->ctl_lock);
    return phase;
}
