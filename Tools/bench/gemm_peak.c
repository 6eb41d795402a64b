// How close OpenBLAS's sgemm comes to this core's FMA peak at the training products' exact shapes
// (issue #19): one thread, timed by its CPU time (CLOCK_THREAD_CPUTIME_ID, which holds up on a
// shared machine), best of several calls.
//   1. The clock: a chain of dependent integer adds (one per cycle), cycles / CPU second.
//   2. The FMA peak: 12 independent 8-lane FMA chains in registers, FLOPs / CPU second.
//   3. sgemm 1024^3 and every product of one training step of config A or B on one core's share of
//      the batch (as a data-parallel worker runs them: rows = P * batch / 2 * seq), with the
//      transposes our code passes; the step's total and its fraction of the FMA peak; then the
//      attention's products (query blocks of 64, as AttentionOps) likewise.
// Build and run:
//   clang -O2 -mavx2 -mfma -I/usr/include/x86_64-linux-gnu/openblas-pthread Tools/bench/gemm_peak.c -lopenblas -o /tmp/gemm_peak
//   /tmp/gemm_peak B 1     # config B at P = 1 (A or B; P 1-8)
#include <cblas.h>
#include <immintrin.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

extern void openblas_set_num_threads(int);

static double cpu_seconds(void) {
    struct timespec t;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

static double clock_ghz(void) {
    long iterations = 200000000;
    double best = 1e9;
    for (int r = 0; r < 3; r++) {
        long n = iterations, x = 0;
        double t0 = cpu_seconds();
        // 8 dependent adds per iteration: 8 cycles (the loop's own dec/jnz run beside them).
        __asm__ volatile(
            "1:\n\t"
            "add $1, %0\n\tadd $1, %0\n\tadd $1, %0\n\tadd $1, %0\n\t"
            "add $1, %0\n\tadd $1, %0\n\tadd $1, %0\n\tadd $1, %0\n\t"
            "dec %1\n\tjnz 1b\n\t"
            : "+r"(x), "+r"(n));
        double t = cpu_seconds() - t0;
        if (t < best) best = t;
    }
    return 8.0 * iterations / best / 1e9;
}

static double fma_peak_gflops(void) {
    long iterations = 50000000;
    double best = 1e9;
    float sink = 0;
    for (int r = 0; r < 3; r++) {
        __m256 a[12], b = _mm256_set1_ps(0.999999f), c = _mm256_set1_ps(1e-7f);
        for (int i = 0; i < 12; i++) a[i] = _mm256_set1_ps((float)i);
        double t0 = cpu_seconds();
        for (long n = 0; n < iterations; n++) {
            for (int i = 0; i < 12; i++) a[i] = _mm256_fmadd_ps(a[i], b, c);
            __asm__ volatile("" : "+x"(a[0]), "+x"(a[1]), "+x"(a[2]), "+x"(a[3]), "+x"(a[4]), "+x"(a[5]),
                             "+x"(a[6]), "+x"(a[7]), "+x"(a[8]), "+x"(a[9]), "+x"(a[10]), "+x"(a[11]));
        }
        double t = cpu_seconds() - t0;
        if (t < best) best = t;
        for (int i = 0; i < 12; i++) sink += a[i][0];
    }
    if (sink == 12345) printf(" ");
    return 12.0 * 16 * iterations / best / 1e9;
}

typedef struct { const char *name; int transA, transB, m, n, k; } Product;

// Seconds of the best of `calls` single-threaded products (after one warm-up).
static double time_product(Product p, int calls) {
    int rowsA = p.transA ? p.k : p.m, colsA = p.transA ? p.m : p.k;
    int rowsB = p.transB ? p.n : p.k, colsB = p.transB ? p.k : p.n;
    float *a = malloc(sizeof(float) * rowsA * colsA), *b = malloc(sizeof(float) * rowsB * colsB);
    float *c = calloc((size_t)p.m * p.n, sizeof(float));
    for (long i = 0; i < (long)rowsA * colsA; i++) a[i] = (float)(i % 7) * 0.01f;
    for (long i = 0; i < (long)rowsB * colsB; i++) b[i] = (float)(i % 5) * 0.01f;
    double best = 1e9;
    for (int r = 0; r <= calls; r++) {
        double t0 = cpu_seconds();
        cblas_sgemm(CblasRowMajor, p.transA ? CblasTrans : CblasNoTrans, p.transB ? CblasTrans : CblasNoTrans, p.m, p.n,
                    p.k, 1, a, colsA, b, colsB, 1, c, p.n);
        double t = cpu_seconds() - t0;
        if (r > 0 && t < best) best = t;
    }
    free(a), free(b), free(c);
    return best;
}

int main(int argc, char **argv) {
    if (argc != 3 || (strcmp(argv[1], "A") && strcmp(argv[1], "B")) || atoi(argv[2]) < 1 || atoi(argv[2]) > 8) {
        fprintf(stderr, "usage: %s A|B P (config and stream count 1-8)\n", argv[0]);
        return 2;
    }
    openblas_set_num_threads(1);
    int isB = !strcmp(argv[1], "B"), P = atoi(argv[2]);
    int H = isB ? 256 : 128, L = isB ? 6 : 4, NH = isB ? 8 : 4, KVH = isB ? 4 : 2, Inter = isB ? 688 : 352;
    int S = isB ? 256 : 128, batch = 8, V = 256, hd = H / NH, qkv = (NH + 2 * KVH) * hd;
    int rows = P * batch / 2 * S, n = batch / 2 * S;  // one of two cores' share

    double ghz = clock_ghz(), peak = fma_peak_gflops();
    printf("clock %.2f GHz; FMA peak one core %.1f GFLOP/s = %.1f FLOP/cycle (2 FMA x 8 lanes x 2 = 32 in theory)\n",
           ghz, peak, peak / ghz);
    Product big = {"1024^3", 0, 0, 1024, 1024, 1024};
    double t = time_product(big, 3);
    printf("sgemm 1024^3 one core: %.1f GFLOP/s, %.0f%% of the FMA peak\n", 2e-9 * 1024 * 1024 * 1024 / t,
           100 * 2e-9 * 1024 * 1024 * 1024 / t / peak);

    // One layer's products (forward, then backward: dX = dOut W, dW += dOut^T x), and the head.
    Product layer[] = {
        {"qkv", 0, 1, rows, qkv, H},       {"o", 0, 1, rows, H, NH * hd},   {"gate/up", 0, 1, rows, 2 * Inter, H},
        {"down", 0, 1, rows, H, Inter},        {"down dX", 0, 0, rows, Inter, H},   {"down dW", 1, 0, H, Inter, rows},
        {"gate/up dX", 0, 0, rows, H, 2 * Inter}, {"gate/up dW", 1, 0, 2 * Inter, H, rows}, {"o dX", 0, 0, rows, NH * hd, H},
        {"o dW", 1, 0, H, NH * hd, rows},  {"qkv dX", 0, 0, rows, H, qkv},  {"qkv dW", 1, 0, qkv, H, rows},
    };
    Product head[] = {{"head", 0, 1, n, V, H}, {"head dX", 0, 0, n, H, V}, {"head dW", 1, 0, V, H, n}};
    printf("config %s, P = %d, %d rows per core\nproduct        M      N      K   GFLOP/s  of peak\n", argv[1], P, rows);
    double flops = 0, seconds = 0;
    for (int pass = 0; pass < 2; pass++) {
        Product *list = pass ? head : layer;
        int count = pass ? 3 : 12, times = pass ? 1 : L;
        for (int i = 0; i < count; i++) {
            double f = 2.0 * list[i].m * list[i].n * list[i].k, s = time_product(list[i], 3);
            printf("%-10s %6d %6d %6d %9.1f %7.0f%%\n", list[i].name, list[i].m, list[i].n, list[i].k, f / s / 1e9,
                   100 * f / s / 1e9 / peak);
            flops += times * f, seconds += times * s;
        }
    }
    printf("all products of the step (one core's share, attention's not included): %.1f ms, %.1f GFLOP/s, %.0f%% of the FMA peak\n",
           seconds * 1e3, flops / seconds / 1e9, 100 * flops / seconds / 1e9 / peak);

    // Attention as AttentionOps runs it: per (sequence, head, layer), query blocks of 64 against the
    // keys the block's last query sees (T = 48 prefix slots); forward Q K^T and P V, backward
    // Q K^T again, dO V^T, dS K, dS^T Q, P^T dO.
    int T = 48, block = 64, items = P * batch / 2 * NH * L;
    double aFlops = 0, aSeconds = 0;
    for (int t0 = 0; t0 < S; t0 += block) {
        int count = S - t0 < block ? S - t0 : block, seen = T + t0 + count;
        Product blockProducts[] = {
            {"QK^T", 0, 1, count, seen, hd}, {"PV", 0, 0, count, hd, seen}, {"QK^T", 0, 1, count, seen, hd},
            {"dO V^T", 0, 1, count, seen, hd}, {"dS K", 0, 0, count, hd, seen}, {"dS^T Q", 1, 0, seen, hd, count},
            {"P^T dO", 1, 0, seen, hd, count},
        };
        for (int i = 0; i < 7; i++) {
            double f = 2.0 * blockProducts[i].m * blockProducts[i].n * blockProducts[i].k;
            aFlops += items * f, aSeconds += items * time_product(blockProducts[i], 20);
        }
    }
    printf("attention products (one core's share, %d sequence-heads x layers): %.1f ms, %.1f GFLOP, %.1f GFLOP/s, %.0f%% of the FMA peak\n",
           items, aSeconds * 1e3, aFlops / 1e9, aFlops / aSeconds / 1e9, 100 * aFlops / aSeconds / 1e9 / peak);
    return 0;
}
