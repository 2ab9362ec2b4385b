/* Checks app/c/x86_64_memcpy.c (compiled with its functions renamed vt_memcpy and vt_memmove)
   against a copy made one byte at a time: every size up to 300 at every pair of alignments,
   larger sizes up to 4100 across the vector loop and `rep movsb` thresholds, memmove overlapping
   both ways, and the bytes around the destination left alone. Prints the first mismatch and
   exits 1. Run by app/tests/memcpy.rs. */

#include <stddef.h>
#include <stdio.h>

void *vt_memcpy(void *restrict dest, const void *restrict src, size_t n);
void *vt_memmove(void *dest, const void *src, size_t n);

#define SIZE 16384
static unsigned char buf[SIZE], want[SIZE];
static unsigned long checks;

/* Fresh bytes in [lo, hi) of both buffers, different for every check. */
static void fill(size_t lo, size_t hi) {
    static unsigned x = 2463534242u;
    for (size_t i = lo; i < hi; i++) {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        buf[i] = want[i] = (unsigned char)x;
    }
}

/* Reference move within `want`, through a scratch copy so overlap cannot matter. */
static void reference(size_t d, size_t s, size_t n) {
    static unsigned char tmp[SIZE];
    for (size_t i = 0; i < n; i++) tmp[i] = want[s + i];
    for (size_t i = 0; i < n; i++) want[d + i] = tmp[i];
}

static int check(const char *name, size_t d, size_t s, size_t n) {
    void *(*f)(void *, const void *, size_t) = name[3] == 'c' ? vt_memcpy : vt_memmove;
    /* Everything a wrong copy could touch: 64 bytes either side of both ranges. */
    size_t lo = (d < s ? d : s) - 64, hi = (d > s ? d : s) + n + 64;
    fill(lo, hi);
    void *r = f(buf + d, buf + s, n);
    reference(d, s, n);
    checks++;
    if (r != buf + d) {
        printf("%s(dest+%zu, src+%zu, %zu) returned %p, not dest %p\n", name, d, s, n, r, (void *)(buf + d));
        return 1;
    }
    for (size_t i = lo; i < hi; i++) {
        if (buf[i] != want[i]) {
            printf("%s(dest+%zu, src+%zu, %zu): byte %zu is %u, expected %u\n", name, d, s, n, i, buf[i], want[i]);
            return 1;
        }
    }
    return 0;
}

static size_t sizes[] = {301, 511, 512, 513, 1000, 1023, 1024, 1025, 1500, 2047, 2048, 3000, 4099};

int main(void) {
    /* memcpy, no overlap: source in the first half, destination in the second. */
    for (size_t n = 0; n <= 300; n++)
        for (size_t so = 0; so < 16; so++)
            for (size_t dof = 0; dof < 16; dof++)
                if (check("vt_memcpy", 8192 + dof, 64 + so, n)) return 1;
    for (size_t i = 0; i < sizeof sizes / sizeof *sizes; i++)
        for (size_t so = 0; so < 16; so += 3)
            for (size_t dof = 0; dof < 16; dof += 5)
                if (check("vt_memcpy", 8192 + dof, 64 + so, sizes[i])) return 1;
    /* memmove: destination below, above and away from the source, overlapping by any amount. */
    for (size_t n = 0; n <= 300; n++)
        for (long delta = -(long)n - 17; delta <= (long)n + 17; delta++)
            if (check("vt_memmove", (size_t)(4096 + delta), 4096, n)) return 1;
    for (size_t i = 0; i < sizeof sizes / sizeof *sizes; i++) {
        long n = (long)sizes[i];
        long deltas[] = {-n - 1, -n, -n + 1, -n / 2, -65, -64, -17, -16, -15, -1, 1, 15, 16, 17, 64, 65, n / 2, n - 1, n, n + 1};
        for (size_t j = 0; j < sizeof deltas / sizeof *deltas; j++)
            if (check("vt_memmove", (size_t)(6000 + deltas[j]), 6000, (size_t)n)) return 1;
    }
    printf("memcpy and memmove agree with a byte-by-byte copy in %lu checks\n", checks);
    return 0;
}
