# server_accept.pyx, included by _loop.pyx (one extension module, as uvloop's
# loop.pyx includes its handles).
#
# The servers' accept path: the listening socket's reader accepts up to
# ``backlog`` connections and makes each one's protocol and transport at
# once, without asyncio's Task, coroutine and waiter future per connection.


cdef object base_accept_connection = asyncio_compat.base__accept_connection
cdef object base_accept_connection2 = asyncio_compat.base__accept_connection2


cdef bint accepts_plainly(loop, sslcontext) except -1:
    """Whether loop may take the compiled accept path: a plain (not TLS)
    server, outside debug mode (which logs each connection and reports a
    failed transport creation), on a class that keeps asyncio's
    _accept_connection2 (a subclass's own is called, through asyncio's
    path)."""
    return (sslcontext is None and not loop._debug
            and type(loop)._accept_connection2 is base_accept_connection2)


cdef accept_plain(loop, protocol_factory, sock, server, int backlog, tuple timeouts):
    """asyncio's _accept_connection for a plain server, compiled: what
    _accept_connection2's task would do for each accepted socket is done
    here, at once.

    The differences a program can see: protocol_factory() runs in this
    iteration instead of the next one, so connection_made() comes one
    iteration sooner, and no Task is made (asyncio.all_tasks() does not
    list one per connection).  What asyncio does outside debug mode when
    protocol_factory() or the transport fails is kept: the error is
    dropped, and the socket is left to be collected.  An accept() that
    fails for another reason than an empty queue goes to asyncio's own
    method, which reports it (and, out of file descriptors, pauses
    accepting) in its words."""
    cdef int i
    for i in range(backlog):
        try:
            conn, addr = sock.accept()
            conn.setblocking(False)
        except (BlockingIOError, InterruptedError, ConnectionAbortedError):
            return  # the accept queue is empty
        except OSError:
            base_accept_connection(loop, protocol_factory, sock, None, server,
                                   backlog - i, *timeouts)
            return
        try:
            protocol = protocol_factory()
            loop._make_socket_transport(conn, protocol, None,
                                        extra={'peername': addr}, server=server)
        except (SystemExit, KeyboardInterrupt):
            raise
        except BaseException:
            pass  # as asyncio's _accept_connection2 outside debug mode
