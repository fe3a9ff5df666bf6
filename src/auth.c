/*
 * auth.c - the users file and password checks (see auth.h).
 */
#include "auth.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <openssl/crypto.h>
#include <openssl/rand.h>

#include "ipc.h"
#include "passwd.h"
#include "policy.h"

/* Maximum length of one error or warning line, NUL included; longer lines are cut. */
#define MESSAGE_LINE_MAX 512

struct auth_user {
    char *name;
    size_t name_len;
    struct passwd_entry hash;
    int admin;
    int max_connections;        /* 0 when the option is absent */
    char *policy;               /* NULL when the option is absent */
    unsigned listeners;         /* AUTH_LISTENER_* bits; 0 until the option or the default */
    unsigned line;
};

struct auth_db {
    int refs;                   /* auth_retain adds one, auth_free removes one */
    char *path;                 /* of the users file, for messages */
    struct auth_user *users;    /* sorted by name once loaded, for auth_find_user */
    size_t count;
    size_t capacity;
    int has_native;             /* some entry uses PASSWD_FORMAT_PBKDF2_SHA256 */
    struct passwd_entry dummy;  /* checked for unknown users; never matches in practice */
};

/* ---- Error and warning lines ---- */

/* A caller's buffer that receives whole lines; lines that do not fit are counted. */
struct message_buffer {
    char *data;
    size_t size;
    size_t used;
    unsigned count;             /* lines reported, stored or not */
    unsigned omitted;
};

static void message_buffer_init(struct message_buffer *buffer, char *data, size_t size)
{
    buffer->data = data;
    buffer->size = data != NULL ? size : 0;
    buffer->used = 0;
    buffer->count = 0;
    buffer->omitted = 0;
    if (buffer->size > 0)
        data[0] = '\0';
}

static int message_buffer_store(struct message_buffer *buffer, const char *line)
{
    size_t length = strlen(line);

    if (buffer->used + length + 2 > buffer->size)
        return -1;
    memcpy(buffer->data + buffer->used, line, length);
    buffer->used += length;
    buffer->data[buffer->used++] = '\n';
    buffer->data[buffer->used] = '\0';
    return 0;
}

/* Appends "PATH:LINE: message", or "PATH: message" when line is 0. */
__attribute__((format(printf, 4, 5)))
static void report(struct message_buffer *buffer, const char *path, unsigned line,
                   const char *format, ...)
{
    char text[MESSAGE_LINE_MAX];
    int prefix;
    va_list args;

    if (line > 0)
        prefix = snprintf(text, sizeof(text), "%s:%u: ", path, line);
    else
        prefix = snprintf(text, sizeof(text), "%s: ", path);
    if (prefix < 0 || (size_t)prefix >= sizeof(text))
        prefix = (int)sizeof(text) - 1;
    va_start(args, format);
    vsnprintf(text + prefix, sizeof(text) - (size_t)prefix, format, args);
    va_end(args);

    buffer->count++;
    if (message_buffer_store(buffer, text) != 0)
        buffer->omitted++;
}

/* Ends a full buffer with a line that counts the lines left out, dropping stored lines
 * from the end until that line fits. */
static void message_buffer_finish(struct message_buffer *buffer, const char *path,
                                  const char *kind)
{
    char line[MESSAGE_LINE_MAX];

    while (buffer->omitted > 0 && buffer->size > 0) {
        snprintf(line, sizeof(line), "%s: %u more %s did not fit in the buffer", path,
                 buffer->omitted, kind);
        if (message_buffer_store(buffer, line) == 0)
            return;
        if (buffer->used == 0)
            return;
        size_t end = buffer->used - 1;
        while (end > 0 && buffer->data[end - 1] != '\n')
            end--;
        buffer->used = end;
        buffer->data[end] = '\0';
        buffer->omitted++;
    }
}

/* ---- Parsing ---- */

static int is_blank(char c)
{
    return c == ' ' || c == '\t';
}

/* A user name byte: printable, not a space, not ':'. Bytes 0x80 and above (UTF-8) pass. */
static int is_name_byte(unsigned char c)
{
    return c > 0x20 && c != 0x7f && c != ':';
}

static int is_policy_name_byte(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           c == '_' || c == '-' || c == '.';
}

/* Parses a decimal number in 1..max from text[0..length). Returns it, or -1. */
static long parse_count(const char *text, size_t length, long max)
{
    long value = 0;

    if (length == 0 || text[0] == '0')
        return -1;
    for (size_t i = 0; i < length; i++) {
        if (text[i] < '0' || text[i] > '9')
            return -1;
        value = value * 10 + (text[i] - '0');
        if (value > max)
            return -1;
    }
    return value;
}

struct line_context {
    struct message_buffer *errors;
    const char *path;
    unsigned line;
    const char *name;           /* user name, NUL-terminated, for messages */
};

/* Parses the value of listeners=: names of AUTH_LISTENER_* joined by '+'. */
static int parse_listeners(const struct line_context *context, const char *text,
                           size_t length, struct auth_user *user)
{
    static const char *const names[] = { "ipc", "http", "admin" };
    static const unsigned bits[] = { AUTH_LISTENER_IPC, AUTH_LISTENER_HTTP,
                                      AUTH_LISTENER_ADMIN };
    unsigned listeners = 0;
    size_t start = 0;

    if (user->listeners != 0) {
        report(context->errors, context->path, context->line,
               "user %s: option listeners is given twice", context->name);
        return -1;
    }
    while (start <= length) {
        size_t end = start;
        unsigned bit = 0;

        while (end < length && text[end] != '+')
            end++;
        for (size_t i = 0; i < sizeof(bits) / sizeof(bits[0]); i++)
            if (strlen(names[i]) == end - start && memcmp(text + start, names[i], end - start) == 0)
                bit = bits[i];
        if (bit == 0) {
            report(context->errors, context->path, context->line,
                   "user %s: option listeners must join ipc, http and admin with '+', such "
                   "as listeners=ipc+http", context->name);
            return -1;
        }
        listeners |= bit;
        start = end + 1;
    }
    user->listeners = listeners;
    return 0;
}

/*
 * Parses one option item, text[0..length) with blanks trimmed, into user. index counts
 * from 1 and names the item in messages. An unknown item is never quoted, because a
 * plain-text password containing ':' would put part of it here.
 */
static int parse_option(const struct line_context *context, unsigned index, const char *text,
                        size_t length, struct auth_user *user)
{
    static const char max_key[] = "max_connections=";
    static const char policy_key[] = "policy=";
    static const char listeners_key[] = "listeners=";
    size_t max_key_length = sizeof(max_key) - 1;
    size_t listeners_key_length = sizeof(listeners_key) - 1;
    size_t policy_key_length = sizeof(policy_key) - 1;

    if (length == 0) {
        report(context->errors, context->path, context->line, "user %s: option %u is empty",
               context->name, index);
        return -1;
    }
    if (length == 5 && memcmp(text, "admin", 5) == 0) {
        if (user->admin) {
            report(context->errors, context->path, context->line,
                   "user %s: option admin is given twice", context->name);
            return -1;
        }
        user->admin = 1;
        return 0;
    }
    if (length >= max_key_length && memcmp(text, max_key, max_key_length) == 0) {
        long value = parse_count(text + max_key_length, length - max_key_length,
                                 AUTH_MAX_CONNECTIONS_LIMIT);
        if (user->max_connections != 0) {
            report(context->errors, context->path, context->line,
                   "user %s: option max_connections is given twice", context->name);
            return -1;
        }
        if (value < 0) {
            report(context->errors, context->path, context->line,
                   "user %s: option max_connections must be a whole number from 1 to %d",
                   context->name, AUTH_MAX_CONNECTIONS_LIMIT);
            return -1;
        }
        user->max_connections = (int)value;
        return 0;
    }
    if (length >= policy_key_length && memcmp(text, policy_key, policy_key_length) == 0) {
        const char *value = text + policy_key_length;
        size_t value_length = length - policy_key_length;
        int valid = value_length > 0 && value_length <= POLICY_NAME_MAX;

        for (size_t i = 0; valid && i < value_length; i++)
            valid = is_policy_name_byte(value[i]);
        if (user->policy != NULL) {
            report(context->errors, context->path, context->line,
                   "user %s: option policy is given twice", context->name);
            return -1;
        }
        if (!valid) {
            report(context->errors, context->path, context->line,
                   "user %s: option policy must name a policy of 1 to %d letters, digits, "
                   "'_', '-' or '.'", context->name, POLICY_NAME_MAX);
            return -1;
        }
        user->policy = strndup(value, value_length);
        if (user->policy == NULL) {
            report(context->errors, context->path, context->line, "out of memory");
            return -1;
        }
        return 0;
    }
    if (length >= listeners_key_length && memcmp(text, listeners_key, listeners_key_length) == 0)
        return parse_listeners(context, text + listeners_key_length,
                               length - listeners_key_length, user);
    report(context->errors, context->path, context->line,
           "user %s: option %u is not one of admin, max_connections=N, policy=NAME or "
           "listeners=LIST (a plain-text password cannot contain ':')", context->name, index);
    return -1;
}

/* Parses the comma-separated options text[0..length) into user. */
static int parse_options(const struct line_context *context, const char *text, size_t length,
                         struct auth_user *user)
{
    const char *end = text + length;
    const char *item = text;
    unsigned index = 1;
    int status = 0;

    if (length == 0)
        return 0;
    for (;;) {
        const char *comma = memchr(item, ',', (size_t)(end - item));
        const char *item_end = comma != NULL ? comma : end;
        const char *first = item;
        const char *last = item_end;

        while (first < last && is_blank(*first))
            first++;
        while (last > first && is_blank(last[-1]))
            last--;
        if (parse_option(context, index, first, (size_t)(last - first), user) != 0)
            status = -1;
        if (comma == NULL)
            break;
        item = comma + 1;
        index++;
    }
    return status;
}

static void free_user(struct auth_user *user)
{
    free(user->name);
    free(user->policy);
    OPENSSL_cleanse(&user->hash, sizeof(user->hash));
}

static int append_user(struct auth_db *db, const struct auth_user *user)
{
    if (db->count == db->capacity) {
        size_t capacity = db->capacity ? db->capacity * 2 : 16;
        struct auth_user *users = realloc(db->users, capacity * sizeof(*users));

        if (users == NULL)
            return -1;
        db->users = users;
        db->capacity = capacity;
    }
    db->users[db->count++] = *user;
    return 0;
}

/* Adds a warning for an entry in a kdb+ legacy format. */
static void warn_legacy(struct message_buffer *warnings, const char *path,
                        const struct auth_user *user)
{
    switch (user->hash.format) {
    case PASSWD_FORMAT_PLAIN:
        report(warnings, path, user->line, "user %s has a plain-text password; replace it "
               "with the line that qmux-passwd %s prints", user->name, user->name);
        break;
    case PASSWD_FORMAT_MD5:
    case PASSWD_FORMAT_SHA1:
        report(warnings, path, user->line, "user %s has an unsalted %s hash, which is fast to "
               "crack; replace it with the line that qmux-passwd %s prints", user->name,
               user->hash.format == PASSWD_FORMAT_MD5 ? "MD5" : "SHA-1", user->name);
        break;
    default:
        break;
    }
}

/*
 * Parses one line that is neither blank nor a comment. Returns 0 and appends the user to
 * db, or -1 after reporting the problem in errors.
 */
static int parse_line(struct auth_db *db, struct message_buffer *errors, const char *path,
                      unsigned line_number, const char *line, size_t length)
{
    struct line_context context = { errors, path, line_number, NULL };
    struct auth_user user = { 0 };
    const char *end = line + length;

    const char *colon = memchr(line, ':', length);
    if (colon == NULL) {
        report(errors, path, line_number, "missing ':' between the user name and the password");
        return -1;
    }
    size_t name_len = (size_t)(colon - line);
    if (name_len == 0) {
        report(errors, path, line_number, "the user name before ':' is empty");
        return -1;
    }
    if (name_len > AUTH_NAME_MAX) {
        report(errors, path, line_number, "the user name is longer than %d bytes", AUTH_NAME_MAX);
        return -1;
    }
    for (size_t i = 0; i < name_len; i++) {
        if (!is_name_byte((unsigned char)line[i])) {
            report(errors, path, line_number,
                   "the user name contains a space or a control character");
            return -1;
        }
    }
    user.name = strndup(line, name_len);
    if (user.name == NULL) {
        report(errors, path, line_number, "out of memory");
        return -1;
    }
    user.name_len = name_len;
    user.line = line_number;
    context.name = user.name;

    const char *password = colon + 1;
    const char *options = memchr(password, ':', (size_t)(end - password));
    const char *password_end = options != NULL ? options : end;
    const char *error = NULL;
    int status = 0;

    if (passwd_parse(password, (size_t)(password_end - password), &user.hash, &error) != 0) {
        report(errors, path, line_number, "user %s: %s", user.name, error);
        status = -1;
    }
    if (options != NULL && parse_options(&context, options + 1, (size_t)(end - options - 1),
                                         &user) != 0)
        status = -1;
    if (status == 0 && append_user(db, &user) != 0) {
        report(errors, path, line_number, "out of memory");
        status = -1;
    }
    if (status != 0)
        free_user(&user);
    return status;
}

static int compare_users(const void *a, const void *b)
{
    const struct auth_user *x = a;
    const struct auth_user *y = b;
    size_t common = x->name_len < y->name_len ? x->name_len : y->name_len;
    int order = memcmp(x->name, y->name, common);

    if (order != 0)
        return order;
    if (x->name_len != y->name_len)
        return x->name_len < y->name_len ? -1 : 1;
    return x->line < y->line ? -1 : x->line > y->line;
}

/* Sorts the users by name and reports every name defined twice. Returns the count. */
static int sort_and_check_duplicates(struct auth_db *db, struct message_buffer *errors,
                                     const char *path)
{
    int duplicates = 0;

    if (db->count > 1)
        qsort(db->users, db->count, sizeof(db->users[0]), compare_users);
    for (size_t i = 1; i < db->count; i++) {
        const struct auth_user *previous = &db->users[i - 1];
        const struct auth_user *user = &db->users[i];

        if (user->name_len == previous->name_len &&
            memcmp(user->name, previous->name, user->name_len) == 0) {
            report(errors, path, user->line, "user %s is already defined on line %u",
                   user->name, previous->line);
            duplicates++;
        }
    }
    return duplicates;
}

static int compare_unsigned(const void *a, const void *b)
{
    unsigned x = *(const unsigned *)a;
    unsigned y = *(const unsigned *)b;

    return x < y ? -1 : x > y;
}

/* Returns the iteration count that most native entries use (the lowest on a tie). */
static unsigned most_common_iterations(const struct auth_db *db)
{
    unsigned *counts = malloc(db->count * sizeof(*counts));
    size_t native = 0;
    unsigned best = PASSWD_DEFAULT_ITERATIONS;
    size_t best_run = 0;

    if (counts == NULL)
        return best;
    for (size_t i = 0; i < db->count; i++) {
        if (db->users[i].hash.format == PASSWD_FORMAT_PBKDF2_SHA256)
            counts[native++] = db->users[i].hash.iterations;
    }
    qsort(counts, native, sizeof(*counts), compare_unsigned);
    for (size_t i = 0; i < native;) {
        size_t run = 1;

        while (i + run < native && counts[i + run] == counts[i])
            run++;
        if (run > best_run) {
            best = counts[i];
            best_run = run;
        }
        i += run;
    }
    free(counts);
    return best;
}

/*
 * Sets up the hash that unknown users are checked against. It is PBKDF2 at the most
 * common iteration count when the file has native entries, else a SHA-1 digest, which
 * costs about what a legacy entry costs. Its salt and digest are random, so a password
 * matches it only by chance (2^-256 or 2^-160).
 */
static int make_dummy(struct auth_db *db)
{
    struct passwd_entry *dummy = &db->dummy;

    memset(dummy, 0, sizeof(*dummy));
    for (size_t i = 0; i < db->count; i++) {
        if (db->users[i].hash.format == PASSWD_FORMAT_PBKDF2_SHA256)
            db->has_native = 1;
    }
    if (db->has_native) {
        dummy->format = PASSWD_FORMAT_PBKDF2_SHA256;
        dummy->iterations = most_common_iterations(db);
        dummy->salt_size = PASSWD_SALT_SIZE;
        dummy->digest_size = 32;
        if (RAND_bytes(dummy->salt, (int)dummy->salt_size) != 1)
            return -1;
    } else {
        dummy->format = PASSWD_FORMAT_SHA1;
        dummy->digest_size = 20;
    }
    return RAND_bytes(dummy->digest, (int)dummy->digest_size) == 1 ? 0 : -1;
}

/* Warns when users other than the owner (and the group, for reading) can read or change
 * the file, because the hashes can be attacked offline once read. */
static void check_mode(FILE *file, const char *path, struct message_buffer *warnings)
{
    struct stat st;

    if (fstat(fileno(file), &st) != 0)
        return;
    if ((st.st_mode & (S_IROTH | S_IWOTH | S_IWGRP)) != 0)
        report(warnings, path, 0, "the file is readable or writable by other users "
               "(mode %04o); run chmod 600 or chmod 640 on it", (unsigned)(st.st_mode & 07777));
}

/* Reads every line of file into db. Returns the number of errors. */
static unsigned read_lines(struct auth_db *db, FILE *file, const char *path,
                           struct message_buffer *errors)
{
    char *line = NULL;
    size_t line_size = 0;
    unsigned line_number = 0;
    unsigned error_count = 0;
    ssize_t read;

    while ((read = getline(&line, &line_size, file)) >= 0) {
        size_t length = (size_t)read;

        line_number++;
        if (length > 0 && line[length - 1] == '\n')
            length--;
        if (length > 0 && line[length - 1] == '\r')
            length--;
        if (length > AUTH_LINE_MAX) {
            report(errors, path, line_number, "the line is longer than %d bytes",
                   AUTH_LINE_MAX);
            error_count++;
            continue;
        }
        if (memchr(line, '\0', length) != NULL) {
            report(errors, path, line_number, "the line contains a NUL byte");
            error_count++;
            continue;
        }

        size_t first = 0;
        while (first < length && is_blank(line[first]))
            first++;
        if (first == length || line[first] == '#')
            continue;
        if (parse_line(db, errors, path, line_number, line, length) != 0)
            error_count++;
    }
    if (ferror(file)) {
        report(errors, path, 0, "read failed: %s", strerror(errno));
        error_count++;
    }
    OPENSSL_cleanse(line, line_size);
    free(line);
    return error_count;
}

struct auth_db *auth_load(const char *path, char *errors, size_t errors_size, char *warnings,
                          size_t warnings_size)
{
    struct message_buffer error_buffer;
    struct message_buffer warning_buffer;
    struct auth_db *db = NULL;

    message_buffer_init(&error_buffer, errors, errors_size);
    message_buffer_init(&warning_buffer, warnings, warnings_size);

    FILE *file = fopen(path, "r");
    if (file == NULL) {
        report(&error_buffer, path, 0, "failed to open the users file (auth.users_file): %s; "
               "create it with lines that qmux-passwd NAME prints", strerror(errno));
        return NULL;
    }
    db = calloc(1, sizeof(*db));
    if (db == NULL) {
        report(&error_buffer, path, 0, "out of memory");
        fclose(file);
        return NULL;
    }
    db->refs = 1;
    db->path = strdup(path);
    if (db->path == NULL) {
        report(&error_buffer, path, 0, "out of memory");
        fclose(file);
        free(db);
        return NULL;
    }
    check_mode(file, path, &warning_buffer);

    unsigned error_count = read_lines(db, file, path, &error_buffer);
    fclose(file);

    if (error_count == 0 && db->count == 0) {
        report(&error_buffer, path, 0, "no users are defined; add NAME:HASH lines, which "
               "qmux-passwd NAME prints");
        error_count++;
    }
    if (sort_and_check_duplicates(db, &error_buffer, path) > 0)
        error_count++;
    if (error_count == 0 && make_dummy(db) != 0) {
        report(&error_buffer, path, 0, "failed to get random bytes from libcrypto");
        error_count++;
    }
    if (error_count > 0) {
        message_buffer_finish(&error_buffer, path, "errors");
        auth_free(db);
        return NULL;
    }

    for (size_t i = 0; i < db->count; i++)
        warn_legacy(&warning_buffer, path, &db->users[i]);
    message_buffer_finish(&warning_buffer, path, "warnings");
    return db;
}

struct auth_db *auth_retain(struct auth_db *db)
{
    if (db != NULL)
        db->refs++;
    return db;
}

void auth_free(struct auth_db *db)
{
    if (db == NULL || --db->refs > 0)
        return;
    for (size_t i = 0; i < db->count; i++)
        free_user(&db->users[i]);
    free(db->users);
    free(db->path);
    OPENSSL_cleanse(&db->dummy, sizeof(db->dummy));
    free(db);
}

size_t auth_user_count(const struct auth_db *db)
{
    return db != NULL ? db->count : 0;
}

const struct auth_user *auth_find_user(const struct auth_db *db, const char *name,
                                       size_t name_len)
{
    size_t low = 0;
    size_t high = db != NULL ? db->count : 0;

    while (low < high) {
        size_t middle = low + (high - low) / 2;
        const struct auth_user *user = &db->users[middle];
        size_t common = user->name_len < name_len ? user->name_len : name_len;
        int order = memcmp(user->name, name, common);

        if (order == 0 && user->name_len != name_len)
            order = user->name_len < name_len ? -1 : 1;
        if (order == 0)
            return user;
        if (order < 0)
            low = middle + 1;
        else
            high = middle;
    }
    return NULL;
}

const struct auth_user *auth_verify(const struct auth_db *db, const char *user,
                                    size_t user_len, const char *password,
                                    size_t password_len)
{
    if (db == NULL)
        return NULL;

    const struct auth_user *found = auth_find_user(db, user, user_len);
    if (found == NULL) {
        (void)passwd_verify(&db->dummy, password, password_len);
        return NULL;
    }

    int match = passwd_verify(&found->hash, password, password_len);
    /* A legacy entry costs microseconds; spend the PBKDF2 time an unknown user costs. */
    if (found->hash.format != PASSWD_FORMAT_PBKDF2_SHA256 && db->has_native)
        (void)passwd_verify(&db->dummy, password, password_len);
    if (!match || password_len == 0)
        return NULL;
    return found;
}

const struct auth_user *auth_verify_handshake(const struct auth_db *db, const uint8_t *bytes,
                                              const struct ipc_handshake *handshake)
{
    const char *credentials = (const char *)bytes;
    size_t user_len = handshake->user_len;
    const char *password = "";
    size_t password_len = 0;

    if (user_len < handshake->credentials_len) {
        password = credentials + user_len + 1;
        password_len = handshake->credentials_len - user_len - 1;
    }
    return auth_verify(db, credentials, user_len, password, password_len);
}

const char *auth_user_name(const struct auth_user *user)
{
    return user->name;
}

int auth_user_is_admin(const struct auth_user *user)
{
    return user->admin;
}

unsigned auth_user_listeners(const struct auth_user *user)
{
    return user->listeners != 0 ? user->listeners : AUTH_LISTENER_ALL;
}

int auth_user_max_connections(const struct auth_user *user)
{
    return user->max_connections;
}

const char *auth_user_policy(const struct auth_user *user)
{
    return user->policy;
}

unsigned auth_user_line(const struct auth_user *user)
{
    return user->line;
}

static int compare_user_lines(const void *a, const void *b)
{
    const struct auth_user *x = *(const struct auth_user *const *)a;
    const struct auth_user *y = *(const struct auth_user *const *)b;

    return x->line < y->line ? -1 : x->line > y->line;
}

int auth_check_policies(const struct auth_db *db, const struct policy_set *policies,
                        char *errors, size_t errors_size)
{
    struct message_buffer buffer;
    int missing = 0;

    message_buffer_init(&buffer, errors, errors_size);
    if (db == NULL || db->count == 0)
        return 0;

    /* Report in file order: db->users is sorted by name. */
    const struct auth_user **by_line = malloc(db->count * sizeof(*by_line));
    if (by_line == NULL) {
        report(&buffer, db->path, 0, "out of memory");
        return 1;
    }
    for (size_t i = 0; i < db->count; i++)
        by_line[i] = &db->users[i];
    qsort(by_line, db->count, sizeof(*by_line), compare_user_lines);

    for (size_t i = 0; i < db->count; i++) {
        const struct auth_user *user = by_line[i];

        if (user->policy != NULL && policy_find(policies, user->policy) == NULL) {
            report(&buffer, db->path, user->line,
                   "user %s: policy %s is not defined in policies", user->name, user->policy);
            missing++;
        }
    }
    free(by_line);
    message_buffer_finish(&buffer, db->path, "errors");
    return missing;
}
