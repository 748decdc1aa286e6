/* Polled 16550 output on COM1. */
#include "guest.h"

#define COM1 0x3f8

void uart_init(void)
{
    outb(COM1 + 1, 0x00); /* no interrupts */
    outb(COM1 + 3, 0x80); /* DLAB */
    outb(COM1 + 0, 0x01); /* 115200 baud */
    outb(COM1 + 1, 0x00);
    outb(COM1 + 3, 0x03); /* 8N1 */
    outb(COM1 + 2, 0xc7); /* FIFO on, cleared */
    outb(COM1 + 4, 0x03); /* DTR, RTS */
}

static int muted;
void uart_mute(int mute) { muted = mute; }

void putc(char c)
{
    if (muted) return;
    if (c == '\n') putc('\r');
    for (int i = 0; i < 100000 && !(inb(COM1 + 5) & 0x20); i++)
        cpu_relax();
    outb(COM1, (u8)c);
}

void puts(const char *s) { while (*s) putc(*s++); }

void put_hex(u64 v, int digits)
{
    static const char hex[] = "0123456789abcdef";
    for (int i = digits - 1; i >= 0; i--) putc(hex[(v >> (i * 4)) & 0xf]);
}

void put_dec(u64 v)
{
    char buf[24];
    int n = 0;
    do { buf[n++] = (char)('0' + v % 10); v /= 10; } while (v);
    while (n) putc(buf[--n]);
}
