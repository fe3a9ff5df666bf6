/*
 * server.h - the stand-in's listener and connections, on one libevent loop.
 */
#ifndef STANDIN_SERVER_H
#define STANDIN_SERVER_H

#include <stdio.h>

enum compress_mode {
    COMPRESS_NEVER = 0,
    COMPRESS_AUTO,      /* kdb+'s rule: capability >= 1, body over 2000 bytes, peer not local */
    COMPRESS_ALWAYS,    /* as auto, but treats every peer as remote */
};

struct server_options {
    const char *address;        /* listen address, default 127.0.0.1 */
    int port;                   /* 0 picks a free port */
    const char *credentials;    /* "user:password" to accept, or NULL to accept any */
    int max_capability;         /* highest capability agreed, 0..6 */
    int compress;               /* enum compress_mode */
    int reject_logins;          /* close every login without a reply */
    int quiet;                  /* no per-connection log lines */
    const char *tls_cert;       /* PEM certificate chain: serve TLS only, or NULL */
    const char *tls_key;        /* its PEM private key */
};

/* Logs one line to stderr, prefixed with the program name. */
void standin_log(const char *format, ...) __attribute__((format(printf, 1, 2)));

/* Runs the server until SIGINT or SIGTERM. Prints the ready line on stdout once listening.
 * Returns the process exit status. */
int server_run(const struct server_options *options);

#endif
