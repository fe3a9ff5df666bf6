/*
 * engine.c - the client connections of qmux-bench: non-blocking sockets driven by one
 * libevent loop, with framing of the responses read into one shared buffer.
 *
 * Responses are framed by their 8-byte header and counted, never held whole: only the
 * first RESPONSE_PREFIX bytes of each body are kept for validation, so a 1 GiB response
 * needs no more memory than a small one.
 */
#include "engine.h"

#include <arpa/inet.h>
#include <errno.h>
#include <event2/event.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "ipc.h"
#include "qwire.h"

/* Bytes read per read(2); large enough that a 1 GiB response costs about 1,000 calls. */
#define READ_CHUNK (1024 * 1024)

/* Body bytes kept per response for validation: a long atom or the start of an error. */
#define RESPONSE_PREFIX 64

/* Failure details printed before the rest are only counted. */
#define MAX_REPORTED 5

enum conn_state {
    CONN_NEW,
    CONN_CONNECTING,
    CONN_LOGIN,        /* handshake written, waiting for the capability byte */
    CONN_READY,        /* logged in, waiting for its group to start */
    CONN_WAITING,      /* a request is in flight */
    CONN_DONE,         /* sends no more requests; the socket stays open until bench_free */
    CONN_FAILED,       /* socket closed after an error */
};

struct bench_conn {
    struct bench_engine *engine;
    struct bench_group *group;
    int fd;
    enum conn_state state;
    struct event *read_event;
    struct event *write_event;

    /* Output not yet accepted by the socket. */
    const uint8_t *pending;
    size_t pending_length;

    /* Framing of the response being read. */
    uint8_t header[IPC_HEADER_SIZE];
    unsigned header_have;
    struct ipc_header head;
    uint64_t body_remaining;
    uint8_t body[RESPONSE_PREFIX];
    size_t body_have;

    uint64_t sent_ns;
    uint64_t requests_sent;
};

struct bench_engine {
    struct bench_run *run;
    struct event_base *base;
    struct sockaddr_in address;
    struct bench_conn *conns;
    int conn_count;

    int next_to_connect;
    int connecting;
    int logins_settled;          /* logged in or failed */
    int active;                  /* logged in and not yet done or failed */
    int started;

    uint64_t start_ns;           /* time 0 of the run, absolute */
    uint64_t warmup_end_ns;
    uint64_t end_ns;             /* UINT64_MAX when the run has no end time */
    uint64_t sent_total;
    uint64_t last_done_ns;       /* absolute */
    int reported;

    uint8_t *handshake;
    size_t handshake_length;
    struct event **group_timers;
    struct event *timeout_event;
    uint8_t *read_buffer;
};

uint64_t bench_now_ns(void)
{
    struct timespec now;

    clock_gettime(CLOCK_MONOTONIC, &now);
    return (uint64_t)now.tv_sec * 1000000000u + (uint64_t)now.tv_nsec;
}

long bench_raise_nofile(void)
{
    struct rlimit limit;

    if (getrlimit(RLIMIT_NOFILE, &limit) != 0)
        return -1;
    if (limit.rlim_cur < limit.rlim_max) {
        limit.rlim_cur = limit.rlim_max;
        setrlimit(RLIMIT_NOFILE, &limit);
        getrlimit(RLIMIT_NOFILE, &limit);
    }
    return (long)limit.rlim_cur;
}

static void report(struct bench_engine *engine, const char *format, ...)
    __attribute__((format(printf, 2, 3)));

static void report(struct bench_engine *engine, const char *format, ...)
{
    if (engine->reported++ >= MAX_REPORTED)
        return;

    va_list args;
    va_start(args, format);
    fprintf(stderr, "qmux-bench: ");
    vfprintf(stderr, format, args);
    fprintf(stderr, "\n");
    va_end(args);
}

static void stop_loop_when_finished(struct bench_engine *engine)
{
    if (engine->started && engine->active == 0)
        event_base_loopbreak(engine->base);
}

static void start_next_connects(struct bench_engine *engine);
static void all_logged_in(struct bench_engine *engine);

/* Ends a connection's part in the run; its socket stays open until bench_free. */
static void finish_conn(struct bench_conn *conn)
{
    struct bench_engine *engine = conn->engine;

    if (conn->state == CONN_DONE || conn->state == CONN_FAILED)
        return;
    conn->state = CONN_DONE;
    engine->active--;
    stop_loop_when_finished(engine);
}

static void fail_conn(struct bench_conn *conn, const char *reason)
{
    struct bench_engine *engine = conn->engine;
    enum conn_state previous = conn->state;

    if (previous == CONN_DONE || previous == CONN_FAILED)
        return;
    conn->state = CONN_FAILED;
    if (conn->read_event != NULL)
        event_del(conn->read_event);
    if (conn->write_event != NULL)
        event_del(conn->write_event);
    if (conn->fd >= 0)
        close(conn->fd);
    conn->fd = -1;

    if (previous == CONN_CONNECTING || previous == CONN_LOGIN || previous == CONN_NEW) {
        engine->run->connect_failures++;
        report(engine, "connection to %s:%d failed: %s", engine->run->host, engine->run->port,
               reason);
        engine->connecting--;
        engine->logins_settled++;
        if (engine->logins_settled == engine->conn_count)
            all_logged_in(engine);
        else
            start_next_connects(engine);
        return;
    }

    engine->run->disconnects++;
    report(engine, "connection lost: %s", reason);
    if (engine->started)
        engine->active--;
    stop_loop_when_finished(engine);
}

/* Writes what the socket accepts and waits for EV_WRITE for the rest. */
static void flush_pending(struct bench_conn *conn)
{
    while (conn->pending_length > 0) {
        ssize_t written = write(conn->fd, conn->pending, conn->pending_length);

        if (written < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK) {
                event_add(conn->write_event, NULL);
                return;
            }
            if (errno == EINTR)
                continue;
            fail_conn(conn, strerror(errno));
            return;
        }
        conn->pending += written;
        conn->pending_length -= (size_t)written;
    }
}

static void send_request(struct bench_conn *conn)
{
    struct bench_engine *engine = conn->engine;
    struct bench_run *run = engine->run;
    struct bench_group *group = conn->group;
    uint64_t now = bench_now_ns();

    if (now >= engine->end_ns ||
        (group->requests_per_client > 0 && conn->requests_sent >= group->requests_per_client) ||
        (run->total_requests > 0 && engine->sent_total >= run->total_requests)) {
        finish_conn(conn);
        return;
    }

    if (group->first_sent_ns == 0)
        group->first_sent_ns = now - engine->start_ns;
    conn->sent_ns = now;
    conn->requests_sent++;
    engine->sent_total++;
    conn->state = CONN_WAITING;
    conn->pending = group->message;
    conn->pending_length = group->message_length;
    flush_pending(conn);
}

static void check_response(struct bench_conn *conn)
{
    struct bench_engine *engine = conn->engine;
    struct bench_group *group = conn->group;
    uint64_t body_length = conn->head.length - IPC_HEADER_SIZE;

    if (conn->head.type != IPC_RESPONSE) {
        group->wrong++;
        report(engine, "received a %s message where a response was expected",
               ipc_msg_type_name(conn->head.type));
        return;
    }
    if (conn->head.compressed)
        return;   /* not expected on loopback; counted without validation */

    if (conn->body_have >= 1 && conn->body[0] == 0x80) {
        char text[RESPONSE_PREFIX];
        size_t n = conn->body_have - 1 < sizeof(text) - 1 ? conn->body_have - 1
                                                          : sizeof(text) - 1;

        memcpy(text, conn->body + 1, n);
        text[n] = '\0';
        group->errors++;
        report(engine, "error response to \"%s\": '%s", group->expr, text);
        return;
    }
    if (!group->has_expected_long)
        return;

    int64_t value = 0;
    char text[RESPONSE_PREFIX];
    size_t length = body_length < conn->body_have ? (size_t)body_length : conn->body_have;
    int status = qwire_read_long(conn->body, length, conn->head.little_endian, &value, text,
                                 sizeof(text));
    if (status != QWIRE_LONG_OK || value != group->expected_long) {
        group->wrong++;
        report(engine, "\"%s\" returned something other than the long %lld", group->expr,
               (long long)group->expected_long);
    }
}

static void response_done(struct bench_conn *conn)
{
    struct bench_engine *engine = conn->engine;
    struct bench_group *group = conn->group;
    uint64_t now = bench_now_ns();

    conn->header_have = 0;
    if (conn->state != CONN_WAITING) {
        group->wrong++;
        report(engine, "received a message with no request in flight");
        return;
    }

    check_response(conn);
    if (conn->sent_ns >= engine->warmup_end_ns) {
        hist_record(&group->latency, now - conn->sent_ns);
        group->bytes += conn->head.length;
    }
    if (now >= engine->warmup_end_ns && now <= engine->end_ns)
        group->completed++;
    group->last_done_ns = now - engine->start_ns;
    if (now > engine->last_done_ns)
        engine->last_done_ns = now;
    send_request(conn);
}

/* Frames the bytes read from conn's socket. */
static void consume(struct bench_conn *conn, const uint8_t *data, size_t length)
{
    while (length > 0 && conn->state != CONN_FAILED) {
        if (conn->header_have < IPC_HEADER_SIZE) {
            size_t take = IPC_HEADER_SIZE - conn->header_have;

            if (take > length)
                take = length;
            memcpy(conn->header + conn->header_have, data, take);
            conn->header_have += (unsigned)take;
            data += take;
            length -= take;
            if (conn->header_have < IPC_HEADER_SIZE)
                return;

            int status = ipc_header_parse(conn->header, &conn->head);
            if (status != IPC_OK) {
                conn->group->wrong++;
                fail_conn(conn, ipc_status_text(status));
                return;
            }
            conn->body_remaining = conn->head.length - IPC_HEADER_SIZE;
            conn->body_have = 0;
            continue;
        }

        size_t take = conn->body_remaining < length ? (size_t)conn->body_remaining : length;
        if (conn->body_have < RESPONSE_PREFIX) {
            size_t keep = RESPONSE_PREFIX - conn->body_have;

            if (keep > take)
                keep = take;
            memcpy(conn->body + conn->body_have, data, keep);
            conn->body_have += keep;
        }
        conn->body_remaining -= take;
        data += take;
        length -= take;
        if (conn->body_remaining == 0)
            response_done(conn);
    }
}

static void logged_in(struct bench_conn *conn)
{
    struct bench_engine *engine = conn->engine;

    conn->state = CONN_READY;
    engine->run->connected++;
    engine->connecting--;
    engine->logins_settled++;
    if (engine->logins_settled == engine->conn_count)
        all_logged_in(engine);
    else
        start_next_connects(engine);
}

static void read_cb(evutil_socket_t fd, short what, void *arg)
{
    struct bench_conn *conn = arg;
    struct bench_engine *engine = conn->engine;

    (void)what;
    if (conn->state == CONN_LOGIN) {
        uint8_t reply;
        ssize_t n = read(fd, &reply, 1);

        if (n == 0)
            fail_conn(conn, "the server closed the connection during the login");
        else if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
            fail_conn(conn, strerror(errno));
        else if (n == 1)
            logged_in(conn);
        return;
    }

    ssize_t n = read(fd, engine->read_buffer, READ_CHUNK);
    if (n == 0) {
        fail_conn(conn, "the server closed the connection");
        return;
    }
    if (n < 0) {
        if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
            fail_conn(conn, strerror(errno));
        return;
    }
    consume(conn, engine->read_buffer, (size_t)n);
}

static void write_cb(evutil_socket_t fd, short what, void *arg)
{
    struct bench_conn *conn = arg;

    (void)what;
    if (conn->state == CONN_CONNECTING) {
        int error = 0;
        socklen_t length = sizeof(error);

        if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &error, &length) != 0)
            error = errno;
        if (error != 0) {
            fail_conn(conn, strerror(error));
            return;
        }
        conn->state = CONN_LOGIN;
        conn->pending = conn->engine->handshake;
        conn->pending_length = conn->engine->handshake_length;
        event_add(conn->read_event, NULL);
    }
    flush_pending(conn);
}

static void start_connect(struct bench_conn *conn)
{
    struct bench_engine *engine = conn->engine;
    int one = 1;

    engine->connecting++;
    conn->state = CONN_CONNECTING;
    conn->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (conn->fd < 0) {
        conn->state = CONN_NEW;
        fail_conn(conn, strerror(errno));
        return;
    }
    setsockopt(conn->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    conn->read_event = event_new(engine->base, conn->fd, EV_READ | EV_PERSIST, read_cb, conn);
    conn->write_event = event_new(engine->base, conn->fd, EV_WRITE, write_cb, conn);
    if (conn->read_event == NULL || conn->write_event == NULL) {
        fail_conn(conn, "out of memory");
        return;
    }

    if (connect(conn->fd, (struct sockaddr *)&engine->address, sizeof(engine->address)) != 0 &&
        errno != EINPROGRESS) {
        fail_conn(conn, strerror(errno));
        return;
    }
    event_add(conn->write_event, NULL);
}

static void start_next_connects(struct bench_engine *engine)
{
    while (engine->connecting < engine->run->max_connecting &&
           engine->next_to_connect < engine->conn_count)
        start_connect(&engine->conns[engine->next_to_connect++]);
}

static void start_group(struct bench_engine *engine, struct bench_group *group)
{
    for (int i = 0; i < engine->conn_count; i++) {
        struct bench_conn *conn = &engine->conns[i];

        if (conn->group == group && conn->state == CONN_READY)
            send_request(conn);
    }
}

static void group_timer_cb(evutil_socket_t fd, short what, void *arg)
{
    struct bench_group *group = arg;

    (void)fd;
    (void)what;
    start_group(group->engine, group);
}

static void timeout_cb(evutil_socket_t fd, short what, void *arg)
{
    struct bench_engine *engine = arg;

    (void)fd;
    (void)what;
    engine->run->timed_out = 1;
    report(engine, "the run timed out; %d of %d connections still active", engine->active,
           engine->conn_count);
    event_base_loopbreak(engine->base);
}

static void all_logged_in(struct bench_engine *engine)
{
    struct bench_run *run = engine->run;

    if (run->idle) {
        event_base_loopbreak(engine->base);
        return;
    }

    engine->started = 1;
    for (int i = 0; i < engine->conn_count; i++)
        if (engine->conns[i].state == CONN_READY)
            engine->active++;
    engine->start_ns = bench_now_ns();
    engine->warmup_end_ns = engine->start_ns + run->warmup_ns;
    engine->end_ns = run->duration_ns > 0 ? engine->warmup_end_ns + run->duration_ns
                                          : UINT64_MAX;
    stop_loop_when_finished(engine);

    for (int g = 0; g < run->group_count; g++) {
        struct bench_group *group = &run->groups[g];

        if (group->delay_ns == 0) {
            start_group(engine, group);
            continue;
        }
        struct timeval delay = {
            .tv_sec = (time_t)(group->delay_ns / 1000000000u),
            .tv_usec = (suseconds_t)(group->delay_ns % 1000000000u / 1000u),
        };
        engine->group_timers[g] = evtimer_new(engine->base, group_timer_cb, group);
        if (engine->group_timers[g] == NULL) {
            report(engine, "out of memory; starting group %d at once", g + 1);
            start_group(engine, group);
            continue;
        }
        evtimer_add(engine->group_timers[g], &delay);
    }
}

static int prepare(struct bench_engine *engine)
{
    struct bench_run *run = engine->run;

    memset(&engine->address, 0, sizeof(engine->address));
    engine->address.sin_family = AF_INET;
    engine->address.sin_port = htons((uint16_t)run->port);
    if (inet_pton(AF_INET, run->host, &engine->address.sin_addr) != 1) {
        fprintf(stderr, "qmux-bench: invalid host \"%s\": expected a numeric IPv4 address\n",
                run->host);
        return -1;
    }

    for (int g = 0; g < run->group_count; g++)
        engine->conn_count += run->groups[g].clients;

    engine->base = event_base_new();
    engine->conns = calloc((size_t)engine->conn_count, sizeof(*engine->conns));
    engine->group_timers = calloc((size_t)run->group_count, sizeof(*engine->group_timers));
    engine->read_buffer = malloc(READ_CHUNK);
    engine->handshake = qwire_build_handshake(run->credentials, run->capability,
                                              &engine->handshake_length);
    if (engine->base == NULL || engine->conns == NULL || engine->group_timers == NULL ||
        engine->read_buffer == NULL || engine->handshake == NULL) {
        fprintf(stderr, "qmux-bench: out of memory for %d connections\n", engine->conn_count);
        return -1;
    }

    int index = 0;
    for (int g = 0; g < run->group_count; g++) {
        struct bench_group *group = &run->groups[g];

        hist_init(&group->latency);
        group->engine = engine;
        group->message = qwire_build_query(IPC_SYNC, group->expr, &group->message_length);
        if (group->message == NULL) {
            fprintf(stderr, "qmux-bench: cannot build the request \"%s\"\n", group->expr);
            return -1;
        }
        for (int i = 0; i < group->clients; i++) {
            struct bench_conn *conn = &engine->conns[index++];

            conn->engine = engine;
            conn->group = group;
            conn->fd = -1;
        }
    }
    return 0;
}

int bench_run(struct bench_run *run)
{
    struct bench_engine *engine = calloc(1, sizeof(*engine));

    if (engine == NULL)
        return -1;
    run->engine = engine;
    engine->run = run;
    if (prepare(engine) != 0)
        return -1;

    if (run->max_connecting <= 0)
        run->max_connecting = 64;
    if (run->timeout_ns > 0) {
        struct timeval timeout = {
            .tv_sec = (time_t)(run->timeout_ns / 1000000000u),
            .tv_usec = (suseconds_t)(run->timeout_ns % 1000000000u / 1000u),
        };
        engine->timeout_event = evtimer_new(engine->base, timeout_cb, engine);
        if (engine->timeout_event != NULL)
            evtimer_add(engine->timeout_event, &timeout);
    }

    if (engine->conn_count == 0)
        all_logged_in(engine);
    else
        start_next_connects(engine);
    if (!engine->started || engine->active > 0)
        event_base_dispatch(engine->base);

    if (run->duration_ns > 0)
        run->measure_ns = run->duration_ns;
    else if (engine->last_done_ns > engine->warmup_end_ns)
        run->measure_ns = engine->last_done_ns - engine->warmup_end_ns;
    return 0;
}

void bench_free(struct bench_run *run)
{
    struct bench_engine *engine = run->engine;

    if (engine == NULL)
        return;
    for (int i = 0; engine->conns != NULL && i < engine->conn_count; i++) {
        struct bench_conn *conn = &engine->conns[i];

        if (conn->read_event != NULL)
            event_free(conn->read_event);
        if (conn->write_event != NULL)
            event_free(conn->write_event);
        if (conn->fd >= 0)
            close(conn->fd);
    }
    for (int g = 0; g < run->group_count; g++) {
        if (engine->group_timers != NULL && engine->group_timers[g] != NULL)
            event_free(engine->group_timers[g]);
        free(run->groups[g].message);
        run->groups[g].message = NULL;
    }
    if (engine->timeout_event != NULL)
        event_free(engine->timeout_event);
    if (engine->base != NULL)
        event_base_free(engine->base);
    free(engine->group_timers);
    free(engine->conns);
    free(engine->read_buffer);
    free(engine->handshake);
    free(engine);
    run->engine = NULL;
}
