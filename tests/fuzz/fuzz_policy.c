/*
 * fuzz_policy.c - libFuzzer target for policy_check, which reads every request of a
 * client that has a query policy.
 *
 * The input is checked as a whole message against one policy of each mode. The first
 * input byte also picks a header to put in front of the rest, so that the body decoder
 * is reached without the fuzzer having to find a valid header first.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <libconfig.h>

#include "ipc.h"
#include "policy.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char policies_text[] =
    "policies = ("
    "  { name = \"allow\"; mode = \"allow\"; entries = ( \"til\", \".api.*\", \"\\\\t\", \"k)\" ); },"
    "  { name = \"deny\"; mode = \"deny\"; entries = ( \"system\", \"\\\\*\", \".z.*\" ); },"
    "  { name = \"api\"; mode = \"api\"; entries = ( \".api.getTrades\", \".ref.*\" ); }"
    ");";

static struct policy_set *policies;

static void require(int condition)
{
    if (!condition)
        abort();
}

static void load_policies(void)
{
    config_t config;
    char errors[1024];

    config_init(&config);
    require(config_read_string(&config, policies_text) == CONFIG_TRUE);
    policies = policy_set_parse(config_lookup(&config, "policies"), errors, sizeof(errors));
    require(policies != NULL);
    config_destroy(&config);
}

/* Checks msg[0..length) under every policy: the decision is one of the two values, and
 * a denial's reason is one line of printable text. */
static void check_all(const uint8_t *msg, uint64_t length)
{
    static const char *const names[] = { "allow", "deny", "api" };

    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        char reason[POLICY_ENTRY_MAX + 200];
        const struct policy *policy = policy_find(policies, names[i]);

        memset(reason, 'x', sizeof(reason));
        int decision = policy_check(policy, msg, length, reason, sizeof(reason));
        require(decision == POLICY_ALLOW || decision == POLICY_DENY);
        if (decision == POLICY_ALLOW)
            continue;
        size_t text_length = strnlen(reason, sizeof(reason));
        require(text_length < sizeof(reason));
        for (size_t j = 0; j < text_length; j++)
            require(reason[j] >= 0x20 && reason[j] < 0x7f);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (policies == NULL)
        load_policies();

    check_all(data, size);
    if (size == 0)
        return 0;

    /* The rest of the input as the body of a sync message with a correct header. */
    uint8_t *message = malloc(IPC_HEADER_SIZE + size - 1);
    require(message != NULL);
    ipc_header_write(message, (data[0] & 1) ? IPC_SYNC : IPC_ASYNC, IPC_HEADER_SIZE + size - 1);
    memcpy(message + IPC_HEADER_SIZE, data + 1, size - 1);
    check_all(message, IPC_HEADER_SIZE + size - 1);
    free(message);
    return 0;
}
