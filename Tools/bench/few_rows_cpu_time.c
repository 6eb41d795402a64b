// The few-rows kernel alone, on one thread, timed by the thread's CPU time (CLOCK_THREAD_CPUTIME_ID),
// best of several calls: a figure that holds up on a machine shared with other jobs, where wall
// time does not. x[M, K] W[N, K]^T with W far beyond the caches. Build and run (issue #19):
//   clang -O2 -ISources/CKernels/include Tools/bench/few_rows_cpu_time.c Sources/CKernels/kernels.c -lm -o /tmp/few_rows
//   for m in 1 2 4 8; do /tmp/few_rows $m 1024 22528 5; done
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include "ckernels.h"

static double cpu_seconds(void) {
    struct timespec t;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

int main(int argc, char **argv) {
    if (argc != 5) {
        fprintf(stderr, "usage: %s M K N CALLS (M <= 8 rows, K inputs, N outputs)\n", argv[0]);
        return 2;
    }
    int M = atoi(argv[1]), K = atoi(argv[2]), N = atoi(argv[3]), calls = atoi(argv[4]);
    if (M < 1 || M > 8 || K < 1 || N < 1 || calls < 1) {
        fprintf(stderr, "M must be 1-8 and K, N, CALLS positive\n");
        return 2;
    }
    float *x = malloc(sizeof(float) * 8 * K), *w = malloc(sizeof(float) * (long)K * N), *out = malloc(sizeof(float) * 8 * N);
    if (!x || !w || !out) { fprintf(stderr, "out of memory\n"); return 1; }
    for (long i = 0; i < (long)K * N; i++) w[i] = 0.001f * (i % 7);
    for (int i = 0; i < 8 * K; i++) x[i] = 1;
    double best = 1e9;
    for (int c = 0; c < calls; c++) {
        double t0 = cpu_seconds();
        ps_few_rows_nt(x, w, NULL, out, M, K, N, 0, N, 0);
        double t = cpu_seconds() - t0;
        if (t < best) best = t;
    }
    printf("M=%d K=%d N=%d: %.2f ms CPU, weights %.1f GB/s, %.1f GFLOP/s\n", M, K, N, best * 1e3,
           4.0 * K * N / best / 1e9, 2.0 * M * K * N / best / 1e9);
    free(x); free(w); free(out);
    return 0;
}
