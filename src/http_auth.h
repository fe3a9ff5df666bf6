/*
 * http_auth.h - HTTP Basic authentication of the query route against the users file.
 *
 * The credentials of an "Authorization: Basic" header are checked like a kdb+ login on
 * the IPC listener: on a worker thread, with the shared failed-login delays, and under
 * http.anonymous. A request without credentials where they are needed gets 401 with a
 * WWW-Authenticate challenge at once. Wrong credentials get 401 after the address's
 * failed-login delay.
 */
#ifndef QMUX_HTTP_AUTH_H
#define QMUX_HTTP_AUTH_H

struct auth_user;
struct evhttp_request;
struct http_login;

/* Maximum length of a user name taken from an Authorization header, NUL included. */
#define HTTP_AUTH_USER_MAX 64

/*
 * Called on the event loop when the request may run: user is the name to run it as
 * ("http" without credentials) and account its account, or NULL for an anonymous
 * request. When the request was rejected, the reply is already sent, and user and
 * account are NULL.
 */
typedef void (*http_auth_fn)(void *arg, const char *user, const struct auth_user *account);

/* Checks the credentials of request from peer ("http ADDRESS:PORT") and calls done(arg,
 * ...) once, possibly before returning. */
void http_auth_check(struct evhttp_request *request, const char *peer, http_auth_fn done,
                     void *arg);

/* Ends the checks in progress at shutdown: each callback runs with user NULL, and no
 * reply is sent. */
void http_auth_stop(void);

#endif
