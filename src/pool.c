/*
 * pool.c - the upstream connection pool and the pairing of client requests with
 * upstream responses. This is the core of qmux.
 *
 * kdb+ IPC responses carry no request id: on one connection, the n-th response answers
 * the n-th sync request. qmux keeps that pairing trivial by never having more than one
 * sync request in flight per upstream connection, and by serving each client's
 * messages strictly in the order it sent them, one sync request at a time.
 *
 *     clients                    pool                          upstream connections
 *   +----------+  sync   +------------------------+   write   +-------------------+
 *   | client 7 |-------->| shared queue (FIFO)    |---------->| conn 3  BUSY (c7) |--> kdb+
 *   | client 8 |-------->|   c8 -> c9 -> ...      |           | conn 4  IDLE      |--> kdb+
 *   | client 9 |  async  | conn 5 pinned queue    |           | conn 5  BUSY (c2) |--> kdb+
 *   +----------+-------->|   c11                  |           +-------------------+
 *        ^               +------------------------+                    |
 *        |        response bytes, relayed as they arrive               |
 *        +-------------------------------------------------------------+
 *
 * A sync request (message type 1) from client C:
 *   1. C's input buffer holds the whole message; C is IDLE, so pool_submit_sync() runs.
 *   2. An idle connection U is taken from the idle list, or C waits in the queue (state
 *      QUEUED). pool_release() hands U to the oldest waiter when U's previous response
 *      has been relayed.
 *   3. upconn_send_request() moves the request bytes from C's input buffer to U's output
 *      buffer (evbuffer chain moves, no copy), sets U->client = C and C->serving = U.
 *   4. Bytes from U are framed by their 8-byte header. Every message U sends while C's
 *      request is open goes to C, as it arrives: a nested sync or async from kdb+ first,
 *      then the response (type 2), which ends the request. Nothing is held back to form
 *      a whole message, so a 1 GB result passes through a bounded buffer; when C's output
 *      buffer passes clients.output_high_watermark, reading from U stops until it drains
 *      below clients.output_low_watermark.
 *   5. On the response's last byte U returns to the pool (the oldest waiter gets it
 *      first), and C goes back to IDLE and processes its next buffered message.
 *
 * Async messages (type 0) and the ordering rule:
 *   kdb+ processes messages in order per connection, but not across connections. An async
 *   message is written at once to a connection that is logged in (an idle one if there
 *   is one) and the client is pinned to that connection. While pinned, the client's next
 *   sync request waits for that same connection, so kdb+ reads the async messages before
 *   the sync request, and `neg[h]"a:1"; h"a"` returns 1 with any pool size. The pin ends
 *   when that sync request is sent, since the client sends nothing further until it is
 *   answered. If the pinned connection dies, the pin is dropped and waiting requests move
 *   to the front of the shared queue.
 *
 * Worked example, pool.size = 1: client 7 sends `h"system \"sleep 2\""`, client 8 sends
 * `h"til 3"` 10 ms later. c7 gets conn 3; c8 queues. After 2 s kdb+ answers c7's request;
 * its response is relayed to c7, conn 3 returns to the pool and goes to c8, whose request
 * is then written. Client 9's `neg[h]"a:1"` arriving meanwhile is written to conn 3 at once
 * (behind c8's request, so kdb+ runs it after) and pins c9 to conn 3.
 */
#include "pool.h"

#include <stdlib.h>

#include "client.h"
#include "lifecycle.h"
#include "log.h"
#include "qmux.h"
#include "stats.h"

static void take_idle(struct pool *pool, struct upconn *conn)
{
    struct backend *backend = conn->backend;

    TAILQ_REMOVE(&backend->idle, conn, idle_link);
    backend->idle_count--;
    pool->idle_count--;
    conn->in_idle_list = 0;
}

static long waited_ms(const struct client *client, const struct timeval *now)
{
    return (now->tv_sec - client->queued_at.tv_sec) * 1000 +
           (now->tv_usec - client->queued_at.tv_usec) / 1000;
}

/* Fails the oldest waiters whose wait passed a limit. The queue is FIFO, so the first
 * waiter within the limit ends the scan. */
static void expire_waiters(struct pool *pool, const struct timeval *now)
{
    const struct config *config = qmux.config;
    struct client *client;

    while ((client = TAILQ_FIRST(&pool->queue.head)) != NULL) {
        long waited = waited_ms(client, now);
        char text[160];

        if (config->queue_timeout_ms > 0 && waited >= config->queue_timeout_ms) {
            snprintf(text, sizeof(text), "queue timeout: waited %ld ms for an upstream "
                     "connection (clients.queue_timeout_ms %d)", waited,
                     config->queue_timeout_ms);
            stats.queue_timeouts++;
        } else if (pool->logged_in == 0 && waited >= config->unavailable_wait_ms) {
            snprintf(text, sizeof(text), "upstream unavailable: no upstream connection is "
                     "logged in (waited %ld ms, pool.unavailable_wait_ms)", waited);
            stats.unavailable++;
        } else {
            break;
        }
        clog_info(client, "request failed: %s", text);
        client_reject_head(client, text);
        client_process_input(client);
    }
}

/* Sends a health-check query on every connection idle longer than the interval. */
static void check_idle_connections(struct pool *pool, const struct timeval *now)
{
    long interval = qmux.config->health_check_interval_ms;

    if (interval == 0)
        return;
    for (int i = 0; i < pool->backend_count; i++) {
        struct backend *backend = pool->backends[i];
        struct upconn *conn = TAILQ_FIRST(&backend->idle);

        /* The idle list is ordered by the time each connection became idle. */
        while (conn != NULL) {
            struct upconn *next = TAILQ_NEXT(conn, idle_link);
            long idle = (now->tv_sec - conn->since.tv_sec) * 1000 +
                        (now->tv_usec - conn->since.tv_usec) / 1000;

            if (idle < interval)
                break;
            take_idle(pool, conn);
            upconn_check_health(conn);
            conn = next;
        }
    }
}

static void tick_cb(evutil_socket_t fd, short what, void *arg)
{
    struct pool *pool = arg;
    struct timeval now;

    (void)fd;
    (void)what;
    gettimeofday(&now, NULL);
    expire_waiters(pool, &now);
    check_idle_connections(pool, &now);

    if (++pool->ticks % (1000 / POOL_TICK_MS) == 0)
        client_sweep_idle();
    lifecycle_check_drained();
}

struct pool *pool_create(const struct config *config)
{
    struct pool *pool = calloc(1, sizeof(*pool));

    if (pool == NULL)
        return NULL;
    queue_init(&pool->queue);
    pool->capability = config->pool_capability;

    pool->backends = calloc((size_t)config->upstream_count, sizeof(*pool->backends));
    if (pool->backends == NULL) {
        free(pool);
        return NULL;
    }
    for (int i = 0; i < config->upstream_count; i++) {
        pool->backends[i] = backend_create(&config->upstreams[i], i, config->pool_size);
        if (pool->backends[i] == NULL) {
            pool_destroy(pool);
            return NULL;
        }
        pool->backend_count = i + 1;
    }

    pool->tick = event_new(qmux.base, -1, EV_PERSIST, tick_cb, pool);
    struct timeval period = { 0, POOL_TICK_MS * 1000 };
    if (pool->tick == NULL || event_add(pool->tick, &period) != 0) {
        pool_destroy(pool);
        return NULL;
    }

    for (int i = 0; i < pool->backend_count; i++)
        backend_connect(pool->backends[i]);
    return pool;
}

void pool_destroy(struct pool *pool)
{
    if (pool == NULL)
        return;
    if (pool->tick != NULL)
        event_free(pool->tick);

    for (int i = 0; i < pool->backend_count; i++)
        backend_destroy(pool->backends[i]);
    for (int i = 0; i < pool->removed_count; i++)
        backend_destroy(pool->removed[i]);
    free(pool->backends);
    free(pool->removed);
    free(pool);
}

static struct backend *find_backend(struct pool *pool, const struct config_upstream *settings,
                                    const char *taken)
{
    for (int i = 0; i < pool->backend_count; i++)
        if (!taken[i] && backend_matches(pool->backends[i], settings))
            return pool->backends[i];
    return NULL;
}

static int remember_removed(struct pool *pool, struct backend *backend)
{
    struct backend **removed = realloc(pool->removed,
                                       (size_t)(pool->removed_count + 1) * sizeof(*removed));

    if (removed == NULL)
        return -1;
    pool->removed = removed;
    pool->removed[pool->removed_count++] = backend;
    backend_remove(backend);
    log_info("upstream %s removed from the pool; its connections close once idle",
             backend->name);
    return 0;
}

/* Builds the new backend list: existing backends by host and port, new ones created. */
static struct backend **match_backends(struct pool *pool, const struct config *config,
                                       char *taken)
{
    struct backend **list = calloc((size_t)config->upstream_count, sizeof(*list));

    if (list == NULL)
        return NULL;
    for (int i = 0; i < config->upstream_count; i++) {
        const struct config_upstream *settings = &config->upstreams[i];
        struct backend *backend = find_backend(pool, settings, taken);

        if (backend != NULL) {
            taken[backend->index] = 1;
            if (backend_update_credentials(backend, settings) > 0)
                log_info("upstream %s: new credentials apply to its next logins", backend->name);
        } else {
            backend = backend_create(settings, i, config->pool_size);
            if (backend == NULL) {
                for (int j = 0; j < i; j++)
                    if (list[j]->index == -1)
                        backend_destroy(list[j]);
                free(list);
                return NULL;
            }
            backend->index = -1;   /* marks it new until the indexes are renumbered */
            log_info("upstream %s added to the pool", backend->name);
        }
        list[i] = backend;
    }
    return list;
}

int pool_reconfigure(struct pool *pool, const struct config *config)
{
    char *taken = calloc((size_t)pool->backend_count + 1, 1);
    struct backend **list = taken != NULL ? match_backends(pool, config, taken) : NULL;
    int status = 0;

    if (list == NULL) {
        free(taken);
        return -1;
    }
    for (int i = 0; i < pool->backend_count; i++)
        if (!taken[i] && remember_removed(pool, pool->backends[i]) != 0)
            status = -1;

    free(pool->backends);
    pool->backends = list;
    pool->backend_count = config->upstream_count;
    pool->rotation = 0;
    free(taken);

    for (int i = 0; i < pool->backend_count; i++) {
        struct backend *backend = list[i];
        int old_size = backend->size;

        backend->index = i;
        if (backend_resize(backend, config->pool_size) != 0)
            status = -1;
        else if (old_size != 0 && old_size != backend->size)
            log_info("upstream %s: pool.size %d -> %d", backend->name, old_size, backend->size);
        backend_connect(backend);
    }
    return status;
}

static int conn_logged_in(const struct upconn *conn)
{
    return conn->state == UPCONN_IDLE || conn->state == UPCONN_BUSY;
}


/* Returns an idle connection of the backend with the fewest requests in flight (ties
 * go round-robin), or NULL when no connection is idle. kdb+ evaluates one request at a
 * time per process, so spreading requests over processes is what shortens waits. */
/* Returns when the longest-running request in flight on backend was sent (zero when
 * none is). */
static struct timeval oldest_busy_since(const struct backend *backend)
{
    struct timeval oldest = { 0, 0 };

    for (int slot = 0; slot < backend->size; slot++) {
        const struct upconn *conn = backend->conns[slot];

        if (conn->state == UPCONN_BUSY &&
            (oldest.tv_sec == 0 || timercmp(&conn->since, &oldest, <)))
            oldest = conn->since;
    }
    return oldest;
}

/* Returns 1 when candidate is a better choice than best: fewer requests in flight, or as
 * many but none running as long. A request that has run long is likely to run longer,
 * and a single-threaded kdb+ answers the next request only after it. */
static int less_busy(const struct backend *candidate, const struct backend *best)
{
    if (candidate->busy_count != best->busy_count)
        return candidate->busy_count < best->busy_count;
    if (candidate->busy_count == 0)
        return 0;

    struct timeval candidate_oldest = oldest_busy_since(candidate);
    struct timeval best_oldest = oldest_busy_since(best);
    return timercmp(&candidate_oldest, &best_oldest, >);
}

static struct upconn *least_busy_idle(struct pool *pool)
{
    struct backend *best = NULL;

    for (int step = 0; step < pool->backend_count; step++) {
        struct backend *backend = pool->backends[(pool->rotation + step) % pool->backend_count];

        if (backend->idle_count > 0 && (best == NULL || less_busy(backend, best)))
            best = backend;
    }
    if (best == NULL)
        return NULL;
    pool->rotation = (best->index + 1) % pool->backend_count;
    return TAILQ_FIRST(&best->idle);
}

void pool_wait_in(struct request_queue *queue, struct client *client)
{
    client->state = CLIENT_QUEUED;
    gettimeofday(&client->queued_at, NULL);
    queue_push(queue, client);
}

static struct log_limit queue_full_limit = { .interval_seconds = 10 };

/* Rejects the client's request at once when the queue is full, or when no upstream
 * connection is logged in and pool.unavailable_wait_ms is 0. Returns 1 if rejected. */
static int reject_when_full(struct pool *pool, struct client *client)
{
    const struct config *config = qmux.config;
    char text[160];

    if (pool->queue.length >= (size_t)config->max_queue) {
        snprintf(text, sizeof(text), "limit: %zu requests already wait for an upstream "
                 "connection (clients.max_queue); retry later or raise clients.max_queue",
                 pool->queue.length);
        log_limited(&queue_full_limit, LOG_LEVEL_WARN, "queue full: rejecting a request of "
                    "client %" PRIu64 " (clients.max_queue %d)", client->id, config->max_queue);
        stats.queue_rejections++;
    } else if (pool->logged_in == 0 && config->unavailable_wait_ms == 0) {
        snprintf(text, sizeof(text), "upstream unavailable: no upstream connection is "
                 "logged in (pool.unavailable_wait_ms 0)");
        stats.unavailable++;
    } else {
        return 0;
    }
    client_reject_head(client, text);
    return 1;
}

int pool_submit_sync(struct pool *pool, struct client *client)
{
    struct upconn *conn = client->pinned;

    if (pool->paused) {
        if (reject_when_full(pool, client))
            return 1;
        pool_wait_in(&pool->queue, client);
        return 0;
    }
    if (conn != NULL) {
        if (conn->in_idle_list) {
            take_idle(pool, conn);
            upconn_send_request(conn, client);
        } else {
            pool_wait_in(&conn->pinned_queue, client);
        }
        return 0;
    }

    conn = least_busy_idle(pool);
    if (conn != NULL) {
        take_idle(pool, conn);
        upconn_send_request(conn, client);
        return 0;
    }
    if (reject_when_full(pool, client))
        return 1;
    pool_wait_in(&pool->queue, client);
    return 0;
}

struct upconn *pool_async_target(struct pool *pool)
{
    if (pool->paused)
        return NULL;

    struct upconn *idle = least_busy_idle(pool);

    if (idle != NULL)
        return idle;

    /* Every logged-in connection is busy: take the next one in turn. */
    int total = 0;
    for (int i = 0; i < pool->backend_count; i++)
        total += pool->backends[i]->size;

    for (int step = 0; step < total; step++) {
        int position = (pool->async_rotation + step) % total;
        int index = 0;

        while (position >= pool->backends[index]->size) {
            position -= pool->backends[index]->size;
            index++;
        }
        struct upconn *conn = pool->backends[index]->conns[position];
        if (conn_logged_in(conn) && !conn->retiring) {
            pool->async_rotation = (pool->async_rotation + step + 1) % total;
            return conn;
        }
    }
    return NULL;
}

void pool_wait(struct pool *pool, struct client *client)
{
    pool_wait_in(&pool->queue, client);
}

/* Returns the client that has waited longest for conn: the head of its pinned queue or
 * of the shared queue, whichever arrived first. Comparing the two keeps clients that pin
 * themselves with async messages from starving the shared queue. */
static struct client *oldest_waiter(struct pool *pool, struct upconn *conn)
{
    struct client *pinned = TAILQ_FIRST(&conn->pinned_queue.head);
    struct client *shared = TAILQ_FIRST(&pool->queue.head);

    if (pinned == NULL)
        return shared;
    if (shared == NULL)
        return pinned;
    return timercmp(&shared->queued_at, &pinned->queued_at, <) ? shared : pinned;
}

void pool_release(struct pool *pool, struct upconn *conn)
{
    upconn_set_state(conn, UPCONN_IDLE);
    TAILQ_INSERT_TAIL(&conn->backend->idle, conn, idle_link);
    conn->backend->idle_count++;
    pool->idle_count++;
    conn->in_idle_list = 1;

    /* Each waiter re-runs its head message. A sync request takes conn out of the idle
     * list, which ends the loop; an async one is written and the next waiter is served. */
    while (conn->in_idle_list && !pool->paused) {
        struct client *client = oldest_waiter(pool, conn);

        if (client == NULL)
            break;
        queue_remove(client->queue, client);
        client->state = CLIENT_IDLE;
        client_process_input(client);
    }
}

void pool_forget(struct pool *pool, struct upconn *conn)
{
    if (conn->in_idle_list)
        take_idle(pool, conn);
}

void pool_serve_queue(struct pool *pool)
{
    while (!pool->paused && pool->queue.length > 0 && pool->idle_count > 0) {
        struct upconn *conn = least_busy_idle(pool);

        /* pool_release() leaves conn idle only once both queues are empty. */
        take_idle(pool, conn);
        pool_release(pool, conn);
    }
}

void pool_note_capability(struct pool *pool, int capability)
{
    if (capability < pool->capability) {
        log_warn("pool: an upstream agreed capability %d, lower than %d; clients now get "
                 "at most %d", capability, pool->capability, capability);
        pool->capability = capability;
    }
}

void pool_client_left(struct pool *pool, struct client *client)
{
    (void)pool;
    if (client->queue != NULL)
        queue_remove(client->queue, client);
    pool_unpin(client);
}

void pool_pin(struct client *client, struct upconn *conn)
{
    if (client->pinned == conn)
        return;
    pool_unpin(client);
    TAILQ_INSERT_TAIL(&conn->pinned_clients, client, pin_link);
    client->pinned = conn;
}

void pool_unpin(struct client *client)
{
    if (client->pinned == NULL)
        return;
    TAILQ_REMOVE(&client->pinned->pinned_clients, client, pin_link);
    client->pinned = NULL;
}

void pool_conn_lost(struct pool *pool, struct upconn *conn)
{
    struct client *client;

    pool_forget(pool, conn);
    while ((client = TAILQ_FIRST(&conn->pinned_clients)) != NULL)
        pool_unpin(client);
    queue_splice_front(&pool->queue, &conn->pinned_queue);
    queue_splice_front(&pool->queue, &conn->write_waiters);
    pool_serve_queue(pool);
}

void pool_pause(struct pool *pool)
{
    if (pool->paused)
        return;
    pool->paused = 1;
    log_info("pool paused: requests wait in the queue until resume");
}

void pool_resume(struct pool *pool)
{
    if (!pool->paused)
        return;
    pool->paused = 0;
    log_info("pool resumed with %zu requests queued", pool->queue.length);

    /* Pinned waiters are served when their connection is released; kick every idle one. */
    for (int i = 0; i < pool->backend_count; i++) {
        struct backend *backend = pool->backends[i];
        struct upconn *conn;

        while ((conn = TAILQ_FIRST(&backend->idle)) != NULL &&
               (conn->pinned_queue.length > 0 || pool->queue.length > 0)) {
            take_idle(pool, conn);
            pool_release(pool, conn);
            if (conn->in_idle_list)
                break;
        }
    }
    pool_serve_queue(pool);
}

int pool_restart_connecting(struct pool *pool)
{
    int count = 0;

    for (int i = 0; i < pool->backend_count; i++) {
        struct backend *backend = pool->backends[i];

        for (int slot = 0; slot < backend->size; slot++) {
            struct upconn *conn = backend->conns[slot];

            if (conn->state == UPCONN_CONNECTING || conn->state == UPCONN_LOGIN) {
                upconn_replace(conn, "restarted to use the reloaded settings");
                count++;
            }
        }
    }
    return count;
}

int pool_reconnect_all(struct pool *pool)
{
    int count = 0;

    for (int i = 0; i < pool->backend_count; i++) {
        struct backend *backend = pool->backends[i];

        for (int slot = 0; slot < backend->size; slot++) {
            struct upconn *conn = backend->conns[slot];

            if (conn->state == UPCONN_BUSY) {
                conn->reconnect_after = 1;
                count++;
            } else if (conn->state == UPCONN_IDLE) {
                upconn_replace(conn, "replaced on request (reconnect)");
                count++;
            } else if (conn->state == UPCONN_DOWN) {
                upconn_reconnect_now(conn);
                count++;
            }
        }
    }
    return count;
}
