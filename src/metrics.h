/*
 * metrics.h - the figures qmux exports: the table of counters in struct stats, a summary
 * of each upstream's connections, and the HTTP handlers for GET /metrics (Prometheus
 * text format 0.0.4) and GET /health. The admin console (admin.c) shows the same figures.
 */
#ifndef QMUX_METRICS_H
#define QMUX_METRICS_H

#include <stddef.h>
#include <stdint.h>

struct backend;
struct evhttp_request;
struct stats;

/* One counter of struct stats: its name (the metric is qmux_NAME_total) and help text. */
struct stats_counter {
    const char *name;
    const char *help;
    size_t offset;                  /* of the uint64_t field in struct stats */
};

/* Every counter of struct stats, in field order. */
extern const struct stats_counter stats_counters[];
extern const size_t stats_counter_count;

/* Returns the value of a counter in s. */
uint64_t stats_counter_value(const struct stats *s, const struct stats_counter *counter);

/* Connection counts of one upstream, over its pool.size slots. */
struct upstream_summary {
    int size;
    int idle;
    int busy;
    int connecting;                 /* TCP connect or kdb+ login in progress */
    int down;                       /* waiting for the reconnect timer */
    int failed;                     /* not logged in, and the last attempt failed */
    int64_t reconnect_attempts;     /* sum of the consecutive failure counts */
};

/* Counts the connections of backend by state. */
void metrics_summarize_backend(const struct backend *backend, struct upstream_summary *out);

/* GET /metrics: every counter, gauge and histogram in Prometheus text format 0.0.4. */
void metrics_handle_metrics(struct evhttp_request *request);

/* GET /health: 200 while at least one upstream connection is logged in, else 503. */
void metrics_handle_health(struct evhttp_request *request);

#endif
