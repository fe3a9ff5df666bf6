/*
 * client.c - client connections: accept, kdb+ login handshake, framing of the messages a
 * client sends, and the one close path.
 */
#include "client.h"

#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <event2/buffer.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>

#include "auth.h"
#include "compress.h"
#include "log.h"
#include "login.h"
#include "policy.h"
#include "pool.h"
#include "qdec.h"
#include "stats.h"
#include "qmux.h"
#include "tls.h"
#include "upstream.h"
#include "users.h"

/* Most bytes written to a client socket per call. */
#define CLIENT_WRITE_CHUNK (1024 * 1024)

static const char *const state_names[] = {
    [CLIENT_HANDSHAKE] = "handshake",
    [CLIENT_LOGIN] = "login",
    [CLIENT_IDLE] = "idle",
    [CLIENT_QUEUED] = "queued",
    [CLIENT_ACTIVE] = "active",
    [CLIENT_CLOSING] = "closing",
    [CLIENT_CLOSED] = "closed",
};

static void set_state(struct client *client, enum client_state state)
{
    clog_debug(client, "state %s -> %s", state_names[client->state], state_names[state]);
    client->state = state;
}

static double age_seconds(const struct client *client)
{
    struct timeval now;

    gettimeofday(&now, NULL);
    return (double)(now.tv_sec - client->connected_at.tv_sec) +
           (double)(now.tv_usec - client->connected_at.tv_usec) / 1e6;
}

/* Input the client may send ahead while a request is in flight or while reading a
 * message larger than that: the whole message, bounded by clients.max_message_size. */
static void set_read_limit(struct client *client, uint64_t limit)
{
    size_t floor = qmux.config->input_buffer;
    size_t high = limit > floor ? (size_t)limit : floor;

    /* Setting a watermark re-arms the read event, so skip it when nothing changes: most
     * requests are far below the floor. */
    if (high == client->read_high)
        return;
    client->read_high = high;
    bufferevent_setwatermark(client->bev, EV_READ, 0, high);
}

void client_response_begins(struct client *client)
{
    client->response_start = client->output_added;
}

int client_retract_response(struct client *client)
{
    if (client->bev == NULL || client->output_sent > client->response_start)
        return 0;

    struct evbuffer *output = bufferevent_get_output(client->bev);
    size_t before = (size_t)(client->response_start - client->output_sent);
    size_t partial = evbuffer_get_length(output) - before;
    /* TLS may be part way through writing bytes it has not drained yet. */
    if (before < tls_output_committed(client->bev))
        return 0;
    struct evbuffer *kept = evbuffer_new();
    if (kept == NULL)
        return 0;

    /* A socket bufferevent freezes the front of its output buffer while it may write; a
     * TLS one does not. Nothing is being written now, so the buffer can be rebuilt: keep
     * what came before the partial response and drop the response. */
    int frozen = !tls_is_tls(client->bev);
    if (frozen)
        evbuffer_unfreeze(output, 1);
    int moved = evbuffer_remove_buffer(output, kept, before);
    int ok = moved >= 0 && (size_t)moved == before && evbuffer_drain(output, partial) == 0;
    if (ok)
        evbuffer_add_buffer(output, kept);
    if (frozen)
        evbuffer_freeze(output, 1);
    evbuffer_free(kept);

    if (ok) {
        client->bytes_out -= partial;
        stats.bytes_to_clients -= partial;
    }
    return ok;
}

void client_send_error(struct client *client, const char *text)
{
    uint8_t message[IPC_ERROR_MESSAGE_MAX];

    if (client->bev == NULL)
        return;
    size_t length = ipc_error_message(message, sizeof(message), text);
    bufferevent_write(client->bev, message, length);
    client->bytes_out += length;
    stats.bytes_to_clients += length;
}

static void stop_sniffing(struct client *client);

void client_close(struct client *client, const char *reason)
{
    if (client->state == CLIENT_CLOSED)
        return;

    clog_info(client, "closed: %s (user %s, %.1f s connected, %" PRIu64 " requests, %" PRIu64
              " bytes in, %" PRIu64 " bytes out)", reason, client->user[0] ? client->user : "-",
              age_seconds(client), client->requests, client->bytes_in, client->bytes_out);

    if (client->serving != NULL) {
        upconn_client_left(client->serving, client);
        client->serving = NULL;
    }
    pool_client_left(qmux.pool, client);

    if (client->handshake_timer != NULL) {
        event_free(client->handshake_timer);
        client->handshake_timer = NULL;
    }
    login_end(client->login);
    client->login = NULL;
    stop_sniffing(client);
    if (client->bev != NULL) {
        struct evbuffer *output = bufferevent_get_output(client->bev);

        /* Bytes still unsent leave with the buffer, without a drain callback. */
        if (client->output_entry != NULL) {
            evbuffer_remove_cb_entry(output, client->output_entry);
            qmux.output_total -= evbuffer_get_length(output);
        }
        bufferevent_free(client->bev);
        client->bev = NULL;
    }
    if (client->count_key != NULL) {
        users_remove(client->count_key);
        free(client->count_key);
        client->count_key = NULL;
    }
    set_state(client, CLIENT_CLOSED);

    TAILQ_REMOVE(&qmux.clients, client, list_link);
    qmux.client_count--;
    TAILQ_INSERT_TAIL(&qmux.closed_clients, client, list_link);
    event_active(qmux.reaper, EV_TIMEOUT, 0);
}

/* Sends what is buffered, then closes; nothing more is read or relayed meanwhile. */
static void close_after_flush(struct client *client, const char *reason)
{
    struct evbuffer *output = bufferevent_get_output(client->bev);

    if (evbuffer_get_length(output) == 0) {
        client_close(client, reason);
        return;
    }
    if (client->serving != NULL) {
        upconn_client_left(client->serving, client);
        client->serving = NULL;
    }
    pool_client_left(qmux.pool, client);
    client->close_reason = reason;
    bufferevent_disable(client->bev, EV_READ);
    bufferevent_setwatermark(client->bev, EV_WRITE, 0, 0);
    set_state(client, CLIENT_CLOSING);
}

struct client *client_find(uint64_t id)
{
    struct client *client;

    TAILQ_FOREACH(client, &qmux.clients, list_link)
        if (client->id == id)
            return client;
    return NULL;
}

const char *client_state_name(enum client_state state)
{
    return state_names[state];
}

void client_reap(void)
{
    struct client *client;

    while ((client = TAILQ_FIRST(&qmux.closed_clients)) != NULL) {
        TAILQ_REMOVE(&qmux.closed_clients, client, list_link);
        free(client);
    }
}

static uint64_t microseconds_between(const struct timeval *from, const struct timeval *to)
{
    int64_t us = (int64_t)(to->tv_sec - from->tv_sec) * 1000000 + (to->tv_usec - from->tv_usec);

    return us > 0 ? (uint64_t)us : 0;
}

/* Marks the head message, a sync request, as placed: its clock starts. */
static void open_request(struct client *client)
{
    if (client->request_open)
        return;   /* re-placed after waiting or after a retry: the first placement counts */
    client->request_open = 1;
    gettimeofday(&client->request_started, NULL);
    client->dispatched_at = client->request_started;
    client->request_bytes = client->head.length;
    client->response_start_bytes = client->bytes_out;
    client->upstream_id = 0;
}

/* Records the end of the client's sync request: statistics, the access line when
 * log.access is on, and a warning when it took longer than log.slow_request_ms. */
static void close_request(struct client *client, const char *error)
{
    struct timeval now;

    if (!client->request_open)
        return;
    client->request_open = 0;
    gettimeofday(&now, NULL);

    uint64_t total_us = microseconds_between(&client->request_started, &now);
    uint64_t wait_us = client->upstream_id != 0
                           ? microseconds_between(&client->request_started, &client->dispatched_at)
                           : total_us;
    uint64_t response_bytes = client->bytes_out - client->response_start_bytes;

    if (error == NULL) {
        stats.requests++;
        histogram_add(&stats.latency, total_us);
    } else {
        stats.requests_failed++;
    }
    histogram_add(&stats.queue_wait, wait_us);

    const struct config *config = qmux.config;
    int slow = config->slow_request_ms > 0 && total_us >= (uint64_t)config->slow_request_ms * 1000;
    if (!config->log_access && !slow)
        return;
    clog_at(slow ? LOG_LEVEL_WARN : LOG_LEVEL_INFO, client,
            "%s user=%s upstream=%" PRIu64 " type=sync request_bytes=%" PRIu64
            " response_bytes=%" PRIu64 " queue_us=%" PRIu64 " total_us=%" PRIu64
            " outcome=%s%s", slow ? "slow request" : "access", client->user[0] ? client->user : "-",
            client->upstream_id, client->request_bytes, response_bytes, wait_us, total_us,
            error != NULL ? "error:" : "ok", error != NULL ? error : "");
}

void client_dispatched(struct client *client, struct upconn *conn)
{
    client->serving = conn;
    client->requests++;
    client->upstream_id = conn->id;
    gettimeofday(&client->dispatched_at, NULL);
    set_state(client, CLIENT_ACTIVE);
}

void client_request_done(struct client *client)
{
    if (client->state != CLIENT_ACTIVE)
        return;
    close_request(client, NULL);
    set_state(client, CLIENT_IDLE);
    client_process_input(client);
}

void client_fail_request(struct client *client, const char *text)
{
    if (client->state != CLIENT_ACTIVE)
        return;
    client->serving = NULL;
    client_send_error(client, text);
    close_request(client, text);
    set_state(client, CLIENT_IDLE);
    client_process_input(client);
}

int client_requeue(struct client *client, struct evbuffer *request)
{
    size_t length = evbuffer_get_length(request);

    if (evbuffer_prepend_buffer(bufferevent_get_input(client->bev), request) != 0)
        return -1;
    client->bytes_in -= length;
    client->requests--;
    client->head_parsed = 0;
    client->serving = NULL;
    client->queued_at = client->request_started;   /* it keeps its place in time */
    set_state(client, CLIENT_QUEUED);
    queue_push_front(&qmux.pool->queue, client);
    return 0;
}

void client_reject_head(struct client *client, const char *text)
{
    struct evbuffer *input = bufferevent_get_input(client->bev);

    if (client->queue != NULL)
        queue_remove(client->queue, client);
    if (client->head.type == IPC_SYNC) {
        open_request(client);
        client_send_error(client, text);
        close_request(client, text);
    } else {
        clog_warn(client, "dropped an async message of %" PRIu64 " bytes: %s",
                  client->head.length, text);
    }
    evbuffer_drain(input, (size_t)client->head.length);
    client->bytes_in += client->head.length;
    client->head_parsed = 0;
    set_state(client, CLIENT_IDLE);
}

void client_sweep_idle(void)
{
    int limit_ms = qmux.config->idle_timeout_ms;
    struct timeval now;
    struct client *client;
    struct client *next;

    if (limit_ms == 0)
        return;
    event_base_gettimeofday_cached(qmux.base, &now);
    for (client = TAILQ_FIRST(&qmux.clients); client != NULL; client = next) {
        next = TAILQ_NEXT(client, list_link);
        if (client->state != CLIENT_IDLE || client->serving != NULL)
            continue;

        long idle_ms = (now.tv_sec - client->last_read.tv_sec) * 1000 +
                       (now.tv_usec - client->last_read.tv_usec) / 1000;
        if (idle_ms >= limit_ms) {
            char reason[96];

            snprintf(reason, sizeof(reason), "idle for %ld ms (clients.idle_timeout_ms %d)",
                     idle_ms, limit_ms);
            client_close(client, reason);
        }
    }
}

/* Reads the header of the next message. Returns 0 when there is none yet or the client
 * was closed for sending an invalid one. */
static int read_head(struct client *client, struct evbuffer *input)
{
    uint8_t raw[IPC_HEADER_SIZE];

    if (evbuffer_get_length(input) < IPC_HEADER_SIZE)
        return 0;
    evbuffer_copyout(input, raw, sizeof(raw));

    int status = ipc_header_parse(raw, &client->head);
    if (status != IPC_OK) {
        char reason[160];

        snprintf(reason, sizeof(reason), "invalid message header: %s (bytes %02x %02x %02x "
                 "%02x %02x %02x %02x %02x)", ipc_status_text(status), raw[0], raw[1], raw[2],
                 raw[3], raw[4], raw[5], raw[6], raw[7]);
        client_close(client, reason);
        return 0;
    }

    uint64_t limit = qmux.config->max_message_size;
    if (client->head.length > limit) {
        char text[160];

        snprintf(text, sizeof(text), "limit: message of %" PRIu64 " bytes exceeds "
                 "clients.max_message_size (%" PRIu64 ")", client->head.length, limit);
        if (client->head.type == IPC_SYNC)
            client_send_error(client, text);
        close_after_flush(client, "message larger than clients.max_message_size");
        return 0;
    }

    client->head_parsed = 1;
    client->head_checked = 0;
    client->head_allowed = 0;
    set_read_limit(client, client->head.length);
    return 1;
}

/* Copies the head message, decompressed when it is compressed, into a new buffer. Returns
 * it, or NULL with the reason in error. */
static uint8_t *plain_copy(const uint8_t *bytes, uint64_t length, uint64_t *plain_length,
                           char *error, size_t size)
{
    if (decompress_size(bytes, length, plain_length) != 0) {
        snprintf(error, size, "invalid compressed message header");
        return NULL;
    }
    if (*plain_length > qmux.config->max_message_size) {
        snprintf(error, size, "compressed message expands to %" PRIu64 " bytes, over "
                 "clients.max_message_size (%" PRIu64 ")", *plain_length,
                 qmux.config->max_message_size);
        return NULL;
    }
    uint8_t *plain = malloc((size_t)*plain_length);
    if (plain == NULL) {
        snprintf(error, size, "no memory to decompress a message of %" PRIu64 " bytes",
                 *plain_length);
        return NULL;
    }
    if (decompress_message(bytes, length, plain, *plain_length, error, size) != 0) {
        free(plain);
        return NULL;
    }
    return plain;
}

/* Checks a compressed message by decompressing it; the original bytes are what goes
 * upstream. Returns 0, or -1 with the reason in error. */
static int check_compressed(const uint8_t *bytes, uint64_t length, char *error, size_t size)
{
    uint64_t plain_size;
    struct qdec_error decode_error;
    uint8_t *plain = plain_copy(bytes, length, &plain_size, error, size);

    if (plain == NULL)
        return -1;
    int status = qdec_validate(plain, plain_size, &decode_error);
    if (status != QDEC_OK)
        snprintf(error, size, "after decompression: %s", decode_error.message);
    free(plain);
    return status == QDEC_OK ? 0 : -1;
}

/*
 * Checks the body of the complete head message, so that a malformed message closes only
 * this client: kdb+ closes the connection a malformed message arrives on, and that would
 * be a pooled connection shared with other clients. Returns 1 when the message may go on.
 */
static int check_message(struct client *client, struct evbuffer *input)
{
    char error[256];
    struct qdec_error decode_error;

    if (client->head_checked || !qmux.config->validate_messages)
        return 1;

    const uint8_t *bytes = evbuffer_pullup(input, (ev_ssize_t)client->head.length);
    int valid;
    if (bytes == NULL) {
        snprintf(error, sizeof(error), "no memory to check a message of %" PRIu64 " bytes",
                 client->head.length);
        valid = 0;
    } else if (client->head.compressed) {
        valid = check_compressed(bytes, client->head.length, error, sizeof(error)) == 0;
    } else {
        valid = qdec_validate(bytes, client->head.length, &decode_error) == QDEC_OK;
        if (!valid)
            snprintf(error, sizeof(error), "%s", decode_error.message);
    }
    if (valid) {
        client->head_checked = 1;
        return 1;
    }

    char text[300];
    snprintf(text, sizeof(text), "badmsg: %s", error);
    if (client->head.type == IPC_SYNC)
        client_send_error(client, text);
    clog_warn(client, "invalid %s message of %" PRIu64 " bytes: %s",
              ipc_msg_type_name(client->head.type), client->head.length, error);
    close_after_flush(client, "invalid message (badmsg), as kdb+ closes such a connection");
    return 0;
}

static void discard_message(struct client *client, struct evbuffer *input, const char *why)
{
    clog_warn(client, "discarding %s message of %" PRIu64 " bytes: %s",
              ipc_msg_type_name(client->head.type), client->head.length, why);
    evbuffer_drain(input, (size_t)client->head.length);
    client->bytes_in += client->head.length;
    client->head_parsed = 0;
}

/*
 * Checks the complete head message, a request, against the client's policy. A request
 * the policy denies is answered with 'access (a sync one) or dropped with a log line (an
 * async one), and never reaches an upstream. Returns 1 when the message may go on.
 */
static int check_policy(struct client *client, struct evbuffer *input)
{
    char reason[POLICY_ENTRY_MAX + 200];
    uint8_t *plain = NULL;
    uint64_t length = client->head.length;

    if (client->head_allowed || client->policy == NULL || client->head.type == IPC_RESPONSE)
        return 1;

    const uint8_t *bytes = evbuffer_pullup(input, (ev_ssize_t)length);
    int decision = POLICY_DENY;
    if (bytes == NULL)
        snprintf(reason, sizeof(reason), "no memory to check a request of %" PRIu64 " bytes",
                 length);
    else if (client->head.compressed && (plain = plain_copy(bytes, length, &length, reason,
                                                            sizeof(reason))) == NULL)
        ;
    else
        decision = policy_check(client->policy, plain != NULL ? plain : bytes, length, reason,
                                sizeof(reason));
    free(plain);
    if (decision == POLICY_ALLOW) {
        client->head_allowed = 1;
        return 1;
    }

    char text[sizeof(reason) + 16];
    snprintf(text, sizeof(text), "access: %s", reason);
    stats.policy_denials++;
    clog_warn(client, "denied a %s request of user %s: %s", ipc_msg_type_name(client->head.type),
              client->user[0] ? client->user : "-", reason);
    client_reject_head(client, text);
    return 0;
}

/* Places a complete message while the client is IDLE. Returns 1 to go on reading. */
static int place_message(struct client *client, struct evbuffer *input)
{
    struct pool *pool = qmux.pool;

    if (qmux.stopping && client->head.type != IPC_RESPONSE) {
        client_reject_head(client, "qmux is shutting down");
        return 1;
    }

    switch (client->head.type) {
    case IPC_SYNC:
        open_request(client);
        /* Goes on reading only when the request was rejected at once. */
        return pool_submit_sync(pool, client);

    case IPC_ASYNC: {
        struct upconn *conn = client->pinned;

        if (conn == NULL)
            conn = pool_async_target(pool);
        if (conn == NULL) {
            pool_wait(pool, client);
            return 0;
        }
        if (upconn_output_full(conn)) {
            pool_pin(client, conn);
            upconn_wait_for_drain(conn, client);
            return 0;
        }
        upconn_forward(conn, client);
        pool_pin(client, conn);
        stats.async_messages++;
        return 1;
    }

    default:
        discard_message(client, input, "a response with no request from qmux to answer");
        return 1;
    }
}

void client_process_input(struct client *client)
{
    if (client->bev == NULL)
        return;
    struct evbuffer *input = bufferevent_get_input(client->bev);

    while (client->state == CLIENT_IDLE || client->state == CLIENT_ACTIVE) {
        if (!client->head_parsed && !read_head(client, input))
            break;
        if (evbuffer_get_length(input) < client->head.length)
            break;
        if (!check_message(client, input))
            break;

        if (client->state == CLIENT_ACTIVE) {
            /* Only the answer to a nested sync request from upstream may pass now. */
            if (client->head.type != IPC_RESPONSE || client->nested_open == 0)
                break;
            client->nested_open--;
            upconn_forward(client->serving, client);
            continue;
        }
        if (!check_policy(client, input))
            continue;
        if (!place_message(client, input))
            break;
    }

    if (client->bev != NULL && !client->head_parsed)
        set_read_limit(client, 0);
}

/* Counts the client's user; past clients.max_per_user, the client gets a 'limit error
 * and is closed. The handshake is answered first, so the client reports the error
 * rather than the 'access of a rejected login. */
static void enforce_user_limit(struct client *client)
{
    int limit = qmux.config->max_per_user;
    const char *key = "clients.max_per_user";
    char anonymous[sizeof(client->user) + 16];

    /* Account names have no ':', so an anonymous name never counts against an account. */
    snprintf(anonymous, sizeof(anonymous), "anonymous:%s", client->user);
    client->count_key = strdup(client->account != NULL ? auth_user_name(client->account)
                                                        : anonymous);
    int count = client->count_key != NULL ? users_add(client->count_key) : -1;
    if (count < 0) {
        free(client->count_key);
        client->count_key = NULL;
        close_after_flush(client, "out of memory while counting connections per user");
        return;
    }

    if (client->account != NULL && auth_user_max_connections(client->account) > 0) {
        limit = auth_user_max_connections(client->account);
        key = "max_connections in auth.users_file";
    }
    if (limit == 0 || count <= limit)
        return;

    char text[240];
    snprintf(text, sizeof(text), "limit: user %s already has %d connection%s (%s); close "
             "some or raise %s", client->user[0] ? client->user : "(empty)", count - 1,
             count - 1 == 1 ? "" : "s", key, key);
    client_send_error(client, text);
    clog_warn(client, "%s", text);
    stats.clients_rejected++;
    close_after_flush(client, "connections per user over its limit");
}

const struct policy *client_policy_for(const struct config *config,
                                       const struct auth_user *account)
{
    const char *name = account != NULL ? auth_user_policy(account) : NULL;

    if (name != NULL)
        return policy_find(config->policies, name);
    return config->default_policy;
}

/* Sends the handshake reply, the agreed capability, and starts serving the client. */
static void admit(struct client *client, const struct auth_user *account)
{
    int pool_capability = qmux.pool->capability;
    int requested = client->requested_capability;
    uint8_t reply = (uint8_t)(requested < pool_capability ? requested : pool_capability);

    client->account = account;
    client->policy = client_policy_for(qmux.config, account);
    client->capability = reply;
    bufferevent_write(client->bev, &reply, 1);
    client->bytes_out += 1;

    if (client->handshake_timer != NULL) {
        event_free(client->handshake_timer);
        client->handshake_timer = NULL;
    }
    set_state(client, CLIENT_IDLE);
    clog_info(client, "logged in as user %s (%s), capability %d (requested %d)",
              client->user[0] ? client->user : "-",
              account != NULL ? "password checked" : "anonymous", reply, requested);
    enforce_user_limit(client);
    if (client->state != CLIENT_IDLE)
        return;
    bufferevent_enable(client->bev, EV_READ);
    client_process_input(client);
}

static void rejected_close(void *arg)
{
    client_close(arg, "login rejected");
}

/* A rejected login: kdb+ closes the connection without a reply, and the client reports
 * 'access. The close waits for the address's failed-login delay. */
static void reject_login(struct client *client, const char *why)
{
    if (client->handshake_timer != NULL) {
        event_free(client->handshake_timer);
        client->handshake_timer = NULL;
    }
    stats.logins_rejected++;
    clog_warn(client, "login rejected for user %s: %s", client->user[0] ? client->user : "-",
              why);
    unsigned delay = login_reject(client->login, rejected_close);
    if (delay > 0 && client->state != CLIENT_CLOSED)
        clog_info(client, "closing in %u ms, the failed-login delay of this address", delay);
}

static void login_done(void *arg, const struct auth_user *user, const char *failure)
{
    struct client *client = arg;

    if (user == NULL) {
        reject_login(client, failure);
        return;
    }
    if (!login_listener_allowed(user, AUTH_LISTENER_IPC)) {
        reject_login(client, "its listeners= option in auth.users_file does not name ipc");
        return;
    }
    login_end(client->login);
    client->login = NULL;
    admit(client, user);
}

static void read_handshake(struct client *client)
{
    struct evbuffer *input = bufferevent_get_input(client->bev);
    size_t available = evbuffer_get_length(input);
    size_t window = available < IPC_HANDSHAKE_MAX + 2 ? available : IPC_HANDSHAKE_MAX + 2;
    const uint8_t *bytes = evbuffer_pullup(input, (ev_ssize_t)window);
    struct ipc_handshake handshake;

    /* A TLS ClientHello on a plain connection would read as a strange login. */
    if (available > 0 && bytes[0] == TLS_HANDSHAKE_RECORD && !tls_is_tls(client->bev)) {
        client_close(client, "rejected: the client started TLS (first byte 0x16) on a plain "
                     "connection; set tls.mode to \"on\" or \"only\", or connect without "
                     "TLS");
        return;
    }

    int status = ipc_handshake_parse(bytes, window, IPC_HANDSHAKE_MAX, &handshake);
    if (status == IPC_HANDSHAKE_INCOMPLETE)
        return;
    if (status == IPC_HANDSHAKE_TOO_LONG) {
        client_close(client, "invalid handshake: no NUL within the first 1026 bytes");
        return;
    }
    log_sanitize(client->user, sizeof(client->user), (const char *)bytes, handshake.user_len);
    client->requested_capability = handshake.capability;

    if (!login_needs_check(qmux.config->users, qmux.config->listen_anonymous, bytes,
                           handshake.user_len)) {
        evbuffer_drain(input, handshake.length);
        client->bytes_in += handshake.length;
        admit(client, NULL);
        return;
    }

    /* Reading goes on, up to the read limit, so that a client that hangs up ends its check.
     * What it sends meanwhile waits in the input buffer. */
    set_state(client, CLIENT_LOGIN);
    client->login = login_begin_handshake(client->peer, bytes, &handshake, login_done, client);
    evbuffer_drain(input, handshake.length);
    client->bytes_in += handshake.length;
    if (client->login == NULL) {
        client_close(client, "out of memory while checking the password");
        return;
    }
    if (login_deferred(client->login))
        clog_info(client, "checking the password of user %s after the failed-login delay of "
                  "this address", client->user[0] ? client->user : "-");
}

static void read_cb(struct bufferevent *bev, void *arg)
{
    struct client *client = arg;

    (void)bev;
    event_base_gettimeofday_cached(qmux.base, &client->last_read);
    if (client->state == CLIENT_HANDSHAKE)
        read_handshake(client);
    if (client->state == CLIENT_IDLE || client->state == CLIENT_ACTIVE)
        client_process_input(client);
}

static void write_cb(struct bufferevent *bev, void *arg)
{
    struct client *client = arg;

    if (client->state == CLIENT_CLOSING) {
        if (evbuffer_get_length(bufferevent_get_output(bev)) == 0)
            client_close(client, client->close_reason);
        return;
    }
    if (client->serving != NULL && client->serving->read_paused)
        upconn_resume(client->serving);
}

/* Logs the protocol and cipher a TLS client agreed, once its TLS handshake is done. */
static void log_tls_session(struct client *client)
{
    char session[320];

    tls_describe_session(client->bev, session, sizeof(session));
    clog_info(client, "TLS handshake completed: %s", session);
}

/* Writes why the connection failed: the TLS reason when TLS reported one, else the
 * socket error. */
static void describe_error(struct client *client, char *reason, size_t size)
{
    char tls_reason[256];

    if (tls_describe_error(client->bev, tls_reason, sizeof(tls_reason)))
        snprintf(reason, size, "%s: %s", client->tls_established ? "TLS error"
                 : "TLS handshake failed", tls_reason);
    else
        snprintf(reason, size, "socket error: %s",
                 evutil_socket_error_to_string(EVUTIL_SOCKET_ERROR()));
}

static void event_cb(struct bufferevent *bev, short what, void *arg)
{
    struct client *client = arg;
    char reason[320];

    if (what & BEV_EVENT_CONNECTED) {
        client->tls_established = 1;
        log_tls_session(client);
        return;
    }
    if (!(what & (BEV_EVENT_EOF | BEV_EVENT_ERROR | BEV_EVENT_TIMEOUT)))
        return;

    size_t buffered = evbuffer_get_length(bufferevent_get_input(bev));
    if (what & BEV_EVENT_TIMEOUT)
        snprintf(reason, sizeof(reason), "output made no progress for %d ms "
                 "(clients.send_timeout_ms); the client stopped reading",
                 qmux.config->send_timeout_ms);
    else if (what & BEV_EVENT_ERROR)
        describe_error(client, reason, sizeof(reason));
    else if (client->state == CLIENT_HANDSHAKE && tls_is_tls(bev) && !client->tls_established)
        snprintf(reason, sizeof(reason), "disconnected during the TLS handshake");
    else if (client->state == CLIENT_HANDSHAKE)
        snprintf(reason, sizeof(reason), "disconnected during the handshake");
    else if (client->state == CLIENT_LOGIN)
        snprintf(reason, sizeof(reason), "disconnected while its login was checked");
    else if (client->head_parsed && buffered < client->head.length)
        snprintf(reason, sizeof(reason), "disconnected mid-message (%zu of %" PRIu64
                 " bytes received)", buffered, client->head.length);
    else if (client->state == CLIENT_ACTIVE)
        snprintf(reason, sizeof(reason), "disconnected while its request was in flight");
    else if (client->state == CLIENT_QUEUED)
        snprintf(reason, sizeof(reason), "disconnected while its request was queued");
    else
        snprintf(reason, sizeof(reason), "disconnected");
    client_close(client, reason);
}

static void handshake_timeout_cb(evutil_socket_t fd, short what, void *arg)
{
    struct client *client = arg;
    char reason[96];

    (void)fd;
    (void)what;
    snprintf(reason, sizeof(reason), "handshake not completed within %d ms "
             "(clients.handshake_timeout_ms)", qmux.config->handshake_timeout_ms);
    client_close(client, reason);
}

/* A write that makes no progress for clients.send_timeout_ms raises BEV_EVENT_TIMEOUT. */
static void set_send_timeout(struct client *client)
{
    int ms = qmux.config->send_timeout_ms;
    struct timeval timeout = { ms / 1000, (ms % 1000) * 1000 };

    if (ms > 0)
        bufferevent_set_timeouts(client->bev, NULL, &timeout);
}

/* Returns 1 when the peer is on this host: a loopback address, or the address the
 * connection arrived on. kdb+ (4.1 and later) treats such peers as local and never
 * compresses for them. */
static int peer_is_local(evutil_socket_t fd, const struct sockaddr *peer)
{
    struct sockaddr_storage own;
    socklen_t own_length = sizeof(own);

    if (peer->sa_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)peer;

        if ((ntohl(in->sin_addr.s_addr) >> 24) == 127)
            return 1;
    } else if (peer->sa_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)peer;

        if (IN6_IS_ADDR_LOOPBACK(&in6->sin6_addr))
            return 1;
        if (IN6_IS_ADDR_V4MAPPED(&in6->sin6_addr) && in6->sin6_addr.s6_addr[12] == 127)
            return 1;
    } else {
        return 1;   /* a Unix domain socket */
    }

    if (getsockname(fd, (struct sockaddr *)&own, &own_length) != 0 ||
        own.ss_family != peer->sa_family)
        return 0;
    if (peer->sa_family == AF_INET)
        return ((const struct sockaddr_in *)&own)->sin_addr.s_addr ==
               ((const struct sockaddr_in *)peer)->sin_addr.s_addr;
    return memcmp(&((const struct sockaddr_in6 *)&own)->sin6_addr,
                  &((const struct sockaddr_in6 *)peer)->sin6_addr, sizeof(struct in6_addr)) == 0;
}

static void format_peer(const struct sockaddr *address, socklen_t length, char *out, size_t size)
{
    char host[48];   /* INET6_ADDRSTRLEN */
    char port[8];

    if (getnameinfo(address, length, host, sizeof(host), port, sizeof(port),
                    NI_NUMERICHOST | NI_NUMERICSERV) != 0) {
        snprintf(out, size, "unknown");
        return;
    }
    if (address->sa_family == AF_INET6)
        snprintf(out, size, "[%s]:%s", host, port);
    else
        snprintf(out, size, "%s:%s", host, port);
}

static int start_handshake_timer(struct client *client)
{
    int ms = qmux.config->handshake_timeout_ms;

    if (ms == 0)
        return 0;
    client->handshake_timer = evtimer_new(qmux.base, handshake_timeout_cb, client);
    if (client->handshake_timer == NULL)
        return -1;

    struct timeval timeout = { ms / 1000, (ms % 1000) * 1000 };
    return evtimer_add(client->handshake_timer, &timeout);
}

/* Allocates a client in state HANDSHAKE and links it into qmux.clients. */
static struct client *client_new(const char *peer, int local)
{
    struct client *client = calloc(1, sizeof(*client));

    if (client == NULL)
        return NULL;
    stats.clients_accepted++;
    client->id = qmux_next_id();
    snprintf(client->peer, sizeof(client->peer), "%s", peer);
    client->local = local;
    gettimeofday(&client->connected_at, NULL);
    client->last_read = client->connected_at;
    client->state = CLIENT_HANDSHAKE;
    TAILQ_INSERT_TAIL(&qmux.clients, client, list_link);
    qmux.client_count++;
    return client;
}

/* Keeps qmux.output_total, the bytes in all client output buffers, up to date, and wakes
 * the connections paused by clients.max_output_total once it is below half the limit.
 * The wake-up runs from an event, outside libevent's write path. */
static void output_changed_cb(struct evbuffer *buffer, const struct evbuffer_cb_info *info,
                              void *arg)
{
    struct client *client = arg;

    (void)buffer;
    client->output_added += info->n_added;
    client->output_sent += info->n_deleted;
    qmux.output_total += info->n_added;
    qmux.output_total -= info->n_deleted;
    if (info->n_deleted > 0 && !TAILQ_EMPTY(&qmux.output_waiters) &&
        qmux.output_total < qmux.config->max_output_total / 2)
        event_active(qmux.output_resume, EV_TIMEOUT, 0);
}

/* Installs the callbacks, watermarks and timeouts on client->bev and starts reading. */
static void client_start_io(struct client *client)
{
    client->output_entry = evbuffer_add_cb(bufferevent_get_output(client->bev),
                                           output_changed_cb, client);
    bufferevent_setcb(client->bev, read_cb, write_cb, event_cb, client);
    bufferevent_setwatermark(client->bev, EV_WRITE, qmux.config->output_low_watermark, 0);
    /* libevent 2.1 writes at most 16 KiB per call by default; large results stream with
     * far fewer system calls in bigger writes. */
    bufferevent_set_max_single_write(client->bev, CLIENT_WRITE_CHUNK);
    set_read_limit(client, 0);
    set_send_timeout(client);
    bufferevent_enable(client->bev, EV_READ | EV_WRITE);
}

/* Serves fd in plain kdb+ IPC. Returns 0, or -1 after closing the client. */
static int start_plain(struct client *client, evutil_socket_t fd)
{
    client->bev = bufferevent_socket_new(qmux.base, fd, BEV_OPT_CLOSE_ON_FREE);
    if (client->bev == NULL) {
        evutil_closesocket(fd);
        client_close(client, "out of memory while accepting");
        return -1;
    }
    client_start_io(client);
    return 0;
}

/* Serves fd with TLS: the TLS handshake runs first, then the kdb+ handshake as usual.
 * Returns 0, or -1 after closing the client. */
static int start_tls(struct client *client, evutil_socket_t fd)
{
    SSL *ssl = tls_new_client_ssl();

    if (ssl != NULL)
        client->bev = bufferevent_openssl_socket_new(qmux.base, fd, ssl,
                                                     BUFFEREVENT_SSL_ACCEPTING,
                                                     BEV_OPT_CLOSE_ON_FREE);
    /* On failure libevent has freed ssl but left fd open. */
    if (client->bev == NULL) {
        evutil_closesocket(fd);
        client_close(client, "out of memory while starting TLS");
        return -1;
    }
    tls_allow_dirty_shutdown(client->bev);
    client_start_io(client);
    return 0;
}

static void stop_sniffing(struct client *client)
{
    if (client->tls_sniff == NULL)
        return;
    evutil_socket_t fd = event_get_fd(client->tls_sniff);

    event_free(client->tls_sniff);
    client->tls_sniff = NULL;
    if (client->bev == NULL)
        evutil_closesocket(fd);
}

/* Closes a client whose first byte is not a TLS handshake while tls.mode is "only",
 * as kdb+ started with -E 2 does. */
static void reject_plain(struct client *client, uint8_t first)
{
    char reason[200];

    stats.clients_rejected++;
    snprintf(reason, sizeof(reason), "rejected: plain connection (first byte 0x%02x) while "
             "tls.mode is \"only\"; the client must connect with TLS, as q does with "
             "hopen `:tcps://host:port", first);
    client_close(client, reason);
}

/* Runs when the first byte of a client arrives with tls.mode "on" or "only": a TLS
 * handshake record starts TLS, anything else is plain kdb+ IPC or rejected. */
static void sniff_cb(evutil_socket_t fd, short what, void *arg)
{
    struct client *client = arg;
    uint8_t first;
    char reason[160];

    (void)what;
    ssize_t n = recv(fd, &first, 1, MSG_PEEK);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
        return;   /* the persistent event waits for the byte */

    if (n == 0) {
        client_close(client, "disconnected before sending a byte");
        return;
    }
    if (n < 0) {
        snprintf(reason, sizeof(reason), "socket error: %s", strerror(errno));
        client_close(client, reason);
        return;
    }
    if (first != TLS_HANDSHAKE_RECORD && qmux.config->tls_mode == TLS_MODE_ONLY) {
        reject_plain(client, first);
        return;
    }

    /* The socket now passes to a bufferevent. */
    event_free(client->tls_sniff);
    client->tls_sniff = NULL;
    if (first == TLS_HANDSHAKE_RECORD)
        start_tls(client, fd);
    else
        start_plain(client, fd);
}

/*
 * Waits for the client's first byte before choosing TLS or plain. A kdb+ client speaks
 * first, and its plain handshake never starts with 0x16, because a user name does not
 * start with a control character and a capability byte is at most 6. The handshake timer
 * bounds the wait. Returns 0, or -1 after closing the client.
 */
static int start_sniffing(struct client *client, evutil_socket_t fd)
{
    client->tls_sniff = event_new(qmux.base, fd, EV_READ | EV_PERSIST, sniff_cb, client);
    if (client->tls_sniff == NULL || event_add(client->tls_sniff, NULL) != 0) {
        if (client->tls_sniff == NULL)
            evutil_closesocket(fd);
        client_close(client, "out of memory while accepting");
        return -1;
    }
    return 0;
}

static void accept_cb(struct evconnlistener *listener, evutil_socket_t fd,
                      struct sockaddr *address, int length, void *arg)
{
    char peer[64];

    (void)listener;
    (void)arg;
    format_peer(address, (socklen_t)length, peer, sizeof(peer));
    if (qmux.client_count >= qmux.config->max_clients) {
        stats.clients_rejected++;
        log_warn("rejecting connection from %s: %d clients connected, the "
                 "clients.max_clients limit; raise it to admit more", peer, qmux.client_count);
        evutil_closesocket(fd);
        return;
    }

    struct client *client = client_new(peer, peer_is_local(fd, address));
    if (client == NULL) {
        log_error("rejecting connection from %s: out of memory", peer);
        evutil_closesocket(fd);
        return;
    }

    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    int started = qmux.config->tls_mode == TLS_MODE_OFF ? start_plain(client, fd)
                                                        : start_sniffing(client, fd);
    if (started != 0)
        return;
    if (start_handshake_timer(client) != 0) {
        client_close(client, "out of memory while accepting");
        return;
    }
    clog_debug(client, "connected");
}

struct client *client_attach(struct bufferevent *bev, const char *peer, const char *user,
                             int capability, const struct auth_user *account)
{
    struct client *client = client_new(peer, 1);

    if (client == NULL)
        return NULL;
    client->bev = bev;
    log_sanitize(client->user, sizeof(client->user), user, strlen(user));
    client->capability = capability;
    client->http = 1;
    client->account = account;
    client->policy = client_policy_for(qmux.config, account);
    client_start_io(client);
    set_state(client, CLIENT_IDLE);
    clog_debug(client, "attached as user %s, capability %d", client->user, capability);
    return client;
}

/* Returns why client may not stay under config, or NULL when it may. */
static const char *rebind_rejection(const struct client *client, const struct config *config,
                                  const struct auth_user **account)
{
    unsigned listener = client->http ? AUTH_LISTENER_HTTP : AUTH_LISTENER_IPC;
    int anonymous = client->http ? config->http_anonymous : config->listen_anonymous;
    const char *name = client->user;

    *account = NULL;
    if (client->account != NULL) {
        name = auth_user_name(client->account);
        *account = auth_find_user(config->users, name, strlen(name));
        if (*account == NULL)
            return "its account was removed from auth.users_file by a reload";
        if (!login_listener_allowed(*account, listener))
            return "its listeners= option no longer names this listener after a reload";
        return NULL;
    }
    if (config->users == NULL)
        return NULL;
    if (!anonymous)
        return "anonymous logins are off after a reload";
    if (auth_find_user(config->users, name, strlen(name)) != NULL)
        return "its user name has an account after a reload; log in with its password";
    return NULL;
}

void client_rebind_all(const struct config *new_config)
{
    struct client *client;
    struct client *next;

    for (client = TAILQ_FIRST(&qmux.clients); client != NULL; client = next) {
        const struct auth_user *account;

        next = TAILQ_NEXT(client, list_link);
        if (client->state == CLIENT_HANDSHAKE || client->state == CLIENT_LOGIN)
            continue;
        const char *rejection = rebind_rejection(client, new_config, &account);
        if (rejection != NULL) {
            client_close(client, rejection);
            continue;
        }
        client->account = account;
        client->policy = client_policy_for(new_config, account);
    }
}

/* How long accepting pauses when the process or the system runs out of descriptors. */
#define ACCEPT_PAUSE_MS 100

static struct event *accept_resume_timer;
static struct log_limit accept_error_limit = { .interval_seconds = 10 };

/* Pauses the listener briefly when out of descriptors; a closing client frees one. */
static void pause_accepting(void)
{
    qmux_pause_listener(qmux.listener, &accept_resume_timer, ACCEPT_PAUSE_MS);
}

static void accept_error_cb(struct evconnlistener *listener, void *arg)
{
    int error = EVUTIL_SOCKET_ERROR();

    (void)arg;
    (void)listener;
    if (error == EMFILE || error == ENFILE) {
        log_limited(&accept_error_limit, LOG_LEVEL_ERROR, "accept failed: %s with %d clients "
                    "connected; pausing accepts for %d ms. Raise the open-file limit "
                    "(LimitNOFILE, ulimit -n) or lower clients.max_clients",
                    evutil_socket_error_to_string(error), qmux.client_count, ACCEPT_PAUSE_MS);
        pause_accepting();
        return;
    }
    log_limited(&accept_error_limit, LOG_LEVEL_ERROR, "accept failed: %s",
                evutil_socket_error_to_string(error));
}

void client_listen_close(void)
{
    if (accept_resume_timer != NULL)
        event_free(accept_resume_timer);
    accept_resume_timer = NULL;
    if (qmux.listener != NULL)
        evconnlistener_free(qmux.listener);
    qmux.listener = NULL;
}

int client_listen(void)
{
    const struct config *config = qmux.config;
    struct sockaddr_storage address;
    int length = sizeof(address);
    char text[300];

    if (strchr(config->listen_address, ':') != NULL)
        snprintf(text, sizeof(text), "[%s]:%d", config->listen_address, config->listen_port);
    else
        snprintf(text, sizeof(text), "%s:%d", config->listen_address, config->listen_port);
    if (evutil_parse_sockaddr_port(text, (struct sockaddr *)&address, &length) != 0) {
        log_error("invalid listen.address \"%s\": expected a numeric IPv4 or IPv6 address",
                  config->listen_address);
        return -1;
    }

    unsigned flags = LEV_OPT_REUSEABLE | LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC;
    qmux.listener = evconnlistener_new_bind(qmux.base, accept_cb, NULL, flags,
                                            config->listen_backlog,
                                            (struct sockaddr *)&address, length);
    if (qmux.listener == NULL) {
        log_error("cannot listen on %s: %s; check listen.address and listen.port", text,
                  evutil_socket_error_to_string(EVUTIL_SOCKET_ERROR()));
        return -1;
    }
    evconnlistener_set_error_cb(qmux.listener, accept_error_cb);
    log_info("listening on %s", text);
    return 0;
}
