/*
 * backend.h - one upstream kdb+ process and its pooled connections: creation, resizing
 * and removal, as the configuration asks at start-up and on reload.
 */
#ifndef QMUX_BACKEND_H
#define QMUX_BACKEND_H

#include <sys/queue.h>

#include "config.h"

struct upconn;

struct backend {
    int index;                      /* position in config->upstreams */
    char name[300];                 /* "host:port" for logs */
    char *host;                     /* copies of the settings, so a reloaded config */
    int port;                       /* can replace the old one at any time */
    char *user;
    char *password;

    struct upconn **conns;          /* slots 0 .. size - 1 */
    int size;
    TAILQ_HEAD(, upconn) retired;   /* connections removed by a reload, freed at exit */
    int removed;                    /* no longer in the configuration */

    TAILQ_HEAD(, upconn) idle;      /* logged-in connections with no request in flight */
    int idle_count;
    int busy_count;                 /* connections with a sync request in flight */
};

/* Creates a backend for settings with size connections, not yet connecting. Returns NULL
 * when out of memory. */
struct backend *backend_create(const struct config_upstream *settings, int index, int size);

/* Starts connecting every connection that is down and not retired. */
void backend_connect(struct backend *backend);

/* Sets the number of connections: new slots connect at once, removed ones retire (after
 * the request in flight, if any). Returns 0, or -1 when out of memory. */
int backend_resize(struct backend *backend, int size);

/* Updates the credentials used by future logins; returns 1 when they changed. */
int backend_update_credentials(struct backend *backend, const struct config_upstream *settings);

/* Retires every connection; the backend stays allocated until backend_destroy. */
void backend_remove(struct backend *backend);

/* Frees the backend and all its connections (at shutdown). */
void backend_destroy(struct backend *backend);

/* Returns 1 when settings name this backend's host and port. */
int backend_matches(const struct backend *backend, const struct config_upstream *settings);

#endif
