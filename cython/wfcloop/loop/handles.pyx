# handles.pyx, included by _loop.pyx (one extension module, as uvloop's
# loop.pyx includes its handles).
#
# asyncio's Handle and TimerHandle, built and updated in place (no Python
# __init__ frame, no attribute lookup per field).


# asyncio's Handle and TimerHandle keep their fields in __slots__: each is a
# member descriptor with a fixed offset in the object.  The loop reads and
# writes the fields of its own handles there directly, as the descriptors
# would, without an attribute lookup per field.

cdef Py_ssize_t slot_offset(type cls, str name) except -1:
    """Offset of the __slots__ field ``name`` of cls, from its descriptor."""
    descriptor = asyncio_compat.handle_slot(cls, name)   # ImportError if not
    return (<PyMemberDescrObject *>descriptor).d_member.offset


cdef Py_ssize_t H_CALLBACK = slot_offset(Handle, '_callback')
cdef Py_ssize_t H_ARGS = slot_offset(Handle, '_args')
cdef Py_ssize_t H_CANCELLED = slot_offset(Handle, '_cancelled')
cdef Py_ssize_t H_LOOP = slot_offset(Handle, '_loop')
cdef Py_ssize_t H_SOURCE_TRACEBACK = slot_offset(Handle, '_source_traceback')
cdef Py_ssize_t H_REPR = slot_offset(Handle, '_repr')
cdef Py_ssize_t H_CONTEXT = slot_offset(Handle, '_context')
cdef Py_ssize_t T_WHEN = slot_offset(TimerHandle, '_when')
cdef Py_ssize_t T_SCHEDULED = slot_offset(TimerHandle, '_scheduled')


cdef inline void set_slot(object obj, Py_ssize_t offset, object value) noexcept:
    """obj.<slot at offset> = value (as the member descriptor stores it).
    noexcept: nothing here raises, and Cython would otherwise check
    PyErr_Occurred() after each call (a thread-local read on 3.12+)."""
    cdef PyObject **field = <PyObject **>((<char *><PyObject *>obj) + offset)
    cdef PyObject *old = field[0]
    Py_INCREF(value)
    field[0] = <PyObject *>value
    Py_XDECREF(old)


cdef inline PyObject *get_slot(object obj, Py_ssize_t offset):
    """obj.<slot at offset>, borrowed; NULL if never set."""
    return (<PyObject **>((<char *><PyObject *>obj) + offset))[0]


cdef inline object alloc_handle(type cls):
    """A new instance of asyncio's Handle or TimerHandle, fields unset."""
    cdef PyObject *raw = wfcloop_alloc_instance(<PyTypeObject *>cls)
    if raw == NULL:
        raise MemoryError()
    handle = <object>raw
    Py_XDECREF(raw)
    return handle


cdef inline int init_handle(handle, callback, tuple args, loop, context) except -1:
    """Handle.__init__'s fields, outside debug mode, set in place."""
    if context is None:
        context = PyContext_CopyCurrent()
    set_slot(handle, H_CONTEXT, context)
    set_slot(handle, H_LOOP, loop)
    set_slot(handle, H_CALLBACK, callback)
    set_slot(handle, H_ARGS, args)
    set_slot(handle, H_CANCELLED, False)
    set_slot(handle, H_REPR, None)
    set_slot(handle, H_SOURCE_TRACEBACK, None)
    return 0


cdef object new_handle(callback, tuple args, loop, context):
    """events.Handle(callback, args, loop, context) outside debug mode,
    without running its Python __init__; the same fields, set in place."""
    handle = alloc_handle(Handle)
    init_handle(handle, callback, args, loop, context)
    return handle


cdef object new_timer_handle(when, callback, tuple args, loop, context):
    """events.TimerHandle(...) outside debug mode, likewise."""
    handle = alloc_handle(TimerHandle)
    init_handle(handle, callback, args, loop, context)
    set_slot(handle, T_WHEN, when)
    set_slot(handle, T_SCHEDULED, False)
    return handle


cdef inline int unschedule(handle) except -1:
    """handle._scheduled = False, for a timer taken off the heap."""
    if type(handle) is TimerHandle:
        set_slot(handle, T_SCHEDULED, False)
    else:
        handle._scheduled = False
    return 0
