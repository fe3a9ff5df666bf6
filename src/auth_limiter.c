/*
 * auth_limiter.c - per-address delays after failed logins (see auth.h).
 *
 * A fixed table of config.capacity entries, so its memory stays bounded whatever the
 * clients send. It is searched linearly, because it is consulted once per login, not per
 * message.
 */
#include "auth.h"

#include <arpa/inet.h>
#include <limits.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Size of a limiter key. "ffff:ffff:ffff:ffff::/64" and IPv4 text fit with room to spare,
 * and other address text is cut to AUTH_KEY_SIZE - 1 bytes. */
#define AUTH_KEY_SIZE 48

struct limiter_entry {
    char key[AUTH_KEY_SIZE];    /* "" when the slot is free */
    unsigned failures;          /* since the last success or forget_ms of quiet */
    uint64_t last_failure_ms;
    uint64_t blocked_until_ms;  /* last failure plus the delay it returned */
    unsigned checking;          /* checks in progress (auth_limiter_begin_check) */
};

struct auth_limiter {
    struct auth_limiter_config config;
    struct limiter_entry *entries;
    size_t used;
};

/* Writes the canonical form of an IPv4 address or of the /64 network of an IPv6 one. */
static int key_from_ip(const char *host, char key[AUTH_KEY_SIZE])
{
    struct in_addr v4;
    struct in6_addr v6;

    if (inet_pton(AF_INET, host, &v4) == 1)
        return inet_ntop(AF_INET, &v4, key, AUTH_KEY_SIZE) != NULL ? 0 : -1;
    if (inet_pton(AF_INET6, host, &v6) != 1)
        return -1;
    if (IN6_IS_ADDR_V4MAPPED(&v6)) {
        memcpy(&v4, &v6.s6_addr[12], sizeof(v4));
        return inet_ntop(AF_INET, &v4, key, AUTH_KEY_SIZE) != NULL ? 0 : -1;
    }
    /* One customer or host usually owns a whole /64, so count it as one address. */
    memset(&v6.s6_addr[8], 0, 8);
    if (inet_ntop(AF_INET6, &v6, key, AUTH_KEY_SIZE - 4) == NULL)
        return -1;
    strcat(key, "/64");
    return 0;
}

/* Derives the limiter key of address: see auth_failure_delay_ms. */
static void make_key(const char *address, char key[AUTH_KEY_SIZE])
{
    char host[64];
    size_t length = strlen(address);

    if (length < sizeof(host)) {
        /* "[v6]:port" or "[v6]" */
        if (address[0] == '[') {
            const char *close = strchr(address, ']');
            if (close != NULL) {
                memcpy(host, address + 1, (size_t)(close - address - 1));
                host[close - address - 1] = '\0';
                if (key_from_ip(host, key) == 0)
                    return;
            }
        }
        if (key_from_ip(address, key) == 0)
            return;
        /* "v4:port": exactly one ':' */
        const char *colon = strchr(address, ':');
        if (colon != NULL && strchr(colon + 1, ':') == NULL) {
            memcpy(host, address, (size_t)(colon - address));
            host[colon - address] = '\0';
            if (key_from_ip(host, key) == 0)
                return;
        }
    }
    snprintf(key, AUTH_KEY_SIZE, "%s", address);
    if (key[0] == '\0')
        snprintf(key, AUTH_KEY_SIZE, "(empty)");
}

struct auth_limiter *auth_limiter_new(const struct auth_limiter_config *config)
{
    static const struct auth_limiter_config defaults = AUTH_LIMITER_DEFAULTS;
    struct auth_limiter *limiter;

    if (config == NULL)
        config = &defaults;
    if (config->capacity == 0)
        return NULL;
    limiter = calloc(1, sizeof(*limiter));
    if (limiter == NULL)
        return NULL;
    limiter->config = *config;
    limiter->entries = calloc(config->capacity, sizeof(limiter->entries[0]));
    if (limiter->entries == NULL) {
        free(limiter);
        return NULL;
    }
    return limiter;
}

void auth_limiter_free(struct auth_limiter *limiter)
{
    if (limiter == NULL)
        return;
    free(limiter->entries);
    free(limiter);
}

void auth_limiter_configure(struct auth_limiter *limiter, unsigned free_failures,
                            unsigned base_delay_ms, unsigned max_delay_ms)
{
    limiter->config.free_failures = free_failures;
    limiter->config.base_delay_ms = base_delay_ms;
    limiter->config.max_delay_ms = max_delay_ms;
}

static uint64_t elapsed_ms(uint64_t now_ms, uint64_t then_ms)
{
    return now_ms > then_ms ? now_ms - then_ms : 0;
}

/* Returns the entry of key, or NULL. */
static struct limiter_entry *find_entry(const struct auth_limiter *limiter, const char *key)
{
    for (size_t i = 0; i < limiter->config.capacity; i++) {
        struct limiter_entry *entry = &limiter->entries[i];

        if (entry->key[0] != '\0' && strcmp(entry->key, key) == 0)
            return entry;
    }
    return NULL;
}

/* Returns a slot for a new key, emptied and holding key: a free one, else the one whose
 * last failure is oldest among those without checks in progress. Returns NULL when every
 * slot has checks in progress. */
static struct limiter_entry *claim_entry(struct auth_limiter *limiter, const char *key)
{
    struct limiter_entry *chosen = NULL;

    for (size_t i = 0; i < limiter->config.capacity; i++) {
        struct limiter_entry *entry = &limiter->entries[i];

        if (entry->key[0] == '\0') {
            limiter->used++;
            chosen = entry;
            break;
        }
        if (entry->checking == 0 &&
            (chosen == NULL || entry->last_failure_ms < chosen->last_failure_ms))
            chosen = entry;
    }
    if (chosen != NULL) {
        memset(chosen, 0, sizeof(*chosen));
        snprintf(chosen->key, sizeof(chosen->key), "%s", key);
    }
    return chosen;
}

/* Returns the delay for the failures-th failure in a row. */
static unsigned delay_for(const struct auth_limiter_config *config, unsigned failures)
{
    if (failures <= config->free_failures || config->base_delay_ms == 0)
        return 0;

    unsigned doublings = failures - config->free_failures - 1;
    if (doublings >= 32)
        return config->max_delay_ms;

    uint64_t delay = (uint64_t)config->base_delay_ms << doublings;
    return delay < config->max_delay_ms ? (unsigned)delay : config->max_delay_ms;
}

unsigned auth_failure_delay_ms(struct auth_limiter *limiter, const char *address,
                               uint64_t now_ms)
{
    char key[AUTH_KEY_SIZE];

    make_key(address, key);
    struct limiter_entry *entry = find_entry(limiter, key);
    if (entry == NULL) {
        entry = claim_entry(limiter, key);
        if (entry == NULL)  /* every slot has checks in progress */
            return limiter->config.max_delay_ms;
    } else if (elapsed_ms(now_ms, entry->last_failure_ms) >= limiter->config.forget_ms) {
        entry->failures = 0;
    }
    if (entry->failures < UINT_MAX)
        entry->failures++;
    entry->last_failure_ms = now_ms;

    unsigned delay = delay_for(&limiter->config, entry->failures);
    entry->blocked_until_ms = now_ms + delay;
    return delay;
}

unsigned auth_limiter_wait_ms(const struct auth_limiter *limiter, const char *address,
                              uint64_t now_ms)
{
    char key[AUTH_KEY_SIZE];

    make_key(address, key);
    const struct limiter_entry *entry = find_entry(limiter, key);
    if (entry == NULL || entry->blocked_until_ms <= now_ms)
        return 0;
    return (unsigned)(entry->blocked_until_ms - now_ms);
}

int auth_limiter_begin_check(struct auth_limiter *limiter, const char *address,
                             unsigned max_checks)
{
    char key[AUTH_KEY_SIZE];

    make_key(address, key);
    struct limiter_entry *entry = find_entry(limiter, key);
    if (entry == NULL)
        entry = claim_entry(limiter, key);
    if (entry == NULL || entry->checking >= max_checks)
        return -1;
    entry->checking++;
    return 0;
}

void auth_limiter_end_check(struct auth_limiter *limiter, const char *address)
{
    char key[AUTH_KEY_SIZE];

    make_key(address, key);
    struct limiter_entry *entry = find_entry(limiter, key);
    if (entry != NULL && entry->checking > 0)
        entry->checking--;
}

size_t auth_limiter_size(const struct auth_limiter *limiter)
{
    return limiter->used;
}
