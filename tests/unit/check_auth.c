/*
 * check_auth.c - unit tests of password hashes (passwd.c), the users file (auth.c) and
 * the failed-login limiter (auth_limiter.c).
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <libconfig.h>

#include "auth.h"
#include "ipc.h"
#include "passwd.h"
#include "policy.h"
#include "suites.h"

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

static const char *source_dir(void)
{
    const char *source = getenv("QMUX_SOURCE_DIR");
    return source != NULL ? source : ".";
}

static void fixture_path(const char *name, char *buffer, size_t size)
{
    snprintf(buffer, size, "%s/tests/fixtures/auth/%s", source_dir(), name);
}

/* Writes content to a new temporary file with the given mode; path receives its name. */
static void write_temp(const char *content, mode_t mode, char *path, size_t size)
{
    snprintf(path, size, "/tmp/qmux-check-auth-XXXXXX");
    int fd = mkstemp(path);
    ck_assert_msg(fd >= 0, "mkstemp failed");
    size_t length = strlen(content);
    ck_assert_int_eq(write(fd, content, length), (ssize_t)length);
    ck_assert_int_eq(fchmod(fd, mode), 0);
    close(fd);
}

static void hex_to_bytes(const char *hex, uint8_t *out, size_t size)
{
    for (size_t i = 0; i < size; i++) {
        unsigned byte;
        ck_assert_int_eq(sscanf(hex + 2 * i, "%2x", &byte), 1);
        out[i] = (uint8_t)byte;
    }
}

/* ---- PBKDF2 ---- */

/* RFC 7914 section 11, the PBKDF2-HMAC-SHA256 test vectors. */
struct pbkdf2_case {
    const char *password;
    const char *salt;
    unsigned iterations;
    const char *key_hex;
};

static const struct pbkdf2_case pbkdf2_cases[] = {
    { "passwd", "salt", 1,
      "55ac046e56e3089fec1691c22544b605f94185216dde0465e68b9d57c20dacbc"
      "49ca9cccf179b645991664b39d77ef317c71b845b1e30bd509112041d3a19783" },
    { "Password", "NaCl", 80000,
      "4ddcd8f60b98be21830cee5ef22701f9641a4418d04c0414aeff08876b34ab56"
      "a1d425a1225833549adb841b51c9b3176a272bdebba1d078478f62b397f33c8d" },
};

START_TEST(pbkdf2_rfc7914_vectors)
{
    const struct pbkdf2_case *c = &pbkdf2_cases[_i];
    uint8_t expected[64];
    uint8_t key[64];

    hex_to_bytes(c->key_hex, expected, sizeof(expected));
    ck_assert_int_eq(passwd_pbkdf2_sha256(c->password, strlen(c->password),
                                          (const uint8_t *)c->salt, strlen(c->salt),
                                          c->iterations, key, sizeof(key)), 0);
    ck_assert_mem_eq(key, expected, sizeof(key));
}
END_TEST

/* ---- Stored hash formats ---- */

struct parse_case {
    const char *name;
    const char *text;
    int format;             /* enum passwd_format, or -1 when the text is invalid */
    const char *error;
};

static const struct parse_case parse_cases[] = {
    { "native", "$pbkdf2-sha256$1000$SRFScNavK3lj2pcJw/QiQg$"
                "AEJpazA+CMHfgnMhuhQsCe1CncJb3ln/IsHifYAuPXQ", PASSWD_FORMAT_PBKDF2_SHA256, NULL },
    { "md5 lower case", "523f2b4bb9288ac7a1ccbce2ce8eaac5", PASSWD_FORMAT_MD5, NULL },
    { "sha1 upper case", "CC358FF1FDF78C882DCC15381B9ED45E9FCBD448", PASSWD_FORMAT_SHA1, NULL },
    { "plain", "dave-secret", PASSWD_FORMAT_PLAIN, NULL },
    { "31 hex digits is plain", "523f2b4bb9288ac7a1ccbce2ce8eaac", PASSWD_FORMAT_PLAIN, NULL },
    { "32 chars not hex is plain", "523f2b4bb9288ac7a1ccbce2ce8eaacz", PASSWD_FORMAT_PLAIN, NULL },
    { "empty", "", -1, "the password field is empty" },
    { "other crypt format", "$6$salt$hash", -1,
      "unsupported hash format: only $pbkdf2-sha256$ hashes start with '$' (write plain-text "
      "passwords that start with '$' as hashes with qmux-passwd)" },
    { "iterations too low", "$pbkdf2-sha256$999$SRFScNavK3lj2pcJw/QiQg$"
                            "AEJpazA+CMHfgnMhuhQsCe1CncJb3ln/IsHifYAuPXQ", -1,
      "invalid $pbkdf2-sha256$ hash: the iteration count is outside 1000..10000000" },
    { "iterations too high", "$pbkdf2-sha256$10000001$SRFScNavK3lj2pcJw/QiQg$"
                             "AEJpazA+CMHfgnMhuhQsCe1CncJb3ln/IsHifYAuPXQ", -1,
      "invalid $pbkdf2-sha256$ hash: the iteration count is outside 1000..10000000" },
    { "iterations with leading zero", "$pbkdf2-sha256$01000$SRFScNavK3lj2pcJw/QiQg$"
                                      "AEJpazA+CMHfgnMhuhQsCe1CncJb3ln/IsHifYAuPXQ", -1,
      "invalid $pbkdf2-sha256$ hash: the iteration count is not a positive decimal number" },
    { "missing hash", "$pbkdf2-sha256$1000$SRFScNavK3lj2pcJw/QiQg", -1,
      "invalid $pbkdf2-sha256$ hash: expected $ITERATIONS$SALT$HASH" },
    { "salt not base64", "$pbkdf2-sha256$1000$SRFScNavK3lj2pcJw!QiQg$"
                         "AEJpazA+CMHfgnMhuhQsCe1CncJb3ln/IsHifYAuPXQ", -1,
      "invalid $pbkdf2-sha256$ hash: the salt is not 8 to 64 bytes of unpadded base64" },
    { "salt too short", "$pbkdf2-sha256$1000$SRFScNav$"
                        "AEJpazA+CMHfgnMhuhQsCe1CncJb3ln/IsHifYAuPXQ", -1,
      "invalid $pbkdf2-sha256$ hash: the salt is not 8 to 64 bytes of unpadded base64" },
    { "hash too short", "$pbkdf2-sha256$1000$SRFScNavK3lj2pcJw/QiQg$"
                        "AEJpazA+CMHfgnMhuhQsCe1CncJb3ln/IsHifYAuPX", -1,
      "invalid $pbkdf2-sha256$ hash: the hash is not 32 bytes of unpadded base64" },
    { "hash padded", "$pbkdf2-sha256$1000$SRFScNavK3lj2pcJw/QiQg$"
                     "AEJpazA+CMHfgnMhuhQsCe1CncJb3ln/IsHifYAuPXQ=", -1,
      "invalid $pbkdf2-sha256$ hash: the hash is not 32 bytes of unpadded base64" },
};

START_TEST(passwd_parse_table)
{
    const struct parse_case *c = &parse_cases[_i];
    struct passwd_entry entry;
    const char *error = NULL;

    int status = passwd_parse(c->text, strlen(c->text), &entry, &error);
    if (c->format < 0) {
        ck_assert_msg(status == -1, "%s: parsed, but it is invalid", c->name);
        ck_assert_str_eq(error, c->error);
    } else {
        ck_assert_msg(status == 0, "%s: %s", c->name, error ? error : "");
        ck_assert_msg(entry.format == c->format, "%s: format %s, expected %s", c->name,
                      passwd_format_name(entry.format), passwd_format_name(c->format));
    }
}
END_TEST

START_TEST(passwd_hash_round_trip)
{
    char first[PASSWD_HASH_TEXT_MAX];
    char second[PASSWD_HASH_TEXT_MAX];
    struct passwd_entry entry;
    const char *error = NULL;

    ck_assert_int_eq(passwd_hash_iterations("s3cret:with colon", 17, 1000, first,
                                            sizeof(first)), 0);
    ck_assert_int_eq(passwd_hash_iterations("s3cret:with colon", 17, 1000, second,
                                            sizeof(second)), 0);
    ck_assert_msg(strncmp(first, "$pbkdf2-sha256$1000$", 20) == 0, "%s", first);
    ck_assert_msg(strcmp(first, second) != 0, "two hashes share a salt: %s", first);
    ck_assert_ptr_null(strchr(first, ':'));

    ck_assert_int_eq(passwd_parse(first, strlen(first), &entry, &error), 0);
    ck_assert_int_eq(entry.iterations, 1000);
    ck_assert_int_eq(entry.salt_size, PASSWD_SALT_SIZE);
    ck_assert_int_eq(passwd_verify(&entry, "s3cret:with colon", 17), 1);
    ck_assert_int_eq(passwd_verify(&entry, "s3cret:with colo", 16), 0);
    ck_assert_int_eq(passwd_verify(&entry, "", 0), 0);
}
END_TEST

START_TEST(passwd_hash_rejects_bad_arguments)
{
    char small[40];
    char text[PASSWD_HASH_TEXT_MAX];

    ck_assert_int_eq(passwd_hash_iterations("pw", 2, 1000, small, sizeof(small)), -1);
    ck_assert_int_eq(passwd_hash_iterations("pw", 2, 999, text, sizeof(text)), -1);
    ck_assert_int_eq(passwd_hash_iterations("pw", 2, PASSWD_MAX_ITERATIONS + 1, text,
                                            sizeof(text)), -1);
}
END_TEST

/* ---- The users file ---- */

static struct auth_db *load_fixture(char *warnings, size_t warnings_size)
{
    char path[4096];
    char errors[4096];

    fixture_path("users", path, sizeof(path));
    struct auth_db *db = auth_load(path, errors, sizeof(errors), warnings, warnings_size);
    ck_assert_msg(db != NULL, "%s did not load:\n%s", path, errors);
    return db;
}

struct verify_case {
    const char *user;
    const char *password;
    int valid;
};

static const struct verify_case verify_cases[] = {
    { "alice", "alice-secret", 1 },
    { "alice", "alice-secreT", 0 },
    { "alice", "alice-secret ", 0 },
    { "alice", "", 0 },
    { "erin", "erin-secret", 1 },
    { "erin", "alice-secret", 0 },
    { "bob", "bob-secret", 1 },
    { "bob", "bob-secre", 0 },
    { "bob", "523f2b4bb9288ac7a1ccbce2ce8eaac5", 0 },  /* the stored digest itself */
    { "carol", "carol-secret", 1 },
    { "carol", "Carol-secret", 0 },
    { "dave", "dave-secret", 1 },
    { "dave", "dave-secret2", 0 },
    { "dave", "dave", 0 },
    { "Alice", "alice-secret", 0 },                     /* names are case-sensitive */
    { "mallory", "alice-secret", 0 },
    { "", "alice-secret", 0 },
};

START_TEST(users_verify_table)
{
    const struct verify_case *c = &verify_cases[_i];
    struct auth_db *db = load_fixture(NULL, 0);

    const struct auth_user *user = auth_verify(db, c->user, strlen(c->user), c->password,
                                               strlen(c->password));
    if (c->valid) {
        ck_assert_msg(user != NULL, "%s / %s rejected", c->user, c->password);
        ck_assert_str_eq(auth_user_name(user), c->user);
    } else {
        ck_assert_msg(user == NULL, "%s / %s accepted", c->user, c->password);
    }
    auth_free(db);
}
END_TEST

START_TEST(users_options)
{
    struct auth_db *db = load_fixture(NULL, 0);

    ck_assert_uint_eq(auth_user_count(db), 5);

    const struct auth_user *alice = auth_find_user(db, "alice", 5);
    ck_assert_ptr_nonnull(alice);
    ck_assert_int_eq(auth_user_is_admin(alice), 1);
    ck_assert_int_eq(auth_user_max_connections(alice), 5);
    ck_assert_str_eq(auth_user_policy(alice), "api");
    ck_assert_uint_eq(auth_user_line(alice), 5);

    const struct auth_user *carol = auth_find_user(db, "carol", 5);
    ck_assert_ptr_nonnull(carol);
    ck_assert_int_eq(auth_user_is_admin(carol), 0);
    ck_assert_int_eq(auth_user_max_connections(carol), 1);
    ck_assert_str_eq(auth_user_policy(carol), "readonly");

    const struct auth_user *dave = auth_find_user(db, "dave", 4);
    ck_assert_ptr_nonnull(dave);
    ck_assert_int_eq(auth_user_is_admin(dave), 0);
    ck_assert_int_eq(auth_user_max_connections(dave), 0);
    ck_assert_ptr_null(auth_user_policy(dave));

    ck_assert_ptr_null(auth_find_user(db, "alic", 4));
    ck_assert_ptr_null(auth_find_user(db, "alicee", 6));
    auth_free(db);
}
END_TEST

START_TEST(users_legacy_warnings)
{
    char warnings[4096];
    char path[1024];
    char expected[4000];
    struct auth_db *db = load_fixture(warnings, sizeof(warnings));

    fixture_path("users", path, sizeof(path));
    snprintf(expected, sizeof(expected),
             "%s:9: user bob has an unsalted MD5 hash, which is fast to crack; replace it with "
             "the line that qmux-passwd bob prints\n"
             "%s:10: user carol has an unsalted SHA-1 hash, which is fast to crack; replace it "
             "with the line that qmux-passwd carol prints\n"
             "%s:11: user dave has a plain-text password; replace it with the line that "
             "qmux-passwd dave prints\n", path, path, path);
    /* The checkout's file mode may add a first line about permissions. */
    size_t length = strlen(warnings);
    size_t expected_length = strlen(expected);
    ck_assert_msg(length >= expected_length &&
                  strcmp(warnings + length - expected_length, expected) == 0,
                  "warnings:\n%s\nexpected them to end with:\n%s", warnings, expected);
    ck_assert_ptr_null(strstr(warnings, "secret"));
    ck_assert_ptr_null(strstr(warnings, "523f2b"));
    auth_free(db);
}
END_TEST

START_TEST(users_file_mode_warning)
{
    char path[256];
    char warnings[1024];
    char expected[1024];

    write_temp("u:$pbkdf2-sha256$1000$SRFScNavK3lj2pcJw/QiQg$"
               "AEJpazA+CMHfgnMhuhQsCe1CncJb3ln/IsHifYAuPXQ\n", 0600, path, sizeof(path));
    struct auth_db *db = auth_load(path, NULL, 0, warnings, sizeof(warnings));
    ck_assert_ptr_nonnull(db);
    ck_assert_str_eq(warnings, "");
    auth_free(db);

    ck_assert_int_eq(chmod(path, 0644), 0);
    db = auth_load(path, NULL, 0, warnings, sizeof(warnings));
    ck_assert_ptr_nonnull(db);
    snprintf(expected, sizeof(expected), "%s: the file is readable or writable by other users "
             "(mode 0644); run chmod 600 or chmod 640 on it\n", path);
    ck_assert_str_eq(warnings, expected);
    auth_free(db);
    unlink(path);
}
END_TEST

/* A users file that must be rejected. Each expected line is "LINE: message" (0: no line
 * number), and secret must not appear in the errors. */
struct malformed_case {
    const char *name;
    const char *content;
    const char *secret;
    const char *expected[3];
    unsigned lines[3];
};

#define SALT "SRFScNavK3lj2pcJw/QiQg"
#define KEY "AEJpazA+CMHfgnMhuhQsCe1CncJb3ln/IsHifYAuPXQ"

static const struct malformed_case malformed_cases[] = {
    { "no colon", "# users\nhunter2\n", "hunter2",
      { "missing ':' between the user name and the password" }, { 2 } },
    { "empty name", ":hunter2\n", "hunter2", { "the user name before ':' is empty" }, { 1 } },
    { "space in name", "al ice:hunter2\n", "hunter2",
      { "the user name contains a space or a control character" }, { 1 } },
    { "empty password", "bob:\n", NULL, { "user bob: the password field is empty" }, { 1 } },
    { "empty password with options", "bob::admin\n", NULL,
      { "user bob: the password field is empty" }, { 1 } },
    { "plain password with colon", "bob:hunter:2\n", "hunter",
      { "user bob: option 1 is not one of admin, max_connections=N, policy=NAME or listeners=LIST (a "
        "plain-text password cannot contain ':')" }, { 1 } },
    { "max_connections zero", "bob:hunter2:max_connections=0\n", "hunter2",
      { "user bob: option max_connections must be a whole number from 1 to 1000000" }, { 1 } },
    { "max_connections too large", "bob:hunter2:admin,max_connections=1000001\n", "hunter2",
      { "user bob: option max_connections must be a whole number from 1 to 1000000" }, { 1 } },
    { "max_connections twice", "bob:hunter2:max_connections=1,max_connections=2\n", "hunter2",
      { "user bob: option max_connections is given twice" }, { 1 } },
    { "invalid policy name", "bob:hunter2:policy=a b\n", "hunter2",
      { "user bob: option policy must name a policy of 1 to 64 letters, digits, '_', '-' "
        "or '.'" }, { 1 } },
    { "policy twice", "bob:hunter2:policy=a,policy=b\n", "hunter2",
      { "user bob: option policy is given twice" }, { 1 } },
    { "admin twice", "bob:hunter2:admin,admin\n", "hunter2",
      { "user bob: option admin is given twice" }, { 1 } },
    { "listeners twice", "bob:hunter2:listeners=ipc,listeners=http\n", "hunter2",
      { "user bob: option listeners is given twice" }, { 1 } },
    { "unknown listener", "bob:hunter2:listeners=ipc+tcp\n", "hunter2",
      { "user bob: option listeners must join ipc, http and admin with '+', such as "
        "listeners=ipc+http" }, { 1 } },
    { "empty option", "bob:hunter2:admin,,policy=a\n", "hunter2",
      { "user bob: option 2 is empty" }, { 1 } },
    { "unsupported hash", "bob:$2b$10$abcdefghijklmnopqrstuv\n", "abcdefghijklmnop",
      { "user bob: unsupported hash format: only $pbkdf2-sha256$ hashes start with '$' "
        "(write plain-text passwords that start with '$' as hashes with qmux-passwd)" }, { 1 } },
    { "bad iteration count", "bob:$pbkdf2-sha256$100$" SALT "$" KEY "\n", SALT,
      { "user bob: invalid $pbkdf2-sha256$ hash: the iteration count is outside "
        "1000..10000000" }, { 1 } },
    { "bad hash length", "bob:$pbkdf2-sha256$1000$" SALT "$AEJpazA\n", SALT,
      { "user bob: invalid $pbkdf2-sha256$ hash: the hash is not 32 bytes of unpadded "
        "base64" }, { 1 } },
    { "duplicate user", "bob:hunter2\n\nbob:hunter3\n", "hunter",
      { "user bob is already defined on line 1" }, { 3 } },
    { "two errors", "# a\nbob:hunter2:root\ncarol\n", "hunter2",
      { "user bob: option 1 is not one of admin, max_connections=N, policy=NAME or listeners=LIST (a "
        "plain-text password cannot contain ':')",
        "missing ':' between the user name and the password" }, { 2, 3 } },
    { "no users", "# nobody yet\n\n", NULL,
      { "no users are defined; add NAME:HASH lines, which qmux-passwd NAME prints" }, { 0 } },
};

START_TEST(users_malformed_table)
{
    const struct malformed_case *c = &malformed_cases[_i];
    char path[256];
    char errors[4096];
    char warnings[1024];
    char expected[4096] = "";

    write_temp(c->content, 0600, path, sizeof(path));
    struct auth_db *db = auth_load(path, errors, sizeof(errors), warnings, sizeof(warnings));
    ck_assert_msg(db == NULL, "%s: loaded, but it is invalid", c->name);

    for (size_t i = 0; i < ARRAY_SIZE(c->expected) && c->expected[i] != NULL; i++) {
        size_t used = strlen(expected);
        if (c->lines[i] > 0)
            snprintf(expected + used, sizeof(expected) - used, "%s:%u: %s\n", path, c->lines[i],
                     c->expected[i]);
        else
            snprintf(expected + used, sizeof(expected) - used, "%s: %s\n", path,
                     c->expected[i]);
    }
    ck_assert_msg(strcmp(errors, expected) == 0, "%s: errors:\n%s\nexpected:\n%s", c->name,
                  errors, expected);
    if (c->secret != NULL)
        ck_assert_msg(strstr(errors, c->secret) == NULL, "%s: the errors quote a secret",
                      c->name);
    unlink(path);
}
END_TEST

START_TEST(users_nul_byte)
{
    static const char content[] = "bob:hun\0ter2\n";
    char path[256];
    char errors[1024];
    char expected[1024];

    snprintf(path, sizeof(path), "/tmp/qmux-check-auth-XXXXXX");
    int fd = mkstemp(path);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(write(fd, content, sizeof(content) - 1), (ssize_t)sizeof(content) - 1);
    close(fd);

    ck_assert_ptr_null(auth_load(path, errors, sizeof(errors), NULL, 0));
    snprintf(expected, sizeof(expected), "%s:1: the line contains a NUL byte\n", path);
    ck_assert_str_eq(errors, expected);
    unlink(path);
}
END_TEST

START_TEST(users_long_line)
{
    char *content = malloc(AUTH_LINE_MAX + 16);
    char path[256];
    char errors[1024];
    char expected[1024];

    memcpy(content, "bob:", 4);
    memset(content + 4, 'x', AUTH_LINE_MAX - 3);
    strcpy(content + AUTH_LINE_MAX + 1, "\n");
    write_temp(content, 0600, path, sizeof(path));
    free(content);

    ck_assert_ptr_null(auth_load(path, errors, sizeof(errors), NULL, 0));
    snprintf(expected, sizeof(expected), "%s:1: the line is longer than 4096 bytes\n", path);
    ck_assert_str_eq(errors, expected);
    unlink(path);
}
END_TEST

START_TEST(users_missing_file)
{
    char errors[1024];
    char path[4096];
    char expected[4400];

    fixture_path("does-not-exist", path, sizeof(path));
    ck_assert_ptr_null(auth_load(path, errors, sizeof(errors), NULL, 0));
    snprintf(expected, sizeof(expected), "%s: failed to open the users file (auth.users_file): "
             "No such file or directory; create it with lines that qmux-passwd NAME prints\n",
             path);
    ck_assert_str_eq(errors, expected);
}
END_TEST

START_TEST(users_errors_buffer_full)
{
    char path[256];
    char errors[200];

    write_temp("a\nb\nc\nd\ne\nf\n", 0600, path, sizeof(path));
    ck_assert_ptr_null(auth_load(path, errors, sizeof(errors), NULL, 0));
    /* Whole lines only, and the last one counts those left out. */
    size_t length = strlen(errors);
    ck_assert_int_gt(length, 0);
    ck_assert_int_eq(errors[length - 1], '\n');
    ck_assert_msg(strstr(errors, "more errors did not fit in the buffer\n") != NULL, "%s",
                  errors);
    unlink(path);
}
END_TEST

/* ---- Handshakes and enumeration ---- */

struct handshake_case {
    const char *bytes;      /* the handshake, NUL included */
    size_t length;
    int valid;
};

static const struct handshake_case handshake_cases[] = {
    { "alice:alice-secret\3", 20, 1 },
    { "alice:alice-secret\6", 20, 1 },
    { "alice:alice-secret", 19, 1 },          /* no capability byte */
    { "alice:alice-secre\3", 19, 0 },
    { "alice\3", 7, 0 },                       /* no password at all */
    { "alice:\3", 8, 0 },
    { "dave:dave-secret\3", 18, 1 },
    { "mallory:alice-secret\3", 22, 0 },
};

START_TEST(handshake_credentials_table)
{
    const struct handshake_case *c = &handshake_cases[_i];
    struct auth_db *db = load_fixture(NULL, 0);
    struct ipc_handshake handshake;

    ck_assert_int_eq(ipc_handshake_parse((const uint8_t *)c->bytes, c->length,
                                         IPC_HANDSHAKE_MAX, &handshake), IPC_HANDSHAKE_DONE);
    const struct auth_user *user = auth_verify_handshake(db, (const uint8_t *)c->bytes,
                                                         &handshake);
    ck_assert_msg((user != NULL) == c->valid, "handshake %u: %s", _i,
                  user != NULL ? "accepted" : "rejected");
    auth_free(db);
}
END_TEST

static double thread_cpu_ms(void)
{
    struct timespec now;

    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &now);
    return (double)now.tv_sec * 1e3 + (double)now.tv_nsec / 1e6;
}

/* Returns the CPU time of one check of user and password. */
static double verify_cpu_ms(const struct auth_db *db, const char *user, const char *password)
{
    double start = thread_cpu_ms();

    ck_assert_ptr_null(auth_verify(db, user, strlen(user), password, strlen(password)));
    return thread_cpu_ms() - start;
}

START_TEST(unknown_user_costs_like_wrong_password)
{
    char hash[PASSWD_HASH_TEXT_MAX];
    char content[512];
    char path[256];

    ck_assert_int_eq(passwd_hash_iterations("right", 5, 50000, hash, sizeof(hash)), 0);
    snprintf(content, sizeof(content), "alice:%s\nbob:%s\nlegacy:%s\n", hash, hash,
             "523f2b4bb9288ac7a1ccbce2ce8eaac5");
    write_temp(content, 0600, path, sizeof(path));
    struct auth_db *db = auth_load(path, NULL, 0, NULL, 0);
    ck_assert_ptr_nonnull(db);

    /* The least of five interleaved rounds, so that load from other processes affects
     * all three alike. Without the dummy check, an unknown user costs microseconds. */
    double wrong = 1e9;
    double unknown = 1e9;
    double legacy = 1e9;
    for (int round = 0; round < 5; round++) {
        wrong = fmin(wrong, verify_cpu_ms(db, "alice", "wrong"));
        unknown = fmin(unknown, verify_cpu_ms(db, "nobody", "wrong"));
        legacy = fmin(legacy, verify_cpu_ms(db, "legacy", "wrong"));
    }
    ck_assert_msg(unknown > wrong / 3 && unknown < wrong * 3,
                  "unknown user took %.1f ms of CPU, wrong password %.1f ms", unknown, wrong);
    ck_assert_msg(legacy > wrong / 3 && legacy < wrong * 3,
                  "legacy user took %.1f ms of CPU, native user %.1f ms", legacy, wrong);
    auth_free(db);
    unlink(path);
}
END_TEST

START_TEST(users_policy_names_checked)
{
    static const char text[] =
        "policies = ( { name = \"api\"; mode = \"api\"; entries = ( \".api.f\" ); } );\n";
    char errors[1024];
    char path[4096];
    char expected[4200];
    config_t config;

    config_init(&config);
    ck_assert_int_eq(config_read_string(&config, text), CONFIG_TRUE);
    struct policy_set *set = policy_set_parse(config_lookup(&config, "policies"), errors,
                                              sizeof(errors));
    ck_assert_msg(set != NULL, "%s", errors);

    struct auth_db *db = load_fixture(NULL, 0);
    fixture_path("users", path, sizeof(path));
    ck_assert_int_eq(auth_check_policies(db, set, errors, sizeof(errors)), 1);
    snprintf(expected, sizeof(expected), "%s:10: user carol: policy readonly is not defined "
             "in policies\n", path);
    ck_assert_str_eq(errors, expected);

    auth_free(db);
    policy_set_free(set);
    config_destroy(&config);
}
END_TEST

/* ---- Failed-login limiter ---- */

START_TEST(limiter_delay_grows_to_cap)
{
    static const unsigned expected[] = { 0, 0, 0, 250, 500, 1000, 2000, 4000, 8000, 16000,
                                         30000, 30000, 30000 };
    struct auth_limiter *limiter = auth_limiter_new(NULL);
    uint64_t now = 1000;

    for (size_t i = 0; i < ARRAY_SIZE(expected); i++) {
        unsigned delay = auth_failure_delay_ms(limiter, "192.0.2.7", now);
        ck_assert_msg(delay == expected[i], "failure %zu: delay %u ms, expected %u", i + 1,
                      delay, expected[i]);
        ck_assert_uint_eq(auth_limiter_wait_ms(limiter, "192.0.2.7", now), delay);
        now += delay + 1;
    }
    ck_assert_uint_eq(auth_limiter_size(limiter), 1);
    auth_limiter_free(limiter);
}
END_TEST

START_TEST(limiter_checks_per_address)
{
    struct auth_limiter *limiter = auth_limiter_new(NULL);

    for (int i = 0; i < 3; i++)
        ck_assert_int_eq(auth_limiter_begin_check(limiter, "192.0.2.7:5000", 3), 0);
    ck_assert_int_eq(auth_limiter_begin_check(limiter, "192.0.2.7:5001", 3), -1);
    ck_assert_int_eq(auth_limiter_begin_check(limiter, "192.0.2.8:5000", 3), 0);

    auth_limiter_end_check(limiter, "192.0.2.7:5002");
    ck_assert_int_eq(auth_limiter_begin_check(limiter, "192.0.2.7:5003", 3), 0);

    /* Checks in progress do not reset failures, and failures keep their delay. */
    for (int i = 0; i < 5; i++)
        auth_failure_delay_ms(limiter, "192.0.2.7", 100);
    ck_assert_uint_eq(auth_limiter_wait_ms(limiter, "192.0.2.7", 100), 500);
    auth_limiter_free(limiter);
}
END_TEST

START_TEST(limiter_keeps_busy_entries)
{
    struct auth_limiter_config config = AUTH_LIMITER_DEFAULTS;
    struct auth_limiter *limiter;

    config.capacity = 2;
    limiter = auth_limiter_new(&config);
    ck_assert_int_eq(auth_limiter_begin_check(limiter, "10.0.0.1", 1), 0);
    ck_assert_int_eq(auth_limiter_begin_check(limiter, "10.0.0.2", 1), 0);

    /* Both slots are busy: a new address is refused a check, and its failure gets the
     * longest delay rather than evicting an address whose check is running. */
    ck_assert_int_eq(auth_limiter_begin_check(limiter, "10.0.0.3", 1), -1);
    ck_assert_uint_eq(auth_failure_delay_ms(limiter, "10.0.0.3", 5), 30000);
    ck_assert_int_eq(auth_limiter_begin_check(limiter, "10.0.0.1", 1), -1);

    auth_limiter_end_check(limiter, "10.0.0.1");
    ck_assert_int_eq(auth_limiter_begin_check(limiter, "10.0.0.3", 1), 0);
    ck_assert_uint_eq(auth_limiter_size(limiter), 2);
    auth_limiter_free(limiter);
}
END_TEST

START_TEST(limiter_forgets_quiet_addresses)
{
    struct auth_limiter_config config = AUTH_LIMITER_DEFAULTS;
    struct auth_limiter *limiter;

    config.forget_ms = 1000;
    limiter = auth_limiter_new(&config);
    for (int i = 0; i < 4; i++)
        auth_failure_delay_ms(limiter, "192.0.2.7", 0);
    ck_assert_uint_eq(auth_failure_delay_ms(limiter, "192.0.2.7", 999), 500);
    ck_assert_uint_eq(auth_failure_delay_ms(limiter, "192.0.2.7", 999 + 1000), 0);
    auth_limiter_free(limiter);
}
END_TEST

START_TEST(limiter_evicts_oldest)
{
    struct auth_limiter_config config = AUTH_LIMITER_DEFAULTS;
    struct auth_limiter *limiter;

    config.capacity = 3;
    config.free_failures = 0;
    limiter = auth_limiter_new(&config);
    auth_failure_delay_ms(limiter, "10.0.0.1", 10);
    auth_failure_delay_ms(limiter, "10.0.0.2", 20);
    auth_failure_delay_ms(limiter, "10.0.0.3", 30);
    auth_failure_delay_ms(limiter, "10.0.0.1", 40);   /* 10.0.0.2 is now the oldest */
    auth_failure_delay_ms(limiter, "10.0.0.4", 50);
    ck_assert_uint_eq(auth_limiter_size(limiter), 3);

    ck_assert_uint_eq(auth_limiter_wait_ms(limiter, "10.0.0.2", 50), 0);
    ck_assert_uint_eq(auth_limiter_wait_ms(limiter, "10.0.0.1", 50), 490);   /* 500 from 40 */
    ck_assert_uint_eq(auth_limiter_wait_ms(limiter, "10.0.0.3", 50), 230);   /* 250 from 30 */
    ck_assert_uint_eq(auth_limiter_wait_ms(limiter, "10.0.0.4", 50), 250);
    /* An evicted address starts again from its first failure. */
    ck_assert_uint_eq(auth_failure_delay_ms(limiter, "10.0.0.2", 60), 250);
    auth_limiter_free(limiter);
}
END_TEST

struct address_case {
    const char *first;
    const char *second;
    int same;
};

static const struct address_case address_cases[] = {
    { "192.0.2.7", "192.0.2.7:40000", 1 },
    { "192.0.2.7", "192.0.2.8", 0 },
    { "2001:db8:1:2::1", "2001:db8:1:2:ffff::9", 1 },
    { "2001:db8:1:2::1", "[2001:db8:1:2::5]:5010", 1 },
    { "2001:db8:1:2::1", "2001:db8:1:3::1", 0 },
    { "::ffff:192.0.2.7", "192.0.2.7", 1 },
    { "/run/qmux.sock", "/run/qmux.sock", 1 },
    { "/run/qmux.sock", "/run/other.sock", 0 },
};

START_TEST(limiter_address_keys)
{
    const struct address_case *c = &address_cases[_i];
    struct auth_limiter_config config = AUTH_LIMITER_DEFAULTS;

    config.free_failures = 0;
    struct auth_limiter *limiter = auth_limiter_new(&config);
    auth_failure_delay_ms(limiter, c->first, 0);
    unsigned wait = auth_limiter_wait_ms(limiter, c->second, 0);
    ck_assert_msg((wait > 0) == c->same, "%s and %s: wait %u", c->first, c->second, wait);
    auth_limiter_free(limiter);
}
END_TEST

Suite *auth_suite(void)
{
    Suite *suite = suite_create("auth");
    TCase *tc = tcase_create("passwd");

    tcase_add_loop_test(tc, pbkdf2_rfc7914_vectors, 0, ARRAY_SIZE(pbkdf2_cases));
    tcase_add_loop_test(tc, passwd_parse_table, 0, ARRAY_SIZE(parse_cases));
    tcase_add_test(tc, passwd_hash_round_trip);
    tcase_add_test(tc, passwd_hash_rejects_bad_arguments);
    suite_add_tcase(suite, tc);

    tc = tcase_create("users");
    tcase_set_timeout(tc, 30);
    tcase_add_loop_test(tc, users_verify_table, 0, ARRAY_SIZE(verify_cases));
    tcase_add_test(tc, users_options);
    tcase_add_test(tc, users_legacy_warnings);
    tcase_add_test(tc, users_file_mode_warning);
    tcase_add_loop_test(tc, users_malformed_table, 0, ARRAY_SIZE(malformed_cases));
    tcase_add_test(tc, users_nul_byte);
    tcase_add_test(tc, users_long_line);
    tcase_add_test(tc, users_missing_file);
    tcase_add_test(tc, users_errors_buffer_full);
    tcase_add_loop_test(tc, handshake_credentials_table, 0, ARRAY_SIZE(handshake_cases));
    tcase_add_test(tc, unknown_user_costs_like_wrong_password);
    tcase_add_test(tc, users_policy_names_checked);
    suite_add_tcase(suite, tc);

    tc = tcase_create("limiter");
    tcase_add_test(tc, limiter_delay_grows_to_cap);
    tcase_add_test(tc, limiter_checks_per_address);
    tcase_add_test(tc, limiter_keeps_busy_entries);
    tcase_add_test(tc, limiter_forgets_quiet_addresses);
    tcase_add_test(tc, limiter_evicts_oldest);
    tcase_add_loop_test(tc, limiter_address_keys, 0, ARRAY_SIZE(address_cases));
    suite_add_tcase(suite, tc);
    return suite;
}
