/*
 * upstream.c - one pooled connection to an upstream kdb+: connect, login, relay of the
 * messages it sends, and reconnect with exponential backoff and jitter.
 */
#include "upstream.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent_ssl.h>
#include <event2/dns.h>
#include <event2/event.h>

#include "client.h"
#include "convert.h"
#include "direct_write.h"
#include "ipc.h"
#include "log.h"
#include "pool.h"
#include "qmux.h"
#include "stats.h"
#include "tls.h"

/* Most bytes read from an upstream socket per call, and written to one per call: large
 * transfers keep the system-call count low when a big result streams through. */
#define UPSTREAM_READ_CHUNK (256 * 1024)
#define UPSTREAM_WRITE_CHUNK (256 * 1024)

/* Messages of 2^31 bytes and more need capability 5 or 6 on the receiving side. */
#define LARGE_MESSAGE (UINT64_C(1) << 31)

static void write_cb(struct bufferevent *bev, void *arg);
static void event_cb(struct bufferevent *bev, short what, void *arg);

static const char *const state_names[] = {
    [UPCONN_DOWN] = "down",
    [UPCONN_CONNECTING] = "connecting",
    [UPCONN_LOGIN] = "login",
    [UPCONN_IDLE] = "idle",
    [UPCONN_BUSY] = "busy",
};

const char *upconn_state_name(enum upconn_state state)
{
    return state_names[state];
}

void upconn_set_state(struct upconn *conn, enum upconn_state state)
{
    ulog_debug(conn, "state %s -> %s", state_names[conn->state], state_names[state]);
    if (conn->state == UPCONN_BUSY)
        conn->backend->busy_count--;
    if (state == UPCONN_BUSY)
        conn->backend->busy_count++;
    if (conn->state == UPCONN_IDLE || conn->state == UPCONN_BUSY)
        qmux.pool->logged_in--;
    if (state == UPCONN_IDLE || state == UPCONN_BUSY)
        qmux.pool->logged_in++;
    conn->state = state;
    gettimeofday(&conn->since, NULL);
}

static double seconds_since(const struct timeval *start)
{
    struct timeval now;

    gettimeofday(&now, NULL);
    return (double)(now.tv_sec - start->tv_sec) + (double)(now.tv_usec - start->tv_usec) / 1e6;
}

/* Moves n bytes between evbuffers; evbuffer_remove_buffer() counts in int. */
static void move_bytes(struct evbuffer *from, struct evbuffer *to, uint64_t n)
{
    while (n > 0) {
        size_t chunk = n > (UINT64_C(1) << 30) ? ((size_t)1 << 30) : (size_t)n;
        int moved = evbuffer_remove_buffer(from, to, chunk);

        if (moved <= 0)
            break;
        n -= (uint64_t)moved;
    }
}

static void output_add(struct upconn *conn, const void *data, size_t length)
{
    evbuffer_add(bufferevent_get_output(conn->bev), data, length);
    conn->output_appended += length;
}

static void send_error_upstream(struct upconn *conn, const char *text)
{
    uint8_t message[IPC_ERROR_MESSAGE_MAX];

    output_add(conn, message, ipc_error_message(message, sizeof(message), text));
}

/* Sends text as a sync request whose body is a char vector, as q's h"text" does. */
static void send_query_upstream(struct upconn *conn, const char *text)
{
    size_t text_len = strlen(text);
    uint8_t header[IPC_HEADER_SIZE];
    uint8_t vector[6] = { 10, 0, (uint8_t)text_len, (uint8_t)(text_len >> 8),
                          (uint8_t)(text_len >> 16), (uint8_t)(text_len >> 24) };

    ipc_header_write(header, IPC_SYNC, IPC_HEADER_SIZE + sizeof(vector) + text_len);
    output_add(conn, header, sizeof(header));
    output_add(conn, vector, sizeof(vector));
    output_add(conn, text, text_len);
}

/* Returns the delay before the next attempt: a base of pool.reconnect_min_ms doubled per
 * failure, plus random jitter of up to half the base, capped at pool.reconnect_max_ms.
 * The jitter keeps connections lost together from reconnecting at the same moment. */
static long backoff_ms(const struct upconn *conn)
{
    const struct config *config = qmux.config;
    long base = config->reconnect_min_ms;

    for (int i = 1; i < conn->failures && base < config->reconnect_max_ms; i++)
        base *= 2;

    long half = base / 2;
    long delay = base + (half > 0 ? random() % (half + 1) : 0);
    return delay < config->reconnect_max_ms ? delay : config->reconnect_max_ms;
}

static void arm_timer(struct upconn *conn, long ms)
{
    struct timeval delay = { ms / 1000, (ms % 1000) * 1000 };

    evtimer_add(conn->timer, &delay);
}

static void finish_login(struct upconn *conn, int capability)
{
    evtimer_del(conn->timer);
    conn->capability = capability;

    if (!conn->ever_connected && conn->failures > 0)
        ulog_info(conn, "connected after %d failed attempt%s and %.1f s, capability %d",
                  conn->failures, conn->failures == 1 ? "" : "s",
                  seconds_since(&conn->down_since), capability);
    else if (!conn->ever_connected)
        ulog_info(conn, "connected, capability %d", capability);
    else if (conn->failures > 0)
        ulog_info(conn, "reconnected after %d attempt%s and %.1f s down, capability %d",
                  conn->failures, conn->failures == 1 ? "" : "s",
                  seconds_since(&conn->down_since), capability);
    else
        ulog_info(conn, "reconnected, capability %d", capability);

    /* failures is reset by the first answered request, not here: a connection that logs
     * in and then dies on every request keeps backing off longer, so a failing upstream
     * drops out of use instead of taking each request down with it. */
    conn->ever_connected = 1;
    stats.upstream_logins++;
    conn->last_error[0] = '\0';
    pool_note_capability(qmux.pool, capability);
    pool_release(qmux.pool, conn);
}

/* Reads the one-byte login reply. Returns 1 when logged in. */
static int read_login_reply(struct upconn *conn)
{
    struct evbuffer *input = conn->input;
    uint8_t reply;

    if (evbuffer_remove(input, &reply, 1) != 1)
        return 0;
    if (reply > qmux.config->pool_capability) {
        char reason[96];

        snprintf(reason, sizeof(reason), "login reply has capability %d, above the %d requested",
                 reply, qmux.config->pool_capability);
        upconn_close(conn, reason);
        return 0;
    }
    finish_login(conn, reply);
    return 1;
}

/* Sets conn->convert for the message about to be relayed to client; a message too large
 * to convert is streamed as it is when that is safe, or answered with 'limit. */
static void choose_conversion(struct upconn *conn, struct client *client,
                              const struct ipc_header *header)
{
    uint64_t limit = qmux.config->compression_max_size;

    conn->convert = convert_needed(client, header);
    if (conn->convert == CONVERT_NONE || header->length <= limit)
        return;

    /* NOTE: a response too large to check goes to a capability 1..2 client unchecked, and
     * to a capability 0 client unchecked when it is not compressed. */
    if (conn->convert == CONVERT_COMPRESS || !header->compressed || client->capability > 0) {
        conn->convert = CONVERT_NONE;
        return;
    }
    conn->convert = CONVERT_NONE;
    conn->discarding = 1;
    snprintf(conn->error_text, sizeof(conn->error_text), "limit: compressed response of %"
             PRIu64 " bytes is over clients.compression_max_size (%" PRIu64 "); connect with "
             "capability 1 or more to receive it compressed", header->length, limit);
    conn->deferred_error = conn->error_text;
}

/* Converts the collected message into the client's output. */
static void finish_conversion(struct upconn *conn, struct client *client)
{
    struct evbuffer *output = bufferevent_get_output(client->bev);
    if (!conn->relayed_any)
        client_response_begins(client);
    uint64_t sent = convert_message(conn->convert, client->capability, conn->collected, output,
                                    conn->error_text, sizeof(conn->error_text));

    conn->convert = CONVERT_NONE;
    if (sent == 0) {
        clog_warn(client, "cannot convert a response: %s", conn->error_text);
        conn->deferred_error = conn->error_text;
        return;
    }
    client->bytes_out += sent;
    stats.bytes_to_clients += sent;
    conn->relayed_any = 1;
}

/* Decides where the message whose header is at the front of the input goes. Returns 0
 * when conn was closed. */
static int begin_message(struct upconn *conn)
{
    struct evbuffer *input = conn->input;
    uint8_t raw[IPC_HEADER_SIZE];
    struct ipc_header header;

    evbuffer_copyout(input, raw, sizeof(raw));
    int status = ipc_header_parse(raw, &header);
    if (status != IPC_OK) {
        char reason[160];

        snprintf(reason, sizeof(reason), "invalid message header from upstream: %s "
                 "(bytes %02x %02x %02x %02x)", ipc_status_text(status),
                 raw[0], raw[1], raw[2], raw[3]);
        upconn_close(conn, reason);
        return 0;
    }

    conn->message_remaining = header.length;
    conn->message_type = header.type;
    conn->discarding = 0;

    struct client *client = conn->client;
    if (conn->state != UPCONN_BUSY) {
        ulog_warn(conn, "discarding unsolicited %s message of %" PRIu64 " bytes (no request "
                  "in flight)", ipc_msg_type_name(header.type), header.length);
        conn->discarding = 1;
    } else if (client == NULL) {
        conn->discarding = 1;
    } else if (header.length >= LARGE_MESSAGE && client->capability < 5) {
        conn->discarding = 1;
        conn->deferred_error = "limit";
        clog_warn(client, "response of %" PRIu64 " bytes needs capability 5 or more, client "
                  "agreed %d; sending 'limit", header.length, client->capability);
    } else {
        choose_conversion(conn, client, &header);
        if (header.type == IPC_SYNC && !conn->discarding)
            client->nested_open++;
    }
    return 1;
}

/* Acts on the end of the message just relayed. Returns 0 when the relay loop must stop. */
static int end_message(struct upconn *conn)
{
    int discarded = conn->discarding;

    if (conn->convert != CONVERT_NONE && !discarded && conn->client != NULL)
        finish_conversion(conn, conn->client);
    conn->convert = CONVERT_NONE;
    if (conn->message_type != IPC_RESPONSE)
        conn->deferred_error = NULL;   /* only the response can carry an error to the client */
    if (conn->collected != NULL)
        evbuffer_drain(conn->collected, evbuffer_get_length(conn->collected));
    conn->discarding = 0;
    if (discarded && conn->message_type == IPC_SYNC) {
        /* kdb+ blocks until its sync request gets a response, so send one for the
         * missing client. */
        send_error_upstream(conn, "qmux: no client to answer this request");
        return 1;
    }
    if (conn->message_type != IPC_RESPONSE || conn->state != UPCONN_BUSY)
        return 1;

    struct client *client = conn->client;
    const char *deferred_error = conn->deferred_error;

    evtimer_del(conn->timer);
    conn->client = NULL;
    conn->client_gone = 0;
    conn->relayed_any = 0;
    conn->deferred_error = NULL;
    conn->failures = 0;
    if (conn->health_check)
        conn->health_check = 0;
    else
        conn->requests_served++;
    if (client != NULL)
        client->serving = NULL;

    /* The oldest waiter gets the connection before this client's next request, unless a
     * reload removed the connection while the request was in flight. */
    if (conn->retiring)
        upconn_close(conn, "removed from the pool by a reload");
    else if (conn->reconnect_after)
        upconn_replace(conn, "replaced on request (reconnect)");
    else
        pool_release(qmux.pool, conn);

    if (client != NULL) {
        if (deferred_error != NULL)
            client_fail_request(client, deferred_error);
        else
            client_request_done(client);
    }
    return conn->bev != NULL;
}

static struct log_limit output_total_limit = { .interval_seconds = 10 };

/* Returns 1 when reading for client must pause: its own output buffer passed
 * clients.output_high_watermark, or all client output buffers together passed
 * clients.max_output_total (then *global is set). */
static int output_over_watermark(const struct client *client, int *global)
{
    struct evbuffer *output = bufferevent_get_output(client->bev);

    *global = 0;
    if (evbuffer_get_length(output) >= qmux.config->output_high_watermark)
        return 1;
    if (qmux.output_total < qmux.config->max_output_total)
        return 0;

    *global = 1;
    log_limited(&output_total_limit, LOG_LEVEL_WARN, "client output buffers hold %" PRIu64
                " bytes, over clients.max_output_total (%" PRIu64 "); upstream reads pause "
                "until they drain below half", qmux.output_total,
                qmux.config->max_output_total);
    return 1;
}

/* Stops taking bytes from the socket: the read event of the plain path, or the TLS
 * bufferevent. */
static void stop_socket_reads(struct upconn *conn)
{
    if (conn->read_event != NULL)
        event_del(conn->read_event);
    else
        bufferevent_disable(conn->bev, EV_READ);
}

static void resume_socket_reads(struct upconn *conn)
{
    if (conn->read_event != NULL)
        event_add(conn->read_event, NULL);
    else
        bufferevent_enable(conn->bev, EV_READ);
}

static void pause_reading(struct upconn *conn, int global)
{
    conn->read_paused = 1;
    stop_socket_reads(conn);
    if (global && !conn->paused_globally) {
        conn->paused_globally = 1;
        TAILQ_INSERT_TAIL(&qmux.output_waiters, conn, output_link);
    }
}

static void forget_global_pause(struct upconn *conn)
{
    if (!conn->paused_globally)
        return;
    conn->paused_globally = 0;
    TAILQ_REMOVE(&qmux.output_waiters, conn, output_link);
}

/* Adds n bytes of the message to conn->collected. Returns 0 when conn was closed. */
static int collect(struct upconn *conn, struct evbuffer *input, uint64_t n)
{
    if (conn->collected == NULL)
        conn->collected = evbuffer_new();
    if (conn->collected == NULL) {
        upconn_close(conn, "out of memory while collecting a response to convert");
        return 0;
    }
    move_bytes(input, conn->collected, n);
    return 1;
}

/* Frames and relays everything buffered from upstream. */
static void relay(struct upconn *conn)
{
    struct evbuffer *input = conn->input;
    int global;

    while (conn->bev != NULL && !conn->read_paused) {
        size_t available = evbuffer_get_length(input);

        if (conn->message_remaining == 0) {
            if (available < IPC_HEADER_SIZE || !begin_message(conn))
                return;
        }
        if (available == 0)
            return;

        uint64_t n = available < conn->message_remaining ? available : conn->message_remaining;
        struct client *client = conn->client;
        if (conn->discarding) {
            evbuffer_drain(input, (size_t)n);
        } else if (conn->convert != CONVERT_NONE) {
            if (!collect(conn, input, n))
                return;
        } else {
            if (!conn->relayed_any)
                client_response_begins(client);
            size_t direct = direct_write(client->bev, input, (size_t)n);

            /* Bytes that went straight to the socket count as added and sent at once. */
            client->output_added += direct;
            client->output_sent += direct;
            client->bytes_out += n;
            stats.bytes_to_clients += n;
            conn->relayed_any = 1;
        }
        conn->message_remaining -= n;

        if (conn->message_remaining == 0) {
            if (!end_message(conn))
                return;
        } else if (!conn->discarding && conn->convert == CONVERT_NONE &&
                   output_over_watermark(client, &global)) {
            pause_reading(conn, global);
        }
    }
}

/*
 * Reads what the socket holds, up to UPSTREAM_READ_CHUNK, into conn->input. libevent 2.1's
 * bufferevents read at most 4 KiB per call, so a 1 GB result would cost 250,000 reads.
 * Returns the bytes read, 0 at end of file, or -1 with errno set (EAGAIN: nothing yet).
 */
static ssize_t read_socket(struct upconn *conn, evutil_socket_t fd)
{
    int available = 0;
    struct evbuffer_iovec space[2];

    if (ioctl(fd, FIONREAD, &available) != 0 || available <= 0)
        available = 4096;
    if (available > UPSTREAM_READ_CHUNK)
        available = UPSTREAM_READ_CHUNK;

    int count = evbuffer_reserve_space(conn->input, available, space, 2);
    if (count <= 0) {
        errno = ENOMEM;
        return -1;
    }
    struct iovec vectors[2];
    for (int i = 0; i < count; i++) {
        vectors[i].iov_base = space[i].iov_base;
        vectors[i].iov_len = space[i].iov_len;
    }

    ssize_t n = readv(fd, vectors, count);
    if (n <= 0)
        return n;

    /* Commit exactly what arrived: trim the reserved extents to n bytes. */
    size_t left = (size_t)n;
    for (int i = 0; i < count; i++) {
        if (space[i].iov_len > left)
            space[i].iov_len = left;
        left -= space[i].iov_len;
    }
    evbuffer_commit_space(conn->input, space, count);
    return n;
}

/* Acts on new bytes in conn->input: the login reply, then the messages to relay. */
static void handle_input(struct upconn *conn)
{
    if (conn->state == UPCONN_LOGIN && !read_login_reply(conn))
        return;
    if (conn->bev != NULL)
        relay(conn);
}

static void read_event_cb(evutil_socket_t fd, short what, void *arg)
{
    struct upconn *conn = arg;
    char reason[256];

    (void)what;
    ssize_t n = read_socket(conn, fd);
    if (n == 0) {
        if (conn->state == UPCONN_LOGIN)
            snprintf(reason, sizeof(reason), "login rejected by upstream (check user and "
                     "password of upstreams entry %d)", conn->backend->index + 1);
        else
            snprintf(reason, sizeof(reason), "connection closed by upstream");
        upconn_close(conn, reason);
        return;
    }
    if (n < 0) {
        if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
            return;
        if (conn->state == UPCONN_LOGIN && errno == ECONNRESET)
            snprintf(reason, sizeof(reason), "connection reset during the login; a kdb+ that "
                     "serves TLS only (-E 2) resets plain connections, so set "
                     "upstream_tls.enabled if it does");
        else
            snprintf(reason, sizeof(reason), "socket error: %s", strerror(errno));
        upconn_close(conn, reason);
        return;
    }
    handle_input(conn);
}

/* Reads through a TLS bufferevent, which must decrypt what the socket holds. Its input
 * buffer chains move to conn->input without copying. End of file and errors arrive at
 * event_cb. */
static void tls_read_cb(struct bufferevent *bev, void *arg)
{
    struct upconn *conn = arg;

    evbuffer_add_buffer(conn->input, bufferevent_get_input(bev));
    handle_input(conn);
}

/* Starts reading the connected socket with read_event_cb instead of the bufferevent,
 * or, with TLS, with tls_read_cb through it. */
static int start_reading(struct upconn *conn)
{
    evutil_socket_t fd = bufferevent_getfd(conn->bev);

    conn->input = evbuffer_new();
    if (conn->input != NULL && tls_is_tls(conn->bev)) {
        bufferevent_setcb(conn->bev, tls_read_cb, write_cb, event_cb, conn);
        return bufferevent_enable(conn->bev, EV_READ);
    }
    conn->read_event = event_new(qmux.base, fd, EV_READ | EV_PERSIST, read_event_cb, conn);
    if (conn->input == NULL || conn->read_event == NULL)
        return -1;
    return event_add(conn->read_event, NULL);
}

/* Frees the read event and the input buffer of a closing connection. */
static void stop_reading(struct upconn *conn)
{
    if (conn->read_event != NULL)
        event_free(conn->read_event);
    if (conn->input != NULL)
        evbuffer_free(conn->input);
    conn->read_event = NULL;
    conn->input = NULL;
}

static void send_login(struct upconn *conn)
{
    const struct backend *backend = conn->backend;
    uint8_t tail[2] = { (uint8_t)qmux.config->pool_capability, 0 };

    output_add(conn, backend->user, strlen(backend->user));
    if (backend->password[0] != '\0') {
        output_add(conn, ":", 1);
        output_add(conn, backend->password, strlen(backend->password));
    }
    output_add(conn, tail, sizeof(tail));
    upconn_set_state(conn, UPCONN_LOGIN);
}

static void set_socket_options(struct bufferevent *bev)
{
    int one = 1;
    evutil_socket_t fd = bufferevent_getfd(bev);

    if (fd < 0)
        return;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    /* The kernel then detects an upstream host that vanished without closing. */
    setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof(one));
}

static void describe_event(struct upconn *conn, short what, char *reason, size_t size)
{
    int error = EVUTIL_SOCKET_ERROR();
    int dns_error = bufferevent_socket_get_dns_error(conn->bev);
    char tls_reason[160];
    int tls_failed = tls_describe_error(conn->bev, tls_reason, sizeof(tls_reason));

    if (dns_error != 0)
        snprintf(reason, size, "cannot resolve %s: %s", conn->backend->host,
                 evutil_gai_strerror(dns_error));
    else if (tls_failed && conn->state == UPCONN_CONNECTING)
        snprintf(reason, size, "TLS handshake failed: %s; check upstream_tls and that the "
                 "upstream serves TLS", tls_reason);
    else if (tls_failed)
        snprintf(reason, size, "TLS error: %s", tls_reason);
    else if (conn->state == UPCONN_CONNECTING && tls_is_tls(conn->bev) && error == 0)
        snprintf(reason, size, "connection closed during the TLS handshake; check that the "
                 "upstream serves TLS (kdb+ -E 1 or -E 2)");
    else if (conn->state == UPCONN_CONNECTING)
        snprintf(reason, size, "connect failed: %s", evutil_socket_error_to_string(error));
    else if (conn->state == UPCONN_LOGIN && (what & BEV_EVENT_EOF))
        snprintf(reason, size, "login rejected by upstream (check user and password of "
                 "upstreams entry %d)", conn->backend->index + 1);
    else if (what & BEV_EVENT_EOF)
        snprintf(reason, size, "connection closed by upstream");
    else
        snprintf(reason, size, "socket error: %s", evutil_socket_error_to_string(error));
}

/* Logs the protocol and cipher of a TLS connection, at debug level. */
static void log_tls_session(struct upconn *conn)
{
    char session[320];

    if (log_level < LOG_LEVEL_DEBUG || !tls_is_tls(conn->bev))
        return;
    tls_describe_session(conn->bev, session, sizeof(session));
    ulog_debug(conn, "TLS handshake completed: %s", session);
}

static void event_cb(struct bufferevent *bev, short what, void *arg)
{
    struct upconn *conn = arg;

    if (what & BEV_EVENT_CONNECTED) {
        set_socket_options(bev);
        log_tls_session(conn);
        if (start_reading(conn) != 0) {
            upconn_close(conn, "out of memory while setting up the connection");
            return;
        }
        send_login(conn);
        return;
    }
    if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR)) {
        char reason[320];

        describe_event(conn, what, reason, sizeof(reason));
        upconn_close(conn, reason);
    }
}

static void timer_cb(evutil_socket_t fd, short what, void *arg)
{
    struct upconn *conn = arg;

    (void)fd;
    (void)what;
    if (conn->state == UPCONN_DOWN) {
        upconn_connect(conn);
    } else if (conn->state == UPCONN_BUSY && conn->health_check) {
        char reason[128];

        snprintf(reason, sizeof(reason), "health check not answered within %d ms "
                 "(pool.health_check_timeout_ms)", qmux.config->health_check_timeout_ms);
        upconn_close(conn, reason);
    } else if (conn->state == UPCONN_BUSY) {
        char reason[128];
        char client_error[128];

        snprintf(reason, sizeof(reason), "query not answered within %d ms "
                 "(clients.query_timeout_ms); closing the connection, as kdb+ cannot cancel "
                 "a running query", qmux.config->query_timeout_ms);
        snprintf(client_error, sizeof(client_error), "query timeout: no response within %d ms "
                 "(clients.query_timeout_ms)", qmux.config->query_timeout_ms);
        stats.query_timeouts++;
        upconn_fail(conn, reason, client_error);
    } else if (conn->state == UPCONN_CONNECTING || conn->state == UPCONN_LOGIN) {
        char reason[128];

        const char *step = conn->state == UPCONN_LOGIN ? "login"
                           : tls_is_tls(conn->bev) ? "connect and TLS handshake" : "connect";
        snprintf(reason, sizeof(reason), "%s timed out after %d ms (pool.connect_timeout_ms)",
                 step, qmux.config->connect_timeout_ms);
        upconn_close(conn, reason);
    }
}

/* Creates the connection's bufferevent: a TLS one when upstream_tls.enabled, else a
 * socket one. Returns NULL with the reason in error. */
static struct bufferevent *new_bufferevent(struct upconn *conn, char *error, size_t size)
{
    struct bufferevent *bev;

    snprintf(error, size, "out of memory");
    if (!tls_upstream_enabled())
        return bufferevent_socket_new(qmux.base, -1, BEV_OPT_CLOSE_ON_FREE);

    SSL *ssl = tls_new_upstream_ssl(conn->backend->host, error, size);
    if (ssl == NULL)
        return NULL;
    /* The TLS handshake starts once connected; libevent frees ssl on failure. */
    bev = bufferevent_openssl_socket_new(qmux.base, -1, ssl, BUFFEREVENT_SSL_CONNECTING,
                                         BEV_OPT_CLOSE_ON_FREE);
    if (bev != NULL)
        tls_allow_dirty_shutdown(bev);
    return bev;
}

void upconn_connect(struct upconn *conn)
{
    const struct backend *backend = conn->backend;

    if (conn->timer == NULL)
        conn->timer = evtimer_new(qmux.base, timer_cb, conn);

    conn->id = qmux_next_id();
    char error[256];
    conn->bev = new_bufferevent(conn, error, sizeof(error));
    if (conn->timer == NULL || conn->bev == NULL) {
        ulog_error(conn, "cannot set up a connection (%s); retrying", error);
        upconn_set_state(conn, UPCONN_CONNECTING);
        upconn_close(conn, error);
        return;
    }
    /* The bufferevent writes and reports the connect; read_event_cb does the reading. */
    bufferevent_setcb(conn->bev, NULL, write_cb, event_cb, conn);
    bufferevent_setwatermark(conn->bev, EV_WRITE, qmux.config->output_low_watermark, 0);
    bufferevent_set_max_single_write(conn->bev, UPSTREAM_WRITE_CHUNK);
    bufferevent_enable(conn->bev, EV_WRITE);

    upconn_set_state(conn, UPCONN_CONNECTING);
    arm_timer(conn, qmux.config->connect_timeout_ms);
    if (bufferevent_socket_connect_hostname(conn->bev, qmux.dns, AF_UNSPEC, backend->host,
                                            backend->port) != 0) {
        char reason[320];

        describe_event(conn, BEV_EVENT_ERROR, reason, sizeof(reason));
        upconn_close(conn, reason);
    }
}

static void take_message(struct upconn *conn, struct client *client)
{
    struct evbuffer *input = bufferevent_get_input(client->bev);

    direct_write(conn->bev, input, (size_t)client->head.length);
    conn->output_appended += client->head.length;
    client->bytes_in += client->head.length;
    stats.bytes_from_clients += client->head.length;
    client->head_parsed = 0;
}

static void arm_busy_timer(struct upconn *conn, int ms)
{
    if (ms > 0)
        arm_timer(conn, ms);
}

void upconn_send_request(struct upconn *conn, struct client *client)
{
    upconn_set_state(conn, UPCONN_BUSY);
    conn->client = client;
    conn->client_gone = 0;
    conn->relayed_any = 0;
    conn->deferred_error = NULL;
    conn->request_offset = conn->output_appended;
    conn->request_length = client->head.length;

    take_message(conn, client);
    arm_busy_timer(conn, qmux.config->query_timeout_ms);

    /* The client sends nothing more until this is answered, and kdb+ reads its earlier
     * async messages on this connection first: the pin has done its job. */
    if (client->pinned == conn)
        pool_unpin(client);
    client_dispatched(client, conn);
}

void upconn_forward(struct upconn *conn, struct client *client)
{
    take_message(conn, client);
}

void upconn_check_health(struct upconn *conn)
{
    upconn_set_state(conn, UPCONN_BUSY);
    conn->client = NULL;
    conn->health_check = 1;
    conn->relayed_any = 0;
    conn->deferred_error = NULL;
    conn->request_offset = conn->output_appended;
    send_query_upstream(conn, qmux.config->health_check_query);
    conn->request_length = conn->output_appended - conn->request_offset;
    arm_busy_timer(conn, qmux.config->health_check_timeout_ms);
    stats.health_checks++;
    ulog_debug(conn, "health check sent after %d ms idle", qmux.config->health_check_interval_ms);
}

int upconn_output_full(const struct upconn *conn)
{
    struct evbuffer *output = bufferevent_get_output(conn->bev);

    return evbuffer_get_length(output) >= qmux.config->output_high_watermark;
}

void upconn_wait_for_drain(struct upconn *conn, struct client *client)
{
    pool_wait_in(&conn->write_waiters, client);
}

/* The output buffer drained below the low watermark: let blocked async senders go on. */
static void write_cb(struct bufferevent *bev, void *arg)
{
    struct upconn *conn = arg;
    struct client *client;

    (void)bev;
    while (conn->bev != NULL && !upconn_output_full(conn) &&
           (client = queue_pop(&conn->write_waiters)) != NULL) {
        client->state = CLIENT_IDLE;
        client_process_input(client);
    }
}

void upconn_client_left(struct upconn *conn, struct client *client)
{
    if (conn->client != client)
        return;

    conn->client = NULL;
    conn->client_gone = 1;
    if (conn->message_remaining > 0)
        conn->discarding = 1;

    /* Nested sync requests relayed to the client will never be answered by it. */
    for (int i = 0; i < client->nested_open; i++)
        send_error_upstream(conn, "qmux: client disconnected");
    client->nested_open = 0;

    if (conn->read_paused)
        upconn_resume(conn);
}

void upconn_resume(struct upconn *conn)
{
    if (!conn->read_paused || conn->bev == NULL)
        return;
    forget_global_pause(conn);
    conn->read_paused = 0;
    resume_socket_reads(conn);
    relay(conn);
}

void upconn_resume_paused_globally(void)
{
    struct upconn *conn;

    /* Each resumed connection may pause again and go to the end of the list; the total
     * check ends the loop then. */
    while ((conn = TAILQ_FIRST(&qmux.output_waiters)) != NULL &&
           qmux.output_total < qmux.config->max_output_total / 2)
        upconn_resume(conn);
}

static void log_loss(struct upconn *conn, const char *reason, int was_logged_in)
{
    if (conn->retiring || conn->replacing) {
        ulog_info(conn, "closed: %s", reason);
    } else if (was_logged_in) {
        stats.upstream_losses++;
        gettimeofday(&conn->down_since, NULL);
        ulog_warn(conn, "connection closed: %s; reconnecting", reason);
    } else if (conn->failures == 0 || strcmp(reason, conn->last_error) != 0) {
        /* Warn about the first failed attempt and about any failure unlike the previous
         * one, such as a rejected login after a lost connection. Repeats go to debug. */
        if (!conn->ever_connected && conn->failures == 0)
            gettimeofday(&conn->down_since, NULL);
        ulog_warn(conn, "%s; retrying with backoff up to %d ms", reason,
                  qmux.config->reconnect_max_ms);
    } else {
        ulog_debug(conn, "attempt %d failed: %s", conn->failures + 1, reason);
    }
}

/* Answers or closes the client whose request was in flight on a lost connection. */
static void fail_client_in_flight(struct client *client, int relayed_any, const char *error)
{
    client->serving = NULL;
    client->nested_open = 0;
    /* Bytes still in qmux's buffer never reached the client: an error can replace them. */
    if (relayed_any && client_retract_response(client))
        relayed_any = 0;
    if (relayed_any) {
        char reason[200];

        snprintf(reason, sizeof(reason), "%s while its response was being relayed", error);
        client_close(client, reason);
    } else {
        client_fail_request(client, error);
    }
}

/*
 * Takes the request in flight back out of the output buffer when not one of its bytes
 * was written, so it can go to another connection: kdb+ cannot have seen it. Returns 1
 * when the request was handed back to its client.
 */
static int take_back_unsent_request(struct upconn *conn, struct client *client)
{
    struct evbuffer *output = bufferevent_get_output(conn->bev);
    uint64_t written = conn->output_appended - evbuffer_get_length(output);

    /* Bytes a blocked TLS write holds may have reached the upstream already. */
    written += tls_output_committed(conn->bev);
    if (written > conn->request_offset)
        return 0;

    /* A socket bufferevent freezes the front of its output buffer; this one is about to
     * be freed, so taking bytes from the front is safe. Bytes queued before the request
     * (other clients' async messages) were not sent either; they are dropped with the
     * connection. */
    evbuffer_unfreeze(output, 1);
    evbuffer_drain(output, (size_t)(conn->request_offset - written));
    struct evbuffer *request = evbuffer_new();
    if (request == NULL)
        return 0;
    move_bytes(output, request, conn->request_length);
    int requeued = evbuffer_get_length(request) == conn->request_length &&
                   client_requeue(client, request) == 0;
    evbuffer_free(request);
    return requeued;
}

void upconn_close(struct upconn *conn, const char *reason)
{
    upconn_fail(conn, reason, "upstream connection lost");
}

void upconn_fail(struct upconn *conn, const char *reason, const char *client_error)
{
    if (conn->state == UPCONN_DOWN)
        return;

    int was_logged_in = conn->state == UPCONN_IDLE || conn->state == UPCONN_BUSY;
    struct client *client = conn->state == UPCONN_BUSY ? conn->client : NULL;
    int relayed_any = conn->relayed_any;
    int requeued = 0;

    log_loss(conn, reason, was_logged_in);
    snprintf(conn->last_error, sizeof(conn->last_error), "%s", reason);

    if (client != NULL && conn->bev != NULL && !relayed_any)
        requeued = take_back_unsent_request(conn, client);
    if (requeued) {
        stats.requests_retried++;
        ulog_info(conn, "request of client %" PRIu64 " was not sent yet; it goes to another "
                  "connection", client->id);
    }

    if (conn->timer != NULL)
        evtimer_del(conn->timer);
    conn->health_check = 0;
    stop_reading(conn);
    if (conn->bev != NULL) {
        bufferevent_free(conn->bev);
        conn->bev = NULL;
    }
    conn->client = NULL;
    conn->message_remaining = 0;
    conn->discarding = 0;
    forget_global_pause(conn);
    conn->read_paused = 0;
    conn->relayed_any = 0;
    conn->deferred_error = NULL;
    conn->convert = CONVERT_NONE;
    if (conn->collected != NULL) {
        evbuffer_free(conn->collected);
        conn->collected = NULL;
    }
    upconn_set_state(conn, UPCONN_DOWN);
    conn->failures++;
    if (conn->retiring)
        conn->retired = 1;
    else if (conn->timer != NULL)
        arm_timer(conn, backoff_ms(conn));

    pool_conn_lost(qmux.pool, conn);
    if (client != NULL && !requeued)
        fail_client_in_flight(client, relayed_any, client_error);
}

void upconn_replace(struct upconn *conn, const char *reason)
{
    conn->reconnect_after = 0;
    conn->replacing = 1;
    upconn_close(conn, reason);
    conn->replacing = 0;
    conn->failures = 0;
    if (!conn->retired) {
        evtimer_del(conn->timer);
        upconn_connect(conn);
    }
}

void upconn_reconnect_now(struct upconn *conn)
{
    if (conn->state != UPCONN_DOWN || conn->retired)
        return;
    conn->failures = 0;
    evtimer_del(conn->timer);
    upconn_connect(conn);
}

void upconn_retire(struct upconn *conn)
{
    conn->retiring = 1;
    if (conn->state == UPCONN_BUSY)
        return;   /* end_message() closes it once the response has been relayed */

    if (conn->state == UPCONN_DOWN) {
        if (conn->timer != NULL)
            evtimer_del(conn->timer);
        conn->retired = 1;
        return;
    }
    upconn_close(conn, "removed from the pool by a reload");
}

void upconn_destroy(struct upconn *conn)
{
    stop_reading(conn);
    if (conn->bev != NULL) {
        bufferevent_free(conn->bev);
        conn->bev = NULL;
    }
    if (conn->timer != NULL) {
        event_free(conn->timer);
        conn->timer = NULL;
    }
    if (conn->collected != NULL) {
        evbuffer_free(conn->collected);
        conn->collected = NULL;
    }
    conn->state = UPCONN_DOWN;
}
