/*
 * qclient.c - qmux-client: a kdb+ IPC test client that runs queries or a load test.
 *
 *   qmux-client [-H host] -p PORT [-u user:pass] [-c capability] [-T ms] EXPR...
 *   qmux-client load ...            (see qload.c)
 *
 * Query mode sends each EXPR as a sync char-vector query on one connection and prints
 * each result on its own line. Exit status: 0 when every query succeeded, 1 when any
 * response was a kdb+ error, 2 on a connection or handshake failure (including a
 * connection closed before all responses arrived) or invalid usage.
 */
#include "ipc.h"
#include "notifysock.h"
#include "qload.h"
#include "qwire.h"

#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define EXIT_QUERY_ERROR 1
#define EXIT_CONNECTION 2

struct query_options {
    const char *host;
    const char *port;
    const char *credentials;
    int capability;
    int timeout_ms;         /* per read or write; 0 waits forever */
};

/* One server connection in query mode, with the address used in messages. */
struct query_connection {
    int fd;
    int capability;         /* agreed in the handshake */
    char peer[300];
    const struct query_options *options;
};

static void usage(FILE *stream)
{
    fprintf(stream,
            "usage: qmux-client [-H host] -p PORT [-u user:password] [-c capability]\n"
            "                   [-T timeout-ms] EXPR...\n"
            "       qmux-client load -p PORT -n CLIENTS -r REQUESTS [options]  (load -h for help)\n"
            "\n"
            "Sends each EXPR as a sync query and prints each result on its own line.\n"
            "  -H host        server host name or address (default 127.0.0.1)\n"
            "  -p PORT        server port (required)\n"
            "  -u user:pass   credentials sent in the handshake (default $USER, no password)\n"
            "  -c capability  capability byte requested in the handshake, 0..6 (default 3)\n"
            "  -T timeout-ms  fail when a connect, write or read waits longer (default 0: no limit)\n"
            "Exit status: 0 all queries succeeded, 1 a response was a kdb+ error,\n"
            "2 connection or handshake failure.\n");
}

/* Waits until fd is ready for events. Returns 0, or -1 with errno ETIMEDOUT or the poll error. */
static int wait_ready(int fd, short events, int timeout_ms)
{
    struct pollfd pfd = { .fd = fd, .events = events };

    for (;;) {
        int n = poll(&pfd, 1, timeout_ms > 0 ? timeout_ms : -1);
        if (n > 0)
            return 0;
        if (n == 0) {
            errno = ETIMEDOUT;
            return -1;
        }
        if (errno != EINTR)
            return -1;
    }
}

/* Writes all bytes. Returns 0, or -1 with errno set. */
static int write_all(const struct query_connection *conn, const uint8_t *bytes, size_t length)
{
    while (length > 0) {
        if (wait_ready(conn->fd, POLLOUT, conn->options->timeout_ms) < 0)
            return -1;
        ssize_t n = send(conn->fd, bytes, length, MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EINTR || errno == EAGAIN)
                continue;
            return -1;
        }
        bytes += n;
        length -= (size_t)n;
    }
    return 0;
}

/* Reads exactly length bytes. Returns 1, 0 on end of stream, or -1 with errno set. */
static int read_exact(const struct query_connection *conn, uint8_t *bytes, size_t length)
{
    while (length > 0) {
        if (wait_ready(conn->fd, POLLIN, conn->options->timeout_ms) < 0)
            return -1;
        ssize_t n = recv(conn->fd, bytes, length, 0);
        if (n == 0)
            return 0;
        if (n < 0) {
            if (errno == EINTR || errno == EAGAIN)
                continue;
            return -1;
        }
        bytes += n;
        length -= (size_t)n;
    }
    return 1;
}

/* Connects to the first address of host:port that accepts. Returns 0 or -1 after a message. */
static int connect_server(struct query_connection *conn)
{
    const struct query_options *options = conn->options;
    struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM };
    struct addrinfo *addresses;

    snprintf(conn->peer, sizeof(conn->peer), "%s:%s", options->host, options->port);
    int rc = getaddrinfo(options->host, options->port, &hints, &addresses);
    if (rc != 0) {
        fprintf(stderr, "qmux-client: cannot resolve %s: %s\n", conn->peer, gai_strerror(rc));
        return -1;
    }

    int saved_errno = 0;
    conn->fd = -1;
    for (struct addrinfo *ai = addresses; ai != NULL && conn->fd < 0; ai = ai->ai_next) {
        int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK, ai->ai_protocol);
        if (fd < 0) {
            saved_errno = errno;
            continue;
        }
        if (connect(fd, ai->ai_addr, ai->ai_addrlen) < 0 && errno != EINPROGRESS) {
            saved_errno = errno;
            close(fd);
            continue;
        }
        int error = 0;
        socklen_t error_length = sizeof(error);
        if (wait_ready(fd, POLLOUT, options->timeout_ms) < 0)
            error = errno;
        else if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &error, &error_length) < 0)
            error = errno;
        if (error != 0) {
            saved_errno = error;
            close(fd);
            continue;
        }
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        conn->fd = fd;
    }
    freeaddrinfo(addresses);

    if (conn->fd < 0) {
        fprintf(stderr, "qmux-client: connect to %s failed: %s\n", conn->peer,
                strerror(saved_errno));
        return -1;
    }
    return 0;
}

/* Sends the login handshake and reads the agreed capability. Returns 0 or -1 after a message. */
static int handshake(struct query_connection *conn)
{
    size_t length;
    uint8_t *login = qwire_build_handshake(conn->options->credentials,
                                           conn->options->capability, &length);
    if (login == NULL) {
        fprintf(stderr, "qmux-client: out of memory\n");
        return -1;
    }
    int rc = write_all(conn, login, length);
    free(login);
    if (rc < 0) {
        fprintf(stderr, "qmux-client: %s: sending the handshake failed: %s\n", conn->peer,
                strerror(errno));
        return -1;
    }

    uint8_t reply;
    rc = read_exact(conn, &reply, 1);
    if (rc == 0) {
        /* kdb+ rejects a login by closing without a reply; q reports that as 'access. */
        fprintf(stderr, "qmux-client: %s: 'access: the server closed the connection during "
                        "the handshake (credentials rejected?)\n", conn->peer);
        return -1;
    }
    if (rc < 0) {
        fprintf(stderr, "qmux-client: %s: reading the handshake reply failed: %s\n",
                conn->peer, strerror(errno));
        return -1;
    }
    if (reply > IPC_MAX_CAPABILITY)
        fprintf(stderr, "qmux-client: %s: warning: handshake reply %d is above the highest "
                        "known capability %d\n", conn->peer, reply, IPC_MAX_CAPABILITY);
    conn->capability = reply;
    return 0;
}

/*
 * Reads one whole message into a malloc'd buffer, decompressed. Returns it, or NULL after
 * printing why (end of stream, read error, invalid header or corrupt compression).
 */
static uint8_t *read_message(struct query_connection *conn, const char *expr,
                             struct ipc_header *header)
{
    uint8_t raw[IPC_HEADER_SIZE];
    int rc = read_exact(conn, raw, sizeof(raw));
    if (rc <= 0)
        goto read_failed;

    int status = ipc_header_parse(raw, header);
    if (status != IPC_OK) {
        fprintf(stderr, "qmux-client: %s: invalid message header from the server: %s\n",
                conn->peer, ipc_status_text(status));
        return NULL;
    }
    if (header->length > SIZE_MAX / 2) {
        fprintf(stderr, "qmux-client: %s: message of %" PRIu64 " bytes is too large\n",
                conn->peer, header->length);
        return NULL;
    }

    uint8_t *message = malloc(header->length);
    if (message == NULL) {
        fprintf(stderr, "qmux-client: out of memory for a message of %" PRIu64 " bytes\n",
                header->length);
        return NULL;
    }
    memcpy(message, raw, sizeof(raw));
    rc = read_exact(conn, message + IPC_HEADER_SIZE, header->length - IPC_HEADER_SIZE);
    if (rc <= 0) {
        free(message);
        goto read_failed;
    }

    if (header->compressed) {
        char error[200];
        size_t plain_length;
        uint8_t *plain = qwire_decompress(message, header->length, &plain_length, error,
                                          sizeof(error));
        free(message);
        if (plain == NULL) {
            fprintf(stderr, "qmux-client: %s: invalid compressed message: %s\n", conn->peer,
                    error);
            return NULL;
        }
        header->length = plain_length;
        header->compressed = 0;
        message = plain;
    }
    return message;

read_failed:
    if (rc == 0)
        fprintf(stderr, "qmux-client: %s: connection closed by the server while waiting for "
                        "the response to: %s\n", conn->peer, expr);
    else
        fprintf(stderr, "qmux-client: %s: reading the response to \"%s\" failed: %s\n",
                conn->peer, expr, strerror(errno));
    return NULL;
}

/* Sends an error response to a sync request from the server, which this client cannot
 * evaluate, so the server does not wait forever. */
static int reject_server_request(struct query_connection *conn)
{
    static const char text[] = "qmux-client evaluates no requests";
    uint8_t reply[IPC_HEADER_SIZE + 1 + sizeof(text)];

    ipc_header_write(reply, IPC_RESPONSE, sizeof(reply));
    reply[IPC_HEADER_SIZE] = 0x80;
    memcpy(reply + IPC_HEADER_SIZE + 1, text, sizeof(text));
    return write_all(conn, reply, sizeof(reply));
}

/*
 * Sends expr as a sync query and prints its result. Returns 0 on success, 1 when the
 * response is a kdb+ error, -1 when the connection failed (after printing why).
 */
static int run_query(struct query_connection *conn, const char *expr)
{
    size_t length;
    uint8_t *request = qwire_build_query(IPC_SYNC, expr, &length);
    if (request == NULL) {
        fprintf(stderr, "qmux-client: query of %zu bytes is too long\n", strlen(expr));
        return -1;
    }
    int rc = write_all(conn, request, length);
    free(request);
    if (rc < 0) {
        fprintf(stderr, "qmux-client: %s: sending \"%s\" failed: %s\n", conn->peer, expr,
                strerror(errno));
        return -1;
    }

    for (;;) {
        struct ipc_header header;
        uint8_t *message = read_message(conn, expr, &header);
        if (message == NULL)
            return -1;

        if (header.type != IPC_RESPONSE) {
            /* The server may send its own async or sync messages at any time. */
            fprintf(stderr, "qmux-client: %s: ignoring a %s message of %" PRIu64 " bytes from "
                            "the server\n", conn->peer, ipc_msg_type_name(header.type),
                    header.length);
            free(message);
            if (header.type == IPC_SYNC && reject_server_request(conn) < 0) {
                fprintf(stderr, "qmux-client: %s: sending an error response failed: %s\n",
                        conn->peer, strerror(errno));
                return -1;
            }
            continue;
        }

        struct qwire_text text = { 0 };
        int result = qwire_format(message + IPC_HEADER_SIZE, header.length - IPC_HEADER_SIZE,
                                  header.little_endian, &text);
        free(message);
        fwrite(text.data, 1, text.length, stdout);
        fputc('\n', stdout);
        qwire_text_free(&text);
        if (result < 0) {
            fprintf(stderr, "qmux-client: %s: the response to \"%s\" is malformed\n",
                    conn->peer, expr);
            return -1;
        }
        return result;
    }
}

static int parse_int(const char *text, int min, int max, const char *what, int *value)
{
    char *end;
    errno = 0;
    long parsed = strtol(text, &end, 10);
    if (errno != 0 || end == text || *end != '\0' || parsed < min || parsed > max) {
        fprintf(stderr, "qmux-client: invalid %s \"%s\": expected an integer from %d to %d\n",
                what, text, min, max);
        return -1;
    }
    *value = (int)parsed;
    return 0;
}

static int query_main(int argc, char **argv)
{
    const char *user = getenv("USER");
    struct query_options options = {
        .host = "127.0.0.1",
        .credentials = user != NULL ? user : "qmux-client",
        .capability = 3,
    };
    int port = 0;
    int opt;

    if (argc > 1 && strcmp(argv[1], "--help") == 0) {
        usage(stdout);
        return 0;
    }
    while ((opt = getopt(argc, argv, "H:p:u:c:T:h")) != -1) {
        switch (opt) {
        case 'H':
            options.host = optarg;
            break;
        case 'p':
            if (parse_int(optarg, 1, 65535, "port", &port) < 0)
                return EXIT_CONNECTION;
            options.port = optarg;
            break;
        case 'u':
            options.credentials = optarg;
            break;
        case 'c':
            if (parse_int(optarg, 0, 255, "capability", &options.capability) < 0)
                return EXIT_CONNECTION;
            break;
        case 'T':
            if (parse_int(optarg, 0, INT_MAX, "timeout", &options.timeout_ms) < 0)
                return EXIT_CONNECTION;
            break;
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return EXIT_CONNECTION;
        }
    }
    if (options.port == NULL || optind >= argc) {
        fprintf(stderr, "qmux-client: %s\n", options.port == NULL ? "missing -p PORT"
                                                                  : "missing EXPR");
        usage(stderr);
        return EXIT_CONNECTION;
    }

    struct query_connection conn = { .fd = -1, .options = &options };
    if (connect_server(&conn) < 0)
        return EXIT_CONNECTION;
    if (handshake(&conn) < 0) {
        close(conn.fd);
        return EXIT_CONNECTION;
    }

    int status = 0;
    for (int i = optind; i < argc; i++) {
        int rc = run_query(&conn, argv[i]);
        fflush(stdout);
        if (rc < 0) {
            status = EXIT_CONNECTION;
            break;
        }
        if (rc > 0)
            status = EXIT_QUERY_ERROR;
    }
    close(conn.fd);
    return status;
}

int main(int argc, char **argv)
{
    if (argc >= 2 && strcmp(argv[1], "load") == 0)
        return qload_main(argc - 1, argv + 1);
    if (argc >= 2 && strcmp(argv[1], "notify-socket") == 0)
        return notify_socket_main(argc - 1, argv + 1);
    return query_main(argc, argv);
}
