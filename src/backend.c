/*
 * backend.c - the connections of one upstream kdb+ process.
 */
#include "backend.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include "log.h"
#include "upstream.h"

static int set_string(char **field, const char *value)
{
    char *copy = strdup(value);

    if (copy == NULL)
        return -1;
    free(*field);
    *field = copy;
    return 0;
}

static struct upconn *conn_create(struct backend *backend, int slot)
{
    struct upconn *conn = calloc(1, sizeof(*conn));

    if (conn == NULL)
        return NULL;
    conn->backend = backend;
    conn->slot = slot;
    conn->state = UPCONN_DOWN;
    TAILQ_INIT(&conn->pinned_clients);
    queue_init(&conn->pinned_queue);
    queue_init(&conn->write_waiters);
    return conn;
}

struct backend *backend_create(const struct config_upstream *settings, int index, int size)
{
    struct backend *backend = calloc(1, sizeof(*backend));

    if (backend == NULL)
        return NULL;
    backend->index = index;
    backend->port = settings->port;
    TAILQ_INIT(&backend->idle);
    TAILQ_INIT(&backend->retired);
    snprintf(backend->name, sizeof(backend->name), "%s:%d", settings->host, settings->port);

    if (set_string(&backend->host, settings->host) != 0 ||
        backend_update_credentials(backend, settings) < 0 || backend_resize(backend, size) != 0) {
        backend_destroy(backend);
        return NULL;
    }
    return backend;
}

void backend_connect(struct backend *backend)
{
    for (int slot = 0; slot < backend->size; slot++) {
        struct upconn *conn = backend->conns[slot];

        if (conn->state == UPCONN_DOWN && conn->bev == NULL && !conn->retired &&
            (conn->timer == NULL || !evtimer_pending(conn->timer, NULL)))
            upconn_connect(conn);
    }
}

int backend_resize(struct backend *backend, int size)
{
    if (size > backend->size) {
        struct upconn **conns = realloc(backend->conns, (size_t)size * sizeof(*conns));

        if (conns == NULL)
            return -1;
        backend->conns = conns;
        for (int slot = backend->size; slot < size; slot++) {
            conns[slot] = conn_create(backend, slot);
            if (conns[slot] == NULL) {
                backend->size = slot;
                return -1;
            }
        }
        backend->size = size;
        return 0;
    }

    while (backend->size > size) {
        struct upconn *conn = backend->conns[--backend->size];

        upconn_retire(conn);
        TAILQ_INSERT_TAIL(&backend->retired, conn, retired_link);
    }
    return 0;
}

int backend_update_credentials(struct backend *backend, const struct config_upstream *settings)
{
    int changed = backend->user == NULL || strcmp(backend->user, settings->user) != 0 ||
                  strcmp(backend->password, settings->password) != 0;

    if (!changed)
        return 0;
    if (set_string(&backend->user, settings->user) != 0 ||
        set_string(&backend->password, settings->password) != 0)
        return -1;
    return 1;
}

void backend_remove(struct backend *backend)
{
    backend->removed = 1;
    backend_resize(backend, 0);
}

void backend_destroy(struct backend *backend)
{
    struct upconn *conn;

    if (backend == NULL)
        return;
    for (int slot = 0; slot < backend->size; slot++) {
        upconn_destroy(backend->conns[slot]);
        free(backend->conns[slot]);
    }
    while ((conn = TAILQ_FIRST(&backend->retired)) != NULL) {
        TAILQ_REMOVE(&backend->retired, conn, retired_link);
        upconn_destroy(conn);
        free(conn);
    }
    free(backend->conns);
    free(backend->host);
    free(backend->user);
    free(backend->password);
    free(backend);
}

int backend_matches(const struct backend *backend, const struct config_upstream *settings)
{
    return backend->port == settings->port && strcmp(backend->host, settings->host) == 0;
}
