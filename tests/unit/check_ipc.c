/*
 * check_ipc.c - unit tests of IPC header and handshake parsing.
 */
#include <stdint.h>
#include <string.h>

#include "ipc.h"
#include "suites.h"

struct header_case {
    const char *name;
    uint8_t raw[IPC_HEADER_SIZE];
    int status;
    int little_endian;
    int type;
    int compressed;
    uint64_t length;
};

static const struct header_case header_cases[] = {
    { "sync 2+2 little-endian", { 1, 1, 0, 0, 0x11, 0, 0, 0 }, IPC_OK, 1, IPC_SYNC, 0, 17 },
    { "response big-endian", { 0, 2, 0, 0, 0, 0, 0, 0x11 }, IPC_OK, 0, IPC_RESPONSE, 0, 17 },
    { "async", { 1, 0, 0, 0, 0x0e, 0, 0, 0 }, IPC_OK, 1, IPC_ASYNC, 0, 14 },
    { "compressed", { 1, 2, 1, 0, 0x2f, 0, 0, 0 }, IPC_OK, 1, IPC_RESPONSE, 1, 47 },
    { "unsigned 32-bit length", { 1, 0, 0, 0, 0x1a, 0x18, 0x0d, 0x8f }, IPC_OK, 1, IPC_ASYNC, 0,
      2400000026u },
    { "40-bit length", { 1, 0, 0, 1, 0x26, 0xac, 0x42, 0x06 }, IPC_OK, 1, IPC_ASYNC, 0,
      UINT64_C(4400000038) },
    { "byte order 2", { 2, 1, 0, 0, 0x11, 0, 0, 0 }, IPC_BAD_ENDIAN, 0, 0, 0, 0 },
    { "message type 3", { 1, 3, 0, 0, 0x11, 0, 0, 0 }, IPC_BAD_TYPE, 0, 0, 0, 0 },
    { "compression 3", { 1, 1, 3, 0, 0x11, 0, 0, 0 }, IPC_BAD_COMPRESSION, 0, 0, 0, 0 },
    { "length 0", { 1, 1, 0, 0, 0, 0, 0, 0 }, IPC_BAD_LENGTH, 0, 0, 0, 0 },
    { "length 7", { 1, 1, 0, 0, 7, 0, 0, 0 }, IPC_BAD_LENGTH, 0, 0, 0, 0 },
    { "length 9", { 1, 1, 0, 0, 9, 0, 0, 0 }, IPC_BAD_LENGTH, 0, 0, 0, 0 },
    { "compressed length 12", { 1, 1, 1, 0, 12, 0, 0, 0 }, IPC_BAD_LENGTH, 0, 0, 0, 0 },
};

START_TEST(header_parse_table)
{
    const struct header_case *c = &header_cases[_i];
    struct ipc_header header;

    int status = ipc_header_parse(c->raw, &header);
    ck_assert_msg(status == c->status, "%s: status %d, expected %d", c->name, status, c->status);
    if (c->status != IPC_OK)
        return;
    ck_assert_int_eq(header.little_endian, c->little_endian);
    ck_assert_int_eq(header.type, c->type);
    ck_assert_int_eq(header.compressed, c->compressed);
    ck_assert_uint_eq(header.length, c->length);
}
END_TEST

START_TEST(header_write_round_trip)
{
    static const uint64_t lengths[] = { 10, 17, 65535, UINT64_C(0xffffffff), UINT64_C(4400000038),
                                        IPC_MAX_LENGTH };

    for (size_t i = 0; i < sizeof(lengths) / sizeof(lengths[0]); i++) {
        uint8_t raw[IPC_HEADER_SIZE];
        struct ipc_header header;

        ipc_header_write(raw, IPC_RESPONSE, lengths[i]);
        ck_assert_int_eq(ipc_header_parse(raw, &header), IPC_OK);
        ck_assert_uint_eq(header.length, lengths[i]);
        ck_assert_int_eq(header.type, IPC_RESPONSE);
        ck_assert_int_eq(header.little_endian, 1);
    }
}
END_TEST

START_TEST(header_write_matches_kdb)
{
    /* Response carrying the long 4, as kdb+ sends it. */
    static const uint8_t expected[IPC_HEADER_SIZE] = { 1, 2, 0, 0, 0x11, 0, 0, 0 };
    uint8_t raw[IPC_HEADER_SIZE];

    ipc_header_write(raw, IPC_RESPONSE, 17);
    ck_assert_mem_eq(raw, expected, sizeof(raw));
}
END_TEST

static int parse_text(const char *bytes, size_t len, struct ipc_handshake *out)
{
    return ipc_handshake_parse((const uint8_t *)bytes, len, IPC_HANDSHAKE_MAX, out);
}

START_TEST(handshake_with_capability)
{
    struct ipc_handshake handshake;
    static const char login[] = "alice:secret\003";   /* the array adds the NUL */

    ck_assert_int_eq(parse_text(login, sizeof(login), &handshake), IPC_HANDSHAKE_DONE);
    ck_assert_uint_eq(handshake.length, 14);
    ck_assert_int_eq(handshake.capability, 3);
    ck_assert_uint_eq(handshake.credentials_len, 12);
    ck_assert_uint_eq(handshake.user_len, 5);
}
END_TEST

START_TEST(handshake_without_capability)
{
    struct ipc_handshake handshake;
    static const char login[] = "bob:pw";

    ck_assert_int_eq(parse_text(login, sizeof(login), &handshake), IPC_HANDSHAKE_DONE);
    ck_assert_int_eq(handshake.capability, 0);
    ck_assert_uint_eq(handshake.credentials_len, 6);
    ck_assert_uint_eq(handshake.user_len, 3);
}
END_TEST

START_TEST(handshake_user_without_password)
{
    struct ipc_handshake handshake;
    static const char login[] = "anonymous\006";

    ck_assert_int_eq(parse_text(login, sizeof(login), &handshake), IPC_HANDSHAKE_DONE);
    ck_assert_int_eq(handshake.capability, 6);
    ck_assert_uint_eq(handshake.user_len, 9);
}
END_TEST

START_TEST(handshake_capability_only)
{
    struct ipc_handshake handshake;
    static const char login[] = "\003";

    ck_assert_int_eq(parse_text(login, sizeof(login), &handshake), IPC_HANDSHAKE_DONE);
    ck_assert_int_eq(handshake.capability, 3);
    ck_assert_uint_eq(handshake.credentials_len, 0);
    ck_assert_uint_eq(handshake.length, 2);
}
END_TEST

START_TEST(handshake_incomplete)
{
    struct ipc_handshake handshake;

    ck_assert_int_eq(parse_text("alice:sec", 9, &handshake), IPC_HANDSHAKE_INCOMPLETE);
    ck_assert_int_eq(parse_text("", 0, &handshake), IPC_HANDSHAKE_INCOMPLETE);
}
END_TEST

START_TEST(handshake_too_long)
{
    static char long_login[IPC_HANDSHAKE_MAX + 10];
    struct ipc_handshake handshake;

    memset(long_login, 'x', sizeof(long_login));
    ck_assert_int_eq(parse_text(long_login, sizeof(long_login), &handshake),
                     IPC_HANDSHAKE_TOO_LONG);

    /* Exactly the maximum credentials plus capability and NUL is accepted. */
    long_login[IPC_HANDSHAKE_MAX] = 3;
    long_login[IPC_HANDSHAKE_MAX + 1] = 0;
    ck_assert_int_eq(parse_text(long_login, IPC_HANDSHAKE_MAX + 2, &handshake),
                     IPC_HANDSHAKE_DONE);
    ck_assert_uint_eq(handshake.credentials_len, IPC_HANDSHAKE_MAX);

    /* One credential byte more, no capability byte: too long. */
    long_login[IPC_HANDSHAKE_MAX] = 'x';
    ck_assert_int_eq(parse_text(long_login, IPC_HANDSHAKE_MAX + 2, &handshake),
                     IPC_HANDSHAKE_TOO_LONG);
}
END_TEST

START_TEST(handshake_leaves_following_bytes)
{
    struct ipc_handshake handshake;
    static const char bytes[] = "u:p\003\0\001\001\000\000";

    ck_assert_int_eq(parse_text(bytes, sizeof(bytes) - 1, &handshake), IPC_HANDSHAKE_DONE);
    ck_assert_uint_eq(handshake.length, 5);
}
END_TEST

START_TEST(error_message_matches_kdb)
{
    /* kdb+'s response carrying 'length. */
    static const uint8_t expected[] = { 1, 2, 0, 0, 16, 0, 0, 0, 0x80, 'l', 'e', 'n', 'g', 't',
                                        'h', 0 };
    uint8_t out[64];

    ck_assert_uint_eq(ipc_error_message(out, sizeof(out), "length"), sizeof(expected));
    ck_assert_mem_eq(out, expected, sizeof(expected));
}
END_TEST

START_TEST(error_message_cut_to_size)
{
    uint8_t out[20];
    struct ipc_header header;
    size_t length = ipc_error_message(out, sizeof(out), "a long error text that does not fit");

    ck_assert_uint_eq(length, sizeof(out));
    ck_assert_int_eq(ipc_header_parse(out, &header), IPC_OK);
    ck_assert_uint_eq(header.length, sizeof(out));
    ck_assert_uint_eq(out[sizeof(out) - 1], 0);
}
END_TEST

Suite *ipc_suite(void)
{
    Suite *suite = suite_create("ipc");
    TCase *header = tcase_create("header");
    TCase *handshake = tcase_create("handshake");

    tcase_add_loop_test(header, header_parse_table, 0,
                        (int)(sizeof(header_cases) / sizeof(header_cases[0])));
    tcase_add_test(header, header_write_round_trip);
    tcase_add_test(header, header_write_matches_kdb);
    tcase_add_test(header, error_message_matches_kdb);
    tcase_add_test(header, error_message_cut_to_size);
    suite_add_tcase(suite, header);

    tcase_add_test(handshake, handshake_with_capability);
    tcase_add_test(handshake, handshake_without_capability);
    tcase_add_test(handshake, handshake_user_without_password);
    tcase_add_test(handshake, handshake_capability_only);
    tcase_add_test(handshake, handshake_incomplete);
    tcase_add_test(handshake, handshake_too_long);
    tcase_add_test(handshake, handshake_leaves_following_bytes);
    suite_add_tcase(suite, handshake);
    return suite;
}
