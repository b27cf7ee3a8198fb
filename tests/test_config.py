"""The WFCLOOP_* settings: parsed in wfcloop._config and nowhere else.

Every setting's values, its default and its errors (the exception and the
message users get), the public names that reach them, and a scan of the
sources: no file under cython/ or src/ but the config module reads the
environment for a WFCLOOP_ name.
"""
import ast
import asyncio
import os
import pathlib
import re

import pytest

import wfcloop
from wfcloop import _config, _eventpoll, _selector

ROOT = pathlib.Path(__file__).resolve().parent.parent
CONFIG = ROOT / "src" / "wfcloop" / "_config.py"


def cpu_default():
    cpus = len(os.sched_getaffinity(0))
    return 0 if cpus <= 2 else min(4, cpus // 2)


# ---- WFCLOOP_POLLERS ---------------------------------------------------------

@pytest.mark.parametrize("value, expected", [("0", 0), ("3", 3), (" 2 ", 2), ("17", 17)])
def test_pollers_valid(monkeypatch, value, expected):
    monkeypatch.setenv("WFCLOOP_POLLERS", value)
    assert _config.default_pollers() == expected


@pytest.mark.parametrize("value", [None, "", "  "])
def test_pollers_default_from_the_cpu_count(monkeypatch, value):
    if value is None:
        monkeypatch.delenv("WFCLOOP_POLLERS", raising=False)
    else:
        monkeypatch.setenv("WFCLOOP_POLLERS", value)
    assert _config.default_pollers() == cpu_default()


@pytest.mark.parametrize("value", ["-1", "many", "1.5", "0x2", "2 threads"])
def test_pollers_invalid(monkeypatch, value):
    monkeypatch.setenv("WFCLOOP_POLLERS", value)
    with pytest.raises(ValueError) as info:
        _config.default_pollers()
    assert str(info.value) == f"WFCLOOP_POLLERS must be an integer >= 0, got {value!r}"


def test_eventpoll_and_loop_take_pollers_from_the_setting(monkeypatch):
    monkeypatch.setenv("WFCLOOP_POLLERS", "3")
    with wfcloop.EventPoll() as ep:
        assert ep.pollers == 3
    loop = wfcloop.new_event_loop()
    try:
        assert loop._selector.pollers == 3
    finally:
        loop.close()
    monkeypatch.setenv("WFCLOOP_POLLERS", "0")
    with wfcloop.EventPoll() as ep:
        assert ep.pollers == 0


def test_explicit_pollers_do_not_read_the_setting(monkeypatch):
    monkeypatch.setenv("WFCLOOP_POLLERS", "many")
    with wfcloop.EventPoll(pollers=1) as ep:
        assert ep.pollers == 1


def test_invalid_pollers_setting_fails_creation(monkeypatch):
    monkeypatch.setenv("WFCLOOP_POLLERS", "-2")
    message = "WFCLOOP_POLLERS must be an integer >= 0, got '-2'"
    with pytest.raises(ValueError) as info:
        wfcloop.EventPoll()
    assert str(info.value) == message
    with pytest.raises(ValueError) as info:
        wfcloop.new_event_loop()
    assert str(info.value) == message


# ---- WFCLOOP_ADAPTIVE, WFCLOOP_POLLER_IO -------------------------------------

SWITCHES = [("WFCLOOP_ADAPTIVE", _config.default_adaptive),
            ("WFCLOOP_POLLER_IO", _config.default_poller_io)]
switch_param = pytest.mark.parametrize("name, read", SWITCHES, ids=[n for n, _ in SWITCHES])


@switch_param
@pytest.mark.parametrize("value, expected", [(None, True), ("", True), ("  ", True),
                                             ("1", True), (" 1\n", True),
                                             ("0", False), (" 0 ", False)])
def test_switch_values_and_default(monkeypatch, name, read, value, expected):
    if value is None:
        monkeypatch.delenv(name, raising=False)
    else:
        monkeypatch.setenv(name, value)
    assert read() is expected


@switch_param
@pytest.mark.parametrize("value, shown", [("yes", "yes"), ("2", "2"), (" on ", "on"),
                                          ("00", "00"), ("true", "true")])
def test_switch_invalid(monkeypatch, name, read, value, shown):
    monkeypatch.setenv(name, value)
    with pytest.raises(ValueError) as info:
        read()
    assert str(info.value) == f"{name} must be 0 or 1, got {shown!r}"


@switch_param
def test_invalid_switch_fails_loop_creation(monkeypatch, name, read):
    monkeypatch.setenv(name, "sometimes")
    with pytest.raises(ValueError) as info:
        wfcloop.new_event_loop(pollers=2)
    assert str(info.value) == f"{name} must be 0 or 1, got 'sometimes'"


def test_switches_reach_the_loop(monkeypatch):
    monkeypatch.setenv("WFCLOOP_ADAPTIVE", "0")
    monkeypatch.setenv("WFCLOOP_POLLER_IO", "0")
    loop = wfcloop.new_event_loop(pollers=2)
    try:
        loop.run_until_complete(asyncio.sleep(0))
        assert loop.poller_phase == "pollers"       # pinned: the pollers read
        assert loop._selector.poller_io is False
    finally:
        loop.close()
    monkeypatch.setenv("WFCLOOP_ADAPTIVE", "1")
    monkeypatch.setenv("WFCLOOP_POLLER_IO", "1")
    loop = wfcloop.new_event_loop(pollers=2)
    try:
        loop.run_until_complete(asyncio.sleep(0))
        assert loop.poller_phase == "inline"        # adaptive: starts parked
        assert loop._selector.poller_io is True
    finally:
        loop.close()


# ---- the module and the public names -----------------------------------------

def test_settings_are_the_documented_ones():
    assert _config.SETTINGS == ("WFCLOOP_POLLERS", "WFCLOOP_ADAPTIVE", "WFCLOOP_POLLER_IO")
    doc = _config.__doc__
    for name in _config.SETTINGS:
        assert f"``{name}``" in doc


def test_raw(monkeypatch):
    monkeypatch.setenv("WFCLOOP_POLLERS", " 5 ")
    assert _config.raw("WFCLOOP_POLLERS") == " 5 "
    monkeypatch.delenv("WFCLOOP_POLLERS")
    assert _config.raw("WFCLOOP_POLLERS") is None
    with pytest.raises(KeyError):
        _config.raw("WFCLOOP_NOPE")


def test_public_names_are_the_config_modules():
    assert wfcloop.default_pollers is _config.default_pollers
    assert wfcloop.default_adaptive is _config.default_adaptive
    assert wfcloop.default_poller_io is _config.default_poller_io
    # Where they were importable from before, they still are.
    assert _eventpoll.default_pollers is _config.default_pollers
    assert _selector.default_adaptive is _config.default_adaptive
    assert _selector.default_poller_io is _config.default_poller_io
    for name in ("default_pollers", "default_adaptive", "default_poller_io"):
        assert name in wfcloop.__all__


def test_config_is_a_leaf():
    """It imports nothing of wfcloop, so every layer may import it."""
    tree = ast.parse(CONFIG.read_text())
    imported = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0, "a relative import in _config"
            imported.add(node.module)
    assert imported == {"os"}


# ---- nobody else reads them --------------------------------------------------

ENV_READ = re.compile(r"\b(environb?|getenv|secure_getenv)\b")
SETTING_NAME = re.compile(r"""["']WFCLOOP_\w+""")
SOURCE_SUFFIXES = {".py", ".pyx", ".pxd", ".pxi", ".c", ".h"}


def setting_reads(text):
    """Lines of text that read the environment where the file also names a
    WFCLOOP_ setting as a string (so a read through a variable counts)."""
    lines = text.splitlines()
    if not any(SETTING_NAME.search(line) for line in lines):
        return []
    return [(n, line.strip()) for n, line in enumerate(lines, 1) if ENV_READ.search(line)]


def source_files():
    for top in (ROOT / "cython", ROOT / "src" / "wfcloop"):
        for path in sorted(top.rglob("*")):
            if path.suffix not in SOURCE_SUFFIXES or not path.is_file():
                continue
            text = path.read_text(errors="replace")
            if text.startswith("/* Generated by Cython"):
                continue   # cythonize's output, not a source
            yield path, text


def test_the_scan_finds_reads():
    """The scan below would see a read: the config module's own, and the
    forms a source might use."""
    assert setting_reads(CONFIG.read_text())
    assert setting_reads('v = os.environ.get("WFCLOOP_POLLERS")\n')
    assert setting_reads('NAME = "WFCLOOP_X"\n\nv = os.environ.get(NAME, "")\n')
    assert setting_reads('const char *v = getenv("WFCLOOP_POLLERS");\n')
    assert setting_reads("from os import environ\nx = environ['WFCLOOP_A']\n")
    assert not setting_reads('v = os.environ.get("PATH")\n')
    assert not setting_reads('"""Set ``WFCLOOP_POLLERS=0`` in the environment."""\n')


def test_no_source_but_the_config_module_reads_a_setting():
    files = dict(source_files())
    assert CONFIG in files
    assert ROOT / "cython" / "wfcloop" / "_eventpoll.pyx" in files
    found = [f"{path.relative_to(ROOT)}:{n}: {line}"
             for path, text in files.items() if path != CONFIG
             for n, line in setting_reads(text)]
    assert not found, "parse WFCLOOP_* settings in wfcloop._config:\n" + "\n".join(found)
