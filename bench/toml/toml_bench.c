/* toml_bench: parse one TOML file many times and report wall-clock parse times (median, min,
 * max, in ms) and the thread's CPU time, as bench/toml/run.sh drives it. Not a test: it asserts
 * nothing about speed. usage: toml_bench FILE [RUNS] */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "pg_toml.h"

static double now_ms(clockid_t clk)
{
    struct timespec ts;

    clock_gettime(clk, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;

    return (x > y) - (x < y);
}

static size_t count(const pg_toml_value_t *v)
{
    size_t n = 1;

    if (pg_toml_type(v) == PG_TOML_TABLE)
        for (size_t i = 0; i < pg_toml_table_len(v); i++)
            n += count(pg_toml_table_at(v, i, NULL, NULL));
    else if (pg_toml_type(v) == PG_TOML_ARRAY)
        for (size_t i = 0; i < pg_toml_array_len(v); i++)
            n += count(pg_toml_array_at(v, i));
    return n;
}

int main(int argc, char **argv)
{
    int runs = argc > 2 ? atoi(argv[2]) : 101;
    FILE *f;
    char *buf;
    long len;
    double *t, *cpu;
    pg_toml_value_t *root;
    pg_error_t err;
    size_t nodes = 0;

    if (argc < 2 || runs < 1) {
        fprintf(stderr, "usage: toml_bench FILE [RUNS]\n");
        return 2;
    }
    f = fopen(argv[1], "rb");
    if (f == NULL || fseek(f, 0, SEEK_END) != 0 || (len = ftell(f)) < 0 ||
        fseek(f, 0, SEEK_SET) != 0) {
        fprintf(stderr, "%s: %s\n", argv[1], strerror(errno));
        return 2;
    }
    buf = malloc((size_t)len + 1);
    t = calloc((size_t)runs, sizeof *t);
    cpu = calloc((size_t)runs, sizeof *cpu);
    if (buf == NULL || t == NULL || cpu == NULL || fread(buf, 1, (size_t)len, f) != (size_t)len) {
        fprintf(stderr, "%s: cannot read\n", argv[1]);
        return 2;
    }
    fclose(f);
    /* One untimed warm-up run (page faults, caches), which also checks the file parses. */
    if (pg_toml_parse(buf, (size_t)len, argv[1], &root, &err) != 0) {
        pg_error_print(&err, stderr);
        return 1;
    }
    nodes = count(root);
    pg_toml_free(root);
    for (int i = 0; i < runs; i++) {
        double t0 = now_ms(CLOCK_MONOTONIC), c0 = now_ms(CLOCK_THREAD_CPUTIME_ID);

        if (pg_toml_parse(buf, (size_t)len, argv[1], &root, &err) != 0) {
            pg_error_print(&err, stderr);
            return 1;
        }
        pg_toml_free(root);
        t[i] = now_ms(CLOCK_MONOTONIC) - t0;
        cpu[i] = now_ms(CLOCK_THREAD_CPUTIME_ID) - c0;
    }
    qsort(t, (size_t)runs, sizeof *t, cmp_double);
    qsort(cpu, (size_t)runs, sizeof *cpu, cmp_double);
    printf("file: %s (%ld bytes, %zu values)\n", argv[1], len, nodes);
    printf("parse+free, %d runs: median %.3f ms, min %.3f ms, max %.3f ms, %.0f MiB/s at median\n",
           runs, t[runs / 2], t[0], t[runs - 1], (double)len / (1 << 20) / (t[runs / 2] / 1e3));
    /* CPU time of this thread (user + system, page faults included): what the parse costs
     * when the machine is shared and wall clock also counts waiting for a core. */
    printf("cpu time of the same runs: median %.3f ms, min %.3f ms\n", cpu[runs / 2], cpu[0]);
    free(cpu);
    free(t);
    free(buf);
    return 0;
}
