/*
 * tls.h - OpenSSL contexts for the client listener and for upstream connections, built
 * from the tls and upstream_tls settings and replaced on reload.
 *
 * A connection takes its SSL object from the context current when it opens. OpenSSL
 * counts the references of a context, so replacing one on reload leaves open connections
 * on the old context until they close.
 */
#ifndef QMUX_TLS_H
#define QMUX_TLS_H

#include <stddef.h>

#include <event2/bufferevent.h>
#include <openssl/ssl.h>

#include "config.h"

/* Type of a TLS handshake record: the first byte a TLS client sends. */
#define TLS_HANDSHAKE_RECORD 0x16

/*
 * Builds the contexts that config requires and, only when all succeed, makes them current
 * (freeing the previous ones). Returns 0, or -1 with a message in error naming the key,
 * the file and the OpenSSL reason, and the current contexts then stay as they were. Logs
 * the certificate each context presents. Never writes key material to the log or to error.
 */
int tls_load(const struct config *config, char *error, size_t error_size);

/* Builds the contexts that config requires and frees them, as qmux -t checks. Returns 0,
 * or -1 with a message in error, as tls_load. Logs nothing. */
int tls_check(const struct config *config, char *error, size_t error_size);

/* Frees the current contexts (at shutdown). */
void tls_unload(void);

/* Returns a new SSL object for an accepted client, or NULL when client TLS is off or
 * out of memory. */
SSL *tls_new_client_ssl(void);

/* Returns 1 when upstream connections use TLS (upstream_tls.enabled). */
int tls_upstream_enabled(void);

/*
 * Returns a new SSL object for a connection to the upstream host, set up to send and
 * check upstream_tls.server_name (or host), or NULL with the reason in error when
 * upstream TLS is off or the setup failed.
 */
SSL *tls_new_upstream_ssl(const char *host, char *error, size_t error_size);

/* Returns 1 when a and b differ in a setting of upstream_tls. */
int tls_upstream_settings_changed(const struct config *a, const struct config *b);

/* Returns 1 when bev is a TLS (bufferevent_openssl) bufferevent. */
int tls_is_tls(struct bufferevent *bev);

/* Treats a peer that closes TCP without a TLS close_notify alert as an ordinary end of
 * file. kdb+ messages carry their length, so a truncated message is still detected. */
void tls_allow_dirty_shutdown(struct bufferevent *bev);

/*
 * Returns how many bytes at the front of bev's output buffer TLS may already have
 * committed to: OpenSSL requires a write that blocked to be repeated with the same
 * bytes, and may have sent some of their records already. Such bytes must not be
 * removed or replaced. Returns 0 for a plain bufferevent.
 */
size_t tls_output_committed(struct bufferevent *bev);

/*
 * Writes why a TLS bufferevent reported BEV_EVENT_ERROR into out: the OpenSSL errors it
 * recorded, with the certificate verification result when that failed. Returns 1 when
 * TLS reported an error, 0 when it did not (out is then empty, and the socket error is
 * the reason).
 */
int tls_describe_error(struct bufferevent *bev, char *out, size_t size);

/* Writes the protocol version and cipher of an established TLS connection, and the
 * subject of the peer's certificate when it sent one, into out. */
void tls_describe_session(struct bufferevent *bev, char *out, size_t size);

#endif
