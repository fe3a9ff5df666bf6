/*
 * admin.h - the admin console: a listener on admin.address:admin.port that speaks the
 * kdb+ IPC protocol, so an operator runs `h"show clients"` from q (or any kdb+ client)
 * and gets q values back: tables, dictionaries, strings, longs.
 *
 * Users of auth.users_file with the admin option log in with their password. When
 * admin.users is set, only its names may log in, and with admin.anonymous those without
 * an account log in without a password. docs/admin.md lists the commands.
 */
#ifndef QMUX_ADMIN_H
#define QMUX_ADMIN_H

/* Largest admin request accepted, header included; a larger one gets 'limit and its
 * connection is closed. */
#define ADMIN_MAX_MESSAGE (64 * 1024)

/* Admin connections open at once; further ones are closed at accept. */
#define ADMIN_MAX_CONNECTIONS 64

/* Starts listening when admin.port is not 0. Returns 0, or -1 after logging why. */
int admin_start(void);

/* Closes the listener and every admin connection. */
void admin_stop(void);

struct config;

/* Moves logged-in admin connections to new_config before a reload frees the old one, and
 * closes those whose user may no longer log in. */
void admin_rebind_all(const struct config *new_config);

#endif
