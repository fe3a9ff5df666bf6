/*
 * main.c - command line, start-up, signal handling and shutdown of the qmux daemon.
 */
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include <event2/dns.h>
#include <event2/event.h>
#include <event2/listener.h>

#include "admin.h"
#include "client.h"
#include "config.h"
#include "http.h"
#include "lifecycle.h"
#include "log.h"
#include "login.h"
#include "pool.h"
#include "qmux.h"
#include "tls.h"
#include "upstream.h"
#include "users.h"

/* Exit statuses, documented in qmux(8). */
enum {
    EXIT_OK = 0,
    EXIT_CONFIG = 1,
    EXIT_USAGE = 2,
    EXIT_STARTUP = 3,
};

/* File descriptors beyond clients and upstream connections: listener, stdio, DNS, logs. */
#define FD_RESERVE 32

static void usage(FILE *out)
{
    fprintf(out,
            "usage: qmux [-t] [-f] -c FILE\n"
            "       qmux --version | --help\n"
            "\n"
            "  -c, --config FILE  configuration file (libconfig syntax), required\n"
            "  -t, --test         check the configuration, print the result and exit\n"
            "                     (0 valid, 1 invalid)\n"
            "  -f, --foreground   run in the foreground (qmux always does; accepted for\n"
            "                     familiarity)\n"
            "  -V, --version      print the version and exit\n"
            "  -h, --help         print this help and exit\n"
            "\n"
            "Exit statuses: 0 success, 1 invalid configuration, 2 usage error,\n"
            "3 start-up failure (for example the listen port is in use).\n");
}

static void output_resume_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    (void)arg;
    upconn_resume_paused_globally();
}

static void reaper_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    (void)arg;
    client_reap();
}

/* Raises the open-file limit to its hard maximum and logs the budget against it. */
static void check_fd_budget(const struct config *config)
{
    struct rlimit limit;

    if (getrlimit(RLIMIT_NOFILE, &limit) != 0)
        return;
    if (limit.rlim_cur < limit.rlim_max) {
        limit.rlim_cur = limit.rlim_max;
        setrlimit(RLIMIT_NOFILE, &limit);
        getrlimit(RLIMIT_NOFILE, &limit);
    }

    unsigned long long need = (unsigned long long)config->max_clients +
                              (unsigned long long)config->upstream_count * config->pool_size +
                              FD_RESERVE;
    if (need > (unsigned long long)limit.rlim_cur)
        log_warn("file descriptors: up to %llu needed (clients.max_clients %d + upstream "
                 "connections + %d reserve) but RLIMIT_NOFILE is %llu; raise LimitNOFILE or "
                 "ulimit -n, or lower clients.max_clients", need, config->max_clients,
                 FD_RESERVE, (unsigned long long)limit.rlim_cur);
    else
        log_info("file descriptors: up to %llu needed, RLIMIT_NOFILE is %llu", need,
                 (unsigned long long)limit.rlim_cur);
}

static struct evdns_base *create_dns(void)
{
    int flags = EVDNS_BASE_INITIALIZE_NAMESERVERS | EVDNS_BASE_DISABLE_WHEN_INACTIVE;
    struct evdns_base *dns = evdns_base_new(qmux.base, flags);

    /* Without /etc/resolv.conf, numeric addresses and /etc/hosts still resolve. */
    if (dns == NULL) {
        dns = evdns_base_new(qmux.base, EVDNS_BASE_DISABLE_WHEN_INACTIVE);
        if (dns != NULL)
            evdns_base_load_hosts(dns, NULL);
    }
    return dns;
}

static int start(void)
{
    log_capture_libevent();
    qmux.base = event_base_new();
    if (qmux.base == NULL) {
        log_error("cannot create the event loop");
        return -1;
    }
    qmux.dns = create_dns();
    qmux.reaper = event_new(qmux.base, -1, 0, reaper_cb, NULL);
    if (qmux.dns == NULL || qmux.reaper == NULL) {
        log_error("cannot create the resolver or the reaper event (out of memory)");
        return -1;
    }
    TAILQ_INIT(&qmux.clients);
    TAILQ_INIT(&qmux.closed_clients);
    TAILQ_INIT(&qmux.output_waiters);
    qmux.output_resume = event_new(qmux.base, -1, 0, output_resume_cb, NULL);
    if (qmux.output_resume == NULL) {
        log_error("cannot create the output resume event (out of memory)");
        return -1;
    }

    char tls_error[512];
    if (tls_load(qmux.config, tls_error, sizeof(tls_error)) != 0) {
        log_error("cannot set up TLS: %s", tls_error);
        return -1;
    }
    if (login_start() != 0 || client_listen() != 0)
        return -1;
    qmux.pool = pool_create(qmux.config);
    if (qmux.pool == NULL) {
        log_error("cannot create the upstream pool (out of memory)");
        return -1;
    }
    if (admin_start() != 0 || http_start() != 0)
        return -1;
    return 0;
}

static void shutdown_all(void)
{
    struct client *client;

    while ((client = TAILQ_FIRST(&qmux.clients)) != NULL)
        client_close(client, "qmux is shutting down");
    client_reap();
    users_clear();
    http_stop();
    admin_stop();
    login_stop();

    pool_destroy(qmux.pool);
    client_listen_close();
    tls_unload();
    if (qmux.reaper != NULL)
        event_free(qmux.reaper);
    if (qmux.output_resume != NULL)
        event_free(qmux.output_resume);
    if (qmux.dns != NULL)
        evdns_base_free(qmux.dns, 0);
    if (qmux.base != NULL)
        event_base_free(qmux.base);
}

static int run(void)
{
    int status = EXIT_OK;

    signal(SIGPIPE, SIG_IGN);
    srandom((unsigned)time(NULL) ^ (unsigned)getpid());
    check_fd_budget(qmux.config);

    if (start() != 0 || lifecycle_start() != 0) {
        status = EXIT_STARTUP;
    } else {
        log_info("qmux %s started: %d upstream%s, pool.size %d, config %s", QMUX_VERSION,
                 qmux.config->upstream_count, qmux.config->upstream_count == 1 ? "" : "s",
                 qmux.config->pool_size, qmux.config->path);
        event_base_dispatch(qmux.base);
    }

    lifecycle_stop();
    shutdown_all();
    log_info("qmux stopped");
    return status;
}

int main(int argc, char **argv)
{
    static const struct option options[] = {
        { "config", required_argument, NULL, 'c' },
        { "test", no_argument, NULL, 't' },
        { "foreground", no_argument, NULL, 'f' },
        { "version", no_argument, NULL, 'V' },
        { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 },
    };
    const char *path = NULL;
    int test_only = 0;
    int option;

    opterr = 0;   /* report bad options below, as "qmux: ...", whatever argv[0] is */
    while ((option = getopt_long(argc, argv, "c:tfVh", options, NULL)) != -1) {
        switch (option) {
        case 'c':
            path = optarg;
            break;
        case 't':
            test_only = 1;
            break;
        case 'f':
            break;
        case 'V':
            printf("qmux %s\n", QMUX_VERSION);
            return EXIT_OK;
        case 'h':
            usage(stdout);
            return EXIT_OK;
        default:
            if (optopt != 0 && optopt != 'c')
                fprintf(stderr, "qmux: invalid option -%c\n", optopt);
            else if (optopt == 'c')
                fprintf(stderr, "qmux: option -c needs a FILE argument\n");
            else
                fprintf(stderr, "qmux: invalid option %s\n", argv[optind - 1]);
            fprintf(stderr, "Run qmux --help for the options.\n");
            return EXIT_USAGE;
        }
    }
    if (path == NULL || optind != argc) {
        fprintf(stderr, "qmux: %s\n", path == NULL ? "missing -c FILE" : "unexpected argument");
        fprintf(stderr, "Run qmux --help for the options.\n");
        return EXIT_USAGE;
    }

    char errors[8192];
    qmux.config = config_load(path, errors, sizeof(errors));
    if (qmux.config == NULL) {
        fprintf(stderr, "%s", errors);
        fprintf(stderr, "qmux: cannot use configuration file %s\n", path);
        return EXIT_CONFIG;
    }
    if (test_only) {
        fprintf(stderr, "%s", qmux.config->warnings);
        /* The certificate and key files are part of the configuration: check they load. */
        char tls_error[512];
        if (tls_check(qmux.config, tls_error, sizeof(tls_error)) != 0) {
            fprintf(stderr, "%s: %s\n", path, tls_error);
            fprintf(stderr, "qmux: cannot use configuration file %s\n", path);
            config_free(qmux.config);
            return EXIT_CONFIG;
        }
        printf("qmux: configuration file %s is valid\n", path);
        config_free(qmux.config);
        return EXIT_OK;
    }

    char log_error_text[512];
    if (log_open(qmux.config->log_target, qmux.config->log_file, qmux.config->syslog_path,
                 log_error_text,
                 sizeof(log_error_text)) != 0) {
        fprintf(stderr, "qmux: %s\n", log_error_text);
        config_free(qmux.config);
        return EXIT_STARTUP;
    }
    log_set_level(qmux.config->log_level);
    lifecycle_log_warnings(qmux.config);
    int status = run();
    log_close();
    config_free(qmux.config);
    return status;
}
