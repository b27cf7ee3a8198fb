/* eventpoll/items.c: part of eventpoll_core.c, which includes it (one
 * translation unit: these functions stay static).  Its state machine,
 * locking rules and the ordering argument of each atomic are explained at
 * the top of eventpoll_core.c.
 *
 * This file: the item slots (generation-tagged, never freed while pollers run), the
 * ready list (the wfcqueue the pollers append to) and harvesting: marking
 * an item READY for a kernel event, on a poller or on the loop thread.
 */

/* ---------------------------------------------------------------- slots */

/* Any thread.  Acquire pairs with the release store that published the
 * chunk (alloc_slot); a NULL chunk means the tag cannot be ours. */
static inline struct wfc_item *slot_lookup(wfc_ep *ep, uint32_t idx)
{
    struct wfc_item *chunk;
    if ((idx >> CHUNK_SHIFT) >= MAX_CHUNKS)
        return NULL;
    chunk = atomic_load_explicit(&ep->chunks[idx >> CHUNK_SHIFT], memory_order_acquire);
    return chunk ? &chunk[idx & (CHUNK_SIZE - 1)] : NULL;
}

/* ctl_lock held.  Returns the index of a FREE slot, or -ENOMEM. */
static int64_t alloc_slot(wfc_ep *ep)
{
    uint32_t idx;
    if (ep->nfree > 0)
        return ep->free_stack[--ep->nfree];
    idx = ep->nslots;
    if ((idx >> CHUNK_SHIFT) >= MAX_CHUNKS)
        return -ENOMEM;
    if ((idx & (CHUNK_SIZE - 1)) == 0) {
        struct wfc_item *chunk = calloc(CHUNK_SIZE, sizeof(*chunk));
        if (chunk == NULL)
            return -ENOMEM;
        for (uint32_t i = 0; i < CHUNK_SIZE; i++) {
            wfcq_node_init(&chunk[i].node);
            atomic_init(&chunk[i].word, w_make(1, 0, ST_FREE));
            chunk[i].fd = -1;
            chunk[i].idx = idx + i;
        }
        /* Release: the initialised slots are visible to a poller that
         * finds the chunk (slot_lookup's acquire). */
        atomic_store_explicit(&ep->chunks[idx >> CHUNK_SHIFT], chunk, memory_order_release);
    }
    ep->nslots++;
    return idx;
}

/* ctl_lock held.  The free stack never needs more than nslots entries, and
 * grows before a slot can be freed, so pushing never fails. */
static int reserve_free_stack(wfc_ep *ep)
{
    if (ep->free_cap >= ep->nslots + 1)
        return 0;
    size_t cap = ep->free_cap ? ep->free_cap * 2 : 64;
    while (cap < ep->nslots + 1)
        cap *= 2;
    uint32_t *p = realloc(ep->free_stack, cap * sizeof(*p));
    if (p == NULL)
        return -ENOMEM;
    ep->free_stack = p;
    ep->free_cap = cap;
    return 0;
}

/* ctl_lock held.  Returns the slot index mapped to fd, or -1. */
static int64_t map_get(wfc_ep *ep, int fd)
{
    if (fd < 0 || (size_t)fd >= ep->fd_map_len || ep->fd_map[fd] == 0)
        return -1;
    return (int64_t)ep->fd_map[fd] - 1;
}

static int map_set(wfc_ep *ep, int fd, int64_t idx)
{
    if ((size_t)fd >= ep->fd_map_len) {
        size_t len = ep->fd_map_len ? ep->fd_map_len : 256;
        while (len <= (size_t)fd)
            len *= 2;
        uint32_t *p = realloc(ep->fd_map, len * sizeof(*p));
        if (p == NULL)
            return -ENOMEM;
        memset(p + ep->fd_map_len, 0, (len - ep->fd_map_len) * sizeof(*p));
        ep->fd_map = p;
        ep->fd_map_len = len;
    }
    ep->fd_map[fd] = (uint32_t)(idx + 1);
    return 0;
}

static inline bool level_triggered(uint32_t mask)
{
    return !(mask & (EPOLLET | EPOLLONESHOT));
}

static inline bool io_mode(wfc_ep *ep)
{
    return atomic_load_explicit(&ep->io_mode, memory_order_relaxed);
}

/* Consumer or ctl_lock held: whether poller threads read the kernel now. */
static inline bool pollers_active(const wfc_ep *ep)
{
    return ep->npollers > 0 && ep->phase == WFC_PHASE_POLLERS;
}

/* The mask the kernel gets for the user's mask; see KERNEL REGISTRATION
 * and PHASES. */
static inline uint32_t kernel_mask(const wfc_ep *ep, uint32_t mask)
{
    if ((mask & EPOLLET) && !(mask & EPOLLONESHOT))
        return mask;
    if (!pollers_active(ep) && level_triggered(mask))
        return mask;
    return mask | EPOLLONESHOT;
}

/* ctl_lock held: kernel_mask() for an item about to be (re-)armed with it;
 * records whether the kernel will hold our EPOLLONESHOT. */
static inline uint32_t arm_mask(const wfc_ep *ep, struct wfc_item *item)
{
    item->k_oneshot = level_triggered(item->mask) && pollers_active(ep);
    return kernel_mask(ep, item->mask);
}

/* Whether a delivered item must be re-armed before it can fire again. */
static inline bool rearmed_after_delivery(const struct wfc_item *item)
{
    return item->k_oneshot;
}

static uint64_t wait_not_busy(wfc_ep *ep, struct wfc_item *item);
static void io_release(wfc_ep *ep, struct wfc_item *item, uint64_t w);

/*
 * ctl_lock held.  Take a registration out of service: IDLE -> FREE
 * (generation++) or READY -> ZOMBIE (the consumer reaps it).  Races only
 * with pollers, whose IDLE->READY or READY->READY CAS makes ours retry.
 * A BUSY item is waited out first (wait_not_busy): after this returns, no
 * thread does I/O on the item's fd any more, so the caller may close it.
 */
static void retire_item(wfc_ep *ep, uint32_t idx, struct wfc_item *item)
{
    uint64_t w = wait_not_busy(ep, item);
    uint64_t nw;
    unsigned st;

    for (;;) {
        st = w_state(w);
        if (st == ST_BUSY) {
            /* A poller's read began after our wait: it is short. */
            w = wait_not_busy(ep, item);
            continue;
        }
        if (st == ST_IDLE)
            nw = w_make(w_gen(w) + 1, 0, ST_FREE);
        else if (st == ST_READY)
            nw = w_make(w_gen(w), 0, ST_ZOMBIE);
        else
            return;
        /* acq_rel: acquire orders our later reuse of the slot after a
         * poller's last CAS on it; release publishes the new state. */
        if (atomic_compare_exchange_weak_explicit(&item->word, &w, nw,
                                                  memory_order_acq_rel,
                                                  memory_order_acquire))
            break;
    }
    item->rearm_pending = 0;
    /* Not BUSY, and out of service: no poller touches the buffers now. */
    io_release(ep, item, w);
    if (st == ST_IDLE) {
        item->fd = -1;
        ep->free_stack[ep->nfree++] = idx;
    }
    STAT_ADD(ep->registered, (uint64_t)-1);
}

/* ctl_lock held.  ZOMBIE -> FREE for an item the consumer took off its
 * transaction list. */
static void reap_item(wfc_ep *ep, uint32_t idx, struct wfc_item *item, uint64_t w)
{
    /* Release: a later registration that reuses the slot is ordered after
     * our last reads of it. */
    atomic_store_explicit(&item->word, w_make(w_gen(w) + 1, 0, ST_FREE), memory_order_release);
    item->fd = -1;
    ep->free_stack[ep->nfree++] = idx;
    STAT_ADD(ep->reaped, 1);
}

/* ------------------------------------------------------------ ready list */

/* Any poller.  Returns true when the list was empty before. */
static inline bool ready_push(wfc_ep *ep, struct wfc_item *item)
{
    bool was_empty;
    if (ep->ready_kind == WFC_READY_LIST_WFCQUEUE)
        return wfcq_enqueue(&ep->ready_head, &ep->ready_tail, &item->node);
    pthread_mutex_lock(&ep->ready_lock);
    /* Relaxed: the mutex list is ordered by ready_lock, not by the node. */
    atomic_store_explicit(&item->node.next, NULL, memory_order_relaxed);
    was_empty = ep->mhead == NULL;
    if (was_empty)
        ep->mhead = &item->node;
    else
        atomic_store_explicit(&ep->mtail->next, &item->node, memory_order_relaxed);
    ep->mtail = &item->node;
    pthread_mutex_unlock(&ep->ready_lock);
    return was_empty;
}

/* Consumer.  A snapshot; see the wake-up protocol for the fence before it. */
static inline bool ready_empty(wfc_ep *ep)
{
    bool empty;
    if (ep->ready_kind == WFC_READY_LIST_WFCQUEUE)
        return wfcq_empty(&ep->ready_head, &ep->ready_tail);
    pthread_mutex_lock(&ep->ready_lock);
    empty = ep->mhead == NULL;
    pthread_mutex_unlock(&ep->ready_lock);
    return empty;
}

/* Consumer, ctl_lock held: move the whole ready list to the transaction
 * list in O(1). */
static inline void ready_splice(wfc_ep *ep)
{
    if (ep->ready_kind == WFC_READY_LIST_WFCQUEUE) {
        if (wfcq_splice(&ep->txn_head, &ep->txn_tail, &ep->ready_head, &ep->ready_tail)
            != WFCQ_SPLICE_SRC_EMPTY)
            STAT_ADD(ep->splices, 1);
        return;
    }
    pthread_mutex_lock(&ep->ready_lock);
    struct wfcq_node *first = ep->mhead, *last = ep->mtail;
    ep->mhead = ep->mtail = NULL;
    pthread_mutex_unlock(&ep->ready_lock);
    if (first != NULL) {
        wfcq_append(&ep->txn_head, &ep->txn_tail, first, last);
        STAT_ADD(ep->splices, 1);
    }
}

/* ---------------------------------------------------------- harvesting */

/* Events on which a poller reads for an item with W_IO. */
#define IO_READ_EVENTS (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)

/*
 * A kernel event arrived for `tag` (poller or inline harvesting thread).
 * Returns the item when this call moved it IDLE -> READY, so the caller
 * must append it to a list; NULL when it was coalesced or stale.  With
 * `receive` (a poller), an item with W_IO and no read held goes
 * IDLE -> BUSY instead, *receive is set, and the caller owns the item: it
 * reads, then ends BUSY (finish_busy), which appends it.
 */
static struct wfc_item *mark_ready(wfc_ep *ep, uint64_t tag, uint32_t events,
                                   struct harvest_stats *st, bool *receive)
{
    uint32_t gen = (uint32_t)tag;
    struct wfc_item *item = slot_lookup(ep, (uint32_t)(tag >> 32));
    uint64_t w, nw;

    if (item == NULL) {
        STAT_ADD(st->stale, 1);
        return NULL;
    }
    /* Acquire: see the registration's IDLE store (and the consumer's IDLE
     * store after its last touch of item->node). */
    w = atomic_load_explicit(&item->word, memory_order_acquire);
    for (;;) {
        unsigned state = w_state(w);
        if (w_gen(w) != gen || state == ST_FREE || state == ST_ZOMBIE) {
            /* Removed or reused since the kernel queued this event: the
             * memory is a live slot, but not ours to touch any more. */
            STAT_ADD(st->stale, 1);
            return NULL;
        }
        bool busy = receive != NULL && state == ST_IDLE && (w & W_IO) && !(w & W_RFULL)
                    && (events & IO_READ_EVENTS);
        nw = w | ((uint64_t)(events & WFC_EVENT_BITS) << W_EV_SHIFT);
        if (state == ST_IDLE)
            nw = w_with_state(nw, busy ? ST_BUSY : ST_READY);
        /* acq_rel, one CAS checks the generation, the state and ORs the
         * bits.  Acquire: the consumer's accesses to item->node (its
         * dequeue) happen before our enqueue rewrites node.next, and, for
         * IDLE -> BUSY, its last accesses to the item's buffers happen
         * before ours.  Release: the consumer that exchanges the word sees
         * our bits.  (READY and BUSY items only get bits OR-ed in: the
         * BUSY owner appends the item when it is done.) */
        if (atomic_compare_exchange_weak_explicit(&item->word, &w, nw,
                                                  memory_order_acq_rel,
                                                  memory_order_acquire)) {
            if (busy) {
                *receive = true;
                return item;
            }
            if (state == ST_IDLE) {
                STAT_ADD(st->enqueued, 1);
                return item;
            }
            STAT_ADD(st->coalesced, 1);
            return NULL;
        }
    }
}

static void wake_consumer_if_sleeping(wfc_ep *ep, struct harvest_stats *st)
{
    /* Fence X of the wake-up protocol (see the top of this file). */
    atomic_thread_fence(memory_order_seq_cst);
    /* Relaxed: fence X above orders this load after our append. */
    if (atomic_load_explicit(&ep->sleepers, memory_order_relaxed) > 0) {
        uint64_t one = 1;
        ssize_t r = write(ep->wake_efd, &one, sizeof(one));
        (void)r; /* EAGAIN only if the counter is about to overflow: already woken */
        STAT_ADD(st->wakeups, 1);
    }
}
