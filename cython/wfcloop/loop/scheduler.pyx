# scheduler.pyx, included by _loop.pyx (one extension module, as uvloop's
# loop.pyx includes its handles).
#
# _Scheduler: the ready deque, the timer heap and the scheduling methods
# (call_soon, call_later, call_at, call_soon_threadsafe, create_task) that
# a loop binds on itself.


cdef unsigned long long timer_sequence = 0


cdef object schedule_timer(_Scheduler self, when, callback, tuple args, context):
    """call_at's work: a TimerHandle for callback(*args) at ``when`` on the
    heap, after every timer with an earlier or equal deadline."""
    global timer_sequence
    if when is None:
        raise TypeError("when cannot be None")
    if self.closed:
        raise RuntimeError('Event loop is closed')
    if self.debug:
        self.loop._check_thread()
        self.loop._check_callback(callback, 'call_at')
        timer = TimerHandle(when, callback, args, self.loop, context)
    else:
        timer = new_timer_handle(when, callback, args, self.loop, context)
    timer_sequence += 1
    heap_push(self.scheduled, (when, timer_sequence, timer))
    set_slot(timer, T_SCHEDULED, True)
    return timer


cdef class _Scheduler:
    """The loop's callback state: the ready deque, the timer heap and the
    closed and debug flags, as C fields (BaseLoop's _ready, _scheduled,
    _closed and _debug are properties over them, so asyncio's own code
    reads and writes the same state), and the scheduling methods that a
    Loop binds on itself, so that loop.call_soon() is one C call."""

    def __cinit__(self, loop):
        self.loop = loop
        self.scheduled = []

    def set_ready(self, ready):
        self.ready = ready
        self.ready_append = ready.append

    def call_soon(self, callback, *args, context=None):
        """Arrange for callback(*args) to be called soon, in FIFO order."""
        if self.closed:
            raise RuntimeError('Event loop is closed')
        if self.debug:
            return base_call_soon(self.loop, callback, *args, context=context)
        handle = new_handle(callback, args, self.loop, context)
        self.ready_append(handle)
        return handle

    def call_later(self, delay, callback, *args, context=None):
        """Arrange for callback(*args) to be called after delay seconds.
        (Bound on a loop only where its class keeps BaseLoop's call_at,
        which asyncio's call_later calls.)"""
        if delay is None:
            raise TypeError('delay must not be None')
        return schedule_timer(self, loop_time(self.loop, self) + delay,
                              callback, args, context)

    def call_at(self, when, callback, *args, context=None):
        """Like call_later(), but with an absolute time on the loop's clock.
        Timers with equal deadlines run in the order they were scheduled."""
        return schedule_timer(self, when, callback, args, context)

    def time(self):
        """The loop's clock: time.monotonic()."""
        return monotonic()

    def get_debug(self):
        """Whether debug mode is on (every Future and Task asks)."""
        return self.debug

    def call_soon_threadsafe(self, callback, *args, context=None):
        """Like call_soon(), but thread-safe.

        The self-pipe gets one byte per batch, not one per call: a byte is
        written only when the flag says no earlier one is pending.  The
        loop clears the flag after draining the pipe, so a caller that
        skips the write either left a byte unread (the loop wakes up) or
        ran while the loop was between drain and clear: awake, and about
        to look at the ready queue, where the handle already is.  (Clearing
        before the drain would lose a wake-up: the drain may consume a byte
        written after the clear, leaving the flag set and no byte.)  The
        GIL orders the flag's reads and writes and the deque's appends."""
        if self.closed:
            raise RuntimeError('Event loop is closed')
        if self.debug:
            self.loop._check_callback(callback, 'call_soon_threadsafe')
            # Compiled methods have no frame: the handle's traceback already
            # ends at the caller (asyncio drops its own frames from it).
            handle = base__call_soon(self.loop, callback, args, context)
        else:
            handle = new_handle(callback, args, self.loop, context)
            self.ready_append(handle)
        if not self.wakeup_pending:
            self.wakeup_pending = True
            self.loop._write_to_self()
        return handle

    def create_task(self, coro, *, name=None, context=None):
        """Schedule the coroutine coro; return its Task: asyncio's
        create_task of 3.11 and 3.12 (3.12's eager tasks come from a task
        factory, which this calls as asyncio does).  3.13 changed how the
        task's name reaches a factory, and from 3.13 on loops keep
        asyncio's own.  Compiled, this has no frame of its own, so a
        debug-mode task's source traceback already ends at the caller."""
        if self.closed:
            raise RuntimeError('Event loop is closed')
        loop = self.loop
        factory = loop._task_factory
        if factory is None:
            return Task(coro, loop=loop, name=name, context=context)
        if context is None:
            # The legacy factory signature when no context is needed.
            task = factory(loop, coro)
        else:
            task = factory(loop, coro, context=context)
        set_task_name(task, name)
        return task


# The methods a Loop binds from its _Scheduler, unless a subclass overrides them.
SCHEDULER_METHODS = ("call_soon", "call_later", "call_at", "time", "get_debug",
                     "call_soon_threadsafe")
if asyncio_compat.COMPILED_CREATE_TASK:
    SCHEDULER_METHODS += ("create_task",)


def _get_scheduled(self):
    return (<_Scheduler>self._wfc_scheduler).scheduled


def _set_scheduled(self, list value):
    (<_Scheduler>self._wfc_scheduler).scheduled = value


def _get_closed(self):
    try:
        scheduler = self._wfc_scheduler
    except AttributeError:
        # __init__ failed before the loop existed (bad pollers, say): there
        # is nothing to close, and __del__ must not complain.
        return True
    return (<_Scheduler>scheduler).closed


def _set_closed(self, bint value):
    (<_Scheduler>self._wfc_scheduler).closed = value


def _get_debug(self):
    return (<_Scheduler>self._wfc_scheduler).debug


def _set_debug(self, bint value):
    (<_Scheduler>self._wfc_scheduler).debug = value
