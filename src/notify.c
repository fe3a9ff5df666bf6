/*
 * notify.c - sd_notify messages over a Unix datagram socket.
 */
#include "notify.h"

#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "log.h"

static int notify_fd = -1;
static struct sockaddr_un notify_address;
static socklen_t notify_length;

void notify_init(void)
{
    const char *path = getenv("NOTIFY_SOCKET");
    size_t length = path != NULL ? strlen(path) : 0;

    if (length == 0)
        return;
    if (length >= sizeof(notify_address.sun_path) || (path[0] != '/' && path[0] != '@')) {
        log_warn("NOTIFY_SOCKET \"%s\" is not a socket path; systemd notifications are off",
                 path);
        return;
    }

    memset(&notify_address, 0, sizeof(notify_address));
    notify_address.sun_family = AF_UNIX;
    memcpy(notify_address.sun_path, path, length);
    /* A leading '@' names a socket in the abstract namespace. */
    if (path[0] == '@')
        notify_address.sun_path[0] = '\0';
    notify_length = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + length);

    notify_fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (notify_fd < 0)
        log_warn("cannot create the systemd notification socket: %s", strerror(errno));
}

void notify_send(const char *format, ...)
{
    char message[512];
    va_list args;

    if (notify_fd < 0)
        return;
    va_start(args, format);
    int length = vsnprintf(message, sizeof(message), format, args);
    va_end(args);
    if (length < 0)
        return;
    if ((size_t)length >= sizeof(message))
        length = (int)sizeof(message) - 1;

    if (sendto(notify_fd, message, (size_t)length, MSG_NOSIGNAL,
               (struct sockaddr *)&notify_address, notify_length) < 0)
        log_debug("systemd notification failed: %s", strerror(errno));
}

void notify_reloading(void)
{
    struct timespec now;

    clock_gettime(CLOCK_MONOTONIC, &now);
    notify_send("RELOADING=1\nMONOTONIC_USEC=%llu",
                (unsigned long long)now.tv_sec * 1000000ULL +
                    (unsigned long long)now.tv_nsec / 1000ULL);
}

void notify_close(void)
{
    if (notify_fd >= 0)
        close(notify_fd);
    notify_fd = -1;
}
