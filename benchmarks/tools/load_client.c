/*
 * load_client.c - ping-pong load client for TCP (or unix socket) echo servers.
 *
 * N connections, split round-robin over T threads, each thread with its own
 * epoll instance (level-triggered, non-blocking sockets, TCP_NODELAY).  Every
 * connection sends one message of --size bytes, waits for the whole echo,
 * records the round trip's latency, and sends the next one.  After --warmup
 * seconds the counters are reset; the following --duration seconds are the
 * measured window.  Before the warm-up, every connection makes one round trip
 * (the ready pass, --ready-timeout), so that all N are accepted and served
 * before anything is timed.
 *
 * Checks: the echo must be exactly as long as the message (a connection
 * reads at most what it is still owed, so extra bytes shift the next echo
 * and are caught by the content check), and the first and last byte of every
 * chunk read must match the message at that offset (the message is
 * byte[i] = i % 251, so a shift by anything but a multiple of 251 shows).  A
 * mismatch, EOF or socket error counts one error and closes that connection.
 *
 * Output: one JSON line on stdout:
 *   {"requests", "seconds", "rps", "p50_us", "p90_us", "p99_us", "max_us",
 *    "mean_us", "errors", "connections", "threads", "size",
 *    "conns_alive", "conns_idle" (alive but no reply in the window),
 *    "client_cpu_s" (this process's CPU time in the window), ...}
 * Latency percentiles come from a log-bucket histogram (16 sub-buckets per
 * power of two of nanoseconds: within about 6%).
 *
 * --marks: print "mark start" / "mark end" on stderr at the measured window's
 * edges, so that a driver can sample the server's CPU time there.
 *
 * --hold: connect the N connections, do one round trip on each (so that the
 * server has accepted and served every one), print {"held": N, ...} and keep
 * them open, idle, until stdin reaches EOF or SIGTERM/SIGINT arrives.  Used
 * to measure the memory and the cost of idle connections.
 *
 * --tls: speak TLS (built with -DWITH_TLS, linked with -lssl -lcrypto; without
 * it the option is refused).  Each connection completes its handshake right
 * after connecting, before the ready pass, so no handshake falls in the
 * measured window; the server's certificate is not verified (the benchmark
 * makes its own throw-away one).  The echo protocol is the same, over
 * SSL_write/SSL_read on the non-blocking sockets: SSL_ERROR_WANT_READ waits
 * for EPOLLIN, SSL_ERROR_WANT_WRITE for EPOLLOUT, and a connection with a
 * message still to send retries it on any event (a write may need a read).
 *
 * Exit status: 0 ok, 1 setup or connect failure (message on stderr), 2 usage,
 * 3 the run finished but with errors (the JSON line is still printed).
 *
 * Build: cc -O2 -Wall -Wextra -std=gnu11 -pthread benchmarks/tools/load_client.c \
 *            -o benchmarks/build/load_client
 *   with TLS: add -DWITH_TLS ... -lssl -lcrypto (Debian/Ubuntu: libssl-dev)
 * (benchmarks/echo_bench.py does this and drives the runs).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>
#ifdef WITH_TLS
#include <openssl/err.h>
#include <openssl/ssl.h>
#endif

#define PATTERN_PERIOD 251
#define SUB_BITS 4
#define SUB (1 << SUB_BITS)
#define NBUCKETS (64 * SUB)
#define RECV_CHUNK (256 * 1024)

struct conn {
    int fd;
#ifdef WITH_TLS
    SSL *ssl;             /* NULL: plain TCP */
#endif
    int alive;
    size_t sent;          /* bytes of the current message sent */
    size_t got;           /* bytes of its echo received */
    int want_out;         /* EPOLLOUT registered */
    uint64_t t_start;     /* ns, when the current message was started */
    uint64_t done;        /* replies in the measured window */
};

struct worker {
    pthread_t tid;
    int id;
    int epfd;
    struct conn *conns;
    int nconns;
    uint64_t max_requests;   /* per connection; 0 = until the end time */
    /* results */
    uint64_t requests;
    uint64_t errors;
    uint64_t lat_sum_ns;
    uint64_t lat_max_ns;
    uint64_t hist[NBUCKETS];
    char errmsg[160];
};

static size_t msg_size = 1024;
static const unsigned char *pattern;   /* msg_size bytes, byte[i] = i % 251 */
static uint64_t t_measure_start, t_end; /* ns, CLOCK_MONOTONIC */
static volatile sig_atomic_t stop_flag;
#ifdef WITH_TLS
static int use_tls;                     /* --tls */
static SSL_CTX *tls_ctx;
#endif

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void sleep_until(uint64_t t)
{
    struct timespec ts = { .tv_sec = (time_t)(t / 1000000000u),
                           .tv_nsec = (long)(t % 1000000000u) };
    while (!stop_flag && clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR)
        ;
}

static double tv_s(const struct timeval *tv)
{
    return (double)tv->tv_sec + (double)tv->tv_usec / 1e6;
}

static unsigned bucket_of(uint64_t v)
{
    if (v < SUB)
        return (unsigned)v;
    unsigned e = 63u - (unsigned)__builtin_clzll(v);      /* e >= SUB_BITS */
    unsigned sub = (unsigned)(v >> (e - SUB_BITS)) & (SUB - 1);
    return (e - SUB_BITS + 1) * SUB + sub;
}

/* Midpoint of bucket b, in ns. */
static double bucket_value(unsigned b)
{
    if (b < SUB)
        return (double)b;
    unsigned e = b / SUB + SUB_BITS - 1;
    unsigned sub = b % SUB;
    double lo = (double)(((uint64_t)SUB + sub) << (e - SUB_BITS));
    double width = (double)(1ull << (e - SUB_BITS));
    return lo + width / 2.0;
}

static void fail_conn(struct worker *w, struct conn *c, const char *what, int err)
{
    if (!w->errmsg[0])
        snprintf(w->errmsg, sizeof w->errmsg, "%s%s%s", what,
                 err ? ": " : "", err ? strerror(err) : "");
    w->errors++;
    epoll_ctl(w->epfd, EPOLL_CTL_DEL, c->fd, NULL);
#ifdef WITH_TLS
    if (c->ssl) {
        SSL_free(c->ssl);
        c->ssl = NULL;
    }
#endif
    close(c->fd);
    c->fd = -1;
    c->alive = 0;
}

#ifdef WITH_TLS
/* What an SSL_read/SSL_write that returned n <= 0 means: 1 = wait for
 * EPOLLIN, 2 = wait for EPOLLOUT, 0 = the peer closed (close_notify),
 * -1 = an error (its text in msg). */
static int tls_status(SSL *ssl, int n, char *msg, size_t len)
{
    int e = SSL_get_error(ssl, n);
    switch (e) {
    case SSL_ERROR_WANT_READ:
        return 1;
    case SSL_ERROR_WANT_WRITE:
        return 2;
    case SSL_ERROR_ZERO_RETURN:
        return 0;
    case SSL_ERROR_SYSCALL:
        if (errno == 0 && ERR_peek_error() == 0) {
            snprintf(msg, len, "server closed the connection (no close_notify)");
            return -1;
        }
        snprintf(msg, len, "TLS: %s", errno ? strerror(errno) : "syscall error");
        ERR_clear_error();
        return -1;
    default:
        ERR_error_string_n(ERR_get_error(), msg, len);
        ERR_clear_error();
        return -1;
    }
}

/* Fail a TLS connection with the message tls_status wrote. */
static void fail_tls(struct worker *w, struct conn *c, const char *msg)
{
    fail_conn(w, c, msg, 0);
}
#endif

static void set_out(struct worker *w, struct conn *c, int on)
{
    if (c->want_out == on)
        return;
    struct epoll_event ev = { .events = EPOLLIN | (on ? EPOLLOUT : 0),
                              .data.ptr = c };
    epoll_ctl(w->epfd, EPOLL_CTL_MOD, c->fd, &ev);
    c->want_out = on;
}

/* Send as much of the current message as the socket takes. */
static int pump_send(struct worker *w, struct conn *c)
{
#ifdef WITH_TLS
    if (c->ssl) {
        while (c->sent < msg_size) {
            size_t want = msg_size - c->sent;
            int n = SSL_write(c->ssl, pattern + c->sent, want > INT32_MAX ? INT32_MAX : (int)want);
            if (n > 0) {
                c->sent += (size_t)n;
                continue;
            }
            char msg[160];
            int st = tls_status(c->ssl, n, msg, sizeof msg);
            if (st == 1 || st == 2) {   /* retried on the next event */
                set_out(w, c, st == 2);
                return 0;
            }
            if (st == 0)
                snprintf(msg, sizeof msg, "server closed the connection");
            fail_tls(w, c, msg);
            return -1;
        }
        set_out(w, c, 0);
        return 0;
    }
#endif
    while (c->sent < msg_size) {
        ssize_t n = send(c->fd, pattern + c->sent, msg_size - c->sent, MSG_NOSIGNAL);
        if (n > 0) {
            c->sent += (size_t)n;
        } else if (n < 0 && errno == EINTR) {
            continue;
        } else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            set_out(w, c, 1);
            return 0;
        } else {
            fail_conn(w, c, "send", n < 0 ? errno : 0);
            return -1;
        }
    }
    set_out(w, c, 0);
    return 0;
}

static void start_message(struct conn *c, uint64_t t)
{
    c->sent = 0;
    c->got = 0;
    c->t_start = t;
}

/* Returns 1 when the connection finished its quota (max_requests). */
static int pump_recv(struct worker *w, struct conn *c, unsigned char *buf)
{
    for (;;) {
        size_t owed = msg_size - c->got;
        if (owed == 0)
            return 0;   /* nothing is owed until the next message is sent */
        if (owed > RECV_CHUNK)
            owed = RECV_CHUNK;
        ssize_t n;
#ifdef WITH_TLS
        if (c->ssl) {
            int r = SSL_read(c->ssl, buf, (int)owed);
            if (r <= 0) {
                char msg[160];
                int st = tls_status(c->ssl, r, msg, sizeof msg);
                if (st == 1)
                    return 0;
                if (st == 2) {   /* a read that must write first: EPOLLOUT */
                    set_out(w, c, 1);
                    return 0;
                }
                if (st == 0)
                    snprintf(msg, sizeof msg, "server closed the connection");
                fail_tls(w, c, msg);
                return -1;
            }
            n = r;
        } else
#endif
        n = recv(c->fd, buf, owed, 0);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                return 0;
            fail_conn(w, c, "recv", errno);
            return -1;
        }
        if (n == 0) {
            fail_conn(w, c, "server closed the connection", 0);
            return -1;
        }
        size_t k = (size_t)n;
        if (buf[0] != pattern[c->got] || buf[k - 1] != pattern[c->got + k - 1]) {
            fail_conn(w, c, "echo content differs from the message", 0);
            return -1;
        }
        c->got += k;
        if (c->got > c->sent) {
            fail_conn(w, c, "received more than was sent", 0);
            return -1;
        }
        if (c->got == msg_size) {
            uint64_t t = now_ns();
            if (t >= t_measure_start && t < t_end) {
                uint64_t lat = t - c->t_start;
                w->requests++;
                c->done++;
                w->lat_sum_ns += lat;
                if (lat > w->lat_max_ns)
                    w->lat_max_ns = lat;
                w->hist[bucket_of(lat)]++;
            }
            if (w->max_requests && c->done >= w->max_requests)
                return 1;
            if (t >= t_end)
                return 0;
            start_message(c, t);
            if (pump_send(w, c) < 0)
                return -1;
        }
    }
}

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    unsigned char *buf = malloc(RECV_CHUNK);
    struct epoll_event *evs = calloc(256, sizeof *evs);
    int remaining = 0;
    if (!buf || !evs) {
        snprintf(w->errmsg, sizeof w->errmsg, "out of memory");
        w->errors++;
        free(buf);
        free(evs);
        return NULL;
    }
    uint64_t t = now_ns();
    for (int i = 0; i < w->nconns; i++) {
        struct conn *c = &w->conns[i];
        if (!c->alive)
            continue;
        c->want_out = 0;
        struct epoll_event ev = { .events = EPOLLIN, .data.ptr = c };
        if (epoll_ctl(w->epfd, EPOLL_CTL_ADD, c->fd, &ev) < 0) {
            fail_conn(w, c, "epoll_ctl", errno);
            continue;
        }
        start_message(c, t);
        if (pump_send(w, c) == 0)
            remaining++;
    }
    while (remaining > 0 && !stop_flag) {
        uint64_t t0 = now_ns();
        if (t0 >= t_end)
            break;
        int timeout = (int)((t_end - t0 + 999999) / 1000000);
        if (timeout > 100)
            timeout = 100;
        int n = epoll_wait(w->epfd, evs, 256, timeout);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            snprintf(w->errmsg, sizeof w->errmsg, "epoll_wait: %s", strerror(errno));
            w->errors++;
            break;
        }
        for (int i = 0; i < n; i++) {
            struct conn *c = evs[i].data.ptr;
            if (!c->alive)
                continue;
            /* TLS: a message not yet all sent is retried on any event (an
             * SSL_write can wait for a read), and a read on any event (an
             * SSL_read can wait for a write) */
            int tls = 0;
#ifdef WITH_TLS
            tls = c->ssl != NULL;
#endif
            if (((evs[i].events & EPOLLOUT) || (tls && c->sent < msg_size))
                    && pump_send(w, c) < 0) {
                remaining--;
                continue;
            }
            if ((evs[i].events & (EPOLLIN | EPOLLERR | EPOLLHUP)) || tls) {
                int r = pump_recv(w, c, buf);
                if (r != 0)
                    remaining--;
                if (r == 1) {   /* quota reached: stop watching it */
                    epoll_ctl(w->epfd, EPOLL_CTL_DEL, c->fd, NULL);
                }
            }
        }
    }
    free(buf);
    free(evs);
    return NULL;
}

/* Start one worker thread per slice; with quota (1 round trip per
 * connection) wait for them, else leave them running for the caller. */
static int run_workers(struct worker *ws, long nthreads, int quota)
{
    for (long t = 0; t < nthreads; t++) {
        ws[t].max_requests = quota ? 1 : 0;
        if (pthread_create(&ws[t].tid, NULL, worker_main, &ws[t]) != 0) {
            fprintf(stderr, "load_client: pthread_create failed\n");
            return -1;
        }
    }
    if (quota)
        for (long t = 0; t < nthreads; t++)
            pthread_join(ws[t].tid, NULL);
    return 0;
}

static int resolve_and_connect(const char *host, const char *port,
                               const char *unix_path, int timeout_ms)
{
    int fd = -1;
    if (unix_path) {
        struct sockaddr_un sun = { .sun_family = AF_UNIX };
        if (strlen(unix_path) >= sizeof sun.sun_path) {
            fprintf(stderr, "load_client: unix path too long: %s\n", unix_path);
            return -1;
        }
        strcpy(sun.sun_path, unix_path);
        fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0 || connect(fd, (struct sockaddr *)&sun, sizeof sun) < 0) {
            fprintf(stderr, "load_client: connect %s: %s\n", unix_path, strerror(errno));
            if (fd >= 0)
                close(fd);
            return -1;
        }
    } else {
        static struct addrinfo *ai;   /* resolved once */
        if (!ai) {
            struct addrinfo hints = { .ai_socktype = SOCK_STREAM };
            int rc = getaddrinfo(host, port, &hints, &ai);
            if (rc != 0) {
                fprintf(stderr, "load_client: %s:%s: %s\n", host, port, gai_strerror(rc));
                ai = NULL;
                return -1;
            }
        }
        fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        if (fd < 0) {
            fprintf(stderr, "load_client: socket: %s\n", strerror(errno));
            return -1;
        }
        if (connect(fd, ai->ai_addr, ai->ai_addrlen) < 0) {
            if (errno != EINPROGRESS) {
                fprintf(stderr, "load_client: connect %s:%s: %s\n", host, port, strerror(errno));
                close(fd);
                return -1;
            }
            struct pollfd p = { .fd = fd, .events = POLLOUT };
            int r = poll(&p, 1, timeout_ms);
            int err = 0;
            socklen_t len = sizeof err;
            if (r == 0)
                err = ETIMEDOUT;
            else if (r < 0)
                err = errno;
            else if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
                err = errno;
            if (err) {
                fprintf(stderr, "load_client: connect %s:%s: %s\n", host, port, strerror(err));
                close(fd);
                return -1;
            }
        }
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    }
    int fl = fcntl(fd, F_GETFL);
    fcntl(fd, F_SETFL, fl | O_NONBLOCK);
    return fd;
}

#ifdef WITH_TLS
/* The TLS handshake on a connected non-blocking socket, waiting with poll
 * for what SSL_connect wants; returns the SSL, or NULL (message printed). */
static SSL *tls_handshake(int fd, int timeout_ms)
{
    SSL *ssl = SSL_new(tls_ctx);
    if (!ssl || !SSL_set_fd(ssl, fd)) {
        fprintf(stderr, "load_client: SSL_new/SSL_set_fd failed\n");
        SSL_free(ssl);
        return NULL;
    }
    SSL_set_connect_state(ssl);
    uint64_t deadline = now_ns() + (uint64_t)timeout_ms * 1000000u;
    for (;;) {
        int r = SSL_do_handshake(ssl);
        if (r == 1)
            return ssl;
        char msg[160];
        int st = tls_status(ssl, r, msg, sizeof msg);
        if (st == 0)
            snprintf(msg, sizeof msg, "server closed the connection during the handshake");
        uint64_t t = now_ns();
        if (st <= 0 || t >= deadline) {
            fprintf(stderr, "load_client: TLS handshake: %s\n",
                    st <= 0 ? msg : "timed out");
            SSL_free(ssl);
            return NULL;
        }
        struct pollfd p = { .fd = fd, .events = st == 1 ? POLLIN : POLLOUT };
        poll(&p, 1, (int)((deadline - t + 999999) / 1000000));
    }
}

/* The client context: TLS 1.2 or newer, no certificate verification (the
 * server's certificate is the benchmark's own throw-away one). */
static int tls_init(void)
{
    tls_ctx = SSL_CTX_new(TLS_client_method());
    if (!tls_ctx) {
        fprintf(stderr, "load_client: SSL_CTX_new failed\n");
        return -1;
    }
    SSL_CTX_set_min_proto_version(tls_ctx, TLS1_2_VERSION);
    SSL_CTX_set_verify(tls_ctx, SSL_VERIFY_NONE, NULL);
    SSL_CTX_set_mode(tls_ctx, SSL_MODE_ENABLE_PARTIAL_WRITE
                              | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    return 0;
}
#endif

static void on_signal(int sig)
{
    (void)sig;
    stop_flag = 1;
}

static void usage(FILE *f)
{
    fprintf(f,
"usage: load_client [options]\n"
"  --host H         server address (default 127.0.0.1)\n"
"  --port P         server port (default 8888)\n"
"  --unix PATH      connect to a unix socket instead\n"
"  -c, --connections N   connections (default 10)\n"
"  -s, --size BYTES      message size (default 1024)\n"
"  -d, --duration S      measured seconds (default 2)\n"
"  -w, --warmup S        warm-up seconds, not measured (default 0.5)\n"
"  -t, --threads T       client threads, each with its own epoll (default 1)\n"
"  --connect-timeout S   per connection (default 5)\n"
"  --ready-timeout S     before the warm-up every connection makes one round\n"
"                   trip; a connection without its echo by then fails (default 30)\n"
"  --marks          print \"mark start\" and \"mark end\" lines on stderr when\n"
"                   the measured window starts and ends (for CPU sampling)\n"
"  --hold           connect, one round trip each, print {\"held\": N}, keep the\n"
"                   connections idle until stdin EOF or SIGTERM\n"
#ifdef WITH_TLS
"  --tls            speak TLS (handshake right after connecting; the server's\n"
"                   certificate is not verified)\n"
#endif
"Prints one JSON line; exit 0 ok, 1 connect/setup failure, 2 usage, 3 errors.\n");
}

static void raise_nofile(rlim_t want)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < want) {
        rl.rlim_cur = rl.rlim_max < want ? rl.rlim_max : want;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
}

int main(int argc, char **argv)
{
    const char *host = "127.0.0.1", *port = "8888", *unix_path = NULL;
    long nconns = 10, nthreads = 1;
    double duration = 2.0, warmup = 0.5, connect_timeout = 5.0, ready_timeout = 30.0;
    int hold = 0, marks = 0;
    static const struct option opts[] = {
        {"host", required_argument, NULL, 'H'},
        {"port", required_argument, NULL, 'p'},
        {"unix", required_argument, NULL, 'u'},
        {"connections", required_argument, NULL, 'c'},
        {"size", required_argument, NULL, 's'},
        {"duration", required_argument, NULL, 'd'},
        {"warmup", required_argument, NULL, 'w'},
        {"threads", required_argument, NULL, 't'},
        {"connect-timeout", required_argument, NULL, 'C'},
        {"hold", no_argument, NULL, 'h'},
        {"marks", no_argument, NULL, 'm'},
        {"ready-timeout", required_argument, NULL, 'R'},
        {"tls", no_argument, NULL, 'T'},
        {"help", no_argument, NULL, 'x'},
        {NULL, 0, NULL, 0},
    };
    int o;
    char *end;
    while ((o = getopt_long(argc, argv, "c:s:d:w:t:", opts, NULL)) != -1) {
        switch (o) {
        case 'H': host = optarg; break;
        case 'p': port = optarg; break;
        case 'u': unix_path = optarg; break;
        case 'c': nconns = strtol(optarg, &end, 10); if (*end || nconns < 1) goto bad; break;
        case 's': {
            long v = strtol(optarg, &end, 10);
            if (*end || v < 1 || v > (1L << 30)) goto bad;
            msg_size = (size_t)v;
            break;
        }
        case 'd': duration = strtod(optarg, &end); if (*end || duration <= 0) goto bad; break;
        case 'w': warmup = strtod(optarg, &end); if (*end || warmup < 0) goto bad; break;
        case 't': nthreads = strtol(optarg, &end, 10); if (*end || nthreads < 1) goto bad; break;
        case 'C': connect_timeout = strtod(optarg, &end); if (*end || connect_timeout <= 0) goto bad; break;
        case 'h': hold = 1; break;
        case 'm': marks = 1; break;
        case 'T':
#ifdef WITH_TLS
            use_tls = 1;
            break;
#else
            fprintf(stderr, "load_client: built without TLS (rebuild with -DWITH_TLS "
                            "-lssl -lcrypto; needs OpenSSL's headers, libssl-dev)\n");
            return 2;
#endif
        case 'R': ready_timeout = strtod(optarg, &end); if (*end || ready_timeout <= 0) goto bad; break;
        case 'x':
            usage(stdout);
            return 0;
        default:
            goto bad;
        }
    }
    if (optind != argc)
        goto bad;
    if (nthreads > nconns)
        nthreads = nconns;

    signal(SIGPIPE, SIG_IGN);
    struct sigaction sa = { .sa_handler = on_signal };
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    raise_nofile((rlim_t)nconns + 64);

    unsigned char *pat = malloc(msg_size);
    struct conn *conns = calloc((size_t)nconns, sizeof *conns);
    struct worker *ws = calloc((size_t)nthreads, sizeof *ws);
    if (!pat || !conns || !ws) {
        fprintf(stderr, "load_client: out of memory\n");
        return 1;
    }
    for (size_t i = 0; i < msg_size; i++)
        pat[i] = (unsigned char)(i % PATTERN_PERIOD);
    pattern = pat;

#ifdef WITH_TLS
    if (use_tls && tls_init() < 0)
        return 1;
#endif
    for (long i = 0; i < nconns; i++) {
        int fd = resolve_and_connect(host, port, unix_path, (int)(connect_timeout * 1000));
        if (fd < 0) {
            fprintf(stderr, "load_client: connection %ld of %ld failed\n", i + 1, nconns);
            return 1;
        }
        conns[i].fd = fd;
        conns[i].alive = 1;
#ifdef WITH_TLS
        if (use_tls) {
            conns[i].ssl = tls_handshake(fd, (int)(connect_timeout * 1000));
            if (!conns[i].ssl) {
                fprintf(stderr, "load_client: connection %ld of %ld failed\n", i + 1, nconns);
                return 1;
            }
        }
#endif
    }

    /* connections i, i+T, i+2T, ... go to thread i: reorder so each worker
     * owns a contiguous slice */
    struct conn *sorted = calloc((size_t)nconns, sizeof *sorted);
    if (!sorted) {
        fprintf(stderr, "load_client: out of memory\n");
        return 1;
    }
    long k = 0;
    for (long t = 0; t < nthreads; t++) {
        ws[t].id = (int)t;
        ws[t].conns = &sorted[k];
        for (long i = t; i < nconns; i += nthreads)
            sorted[k++] = conns[i];
        ws[t].nconns = (int)(&sorted[k] - ws[t].conns);
        ws[t].epfd = epoll_create1(EPOLL_CLOEXEC);
        if (ws[t].epfd < 0) {
            fprintf(stderr, "load_client: epoll_create1: %s\n", strerror(errno));
            return 1;
        }
    }
    free(conns);

    /* ready pass: one round trip on every connection, so that the server
     * has accepted and served all of them before the warm-up starts (a full
     * accept backlog can delay a connection by a SYN retransmit, 1 s) */
    uint64_t t0 = now_ns();
    t_measure_start = 0;
    t_end = t0 + (uint64_t)((ready_timeout > 0 ? ready_timeout : 1e6) * 1e9);
    if (run_workers(ws, nthreads, 1) < 0)
        return 1;
    double ready_s = (double)(now_ns() - t0) / 1e9;
    long not_ready = 0;
    for (long t = 0; t < nthreads; t++) {
        for (int i = 0; i < ws[t].nconns; i++) {
            struct conn *c = &ws[t].conns[i];
            if (c->alive && c->done == 0) {
                not_ready++;
                fail_conn(&ws[t], c, "no echo within --ready-timeout", 0);
            }
            c->done = 0;
        }
        ws[t].requests = ws[t].lat_sum_ns = ws[t].lat_max_ns = 0;
        memset(ws[t].hist, 0, sizeof ws[t].hist);
    }
    if (not_ready)
        fprintf(stderr, "load_client: %ld connection(s) got no echo within %.1f s\n",
                not_ready, ready_timeout);
    long ready = 0;
    for (long t = 0; t < nthreads; t++)
        for (int i = 0; i < ws[t].nconns; i++)
            ready += ws[t].conns[i].alive;
    int timed = !hold && ready > 0;   /* no live connection: report and stop */
    if (!timed) {
        t_end = UINT64_MAX;
    } else {
        t0 = now_ns();
        t_measure_start = t0 + (uint64_t)(warmup * 1e9);
        t_end = t_measure_start + (uint64_t)(duration * 1e9);
        if (run_workers(ws, nthreads, 0) < 0)
            return 1;
    }
    double cpu_s = -1.0;   /* this process's CPU time in the measured window */
    if (timed) {
        struct rusage r0, r1;
        sleep_until(t_measure_start);
        getrusage(RUSAGE_SELF, &r0);
        if (marks) {
            fprintf(stderr, "mark start\n");
            fflush(stderr);
        }
        sleep_until(t_end);
        getrusage(RUSAGE_SELF, &r1);
        if (marks) {
            fprintf(stderr, "mark end\n");
            fflush(stderr);
        }
        cpu_s = tv_s(&r1.ru_utime) + tv_s(&r1.ru_stime) - tv_s(&r0.ru_utime) - tv_s(&r0.ru_stime);
    }
    if (timed)
        for (long t = 0; t < nthreads; t++)
            pthread_join(ws[t].tid, NULL);

    uint64_t requests = 0, errors = 0, lat_sum = 0, lat_max = 0;
    static uint64_t hist[NBUCKETS];
    long alive = 0, idle = 0;
    const char *errmsg = "";
    for (long t = 0; t < nthreads; t++) {
        requests += ws[t].requests;
        errors += ws[t].errors;
        lat_sum += ws[t].lat_sum_ns;
        if (ws[t].lat_max_ns > lat_max)
            lat_max = ws[t].lat_max_ns;
        for (int b = 0; b < NBUCKETS; b++)
            hist[b] += ws[t].hist[b];
        if (!errmsg[0] && ws[t].errmsg[0])
            errmsg = ws[t].errmsg;
        for (int i = 0; i < ws[t].nconns; i++) {
            alive += ws[t].conns[i].alive;
            idle += ws[t].conns[i].alive && ws[t].conns[i].done == 0;
        }
    }
    double pct[3] = {0, 0, 0};
    const double qs[3] = {0.50, 0.90, 0.99};
    for (int q = 0; q < 3 && requests; q++) {
        uint64_t target = (uint64_t)(qs[q] * (double)requests);
        if (target >= requests)
            target = requests - 1;
        uint64_t cum = 0;
        for (int b = 0; b < NBUCKETS; b++) {
            cum += hist[b];
            if (cum > target) {
                pct[q] = bucket_value((unsigned)b) / 1000.0;
                break;
            }
        }
    }
    /* errmsg may contain only our own fixed strings and strerror(): no
     * quotes or backslashes to escape */
    if (hold) {
        printf("{\"held\": %ld, \"connections\": %ld, \"errors\": %llu, \"error\": \"%s\"}\n",
               alive, nconns, (unsigned long long)errors, errmsg);
        fflush(stdout);
        if (alive > 0 && !stop_flag) {
            char sink[64];
            while (!stop_flag && read(0, sink, sizeof sink) > 0)
                ;
        }
    } else {
        printf("{\"requests\": %llu, \"seconds\": %.3f, \"rps\": %.1f, "
               "\"p50_us\": %.1f, \"p90_us\": %.1f, \"p99_us\": %.1f, \"max_us\": %.1f, "
               "\"mean_us\": %.1f, \"errors\": %llu, \"error\": \"%s\", "
               "\"connections\": %ld, \"threads\": %ld, \"size\": %zu, "
               "\"conns_alive\": %ld, \"conns_idle\": %ld, \"client_cpu_s\": %.3f, \"ready_s\": %.3f, "
               "\"interrupted\": %s}\n",
               (unsigned long long)requests, duration, (double)requests / duration,
               pct[0], pct[1], pct[2], (double)lat_max / 1000.0,
               requests ? (double)lat_sum / (double)requests / 1000.0 : 0.0,
               (unsigned long long)errors, errmsg, nconns, nthreads, msg_size,
               alive, idle, cpu_s, ready_s, stop_flag ? "true" : "false");
        fflush(stdout);
    }
    for (long t = 0; t < nthreads; t++) {
        for (int i = 0; i < ws[t].nconns; i++) {
#ifdef WITH_TLS
            if (ws[t].conns[i].ssl)
                SSL_free(ws[t].conns[i].ssl);
#endif
            if (ws[t].conns[i].fd >= 0)
                close(ws[t].conns[i].fd);
        }
        close(ws[t].epfd);
    }
    return errors ? 3 : 0;

bad:
    usage(stderr);
    return 2;
}
