/* Unit tests for pa_pprof: the encoded profile unpacks, is self-consistent (ids non-zero and
 * unique, every reference resolvable, string_table[0] == ""), names what it should, gunzips,
 * and the real client (`go tool pprof`) reads it. A large profile, packed in pieces and
 * gzipped in steps (fork points between them), is byte for byte the message packed in one
 * call, and gunzips to it. */
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>
#include <zlib.h>

#include "pa_pprof.h"
#include "profile.pb-c.h"

typedef Perftools__Profiles__Profile profile_t;

__attribute__((noinline)) static int pprof_test_leaf_function(int x)
{
    volatile unsigned acc = (unsigned)x;
    for (unsigned i = 0; i < 5; i++)
        acc = acc * 17 + i;
    return (int)(acc & 0xffff);
}

__attribute__((noinline)) static int pprof_test_caller_function(int x)
{
    volatile unsigned acc = (unsigned)pprof_test_leaf_function(x);
    for (unsigned i = 0; i < 5; i++)
        acc = acc * 13 + i;
    return (int)(acc & 0xffff);
}

static const pa_pprof_vt_t cpu_types[] = {{"samples", "count"}, {"cpu", "nanoseconds"}};

static pa_pprof_desc_t cpu_desc(void)
{
    static const char *const comments[] = {"dropped 0 stacks", "encoder unit test"};
    pa_pprof_desc_t d = {
        .sample_types = cpu_types,
        .nsample_types = 2,
        .period_type = {"cpu", "nanoseconds"},
        .period = 10000000,
        .time_nanos = 1700000000000000000LL,
        .duration_nanos = 5000000000LL,
        .default_sample_type = NULL,
        .comments = comments,
        .ncomments = 2,
    };
    return d;
}

static const char *str_at(const profile_t *p, int64_t i)
{
    assert_true(i >= 0 && (size_t)i < p->n_string_table);
    return p->string_table[i];
}

static const Perftools__Profiles__Location *loc_by_id(const profile_t *p, uint64_t id)
{
    for (size_t i = 0; i < p->n_location; i++) {
        if (p->location[i]->id == id)
            return p->location[i];
    }
    fail_msg("location %llu not found", (unsigned long long)id);
    return NULL;
}

static const Perftools__Profiles__Function *func_by_id(const profile_t *p, uint64_t id)
{
    for (size_t i = 0; i < p->n_function; i++) {
        if (p->function[i]->id == id)
            return p->function[i];
    }
    fail_msg("function %llu not found", (unsigned long long)id);
    return NULL;
}

static const Perftools__Profiles__Mapping *map_by_id(const profile_t *p, uint64_t id)
{
    for (size_t i = 0; i < p->n_mapping; i++) {
        if (p->mapping[i]->id == id)
            return p->mapping[i];
    }
    fail_msg("mapping %llu not found", (unsigned long long)id);
    return NULL;
}

/* Structural checks pprof's own validation makes, plus ours. */
static void check_consistent(const profile_t *p)
{
    assert_true(p->n_string_table >= 1);
    assert_string_equal(p->string_table[0], "");
    for (size_t i = 0; i < p->n_sample_type; i++) {
        str_at(p, p->sample_type[i]->type);
        str_at(p, p->sample_type[i]->unit);
    }
    for (size_t i = 0; i < p->n_mapping; i++) {
        assert_int_equal(p->mapping[i]->id, i + 1);
        assert_true(p->mapping[i]->has_functions);
        assert_true(p->mapping[i]->memory_start < p->mapping[i]->memory_limit);
        str_at(p, p->mapping[i]->filename);
        str_at(p, p->mapping[i]->build_id);
    }
    for (size_t i = 0; i < p->n_function; i++) {
        assert_true(p->function[i]->id != 0);
        for (size_t j = 0; j < i; j++)
            assert_true(p->function[j]->id != p->function[i]->id);
        assert_true(str_at(p, p->function[i]->name)[0] != '\0');
        str_at(p, p->function[i]->system_name);
        str_at(p, p->function[i]->filename);
    }
    for (size_t i = 0; i < p->n_location; i++) {
        const Perftools__Profiles__Location *l = p->location[i];
        assert_true(l->id != 0);
        for (size_t j = 0; j < i; j++)
            assert_true(p->location[j]->id != l->id);
        if (l->mapping_id != 0)
            map_by_id(p, l->mapping_id);
        assert_int_equal(l->n_line, 1);
        func_by_id(p, l->line[0]->function_id);
    }
    for (size_t i = 0; i < p->n_sample; i++) {
        assert_int_equal(p->sample[i]->n_value, p->n_sample_type);
        for (size_t j = 0; j < p->sample[i]->n_location_id; j++)
            loc_by_id(p, p->sample[i]->location_id[j]);
    }
    for (size_t i = 0; i < p->n_comment; i++)
        str_at(p, p->comment[i]);
}

/* Leaf frame name of sample i. */
static const char *leaf_name(const profile_t *p, size_t i)
{
    const Perftools__Profiles__Location *l = loc_by_id(p, p->sample[i]->location_id[0]);
    return str_at(p, func_by_id(p, l->line[0]->function_id)->name);
}

static const char *frame_name(const profile_t *p, size_t i, size_t f)
{
    const Perftools__Profiles__Location *l = loc_by_id(p, p->sample[i]->location_id[f]);
    return str_at(p, func_by_id(p, l->line[0]->function_id)->name);
}

/* Function.filename of frame f of sample i. */
static const char *frame_file(const profile_t *p, size_t i, size_t f)
{
    const Perftools__Profiles__Location *l = loc_by_id(p, p->sample[i]->location_id[f]);
    return str_at(p, func_by_id(p, l->line[0]->function_id)->filename);
}

static uint64_t frame_address(const profile_t *p, size_t i, size_t f)
{
    return loc_by_id(p, p->sample[i]->location_id[f])->address;
}

/* A table of stacks every test encodes: our own functions, libc, markers, unknowns. */
static pa_stacktab_t *make_table(void)
{
    pa_stacktab_t *t;
    void *libc = dlopen("libc.so.6", RTLD_LAZY | RTLD_NOLOAD);
    uintptr_t leaf = (uintptr_t)&pprof_test_leaf_function;
    uintptr_t caller = (uintptr_t)&pprof_test_caller_function;
    uintptr_t getpid_fn = (uintptr_t)dlsym(libc, "getpid");
    int64_t v[2];

    assert_non_null(libc);
    assert_true(getpid_fn != 0);
    assert_int_equal(pa_stacktab_new(2, 64, &t), 0);
    /* 0: leaf in our function, called from our caller (a return address inside it) */
    uintptr_t s0[] = {leaf + 4, caller + 9};
    v[0] = 3, v[1] = 30000000;
    assert_int_equal(pa_stacktab_add(t, s0, 2, v), 0);
    v[0] = 2, v[1] = 20000000;
    assert_int_equal(pa_stacktab_add(t, s0, 2, v), 0);
    /* 1: in libc, called from our leaf */
    uintptr_t s1[] = {getpid_fn + 1, leaf + 5, caller + 9};
    v[0] = 1, v[1] = 10000000;
    assert_int_equal(pa_stacktab_add(t, s1, 3, v), 0);
    /* 2: markers */
    uintptr_t s2[] = {PA_PC_LOST};
    assert_int_equal(pa_stacktab_add(t, s2, 1, v), 0);
    uintptr_t s3[] = {PA_PC_IN_LOADER, caller + 9};
    assert_int_equal(pa_stacktab_add(t, s3, 2, v), 0);
    /* 4: an address in no mapping, under an unwinder failure */
    uintptr_t s4[] = {0x10000, PA_PC_UNWIND_FAIL};
    assert_int_equal(pa_stacktab_add(t, s4, 2, v), 0);
    dlclose(libc);
    return t;
}

static profile_t *encode_and_unpack(pa_stacktab_t *t, pa_symtab_t *sym, const pa_pprof_desc_t *d)
{
    uint8_t *buf = NULL;
    size_t len = 0;
    profile_t *p;

    assert_int_equal(pa_pprof_encode(d, t, sym, 0, &buf, &len), 0);
    assert_non_null(buf);
    assert_true(len > 0);
    p = perftools__profiles__profile__unpack(NULL, len, buf);
    assert_non_null(p);
    free(buf);
    check_consistent(p);
    return p;
}

static void test_pprof_profile_unpacks_and_names_every_frame(void **state)
{
    pa_stacktab_t *t = make_table();
    pa_symtab_t *sym;
    pa_pprof_desc_t d = cpu_desc();
    uintptr_t leaf = (uintptr_t)&pprof_test_leaf_function;
    uintptr_t caller = (uintptr_t)&pprof_test_caller_function;
    char exe[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
    profile_t *p;
    (void)state;

    assert_true(n > 0);
    exe[n] = '\0';
    assert_int_equal(pa_symtab_new(&sym), 0);
    p = encode_and_unpack(t, sym, &d);

    assert_int_equal(p->n_sample_type, 2);
    assert_string_equal(str_at(p, p->sample_type[0]->type), "samples");
    assert_string_equal(str_at(p, p->sample_type[1]->unit), "nanoseconds");
    assert_non_null(p->period_type);
    assert_string_equal(str_at(p, p->period_type->type), "cpu");
    assert_int_equal(p->period, 10000000);
    assert_int_equal(p->time_nanos, 1700000000000000000LL);
    assert_int_equal(p->duration_nanos, 5000000000LL);
    assert_int_equal(p->n_comment, 2);
    assert_string_equal(str_at(p, p->comment[1]), "encoder unit test");
    assert_int_equal(p->default_sample_type, 0);

    /* main executable first, then libc: only mappings samples touch */
    assert_int_equal(p->n_mapping, 2);
    assert_string_equal(str_at(p, p->mapping[0]->filename), exe);
    assert_true(strlen(str_at(p, p->mapping[0]->build_id)) >= 16);
    assert_non_null(strstr(str_at(p, p->mapping[1]->filename), "libc.so.6"));

    assert_int_equal(p->n_sample, 5);
    /* sums and insertion order */
    assert_int_equal(p->sample[0]->value[0], 5);
    assert_int_equal(p->sample[0]->value[1], 50000000);
    assert_string_equal(leaf_name(p, 0), "pprof_test_leaf_function");
    assert_string_equal(frame_name(p, 0, 1), "pprof_test_caller_function");
    /* Location.address: the PC for the leaf, return address - 1 for callers */
    assert_int_equal(frame_address(p, 0, 0), leaf + 4);
    assert_int_equal(frame_address(p, 0, 1), caller + 8);
    assert_int_equal(loc_by_id(p, p->sample[0]->location_id[0])->mapping_id, 1);
    /* a return address leaf + 5 is the same call site as the leaf PC leaf + 4 */
    assert_int_equal(p->sample[1]->location_id[1], p->sample[0]->location_id[0]);
    assert_int_equal(p->sample[1]->location_id[2], p->sample[0]->location_id[1]);
    assert_string_equal(leaf_name(p, 1), "getpid");
    assert_int_equal(loc_by_id(p, p->sample[1]->location_id[0])->mapping_id, 2);

    assert_string_equal(leaf_name(p, 2), "[lost samples]");
    assert_int_equal(loc_by_id(p, p->sample[2]->location_id[0])->mapping_id, 0);
    assert_string_equal(leaf_name(p, 3), "[in dynamic loader]");
    assert_int_equal(frame_address(p, 3, 1), caller + 8);
    assert_string_equal(leaf_name(p, 4), "0x10000");
    assert_int_equal(loc_by_id(p, p->sample[4]->location_id[0])->mapping_id, 0);
    assert_string_equal(frame_name(p, 4, 1), "[unknown]");

    /* Function.filename: the object in brackets (main executable, libc), none for markers
     * and addresses in no mapping; the name stays the bare symbol */
    {
        char want[PATH_MAX + 3];
        snprintf(want, sizeof(want), "[%s]", exe);
        assert_string_equal(frame_file(p, 0, 0), want);
        assert_string_equal(frame_file(p, 0, 1), want);
        snprintf(want, sizeof(want), "[%s]", str_at(p, p->mapping[1]->filename));
        assert_string_equal(frame_file(p, 1, 0), want);
        assert_non_null(strstr(frame_file(p, 1, 0), "libc.so.6]"));
        assert_string_equal(frame_file(p, 2, 0), "");
        assert_string_equal(frame_file(p, 3, 0), "");
        assert_string_equal(frame_file(p, 4, 0), "");
        assert_string_equal(frame_file(p, 4, 1), "");
    }

    /* functions are shared, not one per location */
    assert_int_equal(p->n_location, 7);
    assert_int_equal(p->n_function, 7);

    perftools__profiles__profile__free_unpacked(p, NULL);
    pa_symtab_free(sym);
    pa_stacktab_free(t);
}

static void test_pprof_names_unsymbolized_file_addresses_with_their_file(void **state)
{
    char dir[] = "/tmp/pa_pprof_test.XXXXXX";
    char path[PATH_MAX];
    long page = sysconf(_SC_PAGESIZE);
    pa_stacktab_t *t;
    pa_symtab_t *sym;
    pa_pprof_desc_t d = cpu_desc();
    profile_t *p;
    void *blob, *anon;
    int fd;
    int64_t v[] = {1, 1};
    char want[PATH_MAX + 3];
    (void)state;

    assert_non_null(mkdtemp(dir));
    snprintf(path, sizeof(path), "%s/blob.bin", dir);
    fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
    assert_true(fd >= 0);
    assert_int_equal(ftruncate(fd, page * 2), 0);
    blob = mmap(NULL, (size_t)page, PROT_READ | PROT_EXEC, MAP_PRIVATE, fd, page);
    close(fd);
    anon = mmap(NULL, (size_t)page, PROT_READ | PROT_EXEC, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    assert_true(anon != MAP_FAILED);
    if (blob == MAP_FAILED) {
        unlink(path);
        rmdir(dir);
        munmap(anon, (size_t)page);
        fprintf(stderr, "cannot map %s executable (noexec /tmp?): skipping\n", path);
        skip();
    }
    assert_int_equal(pa_symtab_new(&sym), 0);
    assert_int_equal(pa_stacktab_new(2, 4, &t), 0);
    uintptr_t s0[] = {(uintptr_t)blob + 0x10, (uintptr_t)anon + 0x21};
    assert_int_equal(pa_stacktab_add(t, s0, 2, v), 0);
    p = encode_and_unpack(t, sym, &d);
    snprintf(want, sizeof(want), "blob.bin+0x%lx", (unsigned long)page + 0x10);
    assert_string_equal(leaf_name(p, 0), want);
    snprintf(want, sizeof(want), "0x%lx", (unsigned long)((uintptr_t)anon + 0x20));
    assert_string_equal(frame_name(p, 0, 1), want);
    /* two mappings, in address order (neither is the main executable) */
    assert_int_equal(p->n_mapping, 2);
    const Perftools__Profiles__Mapping *mb =
        map_by_id(p, loc_by_id(p, p->sample[0]->location_id[0])->mapping_id);
    const Perftools__Profiles__Mapping *ma =
        map_by_id(p, loc_by_id(p, p->sample[0]->location_id[1])->mapping_id);
    assert_ptr_not_equal(ma, mb);
    assert_string_equal(str_at(p, mb->filename), path);
    snprintf(want, sizeof(want), "[%s]", path);
    assert_string_equal(frame_file(p, 0, 0), want);
    assert_string_equal(frame_file(p, 0, 1), ""); /* anonymous: no object */
    assert_int_equal(mb->file_offset, (uint64_t)page);
    assert_int_equal(mb->memory_start, (uintptr_t)blob);
    assert_string_equal(str_at(p, ma->filename), "");
    assert_true(p->mapping[0]->memory_start < p->mapping[1]->memory_start);

    perftools__profiles__profile__free_unpacked(p, NULL);
    pa_stacktab_free(t);
    pa_symtab_free(sym);
    munmap(blob, (size_t)page);
    munmap(anon, (size_t)page);
    unlink(path);
    rmdir(dir);
}

static void test_pprof_without_symbols_still_names_addresses(void **state)
{
    pa_stacktab_t *t = make_table();
    pa_pprof_desc_t d = cpu_desc();
    profile_t *p;
    char want[32];
    (void)state;

    d.default_sample_type = "cpu";
    p = encode_and_unpack(t, NULL, &d);
    assert_int_equal(p->n_mapping, 0);
    snprintf(want, sizeof(want), "0x%lx", (unsigned long)(uintptr_t)&pprof_test_leaf_function + 4);
    assert_string_equal(leaf_name(p, 0), want);
    assert_string_equal(str_at(p, p->default_sample_type), "cpu");
    perftools__profiles__profile__free_unpacked(p, NULL);
    pa_stacktab_free(t);
}

static void test_pprof_rejects_mismatched_sample_types(void **state)
{
    pa_stacktab_t *t = make_table();
    pa_pprof_desc_t d = cpu_desc();
    uint8_t *buf = (uint8_t *)1;
    size_t len = 1;
    (void)state;

    d.nsample_types = 1;
    assert_int_equal(pa_pprof_encode(&d, t, NULL, 1, &buf, &len), -EINVAL);
    assert_null(buf);
    assert_int_equal(len, 0);
    pa_stacktab_free(t);
}

static uint8_t *gunzip(const uint8_t *in, size_t inlen, size_t *outlen)
{
    z_stream z;
    size_t cap = inlen * 8 + 1024;
    uint8_t *out = malloc(cap);
    int rc;

    memset(&z, 0, sizeof(z));
    assert_int_equal(inflateInit2(&z, 16 + MAX_WBITS), Z_OK);
    z.next_in = (Bytef *)in;
    z.avail_in = (uInt)inlen;
    for (;;) {
        z.next_out = out + z.total_out;
        z.avail_out = (uInt)(cap - z.total_out);
        rc = inflate(&z, Z_NO_FLUSH);
        if (rc == Z_STREAM_END)
            break;
        assert_int_equal(rc, Z_OK);
        cap *= 2;
        out = realloc(out, cap);
    }
    *outlen = z.total_out;
    inflateEnd(&z);
    return out;
}

static void test_pprof_gzip_output_gunzips_to_the_plain_encoding(void **state)
{
    pa_stacktab_t *t = make_table();
    pa_symtab_t *sym;
    pa_pprof_desc_t d = cpu_desc();
    uint8_t *plain, *gz, *un;
    size_t plainlen, gzlen, unlen;
    profile_t *p;
    (void)state;

    assert_int_equal(pa_symtab_new(&sym), 0);
    assert_int_equal(pa_pprof_encode(&d, t, sym, 0, &plain, &plainlen), 0);
    assert_int_equal(pa_pprof_encode(&d, t, sym, 1, &gz, &gzlen), 0);
    assert_true(gzlen > 18);
    assert_int_equal(gz[0], 0x1f); /* gzip magic */
    assert_int_equal(gz[1], 0x8b);
    un = gunzip(gz, gzlen, &unlen);
    assert_int_equal(unlen, plainlen);
    assert_memory_equal(un, plain, plainlen);
    p = perftools__profiles__profile__unpack(NULL, unlen, un);
    assert_non_null(p);
    check_consistent(p);
    perftools__profiles__profile__free_unpacked(p, NULL);
    free(plain);
    free(gz);
    free(un);
    pa_symtab_free(sym);
    pa_stacktab_free(t);
}

static void test_pprof_empty_table_is_a_valid_profile(void **state)
{
    pa_stacktab_t *t;
    pa_pprof_desc_t d = cpu_desc();
    profile_t *p;
    (void)state;

    assert_int_equal(pa_stacktab_new(2, 4, &t), 0);
    p = encode_and_unpack(t, NULL, &d);
    assert_int_equal(p->n_sample, 0);
    assert_int_equal(p->n_location, 0);
    assert_int_equal(p->n_sample_type, 2);
    perftools__profiles__profile__free_unpacked(p, NULL);
    pa_stacktab_free(t);
}

/* A table of n distinct 20-frame stacks (every root distinct: n samples, about n locations,
 * functions and strings), values {1, 10}. */
static pa_stacktab_t *make_many(size_t n)
{
    uintptr_t caller = (uintptr_t)&pprof_test_caller_function;
    uintptr_t st[20];
    int64_t v[] = {1, 10};
    pa_stacktab_t *t;

    assert_int_equal(pa_stacktab_new(2, n, &t), 0);
    for (size_t i = 0; i < n; i++) {
        for (size_t f = 0; f < 20; f++)
            st[f] = caller + 1 + ((i >> f) & 1) + (f == 0 ? i % 7 : 0);
        st[19] = 0x20000 + i; /* unique root: every stack distinct */
        assert_int_equal(pa_stacktab_add(t, st, 20, v), 0);
    }
    return t;
}

static void test_pprof_many_stacks_stay_consistent(void **state)
{
    enum { N = 10000 };
    pa_stacktab_t *t = make_many(N);
    pa_symtab_t *sym;
    pa_pprof_desc_t d = cpu_desc();
    profile_t *p;
    int64_t total = 0;
    (void)state;

    assert_int_equal(pa_symtab_new(&sym), 0);
    p = encode_and_unpack(t, sym, &d);
    assert_int_equal(p->n_sample, N);
    for (size_t i = 0; i < p->n_sample; i++)
        total += p->sample[i]->value[0];
    assert_int_equal(total, N);
    assert_int_equal(p->n_location, N + 9);
    assert_int_equal(p->n_function, N + 1);
    perftools__profiles__profile__free_unpacked(p, NULL);
    pa_symtab_free(sym);
    pa_stacktab_free(t);
}

static void test_pprof_pieces_pack_to_the_one_call_encoding(void **state)
{
    enum { N = 10000 }; /* several pieces of samples, locations, functions and strings */
    static const char *const comments[] = {"first comment", "second comment"};
    pa_stacktab_t *t = make_many(N);
    pa_symtab_t *sym;
    pa_pprof_desc_t d = cpu_desc();
    uint8_t *raw, *whole, *gz, *un;
    size_t rawlen, wholelen, gzlen, unlen;
    profile_t *p;
    (void)state;

    d.comments = comments;
    d.ncomments = 2;
    d.default_sample_type = "cpu";
    d.time_nanos = 1700000000123456789LL;
    d.duration_nanos = 30000000000LL;
    assert_int_equal(pa_symtab_new(&sym), 0);
    assert_int_equal(pa_pprof_encode(&d, t, sym, 0, &raw, &rawlen), 0);
    p = perftools__profiles__profile__unpack(NULL, rawlen, raw);
    assert_non_null(p);
    assert_int_equal(p->n_sample, N);
    assert_true(p->n_location > N && p->n_function > N && p->n_string_table > N);
    assert_int_equal(p->n_comment, 2);
    assert_int_equal(p->time_nanos, d.time_nanos);
    assert_string_equal(str_at(p, p->default_sample_type), "cpu");
    check_consistent(p);
    /* what protobuf-c writes for the whole message in one call */
    wholelen = perftools__profiles__profile__get_packed_size(p);
    whole = malloc(wholelen);
    assert_non_null(whole);
    assert_int_equal(perftools__profiles__profile__pack(p, whole), wholelen);
    assert_int_equal(rawlen, wholelen);
    assert_memory_equal(raw, whole, rawlen);
    /* gzip in steps: several of them, and the bytes come back */
    assert_true(rawlen > 4 * 65536);
    assert_int_equal(pa_pprof_encode(&d, t, sym, 1, &gz, &gzlen), 0);
    un = gunzip(gz, gzlen, &unlen);
    assert_int_equal(unlen, rawlen);
    assert_memory_equal(un, raw, rawlen);
    perftools__profiles__profile__free_unpacked(p, NULL);
    free(un);
    free(gz);
    free(whole);
    free(raw);
    pa_symtab_free(sym);
    pa_stacktab_free(t);
}

/* Run cmd with HOME and PPROF_TMPDIR in dir; output into out. Returns the exit status. */
static int run_captured(const char *dir, const char *args, const char *file, char *out, size_t cap)
{
    char cmd[4096];
    FILE *fp;
    size_t n = 0, r;

    snprintf(cmd, sizeof(cmd),
             "cd '%s' && HOME='%s' PPROF_TMPDIR='%s' GOCACHE='%s/gocache' timeout 50 "
             "go tool pprof %s '%s' 2>&1",
             dir, dir, dir, dir, args, file);
    fp = popen(cmd, "r");
    assert_non_null(fp);
    while (n + 1 < cap && (r = fread(out + n, 1, cap - 1 - n, fp)) > 0)
        n += r;
    out[n] = '\0';
    return pclose(fp);
}

static void test_pprof_go_tool_pprof_reads_the_profile(void **state)
{
    char dir[] = "/tmp/pa_pprof_go.XXXXXX";
    char path[PATH_MAX], cmd[PATH_MAX + 64];
    static char out[1 << 20];
    pa_stacktab_t *t = make_table();
    pa_symtab_t *sym;
    pa_pprof_desc_t d = cpu_desc();
    uint8_t *gz;
    size_t gzlen;
    FILE *fp;
    int st;
    (void)state;

    if (system("command -v go >/dev/null 2>&1") != 0) {
        pa_stacktab_free(t);
        fprintf(stderr, "go not installed: skipping go tool pprof check\n");
        skip();
    }
    assert_non_null(mkdtemp(dir));
    snprintf(path, sizeof(path), "%s/cpu.pb.gz", dir);
    assert_int_equal(pa_symtab_new(&sym), 0);
    assert_int_equal(pa_pprof_encode(&d, t, sym, 1, &gz, &gzlen), 0);
    fp = fopen(path, "wb");
    assert_non_null(fp);
    assert_int_equal(fwrite(gz, 1, gzlen, fp), gzlen);
    assert_int_equal(fclose(fp), 0);

    st = run_captured(dir, "-raw", path, out, sizeof(out));
    if (st != 0)
        fprintf(stderr, "go tool pprof -raw said:\n%s\n", out);
    assert_int_equal(st, 0);
    assert_non_null(strstr(out, "pprof_test_leaf_function"));
    assert_non_null(strstr(out, "pprof_test_caller_function"));
    assert_non_null(strstr(out, "getpid"));
    assert_non_null(strstr(out, "[lost samples]"));
    assert_non_null(strstr(out, "samples/count cpu/nanoseconds"));
    assert_non_null(strstr(out, "libc.so.6"));

    st = run_captured(dir, "-top -sample_index=cpu", path, out, sizeof(out));
    if (st != 0)
        fprintf(stderr, "go tool pprof -top said:\n%s\n", out);
    assert_int_equal(st, 0);
    /* flat: 50ms in our leaf (sample 0), 10ms in each of the others */
    assert_non_null(strstr(out, "pprof_test_leaf_function"));
    assert_non_null(strstr(out, "50ms"));

    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    assert_int_equal(system(cmd), 0);
    free(gz);
    pa_symtab_free(sym);
    pa_stacktab_free(t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pprof_profile_unpacks_and_names_every_frame),
        cmocka_unit_test(test_pprof_names_unsymbolized_file_addresses_with_their_file),
        cmocka_unit_test(test_pprof_without_symbols_still_names_addresses),
        cmocka_unit_test(test_pprof_rejects_mismatched_sample_types),
        cmocka_unit_test(test_pprof_gzip_output_gunzips_to_the_plain_encoding),
        cmocka_unit_test(test_pprof_empty_table_is_a_valid_profile),
        cmocka_unit_test(test_pprof_many_stacks_stay_consistent),
        cmocka_unit_test(test_pprof_pieces_pack_to_the_one_call_encoding),
        cmocka_unit_test(test_pprof_go_tool_pprof_reads_the_profile),
    };
    (void)pprof_test_caller_function(1);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
