/*
 * config.h - qmux configuration: loading a libconfig file into a validated struct.
 *
 * Loading runs in phases: libconfig parse (errors carry file:line), typed extraction with
 * range checks against one table of settings, then cross-field validation. Every error is
 * collected before loading fails, so an operator fixes a file in one pass.
 */
#ifndef QMUX_CONFIG_H
#define QMUX_CONFIG_H

#include <stddef.h>
#include <stdint.h>

#define CONFIG_MAX_UPSTREAMS 64

struct auth_db;
struct policy;
struct policy_set;

enum log_level {
    LOG_LEVEL_ERROR = 0,
    LOG_LEVEL_WARN,
    LOG_LEVEL_INFO,
    LOG_LEVEL_DEBUG,
};

enum log_target {
    LOG_TARGET_STDERR = 0,
    LOG_TARGET_SYSLOG,
    LOG_TARGET_FILE,
};

enum tls_mode {
    TLS_MODE_OFF = 0,        /* plain kdb+ IPC only */
    TLS_MODE_ON,             /* plain and TLS on one port, distinguished by the first byte */
    TLS_MODE_ONLY,           /* TLS only; a plain client is rejected */
};

enum compression_mode {
    COMPRESSION_NEVER = 0,   /* relay responses as the upstream sent them */
    COMPRESSION_AUTO,        /* kdb+'s rule: compress for clients on another host */
    COMPRESSION_ALWAYS,      /* as auto, for every client that can read compression */
};

/* A list of strings, as in users = ( "ops", "alice" ); */
struct config_names {
    char **items;          /* count strings, each owned by the config */
    int count;
};

/* Limits of a list of names: entries, and bytes of one name without its NUL. */
#define CONFIG_MAX_NAMES 64
#define CONFIG_MAX_NAME_LENGTH 63

struct config_upstream {
    char *host;            /* host name or numeric address */
    int port;              /* 1..65535 */
    char *user;            /* login sent in the handshake; may be empty */
    char *password;        /* never logged */
};

struct config {
    char *path;                      /* file the config was read from */

    /* listen = { address; port; backlog; } */
    char *listen_address;            /* default "127.0.0.1" */
    int listen_port;                 /* required, 1..65535 */
    int listen_backlog;              /* default 511, 1..65535 */
    int listen_anonymous;            /* clients without an account log in; default false */

    /* pool = { ... } */
    int pool_size;                   /* connections per upstream; default 4, 1..1024 */
    int pool_capability;             /* capability qmux requests from upstreams; default 6, 1..6 */
    int reconnect_min_ms;            /* first reconnect delay; default 100, 1..600000 */
    int reconnect_max_ms;            /* backoff cap; default 10000, >= reconnect_min_ms, <= 3600000 */
    int connect_timeout_ms;          /* connect plus handshake; default 5000, 1..600000 */
    int unavailable_wait_ms;         /* longest wait for a connection while none is logged
                                        in; default 1000, 0..3600000 */
    int health_check_interval_ms;    /* idle time before a health-check query; default
                                        30000, 0 (off)..86400000 */
    int health_check_timeout_ms;     /* answer time allowed; default 5000, 1..600000 */
    char *health_check_query;        /* q text sent as a sync request; default "::" */

    /* upstreams = ( { host; port; user; password; }, ... ) at least one */
    struct config_upstream upstreams[CONFIG_MAX_UPSTREAMS];
    int upstream_count;

    /* clients = { ... } */
    int max_clients;                 /* default 10000, 1..1000000 */
    int max_per_user;                /* connections of one user name; default 0 (no limit),
                                        0..1000000 */
    int handshake_timeout_ms;        /* default 10000, 0 (off)..3600000 */
    int idle_timeout_ms;             /* close a client idle this long; default 0 (off),
                                        0..86400000 */
    int query_timeout_ms;            /* answer time allowed per request; default 0 (off),
                                        0..86400000 */
    int queue_timeout_ms;            /* longest wait in the queue; default 0 (off),
                                        0..86400000 */
    int max_queue;                   /* requests waiting at once; default 10000, 1..1000000 */
    int shutdown_timeout_ms;         /* on SIGTERM, time allowed for requests in flight;
                                        default 10000, 0..3600000 */
    int send_timeout_ms;             /* close a client whose output makes no progress this
                                        long; default 60000, 0 (off)..86400000 */
    int compression;                 /* enum compression_mode; default auto */
    uint64_t compression_max_size;   /* largest response compressed or decompressed for a
                                        client; default 64 MiB, 2 KiB..4 GiB */
    int validate_messages;           /* decode each client message before forwarding it;
                                        default true */
    uint64_t max_message_size;       /* largest client request, bytes; default 256 MiB,
                                        1 KiB..1 TiB */
    size_t output_high_watermark;    /* stop reading the upstream when the client's output
                                        buffer holds this many bytes; default 8 MiB,
                                        4 KiB..1 GiB */
    size_t output_low_watermark;     /* resume reading below this; default 2 MiB,
                                        < output_high_watermark */
    uint64_t max_output_total;       /* bytes in all client output buffers together before
                                        upstream reads pause; default 256 MiB,
                                        1 MiB..1 TiB */
    size_t input_buffer;             /* client bytes read ahead while a request is in
                                        flight; default 64 KiB, 1 KiB..64 MiB */

    /* admin = { address; port; users; } the admin console (src/admin.c) */
    char *admin_address;             /* default "127.0.0.1" */
    int admin_port;                  /* default 0 (off), 0..65535 */
    struct config_names admin_users; /* user names allowed to log in; default none (any
                                        user with the admin option) */
    int admin_anonymous;             /* admin.users log in without a password; default false */

    /* http = { ... } the metrics, health and query endpoint (src/http.c, src/gateway.c) */
    char *http_address;              /* default "127.0.0.1" */
    int http_port;                   /* default 0 (off), 0..65535 */
    uint64_t http_max_request_size;  /* largest query of GET or POST /q, bytes; default
                                        1 MiB, 1 KiB..1 GiB */
    uint64_t http_max_response_size; /* largest kdb+ response to an HTTP query, held whole
                                        while it is rendered; default 256 MiB,
                                        1 KiB..2 GiB */
    int http_request_timeout_ms;     /* time allowed for the response to an HTTP query;
                                        default 60000, 1..86400000 */
    int http_anonymous;              /* queries without an account are served; default
                                        false */

    /* auth = { users_file; default_policy; workers; } and policies = ( ... ) (docs/security.md) */
    char *users_file;                /* default "" (no accounts) */
    char *default_policy_name;       /* default "" (every query allowed) */
    int auth_workers;                /* password-checking threads; default 2, 1..64 */
    int free_failures;               /* failed logins of an address without delay;
                                        default 3, 0..1000 */
    int failure_delay_ms;            /* first delay, doubling per failure; default 250,
                                        0 (off)..60000 */
    int failure_delay_max_ms;        /* maximum delay; default 30000, >= failure_delay_ms */
    struct auth_db *users;           /* the loaded users file, or NULL; one reference */
    struct policy_set *policies;     /* never NULL after a successful load */
    const struct policy *default_policy;  /* in policies, or NULL to allow everything */
    char *warnings;                  /* lines to log after loading ("" when none) */

    /* tls = { ... } TLS for clients on the listen port (src/tls.c) */
    int tls_mode;                    /* enum tls_mode; default off */
    char *tls_cert_file;             /* PEM certificate chain; required unless mode is off */
    char *tls_key_file;              /* PEM private key of that certificate; required unless
                                        mode is off */
    char *tls_ca_file;               /* PEM CA certificates that sign client certificates;
                                        default "", required by verify_client */
    int tls_verify_client;           /* require a client certificate signed by tls_ca_file;
                                        default false */

    /* upstream_tls = { ... } TLS to every upstream (src/tls.c) */
    int upstream_tls_enabled;        /* default false */
    char *upstream_tls_ca_file;      /* PEM CA certificates; default "", the system's */
    int upstream_tls_verify;         /* check the upstream's certificate and name; default
                                        true */
    char *upstream_tls_server_name;  /* name sent and checked; default "", each upstream's
                                        host */
    char *upstream_tls_cert_file;    /* client certificate qmux presents; default "" */
    char *upstream_tls_key_file;     /* its private key; set with cert_file */

    /* log = { ... } */
    int log_level;                   /* "error", "warn", "info" (default), "debug" */
    int log_target;                  /* enum log_target; default stderr */
    char *log_file;                  /* path for LOG_TARGET_FILE; default "" */
    char *syslog_path;               /* socket for LOG_TARGET_SYSLOG; default "/dev/log" */
    int log_access;                  /* access line per request at info; default false */
    int slow_request_ms;             /* warn about slower requests; default 0 (off) */
};

/*
 * Loads and validates path into a newly allocated config. On failure returns NULL and
 * writes one message per line into errors (each "FILE:LINE: message", naming the key, the
 * value and the allowed range); errors is always NUL-terminated when errors_size > 0.
 * A message about something absent carries the line of the enclosing group, or no line
 * ("FILE: message") when that group is absent too. When errors_size is too small, whole
 * lines are dropped and the last line says how many. No message contains a string value
 * of user or password.
 */
struct config *config_load(const char *path, char *errors, size_t errors_size);

/* Frees a config returned by config_load. NULL is ignored. */
void config_free(struct config *config);

/* Returns the name of a log level ("info"), or "unknown". */
const char *config_log_level_name(int level);

/*
 * Returns every setting path config_load accepts, as a NULL-terminated static array,
 * grouped by section ("listen.address", ..., "log.level"). Members of each upstream group are
 * listed once, as "upstreams.host", "upstreams.port", "upstreams.user" and
 * "upstreams.password". Intended for checks that the sample config and qmux.conf(5) name
 * every key. Not thread-safe on the first call.
 */
const char *const *config_known_keys(void);

/*
 * Calls visit(ctx, key, value) for every setting of config in the order of
 * config_known_keys(), with the value as text: numbers in decimal, booleans as "true" or
 * "false", enumerations by name, a list of names joined with ", ". Upstream settings are
 * visited once per upstream as "upstreams[N].host". Passwords are visited as "********",
 * so the output is safe to show. Stops early and returns the first nonzero result of
 * visit; returns 0 otherwise.
 */
int config_each_value(const struct config *config,
                      int (*visit)(void *ctx, const char *key, const char *value), void *ctx);

#endif
