/*
 * check_policy.c - unit tests of query policies: decisions on requests built with qenc,
 * and the libconfig parser's errors.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libconfig.h>

#include "ipc.h"
#include "policy.h"
#include "qenc.h"
#include "suites.h"

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

/* Shapes of request the table builds; text is the q text, name or lambda source. */
enum shape {
    TEXT,               /* h"text" */
    CHAR_ATOM,          /* h"x" with one char, sent as a char atom */
    CALL_SYMBOL,        /* h(`text;42) */
    CALL_STRING,        /* h("text";42), as KX's C API k(h,"f",x,(K)0) sends it */
    CALL_LAMBDA,        /* h({...};42) with text as the lambda source */
    CALL_OPERATOR,      /* h(+;1;2) */
    CALL_LAMBDA_ARG,    /* h(`text;{x}) */
    CALL_NESTED_LAMBDA, /* h(`text;(1;{x})) */
    CALL_NULL_ARG,      /* h(`text;::) */
    CALL_TABLE_ARG,     /* h(`text;([]a:1 2)) */
    SYMBOLS,            /* h`text`x */
    LONG,               /* h 42 */
    EMPTY_LIST,         /* h() */
};

static void append_lambda(struct qenc *b, const char *source)
{
    static const uint8_t lambda_root[] = { 100, 0 };

    qenc_raw(b, lambda_root, sizeof(lambda_root));
    qenc_string(b, source, strlen(source));
}

/* Builds a sync request of the given shape into b. */
static void build(struct qenc *b, int shape, const char *text)
{
    static const uint8_t plus[] = { 102, 1 };
    static const char *const columns[] = { "a" };
    static const int64_t column[] = { 1, 2 };

    qenc_reset(b);
    qenc_begin(b, IPC_SYNC);
    switch (shape) {
    case TEXT:
        qenc_string(b, text, strlen(text));
        break;
    case CHAR_ATOM:
        qenc_char(b, text[0]);
        break;
    case CALL_SYMBOL:
    case CALL_STRING:
    case CALL_LAMBDA:
        qenc_list_header(b, 2);
        if (shape == CALL_SYMBOL)
            qenc_symbol(b, text);
        else if (shape == CALL_STRING)
            qenc_string(b, text, strlen(text));
        else
            append_lambda(b, text);
        qenc_long(b, 42);
        break;
    case CALL_OPERATOR:
        qenc_list_header(b, 3);
        qenc_raw(b, plus, sizeof(plus));
        qenc_long(b, 1);
        qenc_long(b, 2);
        break;
    case CALL_LAMBDA_ARG:
        qenc_list_header(b, 2);
        qenc_symbol(b, text);
        append_lambda(b, "{x}");
        break;
    case CALL_NESTED_LAMBDA:
        qenc_list_header(b, 2);
        qenc_symbol(b, text);
        qenc_list_header(b, 2);
        qenc_long(b, 1);
        append_lambda(b, "{x}");
        break;
    case CALL_NULL_ARG:
        qenc_list_header(b, 2);
        qenc_symbol(b, text);
        qenc_generic_null(b);
        break;
    case CALL_TABLE_ARG:
        qenc_list_header(b, 2);
        qenc_symbol(b, text);
        qenc_table(b, columns, 1);
        qenc_vector_header(b, QT_LONG, 0, 2);
        qenc_raw(b, column, sizeof(column));
        break;
    case SYMBOLS: {
        const char *const symbols[] = { text, "x" };
        qenc_symbols(b, symbols, 2);
        break;
    }
    case LONG:
        qenc_long(b, 42);
        break;
    case EMPTY_LIST:
        qenc_list_header(b, 0);
        break;
    }
    qenc_end(b);
    ck_assert_int_eq(b->failed, 0);
}

static config_t policy_config;
static struct policy_set *policies;

static void load_policies(void)
{
    char path[4096];
    char errors[2048];
    const char *source = getenv("QMUX_SOURCE_DIR");

    snprintf(path, sizeof(path), "%s/tests/fixtures/auth/policies.conf",
             source != NULL ? source : ".");
    config_init(&policy_config);
    ck_assert_msg(config_read_file(&policy_config, path) == CONFIG_TRUE, "%s:%d: %s", path,
                  config_error_line(&policy_config), config_error_text(&policy_config));
    policies = policy_set_parse(config_lookup(&policy_config, "policies"), errors,
                                sizeof(errors));
    ck_assert_msg(policies != NULL, "%s", errors);
}

static void free_policies(void)
{
    policy_set_free(policies);
    policies = NULL;
    config_destroy(&policy_config);
}

struct decision_case {
    const char *policy;
    int shape;
    const char *text;
    int decision;
    const char *reason;     /* expected reason of a denial */
};

static const struct decision_case decision_cases[] = {
    /* allow list: free-form text by its leading name */
    { "readonly", TEXT, ".api.getTrades[`AAPL]", POLICY_ALLOW, NULL },
    { "readonly", TEXT, " \t\r\n.api.getTrades `AAPL", POLICY_ALLOW, NULL },
    { "readonly", TEXT, ".api.getTradesX[]", POLICY_DENY,
      "policy readonly: .api.getTradesX is not in the allow list" },
    { "readonly", TEXT, ".api.getTrades_v2[]", POLICY_DENY,
      "policy readonly: .api.getTrades_v2 is not in the allow list" },
    { "readonly", TEXT, ".api.getTrade[]", POLICY_DENY,
      "policy readonly: .api.getTrade is not in the allow list" },
    { "readonly", TEXT, ".api.getTrades:{system\"ls\"}", POLICY_DENY,
      "policy readonly: assignment to .api.getTrades is not a call of an allowed function" },
    { "readonly", TEXT, ".api.getTrades ::{x}", POLICY_DENY,
      "policy readonly: assignment to .api.getTrades is not a call of an allowed function" },
    { "readonly", TEXT, "select from trade where sym=`AAPL", POLICY_ALLOW, NULL },
    { "readonly", TEXT, "selectx from trade", POLICY_DENY,
      "policy readonly: selectx is not in the allow list" },
    { "readonly", TEXT, "delete from `trade", POLICY_DENY,
      "policy readonly: delete is not in the allow list" },
    { "readonly", TEXT, "update a:1 from `trade", POLICY_DENY,
      "policy readonly: update is not in the allow list" },
    { "readonly", TEXT, "\\t select from trade", POLICY_ALLOW, NULL },
    { "readonly", TEXT, "\\t:100 .api.getTrades[]", POLICY_ALLOW, NULL },
    { "readonly", TEXT, "\\ts select from trade", POLICY_DENY,
      "policy readonly: system command \\ts is not in the allow list" },
    { "readonly", TEXT, "\\l /etc/passwd", POLICY_DENY,
      "policy readonly: system command \\l is not in the allow list" },
    { "readonly", TEXT, "\\\\", POLICY_DENY,
      "policy readonly: system command \\\\ is not in the allow list" },
    { "readonly", TEXT, "\\", POLICY_DENY,
      "policy readonly: the request starts with a lone backslash, which the policy cannot "
      "check" },
    { "readonly", TEXT, "/ comment\n.api.getTrades[]", POLICY_ALLOW, NULL },
    { "readonly", TEXT, "  / one\n\t/ two\r\n select from trade", POLICY_ALLOW, NULL },
    { "readonly", TEXT, "/ .api.getTrades[]\nsystem\"ls\"", POLICY_DENY,
      "policy readonly: system is not in the allow list" },
    { "readonly", TEXT, "/\n.api.getTrades[]\n\\\nsystem\"ls\"", POLICY_DENY,
      "policy readonly: the request starts with a block comment ('/' alone on a line), which "
      "the policy cannot check" },
    { "readonly", TEXT, "/ only a comment", POLICY_DENY,
      "policy readonly: the request does not start with a name in the allow list" },
    { "readonly", TEXT, "q)select from trade", POLICY_ALLOW, NULL },
    { "readonly", TEXT, "k)!10", POLICY_DENY,
      "policy readonly: language prefix k) is not in the allow list" },
    { "readonly", TEXT, "1+1", POLICY_DENY,
      "policy readonly: the request does not start with a name in the allow list" },
    { "readonly", TEXT, "", POLICY_DENY,
      "policy readonly: the request does not start with a name in the allow list" },
    { "readonly", TEXT, "{system\"ls\"}[]", POLICY_DENY,
      "policy readonly: the request does not start with a name in the allow list" },
    { "readonly", CHAR_ATOM, "a", POLICY_DENY, "policy readonly: a is not in the allow list" },
    /* allow list: list forms */
    { "readonly", CALL_SYMBOL, ".api.getTrades", POLICY_ALLOW, NULL },
    { "readonly", CALL_SYMBOL, ".api.getTradesX", POLICY_DENY,
      "policy readonly: .api.getTradesX is not in the allow list" },
    { "readonly", CALL_SYMBOL, "\\l", POLICY_DENY, "policy readonly: \\l is not in the allow list" },
    { "readonly", CALL_STRING, ".api.getTrades", POLICY_ALLOW, NULL },
    { "readonly", CALL_STRING, " .api.getTrades\n", POLICY_ALLOW, NULL },
    { "readonly", CALL_STRING, ".api.getTrades;system\"ls\"", POLICY_DENY,
      "policy readonly: the function string \".api.getTrades;system\"ls\"\" of a list request "
      "must be one name" },
    { "readonly", CALL_STRING, "{x+1}", POLICY_DENY,
      "policy readonly: the function string \"{x+1}\" of a list request must be one name" },
    { "readonly", CALL_LAMBDA, "{.api.getTrades x}", POLICY_DENY,
      "policy readonly: a list whose first item is a function value (lambda) is never allowed "
      "under an allow list" },
    { "readonly", CALL_OPERATOR, "", POLICY_DENY,
      "policy readonly: a list whose first item is a function value (operator) is never "
      "allowed under an allow list" },
    { "readonly", SYMBOLS, ".api.getTrades", POLICY_ALLOW, NULL },
    { "readonly", SYMBOLS, "exit", POLICY_DENY, "policy readonly: exit is not in the allow list" },
    { "readonly", LONG, "", POLICY_DENY,
      "policy readonly: a message of type long is not a call of an allowed function" },
    { "readonly", EMPTY_LIST, "", POLICY_DENY,
      "policy readonly: a message of type general list is not a call of an allowed function" },
    { "nothing", TEXT, "select from trade", POLICY_DENY,
      "policy nothing: select is not in the allow list" },
    { "nothing", CALL_SYMBOL, ".api.getTrades", POLICY_DENY,
      "policy nothing: .api.getTrades is not in the allow list" },
    /* api: list calls only, with data arguments */
    { "api", TEXT, ".api.getTrades[]", POLICY_DENY,
      "policy api: free-form q text is not allowed; call an API function as (`name;arguments)" },
    { "api", CHAR_ATOM, "a", POLICY_DENY,
      "policy api: free-form q text is not allowed; call an API function as (`name;arguments)" },
    { "api", CALL_SYMBOL, ".api.getTrades", POLICY_ALLOW, NULL },
    { "api", CALL_SYMBOL, ".api.getQuotes", POLICY_ALLOW, NULL },
    { "api", CALL_SYMBOL, ".api.getTradesX", POLICY_DENY,
      "policy api: .api.getTradesX is not in the allow list" },
    { "api", CALL_SYMBOL, ".ref.instruments", POLICY_ALLOW, NULL },
    { "api", CALL_SYMBOL, ".ref.a.b", POLICY_ALLOW, NULL },
    { "api", CALL_SYMBOL, ".ref.", POLICY_DENY, "policy api: .ref. is not in the allow list" },
    { "api", CALL_SYMBOL, ".ref", POLICY_DENY, "policy api: .ref is not in the allow list" },
    { "api", CALL_SYMBOL, ".refx.a", POLICY_DENY, "policy api: .refx.a is not in the allow list" },
    { "api", CALL_STRING, ".api.getTrades", POLICY_ALLOW, NULL },
    { "api", CALL_NULL_ARG, ".api.getTrades", POLICY_ALLOW, NULL },
    { "api", CALL_TABLE_ARG, ".api.getTrades", POLICY_ALLOW, NULL },
    { "api", CALL_LAMBDA_ARG, ".api.getTrades", POLICY_DENY,
      "policy api: an argument of .api.getTrades is a function value (lambda); mode api "
      "accepts data arguments only" },
    { "api", CALL_NESTED_LAMBDA, ".api.getTrades", POLICY_DENY,
      "policy api: an argument of .api.getTrades is a function value (lambda); mode api "
      "accepts data arguments only" },
    { "api", CALL_LAMBDA, "{x}", POLICY_DENY,
      "policy api: a list whose first item is a function value (lambda) is never allowed under "
      "an allow list" },
    { "api", LONG, "", POLICY_DENY,
      "policy api: a message of type long is not a call of an allowed function" },
    /* deny list */
    { "no-system", TEXT, "\\l /etc/passwd", POLICY_DENY,
      "policy no-system: system command \\l is in the deny list" },
    { "no-system", TEXT, "  \\\\", POLICY_DENY,
      "policy no-system: system command \\\\ is in the deny list" },
    { "no-system", TEXT, "system \"ls\"", POLICY_DENY, "policy no-system: system is in the deny list" },
    { "no-system", TEXT, "/ hidden?\nsystem \"ls\"", POLICY_DENY,
      "policy no-system: system is in the deny list" },
    { "no-system", TEXT, "/\n1\n\\\nsystem \"ls\"", POLICY_DENY,
      "policy no-system: the request starts with a block comment ('/' alone on a line), which "
      "the policy cannot check" },
    { "no-system", TEXT, ".z.pw:{[u;p]1b}", POLICY_DENY,
      "policy no-system: .z.pw is in the deny list" },
    { "no-system", TEXT, "k)1+1", POLICY_DENY,
      "policy no-system: language prefix k) is in the deny list" },
    { "no-system", TEXT, "systemx 1", POLICY_ALLOW, NULL },
    { "no-system", TEXT, "1+1", POLICY_ALLOW, NULL },
    { "no-system", TEXT, "select from trade", POLICY_ALLOW, NULL },
    { "no-system", TEXT, "a:42", POLICY_ALLOW, NULL },
    { "no-system", CALL_SYMBOL, "system", POLICY_DENY, "policy no-system: system is in the deny list" },
    { "no-system", CALL_SYMBOL, "exit", POLICY_DENY, "policy no-system: exit is in the deny list" },
    { "no-system", CALL_STRING, "system", POLICY_DENY, "policy no-system: system is in the deny list" },
    { "no-system", CALL_STRING, "value\"\\\\l x\"", POLICY_DENY,
      "policy no-system: value is in the deny list" },
    { "no-system", CALL_STRING, "{x}", POLICY_ALLOW, NULL },
    { "no-system", CALL_LAMBDA, "{system x}", POLICY_ALLOW, NULL },
    { "no-system", SYMBOLS, "exit", POLICY_DENY, "policy no-system: exit is in the deny list" },
    { "no-system", LONG, "", POLICY_ALLOW, NULL },
    { "no-system", EMPTY_LIST, "", POLICY_ALLOW, NULL },
};

START_TEST(decision_table)
{
    const struct decision_case *c = &decision_cases[_i];
    struct qenc b;
    char reason[256];

    load_policies();
    const struct policy *policy = policy_find(policies, c->policy);
    ck_assert_msg(policy != NULL, "no policy %s", c->policy);

    qenc_init(&b);
    build(&b, c->shape, c->text);
    int decision = policy_check(policy, b.data, b.len, reason, sizeof(reason));
    ck_assert_msg(decision == c->decision, "case %d (%s, %s): %s, reason \"%s\"", _i, c->policy,
                  c->text, decision == POLICY_ALLOW ? "allowed" : "denied", reason);
    if (c->decision == POLICY_DENY)
        ck_assert_str_eq(reason, c->reason);
    else
        ck_assert_str_eq(reason, "");
    qenc_free(&b);
    free_policies();
}
END_TEST

START_TEST(no_policy_allows_everything)
{
    struct qenc b;
    char reason[64];

    qenc_init(&b);
    build(&b, TEXT, "\\\\");
    ck_assert_int_eq(policy_check(NULL, b.data, b.len, reason, sizeof(reason)), POLICY_ALLOW);
    qenc_free(&b);
}
END_TEST

START_TEST(invalid_message_denied)
{
    struct qenc b;
    char reason[256];

    load_policies();
    const struct policy *policy = policy_find(policies, "no-system");
    qenc_init(&b);
    build(&b, CALL_SYMBOL, ".api.getTrades");

    /* One byte short: the header still declares the full length. */
    ck_assert_int_eq(policy_check(policy, b.data, b.len - 1, reason, sizeof(reason)),
                     POLICY_DENY);
    ck_assert_msg(strncmp(reason, "policy no-system: the message does not decode: ", 47) == 0,
                  "%s", reason);

    /* A compressed message must be decompressed before the check. */
    b.data[2] = 1;
    ck_assert_int_eq(policy_check(policy, b.data, b.len, reason, sizeof(reason)), POLICY_DENY);
    ck_assert_msg(strstr(reason, "compressed") != NULL, "%s", reason);
    qenc_free(&b);
    free_policies();
}
END_TEST

START_TEST(reason_quotes_are_bounded)
{
    char name[200];
    char reason[512];
    struct qenc b;

    load_policies();
    memset(name, 'a', sizeof(name) - 1);
    name[sizeof(name) - 1] = '\0';
    name[3] = '\x01';
    qenc_init(&b);
    build(&b, CALL_SYMBOL, name);
    ck_assert_int_eq(policy_check(policy_find(policies, "api"), b.data, b.len, reason,
                                  sizeof(reason)), POLICY_DENY);
    ck_assert_str_eq(reason, "policy api: aaa?aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
                             "aaaaaaaa... is not in the allow list");

    /* A small buffer gets a cut, NUL-terminated reason. */
    ck_assert_int_eq(policy_check(policy_find(policies, "api"), b.data, b.len, reason, 8),
                     POLICY_DENY);
    ck_assert_str_eq(reason, "policy ");
    qenc_free(&b);
    free_policies();
}
END_TEST

START_TEST(big_endian_call)
{
    /* h(`.api.getTrades;42i) as an old Java client sends it: big-endian. */
    static const uint8_t message[] = {
        0, 1, 0, 0, 0, 0, 0, 35,
        0, 0, 0, 0, 0, 2,
        0xf5, '.', 'a', 'p', 'i', '.', 'g', 'e', 't', 'T', 'r', 'a', 'd', 'e', 's', 0,
        0xfa, 0, 0, 0, 42,
    };
    char reason[256];

    load_policies();
    ck_assert_int_eq(sizeof(message), 35);
    ck_assert_int_eq(policy_check(policy_find(policies, "api"), message, sizeof(message),
                                  reason, sizeof(reason)), POLICY_ALLOW);
    free_policies();
}
END_TEST

START_TEST(empty_setting_gives_empty_set)
{
    char errors[64];
    struct policy_set *set = policy_set_parse(NULL, errors, sizeof(errors));

    ck_assert_ptr_nonnull(set);
    ck_assert_uint_eq(policy_count(set), 0);
    ck_assert_ptr_null(policy_find(set, "api"));
    policy_set_free(set);
}
END_TEST

START_TEST(fixture_policies_parsed)
{
    load_policies();
    ck_assert_uint_eq(policy_count(policies), 4);
    ck_assert_int_eq(policy_mode(policy_find(policies, "api")), POLICY_MODE_API);
    ck_assert_int_eq(policy_mode(policy_find(policies, "readonly")), POLICY_MODE_ALLOW);
    ck_assert_int_eq(policy_mode(policy_find(policies, "no-system")), POLICY_MODE_DENY);
    ck_assert_str_eq(policy_name(policy_find(policies, "nothing")), "nothing");
    ck_assert_str_eq(policy_mode_name(POLICY_MODE_API), "api");
    free_policies();
}
END_TEST

/* libconfig gives a scalar list item the line of the token after it, so in these texts
 * the last item of a list shares its line with the closing bracket. */
struct config_case {
    const char *name;
    const char *text;
    const char *errors;
};

static const struct config_case config_cases[] = {
    { "not a list",
      "policies = { a = 1; };\n",
      "configuration:1: policies: must be a list of groups: ( { name = \"api\"; mode = "
      "\"allow\"; entries = ( \".api.getTrades\" ); } )\n" },
    { "item not a group",
      "policies = (\n  \"api\" );\n",
      "configuration:2: policies: item 1 must be a group: { name = \"...\"; mode = \"allow\"; "
      "entries = ( ... ); }\n" },
    { "missing name",
      "policies = (\n  { mode = \"allow\"; entries = ( ); }\n);\n",
      "configuration:2: policies: policy 1: name must be set to a string\n" },
    { "invalid name",
      "policies = (\n  { name = \"a b\";\n    mode = \"allow\"; entries = ( ); }\n);\n",
      "configuration:2: policies: policy 1: name must be 1 to 64 letters, digits, '_', '-' or "
      "'.'\n" },
    { "unknown key and bad mode",
      "policies = (\n  { name = \"api\";\n    mode = \"allowed\";\n    entires = ( );\n"
      "    entries = ( ); }\n);\n",
      "configuration:4: policies: policy api: unknown key entires; the keys are name, mode and "
      "entries\n"
      "configuration:3: policies: policy api: mode must be \"allow\", \"deny\" or \"api\"\n" },
    { "missing entries",
      "policies = (\n  { name = \"api\"; mode = \"api\"; }\n);\n",
      "configuration:2: policies: policy api: entries is missing; set it to a list of names, "
      "( ) for none\n" },
    { "entries not a list",
      "policies = (\n  { name = \"api\"; mode = \"api\";\n    entries = \".api.f\"; }\n);\n",
      "configuration:3: policies: policy api: entries must be a list of strings, as "
      "( \".api.getTrades\", \"\\\\l\" )\n" },
    { "invalid entries",
      "policies = (\n  { name = \"api\"; mode = \"api\";\n    entries = (\n      \".api.f\",\n"
      "      \"a b\",\n      \"\\\\\",\n      \"\\\\l x\",\n      \"1abc\",\n      42,\n"
      "      \".api.*x\" ); }\n);\n",
      "configuration:5: policies: policy api: entry 2 \"a b\" is not a q name (.api.getTrades), "
      "a namespace (.api.*), a system command (\\l, or \\* for all) or a language prefix (k))\n"
      "configuration:6: policies: policy api: entry 3 \"\\\" is a lone backslash: write \\* for "
      "every system command\n"
      "configuration:7: policies: policy api: entry 4 \"\\l x\" is not a system command: write "
      "the command alone, as \\l or \\ts\n"
      "configuration:8: policies: policy api: entry 5 \"1abc\" is not a q name (.api.getTrades), "
      "a namespace (.api.*), a system command (\\l, or \\* for all) or a language prefix (k))\n"
      "configuration:9: policies: policy api: entry 6 must be a string\n"
      "configuration:10: policies: policy api: entry 7 \".api.*x\" is not a q name "
      "(.api.getTrades), a namespace (.api.*), a system command (\\l, or \\* for all) or a "
      "language prefix (k))\n" },
    { "duplicate name",
      "policies = (\n  { name = \"api\"; mode = \"api\"; entries = ( ); },\n"
      "  { name = \"api\"; mode = \"deny\"; entries = ( ); }\n);\n",
      "configuration:3: policies: policy api is defined twice\n" },
};

START_TEST(config_errors_table)
{
    const struct config_case *c = &config_cases[_i];
    char errors[4096];
    config_t config;

    config_init(&config);
    ck_assert_msg(config_read_string(&config, c->text) == CONFIG_TRUE, "%s: line %d: %s",
                  c->name, config_error_line(&config), config_error_text(&config));
    struct policy_set *set = policy_set_parse(config_lookup(&config, "policies"), errors,
                                              sizeof(errors));
    ck_assert_msg(set == NULL, "%s: parsed, but it is invalid", c->name);
    ck_assert_msg(strcmp(errors, c->errors) == 0, "%s: errors:\n%s\nexpected:\n%s", c->name,
                  errors, c->errors);
    config_destroy(&config);
}
END_TEST

Suite *policy_suite(void)
{
    Suite *suite = suite_create("policy");
    TCase *tc = tcase_create("decisions");

    tcase_add_loop_test(tc, decision_table, 0, ARRAY_SIZE(decision_cases));
    tcase_add_test(tc, no_policy_allows_everything);
    tcase_add_test(tc, invalid_message_denied);
    tcase_add_test(tc, reason_quotes_are_bounded);
    tcase_add_test(tc, big_endian_call);
    suite_add_tcase(suite, tc);

    tc = tcase_create("config");
    tcase_add_test(tc, empty_setting_gives_empty_set);
    tcase_add_test(tc, fixture_policies_parsed);
    tcase_add_loop_test(tc, config_errors_table, 0, ARRAY_SIZE(config_cases));
    suite_add_tcase(suite, tc);
    return suite;
}
