// The few-rows kernel alone, timed by the CPU time of its threads (CLOCK_THREAD_CPUTIME_ID; the
// slowest thread's), best of several calls: a figure that holds up on a machine shared with other
// jobs, where wall time does not. x[M, K] W[N, K]^T with W far beyond the caches; THREADS threads
// each take a contiguous half (third, ...) of the N output columns, as LinearOps.fewRows does.
// Build and run (issue #19):
//   clang -O2 -ISources/CKernels/include Tools/bench/few_rows_cpu_time.c Sources/CKernels/kernels.c -lm -lpthread -o /tmp/few_rows
//   for m in 1 2 4 8; do /tmp/few_rows $m 1024 22528 5 1; done
// Prints this core's FMA peak (measured) beside the kernel's rate. PARSCALE_NO_AVX512=1 times the
// AVX2 path on a CPU that has AVX-512.
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <sys/mman.h>
#include "ckernels.h"

static int M, K, N;
static float *x, *w, *out;

typedef struct { int j0, j1; double cpu; } Part;

static double cpu_seconds(void) {
    struct timespec t;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

#if defined(__x86_64__)
#include <immintrin.h>
// This core's FMA peak: 12 independent chains of 8-wide FMAs in registers (no memory), the most
// the few-rows kernel's arithmetic could reach; GFLOP/s of CPU time (2 flops per lane).
__attribute__((target("avx2,fma"))) static double fma_peak_gflops(void) {
    __m256 a[12], m = _mm256_set1_ps(0.999999f), c = _mm256_set1_ps(1e-7f);
    for (int i = 0; i < 12; i++) a[i] = _mm256_set1_ps((float)i);
    const long steps = 20000000;
    double t0 = cpu_seconds();
    for (long s = 0; s < steps; s++)
        for (int i = 0; i < 12; i++) a[i] = _mm256_fmadd_ps(a[i], m, c);
    double t = cpu_seconds() - t0;
    float sink = 0;
    for (int i = 0; i < 12; i++) sink += _mm256_cvtss_f32(a[i]);
    if (sink == 12345.0f) printf(" ");  // keeps the chains live
    return steps * 12.0 * 16 / t / 1e9;
}
#else
static double fma_peak_gflops(void) { return 0; }
#endif

static void *run_part(void *arg) {
    Part *p = arg;
    double t0 = cpu_seconds();
    ps_few_rows_nt(x, w, NULL, out, M, K, N, p->j0, p->j1, 0);
    p->cpu = cpu_seconds() - t0;
    return NULL;
}

int main(int argc, char **argv) {
    if (argc != 6) {
        fprintf(stderr, "usage: %s M K N CALLS THREADS (M <= 8 rows, K inputs, N outputs, 1-16 threads)\n", argv[0]);
        return 2;
    }
    M = atoi(argv[1]), K = atoi(argv[2]), N = atoi(argv[3]);
    int calls = atoi(argv[4]), threads = atoi(argv[5]);
    if (M < 1 || M > 8 || K < 1 || N < threads || calls < 1 || threads < 1 || threads > 16) {
        fprintf(stderr, "M must be 1-8, THREADS 1-16, N >= THREADS, K and CALLS positive\n");
        return 2;
    }
    // The weights as HostBuffer allocates them (2 MiB aligned, transparent huge pages asked for);
    // FEW_ROWS_SMALL_PAGES=1 leaves them on 4 KiB pages (64-byte aligned), as before issue #19's
    // second round.
    size_t weightBytes = sizeof(float) * (size_t)K * N;
    void *weights = NULL;
    int small = getenv("FEW_ROWS_SMALL_PAGES") != NULL;
    if (posix_memalign(&weights, small ? 64 : 2u << 20, weightBytes)) weights = NULL;
    if (weights && !small) madvise(weights, weightBytes, MADV_HUGEPAGE);
    x = malloc(sizeof(float) * 8 * K), w = weights, out = malloc(sizeof(float) * 8 * N);
    if (!x || !w || !out) { fprintf(stderr, "out of memory\n"); return 1; }
    for (long i = 0; i < (long)K * N; i++) w[i] = 0.001f * (i % 7);
    for (int i = 0; i < 8 * K; i++) x[i] = 1;
    double best = 1e9;
    for (int c = 0; c < calls; c++) {
        pthread_t tid[16];
        Part parts[16];
        for (int t = 0; t < threads; t++) {
            parts[t] = (Part){(int)((long)N * t / threads), (int)((long)N * (t + 1) / threads), 0};
            pthread_create(&tid[t], NULL, run_part, &parts[t]);
        }
        double slowest = 0;
        for (int t = 0; t < threads; t++) {
            pthread_join(tid[t], NULL);
            if (parts[t].cpu > slowest) slowest = parts[t].cpu;
        }
        if (slowest < best) best = slowest;
    }
    double peak = fma_peak_gflops();
    printf("M=%d K=%d N=%d, %d thread(s): %.2f ms CPU (slowest thread), weights %.1f GB/s, %.1f GFLOP/s"
           " (per thread %.0f%% of this core's FMA peak, %.1f GFLOP/s)\n", M, K, N, threads, best * 1e3,
           4.0 * K * N / best / 1e9, 2.0 * M * K * N / best / 1e9, 100 * 2.0 * M * K * N / best / 1e9 / threads / peak,
           peak);
    free(x); free(w); free(out);
    return 0;
}
