/* eventpoll/pollers.c: part of eventpoll_core.c, which includes it (one
 * translation unit: these functions stay static).  Its state machine,
 * locking rules and the ordering argument of each atomic are explained at
 * the top of eventpoll_core.c.
 *
 * This file: the poller threads (poller_main; a park request ends them), and the benchmark
 * hooks that run a poller's hand-off without the kernel.
 */

static void *poller_main(void *arg)
{
    struct poller *p = arg;
    wfc_ep *ep = p->ep;
    struct epoll_event evs[POLLER_BATCH];

    /* Without its receive buffer a poller reads for nobody: items with
     * W_IO are then delivered without a read, and the consumer reads. */
    p->rx = rx_get(ep);

    for (;;) {
        int n;

        /* A park request ends the thread (PHASES): parked, the process
         * keeps no poller thread.  Acquire: pairs with the release store in
         * park_pollers; our appends so far are ordered before the consumer
         * sees `parked` reach `running` by park_lock, below.  A poller that
         * reads 0 here just before the request is woken from epoll_wait by
         * park_efd, which stays readable until every poller has left, and
         * comes back here after its batch.  A poller never sees a stale 1:
         * unpark_pollers stores 0 before pthread_create, which orders it
         * before everything the new thread does. */
        if (atomic_load_explicit(&ep->park_request, memory_order_acquire))
            break;
        if (atomic_load_explicit(&ep->closing, memory_order_acquire))
            break;
        n = epoll_wait(ep->kfd, evs, POLLER_BATCH, -1);
        bool stop = false, found_empty = false, handback = false;

        if (p->rx == NULL)
            p->rx = rx_get(ep);   /* its last one went to an item */

        if (n < 0) {
            if (errno == EINTR)
                continue;
            break;   /* EBADF: the kernel fd was closed under us */
        }
        /* Relaxed: only a hint for settle(); the release decrement below
         * is what publishes the appends. */
        atomic_fetch_add_explicit(&ep->in_flight, 1, memory_order_relaxed);
        STAT_ADD(p->stats.harvested, (uint64_t)n);
        for (int i = 0; i < n; i++) {
            struct wfc_item *item;
            if (evs[i].data.u64 == TAG_STOP) {
                stop = true;
                continue;
            }
            if (evs[i].data.u64 == TAG_PARK)
                continue;   /* parks at the top of the loop, after this batch */
            if (evs[i].data.u64 == TAG_HANDBACK) {
                handback = true;   /* after this batch: it is not in flight */
                continue;
            }
            bool receive = false;
            item = mark_ready(ep, evs[i].data.u64, evs[i].events, &p->stats,
                              p->rx != NULL ? &receive : NULL);
            if (item == NULL)
                continue;
            if (receive) {
                /* IDLE -> BUSY: the item is ours until finish_busy. */
                bool got = io_receive(ep, item, &p->rx);
                if (finish_busy(ep, item, got, false, &p->rx, &p->stats)) {
                    found_empty = true;
                    STAT_ADD(p->stats.found_empty, 1);
                }
            } else if (ready_push(ep, item)) {
                found_empty = true;
                STAT_ADD(p->stats.found_empty, 1);
            }
        }
        /* Release: a consumer that sees in_flight drop (acquire in
         * settle) sees our appends. */
        atomic_fetch_sub_explicit(&ep->in_flight, 1, memory_order_release);
        /* One wake-up per batch, only on the empty -> non-empty edge. */
        if (found_empty)
            wake_consumer_if_sleeping(ep, &p->stats);
        /* Sends and re-arms: outside in_flight, which a settling consumer
         * waits out (they append only what a new event brings). */
        if (handback)
            poller_handback_as(ep, &p->rx, &p->stats);
        if (stop || atomic_load_explicit(&ep->closing, memory_order_acquire))
            break;
    }
    free(p->rx);
    p->rx = NULL;
    /* A poller that is gone counts as parked: it appends nothing more.
     * park_pollers waits for `parked` to reach `running`, then joins us. */
    pthread_mutex_lock(&ep->park_lock);
    ep->parked++;
    pthread_cond_signal(&ep->parked_cond);
    pthread_mutex_unlock(&ep->park_lock);
    return NULL;
}

#ifdef WFC_BENCH_HOOKS
/*
 * Benchmark-only (benchmarks/ready_list_bench.c, built with
 * -DWFC_BENCH_HOOKS): run a poller's hand-off for a registration without the
 * kernel, so that the ready list itself is what is measured.  The
 * production build has neither function.
 */
uint64_t wfc_ep_bench_tag(wfc_ep *ep, int fd)
{
    uint64_t tag = 0;
    int64_t idx;
    pthread_mutex_lock(&ep->ctl_lock);
    idx = map_get(ep, fd);
    if (idx >= 0) {
        struct wfc_item *item = slot_lookup(ep, (uint32_t)idx);
        /* Any order: ctl_lock is held and the generation changes only under it. */
        tag = make_tag((uint32_t)idx, w_gen(atomic_load_explicit(&item->word, memory_order_relaxed)));
    }
    pthread_mutex_unlock(&ep->ctl_lock);
    return tag;
}

int wfc_ep_bench_inject(wfc_ep *ep, uint64_t tag, uint32_t events)
{
    static _Thread_local struct harvest_stats st;
    struct wfc_item *item = mark_ready(ep, tag, events, &st, NULL);
    if (item == NULL)
        return 0;
    if (ready_push(ep, item))
        wake_consumer_if_sleeping(ep, &st);
    return 1;
}
#endif
