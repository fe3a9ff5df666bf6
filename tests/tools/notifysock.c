/*
 * notifysock.c - "qmux-client notify-socket PATH": a stand-in for systemd's notification
 * socket in tests. Binds a Unix datagram socket at PATH and prints each datagram it
 * receives on its own line, newlines inside a datagram shown as " | ", until SIGTERM.
 */
#include "notifysock.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

int notify_socket_main(int argc, char **argv)
{
    struct sockaddr_un address;

    if (argc != 2 || strlen(argv[1]) >= sizeof(address.sun_path)) {
        fprintf(stderr, "usage: qmux-client notify-socket PATH (PATH shorter than %zu bytes)\n",
                sizeof(address.sun_path));
        return 2;
    }

    int fd = socket(AF_UNIX, SOCK_DGRAM, 0);
    memset(&address, 0, sizeof(address));
    address.sun_family = AF_UNIX;
    strcpy(address.sun_path, argv[1]);
    unlink(argv[1]);
    if (fd < 0 || bind(fd, (struct sockaddr *)&address, sizeof(address)) != 0) {
        fprintf(stderr, "qmux-client: cannot bind %s: %s\n", argv[1], strerror(errno));
        return 2;
    }
    printf("listening\n");
    fflush(stdout);

    char message[4096];
    for (;;) {
        ssize_t length = recv(fd, message, sizeof(message) - 1, 0);

        if (length < 0) {
            if (errno == EINTR)
                continue;
            break;
        }
        for (ssize_t i = 0; i < length; i++) {
            if (message[i] == '\n')
                fputs(" | ", stdout);
            else
                fputc(message[i], stdout);
        }
        fputc('\n', stdout);
        fflush(stdout);
    }
    close(fd);
    unlink(argv[1]);
    return 0;
}
