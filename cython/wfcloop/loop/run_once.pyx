# run_once.pyx, included by _loop.pyx (one extension module, as uvloop's
# loop.pyx includes its handles).
#
# One iteration of the loop, compiled: _Dispatch turns the selector's
# events (its poll_into and ready_key, wfcloop/_eventpoll_selector.pxd)
# into the reader and writer handles of their fds, run_once pops the
# due timers and runs the ready handles, run_until_stopped is run_forever's
# loop.


cdef class _Dispatch:
    """The loop's view of its selector: a reused event array, filled by the
    selector's poll_into and decoded by its ready_key (the one decoding,
    shared with select()) into each event's key, whose data holds the fd's
    reader and writer handles."""

    def __cinit__(self, loop, selector):
        self.loop = loop
        self.selector = <EventPollSelector?>selector
        self.ready = loop._ready
        self.batch.events = NULL
        self.batch.capacity = 0
        batch_reserve(&self.batch, 64)

    def __dealloc__(self):
        free(self.batch.events)

    cdef int poll_and_queue(self, int timeout_ms) except -1:
        """Wait for events and append their handles to the ready deque,
        as BaseSelectorEventLoop._process_events does with a selector's
        (key, mask) list: a cancelled handle unregisters its side.  At most
        MAX_EVENTS_PER_POLL events per poll; the rest stays queued."""
        cdef int n, i, mask
        cdef uint32_t ev
        cdef PyObject *found
        cdef object key, reader, writer
        cdef EventPollSelector selector = self.selector
        n = selector.poll_into(&self.batch, MAX_EVENTS_PER_POLL, timeout_ms, 0)
        if n <= 0:
            return 0
        ready = self.ready
        for i in range(n):
            ev = self.batch.events[i].events
            if ev & WFC_EV_NOTIFY_BITS:
                # The EventPoll's own notification for fd, not the kernel's
                # readiness: the handle its user registered for fd runs
                # (EventPoll.set_notify); the dispatcher does not know what
                # it is about.
                handle = selector.eventpoll.notify_handle(self.batch.events[i].fd)
                if handle is not None:
                    ready.append(handle)
                ev &= ~WFC_EV_NOTIFY_BITS
                if ev == 0:
                    continue
            found = ready_key(selector, self.batch.events[i].fd, ev, &mask)
            if found == NULL:
                continue
            # Held: removing a cancelled reader may drop the selector's.
            key = <object>found
            # key.data: the (reader, writer) asyncio registers
            reader, writer = <object>PyTuple_GET_ITEM(key, 3)
            if mask & SELECTOR_READ and reader is not None:
                if is_cancelled(reader):
                    self.loop._remove_reader(<object>PyTuple_GET_ITEM(key, 0))
                else:
                    ready.append(reader)
            if mask & SELECTOR_WRITE and writer is not None:
                if is_cancelled(writer):
                    self.loop._remove_writer(<object>PyTuple_GET_ITEM(key, 0))
                else:
                    ready.append(writer)
        return n


cdef inline int timeout_to_ms(double timeout) noexcept:
    """Seconds to epoll milliseconds, rounded up so the wait is at least
    timeout (as selectors.EpollSelector rounds)."""
    if timeout <= 0:
        return 0
    return <int>ceil(timeout * 1e3)


cdef run_handle(object handle):
    """Handle._run(), without its Python frame, for asyncio's own Handle
    and TimerHandle; any other handle type runs its own _run()."""
    cdef type t = type(handle)
    cdef PyObject *field
    if t is not Handle and t is not TimerHandle:
        handle._run()
        return
    field = get_slot(handle, H_CALLBACK)
    callback = <object>field if field != NULL else handle._callback
    field = get_slot(handle, H_ARGS)
    args = <object>field if field != NULL else handle._args
    field = get_slot(handle, H_CONTEXT)
    context = <object>field if field != NULL else handle._context
    try:
        # context.run(callback, *args), without building its argument tuple
        PyContext_Enter(context)
        try:
            if type(args) is tuple:
                PyObject_Call(callback, args, NULL)
            else:
                callback(*args)
        finally:
            PyContext_Exit(context)
    except (SystemExit, KeyboardInterrupt):
        raise
    except BaseException as exc:
        if FORMAT_WITH_DEBUG:
            # 3.13+: the arguments are shown in debug mode only (as in
            # asyncio's Handle._run).
            cb = format_callback_source(
                callback, args, debug=handle._loop.get_debug())
        else:
            cb = format_callback_source(callback, args)
        context = {
            'message': f'Exception in callback {cb}',
            'exception': exc,
            'handle': handle,
        }
        if handle._source_traceback:
            context['source_traceback'] = handle._source_traceback
        handle._loop.call_exception_handler(context)


cdef inline bint is_cancelled(object handle) except -1:
    """handle._cancelled, read in place for asyncio's own handle types."""
    cdef type t = type(handle)
    cdef PyObject *field
    if t is Handle or t is TimerHandle:
        field = get_slot(handle, H_CANCELLED)
        if field == Py_True:
            return True
        if field == Py_False:
            return False
    return bool(handle._cancelled)


cdef inline double loop_time(object loop, _Scheduler scheduler) except? -1.0:
    """loop.time(): the monotonic clock, unless a subclass has its own."""
    if scheduler.own_clock:
        return monotonic()
    return loop.time()


cdef run_once(object loop, _Dispatch dispatch, _Scheduler scheduler):
    """One iteration of the loop: BaseEventLoop._run_once, compiled.

    loop._scheduled is a heap of (when, sequence, TimerHandle) entries:
    tuples compare in C (asyncio's TimerHandle.__lt__ is Python), and the
    sequence number makes timers with equal deadlines run in the order
    they were scheduled."""
    cdef list scheduled = scheduler.scheduled
    cdef Py_ssize_t sched_count = len(scheduled)
    cdef Py_ssize_t ntodo, i
    cdef double timeout, end_time, t0, dt
    cdef int timeout_ms
    cdef bint debug
    ready = dispatch.ready

    if (sched_count > MIN_SCHEDULED_TIMER_HANDLES and
            loop._timer_cancelled_count / <double>sched_count >
            MIN_CANCELLED_TIMER_HANDLES_FRACTION):
        # Remove delayed calls that were cancelled if their number is too high.
        new_scheduled = []
        for entry in scheduled:
            handle = (<tuple>entry)[2]
            if handle._cancelled:
                handle._scheduled = False
            else:
                new_scheduled.append(entry)
        heapify(new_scheduled)
        scheduler.scheduled = scheduled = new_scheduled
        loop._timer_cancelled_count = 0
    else:
        # Remove delayed calls that were cancelled from the head of the heap.
        while scheduled and (<tuple>scheduled[0])[2]._cancelled:
            loop._timer_cancelled_count -= 1
            handle = (<tuple>heap_pop(scheduled))[2]
            unschedule(handle)

    if ready or loop._stopping:
        timeout_ms = 0
    elif scheduled:
        timeout = <double>(<tuple>scheduled[0])[0] - loop_time(loop, scheduler)
        if timeout > MAXIMUM_SELECT_TIMEOUT:
            timeout = MAXIMUM_SELECT_TIMEOUT
        timeout_ms = timeout_to_ms(timeout)
    else:
        timeout_ms = -1

    dispatch.poll_and_queue(timeout_ms)

    # Timers that are due.
    if scheduled:
        end_time = loop_time(loop, scheduler) + loop._clock_resolution
        while scheduled:
            if (<tuple>scheduled[0])[0] >= end_time:
                break
            handle = (<tuple>heap_pop(scheduled))[2]
            unschedule(handle)
            ready.append(handle)

    # Run what is ready now; callbacks scheduled by these run next time,
    # after another poll.
    ntodo = len(ready)
    popleft = ready.popleft
    debug = scheduler.debug
    for i in range(ntodo):
        handle = popleft()
        if is_cancelled(handle):
            continue
        if debug:
            try:
                loop._current_handle = handle
                t0 = monotonic()
                run_handle(handle)
                dt = monotonic() - t0
                if dt >= loop.slow_callback_duration:
                    logger.warning('Executing %s took %.3f seconds',
                                   format_handle(handle), dt)
            finally:
                loop._current_handle = None
        else:
            run_handle(handle)
    handle = None  # Needed to break cycles when an exception occurs.


cdef object RUN_ONCE_NAME = asyncio_compat.declared(asyncio_compat.LOOP_STATE, "_run_once")
cdef object STOPPING_NAME = asyncio_compat.declared(asyncio_compat.LOOP_STATE, "_stopping")
cdef int EVAL_BREAKER_EVERY = 64   # iterations between two eval-breaker points

# A function of Python bytecode, so that calling it passes the interpreter's
# eval breaker (its RESUME instruction): the GIL goes to another thread that
# asked for it, and Python signal handlers run and may raise.  Compiled code
# never passes it; asyncio's `while True:` loop passed it every iteration.
_breaker_namespace = {}
exec("def eval_breaker_point():\n    pass\n", _breaker_namespace)
cdef object eval_breaker_point = _breaker_namespace["eval_breaker_point"]
del _breaker_namespace


cdef run_until_stopped(object loop, object own_run_once):
    """asyncio's ``while True: self._run_once(); if self._stopping: break``
    (BaseEventLoop.run_forever), compiled.

    The loop's own _run_once runs as a C call unless the instance has one
    of its own (tests replace it) or ``own_run_once`` is false (a subclass
    overrides it).  Every EVAL_BREAKER_EVERY iterations the loop passes the
    interpreter's eval breaker, as the bytecode loop did at each: without
    it, a loop whose callbacks are all C (future callbacks, say) would keep
    the GIL from other Python threads and Python signal handlers from
    running."""
    cdef _Dispatch dispatch = loop._wfc_dispatch
    cdef _Scheduler scheduler = loop._wfc_scheduler
    cdef dict parked = loop._wfc_parked_readers
    cdef dict attrs = loop.__dict__
    cdef PyObject *stopping
    cdef int n = 0
    while True:
        if own_run_once and PyDict_GetItem(attrs, RUN_ONCE_NAME) == NULL:
            if parked:
                release_parked_readers(loop)
            run_once(loop, dispatch, scheduler)
        else:
            loop._run_once()
        # loop._stopping, from the instance's dict where it lives
        stopping = PyDict_GetItem(attrs, STOPPING_NAME)
        if (<object>stopping if stopping != NULL else loop._stopping):
            break
        n += 1
        if n == EVAL_BREAKER_EVERY:
            n = 0
            eval_breaker_point()
