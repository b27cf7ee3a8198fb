# poller_io.pyx, included by _loop.pyx (one extension module, as uvloop's
# loop.pyx includes its handles).
#
# Poller-side I/O of SocketTransport: the pollers receive, send and re-arm
# for the transport while the loop is in its pollers phase (see the class
# comment of SocketTransport and cython/eventpoll_core.c, POLLER-SIDE I/O).


cdef io_start(transport, fd):
    """Let the pollers do transport's I/O, if its loop has poller-side I/O
    and fd is the transport's registered, reading socket."""
    cdef EventPoll poll
    loop = transport._loop
    if loop is None:
        return
    io = loop._wfc_io
    if io is None or fd != transport._sock_fd:
        return
    poll = <EventPoll>io
    if poll.io_enable(fd) == 0:
        transport._wfc_io = poll
        loop._wfc_io_transports[fd] = transport


cdef io_stop(transport, bint keep_writes, bint keep_read):
    """Back to asyncio's state: no poller reads for the transport any more
    (one that is reading has finished); its read already made is held
    (keep_read, for resume_reading) or dropped; output queued goes through
    asyncio's write (keep_writes) or is dropped (abort)."""
    cdef EventPoll poll = <EventPoll>transport._wfc_io
    fd = transport._sock_fd
    if poll is not None:
        transport._wfc_io = None
        poll.io_disable(fd)
        r = poll.io_take_read(fd)
        if r is not None and keep_read:
            if transport._wfc_held is None:
                transport._wfc_held = []
            transport._wfc_held.append(r)
    if transport._wfc_queued:
        if keep_writes:
            io_settle_writes(transport)
        else:
            # abort(): asyncio's write would have sent this already where
            # the socket had room; one try, then it is dropped as asyncio
            # drops its buffer.
            transport._wfc_queued = False
            loop = transport._loop
            if loop is not None and loop._wfc_io is not None:
                data, err = (<EventPoll>loop._wfc_io).io_take_writes(fd)
                if data is not None and not err and not transport._conn_lost:
                    c_send(fd, PyBytes_AS_STRING(data), PyBytes_GET_SIZE(data),
                           MSG_NOSIGNAL | MSG_DONTWAIT)


cdef io_settle_writes(transport):
    """Take the output queued for the pollers and not sent (a short send,
    or not sent yet) through asyncio's write, in order; a send that failed
    is asyncio's fatal write error."""
    cdef EventPoll poll
    loop = transport._loop
    transport._wfc_queued = False
    if loop is None or loop._wfc_io is None:
        return
    poll = <EventPoll>loop._wfc_io
    data, err = poll.io_take_writes(transport._sock_fd)
    if err:
        transport._fatal_error(OSError(err, strerror(err).decode()),
                               'Fatal write error on socket transport')
        return
    if data is not None:
        plain_write(transport, data)


def _io_settle_writes(transport):
    """A poller's send for transport stopped short or failed."""
    io_settle_writes(transport)


cdef bint io_read_taken(transport) except -1:
    """Deliver the reads held while paused and the read a poller made for
    transport, if any: True when the reader has nothing more to do."""
    cdef EventPoll poll = <EventPoll>transport._wfc_io
    if transport._wfc_held:
        transport._wfc_deliver_held()
        if transport._wfc_held or transport._conn_lost:
            return True
    r = poll.io_take_read(transport._sock_fd)
    if r is None:
        return False
    deliver_read(transport, r)
    return True


cdef deliver_read(transport, r):
    """Hand a read the pollers made (bytes, 0 for end of file, or an
    OSError) to the protocol, as the transport's own read would."""
    if type(r) is bytes:
        if isinstance(transport._protocol, BufferedProtocol):
            feed_buffered(transport, r)
            return
        try:
            transport._protocol.data_received(r)
        except (SystemExit, KeyboardInterrupt):
            raise
        except BaseException as exc:
            transport._fatal_error(
                exc, 'Fatal error: protocol.data_received() call failed.')
    elif type(r) is int:
        transport._read_ready__on_eof()
    else:
        transport._fatal_error(r, 'Fatal read error on socket transport')


cdef feed_buffered(transport, bytes data):
    """data into a BufferedProtocol's buffers: get_buffer() and
    buffer_updated() as often as the buffers it gives need; what is left
    when reading pauses is held for resume_reading()."""
    cdef Py_ssize_t offset = 0, size = len(data), n
    cdef Py_buffer view
    protocol = transport._protocol
    while offset < size:
        if transport._conn_lost:
            return
        if transport._paused:
            if transport._wfc_held is None:
                transport._wfc_held = []
            transport._wfc_held.insert(0, data[offset:])
            return
        if not get_protocol_buffer(transport, size - offset, &view):
            return
        n = min(view.len, size - offset)
        memcpy(view.buf, PyBytes_AS_STRING(data) + offset, n)
        PyBuffer_Release(&view)
        offset += n
        try:
            protocol.buffer_updated(n)
        except (SystemExit, KeyboardInterrupt):
            raise
        except BaseException as exc:
            transport._fatal_error(
                exc, 'Fatal error: protocol.buffer_updated() call failed.')
            return
