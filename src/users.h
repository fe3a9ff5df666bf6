/*
 * users.h - connected-client counts per user name, for clients.max_per_user.
 */
#ifndef QMUX_USERS_H
#define QMUX_USERS_H

/* Counts one more connection of user and returns the new count, or -1 when out of
 * memory (the connection is then not counted). */
int users_add(const char *user);

/* Counts one connection of user less; user must have been counted by users_add. */
void users_remove(const char *user);

/* Returns the number of connections of user. */
int users_count(const char *user);

/* Frees every entry (at shutdown). */
void users_clear(void);

#endif
