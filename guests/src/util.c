/* libc bits the compiler may call, command line parsing and a delay loop. */
#include "guest.h"

void *memset(void *d, int c, u64 n) { u8 *p = d; while (n--) *p++ = (u8)c; return d; }
void *memcpy(void *d, const void *s, u64 n) { u8 *p = d; const u8 *q = s; while (n--) *p++ = *q++; return d; }
int memcmp(const void *a, const void *b, u64 n)
{
    const u8 *p = a, *q = b;
    for (; n; n--, p++, q++)
        if (*p != *q) return *p - *q;
    return 0;
}
u64 strlen(const char *s) { u64 n = 0; while (s[n]) n++; return n; }

static const char *find_word(const char *cmdline, const char *word, u64 wlen)
{
    const char *p = cmdline;
    while (*p) {
        while (*p == ' ') p++;
        if (!memcmp(p, word, wlen)) return p;
        while (*p && *p != ' ') p++;
    }
    return 0;
}

int cmdline_get(const char *cmdline, const char *key, char *out, u64 out_len)
{
    u64 klen = strlen(key);
    const char *p = cmdline;
    while ((p = find_word(p, key, klen))) {
        if (p[klen] == '=') {
            u64 n = 0;
            p += klen + 1;
            while (*p && *p != ' ' && n + 1 < out_len) out[n++] = *p++;
            out[n] = 0;
            return 1;
        }
        p += klen;
    }
    return 0;
}

int cmdline_has(const char *cmdline, const char *word)
{
    u64 wlen = strlen(word);
    const char *p = cmdline;
    while ((p = find_word(p, word, wlen))) {
        if (p[wlen] == 0 || p[wlen] == ' ') return 1;
        p += wlen;
    }
    return 0;
}

u64 parse_u64(const char *s)
{
    u64 v = 0;
    while (*s >= '0' && *s <= '9') v = v * 10 + (u64)(*s++ - '0');
    return v;
}

void delay(u64 iterations)
{
    for (volatile u64 i = 0; i < iterations; i++) cpu_relax();
}
