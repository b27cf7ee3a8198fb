"""Register/unregister/close storms from several threads while pollers
deliver events: no event lost, none duplicated, none for a removed fd.

The short form runs in the normal test command (about 2 s per case);
WFCLOOP_STRESS=long runs it for 30 s per case.
"""
import os
import random
import select
import threading
import time

import pytest

from wfcloop import EventPoll

IN, OUT, ONESHOT = select.EPOLLIN, select.EPOLLOUT, select.EPOLLONESHOT
DURATION = 30.0 if os.environ.get("WFCLOOP_STRESS") == "long" else 2.0


class Ledger:
    """What the workers did, in one global order, for the consumer to judge
    each delivered event against.  Every registration carries its own id as
    the event's data, so an event names the registration it belongs to
    even when the fd number has been reused since.

    The rules checked: after unregister() returns, no poll() that starts
    later reports the registration; after close() without unregister(), at
    most the one event the kernel had already reported may still come, and
    never in a poll() that starts after the number was registered again.
    """

    def __init__(self):
        self.lock = threading.Lock()
        self.seq = 0
        self.regs = {}          # id -> Registration
        self.reregistered = {}  # fd -> seq of the last register() return
        self.violations = []

    def tick(self):
        self.seq += 1
        return self.seq

    def judge(self, reg_id, fd, start):
        """Consumer, lock held: account for one delivered event."""
        reg = self.regs[reg_id]
        if reg.fd != fd:
            self.violations.append(f"registration {reg_id} reported as fd {fd}")
        reg.delivered += 1
        if reg.removed is not None:
            if reg.how == "unregister" and reg.removed < start:
                self.violations.append(f"event of registration {reg_id} after unregister()")
            again = self.reregistered.get(fd, -1)
            if again > reg.removed and again < start:
                self.violations.append(
                    f"event of closed registration {reg_id} after fd {fd} was registered again")
        if reg.acked is not None:
            reg.acked.set()


class Registration:
    def __init__(self, fd, wait):
        self.fd = fd
        self.delivered = 0
        self.acked = threading.Event() if wait else None
        self.removed = None
        self.how = None


@pytest.mark.stress
@pytest.mark.parametrize("npollers", [0, 2, 4], ids=lambda n: f"pollers={n}")
def test_storm_no_event_lost_duplicated_or_misdelivered(npollers, no_leaks):
    ep = EventPoll(pollers=npollers)
    ledger = Ledger()
    stop = threading.Event()            # workers stop
    consumer_stop = threading.Event()   # after the workers, so none waits in vain
    noise = [os.eventfd(1, os.EFD_NONBLOCK | os.EFD_CLOEXEC) for _ in range(8)]
    for fd in noise:
        ep.register(fd, IN)   # level-triggered, always ready: pollers stay busy
    noise_set = set(noise)   # their data is 0
    counts = {"noise": 0}
    next_id = iter(range(1, 1 << 62))   # 0 marks the noise fds

    def consumer():
        while not consumer_stop.is_set():
            with ledger.lock:
                start = ledger.seq
            events = ep._poll_with_data(0.02)
            with ledger.lock:
                for fd, mask, reg_id in events:
                    if reg_id == 0:
                        counts["noise"] += 1
                        if fd not in noise_set:
                            ledger.violations.append(f"data 0 reported for fd {fd}")
                    else:
                        ledger.judge(reg_id, fd, start)

    def worker(seed):
        rng = random.Random(seed)
        while not stop.is_set():
            fd = os.eventfd(0, os.EFD_NONBLOCK | os.EFD_CLOEXEC)
            reg_id = next(next_id)
            mask = rng.choice([IN, OUT])   # an eventfd is always writable
            reg = Registration(fd, wait=rng.random() < 0.7)
            with ledger.lock:
                ledger.regs[reg_id] = reg
            ep._register_with_data(fd, mask | ONESHOT, reg_id)
            with ledger.lock:
                ledger.reregistered[fd] = ledger.tick()
            if mask == IN:
                os.eventfd_write(fd, 1)
            if reg.acked is not None and not reg.acked.wait(5.0):
                with ledger.lock:
                    ledger.violations.append(f"event of registration {reg_id} lost")
            elif rng.random() < 0.5:
                time.sleep(rng.random() * 0.001)
            with ledger.lock:
                reg.how = "unregister" if rng.random() < 0.5 else "close"
                if reg.how == "unregister":
                    ep.unregister(fd)
                os.close(fd)   # without unregister the kernel drops it
                reg.removed = ledger.tick()

    consumer_thread = threading.Thread(target=consumer)
    workers = [threading.Thread(target=worker, args=(i,)) for i in range(4)]
    for t in [consumer_thread] + workers:
        t.start()
    time.sleep(DURATION)
    stop.set()
    for t in workers:
        t.join(30)
    consumer_stop.set()
    consumer_thread.join(30)
    assert not any(t.is_alive() for t in [consumer_thread] + workers)
    stats = ep.stats()
    ep.close()
    for fd in noise:
        os.close(fd)

    assert not ledger.violations, ledger.violations[:10]
    acked = [reg for reg in ledger.regs.values() if reg.acked is not None]
    assert len(acked) > 50, "the storm did too little to prove anything"
    duplicated = [reg for reg in ledger.regs.values() if reg.delivered > 1]
    assert not duplicated, f"{len(duplicated)} one-shot registrations got more than one event"
    assert all(reg.delivered == 1 for reg in acked)
    assert counts["noise"] > 0
    # Every event harvested from the kernel was delivered, coalesced into
    # an item already queued, or dropped as stale; nothing else.
    assert stats["delivered"] <= stats["harvested"]
    assert stats["harvested"] == stats["enqueued"] + stats["coalesced"] + stats["stale"]
