"""The package's face: version, `python -m wfcloop`, type stubs."""
import os
import subprocess
import sys

import pytest

import wfcloop


def python_m_wfcloop(**env):
    """Run ``python -m wfcloop`` with ``env`` added to the environment."""
    return subprocess.run([sys.executable, "-m", "wfcloop"], env=dict(os.environ, **env),
                          capture_output=True, text=True, timeout=60)


def test_python_m_wfcloop_reports_the_installation():
    proc = python_m_wfcloop(WFCLOOP_POLLERS="3")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out = proc.stdout
    assert f"wfcloop {wfcloop.__version__}" in out
    assert "compiled core: loaded" in out
    assert "pollers default: 3" in out
    assert os.uname().release in out


def test_package_without_its_compiled_core_says_what_to_do(tmp_path):
    """wfcloop's Python files without the compiled modules (a source
    checkout's src/, never built): import fails with an ImportError that
    says to install it, and so does python -m wfcloop."""
    import shutil
    src = os.path.dirname(wfcloop.__file__)
    shutil.copytree(src, tmp_path / "wfcloop",
                    ignore=shutil.ignore_patterns("*.so", "__pycache__"))
    env = dict(os.environ, PYTHONPATH=str(tmp_path))
    for args in (["-c", "import wfcloop"], ["-m", "wfcloop"]):
        proc = subprocess.run([sys.executable, *args], env=env, cwd=tmp_path,
                              capture_output=True, text=True, timeout=60)
        assert proc.returncode == 1, proc.stdout + proc.stderr
        assert "ImportError: wfcloop's compiled core (wfcloop._eventpoll) is not built" in proc.stderr
        assert "pip install ." in proc.stderr


@pytest.mark.parametrize("name, value, says", [
    ("WFCLOOP_ADAPTIVE", "", "poller mode: adaptive"),
    ("WFCLOOP_ADAPTIVE", "0", "poller mode: pinned"),
    ("WFCLOOP_POLLER_IO", "", "poller-side I/O: on"),
    ("WFCLOOP_POLLER_IO", "0", "poller-side I/O: off"),
])
def test_python_m_wfcloop_says_the_switches(name, value, says):
    proc = python_m_wfcloop(**{name: value})
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert says in proc.stdout


@pytest.mark.parametrize("name, value", [("WFCLOOP_ADAPTIVE", "sometimes"),
                                         ("WFCLOOP_POLLER_IO", "yes")])
def test_python_m_wfcloop_fails_on_a_bad_switch(name, value):
    proc = python_m_wfcloop(**{name: value})
    assert proc.returncode == 1
    assert f"invalid {name}" in proc.stdout


def test_python_m_wfcloop_fails_on_a_bad_pollers_setting():
    proc = python_m_wfcloop(WFCLOOP_POLLERS="many")
    assert proc.returncode == 1
    assert "invalid WFCLOOP_POLLERS" in proc.stdout


def test_stubs_and_marker_are_installed():
    pkg = os.path.dirname(wfcloop.__file__)
    assert os.path.exists(os.path.join(pkg, "py.typed"))
    assert os.path.exists(os.path.join(pkg, "_eventpoll.pyi"))


def test_mypy_checks_user_code_against_the_stubs(tmp_path):
    """The stubs of the compiled core reach mypy through the installed
    package's py.typed: right calls pass, wrong ones are reported."""
    from mypy import api as mypy_api  # the test extra installs mypy

    (tmp_path / "good.py").write_text(
        "import asyncio, select, socket\n"
        "import wfcloop\n"
        "from wfcloop import EventPoll, default_pollers\n"
        "a, b = socket.socketpair()\n"
        "with EventPoll(pollers=2) as ep:\n"
        "    ep.register(a, select.EPOLLIN)\n"
        "    ep.modify(a.fileno(), select.EPOLLIN | select.EPOLLOUT)\n"
        "    events: list[tuple[int, int]] = ep.poll(1.0, maxevents=8)\n"
        "    counters: dict[str, int] = ep.stats()\n"
        "    n: int = ep.pollers + default_pollers()\n"
        "    forked: bool = ep.forked\n"
        "switches: tuple[bool, bool] = (wfcloop.default_adaptive(), wfcloop.default_poller_io())\n"
        "ep2: EventPoll = EventPoll.fromfd(ep.fileno())\n"
        "loop = wfcloop.new_event_loop(pollers=0)\n"
        "assert isinstance(loop, wfcloop.Loop)\n"
        "wfcloop.run(asyncio.sleep(0), pollers=2)\n"
        "version: str = wfcloop.__version__\n")
    (tmp_path / "bad.py").write_text(
        "from wfcloop import EventPoll, default_pollers\n"
        "ep = EventPoll(pollers='2')\n"
        "ep.register(1.5)\n"
        "events: list[str] = ep.poll()\n"
        "ep.no_such_method()\n"
        "name: str = default_pollers()\n")
    out, err, status = mypy_api.run([
        "--no-incremental", "--cache-dir", os.devnull, "--python-version", "3.11",
        str(tmp_path / "good.py"), str(tmp_path / "bad.py")])
    errors = [line for line in out.splitlines() if ": error:" in line]
    assert not [e for e in errors if "good.py" in e], out
    lines = sorted({int(e.split(":")[1]) for e in errors if "bad.py" in e})
    assert lines == [2, 3, 4, 5, 6], out
    assert status == 1
