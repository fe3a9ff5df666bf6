/*
 * qmux.c - the process-wide state and connection ids.
 */
#include "qmux.h"

struct qmux qmux;

uint64_t qmux_next_id(void)
{
    return ++qmux.next_connection_id;
}
