/*
 * log.c - formatting and writing of log lines.
 */
#include "log.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>

int log_level = LOG_LEVEL_INFO;

static int current_target = LOG_TARGET_STDERR;
static int log_fd = STDERR_FILENO;      /* the file, or the connected syslog socket */
static char *log_path;

/* RFC 3164 facility "daemon", shifted into the PRI value. */
#define SYSLOG_DAEMON (3 << 3)

static const int syslog_severities[] = {
    [LOG_LEVEL_ERROR] = 3,
    [LOG_LEVEL_WARN] = 4,
    [LOG_LEVEL_INFO] = 6,
    [LOG_LEVEL_DEBUG] = 7,
};

static const char *const level_tags[] = {
    [LOG_LEVEL_ERROR] = "ERROR",
    [LOG_LEVEL_WARN] = "WARN ",
    [LOG_LEVEL_INFO] = "INFO ",
    [LOG_LEVEL_DEBUG] = "DEBUG",
};

void log_set_level(int level)
{
    log_level = level;
}

static int connect_syslog(const char *path)
{
    struct sockaddr_un address;
    int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);

    if (fd < 0)
        return -1;
    memset(&address, 0, sizeof(address));
    address.sun_family = AF_UNIX;
    snprintf(address.sun_path, sizeof(address.sun_path), "%s", path);
    if (connect(fd, (struct sockaddr *)&address, sizeof(address)) != 0) {
        int saved = errno;
        close(fd);
        errno = saved;
        return -1;
    }
    return fd;
}

/* Sends one line to the syslog socket as "<PRI>qmux[PID]: text": the receiver stamps the
 * time and host. A syslog daemon that restarted gets one reconnect attempt. */
static void write_syslog(int level, const char *text, size_t length)
{
    char datagram[2200];
    int header = snprintf(datagram, sizeof(datagram), "<%d>qmux[%ld]: ",
                          SYSLOG_DAEMON | syslog_severities[level], (long)getpid());
    size_t room = sizeof(datagram) - (size_t)header;
    size_t n = length < room ? length : room;

    memcpy(datagram + header, text, n);
    if (send(log_fd, datagram, (size_t)header + n, MSG_NOSIGNAL) >= 0)
        return;

    int fd = connect_syslog(log_path);
    if (fd < 0)
        return;
    close(log_fd);
    log_fd = fd;
    (void)!send(log_fd, datagram, (size_t)header + n, MSG_NOSIGNAL);
}

void log_write(int level, const char *format, ...)
{
    int saved_errno = errno;
    char line[2048];
    struct timeval now;
    struct tm tm;

    gettimeofday(&now, NULL);
    gmtime_r(&now.tv_sec, &tm);
    size_t prefix = strftime(line, sizeof(line), "%Y-%m-%d %H:%M:%S", &tm);
    prefix += (size_t)snprintf(line + prefix, sizeof(line) - prefix, ".%03ld %s ",
                               (long)(now.tv_usec / 1000), level_tags[level]);

    va_list args;
    va_start(args, format);
    int written = vsnprintf(line + prefix, sizeof(line) - prefix - 1, format, args);
    va_end(args);

    size_t used = prefix + (written > 0 ? (size_t)written : 0);
    if (used > sizeof(line) - 2)
        used = sizeof(line) - 2;

    if (current_target == LOG_TARGET_SYSLOG) {
        write_syslog(level, line + prefix, used - prefix);
    } else {
        line[used++] = '\n';
        /* One write per line, so lines from a crash or a rotation never interleave. */
        if (write(log_fd, line, used) < 0 && log_fd != STDERR_FILENO)
            (void)!write(STDERR_FILENO, line, used);
    }
    errno = saved_errno;
}

static int open_file(const char *path, char *error, size_t error_size)
{
    int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);

    if (fd < 0)
        snprintf(error, error_size, "cannot open log file %s: %s; check log.file and the "
                 "permissions of its directory", path, strerror(errno));
    return fd;
}

int log_open(int target, const char *file, const char *syslog_path, char *error,
             size_t error_size)
{
    int fd = STDERR_FILENO;
    const char *path = target == LOG_TARGET_SYSLOG ? syslog_path : file;

    if (target == LOG_TARGET_FILE && (fd = open_file(file, error, error_size)) < 0)
        return -1;
    if (target == LOG_TARGET_SYSLOG && (fd = connect_syslog(syslog_path)) < 0) {
        snprintf(error, error_size, "cannot connect to the syslog socket %s: %s; check "
                 "log.syslog_path, or set log.target = \"stderr\"", syslog_path,
                 strerror(errno));
        return -1;
    }

    log_close();
    current_target = target;
    if (target != LOG_TARGET_STDERR) {
        log_fd = fd;
        log_path = strdup(path);
    }
    return 0;
}

void log_reopen(void)
{
    char error[512];

    if (current_target != LOG_TARGET_FILE || log_path == NULL)
        return;

    int fd = open_file(log_path, error, sizeof(error));
    if (fd < 0) {
        log_error("%s; still writing to the previous file", error);
        return;
    }
    close(log_fd);
    log_fd = fd;
    log_info("log file %s reopened", log_path);
}

void log_close(void)
{
    if (current_target != LOG_TARGET_STDERR && log_fd != STDERR_FILENO)
        close(log_fd);
    free(log_path);
    log_path = NULL;
    log_fd = STDERR_FILENO;
    current_target = LOG_TARGET_STDERR;
}

int log_limit_allow(struct log_limit *limit)
{
    long long now = (long long)time(NULL);

    if (limit->last != 0 && now - limit->last < limit->interval_seconds) {
        limit->suppressed++;
        return 0;
    }
    limit->last = now;
    return 1;
}

unsigned long log_limit_take_suppressed(struct log_limit *limit)
{
    unsigned long suppressed = limit->suppressed;

    limit->suppressed = 0;
    return suppressed;
}

void log_sanitize(char *out, size_t out_size, const char *text, size_t text_len)
{
    size_t n = text_len < out_size - 1 ? text_len : out_size - 1;

    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)text[i];
        out[i] = (ch >= 0x20 && ch < 0x7f) ? (char)ch : '?';
    }
    out[n] = '\0';
}

/* libevent's own warnings (failed accepts, for one) can come thousands a second, so they
 * share one rate limit. */
static struct log_limit libevent_limit = { .interval_seconds = 10 };

static void libevent_log_cb(int severity, const char *message)
{
    int level = LOG_LEVEL_DEBUG;

    if (severity >= EVENT_LOG_ERR)
        level = LOG_LEVEL_ERROR;
    else if (severity == EVENT_LOG_WARN)
        level = LOG_LEVEL_WARN;
    log_limited(&libevent_limit, level, "libevent: %s", message);
}

void log_capture_libevent(void)
{
    event_set_log_callback(libevent_log_cb);
}
