/*
 * gateway.c - q queries over HTTP (see gateway.h and docs/http.md).
 *
 * One query, step by step: the handler reads the q text from the query string or the
 * body, attaches a client to one end of a bufferevent pair and writes a sync request on
 * the other end. The response is framed by its 8-byte header and decompressed when
 * needed. Then the query ends: freeing the gateway's end after a flush with BEV_FINISHED
 * closes the attached client, and gateway_reply.c renders the response as the HTTP reply.
 */
#include "gateway.h"

#include <ctype.h>
#include <inttypes.h>
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

#include "client.h"
#include "compress.h"
#include "gateway_reply.h"
#include "http.h"
#include "http_auth.h"
#include "ipc.h"
#include "log.h"
#include "qmux.h"

/* The attached clients agree capability 3: every q type reads the same as at 5 and 6 below
 * 2 GiB, and qmux replaces a larger response with 'limit for such a client. */
#define GATEWAY_CAPABILITY 3

/* How often a waiting query checks that qmux has not closed its client, ms. qmux closes a
 * client without any message on the pair, for example after an upstream connection died
 * with part of the response relayed, or on an admin "kill client". */
#define GATEWAY_WATCH_MS 250

/* One HTTP query from its arrival until its kdb+ response arrives, it fails, or its
 * connection is gone. */
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
    /* The reply's count now ends with the reply or the connection, not with the query. */
    gateway_reply_watch(query->connection);
    query->connection = NULL;
    gateway_send_error(query->request, query->gzip, status, reason, text);
    query_free(query);
}

/* Frees the query and starts its reply with the response in message. */
static void query_reply(struct gateway_query *query, struct evbuffer *message)
{
    struct evhttp_request *request = query->request;
    int gzip = query->gzip;
    struct timeval started = query->started;
    char peer[sizeof(query->peer)];

    memcpy(peer, query->peer, sizeof(peer));
    query_free(query);
    gateway_reply_start(request, gzip, peer, &started, message);
}

static void free_plain(const void *data, size_t length, void *arg)
{
    (void)length;
    (void)arg;
    free((void *)data);
}

/* Takes the complete response at the head of input, decompressing it first when needed,
 * and frees the query, which starts its reply. */
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
        struct evbuffer *message = evbuffer_new();

        if (message != NULL)
            evbuffer_remove_buffer(input, message, (size_t)header->length);
        if (message == NULL || evbuffer_get_length(message) != header->length) {
            if (message != NULL)
                evbuffer_free(message);
            query_fail(query, 500, "Internal Server Error", "out of memory for the response");
            return;
        }
        query_reply(query, message);
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
    evbuffer_drain(input, (size_t)header->length);
    struct evbuffer *message = evbuffer_new();
    if (message == NULL || evbuffer_add_reference(message, plain, (size_t)size, free_plain,
                                                  NULL) != 0) {
        if (message != NULL)
            evbuffer_free(message);
        free(plain);
        query_fail(query, 500, "Internal Server Error", "out of memory for the response");
        return;
    }
    query_reply(query, message);
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

/* libevent frees the HTTP connection: at shutdown (evhttp_free) or after a network error.
 * A request detached from it by libevent is the gateway's to free; one still on it is
 * freed by libevent. */
static void connection_closed_cb(struct evhttp_connection *connection, void *arg)
{
    struct gateway_query *query = arg;

    (void)connection;
    log_info("%s: connection closed while its query waited for the response",
             query->peer);
    query->connection = NULL;
    if (evhttp_request_get_connection(query->request) == NULL)
        evhttp_request_free(query->request);
    query_free(query);
    gateway_reply_abandoned();
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

/* Returns nonzero when every '%' of form starts an escape of two hex digits other than
 * %00: libevent would pass a broken escape through as text, and cut the value at %00. */
static int url_encoding_valid(const char *form)
{
    for (const char *p = strchr(form, '%'); p != NULL; p = strchr(p + 1, '%')) {
        if (!isxdigit((unsigned char)p[1]) || !isxdigit((unsigned char)p[2]) ||
            (p[1] == '0' && p[2] == '0'))
            return 0;
    }
    return 1;
}

/* Stores a malloc'd copy of the query parameter of form (a query string or a form body)
 * in *text. Returns 1 when found, 0 when form has no query parameter or does not parse,
 * -1 when out of memory, -2 when the form has a query parameter and broken escapes. */
static int find_query_parameter(const char *form, char **text, size_t *length)
{
    struct evkeyvalq parameters;
    int found = 0;

    TAILQ_INIT(&parameters);
    if (evhttp_parse_query_str(form, &parameters) == 0) {
        const char *value = evhttp_find_header(&parameters, "query");

        if (value != NULL && !url_encoding_valid(form)) {
            found = -2;
        } else if (value != NULL) {
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
    if (found == -2) {
        snprintf(error, error_size, "invalid URL encoding: each %% must start two hex digits, "
                 "and %%00 (a NUL byte) cannot be part of q text; write %% itself as %%25");
        return -1;
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
        gateway_reply_expect(pending->request);
        log_debug("%s: query of %zu bytes as user %s sent", pending->peer, pending->length,
                  user);
    } else {
        log_error("%s: out of memory for a query", pending->peer);
        gateway_send_error(pending->request, pending->gzip, 500, "Internal Server Error",
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
        gateway_send_error(request, gzip, 400, "Bad Request", error);
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
        gateway_send_error(request, gzip, 400, "Bad Request", error);
        free(text);
        return;
    }

    struct pending_query *pending = calloc(1, sizeof(*pending));
    if (pending == NULL) {
        log_error("%s: out of memory for a query", peer);
        gateway_send_error(request, gzip, 500, "Internal Server Error", "out of memory");
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

void gateway_stop(void)
{
    struct gateway_query *query;

    http_auth_stop();
    while ((query = LIST_FIRST(&queries)) != NULL) {
        query->connection = NULL;
        query_free(query);
    }
    gateway_reply_stop();
}
