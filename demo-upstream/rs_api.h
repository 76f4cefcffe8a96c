/* rs_api: randomstring's endpoints: turns one parsed request into a response, or into a job
 * that must run off the event loop (the endpoints that block) and then yields the response.
 *   GET|HEAD /randomstring?n=N   N random [A-Za-z0-9] characters and a newline (default 64)
 *   GET|POST /alloc?kb=N         allocate N KiB and keep it live (heap / allocs profiles)
 *   GET|POST /free               free everything /alloc holds
 *   GET|POST /contend?threads=T&ms=M   T threads fight over one mutex for M ms (mutex, block)
 *   GET|POST /spawn?n=N          start and join N threads (threadcreate)
 *   GET|POST /block?ms=M         wait M ms on a condition variable (block)
 *   GET|HEAD /                   this list
 * Functions each profile kind should show (tests may assert on them; they are never inlined):
 *   cpu: rs_random_char (flat), rs_random_string; heap/allocs: rs_heap_alloc;
 *   mutex: rs_contend_critical (the holder); block: rs_contend_worker, rs_block_wait;
 *   threadcreate: rs_spawn; /contend's threads start in rs_contend, /spawn's run rs_spawn_child.
 * Anything else is 404, a known path with another method 405 (with Allow), a bad or unknown
 * query parameter 400; every body is text/plain.
 * Owns: a response owns its body (rs_response_destroy()); a job owns its response until the
 *   server takes it.
 * Threads: rs_api_handle() on the loop thread; a job's run() on any one thread.
 * Errors: negative errno; what the client got wrong is a 4xx response, not an error. */
#ifndef RS_API_H
#define RS_API_H

#include <stdbool.h>
#include <stddef.h>
#include <uv.h>

typedef struct rs_request {
    int method;       /* llhttp_method_t */
    const char *path; /* not NUL-terminated; borrowed for the call */
    size_t path_len;
    const char *query; /* after '?', NULL if there is none */
    size_t query_len;
} rs_request_t;

typedef struct rs_response {
    int status;
    const char *allow; /* static; the Allow header of a 405, else NULL */
    char *body;        /* malloc'd, may be NULL when len is 0 */
    size_t len;
    size_t cap;
} rs_response_t;

typedef struct rs_job rs_job_t;
struct rs_job {
    /* public */
    void (*run)(rs_job_t *job); /* threadpool: does the work, fills resp */
    rs_response_t resp;
    /* private to rs_api */
    int a, b;
    /* private to rs_server */
    uv_work_t work;
    void *owner;
};

/* Answers req: either fills *resp (and *job stays NULL) or returns a heap job in *job whose
 * run() must be called off the loop, after which job->resp is the answer; free the job with
 * rs_job_free(). Returns 0, or -ENOMEM (the caller answers 500 itself). */
int rs_api_handle(const rs_request_t *req, rs_response_t *resp, rs_job_t **job);

void rs_job_free(rs_job_t *job);

/* Sets status and a printf-formatted body (replacing any); on allocation failure the body
 * is left empty and the status becomes 500. */
void rs_response_set(rs_response_t *resp, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void rs_response_destroy(rs_response_t *resp);

/* The reason phrase of an HTTP status code ("Unknown" for codes we never send). */
const char *rs_status_text(int status);

#endif
