/*
 * main.c - qmux-bench, the load generator and micro-benchmarks of qmux.
 *
 *   qmux-bench load    closed-loop sync requests from many clients; latency percentiles
 *                      and throughput
 *   qmux-bench mixed   one request per client, each client started after its own delay;
 *                      the latency of each and the time until the last one finished
 *   qmux-bench idle    connects and logs in many clients that then stay idle, and reports
 *                      the resident memory a server process gained per client
 *   qmux-bench codec   compression and decompression throughput of src/codec/compress.c
 *   qmux-bench relay   a minimal TCP relay, the reference for the latency any proxy adds
 *   qmux-bench port    prints a TCP port that is free on 127.0.0.1
 *
 * Every subcommand prints its result as one line of key=value pairs on standard output,
 * for scripts such as bench/run.sh, and failures on standard error.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "codec_bench.h"
#include "engine.h"
#include "relay.h"

#define NS_PER_SECOND 1000000000.0

static void usage(FILE *out)
{
    fprintf(out,
            "usage: qmux-bench load  [-H HOST] -p PORT [-c CLIENTS] [-e EXPR] [-d SECONDS]\n"
            "                        [-w SECONDS] [-n REQUESTS] [--expect-long N]\n"
            "       qmux-bench mixed [-H HOST] -p PORT -j DELAY_MS:EXPR [-j DELAY_MS:EXPR...]\n"
            "       qmux-bench idle  [-H HOST] -p PORT -c CLIENTS --pid PID\n"
            "       qmux-bench codec [-s MIB] [-r REPEATS]\n"
            "       qmux-bench relay -p LISTEN_PORT --to UPSTREAM_PORT\n"
            "       qmux-bench port\n"
            "\n"
            "  -H, --host ADDRESS    numeric IPv4 address of the server (default 127.0.0.1)\n"
            "  -p, --port PORT       TCP port of qmux or of a kdb+ server\n"
            "  -c, --clients N       client connections (default 1)\n"
            "  -e, --expr EXPR       q expression each request sends (default 2+3)\n"
            "  -d, --duration S      measured seconds after the warm-up (default 5)\n"
            "  -w, --warmup S        seconds of requests not recorded (default 1)\n"
            "  -n, --requests N      stop after N requests in all, instead of a duration;\n"
            "                        no warm-up unless -w is given\n"
            "  --expect-long N       count a response other than the long atom N as wrong\n"
            "  -j, --job DELAY:EXPR  mixed: one client sending EXPR DELAY ms after time 0\n"
            "  --pid PID             idle: the server process whose VmRSS is read\n"
            "  -u, --user USER:PASS  credentials of the handshake (default bench)\n"
            "  --capability N        capability byte of the handshake, 0..6 (default 6)\n"
            "  --timeout S           give up after S seconds (default: run time + 120)\n"
            "  -s, --size MIB        codec: uncompressed size of each payload (default 64)\n"
            "  -r, --repeats N       codec: runs per operation, the fastest counts (default 5)\n"
            "\n"
            "Time 0 is when every client has logged in. The exit status is 0 when every\n"
            "request got a valid response, 1 otherwise, 2 for invalid usage.\n");
}

struct options {
    const char *host;
    int port;
    int clients;
    const char *expr;
    double duration;
    double warmup;
    int warmup_given;
    uint64_t requests;
    int has_expected_long;
    int64_t expected_long;
    const char *credentials;
    int capability;
    double timeout;
    int pid;
    const char *jobs[64];
    int job_count;
};

static int parse_options(int argc, char **argv, struct options *options)
{
    static const struct option long_options[] = {
        { "host", required_argument, NULL, 'H' },
        { "port", required_argument, NULL, 'p' },
        { "clients", required_argument, NULL, 'c' },
        { "expr", required_argument, NULL, 'e' },
        { "duration", required_argument, NULL, 'd' },
        { "warmup", required_argument, NULL, 'w' },
        { "requests", required_argument, NULL, 'n' },
        { "job", required_argument, NULL, 'j' },
        { "user", required_argument, NULL, 'u' },
        { "expect-long", required_argument, NULL, 'L' },
        { "capability", required_argument, NULL, 'C' },
        { "timeout", required_argument, NULL, 'T' },
        { "pid", required_argument, NULL, 'P' },
        { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 },
    };
    int option;

    *options = (struct options){
        .host = "127.0.0.1",
        .clients = 1,
        .expr = "2+3",
        .duration = 5,
        .warmup = 1,
        .credentials = "bench",
        .capability = 6,
    };
    optind = 1;
    while ((option = getopt_long(argc, argv, "H:p:c:e:d:w:n:j:u:h", long_options, NULL)) != -1) {
        switch (option) {
        case 'H':
            options->host = optarg;
            break;
        case 'p':
            options->port = atoi(optarg);
            break;
        case 'c':
            options->clients = atoi(optarg);
            break;
        case 'e':
            options->expr = optarg;
            break;
        case 'd':
            options->duration = atof(optarg);
            break;
        case 'w':
            options->warmup = atof(optarg);
            options->warmup_given = 1;
            break;
        case 'n':
            options->requests = strtoull(optarg, NULL, 10);
            break;
        case 'j':
            if (options->job_count == (int)(sizeof(options->jobs) / sizeof(options->jobs[0]))) {
                fprintf(stderr, "qmux-bench: too many -j options (at most 64)\n");
                return -1;
            }
            options->jobs[options->job_count++] = optarg;
            break;
        case 'u':
            options->credentials = optarg;
            break;
        case 'L':
            options->has_expected_long = 1;
            options->expected_long = strtoll(optarg, NULL, 10);
            break;
        case 'C':
            options->capability = atoi(optarg);
            break;
        case 'T':
            options->timeout = atof(optarg);
            break;
        case 'P':
            options->pid = atoi(optarg);
            break;
        case 'h':
            usage(stdout);
            exit(0);
        default:
            usage(stderr);
            return -1;
        }
    }
    if (optind != argc) {
        fprintf(stderr, "qmux-bench: unexpected argument \"%s\"\n", argv[optind]);
        return -1;
    }
    if (options->port < 1 || options->port > 65535) {
        fprintf(stderr, "qmux-bench: missing or invalid -p PORT (1..65535)\n");
        return -1;
    }
    if (options->clients < 1 || options->capability < 0 || options->capability > 6) {
        fprintf(stderr, "qmux-bench: -c must be at least 1 and --capability 0..6\n");
        return -1;
    }
    return 0;
}

static void init_run(struct bench_run *run, const struct options *options)
{
    *run = (struct bench_run){
        .host = options->host,
        .port = options->port,
        .credentials = options->credentials,
        .capability = options->capability,
        .max_connecting = 64,
    };
}

static double micros(uint64_t ns)
{
    return (double)ns / 1000.0;
}

static int run_status(const struct bench_run *run)
{
    int failed = run->connect_failures > 0 || run->disconnects > 0 || run->timed_out;

    for (int g = 0; g < run->group_count; g++)
        failed |= run->groups[g].errors > 0 || run->groups[g].wrong > 0;
    return failed ? 1 : 0;
}

static int load_main(int argc, char **argv)
{
    struct options options;
    struct bench_run run;
    struct bench_group group = { 0 };

    if (parse_options(argc, argv, &options) != 0)
        return 2;
    bench_raise_nofile();

    group.expr = options.expr;
    group.clients = options.clients;
    group.has_expected_long = options.has_expected_long;
    group.expected_long = options.expected_long;

    init_run(&run, &options);
    run.groups = &group;
    run.group_count = 1;
    if (options.requests > 0) {
        run.total_requests = options.requests;
        run.warmup_ns = options.warmup_given ? (uint64_t)(options.warmup * NS_PER_SECOND) : 0;
    } else {
        run.duration_ns = (uint64_t)(options.duration * NS_PER_SECOND);
        run.warmup_ns = (uint64_t)(options.warmup * NS_PER_SECOND);
    }
    double timeout = options.timeout > 0 ? options.timeout
                                         : options.duration + options.warmup + 120;
    run.timeout_ns = (uint64_t)(timeout * NS_PER_SECOND);

    if (bench_run(&run) != 0) {
        bench_free(&run);
        return 2;
    }

    const struct hist *latency = &group.latency;
    double seconds = (double)run.measure_ns / NS_PER_SECOND;
    uint64_t completed = options.requests > 0 ? latency->count : group.completed;
    double rate = seconds > 0 ? (double)completed / seconds : 0;
    double megabytes = seconds > 0 ? (double)group.bytes / 1e6 / seconds : 0;

    printf("clients=%d connected=%d requests=%" PRIu64 " seconds=%.3f rps=%.0f "
           "p50_us=%.1f p90_us=%.1f p99_us=%.1f p999_us=%.1f max_us=%.1f min_us=%.1f "
           "mean_us=%.1f bytes=%" PRIu64 " mbps=%.1f errors=%" PRIu64 " wrong=%" PRIu64
           " connect_failures=%d disconnects=%d timed_out=%d\n",
           options.clients, run.connected, completed, seconds, rate,
           micros(hist_percentile(latency, 50)), micros(hist_percentile(latency, 90)),
           micros(hist_percentile(latency, 99)), micros(hist_percentile(latency, 99.9)),
           micros(latency->max), micros(latency->count ? latency->min : 0),
           hist_mean(latency) / 1000.0, group.bytes, megabytes, group.errors, group.wrong,
           run.connect_failures, run.disconnects, run.timed_out);
    int status = run_status(&run);
    bench_free(&run);
    return status;
}

static int mixed_main(int argc, char **argv)
{
    struct options options;
    struct bench_run run;
    struct bench_group groups[64];

    if (parse_options(argc, argv, &options) != 0)
        return 2;
    if (options.job_count == 0) {
        fprintf(stderr, "qmux-bench mixed: give at least one -j DELAY_MS:EXPR\n");
        return 2;
    }

    memset(groups, 0, sizeof(groups));
    for (int j = 0; j < options.job_count; j++) {
        char *end;
        double delay_ms = strtod(options.jobs[j], &end);

        if (end == options.jobs[j] || *end != ':' || delay_ms < 0) {
            fprintf(stderr, "qmux-bench mixed: invalid job \"%s\": expected DELAY_MS:EXPR, "
                    "such as 100:til 10\n", options.jobs[j]);
            return 2;
        }
        groups[j].expr = end + 1;
        groups[j].clients = 1;
        groups[j].requests_per_client = 1;
        groups[j].delay_ns = (uint64_t)(delay_ms * 1e6);
    }

    init_run(&run, &options);
    run.groups = groups;
    run.group_count = options.job_count;
    run.timeout_ns = (uint64_t)((options.timeout > 0 ? options.timeout : 120) * NS_PER_SECOND);
    if (bench_run(&run) != 0) {
        bench_free(&run);
        return 2;
    }

    uint64_t total = 0;
    for (int j = 0; j < options.job_count; j++) {
        const struct bench_group *group = &groups[j];

        printf("job%d_ms=%.1f job%d_start_ms=%.1f job%d_bytes=%" PRIu64 " ", j + 1,
               (double)group->latency.max / 1e6, j + 1, (double)group->first_sent_ns / 1e6,
               j + 1, group->bytes);
        if (group->last_done_ns > total)
            total = group->last_done_ns;
    }
    printf("total_ms=%.1f connected=%d timed_out=%d\n", (double)total / 1e6, run.connected,
           run.timed_out);
    int status = run_status(&run);
    bench_free(&run);
    return status;
}

/* Reads a "Name:   N kB" line of /proc/PID/status. Returns kB, or -1. */
static long read_status_kib(int pid, const char *name)
{
    char path[64];
    char line[256];
    long value = -1;
    size_t name_length = strlen(name);

    snprintf(path, sizeof(path), "/proc/%d/status", pid);
    FILE *file = fopen(path, "r");
    if (file == NULL)
        return -1;
    while (fgets(line, sizeof(line), file) != NULL) {
        if (strncmp(line, name, name_length) == 0 && line[name_length] == ':') {
            value = strtol(line + name_length + 1, NULL, 10);
            break;
        }
    }
    fclose(file);
    return value;
}

static int idle_main(int argc, char **argv)
{
    struct options options;
    struct bench_run run;
    struct bench_group group = { 0 };

    if (parse_options(argc, argv, &options) != 0)
        return 2;
    long before = read_status_kib(options.pid, "VmRSS");
    if (options.pid <= 0 || before < 0) {
        fprintf(stderr, "qmux-bench idle: cannot read VmRSS from /proc/%d/status; give the "
                "server's process id with --pid\n", options.pid);
        return 2;
    }
    long nofile = bench_raise_nofile();
    if (nofile >= 0 && nofile < options.clients + 16L)
        fprintf(stderr, "qmux-bench idle: RLIMIT_NOFILE is %ld, below the %d clients; raise "
                "the hard limit (ulimit -Hn)\n", nofile, options.clients);

    group.expr = "::";
    group.clients = options.clients;
    init_run(&run, &options);
    run.groups = &group;
    run.group_count = 1;
    run.idle = 1;
    run.timeout_ns = (uint64_t)((options.timeout > 0 ? options.timeout : 120) * NS_PER_SECOND);
    uint64_t started = bench_now_ns();
    if (bench_run(&run) != 0) {
        bench_free(&run);
        return 2;
    }
    double connect_seconds = (double)(bench_now_ns() - started) / NS_PER_SECOND;

    /* The server replied to every login, so it has set up every client. */
    long after = read_status_kib(options.pid, "VmRSS");
    double per_client = run.connected > 0 ? (double)(after - before) * 1024.0 / run.connected
                                          : 0;
    printf("clients=%d connected=%d connect_seconds=%.2f rss_before_kib=%ld "
           "rss_after_kib=%ld rss_per_client_bytes=%.0f connect_failures=%d timed_out=%d\n",
           options.clients, run.connected, connect_seconds, before, after, per_client,
           run.connect_failures, run.timed_out);
    int status = run_status(&run);
    bench_free(&run);
    return status;
}

/* Prints a port that was free on 127.0.0.1 a moment ago (the kernel's choice for port 0). */
static int port_main(void)
{
    struct sockaddr_in address = { .sin_family = AF_INET };
    socklen_t length = sizeof(address);
    int fd = socket(AF_INET, SOCK_STREAM, 0);

    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd < 0 || bind(fd, (struct sockaddr *)&address, sizeof(address)) != 0 ||
        getsockname(fd, (struct sockaddr *)&address, &length) != 0) {
        fprintf(stderr, "qmux-bench port: cannot bind 127.0.0.1:0: %s\n", strerror(errno));
        return 1;
    }
    printf("%d\n", ntohs(address.sin_port));
    close(fd);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return 2;
    }

    const char *command = argv[1];
    if (strcmp(command, "load") == 0)
        return load_main(argc - 1, argv + 1);
    if (strcmp(command, "mixed") == 0)
        return mixed_main(argc - 1, argv + 1);
    if (strcmp(command, "idle") == 0)
        return idle_main(argc - 1, argv + 1);
    if (strcmp(command, "codec") == 0)
        return codec_bench_main(argc - 1, argv + 1);
    if (strcmp(command, "relay") == 0)
        return relay_main(argc - 1, argv + 1);
    if (strcmp(command, "port") == 0)
        return port_main();
    if (strcmp(command, "-h") == 0 || strcmp(command, "--help") == 0) {
        usage(stdout);
        return 0;
    }
    fprintf(stderr, "qmux-bench: unknown command \"%s\"; expected load, mixed, idle, codec, "
            "relay or port\n", command);
    usage(stderr);
    return 2;
}
