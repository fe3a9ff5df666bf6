/*
 * gateway_reply.c - the replies of GET and POST /q (see gateway_reply.h).
 *
 * A JSON reply is rendered a slice at a time: up to GATEWAY_SLICE_SIZE bytes of JSON per
 * turn of the event loop, from an event of the reply's own. Once GATEWAY_CHUNK_SIZE bytes
 * of body (gzipped or not) are ready, they go to libevent as one chunk, and the next slice
 * waits until libevent has written that chunk to the socket. So one reply holds at most
 * about two chunks of body however slowly its client reads, and blocks the loop for one
 * slice at a time. The close callback of the HTTP connection stops the rendering and frees
 * the reply when the client goes away.
 */
#include "gateway_reply.h"

#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <zlib.h>

#include "gateway.h"
#include "http.h"
#include "ipc.h"
#include "json.h"
#include "lifecycle.h"
#include "log.h"
#include "qmux.h"

/* JSON bytes buffered before the reply switches to chunked transfer encoding, and the size
 * of each chunk after that. A smaller result goes out whole with a Content-Length. */
#define GATEWAY_CHUNK_SIZE (64 * 1024)

/* Maximum bytes of JSON rendered for one reply in one turn of the event loop. */
#define GATEWAY_SLICE_SIZE (64 * 1024)

/* Bytes of output space reserved for each deflate call. */
#define GATEWAY_DEFLATE_STEP (16 * 1024)

/* The body of one reply while it is produced: JSON text, gzipped or not, collected in out
 * until it is sent. */
struct reply_stream {
    struct evbuffer *out;
    int gzip;
    z_stream zlib;
    int zlib_ready;                 /* deflateInit2 succeeded; deflateEnd is due */
    uint64_t json_bytes;
};

/* A JSON reply from the arrival of its kdb+ response until its last chunk is handed to
 * libevent, or its connection closes first. */
struct gateway_reply {
    struct evhttp_request *request;
    struct evhttp_connection *connection;
    struct evbuffer *message;       /* the kdb+ response, read by the renderer */
    struct json_renderer *renderer;
    int rendered;                   /* the renderer has returned the whole text */
    struct event *resume;           /* renders the next slice on a later turn of the loop */
    struct reply_stream body;
    int gzip;
    int chunked;                    /* evhttp_send_reply_start was called */
    int status;
    const char *reason;
    struct timeval started;         /* when the query arrived */
    char peer[80];                  /* "http ADDRESS:PORT" */
    LIST_ENTRY(gateway_reply) link;
    char piece[JSON_CHUNK_SIZE];    /* the renderer's output on its way into body */
};

static LIST_HEAD(, gateway_reply) replies = LIST_HEAD_INITIALIZER(replies);

/* Replies not yet written out completely: counted from the query's arrival until libevent
 * calls reply_complete_cb, or the connection closes first. */
static int replies_in_flight;

/* ---- the body ------------------------------------------------------------------------ */

static void add_reply_headers(struct evhttp_request *request, int gzip)
{
    struct evkeyvalq *headers = evhttp_request_get_output_headers(request);

    evhttp_add_header(headers, "Vary", "Accept-Encoding");
    if (gzip)
        evhttp_add_header(headers, "Content-Encoding", "gzip");
}

/* Feeds length bytes to zlib and appends what it produces to stream->out. flush is
 * Z_NO_FLUSH, or Z_FINISH for the gzip trailer. Returns 0, or -1 after a zlib or memory
 * failure. */
static int deflate_into(struct reply_stream *stream, const char *bytes, size_t length, int flush)
{
    z_stream *zlib = &stream->zlib;
    int status;

    zlib->next_in = (Bytef *)(uintptr_t)bytes;
    zlib->avail_in = (uInt)length;
    do {
        struct evbuffer_iovec space;

        if (evbuffer_reserve_space(stream->out, GATEWAY_DEFLATE_STEP, &space, 1) < 1)
            return -1;
        size_t room = space.iov_len < UINT_MAX ? space.iov_len : UINT_MAX;
        zlib->next_out = space.iov_base;
        zlib->avail_out = (uInt)room;
        status = deflate(zlib, flush);
        space.iov_len = room - zlib->avail_out;
        if (evbuffer_commit_space(stream->out, &space, 1) != 0)
            return -1;
        if (status != Z_OK && status != Z_STREAM_END && status != Z_BUF_ERROR)
            return -1;
    } while (zlib->avail_out == 0 || (flush == Z_FINISH && status != Z_STREAM_END));
    return 0;
}

/* Appends length bytes of JSON text to the body, through deflate when it is gzipped.
 * Returns 0, or -1 when out of memory or after a zlib error. */
static int stream_write(struct reply_stream *stream, const char *bytes, size_t length)
{
    stream->json_bytes += length;
    if (stream->gzip)
        return deflate_into(stream, bytes, length, Z_NO_FLUSH);
    return evbuffer_add(stream->out, bytes, length);
}

static int stream_begin(struct reply_stream *stream, int gzip)
{
    memset(stream, 0, sizeof(*stream));
    stream->gzip = gzip;
    stream->out = evbuffer_new();
    if (stream->out == NULL)
        return -1;
    if (gzip) {
        /* windowBits 15 + 16 selects the gzip wrapper (RFC 1952) instead of zlib's. */
        if (deflateInit2(&stream->zlib, Z_DEFAULT_COMPRESSION, Z_DEFLATED, 15 + 16, 8,
                         Z_DEFAULT_STRATEGY) != Z_OK) {
            evbuffer_free(stream->out);
            stream->out = NULL;
            return -1;
        }
        stream->zlib_ready = 1;
    }
    return 0;
}

static void stream_free(struct reply_stream *stream)
{
    if (stream->zlib_ready)
        deflateEnd(&stream->zlib);
    stream->zlib_ready = 0;
    if (stream->out != NULL)
        evbuffer_free(stream->out);
    stream->out = NULL;
}

/* Ends the body with a newline, and the gzip trailer when gzipped. Returns 0, or -1 when
 * out of memory or after a zlib error. */
static int stream_finish(struct reply_stream *stream)
{
    if (stream_write(stream, "\n", 1) != 0)
        return -1;
    if (stream->gzip && deflate_into(stream, NULL, 0, Z_FINISH) != 0)
        return -1;
    return 0;
}

/* Sends the finished body as the whole reply, with a Content-Length. */
static void send_whole(struct evhttp_request *request, struct reply_stream *stream, int status,
                       const char *reason)
{
    add_reply_headers(request, stream->gzip);
    http_send(request, status, reason, "application/json", stream->out);
}

/* Appends text to out as the content of a JSON string. */
static void add_json_string_content(struct evbuffer *out, const char *text)
{
    for (const unsigned char *p = (const unsigned char *)text; *p != '\0'; p++) {
        if (*p == '"' || *p == '\\')
            evbuffer_add_printf(out, "\\%c", *p);
        else if (*p < 0x20)
            evbuffer_add_printf(out, "\\u%04x", *p);
        else
            evbuffer_add(out, p, 1);
    }
}

void gateway_send_error(struct evhttp_request *request, int gzip, int status, const char *reason,
                        const char *text)
{
    struct evbuffer *json = evbuffer_new();
    struct reply_stream stream;

    if (json == NULL || stream_begin(&stream, gzip) != 0) {
        if (json != NULL)
            evbuffer_free(json);
        log_error("http: out of memory for a %d reply", status);
        evhttp_send_reply(request, 500, "Internal Server Error", NULL);
        return;
    }
    evbuffer_add_printf(json, "{\"error\":\"");
    add_json_string_content(json, text);
    evbuffer_add_printf(json, "\"}");

    size_t length = evbuffer_get_length(json);
    const char *bytes = (const char *)evbuffer_pullup(json, (ev_ssize_t)length);
    if (bytes == NULL || stream_write(&stream, bytes, length) != 0 || stream_finish(&stream) != 0) {
        log_error("http: out of memory for a %d reply", status);
        evhttp_send_reply(request, 500, "Internal Server Error", NULL);
    } else {
        send_whole(request, &stream, status, reason);
    }
    stream_free(&stream);
    evbuffer_free(json);
}

/* ---- the status of a kdb+ error ------------------------------------------------------ */

struct error_status {
    const char *prefix;             /* the error text starts with it */
    const char *contains;           /* and contains it, unless NULL */
    int status;
    const char *reason;
};

/* Errors qmux itself raises when it could not run the query; every other kdb+ error
 * (a q error of the query) is 400. docs/http.md lists the same table. */
static const struct error_status error_statuses[] = {
    { "upstream unavailable", NULL, 503, "Service Unavailable" },
    { "queue timeout", NULL, 503, "Service Unavailable" },
    { "limit: ", "(clients.max_queue)", 503, "Service Unavailable" },
    { "qmux is shutting down", NULL, 503, "Service Unavailable" },
    { "query timeout", NULL, 504, "Gateway Timeout" },
    { "upstream connection lost", NULL, 502, "Bad Gateway" },
    { "access: policy ", NULL, 403, "Forbidden" },
};

static void status_of_error(const char *text, size_t length, int *status, const char **reason)
{
    *status = 400;
    *reason = "Bad Request";
    for (size_t i = 0; i < sizeof(error_statuses) / sizeof(error_statuses[0]); i++) {
        const struct error_status *entry = &error_statuses[i];
        size_t prefix_length = strlen(entry->prefix);

        if (length < prefix_length || memcmp(text, entry->prefix, prefix_length) != 0)
            continue;
        if (entry->contains != NULL && strstr(text, entry->contains) == NULL)
            continue;
        *status = entry->status;
        *reason = entry->reason;
        return;
    }
}


/* Sets the status of a reply from the response msg[0..length): 200 for a value, and for a
 * kdb+ error the status of status_of_error. */
static void status_of_response(const uint8_t *msg, uint64_t length, int *status,
                               const char **reason)
{
    *status = 200;
    *reason = "OK";
    if (length > IPC_HEADER_SIZE + 1 && (int8_t)msg[IPC_HEADER_SIZE] == -128) {
        const char *error_text = (const char *)msg + IPC_HEADER_SIZE + 1;
        size_t room = (size_t)length - IPC_HEADER_SIZE - 1;

        status_of_error(error_text, strnlen(error_text, room), status, reason);
    }
}

/* ---- the count of replies in flight ----------------------------------------------------- */

/* libevent has written the last byte of a reply. The connection may go on to serve another
 * request, whose query sets a close callback of its own. */
static void reply_complete_cb(struct evhttp_request *request, void *arg)
{
    struct evhttp_connection *connection = evhttp_request_get_connection(request);

    (void)arg;
    if (connection != NULL)
        evhttp_connection_set_closecb(connection, NULL, NULL);
    replies_in_flight--;
    lifecycle_check_drained();
}

/* The connection closed after a whole reply was handed to libevent, before libevent had
 * written all of it. */
static void sent_reply_closed_cb(struct evhttp_connection *connection, void *arg)
{
    char *address = NULL;
    ev_uint16_t port = 0;

    (void)arg;
    evhttp_connection_get_peer(connection, &address, &port);
    log_info("http %s:%u: connection closed before the reply was written out",
             address != NULL ? address : "unknown", (unsigned)port);
    replies_in_flight--;
    lifecycle_check_drained();
}

void gateway_reply_expect(struct evhttp_request *request)
{
    evhttp_request_set_on_complete_cb(request, reply_complete_cb, NULL);
    replies_in_flight++;
}

void gateway_reply_abandoned(void)
{
    replies_in_flight--;
    lifecycle_check_drained();
}

void gateway_reply_watch(struct evhttp_connection *connection)
{
    if (connection != NULL)
        evhttp_connection_set_closecb(connection, sent_reply_closed_cb, NULL);
}

int gateway_replies_in_flight(void)
{
    return replies_in_flight;
}

/* ---- JSON replies, a slice at a time ------------------------------------------------------ */

static long elapsed_ms(const struct timeval *started)
{
    struct timeval now;

    gettimeofday(&now, NULL);
    return (long)((now.tv_sec - started->tv_sec) * 1000 +
                  (now.tv_usec - started->tv_usec) / 1000);
}

/* Frees the reply but not its HTTP request, and leaves the connection's close callback as
 * it is. */
static void reply_free(struct gateway_reply *reply)
{
    LIST_REMOVE(reply, link);
    if (reply->resume != NULL)
        event_free(reply->resume);
    json_renderer_free(reply->renderer);
    if (reply->message != NULL)
        evbuffer_free(reply->message);
    stream_free(&reply->body);
    free(reply);
}

/* Ends a reply that cannot be completed. Before any chunk is out, the client gets an error
 * reply with status. After that no status can tell the client, so the connection is closed
 * without the last chunk, which makes the transfer incomplete for the client. */
static void reply_fail(struct gateway_reply *reply, int status, const char *reason,
                       const char *text)
{
    if (!reply->chunked) {
        log_info("%s: query failed after %ld ms: %d %s", reply->peer,
                 elapsed_ms(&reply->started), status, text);
        gateway_reply_watch(reply->connection);
        gateway_send_error(reply->request, reply->gzip, status, reason, text);
        reply_free(reply);
        return;
    }

    log_error("%s: %s; closing the connection after %" PRIu64 " bytes of JSON", reply->peer,
              text, reply->body.json_bytes);
    struct evhttp_connection *connection = reply->connection;
    reply_free(reply);
    gateway_reply_abandoned();
    if (connection != NULL) {
        evhttp_connection_set_closecb(connection, NULL, NULL);
        evhttp_connection_free(connection);
    }
}

/* Renders up to GATEWAY_SLICE_SIZE bytes of JSON into the body, and stops early once the
 * body has GATEWAY_CHUNK_SIZE bytes. Returns 0, or an HTTP status with the reason in text
 * when rendering failed. */
static int render_slice(struct gateway_reply *reply, char *text, size_t size)
{
    size_t rendered = 0;

    while (rendered < GATEWAY_SLICE_SIZE &&
           evbuffer_get_length(reply->body.out) < GATEWAY_CHUNK_SIZE) {
        struct qdec_error error;
        size_t written;

        int result = json_renderer_next(reply->renderer, reply->piece, sizeof(reply->piece),
                                        &written, &error);
        if (result != JSON_OK) {
            snprintf(text, size, "cannot render the response as JSON: %s: %s",
                     json_status_text(result), error.message);
            return result == JSON_INVALID_MESSAGE ? 502 : 500;
        }
        if (written == 0) {
            reply->rendered = 1;
            return 0;
        }
        if (stream_write(&reply->body, reply->piece, written) != 0) {
            snprintf(text, size, "out of memory while rendering the response");
            return 500;
        }
        rendered += written;
    }
    return 0;
}

/* Renders the next slice on the next turn of the event loop, after libevent has polled
 * the sockets. event_active would run it in the current turn. */
static void schedule_slice(struct gateway_reply *reply)
{
    static const struct timeval now = { 0, 0 };

    if (evtimer_add(reply->resume, &now) != 0)
        reply_fail(reply, 500, "Internal Server Error", "cannot schedule rendering: libevent "
                   "failed to add a timer");
}

/* libevent has written the last chunk to the socket. */
static void chunk_written_cb(struct evhttp_connection *connection, void *arg)
{
    (void)connection;
    schedule_slice(arg);
}

/* Sends the status line and headers of a chunked reply. From then on libevent also reads
 * the connection, so it notices a client that has gone away. */
static void start_chunked(struct gateway_reply *reply)
{
    struct evkeyvalq *headers = evhttp_request_get_output_headers(reply->request);

    evhttp_add_header(headers, "Content-Type", "application/json");
    evhttp_add_header(headers, "Cache-Control", "no-store");
    add_reply_headers(reply->request, reply->gzip);
    evhttp_send_reply_start(reply->request, reply->status, reply->reason);
    reply->chunked = 1;
}

/* Hands the body to libevent as one chunk. chunk_written_cb runs once libevent has
 * written it. */
static void send_chunk(struct gateway_reply *reply)
{
    if (!reply->chunked)
        start_chunked(reply);
    evhttp_send_reply_chunk_with_cb(reply->request, reply->body.out, chunk_written_cb, reply);
}

/* Hands the rest of the body to libevent, whole with a Content-Length when no chunk has
 * been sent, and frees the reply. From here the count of the reply ends when libevent has
 * written it or the connection closes. */
static void reply_finish(struct gateway_reply *reply)
{
    if (stream_finish(&reply->body) != 0) {
        reply_fail(reply, 500, "Internal Server Error",
                   "out of memory while rendering the response");
        return;
    }
    log_debug("%s: query answered in %ld ms: %d, %" PRIu64 " bytes of JSON%s", reply->peer,
              elapsed_ms(&reply->started), reply->status, reply->body.json_bytes,
              reply->gzip ? ", gzipped" : "");

    /* Set before the reply is sent, because libevent may complete it and free the
     * connection within the call. */
    gateway_reply_watch(reply->connection);
    if (reply->chunked) {
        evhttp_send_reply_chunk(reply->request, reply->body.out);
        evhttp_send_reply_end(reply->request);
    } else {
        send_whole(reply->request, &reply->body, reply->status, reply->reason);
    }
    reply_free(reply);
}

/*
 * Renders the next slice and sends what is ready. A text that fits in the first slice
 * goes out whole. A longer one starts a chunked reply at once, even while deflate still
 * holds all of its output. Rendering goes on when libevent has written the chunk sent, or
 * on the next turn of the loop when no chunk is ready yet.
 */
static void reply_continue(struct gateway_reply *reply)
{
    char text[300];
    int status = render_slice(reply, text, sizeof(text));

    if (status != 0) {
        reply_fail(reply, status, status == 502 ? "Bad Gateway" : "Internal Server Error", text);
    } else if (reply->rendered) {
        reply_finish(reply);
    } else if (evbuffer_get_length(reply->body.out) >= GATEWAY_CHUNK_SIZE) {
        send_chunk(reply);
    } else {
        if (!reply->chunked)
            start_chunked(reply);
        schedule_slice(reply);
    }
}

static void resume_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    reply_continue(arg);
}

/* libevent frees the HTTP connection while the reply is rendered: the client closed it,
 * it timed out, or qmux is shutting down (evhttp_free). A request that libevent detached
 * from the connection is the gateway's to free; one still on it is freed by libevent. */
static void reply_closed_cb(struct evhttp_connection *connection, void *arg)
{
    struct gateway_reply *reply = arg;

    (void)connection;
    log_info("%s: connection closed after %" PRIu64 " bytes of JSON; rendering stopped",
             reply->peer, reply->body.json_bytes);
    if (evhttp_request_get_connection(reply->request) == NULL)
        evhttp_request_free(reply->request);
    reply_free(reply);
    gateway_reply_abandoned();
}

void gateway_reply_start(struct evhttp_request *request, int gzip, const char *peer,
                         const struct timeval *started, struct evbuffer *message)
{
    struct gateway_reply *reply = calloc(1, sizeof(*reply));
    struct qdec_error error;
    char text[300];

    if (reply == NULL) {
        evbuffer_free(message);
        log_info("%s: query failed after %ld ms: 500 out of memory for the reply", peer,
                 elapsed_ms(started));
        gateway_reply_watch(evhttp_request_get_connection(request));
        gateway_send_error(request, gzip, 500, "Internal Server Error",
                           "out of memory for the reply");
        return;
    }
    reply->request = request;
    reply->connection = evhttp_request_get_connection(request);
    reply->message = message;
    reply->gzip = gzip;
    reply->started = *started;
    snprintf(reply->peer, sizeof(reply->peer), "%s", peer);
    LIST_INSERT_HEAD(&replies, reply, link);

    size_t length = evbuffer_get_length(message);
    const uint8_t *msg = evbuffer_pullup(message, -1);
    reply->resume = evtimer_new(qmux.base, resume_cb, reply);
    if (msg == NULL || reply->resume == NULL || stream_begin(&reply->body, gzip) != 0) {
        reply_fail(reply, 500, "Internal Server Error", "out of memory for the reply");
        return;
    }
    status_of_response(msg, length, &reply->status, &reply->reason);

    int result = json_renderer_new(msg, length, NULL, &reply->renderer, &error);
    if (result != JSON_OK) {
        snprintf(text, sizeof(text), "cannot render the response as JSON: %s: %s",
                 json_status_text(result), error.message);
        if (result == JSON_INVALID_MESSAGE)
            reply_fail(reply, 502, "Bad Gateway", text);
        else
            reply_fail(reply, 500, "Internal Server Error", text);
        return;
    }

    if (reply->connection != NULL)
        evhttp_connection_set_closecb(reply->connection, reply_closed_cb, reply);
    reply_continue(reply);
}

void gateway_reply_stop(void)
{
    struct gateway_reply *reply;

    while ((reply = LIST_FIRST(&replies)) != NULL)
        reply_free(reply);
}
