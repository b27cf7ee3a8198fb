/*
 * ready_list_bench.c - the ready list in isolation: T producer threads run
 * the pollers' exact hand-off (mark_ready's CAS, the append, the wake-up
 * check) on registrations of their own, as fast as they can, while one
 * consumer thread drains them with wfc_ep_wait(); no kernel event and no
 * system call per event on either side.  The same core code runs with the
 * wfcqueue list or the mutex list, so the difference is the list's.
 *
 * Built by benchmarks/ready_list_bench.sh (or by hand):
 *   cc -O2 -std=gnu11 -pthread -DWFC_BENCH_HOOKS -Icython \
 *      benchmarks/ready_list_bench.c cython/eventpoll_core.c -o benchmarks/build/ready_list_bench
 *   ready_list_bench PRODUCERS ITEMS_PER_PRODUCER SECONDS wfcqueue|mutex
 * Prints one JSON line.
 */
#define _GNU_SOURCE
#include "eventpoll_core.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

uint64_t wfc_ep_bench_tag(wfc_ep *ep, int fd);
int wfc_ep_bench_inject(wfc_ep *ep, uint64_t tag, uint32_t events);

struct producer {
    pthread_t thread;
    wfc_ep *ep;
    uint64_t *tags;
    int ntags;
    uint64_t enqueued, attempts;
    char pad[64];
};

static atomic_int go, stop;

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static void *producer_main(void *arg)
{
    struct producer *p = arg;
    while (!atomic_load_explicit(&go, memory_order_acquire))
        ;
    while (!atomic_load_explicit(&stop, memory_order_relaxed)) {
        for (int i = 0; i < p->ntags; i++) {
            p->enqueued += (uint64_t)wfc_ep_bench_inject(p->ep, p->tags[i], EPOLLIN);
            p->attempts++;
        }
    }
    return NULL;
}

int main(int argc, char **argv)
{
    if (argc != 5) {
        fprintf(stderr, "usage: %s PRODUCERS ITEMS_PER_PRODUCER SECONDS wfcqueue|mutex\n", argv[0]);
        return 2;
    }
    int nprod = atoi(argv[1]), per = atoi(argv[2]);
    double seconds = atof(argv[3]);
    int kind = strcmp(argv[4], "mutex") == 0 ? WFC_READY_LIST_MUTEX : WFC_READY_LIST_WFCQUEUE;
    wfc_ep *ep;
    int rc = wfc_ep_create(&ep, 0, -1, kind);
    if (rc < 0) {
        fprintf(stderr, "wfc_ep_create: %s\n", strerror(-rc));
        return 1;
    }
    wfc_ep_set_snapshot(ep, 0);
    struct producer *ps = calloc((size_t)nprod, sizeof(*ps));
    int *fds = calloc((size_t)(nprod * per), sizeof(int));
    for (int p = 0; p < nprod; p++) {
        ps[p].ep = ep;
        ps[p].ntags = per;
        ps[p].tags = calloc((size_t)per, sizeof(uint64_t));
        for (int i = 0; i < per; i++) {
            /* Never written: the kernel reports nothing; edge-triggered, so
             * the consumer never re-arms (no EPOLL_CTL_MOD per event). */
            int fd = fds[p * per + i] = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
            if (fd < 0 || wfc_ep_add(ep, fd, EPOLLIN | EPOLLET, (uint64_t)p) < 0) {
                perror("register");
                return 1;
            }
            ps[p].tags[i] = wfc_ep_bench_tag(ep, fd);
        }
        pthread_create(&ps[p].thread, NULL, producer_main, &ps[p]);
    }
    wfc_event out[256];
    uint64_t delivered = 0, waits = 0;
    atomic_store(&go, 1);
    double t0 = now(), t1;
    while ((t1 = now()) - t0 < seconds) {
        for (int k = 0; k < 64; k++) {
            int n = wfc_ep_wait(ep, out, 256, 0);
            if (n > 0)
                delivered += (uint64_t)n;
            waits++;
        }
    }
    atomic_store(&stop, 1);
    uint64_t enqueued = 0, attempts = 0;
    for (int p = 0; p < nprod; p++) {
        pthread_join(ps[p].thread, NULL);
        enqueued += ps[p].enqueued;
        attempts += ps[p].attempts;
    }
    wfc_ep_stats st;
    wfc_ep_get_stats(ep, &st);
    printf("{\"producers\": %d, \"items_per_producer\": %d, \"list\": \"%s\", \"seconds\": %.3f, "
           "\"delivered_per_s\": %.0f, \"enqueued_per_s\": %.0f, \"inject_attempts_per_s\": %.0f, "
           "\"events_per_wait\": %.1f, \"splices\": %llu}\n",
           nprod, per, argv[4], t1 - t0, delivered / (t1 - t0), enqueued / (t1 - t0),
           attempts / (t1 - t0), waits ? (double)delivered / waits : 0.0,
           (unsigned long long)st.splices);
    wfc_ep_destroy(ep, 0);
    for (int i = 0; i < nprod * per; i++)
        close(fds[i]);
    return 0;
}
