/* frag — long-lived objects and fragmentation; reports peak RSS.
 *
 * Measures how well freed space is reused when object sizes shift over time. 196,608 objects
 * are allocated in order; then each round frees every other one — every other object, then
 * every other pair, then every other group of four, in turn — and refills the holes, in
 * order, with objects of the round's new size (16..512 B, changing each round). One object in
 * eight is never freed. Prints the peak RSS (getrusage), the peak of live requested bytes,
 * and the RSS left after everything is freed (memory given back to the system).
 */
#include "bench.h"

#define NOBJ (3u << 16)

static const size_t round_sizes[] = {64, 96, 16, 256, 48, 160, 32, 512, 80, 24, 384, 128, 40, 192};
#define NSIZES (sizeof round_sizes / sizeof round_sizes[0])

int main(int argc, char **argv)
{
    double scale = bm_init("frag", argc, argv);
    uint32_t nobj = (uint32_t)bm_scaled(NOBJ, scale < 1.0 ? scale : 1.0, 64);
    uint64_t rounds = bm_scaled(48, scale, 3);
    bm_slot *objs = calloc(nobj, sizeof *objs);
    if (!objs)
        bm_fail("out of memory");
    uint64_t serial = 0, sum = 0, live = 0, live_peak = 0, ops = 0;

    uint64_t t0 = bm_now_ns();
    for (uint64_t r = 0; r <= rounds; r++) {
        size_t size = round_sizes[r % NSIZES];
        unsigned bit = (unsigned)(r + 2) % 3; /* round 0 fills every slot */
        for (uint32_t i = 0; r > 0 && i < nobj; i++) {
            if ((i >> bit) & 1) {
                live -= objs[i].size;
                bm_slot_free(&objs[i], &sum);
                ops++;
            }
        }
        for (uint32_t i = 0; i < nobj; i++) {
            if (objs[i].p)
                continue;
            uint64_t tag = bm_mix(serial++);
            objs[i].p = bm_malloc(size);
            objs[i].size = size;
            objs[i].tag = tag;
            bm_fill(objs[i].p, size, tag);
            live += size;
            ops++;
        }
        if (live > live_peak)
            live_peak = live;
    }
    long peak_kb = bm_peak_rss_kb();
    sum = bm_slots_free_all(objs, nobj, sum);
    uint64_t ns = bm_now_ns() - t0;
    long end_kb = bm_rss_kb();

    free(objs);
    printf("RESULT name=frag ops=%llu checksum=%016llx ns=%llu peak_rss_kb=%ld live_peak_kb=%llu "
           "end_rss_kb=%ld\n",
           (unsigned long long)ops, (unsigned long long)sum, (unsigned long long)ns, peak_kb,
           (unsigned long long)(live_peak / 1024), end_kb);
    return 0;
}
