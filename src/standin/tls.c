/*
 * tls.c - the stand-in's TLS listener: one server context, TLS bufferevents for accepted
 * connections, and error text for its log.
 */
#include "tls.h"

#include "server.h"

#include <stdio.h>
#include <string.h>

#include <event2/bufferevent_ssl.h>
#include <openssl/err.h>

/* Writes the reasons in this thread's OpenSSL error queue into out, and empties it. */
static void queued_reasons(char *out, size_t size)
{
    unsigned long code;
    size_t used = 0;

    out[0] = '\0';
    while ((code = ERR_get_error()) != 0) {
        if (used >= size)
            continue;   /* keep emptying the queue */
        const char *reason = ERR_reason_error_string(code);
        int written = snprintf(out + used, size - used, "%s%s",
                               used > 0 ? "; " : "", reason != NULL ? reason : "unknown");
        if (written > 0)
            used += (size_t)written;
    }
}

SSL_CTX *standin_tls_context(const char *cert_file, const char *key_file)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    char reasons[256];

    if (ctx == NULL) {
        queued_reasons(reasons, sizeof(reasons));
        standin_log("cannot create a TLS context: %s", reasons);
        return NULL;
    }
    /* A peer that closes without close_notify ends the stream, as with plain TCP. */
    SSL_CTX_set_options(ctx, SSL_OP_IGNORE_UNEXPECTED_EOF);
    if (SSL_CTX_use_certificate_chain_file(ctx, cert_file) != 1) {
        queued_reasons(reasons, sizeof(reasons));
        standin_log("invalid --tls-cert '%s': %s; give a PEM certificate chain", cert_file,
                    reasons);
        SSL_CTX_free(ctx);
        return NULL;
    }
    if (SSL_CTX_use_PrivateKey_file(ctx, key_file, SSL_FILETYPE_PEM) != 1 ||
        SSL_CTX_check_private_key(ctx) != 1) {
        queued_reasons(reasons, sizeof(reasons));
        standin_log("invalid --tls-key '%s': %s; give the PEM private key of --tls-cert",
                    key_file, reasons);
        SSL_CTX_free(ctx);
        return NULL;
    }
    return ctx;
}

struct bufferevent *standin_tls_accept(struct event_base *base, SSL_CTX *ctx,
                                       evutil_socket_t fd)
{
    SSL *ssl = SSL_new(ctx);

    if (ssl == NULL)
        return NULL;
    /* On failure libevent frees ssl and leaves fd open. */
    struct bufferevent *bev = bufferevent_openssl_socket_new(base, fd, ssl,
                                                             BUFFEREVENT_SSL_ACCEPTING,
                                                             BEV_OPT_CLOSE_ON_FREE);
    if (bev != NULL)
        bufferevent_openssl_set_allow_dirty_shutdown(bev, 1);
    return bev;
}

int standin_tls_error(struct bufferevent *bev, char *out, size_t size)
{
    unsigned long code;
    size_t used = 0;

    out[0] = '\0';
    while ((code = bufferevent_get_openssl_error(bev)) != 0) {
        /* libevent also records SSL_get_error() codes, which have no library. */
        if (ERR_GET_LIB(code) == 0 || used >= size)
            continue;
        const char *reason = ERR_reason_error_string(code);
        int written = snprintf(out + used, size - used, "%s%s",
                               used > 0 ? "; " : "", reason != NULL ? reason : "unknown");
        if (written > 0)
            used += (size_t)written;
    }
    return used > 0;
}

void standin_tls_session(struct bufferevent *bev, char *out, size_t size)
{
    SSL *ssl = bufferevent_openssl_get_ssl(bev);

    if (ssl == NULL)
        snprintf(out, size, "not TLS");
    else
        snprintf(out, size, "%s, cipher %s", SSL_get_version(ssl), SSL_get_cipher_name(ssl));
}
