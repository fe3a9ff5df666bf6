/*
 * notify.h - the systemd service notification protocol (sd_notify), without libsystemd:
 * datagrams such as "READY=1" sent to the socket named by $NOTIFY_SOCKET.
 */
#ifndef QMUX_NOTIFY_H
#define QMUX_NOTIFY_H

/* Reads $NOTIFY_SOCKET and opens the datagram socket; does nothing when it is unset. */
void notify_init(void);

/* Sends one notification ("READY=1\nSTATUS=..."); a no-op without $NOTIFY_SOCKET. */
void notify_send(const char *format, ...) __attribute__((format(printf, 1, 2)));

/* Sends RELOADING=1 with the MONOTONIC_USEC that systemd 253 and later expect. */
void notify_reloading(void);

void notify_close(void);

#endif
