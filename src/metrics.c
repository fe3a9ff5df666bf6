/*
 * metrics.c - Prometheus text exposition (format 0.0.4) of qmux's counters, gauges and
 * histograms, and the JSON health check.
 */
#include "metrics.h"

#include <inttypes.h>
#include <stdio.h>

#include <event2/buffer.h>
#include <event2/http.h>

#include "backend.h"
#include "http.h"
#include "log.h"
#include "pool.h"
#include "qmux.h"
#include "stats.h"
#include "upstream.h"

#define COUNTER(field, help) { #field, help, offsetof(struct stats, field) }

const struct stats_counter stats_counters[] = {
    COUNTER(clients_accepted, "Client connections accepted."),
    COUNTER(clients_rejected, "Client connections rejected by clients.max_clients or "
                              "clients.max_per_user."),
    COUNTER(logins_rejected, "Logins rejected: unknown user, wrong password or a listener "
            "the user may not use."),
    COUNTER(policy_denials, "Requests rejected by a query policy."),
    COUNTER(requests, "Sync requests answered by an upstream."),
    COUNTER(requests_failed, "Sync requests answered with an error by qmux."),
    COUNTER(async_messages, "Async messages forwarded upstream."),
    COUNTER(query_timeouts, "Requests answered with 'query timeout."),
    COUNTER(queue_timeouts, "Requests answered with 'queue timeout."),
    COUNTER(queue_rejections, "Requests rejected because clients.max_queue were waiting."),
    COUNTER(unavailable, "Requests answered with 'upstream unavailable."),
    COUNTER(requests_retried, "Unsent requests moved to another upstream connection."),
    COUNTER(bytes_from_clients, "Bytes received from clients."),
    COUNTER(bytes_to_clients, "Bytes sent to clients."),
    COUNTER(upstream_logins, "Successful logins to an upstream."),
    COUNTER(upstream_losses, "Logged-in upstream connections lost."),
    COUNTER(health_checks, "Health-check queries sent upstream."),
};

const size_t stats_counter_count = sizeof(stats_counters) / sizeof(stats_counters[0]);

/* The counters come first in struct stats, so a new counter without a line above fails
 * the build here. */
_Static_assert(offsetof(struct stats, latency) ==
                   sizeof(stats_counters) / sizeof(stats_counters[0]) * sizeof(uint64_t),
               "every uint64_t counter of struct stats needs an entry in stats_counters");

uint64_t stats_counter_value(const struct stats *s, const struct stats_counter *counter)
{
    return *(const uint64_t *)((const char *)s + counter->offset);
}

void metrics_summarize_backend(const struct backend *backend, struct upstream_summary *out)
{
    *out = (struct upstream_summary){ .size = backend->size };
    for (int slot = 0; slot < backend->size; slot++) {
        const struct upconn *conn = backend->conns[slot];

        switch (conn->state) {
        case UPCONN_IDLE:
            out->idle++;
            break;
        case UPCONN_BUSY:
            out->busy++;
            break;
        case UPCONN_CONNECTING:
        case UPCONN_LOGIN:
            out->connecting++;
            break;
        case UPCONN_DOWN:
            out->down++;
            break;
        }
        if (conn->failures > 0 && conn->state != UPCONN_IDLE && conn->state != UPCONN_BUSY)
            out->failed++;
        out->reconnect_attempts += conn->failures;
    }
}

/*
 * Histogram boundaries exported as le, in seconds and in microseconds. The internal
 * histogram is log-linear (stats.h), and these decimal values fall inside its buckets, so
 * each le counts the buckets whose upper bound is at most le.
 * NOTE: an observation in the internal bucket that straddles le (at most 12.5% below it)
 * is counted only from the next le on. _count, _sum and +Inf are exact.
 */
static const struct {
    const char *le;
    uint64_t microseconds;
} boundaries[] = {
    { "0.0001", 100 },     { "0.00025", 250 },     { "0.0005", 500 },
    { "0.001", 1000 },     { "0.0025", 2500 },     { "0.005", 5000 },
    { "0.01", 10000 },     { "0.025", 25000 },     { "0.05", 50000 },
    { "0.1", 100000 },     { "0.25", 250000 },     { "0.5", 500000 },
    { "1", 1000000 },      { "2.5", 2500000 },     { "5", 5000000 },
    { "10", 10000000 },    { "30", 30000000 },     { "60", 60000000 },
};

static void write_histogram(struct evbuffer *out, const char *name, const char *help,
                            const struct histogram *histogram)
{
    unsigned bucket_count = HISTOGRAM_POWERS * HISTOGRAM_STEPS;
    unsigned bucket = 0;
    uint64_t cumulative = 0;

    evbuffer_add_printf(out, "# HELP %s %s\n# TYPE %s histogram\n", name, help, name);
    for (size_t i = 0; i < sizeof(boundaries) / sizeof(boundaries[0]); i++) {
        while (bucket < bucket_count &&
               histogram_bucket_upper(bucket) <= boundaries[i].microseconds)
            cumulative += histogram->counts[bucket++];
        evbuffer_add_printf(out, "%s_bucket{le=\"%s\"} %" PRIu64 "\n", name,
                            boundaries[i].le, cumulative);
    }
    evbuffer_add_printf(out, "%s_bucket{le=\"+Inf\"} %" PRIu64 "\n", name, histogram->total);
    evbuffer_add_printf(out, "%s_sum %" PRIu64 ".%06" PRIu64 "\n", name,
                        histogram->sum_us / 1000000, histogram->sum_us % 1000000);
    evbuffer_add_printf(out, "%s_count %" PRIu64 "\n", name, histogram->total);
}


/* Writes text as a label value: backslash, double quote and newline escaped. */
static void write_label_value(struct evbuffer *out, const char *text)
{
    for (const char *p = text; *p != '\0'; p++) {
        if (*p == '\\' || *p == '"')
            evbuffer_add_printf(out, "\\%c", *p);
        else if (*p == '\n')
            evbuffer_add(out, "\\n", 2);
        else
            evbuffer_add(out, p, 1);
    }
}

enum upstream_figure {
    FIGURE_SIZE,
    FIGURE_IDLE,
    FIGURE_BUSY,
    FIGURE_CONNECTING,
    FIGURE_DOWN,
    FIGURE_FAILED,
    FIGURE_RECONNECT_ATTEMPTS,
};

static int64_t summary_figure(const struct upstream_summary *summary,
                              enum upstream_figure figure)
{
    switch (figure) {
    case FIGURE_SIZE: return summary->size;
    case FIGURE_IDLE: return summary->idle;
    case FIGURE_BUSY: return summary->busy;
    case FIGURE_CONNECTING: return summary->connecting;
    case FIGURE_DOWN: return summary->down;
    case FIGURE_FAILED: return summary->failed;
    case FIGURE_RECONNECT_ATTEMPTS: return summary->reconnect_attempts;
    }
    return 0;
}

/* Writes one sample per upstream, labelled upstream="host:port", plus state="..." when
 * state is not NULL. */
static void write_upstream_samples(struct evbuffer *out, const char *name, const char *state,
                                   enum upstream_figure figure)
{
    struct pool *pool = qmux.pool;

    for (int i = 0; i < pool->backend_count; i++) {
        struct upstream_summary summary;

        metrics_summarize_backend(pool->backends[i], &summary);
        evbuffer_add_printf(out, "%s{upstream=\"", name);
        write_label_value(out, pool->backends[i]->name);
        if (state != NULL)
            evbuffer_add_printf(out, "\",state=\"%s", state);
        evbuffer_add_printf(out, "\"} %" PRId64 "\n", summary_figure(&summary, figure));
    }
}

static void write_family_header(struct evbuffer *out, const char *name, const char *help)
{
    evbuffer_add_printf(out, "# HELP %s %s\n# TYPE %s gauge\n", name, help, name);
}

static void write_gauge(struct evbuffer *out, const char *name, const char *help,
                        int64_t value)
{
    write_family_header(out, name, help);
    evbuffer_add_printf(out, "%s %" PRId64 "\n", name, value);
}

static void write_upstream_gauges(struct evbuffer *out)
{
    static const struct {
        const char *state;
        enum upstream_figure figure;
    } states[] = {
        { "idle", FIGURE_IDLE },
        { "busy", FIGURE_BUSY },
        { "connecting", FIGURE_CONNECTING },
        { "down", FIGURE_DOWN },
    };

    write_family_header(out, "qmux_upstream_pool_size",
                        "Configured connections to the upstream (pool.size).");
    write_upstream_samples(out, "qmux_upstream_pool_size", NULL, FIGURE_SIZE);

    write_family_header(out, "qmux_upstream_connections",
                        "Connections to the upstream by state.");
    for (size_t i = 0; i < sizeof(states) / sizeof(states[0]); i++)
        write_upstream_samples(out, "qmux_upstream_connections", states[i].state,
                               states[i].figure);

    write_family_header(out, "qmux_upstream_failed_connections", "Connections to the "
                        "upstream that are not logged in and whose last attempt failed.");
    write_upstream_samples(out, "qmux_upstream_failed_connections", NULL, FIGURE_FAILED);

    write_family_header(out, "qmux_upstream_reconnect_attempts", "Sum of the consecutive "
                        "failed attempts of the upstream's connections.");
    write_upstream_samples(out, "qmux_upstream_reconnect_attempts", NULL,
                           FIGURE_RECONNECT_ATTEMPTS);
}

void metrics_handle_metrics(struct evhttp_request *request)
{
    struct evbuffer *out = evbuffer_new();
    char name[96];

    if (out == NULL) {
        http_send_json(request, 500, "Internal Server Error", "{\"error\":\"out of memory\"}");
        return;
    }
    for (size_t i = 0; i < stats_counter_count; i++) {
        snprintf(name, sizeof(name), "qmux_%s_total", stats_counters[i].name);
        evbuffer_add_printf(out, "# HELP %s %s\n# TYPE %s counter\n%s %" PRIu64 "\n", name,
                            stats_counters[i].help, name, name,
                            stats_counter_value(&stats, &stats_counters[i]));
    }

    write_gauge(out, "qmux_clients", "Client connections open.", qmux.client_count);
    write_gauge(out, "qmux_queue_length", "Requests waiting in the shared queue.",
                (int64_t)qmux.pool->queue.length);
    write_gauge(out, "qmux_upstream_connections_logged_in", "Upstream connections logged "
                "in (idle or busy).", qmux.pool->logged_in);
    write_gauge(out, "qmux_paused", "1 while the pool is paused by the admin console.",
                qmux.pool->paused);
    write_upstream_gauges(out);

    write_histogram(out, "qmux_request_duration_seconds", "Time from a sync request's "
                    "arrival to the last byte of its response relayed.", &stats.latency);
    write_histogram(out, "qmux_queue_wait_seconds", "Time from a sync request's arrival to "
                    "its dispatch upstream.", &stats.queue_wait);

    http_send(request, 200, "OK", "text/plain; version=0.0.4; charset=utf-8", out);
    evbuffer_free(out);
}

void metrics_handle_health(struct evhttp_request *request)
{
    int logged_in = qmux.pool->logged_in;
    char json[128];

    snprintf(json, sizeof(json), "{\"status\":\"%s\",\"upstream_connections\":%d}",
             logged_in > 0 ? "ok" : "unavailable", logged_in);
    if (logged_in > 0)
        http_send_json(request, 200, "OK", json);
    else
        http_send_json(request, 503, "Service Unavailable", json);
}
