/* Unit tests for pa_symbolize (and the pa_elf reader under it): mappings of this very test
 * process, symbols of its own static functions, of libc, of libstdc++ (demangled). */
#include <dlfcn.h>
#include <errno.h>
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cmocka.h>

#include "pa_elf.h"
#include "pa_symbolize.h"

/* A function only .symtab knows (static), not exported, kept out of line. */
__attribute__((noinline)) static int known_static_function(int x)
{
    volatile unsigned acc = (unsigned)x;
    for (unsigned i = 0; i < 3; i++)
        acc = acc * 31 + i;
    return (int)(acc & 0xffff) + 1;
}

static int ends_with(const char *s, const char *suffix)
{
    size_t a = strlen(s), b = strlen(suffix);
    return a >= b && strcmp(s + a - b, suffix) == 0;
}

static void test_symbolize_main_executable_mapping_comes_first(void **state)
{
    pa_symtab_t *s;
    const pa_mapping_t *m;
    char exe[PATH_MAX];
    ssize_t len;
    (void)state;

    len = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
    assert_true(len > 0);
    exe[len] = '\0';
    assert_int_equal(pa_symtab_new(&s), 0);
    assert_true(pa_symtab_mapping_count(s) >= 2);
    m = pa_symtab_mapping_at(s, 0);
    assert_non_null(m);
    assert_true(m->is_main);
    assert_string_equal(m->path, exe);
    assert_true(strlen(m->build_id) >= 16);
    for (const char *p = m->build_id; *p; p++)
        assert_non_null(strchr("0123456789abcdef", *p));
    assert_true(m->start < m->limit);
    assert_null(pa_symtab_mapping_at(s, pa_symtab_mapping_count(s)));
    for (size_t i = 1; i < pa_symtab_mapping_count(s); i++) {
        const pa_mapping_t *o = pa_symtab_mapping_at(s, i);
        if (!o->is_main)
            assert_string_not_equal(o->path, exe);
        assert_int_equal(pa__symtab_mapping_index(s, o), i);
    }
    pa_symtab_free(s);
}

static void test_symbolize_finds_static_function_of_the_test_binary(void **state)
{
    pa_symtab_t *s;
    pa_sym_t sym;
    uintptr_t fn = (uintptr_t)&known_static_function;
    (void)state;

    assert_int_equal(known_static_function(1) != 0, 1);
    assert_int_equal(pa_symtab_new(&s), 0);
    /* an address inside the function, not only its entry */
    assert_int_equal(pa_symtab_lookup(s, fn + 4, &sym), 0);
    assert_non_null(sym.name);
    assert_string_equal(sym.name, "known_static_function");
    assert_int_equal(sym.start, fn);
    assert_non_null(sym.mapping);
    assert_true(sym.mapping->is_main);
    assert_int_equal(pa__symtab_mapping_index(s, sym.mapping), 0);
    /* the test's own main, too */
    assert_int_equal(pa_symtab_lookup(s, (uintptr_t)&ends_with + 1, &sym), 0);
    assert_string_equal(sym.name, "ends_with");
    pa_symtab_free(s);
}

static void test_symbolize_finds_libc_function_in_the_libc_mapping(void **state)
{
    pa_symtab_t *s;
    pa_sym_t sym;
    void *libc = dlopen("libc.so.6", RTLD_LAZY | RTLD_NOLOAD);
    uintptr_t fn;
    (void)state;

    assert_non_null(libc);
    /* libc's own getpid, not a PLT stub or a sanitizer's interceptor */
    fn = (uintptr_t)dlsym(libc, "getpid");
    assert_true(fn != 0);
    assert_int_equal(pa_symtab_new(&s), 0);
    assert_int_equal(pa_symtab_lookup(s, fn + 1, &sym), 0);
    assert_non_null(sym.mapping);
    assert_false(sym.mapping->is_main);
    assert_true(ends_with(sym.mapping->path, "/libc.so.6"));
    assert_true(strlen(sym.mapping->build_id) >= 16);
    assert_non_null(sym.name);
    assert_string_equal(sym.name, "getpid");
    assert_int_equal(sym.start, fn);
    dlclose(libc);
    pa_symtab_free(s);
}

/* A .symtab (libc's debug file, when installed) spells versioned symbols "name@@GLIBC_2.34";
 * the frame shows the function's name, the raw one stays the system name. */
static void test_symbolize_shows_versioned_symbols_without_their_version(void **state)
{
    pa_symtab_t *s;
    pa_sym_t sym;
    const char *raw = NULL;
    void *libc = dlopen("libc.so.6", RTLD_LAZY | RTLD_NOLOAD);
    uintptr_t fn;
    (void)state;

    assert_non_null(libc);
    fn = (uintptr_t)dlsym(libc, "__libc_start_main");
    assert_true(fn != 0);
    assert_int_equal(pa_symtab_new(&s), 0);
    assert_int_equal(pa__symtab_lookup_raw(s, fn + 1, &sym, &raw), 0);
    assert_non_null(sym.name);
    assert_null(strchr(sym.name, '@'));
    assert_non_null(strstr(sym.name, "__libc_start_main"));
    assert_non_null(raw);
    if (strchr(raw, '@') != NULL) /* only with a .symtab: the cut is the whole difference */
        assert_int_equal(strncmp(raw, sym.name, strlen(sym.name)), 0);
    dlclose(libc);
    pa_symtab_free(s);
}

static void test_symbolize_demangles_cxx_names_when_libstdcxx_is_loaded(void **state)
{
    pa_symtab_t *s;
    pa_sym_t sym;
    void *cxx = dlopen("libstdc++.so.6", RTLD_NOW | RTLD_GLOBAL);
    uintptr_t fn;
    (void)state;

    if (cxx == NULL) {
        fprintf(stderr, "libstdc++.so.6 not loadable (%s): skipping\n", dlerror());
        skip();
    }
    fn = (uintptr_t)dlsym(cxx, "_ZNKSt9exception4whatEv");
    assert_true(fn != 0);
    assert_int_equal(pa_symtab_new(&s), 0);
    assert_int_equal(pa_symtab_lookup(s, fn, &sym), 0);
    assert_non_null(sym.name);
    assert_string_equal(sym.name, "std::exception::what() const");
    {
        const char *raw = NULL;
        assert_int_equal(pa__symtab_lookup_raw(s, fn + 1, &sym, &raw), 0);
        assert_non_null(raw);
        assert_string_equal(raw, "_ZNKSt9exception4whatEv");
    }
    assert_true(ends_with(sym.mapping->path, "libstdc++.so.6.0.30") ||
                strstr(sym.mapping->path, "libstdc++") != NULL);
    pa_symtab_free(s);
    /* libstdc++ stays loaded: unloading it is not always possible and not the point */
}

static void test_symbolize_unknown_and_anonymous_addresses(void **state)
{
    pa_symtab_t *s;
    pa_sym_t sym;
    long page = sysconf(_SC_PAGESIZE);
    void *jit = mmap(NULL, (size_t)page, PROT_READ | PROT_EXEC, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    (void)state;

    assert_true(jit != MAP_FAILED);
    assert_int_equal(pa_symtab_new(&s), 0);
    assert_int_equal(pa_symtab_lookup(s, 0x10, &sym), -ENOENT);
    assert_null(sym.name);
    assert_null(sym.mapping);
    assert_int_equal(pa_symtab_lookup(s, (uintptr_t)jit + 16, &sym), 0);
    assert_non_null(sym.mapping);
    assert_string_equal(sym.mapping->path, "");
    assert_null(sym.name);
    pa_symtab_free(s);
    munmap(jit, (size_t)page);
}

static int copy_file(const char *from, const char *to)
{
    char cmd[2 * PATH_MAX + 16];
    snprintf(cmd, sizeof(cmd), "cp '%s' '%s'", from, to);
    return system(cmd);
}

/* A library upgraded on disk while mapped: the mapped inode is what must be described. */
static void test_symbolize_ignores_a_library_replaced_on_disk(void **state)
{
    char dir[] = "/tmp/pa_symbolize_test.XXXXXX";
    char path[PATH_MAX], cmd[PATH_MAX + 16];
    char other_id[256] = "", own_id[256] = "";
    pa_symtab_t *s;
    pa_sym_t sym;
    pa_elf_t e;
    void *h;
    uintptr_t fn;
    (void)state;

    assert_non_null(mkdtemp(dir));
    snprintf(path, sizeof(path), "%s/libcopy.so", dir);
    if (copy_file("/usr/lib/x86_64-linux-gnu/libz.so.1", path) != 0) {
        fprintf(stderr, "no libz.so.1 to copy: skipping\n");
        skip();
    }
    assert_int_equal(pa_elf_open(path, &e), 0);
    assert_int_equal(pa_elf_build_id(&e, own_id, sizeof(own_id)), 0);
    pa_elf_close(&e);
    h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    assert_non_null(h);
    fn = (uintptr_t)dlsym(h, "zlibVersion");
    assert_true(fn != 0);
    /* replace it by another ELF file under the same name (a new inode) */
    assert_int_equal(unlink(path), 0);
    assert_int_equal(copy_file("/usr/lib/x86_64-linux-gnu/libm.so.6", path), 0);
    assert_int_equal(pa_elf_open(path, &e), 0);
    assert_int_equal(pa_elf_build_id(&e, other_id, sizeof(other_id)), 0);
    pa_elf_close(&e);

    assert_int_equal(pa_symtab_new(&s), 0);
    assert_int_equal(pa_symtab_lookup(s, fn + 1, &sym), 0);
    assert_non_null(sym.mapping);
    assert_string_equal(sym.mapping->path, path);
    assert_string_not_equal(sym.mapping->build_id, other_id);
    /* read through /proc/self/map_files when allowed, else no build id (dladdr names) */
    if (sym.mapping->build_id[0] != '\0')
        assert_string_equal(sym.mapping->build_id, own_id);
    else
        fprintf(stderr, "map_files not readable here: replaced library has no build id\n");
    assert_non_null(sym.name);
    assert_string_equal(sym.name, "zlibVersion");
    assert_int_equal(sym.start, fn);
    pa_symtab_free(s);
    dlclose(h);
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    assert_int_equal(system(cmd), 0);
}

/* Where main returns to: inside libc's static __libc_start_call_main (glibc >= 2.34). */
static uintptr_t main_return_address;

/* libc has only .dynsym; with its debug file installed (libc6-dbg), local functions get
 * names from the debug file's .symtab. */
static void test_symbolize_uses_separate_debug_file_by_build_id(void **state)
{
    pa_symtab_t *s;
    pa_sym_t sym;
    char dbg[512];
    (void)state;

    assert_true(main_return_address != 0);
    assert_int_equal(pa_symtab_new(&s), 0);
    assert_int_equal(pa_symtab_lookup(s, main_return_address - 1, &sym), 0);
    assert_non_null(sym.mapping);
    assert_true(ends_with(sym.mapping->path, "/libc.so.6"));
    snprintf(dbg, sizeof(dbg), "/usr/lib/debug/.build-id/%.2s/%s.debug", sym.mapping->build_id,
             sym.mapping->build_id + 2);
    if (access(dbg, R_OK) != 0) {
        pa_symtab_free(s);
        fprintf(stderr, "no %s (libc6-dbg): skipping\n", dbg);
        skip();
    }
    assert_non_null(sym.name);
    assert_string_equal(sym.name, "__libc_start_call_main");
    pa_symtab_free(s);
}

static void test_elf_sym_find_is_size_aware(void **state)
{
    static const pa_elf_sym_t syms[] = {
        {0x1000, 0x10, "a"},  /* [0x1000, 0x1010) */
        {0x1100, 0, "b"},     /* unsized: nearest preceding */
        {0x1200, 0x100, "c"}, /* [0x1200, 0x1300) */
        {0x1210, 0x8, "d"},   /* nested in c */
    };
    (void)state;
    assert_int_equal(pa_elf_sym_find(syms, 4, 0x0fff), -1);
    assert_int_equal(pa_elf_sym_find(syms, 4, 0x1000), 0);
    assert_int_equal(pa_elf_sym_find(syms, 4, 0x100f), 0);
    assert_int_equal(pa_elf_sym_find(syms, 4, 0x1010), -1); /* gap after a sized symbol */
    assert_int_equal(pa_elf_sym_find(syms, 4, 0x11ff), 1);
    assert_int_equal(pa_elf_sym_find(syms, 4, 0x1204), 2);
    assert_int_equal(pa_elf_sym_find(syms, 4, 0x1214), 3);
    assert_int_equal(pa_elf_sym_find(syms, 4, 0x1250), 2); /* past d, still inside c */
    assert_int_equal(pa_elf_sym_find(syms, 4, 0x1300), -1);
    assert_int_equal(pa_elf_sym_find(syms, 0, 0x1000), -1);
}

static void test_elf_refuses_non_elf_images(void **state)
{
    static const char junk[128] = "not an ELF file";
    pa_elf_t e;
    (void)state;
    assert_int_equal(pa_elf_from_memory(junk, sizeof(junk), &e), -ENOEXEC);
    assert_int_equal(pa_elf_open("/proc/self/status", &e), -ENOEXEC);
    assert_int_equal(pa_elf_open("/nonexistent/file", &e), -ENOENT);
}

int main(void)
{
    main_return_address = (uintptr_t)__builtin_return_address(0);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_symbolize_main_executable_mapping_comes_first),
        cmocka_unit_test(test_symbolize_finds_static_function_of_the_test_binary),
        cmocka_unit_test(test_symbolize_finds_libc_function_in_the_libc_mapping),
        cmocka_unit_test(test_symbolize_shows_versioned_symbols_without_their_version),
        cmocka_unit_test(test_symbolize_demangles_cxx_names_when_libstdcxx_is_loaded),
        cmocka_unit_test(test_symbolize_unknown_and_anonymous_addresses),
        cmocka_unit_test(test_symbolize_ignores_a_library_replaced_on_disk),
        cmocka_unit_test(test_symbolize_uses_separate_debug_file_by_build_id),
        cmocka_unit_test(test_elf_sym_find_is_size_aware),
        cmocka_unit_test(test_elf_refuses_non_elf_images),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
