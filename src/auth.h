/*
 * auth.h - client authentication: the users file, password checks and a per-address
 * limiter of failed logins.
 *
 * The users file has one user per line, `NAME:PASSWORD[:OPTIONS]`, with '#' comment lines
 * and blank lines. PASSWORD is any format of passwd.h. OPTIONS is a comma-separated list
 * of `admin`, `max_connections=N` (1..1000000), `policy=NAME` and `listeners=LIST` (ipc,
 * http and admin joined by '+'). docs/security.md describes the file in full.
 *
 * Nothing here logs: auth_load returns its errors and warnings as text, and the limiter
 * returns delays, so the caller decides what to log and when.
 */
#ifndef QMUX_AUTH_H
#define QMUX_AUTH_H

#include <stddef.h>
#include <stdint.h>

struct ipc_handshake;
struct policy_set;

struct auth_db;
struct auth_user;

/* Maximum length of a users-file line in bytes, newline excluded. */
#define AUTH_LINE_MAX 4096

/* Maximum length of a user name in bytes. */
#define AUTH_NAME_MAX 255

/* Largest value of the max_connections option. */
#define AUTH_MAX_CONNECTIONS_LIMIT 1000000

/* Listeners a user may log in on (the listeners= option); all of them by default. The
 * admin listener also requires the admin option. */
enum auth_listener {
    AUTH_LISTENER_IPC = 1 << 0,
    AUTH_LISTENER_HTTP = 1 << 1,
    AUTH_LISTENER_ADMIN = 1 << 2,
    AUTH_LISTENER_ALL = AUTH_LISTENER_IPC | AUTH_LISTENER_HTTP | AUTH_LISTENER_ADMIN,
};

/*
 * Reads the users file at path. Returns the database, or NULL when the file cannot be
 * read or any line is invalid. errors then receives one "PATH:LINE: message" line per
 * problem; messages name the user and the field but never quote a password or a hash.
 * warnings receives one line per entry stored in a kdb+ legacy format (plain text, MD5
 * or SHA-1), and one when the file is readable or writable by other users. The caller
 * logs them at start. Both buffers hold whole lines only; a last line counts the ones
 * that did not fit. Either buffer may be NULL with size 0.
 */
struct auth_db *auth_load(const char *path, char *errors, size_t errors_size, char *warnings,
                          size_t warnings_size);

/* Adds a reference to db (NULL is ignored) and returns it. References are counted without
 * locks: take and drop them on one thread only. */
struct auth_db *auth_retain(struct auth_db *db);

/* Drops a reference to db; the last one frees it and wipes the stored hashes. NULL is
 * ignored. */
void auth_free(struct auth_db *db);

/* Returns the number of users in db. */
size_t auth_user_count(const struct auth_db *db);

/* Returns the user called name, or NULL. Performs no password check. */
const struct auth_user *auth_find_user(const struct auth_db *db, const char *name,
                                       size_t name_len);

/*
 * Checks a user name and password. Returns the user, or NULL for an unknown user, a wrong
 * password or an empty password. An unknown user costs the same PBKDF2 work as a known
 * one, because it is checked against a dummy hash with the iteration count that most
 * native entries use. A legacy entry is followed by the same dummy check when the file has
 * native entries. Only entries with another iteration count take a different time, so
 * timing distinguishes them from unknown users. Thread-safe: it reads db only, so a
 * caller may run it off the event loop while no other thread frees db.
 */
const struct auth_user *auth_verify(const struct auth_db *db, const char *user,
                                    size_t user_len, const char *password,
                                    size_t password_len);

/*
 * auth_verify on the credentials of a parsed handshake: bytes is the buffer that
 * ipc_handshake_parse read. The user is everything before the first ':', the password
 * everything after it; credentials without ':' have an empty password and fail.
 */
const struct auth_user *auth_verify_handshake(const struct auth_db *db, const uint8_t *bytes,
                                              const struct ipc_handshake *handshake);

/* Options of a user. max_connections is 0 when the option is absent. policy is NULL when
 * the user has no policy option, and the caller applies its default policy then. */
const char *auth_user_name(const struct auth_user *user);
int auth_user_is_admin(const struct auth_user *user);
int auth_user_max_connections(const struct auth_user *user);
const char *auth_user_policy(const struct auth_user *user);

/* Returns the AUTH_LISTENER_* bits of the user's listeners= option, or AUTH_LISTENER_ALL. */
unsigned auth_user_listeners(const struct auth_user *user);

/* Returns the line of the users file that defines user. */
unsigned auth_user_line(const struct auth_user *user);

/*
 * Checks that every policy=NAME option of db names a policy of policies. Returns the
 * number of users whose policy is missing, each reported in errors as
 * "PATH:LINE: user NAME: policy NAME is not defined in policies".
 */
int auth_check_policies(const struct auth_db *db, const struct policy_set *policies,
                        char *errors, size_t errors_size);

/* ---- Failed-login limiter ---- */

/*
 * Settings of the limiter. An address's first free_failures failures cost no delay. Each
 * later one doubles the delay, starting at base_delay_ms and stopping at max_delay_ms. An
 * address with no failure for forget_ms starts again from zero. The table has capacity
 * entries; when it is full, a new address replaces the entry whose last failure is the
 * oldest.
 */
struct auth_limiter_config {
    unsigned free_failures;
    unsigned base_delay_ms;
    unsigned max_delay_ms;
    unsigned forget_ms;
    size_t capacity;
};

/* 3 free failures, then 250 ms, 500 ms, ... up to 30 s; forgotten after 15 minutes without
 * a failure; 4096 addresses (80 bytes each, 320 KiB). */
#define AUTH_LIMITER_DEFAULTS { 3, 250, 30000, 900000, 4096 }

struct auth_limiter;

/* Creates a limiter; config NULL means AUTH_LIMITER_DEFAULTS. Returns NULL when out of
 * memory or when capacity is 0. */
struct auth_limiter *auth_limiter_new(const struct auth_limiter_config *config);
void auth_limiter_free(struct auth_limiter *limiter);

/* Changes the delays of limiter, keeping the failures it has counted. A base delay of 0
 * turns delays off. */
void auth_limiter_configure(struct auth_limiter *limiter, unsigned free_failures,
                            unsigned base_delay_ms, unsigned max_delay_ms);

/*
 * Records one failed login from address at now_ms (a monotonic clock in milliseconds) and
 * returns the delay in milliseconds to apply before the connection is closed. Addresses
 * are IPv4 or IPv6 text, with or without a port (`1.2.3.4:5000`, `[::1]:5000`). All IPv6
 * addresses of one /64 network count as one address, and IPv4-mapped IPv6 addresses as
 * their IPv4 address. Other text is used as it is, truncated to 47 bytes.
 */
unsigned auth_failure_delay_ms(struct auth_limiter *limiter, const char *address,
                               uint64_t now_ms);

/* Returns how many milliseconds remain of the delay of address's last failure, or 0. The
 * caller defers checking a new login from that address by as much. */
unsigned auth_limiter_wait_ms(const struct auth_limiter *limiter, const char *address,
                              uint64_t now_ms);

/*
 * Counts one more password check in progress for address. Returns 0, or -1 (nothing
 * counted) when the address already has max_checks checks in progress, or when every
 * entry of the table has checks in progress. A successful call is paired with
 * auth_limiter_end_check. A login never resets an address's failures: they fade after
 * forget_ms, so that an attacker who owns one account cannot clear the delays of the
 * guesses at another.
 */
int auth_limiter_begin_check(struct auth_limiter *limiter, const char *address,
                             unsigned max_checks);

/* Ends a check counted by auth_limiter_begin_check. */
void auth_limiter_end_check(struct auth_limiter *limiter, const char *address);

/* Returns the number of addresses the limiter currently tracks. */
size_t auth_limiter_size(const struct auth_limiter *limiter);

#endif
