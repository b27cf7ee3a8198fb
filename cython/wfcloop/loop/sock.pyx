# sock.pyx, included by _loop.pyx (one extension module, as uvloop's
# loop.pyx includes its handles).
#
# sock_recv, sock_recv_into and sock_sendall: the argument checks, the
# readiness wait and the parked readers that let the next call on the same
# socket reuse its registration.


try:
    from ssl import SSLSocket
except ImportError:  # Python built without ssl
    SSLSocket = None
from functools import partial

cdef object base__sock_read_done = asyncio_compat.base__sock_read_done


cdef inline check_not_ssl_socket(sock):
    """asyncio's _check_ssl_socket() (base_events)."""
    if SSLSocket is not None and isinstance(sock, SSLSocket):
        raise TypeError("Socket cannot be of type SSLSocket")


cdef check_sock_call(loop, sock):
    """The argument checks of asyncio's sock_* methods."""
    check_not_ssl_socket(sock)
    if loop._debug and sock.gettimeout() != 0:
        raise ValueError("the socket must be non-blocking")


cdef wait_to_read(loop, sock, callback, arg):
    """A future that callback(fut, sock, arg) completes once sock is
    readable: the reader parked for sock if there is one (repointed at
    this call), else a new reader; removed or parked when the future is
    done (_sock_read_done)."""
    fut = Future(loop=loop)
    fd = sock.fileno()
    loop._ensure_fd_no_transport(fd)
    handle = take_parked_reader(loop, fd, sock)
    if handle is not None:
        set_slot(handle, H_CALLBACK, callback)
        set_slot(handle, H_ARGS, (fut, sock, arg))
    else:
        handle = loop._add_reader(fd, callback, fut, sock, arg)
    fut.add_done_callback(SockReadDone(loop, fd, handle))
    return fut


cdef sock_read_done(loop, fd, fut, handle):
    """A sock_* read is done: park its reader (see BaseLoop's comment on
    parked readers), or remove it as asyncio does (debug mode, a cancelled
    or foreign handle)."""
    # A cancelled handle has no _args any more (asyncio's cancel() clears
    # them): asyncio's path, which leaves it alone.
    if handle is None or loop._debug or handle._args is None or len(handle._args) < 2:
        base__sock_read_done(loop, fd, fut, handle)
    elif not handle.cancelled():
        loop._wfc_parked_readers[fd] = handle


cdef class SockReadDone:
    """The done callback of a sock_recv(_into) future: what
    loop._sock_read_done(fd, fut, handle=handle) does, without a partial
    and its keywords dict per wait."""

    def __cinit__(self, loop, fd, handle):
        self.loop = loop
        self.fd = fd
        self.handle = handle

    def __call__(self, fut):
        sock_read_done(self.loop, self.fd, fut, self.handle)

    def __repr__(self):
        return f"<sock_read_done fd={self.fd}>"


cdef complete_read(fut, read, arg):
    """A reader callback of sock_recv(_into): read(arg) into fut, unless
    the future is done already or the socket has nothing yet."""
    if fut.done():
        return
    try:
        result = read(arg)
    except (BlockingIOError, InterruptedError):
        return  # try again next time
    except (SystemExit, KeyboardInterrupt):
        raise
    except BaseException as exc:
        fut.set_exception(exc)
    else:
        fut.set_result(result)


cdef release_parked_reader(loop, int fd, handle):
    """Remove the reader parked for fd, if it is still the registered one."""
    key = (<_Dispatch>loop._wfc_dispatch).selector.key_for(fd)
    if key is not None and key.data[0] is handle:
        base_remove_reader(loop, fd)


cdef release_parked_readers(loop):
    cdef dict parked = loop._wfc_parked_readers
    while parked:
        fd, handle = parked.popitem()
        release_parked_reader(loop, fd, handle)


cdef take_parked_reader(loop, int fd, sock):
    """The reader parked for fd, for a new sock_recv on the same socket
    object to reuse as is (it stays registered; the caller points it at
    its own future), or None.  A parked reader of another socket that got
    the same fd number is released."""
    cdef dict parked = loop._wfc_parked_readers
    if not parked:
        return None
    handle = parked.pop(fd, None)
    if handle is None:
        return None
    key = (<_Dispatch>loop._wfc_dispatch).selector.key_for(fd)
    if (handle._args[1] is sock and key is not None
            and key.data[0] is handle and not handle._cancelled):
        return handle
    release_parked_reader(loop, fd, handle)
    return None


cdef bint waited_last_time(loop, sock) except -1:
    """Whether the last sock_recv(_into) on sock had to wait for data (its
    reader is parked): a request/response peer then has rarely answered
    yet, so asyncio's first try would mostly fail (a recv syscall returning
    EAGAIN).  The caller then waits for readiness at once, as uvloop always
    does; data already there is reported by the very next poll."""
    cdef dict parked = loop._wfc_parked_readers
    if not parked:
        return False
    handle = parked.get(sock.fileno())
    return handle is not None and handle._args[1] is sock


cdef unpark_reader(loop, fd, sock):
    """Before a change of fd's registration: let sock_* on the same socket
    take over the parked reader (sock not None), else release it."""
    cdef dict parked = loop._wfc_parked_readers
    if type(fd) is not int:
        try:
            fd = fileobj_to_fd(fd)
        except ValueError:
            return  # asyncio's own method reports the bad fd
    handle = parked.pop(fd, None)
    if handle is None:
        return
    if sock is not None and handle._args[1] is sock and sock.fileno() == fd:
        return  # taken over: the caller's _add_reader swaps the handle
    release_parked_reader(loop, fd, handle)
