/*
 * Measured fp32 peak of one core, for bench/inference.ts: 12 independent chains of SIMD fused
 * multiply-adds (enough to cover the FMA latency on two ports), timed for a given number of
 * seconds. Hypervisors report the base clock in /proc/cpuinfo; this sees the clock the cores
 * really run at under AVX load. Prints GFLOP/s.
 *   cc -O2 -mavx512f -DLANES=16 fma_peak.c   (or -mavx2 -mfma -DLANES=8)
 */
#include <immintrin.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#if LANES == 16
typedef __m512 vec;
#define SET1 _mm512_set1_ps
#define FMA _mm512_fmadd_ps
#define ADD _mm512_add_ps
#define STORE _mm512_storeu_ps
#else
typedef __m256 vec;
#define SET1 _mm256_set1_ps
#define FMA _mm256_fmadd_ps
#define ADD _mm256_add_ps
#define STORE _mm256_storeu_ps
#endif

#define CHAINS 12

static double now(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec + t.tv_nsec * 1e-9;
}

int main(int argc, char **argv) {
  double seconds = argc > 1 ? atof(argv[1]) : 1.0;
  vec a[CHAINS];
  vec m = SET1(0.999999f), c = SET1(1e-7f);
  for (int i = 0; i < CHAINS; i++) a[i] = SET1((float)i);
  long iters = 0;
  double t0 = now(), t;
  do {
    for (long k = 0; k < 1000000; k++) {
#pragma GCC unroll 12
      for (int i = 0; i < CHAINS; i++) a[i] = FMA(a[i], m, c);
    }
    iters += 1000000;
    t = now() - t0;
  } while (t < seconds);
  vec s = a[0];
  for (int i = 1; i < CHAINS; i++) s = ADD(s, a[i]);
  float out[LANES];
  STORE(out, s);
  /* out[0] is printed to stderr only so the compiler cannot drop the loop. */
  fprintf(stderr, "checksum %g\n", out[0]);
  printf("%.2f\n", iters * (double)CHAINS * LANES * 2 / t / 1e9);
  return 0;
}
