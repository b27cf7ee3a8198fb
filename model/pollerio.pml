/*
 * pollerio.pml - a Promela model of poller-side I/O in
 * cython/eventpoll_core.c (section POLLER-SIDE I/O): the BUSY state, the
 * read a poller makes for the consumer (W_RFULL), the output the consumer
 * queues and the pollers send (the hand-back list, W_MORE), and removal
 * racing with all of it.  Checked by model/check.sh.
 *
 * What is abstracted (eventpoll.pml checks those parts in detail):
 *  - the ready list is a bit per item (on the list or not) plus the
 *    wake-up protocol's two counters, each step sequentially consistent
 *    (what the seq_cst fences X and Y buy);
 *  - one fd number, one slot: a removed registration's slot is reused by
 *    the next one, told apart by its generation, and the fd number names
 *    a new socket after a close (the incarnation `inc`);
 *  - a socket is a count of messages in each direction.
 *
 * Processes
 *   poller (NPOLLERS)  poller_main(): an event for the item (mark_ready,
 *                      then io_receive + finish_busy when it went BUSY), or
 *                      the hand-back eventfd (poller_handback_as:
 *                      flush_item + finish_busy)
 *   consumer           the event loop: wfc_ep_wait (rearm_delivered, which
 *                      hands items back; deliver; the hand-back before
 *                      blocking; sleep_on_ready_list), then the transport:
 *                      wfc_ep_io_take_read (or its own recv), echo with
 *                      wfc_ep_io_write; CLOSES times it closes the
 *                      connection as SocketTransport.close() does
 *                      (io_disable, take the read, take the writes and send
 *                      them, wfc_ep_del, close) and opens a new one on the
 *                      same fd number (wfc_ep_add, wfc_ep_io_enable)
 *   peer               writes WRITES messages to the live connection
 *   quiescence         runs only when nothing else can, checks the end
 *
 * Properties
 *  (a) no I/O on a closed or reused fd: every recv/send a poller (or a
 *      thread helping a hand-back) makes is on the incarnation its
 *      registration was made for, while that socket is open
 *  (b) nothing lost: at quiescence every message the peer wrote to the
 *      last connection has come back (read, echoed, sent)
 *  (c) no deadlock: the only valid end states have the pollers in
 *      epoll_wait and the consumer asleep
 *
 * Bug variants (check.sh requires each to fail)
 *  BUG_DEL_NO_BUSY_WAIT     retire_item does not wait BUSY out: a poller's
 *                           recv/send hits the closed fd or its successor
 *  BUG_NO_HANDBACK_BEFORE_SLEEP
 *                           wfc_ep_wait blocks with a W_MORE report's
 *                           hand-back still scheduled: output is stuck
 *  BUG_NO_MORE              output queued while the item is BUSY does not
 *                           set W_MORE: nobody hands it back
 */

/*
 * Reachability probes (check.sh: -DREACH=k must fail at the probe):
 *   1 output queued while the item is BUSY sets W_MORE
 *   2 a thread waiting BUSY out runs a hand-back itself
 *   3 retire_item's CAS finds the item BUSY (a poller won it after the wait)
 *   4 a BUSY owner reads for an event that came while it held the item
 *   5 the consumer takes a read a poller made
 *   6 a poller's event is stale (the registration was removed)
 */
#ifdef REACH
#define REACHED(k) assert(REACH != (k))
#else
#define REACHED(k) skip
#endif

#ifndef NPOLLERS
#define NPOLLERS 2
#endif
#ifndef WRITES
#define WRITES 2
#endif
#ifndef CLOSES
#define CLOSES 1
#endif

#define FREE   0
#define IDLE   1
#define READY  2
#define ZOMBIE 3
#define BUSY   4

/* ---- the item word: generation, pending bit, state, flags */
byte wgen = 1;
byte wstate = IDLE;
bit  wpend;             /* an event bit (EPOLLIN) */
bit  wio = 1;           /* W_IO */
bit  rfull;             /* W_RFULL */
bit  more;              /* W_MORE */
bit  wrote;             /* W_WROTE (a short send: not modelled, never set) */

/* ---- fields of the item (ctl_lock, or the BUSY owner) */
byte iinc = 1;          /* the socket incarnation the registration is for */
byte rbuf;              /* messages in the held read */
byte outq;              /* messages queued by the consumer */
byte flight;            /* messages handed to a poller */
bit  rp;                /* rearm_pending (an entry in rearm_vec) */
bit  rearm_due;         /* delivered since its last arm */
bit  onlist;            /* on the ready or transaction list */
bit  hb;                /* on the hand-back list */
byte hbinc;             /* ... for this incarnation (the owner's view) */

/* ---- the kernel: the registration and the hand-back eventfd */
bit  kreg = 1;
byte kgen = 1;          /* the registration's tag generation */
bit  armed = 1;         /* EPOLLONESHOT: enabled until it fires */
bit  hb_cnt;            /* hand-back eventfd counter non-zero */
bit  hb_armed = 1;      /* its EPOLLONESHOT */

/* ---- the socket behind the fd number */
byte inc = 1;           /* the live incarnation */
bit  open = 1;
byte inq;               /* messages the peer wrote, not read yet */
byte sent;              /* messages echoed back on the live incarnation */
byte written;           /* messages the peer wrote to the live incarnation */
byte closes;

/* ---- the wake-up protocol, as in eventpoll.pml */
byte sleepers;
bit  sem;

#define io_ok(i) (open && inc == (i))

/* A poller or a helping thread reads for the BUSY item: all the socket
 * has, kept as the held read.  (a): on the incarnation the owner took the
 * item for (`mi`, read when it became the owner). */
inline io_receive(got, mi) {
  assert(io_ok(mi));
  if
  :: inq > 0 -> rbuf = inq; inq = 0; got = 1
  :: else -> got = 0
  fi
}

/* finish_busy(): end BUSY; READY and appended (and the consumer woken) if
 * there is something for it, else IDLE.  `rx`: the owner may read for an
 * event that came while BUSY. */
inline finish_busy(got, rx, wake, mi) {
  if
  :: rx && !got && wpend && wio && !rfull -> io_receive(got, mi); REACHED(4)
  :: else -> skip
  fi;
  if
  :: got -> rfull = 1
  :: else -> skip
  fi;
  if
  :: wpend || more || wrote || got ->
     wstate = READY; assert(!onlist); onlist = 1;
     wake = (sleepers > 0)
  :: else -> wstate = IDLE
  fi;
  got = 0
}

/* flush_item(): the owner sends the flight and re-arms the item (if it
 * was delivered since its last arm).  (a) */
inline flush_item(mi) {
  if
  :: flight > 0 -> assert(io_ok(mi)); sent = sent + flight; flight = 0
  :: else -> skip
  fi;
  if
  :: rearm_due -> rearm_due = 0;
     if :: kreg && kgen == wgen -> armed = 1 :: else -> skip fi
  :: else -> skip
  fi
}

proctype poller()
{
  byte g, mi;
  bit got, wake, mine;

end_wait:
  do
  :: atomic { kreg && armed && inq > 0 -> armed = 0; g = kgen }
     /* mark_ready: one CAS on the word (generation, state, bit) */
     atomic {
       if
       :: wgen != g || wstate == FREE || wstate == ZOMBIE -> REACHED(6) /* stale */
       :: wgen == g && wstate == IDLE && wio && !rfull ->
          wstate = BUSY; wpend = 1; mine = 1; mi = iinc                /* ours: read */
       :: wgen == g && wstate == IDLE && !(wio && !rfull) ->
          wstate = READY; wpend = 1; assert(!onlist); onlist = 1;
          wake = (sleepers > 0)
       :: wgen == g && (wstate == READY || wstate == BUSY) -> wpend = 1 /* coalesced */
       fi;
       g = 0
     }
     if
     :: mine -> atomic { io_receive(got, mi) };
        atomic { finish_busy(got, 1, wake, mi); mine = 0; mi = 0 }
     :: else -> skip
     fi;
     if :: wake -> atomic { sem = 1; wake = 0 } :: else -> skip fi
  :: atomic { hb_armed && hb_cnt -> hb_armed = 0 }
     /* poller_handback_as: read the eventfd, take the list, re-arm it */
     atomic { hb_cnt = 0; mine = hb; hb = 0; mi = hbinc }
     hb_armed = 1;
     if
     :: mine -> atomic { flush_item(mi) };
        atomic { finish_busy(got, 1, wake, mi); mine = 0 }
     :: else -> skip
     fi;
     mi = 0;
     if :: wake -> atomic { sem = 1; wake = 0 } :: else -> skip fi
  od
}

/* wait_not_busy(), ctl_lock held: help a hand-back no poller took, or wait
 * for the poller that holds the item. */
inline wait_not_busy() {
  do
  :: atomic { wstate != BUSY -> break }
  :: atomic { wstate == BUSY && hb -> hb = 0; flush_item(hbinc); finish_busy(got, 0, wake, hbinc); REACHED(2) }
     if :: wake -> atomic { sem = 1; wake = 0 } :: else -> skip fi
  od
}

/* rearm_delivered() for the item (ctl_lock): an IDLE item with W_IO goes
 * BUSY and onto the hand-back list with its output; else a plain re-arm. */
inline rearm_delivered() {
  atomic {
    if
    :: rp ->
       rp = 0;
       if
       :: wstate == IDLE && wio ->
          wstate = BUSY; flight = flight + outq; outq = 0; hbinc = iinc;
          if :: !hb -> hb = 1; hb_cnt = 1 :: else -> skip fi
       :: wstate == IDLE && !wio ->
          if :: rearm_due && kreg && kgen == wgen -> armed = 1; rearm_due = 0 :: else -> skip fi
       :: else -> skip     /* READY or BUSY: it comes back by delivery or W_MORE */
       fi
    :: else -> skip
    fi
  }
}

/* write() -> wfc_ep_io_write(): queued; W_MORE if BUSY, else a hand-back
 * scheduled (schedule_rearm) */
inline io_write(n) {
  atomic {
    outq = outq + n; n = 0;
#ifndef BUG_NO_MORE
    if :: wstate == BUSY -> more = 1; REACHED(1) :: else -> rp = 1 fi
#else
    if :: wstate == BUSY -> skip :: else -> rp = 1 fi
#endif
  }
}

proctype consumer()
{
  bit got, wake, delivered, r, bare;
  byte msgs, later;

wait_start:
  rearm_delivered();
  /* A reply written an iteration after its read (a stream's reader task
   * runs then): the item may be BUSY with the re-arm just handed back. */
  if
  :: later > 0 -> io_write(later)
  :: else -> skip
  fi;
  /* The connection may close here, with the item in any state (a
   * timer's callback, say), and a new one take the fd number: as
   * SocketTransport.close() does it, or a bare wfc_ep_del + close (the
   * core alone must keep the pollers off the fd). */
  if
  :: closes < CLOSES ->
     closes++;
     if
     :: bare = 0
     :: bare = 1
     fi;
     if
     :: !bare ->
        /* io_disable: no poller reads for it from now on; then the
         * read and the writes are taken (and sent by the transport) */
        atomic { wio = 0 }
        wait_not_busy();
        atomic {
          if :: rfull -> rbuf = 0; rfull = 0 :: else -> skip fi;
          if :: flight + outq > 0 -> assert(io_ok(iinc)); flight = 0; outq = 0 :: else -> skip fi
        }
     :: else -> skip
     fi;
     later = 0;
     /* wfc_ep_del: EPOLL_CTL_DEL, retire_item (waits BUSY out) */
     atomic { kreg = 0; armed = 0 }
     /* retire_item: wait BUSY out, then one CAS: IDLE -> FREE or
      * READY -> ZOMBIE; a poller that won IDLE -> BUSY since the wait
      * (its event was taken before the DEL) makes the CAS fail: wait
      * again */
     do
     :: true ->
#ifndef BUG_DEL_NO_BUSY_WAIT
        wait_not_busy();
#endif
        atomic {
          if
#ifndef BUG_DEL_NO_BUSY_WAIT
          :: wstate == BUSY -> REACHED(3)                /* the CAS failed */
#else
          :: wstate == BUSY -> wstate = FREE; wgen++; wpend = 0; more = 0; r = 1
#endif
          :: wstate == IDLE -> wstate = FREE; wgen++; wpend = 0; more = 0; r = 1
          :: wstate == READY -> wstate = ZOMBIE; r = 1
          :: else -> r = 1
          fi;
          if
          :: r ->
             rp = 0; rearm_due = 0;
             /* io_release: the buffers go with the registration */
             rbuf = 0; rfull = 0; outq = 0; flight = 0
          :: else -> skip
          fi
        }
        if :: r -> r = 0; break :: else -> skip fi
     od;
     /* close(); the next socket gets the same number */
     atomic { open = 0; inc++; inq = 0; sent = 0; written = 0; open = 1 }
     /* wfc_ep_add + wfc_ep_io_enable.  A ZOMBIE is reaped first (the
      * C code takes a spare slot and reaps it at the next deliver; with
      * one slot the model reaps it here: it is on the consumer's list,
      * and no poller touches a ZOMBIE). */
     atomic {
       if
       :: wstate == ZOMBIE -> assert(onlist); onlist = 0; wstate = FREE; wgen++; wpend = 0; rfull = 0
       :: else -> skip
       fi;
       (wstate == FREE) ->
       wstate = IDLE; wpend = 0; rfull = 0; more = 0; wrote = 0; wio = 1;
       iinc = inc; rbuf = 0; outq = 0; flight = 0;
       kreg = 1; kgen = wgen; armed = 1
     }
  :: true -> skip     /* (or not now) */
  fi;

deliver_pass:
  /* deliver(): the item off the list; ZOMBIE reaped, READY -> IDLE taking
   * the bit and W_MORE/W_WROTE, a re-arm scheduled */
  atomic {
    if
    :: onlist ->
       onlist = 0;
       if
       :: wstate == ZOMBIE -> wstate = FREE; wgen++; wpend = 0; rfull = 0; more = 0
       :: wstate == READY ->
          delivered = wpend || rfull || wrote;
          wpend = 0; more = 0; wrote = 0; wstate = IDLE;
          rearm_due = 1; rp = 1
       fi
    :: else -> skip
    fi
  }
  if
  :: delivered ->
     delivered = 0;
     /* the transport's reader: wfc_ep_io_take_read (waits BUSY out),
      * else its own recv */
     wait_not_busy();
     atomic {
       if
       :: rfull -> msgs = rbuf; rbuf = 0; rfull = 0; REACHED(5)
       :: else -> assert(io_ok(iinc)); msgs = inq; inq = 0
       fi
     }
     /* the protocol echoes now, or in the next iteration */
     if
     :: msgs > 0 -> io_write(msgs)
     :: msgs > 0 -> later = later + msgs; msgs = 0
     :: else -> skip
     fi;
     goto wait_start
  :: else -> skip
  fi;
  /* nothing delivered: hand back what this wait scheduled, then sleep */
#ifndef BUG_NO_HANDBACK_BEFORE_SLEEP
  rearm_delivered();
#endif
  sleepers++;
  atomic {
    if
    :: !onlist -> r = 1
    :: else -> sleepers--; r = 0
    fi
  }
  if
  :: r ->
end_sleep:
     atomic { sem > 0 -> sleepers-- }
     sem = 0; r = 0
  :: else -> skip
  fi;
  goto deliver_pass
}

proctype peer()
{
end_peer:
  do
  :: atomic { written < WRITES -> inq++; written++ }
  od
}

proctype quiescence()
{
  timeout ->
  /* (b): everything written to the live connection came back */
  assert(sent == written)
}

init {
  byte i;
  atomic {
    do
    :: i < NPOLLERS -> run poller(); i++
    :: else -> break
    od;
    run consumer();
    run peer();
    run quiescence()
  }
}
