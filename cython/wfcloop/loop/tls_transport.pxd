# Included by _loop.pxd: the declarations of loop/tls_transport.pyx.


cdef class TLSBuffer:
    # A loop's reused TLS buffer: socket reads land here before they go
    # into a connection's incoming BIO, and decrypted records land here
    # before they become one bytes object.
    cdef object array            # the bytearray
    cdef object view             # a memoryview of all of it
    cdef char *ptr
    cdef Py_ssize_t size


cdef class TLSProtocolBase:
    # The TLS state machine of one connection (the underlying transport's
    # protocol); TLSProtocol adds asyncio.BufferedProtocol as a base.
    cdef object loop
    cdef TLSBuffer buf
    cdef object app_protocol
    cdef bint app_is_buffered
    cdef object app_transport        # the SSLTransport (None once lost)
    cdef bint app_transport_created
    cdef object transport            # the underlying transport
    cdef object waiter
    cdef object sslcontext
    cdef object sslobj               # ssl.SSLObject
    cdef object ssl_io               # what reads, writes, handshakes: its _ssl object
    cdef object incoming             # ssl.MemoryBIO: records from the peer
    cdef object outgoing             # ssl.MemoryBIO: records for the peer
    cdef bint server_side
    cdef object server_hostname
    cdef int state                   # a TLS_* state
    cdef int app_state               # an APP_* state
    cdef Py_ssize_t conn_lost
    cdef object handshake_timeout
    cdef object shutdown_timeout
    cdef object handshake_start_time
    cdef object handshake_timeout_handle
    cdef object shutdown_timeout_handle
    # get_extra_info's TLS values: sslcontext, and once the handshake is
    # done peercert, cipher, compression and ssl_object
    cdef bint handshake_done
    cdef object peercert
    cdef object cipher
    cdef object compression
    # application data not yet taken by SSLObject.write (renegotiation, a
    # write before the handshake), and its size
    cdef list write_backlog
    cdef Py_ssize_t write_buffer_size
    # flow control
    cdef bint ssl_writing_paused     # the underlying transport paused us
    cdef bint app_reading_paused     # the application paused reading
    cdef bint ssl_reading_paused     # we paused the underlying transport
    cdef bint peer_eof               # the underlying stream saw EOF
    cdef bint app_writing_paused     # we paused the application
    cdef Py_ssize_t incoming_high_water
    cdef Py_ssize_t incoming_low_water
    cdef Py_ssize_t outgoing_high_water
    cdef Py_ssize_t outgoing_low_water

    cdef records_received(self, Py_ssize_t nbytes)
    cdef set_app_protocol(self, protocol)
    cdef wakeup_waiter(self, exc)
    cdef set_state(self, int new_state)
    cdef start_handshake(self)
    cdef do_handshake(self)
    cdef on_handshake_complete(self, handshake_exc)
    cdef start_shutdown(self)
    cdef do_flush(self)
    cdef do_shutdown(self)
    cdef on_shutdown_complete(self, shutdown_exc)
    cdef abort(self, exc)
    cdef write_appdata(self, data)
    cdef write_appdata_list(self, list_of_data)
    cdef do_write(self)
    cdef process_outgoing(self)
    cdef do_read(self)
    cdef do_read_buffered(self)
    cdef do_read_copied(self)
    cdef call_eof_received(self)
    cdef control_app_writing(self)
    cdef Py_ssize_t get_write_buffer_size(self) except -1
    cdef control_ssl_reading(self)
    cdef get_extra(self, name, default)
    cdef fatal_error(self, exc, message)
