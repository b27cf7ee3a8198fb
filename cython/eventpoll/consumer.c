/* eventpoll/consumer.c: part of eventpoll_core.c, which includes it (one
 * translation unit: these functions stay static).  Its state machine,
 * locking rules and the ordering argument of each atomic are explained at
 * the top of eventpoll_core.c.
 *
 * This file: the consumer: inline harvesting (the loop thread reading the
 * kernel itself), re-arming delivered items, delivering the ready list to the
 * loop thread, sleeping on it, and wfc_ep_wait, which does all of these.
 */

/* ------------------------------------------------------------- consumer */

/*
 * The consuming thread reads the kernel itself: inline mode's only source,
 * and poller mode's assist before sleeping (an event already queued in the
 * kernel is taken now instead of after a poller's hand-off).  EPOLLONESHOT
 * still gives each event to exactly one thread.  Items go straight onto the
 * transaction list.  Returns the number of kernel events or -errno.
 */
static int harvest_inline(wfc_ep *ep, int timeout_ms)
{
    struct epoll_event evs[HARVEST_BATCH];
    int n = epoll_wait(ep->kfd, evs, HARVEST_BATCH, timeout_ms);

    if (n < 0)
        return -errno;
    STAT_ADD(ep->inline_stats.harvested, (uint64_t)n);
    for (int i = 0; i < n; i++) {
        struct wfc_item *item;
        if (evs[i].data.u64 == TAG_STOP || evs[i].data.u64 == TAG_PARK)
            continue;
        if (evs[i].data.u64 == TAG_HANDBACK) {
            /* We took the hand-back eventfd before a poller did (or the
             * pollers are parked): run the list here, as a poller would. */
            poller_handback_as(ep, NULL, &ep->inline_stats);
            continue;
        }
        item = mark_ready(ep, evs[i].data.u64, evs[i].events, &ep->inline_stats, NULL);
        if (item != NULL)
            wfcq_enqueue(&ep->txn_head, &ep->txn_tail, &item->node);
    }
    return n;
}


/*
 * Inline mode: harvest_inline(ep, 0) again while the kernel fills whole
 * batches and the caller has room, so that one wait returns every ready fd
 * up to the caller's maxevents, as one epoll_wait(maxevents) would
 * (selectors' contract; CPython's test_above_fd_setsize), though the kernel
 * is read HARVEST_BATCH events at a time.  `got`: what the caller's last
 * harvest returned (HARVEST_BATCH where unknown); `room`: how many more
 * events the caller can take.  Returns 0 or -errno.  Consumer only.
 */
static int harvest_inline_more(wfc_ep *ep, int got, int room)
{
    while (got == HARVEST_BATCH && room > 0) {
        got = harvest_inline(ep, 0);
        if (got < 0)
            return got;
        room -= got;
    }
    return 0;
}

/* ctl_lock held. */
static void schedule_rearm(wfc_ep *ep, uint32_t idx, struct wfc_item *item, uint32_t gen)
{
    if (item->rearm_pending)
        return;
    if (ep->nrearm == ep->rearm_cap) {
        size_t cap = ep->rearm_cap ? ep->rearm_cap * 2 : 64;
        uint64_t *p = realloc(ep->rearm_vec, cap * sizeof(*p));
        if (p == NULL) {
            /* No room to defer it: re-arm now (still after IDLE). */
            struct epoll_event ev = {arm_mask(ep, item), {.u64 = make_tag(idx, gen)}};
            epoll_ctl(ep->kfd, EPOLL_CTL_MOD, item->fd, &ev);
            item->rearm_due = 0;
            STAT_ADD(ep->rearms, 1);
            return;
        }
        ep->rearm_vec = p;
        ep->rearm_cap = cap;
    }
    item->rearm_pending = 1;
    ep->rearm_vec[ep->nrearm++] = make_tag(idx, gen);
}

/* ctl_lock held.  Remove fd's mapping if it still points at idx. */
static void unmap_if(wfc_ep *ep, int fd, uint32_t idx)
{
    if (map_get(ep, fd) == (int64_t)idx)
        ep->fd_map[fd] = 0;
}

/* ctl_lock held, item registered under tag (its generation checked by the
 * caller): arm it again in the kernel with EPOLL_CTL_MOD.  If that fails,
 * the fd was closed (the kernel dropped it) or its number now names a file
 * that is not registered: the registration is gone, as it would be from a
 * kernel epoll, and the item is retired. */
static void rearm_or_retire(wfc_ep *ep, uint32_t idx, struct wfc_item *item, uint64_t tag)
{
    struct epoll_event ev = {arm_mask(ep, item), {.u64 = tag}};
    STAT_ADD(ep->rearms, 1);
    item->rearm_due = 0;
    if (epoll_ctl(ep->kfd, EPOLL_CTL_MOD, item->fd, &ev) < 0) {
        int fd = item->fd;
        retire_item(ep, idx, item);
        unmap_if(ep, fd, idx);
    }
}

/* ctl_lock held.  Re-arm the level-triggered items delivered by the
 * previous wait: the kernel re-checks their level now. */
static void rearm_delivered(wfc_ep *ep, bool may_defer)
{
    struct wfc_item *hb_first = NULL, *hb_last = NULL;
    size_t kept = 0;

    for (size_t i = 0; i < ep->nrearm; i++) {
        uint64_t tag = ep->rearm_vec[i];
        uint32_t idx = (uint32_t)(tag >> 32), gen = (uint32_t)tag;
        struct wfc_item *item = slot_lookup(ep, idx);
        uint64_t w;

        if (item == NULL || !item->rearm_pending)
            continue;
        /* Acquire: a poller's READY (a modify re-armed the item and it
         * fired) is seen before we decide not to re-arm it. */
        w = atomic_load_explicit(&item->word, memory_order_acquire);
        if (w_gen(w) != gen)
            continue;
        /* The entry leaves the vector now, so the flag goes too, even when
         * the item is READY again (a modify re-armed it and it fired):
         * deliver() will schedule a fresh re-arm, which a stale flag would
         * turn into a no-op, leaving the fd deaf for good.  (A READY or
         * BUSY item with W_IO comes back the same way: delivered, or
         * reported by its owner's W_MORE.) */
        if (may_defer && (w & W_IO) && w_state(w) == ST_IDLE && pollers_active(ep)
                && !item->hb_deferred && item->io->outq.len == 0 && item->io->flight.len == 0) {
            /* A hand-back with nothing to send, in a wait that will not
             * block (callbacks are pending, as when a stream's reader task
             * was woken and will write in the next iteration): keep it
             * one wait, so that the re-arm and that output go in one
             * hand-back instead of two.  Only once: then it goes. */
            item->hb_deferred = 1;
            ep->rearm_vec[kept++] = tag;
            continue;
        }
        item->hb_deferred = 0;
        item->rearm_pending = 0;
        if (w_state(w) != ST_IDLE)
            continue;
        if ((w & W_IO) && (pollers_active(ep) || item->io->outq.len > 0 || item->io->flight.len > 0)) {
            /* Poller-side I/O: IDLE -> BUSY makes the item ours; acq_rel as
             * in mark_ready (a poller's IDLE -> READY/BUSY may race us). */
            if (!atomic_compare_exchange_strong_explicit(&item->word, &w, w_with_state(w, ST_BUSY),
                                                         memory_order_acq_rel,
                                                         memory_order_acquire))
                continue;   /* an event won: it is delivered, then handed back */
            if (io_prepare_flight(item) < 0)
                item->io->flight.err = ENOMEM;
            if (pollers_active(ep)) {
                item->io->hb_next = NULL;
                if (hb_last != NULL)
                    hb_last->io->hb_next = item;
                else
                    hb_first = item;
                hb_last = item;
            } else {
                /* Inline: output queued before the switch goes out now. */
                flush_item(ep, item);
                finish_busy(ep, item, false, true, NULL, &ep->inline_stats);
            }
            continue;
        }
        rearm_or_retire(ep, idx, item, tag);
    }
    ep->nrearm = kept;
    if (hb_first != NULL)
        push_handback(ep, hb_first, hb_last);
}

/* ctl_lock held.  Splice, then deliver from the transaction list into
 * out[n..maxevents); return the new count.  Items left over stay there,
 * READY, for the next call.  `stamp` identifies the wfc_ep_wait call: an
 * item that this call already put in out[] (it fired again between two
 * passes) has its bits merged into that entry, so one wait never reports
 * a registration twice, as a kernel epoll_wait never does. */
static int deliver(wfc_ep *ep, wfc_event *out, int n, int maxevents, uint64_t stamp)
{
    int first_new = n;

    ready_splice(ep);
    while (n < maxevents) {
        bool was_last;
        struct wfcq_node *node = wfcq_dequeue(&ep->txn_head, &ep->txn_tail, &was_last);
        struct wfc_item *item;
        uint64_t w;
        uint32_t idx, revents;

        if (node == NULL)
            break;
        item = (struct wfc_item *)((char *)node - offsetof(struct wfc_item, node));
        /* Only ctl_lock holders move an item out of READY, and we hold it:
         * the state read here is READY or ZOMBIE and stays so, except that
         * pollers may still OR bits into a READY item. */
        w = atomic_load_explicit(&item->word, memory_order_acquire);
        idx = item->idx;
        if (w_state(w) == ST_ZOMBIE) {
            reap_item(ep, idx, item, w);
            continue;
        }
        /* READY -> IDLE, taking every bit OR-ed in so far.  acq_rel:
         * release orders our dequeue (reads of node.next) before a poller
         * that wins IDLE -> READY and rewrites node.next; acquire gets the
         * pollers' bits. */
        /* W_IO and W_RFULL stay (they change only under ctl_lock, which we
         * hold, or in BUSY, which a READY item is not); W_MORE and W_WROTE
         * are taken with the bits. */
        w = atomic_exchange_explicit(&item->word,
                                     w_make(w_gen(w), 0, ST_IDLE) | (w & (W_IO | W_RFULL)),
                                     memory_order_acq_rel);
        revents = w_events(w) & (item->mask | EPOLLERR | EPOLLHUP) & WFC_EVENT_BITS;
        if (rearmed_after_delivery(item))
            item->rearm_due = 1;
        if (rearmed_after_delivery(item) || (w & W_MORE)
            || (revents == 0 && (item->mask & EPOLLONESHOT)))
            schedule_rearm(ep, idx, item, w_gen(w));
        if (w & W_RFULL)
            revents |= EPOLLIN;        /* a read is waiting: the reader takes it */
        if (w & W_WROTE)
            revents |= WFC_EV_IO_WRITE;
        if (revents == 0)
            continue;
        if (item->out_stamp == stamp) {
            out[item->out_index].events |= revents;
            continue;
        }
        item->out_stamp = stamp;
        item->out_index = n;
        out[n].fd = item->fd;
        out[n].events = revents;
        out[n].data = item->data;
        n++;
    }
    STAT_ADD(ep->delivered, (uint64_t)(n - first_new));
    return n;
}

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Poller mode: sleep until a poller wakes us, the timeout passes or a
 * signal arrives.  Returns 0 or -EINTR. */
static int sleep_on_ready_list(wfc_ep *ep, int timeout_ms)
{
    int r = 0, err = 0;

    /* Relaxed: fence Y below orders it before our look at the list. */
    atomic_fetch_add_explicit(&ep->sleepers, 1, memory_order_relaxed);
    /* Fence Y of the wake-up protocol. */
    atomic_thread_fence(memory_order_seq_cst);
    if (ready_empty(ep) && !atomic_load_explicit(&ep->closing, memory_order_relaxed)) {
        struct pollfd pfd = {ep->wake_efd, POLLIN, 0};
        STAT_ADD(ep->sleeps, 1);
        r = poll(&pfd, 1, timeout_ms);
        err = errno;
    }
    atomic_fetch_sub_explicit(&ep->sleepers, 1, memory_order_relaxed);
    if (r > 0) {
        uint64_t count;
        ssize_t rr = read(ep->wake_efd, &count, sizeof(count)); /* reset; EAGAIN if another sleeper took it */
        (void)rr;
    } else if (r < 0 && err == EINTR) {
        return -EINTR;
    }
    return 0;
}

/*
 * Poller mode, before returning a partial batch: make the answer as close
 * to a snapshot of the kernel's ready list as a plain epoll_wait() gives.
 * Take what the kernel has queued that no poller has taken yet, and wait
 * (briefly, spinning then yielding) for pollers that have taken events but
 * not yet appended them.  Without this, poll() may return part of what was
 * ready and the rest on the next call: correct for an event loop, which is
 * why it can be turned off, but select.epoll's users expect the snapshot.
 */
static void settle(wfc_ep *ep)
{
    /* With poller-side I/O the pollers' own look beats ours: an event we
     * took would be read on this thread, which is what they are for. */
    if (!io_mode(ep))
        harvest_inline(ep, 0);
    for (unsigned i = 0; i < 256; i++) {
        /* Acquire: pairs with the pollers' release decrement. */
        if (atomic_load_explicit(&ep->in_flight, memory_order_acquire) == 0)
            return;
        if (i < 64)
            wfcq_cpu_relax();
        else
            sched_yield();
    }
}

void wfc_ep_set_snapshot(wfc_ep *ep, int on)
{
    ep->snapshot = on;
}

static int deliver_locked(wfc_ep *ep, wfc_event *out, int n, int maxevents, uint64_t stamp)
{
    pthread_mutex_lock(&ep->ctl_lock);
    n = deliver(ep, out, n, maxevents, stamp);
    pthread_mutex_unlock(&ep->ctl_lock);
    return n;
}

/*
 * wfc_ep_wait (wfc_ep_wait_flags): the consumer's one entry point (see the top of
 * eventpoll_core.c): the adaptive rule's step, the re-arms of what the last
 * call delivered, then deliver, harvest inline or sleep until there is an
 * event or the timeout.  One consuming thread at a time.
 */
int wfc_ep_wait(wfc_ep *ep, wfc_event *out, int maxevents, int timeout_ms)
{
    return wfc_ep_wait_flags(ep, out, maxevents, timeout_ms, 0);
}

int wfc_ep_wait_flags(wfc_ep *ep, wfc_event *out, int maxevents, int timeout_ms,
                      unsigned flags)
{
    bool every_ready = (flags & WFC_WAIT_EVERY_READY) != 0;
    int64_t deadline = timeout_ms > 0 ? now_ms() + timeout_ms : 0;
    uint64_t stamp;
    int n, r;

    if (maxevents <= 0)
        return -EINVAL;
    if (ep->npollers > 0)
        adapt_phase(ep);
    pthread_mutex_lock(&ep->ctl_lock);
    stamp = ++ep->wait_stamp;
    rearm_delivered(ep, timeout_ms == 0);
    pthread_mutex_unlock(&ep->ctl_lock);

    for (bool harvested = false;; harvested = true) {
        int wait_ms;

        n = deliver_locked(ep, out, 0, maxevents, stamp);
        if (n > 0) {
            if (pollers_active(ep) && ep->snapshot && n < maxevents) {
                settle(ep);
                n = deliver_locked(ep, out, n, maxevents, stamp);
            } else if (every_ready && !harvested && !pollers_active(ep) && n < maxevents) {
                /* Inline, these were left over from the last call's
                 * harvest (it took more than that call's maxevents): the
                 * kernel may hold more behind them.  Take those too, so
                 * that this call returns every ready fd it has room for.
                 * The common path (nothing left over) never gets here. */
                r = harvest_inline_more(ep, HARVEST_BATCH, maxevents - n);
                if (r < 0)
                    return r;
                n = deliver_locked(ep, out, n, maxevents, stamp);
            }
            return n;
        }
        if (atomic_load_explicit(&ep->closing, memory_order_acquire))
            return -EBADF;

        if (timeout_ms < 0)
            wait_ms = -1;
        else if (timeout_ms == 0)
            wait_ms = 0;
        else {
            int64_t left = deadline - now_ms();
            wait_ms = left > 0 ? (int)left : 0;
        }

        if (!pollers_active(ep)) {
            r = harvest_inline(ep, wait_ms);
            if (r < 0)
                return r;
            if (every_ready) {
                n = harvest_inline_more(ep, r, maxevents - r);
                if (n < 0)
                    return n;
            }
            /* The last, non-blocking look, or the wait timed out: return
             * what there is.  (Events that were all stale, e.g. from a
             * level-triggered kernel item of a closed fd that a dup keeps
             * open, must not keep us here past the deadline.) */
            if (wait_ms == 0 || (r == 0 && wait_ms > 0))
                return deliver_locked(ep, out, 0, maxevents, stamp);
            continue;
        }
        r = io_mode(ep) ? 0 : harvest_inline(ep, 0);
        if (r < 0)
            return r;
        if (wait_ms == 0) {
            if (ep->snapshot)
                settle(ep);
            return deliver_locked(ep, out, 0, maxevents, stamp);
        }
        if (r > 0)
            continue;
        /* Hand-backs that this call's deliveries scheduled without giving
         * the caller an event (an owner's W_MORE report: output queued
         * while BUSY) go now, before we block: nothing else would send
         * them until our next call.  Re-arming here is safe for the
         * others too: none of them reached the caller. */
        pthread_mutex_lock(&ep->ctl_lock);
        if (ep->nrearm > 0)
            rearm_delivered(ep, false);
        pthread_mutex_unlock(&ep->ctl_lock);
        r = sleep_on_ready_list(ep, wait_ms);
        if (r < 0)
            return r;
    }
}
