"""Packaging: ``python -m build`` makes an sdist with the C and Cython
sources and no generated C, and a wheel compiled from that sdist alone; the
wheel, installed in a fresh venv, loads its compiled core and runs the loop.

This compiles the extensions once (20 to 60 s on 2 cores).  It needs the
``build`` package and a registry for build's isolated environment (setuptools,
Cython); ``WFCLOOP_SKIP_PACKAGING=1`` skips it (not under CI).
"""
import os
import subprocess
import sys
import tarfile
import textwrap
import zipfile
from pathlib import Path

import pytest

import wfcloop

ROOT = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.skipif(
    bool(os.environ.get("WFCLOOP_SKIP_PACKAGING")) and not os.environ.get("CI"),
    reason="WFCLOOP_SKIP_PACKAGING is set")

QUICK_CHECK = textwrap.dedent("""
    import asyncio, os, select, socket, sys
    import wfcloop
    from wfcloop import _eventpoll

    assert wfcloop.__file__.startswith(sys.prefix), wfcloop.__file__
    pkg = os.path.dirname(wfcloop.__file__)
    assert os.path.exists(os.path.join(pkg, "py.typed"))
    assert os.path.exists(os.path.join(pkg, "_eventpoll.pyi"))

    a, b = socket.socketpair()
    for pollers in (0, 2):
        with wfcloop.EventPoll(pollers=pollers) as ep:
            ep.register(a, select.EPOLLIN)
            b.send(b"x")
            assert ep.poll(5.0) == [(a.fileno(), select.EPOLLIN)]
            assert a.recv(1) == b"x"

    async def main():
        async def handle(reader, writer):
            writer.write(await reader.read(100))
            await writer.drain()
            writer.close()
        server = await asyncio.start_server(handle, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"ping")
        echoed = await reader.read(100)
        writer.close()
        server.close()
        await server.wait_closed()
        return type(asyncio.get_running_loop()), echoed

    for pollers in (0, 2):
        assert wfcloop.run(main(), pollers=pollers) == (wfcloop.Loop, b"ping")
    import wfcloop.gunicorn
    print("quick check ok", wfcloop.__version__, _eventpoll.__file__)
""")


def run(*args, **kwargs):
    done = subprocess.run(args, capture_output=True, text=True, timeout=400, **kwargs)
    assert done.returncode == 0, f"{args}:\n{done.stdout[-4000:]}\n{done.stderr[-4000:]}"
    return done.stdout


@pytest.mark.timeout(600)
def test_sdist_and_wheel_build_install_and_run(tmp_path):
    dist = tmp_path / "dist"
    # No options: the sdist, then the wheel built from the unpacked sdist.
    run(sys.executable, "-m", "build", "--outdir", str(dist), str(ROOT))
    [sdist] = dist.glob("wfcloop-*.tar.gz")
    [wheel] = dist.glob("wfcloop-*.whl")

    with tarfile.open(sdist) as tar:
        top = tar.getnames()[0].split("/")[0]
        names = {name.partition("/")[2] for name in tar.getnames()}
    for needed in ["setup.py", "pyproject.toml", "MANIFEST.in", "README.md",
                   "cython/wfcqueue.h", "cython/eventpoll_core.c", "cython/eventpoll_core.h",
                   "cython/eventpoll/poller_io.c", "cython/eventpoll/phases.c",
                   "cython/wfcloop/_eventpoll.pyx", "cython/wfcloop/_eventpoll.pxd",
                   "cython/wfcloop/_loop.pyx", "cython/wfcloop/_loop.pxd",
                   "cython/wfcloop/_timer_heap.pxd", "cython/wfcloop/loop/run_once.pyx",
                   "cython/wfcloop/loop/run_once.pxd", "cython/wfcloop/loop/socket_transport.pyx",
                   "cython/selftest/wfcloop_selftest.pyx", "cython/selftest/wfcq_stress.c",
                   "cython/selftest/ep_stress.c", "cython/selftest/stress_common.h",
                   "src/wfcloop/__init__.py", "src/wfcloop/py.typed",
                   "src/wfcloop/_eventpoll.pyi", "src/wfcloop/gunicorn.py"]:
        assert needed in names, f"{needed} missing from {sdist.name}"
    generated = [n for n in names if n.startswith("cython/wfcloop/") and n.endswith(".c")]
    assert not generated, f"generated C in the sdist: {generated}"
    assert not [n for n in names if n.endswith((".so", ".o", ".pyc"))]
    assert top == f"wfcloop-{wfcloop.__version__}"

    with zipfile.ZipFile(wheel) as whl:
        files = set(whl.namelist())
    assert any(n.startswith("wfcloop/_eventpoll.") and n.endswith(".so") for n in files), files
    for needed in ["wfcloop/py.typed", "wfcloop/_eventpoll.pyi", "wfcloop/gunicorn.py"]:
        assert needed in files
    # the C core's stress harnesses are the tests' own, not the users'
    assert not [n for n in files if "selftest" in n], files

    venv = tmp_path / "venv"
    run(sys.executable, "-m", "venv", str(venv))
    python = venv / "bin" / "python"
    run(str(python), "-m", "pip", "install", "--no-deps", "--no-index", "-q", str(wheel))
    work = tmp_path / "elsewhere"  # not the repository: the installed copy is used
    work.mkdir()
    out = run(str(python), "-c", QUICK_CHECK, cwd=work)
    assert out.startswith(f"quick check ok {wfcloop.__version__} {venv}"), out
    out = run(str(python), "-m", "wfcloop", cwd=work)
    assert "compiled core: loaded" in out, out
