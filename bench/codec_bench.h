/*
 * codec_bench.h - "qmux-bench codec": throughput of the kdb+ IPC compression in
 * src/codec/compress.c on generated payloads.
 */
#ifndef QMUX_BENCH_CODEC_BENCH_H
#define QMUX_BENCH_CODEC_BENCH_H

/* Runs the subcommand with argv[0] = "codec". Returns the exit status. */
int codec_bench_main(int argc, char **argv);

#endif
