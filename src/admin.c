/*
 * admin.c - the admin console: kdb+ handshake and framing for admin connections, the
 * parsing of a command from a q value, and the commands, whose results are q values
 * built with qenc.
 *
 * An admin connection is not a client: it never reaches the pool, it is not counted in
 * clients.max_clients, and it does not delay a graceful shutdown.
 */
#include "admin.h"

#include <errno.h>
#include <inttypes.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/listener.h>

#include "auth.h"
#include "client.h"
#include "compress.h"
#include "ipc.h"
#include "lifecycle.h"
#include "log.h"
#include "login.h"
#include "metrics.h"
#include "pool.h"
#include "qdec.h"
#include "qenc.h"
#include "qmux.h"
#include "stats.h"
#include "upstream.h"

/* Highest capability the console agrees: its results never need the large vectors and
 * messages of capabilities 5 and 6. */
#define ADMIN_CAPABILITY 3

/* Maximum length of a command, arguments included, in bytes with the NUL. */
#define COMMAND_MAX 256

/* Seconds from 1970.01.01 (Unix) to 2000.01.01 (kdb+'s epoch). */
#define KDB_EPOCH_OFFSET 946684800LL

/* Admin connection lines: "admin ID PEER: ...". */
#define alog_at(level, conn, format, ...) \
    log_at(level, "admin %" PRIu64 " %s: " format, (conn)->id, (conn)->peer, ##__VA_ARGS__)
#define alog_warn(c, ...) alog_at(LOG_LEVEL_WARN, c, __VA_ARGS__)
#define alog_info(c, ...) alog_at(LOG_LEVEL_INFO, c, __VA_ARGS__)
#define alog_debug(c, ...) alog_at(LOG_LEVEL_DEBUG, c, __VA_ARGS__)

struct admin_conn {
    uint64_t id;                    /* from qmux_next_id, shared with clients */
    char peer[64];
    char user[64];                  /* sanitized for logs */
    struct bufferevent *bev;
    int logged_in;
    const struct auth_user *account; /* its account, or NULL when logged in by name only */
    struct login_session *login;    /* password check, or a rejected login held open */
    int capability;                 /* requested in the handshake */
    int closing;                    /* flushing a final error, then closing */
    const char *close_reason;
    int shutdown_after_flush;       /* the shutdown command's reply is being sent */
    struct event *handshake_timer;
    uint64_t requests;
    TAILQ_ENTRY(admin_conn) link;
};

static struct evconnlistener *listener;
static TAILQ_HEAD(, admin_conn) connections = TAILQ_HEAD_INITIALIZER(connections);
static int connection_count;

/* Requests answered by the upstreams at the previous show stats, for its rate. */
static struct timeval rate_since;
static uint64_t rate_requests;

/* ---- Connections ---- */

/* The one close path: logs the reason and frees the connection. */
static void admin_close(struct admin_conn *conn, const char *reason)
{
    int shutdown = conn->shutdown_after_flush;

    alog_info(conn, "closed: %s (user %s, %" PRIu64 " requests)", reason,
              conn->user[0] ? conn->user : "-", conn->requests);
    if (conn->handshake_timer != NULL)
        event_free(conn->handshake_timer);
    login_end(conn->login);
    if (conn->bev != NULL)
        bufferevent_free(conn->bev);
    TAILQ_REMOVE(&connections, conn, link);
    connection_count--;
    free(conn);

    /* The peer left before the reply to shutdown was flushed: shut down anyway. */
    if (shutdown && !qmux.stopping)
        lifecycle_shutdown("admin shutdown");
}

/* Sends what is buffered, then closes. Nothing more is read meanwhile. */
static void close_after_flush(struct admin_conn *conn, const char *reason)
{
    if (evbuffer_get_length(bufferevent_get_output(conn->bev)) == 0) {
        admin_close(conn, reason);
        return;
    }
    conn->closing = 1;
    conn->close_reason = reason;
    bufferevent_disable(conn->bev, EV_READ);
}

/* Sends a kdb+ error response. text must not contain NUL. */
static void send_error(struct admin_conn *conn, const char *text)
{
    size_t text_length = strlen(text);
    uint8_t header[IPC_HEADER_SIZE];
    uint8_t error_type = 0x80;

    ipc_header_write(header, IPC_RESPONSE, IPC_HEADER_SIZE + 1 + text_length + 1);
    bufferevent_write(conn->bev, header, sizeof(header));
    bufferevent_write(conn->bev, &error_type, 1);
    bufferevent_write(conn->bev, text, text_length + 1);
}

/* ---- Encoding helpers ---- */

static int64_t timestamp_from(const struct timeval *time)
{
    return ((int64_t)time->tv_sec - KDB_EPOCH_OFFSET) * 1000000000LL +
           (int64_t)time->tv_usec * 1000;
}

static int64_t nanoseconds_between(const struct timeval *from, const struct timeval *to)
{
    int64_t ns = ((int64_t)to->tv_sec - from->tv_sec) * 1000000000LL +
                 ((int64_t)to->tv_usec - from->tv_usec) * 1000;

    return ns > 0 ? ns : 0;
}

/* Appends one 8-byte vector item, little-endian. */
static void put_item64(struct qenc *out, int64_t value)
{
    uint8_t bytes[8];

    for (int i = 0; i < 8; i++)
        bytes[i] = (uint8_t)((uint64_t)value >> (8 * i));
    qenc_raw(out, bytes, sizeof(bytes));
}

enum column_type {
    COLUMN_LONG,
    COLUMN_SYMBOL,                  /* text must not contain NUL */
    COLUMN_STRING,                  /* a char vector per row */
    COLUMN_TIMESTAMP,               /* nanoseconds since 2000.01.01 */
    COLUMN_TIMESPAN,                /* nanoseconds */
};

struct column {
    const char *name;
    enum column_type type;
};

union cell {
    int64_t number;
    const char *text;
};

/* Fills the value of column for row. */
typedef void (*cell_fn)(const void *row, size_t column, union cell *value);

#define TABLE_MAX_COLUMNS 16

/* Appends a table of row_count rows: one vector per column, each item from cell(). */
static void encode_table(struct qenc *out, const struct column *columns, size_t column_count,
                         const void *const *rows, size_t row_count, cell_fn cell)
{
    static const int vector_types[] = {
        [COLUMN_LONG] = QT_LONG,
        [COLUMN_SYMBOL] = QT_SYMBOL,
        [COLUMN_STRING] = QT_LIST,
        [COLUMN_TIMESTAMP] = QT_TIMESTAMP,
        [COLUMN_TIMESPAN] = QT_TIMESPAN,
    };
    const char *names[TABLE_MAX_COLUMNS] = { NULL };
    union cell value;

    if (column_count > TABLE_MAX_COLUMNS)
        abort();   /* a table definition above has too many columns */
    for (size_t c = 0; c < column_count; c++)
        names[c] = columns[c].name;
    qenc_table(out, names, column_count);

    for (size_t c = 0; c < column_count; c++) {
        if (columns[c].type == COLUMN_STRING)
            qenc_list_header(out, row_count);
        else
            qenc_vector_header(out, vector_types[columns[c].type], 0, row_count);

        for (size_t r = 0; r < row_count; r++) {
            cell(rows[r], c, &value);
            if (columns[c].type == COLUMN_SYMBOL)
                qenc_raw(out, value.text, strlen(value.text) + 1);
            else if (columns[c].type == COLUMN_STRING)
                qenc_string(out, value.text, strlen(value.text));
            else
                put_item64(out, value.number);
        }
    }
}

/* ---- Commands ---- */

/* Runs one command: appends its result to out, or writes a kdb+ error text (without the
 * leading ') into error and returns -1. */
typedef int (*command_fn)(struct admin_conn *conn, const char *argument, struct qenc *out,
                          char *error, size_t error_size);

struct admin_command {
    const char *name;
    int takes_argument;
    command_fn run;
    const char *description;
};

static int run_help(struct admin_conn *conn, const char *argument, struct qenc *out,
                    char *error, size_t error_size);

static const struct column pool_columns[] = {
    { "upstream", COLUMN_SYMBOL },
    { "size", COLUMN_LONG },
    { "idle", COLUMN_LONG },
    { "busy", COLUMN_LONG },
    { "connecting", COLUMN_LONG },
    { "down", COLUMN_LONG },
    { "failed", COLUMN_LONG },
    { "reconnect_attempts", COLUMN_LONG },
};

struct pool_row {
    const struct backend *backend;
    struct upstream_summary summary;
};

static void pool_cell(const void *row, size_t column, union cell *value)
{
    const struct pool_row *pool_row = row;
    const struct upstream_summary *summary = &pool_row->summary;
    const int64_t numbers[] = {
        0, summary->size, summary->idle, summary->busy, summary->connecting, summary->down,
        summary->failed, summary->reconnect_attempts,
    };

    if (column == 0)
        value->text = pool_row->backend->name;
    else
        value->number = numbers[column];
}

static int run_show_pools(struct admin_conn *conn, const char *argument, struct qenc *out,
                          char *error, size_t error_size)
{
    struct pool *pool = qmux.pool;
    size_t count = (size_t)pool->backend_count;
    struct pool_row *rows = calloc(count + 1, sizeof(*rows));
    const void **pointers = calloc(count + 1, sizeof(*pointers));

    (void)conn;
    (void)argument;
    if (rows == NULL || pointers == NULL) {
        free(rows);
        free(pointers);
        snprintf(error, error_size, "wsfull: out of memory");
        return -1;
    }
    for (size_t i = 0; i < count; i++) {
        rows[i].backend = pool->backends[i];
        metrics_summarize_backend(pool->backends[i], &rows[i].summary);
        pointers[i] = &rows[i];
    }
    encode_table(out, pool_columns, sizeof(pool_columns) / sizeof(pool_columns[0]), pointers,
                 count, pool_cell);
    free(rows);
    free(pointers);
    return 0;
}

static const struct column client_columns[] = {
    { "id", COLUMN_LONG },
    { "address", COLUMN_SYMBOL },
    { "user", COLUMN_SYMBOL },
    { "state", COLUMN_SYMBOL },
    { "connected", COLUMN_TIMESTAMP },
    { "requests", COLUMN_LONG },
    { "bytes_in", COLUMN_LONG },
    { "bytes_out", COLUMN_LONG },
    { "wait", COLUMN_TIMESPAN },
};

/* The time show clients runs, for the wait column. */
static struct timeval client_rows_time;

static void client_cell(const void *row, size_t column, union cell *value)
{
    const struct client *client = row;

    switch (column) {
    case 0: value->number = (int64_t)client->id; break;
    case 1: value->text = client->peer; break;
    case 2: value->text = client->user; break;
    case 3: value->text = client_state_name(client->state); break;
    case 4: value->number = timestamp_from(&client->connected_at); break;
    case 5: value->number = (int64_t)client->requests; break;
    case 6: value->number = (int64_t)client->bytes_in; break;
    case 7: value->number = (int64_t)client->bytes_out; break;
    default:
        value->number = client->state == CLIENT_QUEUED
                            ? nanoseconds_between(&client->queued_at, &client_rows_time)
                            : 0;
        break;
    }
}

static int run_show_clients(struct admin_conn *conn, const char *argument, struct qenc *out,
                            char *error, size_t error_size)
{
    size_t count = 0;
    struct client *client;

    (void)conn;
    (void)argument;
    TAILQ_FOREACH(client, &qmux.clients, list_link)
        count++;

    const void **rows = calloc(count + 1, sizeof(*rows));
    if (rows == NULL) {
        snprintf(error, error_size, "wsfull: out of memory");
        return -1;
    }
    size_t index = 0;
    TAILQ_FOREACH(client, &qmux.clients, list_link)
        rows[index++] = client;

    gettimeofday(&client_rows_time, NULL);
    encode_table(out, client_columns, sizeof(client_columns) / sizeof(client_columns[0]),
                 rows, count, client_cell);
    free(rows);
    return 0;
}

static const struct column upstream_columns[] = {
    { "id", COLUMN_LONG },
    { "upstream", COLUMN_SYMBOL },
    { "slot", COLUMN_LONG },
    { "state", COLUMN_SYMBOL },
    { "capability", COLUMN_LONG },
    { "requests", COLUMN_LONG },
    { "last_error", COLUMN_STRING },
    { "since", COLUMN_TIMESTAMP },
};

static void upstream_cell(const void *row, size_t column, union cell *value)
{
    const struct upconn *conn = row;

    switch (column) {
    case 0: value->number = (int64_t)conn->id; break;
    case 1: value->text = conn->backend->name; break;
    case 2: value->number = conn->slot; break;
    case 3: value->text = upconn_state_name(conn->state); break;
    case 4: value->number = conn->capability; break;
    case 5: value->number = (int64_t)conn->requests_served; break;
    case 6: value->text = conn->last_error; break;
    default: value->number = timestamp_from(&conn->since); break;
    }
}

static int run_show_upstreams(struct admin_conn *conn, const char *argument, struct qenc *out,
                              char *error, size_t error_size)
{
    struct pool *pool = qmux.pool;
    size_t count = 0;

    (void)conn;
    (void)argument;
    for (int i = 0; i < pool->backend_count; i++)
        count += (size_t)pool->backends[i]->size;

    const void **rows = calloc(count + 1, sizeof(*rows));
    if (rows == NULL) {
        snprintf(error, error_size, "wsfull: out of memory");
        return -1;
    }
    size_t index = 0;
    for (int i = 0; i < pool->backend_count; i++)
        for (int slot = 0; slot < pool->backends[i]->size; slot++)
            rows[index++] = pool->backends[i]->conns[slot];

    encode_table(out, upstream_columns, sizeof(upstream_columns) / sizeof(upstream_columns[0]),
                 rows, count, upstream_cell);
    free(rows);
    return 0;
}

/* One entry of the show stats dictionary: a long, or a float when is_float is set. */
struct stat_entry {
    const char *name;
    int is_float;
    int64_t number;
    double real;
};

#define STAT_ENTRIES_MAX 48

static void add_stat(struct stat_entry *entries, size_t *count, const char *name,
                     int64_t number)
{
    if (*count < STAT_ENTRIES_MAX)
        entries[(*count)++] = (struct stat_entry){ name, 0, number, 0 };
}

static int run_show_stats(struct admin_conn *conn, const char *argument, struct qenc *out,
                          char *error, size_t error_size)
{
    struct stat_entry entries[STAT_ENTRIES_MAX];
    size_t count = 0;
    struct timeval now;

    (void)conn;
    (void)argument;
    (void)error;
    (void)error_size;
    for (size_t i = 0; i < stats_counter_count; i++)
        add_stat(entries, &count, stats_counters[i].name,
                 (int64_t)stats_counter_value(&stats, &stats_counters[i]));

    gettimeofday(&now, NULL);
    double seconds = (double)nanoseconds_between(&rate_since, &now) / 1e9;
    double rate = seconds > 0 ? (double)(stats.requests - rate_requests) / seconds : 0;
    rate_since = now;
    rate_requests = stats.requests;
    entries[count++] = (struct stat_entry){ "requests_per_second", 1, 0, rate };

    add_stat(entries, &count, "queue_length", (int64_t)qmux.pool->queue.length);
    add_stat(entries, &count, "queue_wait_p50_us",
             (int64_t)histogram_quantile(&stats.queue_wait, 0.5));
    add_stat(entries, &count, "queue_wait_p99_us",
             (int64_t)histogram_quantile(&stats.queue_wait, 0.99));
    add_stat(entries, &count, "latency_p50_us", (int64_t)histogram_quantile(&stats.latency, 0.5));
    add_stat(entries, &count, "latency_p90_us", (int64_t)histogram_quantile(&stats.latency, 0.9));
    add_stat(entries, &count, "latency_p99_us",
             (int64_t)histogram_quantile(&stats.latency, 0.99));
    add_stat(entries, &count, "latency_p999_us",
             (int64_t)histogram_quantile(&stats.latency, 0.999));
    add_stat(entries, &count, "latency_max_us", (int64_t)stats.latency.max_us);
    add_stat(entries, &count, "clients", qmux.client_count);
    add_stat(entries, &count, "upstream_connections", qmux.pool->logged_in);
    add_stat(entries, &count, "paused", qmux.pool->paused);

    qenc_dict(out);
    qenc_vector_header(out, QT_SYMBOL, 0, count);
    for (size_t i = 0; i < count; i++)
        qenc_raw(out, entries[i].name, strlen(entries[i].name) + 1);
    qenc_list_header(out, count);
    for (size_t i = 0; i < count; i++) {
        if (entries[i].is_float)
            qenc_float(out, entries[i].real);
        else
            qenc_long(out, entries[i].number);
    }
    return 0;
}

/* The three passes of show config over config_each_value. */
enum config_pass {
    CONFIG_COUNT,
    CONFIG_KEYS,
    CONFIG_VALUES,
};

struct config_walk {
    enum config_pass pass;
    size_t count;
    struct qenc *out;
};

static int visit_config_value(void *ctx, const char *key, const char *value)
{
    struct config_walk *walk = ctx;

    switch (walk->pass) {
    case CONFIG_COUNT:
        walk->count++;
        break;
    case CONFIG_KEYS:
        qenc_raw(walk->out, key, strlen(key) + 1);
        break;
    case CONFIG_VALUES:
        qenc_string(walk->out, value, strlen(value));
        break;
    }
    return 0;
}

static int run_show_config(struct admin_conn *conn, const char *argument, struct qenc *out,
                           char *error, size_t error_size)
{
    struct config_walk walk = { CONFIG_COUNT, 0, out };

    (void)conn;
    (void)argument;
    (void)error;
    (void)error_size;
    config_each_value(qmux.config, visit_config_value, &walk);

    qenc_dict(out);
    qenc_vector_header(out, QT_SYMBOL, 0, walk.count);
    walk.pass = CONFIG_KEYS;
    config_each_value(qmux.config, visit_config_value, &walk);
    qenc_list_header(out, walk.count);
    walk.pass = CONFIG_VALUES;
    config_each_value(qmux.config, visit_config_value, &walk);
    return 0;
}

static int send_text(struct qenc *out, const char *text)
{
    qenc_string(out, text, strlen(text));
    return 0;
}

static int run_pause(struct admin_conn *conn, const char *argument, struct qenc *out,
                     char *error, size_t error_size)
{
    (void)conn;
    (void)argument;
    (void)error;
    (void)error_size;
    pool_pause(qmux.pool);
    return send_text(out, "paused: new requests wait in the queue until resume");
}

static int run_resume(struct admin_conn *conn, const char *argument, struct qenc *out,
                      char *error, size_t error_size)
{
    char text[96];

    (void)conn;
    (void)argument;
    (void)error;
    (void)error_size;
    snprintf(text, sizeof(text), "resumed with %zu requests queued", qmux.pool->queue.length);
    pool_resume(qmux.pool);
    return send_text(out, text);
}

static int run_reconnect(struct admin_conn *conn, const char *argument, struct qenc *out,
                         char *error, size_t error_size)
{
    (void)conn;
    (void)argument;
    (void)error;
    (void)error_size;
    qenc_long(out, pool_reconnect_all(qmux.pool));
    return 0;
}

static int run_kill_client(struct admin_conn *conn, const char *argument, struct qenc *out,
                           char *error, size_t error_size)
{
    char *end;
    char text[64];

    (void)conn;
    errno = 0;
    unsigned long long id = strtoull(argument, &end, 10);
    if (argument[0] < '0' || argument[0] > '9' || *end != '\0' || errno != 0) {
        snprintf(error, error_size, "kill client: invalid client id %s; use the id column "
                 "of show clients", argument);
        return -1;
    }

    struct client *client = client_find((uint64_t)id);
    if (client == NULL) {
        snprintf(error, error_size, "kill client: no client with id %llu; show clients "
                 "lists the open ones", id);
        return -1;
    }
    client_close(client, "killed by admin");
    snprintf(text, sizeof(text), "client %llu closed", id);
    return send_text(out, text);
}

static int run_reload(struct admin_conn *conn, const char *argument, struct qenc *out,
                      char *error, size_t error_size)
{
    char message[512];

    (void)conn;
    (void)argument;
    if (lifecycle_reload(message, sizeof(message)) != 0) {
        snprintf(error, error_size, "%s", message);
        return -1;
    }
    return send_text(out, message);
}

static int run_shutdown(struct admin_conn *conn, const char *argument, struct qenc *out,
                        char *error, size_t error_size)
{
    (void)argument;
    (void)error;
    (void)error_size;
    /* write_cb starts the shutdown once this reply has left the output buffer. */
    conn->shutdown_after_flush = 1;
    return send_text(out, "qmux is shutting down");
}

static const struct admin_command commands[] = {
    { "help", 0, run_help, "list the commands" },
    { "show pools", 0, run_show_pools, "one row per upstream: connections by state" },
    { "show clients", 0, run_show_clients, "one row per client connection" },
    { "show upstreams", 0, run_show_upstreams, "one row per pooled upstream connection" },
    { "show stats", 0, run_show_stats, "counters, rates, queue and latency percentiles" },
    { "show config", 0, run_show_config, "the running configuration, without passwords" },
    { "pause", 0, run_pause, "stop dispatching: requests wait in the queue" },
    { "resume", 0, run_resume, "dispatch again" },
    { "reconnect", 0, run_reconnect,
      "replace every upstream connection, busy ones after their response; returns the count" },
    { "kill client", 1, run_kill_client, "kill client ID: close that client connection" },
    { "reload", 0, run_reload, "re-read the configuration file, as SIGHUP does" },
    { "shutdown", 0, run_shutdown, "stop qmux gracefully, as SIGTERM does" },
};

#define COMMAND_COUNT (sizeof(commands) / sizeof(commands[0]))

static void help_cell(const void *row, size_t column, union cell *value)
{
    const struct admin_command *command = row;

    value->text = column == 0 ? command->name : command->description;
}

static int run_help(struct admin_conn *conn, const char *argument, struct qenc *out,
                    char *error, size_t error_size)
{
    static const struct column columns[] = {
        { "command", COLUMN_SYMBOL },
        { "description", COLUMN_STRING },
    };
    const void *rows[COMMAND_COUNT];

    (void)conn;
    (void)argument;
    (void)error;
    (void)error_size;
    for (size_t i = 0; i < COMMAND_COUNT; i++)
        rows[i] = &commands[i];
    encode_table(out, columns, 2, rows, COMMAND_COUNT, help_cell);
    return 0;
}

/* Finds the command that text names and runs it. */
static int run_command(struct admin_conn *conn, const char *text, struct qenc *out,
                       char *error, size_t error_size)
{
    for (size_t i = 0; i < COMMAND_COUNT; i++) {
        const struct admin_command *command = &commands[i];
        size_t length = strlen(command->name);

        if (strncmp(text, command->name, length) != 0 ||
            (text[length] != '\0' && text[length] != ' '))
            continue;
        const char *argument = text[length] == ' ' ? text + length + 1 : "";
        if (command->takes_argument && argument[0] == '\0') {
            snprintf(error, error_size, "%s needs an argument: %s", command->name,
                     command->description);
            return -1;
        }
        if (!command->takes_argument && argument[0] != '\0') {
            snprintf(error, error_size, "%s takes no argument", command->name);
            return -1;
        }
        return command->run(conn, argument, out, error, error_size);
    }
    snprintf(error, error_size, "unknown admin command: %s; try help", text);
    return -1;
}

/* ---- Reading a command from a q value ---- */

#define NOT_A_COMMAND "type: an admin command is a string or a symbol, such as \"show stats\""

/* State of the walk over a request: the command text built so far. */
struct command_text {
    char text[COMMAND_MAX];
    size_t length;
    int items;                      /* items of a top-level general list seen so far */
    const char *error;              /* why the value is not a command */
};

static int append_text(struct command_text *command, const char *bytes, size_t length)
{
    if (command->length > 0) {
        if (command->length + 1 >= sizeof(command->text))
            goto too_long;
        command->text[command->length++] = ' ';
    }
    if (command->length + length >= sizeof(command->text))
        goto too_long;
    memcpy(command->text + command->length, bytes, length);
    command->length += length;
    command->text[command->length] = '\0';
    return 0;

too_long:
    command->error = "limit: admin command longer than 255 bytes";
    return 1;
}

/* An atom: the command (a symbol or a char) at the top or first in a list, or a later
 * argument (a symbol or an integer) in a list. */
static int on_atom(void *ctx, const struct qdec_value *v)
{
    struct command_text *command = ctx;
    char number[24];
    int first = v->depth == 0 || command->items == 0;

    command->items += v->depth == 1;
    if (v->depth > 1) {
        command->error = "type: admin command lists must be flat";
        return 1;
    }
    if (v->type == -QT_SYMBOL || v->type == -QT_CHAR)
        return append_text(command, (const char *)v->data, (size_t)v->size);
    if (!first && v->type == -QT_LONG) {
        snprintf(number, sizeof(number), "%" PRId64, qdec_get_long(v->data, v->little_endian));
        return append_text(command, number, strlen(number));
    }
    if (!first && v->type == -QT_INT) {
        snprintf(number, sizeof(number), "%" PRId32, qdec_get_int(v->data, v->little_endian));
        return append_text(command, number, strlen(number));
    }
    command->error = first ? NOT_A_COMMAND
                           : "type: admin command arguments are symbols, strings, longs or ints";
    return 1;
}

static int on_vector(void *ctx, const struct qdec_value *v)
{
    struct command_text *command = ctx;

    command->items += v->depth == 1;
    if (v->depth <= 1 && v->type == QT_CHAR)
        return append_text(command, (const char *)v->data, (size_t)v->size);
    if (v->depth <= 1 && v->type == QT_SYMBOL) {
        /* `show`clients: the symbols are the words. */
        const char *word = (const char *)v->data;

        for (uint64_t i = 0; i < v->count; i++) {
            size_t length = strlen(word);

            if (append_text(command, word, length) != 0)
                return 1;
            word += length + 1;
        }
        return 0;
    }
    command->error = NOT_A_COMMAND;
    return 1;
}

static int on_list(void *ctx, const struct qdec_value *v)
{
    struct command_text *command = ctx;

    if (v->depth == 0 && v->count > 0)
        return 0;
    command->error = NOT_A_COMMAND;
    return 1;
}

static int on_other(void *ctx, const struct qdec_value *v)
{
    struct command_text *command = ctx;

    (void)v;
    command->error = NOT_A_COMMAND;
    return 1;
}

static int on_end(void *ctx, const struct qdec_value *v)
{
    (void)ctx;
    (void)v;
    return 0;
}

/* Reduces runs of blanks to one space and drops them at both ends. */
static void normalize_blanks(char *text)
{
    char *to = text;

    for (const char *from = text; *from != '\0'; from++) {
        int blank = *from == ' ' || *from == '\t' || *from == '\n' || *from == '\r';

        if (!blank)
            *to++ = *from;
        else if (to > text && to[-1] != ' ')
            *to++ = ' ';
    }
    if (to > text && to[-1] == ' ')
        to--;
    *to = '\0';
}

/*
 * Reads the command of a valid message: a char vector or symbol, or a general list whose
 * first item is one and whose further items are arguments. Writes the text, with bytes
 * outside printable ASCII replaced by '?', into text. Returns 0, or -1 with a kdb+ error
 * text in error.
 */
static int read_command(const uint8_t *message, uint64_t length, char *text, size_t size,
                        char *error, size_t error_size)
{
    static const struct qdec_visitor visitor = {
        .atom = on_atom,
        .vector = on_vector,
        .list_begin = on_list,
        .list_end = on_end,
        .dict_begin = on_other,
        .table_begin = on_other,
        .function_begin = on_other,
        .error = on_other,
    };
    struct command_text command = { .length = 0 };

    if (qdec_walk(message, length, &visitor, &command, NULL) != QDEC_OK) {
        snprintf(error, error_size, "%s", command.error != NULL ? command.error
                                                                 : "type: not an admin command");
        return -1;
    }
    log_sanitize(text, size, command.text, command.length);
    normalize_blanks(text);
    if (text[0] == '\0') {
        snprintf(error, error_size, "empty admin command; try help");
        return -1;
    }
    return 0;
}

/* ---- Requests ---- */

/* Runs the command of one valid sync request, sends its result or error, and logs it. */
static void answer_request(struct admin_conn *conn, const uint8_t *message, uint64_t length)
{
    char text[COMMAND_MAX] = "";
    char error[600];
    struct qenc out;

    conn->requests++;
    qenc_init(&out);
    qenc_begin(&out, IPC_RESPONSE);
    int status = read_command(message, length, text, sizeof(text), error, sizeof(error));
    if (status == 0)
        status = run_command(conn, text, &out, error, sizeof(error));
    if (status == 0 && out.failed) {
        snprintf(error, sizeof(error), "wsfull: out of memory for the result");
        status = -1;
    }
    if (status != 0) {
        qenc_reset(&out);
        qenc_begin(&out, IPC_RESPONSE);
        qenc_error(&out, error);
    }
    qenc_end(&out);

    if (status == 0)
        alog_info(conn, "user %s: %s: ok, %zu bytes", conn->user, text, out.len);
    else
        alog_info(conn, "user %s: %s: error: %s", conn->user,
                  text[0] != '\0' ? text : "(no command)", error);
    if (out.failed)
        send_error(conn, "wsfull");
    else
        bufferevent_write(conn->bev, out.data, out.len);
    qenc_free(&out);
}

/* Rejects a message that cannot be read: a sync one gets 'badmsg. Then closes conn, or
 * starts closing it, as kdb+ closes a connection that sends such a message. */
static void reject_message(struct admin_conn *conn, int type, const char *why)
{
    char text[300];

    snprintf(text, sizeof(text), "badmsg: %s", why);
    alog_warn(conn, "invalid %s message: %s", ipc_msg_type_name(type), why);
    if (type == IPC_SYNC)
        send_error(conn, text);
    close_after_flush(conn, "invalid message (badmsg)");
}

/* Handles one whole message. Returns 0 to go on, or -1 when conn is closed or closing. */
static int handle_message(struct admin_conn *conn, const struct ipc_header *header,
                          const uint8_t *bytes)
{
    const uint8_t *message = bytes;
    uint64_t length = header->length;
    uint8_t *plain = NULL;
    struct qdec_error decode_error;
    char reason[200];

    if (header->compressed) {
        uint64_t size;

        if (decompress_size(bytes, length, &size) != 0) {
            reject_message(conn, header->type, "invalid compressed message header");
            return -1;
        }
        if (size > ADMIN_MAX_MESSAGE || (plain = malloc((size_t)size)) == NULL) {
            reject_message(conn, header->type, "compressed message expands beyond the "
                           "admin limit of 65536 bytes");
            return -1;
        }
        if (decompress_message(bytes, length, plain, size, reason, sizeof(reason)) != 0) {
            free(plain);
            reject_message(conn, header->type, reason);
            return -1;
        }
        message = plain;
        length = size;
    }

    if (qdec_validate(message, length, &decode_error) != QDEC_OK) {
        free(plain);
        reject_message(conn, header->type, decode_error.message);
        return -1;
    }
    if (header->type == IPC_SYNC)
        answer_request(conn, message, length);
    else
        alog_debug(conn, "ignored an %s message of %" PRIu64 " bytes",
                   ipc_msg_type_name(header->type), header->length);
    free(plain);
    return 0;
}

static void process_input(struct admin_conn *conn)
{
    struct evbuffer *input = bufferevent_get_input(conn->bev);
    uint8_t raw[IPC_HEADER_SIZE];
    struct ipc_header header;
    char reason[200];

    while (!conn->closing && evbuffer_get_length(input) >= IPC_HEADER_SIZE) {
        evbuffer_copyout(input, raw, sizeof(raw));
        int status = ipc_header_parse(raw, &header);
        if (status != IPC_OK) {
            snprintf(reason, sizeof(reason), "invalid message header: %s",
                     ipc_status_text(status));
            admin_close(conn, reason);
            return;
        }
        if (header.length > ADMIN_MAX_MESSAGE) {
            snprintf(reason, sizeof(reason), "limit: admin message of %" PRIu64 " bytes "
                     "exceeds %d", header.length, ADMIN_MAX_MESSAGE);
            alog_warn(conn, "%s", reason);
            if (header.type == IPC_SYNC)
                send_error(conn, reason);
            close_after_flush(conn, "message larger than the admin limit");
            return;
        }
        if (evbuffer_get_length(input) < header.length)
            return;

        const uint8_t *bytes = evbuffer_pullup(input, (ev_ssize_t)header.length);
        if (bytes == NULL) {
            admin_close(conn, "out of memory while reading a message");
            return;
        }
        if (handle_message(conn, &header, bytes) != 0)
            return;
        evbuffer_drain(input, (size_t)header.length);
    }
}

/* ---- Handshake and connection events ---- */

/* Returns nonzero when name[0..length) may log in under admin.users: it is listed, or
 * the list is empty. */
static int name_listed(const struct config *config, const char *name, size_t length)
{
    const struct config_names *users = &config->admin_users;

    if (users->count == 0)
        return 1;
    for (int i = 0; i < users->count; i++)
        if (strlen(users->items[i]) == length && memcmp(users->items[i], name, length) == 0)
            return 1;
    return 0;
}

/* Sends the handshake reply and starts reading commands. */
static void admit(struct admin_conn *conn, const struct auth_user *account)
{
    uint8_t reply = (uint8_t)(conn->capability < ADMIN_CAPABILITY ? conn->capability
                                                                  : ADMIN_CAPABILITY);

    conn->account = account;
    bufferevent_write(conn->bev, &reply, 1);
    bufferevent_setwatermark(conn->bev, EV_READ, 0, ADMIN_MAX_MESSAGE);
    if (conn->handshake_timer != NULL) {
        event_free(conn->handshake_timer);
        conn->handshake_timer = NULL;
    }
    conn->logged_in = 1;
    alog_info(conn, "logged in as user %s (%s), capability %d", conn->user,
              account != NULL ? "password checked" : "admin.users, no password", reply);
    bufferevent_enable(conn->bev, EV_READ);
}

static void rejected_close(void *arg)
{
    admin_close(arg, "login rejected");
}

/* kdb+ closes a rejected login without a reply; clients report 'access. With a password
 * check, the close waits for the address's failed-login delay. */
static void reject_login(struct admin_conn *conn, const char *why)
{
    stats.logins_rejected++;
    alog_warn(conn, "login rejected for user %s: %s", conn->user[0] ? conn->user : "(empty)",
              why);
    if (conn->handshake_timer != NULL) {
        event_free(conn->handshake_timer);
        conn->handshake_timer = NULL;
    }
    if (conn->login == NULL)
        admin_close(conn, "login rejected");
    else
        login_reject(conn->login, rejected_close);
}

static void login_done(void *arg, const struct auth_user *user, const char *failure)
{
    struct admin_conn *conn = arg;

    if (user == NULL) {
        reject_login(conn, failure);
        return;
    }
    if (!login_listener_allowed(user, AUTH_LISTENER_ADMIN)) {
        reject_login(conn, "the account has no admin option, or its listeners= option does not "
                     "name admin");
        return;
    }
    login_end(conn->login);
    conn->login = NULL;
    admit(conn, user);
    process_input(conn);
}

/* Reads the login handshake. Returns 0 when logged in or waiting for more bytes or for
 * the password check, -1 when conn was closed. */
static int read_handshake(struct admin_conn *conn)
{
    struct evbuffer *input = bufferevent_get_input(conn->bev);
    size_t available = evbuffer_get_length(input);
    size_t window = available < IPC_HANDSHAKE_MAX + 2 ? available : IPC_HANDSHAKE_MAX + 2;
    const uint8_t *bytes = evbuffer_pullup(input, (ev_ssize_t)window);
    struct ipc_handshake handshake;

    int status = ipc_handshake_parse(bytes, window, IPC_HANDSHAKE_MAX, &handshake);
    if (status == IPC_HANDSHAKE_INCOMPLETE)
        return 0;
    if (status == IPC_HANDSHAKE_TOO_LONG) {
        admin_close(conn, "invalid handshake: no NUL within the first 1026 bytes");
        return -1;
    }

    log_sanitize(conn->user, sizeof(conn->user), (const char *)bytes, handshake.user_len);
    conn->capability = handshake.capability;
    if (!name_listed(qmux.config, (const char *)bytes, handshake.user_len)) {
        evbuffer_drain(input, handshake.length);
        reject_login(conn, "the user is not in admin.users");
        return -1;
    }
    if (!login_needs_check(qmux.config->users, qmux.config->admin_anonymous, bytes,
                           handshake.user_len)) {
        evbuffer_drain(input, handshake.length);
        admit(conn, NULL);
        return 0;
    }

    /* Reading goes on, bounded, so that a hang-up ends the check. */
    bufferevent_setwatermark(conn->bev, EV_READ, 0, ADMIN_MAX_MESSAGE);
    conn->login = login_begin_handshake(conn->peer, bytes, &handshake, login_done, conn);
    evbuffer_drain(input, handshake.length);
    if (conn->login == NULL) {
        admin_close(conn, "out of memory while checking the password");
        return -1;
    }
    return 0;
}

void admin_rebind_all(const struct config *config)
{
    struct admin_conn *conn;
    struct admin_conn *next;

    for (conn = TAILQ_FIRST(&connections); conn != NULL; conn = next) {
        next = TAILQ_NEXT(conn, link);
        if (!conn->logged_in)
            continue;

        const char *name = conn->account != NULL ? auth_user_name(conn->account) : conn->user;
        const struct auth_user *account = auth_find_user(config->users, name, strlen(name));
        const char *rejection = NULL;
        if (!name_listed(config, name, strlen(name)))
            rejection = "the user is no longer in admin.users after a reload";
        else if (conn->account != NULL && account == NULL)
            rejection = "its account was removed from auth.users_file by a reload";
        else if (account != NULL && !login_listener_allowed(account, AUTH_LISTENER_ADMIN))
            rejection = "its account lost admin rights in a reload";
        else if (conn->account == NULL && config->users != NULL && !config->admin_anonymous)
            rejection = "logins without a password are off after a reload";
        else if (conn->account == NULL && account != NULL)
            rejection = "its user name has an account after a reload; log in with its password";
        if (rejection != NULL) {
            admin_close(conn, rejection);
            continue;
        }
        conn->account = account;
    }
}

static void read_cb(struct bufferevent *bev, void *arg)
{
    struct admin_conn *conn = arg;

    (void)bev;
    if (conn->login != NULL)
        return;     /* the password check is running, or a rejected login waits to close */
    if (!conn->logged_in && (read_handshake(conn) != 0 || !conn->logged_in))
        return;
    process_input(conn);
}

static void write_cb(struct bufferevent *bev, void *arg)
{
    struct admin_conn *conn = arg;

    if (evbuffer_get_length(bufferevent_get_output(bev)) != 0)
        return;
    if (conn->closing) {
        admin_close(conn, conn->close_reason);
        return;
    }
    if (conn->shutdown_after_flush) {
        conn->shutdown_after_flush = 0;
        lifecycle_shutdown("admin shutdown");
    }
}

static void event_cb(struct bufferevent *bev, short what, void *arg)
{
    struct admin_conn *conn = arg;
    char reason[160];

    (void)bev;
    if (what & BEV_EVENT_ERROR)
        snprintf(reason, sizeof(reason), "socket error: %s",
                 evutil_socket_error_to_string(EVUTIL_SOCKET_ERROR()));
    else if (what & BEV_EVENT_EOF)
        snprintf(reason, sizeof(reason), conn->logged_in ? "disconnected"
                                                         : "disconnected during the handshake");
    else
        return;
    admin_close(conn, reason);
}

static void handshake_timeout_cb(evutil_socket_t fd, short what, void *arg)
{
    struct admin_conn *conn = arg;
    char reason[96];

    (void)fd;
    (void)what;
    snprintf(reason, sizeof(reason), "handshake not completed within %d ms "
             "(clients.handshake_timeout_ms)", qmux.config->handshake_timeout_ms);
    admin_close(conn, reason);
}

static void format_peer(const struct sockaddr *address, int length, char *out, size_t size)
{
    char host[48];   /* INET6_ADDRSTRLEN */
    char port[8];

    if (getnameinfo(address, (socklen_t)length, host, sizeof(host), port, sizeof(port),
                    NI_NUMERICHOST | NI_NUMERICSERV) != 0)
        snprintf(out, size, "unknown");
    else if (address->sa_family == AF_INET6)
        snprintf(out, size, "[%s]:%s", host, port);
    else
        snprintf(out, size, "%s:%s", host, port);
}

/* Starts the handshake timer of clients.handshake_timeout_ms, unless that is 0 (off).
 * Returns 0, or -1 when out of memory. */
static int start_handshake_timer(struct admin_conn *conn)
{
    int ms = qmux.config->handshake_timeout_ms;
    struct timeval timeout = { ms / 1000, (ms % 1000) * 1000 };

    if (ms == 0)
        return 0;
    conn->handshake_timer = evtimer_new(qmux.base, handshake_timeout_cb, conn);
    if (conn->handshake_timer == NULL)
        return -1;
    return evtimer_add(conn->handshake_timer, &timeout);
}

static void accept_cb(struct evconnlistener *source, evutil_socket_t fd,
                      struct sockaddr *address, int length, void *arg)
{
    char peer[64];

    (void)source;
    (void)arg;
    format_peer(address, length, peer, sizeof(peer));
    if (connection_count >= ADMIN_MAX_CONNECTIONS) {
        log_warn("admin: rejecting connection from %s: %d admin connections are open, the "
                 "maximum", peer, connection_count);
        evutil_closesocket(fd);
        return;
    }

    struct admin_conn *conn = calloc(1, sizeof(*conn));
    if (conn == NULL) {
        log_error("admin: rejecting connection from %s: out of memory", peer);
        evutil_closesocket(fd);
        return;
    }
    conn->id = qmux_next_id();
    snprintf(conn->peer, sizeof(conn->peer), "%s", peer);
    TAILQ_INSERT_TAIL(&connections, conn, link);
    connection_count++;

    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    conn->bev = bufferevent_socket_new(qmux.base, fd, BEV_OPT_CLOSE_ON_FREE);
    if (conn->bev == NULL) {
        evutil_closesocket(fd);
        admin_close(conn, "out of memory while accepting");
        return;
    }
    bufferevent_setcb(conn->bev, read_cb, write_cb, event_cb, conn);
    bufferevent_setwatermark(conn->bev, EV_READ, 0, IPC_HANDSHAKE_MAX + 2);
    bufferevent_enable(conn->bev, EV_READ | EV_WRITE);
    if (start_handshake_timer(conn) != 0) {
        admin_close(conn, "out of memory while accepting");
        return;
    }
    alog_debug(conn, "connected");
}

static void accept_error_cb(struct evconnlistener *source, void *arg)
{
    (void)source;
    (void)arg;
    log_error("admin: accept failed: %s", evutil_socket_error_to_string(EVUTIL_SOCKET_ERROR()));
}

int admin_start(void)
{
    const struct config *config = qmux.config;
    struct sockaddr_storage address;
    int length = sizeof(address);
    char text[300];

    gettimeofday(&rate_since, NULL);
    rate_requests = stats.requests;
    if (config->admin_port == 0)
        return 0;

    if (strchr(config->admin_address, ':') != NULL)
        snprintf(text, sizeof(text), "[%s]:%d", config->admin_address, config->admin_port);
    else
        snprintf(text, sizeof(text), "%s:%d", config->admin_address, config->admin_port);
    if (evutil_parse_sockaddr_port(text, (struct sockaddr *)&address, &length) != 0) {
        log_error("invalid admin.address \"%s\": expected a numeric IPv4 or IPv6 address",
                  config->admin_address);
        return -1;
    }

    unsigned flags = LEV_OPT_REUSEABLE | LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC;
    listener = evconnlistener_new_bind(qmux.base, accept_cb, NULL, flags, 16,
                                       (struct sockaddr *)&address, length);
    if (listener == NULL) {
        log_error("cannot listen for admin connections on %s: %s; check admin.address and "
                  "admin.port", text, evutil_socket_error_to_string(EVUTIL_SOCKET_ERROR()));
        return -1;
    }
    evconnlistener_set_error_cb(listener, accept_error_cb);
    if (config->users != NULL)
        log_info("admin console listening on %s for users with the admin option in %s%s",
                 text, config->users_file, config->admin_anonymous
                 ? ", and for the users of admin.users without a password" : "");
    else
        log_info("admin console listening on %s for the users of admin.users, without a "
                 "password check (admin.anonymous); keep it on a trusted interface", text);
    return 0;
}

void admin_stop(void)
{
    struct admin_conn *conn;

    if (listener != NULL)
        evconnlistener_free(listener);
    listener = NULL;
    while ((conn = TAILQ_FIRST(&connections)) != NULL) {
        conn->shutdown_after_flush = 0;
        admin_close(conn, "qmux stopped");
    }
}
