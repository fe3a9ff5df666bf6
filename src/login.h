/*
 * login.h - password checks for every listener, on worker threads.
 *
 * A native users-file entry costs one PBKDF2 run per login (about 45 ms at 100,000
 * iterations), which would stall every client if the event loop ran it. A login session
 * hands the check to one of auth.workers threads and calls back on the event loop with
 * the result. Sessions also apply the failed-login limiter that all listeners share:
 * a new login from an address waits out the delay of its last failure, and a rejected
 * login is held open for its delay before it is closed. At most 32 checks per address,
 * and 1024 in all, are queued or running; a login beyond that fails unchecked.
 */
#ifndef QMUX_LOGIN_H
#define QMUX_LOGIN_H

#include <stddef.h>
#include <stdint.h>

#include "auth.h"

struct config;
struct ipc_handshake;

/* Starts the worker threads (auth.workers of the current config). Returns 0, or -1
 * after logging why. */
int login_start(void);

/* Applies the failed-login delays of config (auth.free_failures, auth.failure_delay_ms,
 * auth.failure_delay_max_ms); login_start applies the running config's. */
void login_configure(const struct config *config);

/* Stops the workers and frees every job; no callback runs after it. */
void login_stop(void);

struct login_session;

/*
 * Called on the event loop when a login check ends. user is the account in the current
 * qmux.config->users, or NULL when the login failed; failure then gives the reason ("wrong
 * password", "unknown user", ...). The session stays the caller's to free.
 */
typedef void (*login_result_fn)(void *arg, const struct auth_user *user, const char *failure);

/*
 * Starts checking a login from peer ("address:port"): waits out the failed-login delay of
 * the address, then checks user[0..user_len) and password[0..password_len) against
 * qmux.config->users on a worker thread, then calls done(arg, ...). The credentials are
 * copied, and the copy of the password is wiped once checked. Returns the session, or
 * NULL when out of memory.
 */
struct login_session *login_begin(const char *peer, const uint8_t *user, size_t user_len,
                                  const uint8_t *password, size_t password_len,
                                  login_result_fn done, void *arg);

/* login_begin on the credentials of a parsed kdb+ handshake read from bytes: the user is
 * everything before the first ':', the password everything after it. */
struct login_session *login_begin_handshake(const char *peer, const uint8_t *bytes,
                                            const struct ipc_handshake *handshake,
                                            login_result_fn done, void *arg);

/* Returns nonzero while the session waits out the address's delay before its check. */
int login_deferred(const struct login_session *session);

/*
 * Records a rejected login of the session's address and calls close(arg) after the
 * address's failed-login delay, or at once when there is none (or no memory for a
 * timer). Returns the delay in milliseconds.
 */
unsigned login_reject(struct login_session *session, void (*close)(void *arg));

/* Ends a session at any point: no callback of it runs afterwards. NULL is ignored. */
void login_end(struct login_session *session);

/*
 * Returns 1 when a login of user[0..user_len) on a listener needs a password check, 0
 * when it is admitted as anonymous: there is no users file, or the listener admits
 * anonymous users and the name has no account. A name that has an account always needs
 * its password, so that no one takes over an account's rights by leaving it out.
 */
int login_needs_check(const struct auth_db *db, int anonymous, const uint8_t *user,
                      size_t user_len);

/* Returns nonzero when user may log in on listener (an AUTH_LISTENER_* bit): its
 * listeners= option names it, and for the admin listener the user has the admin option. */
int login_listener_allowed(const struct auth_user *user, unsigned listener);

#endif
