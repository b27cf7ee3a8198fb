"""Loop lifecycle, differential against the stdlib loop: run_forever,
run_until_complete, stop, close, is_running/is_closed, shutdown_asyncgens,
shutdown_default_executor, executors, futures and tasks (task factories,
``context=``, eager tasks where Python has them)."""
import asyncio
import contextvars
import sys
import threading

import pytest

from _differential import Raised, assert_all, on_each, outcome, raises, run_on_each


def test_run_until_complete_returns_and_raises(no_leaks):
    async def value():
        await asyncio.sleep(0)
        return 42

    async def boom():
        await asyncio.sleep(0)
        raise LookupError("boom")

    def scenario(loop):
        return [loop.run_until_complete(value()),
                outcome(loop.run_until_complete, boom()),
                loop.run_until_complete(loop.create_task(value())),
                loop.is_running(), loop.is_closed()]

    assert_all(on_each(scenario), [42, raises(LookupError, "boom"), 42, False, False])


def test_run_until_complete_with_a_future_stopped_early(no_leaks):
    # stop() before the future is done: RuntimeError with stdlib's message.
    def scenario(loop):
        fut = loop.create_future()
        loop.call_soon(loop.stop)
        result = outcome(loop.run_until_complete, fut)
        fut.cancel()
        return result

    assert_all(on_each(scenario), raises(RuntimeError, "Event loop stopped before Future completed."))


def test_run_forever_stop_and_reentry(no_leaks):
    def scenario(loop):
        order = []

        def first():
            order.append(("first", loop.is_running()))
            order.append(("nested", outcome(loop.run_forever)))
            coro = asyncio.sleep(0)
            order.append(("nested-ruc", outcome(loop.run_until_complete, coro)))
            coro.close()
            loop.stop()
            # Scheduled after stop(): runs in the next run, not this one.
            loop.call_soon(order.append, "scheduled-after-stop")

        loop.call_soon(first)
        loop.run_forever()
        order.append(("returned", loop.is_running()))
        # stop() before run_forever: the loop runs one iteration then stops.
        loop.call_soon(order.append, "second-run")
        loop.stop()
        loop.run_forever()
        return order

    running = raises(RuntimeError, "This event loop is already running")
    # CPython 3.13.0 to 3.13.2 (gh-130145, fixed in 3.13.3): run_forever()
    # runs its cleanup even when its setup refused a nested run, which
    # marks the running loop as not running; the nested
    # run_until_complete() that follows then runs the coroutine (and
    # returns None) instead of raising.  Every loop inherits that
    # run_forever() (shown on 3.13.0 with the stdlib loop alone).
    nested_ruc = None if (3, 13) <= sys.version_info[:3] < (3, 13, 3) else running
    assert_all(on_each(scenario), [
        ("first", True),
        ("nested", running),
        ("nested-ruc", nested_ruc),
        ("returned", False),
        "scheduled-after-stop",
        "second-run",
    ])


def test_running_another_loop_inside_one_is_refused(no_leaks):
    def scenario(loop):
        other = asyncio.SelectorEventLoop()
        try:
            async def inner():
                return outcome(other.run_forever)
            return loop.run_until_complete(inner())
        finally:
            other.close()

    assert_all(on_each(scenario),
               raises(RuntimeError, "Cannot run the event loop while another loop is running"))


def test_close_semantics(no_leaks):
    def scenario(loop):
        out = []

        async def running_close():
            return outcome(loop.close)

        out.append(loop.run_until_complete(running_close()))
        loop.call_soon(lambda: None)
        loop.close()
        out.append(loop.is_closed())
        out.append(outcome(loop.close))  # idempotent
        out.append(outcome(loop.call_soon, print))
        out.append(outcome(loop.call_later, 1, print))
        out.append(outcome(loop.call_soon_threadsafe, print))
        out.append(outcome(loop.run_forever))
        coro = asyncio.sleep(0)
        out.append(outcome(loop.run_until_complete, coro))
        coro.close()
        out.append(outcome(loop.run_in_executor, None, print))
        return out

    closed = raises(RuntimeError, "Event loop is closed")
    assert_all(on_each(scenario), [
        raises(RuntimeError, "Cannot close a running event loop"),
        True, None, closed, closed, closed, closed, closed, closed])


def test_shutdown_asyncgens_finalizes_open_generators(no_leaks):
    def scenario(loop):
        log = []

        async def agen(tag):
            try:
                yield 1
                yield 2
            finally:
                await asyncio.sleep(0)
                log.append(("finalized", tag))

        async def start():
            gens = [agen("a"), agen("b")]
            for g in gens:
                log.append(await g.__anext__())
            return gens

        gens = loop.run_until_complete(start())
        loop.run_until_complete(loop.shutdown_asyncgens())
        del gens
        # The loop keeps its async generators in a WeakSet: the order in
        # which they are finalized is not defined.
        return log[:2], sorted(log[2:])

    assert_all(on_each(scenario), ([1, 1], [("finalized", "a"), ("finalized", "b")]))


def test_shutdown_default_executor(no_leaks):
    def scenario(loop):
        out = []
        ident = loop.run_until_complete(loop.run_in_executor(None, threading.get_ident))
        out.append(ident != threading.get_ident())
        loop.run_until_complete(loop.shutdown_default_executor())
        out.append(outcome(loop.run_in_executor, None, print))
        # Twice is fine.
        out.append(loop.run_until_complete(loop.shutdown_default_executor()))
        return out

    assert_all(on_each(scenario), [
        True, raises(RuntimeError, "Executor shutdown has been called"), None])


def test_executors(no_leaks):
    import concurrent.futures

    async def scenario():
        loop = asyncio.get_running_loop()
        out = []
        out.append(await loop.run_in_executor(None, sum, [1, 2, 3]))
        with concurrent.futures.ThreadPoolExecutor(2) as pool:
            out.append(await loop.run_in_executor(pool, pow, 2, 10))
            out.append(await asyncio.gather(*(loop.run_in_executor(pool, abs, -i) for i in range(5))))
        fut = loop.run_in_executor(None, int, "x")
        out.append(await fut_outcome(fut))
        out.append(type(fut).__name__)
        # asyncio.to_thread copies the context.
        var = contextvars.ContextVar("var")
        var.set("ctx")
        out.append(await asyncio.to_thread(var.get))
        # set_default_executor: only a ThreadPoolExecutor is accepted; the
        # loop's shutdown_default_executor (finish_loop) shuts this one down.
        out.append(outcome(loop.set_default_executor, object()))
        loop.set_default_executor(concurrent.futures.ThreadPoolExecutor(1))
        out.append(await loop.run_in_executor(None, str, 7))
        return out

    async def fut_outcome(fut):
        try:
            return await fut
        except Exception as exc:
            return Raised(exc)

    assert_all(run_on_each(scenario), [
        6, 1024, [0, 1, 2, 3, 4],
        raises(ValueError, "invalid literal for int() with base 10: 'x'"),
        "Future", "ctx",
        raises(TypeError, "executor must be ThreadPoolExecutor instance"), "7"])


def test_futures_and_tasks_basics(no_leaks):
    async def scenario():
        loop = asyncio.get_running_loop()
        out = []
        fut = loop.create_future()
        out.append(fut.get_loop() is loop)
        loop.call_soon(fut.set_result, "r")
        out.append(await fut)
        task = loop.create_task(asyncio.sleep(0, "t"), name="named")
        out.append(task.get_name())
        out.append(await task)
        # Cancellation with a message.
        blocked = loop.create_task(asyncio.sleep(3600))
        await asyncio.sleep(0)
        blocked.cancel("because")
        try:
            await blocked
        except asyncio.CancelledError as exc:
            out.append(("cancelled", exc.args))
        out.append(blocked.cancelled())
        # A task's exception.
        async def fail():
            raise KeyError("k")
        t = loop.create_task(fail())
        res = await asyncio.gather(t, return_exceptions=True)
        out.append(Raised(res[0]))
        # TaskGroup and timeout (3.11+).
        async with asyncio.TaskGroup() as tg:
            a = tg.create_task(asyncio.sleep(0, 1))
            b = tg.create_task(asyncio.sleep(0, 2))
        out.append((a.result(), b.result()))
        try:
            async with asyncio.timeout(0.01):
                await asyncio.sleep(3600)
        except TimeoutError:
            out.append("timeout")
        out.append(await asyncio.wait_for(asyncio.sleep(0, "w"), 5))
        # current_task / all_tasks from inside.
        out.append(asyncio.current_task() in asyncio.all_tasks())
        return out

    assert_all(run_on_each(scenario), [
        True, "r", "named", "t", ("cancelled", ("because",)), True,
        Raised(KeyError("k")), (1, 2), "timeout", "w", True])


async def _create_task_object():
    # The message names the object's address; compare its shape only.
    r = outcome(asyncio.get_running_loop().create_task, object())
    return (r.type, r.message.split(" at ")[0])


def test_create_task_refuses_non_coroutines(no_leaks):
    assert_all(run_on_each(_create_task_object),
               (TypeError, "a coroutine was expected, got <object object"))


def test_task_factory_with_and_without_context(no_leaks):
    var = contextvars.ContextVar("var", default="unset")

    def scenario(loop):
        seen = []

        def factory(loop_, coro, **kwargs):
            seen.append(sorted(kwargs))
            return asyncio.Task(coro, loop=loop_, **kwargs)

        out = [loop.get_task_factory()]
        loop.set_task_factory(factory)
        out.append(loop.get_task_factory() is factory)

        async def read():
            return var.get()

        ctx = contextvars.copy_context()
        ctx.run(var.set, "from-context")
        out.append(loop.run_until_complete(loop.create_task(read())))
        out.append(loop.run_until_complete(loop.create_task(read(), context=ctx)))
        out.append(loop.run_until_complete(loop.create_task(read(), name="n", context=ctx)))
        out.append(seen)
        out.append(outcome(loop.set_task_factory, 42))
        loop.set_task_factory(None)
        out.append(loop.get_task_factory())
        out.append(loop.run_until_complete(loop.create_task(read(), context=ctx)))
        return out

    assert_all(on_each(scenario), [
        None, True, "unset", "from-context", "from-context",
        # What create_task() passes to a task factory: context= (when
        # given) up to 3.13.2 and from 3.13.4 on, context= and name= in
        # 3.13.3 only (gh-128308, reverted by gh-133745), every keyword
        # from 3.14 on.  Shown on 3.11.7, 3.12.1 and 3.13.0; the other
        # versions from CPython's change log.
        [[], ["context"], ["context", "name"]]
        if sys.version_info[:3] == (3, 13, 3) or sys.version_info >= (3, 14)
        else [[], ["context"], ["context"]],
        raises(TypeError, "task factory must be a callable or None"),
        None, "from-context"])


@pytest.mark.skipif(sys.version_info < (3, 12), reason="asyncio.eager_task_factory is 3.12+")
def test_eager_task_factory(no_leaks):
    def scenario(loop):
        order = []
        loop.set_task_factory(asyncio.eager_task_factory)

        async def eager(tag):
            order.append(("start", tag))
            await asyncio.sleep(0)
            order.append(("end", tag))
            return tag

        async def finishes_eagerly():
            order.append("sync")
            return "done"

        async def main():
            t = loop.create_task(eager("a"))
            order.append("after create_task")
            u = loop.create_task(finishes_eagerly())
            order.append(("eager done", u.done()))
            return await t, await u

        order.append(loop.run_until_complete(main()))
        return order

    assert_all(on_each(scenario), [
        ("start", "a"), "after create_task", "sync", ("eager done", True),
        ("end", "a"), ("a", "done")])


def test_time_is_monotonic_and_resolution(no_leaks):
    async def scenario():
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        await asyncio.sleep(0.01)
        t1 = loop.time()
        # The loop clock is time.monotonic (as the stdlib's).
        import time
        return t1 > t0, abs(loop.time() - time.monotonic()) < 1.0

    assert_all(run_on_each(scenario), (True, True))
