/*
 * relay.c - a minimal relay for the latency reference of scenario 1. Each accepted
 * connection gets its own connection to the upstream, and bytes are copied both ways with
 * one epoll_wait, one read and one write per chunk: no buffering, framing or pool. It
 * does not parse kdb+ messages, so the upstream receives each client's own handshake.
 *
 * Writes block (the sockets stay blocking and only reads wait for epoll), which suits the
 * small requests and responses it is used for, not large results.
 */
#define _GNU_SOURCE   /* accept4 */

#include "relay.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#define RELAY_CHUNK 65536
#define MAX_EVENTS 64

/* One direction of a connection pair: bytes read from fd go to peer. */
struct relay_end {
    int fd;
    int peer;
};

static int connect_upstream(int port)
{
    struct sockaddr_in address = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int one = 1;

    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd < 0)
        return -1;
    if (connect(fd, (struct sockaddr *)&address, sizeof(address)) != 0) {
        close(fd);
        return -1;
    }
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    return fd;
}

static int write_all(int fd, const char *data, size_t length)
{
    while (length > 0) {
        ssize_t written = write(fd, data, length);

        if (written < 0 && errno == EINTR)
            continue;
        if (written <= 0)
            return -1;
        data += written;
        length -= (size_t)written;
    }
    return 0;
}

static int add_end(int epoll_fd, int fd, int peer)
{
    struct relay_end *end = malloc(sizeof(*end));
    struct epoll_event event = { .events = EPOLLIN };

    if (end == NULL)
        return -1;
    end->fd = fd;
    end->peer = peer;
    event.data.ptr = end;
    if (epoll_ctl(epoll_fd, EPOLL_CTL_ADD, fd, &event) != 0) {
        free(end);
        return -1;
    }
    return 0;
}

/* Accepts one client and connects its upstream; on failure closes what was opened. */
static void accept_client(int epoll_fd, int listen_fd, int upstream_port)
{
    int client = accept4(listen_fd, NULL, NULL, SOCK_CLOEXEC);
    int one = 1;

    if (client < 0)
        return;
    setsockopt(client, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));

    int upstream = connect_upstream(upstream_port);
    if (upstream < 0) {
        fprintf(stderr, "qmux-bench relay: cannot connect to 127.0.0.1:%d: %s\n",
                upstream_port, strerror(errno));
        close(client);
        return;
    }
    if (add_end(epoll_fd, client, upstream) != 0 || add_end(epoll_fd, upstream, client) != 0) {
        fprintf(stderr, "qmux-bench relay: cannot watch a new connection: %s\n",
                strerror(errno));
        /* NOTE: a half-registered pair leaks its relay_end; the relay is a test tool. */
        close(client);
        close(upstream);
    }
}

/* Copies one chunk from end->fd to its peer. Closing either side closes both; the other
 * end then reads EOF or gets an error on its next event and frees itself. */
static void copy_chunk(int epoll_fd, struct relay_end *end, char *buffer)
{
    ssize_t n = read(end->fd, buffer, RELAY_CHUNK);

    if (n < 0 && errno == EINTR)
        return;
    if (n > 0 && write_all(end->peer, buffer, (size_t)n) == 0)
        return;

    epoll_ctl(epoll_fd, EPOLL_CTL_DEL, end->fd, NULL);
    shutdown(end->peer, SHUT_RDWR);
    close(end->fd);
    free(end);
}

int relay_main(int argc, char **argv)
{
    int listen_port = 0;
    int upstream_port = 0;

    for (int i = 1; i + 1 < argc; i += 2) {
        if (strcmp(argv[i], "-p") == 0)
            listen_port = atoi(argv[i + 1]);
        else if (strcmp(argv[i], "--to") == 0)
            upstream_port = atoi(argv[i + 1]);
    }
    if (listen_port < 1 || listen_port > 65535 || upstream_port < 1 || upstream_port > 65535) {
        fprintf(stderr, "usage: qmux-bench relay -p LISTEN_PORT --to UPSTREAM_PORT\n");
        return 2;
    }

    struct sockaddr_in address = { .sin_family = AF_INET,
                                   .sin_port = htons((uint16_t)listen_port) };
    int one = 1;
    int listen_fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int epoll_fd = epoll_create1(EPOLL_CLOEXEC);
    struct epoll_event event = { .events = EPOLLIN, .data.ptr = NULL };

    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (listen_fd < 0 || epoll_fd < 0 ||
        setsockopt(listen_fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0 ||
        bind(listen_fd, (struct sockaddr *)&address, sizeof(address)) != 0 ||
        listen(listen_fd, 128) != 0 ||
        epoll_ctl(epoll_fd, EPOLL_CTL_ADD, listen_fd, &event) != 0) {
        fprintf(stderr, "qmux-bench relay: cannot listen on 127.0.0.1:%d: %s\n", listen_port,
                strerror(errno));
        return 1;
    }
    signal(SIGPIPE, SIG_IGN);
    printf("qmux-bench relay: listening on 127.0.0.1:%d\n", listen_port);
    fflush(stdout);

    static char buffer[RELAY_CHUNK];
    struct epoll_event events[MAX_EVENTS];
    for (;;) {
        int count = epoll_wait(epoll_fd, events, MAX_EVENTS, -1);

        if (count < 0 && errno != EINTR) {
            fprintf(stderr, "qmux-bench relay: epoll_wait failed: %s\n", strerror(errno));
            return 1;
        }
        for (int i = 0; i < count; i++) {
            if (events[i].data.ptr == NULL)
                accept_client(epoll_fd, listen_fd, upstream_port);
            else
                copy_chunk(epoll_fd, events[i].data.ptr, buffer);
        }
    }
}
