/*
 * server.c - the stand-in's connections: login handshake, message framing, evaluation of
 * one message at a time, and responses written whole or streamed as the socket drains.
 *
 * Like q, the process is single-threaded and evaluates each message to completion before
 * it reads anything else, so `system "sleep 1"` stalls every connection. Writing a large
 * response is not evaluation: other connections are served while it drains, but the
 * connection that receives it reads no further request until the response is complete,
 * which keeps its responses in request order.
 */
#include "server.h"

#include "compress.h"
#include "eval.h"
#include "ipc.h"
#include "qenc.h"
#include "stream.h"
#include "tls.h"
#include "value.h"

#include <arpa/inet.h>
#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

/* Largest request accepted, compressed or not: 256 MiB. A stand-in limit, not kdb+'s. */
#define MAX_REQUEST (UINT64_C(256) << 20)

/* A streamed response is refilled when less than STREAM_LOW_WATER bytes are queued, up to
 * STREAM_HIGH_WATER, in pieces of CHUNK_SIZE bytes. */
#define STREAM_LOW_WATER (256 * 1024)
#define STREAM_HIGH_WATER (1024 * 1024)
#define CHUNK_SIZE (256 * 1024)

/* Reading from a client stops while more than this is queued for it, and resumes below
 * half of it, so a client that sends requests but never reads cannot exhaust memory. */
#define OUTPUT_HIGH_WATER (64u * 1024 * 1024)

struct conn {
    uint64_t id;
    struct bufferevent *bev;
    char peer[INET6_ADDRSTRLEN + 8];
    int peer_is_local;
    int logged_in;
    int capability;
    char user[64];
    struct timeval opened;
    uint64_t bytes_in;
    uint64_t bytes_out;
    uint64_t requests;

    struct stream *stream;    /* response being streamed, or NULL */
    uint64_t cut;             /* stream position where .standin.closeMid/stallMid act, or 0 */
    int cut_action;           /* enum eval_action */
    double stall_seconds;
    int output_full;          /* reading paused until the output drains */

    struct conn *prev, *next;
};

static const struct server_options *options;
static struct event_base *base;
static struct evconnlistener *listener;
static SSL_CTX *tls_context;        /* with --tls-cert: every connection is TLS */
static struct event *rearm_timer;
static struct conn *connections;
static uint64_t next_conn_id = 1;
static uint64_t open_connections;
static uint8_t chunk[CHUNK_SIZE];

void standin_log(const char *format, ...)
{
    struct timeval now;
    struct tm tm;
    char stamp[32];
    va_list args;

    gettimeofday(&now, NULL);
    localtime_r(&now.tv_sec, &tm);
    strftime(stamp, sizeof(stamp), "%Y-%m-%d %H:%M:%S", &tm);
    fprintf(stderr, "qmux-standin: %s.%03ld ", stamp, (long)(now.tv_usec / 1000));
    va_start(args, format);
    vfprintf(stderr, format, args);
    va_end(args);
    fputc('\n', stderr);
}

static double seconds_since(const struct timeval *start)
{
    struct timeval now;

    gettimeofday(&now, NULL);
    return (double)(now.tv_sec - start->tv_sec) + (double)(now.tv_usec - start->tv_usec) / 1e6;
}

/*
 * Closes c: the one teardown path, which logs the reason with the connection id, peer,
 * user, age and byte counts, then frees everything. Errors are logged even with -q.
 * c must not be used afterwards.
 */
static void conn_close(struct conn *c, int is_error, const char *format, ...)
    __attribute__((format(printf, 3, 4)));

static void conn_close(struct conn *c, int is_error, const char *format, ...)
{
    char reason[512];
    va_list args;

    va_start(args, format);
    vsnprintf(reason, sizeof(reason), format, args);
    va_end(args);

    if (is_error || !options->quiet)
        standin_log("conn %llu %s user=%s closed: %s (age %.3fs, %llu requests, in %llu B, "
                    "out %llu B)", (unsigned long long)c->id, c->peer,
                    c->user[0] ? c->user : "-", reason, seconds_since(&c->opened),
                    (unsigned long long)c->requests, (unsigned long long)c->bytes_in,
                    (unsigned long long)c->bytes_out);

    stream_free(c->stream);
    bufferevent_free(c->bev);
    if (c->prev != NULL)
        c->prev->next = c->next;
    else
        connections = c->next;
    if (c->next != NULL)
        c->next->prev = c->prev;
    open_connections--;
    free(c);

    /* A listener paused on a descriptor limit may accept again now. */
    if (rearm_timer != NULL && evtimer_pending(rearm_timer, NULL)) {
        evtimer_del(rearm_timer);
        evconnlistener_enable(listener);
    }
}

/* Returns 0, or -1 when c was closed. */
static int process_input(struct conn *c);

static void send_bytes(struct conn *c, const uint8_t *bytes, size_t n)
{
    evbuffer_add(bufferevent_get_output(c->bev), bytes, n);
    c->bytes_out += n;
}

static void send_error(struct conn *c, const char *text)
{
    struct qenc b;

    qenc_init(&b);
    qenc_begin(&b, IPC_RESPONSE);
    qenc_error(&b, text);
    if (qenc_end(&b) == 0)
        send_bytes(c, b.data, b.len);
    else
        standin_log("conn %llu: out of memory encoding the error '%s; response dropped",
                    (unsigned long long)c->id, text);
    qenc_free(&b);
}

static int should_compress(const struct conn *c, uint64_t length)
{
    switch (options->compress) {
    case COMPRESS_AUTO:
        return compress_wanted(c->capability, length, c->peer_is_local);
    case COMPRESS_ALWAYS:
        return compress_wanted(c->capability, length, 0);
    }
    return 0;
}

/* Sends the message msg[0..n), compressed when the mode and kdb+'s rules allow it. */
static void send_message(struct conn *c, const uint8_t *msg, uint64_t n)
{
    if (should_compress(c, n)) {
        uint8_t *packed = malloc(n / 2);
        uint64_t packed_len = packed != NULL ? compress_message(msg, n, packed) : 0;
        if (packed_len != 0) {
            send_bytes(c, packed, packed_len);
            free(packed);
            return;
        }
        free(packed);
    }
    send_bytes(c, msg, n);
}

/* Stops reading while too much output is queued; on_write resumes. */
static void check_output(struct conn *c)
{
    if (evbuffer_get_length(bufferevent_get_output(c->bev)) <= OUTPUT_HIGH_WATER)
        return;
    c->output_full = 1;
    bufferevent_disable(c->bev, EV_READ);
    bufferevent_setwatermark(c->bev, EV_WRITE, OUTPUT_HIGH_WATER / 2, 0);
}

static int fill_stream(struct conn *c);

/* Acts at the cut of .standin.closeMid or .standin.stallMid, once the first part left. */
static int act_at_cut(struct conn *c)
{
    uint64_t position = stream_position(c->stream);
    uint64_t length = stream_length(c->stream);

    if (c->cut_action == EVAL_CLOSE_MID) {
        conn_close(c, 0, ".standin.closeMid closed it after %llu of %llu response bytes",
                   (unsigned long long)position, (unsigned long long)length);
        return -1;
    }

    standin_log("conn %llu: .standin.stallMid stalls the server for %.3fs after %llu of %llu "
                "response bytes", (unsigned long long)c->id, c->stall_seconds,
                (unsigned long long)position, (unsigned long long)length);
    struct timespec left = {(time_t)c->stall_seconds,
                            (long)((c->stall_seconds - (double)(time_t)c->stall_seconds) * 1e9)};
    while (nanosleep(&left, &left) != 0 && errno == EINTR)
        continue;
    c->cut = 0;
    bufferevent_setwatermark(c->bev, EV_WRITE, STREAM_LOW_WATER, 0);
    return fill_stream(c);
}

static int finish_stream(struct conn *c)
{
    stream_free(c->stream);
    c->stream = NULL;
    bufferevent_setwatermark(c->bev, EV_WRITE, 0, 0);
    bufferevent_enable(c->bev, EV_READ);
    return process_input(c);
}

/* Queues stream output up to STREAM_HIGH_WATER. Returns 0, or -1 when c was closed. */
static int fill_stream(struct conn *c)
{
    struct evbuffer *out = bufferevent_get_output(c->bev);

    while (evbuffer_get_length(out) < STREAM_HIGH_WATER) {
        uint64_t position = stream_position(c->stream);

        if (c->cut != 0 && position >= c->cut) {
            if (evbuffer_get_length(out) == 0)
                return act_at_cut(c);
            /* Wait until the first part has left, so the peer receives it before the cut acts. */
            bufferevent_setwatermark(c->bev, EV_WRITE, 0, 0);
            return 0;
        }

        size_t max = CHUNK_SIZE;
        if (c->cut != 0 && c->cut - position < max)
            max = (size_t)(c->cut - position);
        size_t n = stream_read(c->stream, chunk, max);
        if (n == 0) {
            if (position == stream_length(c->stream))
                return finish_stream(c);
            c->cut = position;
            continue;
        }
        send_bytes(c, chunk, n);
    }
    return 0;
}

static int start_stream(struct conn *c, const struct qval *v, const struct eval_result *res)
{
    c->stream = stream_new(v, IPC_RESPONSE);
    if (c->stream == NULL) {
        send_error(c, "wsfull");
        return 0;
    }

    if (res->action == EVAL_CLOSE_MID || res->action == EVAL_STALL_MID) {
        /* The cut falls at half the message, header included. */
        c->cut = stream_length(c->stream) / 2;
        c->cut_action = res->action;
        c->stall_seconds = res->stall_seconds;
    }
    bufferevent_disable(c->bev, EV_READ);
    bufferevent_setwatermark(c->bev, EV_WRITE, STREAM_LOW_WATER, 0);
    return fill_stream(c);
}

/* Sends the response to a sync request. Returns 0, or -1 when c was closed. */
static int respond(struct conn *c, const struct eval_result *res)
{
    const struct qval *v = res->value;

    if (v == NULL) {
        send_error(c, res->error);
        return 0;
    }

    const char *capability_error = value_check_capability(v, c->capability);
    if (capability_error != NULL) {
        send_error(c, capability_error);
        return 0;
    }

    uint64_t length = IPC_HEADER_SIZE + value_encoded_size(v);
    int midway = res->action == EVAL_CLOSE_MID || res->action == EVAL_STALL_MID;
    int compress = should_compress(c, length) && length <= VALUE_MAX_MATERIALIZED;
    if (midway || (v->lazy && !compress))
        return start_stream(c, v, res);

    struct qenc b;
    qenc_init(&b);
    qenc_begin(&b, IPC_RESPONSE);
    value_encode(&b, v);
    if (qenc_end(&b) == 0)
        send_message(c, b.data, b.len);
    else
        send_error(c, "wsfull");
    qenc_free(&b);
    check_output(c);
    return 0;
}

/* Decodes and evaluates one message, and sends the response to a sync one. Returns 0, or
 * -1 when c was closed. */
static int handle_message(struct conn *c, const struct ipc_header *header, const uint8_t *msg)
{
    char err[256];

    if (header->type == IPC_RESPONSE) {
        standin_log("conn %llu: ignored a response message of %llu bytes; the stand-in sends "
                    "no requests", (unsigned long long)c->id,
                    (unsigned long long)header->length);
        return 0;
    }

    struct qval *request = value_decode(msg + IPC_HEADER_SIZE, header->length - IPC_HEADER_SIZE,
                                        header->little_endian, err, sizeof(err));
    if (request == NULL && strncmp(err, "badmsg", 6) == 0) {
        conn_close(c, 1, "malformed %s message: %s", ipc_msg_type_name(header->type), err);
        return -1;
    }

    struct eval_result res;
    if (request != NULL) {
        eval_request(request, &res);
        value_free(request);
    } else {
        memset(&res, 0, sizeof(res));
        snprintf(res.error, sizeof(res.error), "%s", err);
    }

    if (res.action == EVAL_EXIT) {
        standin_log("conn %llu: .standin.exit: exiting without a response",
                    (unsigned long long)c->id);
        fflush(stderr);
        _exit(0);
    }

    int rc = 0;
    if (header->type == IPC_SYNC)
        rc = respond(c, &res);
    value_free(res.value);
    return rc;
}

/* Reads a compressed message into a new uncompressed copy, or closes c and returns NULL. */
static uint8_t *decompress_request(struct conn *c, const uint8_t *msg, uint64_t len,
                                   struct ipc_header *header)
{
    uint64_t size;
    char err[256];

    if (decompress_size(msg, len, &size) != 0 || size > MAX_REQUEST) {
        conn_close(c, 1, "invalid compressed request: declared size unreadable or over %llu "
                   "bytes", (unsigned long long)MAX_REQUEST);
        return NULL;
    }
    uint8_t *plain = malloc(size);
    if (plain == NULL) {
        conn_close(c, 1, "out of memory decompressing a %llu-byte request",
                   (unsigned long long)size);
        return NULL;
    }
    if (decompress_message(msg, len, plain, size, err, sizeof(err)) != 0) {
        free(plain);
        conn_close(c, 1, "invalid compressed request: %s", err);
        return NULL;
    }
    header->compressed = 0;
    header->length = size;
    return plain;
}

/* Handles the login handshake. Returns 0 when logged in, 1 when more bytes are needed,
 * -1 when c was closed. */
static int handle_login(struct conn *c)
{
    struct evbuffer *in = bufferevent_get_input(c->bev);
    size_t scan = evbuffer_get_length(in);
    struct ipc_handshake hs;

    if (scan > IPC_HANDSHAKE_MAX + 2)
        scan = IPC_HANDSHAKE_MAX + 2;
    const uint8_t *p = evbuffer_pullup(in, (ssize_t)scan);
    int status = ipc_handshake_parse(p, scan, IPC_HANDSHAKE_MAX, &hs);
    if (status == IPC_HANDSHAKE_INCOMPLETE)
        return 1;
    if (status == IPC_HANDSHAKE_TOO_LONG) {
        conn_close(c, 1, "login rejected: no NUL within %d bytes of credentials",
                   IPC_HANDSHAKE_MAX);
        return -1;
    }

    size_t user_len = hs.user_len < sizeof(c->user) - 1 ? hs.user_len : sizeof(c->user) - 1;
    for (size_t i = 0; i < user_len; i++)
        c->user[i] = p[i] >= 0x20 && p[i] < 0x7f ? (char)p[i] : '?';
    c->user[user_len] = '\0';

    int matches = options->credentials == NULL ||
                  (strlen(options->credentials) == hs.credentials_len &&
                   memcmp(options->credentials, p, hs.credentials_len) == 0);
    if (!matches || options->reject_logins || eval_rejecting_logins()) {
        conn_close(c, 0, "login rejected (%s)", !matches ? "wrong user or password"
                   : options->reject_logins ? "--refuse-login" : ".standin.refuse 1b");
        return -1;
    }

    c->capability = hs.capability < options->max_capability ? hs.capability
                                                            : options->max_capability;
    evbuffer_drain(in, hs.length);
    c->bytes_in += hs.length;
    c->logged_in = 1;
    uint8_t reply = (uint8_t)c->capability;
    send_bytes(c, &reply, 1);
    if (!options->quiet)
        standin_log("conn %llu %s user=%s logged in: capability %d requested, %d agreed",
                    (unsigned long long)c->id, c->peer, c->user[0] ? c->user : "-",
                    hs.capability, c->capability);
    return 0;
}

static int process_input(struct conn *c)
{
    struct evbuffer *in = bufferevent_get_input(c->bev);

    if (!c->logged_in) {
        int rc = handle_login(c);
        if (rc != 0)
            return rc < 0 ? -1 : 0;
    }

    while (c->stream == NULL && !c->output_full) {
        uint8_t raw[IPC_HEADER_SIZE];
        struct ipc_header header;

        if (evbuffer_get_length(in) < IPC_HEADER_SIZE)
            return 0;
        evbuffer_copyout(in, raw, sizeof(raw));
        int status = ipc_header_parse(raw, &header);
        if (status != IPC_OK) {
            conn_close(c, 1, "invalid message header %02x %02x %02x %02x %02x %02x %02x %02x: %s",
                       raw[0], raw[1], raw[2], raw[3], raw[4], raw[5], raw[6], raw[7],
                       ipc_status_text(status));
            return -1;
        }
        if (header.length > MAX_REQUEST) {
            conn_close(c, 1, "request of %llu bytes is over the stand-in's limit of %llu bytes",
                       (unsigned long long)header.length, (unsigned long long)MAX_REQUEST);
            return -1;
        }
        if (evbuffer_get_length(in) < header.length)
            return 0;

        uint8_t *msg = malloc(header.length);
        if (msg == NULL) {
            conn_close(c, 1, "out of memory reading a %llu-byte request",
                       (unsigned long long)header.length);
            return -1;
        }
        evbuffer_remove(in, msg, header.length);
        c->bytes_in += header.length;
        c->requests++;

        if (header.compressed) {
            uint8_t *plain = decompress_request(c, msg, header.length, &header);
            free(msg);
            if (plain == NULL)
                return -1;
            msg = plain;
        }
        int rc = handle_message(c, &header, msg);
        free(msg);
        if (rc != 0)
            return -1;
    }
    return 0;
}

static void on_read(struct bufferevent *bev, void *arg)
{
    (void)bev;
    process_input(arg);
}

static void on_write(struct bufferevent *bev, void *arg)
{
    struct conn *c = arg;

    (void)bev;
    if (c->stream != NULL) {
        fill_stream(c);
        return;
    }
    if (c->output_full) {
        c->output_full = 0;
        bufferevent_setwatermark(c->bev, EV_WRITE, 0, 0);
        bufferevent_enable(c->bev, EV_READ);
        process_input(c);
    }
}

static void on_event(struct bufferevent *bev, short what, void *arg)
{
    struct conn *c = arg;
    size_t pending = evbuffer_get_length(bufferevent_get_input(bev));

    if (what & BEV_EVENT_EOF) {
        if (pending > 0)
            conn_close(c, 1, "peer closed the connection with %zu bytes of an incomplete %s "
                       "pending", pending, c->logged_in ? "message" : "login");
        else if (c->stream != NULL)
            conn_close(c, 1, "peer closed the connection during a response");
        else
            conn_close(c, 0, "peer closed the connection");
        return;
    }
    if (what & BEV_EVENT_ERROR) {
        int error = EVUTIL_SOCKET_ERROR();
        char reason[256];

        if (standin_tls_error(bev, reason, sizeof(reason)))
            conn_close(c, 1, "TLS error: %s", reason);
        else
            conn_close(c, 1, "socket error: %s", evutil_socket_error_to_string(error));
        return;
    }
    if ((what & BEV_EVENT_CONNECTED) && !options->quiet) {
        char session[160];

        standin_tls_session(bev, session, sizeof(session));
        standin_log("conn %llu %s TLS handshake completed: %s", (unsigned long long)c->id,
                    c->peer, session);
    }
}

static void describe_peer(struct conn *c, const struct sockaddr *address)
{
    char host[INET6_ADDRSTRLEN] = "?";
    int port = 0;

    if (address->sa_family == AF_INET) {
        const struct sockaddr_in *in4 = (const struct sockaddr_in *)address;
        inet_ntop(AF_INET, &in4->sin_addr, host, sizeof(host));
        port = ntohs(in4->sin_port);
        c->peer_is_local = (ntohl(in4->sin_addr.s_addr) >> 24) == 127;
    } else if (address->sa_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)address;
        inet_ntop(AF_INET6, &in6->sin6_addr, host, sizeof(host));
        port = ntohs(in6->sin6_port);
        c->peer_is_local = IN6_IS_ADDR_LOOPBACK(&in6->sin6_addr);
    }
    snprintf(c->peer, sizeof(c->peer), "%s:%d", host, port);
}

static void on_accept(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *address,
                      int address_len, void *arg)
{
    (void)l;
    (void)address_len;
    (void)arg;

    struct conn *c = calloc(1, sizeof(*c));
    struct bufferevent *bev = tls_context != NULL ? standin_tls_accept(base, tls_context, fd)
                                                  : bufferevent_socket_new(base, fd,
                                                                           BEV_OPT_CLOSE_ON_FREE);
    if (c == NULL || bev == NULL) {
        standin_log("out of memory accepting a connection; closed it");
        free(c);
        if (bev != NULL)
            bufferevent_free(bev);
        else
            evutil_closesocket(fd);
        return;
    }

    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    c->id = next_conn_id++;
    c->bev = bev;
    gettimeofday(&c->opened, NULL);
    describe_peer(c, address);
    c->next = connections;
    if (connections != NULL)
        connections->prev = c;
    connections = c;
    open_connections++;

    bufferevent_setcb(bev, on_read, on_write, on_event, c);
    bufferevent_enable(bev, EV_READ | EV_WRITE);
    if (!options->quiet)
        standin_log("conn %llu %s accepted (%llu open)", (unsigned long long)c->id, c->peer,
                    (unsigned long long)open_connections);
}

static void on_rearm(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    (void)arg;
    evconnlistener_enable(listener);
}

/* On EMFILE/ENFILE stops accepting for 100 ms (or until a connection closes), because
 * libevent would otherwise retry the failing accept at once, in a busy loop. */
static void on_accept_error(struct evconnlistener *l, void *arg)
{
    static time_t last_log;
    static unsigned long suppressed;
    int error = EVUTIL_SOCKET_ERROR();
    time_t now = time(NULL);

    (void)arg;
    if (now != last_log) {
        standin_log("accept failed: %s (%llu connections open, %lu similar errors not "
                    "logged); raise the open-file limit (ulimit -n) for more connections",
                    evutil_socket_error_to_string(error), (unsigned long long)open_connections,
                    suppressed);
        last_log = now;
        suppressed = 0;
    } else {
        suppressed++;
    }

    if (error == EMFILE || error == ENFILE) {
        struct timeval delay = {0, 100 * 1000};
        evconnlistener_disable(l);
        evtimer_add(rearm_timer, &delay);
    }
}

static void on_signal(evutil_socket_t signal_number, short what, void *arg)
{
    (void)what;
    (void)arg;
    standin_log("received signal %d; shutting down", (int)signal_number);
    event_base_loopbreak(base);
}

/* Fills address from a numeric IPv4 or IPv6 address. Returns its length, or 0. */
static socklen_t parse_address(const char *text, int port, struct sockaddr_storage *address)
{
    struct sockaddr_in *in4 = (struct sockaddr_in *)address;
    struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)address;

    memset(address, 0, sizeof(*address));
    if (inet_pton(AF_INET, text, &in4->sin_addr) == 1) {
        in4->sin_family = AF_INET;
        in4->sin_port = htons((uint16_t)port);
        return sizeof(*in4);
    }
    if (inet_pton(AF_INET6, text, &in6->sin6_addr) == 1) {
        in6->sin6_family = AF_INET6;
        in6->sin6_port = htons((uint16_t)port);
        return sizeof(*in6);
    }
    return 0;
}

static int bound_port(void)
{
    struct sockaddr_storage address;
    socklen_t len = sizeof(address);

    if (getsockname(evconnlistener_get_fd(listener), (struct sockaddr *)&address, &len) != 0)
        return -1;
    if (address.ss_family == AF_INET6)
        return ntohs(((struct sockaddr_in6 *)&address)->sin6_port);
    return ntohs(((struct sockaddr_in *)&address)->sin_port);
}

int server_run(const struct server_options *opts)
{
    struct sockaddr_storage address;
    socklen_t address_len = parse_address(opts->address, opts->port, &address);

    options = opts;
    if (address_len == 0) {
        standin_log("invalid listen address '%s': give a numeric IPv4 or IPv6 address, such "
                    "as 127.0.0.1", opts->address);
        return 2;
    }

    if (opts->tls_cert != NULL &&
        (tls_context = standin_tls_context(opts->tls_cert, opts->tls_key)) == NULL)
        return 1;

    base = event_base_new();
    if (base == NULL) {
        standin_log("event_base_new failed; cannot start the event loop");
        return 1;
    }
    listener = evconnlistener_new_bind(base, on_accept, NULL,
                                       LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE, 4096,
                                       (struct sockaddr *)&address, (int)address_len);
    if (listener == NULL) {
        standin_log("cannot listen on %s:%d: %s; choose another port with -p (0 picks a "
                    "free one)", opts->address, opts->port, strerror(errno));
        event_base_free(base);
        return 1;
    }
    evconnlistener_set_error_cb(listener, on_accept_error);
    rearm_timer = evtimer_new(base, on_rearm, NULL);
    struct event *sigint = evsignal_new(base, SIGINT, on_signal, NULL);
    struct event *sigterm = evsignal_new(base, SIGTERM, on_signal, NULL);
    evsignal_add(sigint, NULL);
    evsignal_add(sigterm, NULL);

    printf("qmux-standin: listening on %s:%d\n", opts->address, bound_port());
    fflush(stdout);

    event_base_dispatch(base);

    while (connections != NULL)
        conn_close(connections, 0, "server shutting down");
    event_free(sigint);
    event_free(sigterm);
    event_free(rearm_timer);
    rearm_timer = NULL;
    evconnlistener_free(listener);
    event_base_free(base);
    SSL_CTX_free(tls_context);
    eval_shutdown();
    standin_log("stopped");
    return 0;
}
