"""The Promela model of the ready-list protocol (model/eventpoll.pml).

Runs model/check.sh: spin checks the correct model exhaustively with 2 and
3 pollers (safety, then that no execution has a cycle), checks that every
BUG_* variant is caught, and that every reachability probe is reached.
About a minute on two cores.  Under CI (``CI`` set) a missing spin is
installed with scripts/install-spin.sh (Debian, as root) and the test fails
if it still cannot run; elsewhere it is skipped with the reason.
"""
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CHECK = ROOT / "model" / "check.sh"


def _missing():
    """Why model/check.sh cannot run here, or None."""
    if shutil.which("spin") is None:
        return "spin is not installed (scripts/install-spin.sh; Debian package `spin`)"
    if shutil.which(os.environ.get("CC", "cc")) is None:
        return "no C compiler to build spin's verifiers"
    if shutil.which("bash") is None:
        return "model/check.sh needs bash"
    return None


if os.environ.get("CI") and _missing() is not None:
    subprocess.run(["sh", str(ROOT / "scripts" / "install-spin.sh")], timeout=900)


@pytest.mark.skipif(_missing() is not None and not os.environ.get("CI"),
                    reason=str(_missing()))
def test_model_check(tmp_path):
    assert _missing() is None, _missing()
    env = dict(os.environ, MODEL_BUILD_DIR=str(tmp_path / "model"))
    proc = subprocess.run(["bash", str(CHECK)], cwd=ROOT, env=env,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          text=True, timeout=240)
    sys.stdout.write(proc.stdout)
    assert proc.returncode == 0, proc.stdout
    lines = proc.stdout.splitlines()
    assert lines and "runs as expected" in lines[-1], proc.stdout
    assert not [l for l in lines if l.startswith("UNEXPECTED")], proc.stdout
    # the correct model was checked exhaustively with 2 and 3 pollers
    for name in ("safety-p2", "safety-p3", "cycles-p2", "cycles-p3"):
        assert any(l.startswith(f"OK {name} ") and "errors=0" in l for l in lines), name
    # and each bug variant was caught, with 2 and with 3 pollers
    for bug in ("no-recheck", "no-fence-x", "no-gencheck", "rearm-before-idle",
                "retire-ready-free"):
        for p in (2, 3):
            assert any(l.startswith(f"OK bug-{bug}-p{p} ") and "errors=1" in l
                       for l in lines), (bug, p)
