/*
 * ep_bench.c - throughput of the eventpoll core (cython/eventpoll_core.c)
 * with its two ready lists, after the idea of Eric Wong's "eponeshotmt"
 * benchmark: F file descriptors are kept permanently readable, every event
 * is taken once, the fd is read, made readable again, and re-armed.
 *
 * In eponeshotmt, T threads share one epoll (fds registered EPOLLONESHOT)
 * and each thread takes one event, reads/writes the fd and re-arms it with
 * EPOLL_CTL_MOD.  Here the T threads are the core's pollers: they loop on
 * epoll_wait (every fd is EPOLLONESHOT in the kernel) and push ready items
 * onto the ready list; one consumer thread (this program's main thread)
 * takes them with wfc_ep_wait(), reads the eventfd, writes 1 back, and the
 * core re-arms the (level-triggered) fds at the start of the next
 * wfc_ep_wait().  The ready list is the only structure shared by the T
 * pollers and the consumer, so comparing --ready-list wfcqueue with
 * --ready-list mutex measures what the wait-free queue buys.
 *
 * --work-ns N makes the consumer spin N ns per event (a stand-in for the
 * callback an event loop would run), so the pollers fill the list while the
 * consumer is busy and the producers' side of the list is exercised.
 *
 * Output: one JSON object on stdout (see print_result()).
 *
 * Build: cc -O2 -std=gnu11 -pthread -Icython benchmarks/ep_bench.c \
 *            cython/eventpoll_core.c -o benchmarks/build/ep_bench
 * (benchmarks/eventpoll_bench.py does this and drives the runs).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <dirent.h>
#include <getopt.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sched.h>
#include <stdatomic.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "eventpoll_core.h"

/*
 * Instrumentation: the core's consumer backs off with sched_yield() and
 * nanosleep() when it waits for a poller: wfcqueue's wait for a producer's
 * link store (wfcqueue.h, wfcq_node_sync_next) and, in snapshot mode, the
 * wait for pollers that have taken events but not yet appended them
 * (eventpoll_core.c, settle).  These definitions take the place of libc's
 * for the core linked into this executable, count the calls (consumer
 * thread apart from the others) and make the same system call.  The
 * counters are reported as "yields"/"naps" in the JSON.  Build with
 * -DEP_BENCH_NO_WRAP to measure without them.
 */
#ifndef EP_BENCH_NO_WRAP
static _Atomic uint64_t n_yield[2], n_nap[2];   /* [0]: other threads, [1]: consumer */
static __thread int is_consumer;

int sched_yield(void)
{
    atomic_fetch_add_explicit(&n_yield[is_consumer], 1, memory_order_relaxed);
    return (int)syscall(SYS_sched_yield);
}

int nanosleep(const struct timespec *req, struct timespec *rem)
{
    atomic_fetch_add_explicit(&n_nap[is_consumer], 1, memory_order_relaxed);
    int r = clock_nanosleep(CLOCK_MONOTONIC, 0, req, rem);
    if (r != 0) {
        errno = r;
        return -1;
    }
    return 0;
}
#define WRAPPED 1
#else
static uint64_t n_yield[2], n_nap[2];
static __thread int is_consumer;
#define WRAPPED 0
#endif

struct wrap_counts { uint64_t yield[2], nap[2]; };

static void wrap_snapshot(struct wrap_counts *w)
{
    for (int i = 0; i < 2; i++) {
        w->yield[i] = n_yield[i];
        w->nap[i] = n_nap[i];
    }
}

struct opts {
    int pollers;
    int fds;
    int maxevents;
    int timeout_ms;
    int work_ns;
    int io;           /* read + write back each fd (1) or leave it alone (0) */
    int use_pipe;     /* pipes instead of eventfds */
    int ready_list;   /* WFC_READY_LIST_* */
    int pin;          /* consumer on the first allowed CPU, pollers on the rest */
    int snapshot;     /* wfc_ep_set_snapshot(): 1 (the core's default) or 0 */
    double seconds;
    double warmup;
};

struct source {
    int rfd;          /* registered fd */
    int wfd;          /* fd written to make it readable again (== rfd for eventfd) */
    uint64_t count;   /* events delivered during the measurement */
    uint64_t batch;   /* last batch number it was seen in (duplicate check) */
};

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static inline void relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield" ::: "memory");
#else
    __asm__ __volatile__("" ::: "memory");
#endif
}

/* Simulated per-event work: spin (no syscall, no sleep) for `ns`. */
static void spin_ns(uint64_t ns)
{
    uint64_t end = now_ns() + ns;
    while (now_ns() < end)
        relax();
}

static double tv_s(struct timeval tv)
{
    return (double)tv.tv_sec + (double)tv.tv_usec / 1e6;
}

static void usage(FILE *f)
{
    fprintf(f,
        "usage: ep_bench [--pollers T] [--fds F] [--seconds S] [--warmup S]\n"
        "                [--ready-list wfcqueue|mutex] [--maxevents N]\n"
        "                [--work-ns NS] [--no-io] [--pipe] [--timeout-ms MS]\n"
        "  --pollers T      poller threads (0: the consumer calls epoll_wait itself)\n"
        "  --fds F          eventfds (or pipes) kept readable (default 64)\n"
        "  --seconds S      measured duration (default 2)\n"
        "  --warmup S       unmeasured run before it (default 0.2)\n"
        "  --ready-list K   wfcqueue (default) or mutex\n"
        "  --maxevents N    events per wfc_ep_wait call (default 64)\n"
        "  --work-ns NS     consumer spins NS ns per event (default 0)\n"
        "  --no-io          do not read/write the fds (they stay readable)\n"
        "  --pipe           pipes instead of eventfds\n"
        "  --no-snapshot    wfc_ep_set_snapshot(ep, 0): no settling before a\n"
        "                   partial batch (what the event loop uses)\n"
        "  --pin            consumer on the first allowed CPU, the pollers on the\n"
        "                   others (takes scheduler placement out of the result)\n");
}

static int parse_opts(int argc, char **argv, struct opts *o)
{
    static const struct option longopts[] = {
        {"pollers", required_argument, 0, 'T'},
        {"fds", required_argument, 0, 'F'},
        {"seconds", required_argument, 0, 's'},
        {"warmup", required_argument, 0, 'w'},
        {"ready-list", required_argument, 0, 'r'},
        {"maxevents", required_argument, 0, 'm'},
        {"work-ns", required_argument, 0, 'n'},
        {"timeout-ms", required_argument, 0, 't'},
        {"no-io", no_argument, 0, 'N'},
        {"pipe", no_argument, 0, 'p'},
        {"pin", no_argument, 0, 'P'},
        {"no-snapshot", no_argument, 0, 'S'},
        {"help", no_argument, 0, 'h'},
        {0, 0, 0, 0},
    };
    o->pollers = 1;
    o->fds = 64;
    o->maxevents = 64;
    o->timeout_ms = 100;
    o->work_ns = 0;
    o->io = 1;
    o->use_pipe = 0;
    o->pin = 0;
    o->snapshot = 1;
    o->ready_list = WFC_READY_LIST_WFCQUEUE;
    o->seconds = 2.0;
    o->warmup = 0.2;

    int c;
    while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
        switch (c) {
        case 'T': o->pollers = atoi(optarg); break;
        case 'F': o->fds = atoi(optarg); break;
        case 's': o->seconds = atof(optarg); break;
        case 'w': o->warmup = atof(optarg); break;
        case 'm': o->maxevents = atoi(optarg); break;
        case 'n': o->work_ns = atoi(optarg); break;
        case 't': o->timeout_ms = atoi(optarg); break;
        case 'N': o->io = 0; break;
        case 'p': o->use_pipe = 1; break;
        case 'P': o->pin = 1; break;
        case 'S': o->snapshot = 0; break;
        case 'r':
            if (strcmp(optarg, "wfcqueue") == 0)
                o->ready_list = WFC_READY_LIST_WFCQUEUE;
            else if (strcmp(optarg, "mutex") == 0)
                o->ready_list = WFC_READY_LIST_MUTEX;
            else {
                fprintf(stderr, "ep_bench: unknown ready list '%s'\n", optarg);
                return -1;
            }
            break;
        case 'h': usage(stdout); exit(0);
        default: usage(stderr); return -1;
        }
    }
    if (optind != argc || o->pollers < 0 || o->fds < 1 || o->maxevents < 1
        || o->seconds <= 0 || o->warmup < 0 || o->work_ns < 0
        || o->timeout_ms < 0) {
        usage(stderr);
        return -1;
    }
    return 0;
}

static int open_sources(struct source *src, int n, int use_pipe)
{
    for (int i = 0; i < n; i++) {
        src[i].count = 0;
        src[i].batch = 0;
        if (use_pipe) {
            int p[2];
            if (pipe2(p, O_NONBLOCK | O_CLOEXEC) < 0)
                return -errno;
            src[i].rfd = p[0];
            src[i].wfd = p[1];
            char b = 1;
            if (write(p[1], &b, 1) != 1)
                return -errno;
        } else {
            /* Initial value 1: readable from the start. */
            int fd = eventfd(1, EFD_NONBLOCK | EFD_CLOEXEC);
            if (fd < 0)
                return -errno;
            src[i].rfd = src[i].wfd = fd;
        }
    }
    return 0;
}

static void close_sources(struct source *src, int n, int use_pipe)
{
    for (int i = 0; i < n; i++) {
        if (src[i].rfd >= 0)
            close(src[i].rfd);
        if (use_pipe && src[i].wfd >= 0)
            close(src[i].wfd);
    }
}

/*
 * --pin: the main (consumer) thread on the first CPU it may use, every other
 * thread of the process (the core's pollers) on the remaining ones.  Returns
 * the number of other threads moved, or -1 when there is only one CPU.
 */
static int pin_threads(void)
{
    cpu_set_t allowed, mine, others;
    if (sched_getaffinity(0, sizeof(allowed), &allowed) < 0 || CPU_COUNT(&allowed) < 2)
        return -1;
    CPU_ZERO(&mine);
    others = allowed;
    for (int cpu = 0; cpu < CPU_SETSIZE; cpu++) {
        if (CPU_ISSET(cpu, &allowed)) {
            CPU_SET(cpu, &mine);
            CPU_CLR(cpu, &others);
            break;
        }
    }
    int self = (int)syscall(SYS_gettid), moved = 0;
    DIR *d = opendir("/proc/self/task");
    if (d) {
        struct dirent *e;
        while ((e = readdir(d)) != NULL) {
            int tid = atoi(e->d_name);
            if (tid > 0 && tid != self
                && sched_setaffinity(tid, sizeof(others), &others) == 0)
                moved++;
        }
        closedir(d);
    }
    sched_setaffinity(0, sizeof(mine), &mine);
    return moved;
}

struct counters {
    uint64_t events;
    uint64_t waits;        /* wfc_ep_wait calls that returned >= 0 */
    uint64_t empty_waits;  /* ... of which returned 0 (timeout) */
    uint64_t eintr;
    uint64_t eagain;       /* delivered as readable, read found nothing */
    uint64_t dup_in_batch; /* the same fd twice in one wfc_ep_wait result */
    uint64_t bad_events;   /* delivered without EPOLLIN, or with an unknown data */
    uint64_t max_batch;
};

/* counter fields of wfc_ep_stats (printed as deltas over the measurement) */
#define WFC_COUNTER_STATS(X) \
    X(harvested) X(harvested_inline) X(enqueued) X(enqueued_found_empty) \
    X(coalesced) X(stale) X(wakeups) X(sleeps) X(splices) X(delivered) \
    X(rearms) X(reaped)

static void print_result(const struct opts *o, const struct counters *c,
                         double secs, const wfc_ep_stats *s0,
                         const wfc_ep_stats *s1, const struct rusage *r0,
                         const struct rusage *r1, const struct rusage *t0,
                         const struct rusage *t1, const struct wrap_counts *w0,
                         const struct wrap_counts *w1, const struct source *src,
                         int pinned)
{
    uint64_t minc = UINT64_MAX, maxc = 0;
    for (int i = 0; i < o->fds; i++) {
        if (src[i].count < minc) minc = src[i].count;
        if (src[i].count > maxc) maxc = src[i].count;
    }
    double user = tv_s(r1->ru_utime) - tv_s(r0->ru_utime);
    double sys = tv_s(r1->ru_stime) - tv_s(r0->ru_stime);

    printf("{\"bench\": \"ep_bench\", \"ready_list\": \"%s\", \"pollers\": %d, "
           "\"fds\": %d, \"fd_kind\": \"%s\", \"maxevents\": %d, \"work_ns\": %d, "
           "\"io\": %d, \"snapshot\": %d, \"pinned_threads\": %d, ",
           o->ready_list == WFC_READY_LIST_MUTEX ? "mutex" : "wfcqueue",
           o->pollers, o->fds, o->use_pipe ? "pipe" : "eventfd", o->maxevents,
           o->work_ns, o->io, o->snapshot, pinned);
    printf("\"events\": %llu, \"seconds\": %.6f, \"events_per_s\": %.1f, ",
           (unsigned long long)c->events, secs,
           secs > 0 ? (double)c->events / secs : 0.0);
    printf("\"waits\": %llu, \"empty_waits\": %llu, \"events_per_wait\": %.3f, "
           "\"max_batch\": %llu, ",
           (unsigned long long)c->waits, (unsigned long long)c->empty_waits,
           c->waits ? (double)c->events / (double)c->waits : 0.0,
           (unsigned long long)c->max_batch);
    printf("\"per_fd_min\": %llu, \"per_fd_max\": %llu, ",
           (unsigned long long)minc, (unsigned long long)maxc);
    printf("\"errors\": {\"eintr\": %llu, \"eagain\": %llu, \"dup_in_batch\": %llu, "
           "\"bad_events\": %llu}, ",
           (unsigned long long)c->eintr, (unsigned long long)c->eagain,
           (unsigned long long)c->dup_in_batch,
           (unsigned long long)c->bad_events);
    printf("\"cpu_user_s\": %.4f, \"cpu_sys_s\": %.4f, \"cpu_util\": %.3f, "
           "\"vol_ctx_switches\": %ld, \"invol_ctx_switches\": %ld, ",
           user, sys, secs > 0 ? (user + sys) / secs : 0.0,
           r1->ru_nvcsw - r0->ru_nvcsw, r1->ru_nivcsw - r0->ru_nivcsw);
    double tuser = tv_s(t1->ru_utime) - tv_s(t0->ru_utime);
    double tsys = tv_s(t1->ru_stime) - tv_s(t0->ru_stime);
    printf("\"consumer\": {\"cpu_user_s\": %.4f, \"cpu_sys_s\": %.4f, "
           "\"cpu_util\": %.3f, \"vol_ctx_switches\": %ld, "
           "\"invol_ctx_switches\": %ld}, ",
           tuser, tsys, secs > 0 ? (tuser + tsys) / secs : 0.0,
           t1->ru_nvcsw - t0->ru_nvcsw, t1->ru_nivcsw - t0->ru_nivcsw);
    if (WRAPPED)
        printf("\"yields\": {\"consumer\": %llu, \"others\": %llu}, "
               "\"naps\": {\"consumer\": %llu, \"others\": %llu}, ",
               (unsigned long long)(w1->yield[1] - w0->yield[1]),
               (unsigned long long)(w1->yield[0] - w0->yield[0]),
               (unsigned long long)(w1->nap[1] - w0->nap[1]),
               (unsigned long long)(w1->nap[0] - w0->nap[0]));
    printf("\"stats\": {\"pollers\": %llu, \"registered\": %llu",
           (unsigned long long)s1->pollers, (unsigned long long)s1->registered);
#define PRINT_DELTA(f) \
    printf(", \"" #f "\": %llu", (unsigned long long)(s1->f - s0->f));
    WFC_COUNTER_STATS(PRINT_DELTA)
#undef PRINT_DELTA
    printf("}}\n");
    fflush(stdout);
}

int main(int argc, char **argv)
{
    struct opts o;
    if (parse_opts(argc, argv, &o) < 0)
        return 2;

    struct source *src = calloc((size_t)o.fds, sizeof(*src));
    wfc_event *evs = calloc((size_t)o.maxevents, sizeof(*evs));
    if (!src || !evs) {
        fprintf(stderr, "ep_bench: out of memory\n");
        return 1;
    }
    for (int i = 0; i < o.fds; i++)
        src[i].rfd = src[i].wfd = -1;

    int rc = open_sources(src, o.fds, o.use_pipe);
    if (rc < 0) {
        fprintf(stderr, "ep_bench: cannot open fds: %s (raise `ulimit -n`?)\n",
                strerror(-rc));
        close_sources(src, o.fds, o.use_pipe);
        return 1;
    }

    wfc_ep *ep = NULL;
    rc = wfc_ep_create(&ep, o.pollers, -1, o.ready_list);
    if (rc < 0) {
        fprintf(stderr, "ep_bench: wfc_ep_create: %s\n", strerror(-rc));
        close_sources(src, o.fds, o.use_pipe);
        return 1;
    }
    if (!o.snapshot)
        wfc_ep_set_snapshot(ep, 0);
    /* Level-triggered EPOLLIN: the core keeps it EPOLLONESHOT in the kernel
     * and re-arms it after each delivery. */
    for (int i = 0; i < o.fds; i++) {
        rc = wfc_ep_add(ep, src[i].rfd, EPOLLIN, (uint64_t)i);
        if (rc < 0) {
            fprintf(stderr, "ep_bench: wfc_ep_add(%d): %s\n", src[i].rfd,
                    strerror(-rc));
            wfc_ep_destroy(ep, 0);
            close_sources(src, o.fds, o.use_pipe);
            return 1;
        }
    }

    int pinned = o.pin ? pin_threads() : -1;

    struct counters c;
    memset(&c, 0, sizeof(c));
    wfc_ep_stats s0, s1;
    struct rusage r0, r1, t0, t1;
    struct wrap_counts w0, w1;
    memset(&s0, 0, sizeof(s0));
    is_consumer = 1;

    uint64_t start = now_ns();
    uint64_t warm_end = start + (uint64_t)(o.warmup * 1e9);
    uint64_t end = 0, t_measure = 0;
    int measuring = 0;
    if (o.warmup <= 0) {
        wfc_ep_get_stats(ep, &s0);
        getrusage(RUSAGE_SELF, &r0);
        getrusage(RUSAGE_THREAD, &t0);
        wrap_snapshot(&w0);
        t_measure = now_ns();
        end = t_measure + (uint64_t)(o.seconds * 1e9);
        measuring = 1;
    }

    uint64_t batch = 0;
    const int io = o.io, work_ns = o.work_ns, use_pipe = o.use_pipe;
    for (;;) {
        int n = wfc_ep_wait(ep, evs, o.maxevents, o.timeout_ms);
        if (n == -EINTR) {
            c.eintr++;
            continue;
        }
        if (n < 0) {
            fprintf(stderr, "ep_bench: wfc_ep_wait: %s\n", strerror(-n));
            wfc_ep_destroy(ep, 0);
            close_sources(src, o.fds, o.use_pipe);
            return 1;
        }
        batch++;
        c.waits++;
        if (n == 0)
            c.empty_waits++;
        if ((uint64_t)n > c.max_batch)
            c.max_batch = (uint64_t)n;
        for (int i = 0; i < n; i++) {
            uint64_t idx = evs[i].data;
            if (idx >= (uint64_t)o.fds || src[idx].rfd != evs[i].fd
                || !(evs[i].events & EPOLLIN)) {
                c.bad_events++;
                continue;
            }
            struct source *s = &src[idx];
            if (s->batch == batch)
                c.dup_in_batch++;
            s->batch = batch;
            s->count++;
            if (io) {
                if (use_pipe) {
                    char b;
                    if (read(s->rfd, &b, 1) != 1)
                        c.eagain++;
                    b = 1;
                    if (write(s->wfd, &b, 1) != 1)
                        c.bad_events++;
                } else {
                    uint64_t v;
                    if (read(s->rfd, &v, sizeof(v)) != (ssize_t)sizeof(v))
                        c.eagain++;
                    v = 1;
                    if (write(s->wfd, &v, sizeof(v)) != (ssize_t)sizeof(v))
                        c.bad_events++;
                }
            }
            if (work_ns)
                spin_ns((uint64_t)work_ns);
        }
        c.events += (uint64_t)n;

        uint64_t t = now_ns();
        if (!measuring) {
            if (t >= warm_end) {
                /* Start measuring: everything counted so far was warm-up. */
                memset(&c, 0, sizeof(c));
                for (int i = 0; i < o.fds; i++)
                    src[i].count = 0;
                wfc_ep_get_stats(ep, &s0);
                getrusage(RUSAGE_SELF, &r0);
                getrusage(RUSAGE_THREAD, &t0);
                wrap_snapshot(&w0);
                t_measure = now_ns();
                end = t_measure + (uint64_t)(o.seconds * 1e9);
                measuring = 1;
            }
        } else if (t >= end) {
            wfc_ep_get_stats(ep, &s1);
            getrusage(RUSAGE_SELF, &r1);
            getrusage(RUSAGE_THREAD, &t1);
            wrap_snapshot(&w1);
            double secs = (double)(t - t_measure) / 1e9;
            print_result(&o, &c, secs, &s0, &s1, &r0, &r1, &t0, &t1, &w0, &w1, src, pinned);
            break;
        }
    }

    wfc_ep_destroy(ep, 0);
    close_sources(src, o.fds, o.use_pipe);
    free(src);
    free(evs);
    return (c.bad_events || c.dup_in_batch) ? 3 : 0;
}
