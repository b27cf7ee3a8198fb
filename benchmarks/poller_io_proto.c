/*
 * poller_io_proto.c - a measurement, not part of wfcloop: does moving the
 * socket I/O (recv, send and the EPOLLONESHOT re-arm) from the loop thread
 * to poller threads pay on a many-core machine, with the Python callback
 * still on the one thread that holds the GIL?  (benchmarks/poller_io_proto.py
 * builds and drives it; RESULTS.md has what it measured.)
 *
 * serve(port, pollers, callback, seconds) runs a TCP echo-style server for
 * `seconds` and returns its counters.  For each message the thread holding
 * the GIL calls callback(data) (bytes), which answers with write(data),
 * as a protocol's data_received calls transport.write.
 *
 *   pollers = 0: inline.  The loop thread calls epoll_wait (fds level-
 *       triggered), recv()s into one reused buffer, calls the callback,
 *       and write() send()s at once.  wfcloop's inline mode in miniature.
 *   pollers = P > 0: poller-side I/O.  P threads (all signals blocked, no
 *       Python) wait in epoll_wait on fds armed EPOLLIN|EPOLLONESHOT; the
 *       one that gets an event recv()s into the connection's own buffer
 *       and appends the connection to a wait-free ready queue (wfcqueue.h),
 *       waking the loop thread only if it sleeps.  The loop thread takes
 *       the connections off the queue, calls the callback, whose write()
 *       copies into the connection's output buffer, and after the batch
 *       hands the batch to the pollers with ONE eventfd write: a poller
 *       send()s each output and re-arms the connection's EPOLLIN.  So the
 *       loop thread makes one system call per batch, not three per message.
 *
 * A connection is owned by exactly one thread at a time: the kernel gives
 * its ONESHOT event to one poller; the ready queue hands it to the loop
 * thread; the send list hands it back to one poller, which re-arms it last.
 * Only the loop thread closes connections (when recv() said EOF or error),
 * and only while it owns them (disarmed), so no poller can touch a closed
 * or reused fd.  Error handling is a prototype's: partial sends are
 * finished by spinning on EAGAIN.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "wfcqueue.h"

#define BUF 65536
#define MAX_POLLERS 64

struct conn {
    struct wfcq_node node;        /* on the ready queue */
    struct conn *send_next;       /* on the send list */
    int fd;
    ssize_t inlen;                /* the poller's recv(): bytes, 0 EOF, -errno */
    size_t outlen;
    char in[BUF];
    char out[BUF];
};

static struct server {
    int kfd, lfd, loop_efd, send_efd, stop_efd;
    int npollers;
    pthread_t pollers[MAX_POLLERS];
    struct wfcq_head ready_head;
    struct wfcq_tail ready_tail;
    atomic_int loop_sleeping;
    pthread_mutex_t send_lock;
    struct conn *send_list;
    struct conn *cur;             /* the connection whose callback runs */
    PyObject *callback;
    char inbuf[BUF];              /* inline mode's reused read buffer */
    unsigned long long requests, batches, loop_wakeups, closed;
    atomic_ullong sends_by_pollers;
} S;

/* Tags in epoll_event.data.ptr other than a struct conn. */
static int TAG_LISTEN, TAG_SEND, TAG_STOP;

static void send_all(int fd, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t r = send(fd, p, n, MSG_DONTWAIT | MSG_NOSIGNAL);
        if (r > 0) {
            p += r;
            n -= (size_t)r;
        } else if (r < 0 && errno != EAGAIN && errno != EINTR) {
            return;               /* the peer went away; the read side says so */
        }
    }
}

static void arm(int op, int fd, void *tag, uint32_t events)
{
    struct epoll_event ev = {.events = events, .data.ptr = tag};
    epoll_ctl(S.kfd, op, fd, &ev);
}

static void accept_all(uint32_t conn_events)
{
    for (;;) {
        int fd = accept4(S.lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0)
            return;
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        struct conn *c = calloc(1, sizeof *c);
        c->fd = fd;
        arm(EPOLL_CTL_ADD, fd, c, conn_events);
    }
}

static void *poller_main(void *arg)
{
    (void)arg;
    sigset_t all;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, NULL);
    struct epoll_event evs[64];
    for (;;) {
        int n = epoll_wait(S.kfd, evs, 64, -1);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return NULL;
        }
        for (int i = 0; i < n; i++) {
            void *tag = evs[i].data.ptr;
            if (tag == &TAG_STOP)
                return NULL;
            if (tag == &TAG_LISTEN) {
                accept_all(EPOLLIN | EPOLLONESHOT);
                arm(EPOLL_CTL_MOD, S.lfd, &TAG_LISTEN, EPOLLIN | EPOLLONESHOT);
                continue;
            }
            if (tag == &TAG_SEND) {
                uint64_t v;
                ssize_t r = read(S.send_efd, &v, sizeof v);
                (void)r;
                pthread_mutex_lock(&S.send_lock);
                struct conn *list = S.send_list;
                S.send_list = NULL;
                pthread_mutex_unlock(&S.send_lock);
                arm(EPOLL_CTL_MOD, S.send_efd, &TAG_SEND, EPOLLIN | EPOLLONESHOT);
                while (list) {
                    struct conn *c = list;
                    list = c->send_next;
                    if (c->outlen)
                        send_all(c->fd, c->out, c->outlen);
                    /* Relaxed: a counter, read once after the pollers are joined. */
                    atomic_fetch_add_explicit(&S.sends_by_pollers, 1, memory_order_relaxed);
                    /* Last: from here on another poller may own c. */
                    arm(EPOLL_CTL_MOD, c->fd, c, EPOLLIN | EPOLLONESHOT);
                }
                continue;
            }
            struct conn *c = tag;
            ssize_t r = recv(c->fd, c->in, BUF, 0);
            c->inlen = r < 0 ? -errno : r;
            wfcq_enqueue(&S.ready_head, &S.ready_tail, &c->node);
            /* seq_cst fence, paired with the loop thread's between its
             * store of loop_sleeping and its look at the queue: one of the
             * two sees the other's store, so no wake-up is lost. */
            atomic_thread_fence(memory_order_seq_cst);
            if (atomic_load_explicit(&S.loop_sleeping, memory_order_relaxed)) {
                uint64_t one = 1;
                ssize_t w = write(S.loop_efd, &one, sizeof one);
                (void)w;
            }
        }
    }
}

static void close_conn(struct conn *c)
{
    epoll_ctl(S.kfd, EPOLL_CTL_DEL, c->fd, NULL);
    close(c->fd);
    free(c);
    S.closed++;
}

/* Call the callback for one message; 0 or -1 with a Python exception. */
static int deliver(struct conn *c, const char *data, ssize_t n)
{
    PyObject *bytes = PyBytes_FromStringAndSize(data, n);
    if (bytes == NULL)
        return -1;
    S.cur = c;
    c->outlen = 0;
    PyObject *r = PyObject_CallOneArg(S.callback, bytes);
    S.cur = NULL;
    Py_DECREF(bytes);
    if (r == NULL)
        return -1;
    Py_DECREF(r);
    S.requests++;
    return 0;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* The loop thread, inline: epoll_wait, recv, callback (write sends). */
static int run_inline(double deadline)
{
    struct epoll_event evs[256];
    while (now_s() < deadline) {
        int n;
        Py_BEGIN_ALLOW_THREADS
        n = epoll_wait(S.kfd, evs, 256, 50);
        Py_END_ALLOW_THREADS
        if (n < 0 && errno != EINTR)
            return PyErr_SetFromErrno(PyExc_OSError), -1;
        if (PyErr_CheckSignals() < 0)
            return -1;
        for (int i = 0; i < n; i++) {
            void *tag = evs[i].data.ptr;
            if (tag == &TAG_LISTEN) {
                accept_all(EPOLLIN);
                continue;
            }
            struct conn *c = tag;
            ssize_t r = recv(c->fd, S.inbuf, BUF, 0);
            if (r < 0 && (errno == EAGAIN || errno == EINTR))
                continue;
            if (r <= 0) {
                close_conn(c);
                continue;
            }
            if (deliver(c, S.inbuf, r) < 0)
                return -1;
        }
        S.batches++;
    }
    return 0;
}

/* The loop thread, poller-side I/O: take what the pollers read, call the
 * callback, hand the batch's sends and re-arms back with one write. */
static int run_pollers(double deadline)
{
    unsigned iterations = 0;
    for (;;) {
        struct conn *batch = NULL, *last = NULL;
        int got = 0;
        struct wfcq_node *node;
        bool was_last;
        while ((node = wfcq_dequeue(&S.ready_head, &S.ready_tail, &was_last)) != NULL) {
            struct conn *c = (struct conn *)((char *)node - offsetof(struct conn, node));
            got++;
            if (c->inlen <= 0) {
                if (c->inlen == -EAGAIN) {
                    c->outlen = 0;       /* nothing read: just re-arm */
                } else {
                    close_conn(c);
                    continue;
                }
            } else if (deliver(c, c->in, c->inlen) < 0) {
                return -1;
            }
            c->send_next = NULL;
            if (last)
                last->send_next = c;
            else
                batch = c;
            last = c;
        }
        if (batch) {
            uint64_t one = 1;
            pthread_mutex_lock(&S.send_lock);
            last->send_next = S.send_list;
            S.send_list = batch;
            pthread_mutex_unlock(&S.send_lock);
            ssize_t w = write(S.send_efd, &one, sizeof one);
            (void)w;
            S.batches++;
        }
        if (got && (++iterations & 63))
            continue;
        if (now_s() >= deadline)
            return 0;
        if (PyErr_CheckSignals() < 0)
            return -1;
        if (got)
            continue;
        /* Sleep until a poller appends.  Relaxed store, then a seq_cst
         * fence before looking at the queue, paired with the poller's
         * fence between its append and its look at loop_sleeping: either
         * we see its node, or it sees loop_sleeping = 1 and writes
         * loop_efd (a stale wake-up only costs one extra round). */
        atomic_store_explicit(&S.loop_sleeping, 1, memory_order_relaxed);
        atomic_thread_fence(memory_order_seq_cst);
        if (wfcq_empty(&S.ready_head, &S.ready_tail)) {
            struct pollfd pfd = {.fd = S.loop_efd, .events = POLLIN};
            Py_BEGIN_ALLOW_THREADS
            if (poll(&pfd, 1, 50) > 0) {
                uint64_t v;
                ssize_t r = read(S.loop_efd, &v, sizeof v);
                (void)r;
            }
            Py_END_ALLOW_THREADS
            S.loop_wakeups++;
        }
        /* Relaxed: clearing it late only costs a poller a needless write. */
        atomic_store_explicit(&S.loop_sleeping, 0, memory_order_relaxed);
    }
}

static PyObject *proto_write(PyObject *self, PyObject *arg)
{
    (void)self;
    Py_buffer view;
    struct conn *c = S.cur;
    if (c == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "write() outside a callback");
        return NULL;
    }
    if (PyObject_GetBuffer(arg, &view, PyBUF_SIMPLE) < 0)
        return NULL;
    if (S.npollers == 0) {
        send_all(c->fd, view.buf, (size_t)view.len);
    } else if (c->outlen + (size_t)view.len <= BUF) {
        memcpy(c->out + c->outlen, view.buf, (size_t)view.len);
        c->outlen += (size_t)view.len;
    }
    PyBuffer_Release(&view);
    Py_RETURN_NONE;
}

static PyObject *proto_serve(PyObject *self, PyObject *args)
{
    (void)self;
    int port, pollers, rc;
    double seconds;
    PyObject *callback;
    if (!PyArg_ParseTuple(args, "iiOd", &port, &pollers, &callback, &seconds))
        return NULL;
    if (pollers < 0 || pollers > MAX_POLLERS)
        return PyErr_Format(PyExc_ValueError, "pollers must be 0..%d", MAX_POLLERS);
    memset(&S, 0, sizeof S);
    S.npollers = pollers;
    S.callback = callback;
    wfcq_init(&S.ready_head, &S.ready_tail);
    pthread_mutex_init(&S.send_lock, NULL);
    S.kfd = epoll_create1(EPOLL_CLOEXEC);
    S.loop_efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    S.send_efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    S.stop_efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    S.lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int one = 1;
    setsockopt(S.lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port),
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    if (bind(S.lfd, (struct sockaddr *)&sa, sizeof sa) < 0 || listen(S.lfd, 4096) < 0)
        return PyErr_SetFromErrno(PyExc_OSError);
    socklen_t len = sizeof sa;
    getsockname(S.lfd, (struct sockaddr *)&sa, &len);
    printf("listening on 127.0.0.1:%d (poller_io_proto, %d pollers)\n", ntohs(sa.sin_port), pollers);
    fflush(stdout);
    if (pollers == 0) {
        arm(EPOLL_CTL_ADD, S.lfd, &TAG_LISTEN, EPOLLIN);
    } else {
        arm(EPOLL_CTL_ADD, S.lfd, &TAG_LISTEN, EPOLLIN | EPOLLONESHOT);
        arm(EPOLL_CTL_ADD, S.send_efd, &TAG_SEND, EPOLLIN | EPOLLONESHOT);
        arm(EPOLL_CTL_ADD, S.stop_efd, &TAG_STOP, EPOLLIN);   /* wakes every poller */
        for (int i = 0; i < pollers; i++)
            pthread_create(&S.pollers[i], NULL, poller_main, NULL);
    }
    double deadline = now_s() + seconds;
    rc = pollers == 0 ? run_inline(deadline) : run_pollers(deadline);
    if (pollers > 0) {
        uint64_t v = 1;
        ssize_t w = write(S.stop_efd, &v, sizeof v);
        (void)w;
        Py_BEGIN_ALLOW_THREADS
        for (int i = 0; i < pollers; i++)
            pthread_join(S.pollers[i], NULL);
        Py_END_ALLOW_THREADS
    }
    close(S.lfd);
    close(S.kfd);
    close(S.loop_efd);
    close(S.send_efd);
    close(S.stop_efd);
    /* Connections still open are left to process exit (a prototype). */
    if (rc < 0)
        return NULL;
    return Py_BuildValue("{s:K,s:K,s:K,s:K,s:K}", "requests", S.requests, "batches", S.batches,
                         "loop_wakeups", S.loop_wakeups, "closed", S.closed,
                         "sends_by_pollers",
                         (unsigned long long)atomic_load(&S.sends_by_pollers));
}

static PyMethodDef methods[] = {
    {"serve", proto_serve, METH_VARARGS, "serve(port, pollers, callback, seconds) -> counters"},
    {"write", proto_write, METH_O, "write(data): the answer to the message being handled"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    .m_base = PyModuleDef_HEAD_INIT, .m_name = "poller_io_proto", .m_size = -1,
    .m_methods = methods,
};

PyMODINIT_FUNC PyInit_poller_io_proto(void)
{
    return PyModule_Create(&module);
}
