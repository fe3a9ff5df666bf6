/*
 * page.h - the query page of GET /: one self-contained HTML document with inline CSS and
 * JavaScript that sends q queries to POST /q and shows the results.
 */
#ifndef QMUX_PAGE_H
#define QMUX_PAGE_H

struct evhttp_request;

/* Sends the query page (GET and HEAD /). */
void page_handle_index(struct evhttp_request *request);

#endif
