/*
 * eventpoll_core.h - a userspace eventpoll whose ready list is a wait-free
 * concurrent queue fed by poller threads (see eventpoll_core.c for the
 * state machine, the locking rules and the memory-ordering arguments).
 *
 * Pure C: no Python object is ever touched here, so poller threads run
 * without the GIL.  Every function returns 0 (or a count) on success and a
 * negative errno on failure; the Cython layer turns that into an exception
 * once, at the boundary.
 */
#ifndef WFCLOOP_EVENTPOLL_CORE_H
#define WFCLOOP_EVENTPOLL_CORE_H

#include <stdint.h>
#include <sys/types.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct wfc_ep wfc_ep;

/* One delivered event.  `data` is the value given at registration (the
 * EventPoll wrapper does not use it; the event loop keeps a handle index
 * there). */
typedef struct wfc_event {
    int fd;
    uint32_t events;
    uint64_t data;
} wfc_event;

/* Which ready list carries items from pollers to the consumer.  MUTEX
 * exists only for the benchmark that compares it with the wfcqueue. */
enum wfc_ready_list_kind {
    WFC_READY_LIST_WFCQUEUE = 0,
    WFC_READY_LIST_MUTEX = 1
};

typedef struct wfc_ep_stats {
    uint64_t pollers;            /* poller threads running */
    uint64_t harvested;          /* events taken from the kernel (pollers + inline) */
    uint64_t harvested_inline;   /* ... of which by the consuming thread itself */
    uint64_t enqueued;           /* IDLE->READY transitions put on a list */
    uint64_t enqueued_found_empty; /* ... of which found the ready list empty */
    uint64_t coalesced;          /* events OR-ed into an item already READY */
    uint64_t stale;              /* events for a removed or reused item, dropped */
    uint64_t wakeups;            /* times a poller woke the sleeping consumer */
    uint64_t sleeps;             /* times the consumer went to sleep */
    uint64_t splices;            /* non-empty splices of the ready list */
    uint64_t delivered;          /* events returned by wfc_ep_wait */
    uint64_t rearms;             /* EPOLL_CTL_MOD issued to re-arm an item */
    uint64_t reaped;             /* ZOMBIE items freed by the consumer */
    uint64_t registered;         /* items currently registered */
    uint64_t phase_switches;     /* POLLERS <-> INLINE switches */
    uint64_t io_reads;           /* poller-side I/O: reads made for the consumer */
    uint64_t io_flushes;         /* ... items sent and re-armed off the consumer */
    uint64_t io_handbacks;       /* ... batches handed to the pollers */
} wfc_ep_stats;

/* Poller mode's phases (eventpoll_core.c, PHASES): the pollers read the
 * kernel, or they are parked and the consumer reads it itself. */
enum wfc_phase {
    WFC_PHASE_POLLERS = 0,
    WFC_PHASE_INLINE = 1
};

/* Create an eventpoll with `pollers` poller threads (0: inline mode, the
 * consuming thread calls epoll_wait itself).  `kfd` >= 0 adopts an existing
 * kernel epoll fd (fromfd); -1 creates one with EPOLL_CLOEXEC. */
int wfc_ep_create(wfc_ep **out, int pollers, int kfd, int ready_list_kind);

/* Stop and join every poller, close every fd the eventpoll opened (and the
 * kernel epoll fd), free everything.  Waits until no thread is inside
 * another wfc_ep_* call.  `in_forked_child`: the threads and locks belong
 * to the parent; only close the fds and free. */
void wfc_ep_destroy(wfc_ep *ep, int in_forked_child);

/* Begin shutting down: wake every thread blocked in wfc_ep_wait and make
 * further calls fail with -EBADF.  wfc_ep_destroy() does this too. */
void wfc_ep_shutdown(wfc_ep *ep);

/* Lifetime guard for callers that may race with wfc_ep_destroy() (the
 * Python wrapper): enter before a call, leave after it; destroy waits until
 * every thread has left.  Enter while the caller still knows ep is alive
 * (the wrapper enters while holding the GIL). */
void wfc_ep_enter(wfc_ep *ep);
void wfc_ep_leave(wfc_ep *ep);
int wfc_ep_closing(wfc_ep *ep);

int wfc_ep_kernel_fd(const wfc_ep *ep);
int wfc_ep_pollers(const wfc_ep *ep);

/* Register, modify, unregister: EPOLL_CTL_ADD / MOD / DEL semantics and
 * errnos, callable from any thread, also while another thread waits. */
int wfc_ep_add(wfc_ep *ep, int fd, uint32_t events, uint64_t data);
int wfc_ep_mod(wfc_ep *ep, int fd, uint32_t events, uint64_t data);
int wfc_ep_del(wfc_ep *ep, int fd);

/* Deliver up to maxevents ready events into out[], waiting up to
 * timeout_ms (-1: forever, 0: do not wait).  Returns the count, 0 on
 * timeout, -EINTR when a signal interrupted the wait (the caller runs
 * signal handlers and calls again with the remaining time), -EBADF once
 * shut down.  Call without holding the GIL. */
int wfc_ep_wait(wfc_ep *ep, wfc_event *out, int maxevents, int timeout_ms);

/* wfc_ep_wait with flags:
 * WFC_WAIT_EVERY_READY: inline (no pollers active), read the kernel until
 *   it has no more ready events or maxevents are taken, so that one wait
 *   returns every ready fd up to maxevents, as one epoll_wait(maxevents)
 *   does: select.epoll's and selectors' contract.  Without it an inline
 *   wait takes at most one batch (HARVEST_BATCH, 64) from the kernel, the
 *   rest at the next wait: what an event loop's iteration wants (measured:
 *   draining every batch cost the protocol echo 2%).  Poller mode's
 *   snapshot (wfc_ep_set_snapshot) is the same promise there. */
#define WFC_WAIT_EVERY_READY 1u
int wfc_ep_wait_flags(wfc_ep *ep, wfc_event *out, int maxevents, int timeout_ms,
                      unsigned flags);

void wfc_ep_get_stats(wfc_ep *ep, wfc_ep_stats *stats);

/* Poller mode: before returning fewer than maxevents events, settle (take
 * what the kernel has queued and wait briefly for pollers in the middle of
 * a hand-off) so that one wait returns what was ready at once, as a plain
 * epoll_wait does.  On by default (EventPoll needs it); an event loop that
 * calls wait again right away may turn it off to save the syscall. */
void wfc_ep_set_snapshot(wfc_ep *ep, int on);

/* Poller mode: let the consumer choose the phase by the adaptive rule
 * (eventpoll_core.c, ADAPTIVE RULE), starting INLINE; off (the default):
 * POLLERS, from the next wait on.  A switch to POLLERS re-arms every item
 * armed inline, O(items armed level-triggered since the switch).  Only
 * for an eventpoll with ONE consuming thread (an event loop): the phase
 * changes at the start of a wfc_ep_wait() call.  Any thread. */
void wfc_ep_set_adaptive(wfc_ep *ep, int on);

/* For tests: divide every time constant and event threshold of the
 * adaptive rule by `divisor`, so that trials happen within a short test.
 * Call before the first wait. */
void wfc_ep_set_adaptive_timescale(wfc_ep *ep, int divisor);

/* Ask for a phase; the consumer switches at the start of its next
 * wfc_ep_wait() (a wait in progress is not interrupted).  With adaptive on,
 * the rule may switch again later.  Inline mode (no pollers) has only
 * INLINE.  Any thread.  Returns 0 or -EINVAL. */
int wfc_ep_request_phase(wfc_ep *ep, int phase);

/* The current phase (INLINE in inline mode).  Any thread. */
int wfc_ep_phase(wfc_ep *ep);

/* Every event bit that the kernel may report (the others are input flags). */
#define WFC_EVENT_BITS 0xffffu

/*
 * Poller-side I/O (eventpoll_core.c, POLLER-SIDE I/O): for a registration
 * whose fd is a non-blocking socket that its owner unregisters before
 * closing (the loop's socket transports), pollers may do the socket I/O:
 * receive when it is readable, and send what the consumer queued, with the
 * re-arm, in one hand-back per wait.  Only while pollers read the kernel
 * (phase POLLERS); otherwise everything is as without it.  The functions
 * below are the consumer's (ctl_lock inside); each returns at once except
 * that it waits out a poller in the middle of the item's I/O (one recv or a
 * few sends).
 */

/* An event flag outside WFC_EVENT_BITS: a poller's send for this item
 * stopped short (the socket was full) or failed; take the rest and the
 * error with wfc_ep_io_take_writes(). */
#define WFC_EV_IO_WRITE 0x10000u

/* Every event bit that is the eventpoll's own notification rather than
 * the kernel's readiness (for a dispatcher that routes them generically). */
#define WFC_EV_NOTIFY_BITS WFC_EV_IO_WRITE

/* Turn it on for fd, registered level-triggered: -ENOENT, -EINVAL. */
int wfc_ep_io_enable(wfc_ep *ep, int fd);

/* Turn it off for fd: no poller reads for it from now on, and one that
 * was reading has finished (its read is kept for wfc_ep_io_take_read);
 * output queued stays for wfc_ep_io_take_writes.  -ENOENT. */
int wfc_ep_io_disable(wfc_ep *ep, int fd);

/* Whether output queued now is sent by pollers (phase POLLERS). */
int wfc_ep_io_writes(const wfc_ep *ep);

/* Whether any item holds a read not taken yet.  A consumer that learned
 * of a read through an event sees it counted; 0 lets it skip
 * wfc_ep_io_take_read() (whose lock it would otherwise pay per read). */
int wfc_ep_io_reads_held(wfc_ep *ep);

/* Take the read a poller made for fd, if any: returns 1 with *buf (the
 * poller's receive buffer itself; NULL unless *len > 0) and *len (bytes, 0
 * for end of file, -errno), 0 if none.  Copy the bytes out once, then give
 * the buffer back with wfc_ep_io_read_done(). */
int wfc_ep_io_take_read(wfc_ep *ep, int fd, char **buf, ssize_t *len);

/* The consumer is done with a buffer from wfc_ep_io_take_read (NULL: no-op). */
void wfc_ep_io_read_done(wfc_ep *ep, char *buf);

/* Queue len bytes for fd; a poller sends them after the next wait starts.
 * Returns the bytes now queued and not handed to a poller (capped at
 * INT_MAX); -ENOENT: fd is not registered with poller-side I/O on (send it
 * yourself); -ENOMEM. */
int wfc_ep_io_write(wfc_ep *ep, int fd, const void *data, size_t len);

/* Bytes queued for fd and not sent yet. */
ssize_t wfc_ep_io_pending(wfc_ep *ep, int fd);

/* Take everything queued for fd and not sent (*buf, malloc, *len bytes,
 * in order) and the error that stopped a send (*err, 0 if none); nothing
 * is queued afterwards.  0 or -ENOMEM. */
int wfc_ep_io_take_writes(wfc_ep *ep, int fd, char **buf, size_t *len, int *err);

#ifdef __cplusplus
}
#endif
#endif /* WFCLOOP_EVENTPOLL_CORE_H */
