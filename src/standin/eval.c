/*
 * eval.c - tokenizer, parser and right-to-left evaluator of the stand-in's q subset.
 *
 * A statement parses into a small tree and is evaluated right operand first, as q does,
 * so `a+a:5` assigns before it reads. Statements separated by ';' run left to right, and
 * a string whose last statement is an assignment or empty returns (::), as `h"a:1"` does.
 */
#include "eval.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* ---- global variables and state changed by the test helpers ---- */

struct global {
    char *name;
    struct qval *value;
    struct global *next;
};

static struct global *globals;
static int rejecting_logins;

int eval_rejecting_logins(void)
{
    return rejecting_logins;
}

static struct global *global_find(const char *name)
{
    for (struct global *g = globals; g != NULL; g = g->next) {
        if (strcmp(g->name, name) == 0)
            return g;
    }
    return NULL;
}

/* Stores a copy of value under name. Returns 0, or -1 when out of memory. */
static int global_store(const char *name, const struct qval *value)
{
    struct qval *copy = value_copy(value);
    if (copy == NULL)
        return -1;

    struct global *g = global_find(name);
    if (g != NULL) {
        value_free(g->value);
        g->value = copy;
        return 0;
    }

    g = calloc(1, sizeof(*g));
    if (g == NULL || (g->name = strdup(name)) == NULL) {
        free(g);
        value_free(copy);
        return -1;
    }
    g->value = copy;
    g->next = globals;
    globals = g;
    return 0;
}

void eval_shutdown(void)
{
    while (globals != NULL) {
        struct global *next = globals->next;
        free(globals->name);
        value_free(globals->value);
        free(globals);
        globals = next;
    }
}

/* ---- errors ---- */

struct eval_context {
    struct eval_result *result;
};

/* Sets the kdb+ error text of the evaluation and returns NULL, for `return fail(...)`. */
static struct qval *fail(struct eval_context *ctx, const char *format, ...)
    __attribute__((format(printf, 2, 3)));

static struct qval *fail(struct eval_context *ctx, const char *format, ...)
{
    va_list args;

    va_start(args, format);
    vsnprintf(ctx->result->error, sizeof(ctx->result->error), format, args);
    va_end(args);
    return NULL;
}

/* ---- built-in functions, all monadic ---- */

/* Reads an integer atom (boolean, byte, short, int or long) into *out. */
static int integer_atom(const struct qval *v, int64_t *out)
{
    if (v->type != -QT_BOOLEAN && v->type != -QT_BYTE && v->type != -QT_SHORT &&
        v->type != -QT_INT && v->type != -QT_LONG)
        return -1;
    *out = v->atom.j;
    return 0;
}

static struct qval *fn_til(struct eval_context *ctx, const struct qval *x)
{
    int64_t n;

    if (integer_atom(x, &n) != 0)
        return fail(ctx, "type");
    if (n < 0)
        return fail(ctx, "domain");
    return value_range(0, 1, (uint64_t)n);
}

static struct qval *fn_count(struct eval_context *ctx, const struct qval *x)
{
    (void)ctx;
    if (x->type < 0 || x->type == QT_UNARY_PRIMITIVE)
        return value_long(1);
    return value_long((int64_t)x->count);
}

/* Blocks the whole process, as q's single thread does while it evaluates. */
static void sleep_seconds(double seconds)
{
    struct timespec left;

    left.tv_sec = (time_t)seconds;
    left.tv_nsec = (long)((seconds - (double)left.tv_sec) * 1e9);
    while (nanosleep(&left, &left) != 0 && errno == EINTR)
        continue;
}

/* Reads a non-negative number of seconds from a long or float atom. */
static int seconds_atom(const struct qval *v, double *out)
{
    int64_t j;

    if (v->type == -QT_FLOAT)
        *out = v->atom.f;
    else if (integer_atom(v, &j) == 0)
        *out = (double)j;
    else
        return -1;
    return *out >= 0 && *out < 1e9 ? 0 : -1;
}

static struct qval *fn_system(struct eval_context *ctx, const struct qval *x)
{
    char command[256];

    if (x->type != QT_CHAR || x->count >= sizeof(command))
        return fail(ctx, "type");
    memcpy(command, x->items, x->count);
    command[x->count] = '\0';

    char *end;
    if (strncmp(command, "sleep ", 6) != 0)
        return fail(ctx, "nyi: system \"%.40s\" (only \"sleep N\")", command);
    double seconds = strtod(command + 6, &end);
    if (end == command + 6 || *end != '\0' || !(seconds >= 0) || seconds > 1e6)
        return fail(ctx, "domain");

    sleep_seconds(seconds);
    return value_list(0);
}

static struct qval *fn_table(struct eval_context *ctx, const struct qval *x)
{
    int64_t rows;

    if (integer_atom(x, &rows) != 0)
        return fail(ctx, "type");
    if (rows < 0)
        return fail(ctx, "domain");
    return value_table((uint64_t)rows);
}

static struct qval *fn_close_mid(struct eval_context *ctx, const struct qval *x)
{
    int64_t n;

    if (integer_atom(x, &n) != 0)
        return fail(ctx, "type");
    if (n < 0)
        return fail(ctx, "domain");
    ctx->result->action = EVAL_CLOSE_MID;
    return value_range(0, 1, (uint64_t)n);
}

/* Items of the response .standin.stallMid sends. */
#define STALL_MID_ITEMS 1000000

static struct qval *fn_stall_mid(struct eval_context *ctx, const struct qval *x)
{
    double seconds;

    if (seconds_atom(x, &seconds) != 0)
        return fail(ctx, "type");
    ctx->result->action = EVAL_STALL_MID;
    ctx->result->stall_seconds = seconds;
    return value_range(0, 1, STALL_MID_ITEMS);
}

static struct qval *fn_refuse(struct eval_context *ctx, const struct qval *x)
{
    int64_t flag;

    if (integer_atom(x, &flag) != 0)
        return fail(ctx, "type");
    rejecting_logins = flag != 0;
    return value_generic_null();
}

static struct qval *fn_exit(struct eval_context *ctx, const struct qval *x)
{
    (void)x;
    ctx->result->action = EVAL_EXIT;
    return value_generic_null();
}

struct builtin {
    const char *name;
    struct qval *(*apply)(struct eval_context *ctx, const struct qval *x);
};

static const struct builtin BUILTINS[] = {
    {"til", fn_til},
    {"count", fn_count},
    {"system", fn_system},
    {".standin.table", fn_table},
    {".standin.closeMid", fn_close_mid},
    {".standin.stallMid", fn_stall_mid},
    {".standin.refuse", fn_refuse},
    {".standin.exit", fn_exit},
};

static const struct builtin *builtin_find(const char *name, size_t n)
{
    for (size_t i = 0; i < sizeof(BUILTINS) / sizeof(BUILTINS[0]); i++) {
        if (strlen(BUILTINS[i].name) == n && memcmp(BUILTINS[i].name, name, n) == 0)
            return &BUILTINS[i];
    }
    return NULL;
}

/* ---- arithmetic: + - * on long and float atoms and vectors ---- */

static int is_numeric(const struct qval *v)
{
    return v->type == -QT_LONG || v->type == QT_LONG || v->type == -QT_FLOAT ||
           v->type == QT_FLOAT;
}

static double float_item(const struct qval *v, uint64_t i)
{
    if (v->type == -QT_FLOAT)
        return v->atom.f;
    if (v->type == -QT_LONG)
        return (double)v->atom.j;
    if (v->type == QT_LONG)
        return (double)value_long_item(v, i);

    double f;
    memcpy(&f, (const uint8_t *)v->items + 8 * i, 8);
    return f;
}

static int64_t long_item(const struct qval *v, uint64_t i)
{
    return v->type == -QT_LONG ? v->atom.j : value_long_item(v, i);
}

/* Integer arithmetic wraps around, as q's does. */
static int64_t long_op(char op, int64_t a, int64_t b)
{
    uint64_t x = (uint64_t)a, y = (uint64_t)b;

    if (op == '+')
        return (int64_t)(x + y);
    if (op == '-')
        return (int64_t)(x - y);
    return (int64_t)(x * y);
}

static double float_op(char op, double a, double b)
{
    if (op == '+')
        return a + b;
    if (op == '-')
        return a - b;
    return a * b;
}

/* Keeps til N and linear functions of it lazy. Returns NULL when the result is not linear. */
static struct qval *lazy_op(char op, const struct qval *l, const struct qval *r)
{
    int l_lazy = l->type == QT_LONG && l->lazy;
    int r_lazy = r->type == QT_LONG && r->lazy;

    if (l_lazy && r_lazy && op != '*')
        return value_range(long_op(op, l->first, r->first), long_op(op, l->step, r->step),
                           l->count);
    if (l_lazy && r->type == -QT_LONG)
        return value_range(long_op(op, l->first, r->atom.j),
                           op == '*' ? long_op(op, l->step, r->atom.j) : l->step, l->count);
    if (r_lazy && l->type == -QT_LONG) {
        int64_t step = op == '+' ? r->step : long_op(op, op == '-' ? 0 : l->atom.j, r->step);
        return value_range(long_op(op, l->atom.j, r->first), step, r->count);
    }
    return NULL;
}

static struct qval *arith(struct eval_context *ctx, char op, const struct qval *l,
                          const struct qval *r)
{
    if (!is_numeric(l) || !is_numeric(r))
        return fail(ctx, "type");

    int l_vector = l->type > 0, r_vector = r->type > 0;
    if (l_vector && r_vector && l->count != r->count)
        return fail(ctx, "length");

    struct qval *lazy = lazy_op(op, l, r);
    if (lazy != NULL)
        return lazy;

    int floats = l->type == QT_FLOAT || l->type == -QT_FLOAT || r->type == QT_FLOAT ||
                 r->type == -QT_FLOAT;
    if (!l_vector && !r_vector) {
        if (floats)
            return value_float(float_op(op, float_item(l, 0), float_item(r, 0)));
        return value_long(long_op(op, l->atom.j, r->atom.j));
    }

    uint64_t n = l_vector ? l->count : r->count;
    struct qval *out = value_vector(floats ? QT_FLOAT : QT_LONG, n);
    if (out == NULL)
        return fail(ctx, "wsfull");
    for (uint64_t i = 0; i < n; i++) {
        if (floats) {
            double f = float_op(op, float_item(l, i), float_item(r, i));
            memcpy((uint8_t *)out->items + 8 * i, &f, 8);
        } else {
            int64_t j = long_op(op, long_item(l, i), long_item(r, i));
            memcpy((uint8_t *)out->items + 8 * i, &j, 8);
        }
    }
    return out;
}

/* ---- tokenizer ---- */

enum token_kind {
    TOK_END, TOK_NUMBER, TOK_STRING, TOK_SYMBOL, TOK_NAME, TOK_OPERATOR, TOK_COLON,
    TOK_NULL, TOK_QUOTE, TOK_SEMICOLON, TOK_LPAREN, TOK_RPAREN, TOK_LBRACKET, TOK_RBRACKET,
};

struct token {
    int kind;
    const char *text;
    size_t len;
    int space_before;   /* whitespace separates this token from the previous one */
};

struct lexer {
    const char *text;
    size_t len;
    size_t pos;
    struct token current;
    struct token previous;
};

static int is_name_start(int c)
{
    return isalpha(c) || c == '.';
}

static int is_name_char(int c)
{
    return isalnum(c) || c == '.' || c == '_';
}

/* Returns the length of the number at text[0..len), or 0 when none starts there. */
static size_t number_length(const char *text, size_t len)
{
    size_t i = 0;

    if (i < len && text[i] == '-')
        i++;
    size_t digits = i;
    while (i < len && (isdigit((unsigned char)text[i]) || text[i] == '.'))
        i++;
    if (i == digits || (i == digits + 1 && text[digits] == '.'))
        return 0;
    if (i < len && text[i] == 'e' && i + 1 < len &&
        (isdigit((unsigned char)text[i + 1]) || text[i + 1] == '-')) {
        i += 2;
        while (i < len && isdigit((unsigned char)text[i]))
            i++;
    }
    while (i < len && isalpha((unsigned char)text[i]))
        i++;
    return i;
}

/* A '-' starts a negative number unless it directly follows a noun, as in 2-1 or x-1. */
static int minus_is_sign(const struct lexer *lx, int space_before)
{
    int prev = lx->previous.kind;

    if (space_before || lx->pos == 0)
        return 1;
    return prev != TOK_NUMBER && prev != TOK_NAME && prev != TOK_STRING &&
           prev != TOK_SYMBOL && prev != TOK_RPAREN && prev != TOK_RBRACKET &&
           prev != TOK_NULL;
}

static size_t string_length(const char *text, size_t len)
{
    for (size_t i = 1; i < len; i++) {
        if (text[i] == '\\')
            i++;
        else if (text[i] == '"')
            return i + 1;
    }
    return 0;
}

static size_t symbols_length(const char *text, size_t len)
{
    size_t i = 0;

    while (i < len && text[i] == '`') {
        i++;
        while (i < len && is_name_char((unsigned char)text[i]))
            i++;
    }
    return i;
}

/* Reads the next token into lx->current. Returns 0, or -1 for an unterminated string. */
static int lex_next(struct lexer *lx)
{
    int space = 0;

    lx->previous = lx->current;
    while (lx->pos < lx->len && isspace((unsigned char)lx->text[lx->pos])) {
        lx->pos++;
        space = 1;
    }

    const char *p = lx->text + lx->pos;
    size_t left = lx->len - lx->pos;
    struct token t = {TOK_END, p, 0, space};
    int c = left ? (unsigned char)p[0] : 0;

    if (left == 0) {
        t.kind = TOK_END;
    } else if ((isdigit(c) || (c == '.' && left > 1 && isdigit((unsigned char)p[1])) ||
                (c == '-' && minus_is_sign(lx, space))) && (t.len = number_length(p, left))) {
        t.kind = TOK_NUMBER;
    } else if (c == '"') {
        t.kind = TOK_STRING;
        t.len = string_length(p, left);
        if (t.len == 0)
            return -1;
    } else if (c == '`') {
        t.kind = TOK_SYMBOL;
        t.len = symbols_length(p, left);
    } else if (is_name_start(c)) {
        t.kind = TOK_NAME;
        while (t.len < left && is_name_char((unsigned char)p[t.len]))
            t.len++;
    } else if (c == ':' && left > 1 && p[1] == ':') {
        t.kind = TOK_NULL;
        t.len = 2;
    } else {
        t.len = 1;
        switch (c) {
        case ':': t.kind = TOK_COLON; break;
        case '\'': t.kind = TOK_QUOTE; break;
        case ';': t.kind = TOK_SEMICOLON; break;
        case '(': t.kind = TOK_LPAREN; break;
        case ')': t.kind = TOK_RPAREN; break;
        case '[': t.kind = TOK_LBRACKET; break;
        case ']': t.kind = TOK_RBRACKET; break;
        default: t.kind = TOK_OPERATOR; break;
        }
    }
    lx->pos += t.len;
    lx->current = t;
    return 0;
}

/* ---- literals ---- */

/* Parses one number token into an atom: long, float (with '.', 'e' or suffix f), boolean
 * (suffix b, one digit) or the nulls and infinities 0N 0W 0n 0w. */
static struct qval *number_atom(const char *text, size_t len)
{
    char buf[64];

    if (len >= sizeof(buf))
        return NULL;
    memcpy(buf, text, len);
    buf[len] = '\0';

    if (strcmp(buf, "0N") == 0 || strcmp(buf, "0Nj") == 0)
        return value_long(INT64_MIN);
    if (strcmp(buf, "0W") == 0 || strcmp(buf, "0Wj") == 0)
        return value_long(INT64_MAX);
    if (strcmp(buf, "-0W") == 0)
        return value_long(-INT64_MAX);
    if (strcmp(buf, "0n") == 0)
        return value_float(NAN);
    if (strcmp(buf, "0w") == 0)
        return value_float(INFINITY);
    if (strcmp(buf, "-0w") == 0)
        return value_float(-INFINITY);

    char suffix = isalpha((unsigned char)buf[len - 1]) ? buf[len - 1] : 0;
    if (suffix)
        buf[--len] = '\0';
    if (suffix == 'b') {
        if (len != 1 || (buf[0] != '0' && buf[0] != '1'))
            return NULL;
        struct qval *v = value_new(-QT_BOOLEAN);
        if (v != NULL)
            v->atom.j = buf[0] == '1';
        return v;
    }

    char *end;
    int is_float = suffix == 'f' || strpbrk(buf, ".e") != NULL;
    if (suffix != 0 && suffix != 'f' && suffix != 'j')
        return NULL;
    if (is_float) {
        double f = strtod(buf, &end);
        return *end == '\0' ? value_float(f) : NULL;
    }
    errno = 0;
    long long j = strtoll(buf, &end, 10);
    return *end == '\0' && errno == 0 ? value_long(j) : NULL;
}

static int unescape(const char *text, size_t len, char *out, size_t *n)
{
    size_t k = 0;

    for (size_t i = 0; i < len; i++) {
        char c = text[i];
        if (c == '\\' && i + 1 < len) {
            char e = text[++i];
            if (e >= '0' && e <= '7' && i + 2 < len) {
                c = (char)((e - '0') * 64 + (text[i + 1] - '0') * 8 + (text[i + 2] - '0'));
                i += 2;
            } else if (e == 'n') {
                c = '\n';
            } else if (e == 't') {
                c = '\t';
            } else if (e == 'r') {
                c = '\r';
            } else {
                c = e;
            }
        }
        out[k++] = c;
    }
    *n = k;
    return 0;
}

static struct qval *string_value(const struct token *t)
{
    char *text = malloc(t->len);
    size_t n;

    if (text == NULL)
        return NULL;
    unescape(t->text + 1, t->len - 2, text, &n);

    struct qval *v;
    if (n == 1) {
        v = value_new(-QT_CHAR);
        if (v != NULL)
            v->atom.j = (unsigned char)text[0];
    } else {
        v = value_string(text, n);
    }
    free(text);
    return v;
}

static struct qval *symbols_value(const struct token *t)
{
    size_t count = 0;

    for (size_t i = 0; i < t->len; i++)
        count += t->text[i] == '`';

    struct qval *list = value_list(count);
    if (list == NULL)
        return NULL;
    size_t i = 0;
    for (size_t k = 0; k < count; k++) {
        size_t start = ++i;
        while (i < t->len && t->text[i] != '`')
            i++;
        char name[256];
        size_t n = i - start < sizeof(name) - 1 ? i - start : sizeof(name) - 1;
        memcpy(name, t->text + start, n);
        name[n] = '\0';
        ((struct qval **)list->items)[k] = value_symbol(name);
        if (((struct qval **)list->items)[k] == NULL) {
            list->count = k;
            value_free(list);
            return NULL;
        }
    }
    if (count == 1) {
        struct qval *atom = ((struct qval **)list->items)[0];
        free(list->items);
        free(list);
        return atom;
    }
    return value_collapse(list);
}

/* ---- syntax tree ---- */

enum node_kind { NODE_CONST, NODE_NAME, NODE_ASSIGN, NODE_BINARY, NODE_APPLY, NODE_SIGNAL,
                 NODE_LIST };

struct node {
    int kind;
    struct qval *value;            /* NODE_CONST */
    char *name;                    /* NODE_NAME, NODE_ASSIGN */
    char op;                       /* NODE_BINARY */
    const struct builtin *fn;      /* NODE_APPLY */
    struct node *left, *right;     /* NODE_BINARY; right alone for ASSIGN, APPLY, SIGNAL */
    struct node **items;           /* NODE_LIST */
    size_t count;
};

static void node_free(struct node *n)
{
    if (n == NULL)
        return;
    value_free(n->value);
    free(n->name);
    node_free(n->left);
    node_free(n->right);
    for (size_t i = 0; i < n->count; i++)
        node_free(n->items[i]);
    free(n->items);
    free(n);
}

static struct node *node_new(int kind)
{
    struct node *n = calloc(1, sizeof(*n));

    if (n != NULL)
        n->kind = kind;
    return n;
}

struct parser {
    struct lexer lx;
    struct eval_context *ctx;
    int failed;
};

static struct node *parse_fail(struct parser *ps, const char *format, ...)
    __attribute__((format(printf, 2, 3)));

static struct node *parse_fail(struct parser *ps, const char *format, ...)
{
    va_list args;

    if (!ps->failed) {
        va_start(args, format);
        vsnprintf(ps->ctx->result->error, sizeof(ps->ctx->result->error), format, args);
        va_end(args);
    }
    ps->failed = 1;
    return NULL;
}

static int advance(struct parser *ps)
{
    if (lex_next(&ps->lx) != 0) {
        parse_fail(ps, "parse: unterminated string");
        return -1;
    }
    return 0;
}

static int at_expression_end(const struct parser *ps)
{
    int k = ps->lx.current.kind;

    return k == TOK_END || k == TOK_RPAREN || k == TOK_RBRACKET || k == TOK_SEMICOLON;
}

static struct node *parse_expression(struct parser *ps);

static struct node *const_node(struct parser *ps, struct qval *value)
{
    struct node *n = node_new(NODE_CONST);

    if (value == NULL || n == NULL) {
        value_free(value);
        free(n);
        return parse_fail(ps, "wsfull");
    }
    n->value = value;
    return n;
}

/* Parses numbers separated by spaces (1 2 3, 1 2.5) into an atom or a vector. */
static struct node *parse_numbers(struct parser *ps)
{
    struct qval *list = value_list(0);
    size_t cap = 0;

    if (list == NULL)
        return parse_fail(ps, "wsfull");
    do {
        struct token t = ps->lx.current;
        struct qval *atom = number_atom(t.text, t.len);
        if (atom == NULL) {
            value_free(list);
            return parse_fail(ps, "nyi: literal %.*s", (int)(t.len > 40 ? 40 : t.len), t.text);
        }
        if (list->count == cap) {
            cap = cap ? 2 * cap : 8;
            void *items = realloc(list->items, cap * sizeof(void *));
            if (items == NULL) {
                value_free(atom);
                value_free(list);
                return parse_fail(ps, "wsfull");
            }
            list->items = items;
        }
        ((struct qval **)list->items)[list->count++] = atom;
        if (advance(ps) != 0) {
            value_free(list);
            return NULL;
        }
    } while (ps->lx.current.kind == TOK_NUMBER && ps->lx.current.space_before);

    if (list->count == 1) {
        struct qval *atom = ((struct qval **)list->items)[0];
        list->count = 0;
        value_free(list);
        return const_node(ps, atom);
    }

    /* q promotes a mix of long and float literals to a float vector. */
    struct qval **items = list->items;
    int floats = 0;
    for (uint64_t i = 0; i < list->count; i++)
        floats |= items[i]->type == -QT_FLOAT;
    for (uint64_t i = 0; floats && i < list->count; i++) {
        if (items[i]->type == -QT_LONG) {
            items[i]->type = -QT_FLOAT;
            items[i]->atom.f = (double)items[i]->atom.j;
        }
    }
    return const_node(ps, value_collapse(list));
}

/* Parses ( ... ): one parenthesized expression, () or a list (a;b;...). */
static struct node *parse_parens(struct parser *ps)
{
    struct node *list = node_new(NODE_LIST);
    int semicolons = 0;

    if (list == NULL || advance(ps) != 0) {
        free(list);
        return parse_fail(ps, "wsfull");
    }
    for (;;) {
        struct node *item = parse_expression(ps);
        if (ps->failed)
            break;
        if (item == NULL && (semicolons > 0 || ps->lx.current.kind == TOK_SEMICOLON))
            item = const_node(ps, value_generic_null());
        if (item != NULL) {
            struct node **items = realloc(list->items, (list->count + 1) * sizeof(*items));
            if (items == NULL) {
                node_free(item);
                parse_fail(ps, "wsfull");
                break;
            }
            list->items = items;
            list->items[list->count++] = item;
        }
        if (ps->lx.current.kind == TOK_SEMICOLON) {
            semicolons++;
            if (advance(ps) != 0)
                break;
            continue;
        }
        if (ps->lx.current.kind != TOK_RPAREN) {
            parse_fail(ps, "parse: expected ) or ;");
            break;
        }
        if (advance(ps) != 0)
            break;
        if (semicolons == 0 && list->count == 1) {
            struct node *inner = list->items[0];
            list->count = 0;
            node_free(list);
            return inner;
        }
        return list;
    }
    node_free(list);
    return NULL;
}

/* Parses f[x] after a built-in's name; f[] passes (::). */
static struct node *parse_brackets(struct parser *ps, struct node *apply)
{
    if (advance(ps) != 0)
        return NULL;
    struct node *arg = parse_expression(ps);
    if (ps->failed)
        return NULL;
    if (ps->lx.current.kind == TOK_SEMICOLON) {
        node_free(arg);
        return parse_fail(ps, "rank");
    }
    if (ps->lx.current.kind != TOK_RBRACKET) {
        node_free(arg);
        return parse_fail(ps, "parse: expected ]");
    }
    if (advance(ps) != 0) {
        node_free(arg);
        return NULL;
    }
    apply->right = arg != NULL ? arg : const_node(ps, value_generic_null());
    return apply;
}

/* Parses a name: a variable, or a built-in applied with brackets or to the rest of the
 * expression (right to left: `count til 5` is count[til[5]]). Sets *consumed_rest. */
static struct node *parse_name(struct parser *ps, int *consumed_rest)
{
    struct token t = ps->lx.current;
    const struct builtin *fn = builtin_find(t.text, t.len);

    if (advance(ps) != 0)
        return NULL;
    if (fn == NULL || at_expression_end(ps) || ps->lx.current.kind == TOK_OPERATOR ||
        ps->lx.current.kind == TOK_COLON) {
        struct node *n = node_new(NODE_NAME);
        if (n == NULL || (n->name = strndup(t.text, t.len)) == NULL) {
            free(n);
            return parse_fail(ps, "wsfull");
        }
        return n;
    }

    struct node *apply = node_new(NODE_APPLY);
    if (apply == NULL)
        return parse_fail(ps, "wsfull");
    apply->fn = fn;
    if (ps->lx.current.kind == TOK_LBRACKET && !ps->lx.current.space_before) {
        if (parse_brackets(ps, apply) == NULL) {
            node_free(apply);
            return NULL;
        }
        return apply;
    }

    apply->right = parse_expression(ps);
    if (apply->right == NULL) {
        node_free(apply);
        return ps->failed ? NULL : parse_fail(ps, "parse: missing argument");
    }
    *consumed_rest = 1;
    return apply;
}

static struct node *parse_noun(struct parser *ps, int *consumed_rest)
{
    struct token t = ps->lx.current;

    switch (t.kind) {
    case TOK_NUMBER:
        return parse_numbers(ps);
    case TOK_STRING:
        if (advance(ps) != 0)
            return NULL;
        return const_node(ps, string_value(&t));
    case TOK_SYMBOL:
        if (advance(ps) != 0)
            return NULL;
        return const_node(ps, symbols_value(&t));
    case TOK_NULL:
        if (advance(ps) != 0)
            return NULL;
        return const_node(ps, value_generic_null());
    case TOK_LPAREN:
        return parse_parens(ps);
    case TOK_NAME:
        return parse_name(ps, consumed_rest);
    case TOK_OPERATOR:
        return parse_fail(ps, "nyi: operator %c without a left operand", t.text[0]);
    }
    return parse_fail(ps, "parse: unexpected %.*s", (int)t.len, t.text);
}

/* Parses one expression up to ; ) ] or the end. Returns NULL for an empty expression
 * (ps->failed unset) or an error (ps->failed set). */
static struct node *parse_expression(struct parser *ps)
{
    if (at_expression_end(ps))
        return NULL;

    if (ps->lx.current.kind == TOK_QUOTE) {
        struct node *signal = node_new(NODE_SIGNAL);
        if (signal == NULL || advance(ps) != 0) {
            free(signal);
            return parse_fail(ps, "wsfull");
        }
        signal->right = parse_expression(ps);
        if (signal->right == NULL) {
            node_free(signal);
            return ps->failed ? NULL : parse_fail(ps, "nyi: ' without an operand");
        }
        return signal;
    }

    struct token first = ps->lx.current;
    int consumed_rest = 0;
    struct node *left = parse_noun(ps, &consumed_rest);
    if (left == NULL || consumed_rest || at_expression_end(ps))
        return left;

    struct token t = ps->lx.current;
    if (t.kind == TOK_COLON && left->kind == NODE_NAME && first.kind == TOK_NAME) {
        if (builtin_find(left->name, strlen(left->name)) != NULL) {
            node_free(left);
            return parse_fail(ps, "assign");
        }
        left->kind = NODE_ASSIGN;
        if (advance(ps) != 0) {
            node_free(left);
            return NULL;
        }
        left->right = parse_expression(ps);
        if (left->right == NULL) {
            node_free(left);
            return ps->failed ? NULL : parse_fail(ps, "nyi: assignment without a value");
        }
        return left;
    }

    if (t.kind != TOK_OPERATOR) {
        node_free(left);
        return parse_fail(ps, "nyi: juxtaposition (indexing or application) before %.*s",
                          (int)(t.len > 20 ? 20 : t.len), t.text);
    }
    if (t.text[0] != '+' && t.text[0] != '-' && t.text[0] != '*') {
        node_free(left);
        return parse_fail(ps, "nyi: operator %c", t.text[0]);
    }

    struct node *binary = node_new(NODE_BINARY);
    if (binary == NULL || advance(ps) != 0) {
        free(binary);
        node_free(left);
        return parse_fail(ps, "wsfull");
    }
    binary->op = t.text[0];
    binary->left = left;
    binary->right = parse_expression(ps);
    if (binary->right == NULL) {
        node_free(binary);
        return ps->failed ? NULL : parse_fail(ps, "nyi: projection %c", t.text[0]);
    }
    return binary;
}

/* ---- evaluation ---- */

static struct qval *evaluate(struct eval_context *ctx, const struct node *n);

static struct qval *signal_error(struct eval_context *ctx, const struct qval *v)
{
    if (v->type == -QT_SYMBOL)
        return fail(ctx, "%s", v->atom.s);
    if (v->type == QT_CHAR)
        return fail(ctx, "%.*s", (int)(v->count > 200 ? 200 : v->count), (char *)v->items);
    if (v->type == -QT_CHAR)
        return fail(ctx, "%c", (char)v->atom.j);
    return fail(ctx, "type");
}

static struct qval *evaluate_list(struct eval_context *ctx, const struct node *n)
{
    struct qval *list = value_list(n->count);

    if (list == NULL)
        return fail(ctx, "wsfull");
    /* q evaluates the items of (a;b;c) from the right. */
    for (size_t i = n->count; i-- > 0;) {
        struct qval *item = evaluate(ctx, n->items[i]);
        if (item == NULL) {
            value_free(list);
            return NULL;
        }
        ((struct qval **)list->items)[i] = item;
    }
    return value_collapse(list);
}

static struct qval *evaluate(struct eval_context *ctx, const struct node *n)
{
    struct qval *right = NULL, *left = NULL, *result = NULL;
    struct global *g;

    switch (n->kind) {
    case NODE_CONST:
        result = value_copy(n->value);
        return result != NULL ? result : fail(ctx, "wsfull");
    case NODE_NAME:
        if (builtin_find(n->name, strlen(n->name)) != NULL)
            return fail(ctx, "nyi: function %s as a value", n->name);
        g = global_find(n->name);
        if (g == NULL)
            return fail(ctx, "%s", n->name);
        result = value_copy(g->value);
        return result != NULL ? result : fail(ctx, "wsfull");
    case NODE_LIST:
        return evaluate_list(ctx, n);
    }

    right = evaluate(ctx, n->right);
    if (right == NULL)
        return NULL;

    switch (n->kind) {
    case NODE_ASSIGN:
        if (global_store(n->name, right) != 0) {
            value_free(right);
            return fail(ctx, "wsfull");
        }
        return right;
    case NODE_APPLY:
        result = n->fn->apply(ctx, right);
        break;
    case NODE_SIGNAL:
        result = signal_error(ctx, right);
        break;
    case NODE_BINARY:
        left = evaluate(ctx, n->left);
        if (left != NULL)
            result = arith(ctx, n->op, left, right);
        break;
    }
    value_free(left);
    value_free(right);
    return result;
}

/* Evaluates statements separated by ';', left to right. */
static struct qval *evaluate_text(struct eval_context *ctx, const char *text, size_t len)
{
    struct parser ps = {.ctx = ctx};
    struct qval *last = NULL;
    int last_is_value = 0;

    ps.lx.text = text;
    ps.lx.len = len;
    if (advance(&ps) != 0)
        return NULL;

    for (;;) {
        struct node *statement = parse_expression(&ps);
        if (ps.failed)
            break;
        if (ps.lx.current.kind != TOK_SEMICOLON && ps.lx.current.kind != TOK_END) {
            node_free(statement);
            parse_fail(&ps, "parse: unexpected %.*s", (int)ps.lx.current.len,
                       ps.lx.current.text);
            break;
        }

        value_free(last);
        last = NULL;
        last_is_value = statement != NULL && statement->kind != NODE_ASSIGN;
        if (statement != NULL) {
            last = evaluate(ctx, statement);
            node_free(statement);
            if (last == NULL)
                return NULL;
        }
        if (ps.lx.current.kind == TOK_END)
            break;
        if (advance(&ps) != 0)
            break;
    }

    if (ps.failed) {
        value_free(last);
        return NULL;
    }
    if (!last_is_value) {
        value_free(last);
        last = value_generic_null();
    }
    return last;
}

/* Applies ("f";x) or (`f;x): a built-in named by a string or symbol to the other items. */
static struct qval *evaluate_call(struct eval_context *ctx, const struct qval *list)
{
    const struct qval *head = ((struct qval **)list->items)[0];
    const char *name;
    size_t n;

    if (head->type == -QT_SYMBOL) {
        name = head->atom.s;
        n = strlen(name);
    } else if (head->type == QT_CHAR) {
        name = head->items;
        n = head->count;
    } else {
        return fail(ctx, "nyi: requests of type %d as a function", head->type);
    }

    const struct builtin *fn = builtin_find(name, n);
    if (fn == NULL) {
        if (head->type == -QT_SYMBOL && global_find(name) == NULL)
            return fail(ctx, "%s", name);
        return fail(ctx, "nyi: applying %.*s", (int)(n > 40 ? 40 : n), name);
    }
    if (list->count > 2)
        return fail(ctx, "rank");

    struct qval *null = value_generic_null();
    if (null == NULL)
        return fail(ctx, "wsfull");
    const struct qval *arg = list->count == 2 ? ((struct qval **)list->items)[1] : null;
    struct qval *result = fn->apply(ctx, arg);
    value_free(null);
    return result;
}

void eval_request(const struct qval *request, struct eval_result *out)
{
    struct eval_context ctx = {out};
    struct global *g;
    char c;

    memset(out, 0, sizeof(*out));
    switch (request->type) {
    case QT_CHAR:
        out->value = evaluate_text(&ctx, request->items, request->count);
        break;
    case -QT_CHAR:
        c = (char)request->atom.j;
        out->value = evaluate_text(&ctx, &c, 1);
        break;
    case QT_LIST:
        if (request->count == 0)
            out->value = value_copy(request);
        else
            out->value = evaluate_call(&ctx, request);
        break;
    case -QT_SYMBOL:
        g = global_find(request->atom.s);
        if (g == NULL)
            fail(&ctx, "%s", request->atom.s);
        else
            out->value = value_copy(g->value);
        break;
    default:
        out->value = value_copy(request);
        break;
    }
    if (out->value == NULL && out->error[0] == '\0')
        snprintf(out->error, sizeof(out->error), "wsfull");
}
