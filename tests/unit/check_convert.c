/*
 * check_convert.c - unit tests of the capability check of responses for old clients.
 */
#include <stdint.h>
#include <string.h>

#include "convert.h"
#include "ipc.h"
#include "suites.h"

/* Builds a response message of body[0..length) into out. Returns the message length. */
static uint64_t response(uint8_t *out, const uint8_t *body, size_t length)
{
    ipc_header_write(out, IPC_RESPONSE, IPC_HEADER_SIZE + length);
    memcpy(out + IPC_HEADER_SIZE, body, length);
    return IPC_HEADER_SIZE + length;
}

struct type_case {
    const char *name;
    uint8_t body[40];
    size_t length;
    int capability;
    const char *expected;       /* NULL: readable */
};

static const struct type_case type_cases[] = {
    { "long atom at 0", { 0xf9, 1, 0, 0, 0, 0, 0, 0, 0 }, 9, 0, NULL },
    { "timestamp atom at 0", { 0xf4, 1, 0, 0, 0, 0, 0, 0, 0 }, 9, 0, "timestamp" },
    { "timestamp atom at 1", { 0xf4, 1, 0, 0, 0, 0, 0, 0, 0 }, 9, 1, NULL },
    { "timespan vector at 0", { 16, 0, 1, 0, 0, 0, 5, 0, 0, 0, 0, 0, 0, 0 }, 14, 0, "timespan" },
    { "guid atom at 2", { 0xfe, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16 }, 17, 2,
      "guid" },
    { "guid atom at 3", { 0xfe, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16 }, 17, 3,
      NULL },
    /* (1; timestamp): the check reaches into general lists. */
    { "timestamp in a list at 0", { 0, 0, 2, 0, 0, 0, 0xf9, 1, 0, 0, 0, 0, 0, 0, 0,
      0xf4, 2, 0, 0, 0, 0, 0, 0, 0 }, 24, 0, "timestamp" },
};

START_TEST(unreadable_type_table)
{
    const struct type_case *c = &type_cases[_i];
    uint8_t message[64];
    uint64_t length = response(message, c->body, c->length);

    const char *found = convert_unreadable_type(message, length, c->capability);
    if (c->expected == NULL)
        ck_assert_msg(found == NULL, "%s: found %s", c->name, found);
    else
        ck_assert_msg(found != NULL && strcmp(found, c->expected) == 0, "%s: found %s, "
                      "expected %s", c->name, found != NULL ? found : "nothing", c->expected);
}
END_TEST

Suite *convert_suite(void)
{
    Suite *suite = suite_create("convert");
    TCase *types = tcase_create("types");

    tcase_add_loop_test(types, unreadable_type_table, 0,
                        (int)(sizeof(type_cases) / sizeof(type_cases[0])));
    suite_add_tcase(suite, types);
    return suite;
}
