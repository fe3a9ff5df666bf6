/*
 * qload.h - the load-test mode of qmux-client.
 */
#ifndef QMUX_TOOLS_QLOAD_H
#define QMUX_TOOLS_QLOAD_H

/*
 * Runs "qmux-client load ..." with argv[0] = "load". Returns the exit status: 0 when
 * every request got its expected result, 1 on any wrong result, error response, timeout,
 * failed connect or lost connection, 2 on invalid usage or setup failure.
 */
int qload_main(int argc, char **argv);

#endif
