/*
 * check_qenc.c - q value encoder: bytes compared with what a real kdb+ 3.x serialized.
 *
 * Each case names a q expression of the serialization samples and encodes the same value
 * with qenc; the body must equal the sample byte for byte. Vector items are laid out with
 * memcpy, so these tests assume a little-endian host, as qmux's targets are.
 */
#include "suites.h"

#include "ipc.h"
#include "qenc.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define LONG_NULL INT64_MIN
#define INT_NULL INT32_MIN

static void encode_longs(struct qenc *b, const int64_t *items, size_t n)
{
    qenc_vector_header(b, QT_LONG, 0, n);
    qenc_raw(b, items, n * sizeof(*items));
}

static void encode_symbol_list(struct qenc *b, const char *const *texts, size_t n)
{
    qenc_symbols(b, texts, n);
}

static void enc_type_error(struct qenc *b) { qenc_error(b, "type"); }
static void enc_long_1(struct qenc *b) { qenc_long(b, 1); }
static void enc_int_1(struct qenc *b) { qenc_int(b, 1); }
static void enc_short(struct qenc *b) { qenc_short(b, -234); }
static void enc_false(struct qenc *b) { qenc_boolean(b, 0); }
static void enc_true(struct qenc *b) { qenc_boolean(b, 1); }
static void enc_byte(struct qenc *b) { qenc_byte(b, 0x2a); }
static void enc_big_long(struct qenc *b) { qenc_long(b, 89421099511627575LL); }
static void enc_float(struct qenc *b) { qenc_float(b, 3.234); }
static void enc_real(struct qenc *b) { qenc_real(b, 5.5f); }
static void enc_char(struct qenc *b) { qenc_char(b, '0'); }
static void enc_abc(struct qenc *b) { qenc_string(b, "abc", 3); }
static void enc_empty_string(struct qenc *b) { qenc_string(b, "", 0); }
static void enc_fox(struct qenc *b)
{
    const char *text = "quick brown fox jumps over a lazy dog";
    qenc_string(b, text, strlen(text));
}
static void enc_symbol(struct qenc *b) { qenc_symbol(b, "abc"); }
static void enc_long_symbol(struct qenc *b) { qenc_symbol(b, "quickbrownfoxjumpsoveralazydog"); }
/* 3 days, 5:36:57.600 after 2000.01.01D00:00 */
static void enc_timestamp(struct qenc *b) { qenc_timestamp(b, 279417600000000LL); }
static void enc_month(struct qenc *b) { qenc_month(b, 12); }
static void enc_date_2001(struct qenc *b) { qenc_date(b, 366); }
static void enc_date_may(struct qenc *b) { qenc_date(b, 121); }
static void enc_datetime(struct qenc *b) { qenc_datetime(b, 3.234); }
static void enc_timespan(struct qenc *b) { qenc_timespan(b, 20217600000000LL); }
static void enc_minute(struct qenc *b) { qenc_minute(b, 721); }
static void enc_second(struct qenc *b) { qenc_second(b, 43500); }
static void enc_time(struct qenc *b) { qenc_time(b, 43499123); }
static void enc_byte_0(struct qenc *b) { qenc_byte(b, 0); }
static void enc_short_null(struct qenc *b) { qenc_short(b, INT16_MIN); }
static void enc_long_null(struct qenc *b) { qenc_long(b, LONG_NULL); }
static void enc_int_null(struct qenc *b) { qenc_int(b, INT_NULL); }
static void enc_real_null(struct qenc *b) { qenc_real(b, NAN); }
static void enc_float_null(struct qenc *b) { qenc_float(b, (double)NAN); }
static void enc_space(struct qenc *b) { qenc_char(b, ' '); }
static void enc_empty_symbol(struct qenc *b) { qenc_symbol(b, ""); }
static void enc_timestamp_null(struct qenc *b) { qenc_timestamp(b, LONG_NULL); }
static void enc_month_null(struct qenc *b) { qenc_month(b, INT_NULL); }
static void enc_date_null(struct qenc *b) { qenc_date(b, INT_NULL); }
static void enc_datetime_null(struct qenc *b) { qenc_datetime(b, (double)NAN); }
static void enc_timespan_null(struct qenc *b) { qenc_timespan(b, LONG_NULL); }
static void enc_minute_null(struct qenc *b) { qenc_minute(b, INT_NULL); }
static void enc_second_null(struct qenc *b) { qenc_second(b, INT_NULL); }
static void enc_time_null(struct qenc *b) { qenc_time(b, INT_NULL); }
static void enc_empty_list(struct qenc *b) { qenc_list_header(b, 0); }

static void enc_booleans(struct qenc *b)
{
    const uint8_t items[] = {0, 1, 0};
    qenc_vector_header(b, QT_BOOLEAN, 0, 3);
    qenc_raw(b, items, sizeof(items));
}

static void enc_bytes(struct qenc *b)
{
    const uint8_t items[] = {1, 2, 0xff};
    qenc_vector_header(b, QT_BYTE, 0, 3);
    qenc_raw(b, items, sizeof(items));
}

static void enc_shorts(struct qenc *b)
{
    const int16_t items[] = {1, 2, 3};
    qenc_vector_header(b, QT_SHORT, 0, 3);
    qenc_raw(b, items, sizeof(items));
}

static void enc_longs(struct qenc *b)
{
    const int64_t items[] = {1, 2, 3};
    encode_longs(b, items, 3);
}

static void enc_longs_with_null(struct qenc *b)
{
    const int64_t items[] = {1, LONG_NULL, 3};
    encode_longs(b, items, 3);
}

static void enc_ints(struct qenc *b)
{
    const int32_t items[] = {1, 2, 3};
    qenc_vector_header(b, QT_INT, 0, 3);
    qenc_raw(b, items, sizeof(items));
}

static void enc_floats(struct qenc *b)
{
    const double items[] = {3.23, 6.46};
    qenc_vector_header(b, QT_FLOAT, 0, 2);
    qenc_raw(b, items, sizeof(items));
}

static void enc_mixed_list(struct qenc *b)
{
    qenc_list_header(b, 4);
    qenc_long(b, 1);
    qenc_symbol(b, "bcd");
    qenc_string(b, "0bc", 3);
    qenc_real(b, 5.5f);
}

static void enc_list_with_null(struct qenc *b)
{
    qenc_list_header(b, 3);
    qenc_long(b, 42);
    qenc_generic_null(b);
    qenc_symbol(b, "foo");
}

static void enc_nested_list(struct qenc *b)
{
    const int64_t two_three[] = {2, 3};
    const int64_t eight_nine[] = {8, 9};

    qenc_list_header(b, 4);
    qenc_symbol(b, "one");
    encode_longs(b, two_three, 2);
    qenc_string(b, "456", 3);
    qenc_list_header(b, 2);
    qenc_long(b, 7);
    encode_longs(b, eight_nine, 2);
}

static void enc_symbols(struct qenc *b)
{
    const char *const texts[] = {"the", "quick", "brown", "fox"};
    encode_symbol_list(b, texts, 4);
}

static void enc_symbols_with_empty(struct qenc *b)
{
    const char *const texts[] = {"", "quick", "", "fox"};
    encode_symbol_list(b, texts, 4);
}

static void enc_strings(struct qenc *b)
{
    const char *const texts[] = {"quick", "brown", "fox", "jumps", "over", "a lazy", "dog"};

    qenc_list_header(b, 7);
    for (size_t i = 0; i < 7; i++)
        qenc_string(b, texts[i], strlen(texts[i]));
}

static void enc_generic_null(struct qenc *b) { qenc_generic_null(b); }

static void enc_dict_enlist(struct qenc *b)
{
    const char *const keys[] = {"a"};
    const int64_t values[] = {1};

    qenc_dict(b);
    encode_symbol_list(b, keys, 1);
    encode_longs(b, values, 1);
}

static void enc_dict_mixed(struct qenc *b)
{
    const char *const keys[] = {"x", "y"};

    qenc_dict(b);
    encode_symbol_list(b, keys, 2);
    qenc_list_header(b, 2);
    qenc_symbol(b, "a");
    qenc_long(b, 2);
}

static void enc_table_longs(struct qenc *b)
{
    const char *const names[] = {"abc", "def"};
    const int64_t first[] = {1, 2, 3};
    const int64_t second[] = {4, 5, 6};

    qenc_table(b, names, 2);
    encode_longs(b, first, 3);
    encode_longs(b, second, 3);
}

static void enc_table_names(struct qenc *b)
{
    const char *const names[] = {"name", "iq"};
    const char *const people[] = {"Dent", "Beeblebrox", "Prefect"};
    const int64_t iq[] = {98, 42, 126};

    qenc_table(b, names, 2);
    encode_symbol_list(b, people, 3);
    encode_longs(b, iq, 3);
}

static void enc_empty_table(struct qenc *b)
{
    const char *const names[] = {"name", "iq"};

    qenc_table(b, names, 2);
    qenc_vector_header(b, QT_SYMBOL, 0, 0);
    qenc_vector_header(b, QT_INT, 0, 0);
}

static void enc_keyed_table(struct qenc *b)
{
    const char *const key_names[] = {"k"};
    const char *const value_names[] = {"v"};
    const char *const values[] = {"a", "b", "c"};
    const int64_t keys[] = {1, 2, 3};

    qenc_dict(b);
    qenc_table(b, key_names, 1);
    encode_longs(b, keys, 3);
    qenc_table(b, value_names, 1);
    encode_symbol_list(b, values, 3);
}

static const uint8_t GUID_SAMPLE[16] = {0x8c, 0x68, 0x0a, 0x01, 0x5a, 0x49, 0x5a, 0xab,
                                        0x5a, 0x65, 0xd4, 0xbf, 0xdd, 0xb6, 0xa6, 0x61};
static const uint8_t GUID_NULL[16] = {0};

static void enc_guid_null(struct qenc *b) { qenc_guid(b, GUID_NULL); }
static void enc_guid(struct qenc *b) { qenc_guid(b, GUID_SAMPLE); }

static void enc_guids(struct qenc *b)
{
    qenc_vector_header(b, QT_GUID, 0, 2);
    qenc_raw(b, GUID_SAMPLE, 16);
    qenc_raw(b, GUID_NULL, 16);
}

static void enc_atom_generic(struct qenc *b)
{
    const int64_t value = 1;
    qenc_atom(b, QT_LONG, &value);
}

struct sample_case {
    const char *expression;
    void (*encode)(struct qenc *b);
};

static const struct sample_case CASES[] = {
    {"1+`", enc_type_error},
    {"1", enc_long_1},
    {"1", enc_atom_generic},
    {"1i", enc_int_1},
    {"-234h", enc_short},
    {"0b", enc_false},
    {"1b", enc_true},
    {"0x2a", enc_byte},
    {"89421099511627575j", enc_big_long},
    {"3.234", enc_float},
    {"5.5e", enc_real},
    {"\"0\"", enc_char},
    {"\"abc\"", enc_abc},
    {"\"\"", enc_empty_string},
    {"\"quick brown fox jumps over a lazy dog\"", enc_fox},
    {"`abc", enc_symbol},
    {"`quickbrownfoxjumpsoveralazydog", enc_long_symbol},
    {"2000.01.04D05:36:57.600", enc_timestamp},
    {"2001.01m", enc_month},
    {"2001.01.01", enc_date_2001},
    {"2000.05.01", enc_date_may},
    {"2000.01.04T05:36:57.600", enc_datetime},
    {"0D05:36:57.600", enc_timespan},
    {"12:01", enc_minute},
    {"12:05:00", enc_second},
    {"12:04:59.123", enc_time},
    {"0x00", enc_byte_0},
    {"0Nh", enc_short_null},
    {"0N", enc_long_null},
    {"0Ni", enc_int_null},
    {"0Nj", enc_long_null},
    {"0Ne", enc_real_null},
    {"0n", enc_float_null},
    {"\" \"", enc_space},
    {"`", enc_empty_symbol},
    {"0Np", enc_timestamp_null},
    {"0Nm", enc_month_null},
    {"0Nd", enc_date_null},
    {"0Nz", enc_datetime_null},
    {"0Nn", enc_timespan_null},
    {"0Nu", enc_minute_null},
    {"0Nv", enc_second_null},
    {"0Nt", enc_time_null},
    {"()", enc_empty_list},
    {"(0b;1b;0b)", enc_booleans},
    {"(0x01;0x02;0xff)", enc_bytes},
    {"(1h;2h;3h)", enc_shorts},
    {"1 2 3", enc_longs},
    {"1 0N 3", enc_longs_with_null},
    {"(1i;2i;3i)", enc_ints},
    {"(1j;2j;3j)", enc_longs},
    {"3.23 6.46", enc_floats},
    {"(1;`bcd;\"0bc\";5.5e)", enc_mixed_list},
    {"(42;::;`foo)", enc_list_with_null},
    {"(`one;2 3;\"456\";(7;8 9))", enc_nested_list},
    {"`the`quick`brown`fox", enc_symbols},
    {"``quick``fox", enc_symbols_with_empty},
    {"(\"quick\"; \"brown\"; \"fox\"; \"jumps\"; \"over\"; \"a lazy\"; \"dog\")", enc_strings},
    {"::", enc_generic_null},
    {"(enlist `a)!(enlist 1)", enc_dict_enlist},
    {"(`x`y!(`a;2))", enc_dict_mixed},
    {"flip `abc`def!(1 2 3; 4 5 6)", enc_table_longs},
    {"flip `name`iq!(`Dent`Beeblebrox`Prefect;98 42 126)", enc_table_names},
    {"([] name:`symbol$(); iq:`int$())", enc_empty_table},
    {"([k: 1 2 3] v: `a`b`c)", enc_keyed_table},
    {"0Ng", enc_guid_null},
    {"\"G\"$\"8c680a01-5a49-5aab-5a65-d4bfddb6a661\"", enc_guid},
    {"(\"G\"$\"8c680a01-5a49-5aab-5a65-d4bfddb6a661\"; 0Ng)", enc_guids},
};

/* Returns the sample body (hex) of expression, or NULL when the file has no such line. */
static char *find_sample(FILE *f, const char *expression)
{
    static char line[8192];
    static char hex[8192];

    rewind(f);
    while (fgets(line, sizeof(line), f) != NULL) {
        line[strcspn(line, "\r\n")] = '\0';
        if (fgets(hex, sizeof(hex), f) == NULL)
            return NULL;
        hex[strcspn(hex, "\r\n")] = '\0';
        if (strcmp(line, expression) == 0)
            return hex;
    }
    return NULL;
}

static void hex_format(const uint8_t *bytes, size_t n, char *text, size_t size)
{
    text[0] = '\0';
    for (size_t i = 0; i < n && 2 * i + 3 <= size; i++)
        snprintf(text + 2 * i, 3, "%02X", bytes[i]);
}

START_TEST(serialization_samples_match)
{
    const char *dir = testdata_dir();
    if (dir == NULL)
        return;

    char path[4200];
    snprintf(path, sizeof(path), "%s/serialization-samples.txt", dir);
    FILE *f = fopen(path, "r");
    ck_assert_msg(f != NULL, "cannot open %s", path);

    for (size_t i = 0; i < sizeof(CASES) / sizeof(CASES[0]); i++) {
        const char *expected = find_sample(f, CASES[i].expression);
        ck_assert_msg(expected != NULL, "no sample for %s", CASES[i].expression);

        struct qenc b;
        qenc_init(&b);
        qenc_begin(&b, IPC_RESPONSE);
        CASES[i].encode(&b);
        ck_assert_int_eq(qenc_end(&b), 0);

        char actual[8192];
        hex_format(b.data + IPC_HEADER_SIZE, b.len - IPC_HEADER_SIZE, actual, sizeof(actual));
        ck_assert_msg(strcasecmp(actual, expected) == 0, "%s: encoded %s, kdb+ made %s",
                      CASES[i].expression, actual, expected);
        ck_assert_uint_eq(ipc_read_u32(b.data + 4, 1), b.len);
        qenc_free(&b);
    }
    fclose(f);
}
END_TEST

START_TEST(message_header_patched)
{
    struct qenc b;
    /* The sync request "2+2" and its response 4, as a q client and server send them. */
    const uint8_t request[] = {1, 1, 0, 0, 0x11, 0, 0, 0, 0x0a, 0, 3, 0, 0, 0, '2', '+', '2'};
    const uint8_t response[] = {1, 2, 0, 0, 0x11, 0, 0, 0, 0xf9, 4, 0, 0, 0, 0, 0, 0, 0};

    qenc_init(&b);
    qenc_begin(&b, IPC_SYNC);
    qenc_string(&b, "2+2", 3);
    ck_assert_int_eq(qenc_end(&b), 0);
    ck_assert_uint_eq(b.len, sizeof(request));
    ck_assert_mem_eq(b.data, request, sizeof(request));

    /* A second message in the same buffer gets its own header. */
    qenc_begin(&b, IPC_RESPONSE);
    qenc_long(&b, 4);
    ck_assert_int_eq(qenc_end(&b), 0);
    ck_assert_mem_eq(b.data + sizeof(request), response, sizeof(response));
    qenc_free(&b);
}
END_TEST

START_TEST(error_response_bytes)
{
    struct qenc b;
    const uint8_t expected[] = {1, 2, 0, 0, 0x10, 0, 0, 0, 0x80, 'l', 'e', 'n', 'g', 't', 'h', 0};

    qenc_init(&b);
    qenc_begin(&b, IPC_RESPONSE);
    qenc_error(&b, "length");
    qenc_end(&b);
    ck_assert_mem_eq(b.data, expected, sizeof(expected));
    qenc_free(&b);
}
END_TEST

START_TEST(large_vector_header)
{
    struct qenc b;
    const uint8_t small[] = {4, 0, 0x10, 0, 0, 0x80};
    const uint8_t large[] = {4, 0x80, 0x28, 0, 0, 0, 1, 0, 0, 0};

    qenc_init(&b);
    qenc_vector_header(&b, QT_BYTE, 0, UINT64_C(2147483664));
    ck_assert_mem_eq(b.data, small, sizeof(small));
    qenc_reset(&b);
    qenc_vector_header(&b, QT_BYTE, 0, UINT64_C(4294967336));
    ck_assert_uint_eq(b.len, sizeof(large));
    ck_assert_mem_eq(b.data, large, sizeof(large));
    qenc_free(&b);
}
END_TEST

START_TEST(growth_and_reset)
{
    struct qenc b;

    qenc_init(&b);
    qenc_begin(&b, IPC_RESPONSE);
    qenc_vector_header(&b, QT_LONG, 0, 100000);
    for (int64_t i = 0; i < 100000; i++)
        ck_assert_int_eq(qenc_raw(&b, &i, 8), 0);
    ck_assert_int_eq(qenc_end(&b), 0);
    ck_assert_uint_eq(b.len, 8 + 6 + 800000);
    ck_assert_uint_eq(ipc_read_u32(b.data + 4, 1), 800014);

    qenc_reset(&b);
    ck_assert_uint_eq(b.len, 0);
    ck_assert_int_eq(b.failed, 0);
    qenc_free(&b);
}
END_TEST

START_TEST(failure_is_sticky)
{
    struct qenc b;
    const int64_t value = 1;

    qenc_init(&b);
    ck_assert_int_eq(qenc_atom(&b, QT_SYMBOL, &value), -1);
    ck_assert_int_eq(b.failed, 1);
    ck_assert_int_eq(qenc_long(&b, 1), -1);
    ck_assert_uint_eq(b.len, 0);
    ck_assert_int_eq(qenc_end(&b), -1);
    qenc_free(&b);
}
END_TEST

Suite *qenc_suite(void)
{
    Suite *s = suite_create("qenc");
    TCase *samples = tcase_create("samples");
    TCase *buffer = tcase_create("buffer");

    tcase_add_test(samples, serialization_samples_match);
    tcase_add_test(samples, message_header_patched);
    tcase_add_test(samples, error_response_bytes);
    tcase_add_test(samples, large_vector_header);
    suite_add_tcase(s, samples);

    tcase_add_test(buffer, growth_and_reset);
    tcase_add_test(buffer, failure_is_sticky);
    suite_add_tcase(s, buffer);
    return s;
}
