/*
 * http.c - the HTTP listener: evhttp on http.address:http.port, one generic callback that
 * looks the request up in the route table below.
 */
#include "http.h"

#include <stdio.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <event2/listener.h>

#include "gateway.h"
#include "log.h"
#include "metrics.h"
#include "page.h"
#include "qmux.h"

/* Bounds on what a client may send. A body may have up to http.max_request_size bytes,
 * for the q text of POST /q. */
#define HTTP_MAX_HEADERS_SIZE (16 * 1024)
#define HTTP_TIMEOUT_SECONDS 30

/* Every method evhttp 2.1 parses. The generic callback rejects what a route does not
 * accept with a JSON 405, where evhttp itself would send an HTML page. */
#define HTTP_ALL_METHODS                                                                  \
    (EVHTTP_REQ_GET | EVHTTP_REQ_POST | EVHTTP_REQ_HEAD | EVHTTP_REQ_PUT |                \
     EVHTTP_REQ_DELETE | EVHTTP_REQ_OPTIONS | EVHTTP_REQ_TRACE | EVHTTP_REQ_CONNECT |     \
     EVHTTP_REQ_PATCH)

struct http_route {
    const char *path;               /* matched exactly, without the query string */
    unsigned methods;               /* EVHTTP_REQ_* bits; a route with HEAD serves it as GET */
    const char *allow;              /* the Allow header of a 405 reply */
    void (*handle)(struct evhttp_request *request);
};

/* The routes. A new endpoint is one more line here. */
static const struct http_route routes[] = {
    { "/metrics", EVHTTP_REQ_GET | EVHTTP_REQ_HEAD, "GET, HEAD", metrics_handle_metrics },
    { "/health", EVHTTP_REQ_GET | EVHTTP_REQ_HEAD, "GET, HEAD", metrics_handle_health },
    { "/q", EVHTTP_REQ_GET | EVHTTP_REQ_POST, "GET, POST", gateway_handle_query },
    { "/", EVHTTP_REQ_GET | EVHTTP_REQ_HEAD, "GET, HEAD", page_handle_index },
};

static struct evhttp *server;

/* How long HTTP accepting pauses when the process runs out of descriptors. */
#define HTTP_ACCEPT_PAUSE_MS 100

static struct evconnlistener *listener;
static struct event *accept_resume_timer;
static struct log_limit accept_error_limit = { .interval_seconds = 10 };

/* A failed accept, most often EMFILE: without this callback libevent retries at once
 * and logs every failure, so the loop spins. Accepting pauses briefly instead. */
static void accept_error_cb(struct evconnlistener *source, void *arg)
{
    (void)arg;
    log_limited(&accept_error_limit, LOG_LEVEL_ERROR, "HTTP accept failed: %s with %d IPC "
                "clients connected; pausing HTTP accepts for %d ms. HTTP connections have "
                "no limit of their own: raise the open-file limit, or keep http.address "
                "on an interface only trusted clients reach",
                evutil_socket_error_to_string(EVUTIL_SOCKET_ERROR()), qmux.client_count,
                HTTP_ACCEPT_PAUSE_MS);
    qmux_pause_listener(source, &accept_resume_timer, HTTP_ACCEPT_PAUSE_MS);
}

void http_send(struct evhttp_request *request, int status, const char *reason,
               const char *content_type, struct evbuffer *body)
{
    struct evkeyvalq *headers = evhttp_request_get_output_headers(request);

    evhttp_add_header(headers, "Content-Type", content_type);
    evhttp_add_header(headers, "Cache-Control", "no-store");
    /* libevent 2.1 writes a body given for HEAD too. A reply to HEAD keeps the length of
     * the body that GET would get and drops the body. */
    if (evhttp_request_get_command(request) == EVHTTP_REQ_HEAD && body != NULL) {
        char length[24];

        snprintf(length, sizeof(length), "%zu", evbuffer_get_length(body));
        evhttp_add_header(headers, "Content-Length", length);
        evbuffer_drain(body, evbuffer_get_length(body));
    }
    evhttp_send_reply(request, status, reason, body);
}

void http_send_json(struct evhttp_request *request, int status, const char *reason,
                    const char *json)
{
    struct evbuffer *body = evbuffer_new();

    if (body == NULL) {
        log_error("http: out of memory for a %d reply", status);
        evhttp_send_reply(request, 500, "Internal Server Error", NULL);
        return;
    }
    evbuffer_add(body, json, strlen(json));
    evbuffer_add(body, "\n", 1);
    http_send(request, status, reason, "application/json", body);
    evbuffer_free(body);
}

static const char *method_name(enum evhttp_cmd_type method)
{
    switch (method) {
    case EVHTTP_REQ_GET: return "GET";
    case EVHTTP_REQ_POST: return "POST";
    case EVHTTP_REQ_HEAD: return "HEAD";
    case EVHTTP_REQ_PUT: return "PUT";
    case EVHTTP_REQ_DELETE: return "DELETE";
    case EVHTTP_REQ_OPTIONS: return "OPTIONS";
    case EVHTTP_REQ_TRACE: return "TRACE";
    case EVHTTP_REQ_CONNECT: return "CONNECT";
    case EVHTTP_REQ_PATCH: return "PATCH";
    }
    return "unknown";
}

void http_format_peer(struct evhttp_request *request, char *out, size_t size)
{
    struct evhttp_connection *connection = evhttp_request_get_connection(request);
    char *address = NULL;
    ev_uint16_t port = 0;

    if (connection == NULL) {
        snprintf(out, size, "unknown");
        return;
    }
    evhttp_connection_get_peer(connection, &address, &port);
    snprintf(out, size, "%s:%u", address != NULL ? address : "unknown", (unsigned)port);
}

static void dispatch_cb(struct evhttp_request *request, void *arg)
{
    const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(request);
    const char *path = uri != NULL ? evhttp_uri_get_path(uri) : NULL;
    enum evhttp_cmd_type method = evhttp_request_get_command(request);
    char peer[80];
    char logged_path[128];

    (void)arg;
    if (path == NULL || path[0] == '\0')
        path = "/";
    http_format_peer(request, peer, sizeof(peer));
    log_sanitize(logged_path, sizeof(logged_path), path, strlen(path));
    log_debug("http %s: %s %s", peer, method_name(method), logged_path);
    /* A reload may change http.max_request_size; connections accepted from now on get it. */
    evhttp_set_max_body_size(server, (ev_ssize_t)qmux.config->http_max_request_size);

    for (size_t i = 0; i < sizeof(routes) / sizeof(routes[0]); i++) {
        if (strcmp(path, routes[i].path) != 0)
            continue;
        if ((routes[i].methods & method) == 0) {
            evhttp_add_header(evhttp_request_get_output_headers(request), "Allow",
                              routes[i].allow);
            http_send_json(request, 405, "Method Not Allowed",
                           "{\"error\":\"method not allowed\"}");
            return;
        }
        routes[i].handle(request);
        return;
    }
    http_send_json(request, 404, "Not Found",
                   "{\"error\":\"not found\",\"paths\":[\"/\",\"/q\",\"/metrics\",\"/health\"]}");
}

int http_start(void)
{
    const struct config *config = qmux.config;

    if (config->http_port == 0)
        return 0;
    server = evhttp_new(qmux.base);
    if (server == NULL) {
        log_error("cannot create the HTTP server (out of memory)");
        return -1;
    }
    evhttp_set_allowed_methods(server, HTTP_ALL_METHODS);
    evhttp_set_max_headers_size(server, HTTP_MAX_HEADERS_SIZE);
    evhttp_set_max_body_size(server, (ev_ssize_t)config->http_max_request_size);
    evhttp_set_timeout(server, HTTP_TIMEOUT_SECONDS);
    /* Reads and discards the rest of a body over the limit before the 413 reply, so the
     * client receives the reply instead of a reset connection. */
    evhttp_set_flags(server, EVHTTP_SERVER_LINGERING_CLOSE);
    evhttp_set_gencb(server, dispatch_cb, NULL);
    /* NOTE: libevent 2.1 replies to a request it cannot parse (bad request line, headers
     * over HTTP_MAX_HEADERS_SIZE, a body over http.max_request_size) with its own HTML
     * error page before any callback runs; 2.1 has no hook to replace it. Every other
     * reply is JSON or text, except the HTML page of GET /. 2.1 also has no limit on open
     * HTTP connections; HTTP_TIMEOUT_SECONDS closes idle ones. */

    struct evhttp_bound_socket *bound = evhttp_bind_socket_with_handle(
        server, config->http_address, (ev_uint16_t)config->http_port);
    if (bound == NULL) {
        log_error("cannot listen for HTTP on %s:%d: %s; check http.address and http.port",
                  config->http_address, config->http_port,
                  evutil_socket_error_to_string(EVUTIL_SOCKET_ERROR()));
        evhttp_free(server);
        server = NULL;
        return -1;
    }
    listener = evhttp_bound_socket_get_listener(bound);
    evconnlistener_set_error_cb(listener, accept_error_cb);
    log_info("HTTP endpoint listening on %s:%d (/, /q, /metrics, /health)", config->http_address,
             config->http_port);
    return 0;
}

void http_stop(void)
{
    if (accept_resume_timer != NULL)
        event_free(accept_resume_timer);
    accept_resume_timer = NULL;
    listener = NULL;
    if (server == NULL)
        return;
    evhttp_free(server);
    server = NULL;
    gateway_stop();
}
