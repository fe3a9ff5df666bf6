/*
 * lifecycle.c - shutdown, reload, log reopening and systemd notifications.
 */
#include "lifecycle.h"

#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>
#include <event2/listener.h>

#include "admin.h"
#include "client.h"
#include "gateway.h"
#include "log.h"
#include "login.h"
#include "notify.h"
#include "pool.h"
#include "qmux.h"
#include "tls.h"

/* How often the STATUS line sent to systemd is refreshed. */
#define STATUS_INTERVAL_SECONDS 10

static struct event *signal_events[5];
static struct event *shutdown_timer;
static struct event *reply_drain_timer;

/* Once no request is in flight, how long a shutdown waits for HTTP replies to be written. */
#define REPLY_DRAIN_MS 2000
static struct event *status_timer;

static int count_active_clients(void)
{
    int active = 0;
    struct client *client;

    TAILQ_FOREACH(client, &qmux.clients, list_link)
        if (client->state == CLIENT_ACTIVE)
            active++;
    return active;
}

static void send_status(void)
{
    struct pool *pool = qmux.pool;

    notify_send("STATUS=%d clients, %zu requests queued, %d upstream connections logged in",
                qmux.client_count, pool->queue.length, pool->logged_in);
}

static void status_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    (void)arg;
    send_status();
}

/* Answers every request still waiting for a connection with the shutdown error. */
static void fail_waiting_requests(const char *text)
{
    struct pool *pool = qmux.pool;
    struct client *client;

    while ((client = TAILQ_FIRST(&pool->queue.head)) != NULL) {
        client_reject_head(client, text);
        client_process_input(client);
    }
    for (int i = 0; i < pool->backend_count; i++) {
        struct backend *backend = pool->backends[i];

        for (int slot = 0; slot < backend->size; slot++) {
            struct upconn *conn = backend->conns[slot];

            while ((client = TAILQ_FIRST(&conn->pinned_queue.head)) != NULL ||
                   (client = TAILQ_FIRST(&conn->write_waiters.head)) != NULL) {
                client_reject_head(client, text);
                client_process_input(client);
            }
        }
    }
}

static void shutdown_timeout_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    (void)arg;
    log_warn("requests still in flight after %d ms (clients.shutdown_timeout_ms); closing "
             "them", qmux.config->shutdown_timeout_ms);
    event_base_loopexit(qmux.base, NULL);
}

void lifecycle_shutdown(const char *why)
{
    if (qmux.stopping) {
        log_warn("%s again; exiting without waiting for requests in flight", why);
        event_base_loopexit(qmux.base, NULL);
        return;
    }
    qmux.stopping = 1;
    notify_send("STOPPING=1");
    log_info("%s; stopping: no new clients, requests in flight get up to %d ms "
             "(clients.shutdown_timeout_ms)", why, qmux.config->shutdown_timeout_ms);

    if (qmux.listener != NULL)
        evconnlistener_disable(qmux.listener);
    fail_waiting_requests("qmux is shutting down");

    int ms = qmux.config->shutdown_timeout_ms;
    struct timeval timeout = { ms / 1000, (ms % 1000) * 1000 };
    shutdown_timer = evtimer_new(qmux.base, shutdown_timeout_cb, NULL);
    if (shutdown_timer == NULL || evtimer_add(shutdown_timer, &timeout) != 0)
        event_base_loopexit(qmux.base, NULL);
    lifecycle_check_drained();
}

static void reply_drain_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    (void)arg;
    log_warn("%d HTTP replies still unwritten after %d ms; closing them",
             gateway_replies_in_flight(), REPLY_DRAIN_MS);
    event_base_loopexit(qmux.base, NULL);
}

void lifecycle_check_drained(void)
{
    if (!qmux.stopping || count_active_clients() > 0)
        return;
    if (gateway_replies_in_flight() <= 0) {
        event_base_loopexit(qmux.base, NULL);
        return;
    }

    /* HTTP replies get a short time to be rendered and written out. Each leaves the count
     * when libevent has written it or its connection has closed, and the bound is for
     * clients that read slowly or not at all. */
    if (reply_drain_timer != NULL)
        return;
    struct timeval wait = { REPLY_DRAIN_MS / 1000, (REPLY_DRAIN_MS % 1000) * 1000 };
    reply_drain_timer = evtimer_new(qmux.base, reply_drain_cb, NULL);
    if (reply_drain_timer == NULL || evtimer_add(reply_drain_timer, &wait) != 0)
        event_base_loopexit(qmux.base, NULL);
}

/* Keeps the running value of each key that only a restart can change, with a warning. */
static void keep_restart_only_keys(const struct config *running, struct config *next)
{
    if (strcmp(running->listen_address, next->listen_address) != 0 ||
        running->listen_port != next->listen_port ||
        running->listen_backlog != next->listen_backlog) {
        log_warn("reload: listen.address, listen.port and listen.backlog change only with a "
                 "restart; still listening on %s:%d", running->listen_address,
                 running->listen_port);
        char *address = next->listen_address;
        next->listen_address = running->listen_address;
        ((struct config *)running)->listen_address = address;
        next->listen_port = running->listen_port;
        next->listen_backlog = running->listen_backlog;
    }
    if (strcmp(running->admin_address, next->admin_address) != 0 ||
        running->admin_port != next->admin_port ||
        strcmp(running->http_address, next->http_address) != 0 ||
        running->http_port != next->http_port) {
        log_warn("reload: admin.address, admin.port, http.address and http.port change only "
                 "with a restart; keeping admin port %d and http port %d",
                 running->admin_port, running->http_port);
        char *admin_address = next->admin_address;
        char *http_address = next->http_address;
        next->admin_address = running->admin_address;
        next->http_address = running->http_address;
        ((struct config *)running)->admin_address = admin_address;
        ((struct config *)running)->http_address = http_address;
        next->admin_port = running->admin_port;
        next->http_port = running->http_port;
    }
    if (running->auth_workers != next->auth_workers) {
        log_warn("reload: auth.workers changes only with a restart; keeping %d",
                 running->auth_workers);
        next->auth_workers = running->auth_workers;
    }
    if (running->pool_capability != next->pool_capability) {
        log_warn("reload: pool.capability changes only with a restart; keeping %d",
                 running->pool_capability);
        next->pool_capability = running->pool_capability;
    }
}

/* Replaces the upstream connections when upstream_tls changed, so that none stays on
 * the old settings: no request fails, busy connections go after their response. */
static void replace_for_upstream_tls(const struct config *running, const struct config *next)
{
    if (!tls_upstream_settings_changed(running, next))
        return;

    int restarted = pool_restart_connecting(qmux.pool);
    int replaced = pool_reconnect_all(qmux.pool);
    log_info("reload: upstream_tls changed; replacing %d upstream connections (busy ones "
             "after their response, those waiting for a retry at once) and restarting %d "
             "still connecting", replaced, restarted);
}

/* Logs each line of text at level, after prefix. */
static void log_lines(int level, const char *prefix, const char *text)
{
    const char *line = text;

    while (*line != '\0') {
        const char *end = strchr(line, '\n');
        int length = end != NULL ? (int)(end - line) : (int)strlen(line);

        if (length > 0)
            log_write(level, "%s%.*s", prefix, length, line);
        line += length + (end != NULL ? 1 : 0);
    }
}

void lifecycle_log_warnings(const struct config *config)
{
    log_lines(LOG_LEVEL_WARN, "", config->warnings);
}

int lifecycle_reload(char *message, size_t message_size)
{
    char errors[8192];
    const char *path = qmux.config->path;

    notify_reloading();
    struct config *next = config_load(path, errors, sizeof(errors));
    if (next == NULL) {
        log_lines(LOG_LEVEL_ERROR, "reload: ", errors);
        int first = (int)strcspn(errors, "\n");
        snprintf(message, message_size, "reload failed: %.*s%s; the running configuration "
                 "stays in use", first, errors, errors[first] == '\n' && errors[first + 1]
                 != '\0' ? " (more errors in the log)" : "");
        log_error("%s", message);
        notify_send("READY=1");
        return -1;
    }

    char tls_error[512];
    if (tls_load(next, tls_error, sizeof(tls_error)) != 0) {
        snprintf(message, message_size, "reload failed: cannot set up TLS: %s; the running "
                 "configuration and its TLS certificates stay in use", tls_error);
        log_error("%s", message);
        config_free(next);
        notify_send("READY=1");
        return -1;
    }

    keep_restart_only_keys(qmux.config, next);
    char log_message[512];
    if (log_open(next->log_target, next->log_file, next->syslog_path, log_message,
                 sizeof(log_message)) != 0)
        log_error("reload: %s; logging stays as it was", log_message);
    log_set_level(next->log_level);

    if (pool_reconfigure(qmux.pool, next) != 0)
        log_error("reload: out of memory while resizing the pool; some changes are missing");
    lifecycle_log_warnings(next);
    login_configure(next);
    client_rebind_all(next);
    admin_rebind_all(next);
    replace_for_upstream_tls(qmux.config, next);

    struct config *old = qmux.config;
    qmux.config = next;
    config_free(old);

    snprintf(message, message_size, "configuration reloaded from %s", next->path);
    log_info("%s", message);
    notify_send("READY=1");
    send_status();
    return 0;
}

static void signal_cb(evutil_socket_t number, short what, void *arg)
{
    char message[512];

    (void)what;
    (void)arg;
    switch (number) {
    case SIGHUP:
        log_info("received SIGHUP; reloading %s", qmux.config->path);
        lifecycle_reload(message, sizeof(message));
        break;
    case SIGUSR1:
        log_reopen();
        break;
    default:
        lifecycle_shutdown(number == SIGTERM ? "received SIGTERM" : "received SIGINT");
        break;
    }
}

int lifecycle_start(void)
{
    static const int numbers[] = { SIGTERM, SIGINT, SIGHUP, SIGUSR1 };

    for (size_t i = 0; i < sizeof(numbers) / sizeof(numbers[0]); i++) {
        signal_events[i] = evsignal_new(qmux.base, numbers[i], signal_cb, NULL);
        if (signal_events[i] == NULL || evsignal_add(signal_events[i], NULL) != 0)
            return -1;
    }

    struct timeval interval = { STATUS_INTERVAL_SECONDS, 0 };
    status_timer = event_new(qmux.base, -1, EV_PERSIST, status_cb, NULL);
    if (status_timer == NULL || event_add(status_timer, &interval) != 0)
        return -1;

    notify_init();
    notify_send("READY=1\nMAINPID=%ld", (long)getpid());
    send_status();
    return 0;
}

void lifecycle_stop(void)
{
    for (size_t i = 0; i < sizeof(signal_events) / sizeof(signal_events[0]); i++) {
        if (signal_events[i] != NULL)
            event_free(signal_events[i]);
        signal_events[i] = NULL;
    }
    if (shutdown_timer != NULL)
        event_free(shutdown_timer);
    if (reply_drain_timer != NULL)
        event_free(reply_drain_timer);
    reply_drain_timer = NULL;
    if (status_timer != NULL)
        event_free(status_timer);
    shutdown_timer = NULL;
    status_timer = NULL;
    notify_close();
}
