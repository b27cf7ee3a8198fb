"""Shared pieces of the reliability suite: the short/long switch, a bounded
echo server protocol that counts its transports' callbacks, a pipelining
echo client that checks every echoed message byte-exact (CRC-32 per
message, in order), and process probes (RSS, fds, threads).

Not a test module (no ``test_`` prefix); the tests import it as
``from tests import _echo`` or ``import _echo``.
"""
import asyncio
import collections
import math
import os
import random
import resource
import zlib

#: ``WFCLOOP_STRESS=long`` selects the issue's full numbers; anything else
#: (the default) the short form that the normal test command runs.
LONG = os.environ.get("WFCLOOP_STRESS", "").lower() == "long"


def scale(short, long):
    """``long`` under ``WFCLOOP_STRESS=long``, else ``short``."""
    return long if LONG else short


#: Pollers the loop-level load tests run with.
LOAD_POLLERS = scale([0, 2], [0, 2, 4])

MAX_MESSAGE = 256 * 1024
# Messages are slices of one random buffer at random offsets: distinct
# contents, so a reordered, repeated or lost message changes a checksum.
_PAYLOAD = random.Random(0x5EED).randbytes(2 * MAX_MESSAGE)
PAYLOAD = memoryview(_PAYLOAD)


def message_plan(rng, count):
    """``count`` (offset, size) pairs; sizes log-uniform over 1 B .. 256 KiB
    (every order of magnitude equally likely: mean about 21 KiB)."""
    plan = []
    top = math.log(MAX_MESSAGE)
    for _ in range(count):
        size = min(MAX_MESSAGE, max(1, int(math.exp(rng.uniform(0.0, top)))))
        plan.append((rng.randrange(0, len(_PAYLOAD) - size + 1), size))
    return plan


# ------------------------------------------------------------ probes

def rss_bytes():
    """Resident set size of this process now (not the peak)."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize()


def fd_count():
    return len(os.listdir("/proc/self/fd"))


def thread_count():
    return len(os.listdir("/proc/self/task"))


def ensure_nofile(needed):
    """Raise RLIMIT_NOFILE's soft limit (and the hard one, where allowed)
    to at least ``needed``; return the previous limits, or None if the
    limit cannot be raised that far."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft >= needed:
        return (soft, hard)
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (max(needed, soft), max(needed, hard)))
    except (ValueError, OSError):
        return None
    return (soft, hard)


# ------------------------------------------------------------ server

class ServerLedger:
    """What the echo server's transports did: made and lost, per transport."""

    def __init__(self):
        self.made = 0
        self.lost = 0          # connection_lost calls, all transports
        self.lost_twice = 0    # transports whose connection_lost came again
        self.lost_exc = []
        self.bytes = 0
        self.all_lost = None                # future: set when lost == made

    def check_done(self):
        if self.all_lost is not None and not self.all_lost.done() \
                and self.lost >= self.made:
            self.all_lost.set_result(None)


class EchoServer(asyncio.Protocol):
    """Echo with flow control: reading pauses while the write buffer is
    above its high-water mark, so neither side's memory grows without
    bound."""

    def __init__(self, ledger):
        self.ledger = ledger
        self.lost_calls = 0

    def connection_made(self, transport):
        self.transport = transport
        self.ledger.made += 1

    def data_received(self, data):
        self.ledger.bytes += len(data)
        self.transport.write(data)

    def pause_writing(self):
        self.transport.pause_reading()

    def resume_writing(self):
        self.transport.resume_reading()

    def eof_received(self):
        return False   # close once the echo is flushed

    def connection_lost(self, exc):
        self.lost_calls += 1
        self.ledger.lost += 1
        if self.lost_calls > 1:
            self.ledger.lost_twice += 1
        if exc is not None:
            self.ledger.lost_exc.append(exc)
        self.ledger.check_done()


# ------------------------------------------------------------ client

class EchoClient(asyncio.Protocol):
    """Sends its plan of messages, at most ``window`` bytes outstanding
    (and at least one message), and checks each echoed message's CRC-32
    in order; closes after the last one."""

    def __init__(self, plan, window, done):
        self.plan = plan
        self.window = window
        self.done = done
        self.next = 0
        self.outstanding = collections.deque()   # (size, crc32)
        self.in_flight = 0
        self.crc = 0
        self.got = 0
        self.completed = 0
        self.corrupt = 0
        self.extra = 0
        self.lost_calls = 0
        self.paused = False
        self.transport = None

    def connection_made(self, transport):
        self.transport = transport
        self._fill()

    def _fill(self):
        plan, transport = self.plan, self.transport
        while (self.next < len(plan) and not self.paused
               and (not self.outstanding or self.in_flight < self.window)):
            offset, size = plan[self.next]
            msg = PAYLOAD[offset:offset + size]
            self.outstanding.append((size, zlib.crc32(msg)))
            self.in_flight += size
            self.next += 1
            transport.write(msg)

    def data_received(self, data):
        view = memoryview(data)
        pos, end = 0, len(view)
        while pos < end:
            if not self.outstanding:
                self.extra += end - pos      # echoed bytes nobody sent
                break
            size, crc = self.outstanding[0]
            take = min(size - self.got, end - pos)
            self.crc = zlib.crc32(view[pos:pos + take], self.crc)
            self.got += take
            pos += take
            if self.got == size:
                if self.crc != crc:
                    self.corrupt += 1
                self.outstanding.popleft()
                self.in_flight -= size
                self.completed += 1
                self.crc = self.got = 0
        if self.completed == len(self.plan):
            self.transport.close()
        else:
            self._fill()

    def pause_writing(self):
        self.paused = True

    def resume_writing(self):
        self.paused = False
        self._fill()

    def connection_lost(self, exc):
        self.lost_calls += 1
        self.exc = exc
        if not self.done.done():
            self.done.set_result(self)


async def run_clients(host, port, plans, *, window=64 * 1024, connect_batch=200,
                      family=0):
    """Open one EchoClient per plan (``connect_batch`` connects at a time),
    wait for all to finish; return the clients."""
    loop = asyncio.get_running_loop()
    clients = []
    connect_sem = asyncio.Semaphore(connect_batch)

    async def one(plan):
        done = loop.create_future()
        async with connect_sem:
            _, proto = await loop.create_connection(
                lambda: EchoClient(plan, window, done), host, port, family=family)
        clients.append(proto)
        await done
        await asyncio.sleep(0)   # a second connection_lost would land here
        return proto

    await asyncio.gather(*(one(plan) for plan in plans))
    return clients


def split_plan(plan, connections):
    """Deal ``plan``'s messages round-robin over ``connections`` plans."""
    return [plan[i::connections] for i in range(connections)]


def client_summary(clients):
    """What check_echo needs from the clients, as plain data."""
    return [{"completed": c.completed, "planned": len(c.plan), "corrupt": c.corrupt,
             "extra": c.extra, "lost_calls": c.lost_calls, "exc": repr(c.exc)}
            for c in clients]


if __name__ == "__main__":
    # Client side in a process of its own (when one process may not hold
    # both ends' fds): python _echo.py PORT CONNECTIONS MESSAGES SEED POLLERS
    import json
    import sys

    import wfcloop

    port, connections, messages, seed, pollers = map(int, sys.argv[1:6])
    ensure_nofile(connections + 200)
    plans = split_plan(message_plan(random.Random(seed), messages), connections)
    clients = wfcloop.run(run_clients("127.0.0.1", port, plans), pollers=pollers)
    print(json.dumps(client_summary(clients)))
