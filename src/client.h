/*
 * client.h - client connections: the kdb+ handshake, message framing and the client
 * state machine.
 *
 *   HANDSHAKE --(LOGIN: password check)--> IDLE --sync--> QUEUED --dispatched--> ACTIVE
 *                                            ^                                     |
 *                                            +--------------response---------------+
 *   IDLE --sync, idle upstream--> ACTIVE
 *   any state --client_close()--> CLOSED (freed by the reaper outside callbacks)
 *
 * Async messages never change the state: they are written upstream at once (or wait in
 * QUEUED while no upstream connection is up).
 */
#ifndef QMUX_CLIENT_H
#define QMUX_CLIENT_H

#include <inttypes.h>
#include <stdint.h>
#include <sys/queue.h>
#include <sys/time.h>

#include <event2/bufferevent.h>
#include <event2/listener.h>

#include "ipc.h"

struct auth_user;
struct config;
struct login_session;
struct policy;
struct upconn;
struct request_queue;

enum client_state {
    CLIENT_HANDSHAKE,   /* reading "user:password" + capability + NUL */
    CLIENT_LOGIN,       /* its password is being checked, or it waits to be closed after a
                           failed check */
    CLIENT_IDLE,        /* no request of this client is queued or in flight */
    CLIENT_QUEUED,      /* its next message waits for an upstream connection */
    CLIENT_ACTIVE,      /* its sync request is in flight; the response is being relayed */
    CLIENT_CLOSING,     /* flushing a final error before closing */
    CLIENT_CLOSED,
};

struct client {
    uint64_t id;
    char peer[64];                  /* "address:port" */
    char user[64];                  /* login name, sanitized for logs */
    char *count_key;                /* its entry in users.c while counted: the account name,
                                       or "anonymous:" and the sanitized name */
    const struct auth_user *account; /* its account in qmux.config->users, or NULL when it
                                       logged in as anonymous */
    const struct policy *policy;    /* checked on each request; NULL allows everything */
    int requested_capability;       /* from the handshake */
    int http;                       /* attached by the HTTP gateway (client_attach) */
    struct login_session *login;    /* password check, or a refused login held open */
    struct bufferevent *bev;
    enum client_state state;
    int capability;                 /* agreed in the handshake */
    int local;                      /* peer on loopback or this host: kdb+ never compresses
                                       for such a peer */
    struct timeval connected_at;

    /* The message at the head of the input buffer, once its header has been read. */
    int head_parsed;
    int head_checked;               /* its body passed clients.validate_messages */
    int head_allowed;               /* it passed the client's policy */
    size_t read_high;               /* the read high watermark set last (set_read_limit) */
    struct ipc_header head;

    struct upconn *serving;         /* ACTIVE: the connection carrying its sync request */
    struct upconn *pinned;          /* connection that carried its unconfirmed async messages */
    TAILQ_ENTRY(client) pin_link;   /* in pinned->pinned_clients */
    int nested_open;                /* syncs from upstream relayed to it and not answered */

    struct request_queue *queue;    /* queue it waits in, or NULL */
    TAILQ_ENTRY(client) queue_link;
    struct timeval queued_at;

    struct timeval last_read;       /* for clients.idle_timeout_ms */
    struct evbuffer_cb_entry *output_entry;   /* counts its output in qmux.output_total */
    uint64_t output_added;          /* bytes ever added to its output buffer ... */
    uint64_t output_sent;           /* ... and ever drained from it by the socket */
    uint64_t response_start;        /* output_added when the response in flight began */
    struct event *handshake_timer;
    struct event *tls_sniff;        /* waits for the first byte that tells TLS from plain,
                                       while tls.mode is "on" or "only" */
    int tls_established;            /* its TLS handshake completed */
    const char *close_reason;       /* CLOSING: logged when the flush completes */

    uint64_t requests;
    uint64_t bytes_in;
    uint64_t bytes_out;

    /* The sync request being served, for stats and the access log. */
    int request_open;
    struct timeval request_started;  /* placed: queued or sent */
    struct timeval dispatched_at;    /* written to the upstream connection */
    uint64_t request_bytes;
    uint64_t response_start_bytes;   /* bytes_out when the request was placed */
    uint64_t upstream_id;            /* connection that carried it */

    TAILQ_ENTRY(client) list_link;  /* in qmux.clients or qmux.closed_clients */
};

/* Creates the listening socket from the config. Returns 0, or -1 after logging why. */
int client_listen(void);

/* Closes the listening socket and frees its timers. */
void client_listen_close(void);

/*
 * Makes a client of one end of an in-process bufferevent pair, already past the
 * handshake, so that another front end (the HTTP gateway) sends kdb+ messages through
 * the same queue, limits and ordering as TCP clients. The client owns bev from now on
 * and frees it when it closes; peer and user appear in logs. Returns NULL when out of
 * memory (bev is then still the caller's).
 */
struct client *client_attach(struct bufferevent *bev, const char *peer, const char *user,
                             int capability, const struct auth_user *account);

/* Returns the policy for a client of account (NULL for an anonymous one) under config:
 * the account's policy= option, else auth.default_policy, else NULL. */
const struct policy *client_policy_for(const struct config *config,
                                       const struct auth_user *account);

/*
 * Moves every client's account and policy to new_config, before the old config is freed
 * by a reload. A client whose account was removed from the users file, or may no longer
 * use its listener, is closed.
 */
void client_rebind_all(const struct config *new_config);

/*
 * Reads and acts on every complete message at the head of the client's input that its
 * state allows. Called on new input and whenever the client returns to IDLE.
 */
void client_process_input(struct client *client);

/* Called by the pool when the client's sync request was written to conn. */
void client_dispatched(struct client *client, struct upconn *conn);

/* Called by the upstream when the response to the client's sync request is complete. */
void client_request_done(struct client *client);

/*
 * Sends a kdb+ error response ('text) for the client's current sync request and makes it
 * IDLE again. text must not contain NUL.
 */
void client_fail_request(struct client *client, const char *text);

/* Puts a request taken back from an upstream connection that never sent it in front of
 * the client's input, and queues the client first in the shared queue. Returns 0, or -1
 * (nothing changed) when the bytes cannot be put back. */
int client_requeue(struct client *client, struct evbuffer *request);

/* Answers the head message of the client with the kdb+ error text (a sync request) or
 * drops it with a log line (an async one) and makes the client IDLE. */
void client_reject_head(struct client *client, const char *text);

/* Closes clients idle (no request queued or in flight) longer than
 * clients.idle_timeout_ms. */
void client_sweep_idle(void);

/* Notes that the response to the request in flight starts with the next output byte. */
void client_response_begins(struct client *client);

/*
 * Removes the partial response in flight from the client's output buffer when not one
 * of its bytes has reached the socket, so that an error can take its place. Returns 1
 * when removed, 0 when some bytes were already sent (the client must then be closed).
 */
int client_retract_response(struct client *client);

/* Sends a kdb+ error response without changing state. */
void client_send_error(struct client *client, const char *text);

/* The one close path: logs reason with id, peer, age and byte counts, releases the
 * connection's links and frees it later. Safe to call twice. */
void client_close(struct client *client, const char *reason);

/* Returns the open client with this id, or NULL. */
struct client *client_find(uint64_t id);

/* Returns the name of a client state ("idle", "queued", ...). */
const char *client_state_name(enum client_state state);

/* Frees clients closed since the last call; runs outside any client callback. */
void client_reap(void);

#endif
