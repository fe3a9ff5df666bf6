/*
 * gateway.c - q queries over HTTP (see gateway.h and docs/http.md).
 *
 * One query, step by step: the handler reads the q text from the query string or the
 * body, attaches a client to one end of a bufferevent pair and writes a sync request on
 * the other end. The response is framed by its 8-byte header, decompressed when needed
 * and rendered with json_render straight into the HTTP reply, gzipped on request. Freeing
 * the gateway's end after a flush with BEV_FINISHED closes the attached client.
 */
#include "gateway.h"

#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/queue.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <zlib.h>

#include "client.h"
#include "compress.h"
#include "http.h"
#include "http_auth.h"
#include "ipc.h"
#include "json.h"
#include "lifecycle.h"
#include "log.h"
#include "qmux.h"

/* The attached clients agree capability 3: every q type reads the same as at 5 and 6 below
 * 2 GiB, and qmux replaces a larger response with 'limit for such a client. */
#define GATEWAY_CAPABILITY 3

/* JSON bytes buffered before the reply switches to chunked transfer encoding, and the size
 * of each chunk after that. A smaller result goes out whole with a Content-Length. */
#define GATEWAY_CHUNK_SIZE (64 * 1024)

/* How often a waiting query checks that qmux has not closed its client, ms. qmux closes a
 * client without any message on the pair, for example after an upstream connection died
 * with part of the response relayed, or on an admin "kill client". */
#define GATEWAY_WATCH_MS 250

/* Bytes of output space reserved for each deflate call. */
#define GATEWAY_DEFLATE_STEP (16 * 1024)

/* One HTTP query from its arrival until its reply is sent or its connection is gone. */
struct gateway_query {
    struct evhttp_request *request;
    struct evhttp_connection *connection;
    struct bufferevent *end;        /* the gateway's end of the pair; the client has the other */
    struct event *timeout;          /* http.request_timeout_ms */
    struct event *watch;            /* GATEWAY_WATCH_MS check that the client still exists */
    int gzip;                       /* the reply is gzipped (Accept-Encoding: gzip) */
    struct timeval started;
    char peer[80];                  /* "http ADDRESS:PORT" */
    LIST_ENTRY(gateway_query) link;
};

static LIST_HEAD(, gateway_query) queries = LIST_HEAD_INITIALIZER(queries);

/* The body of one reply while it is produced: JSON text, gzipped or not, buffered in out
 * and sent as a chunk whenever GATEWAY_CHUNK_SIZE bytes are ready. */
struct reply_stream {
    struct evhttp_request *request;
    struct evbuffer *out;
    int gzip;
    z_stream zlib;
    int zlib_ready;                 /* deflateInit2 succeeded; deflateEnd is due */
    int chunked;                    /* evhttp_send_reply_start was called */
    int status;
    const char *reason;
    int failed;                     /* out of memory or a zlib error; stops json_render */
    uint64_t json_bytes;
};

/* ---- replies ------------------------------------------------------------------------- */

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

/* Sends the bytes in stream->out as one chunk, starting the chunked reply first. */
static void send_chunk(struct reply_stream *stream)
{
    if (!stream->chunked) {
        evhttp_add_header(evhttp_request_get_output_headers(stream->request), "Content-Type",
                          "application/json");
        evhttp_add_header(evhttp_request_get_output_headers(stream->request), "Cache-Control",
                          "no-store");
        add_reply_headers(stream->request, stream->gzip);
        evhttp_send_reply_start(stream->request, stream->status, stream->reason);
        stream->chunked = 1;
    }
    evhttp_send_reply_chunk(stream->request, stream->out);
}

/* The json_write_fn of json_render. */
static int stream_write(void *ctx, const char *bytes, size_t length)
{
    struct reply_stream *stream = ctx;

    stream->json_bytes += length;
    if (stream->gzip) {
        if (deflate_into(stream, bytes, length, Z_NO_FLUSH) != 0)
            stream->failed = 1;
    } else if (evbuffer_add(stream->out, bytes, length) != 0) {
        stream->failed = 1;
    }
    if (stream->failed)
        return -1;
    if (evbuffer_get_length(stream->out) >= GATEWAY_CHUNK_SIZE)
        send_chunk(stream);
    return 0;
}

static int stream_begin(struct reply_stream *stream, struct evhttp_request *request, int gzip,
                        int status, const char *reason)
{
    memset(stream, 0, sizeof(*stream));
    stream->request = request;
    stream->gzip = gzip;
    stream->status = status;
    stream->reason = reason;
    stream->out = evbuffer_new();
    if (stream->out == NULL)
        return -1;
    if (gzip) {
        /* windowBits 15 + 16 selects the gzip wrapper (RFC 1952) instead of zlib's. */
        if (deflateInit2(&stream->zlib, Z_DEFAULT_COMPRESSION, Z_DEFLATED, 15 + 16, 8,
                         Z_DEFAULT_STRATEGY) != Z_OK) {
            evbuffer_free(stream->out);
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

/* Ends the body with a newline (and the gzip trailer) and sends the rest of the reply.
 * Returns 0, or -1 when the end could not be produced and nothing was sent yet. */
static int stream_end(struct reply_stream *stream)
{
    if (stream_write(stream, "\n", 1) != 0 ||
        (stream->gzip && deflate_into(stream, NULL, 0, Z_FINISH) != 0)) {
        stream->failed = 1;
        return -1;
    }
    if (stream->chunked) {
        evhttp_send_reply_chunk(stream->request, stream->out);
        evhttp_send_reply_end(stream->request);
    } else {
        add_reply_headers(stream->request, stream->gzip);
        http_send(stream->request, stream->status, stream->reason, "application/json",
                  stream->out);
    }
    return 0;
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

/* Sends {"error":"text"} with the given status, gzipped when the query asked for it. */
static void send_error(struct evhttp_request *request, int gzip, int status, const char *reason,
                       const char *text)
{
    struct evbuffer *json = evbuffer_new();
    struct reply_stream stream;

    if (json == NULL || stream_begin(&stream, request, gzip, status, reason) != 0) {
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
    if (bytes == NULL || stream_write(&stream, bytes, length) != 0 || stream_end(&stream) != 0) {
        log_error("http: out of memory for a %d reply", status);
        evhttp_send_reply(request, 500, "Internal Server Error", NULL);
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

/* ---- one query ----------------------------------------------------------------------- */

static long elapsed_ms(const struct gateway_query *query)
{
    struct timeval now;

    gettimeofday(&now, NULL);
    return (long)((now.tv_sec - query->started.tv_sec) * 1000 +
                  (now.tv_usec - query->started.tv_usec) / 1000);
}

/* Frees the query but not its HTTP request. The flush with BEV_FINISHED makes the attached
 * client see EOF, so qmux closes it. Freeing the end alone would not, because libevent 2.1
 * does not tell a pair's partner that its end was freed. */
static void query_free(struct gateway_query *query)
{
    LIST_REMOVE(query, link);
    if (query->connection != NULL)
        evhttp_connection_set_closecb(query->connection, NULL, NULL);
    if (query->timeout != NULL)
        event_free(query->timeout);
    if (query->watch != NULL)
        event_free(query->watch);
    if (query->end != NULL) {
        bufferevent_flush(query->end, EV_WRITE, BEV_FINISHED);
        bufferevent_free(query->end);
    }
    free(query);
}

/* Replies with an error of the gateway itself and frees the query. */
static void query_fail(struct gateway_query *query, int status, const char *reason,
                       const char *text)
{
    log_info("%s: query failed after %ld ms: %d %s", query->peer, elapsed_ms(query),
             status, text);
    send_error(query->request, query->gzip, status, reason, text);
    query_free(query);
}

/* Renders the response message msg[0..length) as the reply. */
static void reply_with_response(struct gateway_query *query, const uint8_t *msg, uint64_t length)
{
    int status = 200;
    const char *reason = "OK";
    struct reply_stream stream;
    struct qdec_error error;
    char text[256];

    if (length > IPC_HEADER_SIZE + 1 && (int8_t)msg[IPC_HEADER_SIZE] == -128) {
        const char *error_text = (const char *)msg + IPC_HEADER_SIZE + 1;
        size_t room = (size_t)length - IPC_HEADER_SIZE - 1;

        status_of_error(error_text, strnlen(error_text, room), &status, &reason);
    }
    if (stream_begin(&stream, query->request, query->gzip, status, reason) != 0) {
        query_fail(query, 500, "Internal Server Error", "out of memory");
        return;
    }

    /* NOTE: json_render runs to the end in this one call, so the whole JSON text (gzipped
     * or not) is queued in the connection's output buffer however slowly the client reads. */
    int result = json_render(msg, length, NULL, stream_write, &stream, &error);
    if (result == JSON_OK && stream_end(&stream) == 0) {
        log_debug("%s: query answered in %ld ms: %d, %" PRIu64 " bytes of JSON%s",
                  query->peer, elapsed_ms(query), status, stream.json_bytes,
                  query->gzip ? ", gzipped" : "");
        stream_free(&stream);
        query_free(query);
        return;
    }

    if (result == JSON_OK || result == JSON_WRITE_FAILED)
        snprintf(text, sizeof(text), "out of memory while rendering the response");
    else
        snprintf(text, sizeof(text), "cannot render the response as JSON: %s: %s",
                 json_status_text(result), error.message);
    if (!stream.chunked) {
        stream_free(&stream);
        query_fail(query, result == JSON_INVALID_MESSAGE ? 502 : 500,
                   result == JSON_INVALID_MESSAGE ? "Bad Gateway" : "Internal Server Error",
                   text);
        return;
    }

    /* Part of a 200 reply is out, so no status can tell the client. Closing the connection
     * without the last chunk makes the transfer incomplete, which HTTP clients report. */
    log_error("%s: %s; closing the connection after %" PRIu64 " bytes of JSON",
              query->peer, text, stream.json_bytes);
    stream_free(&stream);
    struct evhttp_connection *connection = query->connection;
    query->connection = NULL;
    evhttp_connection_set_closecb(connection, NULL, NULL);
    query_free(query);
    evhttp_connection_free(connection);
}

/* Renders the complete response at the head of input, decompressing it first when
 * needed, and frees the query. */
static void deliver_response(struct gateway_query *query, struct evbuffer *input,
                             const struct ipc_header *header)
{
    uint64_t limit = qmux.config->http_max_response_size;
    const uint8_t *msg = evbuffer_pullup(input, (ev_ssize_t)header->length);
    char text[200];

    if (msg == NULL) {
        query_fail(query, 500, "Internal Server Error", "out of memory for the response");
        return;
    }
    if (!header->compressed) {
        reply_with_response(query, msg, header->length);
        return;
    }

    uint64_t size;
    if (decompress_size(msg, header->length, &size) != 0) {
        query_fail(query, 502, "Bad Gateway", "invalid compressed response");
        return;
    }
    if (size > limit) {
        snprintf(text, sizeof(text), "response of %" PRIu64 " bytes uncompressed exceeds "
                 "http.max_response_size (%" PRIu64 ")", size, limit);
        query_fail(query, 502, "Bad Gateway", text);
        return;
    }
    uint8_t *plain = malloc((size_t)size);
    if (plain == NULL) {
        query_fail(query, 500, "Internal Server Error", "out of memory for the response");
        return;
    }
    char reason[160];
    if (decompress_message(msg, header->length, plain, size, reason, sizeof(reason)) != 0) {
        snprintf(text, sizeof(text), "invalid compressed response: %s", reason);
        free(plain);
        query_fail(query, 502, "Bad Gateway", text);
        return;
    }
    reply_with_response(query, plain, size);
    free(plain);
}

/* kdb+ may send the client a sync request or an async message before the response (a
 * callback through .z.w). The gateway has no q session to run them in: a sync request
 * gets an error, so the upstream connection is not left waiting, and an async one is
 * dropped. */
static void answer_upstream_message(struct gateway_query *query, struct evbuffer *input,
                                     const struct ipc_header *header)
{
    if (header->type == IPC_SYNC) {
        uint8_t error[IPC_ERROR_MESSAGE_MAX];
        size_t length = ipc_error_message(error, sizeof(error),
                                          "nyi: qmux's HTTP gateway does not answer requests "
                                          "from kdb+");

        bufferevent_write(query->end, error, length);
    }
    log_debug("%s: dropped a %s message of %" PRIu64 " bytes from kdb+ sent before the "
              "response", query->peer, ipc_msg_type_name(header->type), header->length);
    evbuffer_drain(input, (size_t)header->length);
}

/* Acts on the messages in the gateway's end. Returns 1 when the query got its reply (and
 * was freed), 0 while the response is incomplete. */
static int process_input(struct gateway_query *query)
{
    struct evbuffer *input = bufferevent_get_input(query->end);
    uint64_t limit = qmux.config->http_max_response_size;

    for (;;) {
        uint8_t raw[IPC_HEADER_SIZE];
        struct ipc_header header;
        char text[200];

        if (evbuffer_get_length(input) < IPC_HEADER_SIZE)
            return 0;
        evbuffer_copyout(input, raw, sizeof(raw));
        int status = ipc_header_parse(raw, &header);
        if (status != IPC_OK) {
            snprintf(text, sizeof(text), "invalid message header from qmux: %s",
                     ipc_status_text(status));
            query_fail(query, 502, "Bad Gateway", text);
            return 1;
        }
        if (header.length > limit) {
            snprintf(text, sizeof(text), "response of %" PRIu64 " bytes exceeds "
                     "http.max_response_size (%" PRIu64 ")", header.length, limit);
            query_fail(query, 502, "Bad Gateway", text);
            return 1;
        }
        if (evbuffer_get_length(input) < header.length)
            return 0;
        if (header.type == IPC_RESPONSE) {
            deliver_response(query, input, &header);
            return 1;
        }
        answer_upstream_message(query, input, &header);
    }
}

static void end_read_cb(struct bufferevent *end, void *arg)
{
    (void)end;
    process_input(arg);
}

/* Only BEV_FINISHED from the partner raises events on a pair, and qmux does not send it;
 * handled in case it does. */
static void end_event_cb(struct bufferevent *end, short what, void *arg)
{
    struct gateway_query *query = arg;

    (void)end;
    if (!(what & (BEV_EVENT_EOF | BEV_EVENT_ERROR)))
        return;
    if (!process_input(query))
        query_fail(query, 502, "Bad Gateway",
                   "qmux closed the query's connection before the response was complete");
}

static void timeout_cb(evutil_socket_t fd, short what, void *arg)
{
    struct gateway_query *query = arg;
    char text[160];

    (void)fd;
    (void)what;
    snprintf(text, sizeof(text), "request timeout: no response within %d ms "
             "(http.request_timeout_ms)", qmux.config->http_request_timeout_ms);
    query_fail(query, 504, "Gateway Timeout", text);
}

static void watch_cb(evutil_socket_t fd, short what, void *arg)
{
    struct gateway_query *query = arg;

    (void)fd;
    (void)what;
    if (bufferevent_pair_get_partner(query->end) != NULL || process_input(query))
        return;
    query_fail(query, 502, "Bad Gateway",
               "qmux closed the query's connection before the response was complete; its "
               "log names the reason");
}

/* Replies to queries not yet written out completely; libevent calls reply_complete_cb
 * when the last byte of one has been written, and connection_closed_cb counts the
 * queries whose connection closed before their reply.
 * NOTE: when the connection fails while the reply is being written, libevent calls
 * neither and the count stays high, so a graceful shutdown bounds its wait for HTTP
 * replies separately (lifecycle.c). */
static int replies_in_flight;

static void reply_complete_cb(struct evhttp_request *request, void *arg)
{
    (void)request;
    (void)arg;
    replies_in_flight--;
    lifecycle_check_drained();
}

/* libevent frees the HTTP connection: at shutdown (evhttp_free) or after a network error.
 * A request detached from it by libevent is the gateway's to free; one still on it is
 * freed by libevent. */
static void connection_closed_cb(struct evhttp_connection *connection, void *arg)
{
    struct gateway_query *query = arg;

    (void)connection;
    log_info("%s: connection closed while its query waited for the response",
             query->peer);
    /* No reply will be written for this request, so reply_complete_cb will not run. */
    replies_in_flight--;
    query->connection = NULL;
    if (evhttp_request_get_connection(query->request) == NULL)
        evhttp_request_free(query->request);
    query_free(query);
}

/* ---- the request --------------------------------------------------------------------- */

/* Returns 1 when the Accept-Encoding header accepts gzip: a "gzip" or "x-gzip" entry
 * whose q value is not 0. */
static int accepts_gzip(struct evhttp_request *request)
{
    const char *header = evhttp_find_header(evhttp_request_get_input_headers(request),
                                            "Accept-Encoding");
    char entry[64];

    if (header == NULL)
        return 0;
    while (*header != '\0') {
        size_t length = strcspn(header, ",");
        size_t copy = length < sizeof(entry) - 1 ? length : sizeof(entry) - 1;

        memcpy(entry, header, copy);
        entry[copy] = '\0';
        header += length;
        if (*header == ',')
            header++;

        char *name = entry + strspn(entry, " \t");
        size_t name_length = strcspn(name, " \t;");
        if (!((name_length == 4 && strncasecmp(name, "gzip", 4) == 0) ||
              (name_length == 6 && strncasecmp(name, "x-gzip", 6) == 0)))
            continue;

        const char *q = strstr(name + name_length, "q=");
        if (q == NULL || strtod(q + 2, NULL) > 0)
            return 1;
    }
    return 0;
}

/* Stores a malloc'd copy of the query parameter of form (a query string or a form body)
 * in *text. Returns 1 when found, 0 when form has no query parameter or does not parse,
 * -1 when out of memory. */
static int find_query_parameter(const char *form, char **text, size_t *length)
{
    struct evkeyvalq parameters;
    int found = 0;

    TAILQ_INIT(&parameters);
    if (evhttp_parse_query_str(form, &parameters) == 0) {
        const char *value = evhttp_find_header(&parameters, "query");

        if (value != NULL) {
            *length = strlen(value);
            *text = strdup(value);
            found = *text != NULL ? 1 : -1;
        }
    }
    evhttp_clear_headers(&parameters);
    return found;
}

/*
 * Finds the q text of the request and stores a malloc'd copy in *text and its length:
 * the query parameter of GET, or of a POST form (application/x-www-form-urlencoded, which
 * curl -d sends by default), else the whole POST body. A form body without a query
 * parameter is taken as q text, so `curl -d 'til 5'` works. Returns 0, or -1 with the
 * reason in error (*text is then NULL).
 */
static int request_query_text(struct evhttp_request *request, char **text, size_t *length,
                              char *error, size_t error_size)
{
    int found;

    *text = NULL;
    if (evhttp_request_get_command(request) == EVHTTP_REQ_POST) {
        struct evbuffer *input = evhttp_request_get_input_buffer(request);
        size_t body_length = evbuffer_get_length(input);
        const char *type = evhttp_find_header(evhttp_request_get_input_headers(request),
                                              "Content-Type");
        char *body = malloc(body_length + 1);

        if (body == NULL) {
            snprintf(error, error_size, "out of memory for a body of %zu bytes", body_length);
            return -1;
        }
        evbuffer_copyout(input, body, body_length);
        body[body_length] = '\0';
        found = 0;
        if (type != NULL && strncasecmp(type, "application/x-www-form-urlencoded", 33) == 0)
            found = find_query_parameter(body, text, length);
        if (found == 0) {
            *text = body;
            *length = body_length;
            return 0;
        }
        free(body);
    } else {
        const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(request);
        const char *query_string = uri != NULL ? evhttp_uri_get_query(uri) : NULL;

        found = query_string != NULL ? find_query_parameter(query_string, text, length) : 0;
        if (found == 0) {
            snprintf(error, error_size, "missing query: send GET /q?query=<url-encoded q> "
                     "or the q text as the body of POST /q");
            return -1;
        }
    }
    if (found < 0) {
        snprintf(error, error_size, "out of memory for the query");
        return -1;
    }
    return 0;
}

/* Writes the sync request whose body is the char vector text[0..length). */
static int write_query(struct bufferevent *end, const char *text, size_t length)
{
    uint8_t head[IPC_HEADER_SIZE + 6];
    uint32_t count = (uint32_t)length;

    ipc_header_write(head, IPC_SYNC, IPC_HEADER_SIZE + 6 + (uint64_t)length);
    head[IPC_HEADER_SIZE] = 10;         /* char vector */
    head[IPC_HEADER_SIZE + 1] = 0;      /* no attribute */
    for (int i = 0; i < 4; i++)
        head[IPC_HEADER_SIZE + 2 + i] = (uint8_t)(count >> (8 * i));
    if (bufferevent_write(end, head, sizeof(head)) != 0)
        return -1;
    return bufferevent_write(end, text, length);
}

/* Creates the pair and the client, sends the query and arms the timers. Returns the
 * query, or NULL when out of memory (nothing is left to free then). */
static struct gateway_query *start_query(struct evhttp_request *request, const char *peer,
                                         const char *user, const struct auth_user *account,
                                         int gzip, const char *text, size_t length)
{
    struct gateway_query *query = calloc(1, sizeof(*query));
    struct bufferevent *pair[2];

    if (query == NULL)
        return NULL;
    if (bufferevent_pair_new(qmux.base, 0, pair) != 0) {
        free(query);
        return NULL;
    }
    query->request = request;
    query->connection = evhttp_request_get_connection(request);
    query->end = pair[1];
    query->gzip = gzip;
    gettimeofday(&query->started, NULL);
    snprintf(query->peer, sizeof(query->peer), "%s", peer);
    LIST_INSERT_HEAD(&queries, query, link);

    if (client_attach(pair[0], peer, user, GATEWAY_CAPABILITY, account) == NULL) {
        bufferevent_free(pair[0]);
        query_free(query);
        return NULL;
    }

    int ms = qmux.config->http_request_timeout_ms;
    struct timeval timeout = { ms / 1000, (ms % 1000) * 1000 };
    struct timeval watch = { 0, GATEWAY_WATCH_MS * 1000 };
    query->timeout = evtimer_new(qmux.base, timeout_cb, query);
    query->watch = event_new(qmux.base, -1, EV_PERSIST, watch_cb, query);
    if (query->timeout == NULL || query->watch == NULL || evtimer_add(query->timeout, &timeout) != 0 ||
        evtimer_add(query->watch, &watch) != 0) {
        query_free(query);
        return NULL;
    }

    bufferevent_setcb(query->end, end_read_cb, NULL, end_event_cb, query);
    bufferevent_enable(query->end, EV_READ | EV_WRITE);
    if (write_query(query->end, text, length) != 0) {
        query_free(query);
        return NULL;
    }
    /* NOTE: libevent 2.1 does not read an HTTP connection while its request is handled, so
     * a client that disconnects now is noticed only when the reply is written. */
    if (query->connection != NULL)
        evhttp_connection_set_closecb(query->connection, connection_closed_cb, query);
    return query;
}

/* A query whose credentials are being checked. */
struct pending_query {
    struct evhttp_request *request;
    char peer[80];
    int gzip;
    char *text;
    size_t length;
};

/* Runs a query once http_auth_check admitted it, as user (account NULL: anonymous). */
static void run_query(void *arg, const char *user, const struct auth_user *account)
{
    struct pending_query *pending = arg;

    if (user == NULL) {
        free(pending->text);
        free(pending);
        return;
    }
    struct gateway_query *query = start_query(pending->request, pending->peer, user, account,
                                              pending->gzip, pending->text, pending->length);
    if (query != NULL) {
        /* A graceful shutdown waits for this reply to be written out, not only rendered. */
        evhttp_request_set_on_complete_cb(pending->request, reply_complete_cb, NULL);
        replies_in_flight++;
        log_debug("%s: query of %zu bytes as user %s sent", pending->peer, pending->length,
                  user);
    } else {
        log_error("%s: out of memory for a query", pending->peer);
        send_error(pending->request, pending->gzip, 500, "Internal Server Error",
                   "out of memory");
    }
    free(pending->text);
    free(pending);
}

void gateway_handle_query(struct evhttp_request *request)
{
    int gzip = accepts_gzip(request);
    char peer[80];
    char address[72];
    char error[200];
    char *text;
    size_t length;

    http_format_peer(request, address, sizeof(address));
    snprintf(peer, sizeof(peer), "http %s", address);

    if (request_query_text(request, &text, &length, error, sizeof(error)) != 0) {
        log_info("%s: rejected: %s", peer, error);
        send_error(request, gzip, 400, "Bad Request", error);
        return;
    }

    uint64_t limit = qmux.config->http_max_request_size;
    if (length == 0 || strspn(text, " \t\r\n") == length || length > limit) {
        if (length > limit)
            snprintf(error, sizeof(error), "query of %zu bytes exceeds http.max_request_size "
                     "(%" PRIu64 ")", length, limit);
        else
            snprintf(error, sizeof(error), "empty query: send GET /q?query=<url-encoded q> "
                     "or the q text as the body of POST /q");
        log_info("%s: rejected: %s", peer, error);
        send_error(request, gzip, 400, "Bad Request", error);
        free(text);
        return;
    }

    struct pending_query *pending = calloc(1, sizeof(*pending));
    if (pending == NULL) {
        log_error("%s: out of memory for a query", peer);
        send_error(request, gzip, 500, "Internal Server Error", "out of memory");
        free(text);
        return;
    }
    pending->request = request;
    snprintf(pending->peer, sizeof(pending->peer), "%s", peer);
    pending->gzip = gzip;
    pending->text = text;
    pending->length = length;
    http_auth_check(request, peer, run_query, pending);
}

int gateway_replies_in_flight(void)
{
    return replies_in_flight;
}

void gateway_stop(void)
{
    struct gateway_query *query;

    http_auth_stop();
    while ((query = LIST_FIRST(&queries)) != NULL) {
        query->connection = NULL;
        query_free(query);
    }
}
