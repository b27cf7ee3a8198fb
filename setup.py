"""Build the compiled core.

The Cython sources live in ``cython/``; ``pip install .`` cythonizes them
(no generated C is committed) and compiles the C core beside them.
"""
import glob
import os

from Cython.Build import cythonize
from setuptools import Extension, setup

CFLAGS = ["-O2", "-std=gnu11", "-Wall", "-Wno-unused-function", "-pthread"]
if os.environ.get("WFCLOOP_DEBUG_BUILD"):
    CFLAGS = ["-O0", "-g", "-std=gnu11", "-Wall", "-Wno-unused-function", "-pthread"]


# What eventpoll_core.c includes (one translation unit): a change to any of
# them rebuilds the core, as a change to eventpoll_core.c does.
CORE_DEPENDS = sorted(glob.glob("cython/eventpoll/*.c") + glob.glob("cython/*.h")
                      + glob.glob("cython/eventpoll/*.h"))


def ext(name, sources, depends=()):
    return Extension(
        name,
        sources=sources,
        depends=list(depends),
        include_dirs=["cython"],
        extra_compile_args=CFLAGS,
        extra_link_args=["-pthread"],
    )


extensions = [
    ext("wfcloop._eventpoll", ["cython/wfcloop/_eventpoll.pyx", "cython/eventpoll_core.c"],
        CORE_DEPENDS),
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
