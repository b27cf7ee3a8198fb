/* eventpoll/lifecycle.c: part of eventpoll_core.c, which includes it (one
 * translation unit: these functions stay static).  Its state machine,
 * locking rules and the ordering argument of each atomic are explained at
 * the top of eventpoll_core.c.
 *
 * This file: lifecycle: create, shutdown, fork, destroy, and the statistics.
 */

/* ------------------------------------------------------------ lifecycle */

/*
 * Start the poller threads: at create, and each time unpark_pollers ends
 * the INLINE phase (parking ends them).  Called by the creating thread or
 * the consumer only, with no poller running, so nothing else writes
 * `started` or `running`.  Returns 0, or the errno of the first thread
 * that could not be started (the ones started before it run, and are
 * counted in `running` for park_pollers and wfc_ep_destroy to join).
 */
static int start_pollers(wfc_ep *ep)
{
    sigset_t all, old;
    pthread_attr_t attr;
    int err = 0;

    /* Every signal blocked in the pollers: they inherit the creating
     * thread's mask, so block all, create, restore.  Signals then go to
     * Python's threads, whose handlers run in the main thread. */
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, &old);
    pthread_attr_init(&attr);
    pthread_attr_setstacksize(&attr, POLLER_STACK_SIZE);
    for (int i = 0; i < ep->npollers; i++) {
        err = pthread_create(&ep->pollers[i].thread, &attr, poller_main, &ep->pollers[i]);
        if (err != 0)
            break;
        ep->pollers[i].started = 1;
        /* park_lock: park_pollers reads `running` under it. */
        pthread_mutex_lock(&ep->park_lock);
        ep->running++;
        pthread_mutex_unlock(&ep->park_lock);
        {
            char name[32];
            snprintf(name, sizeof(name), "wfc-poller-%d", i);
            name[15] = '\0';   /* the kernel's limit for a thread name */
            pthread_setname_np(ep->pollers[i].thread, name);
        }
    }
    pthread_attr_destroy(&attr);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    return err;
}

/* Join every started poller thread; each has left poller_main or is about
 * to (park request or shutdown).  Consumer or destroy only. */
static void join_pollers(wfc_ep *ep)
{
    for (int i = 0; i < ep->npollers && ep->pollers; i++) {
        if (ep->pollers[i].started) {
            pthread_join(ep->pollers[i].thread, NULL);
            ep->pollers[i].started = 0;
        }
    }
    pthread_mutex_lock(&ep->park_lock);
    ep->running = 0;
    pthread_mutex_unlock(&ep->park_lock);
}

int wfc_ep_create(wfc_ep **out, int npollers, int kfd, int ready_list_kind)
{
    wfc_ep *ep;
    int err;

    *out = NULL;
    if (npollers < 0 || npollers > 1024)
        return -EINVAL;
    if (posix_memalign((void **)&ep, WFCQ_CACHE_LINE, sizeof(*ep)) != 0)
        return -ENOMEM;
    memset(ep, 0, sizeof(*ep));
    ep->kfd = ep->stop_efd = ep->wake_efd = ep->park_efd = -1;
    atomic_init(&ep->handback_efd, -1);
    ep->npollers = npollers;
    ep->ready_kind = ready_list_kind;
    ep->snapshot = 1;
    ep->phase = WFC_PHASE_POLLERS;
    atomic_init(&ep->phase_request, -1);
    adapt_init(&ep->adapt, 1);
    pthread_mutex_init(&ep->park_lock, NULL);
    pthread_cond_init(&ep->parked_cond, NULL);
    wfcq_init(&ep->ready_head, &ep->ready_tail);
    wfcq_init(&ep->txn_head, &ep->txn_tail);
    pthread_mutex_init(&ep->ready_lock, NULL);
    pthread_mutex_init(&ep->ctl_lock, NULL);
    pthread_mutex_init(&ep->handback_lock, NULL);

    if (kfd >= 0) {
        ep->kfd = kfd;
    } else if ((ep->kfd = epoll_create1(EPOLL_CLOEXEC)) < 0) {
        err = errno;
        goto fail;
    }
    ep->stop_efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    ep->wake_efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    ep->park_efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (ep->stop_efd < 0 || ep->wake_efd < 0 || ep->park_efd < 0) {
        err = errno;
        goto fail;
    }
    {
        struct epoll_event ev = {EPOLLIN, {.u64 = TAG_STOP}};
        struct epoll_event park = {EPOLLIN, {.u64 = TAG_PARK}};
        if (epoll_ctl(ep->kfd, EPOLL_CTL_ADD, ep->stop_efd, &ev) < 0
            || epoll_ctl(ep->kfd, EPOLL_CTL_ADD, ep->park_efd, &park) < 0) {
            err = errno;
            goto fail;
        }
    }
    if (npollers > 0) {
        ep->pollers = calloc((size_t)npollers, sizeof(*ep->pollers));
        if (ep->pollers == NULL) {
            err = ENOMEM;
            goto fail;
        }
        for (int i = 0; i < npollers; i++)
            ep->pollers[i].ep = ep;
        err = start_pollers(ep);
        if (err != 0)
            goto fail;
    }
    *out = ep;
    return 0;

fail:
    if (kfd >= 0)
        ep->kfd = -1;   /* an adopted fd stays the caller's when we fail */
    wfc_ep_destroy(ep, 0);
    return -err;
}

void wfc_ep_shutdown(wfc_ep *ep)
{
    uint64_t one = 1;
    ssize_t r;

    if (atomic_exchange_explicit(&ep->closing, 1, memory_order_seq_cst))
        return;
    /* The stop eventfd is level-triggered in the kernel epoll: every
     * poller's epoll_wait (and an inline waiter's) returns it in turn. */
    if (ep->stop_efd >= 0)
        r = write(ep->stop_efd, &one, sizeof(one));
    if (ep->wake_efd >= 0)
        r = write(ep->wake_efd, &one, sizeof(one));
    (void)r;
    /* A consumer waiting for the pollers to leave checks `closing` under
     * park_lock: broadcasting under it cannot slip between its check and
     * its wait. */
    pthread_mutex_lock(&ep->park_lock);
    pthread_cond_broadcast(&ep->parked_cond);
    pthread_mutex_unlock(&ep->park_lock);
}

void wfc_ep_enter(wfc_ep *ep)
{
    /* seq_cst: the caller enters while it knows ep is alive (the wrapper
     * holds the GIL, and close() clears its pointer under the GIL), so no
     * ordering is needed for safety; seq_cst keeps the users/closing pair
     * simple to reason about. */
    atomic_fetch_add_explicit(&ep->users, 1, memory_order_seq_cst);
}

void wfc_ep_leave(wfc_ep *ep)
{
    /* Release: our last accesses to *ep happen before destroy frees it. */
    atomic_fetch_sub_explicit(&ep->users, 1, memory_order_release);
}

void wfc_ep_destroy(wfc_ep *ep, int in_forked_child)
{
    if (ep == NULL)
        return;
    if (!in_forked_child) {
        wfc_ep_shutdown(ep);
        /* Acquire: pairs with wfc_ep_leave. */
        while (atomic_load_explicit(&ep->users, memory_order_acquire) > 0) {
            struct timespec ts = {0, 100000};
            nanosleep(&ts, NULL);
        }
        join_pollers(ep);
    }
    if (ep->stop_efd >= 0)
        close(ep->stop_efd);
    if (ep->wake_efd >= 0)
        close(ep->wake_efd);
    if (ep->park_efd >= 0)
        close(ep->park_efd);
    if (atomic_load_explicit(&ep->handback_efd, memory_order_relaxed) >= 0)
        close(atomic_load_explicit(&ep->handback_efd, memory_order_relaxed));
    if (ep->kfd >= 0)
        close(ep->kfd);
    for (uint32_t c = 0; c < MAX_CHUNKS; c++) {
        /* Relaxed: every poller has been joined; no thread is left. */
        struct wfc_item *chunk = atomic_load_explicit(&ep->chunks[c], memory_order_relaxed);
        if (chunk == NULL)
            break;
        for (uint32_t i = 0; i < CHUNK_SIZE; i++) {
            io_release(ep, &chunk[i], atomic_load_explicit(&chunk[i].word, memory_order_relaxed));
            free(chunk[i].io);
        }
        free(chunk);
    }
    /* Relaxed: no thread is left. */
    for (char *b = atomic_load_explicit(&ep->rx_pool, memory_order_relaxed); b != NULL;) {
        char *next;
        memcpy(&next, b, sizeof(next));
        free(b);
        b = next;
    }
    free(ep->pollers);
    free(ep->free_stack);
    free(ep->fd_map);
    free(ep->rearm_vec);
    if (!in_forked_child) {
        pthread_mutex_destroy(&ep->ready_lock);
        pthread_mutex_destroy(&ep->ctl_lock);
        pthread_mutex_destroy(&ep->park_lock);
        pthread_mutex_destroy(&ep->handback_lock);
        pthread_cond_destroy(&ep->parked_cond);
    }
    free(ep);
}

int wfc_ep_kernel_fd(const wfc_ep *ep) { return ep->kfd; }
int wfc_ep_pollers(const wfc_ep *ep) { return ep->npollers; }
int wfc_ep_closing(wfc_ep *ep) { return atomic_load_explicit(&ep->closing, memory_order_acquire); }

static void add_harvest(wfc_ep_stats *s, struct harvest_stats *h)
{
    s->harvested += atomic_load_explicit(&h->harvested, memory_order_relaxed);
    s->enqueued += atomic_load_explicit(&h->enqueued, memory_order_relaxed);
    s->enqueued_found_empty += atomic_load_explicit(&h->found_empty, memory_order_relaxed);
    s->coalesced += atomic_load_explicit(&h->coalesced, memory_order_relaxed);
    s->stale += atomic_load_explicit(&h->stale, memory_order_relaxed);
    s->wakeups += atomic_load_explicit(&h->wakeups, memory_order_relaxed);
}

void wfc_ep_get_stats(wfc_ep *ep, wfc_ep_stats *s)
{
    memset(s, 0, sizeof(*s));
    s->pollers = (uint64_t)ep->npollers;
    for (int i = 0; i < ep->npollers; i++)
        add_harvest(s, &ep->pollers[i].stats);
    add_harvest(s, &ep->inline_stats);
    s->harvested_inline = atomic_load_explicit(&ep->inline_stats.harvested, memory_order_relaxed);
    s->sleeps = atomic_load_explicit(&ep->sleeps, memory_order_relaxed);
    s->splices = atomic_load_explicit(&ep->splices, memory_order_relaxed);
    s->delivered = atomic_load_explicit(&ep->delivered, memory_order_relaxed);
    s->rearms = atomic_load_explicit(&ep->rearms, memory_order_relaxed);
    s->reaped = atomic_load_explicit(&ep->reaped, memory_order_relaxed);
    s->registered = atomic_load_explicit(&ep->registered, memory_order_relaxed);
    s->phase_switches = atomic_load_explicit(&ep->phase_switches, memory_order_relaxed);
    s->io_reads = atomic_load_explicit(&ep->io_reads, memory_order_relaxed);
    s->io_flushes = atomic_load_explicit(&ep->io_flushes, memory_order_relaxed);
    s->io_handbacks = atomic_load_explicit(&ep->io_handbacks, memory_order_relaxed);
}
