/*
 * ep_stress.c - stress harness for the eventpoll core, through the
 * eventpoll_core.h API only.
 *
 * Threads:
 *   - the eventpoll's own poller threads (config.pollers; 0: inline mode);
 *   - W writer threads: pick a random channel, write one counted token
 *     (a byte into a pipe or a socketpair, 1 into an eventfd);
 *   - S storm threads: pick a random channel and, under its lock,
 *       del + re-add the same fd (a new registration),
 *       del + close + open a new fd (of a random kind) + add,
 *       mod (toggle EPOLLRDHUP in the mask),  [config.mods: weight 0..8]
 *       close WITHOUT del + open a new fd + add;   [config.close_without_del]
 *     tokens still unread when a channel's fd is closed are counted as
 *     discarded;
 *   - one consumer, the calling thread: wfc_ep_wait() in a loop; for each
 *     event it drains the channel (reads until EAGAIN) and counts tokens;
 *     in EPOLLONESHOT mode it re-arms with wfc_ep_mod() afterwards; with
 *     config.phase_flips it switches the core between the POLLERS and the
 *     INLINE phase at random times (parking and unparking the pollers);
 *
 * Every registration gets a unique id, passed as the event's `data`.  A
 * global epoch counter is bumped after each wfc_ep_add()/wfc_ep_del()
 * returns; the consumer reads it before each wfc_ep_wait() call.
 *
 * Checked:
 *   lost           tokens written but neither read after an event nor
 *                  discarded at a close, once writers and storms stopped
 *                  and the consumer waited drain_timeout_ms without
 *                  progress: an event that never came;
 *   after_removal  an event for a registration whose wfc_ep_del() had
 *                  returned before the wfc_ep_wait() call began;
 *   after_reuse    an event for a registration whose fd number had been
 *                  registered again (wfc_ep_add() returned) before the
 *                  wfc_ep_wait() call began (the close-without-del case);
 *   duplicates     one registration twice in one wfc_ep_wait() batch;
 *   wrong_fd       event.fd differs from the registration's fd;
 *   bad_events     unknown `data`, or event bits outside
 *                  EPOLLIN|EPOLLRDHUP|EPOLLERR|EPOLLHUP;
 *   spurious       an event for the current registration of a channel
 *                  that had nothing to read.  Legitimate with EPOLLET (an
 *                  edge queued before the previous drain) and with mods (a
 *                  modify re-arms the kernel item before the consumer has
 *                  drained); a violation otherwise;
 *   stats          wfc_ep_get_stats().delivered != events returned;
 *   errors         an unexpected failure of a wfc_ep_* call or a syscall.
 *
 * No main() unless EP_STRESS_MAIN is defined; the Cython module
 * wfcloop._selftest includes this file.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "eventpoll_core.h" /* cython/eventpoll_core.h: compile with -Icython */
#include "selftest/stress_common.h"

#ifndef EP_STRESS_API
#define EP_STRESS_API static __attribute__((unused))
#endif

/* config.mode */
enum { EP_STRESS_LT = 0, EP_STRESS_ET = 1, EP_STRESS_ONESHOT = 2 };
/* config.fd_kinds (bits) */
enum { EP_STRESS_PIPE = 1, EP_STRESS_EVENTFD = 2, EP_STRESS_SOCKETPAIR = 4 };

/* Violation bits of ep_stress_result.violations. */
enum {
    EP_STRESS_V_LOST = 1 << 0,
    EP_STRESS_V_AFTER_REMOVAL = 1 << 1,
    EP_STRESS_V_AFTER_REUSE = 1 << 2,
    EP_STRESS_V_DUPLICATE = 1 << 3,
    EP_STRESS_V_WRONG_FD = 1 << 4,
    EP_STRESS_V_BAD_EVENT = 1 << 5,
    EP_STRESS_V_SPURIOUS = 1 << 6,
    EP_STRESS_V_STATS = 1 << 7,
    EP_STRESS_V_ERRORS = 1 << 8,
    EP_STRESS_V_WRITER_STUCK = 1 << 9
};

#define EP_STRESS_FD_TABLE 65536
#define EP_STRESS_MAX_CHANNELS 4096
#define EP_STRESS_BATCH 64
#define EP_STRESS_ALLOWED (EPOLLIN | EPOLLRDHUP | EPOLLERR | EPOLLHUP)

struct ep_stress_config {
    int pollers;              /* the eventpoll's poller threads; 0: inline mode */
    int ready_list_kind;      /* WFC_READY_LIST_WFCQUEUE or WFC_READY_LIST_MUTEX */
    int mode;                 /* EP_STRESS_LT, _ET or _ONESHOT */
    int fd_kinds;             /* EP_STRESS_PIPE | _EVENTFD | _SOCKETPAIR */
    int channels;
    int writers;
    int64_t tokens_per_writer;
    int storms;
    int64_t storm_ops;        /* per storm thread */
    int mods;                 /* storms also call wfc_ep_mod: weight 0..8 of that
                                 action against 1 for each of the others */
    int close_without_del;    /* storms also close registered fds without wfc_ep_del */
    int drain_timeout_ms;     /* give up this long without progress after the end */
    int maxevents;            /* wfc_ep_wait's maxevents, 1..64; 0: 64 */
    int phase_flips;          /* poller mode: before the first wait and about
                                 one in phase_flips after, the consumer asks
                                 for the other phase (pollers or inline);
                                 0: never */
    int adaptive;             /* poller mode: the core's adaptive rule on,
                                 its time constants divided by this (1: as
                                 shipped; 1000: a trial every few ms) */
    uint64_t seed;
};

struct ep_stress_result {
    int64_t written;          /* tokens written */
    int64_t read;             /* tokens read by the consumer after an event */
    int64_t discarded;        /* tokens unread when their fd was closed */
    int64_t lost;             /* written - read - discarded at the end */
    int64_t events;           /* events returned by wfc_ep_wait */
    int64_t batches;          /* wfc_ep_wait calls that returned events */
    int64_t waits;            /* wfc_ep_wait calls */
    int64_t stale;            /* events for a channel's previous registration */
    int64_t spurious;
    int64_t after_removal;
    int64_t after_reuse;
    int64_t duplicates;
    int64_t wrong_fd;
    int64_t bad_events;
    int64_t errors;
    int64_t writer_stuck;
    int64_t adds, dels, mods, reopens, closes_without_del, user_rearms;
    int64_t full;             /* writes refused with EAGAIN (channel full) */
    int64_t spurious_allowed; /* 1 when the mode/mods make spurious events legitimate */
    /* wfc_ep_get_stats() just before destroy */
    int64_t st_pollers, st_harvested, st_harvested_inline, st_enqueued, st_enqueued_found_empty;
    int64_t st_coalesced, st_stale, st_wakeups, st_sleeps, st_splices, st_delivered;
    int64_t st_rearms, st_reaped, st_registered, st_phase_switches;
    int64_t phase_requests;          /* phase_flips: switches asked for */
    int64_t phase_requests_in_storm; /* of them, asked while workers ran */
    int64_t violations;       /* EP_STRESS_V_* bits */
    double seconds;
};

struct ep_chan {
    pthread_mutex_t lock;
    int kind;                 /* EP_STRESS_PIPE / _EVENTFD / _SOCKETPAIR */
    int rfd, wfd;             /* rfd is the registered one; equal for eventfd */
    int64_t reg;              /* current registration id, -1: none */
    uint32_t mask;
    int64_t written, read, discarded;
};

struct ep_reg {
    int fd;                   /* written before wfc_ep_add, published by the core */
    int chan;
    _Atomic int64_t add_epoch;     /* 0 until wfc_ep_add returned */
    _Atomic int64_t removed_epoch; /* 0 until wfc_ep_del returned */
    int64_t batch;            /* consumer only: last batch it appeared in */
};

struct ep_stress_state;

struct ep_worker {
    struct ep_stress_state *s;
    pthread_t tid;
    int id;
    int64_t errors, written, full, stuck;
    int64_t adds, dels, mods, reopens, closes_without_del, discarded;
};

struct ep_stress_state {
    const struct ep_stress_config *cfg;
    wfc_ep *ep;
    struct ep_chan *chans;
    struct ep_reg *regs;
    int64_t max_regs;
    _Atomic int64_t next_reg;
    _Atomic int64_t epoch;
    _Atomic int64_t *fd_epoch;     /* fd -> epoch of its last registration */
    atomic_int ready, go, active, abort_;
    uint32_t base_mask;
    int nkinds, kinds[3];
};

/* ------------------------------------------------------------- channels */

static int ep_chan_open(struct ep_chan *c, int kind)
{
    int fds[2];

    c->kind = kind;
    switch (kind) {
    case EP_STRESS_EVENTFD:
        fds[0] = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
        if (fds[0] < 0)
            return -errno;
        c->rfd = c->wfd = fds[0];
        return 0;
    case EP_STRESS_SOCKETPAIR:
        if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, fds) < 0)
            return -errno;
        break;
    default:
        if (pipe2(fds, O_NONBLOCK | O_CLOEXEC) < 0)
            return -errno;
        break;
    }
    c->rfd = fds[0];
    c->wfd = fds[1];
    return 0;
}

static void ep_chan_close(struct ep_chan *c)
{
    if (c->wfd >= 0 && c->wfd != c->rfd)
        close(c->wfd);
    if (c->rfd >= 0)
        close(c->rfd);
    c->rfd = c->wfd = -1;
}

/* Read everything there is; returns the token count or -errno. */
static int64_t ep_chan_drain(struct ep_chan *c)
{
    int64_t total = 0;

    if (c->kind == EP_STRESS_EVENTFD) {
        uint64_t v;
        ssize_t r = read(c->rfd, &v, sizeof(v));
        if (r == (ssize_t)sizeof(v))
            return (int64_t)v;
        return r < 0 && errno != EAGAIN ? -errno : 0;
    }
    for (;;) {
        char buf[4096];
        ssize_t r = read(c->rfd, buf, sizeof(buf));
        if (r > 0) {
            total += r;
            continue;
        }
        if (r < 0 && errno != EAGAIN)
            return -errno;
        return total;
    }
}

/* 1 when a token was written, 0 when the channel is full, -errno. */
static int ep_chan_write(struct ep_chan *c)
{
    ssize_t r;

    if (c->kind == EP_STRESS_EVENTFD) {
        uint64_t one = 1;
        r = write(c->wfd, &one, sizeof(one));
    } else {
        r = write(c->wfd, "t", 1);
    }
    if (r > 0)
        return 1;
    return errno == EAGAIN ? 0 : -errno;
}

/* Channel lock held.  New registration of c->rfd. */
static int ep_chan_register(struct ep_stress_state *s, struct ep_chan *c, int ci)
{
    int64_t id = atomic_fetch_add_explicit(&s->next_reg, 1, memory_order_relaxed);
    struct ep_reg *r;
    int64_t e;
    int rc;

    if (id >= s->max_regs)
        return -ENOSPC;
    r = &s->regs[id];
    r->fd = c->rfd;
    r->chan = ci;
    rc = wfc_ep_add(s->ep, c->rfd, c->mask, (uint64_t)id);
    if (rc < 0)
        return rc;
    /* acq_rel: the consumer that reads an epoch >= e (acquire) knows that
     * this add returned before its wait began. */
    e = atomic_fetch_add_explicit(&s->epoch, 1, memory_order_acq_rel) + 1;
    atomic_store_explicit(&r->add_epoch, e, memory_order_release);
    if (c->rfd < EP_STRESS_FD_TABLE)
        atomic_store_explicit(&s->fd_epoch[c->rfd], e, memory_order_release);
    c->reg = id;
    return 0;
}

/* Channel lock held. */
static int ep_chan_unregister(struct ep_stress_state *s, struct ep_chan *c)
{
    int rc = wfc_ep_del(s->ep, c->rfd);
    int64_t e = atomic_fetch_add_explicit(&s->epoch, 1, memory_order_acq_rel) + 1;

    if (c->reg < 0)
        return rc < 0 ? rc : -ENOENT; /* its add had failed */
    atomic_store_explicit(&s->regs[c->reg].removed_epoch, e, memory_order_release);
    c->reg = -1;
    return rc;
}

/* -------------------------------------------------------------- threads */

static void ep_stress_start_gate(struct ep_stress_state *s)
{
    atomic_fetch_add_explicit(&s->ready, 1, memory_order_relaxed);
    while (atomic_load_explicit(&s->go, memory_order_acquire) == 0)
        sched_yield();
}

static void *ep_stress_writer(void *arg)
{
    struct ep_worker *w = arg;
    struct ep_stress_state *s = w->s;
    const struct ep_stress_config *cfg = s->cfg;
    uint64_t rng = stress_splitmix(cfg->seed ^ (uint64_t)(w->id + 1) * 0x1000193ULL) | 1;
    double last_progress;
    int64_t i = 0;

    ep_stress_start_gate(s);
    last_progress = stress_now();
    while (i < cfg->tokens_per_writer && !atomic_load_explicit(&s->abort_, memory_order_relaxed)) {
        uint64_t r = stress_rand(&rng);
        struct ep_chan *c = &s->chans[r % (uint64_t)cfg->channels];
        int rc;

        pthread_mutex_lock(&c->lock);
        rc = ep_chan_write(c);
        if (rc > 0)
            c->written++;
        pthread_mutex_unlock(&c->lock);
        if (rc > 0) {
            i++;
            w->written++;
            if ((i & 255) == 0)
                last_progress = stress_now();
        } else if (rc == 0) {
            w->full++;
            sched_yield();
            if (stress_now() - last_progress > 10.0) {
                w->stuck = 1; /* every channel full for 10 s: no consumer */
                break;
            }
        } else {
            w->errors++;
        }
        if (((r >> 40) & 63) == 0)
            sched_yield();
    }
    atomic_fetch_sub_explicit(&s->active, 1, memory_order_release);
    return NULL;
}

static int ep_stress_pick_kind(struct ep_stress_state *s, uint64_t r)
{
    return s->kinds[r % (uint64_t)s->nkinds];
}

/* Channel lock held, c->rfd unregistered: count what is unread as
 * discarded, close, open a new fd of `kind` (a pipe if that fails).
 * 0, or -errno when no fd could be opened. */
static int ep_chan_reopen(struct ep_stress_state *s, struct ep_chan *c, int kind,
                          struct ep_worker *w)
{
    int64_t got = ep_chan_drain(c);

    (void)s;
    if (got < 0)
        w->errors++;
    else
        c->discarded += got;
    ep_chan_close(c);
    if (ep_chan_open(c, kind) == 0)
        return 0;
    w->errors++;
    return ep_chan_open(c, EP_STRESS_PIPE);
}

/*
 * The same for an fd that is STILL REGISTERED (closing it without
 * wfc_ep_del is the user's mistake that the core must survive).  Kept as a
 * separate, never-inlined function so that it shows in stack traces: the
 * core's deferred re-arm may later issue EPOLL_CTL_MOD on this fd number
 * while it is closed or reused, which TSAN reports as a race on the fd
 * (see cython/selftest/tsan.supp).
 */
static __attribute__((noinline)) int
ep_chan_reopen_without_del(struct ep_stress_state *s, struct ep_chan *c, int kind,
                           struct ep_worker *w)
{
    return ep_chan_reopen(s, c, kind, w);
}

static void *ep_stress_storm(void *arg)
{
    struct ep_worker *w = arg;
    struct ep_stress_state *s = w->s;
    const struct ep_stress_config *cfg = s->cfg;
    uint64_t rng = stress_splitmix(cfg->seed ^ (uint64_t)(w->id + 1) * 0x51ED27ULL) | 1;
    int actions[12], nactions = 0;
    int64_t op;

    actions[nactions++] = 0; /* del + re-add */
    actions[nactions++] = 1; /* del + close + reopen + add */
    for (int k = 0; k < cfg->mods; k++)
        actions[nactions++] = 2;
    if (cfg->close_without_del)
        actions[nactions++] = 3;

    ep_stress_start_gate(s);
    for (op = 0; op < cfg->storm_ops && !atomic_load_explicit(&s->abort_, memory_order_relaxed); op++) {
        uint64_t r = stress_rand(&rng);
        int ci = (int)(r % (uint64_t)cfg->channels);
        struct ep_chan *c = &s->chans[ci];
        int action = actions[(r >> 20) % (uint64_t)nactions];
        int rc;

        pthread_mutex_lock(&c->lock);
        switch (action) {
        case 0:
            if (ep_chan_unregister(s, c) < 0)
                w->errors++;
            w->dels++;
            if (ep_chan_register(s, c, ci) < 0)
                w->errors++;
            w->adds++;
            break;
        case 1:
            if (ep_chan_unregister(s, c) < 0)
                w->errors++;
            w->dels++;
            rc = ep_chan_reopen(s, c, ep_stress_pick_kind(s, r >> 32), w);
            goto reopened;
        case 3:
            w->closes_without_del++;
            c->reg = -1; /* the core must retire it by itself */
            rc = ep_chan_reopen_without_del(s, c, ep_stress_pick_kind(s, r >> 32), w);
        reopened:
            if (rc < 0) {
                atomic_store_explicit(&s->abort_, 1, memory_order_relaxed);
                pthread_mutex_unlock(&c->lock);
                goto out;
            }
            w->reopens++;
            if (ep_chan_register(s, c, ci) < 0)
                w->errors++;
            w->adds++;
            break;
        case 2:
            c->mask ^= EPOLLRDHUP;
            if (wfc_ep_mod(s->ep, c->rfd, c->mask, (uint64_t)c->reg) < 0)
                w->errors++;
            w->mods++;
            break;
        }
        pthread_mutex_unlock(&c->lock);
        if (((r >> 48) & 15) == 0)
            sched_yield();
    }
out:
    atomic_fetch_sub_explicit(&s->active, 1, memory_order_release);
    return NULL;
}

/* ------------------------------------------------------------- consumer */

static void ep_stress_handle(struct ep_stress_state *s, const wfc_event *ev, int64_t snap,
                             int64_t batch, struct ep_stress_result *res)
{
    uint64_t id = ev->data;
    struct ep_reg *r;
    struct ep_chan *c;
    int64_t e, ae, got;

    res->events++;
    if (id >= (uint64_t)atomic_load_explicit(&s->next_reg, memory_order_relaxed)
        || id >= (uint64_t)s->max_regs) {
        res->bad_events++;
        return;
    }
    r = &s->regs[id];
    if (ev->fd != r->fd)
        res->wrong_fd++;
    if (ev->events & ~(uint32_t)EP_STRESS_ALLOWED)
        res->bad_events++;
    if (r->batch == batch)
        res->duplicates++;
    r->batch = batch;

    e = atomic_load_explicit(&r->removed_epoch, memory_order_acquire);
    ae = atomic_load_explicit(&r->add_epoch, memory_order_acquire);
    if (e != 0 && e <= snap) {
        res->after_removal++;
    } else if (ae != 0 && r->fd >= 0 && r->fd < EP_STRESS_FD_TABLE) {
        /* ae == 0: the add has not even returned, so no later add on the
         * same fd number can have happened. */
        int64_t fe = atomic_load_explicit(&s->fd_epoch[r->fd], memory_order_acquire);
        if (fe > ae && fe <= snap)
            res->after_reuse++;
    }

    c = &s->chans[r->chan];
    pthread_mutex_lock(&c->lock);
    if (c->reg != (int64_t)id) {
        res->stale++;
        pthread_mutex_unlock(&c->lock);
        return;
    }
    got = ep_chan_drain(c);
    if (got < 0) {
        res->errors++;
        got = 0;
    }
    c->read += got;
    res->read += got;
    if (got == 0)
        res->spurious++;
    if (s->cfg->mode == EP_STRESS_ONESHOT) {
        if (wfc_ep_mod(s->ep, c->rfd, c->mask, id) < 0)
            res->errors++;
        res->user_rearms++;
    }
    pthread_mutex_unlock(&c->lock);
}

static int64_t ep_stress_unaccounted(struct ep_stress_state *s)
{
    int64_t left = 0;
    for (int i = 0; i < s->cfg->channels; i++) {
        struct ep_chan *c = &s->chans[i];
        pthread_mutex_lock(&c->lock);
        left += c->written - c->read - c->discarded;
        pthread_mutex_unlock(&c->lock);
    }
    return left;
}

static void ep_stress_consume(struct ep_stress_state *s, struct ep_stress_result *res)
{
    wfc_event evs[EP_STRESS_BATCH];
    int64_t batch = 0;
    double end_since = 0, last_progress = 0;
    uint64_t rng = s->cfg->seed ^ 0x9e3779b97f4a7c15ull;

    for (;;) {
        /* At the first wait (the storms run: the workers started before
         * it), then before about one wait in phase_flips, ask for the
         * other phase: every request is a switch, so the run's count of
         * them does not hang on how many waits a slow machine makes in
         * 6,000 tokens (a random phase, half of them no switch, gave 5..7
         * switches in a run there and 30..50 here).  wfc_ep_phase() is
         * this thread's own last switch: only the consumer switches. */
        if (s->cfg->phase_flips > 0 && s->cfg->pollers > 0
            && (res->waits == 0
                || stress_splitmix(rng++) % (uint64_t)s->cfg->phase_flips == 0)) {
            int other = wfc_ep_phase(s->ep) == WFC_PHASE_POLLERS ? WFC_PHASE_INLINE
                                                                 : WFC_PHASE_POLLERS;
            if (wfc_ep_request_phase(s->ep, other) == 0) {
                res->phase_requests++;
                if (atomic_load_explicit(&s->active, memory_order_relaxed) > 0)
                    res->phase_requests_in_storm++;
            } else {
                res->errors++;
            }
        }
        /* Acquire: every add/del whose epoch is <= snap returned before
         * this wait began. */
        int64_t snap = atomic_load_explicit(&s->epoch, memory_order_acquire);
        int64_t read_before = res->read;
        /* Every other wait asks for every ready event (select()'s kind),
         * so the inline drain runs against the same add/del/close storm. */
        int n = wfc_ep_wait_flags(s->ep, evs, s->cfg->maxevents ? s->cfg->maxevents : EP_STRESS_BATCH,
                                  20, (res->waits & 1) ? WFC_WAIT_EVERY_READY : 0);

        res->waits++;
        if (n < 0) {
            if (n == -EINTR)
                continue;
            res->errors++;
            atomic_store_explicit(&s->abort_, 1, memory_order_relaxed);
            break;
        }
        if (n > 0) {
            batch++;
            res->batches++;
            for (int i = 0; i < n; i++)
                ep_stress_handle(s, &evs[i], snap, batch, res);
        }
        if (atomic_load_explicit(&s->active, memory_order_acquire) == 0) {
            double now = stress_now();
            if (end_since == 0)
                end_since = last_progress = now;
            if (res->read != read_before)
                last_progress = now;
            if (n == 0 || res->read == read_before) {
                if (ep_stress_unaccounted(s) == 0)
                    break;
                if ((now - last_progress) * 1000.0 > s->cfg->drain_timeout_ms)
                    break;
            }
        }
    }
}

EP_STRESS_API int64_t ep_stress_check(const struct ep_stress_config *cfg,
                                      struct ep_stress_result *res)
{
    int64_t v = 0;

    res->spurious_allowed = cfg->mode == EP_STRESS_ET || cfg->mods;
    if (res->lost)
        v |= EP_STRESS_V_LOST;
    if (res->after_removal)
        v |= EP_STRESS_V_AFTER_REMOVAL;
    if (res->after_reuse)
        v |= EP_STRESS_V_AFTER_REUSE;
    if (res->duplicates)
        v |= EP_STRESS_V_DUPLICATE;
    if (res->wrong_fd)
        v |= EP_STRESS_V_WRONG_FD;
    if (res->bad_events)
        v |= EP_STRESS_V_BAD_EVENT;
    if (res->spurious && !res->spurious_allowed)
        v |= EP_STRESS_V_SPURIOUS;
    if (res->st_delivered != res->events)
        v |= EP_STRESS_V_STATS;
    if (res->errors)
        v |= EP_STRESS_V_ERRORS;
    if (res->writer_stuck)
        v |= EP_STRESS_V_WRITER_STUCK;
    res->violations = v;
    return v;
}

/*
 * Run one configuration.  0 when it ran (res->violations is the verdict),
 * a negative errno when it could not be set up.
 */
EP_STRESS_API int ep_stress_run_config(const struct ep_stress_config *cfg,
                                       struct ep_stress_result *res)
{
    struct ep_stress_state *s;
    struct ep_worker *workers = NULL;
    int nworkers, created = 0, err = 0, i;
    wfc_ep_stats st;
    double t0;

    memset(res, 0, sizeof(*res));
    if (cfg->channels < 1 || cfg->channels > EP_STRESS_MAX_CHANNELS || cfg->writers < 0
        || cfg->storms < 0 || cfg->writers + cfg->storms > 256 || cfg->tokens_per_writer < 0
        || cfg->storm_ops < 0 || cfg->storm_ops > (INT64_C(1) << 24) || cfg->pollers < 0
        || cfg->mode < EP_STRESS_LT || cfg->mode > EP_STRESS_ONESHOT
        || (cfg->fd_kinds & 7) == 0 || cfg->drain_timeout_ms < 0
        || cfg->mods < 0 || cfg->mods > 8
        || cfg->maxevents < 0 || cfg->maxevents > EP_STRESS_BATCH)
        return -EINVAL;

    s = calloc(1, sizeof(*s));
    if (s == NULL)
        return -ENOMEM;
    s->cfg = cfg;
    s->max_regs = cfg->channels + (int64_t)cfg->storms * cfg->storm_ops + 1;
    s->chans = calloc((size_t)cfg->channels, sizeof(*s->chans));
    s->regs = calloc((size_t)s->max_regs, sizeof(*s->regs));
    s->fd_epoch = calloc(EP_STRESS_FD_TABLE, sizeof(*s->fd_epoch));
    nworkers = cfg->writers + cfg->storms;
    workers = calloc((size_t)(nworkers > 0 ? nworkers : 1), sizeof(*workers));
    if (!s->chans || !s->regs || !s->fd_epoch || !workers) {
        err = -ENOMEM;
        goto out_free;
    }
    for (int64_t j = 0; j < s->max_regs; j++) {
        s->regs[j].fd = -1;
        s->regs[j].batch = -1;
    }
    atomic_init(&s->next_reg, 0);
    atomic_init(&s->epoch, 0);
    atomic_init(&s->ready, 0);
    atomic_init(&s->go, 0);
    atomic_init(&s->active, nworkers);
    atomic_init(&s->abort_, 0);
    if (cfg->fd_kinds & EP_STRESS_PIPE)
        s->kinds[s->nkinds++] = EP_STRESS_PIPE;
    if (cfg->fd_kinds & EP_STRESS_EVENTFD)
        s->kinds[s->nkinds++] = EP_STRESS_EVENTFD;
    if (cfg->fd_kinds & EP_STRESS_SOCKETPAIR)
        s->kinds[s->nkinds++] = EP_STRESS_SOCKETPAIR;
    s->base_mask = EPOLLIN;
    if (cfg->mode == EP_STRESS_ET)
        s->base_mask |= EPOLLET;
    else if (cfg->mode == EP_STRESS_ONESHOT)
        s->base_mask |= EPOLLONESHOT;

    err = wfc_ep_create(&s->ep, cfg->pollers, -1, cfg->ready_list_kind);
    if (err < 0)
        goto out_free;
    if (cfg->adaptive) {
        wfc_ep_set_adaptive_timescale(s->ep, cfg->adaptive);
        wfc_ep_set_adaptive(s->ep, 1);
    }

    for (i = 0; i < cfg->channels; i++) {
        struct ep_chan *c = &s->chans[i];
        pthread_mutex_init(&c->lock, NULL);
        c->rfd = c->wfd = -1;
        c->reg = -1;
        c->mask = s->base_mask;
    }
    for (i = 0; i < cfg->channels; i++) {
        struct ep_chan *c = &s->chans[i];
        err = ep_chan_open(c, s->kinds[i % s->nkinds]);
        if (err == 0)
            err = ep_chan_register(s, c, i);
        if (err < 0)
            goto out_ep;
    }

    for (i = 0; i < nworkers; i++) {
        struct ep_worker *w = &workers[i];
        w->s = s;
        w->id = i;
        err = pthread_create(&w->tid, NULL, i < cfg->writers ? ep_stress_writer : ep_stress_storm, w);
        if (err != 0) {
            err = -err;
            atomic_store_explicit(&s->abort_, 1, memory_order_relaxed);
            atomic_store_explicit(&s->go, 1, memory_order_release);
            for (int k = 0; k < created; k++)
                pthread_join(workers[k].tid, NULL);
            goto out_ep;
        }
        created++;
    }
    while (atomic_load_explicit(&s->ready, memory_order_relaxed) < nworkers)
        sched_yield();
    t0 = stress_now();
    atomic_store_explicit(&s->go, 1, memory_order_release);

    ep_stress_consume(s, res);
    res->seconds = stress_now() - t0;
    /* A consumer that gave up (wait error) must not leave writers blocked. */
    atomic_store_explicit(&s->abort_, 1, memory_order_relaxed);
    for (i = 0; i < nworkers; i++) {
        struct ep_worker *w = &workers[i];
        pthread_join(w->tid, NULL);
        res->errors += w->errors;
        res->written += w->written;
        res->full += w->full;
        res->writer_stuck += w->stuck;
        res->adds += w->adds;
        res->dels += w->dels;
        res->mods += w->mods;
        res->reopens += w->reopens;
        res->closes_without_del += w->closes_without_del;
    }
    res->adds += cfg->channels;
    for (i = 0; i < cfg->channels; i++) {
        res->discarded += s->chans[i].discarded;
        res->lost += s->chans[i].written - s->chans[i].read - s->chans[i].discarded;
    }

    wfc_ep_get_stats(s->ep, &st);
    res->st_pollers = (int64_t)st.pollers;
    res->st_harvested = (int64_t)st.harvested;
    res->st_harvested_inline = (int64_t)st.harvested_inline;
    res->st_enqueued = (int64_t)st.enqueued;
    res->st_enqueued_found_empty = (int64_t)st.enqueued_found_empty;
    res->st_coalesced = (int64_t)st.coalesced;
    res->st_stale = (int64_t)st.stale;
    res->st_wakeups = (int64_t)st.wakeups;
    res->st_sleeps = (int64_t)st.sleeps;
    res->st_splices = (int64_t)st.splices;
    res->st_delivered = (int64_t)st.delivered;
    res->st_rearms = (int64_t)st.rearms;
    res->st_reaped = (int64_t)st.reaped;
    res->st_registered = (int64_t)st.registered;
    res->st_phase_switches = (int64_t)st.phase_switches;
    ep_stress_check(cfg, res);
    err = 0;

out_ep:
    wfc_ep_destroy(s->ep, 0);
    for (i = 0; i < cfg->channels; i++) {
        ep_chan_close(&s->chans[i]);
        pthread_mutex_destroy(&s->chans[i].lock);
    }
out_free:
    free(workers);
    free((void *)s->fd_epoch);
    free(s->regs);
    free(s->chans);
    free(s);
    return err;
}

#ifdef EP_STRESS_MAIN

static const char *ep_stress_mode_name(int mode)
{
    return mode == EP_STRESS_ET ? "et" : mode == EP_STRESS_ONESHOT ? "oneshot" : "lt";
}

int main(int argc, char **argv)
{
    int channels = argc > 1 ? atoi(argv[1]) : 32;
    long tokens = argc > 2 ? atol(argv[2]) : 5000;
    long storm_ops = argc > 3 ? atol(argv[3]) : 1000;
    int rounds = argc > 4 ? atoi(argv[4]) : 1;
    int cwd = argc > 5 ? atoi(argv[5]) : 1;
    int only = argc > 6 ? atoi(argv[6]) : -1; /* run only this row of the table */
    int failed = 0, runs = 0;
    double secs = 0;

    if (channels < 1 || tokens < 0 || storm_ops < 0 || rounds < 1) {
        fprintf(stderr,
                "usage: %s [channels=32] [tokens_per_writer=5000] [storm_ops=1000] [rounds=1]"
                " [close_without_del=1] [only_config=-1]\n", argv[0]);
        return 2;
    }
    for (int round = 0; round < rounds; round++) {
        /* pollers, ready list, mode, mods, close_without_del, maxevents,
         * phase_flips, adaptive (time divisor) */
        const int table[][8] = {
            {2, WFC_READY_LIST_WFCQUEUE, EP_STRESS_LT, 0, 1, 64, 0, 0},
            {2, WFC_READY_LIST_WFCQUEUE, EP_STRESS_LT, 1, 1, 64, 0, 0},
            {0, WFC_READY_LIST_WFCQUEUE, EP_STRESS_LT, 0, 1, 64, 0, 0},
            {3, WFC_READY_LIST_WFCQUEUE, EP_STRESS_ET, 1, 1, 64, 0, 0},
            {2, WFC_READY_LIST_WFCQUEUE, EP_STRESS_ONESHOT, 0, 1, 64, 0, 0},
            {2, WFC_READY_LIST_MUTEX, EP_STRESS_LT, 1, 1, 64, 0, 0},
            {2, WFC_READY_LIST_WFCQUEUE, EP_STRESS_LT, 1, 0, 4, 0, 0},
            {2, WFC_READY_LIST_WFCQUEUE, EP_STRESS_LT, 1, 1, 64, 3, 0},
            {3, WFC_READY_LIST_WFCQUEUE, EP_STRESS_ET, 1, 1, 64, 3, 0},
            {2, WFC_READY_LIST_WFCQUEUE, EP_STRESS_ONESHOT, 1, 1, 16, 5, 0},
            {2, WFC_READY_LIST_WFCQUEUE, EP_STRESS_LT, 1, 1, 64, 0, 1000},
            {2, WFC_READY_LIST_WFCQUEUE, EP_STRESS_LT, 1, 1, 64, 0, 16},
        };
        for (int i = 0; i < (int)(sizeof(table) / sizeof(table[0])); i++) {
            if (only >= 0 && i != only)
                continue;
            struct ep_stress_config cfg = {
                .pollers = table[i][0],
                .ready_list_kind = table[i][1],
                .mode = table[i][2],
                .fd_kinds = EP_STRESS_PIPE | EP_STRESS_EVENTFD | EP_STRESS_SOCKETPAIR,
                .channels = channels,
                .writers = 2,
                .tokens_per_writer = tokens,
                .storms = 2,
                .storm_ops = storm_ops,
                .mods = table[i][3],
                .close_without_del = table[i][4] && cwd,
                .drain_timeout_ms = 2000,
                .maxevents = table[i][5],
                .phase_flips = table[i][6],
                .adaptive = table[i][7],
                .seed = stress_splitmix((uint64_t)round * 100 + (uint64_t)i),
            };
            struct ep_stress_result r;
            int rc = ep_stress_run_config(&cfg, &r);
            if (rc != 0) {
                fprintf(stderr, "ep_stress: configuration %d: error %d (%s)\n", i, rc, strerror(-rc));
                return 2;
            }
            printf("pollers=%d list=%s mode=%s mods=%d cwd=%d flips=%d: written=%lld read=%lld "
                   "discarded=%lld lost=%lld events=%lld batches=%lld stale=%lld spurious=%lld "
                   "after_removal=%lld after_reuse=%lld dup=%lld wrong_fd=%lld bad=%lld "
                   "errors=%lld adds=%lld dels=%lld mods=%lld reopens=%lld cwd=%lld "
                   "| core: harvested=%lld inline=%lld enqueued=%lld coalesced=%lld stale=%lld "
                   "wakeups=%lld sleeps=%lld splices=%lld rearms=%lld reaped=%lld registered=%lld "
                   "switches=%lld (asked %lld) "
                   "%.3fs %s (0x%llx)\n",
                   cfg.pollers, cfg.ready_list_kind == WFC_READY_LIST_MUTEX ? "mutex" : "wfcq",
                   ep_stress_mode_name(cfg.mode), cfg.mods, cfg.close_without_del, cfg.phase_flips,
                   (long long)r.written, (long long)r.read, (long long)r.discarded,
                   (long long)r.lost, (long long)r.events, (long long)r.batches,
                   (long long)r.stale, (long long)r.spurious, (long long)r.after_removal,
                   (long long)r.after_reuse, (long long)r.duplicates, (long long)r.wrong_fd,
                   (long long)r.bad_events, (long long)r.errors, (long long)r.adds,
                   (long long)r.dels, (long long)r.mods, (long long)r.reopens,
                   (long long)r.closes_without_del, (long long)r.st_harvested,
                   (long long)r.st_harvested_inline, (long long)r.st_enqueued,
                   (long long)r.st_coalesced, (long long)r.st_stale, (long long)r.st_wakeups,
                   (long long)r.st_sleeps, (long long)r.st_splices, (long long)r.st_rearms,
                   (long long)r.st_reaped, (long long)r.st_registered,
                   (long long)r.st_phase_switches, (long long)r.phase_requests, r.seconds,
                   r.violations ? "FAIL" : "ok", (unsigned long long)r.violations);
            fflush(stdout);
            runs++;
            secs += r.seconds;
            if (r.violations)
                failed++;
        }
    }
    printf("ep_stress: %d runs, %.3fs, %d failed: %s\n", runs, secs, failed, failed ? "FAIL" : "PASS");
    return failed ? 1 : 0;
}

#endif /* EP_STRESS_MAIN */
