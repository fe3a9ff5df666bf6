/*
 * qmux.h - the process-wide state every module shares: event base, config, connection
 * lists and the id counter.
 */
#ifndef QMUX_QMUX_H
#define QMUX_QMUX_H

#include <stdint.h>
#include <sys/queue.h>

#include <event2/event.h>

#include "config.h"

#define QMUX_VERSION "0.1.0"

struct client;
struct pool;
struct upconn;

struct qmux {
    struct event_base *base;
    struct evdns_base *dns;
    struct config *config;
    struct pool *pool;
    struct evconnlistener *listener;

    TAILQ_HEAD(client_list, client) clients;   /* every open client */
    int client_count;

    /* Closed clients wait here until the event loop is outside their callbacks. */
    TAILQ_HEAD(, client) closed_clients;
    struct event *reaper;

    uint64_t next_connection_id;               /* shared by clients and upstream connections */
    int stopping;                              /* graceful shutdown under way */

    /* Bytes in every client's output buffer, against clients.max_output_total, and the
     * upstream connections paused until that total drains. */
    uint64_t output_total;
    TAILQ_HEAD(, upconn) output_waiters;
    struct event *output_resume;
};

extern struct qmux qmux;

/* Returns a new connection id; ids are never reused within a process. */
uint64_t qmux_next_id(void);

struct evconnlistener;

/*
 * Disables listener for ms milliseconds, then enables it again unless qmux is stopping.
 * *timer is created on the first call and reused; the caller frees it with the
 * listener. Used when accept() fails for lack of descriptors, which it would do again at
 * once for as long as connections are pending.
 */
void qmux_pause_listener(struct evconnlistener *listener, struct event **timer, int ms);

#endif
