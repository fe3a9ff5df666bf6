/*
 * qmux.c - the process-wide state and connection ids.
 */
#include "qmux.h"

#include <event2/listener.h>

struct qmux qmux;

uint64_t qmux_next_id(void)
{
    return ++qmux.next_connection_id;
}

static void listener_resume_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    if (!qmux.stopping)
        evconnlistener_enable(arg);
}

void qmux_pause_listener(struct evconnlistener *listener, struct event **timer, int ms)
{
    struct timeval pause = { ms / 1000, (ms % 1000) * 1000 };

    if (*timer == NULL)
        *timer = evtimer_new(qmux.base, listener_resume_cb, listener);
    if (*timer == NULL)
        return;
    evconnlistener_disable(listener);
    evtimer_add(*timer, &pause);
}
