//! memcpy and memmove for the image's static x86_64 musl binary: musl's copy every size of
//! 8 bytes or more with `rep movsq`, whose start-up costs tens of cycles, and Rust moves
//! futures and buffers of a few hundred bytes all the time (a tenth of the service's CPU
//! under load went to musl's memcpy). Small copies here are a few unaligned 16-byte loads and
//! stores, long ones `rep movsb` (fast on every x86_64 with ERMS). Built by app/build.rs only
//! for x86_64 musl; the linker then takes these instead of libc.a's (aarch64 musl's are fine).
//! Compiled with -ffreestanding so the copy loops are not turned back into memcpy calls.

#include <stddef.h>
#include <stdint.h>

typedef unsigned char u8;
/* 16 bytes with no alignment requirement: loads and stores become movups. */
typedef u8 v16 __attribute__((vector_size(16), aligned(1)));

#define LOAD16(p) (*(const v16 *)(p))
#define STORE16(p, v) (*(v16 *)(p) = (v))

/* Above this, `rep movsb` beats the vector loop. */
#define REP_MOVSB_FROM 1024

/* Copies n <= 64 bytes: every load before any store, so overlap does not matter. */
static inline void copy_small(u8 *d, const u8 *s, size_t n) {
    if (n >= 32) {
        v16 a = LOAD16(s), b = LOAD16(s + 16), c = LOAD16(s + n - 32), e = LOAD16(s + n - 16);
        STORE16(d, a);
        STORE16(d + 16, b);
        STORE16(d + n - 32, c);
        STORE16(d + n - 16, e);
    } else if (n >= 16) {
        v16 a = LOAD16(s), b = LOAD16(s + n - 16);
        STORE16(d, a);
        STORE16(d + n - 16, b);
    } else if (n >= 8) {
        uint64_t a, b;
        __builtin_memcpy(&a, s, 8);
        __builtin_memcpy(&b, s + n - 8, 8);
        __builtin_memcpy(d, &a, 8);
        __builtin_memcpy(d + n - 8, &b, 8);
    } else if (n >= 4) {
        uint32_t a, b;
        __builtin_memcpy(&a, s, 4);
        __builtin_memcpy(&b, s + n - 4, 4);
        __builtin_memcpy(d, &a, 4);
        __builtin_memcpy(d + n - 4, &b, 4);
    } else if (n > 0) {
        u8 a = s[0], b = s[n / 2], c = s[n - 1];
        d[0] = a;
        d[n / 2] = b;
        d[n - 1] = c;
    }
}

/* Copies n > 64 bytes front to back, safe when d is below s or the two do not overlap: each
   chunk is loaded before it is stored, and the last 16 bytes are loaded first. */
static inline void copy_forward(u8 *d, const u8 *s, size_t n) {
    v16 tail = LOAD16(s + n - 16);
    size_t i = 0;
    for (; i + 64 <= n; i += 64) {
        v16 a = LOAD16(s + i), b = LOAD16(s + i + 16), c = LOAD16(s + i + 32), e = LOAD16(s + i + 48);
        STORE16(d + i, a);
        STORE16(d + i + 16, b);
        STORE16(d + i + 32, c);
        STORE16(d + i + 48, e);
    }
    for (; i + 16 <= n; i += 16) {
        v16 a = LOAD16(s + i);
        STORE16(d + i, a);
    }
    STORE16(d + n - 16, tail);
}

void *memcpy(void *restrict dest, const void *restrict src, size_t n) {
    u8 *d = dest;
    const u8 *s = src;
    if (n <= 64) {
        copy_small(d, s, n);
    } else if (n < REP_MOVSB_FROM) {
        copy_forward(d, s, n);
    } else {
        __asm__ volatile("rep movsb" : "+D"(d), "+S"(s), "+c"(n) : : "memory");
    }
    return dest;
}

void *memmove(void *dest, const void *src, size_t n) {
    u8 *d = dest;
    const u8 *s = src;
    if (n <= 64) {
        copy_small(d, s, n);
    } else if ((uintptr_t)d - (uintptr_t)s >= n) {
        /* d is below s, or past its end: front to back is safe. */
        copy_forward(d, s, n);
    } else {
        /* d overlaps the end of s: back to front, the first 16 bytes loaded first. */
        v16 head = LOAD16(s);
        size_t i = n;
        while (i > 16) {
            i -= 16;
            v16 a = LOAD16(s + i);
            STORE16(d + i, a);
        }
        STORE16(d, head);
    }
    return dest;
}
