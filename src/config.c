/*
 * config.c - qmux configuration: one table of settings, a libconfig parse, typed extraction
 * with range checks, cross-field validation, and error collection with file:line.
 */
#include "config.h"

#include "auth.h"
#include "policy.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <libconfig.h>
#include <limits.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define KIB 1024LL
#define MIB (1024LL * KIB)
#define GIB (1024LL * MIB)
#define TIB (1024LL * GIB)

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

/* Maximum length of one error line in bytes, including the NUL; longer lines are cut. */
#define ERROR_LINE_MAX 512

enum setting_type {
    SETTING_INT,        /* int field */
    SETTING_U64,        /* uint64_t field, a size in bytes */
    SETTING_SIZE,       /* size_t field, a size in bytes */
    SETTING_STRING,     /* char * field, owned by the config */
    SETTING_ENUM,       /* int field holding the index of one of setting->names */
    SETTING_BOOL,       /* int field, 0 or 1, written true or false */
    SETTING_NAMES,      /* struct config_names field: a list or array of strings */
};

/* Struct that contains the field of a setting: struct config, or each struct config_upstream. */
enum setting_scope {
    SCOPE_CONFIG,
    SCOPE_UPSTREAM,
};

enum setting_flags {
    SETTING_REQUIRED = 1 << 0,  /* no default: the file must set it */
    SETTING_NONEMPTY = 1 << 1,  /* a string that must not be "" */
    SETTING_SECRET = 1 << 2,    /* never shown: config_each_value writes "********" */
};

struct setting {
    const char *path;              /* "pool.size"; upstream members are "upstreams.host" */
    enum setting_type type;
    enum setting_scope scope;
    size_t offset;                 /* of the field in struct config or struct config_upstream */
    unsigned flags;
    long long default_number;      /* for numeric types */
    const char *default_string;    /* for SETTING_STRING and SETTING_ENUM */
    long long min, max;            /* inclusive range for numeric types */
    const char *description;       /* completes "set it to the ..." in messages */
    const char *const *names;      /* SETTING_ENUM: allowed values, NULL-terminated */
};

#define CONFIG_FIELD(field) SCOPE_CONFIG, offsetof(struct config, field)
#define UPSTREAM_FIELD(field) SCOPE_UPSTREAM, offsetof(struct config_upstream, field)

static const char *const log_level_names[] = {
    [LOG_LEVEL_ERROR] = "error",
    [LOG_LEVEL_WARN] = "warn",
    [LOG_LEVEL_INFO] = "info",
    [LOG_LEVEL_DEBUG] = "debug",
    NULL,
};

static const char *const log_target_names[] = {
    [LOG_TARGET_STDERR] = "stderr",
    [LOG_TARGET_SYSLOG] = "syslog",
    [LOG_TARGET_FILE] = "file",
    NULL,
};

static const char *const tls_mode_names[] = {
    [TLS_MODE_OFF] = "off",
    [TLS_MODE_ON] = "on",
    [TLS_MODE_ONLY] = "only",
    NULL,
};

static const char *const compression_names[] = {
    [COMPRESSION_NEVER] = "never",
    [COMPRESSION_AUTO] = "auto",
    [COMPRESSION_ALWAYS] = "always",
    NULL,
};

/*
 * Every setting qmux reads. Keep defaults and ranges in step with the comments in config.h,
 * conf/qmux.conf and man/qmux.conf.5. Entries of one group stay together, because
 * list_groups() relies on it and messages list a group's keys in table order.
 */
static const struct setting settings[] = {
    { "listen.address", SETTING_STRING, CONFIG_FIELD(listen_address), SETTING_NONEMPTY,
      0, "127.0.0.1", 0, 0, "address qmux accepts clients on", NULL },
    { "listen.port", SETTING_INT, CONFIG_FIELD(listen_port), SETTING_REQUIRED,
      0, NULL, 1, 65535, "TCP port qmux accepts clients on", NULL },
    { "listen.backlog", SETTING_INT, CONFIG_FIELD(listen_backlog), 0,
      511, NULL, 1, 65535, "listen(2) backlog", NULL },
    { "listen.anonymous", SETTING_BOOL, CONFIG_FIELD(listen_anonymous), 0,
      0, NULL, 0, 1,
      "whether clients without an account in auth.users_file may log in", NULL },

    { "pool.size", SETTING_INT, CONFIG_FIELD(pool_size), 0,
      4, NULL, 1, 1024, "connections qmux keeps open to each upstream", NULL },
    { "pool.capability", SETTING_INT, CONFIG_FIELD(pool_capability), 0,
      6, NULL, 1, 6, "kdb+ IPC capability byte qmux sends in the upstream handshake", NULL },
    { "pool.reconnect_min_ms", SETTING_INT, CONFIG_FIELD(reconnect_min_ms), 0,
      100, NULL, 1, 600000, "first delay before reconnecting to an upstream, ms", NULL },
    { "pool.reconnect_max_ms", SETTING_INT, CONFIG_FIELD(reconnect_max_ms), 0,
      10000, NULL, 1, 3600000, "largest reconnect delay after exponential backoff, ms", NULL },
    { "pool.connect_timeout_ms", SETTING_INT, CONFIG_FIELD(connect_timeout_ms), 0,
      5000, NULL, 1, 600000, "time allowed for an upstream connect plus handshake, ms", NULL },
    { "pool.unavailable_wait_ms", SETTING_INT, CONFIG_FIELD(unavailable_wait_ms), 0,
      1000, NULL, 0, 3600000,
      "longest time a request waits while no upstream connection is logged in, ms", NULL },
    { "pool.health_check_interval_ms", SETTING_INT, CONFIG_FIELD(health_check_interval_ms), 0,
      30000, NULL, 0, 86400000,
      "idle time after which a connection gets a health-check query, ms; 0 is off", NULL },
    { "pool.health_check_timeout_ms", SETTING_INT, CONFIG_FIELD(health_check_timeout_ms), 0,
      5000, NULL, 1, 600000, "time allowed for the answer to a health-check query, ms", NULL },
    { "pool.health_check_query", SETTING_STRING, CONFIG_FIELD(health_check_query),
      SETTING_NONEMPTY, 0, "::", 0, 0, "q expression sent as the health-check query", NULL },

    { "upstreams.host", SETTING_STRING, UPSTREAM_FIELD(host),
      SETTING_REQUIRED | SETTING_NONEMPTY,
      0, NULL, 0, 0, "host name or address of the kdb+ process", NULL },
    { "upstreams.port", SETTING_INT, UPSTREAM_FIELD(port), SETTING_REQUIRED,
      0, NULL, 1, 65535, "TCP port of the kdb+ process", NULL },
    { "upstreams.user", SETTING_STRING, UPSTREAM_FIELD(user), 0,
      0, "", 0, 0, "user name sent in the kdb+ handshake", NULL },
    { "upstreams.password", SETTING_STRING, UPSTREAM_FIELD(password), SETTING_SECRET,
      0, "", 0, 0, "password sent in the kdb+ handshake", NULL },

    { "clients.max_clients", SETTING_INT, CONFIG_FIELD(max_clients), 0,
      10000, NULL, 1, 1000000, "maximum number of client connections open at once", NULL },
    { "clients.max_per_user", SETTING_INT, CONFIG_FIELD(max_per_user), 0,
      0, NULL, 0, 1000000,
      "maximum number of connections of one user name; 0 is no limit", NULL },
    { "clients.handshake_timeout_ms", SETTING_INT, CONFIG_FIELD(handshake_timeout_ms), 0,
      10000, NULL, 0, 3600000, "time a client has to finish its handshake, ms; 0 is off", NULL },
    { "clients.idle_timeout_ms", SETTING_INT, CONFIG_FIELD(idle_timeout_ms), 0,
      0, NULL, 0, 86400000,
      "time a client may stay connected without a request, ms; 0 is off", NULL },
    { "clients.query_timeout_ms", SETTING_INT, CONFIG_FIELD(query_timeout_ms), 0,
      0, NULL, 0, 86400000,
      "time allowed for the upstream to answer a request, ms; 0 is off", NULL },
    { "clients.queue_timeout_ms", SETTING_INT, CONFIG_FIELD(queue_timeout_ms), 0,
      0, NULL, 0, 86400000,
      "time a request may wait for an upstream connection, ms; 0 is off", NULL },
    { "clients.max_queue", SETTING_INT, CONFIG_FIELD(max_queue), 0,
      10000, NULL, 1, 1000000, "maximum number of requests waiting in the queue", NULL },
    { "clients.shutdown_timeout_ms", SETTING_INT, CONFIG_FIELD(shutdown_timeout_ms), 0,
      10000, NULL, 0, 3600000,
      "time requests in flight get to finish when qmux stops, ms", NULL },
    { "clients.send_timeout_ms", SETTING_INT, CONFIG_FIELD(send_timeout_ms), 0,
      60000, NULL, 0, 86400000,
      "time a client's pending output may make no progress before it is closed, ms; 0 is off", NULL },
    { "clients.compression", SETTING_ENUM, CONFIG_FIELD(compression), 0,
      0, "auto", 0, 0, "when qmux compresses responses for clients", compression_names },
    { "clients.compression_max_size", SETTING_U64, CONFIG_FIELD(compression_max_size), 0,
      64 * MIB, NULL, 2 * KIB, 4 * GIB,
      "largest response qmux compresses or decompresses for a client, bytes", NULL },
    { "clients.validate_messages", SETTING_BOOL, CONFIG_FIELD(validate_messages), 0,
      1, NULL, 0, 1, "whether each client message is decoded before it is forwarded", NULL },
    { "clients.max_message_size", SETTING_U64, CONFIG_FIELD(max_message_size), 0,
      256 * MIB, NULL, 1 * KIB, 1 * TIB, "largest client message accepted, bytes", NULL },
    { "clients.output_high_watermark", SETTING_SIZE, CONFIG_FIELD(output_high_watermark), 0,
      8 * MIB, NULL, 4 * KIB, 1 * GIB,
      "client output bytes at which qmux stops reading the upstream", NULL },
    { "clients.output_low_watermark", SETTING_SIZE, CONFIG_FIELD(output_low_watermark), 0,
      2 * MIB, NULL, 0, 1 * GIB,
      "client output bytes below which qmux resumes reading the upstream", NULL },
    { "clients.max_output_total", SETTING_U64, CONFIG_FIELD(max_output_total), 0,
      256 * MIB, NULL, 1 * MIB, 1 * TIB,
      "bytes in all client output buffers together at which upstream reads pause", NULL },
    { "clients.input_buffer", SETTING_SIZE, CONFIG_FIELD(input_buffer), 0,
      64 * KIB, NULL, 1 * KIB, 64 * MIB,
      "client bytes read ahead while a request is in flight", NULL },

    { "admin.address", SETTING_STRING, CONFIG_FIELD(admin_address), SETTING_NONEMPTY,
      0, "127.0.0.1", 0, 0, "numeric address the admin console listens on", NULL },
    { "admin.port", SETTING_INT, CONFIG_FIELD(admin_port), 0,
      0, NULL, 0, 65535, "TCP port of the admin console; 0 is off", NULL },
    { "admin.users", SETTING_NAMES, CONFIG_FIELD(admin_users), 0,
      0, NULL, 0, CONFIG_MAX_NAMES, "list of user names allowed to log in to the admin console",
      NULL },
    { "admin.anonymous", SETTING_BOOL, CONFIG_FIELD(admin_anonymous), 0,
      0, NULL, 0, 1,
      "whether the users of admin.users log in to the admin console without a password", NULL },

    { "http.address", SETTING_STRING, CONFIG_FIELD(http_address), SETTING_NONEMPTY,
      0, "127.0.0.1", 0, 0, "numeric address the HTTP endpoint listens on", NULL },
    { "http.port", SETTING_INT, CONFIG_FIELD(http_port), 0,
      0, NULL, 0, 65535,
      "TCP port of the HTTP endpoint (/metrics, /health, /q and the query page); 0 is off",
      NULL },
    { "http.max_request_size", SETTING_U64, CONFIG_FIELD(http_max_request_size), 0,
      1 * MIB, NULL, 1 * KIB, 1 * GIB, "largest q query accepted over HTTP, bytes", NULL },
    { "http.max_response_size", SETTING_U64, CONFIG_FIELD(http_max_response_size), 0,
      256 * MIB, NULL, 1 * KIB, 2 * GIB,
      "largest kdb+ response rendered as JSON for an HTTP query, bytes", NULL },
    { "http.request_timeout_ms", SETTING_INT, CONFIG_FIELD(http_request_timeout_ms), 0,
      60000, NULL, 1, 86400000,
      "time allowed for the response to an HTTP query, ms", NULL },
    { "http.anonymous", SETTING_BOOL, CONFIG_FIELD(http_anonymous), 0,
      0, NULL, 0, 1,
      "whether HTTP queries without an account in auth.users_file are served", NULL },

    { "auth.users_file", SETTING_STRING, CONFIG_FIELD(users_file), 0,
      0, "", 0, 0, "path of the users file; \"\" is none", NULL },
    { "auth.default_policy", SETTING_STRING, CONFIG_FIELD(default_policy_name), 0,
      0, "", 0, 0, "policy of users without a policy= option; \"\" allows every query",
      NULL },
    { "auth.free_failures", SETTING_INT, CONFIG_FIELD(free_failures), 0,
      3, NULL, 0, 1000, "failed logins of one address that cost no delay", NULL },
    { "auth.failure_delay_ms", SETTING_INT, CONFIG_FIELD(failure_delay_ms), 0,
      250, NULL, 0, 60000,
      "delay of the first failed login past auth.free_failures, ms; 0 turns delays off", NULL },
    { "auth.failure_delay_max_ms", SETTING_INT, CONFIG_FIELD(failure_delay_max_ms), 0,
      30000, NULL, 0, 3600000, "longest delay after repeated failed logins, ms", NULL },
    { "auth.workers", SETTING_INT, CONFIG_FIELD(auth_workers), 0,
      2, NULL, 1, 64, "number of threads that check passwords", NULL },

    { "tls.mode", SETTING_ENUM, CONFIG_FIELD(tls_mode), 0,
      0, "off", 0, 0, "TLS on the listen port: off, on (plain and TLS) or only",
      tls_mode_names },
    { "tls.cert_file", SETTING_STRING, CONFIG_FIELD(tls_cert_file), 0,
      0, "", 0, 0, "path of the PEM certificate chain qmux presents to clients", NULL },
    { "tls.key_file", SETTING_STRING, CONFIG_FIELD(tls_key_file), 0,
      0, "", 0, 0, "path of the PEM private key of tls.cert_file", NULL },
    { "tls.ca_file", SETTING_STRING, CONFIG_FIELD(tls_ca_file), 0,
      0, "", 0, 0, "path of the PEM CA certificates that sign client certificates", NULL },
    { "tls.verify_client", SETTING_BOOL, CONFIG_FIELD(tls_verify_client), 0,
      0, NULL, 0, 1, "whether clients must present a certificate signed by tls.ca_file",
      NULL },

    { "upstream_tls.enabled", SETTING_BOOL, CONFIG_FIELD(upstream_tls_enabled), 0,
      0, NULL, 0, 1, "whether qmux connects to every upstream with TLS", NULL },
    { "upstream_tls.ca_file", SETTING_STRING, CONFIG_FIELD(upstream_tls_ca_file), 0,
      0, "", 0, 0, "path of the PEM CA certificates that sign upstream certificates", NULL },
    { "upstream_tls.verify", SETTING_BOOL, CONFIG_FIELD(upstream_tls_verify), 0,
      1, NULL, 0, 1, "whether the upstream's certificate and name are checked", NULL },
    { "upstream_tls.server_name", SETTING_STRING, CONFIG_FIELD(upstream_tls_server_name), 0,
      0, "", 0, 0, "name sent to and checked against every upstream instead of its host", NULL },
    { "upstream_tls.cert_file", SETTING_STRING, CONFIG_FIELD(upstream_tls_cert_file), 0,
      0, "", 0, 0, "path of the PEM certificate chain qmux presents to upstreams", NULL },
    { "upstream_tls.key_file", SETTING_STRING, CONFIG_FIELD(upstream_tls_key_file), 0,
      0, "", 0, 0, "path of the PEM private key of upstream_tls.cert_file", NULL },

    { "log.level", SETTING_ENUM, CONFIG_FIELD(log_level), 0,
      0, "info", 0, 0, "error, warn, info or debug", log_level_names },
    { "log.target", SETTING_ENUM, CONFIG_FIELD(log_target), 0,
      0, "stderr", 0, 0, "where log lines go: stderr, syslog or file", log_target_names },
    { "log.file", SETTING_STRING, CONFIG_FIELD(log_file), 0,
      0, "", 0, 0, "path of the log file when log.target is \"file\"", NULL },
    { "log.syslog_path", SETTING_STRING, CONFIG_FIELD(syslog_path), SETTING_NONEMPTY,
      0, "/dev/log", 0, 0, "path of the syslog socket when log.target is \"syslog\"", NULL },
    { "log.access", SETTING_BOOL, CONFIG_FIELD(log_access), 0,
      0, NULL, 0, 1, "whether every request gets an access line at info level", NULL },
    { "log.slow_request_ms", SETTING_INT, CONFIG_FIELD(slow_request_ms), 0,
      0, NULL, 0, 86400000,
      "duration above which a request is logged as slow, ms; 0 is off", NULL },
};

#define SETTING_COUNT ARRAY_SIZE(settings)


/* State of one config_load call. */
struct loader {
    struct config *config;
    config_t libconfig;
    const char *include_dir;   /* directory of the config file; @include paths start there */
    char *errors;
    size_t errors_size;
    size_t errors_used;
    int error_count;
    int errors_omitted;

    /* Per entry of settings[] in SCOPE_CONFIG: the setting found in the file, or NULL. */
    const config_setting_t *found[SETTING_COUNT];
    /* Per entry: false after an error, so cross-field checks skip a bad value. */
    bool valid[SETTING_COUNT];

    const config_setting_t *policies;   /* the policies list, or NULL */
    bool policies_valid;
    char warnings[4096];                /* whole lines for config->warnings */
};

/* ---- Error collection ---- */

/*
 * Writes the path libconfig opened for the file a setting came from. libconfig 1.5 stores an
 * @include name as written and opens it as include_dir/name, so a message naming only the
 * stored name would point to the wrong file for a reader in another directory.
 */
static const char *source_path(const struct loader *loader, const config_setting_t *where,
                               char *buffer, size_t size)
{
    const char *file = config_setting_source_file(where);

    if (file == NULL || strcmp(file, loader->config->path) == 0)
        return loader->config->path;
    snprintf(buffer, size, "%s/%s", loader->include_dir, file);
    return buffer;
}

/* Appends line and a newline to the error buffer if both fit, else counts it as omitted. */
static void append_error_line(struct loader *loader, const char *line)
{
    size_t length = strlen(line);

    if (loader->errors_size == 0)
        return;
    /* Keep whole lines only, and leave room for the NUL. */
    if (loader->errors_used + length + 2 > loader->errors_size) {
        loader->errors_omitted++;
        return;
    }
    memcpy(loader->errors + loader->errors_used, line, length);
    loader->errors_used += length;
    loader->errors[loader->errors_used++] = '\n';
    loader->errors[loader->errors_used] = '\0';
}

/* Removes the last line of the error buffer. */
static void drop_last_error_line(struct loader *loader)
{
    size_t end = loader->errors_used - 1;

    while (end > 0 && loader->errors[end - 1] != '\n')
        end--;
    loader->errors_used = end;
    loader->errors[end] = '\0';
    loader->errors_omitted++;
}

/* Records one error as "FILE:LINE: message", or "FILE: message" when line is 0. */
__attribute__((format(printf, 4, 0)))
static void report_at(struct loader *loader, const char *file, unsigned line,
                      const char *format, va_list args)
{
    char text[ERROR_LINE_MAX];
    int prefix;

    if (line > 0)
        prefix = snprintf(text, sizeof(text), "%s:%u: ", file, line);
    else
        prefix = snprintf(text, sizeof(text), "%s: ", file);
    if (prefix < 0 || (size_t)prefix >= sizeof(text))
        prefix = (int)sizeof(text) - 1;

    vsnprintf(text + prefix, sizeof(text) - (size_t)prefix, format, args);
    loader->error_count++;
    append_error_line(loader, text);
}

/*
 * Records one error at the file and line of where. With where NULL, or a setting without a
 * line (the root), the message carries the file name only.
 */
__attribute__((format(printf, 3, 4)))
static void report(struct loader *loader, const config_setting_t *where, const char *format, ...)
{
    char file_buffer[PATH_MAX];
    const char *file = loader->config->path;
    unsigned line = 0;
    va_list args;

    if (where != NULL) {
        file = source_path(loader, where, file_buffer, sizeof(file_buffer));
        line = config_setting_source_line(where);
    }
    va_start(args, format);
    report_at(loader, file, line, format, args);
    va_end(args);
}

/* Records a libconfig parse error; format and arguments as for report(). */
__attribute__((format(printf, 4, 5)))
static void report_parse_error(struct loader *loader, const char *file, int line,
                               const char *format, ...)
{
    va_list args;

    va_start(args, format);
    report_at(loader, file, line > 0 ? (unsigned)line : 0, format, args);
    va_end(args);
}

/* Ends a full error buffer with a line that counts the errors left out. */
static void finish_errors(struct loader *loader)
{
    char line[ERROR_LINE_MAX];

    while (loader->errors_omitted > 0) {
        snprintf(line, sizeof(line), "%s: %d more errors did not fit in the error buffer",
                 loader->config->path, loader->errors_omitted);
        if (loader->errors_used + strlen(line) + 2 <= loader->errors_size) {
            append_error_line(loader, line);
            return;
        }
        if (loader->errors_used == 0)
            return;  /* not even the summary fits */
        drop_last_error_line(loader);
    }
}

/* ---- Table look-ups ---- */

static const char *type_name(int type)
{
    switch (type) {
    case CONFIG_TYPE_GROUP: return "a group";
    case CONFIG_TYPE_INT: return "an integer";
    case CONFIG_TYPE_INT64: return "a 64-bit integer";
    case CONFIG_TYPE_FLOAT: return "a float";
    case CONFIG_TYPE_STRING: return "a string";
    case CONFIG_TYPE_BOOL: return "a boolean";
    case CONFIG_TYPE_ARRAY: return "an array";
    case CONFIG_TYPE_LIST: return "a list";
    default: return "of unknown type";
    }
}

/* Returns the part of a table path after the dot: "size" for "pool.size". */
static const char *setting_leaf(const struct setting *setting)
{
    return strchr(setting->path, '.') + 1;
}

static bool setting_in_group(const struct setting *setting, const char *group)
{
    size_t length = strlen(group);

    return strncmp(setting->path, group, length) == 0 && setting->path[length] == '.';
}

static const struct setting *find_setting(const char *group, const char *leaf)
{
    for (size_t i = 0; i < SETTING_COUNT; i++) {
        if (setting_in_group(&settings[i], group) && strcmp(setting_leaf(&settings[i]), leaf) == 0)
            return &settings[i];
    }
    return NULL;
}

static bool group_is_known(const char *group)
{
    for (size_t i = 0; i < SETTING_COUNT; i++) {
        if (setting_in_group(&settings[i], group))
            return true;
    }
    return false;
}

/* Writes the leaf names of group, comma separated, into buffer. */
static void list_group_keys(const char *group, char *buffer, size_t size)
{
    size_t used = 0;

    buffer[0] = '\0';
    for (size_t i = 0; i < SETTING_COUNT && used < size; i++) {
        if (!setting_in_group(&settings[i], group))
            continue;
        int written = snprintf(buffer + used, size - used, "%s%s", used > 0 ? ", " : "",
                               setting_leaf(&settings[i]));
        if (written < 0)
            break;
        used += (size_t)written;
    }
}

/* Writes the group names, comma separated and each once, into buffer. */
static void list_groups(char *buffer, size_t size)
{
    size_t used = 0;

    buffer[0] = '\0';
    for (size_t i = 0; i < SETTING_COUNT && used < size; i++) {
        size_t length = (size_t)(strchr(settings[i].path, '.') - settings[i].path);
        if (i > 0 && strncmp(settings[i - 1].path, settings[i].path, length + 1) == 0)
            continue;
        int written = snprintf(buffer + used, size - used, "%s%.*s", used > 0 ? ", " : "",
                               (int)length, settings[i].path);
        if (written < 0)
            break;
        used += (size_t)written;
    }
}

const char *const *config_known_keys(void)
{
    /* Filled on the first call. NOTE: not thread-safe, so call it once before starting threads. */
    static const char *const policy_keys[] = { "policies.name", "policies.mode",
                                                "policies.entries" };
    static const char *keys[SETTING_COUNT + ARRAY_SIZE(policy_keys) + 1];

    if (keys[0] == NULL) {
        for (size_t i = 0; i < SETTING_COUNT; i++)
            keys[i] = settings[i].path;
        for (size_t i = 0; i < ARRAY_SIZE(policy_keys); i++)
            keys[SETTING_COUNT + i] = policy_keys[i];
        keys[SETTING_COUNT + ARRAY_SIZE(policy_keys)] = NULL;
    }
    return keys;
}

/* Formats the value of one setting at field as text into out. */
static void format_value(const struct setting *setting, const void *field, char *out,
                         size_t size)
{
    switch (setting->type) {
    case SETTING_INT:
        snprintf(out, size, "%d", *(const int *)field);
        return;
    case SETTING_U64:
        snprintf(out, size, "%" PRIu64, *(const uint64_t *)field);
        return;
    case SETTING_SIZE:
        snprintf(out, size, "%zu", *(const size_t *)field);
        return;
    case SETTING_STRING: {
        const char *text = *(char *const *)field;
        snprintf(out, size, "%s", (setting->flags & SETTING_SECRET) ? "********"
                                  : text != NULL ? text : "");
        return;
    }
    case SETTING_ENUM:
        snprintf(out, size, "%s", setting->names[*(const int *)field]);
        return;
    case SETTING_BOOL:
        snprintf(out, size, "%s", *(const int *)field ? "true" : "false");
        return;
    case SETTING_NAMES: {
        const struct config_names *names = field;
        size_t used = 0;

        out[0] = '\0';
        for (int i = 0; i < names->count && used < size; i++)
            used += (size_t)snprintf(out + used, size - used, "%s%s", i > 0 ? ", " : "",
                                     names->items[i]);
        return;
    }
    }
}

int config_each_value(const struct config *config,
                      int (*visit)(void *ctx, const char *key, const char *value), void *ctx)
{
    /* Large enough for a list of CONFIG_MAX_NAMES names of the longest length. */
    char value[CONFIG_MAX_NAMES * (CONFIG_MAX_NAME_LENGTH + 2) + 1];
    char key[96];
    int status;

    for (size_t i = 0; i < SETTING_COUNT; i++) {
        const struct setting *setting = &settings[i];

        if (setting->scope == SCOPE_CONFIG) {
            format_value(setting, (const char *)config + setting->offset, value,
                         sizeof(value));
            if ((status = visit(ctx, setting->path, value)) != 0)
                return status;
            continue;
        }
        /* Upstream members are listed together; visit them upstream by upstream once. */
        if (i > 0 && settings[i - 1].scope == SCOPE_UPSTREAM)
            continue;
        for (int number = 0; number < config->upstream_count; number++) {
            for (size_t j = i; j < SETTING_COUNT && settings[j].scope == SCOPE_UPSTREAM; j++) {
                snprintf(key, sizeof(key), "upstreams[%d].%s", number,
                         setting_leaf(&settings[j]));
                format_value(&settings[j],
                             (const char *)&config->upstreams[number] + settings[j].offset,
                             value, sizeof(value));
                if ((status = visit(ctx, key, value)) != 0)
                    return status;
            }
        }
    }
    return 0;
}

const char *config_log_level_name(int level)
{
    if (level < 0 || (size_t)level >= ARRAY_SIZE(log_level_names) - 1)
        return "unknown";
    return log_level_names[level];
}

/* ---- Source text check for 32-bit overflow ---- */

/*
 * Reads line number line_number (from 1) of file into buffer. Returns false when the file or
 * line cannot be read.
 */
static bool read_source_line(const char *file, unsigned line_number, char *buffer, size_t size)
{
    FILE *stream = fopen(file, "r");
    unsigned current = 1;
    bool found = false;

    if (stream == NULL)
        return false;
    while (fgets(buffer, (int)size, stream) != NULL) {
        bool line_complete = strchr(buffer, '\n') != NULL;
        if (current == line_number) {
            found = true;
            break;
        }
        if (line_complete)
            current++;
    }
    fclose(stream);
    return found;
}

/*
 * Returns true when the literal after "name =" (or "name :") on the setting's own source
 * line does not fit in 32 bits. libconfig 1.5 stores an integer literal without the L suffix
 * in an int and drops the high bits without an error, so "size = 4294967297;" would silently
 * read as 1.
 * NOTE: this reads the line as text, so it misses a literal written on a later line than
 * its name, and a string on the same line containing "name = <small number>" hides an
 * overflow. It cannot cause a false error, because every occurrence must overflow.
 */
static bool source_literal_overflows(const struct loader *loader,
                                     const config_setting_t *value)
{
    char file_buffer[PATH_MAX];
    const char *file = source_path(loader, value, file_buffer, sizeof(file_buffer));
    const char *name = config_setting_name(value);
    char line[4096];
    size_t name_length;
    bool overflow_seen = false;

    if (name == NULL || config_setting_type(value) != CONFIG_TYPE_INT)
        return false;
    if (!read_source_line(file, config_setting_source_line(value), line, sizeof(line)))
        return false;

    name_length = strlen(name);
    for (const char *p = strstr(line, name); p != NULL; p = strstr(p + 1, name)) {
        if (p > line && (isalnum((unsigned char)p[-1]) || p[-1] == '_' || p[-1] == '-'))
            continue;
        const char *cursor = p + name_length;
        while (*cursor == ' ' || *cursor == '\t')
            cursor++;
        if (*cursor != '=' && *cursor != ':')
            continue;
        cursor++;
        while (*cursor == ' ' || *cursor == '\t')
            cursor++;

        const char *digits = cursor;
        if (*digits == '-' || *digits == '+')
            digits++;
        int base = (digits[0] == '0' && (digits[1] == 'x' || digits[1] == 'X')) ? 16 : 10;
        char *end;
        errno = 0;
        long long parsed = strtoll(cursor, &end, base);
        if (end == cursor)
            continue;
        if (errno == ERANGE || parsed < INT_MIN || parsed > INT_MAX)
            overflow_seen = true;
        else
            return false;  /* one occurrence fits: trust libconfig's value */
    }
    return overflow_seen;
}

/* ---- Typed extraction ---- */

static void *field_address(const struct setting *setting, struct config *config,
                           struct config_upstream *upstream)
{
    char *base = setting->scope == SCOPE_CONFIG ? (char *)config : (char *)upstream;

    return base + setting->offset;
}

/* Formats a byte count with its binary unit when exact: "4096 (4 KiB)". */
static void format_bytes(long long bytes, char *buffer, size_t size)
{
    static const struct { long long factor; const char *unit; } units[] = {
        { TIB, "TiB" }, { GIB, "GiB" }, { MIB, "MiB" }, { KIB, "KiB" },
    };

    for (size_t i = 0; i < ARRAY_SIZE(units); i++) {
        if (bytes >= units[i].factor && bytes % units[i].factor == 0) {
            snprintf(buffer, size, "%lld (%lld %s)", bytes, bytes / units[i].factor,
                     units[i].unit);
            return;
        }
    }
    snprintf(buffer, size, "%lld", bytes);
}

static bool extract_number(struct loader *loader, const struct setting *setting,
                           const config_setting_t *value, const char *key, void *field)
{
    int type = config_setting_type(value);

    if (type != CONFIG_TYPE_INT && type != CONFIG_TYPE_INT64) {
        report(loader, value, "%s must be an integer, but it is %s; write a number in "
               "%lld..%lld without quotes", key, type_name(type), setting->min, setting->max);
        return false;
    }
    if (source_literal_overflows(loader, value)) {
        report(loader, value, "%s does not fit in a 32-bit integer; allowed %lld..%lld, and "
               "a value above 2147483647 needs the L suffix, for example 4294967296L", key,
               setting->min, setting->max);
        return false;
    }

    long long number = config_setting_get_int64(value);
    if (number < setting->min || number > setting->max) {
        if (setting->type == SETTING_INT) {
            report(loader, value, "%s = %lld is out of range; allowed %lld..%lld", key, number,
                   setting->min, setting->max);
        } else {
            char min[64], max[64];
            format_bytes(setting->min, min, sizeof(min));
            format_bytes(setting->max, max, sizeof(max));
            report(loader, value, "%s = %lld bytes is out of range; allowed %s..%s bytes", key,
                   number, min, max);
        }
        return false;
    }

    switch (setting->type) {
    case SETTING_INT:
    case SETTING_ENUM:
    case SETTING_BOOL:
        *(int *)field = (int)number;
        break;
    case SETTING_U64:
        *(uint64_t *)field = (uint64_t)number;
        break;
    case SETTING_SIZE:
        *(size_t *)field = (size_t)number;
        break;
    case SETTING_STRING:
    case SETTING_NAMES:
        break;
    }
    return true;
}

static bool extract_string(struct loader *loader, const struct setting *setting,
                           const config_setting_t *value, const char *key, void *field)
{
    int type = config_setting_type(value);

    if (type != CONFIG_TYPE_STRING) {
        report(loader, value, "%s must be a string, but it is %s; put the value in double "
               "quotes", key, type_name(type));
        return false;
    }

    /* The messages below do not quote the value, so a password cannot leak into them. */
    const char *text = config_setting_get_string(value);
    if ((setting->flags & SETTING_NONEMPTY) && text[0] == '\0') {
        report(loader, value, "%s is empty; set it to the %s", key, setting->description);
        return false;
    }

    char *copy = strdup(text);
    if (copy == NULL) {
        report(loader, value, "%s: out of memory", key);
        return false;
    }
    free(*(char **)field);
    *(char **)field = copy;
    return true;
}

/* Writes the allowed values of an enum setting as "\"a\", \"b\", \"c\"". */
static void format_names(const char *const *names, char *out, size_t size)
{
    size_t used = 0;

    out[0] = '\0';
    for (size_t i = 0; names[i] != NULL && used < size; i++)
        used += (size_t)snprintf(out + used, size - used, "%s\"%s\"", i > 0 ? ", " : "",
                                 names[i]);
}

static bool extract_enum(struct loader *loader, const struct setting *setting,
                         const config_setting_t *value, const char *key, void *field)
{
    int type = config_setting_type(value);
    char allowed[160];

    format_names(setting->names, allowed, sizeof(allowed));
    if (type != CONFIG_TYPE_STRING) {
        report(loader, value, "%s must be a string, but it is %s; use one of %s", key,
               type_name(type), allowed);
        return false;
    }

    const char *text = config_setting_get_string(value);
    for (size_t i = 0; setting->names[i] != NULL; i++) {
        if (strcmp(text, setting->names[i]) == 0) {
            *(int *)field = (int)i;
            return true;
        }
    }
    report(loader, value, "%s = \"%s\" is invalid; allowed %s", key, text, allowed);
    return false;
}

static bool extract_bool(struct loader *loader, const config_setting_t *value,
                         const char *key, void *field)
{
    int type = config_setting_type(value);

    if (type != CONFIG_TYPE_BOOL) {
        report(loader, value, "%s must be true or false, but it is %s; write true or false "
               "without quotes", key, type_name(type));
        return false;
    }
    *(int *)field = config_setting_get_bool(value) ? 1 : 0;
    return true;
}

static void free_names(struct config_names *names)
{
    for (int i = 0; i < names->count; i++)
        free(names->items[i]);
    free(names->items);
    names->items = NULL;
    names->count = 0;
}

/* Checks and stores a list of names: each a non-empty string without ':' (the handshake
 * separates user from password with it), at most CONFIG_MAX_NAME_LENGTH bytes. */
static bool extract_names(struct loader *loader, const struct setting *setting,
                          const config_setting_t *value, const char *key, void *field)
{
    struct config_names *names = field;
    int type = config_setting_type(value);
    int count = config_setting_length(value);

    if (type != CONFIG_TYPE_LIST && type != CONFIG_TYPE_ARRAY) {
        report(loader, value, "%s must be a list of strings, but it is %s; write %s = "
               "( \"name\" );", key, type_name(type), setting_leaf(setting));
        return false;
    }
    if (count > setting->max) {
        report(loader, value, "%s has %d entries; allowed 0..%lld", key, count, setting->max);
        return false;
    }

    struct config_names parsed = { calloc((size_t)count + 1, sizeof(char *)), 0 };
    if (parsed.items == NULL) {
        report(loader, value, "%s: out of memory", key);
        return false;
    }
    for (int i = 0; i < count; i++) {
        const config_setting_t *element = config_setting_get_elem(value, (unsigned)i);
        const char *text = config_setting_get_string(element);

        if (config_setting_type(element) != CONFIG_TYPE_STRING) {
            report(loader, element, "%s[%d] must be a string, but it is %s; put the name in "
                   "double quotes", key, i, type_name(config_setting_type(element)));
        } else if (text[0] == '\0' || strchr(text, ':') != NULL ||
                   strlen(text) > CONFIG_MAX_NAME_LENGTH) {
            report(loader, element, "%s[%d] is invalid; a name has 1..%d bytes and no ':'",
                   key, i, CONFIG_MAX_NAME_LENGTH);
        } else if ((parsed.items[parsed.count] = strdup(text)) == NULL) {
            report(loader, element, "%s: out of memory", key);
        } else {
            parsed.count++;
            continue;
        }
        free_names(&parsed);
        return false;
    }
    free_names(names);
    *names = parsed;
    return true;
}

/* Checks and stores one value; key is the name used in messages ("upstreams[1].port"). */
static bool extract_setting(struct loader *loader, const struct setting *setting,
                            const config_setting_t *value, const char *key, void *field)
{
    switch (setting->type) {
    case SETTING_INT:
    case SETTING_U64:
    case SETTING_SIZE:
        return extract_number(loader, setting, value, key, field);
    case SETTING_STRING:
        return extract_string(loader, setting, value, key, field);
    case SETTING_ENUM:
        return extract_enum(loader, setting, value, key, field);
    case SETTING_BOOL:
        return extract_bool(loader, value, key, field);
    case SETTING_NAMES:
        return extract_names(loader, setting, value, key, field);
    }
    return false;
}

/* Stores the table default of setting into field; returns false when out of memory. */
static bool apply_default(const struct setting *setting, void *field)
{
    switch (setting->type) {
    case SETTING_INT:
    case SETTING_BOOL:
        *(int *)field = (int)setting->default_number;
        return true;
    case SETTING_U64:
        *(uint64_t *)field = (uint64_t)setting->default_number;
        return true;
    case SETTING_SIZE:
        *(size_t *)field = (size_t)setting->default_number;
        return true;
    case SETTING_STRING:
        if (setting->default_string == NULL)
            return true;
        *(char **)field = strdup(setting->default_string);
        return *(char **)field != NULL;
    case SETTING_ENUM:
        for (size_t i = 0; setting->names[i] != NULL; i++) {
            if (strcmp(setting->default_string, setting->names[i]) == 0)
                *(int *)field = (int)i;
        }
        return true;
    case SETTING_NAMES:
        return true;   /* an empty list: the field starts zeroed */
    }
    return false;
}

static bool apply_defaults(struct config *config, enum setting_scope scope,
                           struct config_upstream *upstream)
{
    for (size_t i = 0; i < SETTING_COUNT; i++) {
        if (settings[i].scope != scope)
            continue;
        if (!apply_default(&settings[i], field_address(&settings[i], config, upstream)))
            return false;
    }
    return true;
}

/* ---- Walking the parsed file ---- */

static void load_group(struct loader *loader, const config_setting_t *group)
{
    const char *group_name = config_setting_name(group);
    char keys[256];

    if (!config_setting_is_group(group)) {
        report(loader, group, "%s must be a group, but it is %s; write %s = { ... };",
               group_name, type_name(config_setting_type(group)), group_name);
        return;
    }

    for (int i = 0; i < config_setting_length(group); i++) {
        const config_setting_t *value = config_setting_get_elem(group, (unsigned)i);
        const char *name = config_setting_name(value);
        const struct setting *setting = find_setting(group_name, name);

        if (setting == NULL) {
            list_group_keys(group_name, keys, sizeof(keys));
            report(loader, value, "unknown setting %s.%s; %s accepts %s", group_name, name,
                   group_name, keys);
            continue;
        }

        size_t index = (size_t)(setting - settings);
        loader->found[index] = value;
        loader->valid[index] = extract_setting(loader, setting, value, setting->path,
                                               field_address(setting, loader->config, NULL));
    }
}

static void load_upstream(struct loader *loader, const config_setting_t *element, int number)
{
    struct config_upstream *upstream = &loader->config->upstreams[number];
    const config_setting_t *found[SETTING_COUNT] = { NULL };
    char key[64], keys[256];

    if (!apply_defaults(loader->config, SCOPE_UPSTREAM, upstream)) {
        report(loader, element, "upstreams[%d]: out of memory", number);
        return;
    }
    if (!config_setting_is_group(element)) {
        report(loader, element, "upstreams[%d] must be a group, but it is %s; write "
               "{ host = \"...\"; port = ...; }", number,
               type_name(config_setting_type(element)));
        return;
    }

    for (int i = 0; i < config_setting_length(element); i++) {
        const config_setting_t *value = config_setting_get_elem(element, (unsigned)i);
        const char *name = config_setting_name(value);
        const struct setting *setting = find_setting("upstreams", name);

        if (setting == NULL) {
            list_group_keys("upstreams", keys, sizeof(keys));
            report(loader, value, "unknown setting upstreams[%d].%s; each upstream accepts %s",
                   number, name, keys);
            continue;
        }
        found[setting - settings] = value;
        snprintf(key, sizeof(key), "upstreams[%d].%s", number, name);
        extract_setting(loader, setting, value, key,
                        field_address(setting, loader->config, upstream));
    }

    for (size_t i = 0; i < SETTING_COUNT; i++) {
        if (settings[i].scope != SCOPE_UPSTREAM || !(settings[i].flags & SETTING_REQUIRED)
            || found[i] != NULL)
            continue;
        report(loader, element, "upstreams[%d].%s is missing; set it to the %s", number,
               setting_leaf(&settings[i]), settings[i].description);
    }
}

static void load_upstreams(struct loader *loader, const config_setting_t *list)
{
    int count = config_setting_length(list);

    if (!config_setting_is_list(list)) {
        report(loader, list, "upstreams must be a list of groups, but it is %s; write "
               "upstreams = ( { host = \"...\"; port = ...; } );",
               type_name(config_setting_type(list)));
        return;
    }
    if (count > CONFIG_MAX_UPSTREAMS) {
        report(loader, list, "upstreams has %d entries; allowed 1..%d", count,
               CONFIG_MAX_UPSTREAMS);
        count = CONFIG_MAX_UPSTREAMS;
    }
    for (int i = 0; i < count; i++) {
        load_upstream(loader, config_setting_get_elem(list, (unsigned)i), i);
        loader->config->upstream_count = i + 1;
    }
}

static void load_root(struct loader *loader)
{
    const config_setting_t *root = config_root_setting(&loader->libconfig);
    const config_setting_t *upstreams = NULL;
    char groups[256];

    for (int i = 0; i < config_setting_length(root); i++) {
        const config_setting_t *member = config_setting_get_elem(root, (unsigned)i);
        const char *name = config_setting_name(member);

        if (strcmp(name, "upstreams") == 0) {
            upstreams = member;
            load_upstreams(loader, member);
        } else if (strcmp(name, "policies") == 0) {
            loader->policies = member;
        } else if (group_is_known(name)) {
            load_group(loader, member);
        } else {
            list_groups(groups, sizeof(groups));
            report(loader, member, "unknown setting %s; the top level accepts %s and "
                   "policies", name, groups);
        }
    }

    if (upstreams == NULL)
        report(loader, NULL, "upstreams is missing; add at least one upstream, for example "
               "upstreams = ( { host = \"127.0.0.1\"; port = 5001; } );");
    else if (config_setting_is_list(upstreams) && config_setting_length(upstreams) == 0)
        report(loader, upstreams, "upstreams is empty; add at least one "
               "{ host = \"...\"; port = ...; } group");
}

/* Reports each required setting of struct config that the file does not set. */
static void check_required(struct loader *loader)
{
    const config_setting_t *root = config_root_setting(&loader->libconfig);
    char group[64];

    for (size_t i = 0; i < SETTING_COUNT; i++) {
        if (settings[i].scope != SCOPE_CONFIG || !(settings[i].flags & SETTING_REQUIRED)
            || loader->found[i] != NULL)
            continue;
        loader->valid[i] = false;

        snprintf(group, sizeof(group), "%.*s",
                 (int)(strchr(settings[i].path, '.') - settings[i].path), settings[i].path);
        const config_setting_t *parent = config_setting_get_member(root, group);
        /* A parent of the wrong type was reported already. */
        if (parent != NULL && !config_setting_is_group(parent))
            continue;
        report(loader, parent, "%s is missing; set it to the %s (%lld..%lld)", settings[i].path,
               settings[i].description, settings[i].min, settings[i].max);
    }
}

static size_t setting_index(const char *path)
{
    for (size_t i = 0; i < SETTING_COUNT; i++) {
        if (strcmp(settings[i].path, path) == 0)
            return i;
    }
    abort();  /* the caller passed a path that is not in settings[] */
}

/* Returns the line to blame for a cross-field error: the first of the two that is set. */
static const config_setting_t *blame(const struct loader *loader, size_t first, size_t second)
{
    return loader->found[first] != NULL ? loader->found[first] : loader->found[second];
}

/* Checks that no two listeners on one address share a port. */
static void validate_ports(struct loader *loader)
{
    const struct config *config = loader->config;
    size_t admin_port = setting_index("admin.port");
    size_t http_port = setting_index("http.port");
    size_t listen_port = setting_index("listen.port");


    const struct { size_t index; const char *key; const char *address; int port; } ports[] = {
        { listen_port, "listen.port", config->listen_address, config->listen_port },
        { admin_port, "admin.port", config->admin_address, config->admin_port },
        { http_port, "http.port", config->http_address, config->http_port },
    };
    size_t count = sizeof(ports) / sizeof(ports[0]);
    for (size_t i = 0; i < count; i++) {
        for (size_t j = i + 1; j < count; j++) {
            if (!loader->valid[ports[i].index] || !loader->valid[ports[j].index] ||
                ports[i].port == 0 || ports[i].port != ports[j].port ||
                ports[i].address == NULL || ports[j].address == NULL ||
                strcmp(ports[i].address, ports[j].address) != 0)
                continue;
            report(loader, blame(loader, ports[j].index, ports[i].index), "%s = %d is "
                   "already used by %s; give each listener its own port", ports[j].key,
                   ports[j].port, ports[i].key);
        }
    }
}

/* Checks that TLS has the files it needs and that no file is set where it has no effect.
 * Whether the files load is checked when the contexts are built (src/tls.c). */
static void validate_tls(struct loader *loader)
{
    const struct config *config = loader->config;
    size_t mode = setting_index("tls.mode");
    size_t verify_client = setting_index("tls.verify_client");
    size_t ca_file = setting_index("tls.ca_file");
    size_t upstream_cert = setting_index("upstream_tls.cert_file");
    size_t upstream_key = setting_index("upstream_tls.key_file");

    if (loader->valid[mode] && config->tls_mode != TLS_MODE_OFF &&
        (config->tls_cert_file[0] == '\0' || config->tls_key_file[0] == '\0')) {
        report(loader, loader->found[mode], "tls.mode = \"%s\" needs tls.cert_file and "
               "tls.key_file; set them to the paths of the PEM certificate chain and its "
               "private key", tls_mode_names[config->tls_mode]);
    }
    if (loader->valid[verify_client] && config->tls_verify_client &&
        config->tls_ca_file[0] == '\0') {
        report(loader, loader->found[verify_client], "tls.verify_client = true needs "
               "tls.ca_file; set it to the path of the PEM CA certificates that sign client "
               "certificates");
    }
    if (loader->valid[verify_client] && !config->tls_verify_client &&
        config->tls_ca_file[0] != '\0') {
        report(loader, loader->found[ca_file], "tls.ca_file is set but tls.verify_client is "
               "false, so client certificates would not be checked; set verify_client = "
               "true, or remove ca_file");
    }
    int upstream_cert_set = config->upstream_tls_cert_file[0] != '\0';
    int upstream_key_set = config->upstream_tls_key_file[0] != '\0';
    if (upstream_cert_set != upstream_key_set) {
        report(loader, blame(loader, upstream_cert, upstream_key), "upstream_tls.cert_file "
               "and upstream_tls.key_file go together; set both, or neither");
    }
}

/* Makes each relative TLS file path start at the config file's folder, as @include and
 * auth.users_file paths do. */
static void resolve_tls_paths(struct loader *loader)
{
    struct config *config = loader->config;
    char **paths[] = {
        &config->tls_cert_file, &config->tls_key_file, &config->tls_ca_file,
        &config->upstream_tls_ca_file, &config->upstream_tls_cert_file,
        &config->upstream_tls_key_file,
    };

    for (size_t i = 0; i < ARRAY_SIZE(paths); i++) {
        char *path = *paths[i];
        if (path == NULL || path[0] == '\0' || path[0] == '/')
            continue;

        size_t size = strlen(loader->include_dir) + strlen(path) + 2;
        char *joined = malloc(size);
        if (joined == NULL) {
            report(loader, NULL, "out of memory while resolving the TLS file paths");
            return;
        }
        snprintf(joined, size, "%s/%s", loader->include_dir, path);
        free(path);
        *paths[i] = joined;
    }
}

static void validate_cross_fields(struct loader *loader)
{
    const struct config *config = loader->config;
    size_t min = setting_index("pool.reconnect_min_ms");
    size_t max = setting_index("pool.reconnect_max_ms");
    size_t low = setting_index("clients.output_low_watermark");
    size_t high = setting_index("clients.output_high_watermark");

    if (loader->valid[min] && loader->valid[max]
        && config->reconnect_max_ms < config->reconnect_min_ms) {
        report(loader, blame(loader, max, min), "pool.reconnect_max_ms = %d is less than "
               "pool.reconnect_min_ms = %d; set reconnect_max_ms to at least reconnect_min_ms",
               config->reconnect_max_ms, config->reconnect_min_ms);
    }

    size_t target = setting_index("log.target");
    if (loader->valid[target] && config->log_target == LOG_TARGET_FILE &&
        (config->log_file == NULL || config->log_file[0] == '\0')) {
        report(loader, loader->found[target], "log.target = \"file\" needs log.file; set "
               "log.file to the path of the log file");
    }

    validate_ports(loader);
    validate_tls(loader);
    resolve_tls_paths(loader);

    if (loader->valid[low] && loader->valid[high]
        && config->output_low_watermark >= config->output_high_watermark) {
        report(loader, blame(loader, low, high), "clients.output_low_watermark = %zu%s is not "
               "less than clients.output_high_watermark = %zu%s; set the low watermark below "
               "the high one", config->output_low_watermark,
               loader->found[low] == NULL ? " (the default)" : "",
               config->output_high_watermark,
               loader->found[high] == NULL ? " (the default)" : "");
    }
}

/* ---- Authentication ---- */

/* Records each line of text, a buffer of "FILE:LINE: message" lines, as one error. */
static void report_lines(struct loader *loader, const char *text)
{
    char line[ERROR_LINE_MAX];

    while (*text != '\0') {
        size_t length = strcspn(text, "\n");

        snprintf(line, sizeof(line), "%.*s", (int)length, text);
        if (length > 0) {
            loader->error_count++;
            append_error_line(loader, line);
        }
        text += length;
        if (*text == '\n')
            text++;
    }
}

/* Appends text, whole lines, to the warnings of the config being loaded. */
static void add_warnings(struct loader *loader, const char *text)
{
    size_t used = strlen(loader->warnings);

    if (used + strlen(text) + 1 < sizeof(loader->warnings))
        memcpy(loader->warnings + used, text, strlen(text) + 1);
}

/* Builds the policies; an absent list gives an empty set. */
static void load_policies(struct loader *loader)
{
    char errors[4096] = "";

    loader->config->policies = policy_set_parse(loader->policies, errors, sizeof(errors));
    loader->policies_valid = loader->config->policies != NULL;
    if (!loader->policies_valid)
        report_lines(loader, errors[0] != '\0' ? errors : "policies: out of memory\n");
}

/* Reads the users file named by auth.users_file, relative to the config file's folder. */
static void load_users(struct loader *loader)
{
    struct config *config = loader->config;
    char path[PATH_MAX];
    char errors[8192] = "";
    char warnings[2048] = "";

    if (config->users_file[0] == '/')
        snprintf(path, sizeof(path), "%s", config->users_file);
    else
        snprintf(path, sizeof(path), "%s/%s", loader->include_dir, config->users_file);

    config->users = auth_load(path, errors, sizeof(errors), warnings, sizeof(warnings));
    if (config->users == NULL) {
        report_lines(loader, errors);
        return;
    }
    add_warnings(loader, warnings);
    if (loader->policies_valid &&
        auth_check_policies(config->users, config->policies, errors, sizeof(errors)) > 0)
        report_lines(loader, errors);
}

/* Checks that each enabled listener admits someone: users from a file, or anonymous ones. */
static void validate_listener_access(struct loader *loader)
{
    const struct config *config = loader->config;
    const struct { const char *key; int enabled; int anonymous; } listeners[] = {
        { "listen", 1, config->listen_anonymous },
        { "http", config->http_port != 0, config->http_anonymous },
        { "admin", config->admin_port != 0, config->admin_anonymous },
    };

    for (size_t i = 0; i < ARRAY_SIZE(listeners); i++) {
        if (!listeners[i].enabled || listeners[i].anonymous || config->users_file[0] != '\0')
            continue;
        char key[32];
        snprintf(key, sizeof(key), "%s.anonymous", listeners[i].key);
        report(loader, loader->found[setting_index(key)], "%s is false and auth.users_file "
               "is not set, so no one could log in on this listener; set auth.users_file "
               "(docs/security.md) or %s = true", key, key);
    }

    if (config->admin_port != 0 && config->admin_anonymous && config->admin_users.count == 0)
        report(loader, loader->found[setting_index("admin.anonymous")], "admin.anonymous = "
               "true needs admin.users; list the user names allowed to log in without a "
               "password, for example users = ( \"ops\" );");
}

/* Warns when other users may change the config file, which decides who logs in, or read
 * it while it contains an upstream password. */
static void check_file_mode(struct loader *loader)
{
    const struct config *config = loader->config;
    struct stat status;
    int has_password = 0;
    char line[PATH_MAX + 200];

    if (stat(config->path, &status) != 0)
        return;
    unsigned mode = (unsigned)(status.st_mode & 0777);
    if (status.st_mode & (S_IWGRP | S_IWOTH)) {
        snprintf(line, sizeof(line), "%s: other users may change the file (mode %03o), and "
                 "with it who may log in; run chmod 640 on it\n", config->path, mode);
        add_warnings(loader, line);
    }

    for (int i = 0; i < config->upstream_count; i++)
        if (config->upstreams[i].password != NULL && config->upstreams[i].password[0] != '\0')
            has_password = 1;
    if (!has_password || !(status.st_mode & S_IROTH))
        return;
    snprintf(line, sizeof(line), "%s: the file holds upstream passwords and other users may "
             "read it (mode %03o); run chmod 640 on it\n", config->path, mode);
    add_warnings(loader, line);
}

static void validate_auth(struct loader *loader)
{
    struct config *config = loader->config;

    load_policies(loader);
    if (config->users_file != NULL && config->users_file[0] != '\0')
        load_users(loader);

    const char *name = config->default_policy_name;
    if (loader->policies_valid && name != NULL && name[0] != '\0') {
        config->default_policy = policy_find(config->policies, name);
        if (config->default_policy == NULL)
            report(loader, loader->found[setting_index("auth.default_policy")],
                   "auth.default_policy = \"%s\" is not defined in policies; add a policy "
                   "with that name or set default_policy = \"\"", name);
    }

    /* Only a file without other errors: a listener's settings may be among them. */
    if (loader->error_count == 0)
        validate_listener_access(loader);
    check_file_mode(loader);

    size_t delay = setting_index("auth.failure_delay_ms");
    size_t delay_max = setting_index("auth.failure_delay_max_ms");
    if (loader->valid[delay] && loader->valid[delay_max] &&
        config->failure_delay_max_ms < config->failure_delay_ms)
        report(loader, blame(loader, delay_max, delay), "auth.failure_delay_max_ms = %d is "
               "less than auth.failure_delay_ms = %d; set it to at least that",
               config->failure_delay_max_ms, config->failure_delay_ms);
}

/* ---- Entry points ---- */

/* Copies the directory part of path ("." when there is none) for @include look-ups. */
static char *directory_of(const char *path)
{
    const char *slash = strrchr(path, '/');

    if (slash == NULL)
        return strdup(".");
    if (slash == path)
        return strdup("/");
    return strndup(path, (size_t)(slash - path));
}

static bool parse_file(struct loader *loader, const char *path)
{
    FILE *probe = fopen(path, "r");

    /* Open it once first: libconfig reports only "file I/O error", without the reason. */
    if (probe == NULL) {
        report(loader, NULL, "cannot open: %s", strerror(errno));
        return false;
    }
    fclose(probe);

    if (config_read_file(&loader->libconfig, path))
        return true;

    const char *file = config_error_file(&loader->libconfig);
    char file_buffer[PATH_MAX];

    /* An error in an @include file names the file as written; see source_path(). */
    if (file == NULL) {
        file = path;
    } else if (strcmp(file, path) != 0) {
        snprintf(file_buffer, sizeof(file_buffer), "%s/%s", loader->include_dir, file);
        file = file_buffer;
    }
    const char *text = config_error_text(&loader->libconfig);
    const char *hint = "";

    if (strcmp(text, "syntax error") == 0)
        hint = " (check that strings are in double quotes, each setting ends with ';', and "
               "every '{' and '(' is closed)";
    else if (strcmp(text, "duplicate setting name") == 0)
        hint = " (a key or group is set twice in one scope; edit the existing one, for "
               "example the admin or http group of the sample, instead of adding another)";
    else if (strstr(text, "include") != NULL)
        hint = " (an @include path is relative to the directory of the configuration file)";
    report_parse_error(loader, file, config_error_line(&loader->libconfig), "%s%s", text,
                       hint);
    return false;
}

struct config *config_load(const char *path, char *errors, size_t errors_size)
{
    struct loader loader = {
        .errors = errors,
        .errors_size = errors_size,
    };
    char *include_dir = NULL;

    if (errors_size > 0)
        errors[0] = '\0';

    loader.config = calloc(1, sizeof(*loader.config));
    if (loader.config == NULL || (loader.config->path = strdup(path)) == NULL
        || !apply_defaults(loader.config, SCOPE_CONFIG, NULL)
        || (include_dir = directory_of(path)) == NULL) {
        if (errors_size > 0)
            snprintf(errors, errors_size, "%s: out of memory\n", path);
        config_free(loader.config);
        return NULL;
    }
    for (size_t i = 0; i < SETTING_COUNT; i++)
        loader.valid[i] = true;

    config_init(&loader.libconfig);
    config_set_include_dir(&loader.libconfig, include_dir);
    loader.include_dir = include_dir;

    if (parse_file(&loader, path)) {
        load_root(&loader);
        check_required(&loader);
        validate_cross_fields(&loader);
        validate_auth(&loader);
    }

    config_destroy(&loader.libconfig);
    free(include_dir);

    if (loader.error_count > 0) {
        finish_errors(&loader);
        config_free(loader.config);
        return NULL;
    }
    loader.config->warnings = strdup(loader.warnings);
    if (loader.config->warnings == NULL) {
        if (errors_size > 0)
            snprintf(errors, errors_size, "%s: out of memory\n", path);
        config_free(loader.config);
        return NULL;
    }
    return loader.config;
}

void config_free(struct config *config)
{
    if (config == NULL)
        return;
    for (int i = 0; i < CONFIG_MAX_UPSTREAMS; i++) {
        free(config->upstreams[i].host);
        free(config->upstreams[i].user);
        free(config->upstreams[i].password);
    }
    free(config->listen_address);
    free(config->admin_address);
    free_names(&config->admin_users);
    free(config->http_address);
    free(config->health_check_query);
    free(config->tls_cert_file);
    free(config->tls_key_file);
    free(config->tls_ca_file);
    free(config->upstream_tls_ca_file);
    free(config->upstream_tls_server_name);
    free(config->upstream_tls_cert_file);
    free(config->upstream_tls_key_file);
    free(config->log_file);
    free(config->syslog_path);
    free(config->users_file);
    free(config->default_policy_name);
    auth_free(config->users);
    policy_set_free(config->policies);
    free(config->warnings);
    free(config->path);
    free(config);
}
