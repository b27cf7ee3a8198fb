"""Build the compiled core.

The Cython sources live in ``cython/``; ``pip install .`` cythonizes them
(no generated C is committed) and compiles the C core beside them.
"""
import os

from Cython.Build import cythonize
from setuptools import Extension, setup

CFLAGS = ["-O2", "-std=gnu11", "-Wall", "-Wno-unused-function", "-pthread"]
if os.environ.get("WFCLOOP_DEBUG_BUILD"):
    CFLAGS = ["-O0", "-g", "-std=gnu11", "-Wall", "-Wno-unused-function", "-pthread"]


def ext(name, sources):
    return Extension(
        name,
        sources=sources,
        include_dirs=["cython"],
        extra_compile_args=CFLAGS,
        extra_link_args=["-pthread"],
    )


extensions = [
    ext("wfcloop._eventpoll", ["cython/wfcloop/_eventpoll.pyx", "cython/eventpoll_core.c"]),
    ext("wfcloop._eventpoll_selector", ["cython/wfcloop/_eventpoll_selector.pyx"]),
    ext("wfcloop._loop", ["cython/wfcloop/_loop.pyx"]),
]
# The C core's stress harnesses (cython/selftest/) are not part of what
# users install: the tests build them (tests/selftest_build.py, `make
# selftest`).

setup(
    ext_modules=cythonize(
        extensions,
        include_path=["cython"],
        compiler_directives={"language_level": "3", "embedsignature": True},
    ),
)
