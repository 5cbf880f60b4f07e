/*
 * cxx_threads — the C++ allocation paths through liballocprof.so, from several threads.
 *
 * libstdc++'s operator new/delete (plain, array, sized, aligned, nothrow) end up in the
 * preloaded malloc/free/aligned_alloc; this program drives all of them from NTHREADS
 * threads with containers that grow and shrink (vector, string, map, unordered_map,
 * deque), shared_ptr via make_shared, over-aligned types (alignas(64) and alignas(4096),
 * checked for alignment), nothrow new of an impossible size (must give nullptr) and plain
 * new of an impossible size (must throw std::bad_alloc).
 *
 * It prints a deterministic summary (checksums per thread, in thread order) so that its
 * output can be compared with a run without the library (see compare.sh), and exits 1 on
 * any failed check.
 */
#include <atomic>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <deque>
#include <map>
#include <memory>
#include <new>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

namespace
{

constexpr int kThreads = 6;
std::atomic<int> g_failures{0};

void fail(int tid, const char *what)
{
    g_failures.fetch_add(1);
    std::fprintf(stderr, "cxx_threads: thread %d: %s\n", tid, what);
}

struct alignas(64) Line {
    std::uint64_t v[8];
};

struct alignas(4096) Page {
    unsigned char b[4096];
};

struct Node {
    std::uint64_t key;
    std::string name;
    std::vector<int> vals;
};

std::uint64_t mix(std::uint64_t h, std::uint64_t v)
{
    h ^= v + 0x9E3779B97F4A7C15ULL + (h << 6) + (h >> 2);
    return h;
}

struct Result {
    std::uint64_t checksum = 0;
    std::size_t map_size = 0;
    std::size_t vec_cap_ok = 0;
    std::size_t string_len = 0;
    long shared_uses = 0;
};

Result work(int tid)
{
    Result r;
    std::uint64_t h = static_cast<std::uint64_t>(tid) + 1;

    for (int round = 0; round < 3; round++) {
        // new/delete and new[]/delete[]
        for (int i = 0; i < 20000; i++) {
            auto *n = new Node{static_cast<std::uint64_t>(i), std::to_string(i * 7 + tid), {}};
            n->vals.assign(static_cast<std::size_t>(i % 40), i);
            h = mix(h, n->key + n->name.size() + n->vals.size());
            delete n;
            auto *arr = new int[static_cast<std::size_t>(1 + i % 3000)];
            arr[0] = i;
            arr[i % 3000] = tid;
            h = mix(h, static_cast<std::uint64_t>(arr[0] + arr[i % 3000]));
            delete[] arr;
        }

        // vector growth through every power of two up to 2^20 elements, then shrink
        std::vector<std::uint64_t> vec;
        for (std::uint64_t i = 0; i < (1u << 20); i++)
            vec.push_back(i ^ static_cast<std::uint64_t>(tid));
        if (vec.capacity() >= vec.size())
            r.vec_cap_ok++;
        for (std::size_t i = 0; i < vec.size(); i += 4099)
            h = mix(h, vec[i]);
        vec.resize(1000);
        vec.shrink_to_fit();
        h = mix(h, vec.back());

        // string growth
        std::string s;
        for (int i = 0; i < 50000; i++) {
            s += static_cast<char>('a' + (i + tid) % 26);
            if (i % 1000 == 999)
                s += std::to_string(i);
        }
        r.string_len = s.size();
        for (std::size_t i = 0; i < s.size(); i += 997)
            h = mix(h, static_cast<unsigned char>(s[i]));

        // ordered and unordered maps
        std::map<int, std::string> m;
        std::unordered_map<std::string, int> um;
        for (int i = 0; i < 30000; i++) {
            int k = (i * 7919 + tid * 13) % 40000;
            m[k] = std::string(static_cast<std::size_t>(k % 50), static_cast<char>('A' + k % 26));
            um[std::to_string(k)] = i;
        }
        for (int i = 0; i < 40000; i += 3) {
            m.erase(i);
            um.erase(std::to_string(i));
        }
        r.map_size = m.size() + um.size();
        for (auto &kv : m)
            h = mix(h, static_cast<std::uint64_t>(kv.first) + kv.second.size());

        std::deque<std::string> dq;
        for (int i = 0; i < 20000; i++) {
            dq.push_back(std::string(static_cast<std::size_t>(i % 100), 'x'));
            if (i % 3 == 0)
                dq.pop_front();
        }
        h = mix(h, dq.size());

        // make_shared, shared across a copy and a second thread-local container
        std::vector<std::shared_ptr<Node>> sp;
        for (int i = 0; i < 5000; i++)
            sp.push_back(std::make_shared<Node>(Node{static_cast<std::uint64_t>(i), "s", {i}}));
        std::vector<std::shared_ptr<Node>> copy(sp.begin(), sp.begin() + 100);
        r.shared_uses = copy.front().use_count();
        sp.clear();
        h = mix(h, copy.back()->key);

        // over-aligned objects: operator new(size_t, align_val_t)
        for (int i = 0; i < 2000; i++) {
            auto *l = new Line{};
            if (reinterpret_cast<std::uintptr_t>(l) % 64 != 0)
                fail(tid, "alignas(64) new misaligned");
            l->v[7] = static_cast<std::uint64_t>(i);
            h = mix(h, l->v[7]);
            delete l;
            auto *la = new Line[static_cast<std::size_t>(1 + i % 17)];
            if (reinterpret_cast<std::uintptr_t>(la) % 64 != 0)
                fail(tid, "alignas(64) new[] misaligned");
            delete[] la;
        }
        for (int i = 0; i < 200; i++) {
            auto *pg = new Page;
            if (reinterpret_cast<std::uintptr_t>(pg) % 4096 != 0)
                fail(tid, "alignas(4096) new misaligned");
            std::memset(pg->b, i, sizeof pg->b);
            h = mix(h, pg->b[4095]);
            delete pg;
        }
        std::vector<Page> pages(7);
        if (reinterpret_cast<std::uintptr_t>(pages.data()) % 4096 != 0)
            fail(tid, "vector<alignas(4096)> misaligned");
        auto *pn = new (std::nothrow) Page;
        if (pn == nullptr || reinterpret_cast<std::uintptr_t>(pn) % 4096 != 0)
            fail(tid, "nothrow aligned new");
        delete pn;
    }
    r.checksum = h;
    return r;
}

// Impossible sizes: go through a volatile so the compiler cannot reason about them.
volatile std::size_t g_huge = SIZE_MAX / 4;
volatile std::size_t g_huge2 = static_cast<std::size_t>(1) << 47;

bool huge_nothrow_is_null()
{
    char *p = new (std::nothrow) char[g_huge];
    char *q = static_cast<char *>(::operator new(g_huge2, std::nothrow));
    bool ok = p == nullptr && q == nullptr;
    delete[] p;
    ::operator delete(q);
    return ok;
}

bool huge_new_throws()
{
    int caught = 0;
    try {
        char *p = new char[g_huge];
        p[0] = 1;
        delete[] p;
    } catch (const std::bad_alloc &) {
        caught++;
    }
    try {
        void *p = ::operator new(g_huge2);
        ::operator delete(p);
    } catch (const std::bad_alloc &) {
        caught++;
    }
    return caught == 2;
}

} // namespace

int main()
{
    std::vector<Result> results(kThreads);
    std::vector<std::thread> threads;
    for (int t = 0; t < kThreads; t++)
        threads.emplace_back([t, &results] { results[static_cast<std::size_t>(t)] = work(t); });
    for (auto &th : threads)
        th.join();

    for (int t = 0; t < kThreads; t++) {
        const Result &r = results[static_cast<std::size_t>(t)];
        std::printf("thread %d: checksum %016llx map %zu string %zu vector-ok %zu shared %ld\n", t,
                    static_cast<unsigned long long>(r.checksum), r.map_size, r.string_len,
                    r.vec_cap_ok, r.shared_uses);
    }

    // Huge requests, from a thread too.
    bool nothrow_ok = huge_nothrow_is_null();
    bool throw_ok = huge_new_throws();
    bool thread_ok = false;
    std::thread([&] { thread_ok = huge_nothrow_is_null() && huge_new_throws(); }).join();
    std::printf("nothrow new of a huge size: %s\n", nothrow_ok ? "nullptr" : "NOT nullptr");
    std::printf("new of a huge size: %s\n", throw_ok ? "std::bad_alloc" : "NO bad_alloc");
    std::printf("same from a thread: %s\n", thread_ok ? "ok" : "WRONG");
    if (!nothrow_ok || !throw_ok || !thread_ok)
        g_failures.fetch_add(1);

    int f = g_failures.load();
    std::printf("failures: %d\n", f);
    return f == 0 ? 0 : 1;
}
