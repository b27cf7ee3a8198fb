"""CPython's own Lib/test/test_epoll.py, run with select.epoll replaced by
wfcloop.EventPoll, in inline mode and with four poller threads.

The test module is imported from the interpreter's standard library (the
``test`` package); its ``select`` global is swapped for a copy of the
module whose ``epoll`` is EventPoll, the way test_asyncio swaps selector
classes.  Nothing of CPython's is copied into this repository.
"""
import select
import types
import unittest

import pytest

import wfcloop

from conftest import import_cpython_tests

test_epoll = import_cpython_tests("test.test_epoll")

TEST_NAMES = unittest.defaultTestLoader.getTestCaseNames(test_epoll.TestEPoll)


def select_with_eventpoll(pollers):
    module = types.ModuleType("select")
    module.__dict__.update(select.__dict__)

    def epoll(*args, **kwargs):
        kwargs.setdefault("pollers", pollers)
        return wfcloop.EventPoll(*args, **kwargs)

    epoll.fromfd = lambda fd: wfcloop.EventPoll.fromfd(fd, pollers=pollers)
    module.epoll = epoll
    return module


def test_the_suite_is_not_empty():
    # If CPython renames its tests, fail here rather than pass with none.
    assert len(TEST_NAMES) >= 10
    assert "test_control_and_wait" in TEST_NAMES


@pytest.mark.parametrize("name", TEST_NAMES)
@pytest.mark.parametrize("npollers", [0, 4], ids=lambda n: f"pollers={n}")
def test_cpython_epoll(monkeypatch, npollers, name):
    monkeypatch.setattr(test_epoll, "select", select_with_eventpoll(npollers))
    result = unittest.TestResult()
    test_epoll.TestEPoll(name).run(result)
    problems = [text for _, text in result.errors + result.failures]
    assert not problems, "\n".join(problems)
    assert result.testsRun == 1 and not result.skipped
