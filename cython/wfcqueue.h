/*
 * wfcqueue.h - wait-free concurrent queue (multi-producer, single consumer
 * at a time), header only, C11 atomics.
 *
 * The design is the one of liburcu's wfcqueue and of Eric Wong's 2013
 * "epoll: avoid spinlock contention with wfcqueue" RFC: the queue is a
 * singly linked list with a dummy head node and a tail pointer.  A producer
 * appends with ONE atomic exchange on the tail, then links the previous
 * tail to its node with one store.  No producer ever waits for anything, so
 * enqueue is wait-free for any number of producers.  The price is paid by
 * the consumer: between a producer's exchange and its link store, the list
 * is "published but not linked", and the consumer busy-waits (adaptively:
 * spin, then yield, then sleep) for the link to appear.
 *
 * Synchronization table (which operations may run at the same time on one
 * queue; "excl" means the caller must provide mutual exclusion between
 * those operations, e.g. because a single thread calls them or because it
 * holds a lock):
 *
 *                    | enqueue | empty | dequeue | splice-from | first/next
 *   enqueue          |   ok    |  ok   |   ok    |     ok      |    ok
 *   empty            |   ok    |  ok   |   ok    |     ok      |    ok
 *   dequeue          |   ok    |  ok   |  excl   |    excl     |   excl
 *   splice-from      |   ok    |  ok   |  excl   |    excl     |   excl
 *   first/next       |   ok    |  ok   |  excl   |    excl     |   excl
 *
 * "splice-into" (being the destination of a splice) is an enqueue of a
 * whole chain and needs nothing, like enqueue.
 *
 * Memory-ordering summary (each atomic below repeats its own argument):
 *  - A node's contents written before wfcq_enqueue() are visible to the
 *    consumer that reaches the node, because the consumer reaches it either
 *    through the predecessor's `next` (store-release by the producer,
 *    load-acquire by the consumer) or through the tail (exchange with
 *    release by the producer, load-acquire by the consumer).
 *  - A producer's link store into the old tail node happens after whatever
 *    the previous owner of that node did to it, because the tail exchange
 *    is acquire-release and forms a read-modify-write chain.
 *
 * Node reuse: once the consumer has taken a node out of a queue (dequeue,
 * or iteration of a private queue) it may enqueue it again or free it; the
 * queue keeps no reference to it.
 */
#ifndef WFCLOOP_WFCQUEUE_H
#define WFCLOOP_WFCQUEUE_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <sched.h>
#include <time.h>

#ifndef WFCQ_CACHE_LINE
#define WFCQ_CACHE_LINE 64
#endif

/* Busy-wait tuning for the "published but not linked" window. */
#ifndef WFCQ_SPIN_ATTEMPTS
#define WFCQ_SPIN_ATTEMPTS 128   /* cpu_relax() rounds before yielding */
#endif
#ifndef WFCQ_YIELD_ATTEMPTS
#define WFCQ_YIELD_ATTEMPTS 64   /* sched_yield() rounds before sleeping */
#endif
#define WFCQ_SLEEP_NS 10000      /* 10 us per sleep once yielding was not enough */

struct wfcq_node {
    _Atomic(struct wfcq_node *) next;
};

/* The consumer's end: a dummy node whose `next` is the first real node. */
struct wfcq_head {
    struct wfcq_node node;
};

/* The producers' end, on its own cache line so that producers exchanging
 * the tail do not bounce the line that the consumer reads the head from. */
struct wfcq_tail {
    _Alignas(WFCQ_CACHE_LINE) _Atomic(struct wfcq_node *) p;
    char pad[WFCQ_CACHE_LINE - sizeof(void *)];
};

enum wfcq_splice_ret {
    WFCQ_SPLICE_SRC_EMPTY = 0,     /* nothing moved */
    WFCQ_SPLICE_DEST_EMPTY = 1,    /* moved; destination was empty before */
    WFCQ_SPLICE_DEST_NON_EMPTY = 2 /* moved; destination already had nodes */
};

static inline void wfcq_cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield" ::: "memory");
#endif
}

/* Concurrency: none; call before the queue is shared. */
static inline void wfcq_node_init(struct wfcq_node *node)
{
    atomic_init(&node->next, NULL);
}

/* Concurrency: none; call before the queue is shared (or when the caller
 * knows no producer and no consumer can touch it). */
static inline void wfcq_init(struct wfcq_head *head, struct wfcq_tail *tail)
{
    wfcq_node_init(&head->node);
    atomic_init(&tail->p, &head->node);
}

/*
 * wfcq_empty: true when the queue holds no node.
 * Concurrency: may run with anything.  The answer is a snapshot: with
 * producers running it may be stale as soon as it is returned.
 * Ordering: relaxed loads suffice for a snapshot; callers that build a
 * protocol on the answer (the eventpoll's sleep/wake) put their own
 * seq_cst fence before calling.  The head is read first: if head.next is
 * NULL and tail still points at the dummy, no producer had exchanged the
 * tail when we looked at it.
 */
static inline bool wfcq_empty(struct wfcq_head *head, struct wfcq_tail *tail)
{
    return atomic_load_explicit(&head->node.next, memory_order_relaxed) == NULL
        && atomic_load_explicit(&tail->p, memory_order_relaxed) == &head->node;
}

/*
 * Append a chain first..last (already linked together, last->next NULL)
 * at the tail.  This is enqueue for one node and splice-into for a chain.
 * Returns true when the queue was empty before this append (the tail was
 * the dummy head node): the caller uses it to wake a consumer only on the
 * empty -> non-empty transition.
 * Concurrency: wait-free; may run with every operation.
 */
static inline bool wfcq_append(struct wfcq_head *head, struct wfcq_tail *tail,
                               struct wfcq_node *first, struct wfcq_node *last)
{
    /*
     * Exchange, acq_rel:
     *  - release: publishes everything written to the chain (its payload
     *    and last->next == NULL) to a consumer that reads the tail with
     *    acquire (dequeue/splice taking the last node).
     *  - acquire: the previous tail node was published by its producer's
     *    own exchange (or by the consumer's re-initialisation of the
     *    dummy); we are about to write old_tail->next, and that write must
     *    come after their writes to the same node.
     * acq_rel would do; seq_cst costs nothing more on x86 and arm64 (the
     * same instruction).  The eventpoll's wake-up protocol does not lean
     * on it: it puts its own seq_cst fence after the append.
     */
    struct wfcq_node *old_tail =
        atomic_exchange_explicit(&tail->p, last, memory_order_seq_cst);
    /*
     * Release: the consumer that loads old_tail->next with acquire sees
     * the chain's contents.  Between the exchange above and this store the
     * chain is published but not linked; consumers wait for this store in
     * wfcq_node_sync_next().
     */
    atomic_store_explicit(&old_tail->next, first, memory_order_release);
    return old_tail == &head->node;
}

/*
 * Enqueue one node.  Returns true when the queue was empty before.
 * Concurrency: wait-free; may run with every operation.
 */
static inline bool wfcq_enqueue(struct wfcq_head *head, struct wfcq_tail *tail,
                                struct wfcq_node *node)
{
    /* Relaxed: the node is not reachable yet; the exchange in wfcq_append
     * (release) publishes this store together with the node. */
    atomic_store_explicit(&node->next, NULL, memory_order_relaxed);
    return wfcq_append(head, tail, node, node);
}

/*
 * Wait until node->next is linked by the producer that exchanged the tail
 * past `node`.  Only call when the caller knows that node is not the last
 * node (the tail has moved past it).
 * Adaptive: WFCQ_SPIN_ATTEMPTS pause instructions, then
 * WFCQ_YIELD_ATTEMPTS sched_yield() calls (the producer may have been
 * preempted between its exchange and its link store, and on a machine
 * with fewer cores than threads it needs our CPU to finish), then short
 * sleeps.
 * Concurrency: consumer side (excl).
 */
static inline struct wfcq_node *wfcq_node_sync_next(struct wfcq_node *node)
{
    struct wfcq_node *next;
    unsigned attempt = 0;

    /* Acquire: pairs with the producer's release store of the link, so the
     * next node's contents are visible to us. */
    while ((next = atomic_load_explicit(&node->next, memory_order_acquire)) == NULL) {
        attempt++;
        if (attempt < WFCQ_SPIN_ATTEMPTS) {
            wfcq_cpu_relax();
        } else if (attempt < WFCQ_SPIN_ATTEMPTS + WFCQ_YIELD_ATTEMPTS) {
            sched_yield();
        } else {
            struct timespec ts = {0, WFCQ_SLEEP_NS};
            nanosleep(&ts, NULL);
        }
    }
    return next;
}

/*
 * First node of the queue, or NULL when it is empty.  The node stays in
 * the queue.
 * Concurrency: consumer side (excl); producers may run.
 */
static inline struct wfcq_node *wfcq_first(struct wfcq_head *head, struct wfcq_tail *tail)
{
    /* Acquire on the tail: if a producer has exchanged it, we will wait
     * for and then read through its link. */
    if (atomic_load_explicit(&head->node.next, memory_order_acquire) == NULL
        && atomic_load_explicit(&tail->p, memory_order_acquire) == &head->node)
        return NULL;
    return wfcq_node_sync_next(&head->node);
}

/*
 * The node after `node`, or NULL when `node` is the last one.
 * Concurrency: consumer side (excl); producers may run (a node they append
 * after this call returned NULL is seen by the next iteration).
 */
static inline struct wfcq_node *wfcq_next(struct wfcq_head *head, struct wfcq_tail *tail,
                                          struct wfcq_node *node)
{
    struct wfcq_node *next;

    (void)head;
    /* Acquire: pairs with the producer's link store. */
    next = atomic_load_explicit(&node->next, memory_order_acquire);
    if (next != NULL)
        return next;
    /* Acquire: if the tail is still `node`, node is the last node; else a
     * producer has exchanged the tail past it and will link it soon. */
    if (atomic_load_explicit(&tail->p, memory_order_acquire) == node)
        return NULL;
    return wfcq_node_sync_next(node);
}

/*
 * Remove and return the first node, or NULL when the queue is empty.
 * *was_last is set to true when the node was the last one, i.e. the queue
 * went from non-empty to empty: a later enqueue will find it empty.
 * Concurrency: consumer side (excl); producers may run.
 */
static inline struct wfcq_node *wfcq_dequeue(struct wfcq_head *head, struct wfcq_tail *tail,
                                             bool *was_last)
{
    struct wfcq_node *node, *next;

    *was_last = false;
    node = wfcq_first(head, tail);
    if (node == NULL)
        return NULL;

    next = atomic_load_explicit(&node->next, memory_order_acquire);
    if (next == NULL) {
        /*
         * `node` looks like the last node.  Empty the head first, then try
         * to swing the tail from `node` back to the dummy.
         * Relaxed store of head.next: it is published by the release half
         * of the compare-exchange below; a producer that then finds the
         * dummy as tail (acquire exchange) writes head.next after it.
         */
        struct wfcq_node *expected = node;
        atomic_store_explicit(&head->node.next, NULL, memory_order_relaxed);
        /* acq_rel: release publishes the head reset above; acquire makes
         * the failure case (a producer exchanged the tail past `node`)
         * order our later wait for node->next after that producer. */
        if (atomic_compare_exchange_strong_explicit(&tail->p, &expected, &head->node,
                                                    memory_order_acq_rel,
                                                    memory_order_acquire)) {
            *was_last = true;
            return node;
        }
        /* A producer appended after `node`: wait for its link. */
        next = wfcq_node_sync_next(node);
    }
    /* Relaxed: head.next is only written by the consumer while the queue
     * is non-empty (producers only write it when the tail is the dummy,
     * which cannot be the case here: `next` exists). */
    atomic_store_explicit(&head->node.next, next, memory_order_relaxed);
    return node;
}

/*
 * Move every node of src to the end of dest in O(1).  src is empty
 * afterwards.  Returns WFCQ_SPLICE_SRC_EMPTY when nothing was moved,
 * otherwise whether dest was empty before.
 * Concurrency: src needs the consumer's exclusion (it is a dequeue of the
 * whole list); producers may keep enqueueing into src meanwhile.  dest is
 * appended to like an enqueue: it needs nothing.
 */
static inline enum wfcq_splice_ret wfcq_splice(struct wfcq_head *dest_head,
                                               struct wfcq_tail *dest_tail,
                                               struct wfcq_head *src_head,
                                               struct wfcq_tail *src_tail)
{
    struct wfcq_node *first, *last;

    if (wfcq_first(src_head, src_tail) == NULL)
        return WFCQ_SPLICE_SRC_EMPTY;
    /* wfcq_first waited until head.next was linked. */
    first = atomic_load_explicit(&src_head->node.next, memory_order_relaxed);
    /* Relaxed: published by the exchange's release below; producers that
     * then find the dummy as tail write head.next after this store. */
    atomic_store_explicit(&src_head->node.next, NULL, memory_order_relaxed);
    /*
     * acq_rel: take the whole chain first..last and make src empty in one
     * step.  Acquire: the last node's contents and its NULL next (written
     * before its producer's release exchange) are visible.  Release:
     * publishes the head reset above.  Producers that exchanged the tail
     * before us may still be linking nodes inside first..last; the
     * consumer of dest waits for those links in wfcq_node_sync_next().
     */
    last = atomic_exchange_explicit(&src_tail->p, &src_head->node, memory_order_acq_rel);
    return wfcq_append(dest_head, dest_tail, first, last)
        ? WFCQ_SPLICE_DEST_EMPTY : WFCQ_SPLICE_DEST_NON_EMPTY;
}

/*
 * Iterate over a queue whose nodes stay in it.  The body must not dequeue
 * or free `node`.  Consumer side (excl); producers may run.
 */
#define wfcq_for_each(head, tail, node)                       \
    for ((node) = wfcq_first((head), (tail));                 \
         (node) != NULL;                                      \
         (node) = wfcq_next((head), (tail), (node)))

/*
 * Iterate over a PRIVATE queue (no producer can append to it any more, e.g.
 * the destination of a splice owned by the consumer) while the body may
 * free or re-enqueue `node` elsewhere: `n` is read before the body runs.
 * Producers that were still linking nodes when the chain was spliced in
 * are waited for.  The queue must be re-initialised with wfcq_init() after
 * the loop, since its nodes are gone.
 */
#define wfcq_for_each_safe(head, tail, node, n)                                   \
    for ((node) = wfcq_first((head), (tail)),                                     \
         (n) = ((node) ? wfcq_next((head), (tail), (node)) : NULL);               \
         (node) != NULL;                                                          \
         (node) = (n), (n) = ((node) ? wfcq_next((head), (tail), (node)) : NULL))

#endif /* WFCLOOP_WFCQUEUE_H */
