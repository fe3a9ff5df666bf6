/*
 * relay.h - "qmux-bench relay": the smallest possible TCP relay, a reference for the
 * latency any user-space proxy adds on the machine under test.
 */
#ifndef QMUX_BENCH_RELAY_H
#define QMUX_BENCH_RELAY_H

/* Runs the subcommand with argv[0] = "relay". Returns the exit status. */
int relay_main(int argc, char **argv);

#endif
