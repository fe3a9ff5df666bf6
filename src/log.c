/*
 * log.c - formatting and writing of log lines.
 */
#include "log.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>

int log_level = LOG_LEVEL_INFO;

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

void log_write(int level, const char *format, ...)
{
    int saved_errno = errno;
    char line[2048];
    struct timeval now;
    struct tm tm;

    gettimeofday(&now, NULL);
    gmtime_r(&now.tv_sec, &tm);
    size_t used = strftime(line, sizeof(line), "%Y-%m-%d %H:%M:%S", &tm);
    used += (size_t)snprintf(line + used, sizeof(line) - used, ".%03ld %s ",
                             (long)(now.tv_usec / 1000), level_tags[level]);

    va_list args;
    va_start(args, format);
    int written = vsnprintf(line + used, sizeof(line) - used - 1, format, args);
    va_end(args);

    if (written < 0)
        written = 0;
    used += (size_t)written;
    if (used > sizeof(line) - 2)
        used = sizeof(line) - 2;
    line[used++] = '\n';
    fwrite(line, 1, used, stderr);

    errno = saved_errno;
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
