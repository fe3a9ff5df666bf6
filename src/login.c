/*
 * login.c - password checks on worker threads, and the shared failed-login limiter.
 *
 * The event loop owns every job and every reference to a users file. A worker touches
 * only the job it took from the pending list. It reads the job's users file, which the
 * job keeps alive, and writes the job's result. Then it moves the job to the done list
 * and wakes the loop through an eventfd. Reference counts change on the loop only.
 */
#include "login.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>
#include <openssl/crypto.h>

#include "ipc.h"
#include "log.h"
#include "qmux.h"

#define MAX_WORKERS 64

/* Password checks that may be queued or running at once from one address (an IPv4
 * address or an IPv6 /64), and in all. Further logins are closed without a check, so
 * abandoned logins from a few addresses cannot hold up everyone else's. */
#define CHECKS_PER_ADDRESS 32
#define CHECKS_MAX 1024

struct login_job {
    struct login_job *next;
    struct auth_db *db;                 /* one reference, dropped on the loop */
    uint8_t *user;
    size_t user_len;
    uint8_t *password;
    size_t password_len;
    const struct auth_user *result;
    int cancelled;                      /* under lock: the session ended */
    struct login_session *session;
};

struct login_session {
    char peer[64];
    uint8_t *user;
    size_t user_len;
    uint8_t *password;                  /* wiped and freed when the check ends */
    size_t password_len;
    struct login_job *job;              /* check in progress, or NULL */
    struct event *timer;                /* deferral, or the hold of a rejected login */
    int deferred;
    int counted;                        /* counted by auth_limiter_begin_check */
    int busy;                           /* refused a check: too many in progress */
    login_result_fn done;
    void (*close)(void *arg);
    void *arg;
};

struct job_list {
    struct login_job *head;
    struct login_job *tail;
};

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t work_ready = PTHREAD_COND_INITIALIZER;
static struct job_list pending;         /* under lock */
static struct job_list finished;        /* under lock */
static int stopping;                    /* under lock */
static size_t job_count;                /* loop only: jobs not yet freed */

static pthread_t workers[MAX_WORKERS];
static int worker_count;
static int wake_fd = -1;
static struct event *wake_event;
static struct auth_limiter *limiter;

static void list_push(struct job_list *list, struct login_job *job)
{
    job->next = NULL;
    if (list->tail != NULL)
        list->tail->next = job;
    else
        list->head = job;
    list->tail = job;
}

static struct login_job *list_pop(struct job_list *list)
{
    struct login_job *job = list->head;

    if (job != NULL) {
        list->head = job->next;
        if (list->head == NULL)
            list->tail = NULL;
    }
    return job;
}

static void job_free(struct login_job *job)
{
    OPENSSL_cleanse(job->password, job->password_len);
    free(job->password);
    free(job->user);
    auth_free(job->db);
    free(job);
    job_count--;
}

static void job_done(struct login_job *job);

static void *worker_main(void *arg)
{
    (void)arg;
    pthread_mutex_lock(&lock);
    for (;;) {
        while (pending.head == NULL && !stopping)
            pthread_cond_wait(&work_ready, &lock);
        if (stopping)
            break;

        struct login_job *job = list_pop(&pending);
        int skip = job->cancelled;
        pthread_mutex_unlock(&lock);

        if (!skip)
            job->result = auth_verify(job->db, (const char *)job->user, job->user_len,
                                      (const char *)job->password, job->password_len);
        OPENSSL_cleanse(job->password, job->password_len);

        pthread_mutex_lock(&lock);
        list_push(&finished, job);
        uint64_t one = 1;
        if (write(wake_fd, &one, sizeof(one)) < 0 && errno != EAGAIN)
            log_error("login worker: waking the event loop failed: %s", strerror(errno));
    }
    pthread_mutex_unlock(&lock);
    return NULL;
}

/* Runs the callbacks of finished jobs on the event loop. */
static void wake_cb(evutil_socket_t fd, short what, void *arg)
{
    uint64_t count;
    struct job_list done;

    (void)what;
    (void)arg;
    if (read(fd, &count, sizeof(count)) < 0 && errno != EAGAIN)
        log_error("login: reading the wake-up counter failed: %s", strerror(errno));

    pthread_mutex_lock(&lock);
    done = finished;
    finished.head = finished.tail = NULL;
    pthread_mutex_unlock(&lock);

    struct login_job *job;
    while ((job = list_pop(&done)) != NULL) {
        if (!job->cancelled)
            job_done(job);
        job_free(job);
    }
}

int login_start(void)
{
    worker_count = 0;
    stopping = 0;
    limiter = auth_limiter_new(NULL);
    login_configure(qmux.config);
    wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (limiter == NULL || wake_fd < 0) {
        log_error("cannot start the login checks: %s", wake_fd < 0 ? strerror(errno)
                  : "out of memory");
        login_stop();
        return -1;
    }
    wake_event = event_new(qmux.base, wake_fd, EV_READ | EV_PERSIST, wake_cb, NULL);
    if (wake_event == NULL || event_add(wake_event, NULL) != 0) {
        log_error("cannot start the login checks: out of memory");
        login_stop();
        return -1;
    }

    int wanted = qmux.config->auth_workers;
    for (int i = 0; i < wanted && i < MAX_WORKERS; i++) {
        int status = pthread_create(&workers[i], NULL, worker_main, NULL);
        if (status != 0) {
            log_error("cannot start login worker %d of %d: %s; lower auth.workers", i + 1,
                      wanted, strerror(status));
            login_stop();
            return -1;
        }
        worker_count++;
    }
    return 0;
}

void login_stop(void)
{
    struct login_job *job;

    pthread_mutex_lock(&lock);
    stopping = 1;
    pthread_cond_broadcast(&work_ready);
    pthread_mutex_unlock(&lock);
    for (int i = 0; i < worker_count; i++)
        pthread_join(workers[i], NULL);
    worker_count = 0;

    while ((job = list_pop(&pending)) != NULL)
        job_free(job);
    while ((job = list_pop(&finished)) != NULL)
        job_free(job);
    if (wake_event != NULL)
        event_free(wake_event);
    wake_event = NULL;
    if (wake_fd >= 0)
        close(wake_fd);
    wake_fd = -1;
    auth_limiter_free(limiter);
    limiter = NULL;
}

/* Queues a check of the session's credentials against db. Returns 0, or -1 when out of
 * memory. */
static int queue_check(struct login_session *session, struct auth_db *db)
{
    struct login_job *job = calloc(1, sizeof(*job));

    if (job == NULL)
        return -1;
    job->user = malloc(session->user_len + 1);
    job->password = malloc(session->password_len + 1);
    if (job->user == NULL || job->password == NULL) {
        free(job->user);
        free(job->password);
        free(job);
        return -1;
    }
    memcpy(job->user, session->user, session->user_len);
    job->user_len = session->user_len;
    memcpy(job->password, session->password, session->password_len);
    job->password_len = session->password_len;
    job->db = auth_retain(db);
    job->session = session;
    session->job = job;
    job_count++;

    pthread_mutex_lock(&lock);
    list_push(&pending, job);
    pthread_cond_signal(&work_ready);
    pthread_mutex_unlock(&lock);
    return 0;
}

static void wipe_password(struct login_session *session)
{
    if (session->password == NULL)
        return;
    OPENSSL_cleanse(session->password, session->password_len);
    free(session->password);
    session->password = NULL;
    session->password_len = 0;
}

/* Ends the session's claim on a check: its count in the limiter and its password. */
static void end_claim(struct login_session *session)
{
    if (session->counted && limiter != NULL)
        auth_limiter_end_check(limiter, session->peer);
    session->counted = 0;
    wipe_password(session);
}

/*
 * Delivers a job's result to its session. A reload during the check may have changed
 * the users file, a password included, so a check against a replaced file runs again
 * against the file in use now.
 */
static void job_done(struct login_job *job)
{
    struct login_session *session = job->session;
    struct auth_db *current = qmux.config->users;
    const struct auth_user *user = job->result;
    const char *failure = NULL;

    session->job = NULL;
    if (current != NULL && job->db != current) {
        if (queue_check(session, current) == 0)
            return;
        failure = "out of memory while checking the password";
    } else if (current == NULL) {
        failure = "no users file is loaded since a reload";
    } else if (user == NULL) {
        failure = auth_find_user(job->db, (const char *)job->user, job->user_len) != NULL
                  ? "wrong password" : "unknown user";
    }
    end_claim(session);
    session->done(session->arg, failure == NULL ? user : NULL, failure);
}

static void start_check(struct login_session *session)
{
    session->deferred = 0;
    if (qmux.config->users == NULL) {
        end_claim(session);
        session->done(session->arg, NULL, "no users file is loaded since a reload");
        return;
    }
    if (queue_check(session, qmux.config->users) != 0) {
        end_claim(session);
        session->done(session->arg, NULL, "out of memory while checking the password");
    }
}

static void busy_cb(evutil_socket_t fd, short what, void *arg)
{
    struct login_session *session = arg;
    char failure[160];

    (void)fd;
    (void)what;
    snprintf(failure, sizeof(failure), "too many password checks in progress (%d from one "
             "address, or %d in all); not checked", CHECKS_PER_ADDRESS, CHECKS_MAX);
    wipe_password(session);
    session->done(session->arg, NULL, failure);
}

static void deferred_check_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    start_check(arg);
}

/* (Re)starts the session's timer to call callback after ms. Returns 0, or -1. */
static int start_timer(struct login_session *session, unsigned ms,
                       event_callback_fn callback)
{
    struct timeval delay = { ms / 1000, (ms % 1000) * 1000 };

    if (session->timer != NULL)
        event_free(session->timer);
    session->timer = evtimer_new(qmux.base, callback, session);
    if (session->timer == NULL)
        return -1;
    return evtimer_add(session->timer, &delay);
}

static uint64_t now_ms(void)
{
    struct timespec now;

    clock_gettime(CLOCK_MONOTONIC, &now);
    return (uint64_t)now.tv_sec * 1000 + (uint64_t)now.tv_nsec / 1000000;
}

struct login_session *login_begin(const char *peer, const uint8_t *user, size_t user_len,
                                  const uint8_t *password, size_t password_len,
                                  login_result_fn done, void *arg)
{
    struct login_session *session = calloc(1, sizeof(*session));

    if (session == NULL)
        return NULL;
    session->user = malloc(user_len + 1);
    session->password = malloc(password_len + 1);
    if (session->user == NULL || session->password == NULL) {
        login_end(session);
        return NULL;
    }
    snprintf(session->peer, sizeof(session->peer), "%s", peer);
    memcpy(session->user, user, user_len);
    session->user_len = user_len;
    memcpy(session->password, password, password_len);
    session->password_len = password_len;
    session->done = done;
    session->arg = arg;

    if (limiter == NULL || job_count >= CHECKS_MAX ||
        auth_limiter_begin_check(limiter, peer, CHECKS_PER_ADDRESS) != 0) {
        session->busy = 1;
        if (start_timer(session, 0, busy_cb) != 0) {
            login_end(session);
            return NULL;
        }
        return session;
    }
    session->counted = 1;

    unsigned wait = auth_limiter_wait_ms(limiter, peer, now_ms());
    if (wait == 0) {
        start_check(session);
        return session;
    }
    session->deferred = 1;
    if (start_timer(session, wait, deferred_check_cb) != 0) {
        login_end(session);
        return NULL;
    }
    return session;
}

struct login_session *login_begin_handshake(const char *peer, const uint8_t *bytes,
                                            const struct ipc_handshake *handshake,
                                            login_result_fn done, void *arg)
{
    size_t user_len = handshake->user_len;
    const uint8_t *password = bytes + handshake->credentials_len;
    size_t password_len = 0;

    if (user_len < handshake->credentials_len) {
        password = bytes + user_len + 1;
        password_len = handshake->credentials_len - user_len - 1;
    }
    return login_begin(peer, bytes, user_len, password, password_len, done, arg);
}

int login_deferred(const struct login_session *session)
{
    return session->deferred;
}

static void rejected_close_cb(evutil_socket_t fd, short what, void *arg)
{
    struct login_session *session = arg;

    (void)fd;
    (void)what;
    session->close(session->arg);
}

unsigned login_reject(struct login_session *session, void (*close)(void *arg))
{
    unsigned delay = limiter != NULL && !session->busy
                     ? auth_failure_delay_ms(limiter, session->peer, now_ms()) : 0;

    session->close = close;
    if (delay == 0 || start_timer(session, delay, rejected_close_cb) != 0)
        close(session->arg);
    return delay;
}

void login_end(struct login_session *session)
{
    if (session == NULL)
        return;
    if (session->job != NULL) {
        pthread_mutex_lock(&lock);
        session->job->cancelled = 1;
        pthread_mutex_unlock(&lock);
    }
    if (session->timer != NULL)
        event_free(session->timer);
    end_claim(session);
    free(session->user);
    free(session);
}

int login_needs_check(const struct auth_db *db, int anonymous, const uint8_t *user,
                      size_t user_len)
{
    if (db == NULL)
        return 0;
    return !anonymous || auth_find_user(db, (const char *)user, user_len) != NULL;
}

void login_configure(const struct config *config)
{
    if (limiter != NULL)
        auth_limiter_configure(limiter, (unsigned)config->free_failures,
                               (unsigned)config->failure_delay_ms,
                               (unsigned)config->failure_delay_max_ms);
}

int login_listener_allowed(const struct auth_user *user, unsigned listener)
{
    if (!(auth_user_listeners(user) & listener))
        return 0;
    return listener != AUTH_LISTENER_ADMIN || auth_user_is_admin(user);
}
