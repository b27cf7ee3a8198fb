/* eventpoll/phases.c: part of eventpoll_core.c, which includes it (one
 * translation unit: these functions stay static).  Its state machine,
 * locking rules and the ordering argument of each atomic are explained at
 * the top of eventpoll_core.c.
 *
 * This file: PHASES and ADAPTIVE: parking and unparking the pollers, and
 * the step of the adaptive rule (eventpoll/adaptive_rule.h) that
 * wfc_ep_wait (consumer.c) runs at each call.
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

/* ADAPTIVE RULE (consumer, at the start of each wait; poller mode only):
 * the rule itself is eventpoll/adaptive_rule.h; this part reads the clock
 * for it and applies the phase it asks for. */
#define ADAPT_CLOCK_EVERY 32               /* waits between clock reads under load */

/* Consumer, at the start of a wait: apply a requested phase, or let the
 * adaptive rule decide when a window ends. */
static void adapt_phase(wfc_ep *ep)
{
    struct adapt_state *a = &ep->adapt;
    uint64_t delivered;
    int want;

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
    want = adapt_step(a, ep->phase, now_ns(), delivered);
    if (want >= 0) {
        switch_phase(ep, want);
        /* A switch takes time; the next window starts after it.  Relaxed,
         * as above. */
        adapt_restart_window(a, now_ns(), atomic_load_explicit(&ep->delivered, memory_order_relaxed));
    }
}

void wfc_ep_set_adaptive_timescale(wfc_ep *ep, int divisor)
{
    /* Before the first wait of an adaptive eventpoll (the consumer reads
     * it without a lock): a test's setting. */
    adapt_init(&ep->adapt, divisor);
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
