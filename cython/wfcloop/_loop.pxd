# cython: language_level=3
# The compiled loop's cdef classes, one .pxd per file of loop/ that has one
# (as uvloop's loop.pxd includes its handles' declarations).
from wfcloop._eventpoll cimport EventPoll, wfc_event
from wfcloop._eventpoll_selector cimport EventPollSelector, event_batch

include "loop/run_once.pxd"
include "loop/sock.pxd"
include "loop/scheduler.pxd"
include "loop/transport_map.pxd"
include "loop/datagram_transport.pxd"
include "loop/poller_io.pxd"
include "loop/tls_transport.pxd"
