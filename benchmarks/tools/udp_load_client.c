/*
 * udp_load_client.c - load client for UDP echo servers, on loopback only.
 *
 * N UDP sockets, each connect()ed to the server (so each has its own source
 * port and the kernel drops anything not from the server), one epoll
 * (level-triggered, non-blocking sockets).  Each socket keeps exactly one
 * datagram of --size bytes in flight: it sends one, waits for its echo,
 * records the round trip and sends the next.  After --warmup seconds the
 * counters are reset; the following --duration seconds are the measured
 * window.  Before the warm-up every socket makes one round trip (the ready
 * pass, bounded by --ready-timeout), so the server has seen all of them.
 *
 * Datagrams can be lost (a server's receive queue that overflows drops
 * them): a socket whose echo has not come back within --loss-timeout counts
 * one loss and sends the next datagram.  Each datagram starts with its
 * socket's sequence number (8 bytes), so a late echo of an earlier one is
 * told apart, counted ("late") and ignored; the rest of the datagram is the
 * pattern byte[i] = i % 251, checked at both ends.  An echo of the wrong
 * length or content, or a socket error (ECONNREFUSED: nothing listens), is
 * an error and closes that socket.
 *
 * The run is bounded in time: at most --ready-timeout + --warmup +
 * --duration seconds, then it prints and exits.  The server must be on a
 * loopback address (127.0.0.0/8 or ::1): anything else is refused.
 *
 * Output: one JSON line on stdout, with the keys of load_client.c where
 * they mean the same ("requests" are echoes received in the window):
 *   {"requests", "seconds", "rps", "p50_us", "p90_us", "p99_us", "max_us",
 *    "mean_us", "errors", "error", "connections" (sockets), "threads" (1),
 *    "size", "conns_alive", "conns_idle" (alive but no echo in the window),
 *    "client_cpu_s", "ready_s", "lost", "late", "interrupted"}
 * Latency percentiles from a log-bucket histogram (within about 6%).
 *
 * --marks: print "mark start" / "mark end" on stderr at the measured
 * window's edges, so that a driver can sample the server's CPU time there.
 *
 * Exit status: 0 ok, 1 setup failure (message on stderr), 2 usage or a
 * non-loopback address, 3 the run finished with errors (JSON still printed).
 *
 * Build: cc -O2 -Wall -Wextra -std=gnu11 benchmarks/tools/udp_load_client.c \
 *            -o benchmarks/build/udp_load_client
 * (benchmarks/echo_bench.py --modes udp does this and drives the runs).
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <netdb.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define PATTERN_PERIOD 251
#define SEQ_BYTES 8
#define MAX_DATAGRAM 65507          /* the largest UDP payload over IPv4 */
#define SUB_BITS 4
#define SUB (1 << SUB_BITS)
#define NBUCKETS (64 * SUB)
#define EVENTS 256

struct udp_socket {
    int fd;
    int alive;
    uint64_t seq;         /* of the datagram in flight */
    uint64_t t_sent;      /* ns, when it was sent */
    uint64_t echoes;      /* echoes received in the current phase */
};

struct totals {
    uint64_t requests, errors, lost, late;
    uint64_t lat_sum_ns, lat_max_ns;
    uint64_t hist[NBUCKETS];
    char error[160];
};

static size_t msg_size = 1024;
static unsigned char *out_buf;      /* the datagram being sent */
static unsigned char *in_buf;       /* an echo being read (one more byte, to see longer ones) */
static volatile sig_atomic_t stop_flag;

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static double tv_s(const struct timeval *tv)
{
    return (double)tv->tv_sec + (double)tv->tv_usec / 1e6;
}

static unsigned bucket_of(uint64_t v)
{
    if (v < SUB)
        return (unsigned)v;
    unsigned e = 63u - (unsigned)__builtin_clzll(v);
    unsigned sub = (unsigned)(v >> (e - SUB_BITS)) & (SUB - 1);
    return (e - SUB_BITS + 1) * SUB + sub;
}

static double bucket_value(unsigned b)
{
    if (b < SUB)
        return (double)b;
    unsigned e = b / SUB + SUB_BITS - 1;
    unsigned sub = b % SUB;
    double lo = (double)(((uint64_t)SUB + sub) << (e - SUB_BITS));
    return lo + (double)(1ull << (e - SUB_BITS)) / 2.0;
}

static void fail_socket(struct totals *tot, int epfd, struct udp_socket *s,
                        const char *what, int err)
{
    if (!tot->error[0])
        snprintf(tot->error, sizeof tot->error, "%s%s%s", what,
                 err ? ": " : "", err ? strerror(err) : "");
    tot->errors++;
    epoll_ctl(epfd, EPOLL_CTL_DEL, s->fd, NULL);
    close(s->fd);
    s->fd = -1;
    s->alive = 0;
}

/* Send the socket's next datagram (sequence number seq + 1). */
static void send_next(struct totals *tot, int epfd, struct udp_socket *s, uint64_t t)
{
    s->seq++;
    s->t_sent = t;
    size_t n = msg_size < SEQ_BYTES ? msg_size : SEQ_BYTES;
    memcpy(out_buf, &s->seq, n);
    for (;;) {
        ssize_t r = send(s->fd, out_buf, msg_size, 0);
        if (r == (ssize_t)msg_size)
            return;
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0 && (errno == EAGAIN || errno == ENOBUFS))
            return;   /* not sent: counts as lost at the timeout */
        fail_socket(tot, epfd, s, "send", r < 0 ? errno : 0);
        return;
    }
}

/* Read what the socket has; count the echo of the datagram in flight and
 * send the next (in the ready pass: stop at the first echo, so that the
 * sockets done cannot keep the server's queue full for the others).
 * measuring: the echo is in the measured window. */
static void on_readable(struct totals *tot, int epfd, struct udp_socket *s,
                        int measuring, int ready_pass)
{
    for (;;) {
        ssize_t r = recv(s->fd, in_buf, msg_size + 1, 0);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            if (errno != EAGAIN)
                fail_socket(tot, epfd, s, "recv", errno);
            return;
        }
        size_t k = (size_t)r;
        if (k != msg_size) {
            fail_socket(tot, epfd, s, "echo length differs from the datagram's", 0);
            return;
        }
        /* a datagram shorter than SEQ_BYTES carries the low bytes of it */
        uint64_t seq = 0, mask = k >= SEQ_BYTES ? UINT64_MAX : (1ull << (8 * k)) - 1;
        memcpy(&seq, in_buf, k < SEQ_BYTES ? k : SEQ_BYTES);
        if (k > SEQ_BYTES && (in_buf[SEQ_BYTES] != SEQ_BYTES % PATTERN_PERIOD
                              || in_buf[k - 1] != (k - 1) % PATTERN_PERIOD)) {
            fail_socket(tot, epfd, s, "echo content differs from the datagram", 0);
            return;
        }
        if (seq != (s->seq & mask)) {
            tot->late++;   /* the echo of a datagram already counted lost */
            continue;
        }
        uint64_t t = now_ns();
        s->echoes++;
        if (measuring) {
            uint64_t lat = t - s->t_sent;
            tot->requests++;
            tot->lat_sum_ns += lat;
            if (lat > tot->lat_max_ns)
                tot->lat_max_ns = lat;
            tot->hist[bucket_of(lat)]++;
        }
        if (ready_pass)
            return;
        send_next(tot, epfd, s, t);
        if (!s->alive)
            return;
    }
}

/* Run the sockets until t_end.  ready_pass: until every socket has had one
 * echo (or t_end).  Otherwise warm-up until t_measure, then the measured
 * window until t_end, with this process's CPU use at its edges in *cpu. */
static void run(struct udp_socket *socks, long n, int epfd, struct totals *tot,
                uint64_t t_measure, uint64_t t_end, uint64_t loss_timeout_ns,
                int ready_pass, int marks, struct rusage cpu[2])
{
    struct epoll_event evs[EVENTS];
    uint64_t t = now_ns(), next_scan = t + loss_timeout_ns / 4;
    int marked_start = 0;
    long ready = 0;
    for (long i = 0; i < n; i++)
        if (socks[i].alive)
            send_next(tot, epfd, &socks[i], t);
    while (!stop_flag) {
        t = now_ns();
        if (t >= t_end)
            break;
        if (!marked_start && !ready_pass && t >= t_measure) {
            /* the window starts: what came before was warm-up */
            marked_start = 1;
            tot->lost = tot->late = 0;
            getrusage(RUSAGE_SELF, &cpu[0]);
            if (marks) {
                fprintf(stderr, "mark start\n");
                fflush(stderr);
            }
        }
        if (t >= next_scan) {
            for (long i = 0; i < n; i++) {
                struct udp_socket *s = &socks[i];
                if (s->alive && t - s->t_sent >= loss_timeout_ns
                        && !(ready_pass && s->echoes > 0)) {
                    tot->lost++;
                    send_next(tot, epfd, s, t);
                }
            }
            next_scan = t + loss_timeout_ns / 4;
        }
        uint64_t until = next_scan < t_end ? next_scan : t_end;
        if (!marked_start && !ready_pass && t_measure < until)
            until = t_measure;
        int timeout = (int)((until - t + 999999) / 1000000);
        int k = epoll_wait(epfd, evs, EVENTS, timeout);
        if (k < 0) {
            if (errno == EINTR)
                continue;
            snprintf(tot->error, sizeof tot->error, "epoll_wait: %s", strerror(errno));
            tot->errors++;
            break;
        }
        int measuring = marked_start;
        for (int i = 0; i < k; i++) {
            struct udp_socket *s = evs[i].data.ptr;
            if (!s->alive)
                continue;
            uint64_t before = s->echoes;
            on_readable(tot, epfd, s, measuring, ready_pass);
            if (ready_pass && before == 0 && s->echoes > 0)
                ready++;
        }
        if (ready_pass) {
            long alive = 0;
            for (long i = 0; i < n; i++)
                alive += socks[i].alive;
            if (ready >= alive)
                break;
        }
    }
    if (marked_start)
        getrusage(RUSAGE_SELF, &cpu[1]);
    if (marked_start && marks) {
        fprintf(stderr, "mark end\n");
        fflush(stderr);
    }
}

/* A connected, non-blocking UDP socket to host:port, which must be a
 * loopback address.  -1 with a message on stderr; -2: not loopback. */
static int open_socket(const char *host, const char *port)
{
    struct addrinfo hints = { .ai_socktype = SOCK_DGRAM, .ai_flags = AI_NUMERICSERV };
    struct addrinfo *res;
    int rc = getaddrinfo(host, port, &hints, &res);
    if (rc != 0) {
        fprintf(stderr, "udp_load_client: %s:%s: %s\n", host, port, gai_strerror(rc));
        return -1;
    }
    int loopback = 0;
    if (res->ai_family == AF_INET) {
        uint32_t a = ntohl(((struct sockaddr_in *)res->ai_addr)->sin_addr.s_addr);
        loopback = (a >> 24) == 127;
    } else if (res->ai_family == AF_INET6) {
        loopback = IN6_IS_ADDR_LOOPBACK(&((struct sockaddr_in6 *)res->ai_addr)->sin6_addr);
    }
    if (!loopback) {
        fprintf(stderr, "udp_load_client: %s is not a loopback address (127.0.0.0/8 or ::1): "
                "refused\n", host);
        freeaddrinfo(res);
        return -2;
    }
    int fd = socket(res->ai_family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0 || connect(fd, res->ai_addr, res->ai_addrlen) < 0) {
        fprintf(stderr, "udp_load_client: socket/connect %s:%s: %s\n", host, port, strerror(errno));
        if (fd >= 0)
            close(fd);
        freeaddrinfo(res);
        return -1;
    }
    freeaddrinfo(res);
    return fd;
}

static void on_signal(int sig)
{
    (void)sig;
    stop_flag = 1;
}

static void usage(FILE *f)
{
    fprintf(f,
"usage: udp_load_client [options]\n"
"  --host H              server address, loopback only (default 127.0.0.1)\n"
"  --port P              server port (default 8888)\n"
"  -c, --sockets N       client sockets, one datagram in flight each (default 10)\n"
"  -s, --size BYTES      datagram size, 1..65507 (default 1024)\n"
"  -d, --duration S      measured seconds (default 2)\n"
"  -w, --warmup S        warm-up seconds, not measured (default 0.5)\n"
"  --loss-timeout MS     an echo not back by then counts lost; the socket sends\n"
"                        its next datagram (default 50)\n"
"  --ready-timeout S     the ready pass (one echo per socket) ends by then; a\n"
"                        socket without its echo fails (default 10)\n"
"  --marks               print \"mark start\" and \"mark end\" on stderr at the\n"
"                        measured window's edges\n"
"Prints one JSON line; exit 0 ok, 1 setup failure, 2 usage, 3 errors.\n");
}

int main(int argc, char **argv)
{
    const char *host = "127.0.0.1", *port = "8888";
    long nsocks = 10;
    double duration = 2.0, warmup = 0.5, loss_ms = 50.0, ready_timeout = 10.0;
    int marks = 0;
    static const struct option opts[] = {
        {"host", required_argument, NULL, 'H'},
        {"port", required_argument, NULL, 'p'},
        {"sockets", required_argument, NULL, 'c'},
        {"connections", required_argument, NULL, 'c'},
        {"size", required_argument, NULL, 's'},
        {"duration", required_argument, NULL, 'd'},
        {"warmup", required_argument, NULL, 'w'},
        {"loss-timeout", required_argument, NULL, 'L'},
        {"ready-timeout", required_argument, NULL, 'R'},
        {"marks", no_argument, NULL, 'm'},
        {"help", no_argument, NULL, 'x'},
        {NULL, 0, NULL, 0},
    };
    int o;
    char *end;
    while ((o = getopt_long(argc, argv, "c:s:d:w:", opts, NULL)) != -1) {
        switch (o) {
        case 'H': host = optarg; break;
        case 'p': port = optarg; break;
        case 'c': nsocks = strtol(optarg, &end, 10); if (*end || nsocks < 1) goto bad; break;
        case 's': {
            long v = strtol(optarg, &end, 10);
            if (*end || v < 1 || v > MAX_DATAGRAM) goto bad;
            msg_size = (size_t)v;
            break;
        }
        case 'd': duration = strtod(optarg, &end); if (*end || duration <= 0) goto bad; break;
        case 'w': warmup = strtod(optarg, &end); if (*end || warmup < 0) goto bad; break;
        case 'L': loss_ms = strtod(optarg, &end); if (*end || loss_ms <= 0) goto bad; break;
        case 'R': ready_timeout = strtod(optarg, &end); if (*end || ready_timeout <= 0) goto bad; break;
        case 'm': marks = 1; break;
        case 'x': usage(stdout); return 0;
        default: goto bad;
        }
    }
    if (optind != argc)
        goto bad;

    struct sigaction sa = { .sa_handler = on_signal };
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < (rlim_t)nsocks + 64) {
        rl.rlim_cur = rl.rlim_max < (rlim_t)nsocks + 64 ? rl.rlim_max : (rlim_t)nsocks + 64;
        setrlimit(RLIMIT_NOFILE, &rl);
    }

    out_buf = malloc(msg_size);
    in_buf = malloc(msg_size + 1);
    struct udp_socket *socks = calloc((size_t)nsocks, sizeof *socks);
    static struct totals tot;
    if (!out_buf || !in_buf || !socks) {
        fprintf(stderr, "udp_load_client: out of memory\n");
        return 1;
    }
    for (size_t i = 0; i < msg_size; i++)
        out_buf[i] = (unsigned char)(i % PATTERN_PERIOD);
    int epfd = epoll_create1(EPOLL_CLOEXEC);
    if (epfd < 0) {
        fprintf(stderr, "udp_load_client: epoll_create1: %s\n", strerror(errno));
        return 1;
    }
    for (long i = 0; i < nsocks; i++) {
        int fd = open_socket(host, port);
        if (fd < 0)
            return fd == -2 ? 2 : 1;
        socks[i].fd = fd;
        socks[i].alive = 1;
        struct epoll_event ev = { .events = EPOLLIN, .data.ptr = &socks[i] };
        if (epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev) < 0) {
            fprintf(stderr, "udp_load_client: epoll_ctl: %s\n", strerror(errno));
            return 1;
        }
    }
    uint64_t loss_ns = (uint64_t)(loss_ms * 1e6);

    /* the ready pass: one echo per socket */
    uint64_t t0 = now_ns();
    struct rusage cpu[2];
    run(socks, nsocks, epfd, &tot, 0, t0 + (uint64_t)(ready_timeout * 1e9), loss_ns, 1, 0, cpu);
    double ready_s = (double)(now_ns() - t0) / 1e9;
    long not_ready = 0;
    for (long i = 0; i < nsocks; i++) {
        if (socks[i].alive && socks[i].echoes == 0) {
            not_ready++;
            fail_socket(&tot, epfd, &socks[i], "no echo within --ready-timeout", 0);
        }
        socks[i].echoes = 0;
    }
    if (not_ready)
        fprintf(stderr, "udp_load_client: %ld socket(s) got no echo within %.1f s\n",
                not_ready, ready_timeout);
    tot.lost = tot.late = 0;

    /* warm-up, then the measured window */
    long alive_before = 0;
    for (long i = 0; i < nsocks; i++)
        alive_before += socks[i].alive;
    double cpu_s = -1.0;
    if (alive_before > 0) {
        t0 = now_ns();
        uint64_t t_measure = t0 + (uint64_t)(warmup * 1e9);
        uint64_t t_end = t_measure + (uint64_t)(duration * 1e9);
        memset(cpu, 0, sizeof cpu);
        run(socks, nsocks, epfd, &tot, t_measure, t_end, loss_ns, 0, marks, cpu);
        cpu_s = tv_s(&cpu[1].ru_utime) + tv_s(&cpu[1].ru_stime)
                - tv_s(&cpu[0].ru_utime) - tv_s(&cpu[0].ru_stime);
    }

    long alive = 0, idle = 0;
    for (long i = 0; i < nsocks; i++) {
        alive += socks[i].alive;
        idle += socks[i].alive && socks[i].echoes == 0;
    }
    double pct[3] = {0, 0, 0};
    const double qs[3] = {0.50, 0.90, 0.99};
    for (int q = 0; q < 3 && tot.requests; q++) {
        uint64_t target = (uint64_t)(qs[q] * (double)tot.requests);
        if (target >= tot.requests)
            target = tot.requests - 1;
        uint64_t cum = 0;
        for (int b = 0; b < NBUCKETS; b++) {
            cum += tot.hist[b];
            if (cum > target) {
                pct[q] = bucket_value((unsigned)b) / 1000.0;
                break;
            }
        }
    }
    /* error holds only our fixed strings and strerror(): nothing to escape */
    printf("{\"requests\": %llu, \"seconds\": %.3f, \"rps\": %.1f, "
           "\"p50_us\": %.1f, \"p90_us\": %.1f, \"p99_us\": %.1f, \"max_us\": %.1f, "
           "\"mean_us\": %.1f, \"errors\": %llu, \"error\": \"%s\", "
           "\"connections\": %ld, \"threads\": 1, \"size\": %zu, "
           "\"conns_alive\": %ld, \"conns_idle\": %ld, \"client_cpu_s\": %.3f, \"ready_s\": %.3f, "
           "\"lost\": %llu, \"late\": %llu, \"interrupted\": %s}\n",
           (unsigned long long)tot.requests, duration, (double)tot.requests / duration,
           pct[0], pct[1], pct[2], (double)tot.lat_max_ns / 1000.0,
           tot.requests ? (double)tot.lat_sum_ns / (double)tot.requests / 1000.0 : 0.0,
           (unsigned long long)tot.errors, tot.error, nsocks, msg_size,
           alive, idle, cpu_s, ready_s, (unsigned long long)tot.lost,
           (unsigned long long)tot.late, stop_flag ? "true" : "false");
    fflush(stdout);
    for (long i = 0; i < nsocks; i++)
        if (socks[i].fd >= 0)
            close(socks[i].fd);
    close(epfd);
    return tot.errors ? 3 : 0;

bad:
    usage(stderr);
    return 2;
}
