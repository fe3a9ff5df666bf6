/*
 * queue.h - FIFO of clients whose next sync request waits for an upstream connection.
 *
 * A client is in at most one queue at a time (the pool's shared queue or the private queue
 * of the upstream connection it is pinned to), linked through client->queue_link, so
 * queueing never allocates.
 */
#ifndef QMUX_QUEUE_H
#define QMUX_QUEUE_H

#include <stddef.h>
#include <sys/queue.h>

struct client;

struct request_queue {
    TAILQ_HEAD(client_tailq, client) head;
    size_t length;
};

void queue_init(struct request_queue *queue);

/* Appends client, or inserts it first (a request that already waited elsewhere). */
void queue_push(struct request_queue *queue, struct client *client);
void queue_push_front(struct request_queue *queue, struct client *client);

/* Removes and returns the oldest client, or NULL when the queue is empty. */
struct client *queue_pop(struct request_queue *queue);

/* Removes client, which must be in queue. */
void queue_remove(struct request_queue *queue, struct client *client);

/* Moves every client of from to the front of to, keeping their order. */
void queue_splice_front(struct request_queue *to, struct request_queue *from);

#endif
