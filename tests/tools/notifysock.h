/*
 * notifysock.h - the notify-socket subcommand of qmux-client.
 */
#ifndef QMUX_NOTIFYSOCK_H
#define QMUX_NOTIFYSOCK_H

int notify_socket_main(int argc, char **argv);

#endif
