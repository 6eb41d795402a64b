// The decode attention kernel alone (ps_decode_attention: one new query per row against its KV
// cache), timed by the CPU time of the thread (CLOCK_THREAD_CPUTIME_ID), which holds up on a
// shared machine. ROWS rows x KVH kv heads x GROUP query heads each, head size HD, VISIBLE cached
// slots; LAYERS separate caches are used in turn so that, as in a decode step, the cache comes
// from memory, not from L2 (8 layers of bench decode's P = 8 cache: 27 MB). One thread.
// Build and run (issue #19):
//   clang -O2 -ISources/CKernels/include Tools/bench/decode_attention_cpu_time.c Sources/CKernels/kernels.c -lm -o /tmp/decode_attention
//   /tmp/decode_attention 8 4 4 64 208 16
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
    if (argc != 7) {
        fprintf(stderr, "usage: %s ROWS KVH GROUP HD VISIBLE LAYERS (all positive)\n", argv[0]);
        return 2;
    }
    int rows = atoi(argv[1]), kvh = atoi(argv[2]), group = atoi(argv[3]), hd = atoi(argv[4]);
    int visible = atoi(argv[5]), layers = atoi(argv[6]);
    if (rows < 1 || kvh < 1 || group < 1 || hd < 1 || visible < 1 || layers < 1) {
        fprintf(stderr, "ROWS, KVH, GROUP, HD, VISIBLE and LAYERS must be positive\n");
        return 2;
    }
    int heads = kvh * group, stride = (heads + 2 * kvh) * hd;
    long cache = (long)rows * kvh * visible * hd;
    float *qkv = malloc(sizeof(float) * rows * stride), *out = malloc(sizeof(float) * rows * heads * hd);
    float *scores = malloc(sizeof(float) * 4 * visible);
    float **keys = malloc(sizeof(float *) * layers), **values = malloc(sizeof(float *) * layers);
    if (!qkv || !out || !scores || !keys || !values) { fprintf(stderr, "out of memory\n"); return 1; }
    for (int i = 0; i < rows * stride; i++) qkv[i] = 0.01f * (i % 13);
    for (int l = 0; l < layers; l++) {
        keys[l] = malloc(sizeof(float) * cache), values[l] = malloc(sizeof(float) * cache);
        if (!keys[l] || !values[l]) { fprintf(stderr, "out of memory\n"); return 1; }
        for (long i = 0; i < cache; i++) keys[l][i] = 0.01f * (i % 7), values[l][i] = 0.01f * (i % 5);
    }
    double best = 1e9;
    for (int round = 0; round < 5; round++) {
        double t0 = cpu_seconds();
        for (int l = 0; l < layers; l++)
            ps_decode_attention(qkv, keys[l], values[l], out, NULL, stride, heads, kvh, hd, visible, visible,
                                0.125f, 0, rows * kvh, scores);
        double t = (cpu_seconds() - t0) / layers;
        if (t < best) best = t;
    }
    double bytes = 2.0 * cache * sizeof(float), flops = 4.0 * rows * heads * visible * hd;
    printf("rows %d kv heads %d group %d hd %d visible %d: %.1f us CPU per layer, K+V %.2f MB at %.1f GB/s, %.1f GFLOP/s\n",
           rows, kvh, group, hd, visible, best * 1e6, bytes / 1e6, bytes / best / 1e9, flops / best / 1e9);
    return 0;
}
