/* rs_api: randomstring's endpoints (see rs_api.h for the list). Parameters are strict: an
 * unknown name, a repeated one, or a value that is not a plain decimal in range is a 400 that
 * says which, so that tests and users learn the bounds from the answer. */
#include "rs_api.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <llhttp.h>

#include "rs_work.h"

typedef struct rs_param {
    const char *name;
    long min, max, def;
    long value; /* out: def when absent */
    bool seen;
} rs_param_t;

typedef struct rs_endpoint {
    const char *path;
    unsigned methods; /* bit per llhttp_method_t */
    const char *allow;
    void (*handle)(const rs_request_t *req, rs_response_t *resp, rs_job_t **job);
} rs_endpoint_t;

#define M(m) (1u << (m))
#define RS_GET_HEAD (M(HTTP_GET) | M(HTTP_HEAD))
#define RS_GET_POST (M(HTTP_GET) | M(HTTP_POST))

const char *rs_status_text(int status)
{
    switch (status) {
    case 200:
        return "OK";
    case 400:
        return "Bad Request";
    case 404:
        return "Not Found";
    case 405:
        return "Method Not Allowed";
    case 409:
        return "Conflict";
    case 413:
        return "Content Too Large";
    case 414:
        return "URI Too Long";
    case 431:
        return "Request Header Fields Too Large";
    case 500:
        return "Internal Server Error";
    case 503:
        return "Service Unavailable";
    default:
        return "Unknown";
    }
}

__attribute__((format(printf, 2, 0)))
static int vformat(rs_response_t *resp, const char *fmt, va_list ap)
{
    va_list ap2;
    va_copy(ap2, ap);
    int n = vsnprintf(NULL, 0, fmt, ap2);
    va_end(ap2);
    if (n < 0) {
        return -EINVAL;
    }
    if ((size_t)n + 1 > resp->cap) {
        char *p = realloc(resp->body, (size_t)n + 1);
        if (p == NULL) {
            return -ENOMEM;
        }
        resp->body = p;
        resp->cap = (size_t)n + 1;
    }
    vsnprintf(resp->body, resp->cap, fmt, ap);
    resp->len = (size_t)n;
    return 0;
}

void rs_response_set(rs_response_t *resp, int status, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int rc = vformat(resp, fmt, ap);
    va_end(ap);
    resp->status = rc == 0 ? status : 500;
    if (rc != 0) {
        resp->len = 0;
    }
}

void rs_response_destroy(rs_response_t *resp)
{
    free(resp->body);
    memset(resp, 0, sizeof(*resp));
}

void rs_job_free(rs_job_t *job)
{
    if (job != NULL) {
        rs_response_destroy(&job->resp);
        free(job);
    }
}

/* Parses the query string into params; on a bad one fills resp with the 400 and returns -1. */
static int parse_params(const rs_request_t *req, rs_param_t *params, size_t nparams,
                        rs_response_t *resp)
{
    const char *p = req->query, *end = req->query + req->query_len;

    for (size_t i = 0; i < nparams; i++) {
        params[i].value = params[i].def;
        params[i].seen = false;
    }
    while (p != NULL && p < end) {
        const char *amp = memchr(p, '&', (size_t)(end - p));
        const char *pend = amp != NULL ? amp : end;
        const char *eq = memchr(p, '=', (size_t)(pend - p));
        const char *nend = eq != NULL ? eq : pend;
        int nlen = (int)(nend - p);
        rs_param_t *param = NULL;

        if (pend == p) { /* empty segment: "a=1&&b=2" or a trailing '&' */
            p = pend + 1;
            continue;
        }
        for (size_t i = 0; i < nparams; i++) {
            if (strlen(params[i].name) == (size_t)nlen &&
                memcmp(params[i].name, p, (size_t)nlen) == 0) {
                param = &params[i];
            }
        }
        if (param == NULL) {
            char names[128] = "";
            for (size_t i = 0; i < nparams; i++) {
                size_t used = strlen(names);
                snprintf(names + used, sizeof(names) - used, "%s%s", i > 0 ? ", " : "",
                         params[i].name);
            }
            rs_response_set(resp, 400, "unknown parameter \"%.*s\"; this endpoint takes %s\n",
                            nlen > 64 ? 64 : nlen, p, nparams > 0 ? names : "none");
            return -1;
        }
        if (param->seen) {
            rs_response_set(resp, 400, "parameter \"%s\" given twice\n", param->name);
            return -1;
        }
        param->seen = true;
        const char *v = eq != NULL ? eq + 1 : pend;
        size_t vlen = (size_t)(pend - v);
        long value = 0;
        bool ok = vlen > 0 && vlen <= 9;
        for (size_t i = 0; ok && i < vlen; i++) {
            ok = v[i] >= '0' && v[i] <= '9';
            value = value * 10 + (v[i] - '0');
        }
        if (!ok || value < param->min || value > param->max) {
            rs_response_set(resp, 400,
                            "parameter \"%s\" must be an integer in %ld..%ld, not \"%.*s\"\n",
                            param->name, param->min, param->max, vlen > 64 ? 64 : (int)vlen, v);
            return -1;
        }
        param->value = value;
        p = pend + 1;
    }
    return 0;
}

static rs_job_t *job_new(void (*run)(rs_job_t *), int a, int b)
{
    rs_job_t *job = calloc(1, sizeof(*job));
    if (job != NULL) {
        job->run = run;
        job->a = a;
        job->b = b;
    }
    return job;
}

static void handle_index(const rs_request_t *req, rs_response_t *resp, rs_job_t **job)
{
    (void)job;
    if (parse_params(req, NULL, 0, resp) != 0) {
        return;
    }
    rs_response_set(
        resp, 200,
        "randomstring: the profgate demo service\n"
        "  GET /randomstring?n=N            N random characters (1..%d, default %d)\n"
        "  GET /alloc?kb=N                  allocate N KiB and keep it live (1..%d)\n"
        "  GET /free                        free what /alloc holds\n"
        "  GET /contend?threads=T&ms=M      T threads contend on one mutex (2..%d, 1..%d)\n"
        "  GET /spawn?n=N                   start and join N threads (1..%d)\n"
        "  GET /block?ms=M                  wait M ms on a condition variable (1..%d)\n",
        RS_STRING_MAX, RS_STRING_DEFAULT, RS_ALLOC_MAX_KB, RS_CONTEND_THREADS_MAX, RS_WAIT_MS_MAX,
        RS_SPAWN_MAX, RS_WAIT_MS_MAX);
}

static void handle_randomstring(const rs_request_t *req, rs_response_t *resp, rs_job_t **job)
{
    rs_param_t params[] = {{.name = "n", .min = 1, .max = RS_STRING_MAX, .def = RS_STRING_DEFAULT}};
    (void)job;
    if (parse_params(req, params, 1, resp) != 0) {
        return;
    }
    size_t n = (size_t)params[0].value;
    if (n + 1 > resp->cap) {
        char *p = realloc(resp->body, n + 1);
        if (p == NULL) {
            rs_response_set(resp, 500, "out of memory\n");
            return;
        }
        resp->body = p;
        resp->cap = n + 1;
    }
    rs_random_string(resp->body, n);
    resp->body[n] = '\n';
    resp->len = n + 1;
    resp->status = 200;
}

static void handle_alloc(const rs_request_t *req, rs_response_t *resp, rs_job_t **job)
{
    rs_param_t params[] = {{.name = "kb", .min = 1, .max = RS_ALLOC_MAX_KB, .def = -1}};
    size_t kb, blocks;
    (void)job;
    if (parse_params(req, params, 1, resp) != 0) {
        return;
    }
    if (!params[0].seen) {
        rs_response_set(resp, 400, "parameter \"kb\" is required (1..%d)\n", RS_ALLOC_MAX_KB);
        return;
    }
    int rc = rs_heap_alloc((size_t)params[0].value);
    rs_heap_stats(&kb, &blocks);
    if (rc == -ENOSPC) {
        rs_response_set(resp, 409,
                        "refused: live allocations would exceed %d KiB (now %zu KiB); "
                        "GET /free first\n",
                        RS_HEAP_LIVE_MAX_KB, kb);
    } else if (rc != 0) {
        rs_response_set(resp, 503, "allocation of %ld KiB failed: %s\n", params[0].value,
                        strerror(-rc));
    } else {
        rs_response_set(resp, 200, "allocated %ld KiB; live: %zu KiB in %zu blocks\n",
                        params[0].value, kb, blocks);
    }
}

static void handle_free(const rs_request_t *req, rs_response_t *resp, rs_job_t **job)
{
    size_t kb, blocks;
    (void)job;
    if (parse_params(req, NULL, 0, resp) != 0) {
        return;
    }
    rs_heap_free_all(&kb, &blocks);
    rs_response_set(resp, 200, "freed %zu KiB in %zu blocks; live: 0 KiB\n", kb, blocks);
}

static void run_contend(rs_job_t *job)
{
    uint64_t acquisitions = 0;
    int rc = rs_contend(job->a, job->b, &acquisitions);
    if (rc != 0) {
        rs_response_set(&job->resp, 503, "could not start %d threads: %s\n", job->a, strerror(-rc));
    } else {
        rs_response_set(&job->resp, 200, "%d threads contended for %d ms: %llu acquisitions\n",
                        job->a, job->b, (unsigned long long)acquisitions);
    }
}

static void handle_contend(const rs_request_t *req, rs_response_t *resp, rs_job_t **job)
{
    rs_param_t params[] = {
        {.name = "threads",
         .min = 2,
         .max = RS_CONTEND_THREADS_MAX,
         .def = RS_CONTEND_THREADS_DEFAULT},
        {.name = "ms", .min = 1, .max = RS_WAIT_MS_MAX, .def = RS_CONTEND_MS_DEFAULT},
    };
    if (parse_params(req, params, 2, resp) == 0) {
        *job = job_new(run_contend, (int)params[0].value, (int)params[1].value);
    }
}

static void run_spawn(rs_job_t *job)
{
    int started = 0;
    int rc = rs_spawn(job->a, &started);
    if (rc != 0) {
        rs_response_set(&job->resp, 503, "started %d of %d threads: %s\n", started, job->a,
                        strerror(-rc));
    } else {
        rs_response_set(&job->resp, 200, "spawned and joined %d threads\n", started);
    }
}

static void handle_spawn(const rs_request_t *req, rs_response_t *resp, rs_job_t **job)
{
    rs_param_t params[] = {{.name = "n", .min = 1, .max = RS_SPAWN_MAX, .def = RS_SPAWN_DEFAULT}};
    if (parse_params(req, params, 1, resp) == 0) {
        *job = job_new(run_spawn, (int)params[0].value, 0);
    }
}

static void run_block(rs_job_t *job)
{
    int rc = rs_block_wait(job->a);
    if (rc != 0) {
        rs_response_set(&job->resp, 503, "wait failed: %s\n", strerror(-rc));
    } else {
        rs_response_set(&job->resp, 200, "blocked %d ms\n", job->a);
    }
}

static void handle_block(const rs_request_t *req, rs_response_t *resp, rs_job_t **job)
{
    rs_param_t params[] = {
        {.name = "ms", .min = 1, .max = RS_WAIT_MS_MAX, .def = RS_BLOCK_MS_DEFAULT}};
    if (parse_params(req, params, 1, resp) == 0) {
        *job = job_new(run_block, (int)params[0].value, 0);
    }
}

static const rs_endpoint_t rs_endpoints[] = {
    {"/", RS_GET_HEAD, "GET, HEAD", handle_index},
    {"/randomstring", RS_GET_HEAD, "GET, HEAD", handle_randomstring},
    {"/alloc", RS_GET_POST, "GET, POST", handle_alloc},
    {"/free", RS_GET_POST, "GET, POST", handle_free},
    {"/contend", RS_GET_POST, "GET, POST", handle_contend},
    {"/spawn", RS_GET_POST, "GET, POST", handle_spawn},
    {"/block", RS_GET_POST, "GET, POST", handle_block},
};

int rs_api_handle(const rs_request_t *req, rs_response_t *resp, rs_job_t **job)
{
    *job = NULL;
    for (size_t i = 0; i < sizeof(rs_endpoints) / sizeof(rs_endpoints[0]); i++) {
        const rs_endpoint_t *e = &rs_endpoints[i];
        if (strlen(e->path) != req->path_len || memcmp(e->path, req->path, req->path_len) != 0) {
            continue;
        }
        if (req->method < 0 || req->method >= 32 || (e->methods & M(req->method)) == 0) {
            resp->allow = e->allow;
            rs_response_set(resp, 405, "method %s not allowed on %s (allowed: %s)\n",
                            llhttp_method_name((llhttp_method_t)req->method), e->path, e->allow);
            return 0;
        }
        /* A job may have been half-made when its parameters were fine but calloc failed. */
        resp->status = 0;
        e->handle(req, resp, job);
        if (*job == NULL && resp->status == 0) {
            return -ENOMEM;
        }
        return 0;
    }
    rs_response_set(resp, 404, "no such endpoint: %.*s (GET / lists them)\n",
                    req->path_len > 256 ? 256 : (int)req->path_len, req->path);
    return 0;
}
