/*
 * wfcq_stress.c - stress harness for wfcqueue.h.
 *
 * K producer threads each enqueue M nodes (payload: producer id and
 * sequence number, written by the producer just before its enqueue) into a
 * shared queue while ONE consumer (the calling thread) takes them out,
 * mixing, under a cheap PRNG:
 *   - wfcq_dequeue() batches from the shared queue;
 *   - wfcq_splice() of the shared queue into a private queue, which is then
 *     drained either completely with wfcq_for_each_safe() or partially with
 *     wfcq_dequeue() (so that later splices also append to a non-empty
 *     destination);
 *   - read-only walks (wfcq_for_each) over the live shared queue;
 *   - optionally ("feeders"), F more threads enqueue into a second queue
 *     that the consumer splices INTO the shared queue while the K producers
 *     keep enqueueing into it: splice-into concurrent with enqueue.
 *
 * Checked:
 *   - every node comes out exactly once (duplicates / lost), and with the
 *     payload its producer wrote (bad_nodes: a pointer outside the node
 *     array, or a payload that was not published with the node);
 *   - per-producer FIFO order: sequence numbers strictly increase per
 *     producer, both for nodes taken out and for nodes seen by a walk;
 *   - wfcq_empty() never reports "not empty" for a queue that the consumer
 *     then finds empty (only the consumer removes nodes, so "not empty" is
 *     stable from its point of view);
 *   - the splice return value says DEST_EMPTY exactly when the private
 *     destination was empty;
 *   - the empty/non-empty transition accounting of every queue:
 *       shared:  enqueues that found it empty + feed splices into it that
 *                found it empty
 *                == dequeues that took the last node (was_last)
 *                   + splices out of it that moved nodes;
 *       feed:    enqueues that found it empty == splices out that moved nodes;
 *       private: splices into it that found it empty
 *                == dequeues that took its last node + full drains.
 *     (Every queue ends empty, so each empty->non-empty transition is
 *     matched by exactly one non-empty->empty transition.)
 *
 * No main() unless WFCQ_STRESS_MAIN is defined; the Cython module
 * wfcloop._selftest includes this file, the Makefile's tsan/asan targets
 * compile it standalone.  Functions are static (WFCQ_STRESS_API) so that
 * including it defines no exported symbol.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "wfcqueue.h"
#include "selftest/stress_common.h" /* cython/wfcqueue.h: compile with -Icython */

#ifndef WFCQ_STRESS_API
#define WFCQ_STRESS_API static __attribute__((unused))
#endif

#define WFCQ_STRESS_MAX_THREADS 1024
#define WFCQ_STRESS_MAX_NODES (INT64_C(1) << 28)
/* Rounds without progress, after every producer finished, before giving up
 * (a queue that claims to be non-empty but yields nothing). */
#define WFCQ_STRESS_STUCK_ROUNDS (1L << 22)

struct wfcq_stress_config {
    int producers;              /* threads enqueueing into the shared queue */
    int feeders;                /* threads enqueueing into the feed queue, which
                                   the consumer splices into the shared queue */
    int64_t nodes_per_producer; /* per producer and per feeder */
    int splice_every;           /* shared -> private splices: >0 every Nth round,
                                   0 never, <0 with probability 1/-N per round */
    int feed_every;             /* feed -> shared splices, same encoding (0 is
                                   taken as 1 when there are feeders) */
    int yield_shift;            /* producers sched_yield() after an enqueue with
                                   probability 2^-yield_shift; 0: never */
    uint64_t seed;
};

/* Violation bits of wfcq_stress_result.violations. */
enum {
    WFCQ_STRESS_V_LOST = 1 << 0,
    WFCQ_STRESS_V_DUPLICATE = 1 << 1,
    WFCQ_STRESS_V_ORDER = 1 << 2,
    WFCQ_STRESS_V_BAD_NODE = 1 << 3,
    WFCQ_STRESS_V_EMPTY = 1 << 4,
    WFCQ_STRESS_V_SPLICE_RET = 1 << 5,
    WFCQ_STRESS_V_SHARED_IDENTITY = 1 << 6,
    WFCQ_STRESS_V_FEED_IDENTITY = 1 << 7,
    WFCQ_STRESS_V_PRIVATE_IDENTITY = 1 << 8,
    WFCQ_STRESS_V_COUNT = 1 << 9,
    WFCQ_STRESS_V_STUCK = 1 << 10
};

struct wfcq_stress_result {
    int64_t total;                 /* nodes that must come out: (K + F) * M */
    int64_t enqueued;              /* enqueue calls, all queues */
    int64_t enq_found_empty;       /* enqueues into shared that returned true */
    int64_t dequeued;              /* nodes taken from shared by wfcq_dequeue */
    int64_t took_last;             /* ... of which with was_last */
    int64_t found_empty;           /* dequeue batches / splices finding shared empty */
    int64_t splices;               /* shared -> private splice calls */
    int64_t spliced_nonempty;      /* ... that moved nodes (!= SRC_EMPTY) */
    int64_t spliced_dest_empty;    /* ... of which returned DEST_EMPTY */
    int64_t spliced_out;           /* nodes taken from the private queue */
    int64_t private_took_last;     /* private dequeues with was_last */
    int64_t private_resets;        /* full for_each_safe drains (+ wfcq_init) */
    int64_t feed_enqueued;         /* enqueue calls into the feed queue */
    int64_t feed_enq_found_empty;  /* ... that returned true */
    int64_t feed_splices;          /* feed -> shared splice calls */
    int64_t feed_spliced_nonempty; /* ... that moved nodes */
    int64_t feed_dest_empty;       /* ... of which found shared empty */
    int64_t peeked;                /* nodes visited by wfcq_for_each walks */
    int64_t rounds;                /* consumer rounds */
    int64_t duplicates;
    int64_t lost;
    int64_t order_violations;
    int64_t bad_nodes;
    int64_t empty_violations;
    int64_t splice_ret_violations;
    int64_t stuck;                 /* 1 if the consumer gave up waiting */
    int64_t violations;            /* WFCQ_STRESS_V_* bits, 0 when all is well */
    double seconds;                /* wall time from start gate to last node */
};

struct wfcq_stress_node {
    struct wfcq_node node; /* first member: node pointer == container pointer */
    int32_t producer;
    int64_t seq;
};

struct wfcq_stress_state;

struct wfcq_stress_thread {
    struct wfcq_stress_state *s;
    pthread_t tid;
    int id;
    struct wfcq_head *head;
    struct wfcq_tail *tail;
    int64_t found_empty; /* enqueues that returned true */
};

struct wfcq_stress_state {
    const struct wfcq_stress_config *cfg;
    int nthreads;
    int64_t total;
    struct wfcq_stress_node *nodes;
    uint8_t *seen;
    int64_t *last_seq;   /* per producer, last sequence number taken out */
    int64_t *peek_seq;   /* scratch for walks */
    atomic_int ready;    /* producers at the start gate */
    atomic_int go;       /* 1: start, 2: abort (thread creation failed) */
    atomic_int done;     /* producers finished */

    struct wfcq_head shared_head;
    struct wfcq_tail shared_tail;
    struct wfcq_head feed_head;
    struct wfcq_tail feed_tail;
    struct wfcq_head priv_head;
    struct wfcq_tail priv_tail;
};

static void *wfcq_stress_producer(void *arg)
{
    struct wfcq_stress_thread *t = arg;
    struct wfcq_stress_state *s = t->s;
    const int64_t m = s->cfg->nodes_per_producer;
    const uint64_t yield_mask =
        s->cfg->yield_shift > 0 ? (UINT64_C(1) << s->cfg->yield_shift) - 1 : 0;
    uint64_t rng = stress_splitmix(s->cfg->seed ^ (uint64_t)(t->id + 1) * 0x100000001ULL) | 1;
    int64_t i;
    int go;

    atomic_fetch_add_explicit(&s->ready, 1, memory_order_relaxed);
    while ((go = atomic_load_explicit(&s->go, memory_order_acquire)) == 0)
        sched_yield();
    if (go != 1)
        return NULL;

    for (i = 0; i < m; i++) {
        struct wfcq_stress_node *n = &s->nodes[(int64_t)t->id * m + i];
        /* Plain writes: wfcq_enqueue must publish them to the consumer. */
        n->producer = t->id;
        n->seq = i;
        if (wfcq_enqueue(t->head, t->tail, &n->node))
            t->found_empty++;
        if (yield_mask) {
            uint64_t r = stress_rand(&rng);
            if ((r & yield_mask) == 0) {
                sched_yield();
            } else if (((r >> 32) & 1023) == 0) {
                /* a short burst of busy work: shifts the interleaving */
                unsigned k = (unsigned)(r >> 48) & 255;
                while (k--)
                    wfcq_cpu_relax();
            }
        }
    }
    /* Release: the consumer that sees done == nthreads sees every enqueue. */
    atomic_fetch_add_explicit(&s->done, 1, memory_order_release);
    return NULL;
}

/* Account for one node taken out of the queues by the consumer. */
static void wfcq_stress_take(struct wfcq_stress_state *s, struct wfcq_node *wn,
                             struct wfcq_stress_result *res)
{
    uintptr_t base = (uintptr_t)s->nodes;
    uintptr_t p = (uintptr_t)wn;
    const int64_t m = s->cfg->nodes_per_producer;
    struct wfcq_stress_node *n;
    int64_t idx;

    if (p < base || p >= base + (uintptr_t)s->total * sizeof(*n)
        || (p - base) % sizeof(*n) != 0) {
        res->bad_nodes++;
        return;
    }
    n = (struct wfcq_stress_node *)wn;
    idx = n - s->nodes;
    if (s->seen[idx]) {
        res->duplicates++;
        return;
    }
    s->seen[idx] = 1;
    if (n->producer < 0 || n->producer >= s->nthreads
        || (int64_t)n->producer * m + n->seq != idx) {
        res->bad_nodes++; /* payload not published with the node */
        return;
    }
    if (n->seq <= s->last_seq[n->producer])
        res->order_violations++;
    else
        s->last_seq[n->producer] = n->seq;
}

/* Read-only walk over the live shared queue: per-producer order must hold
 * among the nodes still queued, and they must all be newer than what was
 * already taken out. */
static void wfcq_stress_peek(struct wfcq_stress_state *s, struct wfcq_stress_result *res,
                             int limit)
{
    struct wfcq_node *wn;
    const int64_t m = s->cfg->nodes_per_producer;
    uintptr_t base = (uintptr_t)s->nodes;
    int count = 0;

    memcpy(s->peek_seq, s->last_seq, sizeof(int64_t) * (size_t)s->nthreads);
    wfcq_for_each(&s->shared_head, &s->shared_tail, wn) {
        uintptr_t p = (uintptr_t)wn;
        struct wfcq_stress_node *n = (struct wfcq_stress_node *)wn;
        if (p < base || p >= base + (uintptr_t)s->total * sizeof(*n)
            || (p - base) % sizeof(*n) != 0
            || n->producer < 0 || n->producer >= s->nthreads
            || (int64_t)n->producer * m + n->seq != n - s->nodes) {
            res->bad_nodes++;
            break;
        }
        if (n->seq <= s->peek_seq[n->producer])
            res->order_violations++;
        s->peek_seq[n->producer] = n->seq;
        res->peeked++;
        if (++count >= limit)
            break;
    }
}

static bool wfcq_stress_decide(int every, int64_t round, uint64_t r)
{
    if (every > 0)
        return round % every == 0;
    if (every < 0)
        return r % (uint64_t)(-(int64_t)every) == 0;
    return false;
}

/* Fill res->violations from the counts; returns it. */
WFCQ_STRESS_API int64_t wfcq_stress_check(struct wfcq_stress_result *res)
{
    int64_t v = 0;

    if (res->lost)
        v |= WFCQ_STRESS_V_LOST;
    if (res->duplicates)
        v |= WFCQ_STRESS_V_DUPLICATE;
    if (res->order_violations)
        v |= WFCQ_STRESS_V_ORDER;
    if (res->bad_nodes)
        v |= WFCQ_STRESS_V_BAD_NODE;
    if (res->empty_violations)
        v |= WFCQ_STRESS_V_EMPTY;
    if (res->splice_ret_violations)
        v |= WFCQ_STRESS_V_SPLICE_RET;
    if (res->enq_found_empty + res->feed_dest_empty != res->took_last + res->spliced_nonempty)
        v |= WFCQ_STRESS_V_SHARED_IDENTITY;
    if (res->feed_enq_found_empty != res->feed_spliced_nonempty)
        v |= WFCQ_STRESS_V_FEED_IDENTITY;
    if (res->spliced_dest_empty != res->private_took_last + res->private_resets)
        v |= WFCQ_STRESS_V_PRIVATE_IDENTITY;
    if (res->enqueued != res->total || res->dequeued + res->spliced_out != res->total)
        v |= WFCQ_STRESS_V_COUNT;
    if (res->stuck)
        v |= WFCQ_STRESS_V_STUCK;
    res->violations = v;
    return v;
}

static void wfcq_stress_consume(struct wfcq_stress_state *s, struct wfcq_stress_result *res)
{
    const struct wfcq_stress_config *cfg = s->cfg;
    const int feed_every = cfg->feed_every ? cfg->feed_every : 1;
    uint64_t rng = stress_splitmix(cfg->seed ^ UINT64_C(0xC0FFEE)) | 1;
    int64_t round, idle = 0;

    for (round = 0;; round++) {
        uint64_t r = stress_rand(&rng);
        int64_t taken = 0;
        bool spliced = false;
        struct wfcq_node *wn, *nx;
        bool last;

        /* 1. Splice the feed queue into the shared queue, while the shared
         *    producers keep enqueueing into it. */
        if (cfg->feeders > 0 && wfcq_stress_decide(feed_every, round, r >> 3)) {
            enum wfcq_splice_ret ret = wfcq_splice(&s->shared_head, &s->shared_tail,
                                                   &s->feed_head, &s->feed_tail);
            res->feed_splices++;
            if (ret != WFCQ_SPLICE_SRC_EMPTY) {
                res->feed_spliced_nonempty++;
                if (ret == WFCQ_SPLICE_DEST_EMPTY)
                    res->feed_dest_empty++;
                taken++; /* progress */
            }
        }

        /* 2. Splice the shared queue into the private one (which may still
         *    hold older nodes: they stay in front). */
        if (wfcq_stress_decide(cfg->splice_every, round, r >> 7)) {
            bool priv_was_empty = wfcq_empty(&s->priv_head, &s->priv_tail);
            enum wfcq_splice_ret ret = wfcq_splice(&s->priv_head, &s->priv_tail,
                                                   &s->shared_head, &s->shared_tail);
            spliced = true;
            res->splices++;
            if (ret == WFCQ_SPLICE_SRC_EMPTY) {
                res->found_empty++;
            } else {
                res->spliced_nonempty++;
                if (ret == WFCQ_SPLICE_DEST_EMPTY)
                    res->spliced_dest_empty++;
                if ((ret == WFCQ_SPLICE_DEST_EMPTY) != priv_was_empty)
                    res->splice_ret_violations++;
            }
        }

        /* 3. Take nodes: from the private queue while it holds any (its
         *    nodes are older than the shared queue's), else from shared. */
        if (!wfcq_empty(&s->priv_head, &s->priv_tail)) {
            if ((r >> 20) & 1) {
                wfcq_for_each_safe(&s->priv_head, &s->priv_tail, wn, nx) {
                    /* What a re-enqueue elsewhere would do to the node: the
                     * iteration must not read it again. */
                    atomic_store_explicit(&wn->next, NULL, memory_order_relaxed);
                    wfcq_stress_take(s, wn, res);
                    res->spliced_out++;
                    taken++;
                }
                wfcq_init(&s->priv_head, &s->priv_tail);
                res->private_resets++;
            } else {
                int k = 1 + (int)((r >> 24) % 32);
                while (k-- > 0) {
                    wn = wfcq_dequeue(&s->priv_head, &s->priv_tail, &last);
                    if (wn == NULL)
                        break;
                    wfcq_stress_take(s, wn, res);
                    res->spliced_out++;
                    taken++;
                    if (last) {
                        res->private_took_last++;
                        break;
                    }
                }
            }
        } else if (!spliced) {
            bool nonempty = !wfcq_empty(&s->shared_head, &s->shared_tail);
            int k = 1 + (int)((r >> 32) % 64), i;
            for (i = 0; i < k; i++) {
                wn = wfcq_dequeue(&s->shared_head, &s->shared_tail, &last);
                if (wn == NULL) {
                    if (i == 0) {
                        res->found_empty++;
                        if (nonempty)
                            res->empty_violations++;
                    }
                    break;
                }
                wfcq_stress_take(s, wn, res);
                res->dequeued++;
                taken++;
                if (last)
                    res->took_last++;
            }
        }

        /* 4. Now and then, walk the live shared queue. */
        if (((r >> 40) & 63) == 0)
            wfcq_stress_peek(s, res, 32);

        if (taken > 0) {
            idle = 0;
            continue;
        }
        /* Acquire: pairs with the producers' release increments; after it,
         * wfcq_empty() sees every enqueue, so "all empty" is final. */
        if (atomic_load_explicit(&s->done, memory_order_acquire) == s->nthreads) {
            if (wfcq_empty(&s->shared_head, &s->shared_tail)
                && wfcq_empty(&s->priv_head, &s->priv_tail)
                && wfcq_empty(&s->feed_head, &s->feed_tail))
                break;
            if (++idle > WFCQ_STRESS_STUCK_ROUNDS) {
                res->stuck = 1;
                break;
            }
        } else {
            /* On a machine with few cores the producers need our CPU. */
            sched_yield();
        }
    }
    res->rounds = round + 1;
}

/*
 * Run one configuration.  Returns 0 when the run completed (look at
 * res->violations for the verdict), a negative errno when it could not be
 * set up (-EINVAL for a bad configuration, -ENOMEM, or pthread_create's
 * error).
 */
WFCQ_STRESS_API int wfcq_stress_run_config(const struct wfcq_stress_config *cfg,
                                           struct wfcq_stress_result *res)
{
    struct wfcq_stress_state *s;
    struct wfcq_stress_thread *threads;
    int nthreads, created = 0, err = 0, i;
    int64_t total, j;
    double t0;

    memset(res, 0, sizeof(*res));
    if (cfg->producers < 0 || cfg->feeders < 0 || cfg->nodes_per_producer < 1)
        return -EINVAL;
    nthreads = cfg->producers + cfg->feeders;
    if (nthreads < 1 || nthreads > WFCQ_STRESS_MAX_THREADS
        || cfg->yield_shift < 0 || cfg->yield_shift > 62
        || cfg->nodes_per_producer > WFCQ_STRESS_MAX_NODES / nthreads)
        return -EINVAL;
    total = (int64_t)nthreads * cfg->nodes_per_producer;

    /* The state holds cache-line-aligned tails: aligned_alloc. */
    s = aligned_alloc(WFCQ_CACHE_LINE,
                      (sizeof(*s) + WFCQ_CACHE_LINE - 1) / WFCQ_CACHE_LINE * WFCQ_CACHE_LINE);
    if (s == NULL)
        return -ENOMEM;
    memset(s, 0, sizeof(*s));
    s->cfg = cfg;
    s->nthreads = nthreads;
    s->total = total;
    s->nodes = calloc((size_t)total, sizeof(*s->nodes));
    s->seen = calloc((size_t)total, 1);
    s->last_seq = malloc(sizeof(int64_t) * (size_t)nthreads);
    s->peek_seq = malloc(sizeof(int64_t) * (size_t)nthreads);
    threads = calloc((size_t)nthreads, sizeof(*threads));
    if (!s->nodes || !s->seen || !s->last_seq || !s->peek_seq || !threads) {
        err = -ENOMEM;
        goto out;
    }
    for (i = 0; i < nthreads; i++)
        s->last_seq[i] = -1;
    for (j = 0; j < total; j++)
        wfcq_node_init(&s->nodes[j].node);
    wfcq_init(&s->shared_head, &s->shared_tail);
    wfcq_init(&s->feed_head, &s->feed_tail);
    wfcq_init(&s->priv_head, &s->priv_tail);
    atomic_init(&s->ready, 0);
    atomic_init(&s->go, 0);
    atomic_init(&s->done, 0);

    for (i = 0; i < nthreads; i++) {
        struct wfcq_stress_thread *t = &threads[i];
        t->s = s;
        t->id = i;
        if (i < cfg->producers) {
            t->head = &s->shared_head;
            t->tail = &s->shared_tail;
        } else {
            t->head = &s->feed_head;
            t->tail = &s->feed_tail;
        }
        err = pthread_create(&t->tid, NULL, wfcq_stress_producer, t);
        if (err != 0) {
            err = -err;
            break;
        }
        created++;
    }
    if (err != 0) {
        atomic_store_explicit(&s->go, 2, memory_order_release);
        for (i = 0; i < created; i++)
            pthread_join(threads[i].tid, NULL);
        goto out;
    }

    /* Start gate: every producer is running before any of them enqueues. */
    while (atomic_load_explicit(&s->ready, memory_order_relaxed) < nthreads)
        sched_yield();
    t0 = stress_now();
    atomic_store_explicit(&s->go, 1, memory_order_release);

    wfcq_stress_consume(s, res);
    res->seconds = stress_now() - t0;

    for (i = 0; i < nthreads; i++) {
        pthread_join(threads[i].tid, NULL);
        if (i < cfg->producers) {
            res->enq_found_empty += threads[i].found_empty;
        } else {
            res->feed_enq_found_empty += threads[i].found_empty;
            res->feed_enqueued += cfg->nodes_per_producer;
        }
        res->enqueued += cfg->nodes_per_producer;
    }
    res->total = total;
    for (j = 0; j < total; j++)
        if (!s->seen[j])
            res->lost++;
    wfcq_stress_check(res);

out:
    free(threads);
    free(s->peek_seq);
    free(s->last_seq);
    free(s->seen);
    free(s->nodes);
    free(s);
    return err;
}

/* K producers into one shared queue; the consumer mixes dequeue and splice
 * (splice_every: see struct wfcq_stress_config). */
WFCQ_STRESS_API int wfcq_stress_run(int producers, long nodes_per_producer, int splice_every,
                                    struct wfcq_stress_result *res)
{
    struct wfcq_stress_config cfg = {
        .producers = producers,
        .feeders = 0,
        .nodes_per_producer = nodes_per_producer,
        .splice_every = splice_every,
        .feed_every = 0,
        .yield_shift = 6,
        .seed = UINT64_C(0x5EED),
    };
    return wfcq_stress_run_config(&cfg, res);
}

/* Splice-into concurrent with enqueue: `feeders` threads enqueue into queue
 * A, `producers` threads into queue B, the consumer splices A into B every
 * feed_every-th round and takes from B as in wfcq_stress_run. */
WFCQ_STRESS_API int wfcq_stress_splice_into_run(int producers, int feeders, long nodes_per_producer,
                                                int splice_every, int feed_every,
                                                struct wfcq_stress_result *res)
{
    struct wfcq_stress_config cfg = {
        .producers = producers,
        .feeders = feeders,
        .nodes_per_producer = nodes_per_producer,
        .splice_every = splice_every,
        .feed_every = feed_every,
        .yield_shift = 6,
        .seed = UINT64_C(0xFEED),
    };
    return wfcq_stress_run_config(&cfg, res);
}

#ifdef WFCQ_STRESS_MAIN

static void wfcq_stress_print(const struct wfcq_stress_config *cfg,
                              const struct wfcq_stress_result *r)
{
    printf("k=%d f=%d m=%lld splice=%d feed=%d: total=%lld deq=%lld spliced_out=%lld "
           "found_empty=%lld took_last=%lld spliced_nonempty=%lld(dest_empty %lld) "
           "feed_spliced=%lld(dest_empty %lld) priv_last=%lld priv_resets=%lld peeked=%lld "
           "dup=%lld lost=%lld order=%lld bad=%lld empty=%lld splice_ret=%lld stuck=%lld "
           "%.3fs %s (0x%llx)\n",
           cfg->producers, cfg->feeders, (long long)cfg->nodes_per_producer,
           cfg->splice_every, cfg->feed_every,
           (long long)r->total, (long long)r->dequeued, (long long)r->spliced_out,
           (long long)r->found_empty, (long long)r->took_last,
           (long long)r->spliced_nonempty, (long long)r->spliced_dest_empty,
           (long long)r->feed_spliced_nonempty, (long long)r->feed_dest_empty,
           (long long)r->private_took_last, (long long)r->private_resets,
           (long long)r->peeked, (long long)r->duplicates, (long long)r->lost,
           (long long)r->order_violations, (long long)r->bad_nodes,
           (long long)r->empty_violations, (long long)r->splice_ret_violations,
           (long long)r->stuck, r->seconds, r->violations ? "FAIL" : "ok",
           (unsigned long long)r->violations);
    fflush(stdout);
}

int main(int argc, char **argv)
{
    int producers = argc > 1 ? atoi(argv[1]) : 4;
    long nodes = argc > 2 ? atol(argv[2]) : 100000;
    int rounds = argc > 3 ? atoi(argv[3]) : 1;
    int half, round, i, failed = 0, runs = 0;
    int64_t moved = 0;
    double secs = 0;

    if (producers < 1 || nodes < 1 || rounds < 1) {
        fprintf(stderr, "usage: %s [producers=4] [nodes_per_producer=100000] [rounds=1]\n",
                argv[0]);
        return 2;
    }
    half = producers / 2 > 0 ? producers / 2 : 1;

    for (round = 0; round < rounds; round++) {
        /* producers, feeders, splice_every, feed_every, yield_shift */
        const int table[][5] = {
            {1, 0, 0, 0, 6},
            {1, 0, 1, 0, 6},
            {2, 0, 2, 0, 4},
            {producers, 0, 0, 0, 6},
            {producers, 0, 4, 0, 0},
            {producers, 0, -3, 0, 6},
            {half, half, -4, -2, 6},
            {producers, producers, 0, 1, 5},
        };
        for (i = 0; i < (int)(sizeof(table) / sizeof(table[0])); i++) {
            struct wfcq_stress_config cfg = {
                .producers = table[i][0],
                .feeders = table[i][1],
                .nodes_per_producer = nodes,
                .splice_every = table[i][2],
                .feed_every = table[i][3],
                .yield_shift = table[i][4],
                .seed = stress_splitmix((uint64_t)round * 100 + (uint64_t)i),
            };
            struct wfcq_stress_result res;
            int rc = wfcq_stress_run_config(&cfg, &res);
            if (rc != 0) {
                fprintf(stderr, "wfcq_stress: configuration %d: error %d (%s)\n", i, rc,
                        strerror(-rc));
                return 2;
            }
            wfcq_stress_print(&cfg, &res);
            runs++;
            moved += res.total;
            secs += res.seconds;
            if (res.violations)
                failed++;
        }
    }
    printf("wfcq_stress: %d runs, %lld nodes, %.3fs, %d failed: %s\n", runs, (long long)moved,
           secs, failed, failed ? "FAIL" : "PASS");
    return failed ? 1 : 0;
}

#endif /* WFCQ_STRESS_MAIN */
