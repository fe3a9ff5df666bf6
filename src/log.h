/*
 * log.h - process-wide logging to stderr with levels and per-connection prefixes.
 *
 * Lines read "2026-12-04 21:00:00.123 INFO  client 7 127.0.0.1:40000: message". The level
 * check happens in the macro, so the arguments of a disabled level are not evaluated.
 * Connection lines always carry the 64-bit connection id and the peer address, never a
 * password.
 */
#ifndef QMUX_LOG_H
#define QMUX_LOG_H

#include <stddef.h>

#include "config.h"

extern int log_level;

void log_set_level(int level);

/*
 * Sends log lines to target (enum log_target): stderr, the syslog socket at syslog_path
 * (facility daemon), or the file at file, opened for appending. Returns 0, or -1 with a
 * message in error when the file or socket cannot be opened; the previous target then
 * stays in use.
 */
int log_open(int target, const char *file, const char *syslog_path, char *error,
             size_t error_size);

/* Reopens the log file (after logrotate moved it); a no-op for other targets. */
void log_reopen(void);

/* Sends libevent's own log messages through this log, rate-limited, instead of raw
 * stderr. */
void log_capture_libevent(void);

/* Closes the log file or syslog connection; lines go to stderr afterwards. */
void log_close(void);

/* State of one rate-limited message: at most one line per interval, and the next line
 * says how many were suppressed meanwhile. */
struct log_limit {
    int interval_seconds;
    long long last;
    unsigned long suppressed;
};

/* Returns 1 when a line limited by limit may be written now; count it as written. The
 * caller appends the suppressed count from log_limit_take_suppressed. */
int log_limit_allow(struct log_limit *limit);
unsigned long log_limit_take_suppressed(struct log_limit *limit);

#define log_limited(limit, level, format, ...)                                          \
    do {                                                                                \
        if (log_level >= (level) && log_limit_allow(limit)) {                           \
            unsigned long suppressed_ = log_limit_take_suppressed(limit);               \
            if (suppressed_ > 0)                                                        \
                log_write((level), format " (%lu similar lines suppressed)",             \
                          ##__VA_ARGS__, suppressed_);                                  \
            else                                                                        \
                log_write((level), format, ##__VA_ARGS__);                              \
        }                                                                               \
    } while (0)

/* Writes one line at level; saves and restores errno. */
void log_write(int level, const char *format, ...) __attribute__((format(printf, 2, 3)));

#define log_at(level, ...)                      \
    do {                                        \
        if (log_level >= (level))               \
            log_write((level), __VA_ARGS__);    \
    } while (0)

#define log_error(...) log_at(LOG_LEVEL_ERROR, __VA_ARGS__)
#define log_warn(...) log_at(LOG_LEVEL_WARN, __VA_ARGS__)
#define log_info(...) log_at(LOG_LEVEL_INFO, __VA_ARGS__)
#define log_debug(...) log_at(LOG_LEVEL_DEBUG, __VA_ARGS__)

/* Client connection lines: "client ID PEER: ..." */
#define clog_at(level, client, format, ...) \
    log_at(level, "client %" PRIu64 " %s: " format, (client)->id, (client)->peer, ##__VA_ARGS__)
#define clog_error(c, ...) clog_at(LOG_LEVEL_ERROR, c, __VA_ARGS__)
#define clog_warn(c, ...) clog_at(LOG_LEVEL_WARN, c, __VA_ARGS__)
#define clog_info(c, ...) clog_at(LOG_LEVEL_INFO, c, __VA_ARGS__)
#define clog_debug(c, ...) clog_at(LOG_LEVEL_DEBUG, c, __VA_ARGS__)

/* Upstream connection lines: "upstream ID HOST:PORT[SLOT]: ...". The id is new for every
 * connect; the slot (0 .. pool.size - 1) stays, so a reconnect can be matched to its loss. */
#define ulog_at(level, conn, format, ...) \
    log_at(level, "upstream %" PRIu64 " %s[%d]: " format, (conn)->id, (conn)->backend->name, \
           (conn)->slot, ##__VA_ARGS__)
#define ulog_error(u, ...) ulog_at(LOG_LEVEL_ERROR, u, __VA_ARGS__)
#define ulog_warn(u, ...) ulog_at(LOG_LEVEL_WARN, u, __VA_ARGS__)
#define ulog_info(u, ...) ulog_at(LOG_LEVEL_INFO, u, __VA_ARGS__)
#define ulog_debug(u, ...) ulog_at(LOG_LEVEL_DEBUG, u, __VA_ARGS__)

/*
 * Copies at most out_size - 1 bytes of text into out, replacing bytes outside printable
 * ASCII with '?', so bytes from the wire never reach a log line raw.
 */
void log_sanitize(char *out, size_t out_size, const char *text, size_t text_len);

#endif
