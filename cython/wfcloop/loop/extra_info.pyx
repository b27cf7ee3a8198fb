# extra_info.pyx, included by _loop.pyx (one extension module, as uvloop's
# loop.pyx includes its handles).
#
# ExtraInfo: a socket transport's get_extra_info() values in slots, and the
# addresses that a loop's transports share.


cdef object MISSING = object()   # an ExtraInfo slot without a value
cdef object TransportSocket = asyncio_compat.TransportSocket


class ExtraInfo(MutableMapping):
    """A socket transport's extra info, in place of asyncio's dict.

    asyncio's socket transport fills a dict with 'socket', 'sockname' and
    'peername' (a 64-byte dict with a 120-byte table) and wraps the
    socket in a TransportSocket (40 bytes) up front.  This holds the three
    in slots (64 bytes in all) and makes the TransportSocket when first
    asked for, then keeps it, so get_extra_info('socket') returns the
    same object each time, as before.  Any other name goes to a dict made
    when one is set.  It is a MutableMapping: what asyncio and anyone
    else do with a transport's _extra works as on the dict."""

    __slots__ = ('_socket', '_sockname', '_peername', '_others')

    def __init__(self, extra=()):
        self._socket = self._sockname = self._peername = MISSING
        self._others = None
        for name, value in dict(extra).items():
            if (name == 'socket' and type(value) is TransportSocket
                    and isinstance(value._sock, socket_type)):
                # A bare socket in the slot stands for its TransportSocket,
                # made when asked for (see socket_slot).
                self._socket = value._sock
            else:
                self[name] = value

    def get(self, name, default=None):
        value = extra_slot(self, name)
        if value is MISSING:
            others = self._others
            if others is None:
                hash(name)  # an unhashable name fails as with a dict
                return default
            return others.get(name, default)
        return value

    def __getitem__(self, name):
        value = extra_slot(self, name)
        if value is MISSING:
            others = self._others
            if others is None:
                hash(name)
                raise KeyError(name)
            return others[name]
        return value

    def __contains__(self, name):
        if extra_slot(self, name) is not MISSING:
            return True
        others = self._others
        if others is None:
            hash(name)
            return False
        return name in others

    def __setitem__(self, name, value):
        if name == 'sockname':
            self._sockname = value
        elif name == 'peername':
            self._peername = value
        elif name == 'socket' and not isinstance(value, socket_type):
            self._socket = value
        else:
            # Also 'socket' set to a bare socket: the slot would wrap it.
            if name == 'socket':
                self._socket = MISSING
            if self._others is None:
                self._others = {}
            self._others[name] = value
            return
        if self._others is not None:
            self._others.pop(name, None)

    def __delitem__(self, name):
        if extra_slot(self, name) is not MISSING:
            setattr(self, '_' + name, MISSING)
        elif self._others is not None and name in self._others:
            del self._others[name]
        else:
            raise KeyError(name)

    def __iter__(self):
        for name in ('socket', 'sockname', 'peername'):
            if extra_slot(self, name) is not MISSING:
                yield name
        if self._others is not None:
            yield from self._others

    def __len__(self):
        return (sum(1 for name in ('socket', 'sockname', 'peername')
                    if extra_slot(self, name) is not MISSING)
                + (len(self._others) if self._others is not None else 0))

    def __repr__(self):
        return repr(dict(self))

    def copy(self):
        return dict(self)


cdef object extra_slot(info, name):
    """The value of name in info's slots, or MISSING (not a slot's name, or
    no value)."""
    if name == 'peername':
        return info._peername
    if name == 'sockname':
        return info._sockname
    if name == 'socket':
        value = info._socket
        if isinstance(value, socket_type):
            value = info._socket = TransportSocket(value)
        return value
    return MISSING


# How many distinct addresses a loop keeps for sharing; past that it starts
# over (a server with many different peers shares less, never grows more).
cdef Py_ssize_t MAX_SHARED_ADDRESSES = 1024


cdef object shared(dict addresses, value):
    """The object equal to value that the loop already keeps, else value
    (kept from now on)."""
    kept = addresses.get(value)
    if kept is not None and type(kept) is type(value):
        return kept
    if len(addresses) >= MAX_SHARED_ADDRESSES:
        addresses.clear()
    addresses[value] = value
    return value


cdef share_addresses(dict addresses, extra, bint accepted):
    """Point a new transport's 'sockname' and 'peername' at equal objects
    that other transports of the loop already hold, where that is likely
    to pay: asyncio keeps a fresh tuple, host string and port per
    connection, and idle connections are mostly that.

    A server's connections all have the listening address as their
    sockname (a wildcard listener: one per local address), so an accepted
    transport shares the whole tuple; a client's sockname has its own
    ephemeral port, and is left alone.  Peers are few hosts with many
    ports: the host string is shared and the tuple rebuilt around it.
    The values are equal to asyncio's and were read at the same moment;
    only which (immutable) objects hold them changes."""
    if accepted:
        sockname = extra.get('sockname')
        if sockname is not None:
            extra['sockname'] = shared(addresses, sockname)
    peername = extra.get('peername')
    if type(peername) is tuple and len(<tuple>peername) >= 2:
        host = (<tuple>peername)[0]
        if type(host) is str:
            kept = shared(addresses, host)
            if kept is not host:
                extra['peername'] = (kept,) + (<tuple>peername)[1:]
