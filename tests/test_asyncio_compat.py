"""wfcloop.asyncio_compat: every private asyncio name wfcloop relies on is
declared there, exists with the expected shape on this Python, and no other
source file reaches one; a missing one fails the import, naming it."""
import asyncio
import inspect
import pathlib
import re
import selectors
import socket
import subprocess
import sys
import textwrap

import pytest

import wfcloop
from wfcloop import asyncio_compat as compat

ROOT = pathlib.Path(__file__).resolve().parent.parent
SOURCES = sorted(
    [p for p in (ROOT / "cython" / "wfcloop").rglob("*") if p.suffix in (".pyx", ".pxd", ".pxi")]
    + [p for p in (ROOT / "src" / "wfcloop").rglob("*.py") if p.name != "asyncio_compat.py"])


# ---- every entry exists, with its shape ------------------------------------

# Parameters (in order) of each callable entry, as wfcloop calls it.
EXPECTED_PARAMETERS = {
    "format_handle": ["handle"],
    "format_callback_source": ["func", "args"] + (["debug"] if sys.version_info >= (3, 13) else []),
    "set_running_loop": ["loop"],
    "set_task_name": ["task", "name"],
    "base__call_soon": ["self", "callback", "args", "context"],
    "base__run_forever_setup": ["self"],
    "base__run_forever_cleanup": ["self"],
    "base__add_reader": ["self", "fd", "callback", "args"],
    "base__remove_reader": ["self", "fd"],
    "base__add_writer": ["self", "fd", "callback", "args"],
    "base__remove_writer": ["self", "fd"],
    "base__ensure_fd_no_transport": ["self", "fd"],
    "base_datagram_read_ready": ["self"],
    "base__read_from_self": ["self"],
    "base__write_to_self": ["self"],
    "base__accept_connection": ["self", "protocol_factory", "sock", "sslcontext", "server",
                                "backlog", "ssl_handshake_timeout", "ssl_shutdown_timeout"],
    "base__accept_connection2": ["self", "protocol_factory", "conn", "extra", "sslcontext",
                                 "server", "ssl_handshake_timeout", "ssl_shutdown_timeout"],
    "base__sock_read_done": ["self", "fd", "fut", "handle"],
}

# Class entries: the base each must have.
EXPECTED_BASES = {
    "SelectorSocketTransport": asyncio.Transport,
    # A Transport (not a DatagramTransport before 3.12): its base class.
    "SelectorDatagramTransport": asyncio.BaseTransport,
    "TransportSocket": object,
    "SendfileMode": __import__("enum").Enum,
    "FlowControlMixin": object,
    # 3.14 keeps the abstract policy as events._AbstractEventLoopPolicy
    # (the public name is a deprecated alias there).
    "EventLoopPolicyBase": getattr(asyncio.events, "_AbstractEventLoopPolicy", None)
                           or asyncio.AbstractEventLoopPolicy,
}


def test_every_entry_is_declared_with_a_reason():
    assert len(compat.ENTRIES) >= 20   # 24 on 3.11 (the selector needs none)
    for name, (where, why, required) in compat.ENTRIES.items():
        assert where.startswith(("asyncio.", "selectors.")), name
        assert why and "\n" not in why, name
        value = getattr(compat, name)
        if required:
            assert value is not None, name
        assert name in EXPECTED_PARAMETERS or name in EXPECTED_BASES or not callable(value) \
            or value is None, f"{name}: give its expected shape here"


@pytest.mark.parametrize("name", sorted(EXPECTED_PARAMETERS))
def test_callable_entry_has_the_parameters_wfcloop_passes(name):
    where, why, required = compat.ENTRIES[name]
    value = getattr(compat, name)
    if value is None:
        assert not required
        pytest.skip(f"{where} is optional and absent on this Python")
    assert callable(value)
    assert list(inspect.signature(value).parameters) == EXPECTED_PARAMETERS[name]


@pytest.mark.parametrize("name", sorted(EXPECTED_BASES))
def test_class_entry_is_a_class_with_the_expected_base(name):
    value = getattr(compat, name)
    assert isinstance(value, type)
    assert issubclass(value, EXPECTED_BASES[name])


def test_constants():
    assert type(compat.MIN_SCHEDULED_TIMER_HANDLES) is int
    assert compat.MIN_SCHEDULED_TIMER_HANDLES > 0
    assert 0 < compat.MIN_CANCELLED_TIMER_HANDLES_FRACTION < 1
    assert compat.MAXIMUM_SELECT_TIMEOUT > 0
    assert compat.SSL_HANDSHAKE_TIMEOUT > 0 and compat.SSL_SHUTDOWN_TIMEOUT > 0


def test_flags_say_what_this_python_does():
    from asyncio import base_events, selector_events
    v = sys.version_info
    assert compat.FORMAT_WITH_DEBUG == (v >= (3, 13))
    assert compat.CHECK_SOCKET_TRANSPORT == (v >= (3, 12))
    assert compat.COMPILED_CREATE_TASK == (v < (3, 13))
    assert compat.UNIX_SERVER_CLEANUP_BUILTIN == (
        "cleanup_socket" in inspect.signature(asyncio.SelectorEventLoop.create_unix_server).parameters)
    assert compat.RUN_HAS_LOOP_FACTORY == ("loop_factory" in inspect.signature(asyncio.run).parameters)
    assert compat.POLICIES_DEPRECATED == (v >= (3, 14))
    assert compat.HAVE_RUN_FOREVER_SETUP == hasattr(base_events.BaseEventLoop, "_run_forever_setup")
    if v >= (3, 13):
        assert compat.HAVE_RUN_FOREVER_SETUP
    if v < (3, 12):
        assert not compat.HAVE_RUN_FOREVER_SETUP
    transport = selector_events._SelectorSocketTransport
    assert compat.HAVE_MAKE_EMPTY_WAITER == hasattr(transport, "_make_empty_waiter")
    assert compat.BUFFER_FACTORY_IS_BYTEARRAY == (v < (3, 12))
    assert compat.DATAGRAM_HEADER_SIZE == (8 if v >= (3, 13) else 0)
    if v < (3, 13):
        assert not compat.DATAGRAM_HEADER_LEAK   # (its effect: test_loop_api_datagram)


def test_every_declared_state_name_is_on_real_stdlib_objects():
    # A stdlib SelectorEventLoop, _SelectorSocketTransport over a
    # socketpair, Handle, TimerHandle, selector, Server, TransportSocket.
    assert compat.check_instance_state() == []


def test_instance_state_check_reports_a_missing_field(monkeypatch):
    monkeypatch.setitem(compat.SOCKET_TRANSPORT_STATE, "_no_such_field", ("field", "test"))
    monkeypatch.setitem(compat.LOOP_STATE, "_no_such_loop_field", ("field", "test"))
    assert compat.check_instance_state() == [
        "BaseSelectorEventLoop._no_such_loop_field",
        "_SelectorSocketTransport._no_such_field"]


def test_methods_and_optionals_of_the_state_tables():
    for cls, table in compat.STATE_TABLES.items():
        for name, (kind, why) in table.items():
            assert kind in ("field", "method", "optional"), (cls, name)
            assert why and "\n" not in why, (cls, name)
            if kind == "method":
                assert hasattr(cls, name), (cls, name)


def test_wfcloop_objects_carry_the_declared_state():
    """The same names on wfcloop's own loop and socket transport (what the
    compiled code reads is there on its subclasses too)."""
    loop = wfcloop.new_event_loop()
    a, b = socket.socketpair()
    try:
        a.setblocking(False)
        transport = loop._make_socket_transport(a, asyncio.Protocol())
        for name, (kind, why) in compat.LOOP_STATE.items():
            if kind != "optional":
                assert hasattr(loop, name), name
        for name, (kind, why) in compat.SOCKET_TRANSPORT_STATE.items():
            if kind != "optional":
                assert hasattr(transport, name), name
        transport.abort()
        loop.run_until_complete(asyncio.sleep(0))
    finally:
        loop.close()
        b.close()


def test_wfcloop_tls_transport_carries_the_declared_ssl_transport_state():
    """wfcloop's SSLTransport has what asyncio's code reads on an SSL
    transport."""
    import ssl
    loop = wfcloop.new_event_loop()
    a, b = socket.socketpair()
    try:
        a.setblocking(False)
        transport = loop._make_ssl_transport(a, asyncio.Protocol(),
                                             ssl.create_default_context(), None,
                                             server_hostname="localhost")
        assert type(transport).__name__ == "SSLTransport"
        assert isinstance(transport, compat.FlowControlMixin)
        assert isinstance(transport, asyncio.Transport)
        for name in compat.SSL_TRANSPORT_STATE:
            assert hasattr(transport, name), name
        assert transport._sendfile_compatible is compat.SendfileMode.FALLBACK
        assert transport._start_tls_compatible is True
        assert transport._protocol_paused is False
        assert transport._loop is loop
        loop.run_until_complete(asyncio.sleep(0.01))   # handshake started
        transport.abort()
        loop.run_until_complete(asyncio.sleep(0))
    finally:
        loop.close()
        a.close()
        b.close()


def test_handle_slots_are_slots_and_undeclared_names_are_refused():
    for cls, table in ((compat.Handle, compat.HANDLE_STATE),
                       (compat.TimerHandle, compat.TIMER_HANDLE_STATE)):
        for name, (kind, why) in table.items():
            if kind == "field":
                assert type(compat.handle_slot(cls, name)).__name__ == "member_descriptor"
    with pytest.raises(ImportError, match="'_nope' is not declared"):
        compat.handle_slot(compat.Handle, "_nope")
    with pytest.raises(ImportError, match="'_nope' is not declared"):
        compat.declared(compat.LOOP_STATE, "_nope")


# ---- no other file reaches a private asyncio name ---------------------------

ASYNCIO_MODULES = ("base_events|selector_events|events|selectors|format_helpers|tasks|futures|"
                   "sslproto|coroutines|constants|transports|protocols|streams|unix_events|"
                   "base_subprocess|trsock|staggered|timeouts|runners|locks|queues")
PRIVATE_MODULE_NAME = re.compile(rf"\b({ASYNCIO_MODULES})\._[A-Za-z]")
PRIVATE_ASYNCIO_PATH = re.compile(r"\basyncio\.[a-z_]+\._[A-Za-z]")
PRIVATE_IMPORT = re.compile(r"\bfrom\s+(asyncio(\.\w+)?|selectors)\s+(c?import)\s+[^\n]*\b_[a-z]")
# asyncio's internal modules, imported: only asyncio_compat may.
INTERNAL_MODULE_IMPORT = re.compile(
    rf"\bfrom\s+asyncio\s+import\s+[^\n]*\b({ASYNCIO_MODULES})\b|\bimport\s+asyncio\.({ASYNCIO_MODULES})\b")


def test_sources_are_found():
    names = {p.name for p in SOURCES}
    assert {"_loop.pyx", "base_loop.pyx", "socket_transport.pyx", "loop.py", "_selector.py",
            "_eventpoll_selector.pyx"} <= names


def test_the_selector_uses_no_private_selectors_name():
    """The loop's selector is wfcloop's own: asyncio_compat declares no
    private name of selectors (nor a table of a stdlib selector's state)."""
    assert not [where for where, why, required in compat.ENTRIES.values()
                if where.startswith("selectors.")]
    assert not any(issubclass(cls, selectors.BaseSelector) for cls in compat.STATE_TABLES)


def test_no_source_but_asyncio_compat_reaches_a_private_asyncio_name():
    found = []
    for path in SOURCES:
        for lineno, line in enumerate(path.read_text().splitlines(), 1):
            for pattern in (PRIVATE_MODULE_NAME, PRIVATE_ASYNCIO_PATH, PRIVATE_IMPORT,
                            INTERNAL_MODULE_IMPORT):
                if pattern.search(line):
                    found.append(f"{path.relative_to(ROOT)}:{lineno}: {line.strip()}")
    assert not found, "use wfcloop.asyncio_compat instead:\n" + "\n".join(found)


VERSION_CHECK = re.compile(r"\bsys\.version_info\b|\b(hasattr|getattr)\([^)]*\b(asyncio|selectors|"
                           r"SelectorSocketTransport|BaseEventLoop|BaseSelectorEventLoop|Handle)\b")


def test_version_checks_live_in_asyncio_compat():
    """What differs between Python versions is a named flag there."""
    found = [f"{path.relative_to(ROOT)}:{lineno}: {line.strip()}"
             for path in SOURCES
             for lineno, line in enumerate(path.read_text().splitlines(), 1)
             if VERSION_CHECK.search(line)]
    assert not found, "make these flags in wfcloop.asyncio_compat:\n" + "\n".join(found)


# Private names that are wfcloop's own (not inherited from asyncio): the
# EventPoll core's methods, wfcloop's modules, EventPollSelector's and
# ExtraInfo's own fields, module-level helpers.  Inherited names go in
# asyncio_compat's tables; wfcloop's own fields on asyncio subclasses are
# named _wfc_*.
OWN_PRIVATE_NAMES = {
    # EventPoll (cython/wfcloop/_eventpoll.pyx), not an asyncio class
    "_open_core", "_ctl", "_poll", "_register_with_data", "_poll_with_data",
    "_set_snapshot", "_set_adaptive", "_request_phase",
    # wfcloop's modules
    "_eventpoll", "_timer_heap", "_loop", "_selector", "_selftest", "_config",
    # EventPollSelector's own: the compiled selector's module, and the
    # property naming its EventPoll as selectors' poll-like selectors do
    "_eventpoll_selector",
    # ExtraInfo's __slots__ (its own class)
    "_socket", "_sockname", "_peername", "_others",
    # module-level functions (scheduler.pyx's property accessors and others)
    "_get_scheduled", "_set_scheduled", "_get_closed", "_set_closed", "_get_debug",
    "_set_debug", "_io_settle_writes", "_make_worker", "_make_uvicorn_worker",
    "_breaker_namespace", "_classes", "_FACTORIES", "_GunicornBase", "_Base",
    # heapq's functions, named in _timer_heap.pxd's docstrings
    "_siftdown", "_siftup",
    # asyncio's, named in a docstring only
    "_process_events",
}

ATTRIBUTE = re.compile(r"\.(_[A-Za-z][A-Za-z0-9_]*)")
METHOD_DEF = re.compile(r"^\s+(?:async\s+)?c?p?def\s+(_[A-Za-z][A-Za-z0-9_]*)\s*\(\s*self\b")
CLASS_ATTRIBUTE = re.compile(r"^\s+(_[A-Za-z][A-Za-z0-9_]*)\s*=")


def inherited_names():
    found = {}
    for path in SOURCES:
        if path.name in ("_eventpoll.pyx", "_eventpoll.pxd", "_selftest.pyx"):
            continue   # the EventPoll core: no asyncio class there
        for lineno, line in enumerate(path.read_text().splitlines(), 1):
            names = ATTRIBUTE.findall(line)
            for pattern in (METHOD_DEF, CLASS_ATTRIBUTE):
                m = pattern.match(line)
                if m:
                    names.append(m.group(1))
            for name in names:
                if name.startswith(("__", "_wfc_")):
                    continue
                found.setdefault(name, f"{path.relative_to(ROOT)}:{lineno}")
    return found


def test_every_inherited_private_name_is_declared():
    declared = set()
    for table in compat.STATE_TABLES.values():
        declared.update(table)
    undeclared = {name: where for name, where in inherited_names().items()
                  if name not in declared and name not in OWN_PRIVATE_NAMES}
    assert not undeclared, (
        "declare these in asyncio_compat's state tables (or name wfcloop's own "
        f"fields _wfc_*): {undeclared}")


def test_the_scan_sees_inherited_names():
    names = inherited_names()
    for name in ("_buffer", "_conn_lost", "_ready", "_stopping", "_cancelled", "_transports",
                 "_read_ready__on_eof", "_buffer_factory"):
        assert name in names, name


# ---- a missing entry fails the import, naming it ---------------------------

def run_python(tmp_path, code):
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], cwd=tmp_path,
                          capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize("owner, attr, where", [
    ("asyncio.base_events", "_format_handle", "asyncio.base_events._format_handle"),
    ("asyncio.format_helpers", "_format_callback_source",
     "asyncio.format_helpers._format_callback_source"),
    ("asyncio.base_events", "_MIN_SCHEDULED_TIMER_HANDLES",
     "asyncio.base_events._MIN_SCHEDULED_TIMER_HANDLES"),
    ("asyncio.selector_events.BaseSelectorEventLoop", "_accept_connection2",
     "asyncio.selector_events.BaseSelectorEventLoop._accept_connection2"),
    ("asyncio.selector_events._SelectorSocketTransport", "_read_ready__on_eof",
     "asyncio.selector_events._SelectorSocketTransport._read_ready__on_eof"),
    ("asyncio.events.Handle", "_context", "asyncio.events.Handle._context"),
])
def test_a_missing_entry_fails_import_naming_it(tmp_path, owner, attr, where):
    result = run_python(tmp_path, f"""
        import importlib
        # the owner: a module, or a class in one
        parts = {owner!r}.split(".")
        obj = importlib.import_module(parts[0])
        for i, part in enumerate(parts[1:], 1):
            try:
                obj = importlib.import_module(".".join(parts[:i + 1]))
            except ImportError:
                obj = getattr(obj, part)
        delattr(obj, {attr!r})
        try:
            import wfcloop
        except ImportError as exc:
            print("ImportError:", exc)
        else:
            print("imported")
        """)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("ImportError:"), result.stdout
    assert where in result.stdout


@pytest.mark.skipif(not compat.HAVE_RUN_FOREVER_SETUP, reason="3.13 (and late 3.12) only")
def test_a_missing_optional_entry_takes_the_other_path(tmp_path):
    """Without _run_forever_setup, BaseLoop runs its own copy of 3.11's
    run_forever: the import works and so does the loop."""
    result = run_python(tmp_path, """
        import asyncio
        from asyncio import base_events
        del base_events.BaseEventLoop._run_forever_setup
        del base_events.BaseEventLoop._run_forever_cleanup
        import wfcloop
        from wfcloop import asyncio_compat
        assert not asyncio_compat.HAVE_RUN_FOREVER_SETUP
        async def main():
            await asyncio.sleep(0.01)
            return asyncio.get_running_loop()
        loop = wfcloop.run(main())
        print(type(loop).__name__)
        """)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "Loop"


def untested_python_source():
    """asyncio_compat's source as a Python outside TESTED_VERSIONS runs it."""
    source = pathlib.Path(compat.__file__).read_text()
    assert source.count("TESTED_VERSIONS = (") == 1
    return source.replace("TESTED_VERSIONS = (", "TESTED_VERSIONS = () and (", 1)


def test_an_untested_python_checks_instance_state_at_import():
    exec(compile(untested_python_source(), compat.__file__, "exec"),
         {"__name__": "asyncio_compat_untested"})   # every field is there


def test_an_untested_python_missing_a_field_fails_at_import():
    source = untested_python_source()
    marker = '"_eof": ("field",'
    assert source.count(marker) == 1
    source = source.replace(marker, '"_no_such_field": ("field", "test"), ' + marker)
    with pytest.raises(ImportError, match=r"_SelectorSocketTransport\._no_such_field"):
        exec(compile(source, compat.__file__, "exec"), {"__name__": "asyncio_compat_untested"})
