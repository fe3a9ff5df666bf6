/*
 * direct_write.h - moving bytes into a bufferevent's output, written straight to the
 * socket when nothing is queued there.
 *
 * Queueing bytes in a bufferevent arms its write event and disarms it once the bytes are
 * out: two epoll_ctl calls for every small request or response. When the output buffer
 * is empty, the bytes can go to the socket at once, and only what the socket does not
 * take is queued.
 */
#ifndef QMUX_DIRECT_WRITE_H
#define QMUX_DIRECT_WRITE_H

#include <stddef.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>

/*
 * Moves the first n bytes of from to bev: to its socket while bev's output buffer is
 * empty and bev is a plain socket (not TLS, not one end of a pair), the rest into the
 * output buffer. Returns the bytes written to the socket, which never enter the output
 * buffer or its callbacks. A socket error is left for bev's own write to report.
 */
size_t direct_write(struct bufferevent *bev, struct evbuffer *from, size_t n);

#endif
