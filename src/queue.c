/*
 * queue.c - the FIFO of waiting clients.
 */
#include "queue.h"

#include "client.h"

void queue_init(struct request_queue *queue)
{
    TAILQ_INIT(&queue->head);
    queue->length = 0;
}

void queue_push(struct request_queue *queue, struct client *client)
{
    TAILQ_INSERT_TAIL(&queue->head, client, queue_link);
    client->queue = queue;
    queue->length++;
}

void queue_push_front(struct request_queue *queue, struct client *client)
{
    TAILQ_INSERT_HEAD(&queue->head, client, queue_link);
    client->queue = queue;
    queue->length++;
}

struct client *queue_pop(struct request_queue *queue)
{
    struct client *client = TAILQ_FIRST(&queue->head);

    if (client != NULL)
        queue_remove(queue, client);
    return client;
}

void queue_remove(struct request_queue *queue, struct client *client)
{
    TAILQ_REMOVE(&queue->head, client, queue_link);
    client->queue = NULL;
    queue->length--;
}

void queue_splice_front(struct request_queue *to, struct request_queue *from)
{
    struct client *client;

    while ((client = TAILQ_LAST(&from->head, client_tailq)) != NULL) {
        queue_remove(from, client);
        queue_push_front(to, client);
    }
}
