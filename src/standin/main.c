/*
 * main.c - qmux-standin: a stand-in kdb+ server for tests and demonstrations.
 *
 * It speaks the real kdb+ IPC protocol (handshake, both byte orders, compression) and
 * evaluates a tiny subset of q, so that qmux can be tested without a kdb+ licence. It is
 * not a kdb+ replacement.
 */
#include "server.h"

#include "ipc.h"

#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

static const char USAGE[] =
    "NAME\n"
    "    qmux-standin - stand-in kdb+ server for tests and demonstrations\n"
    "\n"
    "SYNOPSIS\n"
    "    qmux-standin [-p PORT] [-a ADDRESS] [-u USER:PASSWORD] [--capability N]\n"
    "                 [--compress never|auto|always] [--refuse-login]\n"
    "                 [--tls-cert FILE --tls-key FILE] [-q] [-h]\n"
    "\n"
    "DESCRIPTION\n"
    "    Listens for kdb+ IPC clients and evaluates a small subset of q, one message at a\n"
    "    time like a q process: long, float, boolean, string and symbol literals, til,\n"
    "    count, + - * on longs and floats, name:expr, 'error, system \"sleep N\", and the\n"
    "    test helpers .standin.table, .standin.closeMid, .standin.stallMid,\n"
    "    .standin.refuse and .standin.exit (see docs/standin.md). When ready it prints\n"
    "    \"qmux-standin: listening on ADDRESS:PORT\" on standard output.\n"
    "\n"
    "OPTIONS\n"
    "    -p, --port PORT         TCP port to listen on; 0 picks a free port (default 5001)\n"
    "    -a, --address ADDRESS   numeric IPv4 or IPv6 address to listen on\n"
    "                            (default 127.0.0.1)\n"
    "    -u, --user USER:PASSWORD\n"
    "                            accept only this login; by default any login is accepted\n"
    "    --capability N          highest IPC capability agreed, 0..6 (default 6); the reply\n"
    "                            to a login is the lower of N and the client's request\n"
    "    --compress MODE         never: never compress responses;\n"
    "                            auto: kdb+'s rule (capability >= 1, body over 2000 bytes,\n"
    "                            peer not on loopback), so never on 127.0.0.1 (default);\n"
    "                            always: as auto but treats every peer as remote\n"
    "    --refuse-login          close every login without a reply, as kdb+ does on a\n"
    "                            wrong password\n"
    "    --tls-cert FILE         serve TLS only, as kdb+ -E 2 does, with this PEM\n"
    "                            certificate chain; needs --tls-key\n"
    "    --tls-key FILE          PEM private key of --tls-cert, not encrypted\n"
    "    -q, --quiet             log only errors, not connections and logins\n"
    "    -h, --help              print this help and exit\n"
    "\n"
    "SIGNALS\n"
    "    SIGINT and SIGTERM close every connection and exit with status 0.\n"
    "\n"
    "EXIT STATUS\n"
    "    0 after a signal or .standin.exit, 1 when listening or loading the TLS files\n"
    "    fails, 2 for invalid options.\n";

enum long_only_option {
    OPT_CAPABILITY = 256,
    OPT_COMPRESS,
    OPT_REFUSE_LOGIN,
    OPT_TLS_CERT,
    OPT_TLS_KEY,
};

static const struct option LONG_OPTIONS[] = {
    {"port", required_argument, NULL, 'p'},
    {"address", required_argument, NULL, 'a'},
    {"user", required_argument, NULL, 'u'},
    {"capability", required_argument, NULL, OPT_CAPABILITY},
    {"compress", required_argument, NULL, OPT_COMPRESS},
    {"refuse-login", no_argument, NULL, OPT_REFUSE_LOGIN},
    {"tls-cert", required_argument, NULL, OPT_TLS_CERT},
    {"tls-key", required_argument, NULL, OPT_TLS_KEY},
    {"quiet", no_argument, NULL, 'q'},
    {"help", no_argument, NULL, 'h'},
    {NULL, 0, NULL, 0},
};

/* Parses an integer in [min, max]. Returns 0, or -1 after logging what is wrong. */
static int parse_int(const char *option, const char *text, int min, int max, int *out)
{
    char *end;

    errno = 0;
    long value = strtol(text, &end, 10);
    if (errno != 0 || end == text || *end != '\0' || value < min || value > max) {
        standin_log("invalid %s '%s': expected an integer from %d to %d", option, text, min,
                    max);
        return -1;
    }
    *out = (int)value;
    return 0;
}

static int parse_compress(const char *text, int *out)
{
    if (strcmp(text, "never") == 0)
        *out = COMPRESS_NEVER;
    else if (strcmp(text, "auto") == 0)
        *out = COMPRESS_AUTO;
    else if (strcmp(text, "always") == 0)
        *out = COMPRESS_ALWAYS;
    else {
        standin_log("invalid --compress '%s': expected never, auto or always", text);
        return -1;
    }
    return 0;
}

static int parse_options(int argc, char **argv, struct server_options *o)
{
    int c;

    while ((c = getopt_long(argc, argv, "p:a:u:qh", LONG_OPTIONS, NULL)) != -1) {
        switch (c) {
        case 'p':
            if (parse_int("port", optarg, 0, 65535, &o->port) != 0)
                return -1;
            break;
        case 'a':
            o->address = optarg;
            break;
        case 'u':
            if (strlen(optarg) > IPC_HANDSHAKE_MAX) {
                standin_log("invalid -u: credentials longer than %d bytes", IPC_HANDSHAKE_MAX);
                return -1;
            }
            o->credentials = optarg;
            break;
        case OPT_CAPABILITY:
            if (parse_int("--capability", optarg, 0, IPC_MAX_CAPABILITY,
                          &o->max_capability) != 0)
                return -1;
            break;
        case OPT_COMPRESS:
            if (parse_compress(optarg, &o->compress) != 0)
                return -1;
            break;
        case OPT_REFUSE_LOGIN:
            o->reject_logins = 1;
            break;
        case OPT_TLS_CERT:
            o->tls_cert = optarg;
            break;
        case OPT_TLS_KEY:
            o->tls_key = optarg;
            break;
        case 'q':
            o->quiet = 1;
            break;
        case 'h':
            fputs(USAGE, stdout);
            exit(0);
        default:
            standin_log("invalid option; run qmux-standin -h for the usage");
            return -1;
        }
    }
    if (optind < argc) {
        standin_log("unexpected argument '%s'; run qmux-standin -h for the usage",
                    argv[optind]);
        return -1;
    }
    if ((o->tls_cert == NULL) != (o->tls_key == NULL)) {
        standin_log("--tls-cert and --tls-key go together; give both, or neither");
        return -1;
    }
    return 0;
}

/* Raises the open-file soft limit to the hard limit, for 1000+ connections. */
static void raise_file_limit(int quiet)
{
    struct rlimit limit;

    if (getrlimit(RLIMIT_NOFILE, &limit) != 0) {
        standin_log("getrlimit(RLIMIT_NOFILE) failed: %s; keeping the current limit",
                    strerror(errno));
        return;
    }
    rlim_t before = limit.rlim_cur;
    limit.rlim_cur = limit.rlim_max;
    if (setrlimit(RLIMIT_NOFILE, &limit) != 0) {
        standin_log("raising the open-file limit from %llu to %llu failed: %s",
                    (unsigned long long)before, (unsigned long long)limit.rlim_max,
                    strerror(errno));
        return;
    }
    if (!quiet)
        standin_log("open-file limit %llu (was %llu)", (unsigned long long)limit.rlim_cur,
                    (unsigned long long)before);
}

int main(int argc, char **argv)
{
    struct server_options options = {
        .address = "127.0.0.1",
        .port = 5001,
        .max_capability = IPC_MAX_CAPABILITY,
        .compress = COMPRESS_AUTO,
    };

    if (parse_options(argc, argv, &options) != 0)
        return 2;

    signal(SIGPIPE, SIG_IGN);
    raise_file_limit(options.quiet);
    return server_run(&options);
}
