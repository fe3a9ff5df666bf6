/*
 * users.c - a hash table from user name to the number of its client connections.
 */
#include "users.h"

#include <stdlib.h>
#include <string.h>

/* Buckets of the table; a power of two, sized for thousands of distinct users. */
#define USER_BUCKETS 1024

struct user_entry {
    struct user_entry *next;
    int connections;
    char name[];
};

static struct user_entry *buckets[USER_BUCKETS];

/* FNV-1a, reduced to a bucket index. */
static unsigned bucket_of(const char *name)
{
    unsigned hash = 2166136261u;

    for (const unsigned char *p = (const unsigned char *)name; *p != '\0'; p++) {
        hash ^= *p;
        hash *= 16777619u;
    }
    return hash & (USER_BUCKETS - 1);
}

static struct user_entry *find(const char *name, unsigned bucket)
{
    for (struct user_entry *entry = buckets[bucket]; entry != NULL; entry = entry->next)
        if (strcmp(entry->name, name) == 0)
            return entry;
    return NULL;
}

int users_add(const char *user)
{
    unsigned bucket = bucket_of(user);
    struct user_entry *entry = find(user, bucket);

    if (entry == NULL) {
        size_t length = strlen(user);

        entry = malloc(sizeof(*entry) + length + 1);
        if (entry == NULL)
            return -1;
        memcpy(entry->name, user, length + 1);
        entry->connections = 0;
        entry->next = buckets[bucket];
        buckets[bucket] = entry;
    }
    return ++entry->connections;
}

void users_remove(const char *user)
{
    unsigned bucket = bucket_of(user);
    struct user_entry **link = &buckets[bucket];

    while (*link != NULL && strcmp((*link)->name, user) != 0)
        link = &(*link)->next;
    if (*link == NULL)
        return;

    struct user_entry *entry = *link;
    if (--entry->connections == 0) {
        *link = entry->next;
        free(entry);
    }
}

int users_count(const char *user)
{
    struct user_entry *entry = find(user, bucket_of(user));

    return entry != NULL ? entry->connections : 0;
}

void users_clear(void)
{
    for (unsigned i = 0; i < USER_BUCKETS; i++) {
        while (buckets[i] != NULL) {
            struct user_entry *entry = buckets[i];

            buckets[i] = entry->next;
            free(entry);
        }
    }
}
