/*
 * c_echo_server.c - a small single-threaded epoll TCP echo server: the limit
 * that a one-thread event loop on this machine could reach, for
 * benchmarks/echo_bench.py to compare the Python loops with.
 *
 * Level-triggered epoll, non-blocking sockets, TCP_NODELAY, one shared
 * 256 KiB read buffer.  What a client's socket does not take at once is kept
 * per connection, and reading from that client stops until it is written
 * (the same flow control as the examples' pause_reading/resume_reading).
 *
 *   c_echo_server [--host 127.0.0.1] [--port 8888]     (port 0: any free port)
 *
 * Prints "listening on HOST:PORT (c-server)" like examples/_common.py once it
 * accepts connections; SIGTERM or SIGINT ends it with exit code 0.
 *
 * Build: cc -O2 -Wall -Wextra -std=gnu11 benchmarks/tools/c_echo_server.c \
 *            -o benchmarks/build/c_echo_server
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#define BUF_SIZE (256 * 1024)

struct pending {          /* echo bytes the client's socket did not take yet */
    char *data;
    size_t len, off;
};

static struct pending *pend;   /* indexed by fd */
static size_t npend;
static volatile sig_atomic_t stop_flag;
static int epfd;

static void on_signal(int sig)
{
    (void)sig;
    stop_flag = 1;
}

static struct pending *pending_of(int fd)
{
    if ((size_t)fd >= npend) {
        size_t n = npend ? npend : 1024;
        while (n <= (size_t)fd)
            n *= 2;
        struct pending *p = realloc(pend, n * sizeof *p);
        if (!p) {
            fprintf(stderr, "c_echo_server: out of memory\n");
            exit(1);
        }
        memset(p + npend, 0, (n - npend) * sizeof *p);
        pend = p;
        npend = n;
    }
    return &pend[fd];
}

static void drop(int fd)
{
    struct pending *p = pending_of(fd);
    free(p->data);
    p->data = NULL;
    p->len = p->off = 0;
    epoll_ctl(epfd, EPOLL_CTL_DEL, fd, NULL);
    close(fd);
}

static void watch(int fd, unsigned events)
{
    struct epoll_event ev = { .events = events, .data.fd = fd };
    epoll_ctl(epfd, EPOLL_CTL_MOD, fd, &ev);
}

/* Write what is pending; 1 when all written, 0 when blocked, -1 on error. */
static int flush_pending(int fd)
{
    struct pending *p = pending_of(fd);
    while (p->off < p->len) {
        ssize_t n = send(fd, p->data + p->off, p->len - p->off, MSG_NOSIGNAL);
        if (n > 0)
            p->off += (size_t)n;
        else if (n < 0 && errno == EINTR)
            continue;
        else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return 0;
        else
            return -1;
    }
    free(p->data);
    p->data = NULL;
    p->len = p->off = 0;
    return 1;
}

static void on_readable(int fd, char *buf)
{
    for (int rounds = 0; rounds < 16; rounds++) {
        ssize_t n = recv(fd, buf, BUF_SIZE, 0);
        if (n == 0) {
            drop(fd);
            return;
        }
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno != EAGAIN && errno != EWOULDBLOCK)
                drop(fd);
            return;
        }
        size_t off = 0;
        while (off < (size_t)n) {
            ssize_t w = send(fd, buf + off, (size_t)n - off, MSG_NOSIGNAL);
            if (w > 0) {
                off += (size_t)w;
            } else if (w < 0 && errno == EINTR) {
                continue;
            } else if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
                struct pending *p = pending_of(fd);
                p->len = (size_t)n - off;
                p->off = 0;
                p->data = malloc(p->len);
                if (!p->data) {
                    drop(fd);
                    return;
                }
                memcpy(p->data, buf + off, p->len);
                watch(fd, EPOLLOUT);    /* stop reading until it is written */
                return;
            } else {
                drop(fd);
                return;
            }
        }
        if ((size_t)n < BUF_SIZE)
            return;
    }
}

int main(int argc, char **argv)
{
    const char *host = "127.0.0.1", *port = "8888";
    static const struct option opts[] = {
        {"host", required_argument, NULL, 'H'},
        {"port", required_argument, NULL, 'p'},
        {"help", no_argument, NULL, 'x'},
        {NULL, 0, NULL, 0},
    };
    int o;
    while ((o = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (o) {
        case 'H': host = optarg; break;
        case 'p': port = optarg; break;
        case 'x':
            printf("usage: c_echo_server [--host H] [--port P]  (port 0: any free port)\n");
            return 0;
        default:
            fprintf(stderr, "usage: c_echo_server [--host H] [--port P]\n");
            return 2;
        }
    }
    if (optind != argc) {
        fprintf(stderr, "usage: c_echo_server [--host H] [--port P]\n");
        return 2;
    }

    signal(SIGPIPE, SIG_IGN);
    struct sigaction sa = { .sa_handler = on_signal };   /* no SA_RESTART */
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }

    struct addrinfo hints = { .ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE };
    struct addrinfo *ai;
    int rc = getaddrinfo(host, port, &hints, &ai);
    if (rc != 0) {
        fprintf(stderr, "c_echo_server: %s:%s: %s\n", host, port, gai_strerror(rc));
        return 1;
    }
    int lfd = socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int one = 1;
    if (lfd < 0 || setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) < 0 ||
        bind(lfd, ai->ai_addr, ai->ai_addrlen) < 0 || listen(lfd, SOMAXCONN) < 0) {
        fprintf(stderr, "c_echo_server: error: %s:%s: %s\n", host, port, strerror(errno));
        return 1;
    }
    freeaddrinfo(ai);

    struct sockaddr_storage ss;
    socklen_t sl = sizeof ss;
    char addr[INET6_ADDRSTRLEN];
    getsockname(lfd, (struct sockaddr *)&ss, &sl);
    if (ss.ss_family == AF_INET6) {
        struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;
        inet_ntop(AF_INET6, &s6->sin6_addr, addr, sizeof addr);
        printf("listening on [%s]:%u (c-server)\n", addr, ntohs(s6->sin6_port));
    } else {
        struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
        inet_ntop(AF_INET, &s4->sin_addr, addr, sizeof addr);
        printf("listening on %s:%u (c-server)\n", addr, ntohs(s4->sin_port));
    }
    fflush(stdout);

    epfd = epoll_create1(EPOLL_CLOEXEC);
    struct epoll_event ev = { .events = EPOLLIN, .data.fd = lfd };
    if (epfd < 0 || epoll_ctl(epfd, EPOLL_CTL_ADD, lfd, &ev) < 0) {
        fprintf(stderr, "c_echo_server: epoll: %s\n", strerror(errno));
        return 1;
    }
    /* a spare fd to close when accept() fails with EMFILE, so that the
     * connection can be accepted and dropped instead of spinning */
    int spare = open("/dev/null", O_RDONLY | O_CLOEXEC);
    char *buf = malloc(BUF_SIZE);
    struct epoll_event evs[256];
    if (!buf) {
        fprintf(stderr, "c_echo_server: out of memory\n");
        return 1;
    }

    while (!stop_flag) {
        int n = epoll_wait(epfd, evs, 256, -1);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            fprintf(stderr, "c_echo_server: epoll_wait: %s\n", strerror(errno));
            return 1;
        }
        for (int i = 0; i < n; i++) {
            int fd = evs[i].data.fd;
            if (fd == lfd) {
                for (;;) {
                    int c = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
                    if (c < 0) {
                        if (errno == EMFILE && spare >= 0) {
                            close(spare);
                            c = accept(lfd, NULL, NULL);
                            if (c >= 0)
                                close(c);
                            spare = open("/dev/null", O_RDONLY | O_CLOEXEC);
                            fprintf(stderr, "c_echo_server: accept: too many open files\n");
                            continue;
                        }
                        break;   /* EAGAIN, or a transient error */
                    }
                    setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
                    struct epoll_event cev = { .events = EPOLLIN, .data.fd = c };
                    pending_of(c);
                    if (epoll_ctl(epfd, EPOLL_CTL_ADD, c, &cev) < 0)
                        close(c);
                }
                continue;
            }
            if (evs[i].events & EPOLLOUT) {
                int r = flush_pending(fd);
                if (r < 0) {
                    drop(fd);
                    continue;
                }
                if (r == 1)
                    watch(fd, EPOLLIN);   /* written: read again */
                continue;
            }
            if (evs[i].events & (EPOLLIN | EPOLLERR | EPOLLHUP))
                on_readable(fd, buf);
        }
    }
    return 0;
}
