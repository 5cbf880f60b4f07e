"""py_heavy — a memory-heavy, deterministic Python workload for compare.sh.

Builds big dicts and lists of strings, round-trips them through json, sorts, builds
and drops nested structures and bytearrays of many sizes, so that CPython's object
allocator (and, with PYTHONMALLOC=malloc, every object) goes through the preloaded
malloc. Output is a handful of digests that must be identical with and without
liballocprof.so. Runs in about a second.
"""
import hashlib
import json
import random


def digest(obj):
    return hashlib.sha256(repr(obj).encode()).hexdigest()[:16]


def main():
    rng = random.Random(12345)
    out = []

    # Big dict of strings -> lists.
    d = {}
    for i in range(200_000):
        key = "k%07d-%s" % (i, "x" * (i % 23))
        d[key] = [i, i * i, str(i)[::-1]]
    out.append(("dict", len(d), digest(sorted(d.items())[:1000])))

    # List of strings of many sizes, sorted several ways.
    words = ["".join(rng.choice("abcdefghij") for _ in range(rng.randint(1, 40)))
             for _ in range(100_000)]
    words.sort()
    by_len = sorted(words, key=lambda w: (len(w), w))
    out.append(("words", len(words), digest(words[::997]), digest(by_len[::991])))

    # json round trip of a nested structure.
    doc = {"items": [{"id": i, "name": "item-%d" % i, "tags": ["t%d" % (i % 7)] * (i % 5),
                      "score": i / 7.0} for i in range(60_000)]}
    text = json.dumps(doc, sort_keys=True)
    back = json.loads(text)
    out.append(("json", len(text), back == doc, hashlib.sha256(text.encode()).hexdigest()[:16]))
    del doc, back, text

    # Bytearrays and bytes of sizes that cross small/large allocation boundaries.
    total = 0
    blobs = []
    for i in range(3000):
        n = (i * 7919) % 300_000 + 1
        b = bytearray(n)
        b[0] = i % 256
        b[-1] = (i * 3) % 256
        total += b[0] + b[-1] + len(b)
        blobs.append(b)
        if len(blobs) > 50:
            blobs.pop(0)
    out.append(("blobs", total))

    # Growing and shrinking lists and sets.
    s = set()
    lst = []
    for i in range(300_000):
        lst.append(i ^ 0x5555)
        if i % 3 == 0:
            s.add(i % 50_000)
    del lst[::2]
    out.append(("list-set", len(lst), sum(lst) % 1_000_003, len(s)))

    # A string built piecewise and split again.
    big = "\n".join("line %d %s" % (i, "y" * (i % 64)) for i in range(150_000))
    parts = big.split("\n")
    out.append(("str", len(big), len(parts), hashlib.md5(big.encode()).hexdigest()))

    for row in out:
        print(*row)


if __name__ == "__main__":
    main()
