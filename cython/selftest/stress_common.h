/* stress_common.h - small helpers shared by the C stress harnesses
 * (wfcq_stress.c, ep_stress.c): a seed mixer, a fast PRNG and a clock. */
#ifndef WFCLOOP_STRESS_COMMON_H
#define WFCLOOP_STRESS_COMMON_H

#include <stdint.h>
#include <time.h>

/* splitmix64: turns a seed and a thread index into independent streams. */
static inline uint64_t stress_splitmix(uint64_t x)
{
    x += UINT64_C(0x9E3779B97F4A7C15);
    x = (x ^ (x >> 30)) * UINT64_C(0xBF58476D1CE4E5B9);
    x = (x ^ (x >> 27)) * UINT64_C(0x94D049BB133111EB);
    return x ^ (x >> 31);
}

/* xorshift64*: cheap enough to call on every operation of a stress loop. */
static inline uint64_t stress_rand(uint64_t *state)
{
    uint64_t x = *state;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *state = x;
    return x * UINT64_C(0x2545F4914F6CDD1D);
}

static inline double stress_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

#endif
