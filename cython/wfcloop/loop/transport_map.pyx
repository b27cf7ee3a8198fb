# transport_map.pyx, included by _loop.pyx (one extension module, as uvloop's
# loop.pyx includes its handles).
#
# TransportMap: loop._transports, the transport of each fd, without a weak
# reference per reading socket transport.


cdef class TransportMap:
    """loop._transports: the transport of each fd, where asyncio's
    ``_ensure_fd_no_transport`` looks before letting add_reader() and the
    sock_* methods touch an fd.

    asyncio keeps a WeakValueDictionary: a weak reference per transport
    (88 bytes and a table slot), so that an unclosed transport nothing else
    holds can still be collected.  A socket transport that is reading is
    held by its reader in the selector anyway, and the reader says which
    transport it is (its callback is a method of the transport): such a
    transport is found there, with no entry of its own.  Weak entries
    remain for the rest, as in asyncio:

    * ``starting``: a socket transport from its creation until its reader
      first starts (connection_made runs before that), then dropped;
    * ``weak``: any other transport, and a socket transport once it stops
      reading while open (paused, or past an EOF its protocol keeps open);
      kept while it lives, so pausing and resuming again costs nothing.

    A lookup answers what asyncio's map answers for every open transport
    (a closing one may be left out: asyncio's check lets those pass), and
    an fd deleted from the map (as sendfile does while it uses the socket)
    stays absent until it is set again.  SocketTransport reports when its
    reader starts or stops (``track_reading``)."""

    def __cinit__(self, EventPollSelector selector not None):
        self.selector = selector
        self.starting = WeakValueDictionary()
        self.weak = WeakValueDictionary()
        self.starting_refs = self.starting.data
        self.weak_refs = self.weak.data
        self.deleted = set()

    cdef object lookup(self, fd):
        """The transport of fd, or None."""
        if self.deleted and fd in self.deleted:
            return None
        transport = reading_transport(self.selector, fd)
        if transport is None:
            transport = weak_get(self.weak_refs, fd)
            if transport is None:
                transport = weak_get(self.starting_refs, fd)
        return transport

    def __getitem__(self, fd):
        transport = self.lookup(fd)
        if transport is None:
            raise KeyError(fd)
        return transport

    def get(self, fd, default=None):
        transport = self.lookup(fd)
        return default if transport is None else transport

    def __contains__(self, fd):
        return self.lookup(fd) is not None

    def __setitem__(self, fd, transport):
        self.forget(fd)
        if reading_transport(self.selector, fd) is transport:
            return
        if isinstance(transport, SocketTransport) and not transport._paused:
            self.starting[fd] = transport
        else:
            self.weak[fd] = transport

    def __delitem__(self, fd):
        if self.lookup(fd) is None:
            raise KeyError(fd)
        self.forget(fd)
        self.deleted.add(fd)

    cdef forget(self, fd):
        """Drop what the map holds for fd.  The weak references go
        straight out of the WeakValueDictionaries' tables (their own
        methods are Python code; a reference dropped first never calls
        back)."""
        if self.deleted:
            self.deleted.discard(fd)
        if self.starting_refs:
            self.starting_refs.pop(fd, None)
        if self.weak_refs:
            self.weak_refs.pop(fd, None)

    def keys(self):
        fds = set(self.starting.keys())
        fds.update(self.weak.keys())
        for fd in list(self.fd_to_key):
            if reading_transport(self.selector, fd) is not None:
                fds.add(fd)
        return fds - self.deleted

    def __iter__(self):
        return iter(self.keys())

    def __len__(self):
        return len(self.keys())

    def items(self):
        return [(fd, self[fd]) for fd in self.keys()]

    def values(self):
        return [self[fd] for fd in self.keys()]

    def __repr__(self):
        return f'<TransportMap {dict(self.items())!r}>'

    cdef track(self, fd, transport):
        """transport's reader started or stopped: drop the entry of a
        starting transport once its reader holds it; give an open
        transport without a reader a weak entry."""
        if self.deleted and fd in self.deleted:
            return
        if reading_transport(self.selector, fd) is transport:
            if weak_get(self.starting_refs, fd) is transport:
                del self.starting_refs[fd]
        elif weak_get(self.weak_refs, fd) is not transport and not transport.is_closing():
            self.starting_refs.pop(fd, None)
            self.weak[fd] = transport


MutableMapping.register(TransportMap)


cdef inline object weak_get(dict refs, fd):
    """WeakValueDictionary.get(fd), read from its table (refs): the
    object, or None (no entry, or the object is gone)."""
    ref = refs.get(fd)
    return None if ref is None else ref()


cdef object reading_transport(EventPollSelector selector, fd):
    """The socket transport whose reader is registered for fd (an fd
    number; anything else has none), or None.  A socket transport's reader
    runs a bound method of the transport."""
    cdef int fd_number
    if not isinstance(fd, int):
        return None
    try:
        fd_number = fd
    except OverflowError:
        return None
    key = selector.key_for(fd_number)
    if key is None:
        return None
    data = key.data
    if type(data) is not tuple or len(<tuple>data) != 2:
        return None
    reader = (<tuple>data)[0]
    if type(reader) is not Handle:
        return None
    callback = reader._callback
    if type(callback) is not MethodType:
        return None
    owner = (<object>callback).__self__
    if isinstance(owner, SocketTransport):
        return owner
    return None


cdef track_reading(transport):
    """Tell the loop's TransportMap that transport's reader started or
    stopped."""
    loop = transport._loop
    if loop is None:
        return  # connection lost: the transport is closed
    transports = loop._transports
    if type(transports) is TransportMap:
        (<TransportMap>transports).track(transport._sock_fd, transport)
