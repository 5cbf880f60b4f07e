/* tree — building and tearing down a big binary search tree.
 *
 * Measures allocation inside real pointer-chasing work, where the allocator's placement
 * decides cache locality: each round inserts 250,000 random 64-bit keys into an unbalanced
 * binary search tree, every node (40 B) holding its own value string of 8..64 bytes, walks the
 * tree in order to check the keys are sorted and every value intact, then frees the whole tree
 * in key order — far from the order of allocation.
 */
#include "bench.h"

#define NODES 250000

struct node {
    uint64_t key;
    struct node *left, *right;
    unsigned char *val;
    size_t vlen;
};

static uint64_t serial;

/* Inserts a node for key; returns 0 if the key was already there. */
static int insert(struct node **root, uint64_t key, bm_rng *r)
{
    struct node **link = root;
    while (*link) {
        if (key == (*link)->key)
            return 0;
        link = key < (*link)->key ? &(*link)->left : &(*link)->right;
    }
    struct node *n = bm_malloc(sizeof *n);
    n->key = key;
    n->left = n->right = NULL;
    n->vlen = 8 + bm_below(r, 57);
    n->val = bm_malloc(n->vlen);
    bm_fill(n->val, n->vlen, key);
    *link = n;
    serial++;
    return 1;
}

/* In-order walk with an explicit stack: keys must be strictly increasing. Returns the count. */
static uint64_t walk(struct node *root, uint64_t *sum)
{
    size_t cap = 256, depth = 0;
    struct node **stack = bm_malloc(cap * sizeof *stack);
    uint64_t count = 0, prev = 0;
    struct node *n = root;
    while (n || depth) {
        for (; n; n = n->left) {
            if (depth == cap) {
                cap *= 2;
                stack = realloc(stack, cap * sizeof *stack);
                if (!stack)
                    bm_fail("realloc of the walk stack failed");
            }
            stack[depth++] = n;
        }
        n = stack[--depth];
        if (count > 0 && n->key <= prev)
            bm_fail("tree keys out of order after %llu nodes", (unsigned long long)count);
        bm_check(n->val, n->vlen, n->key);
        *sum = bm_sum(*sum, n->key ^ n->vlen);
        prev = n->key;
        count++;
        n = n->right;
    }
    free(stack);
    return count;
}

/* Frees the tree in key order without a stack, by rotating left children up. */
static void destroy(struct node *root)
{
    while (root) {
        struct node *l = root->left;
        if (l) {
            root->left = l->right;
            l->right = root;
            root = l;
        } else {
            struct node *next = root->right;
            bm_check(root->val, root->vlen, root->key);
            free(root->val);
            free(root);
            root = next;
        }
    }
}

int main(int argc, char **argv)
{
    double scale = bm_init("tree", argc, argv);
    uint64_t nodes = bm_scaled(NODES, scale < 1.0 ? scale : 1.0, 100);
    uint64_t rounds = bm_scaled(4, scale, 1);
    bm_rng rng = bm_rng_seed(7);
    uint64_t sum = 0;

    uint64_t t0 = bm_now_ns();
    for (uint64_t r = 0; r < rounds; r++) {
        struct node *root = NULL;
        uint64_t inserted = 0;
        for (uint64_t i = 0; i < nodes; i++)
            inserted += (uint64_t)insert(&root, bm_next(&rng), &rng);
        if (walk(root, &sum) != inserted)
            bm_fail("tree walk lost nodes");
        destroy(root);
    }
    uint64_t ns = bm_now_ns() - t0;

    printf("RESULT name=tree ops=%llu checksum=%016llx ns=%llu\n", (unsigned long long)serial,
           (unsigned long long)sum, (unsigned long long)ns);
    return 0;
}
