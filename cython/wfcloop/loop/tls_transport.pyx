# tls_transport.pyx, included by _loop.pyx (one extension module, as uvloop's
# loop.pyx includes its handles).
#
# TLS over any stream transport: TLSProtocol (the underlying transport's
# protocol, the state machine in cdef code) and SSLTransport (what the
# application holds), on ssl.SSLObject over two ssl.MemoryBIOs with the
# user's SSLContext.  The contract is asyncio's sslproto: the same states
# (UNWRAPPED -> DO_HANDSHAKE -> WRAPPED -> FLUSHING -> SHUTDOWN), timeouts,
# flow control, errors and log messages.  What differs is the cost per
# record: socket reads go into a reused per-loop buffer and from there into
# the incoming BIO; records are decrypted into that buffer and reach the
# protocol as one bytes object per socket read (or straight into a
# BufferedProtocol's buffer); a write with nothing buffered is encrypted
# and handed to the underlying transport at once.

import warnings
try:
    import ssl as ssl_module
except ImportError:  # Python built without ssl: no TLS transports
    ssl_module = None

cdef enum:
    # TLSProtocolBase.state
    TLS_UNWRAPPED = 0
    TLS_DO_HANDSHAKE = 1
    TLS_WRAPPED = 2
    TLS_FLUSHING = 3
    TLS_SHUTDOWN = 4
    # TLSProtocolBase.app_state: INIT -cm-> CON_MADE [-dr*->] [-er-> EOF?] -cl-> CON_LOST
    APP_INIT = 0
    APP_CON_MADE = 1
    APP_EOF = 2
    APP_CON_LOST = 3
    # The reused buffer: what asyncio's SSLProtocol asks the transport to
    # read into (its max_size).
    TLS_BUFFER_SIZE = 256 * 1024

cdef tuple TLS_STATE_NAMES = tuple("SSLProtocolState." + name for name in (
    "UNWRAPPED", "DO_HANDSHAKE", "WRAPPED", "FLUSHING", "SHUTDOWN"))

cdef object SSLError = None
cdef object CertificateError = None
# What asyncio's sslproto treats as "try again once more data is in".
cdef tuple SSL_AGAIN_ERRORS = ()
cdef object SSLContext = None
cdef object MemoryBIO = None
cdef object SSLObject = None
if ssl_module is not None:
    SSLError = ssl_module.SSLError
    CertificateError = ssl_module.CertificateError
    SSL_AGAIN_ERRORS = (ssl_module.SSLWantReadError, ssl_module.SSLSyscallError)
    SSLContext = ssl_module.SSLContext
    MemoryBIO = ssl_module.MemoryBIO
    SSLObject = ssl_module.SSLObject
cdef object SSLOBJECT_IMPL = asyncio_compat.declared(asyncio_compat.SSL_OBJECT_STATE, "_sslobj")
cdef object CancelledError = asyncio.CancelledError
cdef object AsyncioTimeoutError = asyncio.TimeoutError
cdef object AsyncioTransport = asyncio.Transport
cdef object FlowControlMixin = asyncio_compat.FlowControlMixin
cdef object SSL_HIGH_WATER_READ_KIB = asyncio_compat.FLOW_CONTROL_HIGH_WATER_SSL_READ
cdef object SSL_HIGH_WATER_WRITE_KIB = asyncio_compat.FLOW_CONTROL_HIGH_WATER_SSL_WRITE
cdef Py_ssize_t LOG_THRESHOLD_FOR_CONNLOST_WRITES = asyncio_compat.LOG_THRESHOLD_FOR_CONNLOST_WRITES
cdef object SENDFILE_FALLBACK = asyncio_compat.SendfileMode.FALLBACK
cdef object START_TLS_COMPATIBLE = asyncio_compat.declared(
    asyncio_compat.SOCKET_TRANSPORT_STATE, "_start_tls_compatible")


cdef class TLSBuffer:
    """The reused buffer of one loop's TLS connections (see TLSProtocol).
    Each use runs from a get_buffer() to its buffer_updated(), or from a
    decryption to the bytes made of it, on the loop's thread: two
    connections of a loop never hold it at once."""

    def __cinit__(self, Py_ssize_t size):
        self.array = bytearray(size)
        self.view = memoryview(self.array)
        self.ptr = PyByteArray_AS_STRING(self.array)
        self.size = size


cdef TLSBuffer loop_tls_buffer(loop):
    """The loop's TLSBuffer, made when its first TLS connection is."""
    buf = getattr(loop, "_wfc_tls_buffer", None)
    if buf is None:
        buf = TLSBuffer(TLS_BUFFER_SIZE)
        try:
            loop._wfc_tls_buffer = buf
        except AttributeError:
            pass   # a loop that takes no attributes: a buffer per connection
    return <TLSBuffer>buf


def flowcontrol_limits(high, low, kib):
    """(high, low) write or read limits with asyncio's defaults: high
    defaults to kib KiB (or 4 * low), low to high // 4; ValueError unless
    high >= low >= 0."""
    if high is None:
        if low is None:
            hi = kib * 1024
        else:
            hi = 4 * low
    else:
        hi = high
    if low is None:
        lo = hi // 4
    else:
        lo = low
    if not hi >= lo >= 0:
        raise ValueError('high (%r) must be >= low (%r) must be >= 0' %
                         (hi, lo))
    return hi, lo


# The default limits, as flowcontrol_limits(None, None, ...) gives them.
cdef Py_ssize_t SSL_READ_HIGH, SSL_READ_LOW, SSL_WRITE_HIGH, SSL_WRITE_LOW
SSL_READ_HIGH, SSL_READ_LOW = flowcontrol_limits(None, None, SSL_HIGH_WATER_READ_KIB)
SSL_WRITE_HIGH, SSL_WRITE_LOW = flowcontrol_limits(None, None, SSL_HIGH_WATER_WRITE_KIB)


cdef object default_client_context(bint server_side, server_hostname):
    """ssl=True on a client: a default (verifying) context; a server must
    have been given one."""
    if server_side:
        raise ValueError('Server side SSL needs a valid SSLContext')
    context = ssl_module.create_default_context()
    if not server_hostname:
        context.check_hostname = False
    return context


cdef inline bint ssl_io_pending(ssl_io) except -1:
    """Whether the SSL object holds decrypted bytes not read yet."""
    return ssl_io.pending() > 0


cdef class TLSProtocolBase:
    """A TLS connection's state machine, as the protocol of the underlying
    (plaintext) transport; see TLSProtocol for the class in use."""

    def __init__(self, loop, app_protocol, sslcontext, waiter,
                 server_side=False, server_hostname=None,
                 call_connection_made=True,
                 ssl_handshake_timeout=None,
                 ssl_shutdown_timeout=None):
        if ssl_handshake_timeout is None:
            ssl_handshake_timeout = SSL_HANDSHAKE_TIMEOUT
        elif ssl_handshake_timeout <= 0:
            raise ValueError(
                f"ssl_handshake_timeout should be a positive number, "
                f"got {ssl_handshake_timeout}")
        if ssl_shutdown_timeout is None:
            ssl_shutdown_timeout = SSL_SHUTDOWN_TIMEOUT
        elif ssl_shutdown_timeout <= 0:
            raise ValueError(
                f"ssl_shutdown_timeout should be a positive number, "
                f"got {ssl_shutdown_timeout}")
        if not sslcontext:
            sslcontext = default_client_context(server_side, server_hostname)
        self.loop = loop
        self.buf = loop_tls_buffer(loop)
        self.server_side = server_side
        self.server_hostname = server_hostname if server_hostname and not server_side else None
        self.sslcontext = sslcontext
        self.write_backlog = []
        self.write_buffer_size = 0
        self.waiter = waiter
        self.set_app_protocol(app_protocol)
        self.app_transport = None
        self.app_transport_created = False
        self.transport = None
        self.handshake_timeout = ssl_handshake_timeout
        self.shutdown_timeout = ssl_shutdown_timeout
        self.incoming = MemoryBIO()
        self.outgoing = MemoryBIO()
        self.state = TLS_UNWRAPPED
        self.conn_lost = 0
        self.app_state = APP_INIT if call_connection_made else APP_CON_MADE
        self.sslobj = sslcontext.wrap_bio(
            self.incoming, self.outgoing, server_side=self.server_side,
            server_hostname=self.server_hostname)
        # SSLObject's read, write and do_handshake are Python wrappers of
        # its _ssl object's: called on that (unless the context makes a
        # subclass of SSLObject, whose own methods are honoured).
        if type(self.sslobj) is SSLObject:
            self.ssl_io = getattr(self.sslobj, SSLOBJECT_IMPL)
        else:
            self.ssl_io = self.sslobj
        self.handshake_done = False
        self.ssl_writing_paused = False
        self.app_reading_paused = False
        self.ssl_reading_paused = False
        self.peer_eof = False
        self.app_writing_paused = False
        self.incoming_high_water = SSL_READ_HIGH
        self.incoming_low_water = SSL_READ_LOW
        self.outgoing_high_water = SSL_WRITE_HIGH
        self.outgoing_low_water = SSL_WRITE_LOW
        self.app_transport = new_tls_transport(loop, self)
        self.app_transport_created = True

    cdef set_app_protocol(self, protocol):
        self.app_protocol = protocol
        self.app_is_buffered = (hasattr(protocol, 'get_buffer') and
                                isinstance(protocol, BufferedProtocol))

    cdef wakeup_waiter(self, exc):
        waiter = self.waiter
        if waiter is None:
            return
        if not waiter.cancelled():
            if exc is not None:
                waiter.set_exception(exc)
            else:
                waiter.set_result(None)
        self.waiter = None

    # ---- the underlying transport's protocol --------------------------------

    def connection_made(self, transport):
        """The underlying connection is made: start the handshake."""
        self.transport = transport
        self.start_handshake()

    def connection_lost(self, exc):
        """The underlying connection is lost or closed (exc: its error or
        None): the application's connection_lost() follows, unless the
        handshake had not finished (then the waiter gets exc)."""
        self.write_backlog.clear()
        self.write_buffer_size = 0
        self.outgoing.read()
        self.conn_lost += 1
        if self.app_transport is not None:
            self.app_transport._wfc_closed = True
        if self.state != TLS_DO_HANDSHAKE:
            if self.app_state == APP_CON_MADE or self.app_state == APP_EOF:
                self.app_state = APP_CON_LOST
                self.loop.call_soon(self.app_protocol.connection_lost, exc)
        self.set_state(TLS_UNWRAPPED)
        self.transport = None
        self.app_transport = None
        self.app_protocol = None
        self.wakeup_waiter(exc)
        if self.shutdown_timeout_handle is not None:
            self.shutdown_timeout_handle.cancel()
            self.shutdown_timeout_handle = None
        if self.handshake_timeout_handle is not None:
            self.handshake_timeout_handle.cancel()
            self.handshake_timeout_handle = None

    def get_buffer(self, n):
        """The loop's reused buffer (the whole of it, whatever n says)."""
        return self.buf.view

    def buffer_updated(self, nbytes):
        """nbytes of records were read into the buffer: into the incoming
        BIO, then on with the handshake, the reads or the shutdown."""
        self.records_received(nbytes)

    cdef records_received(self, Py_ssize_t nbytes):
        """buffer_updated(), also called by the socket transport's read
        (which reads into the buffer without asking get_buffer())."""
        cdef TLSBuffer buf = self.buf
        if nbytes == buf.size:
            self.incoming.write(buf.view)
        else:
            self.incoming.write(buf.view[:nbytes])
        if self.state == TLS_WRAPPED:
            self.do_read()
        elif self.state == TLS_DO_HANDSHAKE:
            self.do_handshake()
        elif self.state == TLS_FLUSHING:
            self.do_flush()
        elif self.state == TLS_SHUTDOWN:
            self.do_shutdown()

    def eof_received(self):
        """The peer half-closed the underlying stream: a handshake fails
        with ConnectionResetError, a wrapped connection shuts down."""
        self.peer_eof = True
        try:
            if self.loop.get_debug():
                logger.debug("%r received EOF", self)
            if self.state == TLS_DO_HANDSHAKE:
                self.on_handshake_complete(ConnectionResetError)
            elif self.state == TLS_WRAPPED:
                self.set_state(TLS_FLUSHING)
                if self.app_reading_paused:
                    return True
                self.do_flush()
            elif self.state == TLS_FLUSHING:
                self.do_write()
                self.set_state(TLS_SHUTDOWN)
                self.do_shutdown()
            elif self.state == TLS_SHUTDOWN:
                self.do_shutdown()
        except Exception:
            self.transport.close()
            raise

    def pause_writing(self):
        """The underlying transport's buffer is over its high-water mark:
        records stay in the outgoing BIO until resume_writing()."""
        assert not self.ssl_writing_paused
        self.ssl_writing_paused = True

    def resume_writing(self):
        """The underlying transport drained: send what the outgoing BIO
        holds, in one write."""
        assert self.ssl_writing_paused
        self.ssl_writing_paused = False
        self.process_outgoing()

    # ---- state ---------------------------------------------------------------

    cdef set_state(self, int new_state):
        cdef int old = self.state
        if (new_state == TLS_UNWRAPPED
                or (old == TLS_UNWRAPPED and new_state == TLS_DO_HANDSHAKE)
                or (old == TLS_DO_HANDSHAKE and new_state == TLS_WRAPPED)
                or (old == TLS_WRAPPED and new_state == TLS_FLUSHING)
                or (old == TLS_FLUSHING and new_state == TLS_SHUTDOWN)):
            self.state = new_state
            return
        raise RuntimeError('cannot switch state from {} to {}'.format(
            TLS_STATE_NAMES[old], TLS_STATE_NAMES[new_state]))

    # ---- handshake -----------------------------------------------------------

    cdef start_handshake(self):
        if self.loop.get_debug():
            logger.debug("%r starts SSL handshake", self)
            self.handshake_start_time = self.loop.time()
        else:
            self.handshake_start_time = None
        self.set_state(TLS_DO_HANDSHAKE)
        self.handshake_timeout_handle = self.loop.call_later(
            self.handshake_timeout, self.check_handshake_timeout)
        self.do_handshake()

    def check_handshake_timeout(self):
        """The handshake timer: abort a handshake still going on."""
        if self.state == TLS_DO_HANDSHAKE:
            msg = (f"SSL handshake is taking longer than "
                   f"{self.handshake_timeout} seconds: "
                   f"aborting the connection")
            self.fatal_error(ConnectionAbortedError(msg), 'Fatal error on transport')

    cdef do_handshake(self):
        try:
            self.ssl_io.do_handshake()
        except SSL_AGAIN_ERRORS:
            self.process_outgoing()
        except SSLError as exc:
            self.on_handshake_complete(exc)
        else:
            self.on_handshake_complete(None)

    cdef on_handshake_complete(self, handshake_exc):
        if self.handshake_timeout_handle is not None:
            self.handshake_timeout_handle.cancel()
            self.handshake_timeout_handle = None
        sslobj = self.sslobj
        try:
            if handshake_exc is None:
                self.set_state(TLS_WRAPPED)
            else:
                raise handshake_exc
            peercert = sslobj.getpeercert()
        except Exception as exc:
            self.set_state(TLS_UNWRAPPED)
            if isinstance(exc, CertificateError):
                msg = 'SSL handshake failed on verifying the certificate'
            else:
                msg = 'SSL handshake failed'
            self.fatal_error(exc, msg)
            self.wakeup_waiter(exc)
            return
        if self.loop.get_debug():
            dt = self.loop.time() - self.handshake_start_time
            logger.debug("%r: SSL handshake took %.1f ms", self, dt * 1e3)
        self.peercert = peercert
        self.cipher = sslobj.cipher()
        self.compression = sslobj.compression()
        self.handshake_done = True
        if self.app_state == APP_INIT:
            self.app_state = APP_CON_MADE
            self.app_protocol.connection_made(self.app_transport)
        self.wakeup_waiter(None)
        self.do_read()

    # ---- shutdown ------------------------------------------------------------

    cdef start_shutdown(self):
        if (self.state == TLS_FLUSHING or self.state == TLS_SHUTDOWN
                or self.state == TLS_UNWRAPPED):
            return
        if self.app_transport is not None:
            self.app_transport._wfc_closed = True
        if self.state == TLS_DO_HANDSHAKE:
            self.abort(None)
        else:
            self.set_state(TLS_FLUSHING)
            self.shutdown_timeout_handle = self.loop.call_later(
                self.shutdown_timeout, self.check_shutdown_timeout)
            self.do_flush()

    def check_shutdown_timeout(self):
        """The shutdown timer: drop a connection whose close_notify
        exchange is not over."""
        if self.state == TLS_FLUSHING or self.state == TLS_SHUTDOWN:
            self.transport._force_close(
                AsyncioTimeoutError('SSL shutdown timed out'))

    cdef do_flush(self):
        self.do_read()
        self.set_state(TLS_SHUTDOWN)
        self.do_shutdown()

    cdef do_shutdown(self):
        try:
            if not self.peer_eof:
                self.sslobj.unwrap()
        except SSL_AGAIN_ERRORS:
            self.process_outgoing()
        except SSLError as exc:
            self.on_shutdown_complete(exc)
        else:
            self.process_outgoing()
            self.call_eof_received()
            self.on_shutdown_complete(None)

    cdef on_shutdown_complete(self, shutdown_exc):
        if self.shutdown_timeout_handle is not None:
            self.shutdown_timeout_handle.cancel()
            self.shutdown_timeout_handle = None
        if shutdown_exc:
            self.fatal_error(shutdown_exc, 'Fatal error on transport')
        else:
            self.loop.call_soon(self.transport.close)

    cdef abort(self, exc):
        """Drop the connection: nothing more is sent or received."""
        self.set_state(TLS_UNWRAPPED)
        if self.transport is not None:
            if exc is None:
                self.transport.abort()
            else:
                self.transport._force_close(exc)

    # ---- outgoing ------------------------------------------------------------

    cdef write_appdata(self, data):
        """One write(): encrypted and handed on now when nothing waits
        before it; else after what does."""
        cdef Py_ssize_t count, size
        if self.state != TLS_WRAPPED or self.write_backlog:
            self.write_appdata_list((data,))
            return
        try:
            try:
                count = self.ssl_io.write(data)
            except SSL_AGAIN_ERRORS:
                count = 0
            size = len(data)
            if count < size:
                self.write_backlog.append(data[count:] if count else data)
                self.write_buffer_size += size - count
            self.process_outgoing()
        except Exception as ex:
            self.fatal_error(ex, 'Fatal error on SSL protocol')

    cdef write_appdata_list(self, list_of_data):
        if (self.state == TLS_FLUSHING or self.state == TLS_SHUTDOWN
                or self.state == TLS_UNWRAPPED):
            if self.conn_lost >= LOG_THRESHOLD_FOR_CONNLOST_WRITES:
                logger.warning('SSL connection is closed')
            self.conn_lost += 1
            return
        for data in list_of_data:
            self.write_backlog.append(data)
            self.write_buffer_size += len(data)
        try:
            if self.state == TLS_WRAPPED:
                self.do_write()
        except Exception as ex:
            self.fatal_error(ex, 'Fatal error on SSL protocol')

    cdef do_write(self):
        """Encrypt the backlog (all of it, unless the TLS session wants
        to read first), then hand the records on in one write."""
        cdef list backlog = self.write_backlog
        cdef Py_ssize_t count, size, done = 0
        write = self.ssl_io.write
        try:
            while done < len(backlog):
                data = backlog[done]
                count = write(data)
                size = len(data)
                if count < size:
                    backlog[done] = data[count:]
                    self.write_buffer_size -= count
                else:
                    done += 1
                    self.write_buffer_size -= size
        except SSL_AGAIN_ERRORS:
            pass
        if done:
            del backlog[:done]
        self.process_outgoing()

    cdef process_outgoing(self):
        """What the outgoing BIO holds, to the underlying transport in one
        write (unless it paused us); then the application's flow control."""
        if not self.ssl_writing_paused:
            data = self.outgoing.read()
            if PyBytes_GET_SIZE(data):
                self.transport.write(data)
        self.control_app_writing()

    # ---- incoming ------------------------------------------------------------

    cdef do_read(self):
        if self.state != TLS_WRAPPED and self.state != TLS_FLUSHING:
            return
        try:
            if not self.app_reading_paused:
                if self.app_is_buffered:
                    self.do_read_buffered()
                else:
                    self.do_read_copied()
                if self.write_backlog:
                    self.do_write()
                else:
                    self.process_outgoing()
            self.control_ssl_reading()
        except Exception as ex:
            self.fatal_error(ex, 'Fatal error on SSL protocol')

    cdef do_read_buffered(self):
        """Decrypt straight into the application's get_buffer(); read
        again soon if it filled up."""
        cdef Py_ssize_t offset = 0, count = 1, wants
        buf = self.app_protocol.get_buffer(self.incoming.pending)
        wants = len(buf)
        read = self.ssl_io.read
        try:
            count = read(wants, buf)
            if count > 0:
                offset = count
                # A memoryview's slice, not the buffer's: a bytearray's
                # slice is a copy (asyncio 3.11 slices the bytearray and
                # loses what it reads into the copy).
                view = memoryview(buf)
                while offset < wants:
                    count = read(wants - offset, view[offset:])
                    if count > 0:
                        offset += count
                    else:
                        break
                else:
                    self.loop.call_soon(self.read_again)
        except SSL_AGAIN_ERRORS:
            pass
        if offset > 0:
            self.app_protocol.buffer_updated(offset)
        if not count:
            # close_notify
            self.call_eof_received()
            self.start_shutdown()

    def read_again(self):
        """More records may be there after a full get_buffer()."""
        self.do_read()

    cdef do_read_copied(self):
        """Decrypt every whole record into the loop's buffer, then hand
        it all to data_received() as one bytes object."""
        cdef TLSBuffer buf = self.buf
        cdef Py_ssize_t offset = 0, count
        cdef bint close_notify = False
        cdef list chunks = None
        read = self.ssl_io.read
        try:
            while True:
                if offset == buf.size:
                    if chunks is None:
                        chunks = []
                    chunks.append(PyBytes_FromStringAndSize(buf.ptr, offset))
                    offset = 0
                count = read(buf.size - offset,
                             buf.view[offset:] if offset else buf.view)
                if count <= 0:
                    close_notify = True
                    break
                offset += count
                # Nothing left to decrypt: no record bytes in the BIO (the
                # TLS library, without read-ahead, takes from it only the
                # record it decrypts) and no plaintext held back.  The
                # read that would say so raises SSLWantReadError, which
                # costs about as much as the decryption of a small record.
                if not self.incoming.pending and not ssl_io_pending(self.ssl_io):
                    break
        except SSL_AGAIN_ERRORS:
            pass
        if chunks is None:
            if offset:
                self.app_protocol.data_received(
                    PyBytes_FromStringAndSize(buf.ptr, offset))
        else:
            if offset:
                chunks.append(PyBytes_FromStringAndSize(buf.ptr, offset))
            self.app_protocol.data_received(b''.join(chunks))
        if close_notify:
            self.call_eof_received()
            self.start_shutdown()

    cdef call_eof_received(self):
        try:
            if self.app_state == APP_CON_MADE:
                self.app_state = APP_EOF
                keep_open = self.app_protocol.eof_received()
                if keep_open:
                    logger.warning('returning true from eof_received() '
                                   'has no effect when using ssl')
        except (KeyboardInterrupt, SystemExit):
            raise
        except BaseException as ex:
            self.fatal_error(ex, 'Error calling eof_received()')

    # ---- flow control --------------------------------------------------------

    cdef control_app_writing(self):
        cdef Py_ssize_t size = self.get_write_buffer_size()
        if size >= self.outgoing_high_water and not self.app_writing_paused:
            self.app_writing_paused = True
            try:
                self.app_protocol.pause_writing()
            except (KeyboardInterrupt, SystemExit):
                raise
            except BaseException as exc:
                self.loop.call_exception_handler({
                    'message': 'protocol.pause_writing() failed',
                    'exception': exc,
                    'transport': self.app_transport,
                    'protocol': self,
                })
        elif size <= self.outgoing_low_water and self.app_writing_paused:
            self.app_writing_paused = False
            try:
                self.app_protocol.resume_writing()
            except (KeyboardInterrupt, SystemExit):
                raise
            except BaseException as exc:
                self.loop.call_exception_handler({
                    'message': 'protocol.resume_writing() failed',
                    'exception': exc,
                    'transport': self.app_transport,
                    'protocol': self,
                })

    cdef Py_ssize_t get_write_buffer_size(self) except -1:
        """As asyncio counts it: records in the outgoing BIO plus the
        application data not encrypted yet."""
        return self.outgoing.pending + self.write_buffer_size

    cdef control_ssl_reading(self):
        cdef Py_ssize_t size = self.incoming.pending
        if size >= self.incoming_high_water and not self.ssl_reading_paused:
            self.ssl_reading_paused = True
            self.transport.pause_reading()
        elif size <= self.incoming_low_water and self.ssl_reading_paused:
            self.ssl_reading_paused = False
            self.transport.resume_reading()

    def resume_app_reading(self):
        """resume_reading()'s callback: on with what was held back."""
        if self.state == TLS_WRAPPED:
            self.do_read()
        elif self.state == TLS_FLUSHING:
            self.do_flush()
        elif self.state == TLS_SHUTDOWN:
            self.do_shutdown()

    # ---- extra info, errors ------------------------------------------------

    cdef get_extra(self, name, default):
        if name == 'sslcontext':
            return self.sslcontext
        if self.handshake_done:
            if name == 'peercert':
                return self.peercert
            if name == 'cipher':
                return self.cipher
            if name == 'compression':
                return self.compression
            if name == 'ssl_object':
                return self.sslobj
        if self.transport is not None:
            return self.transport.get_extra_info(name, default)
        return default

    cdef fatal_error(self, exc, message):
        if self.transport is not None:
            self.transport._force_close(exc)
        if isinstance(exc, OSError):
            if self.loop.get_debug():
                logger.debug("%r: %s", self, message, exc_info=True)
        elif not isinstance(exc, CancelledError):
            self.loop.call_exception_handler({
                'message': message,
                'exception': exc,
                'transport': self.transport,
                'protocol': self,
            })


class TLSProtocol(TLSProtocolBase, BufferedProtocol):
    """The protocol of a TLS connection's underlying transport (a
    BufferedProtocol: the transport reads into the loop's TLS buffer)."""
    __slots__ = ()


cdef object new_tls_transport(loop, TLSProtocolBase protocol):
    transport = SSLTransport.__new__(SSLTransport)
    transport._loop = loop
    transport._wfc_tls = protocol
    transport._wfc_closed = False
    return transport


cdef TLSProtocolBase tls_protocol_of(transport):
    """The TLS protocol under an application's SSLTransport.  A transport
    closed a second time has let go of it (see SSLTransport.close); then
    AttributeError, as asyncio's transport raises there."""
    protocol = transport._wfc_tls
    if protocol is None:
        raise AttributeError(
            "the TLS transport was closed and has let go of its TLS protocol")
    return <TLSProtocolBase>protocol


class SSLTransport(FlowControlMixin, AsyncioTransport):
    """The transport a TLS connection's application holds: asyncio's
    SSL transport contract (start_tls() of it works, sendfile() takes the
    fallback, write_eof() is refused).  A _FlowControlMixin, as asyncio's
    is (sendfile's fallback checks), with its flow control its own.  Named
    SSL...Transport as asyncio's _SSLProtocolTransport and uvloop's are: code
    (CPython's own test_events among it) tells a TLS transport by "ssl" in
    its class name."""

    __slots__ = ('_wfc_tls', '_wfc_closed', '__weakref__')

    _start_tls_compatible = True
    _sendfile_compatible = SENDFILE_FALLBACK

    def __init__(self, loop, TLSProtocolBase protocol not None):
        self._loop = loop
        self._wfc_tls = protocol
        self._wfc_closed = False

    @property
    def _ssl_protocol(self):
        """The TLS protocol under this transport (asyncio's name for it)."""
        return self._wfc_tls

    @property
    def _protocol_paused(self):
        # What sendfile's fallback reads: is the application paused?
        return tls_protocol_of(self).app_writing_paused

    def get_extra_info(self, name, default=None):
        """'sslcontext', and after the handshake 'peercert', 'cipher',
        'compression' and 'ssl_object'; anything else the underlying
        transport's."""
        return tls_protocol_of(self).get_extra(name, default)

    def set_protocol(self, protocol):
        tls_protocol_of(self).set_app_protocol(protocol)

    def get_protocol(self):
        return tls_protocol_of(self).app_protocol

    def is_closing(self):
        return self._wfc_closed

    def close(self):
        """Close the transport: buffered data is flushed, close_notify
        sent, then the underlying transport closed; connection_lost(None)
        follows.  No more data is received."""
        if not self._wfc_closed:
            self._wfc_closed = True
            tls_protocol_of(self).start_shutdown()
        else:
            # Closed again (or after the connection was lost): let go of
            # the TLS protocol, as asyncio's transport does, so that an
            # application protocol that keeps this transport does not keep
            # the connection's SSLContext, SSLObject and buffers alive
            # (CPython's test_create_connection_memory_leak).
            self._wfc_tls = None

    def __del__(self):
        if not self._wfc_closed:
            self._wfc_closed = True
            warnings.warn("unclosed transport <wfcloop SSLTransport object>",
                          ResourceWarning)

    def is_reading(self):
        return not tls_protocol_of(self).app_reading_paused

    def pause_reading(self):
        """No more data_received() until resume_reading()."""
        tls_protocol_of(self).app_reading_paused = True

    def resume_reading(self):
        """data_received() again (from the next loop iteration)."""
        cdef TLSProtocolBase protocol = tls_protocol_of(self)
        if protocol.app_reading_paused:
            protocol.app_reading_paused = False
            protocol.loop.call_soon(protocol.resume_app_reading)

    def set_write_buffer_limits(self, high=None, low=None):
        """pause_writing() past high bytes buffered, resume_writing() at
        low or less (defaults: 512 KiB, high // 4)."""
        cdef TLSProtocolBase protocol = tls_protocol_of(self)
        protocol.outgoing_high_water, protocol.outgoing_low_water = \
            flowcontrol_limits(high, low, SSL_HIGH_WATER_WRITE_KIB)
        protocol.control_app_writing()

    def get_write_buffer_limits(self):
        cdef TLSProtocolBase protocol = tls_protocol_of(self)
        return (protocol.outgoing_low_water, protocol.outgoing_high_water)

    def get_write_buffer_size(self):
        """Bytes not sent yet: records in the outgoing BIO and data not
        encrypted yet."""
        return tls_protocol_of(self).get_write_buffer_size()

    def set_read_buffer_limits(self, high=None, low=None):
        """Pause the underlying transport past high bytes of records not
        decrypted yet, resume it at low (defaults: 256 KiB, high // 4)."""
        cdef TLSProtocolBase protocol = tls_protocol_of(self)
        protocol.incoming_high_water, protocol.incoming_low_water = \
            flowcontrol_limits(high, low, SSL_HIGH_WATER_READ_KIB)
        protocol.control_ssl_reading()

    def get_read_buffer_limits(self):
        cdef TLSProtocolBase protocol = tls_protocol_of(self)
        return (protocol.incoming_low_water, protocol.incoming_high_water)

    def get_read_buffer_size(self):
        return tls_protocol_of(self).incoming.pending

    def write(self, data):
        """Encrypt data and send it (or buffer it) without blocking."""
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise TypeError(f"data: expecting a bytes-like instance, "
                            f"got {type(data).__name__}")
        if not data:
            return
        tls_protocol_of(self).write_appdata(data)

    def writelines(self, list_of_data):
        """write() each item, with the records sent in one write."""
        tls_protocol_of(self).write_appdata_list(list_of_data)

    def write_eof(self):
        """Not supported over TLS: raises NotImplementedError."""
        raise NotImplementedError

    def can_write_eof(self):
        return False

    def abort(self):
        """Close at once: buffered data is lost, connection_lost(None)
        follows.  Nothing to do once the transport let go of its TLS
        protocol (as asyncio's from 3.12)."""
        self._force_close(None)

    def _force_close(self, exc):
        self._wfc_closed = True
        if self._wfc_tls is not None:
            (<TLSProtocolBase>self._wfc_tls).abort(exc)

    def _test__append_write_backlog(self, data):
        # asyncio's test hook (CPython's test_ssl fills the backlog with it).
        cdef TLSProtocolBase protocol = tls_protocol_of(self)
        protocol.write_backlog.append(data)
        protocol.write_buffer_size += len(data)


async def tls_upgrade(loop, transport, protocol, sslcontext, server_side,
                    server_hostname, ssl_handshake_timeout,
                    ssl_shutdown_timeout):
    """loop.start_tls(): asyncio's contract (see BaseLoop.start_tls)."""
    if ssl_module is None:
        raise RuntimeError('Python ssl module is not available')
    if not isinstance(sslcontext, SSLContext):
        raise TypeError(
            f'sslcontext is expected to be an instance of ssl.SSLContext, '
            f'got {sslcontext!r}')
    if not getattr(transport, START_TLS_COMPATIBLE, False):
        raise TypeError(
            f'transport {transport!r} is not supported by start_tls()')
    waiter = loop.create_future()
    tls = TLSProtocol(loop, protocol, sslcontext, waiter, server_side,
                      server_hostname,
                      ssl_handshake_timeout=ssl_handshake_timeout,
                      ssl_shutdown_timeout=ssl_shutdown_timeout,
                      call_connection_made=False)
    # Paused first, so that no read reaches the TLS protocol before its
    # connection_made().
    transport.pause_reading()
    transport.set_protocol(tls)
    conmade_cb = loop.call_soon(tls.connection_made, transport)
    resume_cb = loop.call_soon(transport.resume_reading)
    try:
        await waiter
    except BaseException:
        transport.close()
        conmade_cb.cancel()
        resume_cb.cancel()
        raise
    return (<TLSProtocolBase>tls).app_transport
