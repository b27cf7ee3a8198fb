# cython: language_level=3
"""The loop's timer heap: heapq's push and pop on a list of
``(when, sequence, TimerHandle)`` entries, with the comparison in C.

heapq compares two entries with tuple rich comparison: an ``==`` and a
``<`` of the deadlines through float's rich comparison, per level; a pop
from a heap of 100,000 timers walks about 17 levels and compares twice per
level.  These functions compare two entries' deadlines as C doubles when
both are floats (what ``call_later`` and ``loop.time()`` make) and fall
back to tuple comparison otherwise (ints, a NaN, equal deadlines, entries
that are not tuples), so the order is exactly heapq's: deadline, then
sequence number.

The algorithms are heapq's (``_siftdown``, ``_siftup``), so a heap built
by one may be used by the other (``loop._scheduled`` is also asyncio's
list).  Only the loop's thread calls them, with the GIL held.  A fallback
comparison runs Python code, which could change the list: as heapq does,
the size is checked after each and a change raises RuntimeError.
"""
from cpython.float cimport PyFloat_AS_DOUBLE
from cpython.list cimport PyList_GET_SIZE
from cpython.object cimport PyObject, PyObject_RichCompareBool, Py_LT
from cpython.tuple cimport PyTuple_GET_ITEM, PyTuple_GET_SIZE

cimport cython


cdef inline int entry_lt(object a, object b, list heap, Py_ssize_t size) except -1:
    """a < b for two heap entries, as tuple comparison orders them."""
    cdef PyObject *ka
    cdef PyObject *kb
    cdef double da, db
    if type(a) is tuple and type(b) is tuple and \
            PyTuple_GET_SIZE(a) > 0 and PyTuple_GET_SIZE(b) > 0:
        ka = PyTuple_GET_ITEM(a, 0)
        kb = PyTuple_GET_ITEM(b, 0)
        if type(<object>ka) is float and type(<object>kb) is float:
            da = PyFloat_AS_DOUBLE(<object>ka)
            db = PyFloat_AS_DOUBLE(<object>kb)
            if da < db:
                return 1
            if da > db:
                return 0
            # Equal deadlines (sequence decides) or a NaN: tuple comparison.
    cdef int lt = PyObject_RichCompareBool(a, b, Py_LT)
    if PyList_GET_SIZE(heap) != size:
        raise RuntimeError("list changed size during iteration")
    return lt


@cython.boundscheck(False)
@cython.wraparound(False)
cdef inline int sift_down(list heap, Py_ssize_t startpos, Py_ssize_t pos) except -1:
    """heapq._siftdown: move heap[pos] up towards startpos to its place."""
    cdef Py_ssize_t size = PyList_GET_SIZE(heap)
    cdef Py_ssize_t parentpos
    newitem = heap[pos]
    while pos > startpos:
        parentpos = (pos - 1) >> 1
        parent = heap[parentpos]
        if entry_lt(newitem, parent, heap, size):
            heap[pos] = parent
            pos = parentpos
            continue
        break
    heap[pos] = newitem
    return 0


@cython.boundscheck(False)
@cython.wraparound(False)
cdef inline int sift_up(list heap, Py_ssize_t pos) except -1:
    """heapq._siftup: move the smaller child up until heap[pos]'s item
    reaches a leaf, then sift it down to its place."""
    cdef Py_ssize_t endpos = PyList_GET_SIZE(heap)
    cdef Py_ssize_t startpos = pos
    cdef Py_ssize_t childpos, rightpos
    newitem = heap[pos]
    childpos = 2 * pos + 1
    while childpos < endpos:
        rightpos = childpos + 1
        if rightpos < endpos and not entry_lt(heap[childpos], heap[rightpos],
                                              heap, endpos):
            childpos = rightpos
        heap[pos] = heap[childpos]
        pos = childpos
        childpos = 2 * pos + 1
    heap[pos] = newitem
    return sift_down(heap, startpos, pos)


cdef inline int heap_push(list heap, object entry) except -1:
    """heapq.heappush(heap, entry)."""
    heap.append(entry)
    return sift_down(heap, 0, PyList_GET_SIZE(heap) - 1)


@cython.boundscheck(False)
@cython.wraparound(False)
cdef inline object heap_pop(list heap):
    """heapq.heappop(heap): the smallest entry; IndexError if empty."""
    last = heap.pop()
    if PyList_GET_SIZE(heap) == 0:
        return last
    first = heap[0]
    heap[0] = last
    sift_up(heap, 0)
    return first
