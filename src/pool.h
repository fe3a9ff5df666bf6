/*
 * pool.h - the pool of upstream connections and the pairing of client requests with them.
 */
#ifndef QMUX_POOL_H
#define QMUX_POOL_H

#include <stdint.h>
#include <sys/queue.h>

#include "backend.h"
#include "queue.h"
#include "upstream.h"

struct client;

/* Period of the maintenance timer: queue timeouts are enforced to within this. */
#define POOL_TICK_MS 100

struct pool {
    struct backend **backends;      /* the configured upstreams, in config order */
    int backend_count;
    struct backend **removed;       /* upstreams a reload removed, freed at exit */
    int removed_count;

    int idle_count;                 /* idle connections over all backends */
    struct request_queue queue;     /* clients waiting for any connection, FIFO */

    /* Capability offered to clients: the lowest any upstream connection agreed, or the
     * configured pool.capability before the first login. */
    int capability;
    int rotation;                   /* round-robin cursor for ties between backends */
    int async_rotation;             /* round-robin cursor over busy connections */
    int logged_in;                  /* connections in state IDLE or BUSY */
    int paused;                     /* admin pause: requests wait, nothing is dispatched */
    struct event *tick;             /* timeouts and health checks, every POOL_TICK_MS */
    unsigned ticks;
};

/* Creates every backend and connection of config and starts connecting. */
struct pool *pool_create(const struct config *config);

/*
 * Applies a reloaded config: keeps the backends whose host and port are still listed
 * (with their connections and clients), adds new ones, removes dropped ones (after the
 * request in flight), and resizes each to config->pool_size. Logs each change. Returns 0,
 * or -1 when out of memory (the pool is then partly updated but consistent).
 */
int pool_reconfigure(struct pool *pool, const struct config *config);

/* Stops dispatching: new requests wait in the queue (subject to its timeouts) while the
 * requests in flight finish, as before a kdb+ restart. */
void pool_pause(struct pool *pool);

/* Dispatches again, serving the queue in order. */
void pool_resume(struct pool *pool);

/* Replaces every upstream connection: idle ones at once, busy ones after their response
 * has been relayed, and connects the ones waiting for their backoff at once. No request
 * fails. Returns the number of connections replaced, scheduled or connected. */
int pool_reconnect_all(struct pool *pool);

/* Closes every connection still connecting or logging in and connects it again at once,
 * so that it uses settings a reload just changed. Returns the number restarted. */
int pool_restart_connecting(struct pool *pool);

/* Closes every connection and frees the pool. */
void pool_destroy(struct pool *pool);

/*
 * Places the client's head message, a sync request: sends it at once on an idle
 * connection (the pinned one, if the client is pinned) or queues the client. Among
 * backends with an idle connection, the one with the fewest requests in flight wins; among
 * equals, the one whose longest-running request started last.
 * Returns 1 when the request was answered with an error at once (the queue is full, or
 * no upstream is up and pool.unavailable_wait_ms is 0), else 0.
 */
int pool_submit_sync(struct pool *pool, struct client *client);

/*
 * Returns the connection for an async message of a client that is not pinned: an idle
 * one, else any logged-in one in turn (kdb+ orders messages per connection, so a busy
 * connection is fine). Returns NULL when none is logged in.
 */
struct upconn *pool_async_target(struct pool *pool);

/* Makes client QUEUED in queue, stamped with the time it started waiting. */
void pool_wait_in(struct request_queue *queue, struct client *client);

/* Queues a client whose async message found no connection; it waits like a sync. */
void pool_wait(struct pool *pool, struct client *client);

/* Called when conn becomes free: serves its pinned queue, then the shared queue, else
 * puts it in the idle list. */
void pool_release(struct pool *pool, struct upconn *conn);

/* Removes conn from the idle list if it is there (it is closing). */
void pool_forget(struct pool *pool, struct upconn *conn);

/* Hands idle connections to waiting clients (after waiters moved into the queue). */
void pool_serve_queue(struct pool *pool);

/* Called by a closing connection: drops its pins and moves its waiters to the front of
 * the shared queue, where other connections serve them. */
void pool_conn_lost(struct pool *pool, struct upconn *conn);

/* Records conn's agreed capability in the pool's client-facing capability. */
void pool_note_capability(struct pool *pool, int capability);

/* Removes the client from whatever queue it waits in and from its pin. */
void pool_client_left(struct pool *pool, struct client *client);

/* Pins client to conn (after writing its async message there). */
void pool_pin(struct client *client, struct upconn *conn);
void pool_unpin(struct client *client);

#endif
