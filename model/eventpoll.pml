/*
 * eventpoll.pml - a Promela model of the ready-list protocol of
 * cython/eventpoll_core.c (poller mode; level-triggered registrations,
 * which the core gives the kernel as EPOLLONESHOT, and with ET_FD1 one
 * EPOLLET registration) and of the wfcqueue it runs on
 * (cython/wfcqueue.h).  Checked by model/check.sh; what is modelled and
 * what is abstracted away, and why, is in model/README.md.
 *
 * Configuration (spin -D...): NPOLLERS (2), WRITES0 / WRITES1 (writes to
 * fd 0 / fd 1: 2 / 1), DELS (unregister + re-register rounds: 1), BATCH
 * (events per epoll_wait: 2), DEL_FD (only that fd is unregistered;
 * default: either), ET_FD1, REACH=k (a reachability probe, below), and
 * the BUG_* variants (below).
 *
 * Line numbers: "core:NNN" is cython/eventpoll_core.c, "wfcq:NNN" is
 * cython/wfcqueue.h.  Places in the code are named by function (or by the
 * section of eventpoll_core.c's top comment), not by line.
 *
 * Processes
 *   poller (NPOLLERS of them)  poller_main()
 *   consumer                   the event loop thread: wfc_ep_wait() in
 *                              poller mode with timeout -1,
 *                              then the user reads what it was given
 *   registrar                  wfc_ep_del() then wfc_ep_add() of one fd,
 *                              DELS times
 *   env                        the outside world: writes to the fds
 *   quiescence                 the checker: runs only when nothing else
 *                              can run (Promela `timeout`)
 *
 * Memory model: every step below is one atomic step of a sequentially
 * consistent machine.  For the sleepers / ready-list pair this is what the
 * two seq_cst fences of the wake-up protocol buy (X and Y, the WAKE-UP PROTOCOL section of eventpoll_core.c's top comment;
 * the tail exchange is seq_cst too, wfcqueue.h's wfcq_append()); the other atomics are
 * acquire/release pairs that publish item contents, which the model does
 * not need.  A CAS loop that retries until it succeeds is one atomic
 * read-modify-write.  Consecutive C statements share a step only where
 * the comment says why no other process can tell (mostly: everything but
 * one of them touches state private to the process or protected by
 * ctl_lock, which the process holds).
 *
 * ctl_lock: the registrar's operations are single atomic steps that need
 * the lock free, so only the consumer ever holds it across steps (while
 * it splices and dequeues, where it may wait for a poller's link).
 *
 * Properties
 *  (a) no lost event    at quiescence every fd with a live registration
 *                       has been drained (level == 0): whatever was written
 *                       to it was delivered to the user, who read it
 *  (b) no lost wake-up  at quiescence the ready list and the transaction
 *                       list are empty (the consumer does not sleep forever
 *                       while there is work on them)
 *  (c) no use of a reaped or reused item
 *                       mark_ready: a poller changes an item word only
 *                       while the item has the generation of the poller's
 *                       event; deliver: what comes off a list is READY or
 *                       ZOMBIE (never FREE, never IDLE), and what is
 *                       delivered is the live registration of its fd;
 *                       every enqueue: the item is on no list already
 *  (d) no deadlock      spin's invalid-end-state check: the only valid end
 *                       states have the pollers blocked in epoll_wait, the
 *                       consumer blocked in poll() on wake_efd and the
 *                       other processes finished
 *  No cycles: check.sh also runs pan -l with -DNP (no progress labels), so
 *  that any cycle at all is an error.  None exists: every execution
 *  reaches quiescence in finitely many steps, where (a) and (b) are
 *  checked, so every event is eventually delivered, without a fairness
 *  assumption.
 *
 * Bug variants (each must make spin report an error; check.sh checks it)
 *  BUG_NO_RECHECK         the consumer looks at the ready list BEFORE it
 *                         announces itself in `sleepers` (no fence-ordered
 *                         re-check after sleepers++): a lost wake-up
 *  BUG_NO_FENCE_X         the poller loads `sleepers` before its append
 *                         reaches the list, as it could without fence X
 *                         (a store-load reordering): a lost wake-up
 *                         (BUG_NO_RECHECK is the same for fence Y)
 *  BUG_NO_GENCHECK        mark_ready's CAS ignores the generation: a stale
 *                         event marks the reused slot READY
 *  BUG_REARM_BEFORE_IDLE  deliver re-arms the kernel item at once, before
 *                         READY -> IDLE, instead of scheduling the re-arm
 *                         for the next wait: the event right after the
 *                         re-arm finds the item READY, is coalesced, and
 *                         the item is never armed again (a lost event)
 *  BUG_RETIRE_READY_FREE  unregistering a READY item frees it at once
 *                         (generation++) instead of making it a ZOMBIE for
 *                         the consumer to reap: a slot that is still on a
 *                         list is reused
 */

#ifndef NPOLLERS
#define NPOLLERS 2
#endif
#ifndef WRITES0         /* writes to fd 0 (each makes it readable) */
#define WRITES0 2
#endif
#ifndef WRITES1         /* writes to fd 1 */
#define WRITES1 1
#endif
#ifndef DELS            /* unregister + re-register rounds */
#define DELS 1
#endif
#ifndef BATCH           /* events one epoll_wait may return: 1 or 2 */
#define BATCH 2
#endif
/* ET_FD1: fd 1 is registered EPOLLET without EPOLLONESHOT (the KERNEL REGISTRATION section of eventpoll_core.c's top comment):
 * the kernel keeps the registration enabled and queues it again on every
 * write (an edge), even while the item is READY; the consumer never
 * re-arms it.  armed[1] then means "queued on the kernel's ready list". */
#ifdef ET_FD1
#define IS_ET(f) ((f) == 1)
#else
#define IS_ET(f) false
#endif

/*
 * Reachability probes: check.sh compiles the model with -DREACH=k for
 * each k below and requires spin to reach the probe (an assertion that
 * fails there), which shows that the model does exercise that case.
 *   1 a stale event meets its slot reused (generation differs, IDLE/READY)
 *   2 a stale event meets its slot FREE or ZOMBIE
 *   3 unregister finds the item READY: READY -> ZOMBIE
 *   4 the consumer reaps a ZOMBIE
 *   5 re-register reuses a freed slot
 *   6 re-register takes a new slot (the old one is still a ZOMBIE)
 *   7 splice waits for the link of the first node
 *   8 dequeue waits for the link of a later node
 *   9 a poller writes wake_efd
 *  10 the consumer returns from poll()
 *  11 the consumer's re-check after sleepers++ finds the list non-empty
 *  12 harvest_inline marks an item READY
 *  13 rearm_delivered re-arms an item
 *  14 rearm_delivered skips an entry whose generation changed or whose
 *     rearm_pending was cleared
 *  15 a poller appends to a non-empty ready list
 *  16 one epoll_wait returns two events
 *  17 one wait delivers both fds
 *  18 an event is coalesced into a READY item (READY -> READY; only with
 *     ET_FD1: a one-shot item is re-armed only once it is IDLE again)
 */
#ifdef REACH
#define REACHED(k) assert(REACH != (k))
#else
#define REACHED(k) skip
#endif

/* Slots: fd f starts in slot f, plus a spare per round, for re-registering
 * while the old item is still a ZOMBIE.  Nodes: the slots' items, then the
 * dummy heads of the ready list (DR) and of the transaction list (DT).
 * (Literal numbers, so that spin prints them as such.) */
#define NFDS   2
#if DELS == 0
#define NSLOTS 2
#define DR     2
#define DT     3
#define NNODES 4
#elif DELS == 1
#define NSLOTS 3
#define DR     3
#define DT     4
#define NNODES 5
#elif DELS == 2
#define NSLOTS 4
#define DR     4
#define DT     5
#define NNODES 6
#else
#error "DELS must be 0, 1 or 2"
#endif
#define NIL    15

/* item word states: ST_FREE..ST_ZOMBIE in eventpoll_core.c */
#define FREE   0
#define IDLE   1
#define READY  2
#define ZOMBIE 3

/* ---- the item word (the ITEM WORD section of eventpoll_core.c's top comment): generation, pending bits, state.
 * Generations start at 1 (alloc_slot()). */
byte wgen[NSLOTS] = 1;
bit  wpend[NSLOTS];     /* one event bit (EPOLLIN) is enough */
byte wstate[NSLOTS];

/* ---- ctl_lock and what it protects (the LOCKING section of eventpoll_core.c's top comment) */
bit  ctl_lock;
byte ifd[NSLOTS];       /* item->fd */
bit  rp[NSLOTS];        /* item->rearm_pending */
byte rvgen[NSLOTS];     /* rearm_vec: the entry's generation, 0 = none (at
                           most one entry per slot: the vector is emptied
                           at the start of every wait, and a slot is
                           delivered at most once per wait here) */
byte fdmap[NFDS];       /* fd_map: slot + 1, 0 = none */
byte freestk[NSLOTS];   /* free_stack */
byte nfree;
byte nslots;

/* ---- the two wfcqueues: the `next` of every node, a tail per queue.
 * Nodes 0..NSLOTS-1 are the items' `node` members. */
byte nxt[NNODES] = NIL;
byte tailR;             /* ready_tail.p */
byte tailT;             /* txn_tail.p */

/* ---- wake-up protocol (the WAKE-UP PROTOCOL section of eventpoll_core.c's top comment, and struct wfc_ep) */
byte sleepers;
bit  sem;               /* wake_efd: only whether its counter is non-zero
                           matters (poll tests that, read resets it) */

/* ---- the kernel epoll: one registration per fd, EPOLLONESHOT */
bit  kreg[NFDS];        /* registered */
byte kslot[NFDS];       /* its tag: slot index ... */
byte kgen[NFDS];        /* ... and generation (make_tag()) */
bit  armed[NFDS];       /* EPOLLONESHOT: enabled until it fires once
                           (ET_FD1: fd 1 queued on the kernel ready list) */
bit  level[NFDS];       /* the fd is readable */
byte writes[NFDS];
byte dels;
byte busy;              /* pollers that are not idle in epoll_wait (see poller) */

/* ---- ghost state, for the assertions only */
bit  onlist[NSLOTS];    /* the item's node is on a list */

#define fireable(f)   (kreg[f] && armed[f] && level[f])
#define ready_empty() (nxt[DR] == NIL && tailR == DR)

/*
 * epoll_wait hands one event of a fireable registration to its caller
 * (poller_main() and harvest_inline()): EPOLLONESHOT disables the registration until
 * EPOLL_CTL_MOD re-arms it, so each arming reaches exactly one thread.
 * The event carries the registration's tag (slot, generation).
 */
inline take_event(s, g) {
  if
  :: fireable(0) -> armed[0] = 0; s = kslot[0]; g = kgen[0]
  :: fireable(1) -> armed[1] = 0; s = kslot[1]; g = kgen[1]
  fi
}

/*
 * mark_ready(): the acquire load and the CAS loop
 * are one atomic read-modify-write that checks the
 * generation and the state and ORs the pending bit in.  won = 1 when this
 * call moved the item IDLE -> READY, so the caller must enqueue it.
 */
inline mark_ready(s, g, won) {
  if
#ifdef BUG_NO_GENCHECK
  :: wstate[s] == FREE || wstate[s] == ZOMBIE -> won = 0
#else
  :: wgen[s] != g || wstate[s] == FREE || wstate[s] == ZOMBIE ->   /* stale, mark_ready() */
     won = 0;
     if
     :: wstate[s] == FREE || wstate[s] == ZOMBIE -> REACHED(2)
     :: else -> REACHED(1)
     fi
#endif
  :: else ->
     /* (c): a poller only changes the word of its own registration */
     assert(wgen[s] == g);
     wpend[s] = 1;                                                /* mark_ready() */
     if
     :: wstate[s] == IDLE -> wstate[s] = READY; won = 1           /* mark_ready() */
     :: else -> won = 0; REACHED(18)                              /* READY -> READY, mark_ready() */
     fi
  fi
}

/* (c): an item is enqueued only when it is on no list */
inline enqueue_check(s) {
  assert(!onlist[s]);
  onlist[s] = 1
}

/*
 * One kernel event in a poller, poller_main(): mark_ready, then, for the
 * winner, ready_push() -> wfcq_enqueue() -> wfcq_append(): the tail
 * exchange (in wfcq_append(), with the relaxed
 * node->next = NULL of wfcqueue.h's wfcq_enqueue(), which no other thread can see before the
 * exchange publishes the node) and then, in a step of its own, the link
 * store (wfcqueue.h's wfcq_append()).  Between the two the list is "published but not
 * linked".  fe = 1 when the exchange found the dummy, i.e. the list was
 * empty (wfcqueue.h's wfcq_append(), poller_main()).
 *
 * mark_ready's CAS and the tail exchange share a step.  Nothing is lost:
 * the only other steps that touch the item's word while it is READY and
 * on no list are the registrar's retire (READY -> ZOMBIE) and other CASes
 * (stale ones fail; with ET_FD1 an edge ORs its bit in), and none of
 * those touches the ready list; the steps that touch the ready list
 * (other exchanges, splice, the consumer's emptiness check) do not touch
 * this item's word.  So any run with steps between the CAS and the
 * exchange can be reordered, step by step, into one of the same outcome
 * where they do not come between.
 *
 * `last`: this is the poller's last event of the batch.  The poller
 * leaves `busy` (see below) in its last step that other processes can
 * see, so that an idle poller is at the top of its loop.
 */
inline handle_event(s, g, won, old, fe, last) {
  d_step {
    mark_ready(s, g, won);
    if
    :: won ->
       enqueue_check(s); nxt[s] = NIL; old = tailR; tailR = s;
       if
       :: old != DR -> REACHED(15)
       :: else -> skip
       fi
    :: !won && last && !fe -> busy = busy & ~(1 << me)
    :: else -> skip
    fi
  }
  if
  :: won ->
     d_step {
       nxt[old] = s;
       if
       :: old == DR -> fe = 1
       :: else -> skip
       fi;
       if
       :: last && !fe -> busy = busy & ~(1 << me)
       :: else -> skip
       fi;
       old = 0; s = 0; g = 0; won = 0
     }
  :: else -> s = 0; g = 0
  fi
}

/*
 * Pollers idle in epoll_wait are interchangeable, so an idle poller may
 * take an event only when every poller with a lower number is busy (bit i
 * of `busy` for poller i): a symmetry reduction that skips states that
 * differ only in which of several idle pollers took the event.
 */
#define LOWER(me)     ((1 << (me)) - 1)
#define mayfire(me,f) (fireable(f) && (busy & LOWER(me)) == LOWER(me))

proctype poller(byte me)
{
  byte s1, g1, s2, g2, old;
  bit won, fe, two, wake;
#ifdef BUG_NO_FENCE_X
  bit early;
#endif

end_wait:                        /* blocked in epoll_wait: a valid end state */
  do
  :: atomic {                    /* epoll_wait returns 1..BATCH events, poller_main() */
       if
       :: mayfire(me, 0) -> armed[0] = 0; s1 = kslot[0]; g1 = kgen[0]
       :: mayfire(me, 1) -> armed[1] = 0; s1 = kslot[1]; g1 = kgen[1]
       fi;
       busy = busy | (1 << me);
#ifdef BUG_NO_FENCE_X
       early = (sleepers > 0);   /* the bug: sleepers read before the append */
#endif
#if BATCH > 1
       if
       :: take_event(s2, g2); two = 1; REACHED(16)
       :: skip
       fi
#endif
     }
     handle_event(s1, g1, won, old, fe, !two);
     if
     :: two -> two = 0; handle_event(s2, g2, won, old, fe, 1)
     :: else -> skip
     fi;
     /* One wake-up per batch, on the empty -> non-empty edge only
      * (poller_main()): wake_consumer_if_sleeping().  Fence X
      * and the relaxed load of sleepers are one
      * step; the write() to wake_efd (wake_consumer_if_sleeping()) is the next. */
     if
     :: fe ->
        d_step {
          fe = 0;
#ifdef BUG_NO_FENCE_X
          if
          :: early -> wake = 1
#else
          if
          :: sleepers > 0 -> wake = 1
#endif
          :: else -> busy = busy & ~(1 << me)
          fi
        }
        if
        :: wake -> d_step { wake = 0; sem = 1; busy = busy & ~(1 << me); REACHED(9) }
        :: else -> skip
        fi
     :: else -> skip
     fi
#ifdef BUG_NO_FENCE_X
     ; early = 0
#endif
  od
}

/*
 * READY -> IDLE for the item just dequeued, or reaping of a ZOMBIE:
 * deliver().  The load and the exchange
 * are one step: only ctl_lock holders move an item out of
 * READY, and pollers only OR bits into a READY item (which, with
 * EPOLLONESHOT and the re-arm after IDLE, happens only with ET_FD1).
 */
inline take_item(node, g, out) {
  onlist[node] = 0;
  /* (c): only READY or ZOMBIE items are on a list */
  assert(wstate[node] == READY || wstate[node] == ZOMBIE);
  if
  :: wstate[node] == ZOMBIE ->
     /* reap_item(), from deliver(): a plain store, generation++
      * (no poller changes a ZOMBIE word), then the free stack */
     wgen[node]++; wpend[node] = 0; wstate[node] = FREE;
     freestk[nfree] = node; nfree++;
     REACHED(4)
  :: else ->
     assert(wpend[node]);
     wpend[node] = 0; wstate[node] = IDLE;
     g = wgen[node];
     /* (c): what is delivered is the live registration of its fd */
     assert(fdmap[ifd[node]] == node + 1 && kreg[ifd[node]]
            && kslot[ifd[node]] == node && kgen[ifd[node]] == g);
#ifndef BUG_REARM_BEFORE_IDLE
     /* schedule_rearm(), from deliver() (level-triggered with
      * pollers: rearmed_after_delivery(); not for EPOLLET) */
     if
     :: IS_ET(ifd[node]) -> skip
     :: !IS_ET(ifd[node]) && !rp[node] ->
        assert(rvgen[node] == 0);   /* one vector entry per slot is enough */
        rp[node] = 1; rvgen[node] = g
     :: else -> skip
     fi;
#endif
     out = out | (1 << ifd[node]);                    /* out[n++], deliver() */
     if
     :: out == 3 -> REACHED(17)
     :: else -> skip
     fi;
     g = 0
  fi
}

#ifdef BUG_REARM_BEFORE_IDLE
/* The bug: re-arm (epoll_ctl MOD) now, while the item is still READY;
 * READY -> IDLE comes in the next step. */
#define TAKE(node) \
  if \
  :: wstate[node] == READY -> armed[ifd[node]] = 1; buggy = 1 \
  :: else -> take_item(node, g, out) \
  fi
#else
#define TAKE(node) take_item(node, g, out)
#endif

/*
 * ready_splice() -> wfcq_splice(txn <- ready).
 * wfcq_first() reads head.next, then the tail: as one read,
 * because if the tail is still the dummy at the second read no producer
 * had exchanged it since the last reset, so the list was empty then.  If
 * a producer has exchanged the dummy away but not linked it yet, the
 * consumer waits (waithead).  Otherwise: first = head.next, head.next =
 * NULL (in wfcq_splice()), the tail exchange and wfcq_append() of
 * first..last to the transaction list (the consumer's own list).
 */
inline splice() {
  if
  :: ready_empty() -> skip                              /* SPLICE_SRC_EMPTY */
  :: nxt[DR] != NIL ->
     first = nxt[DR]; nxt[DR] = NIL;
     old = tailT; tailT = tailR; tailR = DR; nxt[old] = first;
     old = 0; first = 0
  :: else -> waithead = 1; REACHED(7)
  fi
}

/*
 * The loop of deliver(): wfcq_dequeue(txn) - next = node->next; if NULL and the tail is still node,
 * head.next = NULL and the tail back to the dummy; if the tail moved on, a
 * producer that exchanged the ready list's tail past node before the
 * splice has not linked it yet: wait for it (waitlink) - then TAKE(node).
 * An empty list ends deliver: node == NULL (deliver()) and
 * deliver_locked's unlock (deliver_locked()).
 */
inline dequeue_all() {
  do
  :: nxt[DT] == NIL && tailT == DT -> ctl_lock = 0; break
  :: else ->
     node = nxt[DT];
     assert(node < NSLOTS);
     if
     :: nxt[node] != NIL -> nxt[DT] = nxt[node]; TAKE(node)
     :: nxt[node] == NIL && tailT == node -> nxt[DT] = NIL; tailT = DT; TAKE(node)
     :: else -> waitlink = 1; REACHED(8)
     fi;
     if
     :: waitlink || buggy -> break
     :: else -> node = 0
     fi
  od;
  skip                           /* (a break may not leave a d_step) */
}

proctype consumer()
{
  byte s, node, first, g, old;
  byte out;                      /* fds delivered by this wait: bit f */
  bit won, waithead, waitlink, r, buggy;

wait_call:
  /* ---- The user reads every fd the last wait delivered, until EAGAIN;
   * then wfc_ep_wait(timeout -1), takes ctl_lock and runs
   * rearm_delivered().  One step: the lock is free
   * (only the consumer holds it across steps); the reads happen before the
   * re-arm, as in the real loop (a write between the two ends up in the
   * same state as one just after the re-arm).  For each vector entry:
   * rearm_pending, the acquire load of the word and the
   * generation check, the flag cleared, the
   * state check and EPOLL_CTL_MOD, where the
   * kernel re-checks the level.  Pollers cannot change an IDLE word of the
   * vector's generation meanwhile: its arming was used up by the event
   * that was delivered. */
  skip;                          /* (a goto may not jump into a d_step) */
  d_step {
    ctl_lock == 0;
    if :: out & 1 -> level[0] = 0 :: else -> skip fi;
    if :: out & 2 -> level[1] = 0 :: else -> skip fi;
    out = 0;
    s = 0;
    do
    :: s < NSLOTS ->
       if
       :: rvgen[s] != 0 && rp[s] && wgen[s] == rvgen[s] ->
          rp[s] = 0;
          if
          :: wstate[s] == IDLE ->
             /* the registration is live: IDLE with the entry's generation
              * under ctl_lock */
             assert(kreg[ifd[s]] && kslot[ifd[s]] == s && kgen[ifd[s]] == wgen[s]);
             armed[ifd[s]] = 1;
             REACHED(13)
          :: else -> skip
          fi
       :: rvgen[s] != 0 -> REACHED(14)
       :: else -> skip
       fi;
       rvgen[s] = 0;                                    /* rearm_delivered() */
       s++
    :: else -> break
    od;
    s = 0
  }

deliver_pass:
  /* ---- deliver_locked() -> deliver(): take
   * ctl_lock, splice, dequeue until the transaction list is empty, unlock.
   * All of it is one step, cut only where the consumer must wait for a
   * poller's link store (and, in BUG_REARM_BEFORE_IDLE, between the
   * re-arm and READY -> IDLE).  Why that is exact: while the consumer
   * holds ctl_lock the registrar cannot run, and the only poller steps
   * that touch what deliver touches are (1) the tail exchange, which lands
   * a node either in the spliced chain or in the emptied ready list, both
   * of which stay possible, (2) the link stores, which are the cut points,
   * and (3) CASes on item words.  Those fail on the items that deliver
   * handles (stale generation, or ZOMBIE: a one-shot item is armed only
   * while IDLE, and one that deliver makes IDLE is re-armed only by the
   * next rearm_delivered), except with ET_FD1, where an edge may OR its bit
   * into a READY item or take an IDLE one READY again; such a CAS touches
   * one item, so placing it before or after the whole step gives the same
   * outcome as placing it between two items. */
  skip;                          /* (a goto may not jump into a d_step) */
  d_step {
    ctl_lock == 0;
    ctl_lock = 1;
    splice();
    if
    :: !waithead -> dequeue_all()
    :: else -> skip
    fi
  }
  do
  :: waithead ->
     /* wfcq_node_sync_next(&head), inside wfcq_first */
     d_step { nxt[DR] != NIL; waithead = 0; splice(); dequeue_all() }
  :: waitlink ->
     /* wfcq_node_sync_next(node), inside wfcq_dequeue */
     d_step {
       nxt[node] != NIL;
       waitlink = 0;
       nxt[DT] = nxt[node];
       TAKE(node);
       if
       :: !buggy -> node = 0; dequeue_all()
       :: else -> skip
       fi
     }
#ifdef BUG_REARM_BEFORE_IDLE
  :: buggy ->
     d_step { take_item(node, g, out); buggy = 0; node = 0; dequeue_all() }
#endif
  :: else -> break               /* ctl_lock released by dequeue_all */
  od;

  if
  :: out != 0 ->
     /* wfc_ep_wait returns n > 0 (settle() is not
      * modelled, see README); the user reads the fds at wait_call */
     goto wait_call
  :: else -> skip
  fi;

  /* ---- harvest_inline(ep, 0), from wfc_ep_wait(): the consumer
   * reads the kernel itself before it sleeps.  What it marks READY goes
   * straight onto its transaction list (wfcq_enqueue, on the
   * consumer's own list: one step with mark_ready); r > 0 -> deliver
   * again. */
  atomic {
    if
    :: fireable(0) || fireable(1) -> take_event(s, g); r = 1
    :: else -> r = 0
    fi
  }
  if
  :: r ->
     d_step {
       mark_ready(s, g, won);
       if
       :: won -> enqueue_check(s); nxt[s] = NIL; old = tailT; tailT = s; nxt[old] = s; REACHED(12)
       :: else -> skip
       fi;
       s = 0; g = 0; won = 0; old = 0; r = 0
     }
     goto deliver_pass
  :: else -> skip
  fi;

  /* ---- sleep_on_ready_list() ------------------------- */
#ifdef BUG_NO_RECHECK
  /* the bug: the emptiness check is made before sleepers++ */
  r = ready_empty();
  sleepers++;
  if
  :: r ->
end_sleep_bug:
     atomic { sem > 0 -> sleepers-- }
     sem = 0; r = 0
  :: else -> sleepers--
  fi;
#else
  sleepers++;                    /* then fence Y */
  /* ready_empty() -> wfcq_empty() after fence Y,
   *  (the closing flag is not modelled).  A non-empty list
   * stays non-empty until the consumer splices it, so sleepers--
   * can share the step in that branch. */
  atomic {
    if
    :: ready_empty() -> r = 1
    :: else -> sleepers--; r = 0; REACHED(11)
    fi
  }
  if
  :: r ->
end_sleep:                       /* poll(wake_efd, -1): a valid end state */
     /* poll returns; sleepers-- shares the step: only the
      * consumer takes sem back to 0 */
     atomic { sem > 0 -> sleepers--; REACHED(10) }
     sem = 0; r = 0              /* read(wake_efd) resets the counter */
  :: else -> skip
  fi;
#endif
  goto deliver_pass              /* wfc_ep_wait() loops: deliver again */
}

/* wfc_ep_del(fd) then wfc_ep_add(fd), DELS times, for either fd. */
proctype registrar()
{
  byte f, s, g;

  do
  :: dels < DELS ->
#ifdef DEL_FD
     f = DEL_FD;
#else
     if
     :: f = 0
     :: f = 1
     fi;
#endif
     /* ---- wfc_ep_del(), one step under ctl_lock:
      * epoll_ctl(EPOLL_CTL_DEL), map_get,
      * retire_item() (its CAS loop is one atomic RMW),
      * fd_map[fd] = 0.  DEL and the CAS share the step: once
      * DEL has disarmed the registration no new event can be taken, and a
      * poller that already holds one can still run its CAS before the
      * step (the READY -> ZOMBIE case) or after it (a stale event). */
     d_step {
       ctl_lock == 0;
       kreg[f] = 0; armed[f] = 0;
       s = fdmap[f] - 1;
       if
       :: wstate[s] == IDLE ->                 /* IDLE -> FREE, generation++ */
          wgen[s]++; wpend[s] = 0; wstate[s] = FREE;
          freestk[nfree] = s; nfree++          /* retire_item() */
#ifdef BUG_RETIRE_READY_FREE
       :: wstate[s] == READY ->                /* the bug: free it at once */
          wgen[s]++; wpend[s] = 0; wstate[s] = FREE;
          freestk[nfree] = s; nfree++
#else
       :: wstate[s] == READY ->                /* READY -> ZOMBIE: the consumer reaps it */
          wpend[s] = 0; wstate[s] = ZOMBIE;
          REACHED(3)
#endif
       :: else -> skip
       fi;
       rp[s] = 0;                              /* retire_item() */
       fdmap[f] = 0;
       s = 0
     }
     /* ---- wfc_ep_add(), one step under ctl_lock:
      * alloc_slot() (pop the free stack, else a new
      * slot), the generation, the fields, the
      * IDLE store, epoll_ctl(EPOLL_CTL_ADD) with tag (s, g)
      * (armed: the kernel looks at the level at once) and
      * map_set.  No event can carry the new tag before ADD, so
      * nobody can tell the IDLE store and ADD apart. */
     d_step {
       ctl_lock == 0;
       if
       :: nfree > 0 -> nfree--; s = freestk[nfree]; REACHED(5)
       :: else -> s = nslots; nslots++; REACHED(6)
       fi;
       assert(s < NSLOTS && wstate[s] == FREE && !onlist[s]);
       g = wgen[s];
       ifd[s] = f; rp[s] = 0;
       wstate[s] = IDLE;
       kreg[f] = 1; kslot[f] = s; kgen[f] = g; armed[f] = 1;
       fdmap[f] = s + 1;
       dels++; s = 0; g = 0; f = 0
     }
  :: else -> break
  od
}

/* The outside world: WRITES0 writes to fd 0 and WRITES1 to fd 1, in any
 * order, at any time. */
proctype env()
{
  do
  :: writes[0] < WRITES0 -> d_step { level[0] = 1; writes[0]++ }
  :: writes[1] < WRITES1 ->
     d_step {
       level[1] = 1; writes[1]++;
#ifdef ET_FD1
       /* an edge: the kernel queues the EPOLLET registration again */
       if :: kreg[1] -> armed[1] = 1 :: else -> skip fi
#endif
       skip
     }
  :: else -> break
  od
}

/*
 * Runs only when no other statement is executable: the consumer asleep
 * (or stuck), the pollers in epoll_wait (or stuck), env and registrar done.
 */
proctype quiescence()
{
  timeout ->
  /* (b) no lost wake-up: the consumer does not sleep on work */
  assert(ready_empty());
  assert(nxt[DT] == NIL && tailT == DT);
  /* (a) no lost event: every live registration's fd has been drained */
  assert(!kreg[0] || level[0] == 0);
  assert(!kreg[1] || level[1] == 0)
}

init {
  byte i;
  atomic {
    /* wfc_ep_create() and wfc_ep_add of fd f in slot f,
     * generation 1 */
    tailR = DR; tailT = DT;
    wstate[0] = IDLE; wstate[1] = IDLE;
    ifd[0] = 0; ifd[1] = 1;
    fdmap[0] = 1; fdmap[1] = 2;
    nslots = 2;
    kreg[0] = 1; kslot[0] = 0; kgen[0] = 1; armed[0] = 1;
    kreg[1] = 1; kslot[1] = 1; kgen[1] = 1; armed[1] = 1;
    do
    :: i < NPOLLERS -> run poller(i); i++
    :: else -> break
    od;
    run consumer();
    run registrar();
    run env();
    run quiescence()
  }
}
