/*
 * Entrypoint for bench/spawn.bench.ts. Its first act is to read CLOCK_MONOTONIC (system-wide,
 * the clock of process.hrtime.bigint() and of spawn-driver) and write the value in
 * nanoseconds, in decimal and newline-terminated, to fd 1; then it exits 0. No libc: nothing
 * runs before _start, so the reading is the moment the kernel hands the new program control.
 *
 *   cc -static -nostdlib -O2 -fno-stack-protector -o spawn-probe spawn-probe.c
 */
struct timespec_k {
  long tv_sec;
  long tv_nsec;
};

#if defined(__x86_64__)
#define SYS_WRITE 1
#define SYS_CLOCK_GETTIME 228
#define SYS_EXIT_GROUP 231
static inline long sys3(long n, long a, long b, long c) {
  long r;
  __asm__ volatile("syscall" : "=a"(r) : "a"(n), "D"(a), "S"(b), "d"(c) : "rcx", "r11", "memory");
  return r;
}
#elif defined(__aarch64__)
#define SYS_WRITE 64
#define SYS_CLOCK_GETTIME 113
#define SYS_EXIT_GROUP 94
static inline long sys3(long n, long a, long b, long c) {
  register long x8 __asm__("x8") = n;
  register long x0 __asm__("x0") = a;
  register long x1 __asm__("x1") = b;
  register long x2 __asm__("x2") = c;
  __asm__ volatile("svc 0" : "+r"(x0) : "r"(x8), "r"(x1), "r"(x2) : "memory");
  return x0;
}
#else
#error "spawn-probe: x86_64 or aarch64 only"
#endif

__attribute__((force_align_arg_pointer, noreturn, used)) void _start(void) {
  struct timespec_k t;
  long ok = sys3(SYS_CLOCK_GETTIME, 1 /* CLOCK_MONOTONIC */, (long)&t, 0);
  char buf[32];
  int n = sizeof buf;
  buf[--n] = '\n';
  unsigned long v = (unsigned long)t.tv_sec * 1000000000UL + (unsigned long)t.tv_nsec;
  do {
    buf[--n] = (char)('0' + v % 10);
    v /= 10;
  } while (v && n > 0);
  if (ok == 0) sys3(SYS_WRITE, 1, (long)(buf + n), (long)(sizeof buf - n));
  sys3(SYS_EXIT_GROUP, ok == 0 ? 0 : 1, 0, 0);
  for (;;) {
  }
}
