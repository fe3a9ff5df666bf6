/*
 * http_auth.c - HTTP Basic authentication of the query route (see http_auth.h).
 */
#include "http_auth.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/queue.h>

#include <event2/http.h>
#include <openssl/crypto.h>

#include "auth.h"
#include "http.h"
#include "log.h"
#include "passwd.h"
#include "login.h"
#include "qmux.h"
#include "stats.h"

/* Decoded Basic credentials: user, ':' and password, at most this many bytes. */
#define CREDENTIALS_MAX 1024

/* One request whose password is being checked, or whose rejection waits for its delay. */
struct http_login {
    struct evhttp_request *request;
    struct login_session *session;
    char peer[80];
    char user[HTTP_AUTH_USER_MAX];
    http_auth_fn done;
    void *arg;
    LIST_ENTRY(http_login) link;
};

static LIST_HEAD(, http_login) logins = LIST_HEAD_INITIALIZER(logins);

static const char challenge[] = "Basic realm=\"qmux\", charset=\"UTF-8\"";

/* Replies 401 with the Basic challenge and the JSON error text. */
static void send_unauthorized(struct evhttp_request *request, const char *json)
{
    evhttp_add_header(evhttp_request_get_output_headers(request), "WWW-Authenticate", challenge);
    http_send_json(request, 401, "Unauthorized", json);
}

static void login_free(struct http_login *login)
{
    LIST_REMOVE(login, link);
    login_end(login->session);
    free(login);
}

static void rejected_reply(void *arg)
{
    struct http_login *login = arg;

    send_unauthorized(login->request, "{\"error\":\"access: wrong user name or password\"}");
    login->done(login->arg, NULL, NULL);
    login_free(login);
}

static void login_done(void *arg, const struct auth_user *user, const char *failure)
{
    struct http_login *login = arg;

    if (user != NULL && !login_listener_allowed(user, AUTH_LISTENER_HTTP))
        failure = "its listeners= option in auth.users_file does not name http";
    else if (user != NULL) {
        login->done(login->arg, login->user, user);
        login_free(login);
        return;
    }

    stats.logins_rejected++;
    log_warn("%s: login rejected for user %s: %s", login->peer, login->user, failure);
    login_reject(login->session, rejected_reply);
}

/*
 * Finds the Basic credentials of request. Returns 1 and fills credentials and *length
 * when the header is there, 0 when it is absent, -1 with the reason in error when it is
 * not valid Basic.
 */
static int find_credentials(struct evhttp_request *request, char *credentials, size_t size,
                            long *length, char *error, size_t error_size)
{
    const char *header = evhttp_find_header(evhttp_request_get_input_headers(request),
                                            "Authorization");

    if (header == NULL)
        return 0;
    if (strncasecmp(header, "Basic ", 6) != 0) {
        snprintf(error, error_size, "unsupported Authorization scheme; only Basic is read");
        return -1;
    }
    const char *text = header + 6 + strspn(header + 6, " ");
    size_t text_length = strcspn(text, "= \t");
    size_t padding = strspn(text + text_length, "=");
    size_t end = text_length + padding + strspn(text + text_length + padding, " \t");
    *length = padding <= 2 && text[end] == '\0'
              ? passwd_base64_decode(text, text_length, (uint8_t *)credentials, size) : -1;
    if (*length < 0) {
        snprintf(error, error_size, "invalid Authorization header: the Basic credentials are "
                 "not base64 or longer than %zu bytes", size);
        return -1;
    }
    return 1;
}

/* Starts the password check of credentials[0..length), whose user name is name_length
 * bytes long. */
static void start_check(struct evhttp_request *request, const char *peer, const char *user,
                        const char *credentials, size_t length, size_t name_length,
                        http_auth_fn done, void *arg)
{
    struct http_login *login = calloc(1, sizeof(*login));
    const char *password = credentials + length;
    size_t password_length = 0;

    if (name_length < length) {
        password = credentials + name_length + 1;
        password_length = length - name_length - 1;
    }
    if (login != NULL) {
        login->request = request;
        login->done = done;
        login->arg = arg;
        snprintf(login->peer, sizeof(login->peer), "%s", peer);
        snprintf(login->user, sizeof(login->user), "%s", user);
        LIST_INSERT_HEAD(&logins, login, link);
        login->session = login_begin(peer + strlen("http "), (const uint8_t *)credentials,
                                     name_length, (const uint8_t *)password, password_length,
                                     login_done, login);
    }
    if (login == NULL || login->session == NULL) {
        if (login != NULL)
            login_free(login);
        log_error("%s: out of memory while checking a password", peer);
        http_send_json(request, 500, "Internal Server Error", "{\"error\":\"out of memory\"}");
        done(arg, NULL, NULL);
    }
}

void http_auth_check(struct evhttp_request *request, const char *peer, http_auth_fn done,
                     void *arg)
{
    char credentials[CREDENTIALS_MAX];
    char user[HTTP_AUTH_USER_MAX] = "http";
    char error[160];
    long length = 0;
    const struct config *config = qmux.config;

    int found = find_credentials(request, credentials, sizeof(credentials), &length, error,
                                 sizeof(error));
    if (found < 0) {
        log_info("%s: rejected: %s", peer, error);
        http_send_json(request, 400, "Bad Request", "{\"error\":\"invalid Authorization "
                       "header: send Basic credentials\"}");
        done(arg, NULL, NULL);
        return;
    }

    /* The decoded bytes carry no NUL, so search only what was decoded. */
    const char *colon = found ? memchr(credentials, ':', (size_t)length) : NULL;
    size_t name_length = colon != NULL ? (size_t)(colon - credentials) : (size_t)length;
    if (name_length > 0)
        log_sanitize(user, sizeof(user), credentials, name_length);

    if (!login_needs_check(config->users, config->http_anonymous, (const uint8_t *)credentials,
                           name_length)) {
        OPENSSL_cleanse(credentials, sizeof(credentials));
        done(arg, user, NULL);
        return;
    }
    if (!found) {
        log_info("%s: query without credentials: replied 401 with a Basic challenge", peer);
        send_unauthorized(request, "{\"error\":\"access: send the user name and password "
                          "of the users file with HTTP Basic\"}");
        done(arg, NULL, NULL);
        return;
    }
    start_check(request, peer, user, credentials, (size_t)length, name_length, done, arg);
    OPENSSL_cleanse(credentials, sizeof(credentials));
}

void http_auth_stop(void)
{
    struct http_login *login;

    while ((login = LIST_FIRST(&logins)) != NULL) {
        login->done(login->arg, NULL, NULL);
        login_free(login);
    }
}
