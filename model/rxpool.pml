/*
 * rxpool.pml - a Promela model of the receive-buffer pool of poller-side
 * I/O in cython/eventpoll/poller_io.c (rx_push_list, rx_get,
 * wfc_ep_io_read_done): a stack of free buffers whose link is kept in each
 * buffer's first bytes, pushed with a CAS on the head and taken whole by a
 * poller with one exchange.  Checked by model/check.sh.
 *
 * What is abstracted
 *  - a buffer is a number 1..NBUF (0 is NULL); malloc gives a number that
 *    is not in use (the lowest, as an allocator reuses an address freed a
 *    moment ago: the reuse an ABA needs), or NULL when all are;
 *  - the ownership of each buffer is ghost state (`owner`), moved with the
 *    atomic step that hands the buffer on in the C code (the exchange, the
 *    successful CAS, the hand-over to the consumer);
 *  - the item a poller hands its read to is a channel to the consumer
 *    (pollerio.pml models the item's word and W_RFULL);
 *  - every step is sequentially consistent: the release CAS and acquire
 *    exchange of the C code are what make the link stores and the bytes
 *    written visible to the thread that takes the buffer next.
 *
 * Processes
 *   poller (NPOLLERS)  READS times: rx_get (exchange the whole list out,
 *                      keep the first buffer, push the rest back with
 *                      rx_push_list), recv() into it (writes the bytes), and
 *                      hand it to the consumer (the item's rbuf)
 *   consumer           takes each read (wfc_ep_io_take_read), copies the
 *                      bytes out, and gives the buffer back
 *                      (wfc_ep_io_read_done: free() once the pool holds
 *                      RX_POOL_MAX, else rx_push_list)
 *
 * Properties
 *  (a) one owner: whoever writes a buffer's link or bytes, or reads them,
 *      owns it; what the exchange takes out and what the CAS puts in is
 *      exactly the pool's; after every change of the head the list from it
 *      holds only the pool's buffers, each once (no cycle)
 *  (b) no use after free: nobody reads or writes a freed buffer
 *  (c) nothing lost: at quiescence every buffer is the pool's (on the
 *      list) or free, and `rx_pooled` counts the list
 *  (d) no deadlock: the only valid end state is everyone finished
 *
 * Bug variant (check.sh requires it to fail)
 *  BUG_POP_ONE  rx_get takes one buffer with the textbook CAS
 *               (head -> head's link): between reading the link and the
 *               CAS another poller takes that buffer and the next, the
 *               consumer gives the first back, and the CAS succeeds on the
 *               same head with a stale link - the ABA problem: buffers drop
 *               off the list (c), or its head becomes a buffer a poller
 *               owns or the list a cycle (a); pan's first error is one of
 *               these, by the search order
 *
 * Reachability probes (check.sh: -DREACH=k must fail at the probe):
 *   1 rx_get puts back a non-empty rest (the exchange took 2 or more)
 *   2 rx_push_list's CAS fails (the head moved) and retries
 *   3 the consumer frees a buffer (the pool was full)
 *   4 a poller's malloc finds every buffer in use (NULL: it reads for nobody)
 */
#ifdef REACH
#define REACHED(k) assert(REACH != (k))
#else
#define REACHED(k) skip
#endif

#ifndef NPOLLERS
#define NPOLLERS 2
#endif
#ifndef READS
#define READS 2
#endif
#ifndef NBUF
#define NBUF 4
#endif
#ifndef RX_POOL_MAX
#define RX_POOL_MAX 2
#endif

/* owners: a poller's _pid is 1..NPOLLERS (init is 0); these are above */
#define POOL     10
#define CONSUMER 11
#define UNUSED   12          /* not allocated (never malloc'd, or freed) */

byte head;                   /* rx_pool */
byte pooled;                 /* rx_pooled */
byte link[NBUF + 1];         /* each buffer's first bytes */
byte owner[NBUF + 1];        /* ghost */
byte pdone;                  /* pollers finished */
chan rbuf = [NPOLLERS * READS] of { byte };   /* the items' reads (0: none) */

/* (a) the list from the head: the pool's buffers only, no cycle */
inline check_pool() {
  d_step {
    w = head; steps = 0;
    do
    :: w != 0 -> assert(owner[w] == POOL); steps++; assert(steps <= NBUF); w = link[w]
    :: else -> break
    od;
    w = 0; steps = 0
  }
}

/* rx_push_list(first, last, count): the caller owns first..last, linked */
inline push_list(first, last, count, me) {
  hl = head;                                   /* relaxed load */
  do
  :: assert(owner[last] == me); link[last] = hl;
     atomic {                                  /* the release CAS */
       if
       :: head == hl ->
          head = first;
          d_step {                             /* ghost: first..last to the pool */
            w = first;
            do
            :: assert(owner[w] == me); owner[w] = POOL;
               if :: w == last -> break :: else -> w = link[w] fi
            od;
            w = 0
          };
          ok = 1
       :: else -> hl = head; REACHED(2)
       fi
     };
     check_pool();
     if :: ok -> ok = 0; break :: else -> skip fi
  od;
  hl = 0;
  pooled = pooled + count                      /* relaxed fetch_add */
}

/* malloc(IO_READ_SIZE): a buffer not in use, or NULL */
inline rx_malloc(b, me) {
  d_step {
    b = 1;
    do
    :: b <= NBUF && owner[b] != UNUSED -> b++
    :: b <= NBUF && owner[b] == UNUSED -> owner[b] = me; break
    :: b > NBUF -> b = 0; break
    od
  }
}

/* rx_get(): a free buffer for poller `me`, or NULL */
inline rx_get(b, me) {
#ifndef BUG_POP_ONE
  atomic {                                     /* the acquire exchange */
    b = head; head = 0;
    d_step {                                   /* ghost: the whole list is ours */
      w = b; steps = 0;
      do
      :: w != 0 -> assert(owner[w] == POOL); owner[w] = me;
         steps++; assert(steps <= NBUF); w = link[w]
      :: else -> break
      od;
      w = 0; steps = 0
    }
  };
  if
  :: b == 0 -> rx_malloc(b, me)
  :: else ->
     assert(owner[b] == me); rest = link[b];
     pooled = pooled - 1;
     if
     :: rest != 0 ->
        REACHED(1);
        /* the rest's tail, by a walk over buffers we took */
        last = rest; count = 1;
        do
        :: assert(owner[last] == me);
           if
           :: link[last] != 0 -> last = link[last]; count++
           :: else -> break
           fi
        od;
        pooled = pooled - count;
        push_list(rest, last, count, me);
        rest = 0; last = 0; count = 0
     :: else -> skip
     fi
  fi
#else
  /* the textbook pop: read the head's link, then CAS head -> link */
  do
  :: b = head;
     if
     :: b == 0 -> rx_malloc(b, me); break
     :: else ->
        assert(owner[b] != UNUSED);            /* (b): reading a freed link */
        rest = link[b];
        atomic {
          if
          :: head == b ->
             head = rest; assert(owner[b] == POOL); owner[b] = me; ok = 1
          :: else -> skip
          fi
        };
        check_pool();
        if :: ok -> ok = 0; pooled = pooled - 1; break :: else -> skip fi
     fi
  od;
  rest = 0
#endif
}

proctype poller()
{
  byte me = _pid, b, rest, last, count, hl, w, steps, n;
  bit ok;

  do
  :: n < READS ->
     rx_get(b, me);
     if
     :: b != 0 ->
        assert(owner[b] == me);                /* (a) recv() writes our buffer */
        rbuf ! b                               /* the item's rbuf, W_RFULL */
     :: else -> REACHED(4); rbuf ! 0           /* no buffer: no read this time */
     fi;
     b = 0; n++
  :: else -> break
  od;
  pdone++
}

proctype consumer()
{
  byte me = CONSUMER, b, hl, w, steps, n, last, i;
  bit ok;

  do
  :: n < NPOLLERS * READS ->
     rbuf ? b;
     n++;
     if
     :: b != 0 ->
        /* wfc_ep_io_take_read: the buffer is the consumer's now */
        d_step { assert(owner[b] >= 1 && owner[b] <= NPOLLERS); owner[b] = me };
        assert(owner[b] == me);                /* (a), (b): the copy out */
        /* wfc_ep_io_read_done */
        if
        :: pooled >= RX_POOL_MAX -> owner[b] = UNUSED; REACHED(3)      /* free() */
        :: else -> last = b; push_list(b, last, 1, me); last = 0
        fi;
        b = 0
     :: else -> skip
     fi
  :: else -> break
  od;

  /* quiescence: (c) */
  pdone == NPOLLERS;
  d_step {
    w = head; steps = 0;
    do
    :: w != 0 -> assert(owner[w] == POOL); steps++; w = link[w]
    :: else -> break
    od;
    assert(steps == pooled);
    i = 1;
    do
    :: i <= NBUF -> assert(owner[i] == POOL || owner[i] == UNUSED);
       if :: owner[i] == POOL -> steps-- :: else -> skip fi;
       i++
    :: else -> break
    od;
    assert(steps == 0)                         /* every POOL buffer is on the list */
  }
}

init {
  byte i;
  /* the pool starts with buffers 1 and 2 (a consumer gave them back),
   * the others not allocated */
  d_step {
    i = 1;
    do
    :: i <= NBUF -> owner[i] = UNUSED; i++
    :: else -> break
    od;
    owner[1] = POOL; owner[2] = POOL; link[1] = 2; link[2] = 0;
    head = 1; pooled = 2
  };
  atomic {
    i = 0;
    do
    :: i < NPOLLERS -> run poller(); i++
    :: else -> break
    od;
    run consumer()
  }
}
