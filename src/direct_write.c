/*
 * direct_write.c - moving bytes into a bufferevent's output (see direct_write.h).
 */
#include "direct_write.h"

#include "tls.h"

/* Most bytes moved between evbuffers per call: evbuffer_remove_buffer returns an int. */
#define MOVE_CHUNK ((size_t)1 << 30)

size_t direct_write(struct bufferevent *bev, struct evbuffer *from, size_t n)
{
    struct evbuffer *output = bufferevent_get_output(bev);
    evutil_socket_t fd = bufferevent_getfd(bev);
    size_t written = 0;

    if (evbuffer_get_length(output) == 0 && fd >= 0 && !tls_is_tls(bev)) {
        int sent = evbuffer_write_atmost(from, fd, (ev_ssize_t)n);

        if (sent > 0)
            written = (size_t)sent;
    }

    size_t left = n - written;
    while (left > 0) {
        int moved = evbuffer_remove_buffer(from, output, left < MOVE_CHUNK ? left : MOVE_CHUNK);

        if (moved <= 0)
            break;
        left -= (size_t)moved;
    }
    return written;
}
