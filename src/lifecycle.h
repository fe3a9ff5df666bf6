/*
 * lifecycle.h - signals and the service lifecycle: graceful shutdown, configuration
 * reload, log reopening, and systemd notifications.
 *
 *   SIGTERM, SIGINT  graceful shutdown; a second signal exits at once
 *   SIGHUP           reload the configuration file
 *   SIGUSR1          reopen the log file
 */
#ifndef QMUX_LIFECYCLE_H
#define QMUX_LIFECYCLE_H

#include <stddef.h>

/* Installs the signal handlers and the status timer, and tells systemd qmux is ready.
 * Returns 0, or -1 when out of memory. */
int lifecycle_start(void);

/* Frees what lifecycle_start created. */
void lifecycle_stop(void);

/* Stops accepting clients, answers queued requests with an error, and ends the event
 * loop once the requests in flight are done or clients.shutdown_timeout_ms has passed.
 * Called a second time, ends the loop at once. */
void lifecycle_shutdown(const char *why);

/* Ends the event loop if a shutdown is under way and no request is in flight. */
void lifecycle_check_drained(void);

/* Re-reads the configuration file and applies it without dropping clients. On an invalid
 * file, logs each error and keeps the running configuration. Returns 0 when applied, -1
 * when rejected; message receives a one-line summary for the caller. */
int lifecycle_reload(char *message, size_t message_size);

struct config;

/* Logs the warnings of a loaded config (a users file readable by others, legacy password
 * hashes, ...), one line each. */
void lifecycle_log_warnings(const struct config *config);

#endif
