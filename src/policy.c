/*
 * policy.c - named query policies (see policy.h and docs/security.md).
 *
 * policy_check classifies a request by the first object of the message, without copying.
 * The forms are:
 *   text      a char vector (or char atom): free-form q, read by its leading token
 *   call      a general list whose first item is a symbol or a char vector, or a symbol
 *             vector (kdb+ applies the first symbol to the rest)
 *   function  a general list whose first item is a lambda, primitive or other function
 *   value     anything else: numbers, dictionaries, tables, an empty list
 * The leading-token scanner fails closed: every mode denies text it cannot classify.
 */
#include "policy.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ipc.h"
#include "qdec.h"

/* Bytes of a request that a reason quotes at most. */
#define REASON_QUOTE_MAX 64

/* Maximum length of one configuration error line, NUL included. */
#define ERROR_LINE_MAX 512

enum entry_kind {
    ENTRY_NAME,         /* .api.getTrades: the whole name */
    ENTRY_NAMESPACE,    /* .api.*: text is the prefix ".api." */
    ENTRY_COMMAND,      /* \l: text is "l" */
    ENTRY_ANY_COMMAND,  /* \* */
    ENTRY_LANGUAGE,     /* k): text is "k)" */
};

struct policy_entry {
    int kind;           /* enum entry_kind */
    char *text;
    size_t length;
};

struct policy {
    char *name;
    int mode;           /* enum policy_mode */
    struct policy_entry *entries;
    size_t count;
};

struct policy_set {
    struct policy *policies;
    size_t count;
};

/* ---- Names ---- */

static int is_name_start(unsigned char c)
{
    return c == '.' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static int is_name_char(unsigned char c)
{
    return is_name_start(c) || (c >= '0' && c <= '9') || c == '_';
}

static int is_letter(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static int is_space(unsigned char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

/* Returns 1 when text[0..length) is one whole q name. */
static int is_name(const char *text, size_t length)
{
    if (length == 0 || !is_name_start((unsigned char)text[0]))
        return 0;
    for (size_t i = 1; i < length; i++) {
        if (!is_name_char((unsigned char)text[i]))
            return 0;
    }
    return 1;
}

/* ---- Leading token of q text ---- */

enum token_kind {
    TOKEN_NONE,         /* no leading name: a number, a bracket, a string, an operator... */
    TOKEN_NAME,
    TOKEN_ASSIGNMENT,   /* a name followed by ':' */
    TOKEN_COMMAND,      /* text is the command without its backslash */
    TOKEN_LANGUAGE,     /* text is "k)" */
    TOKEN_UNPARSED,     /* text the scanner does not classify, named by description */
};

struct token {
    int kind;
    const char *text;
    size_t length;
    const char *description;
};

/*
 * Finds the leading token of q text. It skips whitespace and comment lines, where a '/'
 * at the start or after whitespace runs to the end of the line. Then it reads a system
 * command (`\cmd`, ending at whitespace or ':'), a language prefix (`k)`), or a name,
 * which is an assignment when ':' follows it. A line of only '/' opens a block comment and
 * a lone backslash has meanings the scanner does not follow, so both give TOKEN_UNPARSED.
 */
static void scan_text(const char *text, size_t length, struct token *token)
{
    size_t i = 0;

    memset(token, 0, sizeof(*token));
    for (;;) {
        while (i < length && is_space((unsigned char)text[i]))
            i++;
        if (i == length || text[i] != '/')
            break;
        size_t line_end = i + 1;
        int only_blanks = 1;
        while (line_end < length && text[line_end] != '\n') {
            if (text[line_end] != ' ' && text[line_end] != '\t' && text[line_end] != '\r')
                only_blanks = 0;
            line_end++;
        }
        if (only_blanks) {
            token->kind = TOKEN_UNPARSED;
            token->description = "a block comment ('/' alone on a line)";
            return;
        }
        i = line_end;
    }
    if (i == length) {
        token->kind = TOKEN_NONE;
        return;
    }

    const char *start = text + i;
    size_t rest = length - i;

    if (start[0] == '\\') {
        size_t end = 1;
        while (end < rest && !is_space((unsigned char)start[end]) && start[end] != ':')
            end++;
        if (end == 1) {
            token->kind = TOKEN_UNPARSED;
            token->description = "a lone backslash";
            return;
        }
        token->kind = TOKEN_COMMAND;
        token->text = start + 1;
        token->length = end - 1;
        return;
    }
    if (rest >= 2 && is_letter((unsigned char)start[0]) && start[1] == ')') {
        token->kind = TOKEN_LANGUAGE;
        token->text = start;
        token->length = 2;
        return;
    }
    if (!is_name_start((unsigned char)start[0])) {
        token->kind = TOKEN_NONE;
        return;
    }

    size_t end = 1;
    while (end < rest && is_name_char((unsigned char)start[end]))
        end++;
    token->kind = TOKEN_NAME;
    token->text = start;
    token->length = end;

    size_t next = end;
    while (next < rest && is_space((unsigned char)start[next]))
        next++;
    if (next < rest && start[next] == ':')
        token->kind = TOKEN_ASSIGNMENT;
}

/* Returns 1 when text[0..length), without surrounding whitespace, is one name, and
 * stores that name in *name and *name_length. */
static int trimmed_name(const char *text, size_t length, const char **name, size_t *name_length)
{
    size_t first = 0;
    size_t last = length;

    while (first < last && is_space((unsigned char)text[first]))
        first++;
    while (last > first && is_space((unsigned char)text[last - 1]))
        last--;
    if (!is_name(text + first, last - first))
        return 0;
    *name = text + first;
    *name_length = last - first;
    return 1;
}

/* ---- Request classification ---- */

enum request_form {
    FORM_INVALID,
    FORM_TEXT,
    FORM_CALL,
    FORM_FUNCTION,
    FORM_VALUE,
};

struct request {
    int form;                   /* enum request_form */
    int type;                   /* FORM_FUNCTION, FORM_VALUE: type byte of what decided */
    int in_list;                /* FORM_VALUE: the type is of the first item of a list */
    const char *text;           /* FORM_TEXT: the text; FORM_CALL: the function's text */
    size_t length;
    int call_by_string;         /* FORM_CALL: the function is a char vector */
    int function_argument;      /* a function value appears after the first item */
    int function_argument_type;
    char decode_error[192];     /* FORM_INVALID */
};

struct walk_state {
    struct request *request;
    int scan_arguments;         /* keep walking the arguments of a call (mode api) */
    int first_item_seen;
};

/* Returns 1 for a function value other than the generic null `::`, which callers send as
 * an empty argument. */
static int is_function_value(const struct qdec_value *v)
{
    if (v->type < QDEC_TYPE_LAMBDA || v->type > QDEC_TYPE_FOREIGN)
        return 0;
    return !(v->type == 101 && v->size == 1 && v->data[0] == 0);
}

/* Records the first item of a top-level general list. Returns nonzero to stop. */
static int classify_first_item(struct walk_state *state, const struct qdec_value *v,
                               int is_vector)
{
    struct request *request = state->request;

    state->first_item_seen = 1;
    if (v->type == -11 || (is_vector && v->type == 10) || v->type == -10) {
        request->form = FORM_CALL;
        request->text = (const char *)v->data;
        request->length = v->size;
        request->call_by_string = v->type != -11;
        return !state->scan_arguments;
    }
    if (is_function_value(v) || v->type == 101) {
        request->form = FORM_FUNCTION;
        request->type = v->type;
        return 1;
    }
    request->form = FORM_VALUE;
    request->type = v->type;
    request->in_list = 1;
    return 1;
}

/* Handles any value: decides at depth 0 and on the first item of a list, and looks for
 * function values among the arguments. Returns nonzero to stop the walk. */
static int visit_value(void *ctx, const struct qdec_value *v, int is_vector)
{
    struct walk_state *state = ctx;
    struct request *request = state->request;

    if (v->depth == 0) {
        request->type = v->type;
        if (v->type == 0) {
            request->form = FORM_VALUE;  /* until the first item shows a call */
            return v->count == 0;
        }
        if ((is_vector && v->type == 10) || v->type == -10) {
            request->form = FORM_TEXT;
            request->text = (const char *)v->data;
            request->length = v->size;
            return 1;
        }
        if (is_vector && v->type == 11 && v->count > 0) {
            /* A symbol vector: the first symbol is the function, the rest its arguments. */
            const char *first = (const char *)v->data;
            const char *nul = memchr(first, '\0', (size_t)v->size);

            request->form = FORM_CALL;
            request->text = first;
            request->length = nul != NULL ? (size_t)(nul - first) : 0;
            return 1;
        }
        request->form = FORM_VALUE;
        return 1;
    }
    if (v->depth == 1 && !state->first_item_seen)
        return classify_first_item(state, v, is_vector);
    if (is_function_value(v)) {
        request->function_argument = 1;
        request->function_argument_type = v->type;
        return 1;
    }
    return 0;
}

static int visit_atom(void *ctx, const struct qdec_value *v)
{
    return visit_value(ctx, v, 0);
}

static int visit_vector(void *ctx, const struct qdec_value *v)
{
    return visit_value(ctx, v, 1);
}

static int visit_container(void *ctx, const struct qdec_value *v)
{
    return visit_value(ctx, v, 0);
}

static void classify(const uint8_t *message, uint64_t length, int scan_arguments,
                     struct request *request)
{
    static const struct qdec_visitor visitor = {
        .atom = visit_atom,
        .vector = visit_vector,
        .list_begin = visit_container,
        .dict_begin = visit_container,
        .table_begin = visit_container,
        .function_begin = visit_container,
        .error = visit_atom,
    };
    struct walk_state state = { .request = request, .scan_arguments = scan_arguments };
    struct qdec_error error;

    memset(request, 0, sizeof(*request));
    request->form = FORM_INVALID;
    int status = qdec_walk(message, length, &visitor, &state, &error);
    if (status != QDEC_OK && status != QDEC_STOPPED) {
        request->form = FORM_INVALID;
        snprintf(request->decode_error, sizeof(request->decode_error), "%s", error.message);
    }
}

/* ---- Matching ---- */

static int match_name(const struct policy *policy, const char *name, size_t length)
{
    for (size_t i = 0; i < policy->count; i++) {
        const struct policy_entry *entry = &policy->entries[i];

        if (entry->kind == ENTRY_NAME && entry->length == length &&
            memcmp(entry->text, name, length) == 0)
            return 1;
        if (entry->kind == ENTRY_NAMESPACE && length > entry->length &&
            memcmp(entry->text, name, entry->length) == 0)
            return 1;
    }
    return 0;
}

static int match_command(const struct policy *policy, const char *command, size_t length)
{
    for (size_t i = 0; i < policy->count; i++) {
        const struct policy_entry *entry = &policy->entries[i];

        if (entry->kind == ENTRY_ANY_COMMAND)
            return 1;
        if (entry->kind == ENTRY_COMMAND && entry->length == length &&
            memcmp(entry->text, command, length) == 0)
            return 1;
    }
    return 0;
}

static int match_language(const struct policy *policy, const char *prefix)
{
    for (size_t i = 0; i < policy->count; i++) {
        const struct policy_entry *entry = &policy->entries[i];

        if (entry->kind == ENTRY_LANGUAGE && memcmp(entry->text, prefix, 2) == 0)
            return 1;
    }
    return 0;
}

/* ---- Reasons ---- */

/* Copies at most REASON_QUOTE_MAX bytes of text into out as printable ASCII, marking a cut
 * with "...". */
static void quote(char *out, size_t size, const char *text, size_t length)
{
    size_t limit = length > REASON_QUOTE_MAX ? REASON_QUOTE_MAX : length;
    size_t o = 0;

    if (size == 0)
        return;
    for (size_t i = 0; i < limit && o + 1 < size; i++) {
        unsigned char c = (unsigned char)text[i];
        out[o++] = c >= 0x20 && c < 0x7f ? (char)c : '?';
    }
    if (limit < length) {
        for (int dots = 0; dots < 3 && o + 1 < size; dots++)
            out[o++] = '.';
    }
    out[o] = '\0';
}

__attribute__((format(printf, 4, 5)))
static int deny(char *reason, size_t size, const struct policy *policy, const char *format, ...)
{
    va_list args;
    int prefix;

    if (size == 0)
        return POLICY_DENY;
    prefix = snprintf(reason, size, "policy %s: ", policy->name);
    if (prefix < 0 || (size_t)prefix >= size)
        return POLICY_DENY;
    va_start(args, format);
    vsnprintf(reason + prefix, size - (size_t)prefix, format, args);
    va_end(args);
    return POLICY_DENY;
}

/* ---- Decisions ---- */

/* Decides on a leading token of q text, for modes allow and deny. */
static int decide_token(const struct policy *policy, const struct token *token, char *reason,
                        size_t size)
{
    char quoted[REASON_QUOTE_MAX + 4];
    int allow_mode = policy->mode != POLICY_MODE_DENY;
    int matched;

    if (token->kind == TOKEN_UNPARSED)
        return deny(reason, size, policy, "the request starts with %s, which the policy "
                    "cannot check", token->description);
    if (token->kind == TOKEN_NONE) {
        if (!allow_mode)
            return POLICY_ALLOW;
        return deny(reason, size, policy, "the request does not start with a name in the "
                    "allow list");
    }

    quote(quoted, sizeof(quoted), token->text, token->length);
    switch (token->kind) {
    case TOKEN_COMMAND:
        matched = match_command(policy, token->text, token->length);
        if (allow_mode && !matched)
            return deny(reason, size, policy, "system command \\%s is not in the allow list",
                        quoted);
        if (!allow_mode && matched)
            return deny(reason, size, policy, "system command \\%s is in the deny list",
                        quoted);
        return POLICY_ALLOW;
    case TOKEN_LANGUAGE:
        matched = match_language(policy, token->text);
        if (allow_mode && !matched)
            return deny(reason, size, policy, "language prefix %s is not in the allow list",
                        quoted);
        if (!allow_mode && matched)
            return deny(reason, size, policy, "language prefix %s is in the deny list", quoted);
        return POLICY_ALLOW;
    case TOKEN_ASSIGNMENT:
        matched = match_name(policy, token->text, token->length);
        if (allow_mode)
            return deny(reason, size, policy, "assignment to %s is not a call of an allowed "
                        "function", quoted);
        if (matched)
            return deny(reason, size, policy, "%s is in the deny list", quoted);
        return POLICY_ALLOW;
    default:
        matched = match_name(policy, token->text, token->length);
        if (allow_mode && !matched)
            return deny(reason, size, policy, "%s is not in the allow list", quoted);
        if (!allow_mode && matched)
            return deny(reason, size, policy, "%s is in the deny list", quoted);
        return POLICY_ALLOW;
    }
}

static int decide_call(const struct policy *policy, const struct request *request,
                       char *reason, size_t size)
{
    char quoted[REASON_QUOTE_MAX + 4];
    struct token token = { .kind = TOKEN_NAME, .text = request->text,
                           .length = request->length };

    if (request->call_by_string) {
        if (policy->mode == POLICY_MODE_DENY) {
            /* kdb+ evaluates the string before applying it, so read it as q text. */
            scan_text(request->text, request->length, &token);
        } else if (!trimmed_name(request->text, request->length, &token.text,
                                 &token.length)) {
            quote(quoted, sizeof(quoted), request->text, request->length);
            return deny(reason, size, policy, "the function string \"%s\" of a list request "
                        "must be one name", quoted);
        }
    }
    if (policy->mode == POLICY_MODE_API && request->function_argument) {
        quote(quoted, sizeof(quoted), token.text, token.length);
        return deny(reason, size, policy, "an argument of %s is a function value (%s); mode api "
                    "accepts data arguments only", quoted, qdec_type_name(request->function_argument_type));
    }
    return decide_token(policy, &token, reason, size);
}

int policy_check(const struct policy *policy, const uint8_t *message, uint64_t length,
                 char *reason, size_t size)
{
    struct request request;

    if (size > 0)
        reason[0] = '\0';
    if (policy == NULL)
        return POLICY_ALLOW;

    classify(message, length, policy->mode == POLICY_MODE_API, &request);
    switch (request.form) {
    case FORM_TEXT:
        if (policy->mode == POLICY_MODE_API)
            return deny(reason, size, policy, "free-form q text is not allowed; call an API "
                        "function as (`name;arguments)");
        {
            struct token token;
            scan_text(request.text, request.length, &token);
            return decide_token(policy, &token, reason, size);
        }
    case FORM_CALL:
        return decide_call(policy, &request, reason, size);
    case FORM_FUNCTION:
        if (policy->mode == POLICY_MODE_DENY)
            return POLICY_ALLOW;
        return deny(reason, size, policy, "a list whose first item is a function value (%s) is "
                    "never allowed under an allow list", qdec_type_name(request.type));
    case FORM_VALUE:
        if (policy->mode == POLICY_MODE_DENY)
            return POLICY_ALLOW;
        if (request.in_list)
            return deny(reason, size, policy, "a list whose first item is of type %s does not "
                        "name a function", qdec_type_name(request.type));
        return deny(reason, size, policy, "a message of type %s is not a call of an allowed "
                    "function",
                    qdec_type_name(request.type));
    default:
        return deny(reason, size, policy, "the message does not decode: %s",
                    request.decode_error);
    }
}

/* ---- Configuration ---- */

struct parser {
    char *errors;
    size_t size;
    size_t used;
    unsigned omitted;
    int error_count;
};

__attribute__((format(printf, 3, 4)))
static void report(struct parser *parser, const config_setting_t *where, const char *format,
                   ...)
{
    char line[ERROR_LINE_MAX];
    const char *file = where != NULL ? config_setting_source_file(where) : NULL;
    unsigned number = where != NULL ? config_setting_source_line(where) : 0;
    int prefix;
    va_list args;

    if (file == NULL)
        file = "configuration";
    if (number > 0)
        prefix = snprintf(line, sizeof(line), "%s:%u: policies: ", file, number);
    else
        prefix = snprintf(line, sizeof(line), "%s: policies: ", file);
    if (prefix < 0 || (size_t)prefix >= sizeof(line))
        prefix = (int)sizeof(line) - 1;
    va_start(args, format);
    vsnprintf(line + prefix, sizeof(line) - (size_t)prefix, format, args);
    va_end(args);

    parser->error_count++;
    size_t length = strlen(line);
    if (parser->used + length + 2 > parser->size) {
        parser->omitted++;
        return;
    }
    memcpy(parser->errors + parser->used, line, length);
    parser->used += length;
    parser->errors[parser->used++] = '\n';
    parser->errors[parser->used] = '\0';
}

/* Parses one entry. Returns 0, or -1 with *error set to what is wrong. */
static int parse_entry(const char *text, struct policy_entry *entry, const char **error)
{
    size_t length = strlen(text);

    memset(entry, 0, sizeof(*entry));
    if (length == 0 || length > POLICY_ENTRY_MAX) {
        *error = "is empty or longer than 255 bytes";
        return -1;
    }
    if (text[0] == '\\') {
        if (strcmp(text, "\\*") == 0) {
            entry->kind = ENTRY_ANY_COMMAND;
        } else {
            for (size_t i = 1; i < length; i++) {
                if (is_space((unsigned char)text[i]) || text[i] == ':') {
                    *error = "is not a system command: write the command alone, as \\l or \\ts";
                    return -1;
                }
            }
            if (length == 1) {
                *error = "is a lone backslash: write \\* for every system command";
                return -1;
            }
            entry->kind = ENTRY_COMMAND;
        }
        entry->text = strdup(text + 1);
        entry->length = length - 1;
    } else if (length == 2 && is_letter((unsigned char)text[0]) && text[1] == ')') {
        entry->kind = ENTRY_LANGUAGE;
        entry->text = strdup(text);
        entry->length = 2;
    } else if (length > 2 && strcmp(text + length - 2, ".*") == 0 && is_name(text, length - 2)) {
        entry->kind = ENTRY_NAMESPACE;
        entry->text = strndup(text, length - 1);   /* keep the '.' */
        entry->length = length - 1;
    } else if (is_name(text, length)) {
        entry->kind = ENTRY_NAME;
        entry->text = strdup(text);
        entry->length = length;
    } else {
        *error = "is not a q name (.api.getTrades), a namespace (.api.*), a system command "
                 "(\\l, or \\* for all) or a language prefix (k))";
        return -1;
    }
    if (entry->text == NULL) {
        *error = "could not be stored: out of memory";
        return -1;
    }
    return 0;
}

static void free_policy(struct policy *policy)
{
    for (size_t i = 0; i < policy->count; i++)
        free(policy->entries[i].text);
    free(policy->entries);
    free(policy->name);
}

static int is_policy_name(const char *name)
{
    size_t length = strlen(name);

    if (length == 0 || length > POLICY_NAME_MAX)
        return 0;
    for (size_t i = 0; i < length; i++) {
        char c = name[i];
        if (!is_letter((unsigned char)c) && !(c >= '0' && c <= '9') && c != '_' && c != '-' &&
            c != '.')
            return 0;
    }
    return 1;
}

/* Parses the entries list of a policy. Returns 0, or -1 after reporting. */
static int parse_entries(struct parser *parser, const config_setting_t *setting,
                         const char *label, struct policy *policy)
{
    int type = config_setting_type(setting);
    int count = config_setting_length(setting);
    int status = 0;

    if (type != CONFIG_TYPE_LIST && type != CONFIG_TYPE_ARRAY) {
        report(parser, setting, "%s: entries must be a list of strings, as "
               "( \".api.getTrades\", \"\\\\l\" )", label);
        return -1;
    }
    policy->entries = calloc(count > 0 ? (size_t)count : 1, sizeof(policy->entries[0]));
    if (policy->entries == NULL) {
        report(parser, setting, "%s: out of memory", label);
        return -1;
    }
    for (int i = 0; i < count; i++) {
        const config_setting_t *item = config_setting_get_elem(setting, (unsigned)i);
        const char *text = config_setting_get_string(item);
        const char *error = NULL;

        if (text == NULL) {
            report(parser, item, "%s: entry %d must be a string", label, i + 1);
            status = -1;
            continue;
        }
        if (parse_entry(text, &policy->entries[policy->count], &error) != 0) {
            char quoted[REASON_QUOTE_MAX + 4];
            quote(quoted, sizeof(quoted), text, strlen(text));
            report(parser, item, "%s: entry %d \"%s\" %s", label, i + 1, quoted, error);
            status = -1;
            continue;
        }
        policy->count++;
    }
    return status;
}

/* Parses one policy group into policy. Returns 0, or -1 after reporting. */
static int parse_policy(struct parser *parser, const config_setting_t *group, unsigned index,
                        struct policy *policy)
{
    char label[POLICY_NAME_MAX + 32];
    int status = 0;

    memset(policy, 0, sizeof(*policy));
    if (config_setting_type(group) != CONFIG_TYPE_GROUP) {
        report(parser, group, "item %u must be a group: { name = \"...\"; mode = \"allow\"; "
               "entries = ( ... ); }", index);
        return -1;
    }

    const config_setting_t *name = config_setting_get_member(group, "name");
    const char *name_text = name != NULL ? config_setting_get_string(name) : NULL;
    snprintf(label, sizeof(label), "policy %u", index);
    if (name_text == NULL) {
        report(parser, name != NULL ? name : group, "policy %u: name must be set to a string",
               index);
        status = -1;
    } else if (!is_policy_name(name_text)) {
        report(parser, name, "policy %u: name must be 1 to %d letters, digits, '_', '-' or '.'",
               index, POLICY_NAME_MAX);
        status = -1;
    } else {
        snprintf(label, sizeof(label), "policy %s", name_text);
        policy->name = strdup(name_text);
    }

    for (int i = 0; i < config_setting_length(group); i++) {
        const config_setting_t *member = config_setting_get_elem(group, (unsigned)i);
        const char *key = config_setting_name(member);

        if (key != NULL && strcmp(key, "name") != 0 && strcmp(key, "mode") != 0 &&
            strcmp(key, "entries") != 0) {
            report(parser, member, "%s: unknown key %s; the keys are name, mode and entries",
                   label, key);
            status = -1;
        }
    }

    const config_setting_t *mode = config_setting_get_member(group, "mode");
    const char *mode_text = mode != NULL ? config_setting_get_string(mode) : NULL;
    if (mode_text != NULL && strcmp(mode_text, "allow") == 0) {
        policy->mode = POLICY_MODE_ALLOW;
    } else if (mode_text != NULL && strcmp(mode_text, "deny") == 0) {
        policy->mode = POLICY_MODE_DENY;
    } else if (mode_text != NULL && strcmp(mode_text, "api") == 0) {
        policy->mode = POLICY_MODE_API;
    } else {
        report(parser, mode != NULL ? mode : group,
               "%s: mode must be \"allow\", \"deny\" or \"api\"", label);
        status = -1;
    }

    const config_setting_t *entries = config_setting_get_member(group, "entries");
    if (entries == NULL) {
        report(parser, group, "%s: entries is missing; set it to a list of names, "
               "( ) for none", label);
        status = -1;
    } else if (parse_entries(parser, entries, label, policy) != 0) {
        status = -1;
    }
    return status;
}

struct policy_set *policy_set_parse(const config_setting_t *list, char *errors,
                                    size_t errors_size)
{
    struct parser parser = { errors, errors != NULL ? errors_size : 0, 0, 0, 0 };
    struct policy_set *set = calloc(1, sizeof(*set));

    if (parser.size > 0)
        errors[0] = '\0';
    if (set == NULL) {
        report(&parser, list, "out of memory");
        return NULL;
    }
    if (list == NULL)
        return set;
    if (config_setting_type(list) != CONFIG_TYPE_LIST) {
        report(&parser, list, "must be a list of groups: ( { name = \"api\"; mode = \"allow\"; "
               "entries = ( \".api.getTrades\" ); } )");
        free(set);
        return NULL;
    }

    int count = config_setting_length(list);
    set->policies = calloc(count > 0 ? (size_t)count : 1, sizeof(set->policies[0]));
    if (set->policies == NULL) {
        report(&parser, list, "out of memory");
        free(set);
        return NULL;
    }
    for (int i = 0; i < count; i++) {
        const config_setting_t *group = config_setting_get_elem(list, (unsigned)i);
        struct policy *policy = &set->policies[set->count];

        if (parse_policy(&parser, group, (unsigned)i + 1, policy) != 0) {
            free_policy(policy);
            continue;
        }
        if (policy_find(set, policy->name) != NULL) {
            report(&parser, group, "policy %s is defined twice", policy->name);
            free_policy(policy);
            continue;
        }
        set->count++;
    }
    if (parser.omitted > 0 && parser.size > 0) {
        char line[ERROR_LINE_MAX];
        snprintf(line, sizeof(line), "policies: %u more errors did not fit in the buffer",
                 parser.omitted);
        if (parser.used + strlen(line) + 2 <= parser.size) {
            strcpy(parser.errors + parser.used, line);
            strcat(parser.errors + parser.used, "\n");
        }
    }
    if (parser.error_count > 0) {
        policy_set_free(set);
        return NULL;
    }
    return set;
}

void policy_set_free(struct policy_set *set)
{
    if (set == NULL)
        return;
    for (size_t i = 0; i < set->count; i++)
        free_policy(&set->policies[i]);
    free(set->policies);
    free(set);
}

const struct policy *policy_find(const struct policy_set *set, const char *name)
{
    if (set == NULL || name == NULL)
        return NULL;
    for (size_t i = 0; i < set->count; i++) {
        if (strcmp(set->policies[i].name, name) == 0)
            return &set->policies[i];
    }
    return NULL;
}

size_t policy_count(const struct policy_set *set)
{
    return set != NULL ? set->count : 0;
}

const char *policy_name(const struct policy *policy)
{
    return policy->name;
}

int policy_mode(const struct policy *policy)
{
    return policy->mode;
}

const char *policy_mode_name(int mode)
{
    switch (mode) {
    case POLICY_MODE_ALLOW:
        return "allow";
    case POLICY_MODE_DENY:
        return "deny";
    case POLICY_MODE_API:
        return "api";
    default:
        return "unknown";
    }
}
