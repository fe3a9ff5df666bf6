/*
 * qload.c - qmux-client load: many concurrent kdb+ clients on one libevent loop, each
 * running a closed loop of queries whose results are unique to (client, request), so a
 * response delivered to the wrong client or out of order is detected.
 *
 * Request r of client c uses the key K = c * 1000000 + r.
 *   --mode sync        sends the sync query "K+0" and expects the long K.
 *   --mode async-sync  sends the async "vC:K" and then the sync "vC" (C = c) and expects K,
 *                      which holds only if both messages reach the same upstream session
 *                      in order.
 *   --vector-items N   makes every --vector-every-th sync request "K+til N" instead, whose
 *                      result is the long vector K .. K+N-1, so a response of 8 N bytes is
 *                      still unique to (client, request).
 *
 * By default a client stops at its first failure. With --keep-going, for fault-injection
 * tests, a client counts the documented outcomes of an upstream failure and goes on: a
 * kdb+ error response is counted by its kind, and a closed connection is counted and
 * replaced by a new one, which continues with the next request. A wrong answer, a
 * response later than --timeout-ms and any other error still fail the run.
 */
#include "qload.h"

#include "ipc.h"
#include "qwire.h"

#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>

#define KEY_CLIENT_STRIDE 1000000

/* Failure details printed to stderr before the rest are only counted. */
#define MAX_REPORTED_FAILURES 10

/* Largest response accepted. Expected responses are long atoms, short errors and long
 * vectors of at most MAX_VECTOR_ITEMS items (8 bytes each plus 14 bytes of framing). */
#define MAX_RESPONSE_LENGTH (1 << 20)
#define MAX_VECTOR_ITEMS 100000

enum load_mode {
    MODE_SYNC,
    MODE_ASYNC_SYNC,
};

/* Error texts that qmux documents for an upstream failure, counted by kind in --keep-going. */
enum error_kind {
    ERROR_LOST,          /* upstream connection lost */
    ERROR_UNAVAILABLE,   /* upstream unavailable */
    ERROR_QUERY_TIMEOUT, /* query timeout */
    ERROR_QUEUE_TIMEOUT, /* queue timeout */
    ERROR_OTHER,
    ERROR_KIND_COUNT,
};

static const char *const error_prefixes[ERROR_OTHER] = {
    [ERROR_LOST] = "upstream connection lost",
    [ERROR_UNAVAILABLE] = "upstream unavailable",
    [ERROR_QUERY_TIMEOUT] = "query timeout",
    [ERROR_QUEUE_TIMEOUT] = "queue timeout",
};

enum client_state {
    CLIENT_CONNECTING,
    CLIENT_HANDSHAKE,
    CLIENT_WAITING,    /* a sync request is in flight */
    CLIENT_FINISHED,   /* every request got a response, or the client gave up */
};

struct load_run;

struct load_client {
    struct load_run *run;
    int number;
    enum client_state state;
    struct bufferevent *bev;
    struct event *timer;
    int next_request;
    int64_t expected;
    int expected_items;  /* items of the expected long vector; 0 for a long atom */
    uint64_t sent_at_us;
};

struct load_run {
    /* Options. */
    const char *host;
    const char *port;
    const char *credentials;
    int capability;
    int clients;
    int requests;
    enum load_mode mode;
    int timeout_ms;
    int duration_ms;     /* 0: each client sends exactly `requests` requests */
    int keep_going;
    int vector_items;    /* 0: every sync request expects a long atom */
    int vector_every;
    uint64_t stop_at_us; /* with duration_ms, no request is sent after this time */

    struct event_base *base;
    struct sockaddr_storage address;
    socklen_t address_length;
    struct load_client *client_table;
    int unfinished;

    /* Counters printed in the summary. */
    uint64_t ok;
    uint64_t wrong;
    uint64_t errors;
    uint64_t timeouts;
    uint64_t connect_failures;
    uint64_t disconnects;
    uint64_t sent;
    uint64_t error_counts[ERROR_KIND_COUNT];
    uint64_t closed_partial;  /* closed after part of the response had arrived */
    uint64_t closed_empty;    /* closed before any byte of the response arrived */
    uint64_t reconnects;
    uint64_t reported;
    uint32_t *latencies_us;
    size_t latency_count;
    size_t latency_capacity;
};

static uint64_t now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

static void report(struct load_client *client, const char *format, ...)
    __attribute__((format(printf, 2, 3)));

/* Prints one failure detail, up to MAX_REPORTED_FAILURES per run. */
static void report(struct load_client *client, const char *format, ...)
{
    struct load_run *run = client->run;
    if (run->reported++ >= MAX_REPORTED_FAILURES)
        return;

    char text[512];
    va_list args;
    va_start(args, format);
    vsnprintf(text, sizeof(text), format, args);
    va_end(args);
    fprintf(stderr, "qmux-client load: client %d request %d: %s\n", client->number,
            client->next_request, text);
}

static void arm_timer(struct load_client *client)
{
    struct timeval timeout = {
        .tv_sec = client->run->timeout_ms / 1000,
        .tv_usec = (client->run->timeout_ms % 1000) * 1000,
    };
    evtimer_add(client->timer, &timeout);
}

/* Closes the client's connection and stops its loop; the event loop exits after the last. */
static void finish_client(struct load_client *client)
{
    if (client->state == CLIENT_FINISHED)
        return;
    client->state = CLIENT_FINISHED;
    evtimer_del(client->timer);
    if (client->bev != NULL) {
        bufferevent_free(client->bev);
        client->bev = NULL;
    }
    if (--client->run->unfinished == 0)
        event_base_loopbreak(client->run->base);
}

static int start_connect(struct load_client *client);

/* In --keep-going, replaces a connection that the server closed by a new one, which
 * continues with the next request. */
static void reconnect_client(struct load_client *client)
{
    struct load_run *run = client->run;

    evtimer_del(client->timer);
    bufferevent_free(client->bev);
    client->bev = NULL;
    client->next_request++;
    if (client->next_request >= run->requests ||
        (run->duration_ms > 0 && now_us() >= run->stop_at_us)) {
        finish_client(client);
        return;
    }
    run->reconnects++;
    if (start_connect(client) < 0) {
        report(client, "reconnecting failed");
        run->connect_failures++;
        finish_client(client);
    }
}

static int write_query(struct load_client *client, int msg_type, const char *expr)
{
    size_t length;
    uint8_t *message = qwire_build_query(msg_type, expr, &length);
    if (message == NULL)
        return -1;
    int rc = bufferevent_write(client->bev, message, length);
    free(message);
    return rc;
}

/* Sends the client's next request, or finishes the client after the last response. */
static void send_next(struct load_client *client)
{
    struct load_run *run = client->run;
    if (client->next_request >= run->requests ||
        (run->duration_ms > 0 && now_us() >= run->stop_at_us)) {
        finish_client(client);
        return;
    }

    char expr[64];
    client->expected = (int64_t)client->number * KEY_CLIENT_STRIDE + client->next_request;
    client->expected_items = 0;
    client->sent_at_us = now_us();
    run->sent++;
    int rc = 0;
    if (run->vector_items > 0 && (client->next_request + 1) % run->vector_every == 0) {
        client->expected_items = run->vector_items;
        snprintf(expr, sizeof(expr), "%" PRId64 "+til %d", client->expected, run->vector_items);
    } else if (run->mode == MODE_ASYNC_SYNC) {
        snprintf(expr, sizeof(expr), "v%d:%" PRId64, client->number, client->expected);
        rc = write_query(client, IPC_ASYNC, expr);
        snprintf(expr, sizeof(expr), "v%d", client->number);
    } else {
        snprintf(expr, sizeof(expr), "%" PRId64 "+0", client->expected);
    }
    if (rc == 0)
        rc = write_query(client, IPC_SYNC, expr);
    if (rc < 0) {
        report(client, "queueing the request failed");
        run->disconnects++;
        finish_client(client);
        return;
    }
    client->state = CLIENT_WAITING;
    arm_timer(client);
}

static void record_latency(struct load_client *client)
{
    struct load_run *run = client->run;
    uint64_t elapsed = now_us() - client->sent_at_us;
    if (run->latency_count == run->latency_capacity) {
        /* Grows on demand: with --duration-ms the number of responses is not known. */
        size_t capacity = run->latency_capacity ? 2 * run->latency_capacity : 4096;
        uint32_t *grown = realloc(run->latencies_us, capacity * sizeof(uint32_t));
        if (grown == NULL)
            return;
        run->latencies_us = grown;
        run->latency_capacity = capacity;
    }
    run->latencies_us[run->latency_count++] = elapsed > UINT32_MAX ? UINT32_MAX
                                                                   : (uint32_t)elapsed;
}

static enum error_kind classify_error(const char *text)
{
    for (int kind = 0; kind < ERROR_OTHER; kind++) {
        if (strncmp(text, error_prefixes[kind], strlen(error_prefixes[kind])) == 0)
            return (enum error_kind)kind;
    }
    return ERROR_OTHER;
}

/* Counts an error response: by kind in --keep-going, where only ERROR_OTHER is reported,
 * and as a failure otherwise. */
static void count_error(struct load_client *client, const char *text)
{
    struct load_run *run = client->run;

    if (!run->keep_going) {
        run->errors++;
        report(client, "error response '%s", text);
        return;
    }
    enum error_kind kind = classify_error(text);
    run->error_counts[kind]++;
    if (kind == ERROR_OTHER)
        report(client, "error response '%s", text);
}

/* Checks a response against the expected long vector K .. K+N-1. */
static void check_vector(struct load_client *client, const uint8_t *body, size_t length,
                         int little_endian)
{
    struct load_run *run = client->run;
    int64_t count = client->expected_items;

    if (length >= 1 && (int8_t)body[0] == -128) {
        char text[256];
        size_t n = strnlen((const char *)body + 1, length - 1);
        if (n >= sizeof(text))
            n = sizeof(text) - 1;
        memcpy(text, body + 1, n);
        text[n] = '\0';
        count_error(client, text);
        return;
    }
    if (length != 6 + 8 * (size_t)count || body[0] != 7 ||
        ipc_read_u32(body + 2, little_endian) != (uint32_t)count) {
        run->wrong++;
        report(client, "expected a long vector of %" PRId64 " items, received type %d, %zu "
               "bytes", count, length > 0 ? (int8_t)body[0] : 0, length);
        return;
    }
    for (int64_t i = 0; i < count; i++) {
        int64_t item = (int64_t)ipc_read_u64(body + 6 + 8 * i, little_endian);
        if (item != client->expected + i) {
            run->wrong++;
            report(client, "item %" PRId64 " of the vector: expected %" PRId64 ", received %"
                   PRId64, i, client->expected + i, item);
            return;
        }
    }
    run->ok++;
}

/* Checks one response body against the expected key and counts the outcome. */
static void check_response(struct load_client *client, const uint8_t *body, size_t length,
                           int little_endian)
{
    struct load_run *run = client->run;
    int64_t value = 0;
    char text[256];

    record_latency(client);
    if (client->expected_items > 0) {
        check_vector(client, body, length, little_endian);
        return;
    }
    switch (qwire_read_long(body, length, little_endian, &value, text, sizeof(text))) {
    case QWIRE_LONG_OK:
        if (value == client->expected) {
            run->ok++;
        } else {
            run->wrong++;
            report(client, "expected %" PRId64 ", received %" PRId64, client->expected, value);
        }
        break;
    case QWIRE_LONG_ERROR:
        count_error(client, text);
        break;
    default:
        run->wrong++;
        report(client, "expected the long %" PRId64 ", received an object of type %d",
               client->expected, length > 0 ? (int8_t)body[0] : 0);
        break;
    }
}

/*
 * Handles one complete message at the front of input. Returns 1 when one was consumed,
 * 0 when more bytes are needed, -1 when the client was finished because of it.
 */
static int process_message(struct load_client *client, struct evbuffer *input)
{
    struct load_run *run = client->run;
    uint8_t raw[IPC_HEADER_SIZE];
    struct ipc_header header;

    if (evbuffer_get_length(input) < IPC_HEADER_SIZE)
        return 0;
    evbuffer_copyout(input, raw, sizeof(raw));
    int status = ipc_header_parse(raw, &header);
    if (status != IPC_OK || header.length > MAX_RESPONSE_LENGTH) {
        report(client, "invalid message header from the server: %s",
               status != IPC_OK ? ipc_status_text(status) : "length above 1 MiB");
        run->wrong++;
        finish_client(client);
        return -1;
    }
    if (evbuffer_get_length(input) < header.length)
        return 0;

    uint8_t *message = malloc(header.length);
    if (message == NULL) {
        report(client, "out of memory");
        run->errors++;
        finish_client(client);
        return -1;
    }
    evbuffer_remove(input, message, header.length);

    if (header.compressed) {
        char error[200];
        size_t plain_length;
        uint8_t *plain = qwire_decompress(message, header.length, &plain_length, error,
                                          sizeof(error));
        free(message);
        if (plain == NULL) {
            report(client, "invalid compressed message: %s", error);
            run->wrong++;
            finish_client(client);
            return -1;
        }
        message = plain;
        header.length = plain_length;
    }

    if (header.type != IPC_RESPONSE || client->state != CLIENT_WAITING) {
        report(client, "unexpected %s message from the server",
               ipc_msg_type_name(header.type));
        run->wrong++;
        free(message);
        finish_client(client);
        return -1;
    }

    evtimer_del(client->timer);
    check_response(client, message + IPC_HEADER_SIZE, header.length - IPC_HEADER_SIZE,
                   header.little_endian);
    free(message);
    client->next_request++;
    send_next(client);
    return client->state == CLIENT_FINISHED ? -1 : 1;
}

static void on_read(struct bufferevent *bev, void *arg)
{
    struct load_client *client = arg;
    struct evbuffer *input = bufferevent_get_input(bev);

    if (client->state == CLIENT_HANDSHAKE) {
        if (evbuffer_get_length(input) < 1)
            return;
        evbuffer_drain(input, 1);
        evtimer_del(client->timer);
        send_next(client);
    }
    while (client->state == CLIENT_WAITING && process_message(client, input) > 0)
        continue;
}

static void on_event(struct bufferevent *bev, short events, void *arg)
{
    struct load_client *client = arg;
    struct load_run *run = client->run;

    if (events & BEV_EVENT_CONNECTED) {
        size_t length;
        uint8_t *login = qwire_build_handshake(run->credentials, run->capability, &length);
        int one = 1;
        setsockopt(bufferevent_getfd(bev), IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        if (login == NULL || bufferevent_write(bev, login, length) < 0) {
            free(login);
            report(client, "sending the handshake failed");
            run->connect_failures++;
            finish_client(client);
            return;
        }
        free(login);
        client->state = CLIENT_HANDSHAKE;
        return;
    }
    if (!(events & (BEV_EVENT_EOF | BEV_EVENT_ERROR)))
        return;

    const char *cause = (events & BEV_EVENT_EOF) ? "closed by the server"
                                                 : evutil_socket_error_to_string(EVUTIL_SOCKET_ERROR());
    switch (client->state) {
    case CLIENT_CONNECTING:
        report(client, "connect failed: %s", cause);
        run->connect_failures++;
        break;
    case CLIENT_HANDSHAKE:
        report(client, "'access: handshake failed: connection %s", cause);
        run->connect_failures++;
        break;
    case CLIENT_WAITING:
        if (run->keep_going) {
            if (evbuffer_get_length(bufferevent_get_input(bev)) > 0) {
                run->closed_partial++;
            } else {
                run->closed_empty++;
                report(client, "connection %s before any byte of the response", cause);
            }
            reconnect_client(client);
            return;
        }
        report(client, "connection %s while waiting for a response", cause);
        run->disconnects++;
        break;
    case CLIENT_FINISHED:
        return;
    }
    finish_client(client);
}

static void on_timeout(evutil_socket_t fd, short events, void *arg)
{
    struct load_client *client = arg;
    struct load_run *run = client->run;
    (void)fd;
    (void)events;

    if (client->state == CLIENT_WAITING) {
        report(client, "no response within %d ms", run->timeout_ms);
        run->timeouts++;
    } else {
        report(client, "connect and handshake took longer than %d ms", run->timeout_ms);
        run->connect_failures++;
    }
    finish_client(client);
}

/* Opens the client's connection; the handshake follows in on_event. Returns -1 when the
 * bufferevent cannot be created. */
static int start_connect(struct load_client *client)
{
    struct load_run *run = client->run;

    client->state = CLIENT_CONNECTING;
    client->bev = bufferevent_socket_new(run->base, -1, BEV_OPT_CLOSE_ON_FREE);
    if (client->bev == NULL)
        return -1;
    bufferevent_setcb(client->bev, on_read, NULL, on_event, client);
    bufferevent_enable(client->bev, EV_READ | EV_WRITE);
    arm_timer(client);
    if (bufferevent_socket_connect(client->bev, (struct sockaddr *)&run->address,
                                   (int)run->address_length) < 0) {
        report(client, "connect failed: %s", strerror(errno));
        run->connect_failures++;
        finish_client(client);
    }
    return 0;
}

static int start_client(struct load_run *run, struct load_client *client, int number)
{
    client->run = run;
    client->number = number;
    client->timer = evtimer_new(run->base, on_timeout, client);
    if (client->timer == NULL)
        return -1;
    run->unfinished++;
    return start_connect(client);
}

/* Raises the open-file limit to its hard limit, since each client needs a descriptor. */
static void raise_file_limit(int clients)
{
    struct rlimit limit;
    if (getrlimit(RLIMIT_NOFILE, &limit) < 0)
        return;
    limit.rlim_cur = limit.rlim_max;
    if (setrlimit(RLIMIT_NOFILE, &limit) < 0)
        fprintf(stderr, "qmux-client load: raising RLIMIT_NOFILE to %llu failed: %s\n",
                (unsigned long long)limit.rlim_max, strerror(errno));
    if (getrlimit(RLIMIT_NOFILE, &limit) == 0 && limit.rlim_cur != RLIM_INFINITY &&
        limit.rlim_cur < (rlim_t)clients + 16)
        fprintf(stderr, "qmux-client load: warning: the open-file limit %llu is below the "
                        "%d clients plus a reserve; raise the hard limit (ulimit -Hn)\n",
                (unsigned long long)limit.rlim_cur, clients);
}

static int compare_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a;
    uint32_t y = *(const uint32_t *)b;
    return (x > y) - (x < y);
}

/* Returns the nearest-rank percentile of sorted values (0 when there are none). */
static uint32_t percentile(const uint32_t *sorted, size_t count, unsigned percent)
{
    if (count == 0)
        return 0;
    size_t rank = (count * percent + 99) / 100;
    return sorted[rank > 0 ? rank - 1 : 0];
}

static void print_summary(struct load_run *run)
{
    qsort(run->latencies_us, run->latency_count, sizeof(uint32_t), compare_u32);
    uint32_t max = run->latency_count ? run->latencies_us[run->latency_count - 1] : 0;
    /* With --duration-ms, requests= is the number sent rather than the number planned. */
    uint64_t requests = run->duration_ms > 0 ? run->sent
                                             : (uint64_t)run->clients * (uint64_t)run->requests;
    printf("clients=%d requests=%" PRIu64 " ok=%" PRIu64 " wrong=%" PRIu64 " errors=%" PRIu64
           " timeouts=%" PRIu64 " connect_failures=%" PRIu64 " disconnects=%" PRIu64
           " p50_us=%" PRIu32 " p99_us=%" PRIu32 " max_us=%" PRIu32,
           run->clients, requests, run->ok, run->wrong,
           run->errors, run->timeouts, run->connect_failures, run->disconnects,
           percentile(run->latencies_us, run->latency_count, 50),
           percentile(run->latencies_us, run->latency_count, 99), max);
    if (run->keep_going)
        printf(" lost=%" PRIu64 " unavailable=%" PRIu64 " query_timeouts=%" PRIu64
               " queue_timeouts=%" PRIu64 " other_errors=%" PRIu64 " closed_partial=%" PRIu64
               " closed_empty=%" PRIu64 " reconnects=%" PRIu64,
               run->error_counts[ERROR_LOST], run->error_counts[ERROR_UNAVAILABLE],
               run->error_counts[ERROR_QUERY_TIMEOUT], run->error_counts[ERROR_QUEUE_TIMEOUT],
               run->error_counts[ERROR_OTHER], run->closed_partial, run->closed_empty,
               run->reconnects);
    printf("\n");
    fflush(stdout);
}

static void load_usage(FILE *stream)
{
    fprintf(stream,
            "usage: qmux-client load [-H host] -p PORT -n CLIENTS -r REQUESTS\n"
            "                        [--mode sync|async-sync] [--timeout-ms T]\n"
            "                        [--duration-ms D] [--keep-going]\n"
            "                        [--vector-items N [--vector-every M]]\n"
            "                        [-u user:password] [-c capability]\n"
            "Runs CLIENTS concurrent connections, each sending REQUESTS queries one at a time\n"
            "and checking that each answer is the long unique to (client, request).\n"
            "  -n CLIENTS        concurrent connections, 1..100000\n"
            "  -r REQUESTS       requests per connection, 1..%d; optional with\n"
            "                    --duration-ms (default %d)\n"
            "  --mode sync       query \"K+0\", expect K (default)\n"
            "  --mode async-sync async \"vC:K\" then sync \"vC\", expect K\n"
            "  --timeout-ms T    limit for connect plus handshake and for each response\n"
            "                    (default 10000)\n"
            "  --duration-ms D   send no request after D milliseconds; requests= in the\n"
            "                    summary is then the number sent\n"
            "  --keep-going      count the errors \"upstream connection lost\", \"upstream\n"
            "                    unavailable\", \"query timeout\" and \"queue timeout\" and go on;\n"
            "                    reconnect when the server closes a connection, counting\n"
            "                    whether part of the response had arrived\n"
            "  --vector-items N  every M-th request is the sync \"K+til N\", expecting the long\n"
            "                    vector K .. K+N-1; N is 1..%d\n"
            "  --vector-every M  M for --vector-items, 1..%d (default 1)\n"
            "Prints one summary line; exits 1 on any wrong answer, error, timeout, failed\n"
            "connect or lost connection. With --keep-going, the counted errors and closed\n"
            "connections do not change the exit status.\n", KEY_CLIENT_STRIDE,
            KEY_CLIENT_STRIDE, MAX_VECTOR_ITEMS, KEY_CLIENT_STRIDE);
}

static int parse_positive(const char *text, int max, const char *what, int *value)
{
    char *end;
    errno = 0;
    long parsed = strtol(text, &end, 10);
    if (errno != 0 || end == text || *end != '\0' || parsed < 1 || parsed > max) {
        fprintf(stderr, "qmux-client load: invalid %s \"%s\": expected an integer from 1 to %d\n",
                what, text, max);
        return -1;
    }
    *value = (int)parsed;
    return 0;
}

static int parse_options(struct load_run *run, int argc, char **argv)
{
    static const struct option long_options[] = {
        { "mode", required_argument, NULL, 'm' },
        { "timeout-ms", required_argument, NULL, 't' },
        { "duration-ms", required_argument, NULL, 'D' },
        { "keep-going", no_argument, NULL, 'k' },
        { "vector-items", required_argument, NULL, 'V' },
        { "vector-every", required_argument, NULL, 'E' },
        { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 },
    };
    int opt;

    while ((opt = getopt_long(argc, argv, "H:p:n:r:u:c:h", long_options, NULL)) != -1) {
        switch (opt) {
        case 'H':
            run->host = optarg;
            break;
        case 'p': {
            int port;
            if (parse_positive(optarg, 65535, "port", &port) < 0)
                return -1;
            run->port = optarg;
            break;
        }
        case 'n':
            if (parse_positive(optarg, 100000, "client count", &run->clients) < 0)
                return -1;
            break;
        case 'r':
            if (parse_positive(optarg, KEY_CLIENT_STRIDE, "request count", &run->requests) < 0)
                return -1;
            break;
        case 'u':
            run->credentials = optarg;
            break;
        case 'c':
            if (parse_positive(optarg, 255, "capability", &run->capability) < 0)
                return -1;
            break;
        case 'm':
            if (strcmp(optarg, "sync") == 0) {
                run->mode = MODE_SYNC;
            } else if (strcmp(optarg, "async-sync") == 0) {
                run->mode = MODE_ASYNC_SYNC;
            } else {
                fprintf(stderr, "qmux-client load: invalid --mode \"%s\": expected sync or "
                                "async-sync\n", optarg);
                return -1;
            }
            break;
        case 't':
            if (parse_positive(optarg, INT_MAX, "--timeout-ms", &run->timeout_ms) < 0)
                return -1;
            break;
        case 'D':
            if (parse_positive(optarg, INT_MAX, "--duration-ms", &run->duration_ms) < 0)
                return -1;
            break;
        case 'k':
            run->keep_going = 1;
            break;
        case 'V':
            if (parse_positive(optarg, MAX_VECTOR_ITEMS, "--vector-items", &run->vector_items) < 0)
                return -1;
            break;
        case 'E':
            if (parse_positive(optarg, KEY_CLIENT_STRIDE, "--vector-every", &run->vector_every) < 0)
                return -1;
            break;
        case 'h':
            load_usage(stdout);
            exit(0);
        default:
            load_usage(stderr);
            return -1;
        }
    }
    if (run->requests == 0 && run->duration_ms > 0)
        run->requests = KEY_CLIENT_STRIDE;
    if (run->port == NULL || run->clients == 0 || run->requests == 0 || optind != argc) {
        fprintf(stderr, "qmux-client load: %s\n",
                optind != argc ? "unexpected argument" : "-p, -n and -r are required");
        load_usage(stderr);
        return -1;
    }
    if (run->vector_every > 0 && run->vector_items == 0) {
        fprintf(stderr, "qmux-client load: --vector-every needs --vector-items\n");
        return -1;
    }
    if (run->vector_every == 0)
        run->vector_every = 1;
    return 0;
}

static int resolve(struct load_run *run)
{
    struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM };
    struct addrinfo *addresses;
    int rc = getaddrinfo(run->host, run->port, &hints, &addresses);
    if (rc != 0) {
        fprintf(stderr, "qmux-client load: cannot resolve %s:%s: %s\n", run->host, run->port,
                gai_strerror(rc));
        return -1;
    }
    memcpy(&run->address, addresses->ai_addr, addresses->ai_addrlen);
    run->address_length = addresses->ai_addrlen;
    freeaddrinfo(addresses);
    return 0;
}

int qload_main(int argc, char **argv)
{
    const char *user = getenv("USER");
    struct load_run run = {
        .host = "127.0.0.1",
        .credentials = user != NULL ? user : "qmux-client",
        .capability = 3,
        .mode = MODE_SYNC,
        .timeout_ms = 10000,
    };

    if (parse_options(&run, argc, argv) < 0 || resolve(&run) < 0)
        return 2;
    raise_file_limit(run.clients);

    run.base = event_base_new();
    run.client_table = calloc((size_t)run.clients, sizeof(*run.client_table));
    if (run.base == NULL || run.client_table == NULL) {
        fprintf(stderr, "qmux-client load: out of memory for %d clients\n", run.clients);
        return 2;
    }

    if (run.duration_ms > 0)
        run.stop_at_us = now_us() + (uint64_t)run.duration_ms * 1000u;
    for (int i = 0; i < run.clients; i++) {
        if (start_client(&run, &run.client_table[i], i) < 0) {
            fprintf(stderr, "qmux-client load: creating client %d failed\n", i);
            return 2;
        }
    }
    if (run.unfinished > 0)
        event_base_dispatch(run.base);

    print_summary(&run);
    uint64_t expected = (uint64_t)run.clients * (uint64_t)run.requests;
    int failed;
    if (run.keep_going || run.duration_ms > 0)
        failed = run.wrong || run.errors || run.timeouts || run.connect_failures ||
                 run.disconnects || run.error_counts[ERROR_OTHER] ||
                 (run.duration_ms == 0 && run.ok + run.closed_partial + run.closed_empty +
                  run.error_counts[ERROR_LOST] + run.error_counts[ERROR_UNAVAILABLE] +
                  run.error_counts[ERROR_QUERY_TIMEOUT] +
                  run.error_counts[ERROR_QUEUE_TIMEOUT] != expected);
    else
        failed = run.ok != expected || run.wrong || run.errors || run.timeouts ||
                 run.connect_failures || run.disconnects;

    for (int i = 0; i < run.clients; i++) {
        struct load_client *client = &run.client_table[i];
        if (client->timer != NULL)
            event_free(client->timer);
        if (client->bev != NULL)
            bufferevent_free(client->bev);
    }
    free(run.client_table);
    free(run.latencies_us);
    event_base_free(run.base);
    return failed ? 1 : 0;
}
