/*
 * gateway.h - q queries over HTTP: GET /q?query=... and POST /q run a q expression through
 * the same queue, pool, limits and statistics as IPC clients, and return the result as
 * JSON (docs/http.md).
 *
 * Each HTTP query gets its own in-process client (client_attach on one end of a
 * bufferevent pair). The gateway writes one sync request on the other end, reads the one
 * response and frees the pair, which closes the client. gateway_reply.h then renders the
 * response as the reply, as fast as the HTTP client reads it.
 */
#ifndef QMUX_GATEWAY_H
#define QMUX_GATEWAY_H

struct evhttp_request;

/* Handles GET and POST /q. */
void gateway_handle_query(struct evhttp_request *request);

/* Frees what remains of queries still waiting for their response, without replying.
 * Called by http_stop after evhttp_free, which has freed their HTTP requests. */
void gateway_stop(void);

/* Returns the number of query replies not yet written out completely. */
int gateway_replies_in_flight(void);

#endif
