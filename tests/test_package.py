"""The package's face: version, `python -m wfcloop`, type stubs."""
import os
import subprocess
import sys

import wfcloop


def test_python_m_wfcloop_reports_the_installation():
    env = dict(os.environ, WFCLOOP_POLLERS="3")
    out = subprocess.run([sys.executable, "-m", "wfcloop"], env=env, capture_output=True,
                         text=True, timeout=60, check=True).stdout
    assert f"wfcloop {wfcloop.__version__}" in out
    assert "compiled core: loaded" in out
    assert "pollers default: 3" in out
    assert os.uname().release in out


def test_python_m_wfcloop_fails_on_a_bad_pollers_setting():
    env = dict(os.environ, WFCLOOP_POLLERS="many")
    proc = subprocess.run([sys.executable, "-m", "wfcloop"], env=env, capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 1
    assert "invalid WFCLOOP_POLLERS" in proc.stdout


def test_stubs_and_marker_are_installed():
    pkg = os.path.dirname(wfcloop.__file__)
    assert os.path.exists(os.path.join(pkg, "py.typed"))
    assert os.path.exists(os.path.join(pkg, "_eventpoll.pyi"))
