/*
 * phases.pml - a Promela model of poller mode's two phases in
 * cython/eventpoll_core.c (PHASES): the pollers read the kernel and append
 * to the ready list (POLLERS), or they are parked and the consumer reads
 * the kernel itself (INLINE).  Parking ends the poller threads and
 * unparking starts new ones.  Modelled: poller_main() (a park request makes
 * it leave), park_pollers() (waits for every poller to leave, joins them),
 * unpark_pollers() (clears the request, then start_pollers() runs new
 * threads), the consumer's waits in each phase, and shutdown
 * (wfc_ep_shutdown + the join in wfc_ep_destroy).  Checked by
 * model/check.sh; see model/README.md.
 *
 * What must hold:
 *   ALONE      when the consumer blocks in its own epoll_wait (INLINE), no
 *              poller can append to the ready list: every poller is parked
 *              gone.  Otherwise an event a poller took would sit on the
 *              ready list while the consumer sleeps in the kernel, which
 *              no poller wakes (sleepers is 0): a lost wake-up.
 *   no event stranded, no deadlock: every execution ends with every event
 *              consumed, every poller joined (invalid end states: a
 *              consumer waiting forever for pollers to leave, a poller that
 *              never sees the park request, a consumer asleep in the
 *              POLLERS phase with no poller left to read the kernel).
 *
 * Abstracted: the ready list is a counter (its wait-free protocol and the
 * consumer's sleep/wake-up on wake_efd are eventpoll.pml's subject); an
 * event is a token in the kernel (`pending`), which one epoll_wait takes
 * (EPOLLONESHOT: exactly one thread); the kernel's level-triggered park
 * eventfd is a boolean that every epoll_wait sees while it is set (the
 * kernel re-queues a level-triggered item after each delivery and wakes
 * the next waiter).  pthread_cond_wait is modelled as waiting for the
 * condition it re-checks, which is what a correct wait loop under the
 * mutex amounts to: the writers change park_request / closing with
 * park_lock held and broadcast.  Every step is atomic and sequentially
 * consistent; park_request's release/acquire pair and the mutex give that
 * for the fields involved.
 *
 * Configuration (spin -D...): NPOLLERS (2), EVENTS (3), SWITCHES (phase
 * switches the consumer may make: 4), BUG_* variants:
 *   BUG_NO_PARK_WAIT     park_pollers() does not wait for every poller to
 *                        be parked before the consumer reads the kernel
 *   BUG_CLEAR_PARK_EARLY park_pollers() empties the park eventfd before
 *                        the pollers are parked (a poller in epoll_wait
 *                        never learns it must park)
 *   BUG_START_BEFORE_CLEAR unpark_pollers() starts the new threads before
 *                        it clears park_request (they leave at once, and
 *                        the consumer sleeps with nobody reading the kernel)
 */
#ifndef NPOLLERS
#define NPOLLERS 2
#endif
#ifndef EVENTS
#define EVENTS 3
#endif
#ifndef SWITCHES
#define SWITCHES 4
#endif

#define POLLERS 0
#define INLINE 1

#define P_TOP 0       /* between two epoll_waits */
#define P_WAIT 1      /* blocked in epoll_wait */
#define P_BUSY 2      /* took a batch, appending it */
#define P_GONE 4      /* left poller_main (counted in `parked`); joinable */
#define P_JOINED 5    /* joined: the thread no longer exists */

bool park_request;    /* atomic in the C */
bool park_efd;        /* readable */
bool closing;
bool lock;            /* park_lock */
byte parked;          /* park_lock: pollers that left poller_main */
byte running = NPOLLERS; /* threads started and not joined (park_lock) */
byte gone;            /* pollers joinable */
byte phase = POLLERS; /* the consumer's */
byte pending;         /* events in the kernel, not taken by anyone */
byte ready;           /* events on the ready list */
byte made;            /* events the outside world made */
byte consumed;        /* events the consumer delivered */
bool blocked_inline;  /* the consumer is blocked in its own epoll_wait */
byte pstate[NPOLLERS];

inline acquire() { atomic { !lock -> lock = true } }
inline release() { lock = false }

/* poller_main(): a park request or shutdown makes it leave */
proctype poller(byte id)
{
    bool took;
top:
    pstate[id] = P_TOP;
    if
    :: park_request -> goto done     /* the acquire load: leave */
    :: else -> skip
    fi;
    if
    :: closing -> goto done
    :: else -> skip
    fi;
    pstate[id] = P_WAIT;
    atomic {                         /* epoll_wait(-1) returns a batch */
        (pending > 0 || park_efd || closing);
        if
        :: pending > 0 -> pending--; took = true
        :: park_efd -> skip          /* TAG_PARK: park after this batch */
        :: closing -> skip           /* TAG_STOP */
        fi;
        pstate[id] = P_BUSY
    }
    if
    :: took ->
        assert(!blocked_inline);     /* ALONE */
        ready++;
        took = false
    :: else -> skip
    fi;
    if
    :: closing -> goto done
    :: else -> goto top
    fi;
done:
    acquire();                       /* a poller that left counts as parked */
    parked++;
    gone++;
    pstate[id] = P_GONE;
    release()
}

/* join_pollers(): wait for every started thread to end */
inline join_pollers()
{
    atomic { gone == running -> gone = 0 };
    i = 0;
    do
    :: i < NPOLLERS -> pstate[i] = P_JOINED; i++
    :: else -> break
    od;
    acquire();
    running = 0;
    release()
}

/* park_pollers(): POLLERS -> INLINE */
inline park_pollers()
{
    acquire();
    park_request = true;
    release();
#ifndef BUG_CLEAR_PARK_EARLY
    park_efd = true;
#endif
#ifndef BUG_NO_PARK_WAIT
    atomic { parked == running && !lock -> lock = true };
    release();
    join_pollers();
#endif
    park_efd = false;
    phase = INLINE
}

/* start_pollers(): pthread_create of every poller */
inline start_pollers()
{
    i = 0;
    do
    :: i < NPOLLERS ->
        pstate[i] = P_TOP;
        acquire(); running++; release();
        run poller(i);
        i++
    :: else -> break
    od
}

/* unpark_pollers(): INLINE -> POLLERS (the re-arms with EPOLLONESHOT
 * happen before this, under ctl_lock, while no poller thread exists) */
inline unpark_pollers()
{
    phase = POLLERS;
#ifdef BUG_START_BEFORE_CLEAR
    start_pollers();
#endif
    acquire();
    park_request = false;
    parked = 0;
    release();
#ifndef BUG_START_BEFORE_CLEAR
    start_pollers()
#endif
}

proctype consumer()
{
    byte switches = 0;
    byte i;
    do
    :: consumed == EVENTS -> break
    :: consumed < EVENTS && switches < SWITCHES && phase == POLLERS ->
        switches++;
        park_pollers()
    :: consumed < EVENTS && switches < SWITCHES && phase == INLINE ->
        switches++;
        unpark_pollers()
    :: consumed < EVENTS ->          /* one wfc_ep_wait(-1) */
        atomic { consumed = consumed + ready; ready = 0 }   /* splice, deliver */
        if
        :: consumed == EVENTS -> skip
        :: else ->
            if
            :: phase == INLINE ->
                /* harvest_inline(ep, -1): blocks in epoll_wait */
                i = 0;
                do
                :: i < NPOLLERS ->
                    assert(pstate[i] == P_GONE || pstate[i] == P_JOINED);   /* ALONE */
                    i++
                :: else -> break
                od;
                blocked_inline = true;
                atomic { pending > 0 -> pending--; consumed++; blocked_inline = false }
            :: phase == POLLERS ->
                /* harvest_inline(ep, 0), the assist: takes an event the
                 * kernel has now; else sleep_on_ready_list() until a
                 * poller appends (nothing else ends that sleep) */
                if
                :: atomic { pending > 0 -> pending--; consumed++ }
                :: else ->
                    atomic { ready > 0 -> consumed = consumed + ready; ready = 0 }
                fi
            fi
        fi
    od;
    /* wfc_ep_destroy(): shutdown, then join every poller still running */
    closing = true;
    acquire();                       /* pthread_cond_broadcast under park_lock */
    release();
    gone == running;
    assert(pending == 0 && ready == 0 && consumed == EVENTS)
}

proctype world()
{
    do
    :: made < EVENTS -> atomic { pending++; made++ }
    :: made == EVENTS -> break
    od
}

init
{
    byte i = 0;
    atomic {
        do
        :: i < NPOLLERS -> run poller(i); i++
        :: else -> break
        od;
        run consumer();
        run world()
    }
}
