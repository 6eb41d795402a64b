// The attention's score product Q K^T (one query block of 64 at config A: head size 32, q rows 256
// floats apart, 112 or 176 key slots) as OpenBLAS sees it two ways, timed by the CPU time of this
// thread (CLOCK_THREAD_CPUTIME_ID), single-threaded, the same call repeated 20,000 times with its
// operands hot: with K as stored ([slots, hd], passed transposed: OpenBLAS packs both operands and
// zeroes C first) and with K copied transposed ([hd, slots], as it is: OpenBLAS's small-matrix
// kernel, no packing), and the cost of that copy. Issue #19, part 4: this says 1.35x for the second
// way; inside a training step it did not pay (Tools/bench/RESULTS.md, "Training, part 4").
// Build and run:
//   clang -O2 -mavx2 -mfma -I/usr/include/x86_64-linux-gnu/openblas-pthread Tools/bench/attention_scores_cpu_time.c -lopenblas -o /tmp/attention_scores
//   /tmp/attention_scores
#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static double thread_seconds(void) {
    struct timespec t;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
    return t.tv_sec + 1e-9 * t.tv_nsec;
}

int main(void) {
    openblas_set_num_threads(1);
    enum { hd = 32, qStride = 256, used = 176, block = 64, repeats = 20000 };
    float *q = malloc(sizeof(float) * block * qStride), *keys = malloc(sizeof(float) * used * hd);
    float *keysT = malloc(sizeof(float) * used * hd), *scores = malloc(sizeof(float) * block * used);
    for (int i = 0; i < block * qStride; i++) q[i] = rand() / (float)RAND_MAX;
    for (int i = 0; i < used * hd; i++) keys[i] = keysT[i] = rand() / (float)RAND_MAX;
    const int seenCounts[2] = {112, 176};
    for (int round = 0; round < 2; round++)
        for (int s = 0; s < 2; s++) {
            int seen = seenCounts[s];
            double t0 = thread_seconds();
            for (int r = 0; r < repeats; r++)
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, block, seen, hd, 0.17f, q, qStride, keys, hd, 0,
                            scores, seen);
            double t1 = thread_seconds();
            for (int r = 0; r < repeats; r++)
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, block, seen, hd, 0.17f, q, qStride, keysT, used,
                            0, scores, seen);
            double t2 = thread_seconds();
            for (int r = 0; r < repeats; r++)
                for (int j = 0; j < used; j++)
                    for (int d = 0; d < hd; d++) keysT[d * used + j] = keys[j * hd + d];
            double t3 = thread_seconds();
            double flops = 2.0 * block * seen * hd * repeats;
            printf("%d x %d x %d: K transposed %.2f us (%.1f GFLOP/s), K^T as it is %.2f us (%.1f GFLOP/s), the copy of %d slots %.2f us\n",
                   block, seen, hd, (t1 - t0) / repeats * 1e6, flops / (t1 - t0) / 1e9, (t2 - t1) / repeats * 1e6,
                   flops / (t2 - t1) / 1e9, used, (t3 - t2) / repeats * 1e6);
        }
    return 0;
}
