/*
 * eval.h - the stand-in's q subset: evaluates a request as q's default .z.pg/.z.ps
 * (value) would, for the expressions and functions listed in docs/standin.md.
 */
#ifndef STANDIN_EVAL_H
#define STANDIN_EVAL_H

#include "value.h"

/* Action the server takes on a result besides sending it. */
enum eval_action {
    EVAL_REPLY = 0,      /* send the value (sync) or drop it (async) */
    EVAL_CLOSE_MID,      /* send about half of the response, then close the connection */
    EVAL_STALL_MID,      /* send half, block for stall_seconds, then send the rest */
    EVAL_EXIT,           /* exit the process at once, without a response */
};

struct eval_result {
    struct qval *value;     /* owned by the caller; NULL when error is set */
    char error[256];        /* kdb+ error text (no leading quote) when value is NULL */
    int action;             /* enum eval_action */
    double stall_seconds;   /* for EVAL_STALL_MID */
};

/* Evaluates a decoded request: a string is parsed as q, a general list (`f;x) or
 * ("f";x) applies a function, a symbol is looked up, and anything else is returned. */
void eval_request(const struct qval *request, struct eval_result *out);

/* Returns 1 after .standin.refuse 1b, until .standin.refuse 0b. */
int eval_rejecting_logins(void);

/* Frees every global variable. */
void eval_shutdown(void);

#endif
