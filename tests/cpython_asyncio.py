"""Run CPython's own test_asyncio modules with wfcloop as the event loop.

The tests are imported from the interpreter's standard library (the
``test.test_asyncio`` package) and run there; nothing of CPython's is copied
into this repository.  The loop is substituted through the hooks the tests
themselves offer, per module:

* classes parametrised by loop (``create_event_loop()``: test_events,
  test_sock_lowlevel, test_sendfile): a subclass of the ``EPoll`` variant
  whose ``create_event_loop()`` returns our loop; the Select/Poll/EPoll
  originals, which test the standard library's selectors, are dropped;
* classes whose ``new_loop()`` returns ``asyncio.SelectorEventLoop()``
  (test_server, test_sslproto, test_buffered_proto) or a mocked loop
  (test_runners): a subclass whose ``new_loop()`` returns our loop;
* classes whose ``setUp()`` builds ``asyncio.SelectorEventLoop()`` without a
  hook (two classes of test_unix_events): a subclass that, after the
  original ``setUp()``, swaps ``self.loop`` for ours;
* test_unix_events' PolicyTests (``create_policy()``): a subclass whose
  ``create_policy()`` returns the substituted policy below;
* everything else (``asyncio.new_event_loop()``, the policy,
  ``IsolatedAsyncioTestCase``, ``asyncio.run``/``Runner``): a fresh
  ``wfcloop.EventLoopPolicy`` (a subclass that only counts the loops it
  makes), installed before every test (test modules reset the policy in
  their teardown), the original policy restored at the end; its loops get
  their pollers from ``WFCLOOP_POLLERS``, set for the run.

A test counts as *on the substituted loop* when it created at least one
loop through those hooks or that policy (counted while it runs); the others
(a fake ``TestLoop``, mocks, explicit policies, pure unit tests, tests
skipped before they made a loop) are counted apart as *not on the
substituted loop*.  ``--stdlib`` runs the same selection
with the standard library's loop (``SelectorEventLoop(EpollSelector())``)
in place of wfcloop, to compare.

Usage (from the repository root)::

    python -m tests.cpython_asyncio [--pollers N] [--modules events streams ...]
                                    [--stdlib] [-k PATTERN] [--json FILE] [-v]

Exit status 0 when every test on the substituted loop passed (or was
skipped) and no module or class fixture failed, 1 otherwise.  A test that
runs past ``--timeout`` makes the runner dump every thread's stack and exit
(the ``--json`` file then ends with that test's "start" record).
"""
import argparse
import asyncio
import faulthandler
import fnmatch
import importlib
import json
import os
import selectors
import signal
import sys
import time
import unittest

__all__ = [
    "MODULES", "FAST_MODULES", "SUBSTITUTIONS", "LoopFactory",
    "build_suite", "run_modules", "main",
]

PACKAGE = "test.test_asyncio"

# The modules the issue asks for, in the order they run.
MODULES = [
    "test_events", "test_streams", "test_server", "test_sock_lowlevel",
    "test_sendfile", "test_subprocess", "test_ssl", "test_sslproto",
    "test_tasks", "test_locks", "test_queues", "test_taskgroups",
    "test_timeouts", "test_runners", "test_unix_events",
    "test_buffered_proto",
]

# A quick selection: the socket-, pipe- and stream-heavy modules.
FAST_MODULES = ["test_events", "test_sock_lowlevel", "test_streams"]

# How each class that does not go through the policy gets our loop:
#   "create_event_loop": subclass, create_event_loop() returns our loop
#   "new_loop":          subclass, new_loop() returns our loop
#   "new_loop_runners":  the same, for test_runners' BaseTest, which also
#                        tracks that asyncio.run() shut async generators down
#   "swap_setup_loop":   subclass, setUp() runs, then self.loop is replaced
#   "create_policy":     subclass, create_policy() returns the substituted
#                        policy (test_unix_events' child-watcher policy tests)
#   "drop":              not run (tests the standard library's selectors)
# Every class named here must exist (on Linux), so that a renamed class in a
# future CPython fails loudly instead of silently running on the stdlib loop.
SUBSTITUTIONS = {
    "test_events": {
        "EPollEventLoopTests": "create_event_loop",
        "PollEventLoopTests": "drop",
        "SelectEventLoopTests": "drop",
    },
    "test_sock_lowlevel": {
        "EPollEventLoopTests": "create_event_loop",
        "PollEventLoopTests": "drop",
        "SelectEventLoopTests": "drop",
    },
    "test_sendfile": {
        "EPollEventLoopTests": "create_event_loop",
        "PollEventLoopTests": "drop",
        "SelectEventLoopTests": "drop",
    },
    "test_server": {"SelectorStartServerTests": "new_loop"},
    "test_sslproto": {"SelectorStartTLSTests": "new_loop"},
    "test_buffered_proto": {"BufferedProtocolSelectorTests": "new_loop"},
    "test_runners": {
        "RunTests": "new_loop_runners",
        "RunnerTests": "new_loop_runners",
    },
    "test_unix_events": {
        "SelectorEventLoopSignalTests": "swap_setup_loop",
        "SelectorEventLoopUnixSocketTests": "swap_setup_loop",
        "PolicyTests": "create_policy",
    },
}


class LoopFactory:
    """Makes the loop under test and counts the loops made, through it or
    through its policy."""

    def __init__(self, *, pollers=2, stdlib=False, pinned=False):
        self.pollers = pollers
        self.stdlib = stdlib
        self.pinned = pinned
        self.created = 0

    @property
    def name(self):
        if self.stdlib:
            return "stdlib"
        return f"wfcloop pollers={self.pollers}" + (" pinned" if self.pinned else "")

    def track(self, loop):
        """Count ``loop``; check that it is the loop under test."""
        self.created += 1
        if not self.stdlib:
            import wfcloop
            if not isinstance(loop, wfcloop.Loop) or loop.pollers != self.pollers:
                loop.close()
                raise RuntimeError(f"expected a wfcloop.Loop with {self.pollers} pollers, "
                                   f"got {loop!r}")
        return loop

    def __call__(self):
        """A new loop, for the hooks of the substituted test classes."""
        if self.stdlib:
            return self.track(asyncio.SelectorEventLoop(selectors.EpollSelector()))
        import wfcloop
        return self.track(wfcloop.new_event_loop(pollers=self.pollers,
                                                 adaptive=False if self.pinned else None))

    def environ(self):
        """Environment for the run: WFCLOOP_POLLERS (and, pinned,
        WFCLOOP_ADAPTIVE=0), which wfcloop.EventLoopPolicy's loops read."""
        if self.stdlib:
            return {}
        env = {"WFCLOOP_POLLERS": str(self.pollers)}
        if self.pinned:
            env["WFCLOOP_ADAPTIVE"] = "0"
        return env

    def policy(self):
        """A fresh event loop policy: wfcloop.EventLoopPolicy (or the
        standard library's default policy), counting the loops it makes."""
        if self.stdlib:
            base = asyncio.DefaultEventLoopPolicy
        else:
            import wfcloop
            base = wfcloop.EventLoopPolicy
        factory = self

        class SubstitutedLoopPolicy(base):
            def new_event_loop(self):
                return factory.track(super().new_event_loop())

        return SubstitutedLoopPolicy()


def _substitute(cls, how, factory):
    """A subclass of test class ``cls`` that runs on ``factory``'s loops.

    It keeps the original's module and name, so test ids are CPython's."""
    ns = {"__module__": cls.__module__, "__qualname__": cls.__qualname__,
          "_wfcloop_substituted": how}
    if how == "create_event_loop":
        def create_event_loop(self):
            return factory()
        ns["create_event_loop"] = create_event_loop
    elif how == "new_loop":
        def new_loop(self):
            return factory()
        ns["new_loop"] = new_loop
    elif how == "new_loop_runners":
        # BaseTest.tearDown() checks that the loop the policy handed out was
        # closed and that its async generators were shut down; the mocked
        # loop of the original new_loop() records the latter in
        # ``shutdown_ag_run``, so ours does too (and really shuts them down).
        def new_loop(self):
            loop = factory()
            loop.shutdown_ag_run = False
            shutdown_asyncgens = loop.shutdown_asyncgens

            async def tracking_shutdown_asyncgens():
                loop.shutdown_ag_run = True
                await shutdown_asyncgens()

            loop.shutdown_asyncgens = tracking_shutdown_asyncgens
            return loop
        ns["new_loop"] = new_loop
    elif how == "swap_setup_loop":
        def setUp(self):
            cls.setUp(self)
            # The original's loop stays registered for cleanup (closed then).
            self.loop = factory()
            self.set_event_loop(self.loop)
        ns["setUp"] = setUp
    elif how == "create_policy":
        def create_policy(self):
            return factory.policy()
        ns["create_policy"] = create_policy
    else:
        raise ValueError(how)
    return type(cls.__name__, (cls,), ns)


def _flatten(suite):
    for test in suite:
        if isinstance(test, unittest.TestSuite):
            yield from _flatten(test)
        else:
            yield test


def short_id(test_id):
    prefix = PACKAGE + "."
    return test_id[len(prefix):] if test_id.startswith(prefix) else test_id


def build_suite(module_name, factory, patterns=()):
    """The tests of ``test.test_asyncio.<module_name>``, substituted.

    Returns (suite, set of substituted class names)."""
    module = importlib.import_module(f"{PACKAGE}.{module_name}")
    table = SUBSTITUTIONS.get(module_name, {})
    missing = [name for name in table if not isinstance(getattr(module, name, None), type)]
    if missing:
        raise LookupError(f"{module_name}: no class {', '.join(missing)}; "
                          "update SUBSTITUTIONS for this CPython")
    replaced = {}
    for name, how in table.items():
        if how != "drop":
            replaced[getattr(module, name)] = _substitute(getattr(module, name), how, factory)
    dropped = {getattr(module, name) for name, how in table.items() if how == "drop"}
    loaded = unittest.defaultTestLoader.loadTestsFromModule(module)
    suite = unittest.TestSuite()
    for test in _flatten(loaded):
        cls = type(test)
        if cls in dropped:
            continue
        if cls in replaced:
            test = replaced[cls](test._testMethodName)
        if patterns and not any(fnmatch.fnmatchcase(short_id(test.id()), p)
                                or p in short_id(test.id()) for p in patterns):
            continue
        suite.addTest(test)
    return suite, {name for name, how in table.items() if how != "drop"}


def _reason(err_text):
    """One line out of a formatted traceback: the exception line."""
    lines = [line for line in err_text.strip().splitlines() if line.strip()]
    # With buffer=True, captured output is appended after the traceback.
    for i, line in enumerate(lines):
        if line.startswith(("Stdout:", "Stderr:")):
            lines = lines[:i]
            break
    for line in reversed(lines):
        if not line.startswith(" "):
            return line[:300]
    return lines[-1][:300] if lines else ""


class _Result(unittest.TestResult):
    """Installs the substituted policy before each test, arms a hard
    timeout, and records one outcome per test."""

    def __init__(self, factory, module_name, *, timeout, verbose, stream, sink):
        super().__init__()
        self.buffer = True
        self.factory = factory
        self.module_name = module_name
        self.timeout = timeout
        self.verbose = verbose
        self.stream = stream
        self.sink = sink
        self.records = []
        self._current = None

    def startTest(self, test):
        self.factory.created = 0
        asyncio.set_event_loop_policy(self.factory.policy())
        self._current = {
            "module": self.module_name, "id": short_id(test.id()),
            "outcome": "passed", "reason": "", "detail": "",
            "substituted_class": bool(getattr(type(test), "_wfcloop_substituted", False)),
        }
        self._t0 = time.monotonic()
        if self.verbose:
            print(f"  {self._current['id']} ...", end="", flush=True, file=self.stream)
        if self.sink is not None:
            self.sink({"event": "start", "module": self.module_name, "id": self._current["id"]})
        if self.timeout:
            faulthandler.dump_traceback_later(self.timeout, exit=True, file=sys.__stderr__)
        super().startTest(test)

    def _set(self, outcome, err_text="", reason=None):
        rec = self._current
        if rec is None:
            return
        order = ["passed", "skipped", "failed", "error"]
        if order.index(outcome) >= order.index(rec["outcome"]):
            rec["outcome"] = outcome
            if err_text or reason:
                reason = reason if reason is not None else _reason(err_text)
                rec["reason"] = " ".join(reason.split())
                rec["detail"] = err_text

    def addError(self, test, err):
        super().addError(test, err)
        if isinstance(test, unittest.TestCase) and self._current is not None:
            self._set("error", self.errors[-1][1])
        else:
            # setUpModule/setUpClass/tearDownClass/tearDownModule
            text = self.errors[-1][1]
            rec = {"module": self.module_name, "id": short_id(str(test)),
                   "outcome": "error", "reason": _reason(text), "detail": text,
                   "substituted_class": False, "on_loop": False, "fixture": True,
                   "seconds": 0.0}
            self.records.append(rec)
            if self.sink is not None:
                self.sink(dict(rec, event="result"))

    def addFailure(self, test, err):
        super().addFailure(test, err)
        self._set("failed", self.failures[-1][1])

    def addSkip(self, test, reason):
        super().addSkip(test, reason)
        self._set("skipped", reason=reason)

    def addSubTest(self, test, subtest, err):
        super().addSubTest(test, subtest, err)
        if err is not None:
            failed = issubclass(err[0], test.failureException)
            text = (self.failures if failed else self.errors)[-1][1]
            self._set("failed" if failed else "error", f"{subtest.id()}\n{text}")

    def addExpectedFailure(self, test, err):
        super().addExpectedFailure(test, err)

    def addUnexpectedSuccess(self, test):
        super().addUnexpectedSuccess(test)
        self._set("failed", reason="unexpected success")

    def stopTest(self, test):
        super().stopTest(test)
        if self.timeout:
            faulthandler.cancel_dump_traceback_later()
        rec = self._current
        self._current = None
        if rec is None:
            return
        rec["seconds"] = round(time.monotonic() - self._t0, 3)
        rec["loops"] = self.factory.created
        rec["on_loop"] = self.factory.created > 0
        self.records.append(rec)
        if self.verbose:
            print(f" {rec['outcome']} ({rec['seconds']:.2f}s"
                  f"{'' if rec['on_loop'] else ', not on the loop'})"
                  + (f": {rec['reason']}" if rec["outcome"] in ("failed", "error") else ""),
                  file=self.stream, flush=True)
        if self.sink is not None:
            self.sink(dict(rec, event="result"))


def run_module(module_name, factory, *, patterns=(), timeout=300, verbose=False,
               stream=sys.stdout, sink=None):
    """Run one module's substituted suite; return its list of records."""
    suite, _ = build_suite(module_name, factory, patterns)
    result = _Result(factory, module_name, timeout=timeout, verbose=verbose,
                     stream=stream, sink=sink)
    saved_policy = asyncio.get_event_loop_policy()
    env = factory.environ()
    saved_env = {key: os.environ.get(key) for key in env}
    os.environ.update(env)
    try:
        suite.run(result)
    finally:
        asyncio.set_event_loop_policy(saved_policy)
        for key, value in saved_env.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
    return result.records


def summarize(records):
    """Per-module counts: {module: {"on": {...}, "off": {...}}}."""
    table = {}
    for rec in records:
        mod = table.setdefault(rec["module"], {
            side: dict(run=0, passed=0, failed=0, errors=0, skipped=0)
            for side in ("on", "off")})
        counts = mod["on" if rec.get("on_loop") else "off"]
        if rec.get("fixture"):
            counts["errors"] += 1
            continue
        counts["run"] += 1
        counts[{"passed": "passed", "failed": "failed", "error": "errors",
                "skipped": "skipped"}[rec["outcome"]]] += 1
    return table


def format_table(table, title):
    head = (f"{'module':<22} {'run':>5} {'pass':>5} {'fail':>5} {'err':>5} {'skip':>5}"
            f"   | not on the loop: {'run':>5} {'pass':>5} {'fail':>5} {'err':>5} {'skip':>5}")
    out = [title, head, "-" * len(head)]
    total = {side: dict(run=0, passed=0, failed=0, errors=0, skipped=0) for side in ("on", "off")}
    for name, mod in table.items():
        for side in ("on", "off"):
            for k, v in mod[side].items():
                total[side][k] += v
    for name, mod in list(table.items()) + [("TOTAL", total)]:
        on, off = mod["on"], mod["off"]
        out.append(f"{name:<22} {on['run']:>5} {on['passed']:>5} {on['failed']:>5} "
                   f"{on['errors']:>5} {on['skipped']:>5}   | {'':>16} {off['run']:>5} "
                   f"{off['passed']:>5} {off['failed']:>5} {off['errors']:>5} {off['skipped']:>5}")
    return "\n".join(out)


def run_modules(modules, factory, *, patterns=(), timeout=300, verbose=False,
                stream=sys.stdout, sink=None):
    records = []
    for module_name in modules:
        t0 = time.monotonic()
        if verbose:
            print(f"{module_name}:", file=stream, flush=True)
        recs = run_module(module_name, factory, patterns=patterns, timeout=timeout,
                          verbose=verbose, stream=stream, sink=sink)
        records.extend(recs)
        if sink is not None:
            sink({"event": "module_done", "module": module_name,
                  "seconds": round(time.monotonic() - t0, 2)})
        print(f"{module_name}: {len(recs)} tests in {time.monotonic() - t0:.1f}s",
              file=stream, flush=True)
    return records


def main(argv=None):
    parser = argparse.ArgumentParser(
        prog="python -m tests.cpython_asyncio",
        description="Run CPython's test_asyncio modules on wfcloop (or, with "
                    "--stdlib, on the standard library's loop).")
    parser.add_argument("--pollers", type=int, default=2,
                        help="poller threads of each wfcloop loop (0: inline mode; default 2)")
    parser.add_argument("--pinned", action="store_true",
                        help="pollers always read the kernel (adaptive=False): the pollers "
                             "phase, with poller-side I/O, for every test")
    parser.add_argument("--stdlib", action="store_true",
                        help="run the same selection on SelectorEventLoop(EpollSelector())")
    parser.add_argument("--modules", nargs="+", default=None, metavar="MODULE",
                        help="modules to run (test_events or events; default: all 16)")
    parser.add_argument("--fast", action="store_true",
                        help=f"run only {', '.join(FAST_MODULES)}")
    parser.add_argument("-k", dest="patterns", action="append", default=[], metavar="PATTERN",
                        help="run only tests whose id contains PATTERN or matches it "
                             "as a glob (repeatable)")
    parser.add_argument("--timeout", type=float, default=300,
                        help="hard per-test timeout in seconds: dump the stacks and exit "
                             "(default 300; 0: none)")
    parser.add_argument("--json", metavar="FILE",
                        help="write one JSON record per line (start, result, module_done, summary)")
    parser.add_argument("-v", "--verbose", action="store_true", help="one line per test")
    args = parser.parse_args(argv)

    if args.modules:
        modules = [m if m.startswith("test_") else f"test_{m}" for m in args.modules]
    elif args.fast:
        modules = list(FAST_MODULES)
    else:
        modules = list(MODULES)

    # A process started in the background by a non-interactive shell
    # (`cmd &`, nohup) inherits SIGINT ignored, and then Python installs no
    # KeyboardInterrupt handler: _thread.interrupt_main() does nothing and
    # test_runners' interrupt tests wait forever, on every loop, the
    # stdlib's too.  The tests expect an interpreter's usual SIGINT.
    if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)

    # As under regrtest: quiet tests (support.verbose is regrtest's flag).
    from test import support
    support.verbose = bool(args.verbose)

    factory = LoopFactory(pollers=args.pollers, stdlib=args.stdlib, pinned=args.pinned)
    json_file = open(args.json, "w", encoding="utf-8") if args.json else None

    def sink(obj):
        if json_file is not None:
            json_file.write(json.dumps(obj) + "\n")
            json_file.flush()

    sink({"event": "header", "loop": factory.name, "pollers": args.pollers,
          "stdlib": args.stdlib, "modules": modules, "python": sys.version})
    t0 = time.monotonic()
    records = run_modules(modules, factory, patterns=args.patterns, timeout=args.timeout,
                          verbose=args.verbose, sink=sink)
    elapsed = time.monotonic() - t0
    table = summarize(records)
    sink({"event": "summary", "table": table, "seconds": round(elapsed, 2)})
    if json_file is not None:
        json_file.close()

    print()
    print(format_table(table, f"CPython {sys.version.split()[0]} test_asyncio on "
                              f"{factory.name} ({elapsed:.0f}s)"))
    bad = [r for r in records if r["outcome"] in ("failed", "error")]
    bad_on = [r for r in bad if r.get("on_loop") or r.get("fixture")]
    bad_off = [r for r in bad if r not in bad_on]
    for title, group in (("on the substituted loop (or in a module/class fixture)", bad_on),
                         ("not on the substituted loop", bad_off)):
        if group:
            print(f"\nFailures {title} ({len(group)}):")
            for r in group:
                print(f"  {r['outcome'].upper():<6} {r['id']}: {r['reason']}")
                if args.verbose:
                    print("    " + r["detail"].rstrip().replace("\n", "\n    "))
    return 1 if bad_on else 0


if __name__ == "__main__":
    sys.exit(main())
