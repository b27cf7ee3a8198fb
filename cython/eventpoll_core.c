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
 *   INLINE   the poller threads are gone (joined: a parked process is
 *            single-threaded, so the kernel's fd system calls skip the file
 *            reference a multi-threaded process pays on each) and the
 *            consumer reads the kernel itself, exactly as in inline mode:
 *            no hand-off, no wake-up.  A level-triggered item is re-armed without
 *            EPOLLONESHOT the next time it is delivered (item->k_oneshot
 *            says which kind the kernel holds), after which it needs no
 *            EPOLL_CTL_MOD per event.
 *   Switching to INLINE (park_pollers): park_request = 1, then park_efd,
 *   level-triggered in the kernel epoll, is made readable, so every poller
 *   blocked in epoll_wait returns in turn; each finishes its batch (its
 *   appends), then counts itself in `parked` under park_lock and leaves
 *   poller_main.  The consumer waits until `parked` reaches `running` (so
 *   nothing reaches the ready list behind its back while it blocks in
 *   epoll_wait itself), joins the threads, then empties park_efd.
 *   Switching to POLLERS (unpark_pollers): under
 *   ctl_lock, every item armed without our EPOLLONESHOT gets it back
 *   (one EPOLL_CTL_MOD per item delivered or registered since the switch
 *   to INLINE: 4.5 ms for 10,000 new idle registrations on our 2-CPU VM,
 *   nothing for those that kept it; parking takes ~10 us).  The pollers
 *   are still gone, so no event can reach two threads.  Then
 *   park_request = 0, `parked` = 0, and the threads are started again
 *   (start_pollers; if one cannot be started, the consumer parks the ones
 *   that were and stays INLINE).  The phase only changes at the start of a
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
 *           buffer, hands that buffer to item->io->rbuf/rlen (no copy;
 *           it takes a free one from rx_pool), and ends BUSY with
 *           W_RFULL set (READY, appended).  The consumer's
 *           wfc_ep_io_take_read() takes it and clears W_RFULL.
 *   write   wfc_ep_io_write() appends to item->io->outq (ctl_lock's).  At the
 *           next wait, rearm_delivered() takes every such item and every
 *           item delivered last wait (they all need their re-arm) IDLE ->
 *           BUSY, moves outq behind item->io->flight, and pushes them onto the
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
#include "eventpoll/adaptive_rule.h"

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
#define W_RFULL (1ull << 4)    /* item->io->rbuf/rlen hold a read not taken yet */
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
#define RX_POOL_MAX 16                 /* free receive buffers kept (rx_pool) */

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
    /* Below: ctl_lock's, except that the thread holding the item BUSY
     * (POLLER-SIDE I/O) reads `fd` and follows `io`: removal and
     * modification wait BUSY out, so neither changes under it. */
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
    /* Poller-side I/O's state, NULL until the slot's first
     * wfc_ep_io_enable, then kept with the slot (reused by the fds that
     * take the slot later) until wfc_ep_destroy: an item that never does
     * poller-side I/O pays one pointer for it.  Written under ctl_lock
     * before the release CAS that sets W_IO, so a poller whose acquire
     * CAS sees W_IO sees it too; never freed while a thread could follow
     * it. */
    struct item_io *io;
};

/* Poller-side I/O (POLLER-SIDE I/O) of one item.  Owned by whoever holds
 * the item BUSY; otherwise by ctl_lock holders.  `outq` alone is always
 * ctl_lock's (the consumer queues output there while a poller sends
 * `flight`). */
struct item_io {
    char *rbuf;                /* a read's bytes (a receive buffer), when W_RFULL */
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
    /* Free receive buffers of poller-side reads (see rx_get), and about how
     * many (relaxed: a bound, not a synchronisation). */
    _Atomic(char *) rx_pool;
    _Atomic int rx_pooled;
    /* Set once an item gets W_IO: in phase POLLERS the consumer then leaves
     * the kernel to the pollers (settle, wfc_ep_wait).  Relaxed: a hint. */
    _Atomic int io_mode;

    struct harvest_stats inline_stats;
    _Atomic uint64_t sleeps, splices, delivered, rearms, reaped, registered;

    /* Phases (see PHASES).  `phase` is written only by the consumer with
     * ctl_lock held, and read by the consumer or under ctl_lock. */
    int phase;
    pthread_mutex_t park_lock;
    pthread_cond_t parked_cond;   /* the consumer waits here for `parked` */
    _Atomic int park_request;     /* 1: pollers must leave; see poller_main */
    int parked;                   /* pollers that left poller_main; park_lock */
    int running;                  /* poller threads started and not joined; park_lock, written by the consumer (or create) only */
    /* Set by any thread, taken by the consumer at its next wait (relaxed
     * exchange: the phase it names is the whole message). */
    _Atomic int phase_request;    /* -1: none */
    _Atomic int adaptive;         /* relaxed: a setting, read each wait */
    _Atomic uint64_t phase_switches;
    struct adapt_state adapt;     /* the consumer's only (eventpoll/adaptive_rule.h) */
};

#define STAT_ADD(field, n) atomic_fetch_add_explicit(&(field), (n), memory_order_relaxed)

/* Used by a part before the part that defines it. */
static void schedule_rearm(wfc_ep *ep, uint32_t idx, struct wfc_item *item, uint32_t gen);
static void adapt_phase(wfc_ep *ep);   /* phases.c; wfc_ep_wait (consumer.c) runs it */
static int start_pollers(wfc_ep *ep);  /* lifecycle.c; unpark_pollers (phases.c) too */
static void join_pollers(wfc_ep *ep);  /* lifecycle.c; park_pollers (phases.c) too */

/* The core, one concern per file (each keeps the section divider it had
 * when this was one file). */
#include "eventpoll/items.c"
#include "eventpoll/poller_io.c"
#include "eventpoll/pollers.c"
#include "eventpoll/consumer.c"
#include "eventpoll/phases.c"
#include "eventpoll/registration.c"
#include "eventpoll/lifecycle.c"
