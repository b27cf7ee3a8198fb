/*
 * eventpoll_core.c - a userspace eventpoll with a wait-free ready list.
 *
 * One kernel epoll instance holds every registered fd.  Poller threads
 * block in epoll_wait() on it; each registration carries EPOLLONESHOT in
 * the kernel, so each readiness event reaches exactly one thread.  The
 * poller marks the item READY with one compare-and-swap and appends it to
 * the ready list, a wfcqueue (wfcqueue.h), without taking any lock.  The
 * consumer (wfc_ep_wait, called by the event loop thread) splices the
 * whole ready list into its private transaction list in O(1), delivers the
 * events, and re-arms what the user registered level-triggered.
 *
 * LOCKING
 *   ctl_lock (pthread mutex)
 *     Held by: wfc_ep_add/mod/del (any thread) and by the consumer while it
 *     splices, delivers, reaps and re-arms (wfc_ep_wait).
 *     Protects: the fd map, the free-slot stack, the re-arm vector, slot
 *     allocation, and the fields of an item other than `node` and `word`
 *     (fd, mask, data, rearm_pending).  It also gives the consumer-side
 *     wfcqueue operations (splice-from, dequeue) their required exclusion.
 *     Never taken by a poller thread.
 *   ready_lock (pthread mutex)
 *     Only for WFC_READY_LIST_MUTEX, the benchmark's comparison list:
 *     guards mhead/mtail.  Taken by pollers and the consumer, never while
 *     ctl_lock is wanted by the same thread (order: ctl_lock -> ready_lock).
 *   Poller threads hold no lock with the wfcqueue list.  Item memory is
 *   never freed while pollers run: slots live in chunks that are released
 *   only by wfc_ep_destroy() after every poller has been joined, and a
 *   reused slot is told apart by its generation.
 *
 * ITEM WORD (one 64-bit atomic per item, changed only by CAS/exchange)
 *   bits 63..32  generation: bumped every time the slot is freed; the
 *                kernel's epoll_event.data carries (slot index, generation),
 *                so an event for a removed or reused registration fails the
 *                generation check inside the same CAS that marks it READY.
 *   bits 31..16  pending events, OR-ed in by pollers while READY (or BUSY).
 *   bits  6..3   poller-side I/O flags: W_IO, W_RFULL, W_MORE, W_WROTE.
 *   bits  2..0   state: FREE, IDLE, READY, ZOMBIE, BUSY.
 *
 * STATE TRANSITIONS (as in the kernel RFC; caller in brackets)
 *   FREE   -> IDLE    registration, before the kernel gets the tag  [add, ctl_lock]
 *   IDLE   -> READY   event arrived; the winner of the CAS appends the item
 *                     to the ready list (or, inline, the transaction list)
 *                                                        [poller / inline harvest]
 *   READY  -> READY   event arrived again; its bits are OR-ed in, nothing is
 *                     enqueued (the item is already on a list)  [poller / inline]
 *   READY  -> IDLE    consumer took the item off its transaction list and
 *                     takes the pending bits; only then may the item be
 *                     re-armed, so an event right after the re-arm finds
 *                     IDLE and enqueues it again      [consumer, ctl_lock]
 *   IDLE   -> FREE    removal of an item that is on no list; generation++
 *                                                 [del/stale, ctl_lock]
 *   READY  -> ZOMBIE  removal of an item that is on a list; the consumer
 *                     meets it later and reaps it     [del/stale, ctl_lock]
 *   ZOMBIE -> FREE    reaping; generation++           [consumer, ctl_lock]
 *   IDLE   -> BUSY    poller-side I/O: a poller takes an item with W_IO to
 *                     read for it (event), or the consumer takes one to hand
 *                     it to the pollers (hand-back)
 *                                          [poller / consumer, ctl_lock]
 *   BUSY   -> READY   the owner is done and has something for the consumer
 *                     (a read, events that came meanwhile, W_MORE, W_WROTE);
 *                     the owner appends it                 [BUSY owner]
 *   BUSY   -> IDLE    the owner is done, nothing to report  [BUSY owner]
 *   BUSY   -> BUSY    events or W_MORE OR-ed in; the owner sees them when
 *                     it ends BUSY             [poller / consumer, ctl_lock]
 *   Pollers perform IDLE->READY, READY->READY, IDLE->BUSY and end their own
 *   BUSY, and only when the generation matches; every other transition is
 *   made under ctl_lock, so the consumer and the registrars never race with
 *   each other on the state, only with pollers (hence CAS loops there).  A
 *   ctl_lock holder that must change a BUSY item (remove, modify, take its
 *   buffers) first waits BUSY out (wait_not_busy).
 *
 * KERNEL REGISTRATION
 *   level-triggered (user mask without EPOLLET/EPOLLONESHOT), with pollers:
 *     kernel gets mask|EPOLLONESHOT; after delivery the item is re-armed
 *     with EPOLL_CTL_MOD at the start of the next wfc_ep_wait() call, when
 *     the kernel re-checks the level after the user had the chance to
 *     consume it (so a drained fd is not reported again, as with a plain
 *     epoll).
 *   level-triggered in inline mode (no pollers): kernel gets mask as is.
 *     Only the consuming thread reads the kernel, so EPOLLONESHOT has no
 *     thread to keep an event from; without it the kernel re-reports the
 *     level by itself at every epoll_wait and no EPOLL_CTL_MOD per event is
 *     paid (one system call less per event, where cores are scarce).  Two
 *     threads in wfc_ep_wait at once may then both see one level-triggered
 *     event, as two threads in epoll_wait on one plain epoll would.
 *   EPOLLONESHOT from the user: kernel gets mask as is; never re-armed by
 *     us (the user's modify re-arms it), except when the pending bits were
 *     all masked out by a modify, since then nothing was delivered.
 *   EPOLLET without EPOLLONESHOT: kernel gets mask as is, edge-triggered
 *     WITHOUT EPOLLONESHOT.  An edge-triggered kernel item already leaves
 *     the kernel's ready list when one epoll_wait() returns it, so each edge
 *     reaches exactly one poller; re-arming an EPOLLET|EPOLLONESHOT item
 *     with EPOLL_CTL_MOD would instead report the current level again and
 *     turn edge-triggered into level-triggered.
 *   EPOLLEXCLUSIVE is refused with EINVAL: it only has meaning between
 *     several epoll instances and the kernel refuses it with EPOLLONESHOT.
 *
 * WAKE-UP PROTOCOL (no lost wake-up, no redundant one)
 *   consumer: sleepers++; seq_cst fence (Y); if the ready list is empty,
 *             sleep in poll() on wake_efd; sleepers--.
 *   poller:   append to the ready list; if the append found it empty,
 *             seq_cst fence (X), then if sleepers > 0, write wake_efd.
 *   Either X precedes Y in the fences' total order, and the consumer's
 *   emptiness check sees the append, or Y precedes X and the poller sees
 *   sleepers > 0 (C11 7.17.4: fences order an earlier write of one thread
 *   before a later read of the other).  A poller whose append found the
 *   list non-empty never wakes: the one that made it non-empty did, or the
 *   consumer had not gone to sleep yet and will see the list non-empty.
 *
 * PHASES (poller mode only; the consumer alone switches them)
 *   POLLERS  the poller threads read the kernel and feed the ready list, as
 *            above.  Level-triggered items carry our EPOLLONESHOT.
 *   INLINE   the pollers are parked on park_cond and the consumer reads the
 *            kernel itself, exactly as in inline mode: no hand-off, no
 *            wake-up.  A level-triggered item is re-armed without
 *            EPOLLONESHOT the next time it is delivered (item->k_oneshot
 *            says which kind the kernel holds), after which it needs no
 *            EPOLL_CTL_MOD per event.
 *   Switching to INLINE (park_pollers): park_request = 1, then park_efd,
 *   level-triggered in the kernel epoll, is made readable, so every poller
 *   blocked in epoll_wait returns in turn; each finishes its batch (its
 *   appends), then counts itself in `parked` under park_lock and waits.
 *   The consumer waits until all are parked (so nothing reaches the ready
 *   list behind its back while it blocks in epoll_wait itself), then
 *   empties park_efd.  Switching to POLLERS (unpark_pollers): under
 *   ctl_lock, every item armed without our EPOLLONESHOT gets it back
 *   (one EPOLL_CTL_MOD per item delivered or registered since the switch
 *   to INLINE: 4.5 ms for 10,000 new idle registrations on our 2-CPU VM,
 *   nothing for those that kept it; parking takes ~10 us).  The pollers
 *   are still parked, so no event can reach two threads.  Then
 *   park_request = 0 and park_cond is broadcast.  The phase only changes at the start of a
 *   wfc_ep_wait() call, by the thread that calls it, so the consumer is
 *   never asleep in the wrong place (blocked in epoll_wait while pollers
 *   run, or on wake_efd while they are parked).  Adaptive mode picks the
 *   phase from what it measures (adapt_phase); without it the phase is
 *   POLLERS unless wfc_ep_request_phase() asks otherwise.
 *
 * POLLER-SIDE I/O (phase POLLERS, items with W_IO: the loop's socket
 * transports, which unregister before they close their socket)
 *   The loop thread then makes no system call per message: pollers read,
 *   send and re-arm, and the loop thread runs the Python callbacks.
 *   read    A poller whose event is for reading wins IDLE -> BUSY (only
 *           while no read is held: !W_RFULL), recv()s once into its own
 *           buffer, keeps a copy in item->rbuf/rlen, and ends BUSY with
 *           W_RFULL set (READY, appended).  The consumer's
 *           wfc_ep_io_take_read() takes it and clears W_RFULL.
 *   write   wfc_ep_io_write() appends to item->outq (ctl_lock's).  At the
 *           next wait, rearm_delivered() takes every such item and every
 *           item delivered last wait (they all need their re-arm) IDLE ->
 *           BUSY, moves outq behind item->flight, and pushes them onto the
 *           hand-back list (a mutex, once per wait) with one eventfd write
 *           if it was empty.  The poller that gets the eventfd (EPOLLONESHOT,
 *           re-armed after taking the list) sends each flight, re-arms the
 *           item with EPOLL_CTL_MOD, and ends BUSY: IDLE, or READY when a
 *           send stopped short or failed (W_WROTE: the consumer takes the
 *           rest through wfc_ep_io_take_writes() into asyncio's buffer).
 *           Output queued while an item is BUSY sets W_MORE, and its owner
 *           then appends it, so that the consumer hands it back again; a
 *           wait that delivered only such reports hands them back before
 *           it blocks (nothing else would until the next wait).
 *           The re-arm (EPOLL_CTL_MOD) is made only for an item delivered
 *           since its last arm (rearm_due); one handed back for output
 *           alone is still armed.  In a wait that will not block, an item
 *           with nothing to send is kept one wait (hb_deferred), so that a
 *           reply written an iteration after the read (a stream's reader
 *           task) goes with the re-arm in one hand-back.
 *   kernel  With poller-side I/O on, the consumer does not read the kernel
 *           itself in phase POLLERS (before sleeping, or settling): an
 *           event it took would be read on the consumer's thread.  A poller
 *           runs a hand-back after its batch, outside in_flight.  The
 *           hand-back eventfd is made when poller-side I/O is first on.
 *   BUSY    is what keeps a poller off a closed or reused fd: removal,
 *           modification and taking the buffers all wait it out under
 *           ctl_lock, and an item that is BUSY only because it sits on the
 *           hand-back list is run by the waiting thread itself (no poller
 *           may be free, or left).  The hand-back re-arm uses the fd number:
 *           wfc_ep_add() of a number still mapped to an old item waits that
 *           item out before the kernel gets the new registration.
 *   phases  Parking runs what is left on the hand-back list after the
 *           pollers park; in INLINE, queued output is sent by the consumer
 *           at its next wait and reads are the consumer's own.
 *   order   An item is handed back at most once per wait, and its read is
 *           taken before the next, so one transport's bytes stay in order;
 *           its output goes out in write() order (flight, then outq).
 */
#define _GNU_SOURCE
#include "eventpoll_core.h"
#include "wfcqueue.h"

#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define ST_FREE 0u
#define ST_IDLE 1u
#define ST_READY 2u
#define ST_ZOMBIE 3u
#define ST_BUSY 4u     /* a thread does the item's socket I/O (POLLER-SIDE I/O) */

#define W_STATE_MASK 7ull
/* Flags of poller-side I/O (POLLER-SIDE I/O); zero for every other item. */
#define W_IO (1ull << 3)       /* pollers receive and send for this item */
#define W_RFULL (1ull << 4)    /* item->rbuf/rlen hold a read not taken yet */
#define W_MORE (1ull << 5)     /* output was queued while BUSY: hand back again */
#define W_WROTE (1ull << 6)    /* a send left bytes or an error: consumer settles */
#define W_FLAGS (W_IO | W_RFULL | W_MORE | W_WROTE)
#define W_EV_SHIFT 16
#define W_GEN_SHIFT 32

#define CHUNK_SHIFT 10
#define CHUNK_SIZE (1u << CHUNK_SHIFT)
#define MAX_CHUNKS 4096u /* 4M slots */

#define TAG_STOP UINT64_MAX            /* the stop eventfd */
#define TAG_PROBE (UINT64_MAX - 1)     /* errno probes of unknown fds */
#define TAG_PARK (UINT64_MAX - 2)      /* the park eventfd */
#define TAG_HANDBACK (UINT64_MAX - 3)  /* the hand-back eventfd */

#define IO_READ_SIZE (256 * 1024)      /* a poller's recv(), as asyncio's max_size */

#define POLLER_BATCH 64
#define HARVEST_BATCH 64
#define POLLER_STACK_SIZE (256 * 1024)

static inline uint64_t w_make(uint32_t gen, uint32_t events, unsigned state)
{
    return ((uint64_t)gen << W_GEN_SHIFT)
         | ((uint64_t)(events & WFC_EVENT_BITS) << W_EV_SHIFT)
         | state;
}
static inline uint32_t w_gen(uint64_t w) { return (uint32_t)(w >> W_GEN_SHIFT); }
static inline uint32_t w_events(uint64_t w) { return (uint32_t)(w >> W_EV_SHIFT) & WFC_EVENT_BITS; }
static inline unsigned w_state(uint64_t w) { return (unsigned)(w & W_STATE_MASK); }
static inline uint64_t w_with_state(uint64_t w, unsigned state) { return (w & ~W_STATE_MASK) | state; }

static inline uint64_t make_tag(uint32_t idx, uint32_t gen) { return ((uint64_t)idx << 32) | gen; }

struct wfc_item {
    struct wfcq_node node;     /* ready/transaction list link: pollers + consumer */
    _Atomic uint64_t word;     /* generation | pending | state: pollers + consumer */
    /* Below: ctl_lock only; never read by a poller. */
    int fd;
    uint32_t mask;             /* the user's event mask, flags included */
    uint64_t data;
    uint32_t idx;              /* this slot's index; constant */
    uint8_t rearm_pending;     /* in rearm_vec and not re-armed yet */
    uint8_t k_oneshot;         /* level-triggered, armed with our EPOLLONESHOT */
    uint8_t hb_deferred;       /* its hand-back was kept back one wait */
    uint8_t rearm_due;         /* delivered since its last arm (k_oneshot): the
                                * kernel item is disarmed.  A hand-back of an
                                * item without it sends only, no re-arm. */
    int out_index;             /* where the wait with stamp out_stamp put it */
    uint64_t out_stamp;
    /* Poller-side I/O (POLLER-SIDE I/O).  Owned by whoever holds the item
     * BUSY; otherwise by ctl_lock holders.  `outq` alone is always ctl_lock's
     * (the consumer queues output there while a poller sends `flight`). */
    char *rbuf;                /* a read's bytes (malloc), when W_RFULL */
    ssize_t rlen;              /* ... its length, 0 for end of file, -errno */
    struct outbox {
        char *buf;
        size_t len, sent, cap;
        int err;               /* flight: the send's errno, 0 if none */
    } flight, outq;
    struct wfc_item *hb_next;  /* on the hand-back list; handback_lock */
};

/* Counters written by one poller (or, for inline_stats, by consuming
 * threads), each set on its own cache line; relaxed: they are statistics,
 * read only by wfc_ep_get_stats() as a snapshot. */
struct harvest_stats {
    _Alignas(WFCQ_CACHE_LINE) _Atomic uint64_t harvested;
    _Atomic uint64_t enqueued;
    _Atomic uint64_t found_empty;
    _Atomic uint64_t coalesced;
    _Atomic uint64_t stale;
    _Atomic uint64_t wakeups;
};

struct poller {
    pthread_t thread;
    struct wfc_ep *ep;
    int started;
    char *rx;                  /* receive buffer for poller-side reads */
    struct harvest_stats stats;
};

struct wfc_ep {
    int kfd;                   /* the kernel epoll instance */
    int stop_efd;              /* in kfd, level-triggered: written once at shutdown */
    int wake_efd;              /* consumer's sleep; written by pollers */
    int park_efd;              /* in kfd, level-triggered: readable while pollers must park */
    /* In kfd, EPOLLONESHOT: the hand-back list is not empty.  Made once, by
     * open_handback, before any hand-back; relaxed atomic: the kernel's
     * event is what tells a poller to read it, the atomic only keeps the
     * read and the one write from being a data race. */
    _Atomic int handback_efd;
    int npollers;
    int ready_kind;
    struct poller *pollers;

    /* Ready list: pollers append, the consumer splices.  */
    struct wfcq_head ready_head;
    struct wfcq_tail ready_tail;
    /* The benchmark-only mutex list. */
    pthread_mutex_t ready_lock;
    struct wfcq_node *mhead, *mtail;

    /* Transaction list: the consumer's; inline harvesting threads append. */
    struct wfcq_head txn_head;
    struct wfcq_tail txn_tail;

    /* Consumers asleep in sleep_on_ready_list(); read and written relaxed,
     * ordered by the wake-up protocol's two seq_cst fences (X, Y). */
    _Alignas(WFCQ_CACHE_LINE) _Atomic int sleepers;
    _Atomic int in_flight;     /* pollers between epoll_wait's return and their last append */
    /* Set once, by wfc_ep_shutdown (seq_cst exchange, so that only one
     * caller writes the stop and wake fds).  Everyone else reads it with
     * acquire as a hint that shutdown began: nothing else is published
     * through it; teardown itself is ordered by `users` and by joining the
     * pollers. */
    _Atomic int closing;
    int snapshot;              /* settle before returning a partial batch */
    _Atomic int users;

    pthread_mutex_t ctl_lock;
    _Atomic(struct wfc_item *) chunks[MAX_CHUNKS];
    uint32_t nslots;
    uint32_t *free_stack;
    size_t nfree, free_cap;
    uint32_t *fd_map;          /* fd -> slot index + 1, 0 = none */
    size_t fd_map_len;
    uint64_t *rearm_vec;       /* tags of items to re-arm at the next wait */
    size_t nrearm, rearm_cap;
    uint64_t wait_stamp;       /* one per wfc_ep_wait call */

    /* Poller-side I/O's hand-back list (POLLER-SIDE I/O): items the
     * consumer made BUSY for a poller to send and re-arm.  A mutex, taken
     * once per batch on each side, not per event. */
    pthread_mutex_t handback_lock;
    struct wfc_item *handback;
    _Atomic uint64_t io_reads, io_flushes, io_handbacks;
    /* Items with W_RFULL.  Raised by the BUSY owner before its release CAS
     * publishes W_RFULL, lowered once W_RFULL is cleared: a consumer that
     * learned of a read through the word (acquire) sees it counted, so it
     * may skip wfc_ep_io_take_read's lock when this reads 0. */
    _Atomic int64_t reads_held;
    /* Set once an item gets W_IO: in phase POLLERS the consumer then leaves
     * the kernel to the pollers (settle, wfc_ep_wait).  Relaxed: a hint. */
    _Atomic int io_mode;

    struct harvest_stats inline_stats;
    _Atomic uint64_t sleeps, splices, delivered, rearms, reaped, registered;

    /* Phases (see PHASES).  `phase` is written only by the consumer with
     * ctl_lock held, and read by the consumer or under ctl_lock. */
    int phase;
    pthread_mutex_t park_lock;
    pthread_cond_t park_cond;     /* pollers wait here while parked */
    pthread_cond_t parked_cond;   /* the consumer waits here for `parked` */
    _Atomic int park_request;     /* 1: pollers must park; see poller_main */
    int parked;                   /* pollers parked; park_lock */
    /* Set by any thread, taken by the consumer at its next wait (relaxed
     * exchange: the phase it names is the whole message). */
    _Atomic int phase_request;    /* -1: none */
    _Atomic int adaptive;         /* relaxed: a setting, read each wait */
    _Atomic uint64_t phase_switches;
    struct adapt_state {          /* the consumer's only */
        int64_t window_start_ns;
        uint64_t delivered_at_start;
        int stage;                /* ADAPT_STEADY, _WARMUP, _MEASURE */
        double baseline_rate;     /* events/s in the phase we probed away from */
        int64_t next_probe_ns;
        int64_t backoff_ns;
        int64_t scale;            /* every constant of the rule / scale (tests) */
        unsigned waits_unclocked; /* waits since the clock was last read */
        uint64_t delivered_seen;  /* `delivered` at the last wait's start */
    } adapt;
};

#define STAT_ADD(field, n) atomic_fetch_add_explicit(&(field), (n), memory_order_relaxed)

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

/* ------------------------------------------------------ poller-side I/O */

/*
 * The BUSY owner reads for the item: one recv() into `rx`, kept in a
 * malloc'ed copy of its length.  Returns true when there is a result for
 * the consumer (bytes, end of file or an error), false when the socket had
 * nothing after all.
 */
static bool io_receive(wfc_ep *ep, struct wfc_item *item, char *rx)
{
    ssize_t n = recv(item->fd, rx, IO_READ_SIZE, MSG_DONTWAIT);

    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
        return false;
    STAT_ADD(ep->io_reads, 1);
    if (n > 0) {
        item->rbuf = malloc((size_t)n);
        if (item->rbuf == NULL) {
            /* The bytes are gone from the socket: the connection cannot go
             * on, and the consumer is told why. */
            item->rlen = -ENOMEM;
            return true;
        }
        memcpy(item->rbuf, rx, (size_t)n);
        item->rlen = n;
    } else {
        item->rbuf = NULL;
        item->rlen = n == 0 ? 0 : -errno;
    }
    return true;
}

/*
 * The BUSY owner ends BUSY (a poller after its read or its hand-back, or a
 * thread helping a hand-back along).  `received`: the owner read for the
 * item.  `rx`: a receive buffer, to read with if an event for reading came
 * while the item was BUSY (NULL: leave that read to the consumer).  The item
 * goes READY and is appended when the consumer has something to see (events,
 * a read, W_MORE, W_WROTE), else IDLE.  Returns true when the append found
 * the ready list empty (the caller wakes the consumer once per batch).
 */
static bool finish_busy(wfc_ep *ep, struct wfc_item *item, bool received, char *rx,
                        struct harvest_stats *st)
{
    /* Acquire: bits and flags others OR-ed in while we held the item. */
    uint64_t w = atomic_load_explicit(&item->word, memory_order_acquire);
    uint64_t flags = received ? W_RFULL : 0;
    bool report;

    if (!received && rx != NULL && (w & W_IO) && !(w & W_RFULL)
            && (w_events(w) & IO_READ_EVENTS) && io_receive(ep, item, rx))
        flags |= W_RFULL;
    if (item->flight.sent < item->flight.len || item->flight.err != 0)
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
    struct outbox *o = &item->flight;
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
static void run_handback(wfc_ep *ep, struct wfc_item *list, char *rx, struct harvest_stats *st)
{
    bool found_empty = false;

    while (list != NULL) {
        struct wfc_item *item = list;
        /* Before finish_busy: after it, the consumer may hand the item
         * back again and rewrite hb_next. */
        list = item->hb_next;
        flush_item(ep, item);
        if (finish_busy(ep, item, false, rx, st))
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
    last->hb_next = ep->handback;
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
static void poller_handback_as(wfc_ep *ep, char *rx, struct harvest_stats *st)
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
    if (w & W_RFULL) {
        free(item->rbuf);
        atomic_fetch_sub_explicit(&ep->reads_held, 1, memory_order_relaxed);
    }
    item->rbuf = NULL;
    item->rlen = 0;
    free(item->flight.buf);
    free(item->outq.buf);
    memset(&item->flight, 0, sizeof(item->flight));
    memset(&item->outq, 0, sizeof(item->outq));
}

/* ctl_lock held, item not BUSY: move the queued output behind what is
 * left in flight, so that one flush sends both, in order.  -ENOMEM leaves
 * both as they were. */
static int io_prepare_flight(struct wfc_item *item)
{
    struct outbox *f = &item->flight, *q = &item->outq;
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

/* A poller asked to park (PHASES): count ourselves parked and wait until
 * the consumer unparks us or shutdown begins.  Our appends so far happen
 * before the consumer sees `parked` reach npollers (park_lock). */
static void poller_park(wfc_ep *ep)
{
    pthread_mutex_lock(&ep->park_lock);
    if (atomic_load_explicit(&ep->park_request, memory_order_relaxed)) {
        ep->parked++;
        pthread_cond_signal(&ep->parked_cond);
        /* Relaxed loads: park_lock orders them against the writers, which
         * change both (or broadcast) with park_lock held. */
        while (atomic_load_explicit(&ep->park_request, memory_order_relaxed)
               && !atomic_load_explicit(&ep->closing, memory_order_relaxed))
            pthread_cond_wait(&ep->park_cond, &ep->park_lock);
        ep->parked--;
    }
    pthread_mutex_unlock(&ep->park_lock);
}

static void *poller_main(void *arg)
{
    struct poller *p = arg;
    wfc_ep *ep = p->ep;
    struct epoll_event evs[POLLER_BATCH];

    /* Without its receive buffer a poller reads for nobody: items with
     * W_IO are then delivered without a read, and the consumer reads. */
    p->rx = malloc(IO_READ_SIZE);

    for (;;) {
        int n;

        /* Acquire: pairs with the release stores in park_pollers and
         * unpark_pollers.  Only a hint: the decision to wait is taken again
         * under park_lock, and a poller that misses a park request here is
         * woken by park_efd, which stays readable until all are parked. */
        if (atomic_load_explicit(&ep->park_request, memory_order_acquire))
            poller_park(ep);
        if (atomic_load_explicit(&ep->closing, memory_order_acquire))
            break;
        n = epoll_wait(ep->kfd, evs, POLLER_BATCH, -1);
        bool stop = false, found_empty = false, handback = false;

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
                bool got = io_receive(ep, item, p->rx);
                if (finish_busy(ep, item, got, p->rx, &p->stats)) {
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
            poller_handback_as(ep, p->rx, &p->stats);
        if (stop || atomic_load_explicit(&ep->closing, memory_order_acquire))
            break;
    }
    free(p->rx);
    p->rx = NULL;
    /* A poller that is gone counts as parked for good: it appends
     * nothing more, and a consumer parking the pollers must not wait for
     * it. */
    pthread_mutex_lock(&ep->park_lock);
    ep->parked++;
    pthread_cond_signal(&ep->parked_cond);
    pthread_mutex_unlock(&ep->park_lock);
    return NULL;
}

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

/* ------------------------------------------------------------- consumer */

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
                && !item->hb_deferred && item->outq.len == 0 && item->flight.len == 0) {
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
        if ((w & W_IO) && (pollers_active(ep) || item->outq.len > 0 || item->flight.len > 0)) {
            /* Poller-side I/O: IDLE -> BUSY makes the item ours; acq_rel as
             * in mark_ready (a poller's IDLE -> READY/BUSY may race us). */
            if (!atomic_compare_exchange_strong_explicit(&item->word, &w, w_with_state(w, ST_BUSY),
                                                         memory_order_acq_rel,
                                                         memory_order_acquire))
                continue;   /* an event won: it is delivered, then handed back */
            if (io_prepare_flight(item) < 0)
                item->flight.err = ENOMEM;
            if (pollers_active(ep)) {
                item->hb_next = NULL;
                if (hb_last != NULL)
                    hb_last->hb_next = item;
                else
                    hb_first = item;
                hb_last = item;
            } else {
                /* Inline: output queued before the switch goes out now. */
                flush_item(ep, item);
                finish_busy(ep, item, false, NULL, &ep->inline_stats);
            }
            continue;
        }
        struct epoll_event ev = {arm_mask(ep, item), {.u64 = tag}};
        STAT_ADD(ep->rearms, 1);
        item->rearm_due = 0;
        if (epoll_ctl(ep->kfd, EPOLL_CTL_MOD, item->fd, &ev) < 0) {
            /* The fd was closed (the kernel dropped it) or its number now
             * names a file that is not registered: the registration is
             * gone, as it would be from a kernel epoll. */
            int fd = item->fd;
            retire_item(ep, idx, item);
            unmap_if(ep, fd, idx);
        }
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

/* ------------------------------------------------------------- phases */

/* Consumer, no lock held: POLLERS -> INLINE (see PHASES). */
static void park_pollers(wfc_ep *ep)
{
    uint64_t one = 1, count;
    ssize_t r;

    pthread_mutex_lock(&ep->park_lock);
    /* Release: pairs with the pollers' acquire hint in poller_main. */
    atomic_store_explicit(&ep->park_request, 1, memory_order_release);
    pthread_mutex_unlock(&ep->park_lock);
    r = write(ep->park_efd, &one, sizeof(one));
    pthread_mutex_lock(&ep->park_lock);
    /* Relaxed `closing`: read under park_lock, which wfc_ep_shutdown takes
     * to broadcast after setting it, so the wait cannot miss it.  (Once
     * closing, the wait returns -EBADF before it could block inline.) */
    while (ep->parked < ep->npollers && !atomic_load_explicit(&ep->closing, memory_order_relaxed))
        pthread_cond_wait(&ep->parked_cond, &ep->park_lock);
    pthread_mutex_unlock(&ep->park_lock);
    /* Every poller is parked (or shutdown began): nobody needs the fd. */
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

/* Consumer, no lock held: INLINE -> POLLERS (see PHASES). */
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
        struct epoll_event ev;

        if ((st != ST_IDLE && st != ST_READY) || item->k_oneshot || !level_triggered(item->mask))
            continue;
        ev.events = arm_mask(ep, item);
        ev.data.u64 = make_tag(idx, w_gen(atomic_load_explicit(&item->word, memory_order_relaxed)));
        STAT_ADD(ep->rearms, 1);
        item->rearm_due = 0;
        if (epoll_ctl(ep->kfd, EPOLL_CTL_MOD, item->fd, &ev) < 0) {
            /* Closed behind our back: gone, as from a kernel epoll. */
            int fd = item->fd;
            retire_item(ep, idx, item);
            unmap_if(ep, fd, idx);
        }
    }
    pthread_mutex_unlock(&ep->ctl_lock);
    pthread_mutex_lock(&ep->park_lock);
    /* Release: pairs with the pollers' acquire hint; the waiters read it
     * under park_lock. */
    atomic_store_explicit(&ep->park_request, 0, memory_order_release);
    pthread_cond_broadcast(&ep->park_cond);
    pthread_mutex_unlock(&ep->park_lock);
    STAT_ADD(ep->phase_switches, 1);
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
    } else if (delivered - a->delivered_at_start >= (ADAPT_MIN_EVENTS + a->scale - 1) / a->scale) {
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

int wfc_ep_wait(wfc_ep *ep, wfc_event *out, int maxevents, int timeout_ms)
{
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

    for (;;) {
        int wait_ms;

        n = deliver_locked(ep, out, 0, maxevents, stamp);
        if (n > 0) {
            if (pollers_active(ep) && ep->snapshot && n < maxevents) {
                settle(ep);
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

/* ------------------------------------------------------ registration */

int wfc_ep_add(wfc_ep *ep, int fd, uint32_t events, uint64_t data)
{
    struct epoll_event ev;
    struct wfc_item *item;
    int64_t idx, old;
    uint32_t gen;
    int err = 0;

    if (events & EPOLLEXCLUSIVE)
        return -EINVAL;
    if (atomic_load_explicit(&ep->closing, memory_order_acquire))
        return -EBADF;
    pthread_mutex_lock(&ep->ctl_lock);
    old = map_get(ep, fd);
    if (old >= 0) {
        /* Its fd may have been closed without being unregistered and the
         * number reused by the file we are adding: no owner of the old
         * item may re-arm that number (with the old tag) once the kernel
         * has the new registration. */
        wait_not_busy(ep, slot_lookup(ep, (uint32_t)old));
    }
    /* Room on the free stack first, so that freeing never fails later. */
    idx = reserve_free_stack(ep) < 0 ? -ENOMEM : alloc_slot(ep);
    if (idx < 0) {
        pthread_mutex_unlock(&ep->ctl_lock);
        return (int)idx;
    }
    item = slot_lookup(ep, (uint32_t)idx);
    /* Relaxed: the slot is FREE and ctl_lock is held; only our own last
     * store to it (or the chunk's initialisation) can be read here. */
    gen = w_gen(atomic_load_explicit(&item->word, memory_order_relaxed));
    item->fd = fd;
    item->mask = events;
    item->data = data;
    item->rearm_pending = 0;
    item->rearm_due = 0;
    item->hb_deferred = 0;
    item->out_stamp = 0;   /* a new registration was in no earlier wait's out[] */
    ev.events = arm_mask(ep, item);
    /* Release: IDLE before the kernel knows the tag, so the very first
     * event finds the item ready to be marked. */
    atomic_store_explicit(&item->word, w_make(gen, 0, ST_IDLE), memory_order_release);

    ev.data.u64 = make_tag((uint32_t)idx, gen);
    if (epoll_ctl(ep->kfd, EPOLL_CTL_ADD, fd, &ev) < 0) {
        err = errno;
        atomic_store_explicit(&item->word, w_make(gen + 1, 0, ST_FREE), memory_order_release);
        item->fd = -1;
        ep->free_stack[ep->nfree++] = (uint32_t)idx;
        pthread_mutex_unlock(&ep->ctl_lock);
        return -err;
    }
    old = map_get(ep, fd);
    if (old >= 0) {
        /* The kernel accepted fd, so the registration we still had under
         * this number was for a file that was closed since (the kernel
         * dropped it then): retire it so none of its events can reach the
         * new registration. */
        retire_item(ep, (uint32_t)old, slot_lookup(ep, (uint32_t)old));
    }
    if (map_set(ep, fd, idx) < 0) {
        epoll_ctl(ep->kfd, EPOLL_CTL_DEL, fd, NULL);
        retire_item(ep, (uint32_t)idx, item);
        pthread_mutex_unlock(&ep->ctl_lock);
        return -ENOMEM;
    }
    STAT_ADD(ep->registered, 1);
    pthread_mutex_unlock(&ep->ctl_lock);
    return 0;
}

int wfc_ep_mod(wfc_ep *ep, int fd, uint32_t events, uint64_t data)
{
    struct epoll_event ev;
    struct wfc_item *item;
    int64_t idx;
    uint32_t gen;
    bool k_oneshot;

    if (events & EPOLLEXCLUSIVE)
        return -EINVAL;
    if (atomic_load_explicit(&ep->closing, memory_order_acquire))
        return -EBADF;
    pthread_mutex_lock(&ep->ctl_lock);
    idx = map_get(ep, fd);
    if (idx < 0) {
        /* Not ours: let the kernel say why (EBADF, EPERM, EINVAL, ENOENT). */
        int r;
        ev.events = kernel_mask(ep, events);
        ev.data.u64 = TAG_PROBE;
        r = epoll_ctl(ep->kfd, EPOLL_CTL_MOD, fd, &ev);
        r = r < 0 ? -errno : 0;
        pthread_mutex_unlock(&ep->ctl_lock);
        return r;
    }
    item = slot_lookup(ep, (uint32_t)idx);
    /* A BUSY item's owner may be re-arming it with the old mask. */
    gen = w_gen(wait_not_busy(ep, item));
    ev.events = kernel_mask(ep, events);
    k_oneshot = level_triggered(events) && pollers_active(ep);
    ev.data.u64 = make_tag((uint32_t)idx, gen);
    if (epoll_ctl(ep->kfd, EPOLL_CTL_MOD, fd, &ev) < 0) {
        int err = errno;
        if (err == ENOENT || err == EBADF) {
            retire_item(ep, (uint32_t)idx, item);
            unmap_if(ep, fd, (uint32_t)idx);
        }
        pthread_mutex_unlock(&ep->ctl_lock);
        return -err;
    }
    /* The kernel item is armed with the new mask: a deferred re-arm would
     * only repeat it. */
    item->mask = events;
    item->data = data;
    item->rearm_pending = 0;
    item->rearm_due = 0;
    item->hb_deferred = 0;
    item->k_oneshot = k_oneshot;
    if (!level_triggered(events)) {
        /* Poller-side I/O is for level-triggered registrations only. */
        uint64_t w = atomic_load_explicit(&item->word, memory_order_relaxed);
        /* Relaxed: a flag with no data behind it; pollers OR bits in
         * concurrently, hence the loop. */
        while ((w & W_IO) && !atomic_compare_exchange_weak_explicit(
                   &item->word, &w, w & ~W_IO, memory_order_relaxed, memory_order_relaxed))
            ;
    }
    pthread_mutex_unlock(&ep->ctl_lock);
    return 0;
}

int wfc_ep_del(wfc_ep *ep, int fd)
{
    int64_t idx;
    int r;

    if (atomic_load_explicit(&ep->closing, memory_order_acquire))
        return -EBADF;
    pthread_mutex_lock(&ep->ctl_lock);
    r = epoll_ctl(ep->kfd, EPOLL_CTL_DEL, fd, NULL) < 0 ? -errno : 0;
    idx = map_get(ep, fd);
    if (idx >= 0) {
        /* Whatever the kernel said, the registration is gone from it. */
        retire_item(ep, (uint32_t)idx, slot_lookup(ep, (uint32_t)idx));
        ep->fd_map[fd] = 0;
    }
    pthread_mutex_unlock(&ep->ctl_lock);
    return r;
}

/* ------------------------------------------------------------ lifecycle */

int wfc_ep_create(wfc_ep **out, int npollers, int kfd, int ready_list_kind)
{
    wfc_ep *ep;
    int err;
    sigset_t all, old;
    pthread_attr_t attr;

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
    ep->adapt.scale = 1;
    ep->adapt.backoff_ns = ADAPT_BACKOFF_MIN_NS;
    pthread_mutex_init(&ep->park_lock, NULL);
    pthread_cond_init(&ep->park_cond, NULL);
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
        /* Every signal blocked in the pollers: they inherit the creating
         * thread's mask, so block all, create, restore.  Signals then go to
         * Python's threads, whose handlers run in the main thread. */
        sigfillset(&all);
        pthread_sigmask(SIG_BLOCK, &all, &old);
        pthread_attr_init(&attr);
        pthread_attr_setstacksize(&attr, POLLER_STACK_SIZE);
        err = 0;
        for (int i = 0; i < npollers; i++) {
            ep->pollers[i].ep = ep;
            err = pthread_create(&ep->pollers[i].thread, &attr, poller_main, &ep->pollers[i]);
            if (err != 0)
                break;
            ep->pollers[i].started = 1;
            {
                char name[32];
                snprintf(name, sizeof(name), "wfc-poller-%d", i);
                name[15] = '\0';   /* the kernel's limit for a thread name */
                pthread_setname_np(ep->pollers[i].thread, name);
            }
        }
        pthread_attr_destroy(&attr);
        pthread_sigmask(SIG_SETMASK, &old, NULL);
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
    /* Parked pollers and a consumer waiting for them check `closing` under
     * park_lock: broadcasting under it cannot slip between their check and
     * their wait. */
    pthread_mutex_lock(&ep->park_lock);
    pthread_cond_broadcast(&ep->park_cond);
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
        for (int i = 0; i < ep->npollers && ep->pollers; i++)
            if (ep->pollers[i].started)
                pthread_join(ep->pollers[i].thread, NULL);
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
        for (uint32_t i = 0; i < CHUNK_SIZE; i++)
            io_release(ep, &chunk[i], atomic_load_explicit(&chunk[i].word, memory_order_relaxed));
        free(chunk);
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
        pthread_cond_destroy(&ep->park_cond);
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
    } else {
        /* Release: the (empty) buffers are seen by the poller whose
         * acquire CAS sees W_IO.  A CAS loop: pollers OR bits in. */
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
            char *b = item->rbuf;
            ssize_t n = item->rlen;
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
    q = &item->outq;
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
    if (item != NULL) {
        wait_not_busy(ep, item);
        n = (ssize_t)(item->flight.len - item->flight.sent + item->outq.len);
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
    if (item != NULL) {
        struct outbox *f = &item->flight, *q = &item->outq;
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
