# base_loop.pyx, included by _loop.pyx (one extension module, as uvloop's
# loop.pyx includes its handles).
#
# BaseLoop: asyncio's selector event loop with the compiled run-once,
# scheduler and socket transport plugged in.


class BaseLoop(asyncio.SelectorEventLoop):
    """asyncio's selector event loop with the compiled run-once and socket
    transport; ``selector`` must be a wfcloop EventPollSelector (the loop
    reads its fd -> key map and EventPoll through its C API).
    wfcloop.Loop is the class users make."""

    _ready = property(lambda self: self._wfc_scheduler.ready,
                      lambda self, ready: self._wfc_scheduler.set_ready(ready),
                      doc="deque of the handles to run next")
    _scheduled = property(_get_scheduled, _set_scheduled,
                          doc="heap of (when, sequence, TimerHandle)")
    _closed = property(_get_closed, _set_closed, doc="True once close() was called")
    _debug = property(_get_debug, _set_debug, doc="debug mode")

    def __init__(self, selector):
        cdef EventPollSelector eventpoll_selector = <EventPollSelector?>selector
        # Made before asyncio's __init__, which sets the fields it holds.
        self._wfc_scheduler = scheduler = _Scheduler(self)
        # fd -> the finished sock_* reader handle still registered for it
        # (see _sock_read_done); before asyncio's __init__ adds its first
        # reader.
        self._wfc_parked_readers = {}
        # Equal address objects of this loop's transports, shared (see
        # share_addresses).
        self._wfc_addresses = {}
        # Poller-side I/O: the EventPoll that may do the socket transports'
        # I/O off the loop thread while its pollers read the kernel (each
        # transport's PollerIO strategy, loop/poller_io.pyx), or None.
        self._wfc_poller_io = (eventpoll_selector.eventpoll if eventpoll_selector.poller_io
                               else None)
        super().__init__(selector)
        self._wfc_dispatch = _Dispatch(self, selector)
        # asyncio's fd -> transport map, without a weak reference per
        # reading socket transport (see TransportMap).
        self._transports = TransportMap(eventpoll_selector)
        cls = type(self)
        scheduler.own_clock = cls.time is BaseLoop.time
        for name in SCHEDULER_METHODS:
            if getattr(cls, name) is getattr(BaseLoop, name):
                setattr(self, name, getattr(scheduler, name))
        if cls.call_at is not BaseLoop.call_at:
            # asyncio's call_later calls self.call_at: so does BaseLoop's.
            self.__dict__.pop("call_later", None)

    def run_forever(self):
        """Run until stop() is called."""
        own_run_once = getattr(type(self), "_run_once", None) is BASE_RUN_ONCE
        if HAVE_RUN_FOREVER_SETUP:   # 3.12.? and later
            try:
                self._run_forever_setup()
                run_until_stopped(self, own_run_once)
            finally:
                self._run_forever_cleanup()
            return
        # BaseEventLoop.run_forever of 3.11 and 3.12.1, with the loop compiled.
        self._check_closed()
        self._check_running()
        self._set_coroutine_origin_tracking(self._debug)

        old_agen_hooks = sys.get_asyncgen_hooks()
        try:
            self._thread_id = threading.get_ident()
            sys.set_asyncgen_hooks(firstiter=self._asyncgen_firstiter_hook,
                                   finalizer=self._asyncgen_finalizer_hook)

            set_running_loop(self)
            run_until_stopped(self, own_run_once)
        finally:
            self._stopping = False
            self._thread_id = None
            set_running_loop(None)
            self._set_coroutine_origin_tracking(False)
            sys.set_asyncgen_hooks(*old_agen_hooks)

    def _run_once(self):
        if self._wfc_parked_readers:
            release_parked_readers(self)
        run_once(self, <_Dispatch>self._wfc_dispatch,
                 <_Scheduler>self._wfc_scheduler)

    # Scheduling callbacks: asyncio's checks, messages and Handle objects,
    # built without running Handle's Python __init__ (debug mode, which
    # records where a handle was made, takes asyncio's own path).
    # call_soon, call_later, call_at and time are the _Scheduler's, bound
    # on each loop as instance attributes; these serve subclasses' super().

    def call_soon(self, callback, *args, context=None):
        """Arrange for callback(*args) to be called soon, in FIFO order."""
        return (<_Scheduler>self._wfc_scheduler).call_soon(
            callback, *args, context=context)

    def call_later(self, delay, callback, *args, context=None):
        """Arrange for callback(*args) to be called after delay seconds."""
        if delay is None:
            raise TypeError('delay must not be None')
        return self.call_at(self.time() + delay, callback, *args,
                            context=context)

    def call_at(self, when, callback, *args, context=None):
        """Like call_later(), but with an absolute time on the loop's clock.
        Timers with equal deadlines run in the order they were scheduled."""
        return (<_Scheduler>self._wfc_scheduler).call_at(
            when, callback, *args, context=context)

    def time(self):
        """The loop's clock: time.monotonic()."""
        return monotonic()

    def get_debug(self):
        return (<_Scheduler>self._wfc_scheduler).debug

    def _call_soon(self, callback, args, context):
        if self._debug:
            return base__call_soon(self, callback, args, context)
        handle = new_handle(callback, args, self, context)
        self._ready.append(handle)
        return handle

    def call_soon_threadsafe(self, callback, *args, context=None):
        """Like call_soon(), but thread-safe (one wake-up byte per batch)."""
        return (<_Scheduler>self._wfc_scheduler).call_soon_threadsafe(
            callback, *args, context=context)

    def _read_from_self(self):
        base__read_from_self(self)
        (<_Scheduler>self._wfc_scheduler).wakeup_pending = False

    def _write_to_self(self):
        """Wake the loop: one byte into the self-pipe, written in C with
        the GIL held, as uvloop's wake-up is.  (asyncio's csock.send()
        releases the GIL for the system call, so a thread calling
        call_soon_threadsafe in a loop hands the GIL to the loop thread at
        every wake-up and the batches stay small.)  A failure is ignored as
        asyncio ignores it; in debug mode asyncio's method runs to log it."""
        csock = self._csock
        if csock is None:
            return
        if c_send(csock.fileno(), b"\0", 1, MSG_DONTWAIT) < 0 and self._debug:
            base__write_to_self(self)

    def create_future(self):
        """Create a Future object attached to the loop."""
        return Future(loop=self)

    if asyncio_compat.COMPILED_CREATE_TASK:
        def create_task(self, coro, *, name=None, context=None):
            """Schedule the coroutine coro; return its Task."""
            return (<_Scheduler>self._wfc_scheduler).create_task(
                coro, name=name, context=context)

    # sock_recv, sock_recv_into, sock_recvfrom(_into) and sock_accept wait
    # for readability with a reader registered for that one call; asyncio
    # removes it when the call's future is done, and a socket read in a
    # loop registers it again right away: an epoll_ctl ADD and DEL per
    # wait.  wfcloop parks the finished reader instead.  A parked reader
    # is released (really removed) before the next poll, so it never sees
    # an event, or taken over by the next sock_* wait on the same socket
    # object with the same fd, which then only swaps the handle.  Any
    # other add or removal on a parked fd releases it first, so what the
    # selector holds is always what asyncio's would hold.

    def _accept_connection(self, protocol_factory, sock, sslcontext=None,
                           server=None, backlog=100,
                           ssl_handshake_timeout=SSL_HANDSHAKE_TIMEOUT,
                           ssl_shutdown_timeout=SSL_SHUTDOWN_TIMEOUT):
        """The listening socket's reader: accept up to backlog connections
        (compiled for plain servers: see accept_plain)."""
        if accepts_plainly(self, sslcontext):
            accept_plain(self, protocol_factory, sock, server, backlog,
                         (ssl_handshake_timeout, ssl_shutdown_timeout))
        else:
            base_accept_connection(self, protocol_factory, sock, sslcontext,
                                   server, backlog, ssl_handshake_timeout,
                                   ssl_shutdown_timeout)

    def _sock_read_done(self, fd, fut, handle=None):
        sock_read_done(self, fd, fut, handle)

    def _add_reader(self, fd, callback, *args):
        if self._wfc_parked_readers:
            unpark_reader(self, fd, args[1] if len(args) >= 2 else None)
        return base__add_reader(
            self, fd, callback, *args)

    def _remove_reader(self, fd):
        if self._wfc_parked_readers:
            unpark_reader(self, fd, None)
        return base_remove_reader(self, fd)

    def _add_writer(self, fd, callback, *args):
        if self._wfc_parked_readers:
            unpark_reader(self, fd, None)
        return base__add_writer(
            self, fd, callback, *args)

    def _remove_writer(self, fd):
        if self._wfc_parked_readers:
            unpark_reader(self, fd, None)
        return base__remove_writer(self, fd)

    def close(self):
        self._wfc_parked_readers.clear()
        super().close()

    # sock_recv, sock_recv_into and sock_sendall: asyncio's contract and
    # code path (try the syscall first, else wait for readiness with a
    # reader or writer), compiled; a read whose last call on the socket
    # waited skips the try (see waited_last_time).

    async def sock_recv(self, sock, n):
        """Receive up to n bytes from the non-blocking socket sock."""
        check_sock_call(self, sock)
        if not waited_last_time(self, sock):
            try:
                return sock.recv(n)
            except (BlockingIOError, InterruptedError):
                pass
        return await wait_to_read(self, sock, self._sock_recv, n)

    async def sock_recv_into(self, sock, buf):
        """Receive into the writable buffer buf; return the byte count."""
        check_sock_call(self, sock)
        if not waited_last_time(self, sock):
            try:
                return sock.recv_into(buf)
            except (BlockingIOError, InterruptedError):
                pass
        return await wait_to_read(self, sock, self._sock_recv_into, buf)

    def _sock_recv(self, fut, sock, n):
        complete_read(fut, sock.recv, n)

    def _sock_recv_into(self, fut, sock, buf):
        complete_read(fut, sock.recv_into, buf)

    async def sock_sendall(self, sock, data):
        """Send all of data to the connected socket sock."""
        check_sock_call(self, sock)
        try:
            n = sock.send(data)
        except (BlockingIOError, InterruptedError):
            n = 0
        if n == len(data):
            return
        fut = self.create_future()
        fd = sock.fileno()
        self._ensure_fd_no_transport(fd)
        # asyncio's trick: a list in the closure holds the position.
        handle = self._add_writer(fd, self._sock_sendall, fut, sock,
                                  memoryview(data), [n])
        fut.add_done_callback(partial(self._sock_write_done, fd, handle=handle))
        return await fut

    def _ensure_fd_no_transport(self, fd):
        # asyncio's check, with a C lookup in the TransportMap (for an fd
        # number or a socket; anything else takes asyncio's path, which
        # reports a bad file object).
        transports = self._transports
        if type(transports) is not TransportMap:
            return base_ensure_fd_no_transport(self, fd)
        if type(fd) is int:
            fileno = fd
        elif isinstance(fd, socket_type):
            fileno = fd.fileno()
        else:
            return base_ensure_fd_no_transport(self, fd)
        transport = (<TransportMap>transports).lookup(fileno)
        if transport is not None and not transport.is_closing():
            raise RuntimeError(
                f'File descriptor {fd!r} is used by transport {transport!r}')

    def _make_socket_transport(self, sock, protocol, waiter=None, *,
                               extra=None, server=None):
        if CHECK_SOCKET_TRANSPORT:
            # As asyncio 3.12+: no second transport on a socket in use.
            self._ensure_fd_no_transport(sock)
        transport = SocketTransport(self, sock, protocol, waiter, extra, server)
        share_addresses(self._wfc_addresses, transport._extra, server is not None)
        # After the sharing: the transport's extra info in slots.
        transport._extra = ExtraInfo(transport._extra)
        return transport

    def _make_datagram_transport(self, sock, protocol, address=None,
                                 waiter=None, extra=None):
        # The compiled datagram transport (loop/datagram_transport.pyx).
        if CHECK_SOCKET_TRANSPORT:
            # As asyncio 3.12+: no second transport on a socket in use.
            self._ensure_fd_no_transport(sock)
        return DatagramTransport(self, sock, protocol, address, waiter, extra)

    def _make_ssl_transport(self, rawsock, protocol, sslcontext, waiter=None,
                            *, server_side=False, server_hostname=None,
                            extra=None, server=None,
                            ssl_handshake_timeout=SSL_HANDSHAKE_TIMEOUT,
                            ssl_shutdown_timeout=SSL_SHUTDOWN_TIMEOUT):
        # The compiled TLS transport (loop/tls_transport.pyx) over the
        # socket transport: create_server(ssl=), create_connection(ssl=),
        # connect_accepted_socket(ssl=), create_unix_*(ssl=).
        tls = TLSProtocol(self, protocol, sslcontext, waiter,
                          server_side, server_hostname,
                          ssl_handshake_timeout=ssl_handshake_timeout,
                          ssl_shutdown_timeout=ssl_shutdown_timeout)
        self._make_socket_transport(rawsock, tls, extra=extra, server=server)
        return (<TLSProtocolBase>tls).app_transport

    async def start_tls(self, transport, protocol, sslcontext, *,
                        server_side=False, server_hostname=None,
                        ssl_handshake_timeout=None,
                        ssl_shutdown_timeout=None):
        """Upgrade transport to TLS (the compiled TLS transport).

        Return a new transport that *protocol* should start using
        immediately."""
        return await tls_upgrade(self, transport, protocol, sslcontext,
                                 server_side, server_hostname,
                                 ssl_handshake_timeout, ssl_shutdown_timeout)


cdef object BASE_RUN_ONCE = BaseLoop.__dict__["_run_once"]
cdef bint HAVE_RUN_FOREVER_SETUP = asyncio_compat.HAVE_RUN_FOREVER_SETUP
cdef object set_running_loop = asyncio_compat.set_running_loop
cdef object base__read_from_self = asyncio_compat.base__read_from_self
cdef object base__write_to_self = asyncio_compat.base__write_to_self
cdef object base__add_reader = asyncio_compat.base__add_reader
cdef object base__add_writer = asyncio_compat.base__add_writer
cdef object base__remove_writer = asyncio_compat.base__remove_writer
