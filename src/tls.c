/*
 * tls.c - OpenSSL contexts for the client listener and for upstream connections: loading
 * certificates and keys, replacing the contexts on reload, and describing TLS errors and
 * sessions for the log.
 */
#include "tls.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include <event2/buffer.h>
#include <event2/bufferevent_ssl.h>
#include <openssl/err.h>
#include <openssl/x509v3.h>

#include "log.h"

/* Contexts built from one config; a NULL context is a side with TLS off. */
struct tls_contexts {
    SSL_CTX *clients;          /* for accepted clients, tls.mode not "off" */
    SSL_CTX *upstreams;        /* for upstream connections, upstream_tls.enabled */
    char *server_name;         /* upstream_tls.server_name, "" for each upstream's host */
    int verify_upstreams;      /* upstream_tls.verify */
};

static struct tls_contexts current;

/* Most OpenSSL errors kept for one message; a failed load queues two or three. */
#define MAX_ERRORS 4

static void free_contexts(struct tls_contexts *contexts)
{
    SSL_CTX_free(contexts->clients);
    SSL_CTX_free(contexts->upstreams);
    free(contexts->server_name);
    memset(contexts, 0, sizeof(*contexts));
}

/* Returns 1 when code is an OpenSSL error code rather than one of the SSL_ERROR_* values
 * libevent also records. */
static int is_openssl_error(unsigned long code)
{
    return ERR_GET_LIB(code) != 0;
}

/* Appends the reasons of errors[0 .. count) to out, distinct ones only, separated by
 * "; ". Returns the number appended. */
static int append_reasons(const unsigned long *errors, int count, char *out, size_t size)
{
    size_t used = strlen(out);
    int appended = 0;

    for (int i = 0; i < count && used < size; i++) {
        const char *reason = ERR_reason_error_string(errors[i]);
        char code[32];

        if (reason == NULL) {
            snprintf(code, sizeof(code), "OpenSSL error %lx", errors[i]);
            reason = code;
        }
        if (strstr(out, reason) != NULL)
            continue;
        int written = snprintf(out + used, size - used, "%s%s", used > 0 ? "; " : "", reason);
        if (written < 0)
            break;
        used += (size_t)written;
        appended++;
    }
    return appended;
}

/* Drains this thread's OpenSSL error queue and writes its reasons into out. */
static void queued_reasons(char *out, size_t size)
{
    unsigned long errors[MAX_ERRORS];
    unsigned long code;
    int count = 0;

    out[0] = '\0';
    while ((code = ERR_get_error()) != 0) {
        if (count < MAX_ERRORS)
            errors[count++] = code;
    }
    if (append_reasons(errors, count, out, size) == 0)
        snprintf(out, size, "no reason given by OpenSSL");
}

/*
 * Writes "KEY PATH: WHAT (OPENSSL REASONS); HINT" into error and returns -1. WHAT and HINT
 * come from format, which separates them with a '|' so that the reasons go between.
 */
__attribute__((format(printf, 5, 6)))
static int fail_with_reasons(char *error, size_t size, const char *key, const char *path,
                             const char *format, ...)
{
    char text[512];
    char reasons[256];
    va_list args;

    queued_reasons(reasons, sizeof(reasons));
    va_start(args, format);
    vsnprintf(text, sizeof(text), format, args);
    va_end(args);

    char *hint = strchr(text, '|');
    if (hint != NULL)
        *hint++ = '\0';
    snprintf(error, size, "%s \"%s\": %s (%s)%s%s", key, path, text, reasons,
             hint != NULL ? "; " : "", hint != NULL ? hint : "");
    return -1;
}

/* Checks that path can be opened for reading, so a missing file gets the plain system
 * reason instead of OpenSSL's layered errors. */
static int check_readable(const char *key, const char *path, char *error, size_t size)
{
    struct stat status;
    FILE *file = fopen(path, "r");

    if (file == NULL) {
        snprintf(error, size, "%s \"%s\": cannot open: %s; check the path and that the user "
                 "qmux runs as may read it", key, path, strerror(errno));
        return -1;
    }
    int is_file = fstat(fileno(file), &status) == 0 && S_ISREG(status.st_mode);
    fclose(file);
    if (!is_file) {
        snprintf(error, size, "%s \"%s\": not a regular file; name the PEM file itself",
                 key, path);
        return -1;
    }
    return 0;
}

/* Keeps OpenSSL from asking for a passphrase on the terminal: an encrypted key fails to
 * load instead. */
static int reject_passphrase(char *buffer, int size, int rwflag, void *arg)
{
    (void)buffer;
    (void)size;
    (void)rwflag;
    (void)arg;
    return 0;
}

/*
 * Settings every context shares: TLS 1.2 or later, no renegotiation, no passphrase. With
 * SSL_OP_IGNORE_UNEXPECTED_EOF, OpenSSL 3 reports a close without close_notify as the
 * end of the stream that libevent's allow_dirty_shutdown expects, not as an error.
 */
static SSL_CTX *new_context(const SSL_METHOD *method, char *error, size_t size)
{
    SSL_CTX *ctx = SSL_CTX_new(method);

    if (ctx == NULL) {
        char reasons[256];

        queued_reasons(reasons, sizeof(reasons));
        snprintf(error, size, "cannot create a TLS context: %s", reasons);
        return NULL;
    }
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_IGNORE_UNEXPECTED_EOF);
    SSL_CTX_set_default_passwd_cb(ctx, reject_passphrase);
    return ctx;
}

/* Loads a certificate chain and its private key into ctx. Messages name the keys of
 * group ("tls" or "upstream_tls"). */
static int load_certificate(SSL_CTX *ctx, const char *group, const char *cert_file,
                            const char *key_file, char *error, size_t size)
{
    char cert_key[64];
    char key_key[64];

    snprintf(cert_key, sizeof(cert_key), "%s.cert_file", group);
    snprintf(key_key, sizeof(key_key), "%s.key_file", group);
    if (check_readable(cert_key, cert_file, error, size) != 0 ||
        check_readable(key_key, key_file, error, size) != 0)
        return -1;

    if (SSL_CTX_use_certificate_chain_file(ctx, cert_file) != 1)
        return fail_with_reasons(error, size, cert_key, cert_file, "cannot load the "
                                 "certificate chain|it must hold PEM certificates, the one "
                                 "of key_file first");
    /* OpenSSL checks the key against the certificate as it loads it. */
    int loaded = SSL_CTX_use_PrivateKey_file(ctx, key_file, SSL_FILETYPE_PEM) == 1;
    if (!loaded && ERR_GET_REASON(ERR_peek_last_error()) != X509_R_KEY_VALUES_MISMATCH)
        return fail_with_reasons(error, size, key_key, key_file, "cannot load the private "
                                 "key|it must be a PEM key without a passphrase (decrypt "
                                 "it with openssl pkey)");
    if (!loaded || SSL_CTX_check_private_key(ctx) != 1)
        return fail_with_reasons(error, size, key_key, key_file, "does not match the "
                                 "certificate of %s|set the key that belongs to that "
                                 "certificate", cert_key);
    return 0;
}

/* Loads the CA certificates of path into ctx as trust anchors. */
static int load_ca_file(SSL_CTX *ctx, const char *key, const char *path, char *error,
                        size_t size)
{
    if (check_readable(key, path, error, size) != 0)
        return -1;
    if (SSL_CTX_load_verify_locations(ctx, path, NULL) != 1)
        return fail_with_reasons(error, size, key, path, "cannot load the CA "
                                 "certificates|it must hold PEM certificates");
    return 0;
}

static SSL_CTX *build_client_context(const struct config *config, char *error, size_t size)
{
    SSL_CTX *ctx = new_context(TLS_server_method(), error, size);

    if (ctx == NULL)
        return NULL;
    /* A session resumed by a client is checked against this id; without it OpenSSL fails
     * such handshakes when client certificates are verified. */
    SSL_CTX_set_session_id_context(ctx, (const unsigned char *)"qmux", 4);

    if (load_certificate(ctx, "tls", config->tls_cert_file, config->tls_key_file, error,
                         size) != 0)
        goto failed;

    if (config->tls_verify_client) {
        if (load_ca_file(ctx, "tls.ca_file", config->tls_ca_file, error, size) != 0)
            goto failed;

        /* Names the accepted CAs in the certificate request, so a client with several
         * certificates can pick the right one. */
        STACK_OF(X509_NAME) *names = SSL_load_client_CA_file(config->tls_ca_file);
        if (names == NULL) {
            fail_with_reasons(error, size, "tls.ca_file", config->tls_ca_file,
                              "cannot read the CA names|it must hold PEM certificates");
            goto failed;
        }
        SSL_CTX_set_client_CA_list(ctx, names);
        SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, NULL);
    }
    return ctx;

failed:
    SSL_CTX_free(ctx);
    return NULL;
}

static SSL_CTX *build_upstream_context(const struct config *config, char *error, size_t size)
{
    SSL_CTX *ctx = new_context(TLS_client_method(), error, size);

    if (ctx == NULL)
        return NULL;

    if (config->upstream_tls_ca_file[0] != '\0') {
        if (load_ca_file(ctx, "upstream_tls.ca_file", config->upstream_tls_ca_file, error,
                         size) != 0)
            goto failed;
    } else if (SSL_CTX_set_default_verify_paths(ctx) != 1) {
        char reasons[256];

        queued_reasons(reasons, sizeof(reasons));
        snprintf(error, size, "upstream_tls: cannot load the system's CA certificates (%s); "
                 "set upstream_tls.ca_file", reasons);
        goto failed;
    }
    SSL_CTX_set_verify(ctx, config->upstream_tls_verify ? SSL_VERIFY_PEER : SSL_VERIFY_NONE,
                       NULL);

    if (config->upstream_tls_cert_file[0] != '\0' &&
        load_certificate(ctx, "upstream_tls", config->upstream_tls_cert_file,
                         config->upstream_tls_key_file, error, size) != 0)
        goto failed;
    return ctx;

failed:
    SSL_CTX_free(ctx);
    return NULL;
}

/* Builds every context that config requires into contexts. Returns 0, or -1 with nothing
 * left allocated. */
static int build_contexts(const struct config *config, struct tls_contexts *contexts,
                          char *error, size_t size)
{
    memset(contexts, 0, sizeof(*contexts));
    contexts->verify_upstreams = config->upstream_tls_verify;
    contexts->server_name = strdup(config->upstream_tls_server_name);
    if (contexts->server_name == NULL) {
        snprintf(error, size, "out of memory while building the TLS contexts");
        return -1;
    }

    if (config->tls_mode != TLS_MODE_OFF &&
        (contexts->clients = build_client_context(config, error, size)) == NULL) {
        free_contexts(contexts);
        return -1;
    }
    if (config->upstream_tls_enabled &&
        (contexts->upstreams = build_upstream_context(config, error, size)) == NULL) {
        free_contexts(contexts);
        return -1;
    }
    return 0;
}

/* Writes "SUBJECT, expires DATE, SHA-256 FINGERPRINT" of certificate into out. */
static void describe_certificate(X509 *certificate, char *out, size_t size)
{
    char subject[256] = "";
    char expires[32] = "unknown";
    char fingerprint[3 * EVP_MAX_MD_SIZE] = "";
    unsigned char digest[EVP_MAX_MD_SIZE];
    unsigned int digest_length = 0;
    struct tm tm;

    BIO *bio = BIO_new(BIO_s_mem());
    if (bio != NULL) {
        /* RFC 2253 flags escape control and non-ASCII bytes, so the subject is safe to log. */
        X509_NAME_print_ex(bio, X509_get_subject_name(certificate), 0, XN_FLAG_RFC2253);
        int length = BIO_read(bio, subject, (int)sizeof(subject) - 1);
        subject[length > 0 ? length : 0] = '\0';
        BIO_free(bio);
    }
    if (ASN1_TIME_to_tm(X509_get0_notAfter(certificate), &tm) == 1)
        strftime(expires, sizeof(expires), "%Y-%m-%d %H:%M:%S UTC", &tm);
    if (X509_digest(certificate, EVP_sha256(), digest, &digest_length) == 1) {
        size_t used = 0;

        for (unsigned int i = 0; i < digest_length && used < sizeof(fingerprint); i++)
            used += (size_t)snprintf(fingerprint + used, sizeof(fingerprint) - used, "%s%02X",
                                     i > 0 ? ":" : "", digest[i]);
    }
    snprintf(out, size, "subject %s, expires %s, SHA-256 %s", subject, expires, fingerprint);
}

/* Logs the certificate ctx presents, with a warning when it has expired. */
static void log_certificate(SSL_CTX *ctx, const char *peers, const char *path)
{
    X509 *certificate = SSL_CTX_get0_certificate(ctx);
    char description[512];

    if (certificate == NULL)
        return;
    describe_certificate(certificate, description, sizeof(description));
    log_info("TLS: %s get the certificate of %s (%s)", peers, path, description);
    if (X509_cmp_current_time(X509_get0_notAfter(certificate)) < 0)
        log_warn("TLS: the certificate of %s has expired; peers that check it reject the "
                 "handshake, so replace it and reload", path);
}

static void log_contexts(const struct config *config, const struct tls_contexts *contexts)
{
    if (contexts->clients != NULL)
        log_certificate(contexts->clients, "clients", config->tls_cert_file);
    if (contexts->upstreams != NULL && config->upstream_tls_cert_file[0] != '\0')
        log_certificate(contexts->upstreams, "upstreams", config->upstream_tls_cert_file);
    if (contexts->upstreams != NULL && !config->upstream_tls_verify)
        log_warn("TLS: upstream_tls.verify is false, so upstream certificates are not "
                 "checked and anyone on the network path can read and change the traffic");
}

int tls_load(const struct config *config, char *error, size_t error_size)
{
    struct tls_contexts next;

    if (build_contexts(config, &next, error, error_size) != 0)
        return -1;
    log_contexts(config, &next);
    free_contexts(&current);
    current = next;
    return 0;
}

int tls_check(const struct config *config, char *error, size_t error_size)
{
    struct tls_contexts contexts;

    if (build_contexts(config, &contexts, error, error_size) != 0)
        return -1;
    free_contexts(&contexts);
    return 0;
}

void tls_unload(void)
{
    free_contexts(&current);
}

SSL *tls_new_client_ssl(void)
{
    if (current.clients == NULL)
        return NULL;
    return SSL_new(current.clients);
}

int tls_upstream_enabled(void)
{
    return current.upstreams != NULL;
}

static int is_numeric_address(const char *name)
{
    unsigned char address[sizeof(struct in6_addr)];

    return inet_pton(AF_INET, name, address) == 1 || inet_pton(AF_INET6, name, address) == 1;
}

SSL *tls_new_upstream_ssl(const char *host, char *error, size_t error_size)
{
    const char *name = current.server_name[0] != '\0' ? current.server_name : host;
    int numeric = is_numeric_address(name);
    char reasons[256];

    SSL *ssl = current.upstreams != NULL ? SSL_new(current.upstreams) : NULL;
    if (ssl == NULL) {
        snprintf(error, error_size, "cannot create a TLS connection (upstream TLS is off or "
                 "out of memory)");
        return NULL;
    }

    /* Server name indication carries host names only, never an address. */
    int ok = numeric || SSL_set_tlsext_host_name(ssl, name) == 1;
    if (ok && current.verify_upstreams) {
        if (numeric)
            ok = X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), name) == 1;
        else
            ok = SSL_set1_host(ssl, name) == 1;
    }
    if (!ok) {
        queued_reasons(reasons, sizeof(reasons));
        snprintf(error, error_size, "cannot set the TLS server name \"%s\": %s; check "
                 "upstream_tls.server_name or the upstream host", name, reasons);
        SSL_free(ssl);
        return NULL;
    }
    return ssl;
}

static int strings_differ(const char *a, const char *b)
{
    return strcmp(a, b) != 0;
}

int tls_upstream_settings_changed(const struct config *a, const struct config *b)
{
    return a->upstream_tls_enabled != b->upstream_tls_enabled ||
           a->upstream_tls_verify != b->upstream_tls_verify ||
           strings_differ(a->upstream_tls_ca_file, b->upstream_tls_ca_file) ||
           strings_differ(a->upstream_tls_server_name, b->upstream_tls_server_name) ||
           strings_differ(a->upstream_tls_cert_file, b->upstream_tls_cert_file) ||
           strings_differ(a->upstream_tls_key_file, b->upstream_tls_key_file);
}

int tls_is_tls(struct bufferevent *bev)
{
    return bufferevent_openssl_get_ssl(bev) != NULL;
}

void tls_allow_dirty_shutdown(struct bufferevent *bev)
{
    bufferevent_openssl_set_allow_dirty_shutdown(bev, 1);
}

size_t tls_output_committed(struct bufferevent *bev)
{
    struct evbuffer_iovec first;

    if (!tls_is_tls(bev))
        return 0;
    /* libevent hands OpenSSL one segment of the buffer per SSL_write, and a blocked
     * write is repeated from the front, so it lies within the first segment. */
    if (evbuffer_peek(bufferevent_get_output(bev), -1, NULL, &first, 1) < 1)
        return 0;
    return first.iov_len;
}

int tls_describe_error(struct bufferevent *bev, char *out, size_t size)
{
    SSL *ssl = bufferevent_openssl_get_ssl(bev);
    unsigned long errors[MAX_ERRORS];
    unsigned long code;
    int count = 0;

    out[0] = '\0';
    if (ssl == NULL)
        return 0;

    /* libevent returns its recorded errors newest first; keep OpenSSL's order. */
    while ((code = bufferevent_get_openssl_error(bev)) != 0) {
        if (is_openssl_error(code) && count < MAX_ERRORS)
            errors[count++] = code;
    }
    for (int i = 0; i < count / 2; i++) {
        unsigned long swap = errors[i];
        errors[i] = errors[count - 1 - i];
        errors[count - 1 - i] = swap;
    }
    if (append_reasons(errors, count, out, size) == 0)
        return 0;

    long verify = SSL_get_verify_result(ssl);
    if (verify != X509_V_OK) {
        size_t used = strlen(out);
        snprintf(out + used, size - used, " (%s)", X509_verify_cert_error_string(verify));
    }
    return 1;
}

void tls_describe_session(struct bufferevent *bev, char *out, size_t size)
{
    SSL *ssl = bufferevent_openssl_get_ssl(bev);
    char subject[256];

    if (ssl == NULL) {
        snprintf(out, size, "not TLS");
        return;
    }
    int used = snprintf(out, size, "%s, cipher %s", SSL_get_version(ssl),
                        SSL_get_cipher_name(ssl));

    X509 *peer = SSL_get1_peer_certificate(ssl);
    if (peer == NULL || used < 0 || (size_t)used >= size) {
        X509_free(peer);
        return;
    }
    X509_NAME_oneline(X509_get_subject_name(peer), subject, sizeof(subject));
    char safe[256];
    log_sanitize(safe, sizeof(safe), subject, strlen(subject));
    snprintf(out + used, size - (size_t)used, ", client certificate %s", safe);
    X509_free(peer);
}
