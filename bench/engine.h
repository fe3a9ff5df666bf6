/*
 * engine.h - the connection engine of qmux-bench: many kdb+ client connections on one
 * libevent loop, each logging in and then sending sync requests in a closed loop (the
 * next request leaves when the previous response has fully arrived).
 *
 * Clients belong to groups. All clients of a run connect and log in first; the clock of
 * the run (time 0) starts when the last login completes. Each group then starts its clients
 * after its own delay and records the latency of each response (the time from writing
 * the request to reading the response's last byte) in its histogram.
 */
#ifndef QMUX_BENCH_ENGINE_H
#define QMUX_BENCH_ENGINE_H

#include <stddef.h>
#include <stdint.h>

#include "hist.h"

struct bench_engine;

struct bench_group {
    /* Set by the caller. */
    const char *expr;           /* q expression sent as a char vector, sync */
    int clients;
    uint64_t requests_per_client; /* 0 = until the run's end time */
    uint64_t delay_ns;          /* start after time 0 */
    int has_expected_long;      /* when set, a response other than this long is wrong */
    int64_t expected_long;

    /* Results. */
    struct hist latency;        /* nanoseconds, requests written after the warm-up */
    uint64_t completed;         /* responses within the measured interval */
    uint64_t errors;            /* kdb+ error responses */
    uint64_t wrong;             /* unexpected results or message types */
    uint64_t bytes;             /* response bytes, headers included, after the warm-up */
    uint64_t first_sent_ns;     /* time of its first request, from time 0 */
    uint64_t last_done_ns;      /* time its last response completed, from time 0 */

    /* Private. */
    struct bench_engine *engine;
    uint8_t *message;
    size_t message_length;
};

struct bench_run {
    /* Set by the caller. */
    const char *host;           /* numeric IPv4 address */
    int port;
    const char *credentials;    /* "user:password" sent in the handshake */
    int capability;
    struct bench_group *groups;
    int group_count;
    uint64_t warmup_ns;         /* responses to requests written earlier are not recorded */
    uint64_t duration_ns;       /* measured interval after the warm-up; 0 = no end time */
    uint64_t total_requests;    /* 0 = no limit; otherwise stop after this many in all */
    int max_connecting;         /* connections in progress at once */
    uint64_t timeout_ns;        /* give up on the whole run after this long */
    int idle;                   /* log in and send nothing: bench_run returns with every
                                   connection still open, until bench_free */

    /* Results. */
    int connected;              /* clients that logged in */
    int connect_failures;
    int disconnects;            /* connections lost after the login */
    uint64_t measure_ns;        /* length of the measured interval */
    int timed_out;

    /* Private. */
    struct bench_engine *engine;
};

/*
 * Runs the clients of run until every group finished, the end time passed and every
 * request in flight got its response, or the run timed out. In idle mode it returns once every
 * client logged in or failed. Returns 0, or -1 after printing why the run could not start
 * (an invalid address, out of memory). Call bench_free afterwards in both cases.
 */
int bench_run(struct bench_run *run);

/* Closes every connection of run and frees what bench_run allocated. */
void bench_free(struct bench_run *run);

/* CLOCK_MONOTONIC in nanoseconds. */
uint64_t bench_now_ns(void);

/* Raises the open-file soft limit to the hard limit; returns the new soft limit. */
long bench_raise_nofile(void);

#endif
