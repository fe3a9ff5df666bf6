/*
 * gateway_reply.h - the replies of GET and POST /q (see gateway.h and docs/http.md).
 *
 * A kdb+ response becomes a JSON reply that is rendered a slice at a time, only as fast as
 * the HTTP client reads it, and gzipped on request. Errors become {"error":"text"}. The
 * module also counts the replies that libevent has not yet written out, which a graceful
 * shutdown waits for.
 */
#ifndef QMUX_GATEWAY_REPLY_H
#define QMUX_GATEWAY_REPLY_H

#include <sys/time.h>

struct evbuffer;
struct evhttp_connection;
struct evhttp_request;

/* Counts the reply that request is to get, until libevent has written its last byte or
 * its connection has closed. */
void gateway_reply_expect(struct evhttp_request *request);

/* Ends the count of a reply whose connection closed before the reply was started. */
void gateway_reply_abandoned(void);

/* Makes the count of a reply also end when connection closes before libevent has written
 * the reply. Call it just before handing a whole reply to libevent. */
void gateway_reply_watch(struct evhttp_connection *connection);

/* Sends {"error":"text"} with the given status, gzipped when gzip is set. */
void gateway_send_error(struct evhttp_request *request, int gzip, int status, const char *reason,
                        const char *text);

/*
 * Starts the reply to a counted request with the JSON text of the kdb+ response in
 * message, one whole uncompressed message. The reply takes message and the connection's
 * close callback, and frees both when it is done. A response that cannot be rendered gets
 * an error reply. peer names the client in the log, and started is when the query
 * arrived.
 */
void gateway_reply_start(struct evhttp_request *request, int gzip, const char *peer,
                         const struct timeval *started, struct evbuffer *message);

/* Frees the replies still being rendered, without sending more. Called by gateway_stop
 * after evhttp_free. */
void gateway_reply_stop(void);

#endif
