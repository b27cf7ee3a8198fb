"""Build and import ``wfcloop_selftest``: the C core's stress harnesses
(cython/selftest/*.c) behind a small Cython module, for the tests only.

It is not part of the wheel users install (``pip install .`` builds only
``wfcloop._eventpoll`` and ``wfcloop._loop``).  The tests build it here, with
the Cython and setuptools of the test environment, into
``build/selftest/`` of the repository (ignored by git), and rebuild it when
a source is newer than the built module.  ``make selftest`` and
``python tests/selftest_build.py`` build it the same way.
"""
import importlib
import os
import sys
import sysconfig
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "build" / "selftest"
NAME = "wfcloop_selftest"
PYX = ROOT / "cython" / "selftest" / f"{NAME}.pyx"
# Everything the module compiles: the .pyx, the harnesses it includes and
# the core they link against (one translation unit with its parts).
SOURCES = ([PYX, ROOT / "cython" / "eventpoll_core.c", ROOT / "cython" / "eventpoll_core.h",
            ROOT / "cython" / "wfcqueue.h"]
           + sorted((ROOT / "cython" / "selftest").glob("*.[ch]"))
           + sorted((ROOT / "cython" / "eventpoll").glob("*.[ch]")))
CFLAGS = ["-O2", "-std=gnu11", "-Wall", "-Wno-unused-function", "-pthread"]


def built_path():
    return OUT / (NAME + sysconfig.get_config_var("EXT_SUFFIX"))


def up_to_date():
    target = built_path()
    if not target.exists():
        return False
    newest = max(p.stat().st_mtime for p in SOURCES if p.exists())
    return target.stat().st_mtime >= newest


def build():
    """Compile the module into OUT (Cython, then the C compiler)."""
    from Cython.Build import cythonize
    from setuptools import Distribution, Extension

    ext = Extension(NAME, sources=[str(PYX.relative_to(ROOT)), "cython/eventpoll_core.c"],
                    include_dirs=["cython"], extra_compile_args=CFLAGS,
                    extra_link_args=["-pthread"])
    cwd = os.getcwd()
    os.chdir(ROOT)   # the sources and include paths are relative to the tree
    try:
        modules = cythonize([ext], include_path=["cython"], quiet=True,
                            build_dir=str(OUT / "c"),
                            compiler_directives={"language_level": "3"})
        dist = Distribution({"ext_modules": modules})
        cmd = dist.get_command_obj("build_ext")
        cmd.build_lib = str(OUT)
        cmd.build_temp = str(OUT / "tmp")
        cmd.ensure_finalized()
        cmd.run()
    finally:
        os.chdir(cwd)


def load():
    """The module, built first when missing or older than its sources."""
    if not up_to_date():
        build()
    if str(OUT) not in sys.path:
        sys.path.insert(0, str(OUT))
    return importlib.import_module(NAME)


if __name__ == "__main__":
    build()
    print(built_path())
