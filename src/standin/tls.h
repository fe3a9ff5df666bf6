/*
 * tls.h - the stand-in's TLS listener, as a kdb+ process started with -E 2 serves it.
 */
#ifndef STANDIN_TLS_H
#define STANDIN_TLS_H

#include <stddef.h>

#include <event2/bufferevent.h>
#include <event2/event.h>
#include <openssl/ssl.h>

/* Creates a server context from a PEM certificate chain and its PEM private key.
 * Returns NULL after logging what failed. */
SSL_CTX *standin_tls_context(const char *cert_file, const char *key_file);

/* Returns a TLS bufferevent that accepts a handshake on fd, or NULL (fd is then still
 * the caller's). */
struct bufferevent *standin_tls_accept(struct event_base *base, SSL_CTX *ctx,
                                       evutil_socket_t fd);

/* Writes the OpenSSL reasons bev recorded for its last error into out; returns 0 when it
 * recorded none. */
int standin_tls_error(struct bufferevent *bev, char *out, size_t size);

/* Writes the protocol version and cipher of bev's TLS session into out. */
void standin_tls_session(struct bufferevent *bev, char *out, size_t size);

#endif
