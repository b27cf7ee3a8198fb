/*
 * io_stress.c - stress harness for poller-side I/O (eventpoll_core.c,
 * POLLER-SIDE I/O), with real sockets and real threads.
 *
 * One consuming thread (the event loop's role) and P pinned pollers.
 *
 * Echo connections (unix socketpairs): peer threads send each connection
 * a stream of 32-bit sequence numbers and check that the echo brings back
 * exactly that stream.  The consumer takes the pollers' reads
 * (wfc_ep_io_take_read) and queues them back (wfc_ep_io_write), or, for a
 * short or failed send (WFC_EV_IO_WRITE), takes the rest back
 * (wfc_ep_io_take_writes) and sends it itself.  At random it pauses a
 * connection as a transport's pause_reading() does (io_disable, take the
 * read, take the output, unregister) and resumes it later (register,
 * io_enable): the held read and output go out first, in order.
 *
 * Victim connections: the consumer writes into the far end itself, so
 * pollers read from the near end, and at random unregisters and closes
 * both ends and opens a new pair, which usually gets the same fd numbers.
 * Every incarnation writes its own tag byte: a read that brings another
 * tag came from a closed or reused fd (the BUSY protocol must prevent it).
 *
 * Counters say whether the stream arrived whole (lost, corrupt), whether a
 * read crossed incarnations (foreign), and how much of the protocol ran.
 *
 *   io_stress [echo_conns pollers values_per_conn victims seconds_cap]
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "eventpoll_core.h"
#include "stress_common.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#define IO_MAX_CONNS 256
#define IO_MAX_VICTIMS 64
#define IO_PEERS 2
#define IO_WINDOW 4096          /* values in flight per connection */
#define IO_STALL_MS 300         /* a blocking wait this long with work in flight: a stall */

struct io_stress_result {
    int64_t values;             /* values echoed whole, all connections */
    int64_t corrupt;            /* echo bytes that differ from what was sent */
    int64_t lost;               /* connections whose echo did not complete */
    int64_t foreign;            /* victim reads with another incarnation's tag */
    int64_t pauses;
    int64_t settled_writes;     /* WFC_EV_IO_WRITE reports handled */
    int64_t victim_cycles;
    int64_t stalls;             /* blocking waits that timed out with work in flight */
    int64_t io_reads, io_flushes, io_handbacks;
    int violations;
    double seconds;
};

struct io_conn {
    int near, far;              /* near: registered; far: the peer's */
    int registered;
    char *later;                /* a read echoed one wait later (as a stream's */
    ssize_t later_len;          /* reader task writes an iteration after the read) */
    /* peer side (one peer thread per connection) */
    uint32_t base, next_send, next_echo;
    uint32_t send_off;          /* bytes of next_send's value already sent */
    unsigned char echo_part[4];
    int echo_have;
};

struct io_victim {
    int near, far;
    unsigned char tag;
};

struct io_stress {
    wfc_ep *ep;
    int nconns, npollers, nvictims;
    uint32_t values;
    struct io_conn conns[IO_MAX_CONNS];
    struct io_victim victims[IO_MAX_VICTIMS];
    _Atomic int64_t corrupt, done_conns;
    _Atomic int stop;
};

static int io_nonblock_pair(int sv[2])
{
    return socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv);
}

/* Peer thread: drive connections ci = index, index + IO_PEERS, ... */
static void *io_peer(void *arg)
{
    struct io_stress *s = ((void **)arg)[0];
    int index = (int)(intptr_t)((void **)arg)[1];

    while (!atomic_load_explicit(&s->stop, memory_order_relaxed)) {
        int busy = 0, all_done = 1;
        for (int ci = index; ci < s->nconns; ci += IO_PEERS) {
            struct io_conn *c = &s->conns[ci];
            if (c->next_echo - c->base >= s->values)
                continue;
            all_done = 0;
            /* send */
            while (c->next_send - c->base < s->values && c->next_send - c->next_echo < IO_WINDOW) {
                unsigned char v[4];
                uint32_t x = c->next_send;
                memcpy(v, &x, 4);
                ssize_t n = send(c->far, v + c->send_off, 4 - c->send_off, MSG_NOSIGNAL);
                if (n <= 0)
                    break;
                busy = 1;
                c->send_off += (uint32_t)n;
                if (c->send_off == 4) {
                    c->send_off = 0;
                    c->next_send++;
                }
            }
            /* receive the echo */
            for (;;) {
                unsigned char buf[4096];
                ssize_t n = recv(c->far, buf, sizeof(buf), 0);
                if (n <= 0)
                    break;
                busy = 1;
                for (ssize_t i = 0; i < n; i++) {
                    c->echo_part[c->echo_have++] = buf[i];
                    if (c->echo_have == 4) {
                        uint32_t x;
                        memcpy(&x, c->echo_part, 4);
                        if (x != c->next_echo)
                            atomic_fetch_add_explicit(&s->corrupt, 1, memory_order_relaxed);
                        c->next_echo++;
                        c->echo_have = 0;
                    }
                }
                if (c->next_echo - c->base == s->values)
                    atomic_fetch_add_explicit(&s->done_conns, 1, memory_order_relaxed);
            }
        }
        if (all_done)
            break;
        if (!busy) {
            struct timespec ts = {0, 20000};
            nanosleep(&ts, NULL);
        }
    }
    return NULL;
}

/* Consumer: send all of buf on a non-blocking fd, waiting for room. */
static void io_send_all(int fd, const char *buf, size_t len)
{
    while (len > 0) {
        ssize_t n = send(fd, buf, len, MSG_NOSIGNAL);
        if (n > 0) {
            buf += n;
            len -= (size_t)n;
        } else if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
            struct pollfd p = {fd, POLLOUT, 0};
            poll(&p, 1, 10);
        } else {
            return;
        }
    }
}

/* Consumer: a read the pollers made for an echo connection goes back out. */
static void io_echo(struct io_stress *s, int fd, char *buf, ssize_t len)
{
    if (len > 0 && wfc_ep_io_write(s->ep, fd, buf, (size_t)len) < 0)
        io_send_all(fd, buf, (size_t)len);
    wfc_ep_io_read_done(s->ep, buf);
}

/* Consumer: echo what was kept for later (before anything newer). */
static void io_echo_later(struct io_stress *s, struct io_conn *c)
{
    if (c->later != NULL) {
        io_echo(s, c->near, c->later, c->later_len);
        c->later = NULL;
    }
}

static void io_settle(struct io_stress *s, int fd)
{
    char *buf;
    size_t len;
    int err;
    if (wfc_ep_io_take_writes(s->ep, fd, &buf, &len, &err) == 0 && buf != NULL) {
        io_send_all(fd, buf, len);
        free(buf);
    }
}

/* Consumer: pause_reading() as the transport does it. */
static void io_pause(struct io_stress *s, struct io_conn *c)
{
    char *buf = NULL;
    ssize_t len = 0;
    io_echo_later(s, c);
    wfc_ep_io_disable(s->ep, c->near);
    if (wfc_ep_io_take_read(s->ep, c->near, &buf, &len)) {
        /* The held read: echoed before anything newer (the transport
         * delivers it first at resume; here it simply goes out now, after
         * the output queued before it). */
        io_settle(s, c->near);
        if (len > 0)
            io_send_all(c->near, buf, (size_t)len);
        wfc_ep_io_read_done(s->ep, buf);   /* back to the receive-buffer pool */
    }
    io_settle(s, c->near);
    wfc_ep_del(s->ep, c->near);
    c->registered = 0;
}

static void io_resume(struct io_stress *s, struct io_conn *c, int ci)
{
    if (wfc_ep_add(s->ep, c->near, EPOLLIN, (uint64_t)ci) == 0) {
        wfc_ep_io_enable(s->ep, c->near);
        c->registered = 1;
    }
}

static void io_victim_open(struct io_stress *s, int vi, uint64_t *rng)
{
    struct io_victim *v = &s->victims[vi];
    int sv[2];
    if (io_nonblock_pair(sv) < 0) {
        v->near = v->far = -1;
        return;
    }
    v->near = sv[0];
    v->far = sv[1];
    v->tag = (unsigned char)(stress_rand(rng) | 1);
    wfc_ep_add(s->ep, v->near, EPOLLIN, (uint64_t)(IO_MAX_CONNS + vi));
    wfc_ep_io_enable(s->ep, v->near);
}

static void io_victim_close(struct io_stress *s, int vi)
{
    struct io_victim *v = &s->victims[vi];
    char *buf;
    size_t len;
    int err;
    if (v->near < 0)
        return;
    /* As a transport closes (stop poller reads, drop output, unregister,
     * then close), or every other time straight to unregister: removal
     * alone must wait a poller's read out. */
    if (v->tag & 2) {
        wfc_ep_io_disable(s->ep, v->near);
        if (wfc_ep_io_take_writes(s->ep, v->near, &buf, &len, &err) == 0)
            free(buf);
    }
    wfc_ep_del(s->ep, v->near);
    close(v->near);
    close(v->far);
    v->near = v->far = -1;
}

int io_stress_run(int nconns, int npollers, uint32_t values, int nvictims, double cap,
                  struct io_stress_result *res)
{
    struct io_stress *s = calloc(1, sizeof(*s));
    pthread_t peers[IO_PEERS];
    void *args[IO_PEERS][2];
    wfc_event evs[256];
    uint64_t rng = stress_splitmix(12345);
    double t0 = stress_now();
    int r;

    memset(res, 0, sizeof(*res));
    if (s == NULL)
        return -ENOMEM;
    if (nconns > IO_MAX_CONNS)
        nconns = IO_MAX_CONNS;
    if (nvictims > IO_MAX_VICTIMS)
        nvictims = IO_MAX_VICTIMS;
    s->nconns = nconns;
    s->npollers = npollers;
    s->nvictims = nvictims;
    s->values = values;
    r = wfc_ep_create(&s->ep, npollers, -1, WFC_READY_LIST_WFCQUEUE);
    if (r < 0) {
        free(s);
        return r;
    }
    wfc_ep_set_snapshot(s->ep, 0);
    for (int ci = 0; ci < nconns; ci++) {
        struct io_conn *c = &s->conns[ci];
        int sv[2];
        if (io_nonblock_pair(sv) < 0) {
            r = -errno;
            goto out;
        }
        c->near = sv[0];
        c->far = sv[1];
        c->base = c->next_send = c->next_echo = (uint32_t)ci * 1000003u;
        io_resume(s, c, ci);
    }
    for (int vi = 0; vi < nvictims; vi++)
        io_victim_open(s, vi, &rng);
    for (int i = 0; i < IO_PEERS; i++) {
        args[i][0] = s;
        args[i][1] = (void *)(intptr_t)i;
        pthread_create(&peers[i], NULL, io_peer, args[i]);
    }

    for (uint64_t iter = 0;; iter++) {
        /* Every other wait does not block: hand-backs may be kept one wait
         * then (rearm_delivered's deferral).  The others block up to
         * IO_STALL_MS: with every echo connection registered and not done,
         * the peers always have values in flight, so a wait that times out
         * means work was lost in the core (a stall; the next wait may
         * recover it) -- unless values in flight are here, in a read kept
         * for later: a peer whose whole window (or last values) is in it
         * sends nothing until it is echoed, after this wait, and a wait
         * with nothing else to report then times out as it should. */
        int timeout = (iter & 1) ? 0 : IO_STALL_MS;
        int held_here = 0;
        for (int ci = 0; ci < nconns; ci++)
            held_here |= s->conns[ci].later != NULL;
        double t_wait = stress_now();
        int n = wfc_ep_wait(s->ep, evs, 256, timeout);
        /* Echoes kept from the last round: their items were handed back at
         * the start of this wait, so a poller may hold them BUSY now
         * (output queued then sets W_MORE). */
        for (int ci = 0; ci < nconns; ci++)
            io_echo_later(s, &s->conns[ci]);
        if (atomic_load_explicit(&s->done_conns, memory_order_relaxed) >= nconns)
            break;
        if (n == 0 && timeout > 0 && stress_now() - t_wait >= IO_STALL_MS * 0.9e-3) {
            int all_registered = 1;
            for (int ci = 0; ci < nconns; ci++)
                all_registered &= s->conns[ci].registered;
            if (all_registered && !held_here)
                res->stalls++;
            for (int ci = 0; ci < nconns; ci++)
                if (!s->conns[ci].registered)
                    io_resume(s, &s->conns[ci], ci);
        }
        if (stress_now() - t0 > cap)
            break;
        for (int i = 0; i < n; i++) {
            uint64_t d = evs[i].data;
            int fd = evs[i].fd;
            char *buf = NULL;
            ssize_t len = 0;
            if (d >= IO_MAX_CONNS) {                       /* a victim */
                struct io_victim *v = &s->victims[d - IO_MAX_CONNS];
                if (v->near != fd)
                    continue;
                if (wfc_ep_io_take_read(s->ep, fd, &buf, &len)) {
                    for (ssize_t k = 0; k < len; k++)
                        if ((unsigned char)buf[k] != v->tag)
                            res->foreign++;
                    wfc_ep_io_read_done(s->ep, buf);
                }
                continue;
            }
            if (evs[i].events & WFC_EV_IO_WRITE) {
                io_settle(s, fd);
                res->settled_writes++;
            }
            struct io_conn *c = &s->conns[d];
            if (wfc_ep_io_take_read(s->ep, fd, &buf, &len)) {
                io_echo_later(s, c);
                if (len > 0 && (stress_rand(&rng) & 1)) {
                    c->later = buf;
                    c->later_len = len;
                } else {
                    io_echo(s, fd, buf, len);
                }
            } else if (evs[i].events & EPOLLIN) {
                /* Read on the consumer (no read held: a poller found
                 * nothing, or the event came inline). */
                char tmp[65536];
                ssize_t m = recv(fd, tmp, sizeof(tmp), 0);
                if (m > 0) {
                    io_echo_later(s, c);
                    io_settle(s, fd);   /* the queue first: stream order */
                    io_send_all(fd, tmp, (size_t)m);
                }
            }
        }
        /* Storms: pause/resume an echo connection, cycle a victim, about
         * one round in 16 and 8, and both in the first round: a fast run
         * may be over in a few dozen rounds, and the test asks that each
         * storm ran. */
        uint64_t x = stress_rand(&rng);
        if (nconns > 0 && (iter == 0 || (x & 15) == 0)) {
            int ci = (int)((x >> 8) % (uint64_t)nconns);
            struct io_conn *c = &s->conns[ci];
            if (c->registered) {
                io_pause(s, c);
                res->pauses++;
            } else {
                io_resume(s, c, ci);
            }
        }
        for (int ci = 0; ci < nconns && (iter & 255) == 0; ci++)
            if (!s->conns[ci].registered)
                io_resume(s, &s->conns[ci], ci);
        if (nvictims > 0) {
            int vi = (int)((x >> 20) % (uint64_t)nvictims);
            struct io_victim *v = &s->victims[vi];
            if (v->near >= 0 && ((x >> 40) & 3) != 0) {
                char fill[64];
                memset(fill, v->tag, sizeof(fill));
                if (send(v->far, fill, sizeof(fill), MSG_NOSIGNAL) < 0) {
                    /* full: the pollers are behind; cycle it below */
                }
            }
            if (iter == 0 || ((x >> 44) & 7) == 0) {
                io_victim_close(s, vi);
                io_victim_open(s, vi, &rng);
                res->victim_cycles++;
            }
        }
    }
    r = 0;
out:
    atomic_store_explicit(&s->stop, 1, memory_order_relaxed);
    for (int i = 0; i < IO_PEERS && r == 0; i++)
        pthread_join(peers[i], NULL);
    {
        wfc_ep_stats st;
        wfc_ep_get_stats(s->ep, &st);
        res->io_reads = (int64_t)st.io_reads;
        res->io_flushes = (int64_t)st.io_flushes;
        res->io_handbacks = (int64_t)st.io_handbacks;
    }
    for (int ci = 0; ci < nconns; ci++) {
        struct io_conn *c = &s->conns[ci];
        res->values += (int64_t)(c->next_echo - c->base);
        if (c->next_echo - c->base != values)
            res->lost++;
        free(c->later);
        if (c->registered)
            wfc_ep_del(s->ep, c->near);
        close(c->near);
        close(c->far);
    }
    for (int vi = 0; vi < nvictims; vi++)
        io_victim_close(s, vi);
    res->corrupt = atomic_load(&s->corrupt);
    wfc_ep_destroy(s->ep, 0);
    free(s);
    res->seconds = stress_now() - t0;
    res->violations = (int)(res->corrupt + res->lost + res->foreign + res->stalls);
    return r;
}

#ifdef IO_STRESS_MAIN
int main(int argc, char **argv)
{
    int conns = argc > 1 ? atoi(argv[1]) : 32;
    int pollers = argc > 2 ? atoi(argv[2]) : 4;
    uint32_t values = argc > 3 ? (uint32_t)atoi(argv[3]) : 20000;
    int victims = argc > 4 ? atoi(argv[4]) : 16;
    double cap = argc > 5 ? atof(argv[5]) : 120;
    struct io_stress_result res;
    int r = io_stress_run(conns, pollers, values, victims, cap, &res);
    printf("io_stress: %s conns=%d pollers=%d values=%lld corrupt=%lld lost=%lld foreign=%lld stalls=%lld "
           "pauses=%lld settled=%lld victim_cycles=%lld io_reads=%lld io_flushes=%lld "
           "handbacks=%lld %.2fs\n",
           r == 0 && res.violations == 0 ? "OK" : "FAILED", conns, pollers,
           (long long)res.values, (long long)res.corrupt, (long long)res.lost,
           (long long)res.foreign, (long long)res.stalls, (long long)res.pauses, (long long)res.settled_writes,
           (long long)res.victim_cycles, (long long)res.io_reads, (long long)res.io_flushes,
           (long long)res.io_handbacks, res.seconds);
    return r == 0 && res.violations == 0 ? 0 : 1;
}
#endif
