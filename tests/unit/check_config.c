/*
 * check_config.c - config_load against good and bad files in tests/fixtures/config/.
 */
#include "suites.h"

#include "auth.h"
#include "config.h"
#include "policy.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define ERRORS_SIZE 8192

static const char *source_dir(void)
{
    const char *source = getenv("QMUX_SOURCE_DIR");

    return source != NULL ? source : ".";
}

/* Writes $QMUX_SOURCE_DIR/relative (the source dir defaults to ".") into buffer. */
static const char *source_path(const char *relative, char *buffer, size_t size)
{
    snprintf(buffer, size, "%s/%s", source_dir(), relative);
    return buffer;
}

static const char *fixture_path(const char *name, char *buffer, size_t size)
{
    snprintf(buffer, size, "%s/tests/fixtures/config/%s", source_dir(), name);
    return buffer;
}

static int count_lines(const char *text)
{
    int lines = 0;

    for (const char *p = text; *p != '\0'; p++) {
        if (*p == '\n')
            lines++;
    }
    return lines;
}

/* Loads a fixture that must be valid; fails the test with the error text otherwise. */
static struct config *load_valid(const char *relative)
{
    char path[PATH_MAX];
    char errors[ERRORS_SIZE];

    source_path(relative, path, sizeof(path));
    struct config *config = config_load(path, errors, sizeof(errors));
    ck_assert_msg(config != NULL, "%s did not load:\n%s", path, errors);
    ck_assert_str_eq(errors, "");
    return config;
}

START_TEST(test_minimal_gets_defaults)
{
    struct config *config = load_valid("tests/fixtures/config/minimal.conf");

    ck_assert_str_eq(config->listen_address, "127.0.0.1");
    ck_assert_int_eq(config->listen_port, 5010);
    ck_assert_int_eq(config->listen_backlog, 511);
    ck_assert_int_eq(config->pool_size, 4);
    ck_assert_int_eq(config->pool_capability, 6);
    ck_assert_int_eq(config->reconnect_min_ms, 100);
    ck_assert_int_eq(config->reconnect_max_ms, 10000);
    ck_assert_int_eq(config->connect_timeout_ms, 5000);
    ck_assert_int_eq(config->unavailable_wait_ms, 1000);
    ck_assert_int_eq(config->health_check_interval_ms, 30000);
    ck_assert_int_eq(config->health_check_timeout_ms, 5000);
    ck_assert_str_eq(config->health_check_query, "::");
    ck_assert_int_eq(config->upstream_count, 1);
    ck_assert_str_eq(config->upstreams[0].host, "127.0.0.1");
    ck_assert_int_eq(config->upstreams[0].port, 5001);
    ck_assert_str_eq(config->upstreams[0].user, "");
    ck_assert_str_eq(config->upstreams[0].password, "");
    ck_assert_int_eq(config->max_clients, 10000);
    ck_assert_int_eq(config->max_per_user, 0);
    ck_assert_int_eq(config->handshake_timeout_ms, 10000);
    ck_assert_int_eq(config->idle_timeout_ms, 0);
    ck_assert_int_eq(config->query_timeout_ms, 0);
    ck_assert_int_eq(config->queue_timeout_ms, 0);
    ck_assert_int_eq(config->max_queue, 10000);
    ck_assert_int_eq(config->send_timeout_ms, 60000);
    ck_assert_int_eq(config->compression, COMPRESSION_AUTO);
    ck_assert_int_eq(config->shutdown_timeout_ms, 10000);
    ck_assert_int_eq(config->validate_messages, 1);
    ck_assert_int_eq(config->log_target, LOG_TARGET_STDERR);
    ck_assert_str_eq(config->log_file, "");
    ck_assert_str_eq(config->syslog_path, "/dev/log");
    ck_assert_int_eq(config->log_access, 0);
    ck_assert_int_eq(config->slow_request_ms, 0);
    ck_assert_uint_eq(config->compression_max_size, 64u * 1024 * 1024);
    ck_assert_uint_eq(config->max_message_size, 256u * 1024 * 1024);
    ck_assert_uint_eq(config->output_high_watermark, 8u * 1024 * 1024);
    ck_assert_uint_eq(config->output_low_watermark, 2u * 1024 * 1024);
    ck_assert_uint_eq(config->input_buffer, 64u * 1024);
    ck_assert_uint_eq(config->max_output_total, 256u * 1024 * 1024);
    ck_assert_int_eq(config->log_level, LOG_LEVEL_INFO);
    ck_assert_int_eq(config->tls_mode, TLS_MODE_OFF);
    ck_assert_str_eq(config->tls_cert_file, "");
    ck_assert_str_eq(config->tls_key_file, "");
    ck_assert_str_eq(config->tls_ca_file, "");
    ck_assert_int_eq(config->tls_verify_client, 0);
    ck_assert_int_eq(config->upstream_tls_enabled, 0);
    ck_assert_str_eq(config->upstream_tls_ca_file, "");
    ck_assert_int_eq(config->upstream_tls_verify, 1);
    ck_assert_str_eq(config->upstream_tls_server_name, "");
    ck_assert_str_eq(config->upstream_tls_cert_file, "");
    ck_assert_str_eq(config->upstream_tls_key_file, "");
    ck_assert_ptr_nonnull(strstr(config->path, "minimal.conf"));
    config_free(config);
}
END_TEST

START_TEST(test_full_sets_every_key)
{
    struct config *config = load_valid("tests/fixtures/config/full.conf");

    ck_assert_str_eq(config->listen_address, "0.0.0.0");
    ck_assert_int_eq(config->listen_port, 6010);
    ck_assert_int_eq(config->listen_backlog, 128);
    ck_assert_int_eq(config->listen_anonymous, 1);
    ck_assert_ptr_nonnull(config->users);
    ck_assert_uint_eq(auth_user_count(config->users), 1);
    ck_assert_int_eq(config->auth_workers, 3);
    ck_assert_int_eq(config->free_failures, 5);
    ck_assert_int_eq(config->failure_delay_ms, 100);
    ck_assert_int_eq(config->failure_delay_max_ms, 5000);
    ck_assert_uint_eq(policy_count(config->policies), 2);
    ck_assert_ptr_eq(config->default_policy, policy_find(config->policies, "readonly"));
    ck_assert_ptr_nonnull(strstr(config->warnings, "unsalted MD5"));
    ck_assert_int_eq(config->pool_size, 8);
    ck_assert_int_eq(config->pool_capability, 3);
    ck_assert_int_eq(config->reconnect_min_ms, 50);
    ck_assert_int_eq(config->reconnect_max_ms, 20000);
    ck_assert_int_eq(config->connect_timeout_ms, 2000);
    ck_assert_int_eq(config->unavailable_wait_ms, 250);
    ck_assert_int_eq(config->health_check_interval_ms, 0);
    ck_assert_int_eq(config->health_check_timeout_ms, 700);
    ck_assert_str_eq(config->health_check_query, "1b");
    ck_assert_int_eq(config->upstream_count, 2);
    ck_assert_str_eq(config->upstreams[0].host, "127.0.0.1");
    ck_assert_int_eq(config->upstreams[0].port, 5001);
    ck_assert_str_eq(config->upstreams[0].user, "qmux");
    ck_assert_str_eq(config->upstreams[0].password, "secret");
    ck_assert_str_eq(config->upstreams[1].host, "kdb-b.example");
    ck_assert_int_eq(config->upstreams[1].port, 5002);
    ck_assert_str_eq(config->upstreams[1].user, "");
    ck_assert_str_eq(config->upstreams[1].password, "");
    ck_assert_int_eq(config->max_clients, 500);
    ck_assert_int_eq(config->max_per_user, 9);
    ck_assert_int_eq(config->handshake_timeout_ms, 0);
    ck_assert_int_eq(config->idle_timeout_ms, 90000);
    ck_assert_int_eq(config->query_timeout_ms, 30000);
    ck_assert_int_eq(config->queue_timeout_ms, 15000);
    ck_assert_int_eq(config->max_queue, 77);
    ck_assert_int_eq(config->send_timeout_ms, 0);
    ck_assert_int_eq(config->compression, COMPRESSION_NEVER);
    ck_assert_int_eq(config->shutdown_timeout_ms, 2500);
    ck_assert_int_eq(config->validate_messages, 0);
    ck_assert_int_eq(config->log_target, LOG_TARGET_FILE);
    ck_assert_str_eq(config->log_file, "/var/log/qmux/qmux.log");
    ck_assert_int_eq(config->log_access, 1);
    ck_assert_int_eq(config->slow_request_ms, 250);
    ck_assert_uint_eq(config->compression_max_size, 4096);
    /* Written as 1099511627776L: the 64-bit form reaches the 1 TiB maximum. */
    ck_assert_uint_eq(config->max_message_size, 1099511627776ull);
    ck_assert_uint_eq(config->output_high_watermark, 2097152);
    ck_assert_uint_eq(config->output_low_watermark, 524288);
    ck_assert_uint_eq(config->input_buffer, 0x20000);
    ck_assert_int_eq(config->log_level, LOG_LEVEL_DEBUG);
    ck_assert_int_eq(config->tls_mode, TLS_MODE_ON);
    ck_assert_str_eq(config->tls_cert_file, "/etc/qmux/tls/server.pem");
    ck_assert_str_eq(config->tls_key_file, "/etc/qmux/tls/server.key");
    ck_assert_str_eq(config->tls_ca_file, "/etc/qmux/tls/clients-ca.pem");
    ck_assert_int_eq(config->tls_verify_client, 1);
    ck_assert_int_eq(config->upstream_tls_enabled, 1);
    ck_assert_str_eq(config->upstream_tls_ca_file, "/etc/qmux/tls/kdb-ca.pem");
    ck_assert_int_eq(config->upstream_tls_verify, 0);
    ck_assert_str_eq(config->upstream_tls_server_name, "kdb.example");
    ck_assert_str_eq(config->upstream_tls_cert_file, "/etc/qmux/tls/qmux-client.pem");
    ck_assert_str_eq(config->upstream_tls_key_file, "/etc/qmux/tls/qmux-client.key");
    config_free(config);
}
END_TEST

/* Copies the file at relative into folder. */
static void copy_into(const char *relative, const char *folder, const char *name)
{
    char source[PATH_MAX];
    char target[PATH_MAX];
    char buffer[4096];
    size_t length;

    snprintf(target, sizeof(target), "%s/%s", folder, name);
    FILE *in = fopen(source_path(relative, source, sizeof(source)), "r");
    FILE *out = fopen(target, "w");
    ck_assert_ptr_nonnull(in);
    ck_assert_ptr_nonnull(out);
    while ((length = fread(buffer, 1, sizeof(buffer), in)) > 0)
        ck_assert_uint_eq(fwrite(buffer, 1, length, out), length);
    fclose(in);
    fclose(out);
}

/* The sample names the users file "users" beside it, as /etc/qmux/users once installed. */
START_TEST(test_tls_relative_paths)
{
    struct config *config = load_valid("tests/fixtures/config/tls_relative.conf");
    char expected[PATH_MAX];

    fixture_path("tls/server.pem", expected, sizeof(expected));
    ck_assert_str_eq(config->tls_cert_file, expected);
    fixture_path("tls/server.key", expected, sizeof(expected));
    ck_assert_str_eq(config->tls_key_file, expected);
    ck_assert_str_eq(config->tls_ca_file, "");
    ck_assert_str_eq(config->upstream_tls_ca_file, "/etc/qmux/tls/kdb-ca.pem");
    fixture_path("../tls/qmux-client.pem", expected, sizeof(expected));
    ck_assert_str_eq(config->upstream_tls_cert_file, expected);
    fixture_path("qmux-client.key", expected, sizeof(expected));
    ck_assert_str_eq(config->upstream_tls_key_file, expected);
    config_free(config);
}
END_TEST

START_TEST(test_sample_config_loads)
{
    char folder[] = "/tmp/qmux-check-sample-XXXXXX";
    char path[PATH_MAX];
    char errors[ERRORS_SIZE];

    ck_assert_ptr_nonnull(mkdtemp(folder));
    copy_into("conf/qmux.conf", folder, "qmux.conf");
    snprintf(path, sizeof(path), "%s/qmux.conf", folder);
    struct config *config = config_load(path, errors, sizeof(errors));
    ck_assert_ptr_null(config);
    ck_assert_ptr_nonnull(strstr(errors, "/users: failed to open the users file"));

    snprintf(path, sizeof(path), "%s/users", folder);
    FILE *users = fopen(path, "w");
    ck_assert_ptr_nonnull(users);
    fputs("alice:5ebe2294ecd0e0f08eab7690d2a6ee69:admin\n", users);
    fclose(users);
    snprintf(path, sizeof(path), "%s/qmux.conf", folder);
    config = config_load(path, errors, sizeof(errors));
    ck_assert_msg(config != NULL, "%s did not load:\n%s", path, errors);
    ck_assert_str_eq(config->listen_address, "127.0.0.1");
    ck_assert_int_eq(config->listen_port, 5010);
    ck_assert_int_eq(config->listen_anonymous, 0);
    ck_assert_uint_eq(auth_user_count(config->users), 1);
    ck_assert_int_eq(config->pool_size, 4);
    ck_assert_int_eq(config->upstream_count, 1);
    ck_assert_str_eq(config->upstreams[0].host, "127.0.0.1");
    ck_assert_int_eq(config->upstreams[0].port, 5001);
    ck_assert_str_eq(config->upstreams[0].user, "qmux");
    ck_assert_str_eq(config->upstreams[0].password, "secret");
    config_free(config);

    snprintf(path, sizeof(path), "%s/users", folder);
    unlink(path);
    snprintf(path, sizeof(path), "%s/qmux.conf", folder);
    unlink(path);
    rmdir(folder);
}
END_TEST

/*
 * Invalid files: each expected string must occur in the error text, and the text must have
 * exactly line_count lines. Strings start with "NAME:LINE: " to pin the reported line.
 */
struct invalid_case {
    const char *fixture;
    int line_count;
    const char *expected[5];
};

static const struct invalid_case invalid_cases[] = {
    { "missing_listen_port.conf", 1,
      { "missing_listen_port.conf:1: listen.port is missing", "(1..65535)" } },
    { "listen_port_zero.conf", 1,
      { "listen_port_zero.conf:2: listen.port = 0 is out of range; allowed 1..65535" } },
    { "listen_port_70000.conf", 1,
      { "listen_port_70000.conf:1: listen.port = 70000 is out of range; allowed 1..65535" } },
    { "pool_size_zero.conf", 1,
      { "pool_size_zero.conf:3: pool.size = 0 is out of range; allowed 1..1024" } },
    { "unknown_key.conf", 1,
      { "unknown_key.conf:2: unknown setting pool.sise;", "accepts size, capability" } },
    { "unknown_group.conf", 1,
      { "unknown_group.conf:3: unknown setting logging;",
        "listen, pool, upstreams, clients, admin, http, auth, tls, upstream_tls, log" } },
    { "unknown_upstream_key.conf", 1,
      { "unknown_upstream_key.conf:3: unknown setting upstreams[0].pasword;",
        "host, port, user, password" } },
    { "wrong_type.conf", 1,
      { "wrong_type.conf:3: pool.size must be an integer, but it is a string", "1..1024" } },
    { "wrong_group_type.conf", 1,
      { "wrong_group_type.conf:2: pool must be a group, but it is an integer" } },
    { "syntax_error.conf", 1,
      { "syntax_error.conf:3: syntax error" } },
    { "no_upstreams.conf", 1,
      { "no_upstreams.conf: upstreams is missing; add at least one upstream" } },
    { "empty_upstreams.conf", 1,
      { "empty_upstreams.conf:2: upstreams is empty" } },
    { "upstream_invalid.conf", 4,
      { "upstream_invalid.conf:3: upstreams[0].host is empty",
        "upstream_invalid.conf:4: upstreams[1].port = 65536 is out of range; allowed 1..65535",
        "upstream_invalid.conf:4: upstreams[1].password must be a string, but it is an integer",
        "upstream_invalid.conf:5: upstreams[2].host is missing" } },
    { "watermarks_equal.conf", 1,
      { "watermarks_equal.conf:5: clients.output_low_watermark = 65536 is not less than "
        "clients.output_high_watermark = 65536" } },
    { "reconnect_max_below_min.conf", 1,
      { "reconnect_max_below_min.conf:5: pool.reconnect_max_ms = 200 is less than "
        "pool.reconnect_min_ms = 500" } },
    { "bad_log_level.conf", 1,
      { "bad_log_level.conf:3: log.level = \"verbose\" is invalid",
        "\"error\", \"warn\", \"info\", \"debug\"" } },
    { "size_overflow.conf", 1,
      { "size_overflow.conf:4: clients.max_message_size does not fit in a 32-bit integer",
        "1024..1099511627776", "L suffix" } },
    { "size_out_of_range.conf", 1,
      { "size_out_of_range.conf:4: clients.max_message_size = 2199023255552 bytes is out of "
        "range; allowed 1024 (1 KiB)..1099511627776 (1 TiB) bytes" } },
    { "with_include.conf", 1,
      { "/included_upstreams.inc:2: upstreams[0].port = 99999 is out of range" } },
    { "tls_mode_without_cert.conf", 1,
      { "tls_mode_without_cert.conf:4: tls.mode = \"only\" needs tls.cert_file and "
        "tls.key_file" } },
    { "tls_bad_mode.conf", 1,
      { "tls_bad_mode.conf:3: tls.mode = \"yes\" is invalid; allowed \"off\", \"on\", "
        "\"only\"" } },
    { "tls_verify_without_ca.conf", 1,
      { "tls_verify_without_ca.conf:7: tls.verify_client = true needs tls.ca_file" } },
    { "tls_ca_without_verify.conf", 1,
      { "tls_ca_without_verify.conf:7: tls.ca_file is set but tls.verify_client is false" } },
    { "upstream_tls_cert_without_key.conf", 1,
      { "upstream_tls_cert_without_key.conf:5: upstream_tls.cert_file and "
        "upstream_tls.key_file go together" } },
    { "many_errors.conf", 5,
      { "many_errors.conf:1: listen.port = 0", "many_errors.conf:2: pool.size = 0",
        "many_errors.conf:2: unknown setting pool.sise",
        "many_errors.conf:4: log.level must be a string, but it is an integer",
        "many_errors.conf:3: upstreams is empty" } },
};

START_TEST(test_invalid_case)
{
    const struct invalid_case *test = &invalid_cases[_i];
    char path[PATH_MAX];
    char errors[ERRORS_SIZE];

    fixture_path(test->fixture, path, sizeof(path));
    struct config *config = config_load(path, errors, sizeof(errors));

    ck_assert_msg(config == NULL, "%s loaded, but it is invalid", test->fixture);
    for (size_t i = 0; i < sizeof(test->expected) / sizeof(test->expected[0]); i++) {
        if (test->expected[i] == NULL)
            break;
        ck_assert_msg(strstr(errors, test->expected[i]) != NULL,
                      "%s: expected \"%s\" in the errors:\n%s", test->fixture,
                      test->expected[i], errors);
    }
    ck_assert_msg(count_lines(errors) == test->line_count,
                  "%s: expected %d error lines, got:\n%s", test->fixture, test->line_count,
                  errors);
}
END_TEST

START_TEST(test_password_not_in_errors)
{
    char path[PATH_MAX];
    char errors[ERRORS_SIZE];

    fixture_path("upstream_invalid.conf", path, sizeof(path));
    ck_assert_ptr_null(config_load(path, errors, sizeof(errors)));
    ck_assert_ptr_nonnull(strstr(errors, "upstreams[1].password"));
    ck_assert_ptr_null(strstr(errors, "hunter2-secret"));
    ck_assert_ptr_null(strstr(errors, "123456789"));
}
END_TEST

START_TEST(test_missing_file_reported)
{
    char path[PATH_MAX];
    char errors[ERRORS_SIZE];

    fixture_path("does-not-exist.conf", path, sizeof(path));
    ck_assert_ptr_null(config_load(path, errors, sizeof(errors)));
    ck_assert_ptr_nonnull(strstr(errors, "does-not-exist.conf: cannot open: "));
    ck_assert_ptr_nonnull(strstr(errors, "No such file or directory"));
}
END_TEST

START_TEST(test_small_error_buffer_truncates)
{
    char path[PATH_MAX];

    fixture_path("many_errors.conf", path, sizeof(path));
    /* Room for the first error line and the summary line, but not for a second error. */
    size_t size = 2 * strlen(path) + 120;
    char *errors = malloc(size);
    ck_assert_ptr_nonnull(errors);
    memset(errors, 'x', size);

    ck_assert_ptr_null(config_load(path, errors, size));
    ck_assert_ptr_nonnull(memchr(errors, '\0', size));
    ck_assert_int_eq(count_lines(errors), 2);
    ck_assert_ptr_nonnull(strstr(errors, "many_errors.conf:1: listen.port = 0"));
    ck_assert_ptr_nonnull(strstr(errors, ": 4 more errors did not fit in the error buffer\n"));
    free(errors);

    /* No buffer at all still reports failure. */
    ck_assert_ptr_null(config_load(path, NULL, 0));
}
END_TEST

START_TEST(test_known_keys_listed)
{
    const char *const *keys = config_known_keys();
    static const char *const expected[] = {
        "listen.address", "listen.port", "listen.backlog", "listen.anonymous",
        "pool.size", "pool.capability", "pool.reconnect_min_ms", "pool.reconnect_max_ms",
        "pool.connect_timeout_ms", "pool.unavailable_wait_ms", "pool.health_check_interval_ms",
        "pool.health_check_timeout_ms", "pool.health_check_query",
        "upstreams.host", "upstreams.port", "upstreams.user", "upstreams.password",
        "clients.max_clients", "clients.max_per_user", "clients.handshake_timeout_ms", "clients.idle_timeout_ms",
        "clients.query_timeout_ms", "clients.queue_timeout_ms", "clients.max_queue",
        "clients.shutdown_timeout_ms", "clients.send_timeout_ms", "clients.compression", "clients.compression_max_size",
        "clients.validate_messages", "clients.max_message_size",
        "clients.output_high_watermark", "clients.output_low_watermark",
        "clients.max_output_total", "clients.input_buffer",
        "admin.address", "admin.port", "admin.users", "admin.anonymous",
        "http.address", "http.port", "http.max_request_size", "http.max_response_size",
        "http.request_timeout_ms", "http.anonymous",
        "auth.users_file", "auth.default_policy", "auth.free_failures", "auth.failure_delay_ms",
        "auth.failure_delay_max_ms", "auth.workers",
        "tls.mode", "tls.cert_file", "tls.key_file", "tls.ca_file", "tls.verify_client",
        "upstream_tls.enabled", "upstream_tls.ca_file", "upstream_tls.verify",
        "upstream_tls.server_name", "upstream_tls.cert_file", "upstream_tls.key_file",
        "log.level", "log.target", "log.file", "log.syslog_path", "log.access", "log.slow_request_ms",
        "policies.name", "policies.mode", "policies.entries",
    };
    size_t count = sizeof(expected) / sizeof(expected[0]);

    for (size_t i = 0; i < count; i++) {
        ck_assert_ptr_nonnull(keys[i]);
        ck_assert_str_eq(keys[i], expected[i]);
    }
    ck_assert_ptr_null(keys[count]);
}
END_TEST

/* Reads a whole file into a new string, or fails the test. */
static char *read_text(const char *relative)
{
    char path[PATH_MAX];
    FILE *stream = fopen(source_path(relative, path, sizeof(path)), "r");

    ck_assert_msg(stream != NULL, "cannot open %s", path);
    fseek(stream, 0, SEEK_END);
    long size = ftell(stream);
    ck_assert_int_ge(size, 0);
    rewind(stream);
    char *text = calloc(1, (size_t)size + 1);
    ck_assert_ptr_nonnull(text);
    ck_assert_uint_eq(fread(text, 1, (size_t)size, stream), (size_t)size);
    fclose(stream);
    return text;
}

START_TEST(test_known_keys_documented)
{
    char *sample = read_text("conf/qmux.conf");
    char *manual = read_text("man/qmux.conf.5");
    char needle[128];

    for (const char *const *key = config_known_keys(); *key != NULL; key++) {
        const char *leaf = strchr(*key, '.') + 1;

        snprintf(needle, sizeof(needle), "%s = ", leaf);
        ck_assert_msg(strstr(sample, needle) != NULL, "conf/qmux.conf does not set %s", *key);
        snprintf(needle, sizeof(needle), ".It Cm %s ", leaf);
        ck_assert_msg(strstr(manual, needle) != NULL,
                      "man/qmux.conf.5 has no \".It Cm %s\" entry for %s", leaf, *key);
    }
    free(sample);
    free(manual);
}
END_TEST

START_TEST(test_log_level_names)
{
    ck_assert_str_eq(config_log_level_name(LOG_LEVEL_ERROR), "error");
    ck_assert_str_eq(config_log_level_name(LOG_LEVEL_WARN), "warn");
    ck_assert_str_eq(config_log_level_name(LOG_LEVEL_INFO), "info");
    ck_assert_str_eq(config_log_level_name(LOG_LEVEL_DEBUG), "debug");
    ck_assert_str_eq(config_log_level_name(-1), "unknown");
    ck_assert_str_eq(config_log_level_name(4), "unknown");
}
END_TEST

START_TEST(test_free_accepts_null)
{
    config_free(NULL);
}
END_TEST

Suite *config_suite(void)
{
    Suite *suite = suite_create("config");
    TCase *valid = tcase_create("valid");
    TCase *invalid = tcase_create("invalid");
    TCase *keys = tcase_create("keys");

    tcase_add_test(valid, test_minimal_gets_defaults);
    tcase_add_test(valid, test_full_sets_every_key);
    tcase_add_test(valid, test_sample_config_loads);
    tcase_add_test(valid, test_tls_relative_paths);
    suite_add_tcase(suite, valid);

    tcase_add_loop_test(invalid, test_invalid_case, 0,
                        (int)(sizeof(invalid_cases) / sizeof(invalid_cases[0])));
    tcase_add_test(invalid, test_password_not_in_errors);
    tcase_add_test(invalid, test_missing_file_reported);
    tcase_add_test(invalid, test_small_error_buffer_truncates);
    suite_add_tcase(suite, invalid);

    tcase_add_test(keys, test_known_keys_listed);
    tcase_add_test(keys, test_known_keys_documented);
    tcase_add_test(keys, test_log_level_names);
    tcase_add_test(keys, test_free_accepts_null);
    suite_add_tcase(suite, keys);

    return suite;
}
