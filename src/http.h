/*
 * http.h - the HTTP listener (libevent's evhttp) for monitoring and q queries: a table of
 * routes in http.c maps a method and an exact path to a handler. Every reply qmux itself
 * generates, including 404 and 405, has a JSON or plain text body, except the query page
 * that GET / returns.
 */
#ifndef QMUX_HTTP_H
#define QMUX_HTTP_H

#include <stddef.h>

struct evbuffer;
struct evhttp_request;

/* Starts listening on http.address:http.port when http.port is not 0. Returns 0, or -1
 * after logging why. */
int http_start(void);

/* Closes the listener and every HTTP connection. */
void http_stop(void);

/* Sends a reply of the given status with body (drained by the call) and Content-Type. */
void http_send(struct evhttp_request *request, int status, const char *reason,
               const char *content_type, struct evbuffer *body);

/* Writes the peer of request as "address:port" into out. */
void http_format_peer(struct evhttp_request *request, char *out, size_t size);

/* Sends a reply whose body is the NUL-terminated JSON text json. */
void http_send_json(struct evhttp_request *request, int status, const char *reason,
                    const char *json);

#endif
