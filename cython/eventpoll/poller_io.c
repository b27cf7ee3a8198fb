/* eventpoll/poller_io.c: part of eventpoll_core.c, which includes it (one
 * translation unit: these functions stay static).  Its state machine,
 * locking rules and the ordering argument of each atomic are explained at
 * the top of eventpoll_core.c.
 *
 * This file: POLLER-SIDE I/O: the BUSY owner's recv and send, the hand-back list and
 * waiting BUSY out (the API for the transports is at the end).
 */

/* ------------------------------------------------------ poller-side I/O */

/*
 * Receive buffers (IO_READ_SIZE each) go round: a poller recv()s into its
 * own, hands that very buffer to the item (rbuf) and takes another; the
 * consumer copies the bytes once into the object it hands on and gives the
 * buffer back (wfc_ep_io_read_done).  So a read is copied once after the
 * kernel's copy, not twice.  The pool is a stack of free buffers (the
 * first bytes of each hold the link): pushed by the consumer with a CAS,
 * taken whole by a poller with one exchange (taking all at once has no
 * ABA problem: no thread follows a link it did not take).
 * model/rxpool.pml checks it, and that the one-buffer CAS pop has the ABA.
 */
static void rx_push_list(wfc_ep *ep, char *first, char *last, int count)
{
    /* Relaxed load: the CAS below re-reads it. */
    char *head = atomic_load_explicit(&ep->rx_pool, memory_order_relaxed);
    do {
        memcpy(last, &head, sizeof(head));
        /* Release: our writes of the links (and, for the consumer, its
         * reads of the bytes, the memcpy out) happen before the poller
         * that takes the list (acquire exchange) writes into them. */
    } while (!atomic_compare_exchange_weak_explicit(&ep->rx_pool, &head, first,
                                                    memory_order_release,
                                                    memory_order_relaxed));
    /* Relaxed: a bound on the pool's size, not a synchronisation. */
    atomic_fetch_add_explicit(&ep->rx_pooled, count, memory_order_relaxed);
}

/* A poller: a free receive buffer (from the pool, else malloc), or NULL. */
static char *rx_get(wfc_ep *ep)
{
    /* Acquire: pairs with the release CAS of rx_push_list. */
    char *list = atomic_exchange_explicit(&ep->rx_pool, NULL, memory_order_acquire);
    char *rest, *last;
    int count = 1;

    if (list == NULL)
        return malloc(IO_READ_SIZE);
    memcpy(&rest, list, sizeof(rest));
    /* Relaxed: see rx_push_list. */
    atomic_fetch_sub_explicit(&ep->rx_pooled, 1, memory_order_relaxed);
    if (rest != NULL) {
        /* Put the others back, as one list (its tail found by a walk:
         * the pool is small, bounded by RX_POOL_MAX). */
        last = rest;
        for (;;) {
            char *next;
            memcpy(&next, last, sizeof(next));
            if (next == NULL)
                break;
            last = next;
            count++;
        }
        atomic_fetch_sub_explicit(&ep->rx_pooled, count, memory_order_relaxed);
        rx_push_list(ep, rest, last, count);
    }
    return list;
}

/*
 * The BUSY owner reads for the item: one recv() into its buffer *rxp,
 * which then becomes the item's rbuf (no copy); *rxp is refilled with a
 * free buffer, or NULL (the owner then reads for nobody until it gets
 * one).  Returns true when there is a result for the consumer (bytes, end
 * of file or an error), false when the socket had nothing after all.
 */
static bool io_receive(wfc_ep *ep, struct wfc_item *item, char **rxp)
{
    ssize_t n = recv(item->fd, *rxp, IO_READ_SIZE, MSG_DONTWAIT);

    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
        return false;
    STAT_ADD(ep->io_reads, 1);
    if (n > 0) {
        item->io->rbuf = *rxp;
        item->io->rlen = n;
        *rxp = rx_get(ep);
    } else {
        item->io->rbuf = NULL;
        item->io->rlen = n == 0 ? 0 : -errno;
    }
    return true;
}

/*
 * The BUSY owner ends BUSY (a poller after its read or its hand-back, or a
 * thread helping a hand-back along).  `received`: the owner read for the
 * item.  `rx`: the owner's receive buffer (see io_receive), to read with if an event for reading came
 * while the item was BUSY (NULL: leave that read to the consumer).  The item
 * `flushed`: the owner sent the item's flight (flush_item).  The item
 * goes READY and is appended when the consumer has something to see (events,
 * a read, W_MORE, W_WROTE), else IDLE.  Returns true when the append found
 * the ready list empty (the caller wakes the consumer once per batch).
 */
static bool finish_busy(wfc_ep *ep, struct wfc_item *item, bool received, bool flushed,
                        char **rx, struct harvest_stats *st)
{
    /* Acquire: bits and flags others OR-ed in while we held the item. */
    uint64_t w = atomic_load_explicit(&item->word, memory_order_acquire);
    uint64_t flags = received ? W_RFULL : 0;
    bool report;

    if (!received && rx != NULL && *rx != NULL && (w & W_IO) && !(w & W_RFULL)
            && (w_events(w) & IO_READ_EVENTS) && io_receive(ep, item, rx))
        flags |= W_RFULL;
    /* Only an owner that flushed looks at `flight`: a poller that went
     * BUSY to read may do so while the consumer, under ctl_lock with the
     * item IDLE, empties it (wfc_ep_io_take_writes): nothing orders the
     * two, and the flusher already reported its residue. */
    if (flushed && (item->io->flight.sent < item->io->flight.len
                    || item->io->flight.err != 0))
        flags |= W_WROTE;
    if (flags & W_RFULL) {
        /* Relaxed: the release CAS below orders it before W_RFULL. */
        atomic_fetch_add_explicit(&ep->reads_held, 1, memory_order_relaxed);
    }
    for (;;) {
        uint64_t nw = w | flags;
        report = w_events(nw) != 0 || (nw & (W_MORE | W_WROTE));
        nw = w_with_state(nw, report ? ST_READY : ST_IDLE);
        /* acq_rel.  Release: our read (rbuf, rlen) and our sends (flight)
         * are seen by whoever next acquires the word (the consumer, or the
         * next owner).  Acquire: bits OR-ed in since our load. */
        if (atomic_compare_exchange_weak_explicit(&item->word, &w, nw,
                                                  memory_order_acq_rel,
                                                  memory_order_acquire))
            break;
    }
    if (!report)
        return false;
    STAT_ADD(st->enqueued, 1);
    return ready_push(ep, item);
}

/*
 * The BUSY owner of a handed-back item sends its `flight` (as much as the
 * socket takes now) and re-arms it in the kernel, as the consumer's re-arm
 * would (with our EPOLLONESHOT where the item has it).  A residue or an
 * error stays in `flight` for the consumer (finish_busy sets W_WROTE).  A
 * failed re-arm means the fd was closed without being unregistered; the
 * owner of the registration unregisters it (only the loop's own socket
 * transports use poller-side I/O, and they unregister before closing).
 */
static void flush_item(wfc_ep *ep, struct wfc_item *item)
{
    struct outbox *o = &item->io->flight;
    /* Relaxed: we own the item; its generation cannot change under us. */
    uint64_t w = atomic_load_explicit(&item->word, memory_order_relaxed);
    struct epoll_event ev;

    bool rearm = item->rearm_due;

    while (o->sent < o->len && o->err == 0) {
        ssize_t n = send(item->fd, o->buf + o->sent, o->len - o->sent,
                         MSG_DONTWAIT | MSG_NOSIGNAL);
        if (n > 0) {
            o->sent += (size_t)n;
        } else if (n < 0 && errno == EINTR) {
            continue;
        } else {
            if (n == 0 || (errno != EAGAIN && errno != EWOULDBLOCK))
                o->err = n == 0 ? EIO : errno;
            break;
        }
    }
    if (o->sent == o->len)
        o->len = o->sent = 0;
    STAT_ADD(ep->io_flushes, 1);
    if (!rearm)
        return;   /* still armed: only output was queued */
    item->rearm_due = 0;
    ev.events = item->k_oneshot ? item->mask | EPOLLONESHOT : item->mask;
    ev.data.u64 = make_tag(item->idx, w_gen(w));
    epoll_ctl(ep->kfd, EPOLL_CTL_MOD, item->fd, &ev);
    STAT_ADD(ep->rearms, 1);
}

/* Any thread owning the items of `list` (BUSY, handed back): flush and
 * end each, then wake the consumer once if an append found the list
 * empty. */
static void run_handback(wfc_ep *ep, struct wfc_item *list, char **rx, struct harvest_stats *st)
{
    bool found_empty = false;

    while (list != NULL) {
        struct wfc_item *item = list;
        /* Before finish_busy: after it, the consumer may hand the item
         * back again and rewrite hb_next. */
        list = item->io->hb_next;
        flush_item(ep, item);
        if (finish_busy(ep, item, false, true, rx, st))
            found_empty = true;
    }
    if (found_empty)
        wake_consumer_if_sleeping(ep, st);
}

/* Any thread: take the whole hand-back list (its items become ours). */
static struct wfc_item *take_handback(wfc_ep *ep)
{
    struct wfc_item *list;
    pthread_mutex_lock(&ep->handback_lock);
    list = ep->handback;
    ep->handback = NULL;
    pthread_mutex_unlock(&ep->handback_lock);
    return list;
}

/* Consumer, ctl_lock held: append a batch of items it made BUSY to the
 * hand-back list; one eventfd write wakes one poller when the list was
 * empty (a poller that takes it re-arms the eventfd after emptying it). */
static void push_handback(wfc_ep *ep, struct wfc_item *first, struct wfc_item *last)
{
    bool was_empty;
    pthread_mutex_lock(&ep->handback_lock);
    was_empty = ep->handback == NULL;
    last->io->hb_next = ep->handback;
    ep->handback = first;
    pthread_mutex_unlock(&ep->handback_lock);
    STAT_ADD(ep->io_handbacks, 1);
    if (was_empty) {
        uint64_t one = 1;
        ssize_t r = write(atomic_load_explicit(&ep->handback_efd, memory_order_relaxed),
                          &one, sizeof(one));
        (void)r;
    }
}

/* A poller (or the consumer reading the kernel itself) got the hand-back
 * eventfd: empty it, take the list, re-arm the eventfd (a push after our
 * take then wakes a poller), then do the work.
 * A push between the read and the take is in our list; one after the take
 * left the eventfd readable, so the re-arm reports it at once. */
static void poller_handback_as(wfc_ep *ep, char **rx, struct harvest_stats *st)
{
    uint64_t count;
    struct epoll_event ev = {EPOLLIN | EPOLLONESHOT, {.u64 = TAG_HANDBACK}};
    int efd = atomic_load_explicit(&ep->handback_efd, memory_order_relaxed);
    ssize_t r = read(efd, &count, sizeof(count));
    struct wfc_item *list;

    (void)r;
    list = take_handback(ep);
    epoll_ctl(ep->kfd, EPOLL_CTL_MOD, efd, &ev);
    run_handback(ep, list, rx, st);
}

/*
 * ctl_lock held: wait until the item is not BUSY and return its word.  A
 * BUSY item is either in a poller's hands (one non-blocking recv or a few
 * sends: short) or still on the hand-back list, which this thread then
 * runs itself, so the wait ends even when no poller is free, parked or
 * left (shutdown).  Nothing that makes an item BUSY waits for ctl_lock, so
 * holding it here cannot deadlock.
 */
static uint64_t wait_not_busy(wfc_ep *ep, struct wfc_item *item)
{
    for (unsigned i = 0;; i++) {
        /* Acquire: pairs with the owner's release in finish_busy, so its
         * read and sends are seen by our caller. */
        uint64_t w = atomic_load_explicit(&item->word, memory_order_acquire);
        struct wfc_item *list;

        if (w_state(w) != ST_BUSY)
            return w;
        list = take_handback(ep);
        if (list != NULL) {
            run_handback(ep, list, NULL, &ep->inline_stats);
            continue;
        }
        if (i < 64)
            wfcq_cpu_relax();
        else
            sched_yield();
    }
}

/* ctl_lock held, item not BUSY and out of service (`w`: its last word):
 * free what poller-side I/O holds for it. */
static void io_release(wfc_ep *ep, struct wfc_item *item, uint64_t w)
{
    if (item->io == NULL)
        return;   /* never did poller-side I/O */
    if (w & W_RFULL) {
        free(item->io->rbuf);
        atomic_fetch_sub_explicit(&ep->reads_held, 1, memory_order_relaxed);
    }
    item->io->rbuf = NULL;
    item->io->rlen = 0;
    free(item->io->flight.buf);
    free(item->io->outq.buf);
    memset(&item->io->flight, 0, sizeof(item->io->flight));
    memset(&item->io->outq, 0, sizeof(item->io->outq));
}

/* ctl_lock held, item not BUSY: move the queued output behind what is
 * left in flight, so that one flush sends both, in order.  -ENOMEM leaves
 * both as they were. */
static int io_prepare_flight(struct wfc_item *item)
{
    struct outbox *f = &item->io->flight, *q = &item->io->outq;
    if (q->len == 0)
        return 0;
    if (f->len == 0) {
        struct outbox t = *f;   /* swap: no copy for the common case */
        *f = *q;
        *q = t;
        q->len = q->sent = 0;
        q->err = 0;
        return 0;
    }
    if (f->cap - f->len < q->len) {
        size_t cap = f->len + q->len;
        char *b = realloc(f->buf, cap);
        if (b == NULL)
            return -ENOMEM;
        f->buf = b;
        f->cap = cap;
    }
    memcpy(f->buf + f->len, q->buf, q->len);
    f->len += q->len;
    q->len = 0;
    return 0;
}


/* ------------------------------------------------ poller-side I/O: API */

/* ctl_lock held: the item registered for fd, or NULL. */
static struct wfc_item *item_for_fd(wfc_ep *ep, int fd)
{
    int64_t idx = map_get(ep, fd);
    return idx < 0 ? NULL : slot_lookup(ep, (uint32_t)idx);
}

/* ctl_lock held: the hand-back eventfd, made when poller-side I/O is
 * first turned on (an eventpoll without it has one fd fewer).  The release
 * of ctl_lock and the W_IO CAS publish it before any hand-back is pushed;
 * pollers learn of it only through its events. */
static int open_handback(wfc_ep *ep)
{
    /* EPOLLONESHOT: one poller per hand-back batch (poller_handback_as). */
    struct epoll_event ev = {EPOLLIN | EPOLLONESHOT, {.u64 = TAG_HANDBACK}};
    int efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (efd < 0)
        return -errno;
    atomic_store_explicit(&ep->handback_efd, efd, memory_order_relaxed);
    if (epoll_ctl(ep->kfd, EPOLL_CTL_ADD, efd, &ev) < 0) {
        int err = errno;
        atomic_store_explicit(&ep->handback_efd, -1, memory_order_relaxed);
        close(efd);
        return -err;
    }
    return 0;
}

int wfc_ep_io_enable(wfc_ep *ep, int fd)
{
    struct wfc_item *item;
    uint64_t w;
    int r = 0;

    pthread_mutex_lock(&ep->ctl_lock);
    item = item_for_fd(ep, fd);
    if (item == NULL) {
        r = -ENOENT;
    } else if (!level_triggered(item->mask)) {
        r = -EINVAL;
    } else if (atomic_load_explicit(&ep->handback_efd, memory_order_relaxed) < 0
               && (r = open_handback(ep)) < 0) {
        ;   /* no hand-back, no poller-side I/O: the consumer does the I/O */
    } else if (item->io == NULL && (item->io = calloc(1, sizeof(*item->io))) == NULL) {
        r = -ENOMEM;   /* likewise */
    } else {
        /* Release: item->io (made above, or kept from an earlier fd of
         * this slot, whose retirement emptied it) is seen by the poller
         * whose acquire CAS sees W_IO.  A CAS loop: pollers OR bits in. */
        w = atomic_load_explicit(&item->word, memory_order_relaxed);
        while (!(w & W_IO) && !atomic_compare_exchange_weak_explicit(
                   &item->word, &w, w | W_IO, memory_order_release, memory_order_relaxed))
            ;
        atomic_store_explicit(&ep->io_mode, 1, memory_order_relaxed);
    }
    pthread_mutex_unlock(&ep->ctl_lock);
    return r;
}

int wfc_ep_io_disable(wfc_ep *ep, int fd)
{
    struct wfc_item *item;
    uint64_t w;

    pthread_mutex_lock(&ep->ctl_lock);
    item = item_for_fd(ep, fd);
    if (item != NULL) {
        /* Relaxed CAS: the flag carries no data; the wait below is what
         * orders a poller's read (already begun) before our return. */
        w = atomic_load_explicit(&item->word, memory_order_relaxed);
        while ((w & W_IO) && !atomic_compare_exchange_weak_explicit(
                   &item->word, &w, w & ~W_IO, memory_order_relaxed, memory_order_relaxed))
            ;
        wait_not_busy(ep, item);
    }
    pthread_mutex_unlock(&ep->ctl_lock);
    return item != NULL ? 0 : -ENOENT;
}

int wfc_ep_io_reads_held(wfc_ep *ep)
{
    /* Relaxed: see reads_held. */
    return atomic_load_explicit(&ep->reads_held, memory_order_relaxed) > 0;
}

int wfc_ep_io_writes(const wfc_ep *ep)
{
    return pollers_active(ep);
}

int wfc_ep_io_take_read(wfc_ep *ep, int fd, char **buf, ssize_t *len)
{
    struct wfc_item *item;
    uint64_t w;
    int taken = 0;

    pthread_mutex_lock(&ep->ctl_lock);
    item = item_for_fd(ep, fd);
    if (item != NULL) {
        w = wait_not_busy(ep, item);
        /* With W_RFULL set no poller goes BUSY for a read, and a hand-back
         * needs ctl_lock: rbuf and rlen hold still until we clear it. */
        while (w & W_RFULL) {
            char *b = item->io->rbuf;
            ssize_t n = item->io->rlen;
            /* Release: our reads of rbuf/rlen happen before a poller's
             * next read (its IDLE -> BUSY acquire) rewrites them. */
            if (atomic_compare_exchange_weak_explicit(&item->word, &w, w & ~W_RFULL,
                                                      memory_order_acq_rel,
                                                      memory_order_acquire)) {
                *buf = b;
                *len = n;
                taken = 1;
                atomic_fetch_sub_explicit(&ep->reads_held, 1, memory_order_relaxed);
                break;
            }
        }
    }
    pthread_mutex_unlock(&ep->ctl_lock);
    return taken;
}

void wfc_ep_io_read_done(wfc_ep *ep, char *buf)
{
    if (buf == NULL)
        return;
    /* Relaxed: only a bound (RX_POOL_MAX); one buffer more or less is fine. */
    if (atomic_load_explicit(&ep->rx_pooled, memory_order_relaxed) >= RX_POOL_MAX)
        free(buf);
    else
        rx_push_list(ep, buf, buf, 1);
}

int wfc_ep_io_write(wfc_ep *ep, int fd, const void *data, size_t len)
{
    struct wfc_item *item;
    struct outbox *q;
    uint64_t w;
    int r = 0;

    pthread_mutex_lock(&ep->ctl_lock);
    item = item_for_fd(ep, fd);
    /* Acquire: a poller's finish, so that a BUSY seen below is current
     * enough for the W_MORE decision (the CAS decides in the end). */
    w = item != NULL ? atomic_load_explicit(&item->word, memory_order_acquire) : 0;
    if (item == NULL || !(w & W_IO)) {
        r = -ENOENT;
        goto out;
    }
    q = &item->io->outq;
    if (q->cap - q->len < len) {
        size_t cap = q->cap ? q->cap : 4096;
        char *b;
        while (cap - q->len < len)
            cap *= 2;
        b = realloc(q->buf, cap);
        if (b == NULL) {
            r = -ENOMEM;
            goto out;
        }
        q->buf = b;
        q->cap = cap;
    }
    memcpy(q->buf + q->len, data, len);
    q->len += len;
    for (;;) {
        if (w_state(w) != ST_BUSY) {
            /* Sent at the next wait, with the re-arm (rearm_delivered). */
            schedule_rearm(ep, item->idx, item, w_gen(w));
            break;
        }
        /* BUSY: its owner hands it back through the ready list when done
         * (finish_busy sees W_MORE).  Release/acquire: a CAS on the word
         * like every other change of it. */
        if ((w & W_MORE) || atomic_compare_exchange_weak_explicit(
                &item->word, &w, w | W_MORE, memory_order_acq_rel, memory_order_acquire))
            break;
    }
    r = q->len > INT_MAX ? INT_MAX : (int)q->len;
out:
    pthread_mutex_unlock(&ep->ctl_lock);
    return r;
}

ssize_t wfc_ep_io_pending(wfc_ep *ep, int fd)
{
    struct wfc_item *item;
    ssize_t n = 0;

    pthread_mutex_lock(&ep->ctl_lock);
    item = item_for_fd(ep, fd);
    if (item != NULL && item->io != NULL) {
        wait_not_busy(ep, item);
        n = (ssize_t)(item->io->flight.len - item->io->flight.sent + item->io->outq.len);
    }
    pthread_mutex_unlock(&ep->ctl_lock);
    return n;
}

int wfc_ep_io_take_writes(wfc_ep *ep, int fd, char **buf, size_t *len, int *err)
{
    struct wfc_item *item;
    int r = 0;

    *buf = NULL;
    *len = 0;
    *err = 0;
    pthread_mutex_lock(&ep->ctl_lock);
    item = item_for_fd(ep, fd);
    if (item != NULL && item->io != NULL) {
        struct outbox *f = &item->io->flight, *q = &item->io->outq;
        size_t n;
        /* Not BUSY afterwards, and only a ctl_lock holder can make it BUSY
         * for a hand-back: both buffers are ours. */
        wait_not_busy(ep, item);
        n = f->len - f->sent + q->len;
        if (n > 0) {
            char *b = malloc(n);
            if (b == NULL) {
                r = -ENOMEM;
                goto out;
            }
            if (f->len > f->sent)
                memcpy(b, f->buf + f->sent, f->len - f->sent);
            if (q->len > 0)
                memcpy(b + (f->len - f->sent), q->buf, q->len);
            *buf = b;
            *len = n;
        }
        *err = f->err;
        f->len = f->sent = 0;
        f->err = 0;
        q->len = 0;
    }
out:
    pthread_mutex_unlock(&ep->ctl_lock);
    return r;
}
