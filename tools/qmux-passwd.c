/*
 * qmux-passwd - prints a users-file line with a PBKDF2-HMAC-SHA256 hash.
 *
 *   qmux-passwd [-i ITERATIONS] USER
 *
 * Reads the password from standard input. When that is a terminal, it prompts twice on
 * standard error with echo off, and otherwise it reads the first line. Prints USER:HASH on
 * standard output. Exit status: 0 on success, 1 on an error, 2 on a usage error.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "auth.h"
#include "passwd.h"

/* Maximum password length in bytes, because qmux reads at most 1 KiB of credentials in
 * a kdb+ handshake. */
#define PASSWORD_MAX 1024

static void usage(FILE *out)
{
    fprintf(out,
            "usage: qmux-passwd [-i ITERATIONS] USER\n"
            "Reads a password from standard input and prints the line USER:HASH for the\n"
            "qmux users file, hashed with PBKDF2-HMAC-SHA256 and a random salt.\n"
            "  -i ITERATIONS  PBKDF2 iteration count, %d to %d (default %d); each login\n"
            "                 costs one hash computation of this many iterations\n"
            "  -h             print this help\n",
            PASSWD_MIN_ITERATIONS, PASSWD_MAX_ITERATIONS, PASSWD_DEFAULT_ITERATIONS);
}

/*
 * Reads one line of at most PASSWORD_MAX bytes from in into buffer (size PASSWORD_MAX + 2)
 * without its line ending. Returns the length, or -1 at end of input, on a read error or
 * when the line is too long.
 */
static long read_line(FILE *in, char *buffer, size_t size)
{
    if (fgets(buffer, (int)size, in) == NULL)
        return -1;

    size_t length = strlen(buffer);
    if (length > 0 && buffer[length - 1] == '\n')
        buffer[--length] = '\0';
    else if (!feof(in))
        return -2;  /* longer than the buffer */
    if (length > 0 && buffer[length - 1] == '\r')
        buffer[--length] = '\0';
    return (long)length;
}

/* Prompts on standard error and reads a line from the terminal on standard input with
 * echo off. Returns as read_line. */
static long prompt_hidden(const char *prompt, char *buffer, size_t size)
{
    struct termios saved;
    struct termios quiet;

    fputs(prompt, stderr);
    fflush(stderr);
    if (tcgetattr(STDIN_FILENO, &saved) != 0)
        return read_line(stdin, buffer, size);
    quiet = saved;
    quiet.c_lflag &= (tcflag_t)~ECHO;
    quiet.c_lflag |= ECHONL;
    tcsetattr(STDIN_FILENO, TCSAFLUSH, &quiet);
    long length = read_line(stdin, buffer, size);
    tcsetattr(STDIN_FILENO, TCSAFLUSH, &saved);
    return length;
}

static int valid_user(const char *user)
{
    size_t length = strlen(user);

    if (length == 0 || length > AUTH_NAME_MAX)
        return 0;
    for (size_t i = 0; i < length; i++) {
        unsigned char c = (unsigned char)user[i];
        if (c <= 0x20 || c == 0x7f || c == ':')
            return 0;
    }
    return user[0] != '#';
}

/* Reads the password into password; from a terminal it must be typed twice. */
static long read_password(char *password, char *confirmation, size_t size)
{
    long length;

    if (!isatty(STDIN_FILENO)) {
        length = read_line(stdin, password, size);
        if (length == -1)
            fprintf(stderr, "qmux-passwd: no password on standard input\n");
        return length;
    }
    length = prompt_hidden("Password: ", password, size);
    if (length == -1)
        fprintf(stderr, "qmux-passwd: no password entered\n");
    if (length < 0)
        return length;
    long confirmed = prompt_hidden("Repeat the password: ", confirmation, size);
    if (confirmed != length || memcmp(password, confirmation, (size_t)length) != 0) {
        fprintf(stderr, "qmux-passwd: the passwords differ; nothing was printed\n");
        return -3;
    }
    return length;
}

int main(int argc, char **argv)
{
    unsigned long iterations = PASSWD_DEFAULT_ITERATIONS;
    int option;

    while ((option = getopt(argc, argv, "hi:")) != -1) {
        switch (option) {
        case 'i': {
            char *end = NULL;
            errno = 0;
            iterations = strtoul(optarg, &end, 10);
            if (errno != 0 || end == optarg || *end != '\0' ||
                iterations < PASSWD_MIN_ITERATIONS || iterations > PASSWD_MAX_ITERATIONS) {
                fprintf(stderr, "qmux-passwd: invalid -i %s: the iteration count must be a "
                        "whole number from %d to %d\n", optarg, PASSWD_MIN_ITERATIONS,
                        PASSWD_MAX_ITERATIONS);
                return 2;
            }
            break;
        }
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
    }
    if (optind != argc - 1) {
        usage(stderr);
        return 2;
    }

    const char *user = argv[optind];
    if (!valid_user(user)) {
        fprintf(stderr, "qmux-passwd: invalid user name: it must be 1 to %d bytes without "
                "spaces, control characters or ':', and not start with '#'\n", AUTH_NAME_MAX);
        return 2;
    }

    char password[PASSWORD_MAX + 2];
    char confirmation[PASSWORD_MAX + 2];
    char hash[PASSWD_HASH_TEXT_MAX];
    int status = 1;

    long length = read_password(password, confirmation, sizeof(password));
    if (length == -2)
        fprintf(stderr, "qmux-passwd: the password is longer than %d bytes\n", PASSWORD_MAX);
    else if (length == 0)
        fprintf(stderr, "qmux-passwd: the password is empty; choose a non-empty one\n");
    else if (length > 0 && passwd_hash_iterations(password, (size_t)length,
                                                  (unsigned)iterations, hash,
                                                  sizeof(hash)) != 0)
        fprintf(stderr, "qmux-passwd: hashing failed in libcrypto\n");
    else if (length > 0) {
        printf("%s:%s\n", user, hash);
        status = fflush(stdout) == 0 ? 0 : 1;
    }

    OPENSSL_cleanse(password, sizeof(password));
    OPENSSL_cleanse(confirmation, sizeof(confirmation));
    return status;
}
