/*
 * alloc.tcache — thread caches and central lists: a miss refills one batch,
 * an overflow flushes one batch, frees from another thread are correct and
 * land in the freeing thread's cache, thread exit drains the cache, threads
 * get central shards of their own, objects go back to their own shard, the
 * per-class statistics add up, and a thread's cache stays within its budget.
 */
#include <pthread.h>
#include <sched.h>
#include <string.h>

#include "test_helpers.h"

#define CLS_SIZE 48

/* A fresh thread's misses fetch 1, 2, 3, ... objects; once warm (a batch),
 * a miss may take more at once, up to the cap (a span's whole free list). */
static void *slow_start_thread(void *arg)
{
    uint32_t c = ap_size_class(CLS_SIZE), batch = ap_class_batch[c];
    ap_tlist_t *l = &ap_tls_tcache.list[c];
    static __thread void *keep[4000];
    uintptr_t bad = 0;
    uint32_t misses = 0;
    for (int i = 0; i < 4000; i++) {
        bool miss = ap_tlist_count(&ap_tls_tcache, c) == 0;
        uint32_t max_before = l->max;
        keep[i] = ap_malloc(CLS_SIZE);
        if (!miss)
            continue;
        uint32_t count = ap_tlist_count(&ap_tls_tcache, c);
        if (max_before < batch) {
            uint32_t want = max_before == 0 ? 1 : max_before;
            if (count + 1 != want)
                bad = 1;
        } else if (count + 1 > ap_class_cap[c] || count + 1 > l->max) {
            bad = 1;
        }
        misses++;
    }
    if (l->max > ap_class_cap[c] || l->max < batch || misses < batch)
        bad = 1;
    for (int i = 0; i < 4000; i++)
        ap_free(keep[i]);
    return (void *)bad;
}

static void refill_slow_start(void **state)
{
    pthread_t t;
    void *ret;
    pthread_create(&t, NULL, slow_start_thread, NULL);
    pthread_join(t, &ret);
    assert_null(ret);
}

static void overflow_flushes_one_batch(void **state)
{
    uint32_t c = ap_size_class(CLS_SIZE);
    ap_tlist_t *l = &ap_tls_tcache.list[c];
    size_t n = ap_class_cap[c] * 3;
    void **v = calloc(n, sizeof *v);
    for (size_t i = 0; i < n; i++)
        v[i] = ap_malloc(CLS_SIZE);
    for (size_t i = 0; i < n; i++) {
        uint32_t before = ap_tlist_count(&ap_tls_tcache, c);
        ap_free(v[i]);
        uint32_t after = ap_tlist_count(&ap_tls_tcache, c);
        if (before >= l->max)
            assert_int_equal(after, before - ap_class_batch[c] + 1);
        else
            assert_int_equal(after, before + 1);
        assert_true(after <= l->max);
    }
    free(v);
}

struct handoff {
    void **objs;
    size_t n;
};

static void *free_all(void *arg)
{
    struct handoff *h = arg;
    for (size_t i = 0; i < h->n; i++) {
        unsigned char *p = h->objs[i];
        for (size_t k = 0; k < CLS_SIZE; k++)
            if (p[k] != (unsigned char)(i + k))
                return (void *)1;
        ap_free(p);
    }
    return NULL;
}

static uint64_t inuse_objs(uint32_t c)
{
    ap_stats_t *st = malloc(sizeof *st);
    ap_stats_get(st);
    uint64_t v = st->cls[c].inuse_objs;
    free(st);
    return v;
}

static void cross_thread_free(void **state)
{
    uint32_t c = ap_size_class(CLS_SIZE);
    uint64_t base = inuse_objs(c);
    struct handoff h = {calloc(20000, sizeof(void *)), 20000};
    for (size_t i = 0; i < h.n; i++) {
        unsigned char *p = ap_malloc(CLS_SIZE);
        assert_non_null(p);
        for (size_t k = 0; k < CLS_SIZE; k++)
            p[k] = (unsigned char)(i + k);
        h.objs[i] = p;
    }
    assert_true(inuse_objs(c) >= base + h.n);
    pthread_t t;
    void *ret;
    pthread_create(&t, NULL, free_all, &h);
    pthread_join(t, &ret);
    assert_null(ret);
    /* the freeing thread has exited: its cache was drained, nothing leaked */
    assert_int_equal(inuse_objs(c), base);
    /* and the memory is reusable from here */
    for (size_t i = 0; i < h.n; i++)
        h.objs[i] = ap_malloc(CLS_SIZE);
    for (size_t i = 0; i < h.n; i++)
        ap_free(h.objs[i]);
    free(h.objs);
}

static void *churn_then_exit(void *arg)
{
    void *v[500];
    for (int r = 0; r < 10; r++) {
        for (int i = 0; i < 500; i++)
            v[i] = ap_malloc((size_t)(16 + (i * 37) % 4000));
        for (int i = 0; i < 500; i++)
            ap_free(v[i]);
    }
    ap_thread_exit();
    /* after exit the thread still works, bypassing its cache */
    void *p = ap_malloc(100);
    ap_free(p);
    uint32_t c = ap_size_class(100);
    return (void *)(uintptr_t)(ap_tlist_count(&ap_tls_tcache, c) != 0 || p == NULL ||
                               ap_tls_tcache.slots != NULL);
}

static void thread_exit_drains_cache(void **state)
{
    ap_stats_t *before = malloc(sizeof *before), *after = malloc(sizeof *after);
    ap_stats_get(before);
    pthread_t t;
    void *ret;
    pthread_create(&t, NULL, churn_then_exit, NULL);
    pthread_join(t, &ret);
    assert_null(ret);
    ap_stats_get(after);
    for (uint32_t c = 1; c < AP_NUM_CLASSES; c++) {
        assert_int_equal(after->cls[c].cached_objs, before->cls[c].cached_objs);
        assert_int_equal(after->cls[c].inuse_objs, before->cls[c].inuse_objs);
    }
    free(before);
    free(after);
}

/* A thread whose slot block cannot be mapped works without a cache. */
static void *fail_map(size_t n)
{
    (void)n;
    return NULL;
}

static void *uncached_thread(void *arg)
{
    void *v[300];
    for (int i = 0; i < 300; i++) {
        v[i] = ap_malloc(CLS_SIZE);
        if (!v[i])
            return (void *)1;
        memset(v[i], i, CLS_SIZE);
    }
    for (int i = 0; i < 300; i++) {
        if (((unsigned char *)v[i])[CLS_SIZE - 1] != (unsigned char)i)
            return (void *)2;
        ap_free(v[i]);
    }
    uint32_t c = ap_size_class(CLS_SIZE);
    if (ap_tls_tcache.state != AP_TC_DEAD || ap_tls_tcache.slots != NULL ||
        ap_tlist_count(&ap_tls_tcache, c) != 0)
        return (void *)3;
    return NULL;
}

static void no_slot_block_no_cache(void **state)
{
    uint32_t c = ap_size_class(CLS_SIZE);
    uint64_t base = inuse_objs(c);
    ap_tcache_trim(); /* no block of an exited thread to reuse either */
    ap_os_ops_t failing = ap_os_default_ops;
    failing.map = fail_map;
    ap_os_ops = &failing;
    pthread_t t;
    void *ret;
    pthread_create(&t, NULL, uncached_thread, NULL);
    pthread_join(t, &ret);
    ap_os_ops = &ap_os_default_ops;
    assert_null(ret);
    assert_int_equal(inuse_objs(c), base); /* every object went back */
}

/* A new thread takes the slot block an exited thread left: no mapping (the
 * OS refuses one here), and a cache that works. */
static void *cached_thread(void *arg)
{
    void *p = ap_malloc(CLS_SIZE);
    ap_free(p);
    *(void ***)arg = ap_tls_tcache.slots;
    return ap_tls_tcache.state == AP_TC_LIVE &&
                   ap_tlist_count(&ap_tls_tcache, ap_size_class(CLS_SIZE)) == 1
               ? NULL
               : (void *)1;
}

static void exited_threads_blocks_are_reused(void **state)
{
    pthread_t t;
    void *ret, **first = NULL, **second = NULL;
    pthread_create(&t, NULL, cached_thread, &first);
    pthread_join(t, &ret);
    assert_null(ret);
    ap_os_ops_t failing = ap_os_default_ops;
    failing.map = fail_map;
    ap_os_ops = &failing;
    pthread_create(&t, NULL, cached_thread, &second);
    pthread_join(t, &ret);
    ap_os_ops = &ap_os_default_ops;
    assert_null(ret);
    assert_ptr_equal(first, second);
    assert_true(ap_tcache_trim() > 0); /* malloc_trim gives it back */
    assert_int_equal(ap_tcache_trim(), 0);
}

/* ---- shards ---- */

struct shard_probe {
    pthread_barrier_t *both_live; /* NULL: do not wait */
    uint32_t shard;
    uint32_t cls;
    void **objs; /* filled with n objects of cls, handed to the caller */
    size_t n;
};

static void *probe_thread(void *arg)
{
    struct shard_probe *pr = arg;
    void *p = ap_malloc(16); /* sets the cache up */
    pr->shard = ap_tls_tcache.shard;
    ap_free(p);
    for (size_t i = 0; i < pr->n; i++)
        pr->objs[i] = ap_malloc(ap_class_size[pr->cls]);
    if (pr->both_live)
        pthread_barrier_wait(pr->both_live);
    return NULL;
}

/* One shard per CPU the process may run on, counted by our own system call:
 * the same count as libc's, also with a narrower affinity mask. */
static void shards_follow_the_affinity_mask(void **state)
{
    cpu_set_t all, one;
    ap_free(ap_malloc(16)); /* the allocator is set up */
    assert_int_equal(sched_getaffinity(0, sizeof all, &all), 0);
    assert_int_equal(ap_os_ncpus(), (uint32_t)CPU_COUNT(&all));
    uint32_t want = CPU_COUNT(&all) > AP_MAX_SHARDS ? AP_MAX_SHARDS : (uint32_t)CPU_COUNT(&all);
    assert_int_equal(ap_nshards, want);
    int cpu = 0;
    while (!CPU_ISSET(cpu, &all))
        cpu++;
    CPU_ZERO(&one);
    CPU_SET(cpu, &one);
    assert_int_equal(sched_setaffinity(0, sizeof one, &one), 0);
    uint32_t n = ap_os_ncpus();
    assert_int_equal(sched_setaffinity(0, sizeof all, &all), 0);
    assert_int_equal(n, 1);
}

/* Threads alive at once get different shards while there are shards with
 * fewer threads; a shard whose threads have exited is reused. */
static void threads_get_shards_of_their_own(void **state)
{
    uint32_t saved = ap_nshards;
    ap_free(ap_malloc(16)); /* the main thread has its shard */
    ap_nshards = 3;
    pthread_barrier_t b;
    pthread_barrier_init(&b, NULL, 2);
    struct shard_probe a = {.both_live = &b}, c = {.both_live = &b}, d = {0};
    pthread_t ta, tc, td;
    pthread_create(&ta, NULL, probe_thread, &a);
    pthread_create(&tc, NULL, probe_thread, &c);
    pthread_join(ta, NULL);
    pthread_join(tc, NULL);
    pthread_create(&td, NULL, probe_thread, &d);
    pthread_join(td, NULL);
    pthread_barrier_destroy(&b);
    ap_nshards = saved;
    uint32_t main_shard = ap_tls_tcache.shard;
    assert_true(a.shard < 3 && c.shard < 3);
    assert_true(a.shard != c.shard && a.shard != main_shard && c.shard != main_shard);
    assert_true(d.shard != main_shard); /* a shard without live threads again */
    assert_true(atomic_load(&ap_shard_ready[a.shard]) && atomic_load(&ap_shard_ready[c.shard]));
}

static bool in_transfer_cache(uint32_t shard, uint32_t cls, void *p)
{
    ap_central_t *ce = &ap_central[shard][cls];
    for (uint32_t i = 0; i < ce->tc_count; i++)
        if (ce->tc_slots[i] == p)
            return true;
    return false;
}

static bool on_span_freelist(void *p)
{
    ap_span_t *s = ap_pagemap_span(p);
    for (void *q = s->freelist; q; q = *(void **)q)
        if (q == p)
            return true;
    return false;
}

/* Objects another shard's thread allocated, freed here, go back to that
 * shard: a batch through its transfer cache, and objects that reached this
 * shard's transfer cache anyway into their own spans when it is drained. */
static void remote_frees_go_home(void **state)
{
    uint32_t saved = ap_nshards;
    ap_free(ap_malloc(16));
    ap_nshards = 2;
    uint32_t cls = ap_size_class(CLS_SIZE), here = ap_tls_tcache.shard;
    enum { N = 8 };
    void *objs[N];
    struct shard_probe pr = {.cls = cls, .objs = objs, .n = N};
    pthread_t t;
    pthread_create(&t, NULL, probe_thread, &pr);
    pthread_join(t, NULL);
    ap_nshards = saved;
    assert_int_not_equal(pr.shard, here);
    for (int i = 0; i < N; i++)
        assert_int_equal(ap_pagemap_span(objs[i])->shard, pr.shard);

    /* a batch of theirs goes to their transfer cache, none to ours (both
     * emptied first, so that neither is full) */
    ap_central_drain(here, cls);
    ap_central_drain(pr.shard, cls);
    ap_central_insert(cls, objs, 4);
    for (int i = 0; i < 4; i++) {
        assert_true(in_transfer_cache(pr.shard, cls, objs[i]));
        assert_false(in_transfer_cache(here, cls, objs[i]));
    }
    /* a batch led by one of ours lands here, theirs with it; draining our
     * transfer cache puts theirs on their own spans' free lists */
    void *mixed[N - 4 + 1];
    mixed[0] = ap_malloc(CLS_SIZE);
    assert_int_equal(ap_pagemap_span(mixed[0])->shard, here);
    for (int i = 4; i < N; i++)
        mixed[i - 3] = objs[i];
    ap_central_insert(cls, mixed, N - 4 + 1);
    for (int i = 4; i < N; i++)
        assert_true(in_transfer_cache(here, cls, objs[i]));
    ap_central_drain(here, cls);
    for (int i = 4; i < N; i++) {
        assert_false(in_transfer_cache(here, cls, objs[i]));
        assert_true(on_span_freelist(objs[i]));
    }
    /* each shard's list holds only its own spans, and its count of free
     * objects in spans is theirs (objects went back under their owner) */
    for (uint32_t sh = 0; sh < AP_MAX_SHARDS; sh++) {
        if (!atomic_load(&ap_shard_ready[sh]))
            continue;
        ap_span_t *h = &ap_central[sh][cls].nonempty;
        size_t free_objs = 0;
        for (ap_span_t *sp = h->next; sp != h; sp = sp->next) {
            assert_int_equal(sp->shard, sh);
            free_objs += sp->nfree + (size_t)(sp->limit - sp->bump) / ap_class_size[cls];
        }
        assert_int_equal(free_objs, ap_central[sh][cls].span_objs_free);
    }
    ap_trim(); /* everything back in spans; the statistics must still add up */
    ap_stats_t *st = malloc(sizeof *st);
    ap_stats_get(st);
    ap_class_stats_t *cs = &st->cls[cls];
    assert_int_equal(cs->inuse_objs + cs->cached_objs + cs->central_objs,
                     cs->spans * ap_class_objs[cls]);
    free(st);
}

static void class_stats_add_up(void **state)
{
    ap_stats_t *st = malloc(sizeof *st);
    ap_stats_get(st);
    for (uint32_t c = 1; c < AP_NUM_CLASSES; c++) {
        ap_class_stats_t *cs = &st->cls[c];
        uint64_t objs = cs->inuse_objs + cs->cached_objs + cs->central_objs;
        assert_int_equal(objs, cs->spans * ap_class_objs[c]);
    }
    free(st);
}

/* The calling thread allocates and frees a class's cap of objects, `rounds`
 * times for each class in turn, so every list grows as far as it may. */
static void fill_class_lists(int rounds)
{
    static __thread void *objs[1024];
    for (uint32_t c = 1; c < AP_NUM_CLASSES; c++)
        for (int round = 0; round < rounds; round++) {
            for (uint32_t i = 0; i < ap_class_cap[c]; i++)
                objs[i] = ap_malloc(ap_class_size[c]);
            for (uint32_t i = 0; i < ap_class_cap[c]; i++)
                ap_free(objs[i]);
        }
}

/* A thread that has filled the list of every class holds at most the budget
 * beyond one object per class; the class it used last kept its capacity
 * (taken from the others), and no list holds more than its max. */
static void *fill_every_class(void *arg)
{
    uintptr_t bad = 0;
    fill_class_lists(40);
    ap_tcache_t *tc = &ap_tls_tcache;
    uint64_t held = 0, floor = 0, caps = 0;
    for (uint32_t c = 1; c < AP_NUM_CLASSES; c++) {
        uint32_t count = ap_tlist_count(tc, c);
        if (count > tc->list[c].max || tc->list[c].max < 1)
            bad |= 1;
        held += (uint64_t)count * ap_class_size[c];
        floor += ap_class_size[c];
        caps += (uint64_t)ap_class_cap[c] * ap_class_size[c];
    }
    if (held > AP_TCACHE_BUDGET + floor)
        bad |= 2;
    if (AP_TCACHE_BUDGET + floor >= caps) /* else the caps alone bound it */
        bad |= 8;
    uint32_t last = AP_NUM_CLASSES - 1;
    if (tc->list[last].max != ap_class_cap[last])
        bad |= 4;
    return (void *)bad;
}

static void thread_cache_stays_within_budget(void **state)
{
    (void)state;
    pthread_t t;
    void *bad;
    assert_int_equal(pthread_create(&t, NULL, fill_every_class, NULL), 0);
    assert_int_equal(pthread_join(t, &bad), 0);
    assert_int_equal((uintptr_t)bad, 0);
}

/* With 64 threads live, each one's lists grow only to its share of the
 * 32 MiB that all caches may hold together (about 500 KiB, not 1 MiB). */
#define POOL 64
static pthread_barrier_t pool_ready, pool_done, pool_exit;

static void *pool_thread(void *arg)
{
    ap_free(ap_malloc(16)); /* its cache is live */
    pthread_barrier_wait(&pool_ready);
    fill_class_lists(3);
    uint64_t held = 0, floor = 0;
    for (uint32_t c = 1; c < AP_NUM_CLASSES; c++) {
        held += (uint64_t)ap_tlist_count(&ap_tls_tcache, c) * ap_class_size[c];
        floor += ap_class_size[c];
    }
    uintptr_t bad = held > ap_tcache_budget() + floor;
    pthread_barrier_wait(&pool_done);
    pthread_barrier_wait(&pool_exit); /* live until the main thread has looked */
    return (void *)bad;
}

static void budget_shrinks_with_threads(void **state)
{
    (void)state;
    pthread_t t[POOL];
    pthread_barrier_init(&pool_ready, NULL, POOL);
    pthread_barrier_init(&pool_done, NULL, POOL + 1);
    pthread_barrier_init(&pool_exit, NULL, POOL + 1);
    for (int i = 0; i < POOL; i++)
        assert_int_equal(pthread_create(&t[i], NULL, pool_thread, NULL), 0);
    pthread_barrier_wait(&pool_done); /* all 64 have measured, and are still live */
    uint32_t budget = ap_tcache_budget();
    pthread_barrier_wait(&pool_exit);
    assert_true(budget < AP_TCACHE_BUDGET && budget >= AP_TCACHE_BUDGET_ALL / (POOL + 2));
    uintptr_t bad = 0;
    for (int i = 0; i < POOL; i++) {
        void *r;
        assert_int_equal(pthread_join(t[i], &r), 0);
        bad |= (uintptr_t)r;
    }
    assert_int_equal(bad, 0);
    assert_int_equal(ap_tcache_budget(), AP_TCACHE_BUDGET); /* the pool is gone */
    pthread_barrier_destroy(&pool_ready);
    pthread_barrier_destroy(&pool_done);
    pthread_barrier_destroy(&pool_exit);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(refill_slow_start),
        cmocka_unit_test(overflow_flushes_one_batch),
        cmocka_unit_test(cross_thread_free),
        cmocka_unit_test(thread_exit_drains_cache),
        cmocka_unit_test(no_slot_block_no_cache),
        cmocka_unit_test(exited_threads_blocks_are_reused),
        cmocka_unit_test(shards_follow_the_affinity_mask),
        cmocka_unit_test(threads_get_shards_of_their_own),
        cmocka_unit_test(remote_frees_go_home),
        cmocka_unit_test(class_stats_add_up),
        cmocka_unit_test(thread_cache_stays_within_budget),
        cmocka_unit_test(budget_shrinks_with_threads),
    };
    return cmocka_run_group_tests_name("alloc.tcache", tests, NULL, NULL);
}
