/*
 * policy.h - named query policies: which entry points a client's messages may call.
 *
 * A policy has a mode and a list of entries:
 *   allow  only requests whose entry point matches an entry pass. Free-form q text passes
 *          when its leading name matches, which is no isolation (see docs/security.md).
 *   deny   requests whose entry point matches an entry are rejected; all others pass.
 *   api    only general lists `(`name;args...)` (or `("name";args...)`) whose function
 *          matches an entry pass, and only when no argument contains a function value.
 *          Free-form text and every other message are rejected.
 * An entry is a q name (`.api.getTrades`, `select`), a namespace (`.api.*`: every name
 * that starts with `.api.`), a system command (`\l`, or `\*` for all of them) or a
 * language prefix (`k)`). Names match whole: `.api.getTrades` does not match
 * `.api.getTradesX`.
 *
 * Configuration, in libconfig syntax:
 *   policies = (
 *     { name = "api"; mode = "api"; entries = ( ".api.getTrades", ".api.*" ); },
 *     { name = "no-system"; mode = "deny"; entries = ( "\\*", "system", "k)" ); }
 *   );
 * ("\\l" in a libconfig string is the two characters \l).
 */
#ifndef QMUX_POLICY_H
#define QMUX_POLICY_H

#include <stddef.h>
#include <stdint.h>

#include <libconfig.h>

enum policy_mode {
    POLICY_MODE_ALLOW = 0,
    POLICY_MODE_DENY,
    POLICY_MODE_API,
};

enum policy_decision {
    POLICY_ALLOW = 0,
    POLICY_DENY = 1,
};

/* Maximum length of a policy name and of one entry, in bytes. */
#define POLICY_NAME_MAX 64
#define POLICY_ENTRY_MAX 255

struct policy;
struct policy_set;

/*
 * Builds the policies of the libconfig list `list` (the `policies` setting; NULL gives
 * an empty set). Returns the set, or NULL when any policy is invalid; errors then
 * receives one "FILE:LINE: policies: ..." line per problem, naming the policy and key.
 * errors receives whole lines only, and may be NULL with size 0.
 */
struct policy_set *policy_set_parse(const config_setting_t *list, char *errors,
                                    size_t errors_size);

/* Frees set. NULL is ignored. */
void policy_set_free(struct policy_set *set);

/* Returns the policy called name, or NULL (also when set is NULL). */
const struct policy *policy_find(const struct policy_set *set, const char *name);

/* Returns the number of policies in set. */
size_t policy_count(const struct policy_set *set);

const char *policy_name(const struct policy *policy);
int policy_mode(const struct policy *policy);

/* Returns "allow", "deny" or "api". */
const char *policy_mode_name(int mode);

/*
 * Decides whether one whole uncompressed IPC message, message[0..length) header
 * included, may be sent upstream under policy. Returns POLICY_ALLOW or POLICY_DENY; a
 * NULL policy allows everything. On POLICY_DENY, reason receives a one-line explanation
 * naming the policy and the rule, such as
 *   policy api: .api.getTradesX is not in the allow list
 * which the caller sends to the client as the error text (`'access: ...`). Bytes of the
 * request that appear in reason are limited to 64 and non-printable ones are written as
 * '?'. A message that does not decode is denied.
 */
int policy_check(const struct policy *policy, const uint8_t *message, uint64_t length,
                 char *reason, size_t size);

#endif
