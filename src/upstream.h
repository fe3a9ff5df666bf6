/*
 * upstream.h - connections to upstream kdb+ processes: connect, login, relay responses,
 * and reconnect with exponential backoff and jitter.
 *
 *   DOWN --timer--> CONNECTING --TCP up--> LOGIN --capability byte--> IDLE <--> BUSY
 *     ^                 |                     |                        |        |
 *     +-----------------+---------------------+------------------------+--------+
 *                     any failure: upconn_close(reason), backoff, DOWN
 */
#ifndef QMUX_UPSTREAM_H
#define QMUX_UPSTREAM_H

#include <inttypes.h>
#include <stdint.h>
#include <sys/queue.h>
#include <sys/time.h>

#include <event2/bufferevent.h>

#include "backend.h"
#include "config.h"
#include "queue.h"

struct client;
struct backend;

enum upconn_state {
    UPCONN_DOWN,        /* waiting for the reconnect timer */
    UPCONN_CONNECTING,  /* TCP connect in progress */
    UPCONN_LOGIN,       /* handshake sent, waiting for the capability byte */
    UPCONN_IDLE,        /* in the pool's idle list */
    UPCONN_BUSY,        /* a sync request is in flight */
};

struct upconn {
    uint64_t id;                    /* new id for every connect */
    struct backend *backend;
    int slot;                       /* index within backend->conns */
    struct bufferevent *bev;        /* writes, and reports the connect */
    struct event *read_event;       /* reads the socket once connected */
    struct evbuffer *input;         /* bytes read and not relayed yet */
    enum upconn_state state;
    int capability;                 /* agreed in the handshake */
    struct timeval since;           /* entered the current state */

    /* BUSY: the client whose sync request is in flight; NULL once that client left,
     * in which case the rest of the response is read and discarded. */
    struct client *client;
    int client_gone;

    /* The upstream message being relayed: bytes still expected and its type. */
    uint64_t message_remaining;
    int message_type;
    int discarding;                 /* the current message goes nowhere */
    int relayed_any;                /* bytes for the current request reached the client */
    const char *deferred_error;     /* error sent to the client instead of this response */
    char error_text[256];           /* storage for a formatted deferred_error */
    int convert;                    /* enum convert_kind of the current message */
    struct evbuffer *collected;     /* the current message, when it must be converted */
    int read_paused;                /* reading stopped until the client's output drains */
    int paused_globally;            /* ... or until all client output drains below half of
                                       clients.max_output_total */
    TAILQ_ENTRY(upconn) output_link;   /* in qmux.output_waiters */

    TAILQ_ENTRY(upconn) idle_link;
    int in_idle_list;
    TAILQ_HEAD(, client) pinned_clients;   /* clients whose async messages went here */
    struct request_queue pinned_queue;     /* their sync requests waiting for this one */
    struct request_queue write_waiters;    /* clients whose async message waits for the
                                              output buffer to drain */

    /* Bytes ever appended to the output buffer, and where the request in flight starts
     * in that count: a request none of whose bytes left the buffer can be retried. */
    uint64_t output_appended;
    uint64_t request_offset;
    uint64_t request_length;
    int health_check;               /* BUSY with qmux's own health-check query */

    struct event *timer;            /* reconnect backoff, connect/login timeout, or the
                                       query or health-check timeout while BUSY */
    int failures;                   /* consecutive failed attempts */
    int ever_connected;
    struct timeval down_since;
    char last_error[160];

    uint64_t requests_served;

    TAILQ_ENTRY(upconn) retired_link;  /* in backend->retired once removed */
    int retiring;                   /* removed by a reload: close when its request ends */
    int reconnect_after;            /* replace once the request in flight is done */
    int replacing;                  /* closing on purpose, to reconnect at once */
    int retired;                    /* closed for good; kept until shutdown */
};


/* Starts connecting conn now. */
void upconn_connect(struct upconn *conn);

/* Writes the client's head message (a sync request) and makes conn BUSY for it. */
void upconn_send_request(struct upconn *conn, struct client *client);

/* Moves the client's head message (async, or a response to a nested sync) into conn's
 * output without changing conn's state. */
void upconn_forward(struct upconn *conn, struct client *client);

/* Returns 1 when conn's output buffer is over clients.output_high_watermark, so a client
 * must wait (upconn_wait_for_drain) before adding an async message to it. */
int upconn_output_full(const struct upconn *conn);

/* Queues the client until conn's output drains below clients.output_low_watermark. */
void upconn_wait_for_drain(struct upconn *conn, struct client *client);

/* Called when conn's client closes: the rest of the response will be discarded. */
void upconn_client_left(struct upconn *conn, struct client *client);

/* Resumes reading after the client's output buffer drained below the low watermark. */
void upconn_resume(struct upconn *conn);

/* Resumes the connections paused by clients.max_output_total, while the total allows. */
void upconn_resume_paused_globally(void);

/* The one close path: logs the reason, answers the client in flight with
 * 'upstream connection lost' (or closes it when part of its response was relayed, or
 * re-queues its request when none of it was sent), hands waiting clients back to the
 * pool and schedules a reconnect. */
void upconn_close(struct upconn *conn, const char *reason);

/* As upconn_close, with client_error as the kdb+ error for the client in flight. */
void upconn_fail(struct upconn *conn, const char *reason, const char *client_error);

/* Takes conn out of use for good (a reload removed it): closes it now, or after the
 * response in flight has been relayed. It is not reconnected. */
void upconn_retire(struct upconn *conn);

/* Closes conn and connects again at once, without backoff (admin reconnect). */
void upconn_replace(struct upconn *conn, const char *reason);

/* Connects a DOWN connection at once instead of after its backoff, and resets the
 * backoff. Any other connection is left alone. */
void upconn_reconnect_now(struct upconn *conn);

/* Sends pool.health_check_query on an idle connection (taken out of the idle list). */
void upconn_check_health(struct upconn *conn);

/* Releases conn's resources without reconnecting (shutdown). */
void upconn_destroy(struct upconn *conn);

const char *upconn_state_name(enum upconn_state state);

/* Changes conn's state and timestamps it; logs the transition at debug level. */
void upconn_set_state(struct upconn *conn, enum upconn_state state);

#endif
