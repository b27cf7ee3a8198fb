"""Read/write pipes (os.pipe and PTYs), subprocesses and signal handlers,
differential against the stdlib loop."""
import asyncio
import os
import signal
import subprocess
import sys
import tty

from _differential import Collector, Raised, acall, assert_all, assert_same, on_each, outcome, run_on_each


def test_read_and_write_pipes_on_os_pipe(no_leaks):
    async def scenario():
        loop = asyncio.get_running_loop()
        r, w = os.pipe()
        rt, rp = await loop.connect_read_pipe(Collector, os.fdopen(r, "rb", 0))
        wt, wp = await loop.connect_write_pipe(Collector, os.fdopen(w, "wb", 0))
        out = [wt.get_write_buffer_size(), wt.can_write_eof()]
        for i in range(100):
            wt.write(b"%d," % i)
        wt.write_eof()
        out.append(await asyncio.wait_for(rp.eof, 5) == b"".join(b"%d," % i for i in range(100)))
        await asyncio.wait_for(rp.lost, 5)
        await asyncio.wait_for(wp.lost, 5)
        out.append(rp.events)
        out.append(wp.events)
        # The reader goes away: the write pipe sees it (connection_lost).
        r, w = os.pipe()
        wt, wp = await loop.connect_write_pipe(Collector, os.fdopen(w, "wb", 0))
        os.close(r)
        out.append(await asyncio.wait_for(wp.lost, 5))
        return out

    assert_all(run_on_each(scenario), [
        0, True, True, ["made", "eof", ("lost", None)], ["made", ("lost", None)], None])


def test_pty_pipes(no_leaks):
    async def scenario():
        loop = asyncio.get_running_loop()
        master, slave = os.openpty()
        tty.setraw(slave)
        rt, rp = await loop.connect_read_pipe(Collector, os.fdopen(master, "rb", 0))
        wt, wp = await loop.connect_write_pipe(Collector, os.fdopen(slave, "wb", 0))
        wt.write(b"through the pty")
        while len(rp.data) < 15:
            await asyncio.sleep(0.002)
        out = [bytes(rp.data)]
        wt.close()
        await asyncio.wait_for(wp.lost, 5)
        # Slave closed: reading the master fails with EIO.
        exc = await asyncio.wait_for(rp.lost, 5)
        out.append((type(exc), getattr(exc, "errno", None)))
        out.append(rp.events)
        return out

    import errno
    assert_all(run_on_each(scenario), [
        b"through the pty", (OSError, errno.EIO), ["made", ("lost", "OSError")]])


def test_pipe_bad_arguments(no_leaks):
    async def scenario():
        loop = asyncio.get_running_loop()
        import tempfile
        with tempfile.TemporaryFile() as f:
            return [await acall(loop.connect_read_pipe, Collector, f),
                    await acall(loop.connect_write_pipe, Collector, f)]

    assert_all(run_on_each(scenario), [
        Raised(ValueError("Pipe transport is for pipes/sockets only.")),
        Raised(ValueError("Pipe transport is only for pipes, sockets and character devices"))])


def test_subprocess_exec_and_shell(no_leaks):
    async def scenario():
        loop = asyncio.get_running_loop()
        out = []
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-c", "import sys; d = sys.stdin.read(); sys.stdout.write(d[::-1]); sys.stderr.write('e'); sys.exit(3)",
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        out.append(await proc.communicate(b"abc"))
        out.append(proc.returncode)
        proc = await asyncio.create_subprocess_shell(
            "read x; echo got $x; exit 7", stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        proc.stdin.write(b"line\n")
        await proc.stdin.drain()
        out.append(await proc.stdout.read())
        out.append(await proc.wait())
        # The protocol API and get_extra_info('subprocess').
        exited = loop.create_future()

        class P(asyncio.SubprocessProtocol):
            def __init__(self):
                self.data = []

            def pipe_data_received(self, fd, data):
                self.data.append((fd, data))

            def process_exited(self):
                exited.set_result(True)

        transport, proto = await loop.subprocess_exec(
            P, sys.executable, "-c", "print(input())", stdin=subprocess.PIPE, stderr=None)
        popen = transport.get_extra_info("subprocess")
        out.append((type(popen), popen.pid == transport.get_pid()))
        transport.get_pipe_transport(0).write(b"hi\n")
        await asyncio.wait_for(exited, 10)
        while not transport.get_pipe_transport(1).is_closing():
            await asyncio.sleep(0.002)
        out.append((transport.get_returncode(), b"".join(d for fd, d in proto.data if fd == 1)))
        transport.close()
        # Killing a sleeping child.
        proc = await asyncio.create_subprocess_exec(sys.executable, "-c", "import time; time.sleep(60)")
        proc.send_signal(signal.SIGTERM)
        out.append(await asyncio.wait_for(proc.wait(), 10))
        out.append(await acall(loop.subprocess_exec, asyncio.SubprocessProtocol, sys.executable, shell=True))
        out.append(await acall(loop.subprocess_shell, asyncio.SubprocessProtocol, [sys.executable]))
        return out

    assert_all(run_on_each(scenario), [
        (b"cba", b"e"), 3, b"got line\n", 7, (subprocess.Popen, True), (0, b"hi\n"), -signal.SIGTERM,
        Raised(ValueError("shell must be False")),
        Raised(ValueError("cmd must be a string"))])


def test_signal_arriving_while_the_loop_is_not_running(no_leaks):
    def scenario(loop):
        got = []
        loop.add_signal_handler(signal.SIGUSR2, got.append, "usr2")
        try:
            os.kill(os.getpid(), signal.SIGUSR2)  # the loop is not running
            out = [list(got)]
            deadline = loop.time() + 5
            while not got and loop.time() < deadline:
                loop.run_until_complete(asyncio.sleep(0.01))
            out.append(got)
            out.append(loop.remove_signal_handler(signal.SIGUSR2))
            out.append(loop.remove_signal_handler(signal.SIGUSR2))
            out.append(signal.getsignal(signal.SIGUSR2) is signal.SIG_DFL)
            return out
        finally:
            loop.remove_signal_handler(signal.SIGUSR2)

    assert_all(on_each(scenario), [[], ["usr2"], True, False, True])


def test_signal_handler_arguments_and_errors(no_leaks):
    def scenario(loop):
        seen = []
        out = []
        loop.add_signal_handler(signal.SIGUSR1, lambda *a: seen.append(a), 1, "two")
        # Replacing a handler.
        loop.add_signal_handler(signal.SIGUSR1, lambda *a: seen.append(("new",) + a), 3)
        os.kill(os.getpid(), signal.SIGUSR1)
        deadline = loop.time() + 5
        while not seen and loop.time() < deadline:
            loop.run_until_complete(asyncio.sleep(0.01))
        out.append(seen)
        out.append(loop.remove_signal_handler(signal.SIGUSR1))
        out.append(outcome(loop.add_signal_handler, signal.SIGKILL, print))
        out.append(outcome(loop.add_signal_handler, 12345, print))
        out.append(outcome(loop.add_signal_handler, "x", print))
        out.append(outcome(loop.remove_signal_handler, 12345))
        coro = asyncio.sleep(0)
        out.append(outcome(loop.add_signal_handler, signal.SIGUSR1, coro))
        coro.close()
        out.append(outcome(loop.add_signal_handler, signal.SIGUSR1, asyncio.sleep))
        return out

    ref = assert_same(on_each(scenario))
    assert ref[:2] == [[("new", 3)], True]
    assert ref[2] == Raised(RuntimeError("sig 9 cannot be caught"))
    assert ref[3].type is ValueError and "12345" in ref[3].message
    assert ref[4].type is TypeError
    assert ref[5].type is ValueError and "12345" in ref[5].message
    assert ref[6] == Raised(TypeError("coroutines cannot be used with add_signal_handler()"))
    assert ref[7] == Raised(TypeError("coroutines cannot be used with add_signal_handler()"))
