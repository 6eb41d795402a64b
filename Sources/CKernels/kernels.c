// Hand-vectorised kernels where OpenBLAS is the wrong tool. Plain C twin beside each AVX2 version
// (and the few-rows kernel's AVX-512 one); the choice is made at run time, so the binary still
// runs on CPUs without AVX2 or AVX-512.
#include "ckernels.h"
#include <math.h>
#include <stdlib.h>

#if defined(__x86_64__)
#include <immintrin.h>
#define PS_X86 1
#endif

static void store(float *out, const float *bias, int outDim, int m, int j, float v, int accumulate) {
    if (bias) v += bias[j];
    float *o = out + (long)m * outDim + j;
    *o = accumulate ? *o + v : v;
}

void ps_few_rows_nt_plain(const float *x, const float *w, const float *bias, float *out,
                           int rows, int n, int outDim, int j0, int j1, int accumulate) {
    for (int j = j0; j < j1; j++) {
        const float *wj = w + (long)j * n;
        for (int m = 0; m < rows; m++) {
            const float *xm = x + (long)m * n;
            float s0 = 0, s1 = 0, s2 = 0, s3 = 0;
            int i = 0;
            for (; i + 4 <= n; i += 4) {
                s0 += wj[i] * xm[i];
                s1 += wj[i + 1] * xm[i + 1];
                s2 += wj[i + 2] * xm[i + 2];
                s3 += wj[i + 3] * xm[i + 3];
            }
            for (; i < n; i++) s0 += wj[i] * xm[i];
            store(out, bias, outDim, m, j, (s0 + s1) + (s2 + s3), accumulate);
        }
    }
}

#ifdef PS_X86
__attribute__((target("avx2,fma"))) static inline float hsum256(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_shuffle_ps(s, s, 1));
    return _mm_cvtss_f32(s);
}

// One tile: MB input rows by NB weight rows, MB*NB accumulators in registers (at most 4 x 3 = 12
// of the 16 ymm registers, the rest for loads: 7 loads per 12 FMAs), summed over `len` columns of
// rows `n` apart (len < n: one block of columns, see few_rows_avx2). Each step also prefetches
// weights ahead into L2 (`pf`; PF = 0 for matrices of < 5 rows), so reading the next weights from
// memory overlaps the arithmetic on these: PF = 1, whole rows, two lines per step, a tile covering
// 4 rows' worth; PF = 2, one block of columns, the same columns of the 3 rows at `pf`, one line
// each per 16 columns. Without it, or with the prefetch to L1 (_MM_HINT_T0, where the lines
// crowd out the input rows), a product of 8 rows cost the memory time plus the arithmetic time:
// 1024 x 22528 weights on one core, 8 rows 9-10 ms against 5 ms for one row; with it 6.3-7.5 ms
// (CPU time of the thread; Tools/bench/RESULTS.md, issue #19). `always_inline` with constant MB,
// NB and PF unrolls the loops and keeps the accumulators in registers.
__attribute__((target("avx2,fma"), always_inline)) static inline void few_rows_tile(
    const float *x, const float *w, const float *bias, float *out, int n, int len, int outDim, int m, int j,
    int accumulate, const float *pf, int MB, int NB, int PF) {
    __m256 acc[4][3];
    for (int a = 0; a < MB; a++)
        for (int b = 0; b < NB; b++) acc[a][b] = _mm256_setzero_ps();
    const float *xr[4], *wr[3];
    for (int a = 0; a < MB; a++) xr[a] = x + (long)(m + a) * n;
    for (int b = 0; b < NB; b++) wr[b] = w + (long)(j + b) * n;
    int i = 0;
    for (; i + 8 <= len; i += 8) {
        if (PF == 1) {
            _mm_prefetch((const char *)(pf + 4 * i), _MM_HINT_T1);
            _mm_prefetch((const char *)(pf + 4 * i + 16), _MM_HINT_T1);
        } else if (PF == 2 && (i & 15) == 0) {
            _mm_prefetch((const char *)(pf + i), _MM_HINT_T1);
            _mm_prefetch((const char *)(pf + n + i), _MM_HINT_T1);
            _mm_prefetch((const char *)(pf + 2 * (long)n + i), _MM_HINT_T1);
        }
        __m256 wv[3];
        for (int b = 0; b < NB; b++) wv[b] = _mm256_loadu_ps(wr[b] + i);
        for (int a = 0; a < MB; a++) {
            __m256 xv = _mm256_loadu_ps(xr[a] + i);
            for (int b = 0; b < NB; b++) acc[a][b] = _mm256_fmadd_ps(xv, wv[b], acc[a][b]);
        }
    }
    for (int a = 0; a < MB; a++)
        for (int b = 0; b < NB; b++) {
            float s = hsum256(acc[a][b]);
            for (int t = i; t < len; t++) s += wr[b][t] * xr[a][t];
            store(out, bias, outDim, m + a, j + b, s, accumulate);
        }
}

// Input rows in the tile that starts at row m: `tile` at most, but never all of 2..tile rows in
// one pass (2 rows go 1 + 1, 4 rows 3 + 1, ...): each further pass reads the block of weights
// from L1 and prefetches its lines again, and a single pass of several rows streams slower. Both
// cores, 1024 x 45056, CPU time: 2 rows 3.0-3.3 ms in two passes against 3.6-3.9 in one (AVX-512),
// 3.3-3.4 against 4.2-4.5 (AVX2); 3 rows over 2816-column blocks (AVX2) 3.5 against 5.0-5.2.
static inline int tile_rows(int rows, int m, int tile) {
    if (m == 0 && rows > 1 && rows <= tile) return rows - 1;
    return rows - m >= tile ? tile : rows - m;
}

// Input rows in groups of 4 (see tile_rows), weight rows in blocks of 3 (then 1):
// a block of weights is read from memory once and from L1 again for each further group of rows.
// `blocked`: x and w start at a block of `len` columns (prefetch PF = 2).
__attribute__((target("avx2,fma"))) static void few_rows_pass(
    const float *x, const float *w, const float *bias, float *out, int rows, int n, int len, int outDim,
    int j0, int j1, int accumulate, int blocked) {
    for (int j = j0; j < j1;) {
        int nb = j + 3 <= j1 ? 3 : 1;
        // Prefetch from 3 rows past the next block; with whole rows a tile covers 4 rows' worth and
        // later groups of input rows re-touch lines already on their way. Nothing past the
        // weights' last row is touched: near the end the last rows are re-touched.
        long ahead = j + nb + 3 <= outDim - 5 ? j + nb + 3 : outDim - 5;
        const float *pf = w + (ahead > 0 ? ahead : 0) * n;
        int prefetch = outDim < 5 ? 0 : blocked ? 2 : 1;
        for (int m = 0; m < rows;) {
            int mb = tile_rows(rows, m, 4);
#define PS_TILE(MB, NB)                                                                                  \
    (prefetch == 2   ? few_rows_tile(x, w, bias, out, n, len, outDim, m, j, accumulate, pf, MB, NB, 2)   \
     : prefetch == 1 ? few_rows_tile(x, w, bias, out, n, len, outDim, m, j, accumulate, pf, MB, NB, 1)   \
                     : few_rows_tile(x, w, bias, out, n, len, outDim, m, j, accumulate, pf, MB, NB, 0))
            if (nb == 3) {
                switch (mb) {
                case 4: PS_TILE(4, 3); break;
                case 3: PS_TILE(3, 3); break;
                case 2: PS_TILE(2, 3); break;
                default: PS_TILE(1, 3); break;
                }
            } else {
                switch (mb) {
                case 4: PS_TILE(4, 1); break;
                case 3: PS_TILE(3, 1); break;
                case 2: PS_TILE(2, 1); break;
                default: PS_TILE(1, 1); break;
                }
            }
#undef PS_TILE
            m += mb;
        }
        j += nb;
    }
}

// Where the input rows and a block of weight rows are far beyond L1 (32 KiB) — the down
// projection's 8 rows of 2816 are 90 KB — every tile reloads them from L2, which then bounds the
// arithmetic: the columns go in blocks of `kc` (8 rows: 512; rows and 3 weight rows then take
// 22 KB), each block a pass over the weight rows that adds into `out`. 8 x 2816 x 16384 on both
// cores: 4.5-4.6 ms against 6.5 ms in one pass. Where they fit about (1024 columns) one pass is
// faster (4.7 against 5.1 ms): the blocks break the weight stream into pieces.
static int few_rows_in_one_pass(int rows, int n) { return rows < 3 || (long)(rows + 3) * n <= 16384; }

__attribute__((target("avx2,fma"))) static void few_rows_avx2(
    const float *x, const float *w, const float *bias, float *out, int rows, int n, int outDim,
    int j0, int j1, int accumulate) {
    if (few_rows_in_one_pass(rows, n)) {
        few_rows_pass(x, w, bias, out, rows, n, n, outDim, j0, j1, accumulate, 0);
        return;
    }
    int kc = 6144 / (rows + 3) / 64 * 64;
    for (int k0 = 0; k0 < n; k0 += kc) {
        int len = n - k0 < kc ? n - k0 : kc;
        few_rows_pass(x + k0, w + k0, k0 == 0 ? bias : 0, out, rows, n, len, outDim, j0, j1, k0 == 0 ? accumulate : 1, 1);
    }
}

// ---- the few-rows kernel on AVX-512 (zmm) ------------------------------------------------------
// The one-pass product (few_rows_pass without column blocks) with 16 columns per step: half the
// instructions per weight byte of the ymm tiles. Tiles of 3 input rows x 4 weight rows (8 rows:
// three passes, 3 + 3 + 2, over each block of 4 weight rows; 4 x 4 tiles, 4 + 4, and one pass of
// all 8 rows in 8 x 3 or 8 x 2 tiles were slower); the column tail is a masked load.
// 1024 x 45056 on both cores, CPU time: 8 rows 4.3-4.5 ms against 4.6-4.7 for the ymm kernel,
// 4 rows 3.0-3.3 against 4.0-4.2, 1 row 3.1-3.5 against 3.5-3.8. Where the product takes column
// blocks (down projection) this version was slower (5.5-5.9 against 4.7-4.8 ms), so those stay on
// AVX2: see ps_few_rows_nt and Tools/bench/RESULTS.md (issue #19, third round).
__attribute__((target("avx512f"), always_inline)) static inline void few_rows_tile512(
    const float *x, const float *w, const float *bias, float *out, int n, int outDim, int m, int j,
    int accumulate, const float *pf, int MB, int NB, int PF) {
    __m512 acc[3][4];
    for (int a = 0; a < MB; a++)
        for (int b = 0; b < NB; b++) acc[a][b] = _mm512_setzero_ps();
    const float *xr[3], *wr[4];
    for (int a = 0; a < MB; a++) xr[a] = x + (long)(m + a) * n;
    for (int b = 0; b < NB; b++) wr[b] = w + (long)(j + b) * n;
    int i = 0;
    for (; i + 16 <= n; i += 16) {
        // NB rows' worth of lines from `pf` per tile, as in few_rows_tile (PF = 1).
        if (PF) for (int b = 0; b < NB; b++) _mm_prefetch((const char *)(pf + NB * i + 16 * b), _MM_HINT_T1);
        __m512 wv[4];
        for (int b = 0; b < NB; b++) wv[b] = _mm512_loadu_ps(wr[b] + i);
        for (int a = 0; a < MB; a++) {
            __m512 xv = _mm512_loadu_ps(xr[a] + i);
            for (int b = 0; b < NB; b++) acc[a][b] = _mm512_fmadd_ps(xv, wv[b], acc[a][b]);
        }
    }
    if (i < n) {
        __mmask16 k = (__mmask16)((1u << (n - i)) - 1);
        __m512 wv[4];
        for (int b = 0; b < NB; b++) wv[b] = _mm512_maskz_loadu_ps(k, wr[b] + i);
        for (int a = 0; a < MB; a++) {
            __m512 xv = _mm512_maskz_loadu_ps(k, xr[a] + i);
            for (int b = 0; b < NB; b++) acc[a][b] = _mm512_fmadd_ps(xv, wv[b], acc[a][b]);
        }
    }
    for (int a = 0; a < MB; a++)
        for (int b = 0; b < NB; b++) store(out, bias, outDim, m + a, j + b, _mm512_reduce_add_ps(acc[a][b]), accumulate);
}

__attribute__((target("avx512f"))) static void few_rows_avx512(
    const float *x, const float *w, const float *bias, float *out, int rows, int n, int outDim,
    int j0, int j1, int accumulate) {
    for (int j = j0; j < j1;) {
        int nb = j + 4 <= j1 ? 4 : 1;
        // As in few_rows_pass: from 3 rows past the next block, never past the last row.
        long ahead = j + nb + 3 <= outDim - 6 ? j + nb + 3 : outDim - 6;
        const float *pf = w + (ahead > 0 ? ahead : 0) * n;
        int prefetch = outDim >= 6;
        for (int m = 0; m < rows;) {
            int mb = tile_rows(rows, m, 3);
#define PS_TILE512(MB, NB)                                                                           \
    (prefetch ? few_rows_tile512(x, w, bias, out, n, outDim, m, j, accumulate, pf, MB, NB, 1)       \
              : few_rows_tile512(x, w, bias, out, n, outDim, m, j, accumulate, pf, MB, NB, 0))
            if (nb == 4) {
                if (mb == 3) PS_TILE512(3, 4); else if (mb == 2) PS_TILE512(2, 4); else PS_TILE512(1, 4);
            } else {
                if (mb == 3) PS_TILE512(3, 1); else if (mb == 2) PS_TILE512(2, 1); else PS_TILE512(1, 1);
            }
#undef PS_TILE512
            m += mb;
        }
        j += nb;
    }
}
#endif

static _Thread_local int this_thread_serial;
void ps_set_this_thread_serial(int serial) { this_thread_serial = serial; }
int ps_this_thread_serial(void) { return this_thread_serial; }

int ps_kernels_use_avx2(void) {
#ifdef PS_X86
    /* Called from every worker of a parallel loop: the cache is read and written atomically
       (relaxed: every thread computes the same value), a plain int is a data race (ThreadSanitizer,
       issue #16). Relaxed loads and stores are plain moves on x86. */
    static int cached = -1;
    int c = __atomic_load_n(&cached, __ATOMIC_RELAXED);
    if (c < 0) {
        __builtin_cpu_init();
        c = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
        __atomic_store_n(&cached, c, __ATOMIC_RELAXED);
    }
    return c;
#else
    return 0;
#endif
}

int ps_kernels_have_avx512(void) {
#ifdef PS_X86
    static int cached = -1;  // as in ps_kernels_use_avx2
    int c = __atomic_load_n(&cached, __ATOMIC_RELAXED);
    if (c < 0) {
        __builtin_cpu_init();
        c = ps_kernels_use_avx2() && __builtin_cpu_supports("avx512f");
        __atomic_store_n(&cached, c, __ATOMIC_RELAXED);
    }
    return c;
#else
    return 0;
#endif
}

int ps_kernels_use_avx512(void) {
    static int cached = -1;
    int c = __atomic_load_n(&cached, __ATOMIC_RELAXED);
    if (c < 0) {
        const char *off = getenv("PARSCALE_NO_AVX512");
        c = ps_kernels_have_avx512() && !(off && *off && *off != '0');
        __atomic_store_n(&cached, c, __ATOMIC_RELAXED);
    }
    return c;
}

#ifdef PS_X86
// AVX-512 where asked for and the product takes one pass (see few_rows_avx512), else AVX2.
static void few_rows_x86(const float *x, const float *w, const float *bias, float *out,
                         int rows, int n, int outDim, int j0, int j1, int accumulate, int avx512) {
    if (avx512 && few_rows_in_one_pass(rows, n)) few_rows_avx512(x, w, bias, out, rows, n, outDim, j0, j1, accumulate);
    else few_rows_avx2(x, w, bias, out, rows, n, outDim, j0, j1, accumulate);
}
#endif

int ps_few_rows_nt_isa(const float *x, const float *w, const float *bias, float *out,
                       int rows, int n, int outDim, int j0, int j1, int accumulate, int isa) {
#ifdef PS_X86
    if ((isa == 2 && ps_kernels_have_avx512()) || (isa == 1 && ps_kernels_use_avx2())) {
        few_rows_x86(x, w, bias, out, rows, n, outDim, j0, j1, accumulate, isa == 2);
        return 1;
    }
#endif
    return 0;
}

void ps_few_rows_nt(const float *x, const float *w, const float *bias, float *out,
                    int rows, int n, int outDim, int j0, int j1, int accumulate) {
#ifdef PS_X86
    if (ps_kernels_use_avx2()) {
        few_rows_x86(x, w, bias, out, rows, n, outDim, j0, j1, accumulate, ps_kernels_use_avx512());
        return;
    }
#endif
    ps_few_rows_nt_plain(x, w, bias, out, rows, n, outDim, j0, j1, accumulate);
}

// ---- decode attention -----------------------------------------------------------------------
// One new query per row (decode, S = 1). The sgemm attention makes two small OpenBLAS calls per
// (row, head), whose set-up cost is most of the work at S = 1: about 7% of a P = 8 decode step
// (Tools/bench/RESULTS.md, issue #19). Here one (row, kv head) pair reads its keys and values
// once for the `group` query heads that share them.

void ps_decode_attention_plain(const float *qkv, const float *keys, const float *values, float *out,
                               float *logSumExp, int qkvStride, int heads, int kvHeads, int hd,
                               int capacity, int visible, float scale, int item0, int item1, float *scores) {
    int group = heads / kvHeads;
    for (int item = item0; item < item1; item++) {
        int row = item / kvHeads, kvh = item % kvHeads;
        const float *k = keys + ((long)item * capacity) * hd, *v = values + ((long)item * capacity) * hd;
        for (int g = 0; g < group; g++) {
            int h = kvh * group + g;
            const float *q = qkv + (long)row * qkvStride + (long)h * hd;
            float *o = out + ((long)row * heads + h) * hd;
            for (int j = 0; j < visible; j++) {
                float s = 0;
                for (int i = 0; i < hd; i++) s += q[i] * k[(long)j * hd + i];
                scores[j] = s * scale;
            }
            float lse = ps_softmax_row(scores, visible, visible);  // all keys seen: no masked tail
            if (logSumExp) logSumExp[(long)row * heads + h] = lse;
            for (int i = 0; i < hd; i++) o[i] = 0;
            for (int j = 0; j < visible; j++)
                for (int i = 0; i < hd; i++) o[i] += scores[j] * v[(long)j * hd + i];
        }
    }
}

#ifdef PS_X86
// Scores of GB query heads (consecutive in qkv, GB <= 4) against keys 0..<visible: each key's
// 8-wide chunks are loaded once and dotted with every head's (GB accumulators), and the GB sums
// come out of one horizontal reduction. scores [GB][visible].
__attribute__((target("avx2,fma"), always_inline)) static inline void decode_scores_tile(
    const float *q, const float *k, const float *pf, int hd, int visible, float scale, float *scores, int GB) {
    for (int j = 0; j < visible; j++) {
        const float *kj = k + (long)j * hd;
        if (pf)
            for (int r = 0; r < hd; r += 16) _mm_prefetch((const char *)(pf + (long)j * hd + r), _MM_HINT_T1);
        __m256 acc[4] = {_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps()};
        int i = 0;
        for (; i + 8 <= hd; i += 8) {
            __m256 kv = _mm256_loadu_ps(kj + i);
            for (int g = 0; g < GB; g++) acc[g] = _mm256_fmadd_ps(_mm256_loadu_ps(q + g * hd + i), kv, acc[g]);
        }
        // hadd(hadd(a0, a1), hadd(a2, a3)) holds the four sums of each 128-bit half.
        __m256 h = _mm256_hadd_ps(_mm256_hadd_ps(acc[0], acc[1]), _mm256_hadd_ps(acc[2], acc[3]));
        float sums[4];
        _mm_storeu_ps(sums, _mm_add_ps(_mm256_castps256_ps128(h), _mm256_extractf128_ps(h, 1)));
        for (int g = 0; g < GB; g++) {
            float t = sums[g];
            for (int r = i; r < hd; r++) t += q[g * hd + r] * kj[r];
            scores[(long)g * visible + j] = t * scale;
        }
    }
}

// o[g, i0 ..< i0 + 8 CB] = sum_j p[g, j] v[j, same columns] for GB heads: GB x CB accumulators
// (at most 4 x 3), each value chunk loaded once for all GB heads.
__attribute__((target("avx2,fma"), always_inline)) static inline void decode_values_tile(
    const float *p, const float *v, const float *pf, int hd, int visible, int i0, float *o, int GB, int CB) {
    __m256 acc[4][3];
    for (int g = 0; g < GB; g++)
        for (int c = 0; c < CB; c++) acc[g][c] = _mm256_setzero_ps();
    for (int j = 0; j < visible; j++) {
        const float *vj = v + (long)j * hd + i0;
        if (pf)
            for (int r = 0; r < hd; r += 16) _mm_prefetch((const char *)(pf + (long)j * hd + r), _MM_HINT_T1);
        __m256 vv[3];
        for (int c = 0; c < CB; c++) vv[c] = _mm256_loadu_ps(vj + 8 * c);
        for (int g = 0; g < GB; g++) {
            __m256 pg = _mm256_broadcast_ss(p + (long)g * visible + j);
            for (int c = 0; c < CB; c++) acc[g][c] = _mm256_fmadd_ps(pg, vv[c], acc[g][c]);
        }
    }
    for (int g = 0; g < GB; g++)
        for (int c = 0; c < CB; c++) _mm256_storeu_ps(o + (long)g * hd + i0 + 8 * c, acc[g][c]);
}

// One (row, kv head) pair's query heads in blocks of up to 4 (each key and value row read once
// per block); the head size in blocks of 24 columns, its last hd % 8 in scalar.
__attribute__((target("avx2,fma"))) static void decode_attention_avx2(
    const float *qkv, const float *keys, const float *values, float *out, float *logSumExp, int qkvStride,
    int heads, int kvHeads, int hd, int capacity, int visible, float scale, int item0, int item1, float *scores) {
    int group = heads / kvHeads, chunks = hd / 8;
    for (int item = item0; item < item1; item++) {
        int row = item / kvHeads, kvh = item % kvHeads;
        const float *k = keys + ((long)item * capacity) * hd, *v = values + ((long)item * capacity) * hd;
        // The values are prefetched into L2 while the scores read the keys, and the next pair's
        // keys while the last head block reads the values.
        const float *nextK = item + 1 < item1 ? k + (long)capacity * hd : NULL;
        for (int g0 = 0; g0 < group;) {
            int gb = group - g0 >= 4 ? 4 : group - g0, h0 = kvh * group + g0;
            const float *q = qkv + (long)row * qkvStride + (long)h0 * hd;
            float *o = out + ((long)row * heads + h0) * hd;
            switch (gb) {
            case 4: decode_scores_tile(q, k, g0 == 0 ? v : NULL, hd, visible, scale, scores, 4); break;
            case 3: decode_scores_tile(q, k, g0 == 0 ? v : NULL, hd, visible, scale, scores, 3); break;
            case 2: decode_scores_tile(q, k, g0 == 0 ? v : NULL, hd, visible, scale, scores, 2); break;
            default: decode_scores_tile(q, k, g0 == 0 ? v : NULL, hd, visible, scale, scores, 1); break;
            }
            for (int g = 0; g < gb; g++) {
                float lse = ps_softmax_row(scores + (long)g * visible, visible, visible);
                if (logSumExp) logSumExp[(long)row * heads + h0 + g] = lse;
            }
            for (int c0 = 0; c0 < chunks;) {
                int cb = chunks - c0 >= 3 ? 3 : chunks - c0;
#define PS_VALUES(GB)                                                                               \
    (cb == 3   ? decode_values_tile(scores, v, c0 == 0 && g0 + gb >= group ? nextK : NULL, hd, visible, 8 * c0, o, GB, 3)                       \
     : cb == 2 ? decode_values_tile(scores, v, c0 == 0 && g0 + gb >= group ? nextK : NULL, hd, visible, 8 * c0, o, GB, 2)                       \
               : decode_values_tile(scores, v, c0 == 0 && g0 + gb >= group ? nextK : NULL, hd, visible, 8 * c0, o, GB, 1))
                switch (gb) {
                case 4: PS_VALUES(4); break;
                case 3: PS_VALUES(3); break;
                case 2: PS_VALUES(2); break;
                default: PS_VALUES(1); break;
                }
#undef PS_VALUES
                c0 += cb;
            }
            for (int g = 0; g < gb; g++)
                for (int i = 8 * chunks; i < hd; i++) {
                    float t = 0;
                    for (int j = 0; j < visible; j++) t += scores[(long)g * visible + j] * v[(long)j * hd + i];
                    o[(long)g * hd + i] = t;
                }
            g0 += gb;
        }
    }
}
#endif

void ps_decode_attention(const float *qkv, const float *keys, const float *values, float *out, float *logSumExp,
                         int qkvStride, int heads, int kvHeads, int hd, int capacity, int visible, float scale,
                         int item0, int item1, float *scores) {
#ifdef PS_X86
    if (ps_kernels_use_avx2()) {
        decode_attention_avx2(qkv, keys, values, out, logSumExp, qkvStride, heads, kvHeads, hd, capacity, visible,
                              scale, item0, item1, scores);
        return;
    }
#endif
    ps_decode_attention_plain(qkv, keys, values, out, logSumExp, qkvStride, heads, kvHeads, hd, capacity, visible,
                              scale, item0, item1, scores);
}

// ---- exp ----------------------------------------------------------------------------------
// exp(x) = 2^k * exp(r), x = k ln2 + r, |r| <= ln2/2, exp(r) by a degree-6 polynomial
// (Cephes expf coefficients). Inputs below -87 flush to 0, as expf underflows there.

#ifdef PS_X86
__attribute__((target("avx2,fma"))) static inline __m256 exp256(__m256 x) {
    const __m256 hi = _mm256_set1_ps(88.3762626647949f), lo = _mm256_set1_ps(-87.3365478515625f);
    __m256 underflow = _mm256_cmp_ps(x, lo, _CMP_LT_OQ);
    x = _mm256_min_ps(_mm256_max_ps(x, lo), hi);
    __m256 k = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504088896341f)),
                               _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m256 r = _mm256_fnmadd_ps(k, _mm256_set1_ps(0.693359375f), x);
    r = _mm256_fnmadd_ps(k, _mm256_set1_ps(-2.12194440e-4f), r);
    __m256 p = _mm256_set1_ps(1.9875691500E-4f);
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.3981999507E-3f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(8.3334519073E-3f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(4.1665795894E-2f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.6666665459E-1f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(5.0000001201E-1f));
    __m256 r2 = _mm256_mul_ps(r, r);
    p = _mm256_fmadd_ps(p, r2, _mm256_add_ps(r, _mm256_set1_ps(1.0f)));
    __m256i bits = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(k), _mm256_set1_epi32(127)), 23);
    __m256 result = _mm256_mul_ps(p, _mm256_castsi256_ps(bits));
    return _mm256_andnot_ps(underflow, result);
}

__attribute__((target("avx2,fma"))) static float exp_shifted_avx2(float *x, int n, float shift) {
    __m256 total = _mm256_setzero_ps(), s = _mm256_set1_ps(shift);
    int i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256 e = exp256(_mm256_sub_ps(_mm256_loadu_ps(x + i), s));
        _mm256_storeu_ps(x + i, e);
        total = _mm256_add_ps(total, e);
    }
    float sum = hsum256(total);
    for (; i < n; i++) { x[i] = expf(x[i] - shift); sum += x[i]; }
    return sum;
}

__attribute__((target("avx2,fma"))) static inline __m256 sigmoid256(__m256 g) {
    __m256 one = _mm256_set1_ps(1.0f);
    return _mm256_div_ps(one, _mm256_add_ps(one, exp256(_mm256_sub_ps(_mm256_setzero_ps(), g))));
}

__attribute__((target("avx2,fma"))) static void swiglu_forward_avx2(const float *gu, float *out, long rows, int dim) {
    for (long r = 0; r < rows; r++) {
        const float *g = gu + r * 2 * dim, *u = g + dim;
        float *o = out + r * dim;
        int i = 0;
        for (; i + 8 <= dim; i += 8) {
            __m256 gv = _mm256_loadu_ps(g + i);
            _mm256_storeu_ps(o + i, _mm256_mul_ps(_mm256_mul_ps(gv, sigmoid256(gv)), _mm256_loadu_ps(u + i)));
        }
        for (; i < dim; i++) o[i] = g[i] / (1 + expf(-g[i])) * u[i];
    }
}

__attribute__((target("avx2,fma"))) static void swiglu_backward_avx2(const float *dOut, const float *gu, float *dgu, long rows, int dim) {
    __m256 one = _mm256_set1_ps(1.0f);
    for (long r = 0; r < rows; r++) {
        const float *g = gu + r * 2 * dim, *u = g + dim, *dy = dOut + r * dim;
        float *dg = dgu + r * 2 * dim, *du = dg + dim;
        int i = 0;
        for (; i + 8 <= dim; i += 8) {
            __m256 gv = _mm256_loadu_ps(g + i), sv = sigmoid256(gv), dv = _mm256_loadu_ps(dy + i);
            __m256 grad = _mm256_mul_ps(sv, _mm256_fmadd_ps(gv, _mm256_sub_ps(one, sv), one));
            _mm256_storeu_ps(dg + i, _mm256_mul_ps(_mm256_mul_ps(dv, _mm256_loadu_ps(u + i)), grad));
            _mm256_storeu_ps(du + i, _mm256_mul_ps(dv, _mm256_mul_ps(gv, sv)));
        }
        for (; i < dim; i++) {
            float sg = 1 / (1 + expf(-g[i]));
            dg[i] = dy[i] * u[i] * sg * (1 + g[i] * (1 - sg));
            du[i] = dy[i] * g[i] * sg;
        }
    }
}
// ---- softmax rows of the attention ---------------------------------------------------------
// A row of `width` scores of which the first `visible` are seen (the rest masked): each pass
// covers the whole row in 8-lane chunks, the masked lanes of the chunk at `visible` set to -inf
// (exp gives 0) or blended to 0, so the masked tail needs no pass of its own and no lane is
// left to scalar code; the last chunk of the row stores only its lanes below `width` (the next
// row follows it in memory).

__attribute__((target("avx2"))) static inline __m256 lanes_below(int n) {  // lane i all ones when i < n
    return _mm256_castsi256_ps(_mm256_cmpgt_epi32(_mm256_set1_epi32(n), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7)));
}

__attribute__((target("avx2"))) static inline void store_below(float *x, __m256 v, int n) {  // lanes < n
    if (n >= 8) _mm256_storeu_ps(x, v);
    else _mm256_maskstore_ps(x, _mm256_castps_si256(lanes_below(n)), v);
}

// Lanes < n from x, 0 beyond (nothing read past x + n).
__attribute__((target("avx2"))) static inline __m256 load_below(const float *x, int n) {
    return n >= 8 ? _mm256_loadu_ps(x) : _mm256_maskload_ps(x, _mm256_castps_si256(lanes_below(n)));
}

// The row's first `visible` lanes from x, -inf beyond (nothing read past x + visible).
__attribute__((target("avx2"))) static inline __m256 load_visible(const float *x, int visible) {
    if (visible >= 8) return _mm256_loadu_ps(x);
    __m256 seen = lanes_below(visible);
    return _mm256_blendv_ps(_mm256_set1_ps(-INFINITY), _mm256_maskload_ps(x, _mm256_castps_si256(seen)), seen);
}

__attribute__((target("avx2,fma"))) static float softmax_row_avx2(float *x, int visible, int width) {
    __m256 m = _mm256_set1_ps(-INFINITY);
    for (int j = 0; j < visible; j += 8) m = _mm256_max_ps(m, load_visible(x + j, visible - j));
    __m128 h = _mm_max_ps(_mm256_castps256_ps128(m), _mm256_extractf128_ps(m, 1));
    h = _mm_max_ps(h, _mm_movehl_ps(h, h));
    float maxScore = _mm_cvtss_f32(_mm_max_ss(h, _mm_shuffle_ps(h, h, 1)));
    __m256 shift = _mm256_set1_ps(maxScore), total = _mm256_setzero_ps();
    for (int j = 0; j < visible; j += 8) {
        __m256 e = exp256(_mm256_sub_ps(load_visible(x + j, visible - j), shift));
        store_below(x + j, e, width - j);
        total = _mm256_add_ps(total, e);
    }
    float sum = hsum256(total);
    __m256 inverse = _mm256_set1_ps(1 / sum);
    int j = 0;
    for (; j < visible; j += 8) store_below(x + j, _mm256_mul_ps(load_below(x + j, width - j), inverse), width - j);
    for (; j < width; j += 8) store_below(x + j, _mm256_setzero_ps(), width - j);
    return maxScore + logf(sum);
}

__attribute__((target("avx2,fma"))) static void softmax_backward_row_avx2(
    float *p, float *ds, int visible, int width, float lse, float rowDot, float scale) {
    __m256 l = _mm256_set1_ps(lse), d = _mm256_set1_ps(rowDot), s = _mm256_set1_ps(scale);
    int j = 0;
    for (; j < visible; j += 8) {
        __m256 pj = exp256(_mm256_sub_ps(load_visible(p + j, visible - j), l));
        __m256 g = _mm256_mul_ps(_mm256_mul_ps(pj, _mm256_sub_ps(load_below(ds + j, visible - j), d)), s);
        g = _mm256_and_ps(g, lanes_below(visible - j));  // masked lanes exactly 0 (not -0)
        store_below(p + j, pj, width - j);
        store_below(ds + j, g, width - j);
    }
    for (; j < width; j += 8) {
        store_below(p + j, _mm256_setzero_ps(), width - j);
        store_below(ds + j, _mm256_setzero_ps(), width - j);
    }
}
#endif

float ps_softmax_row_plain(float *x, int visible, int width) {
    float maxScore = -INFINITY, sum = 0;
    for (int j = 0; j < visible; j++) maxScore = x[j] > maxScore ? x[j] : maxScore;
    for (int j = 0; j < visible; j++) { x[j] = expf(x[j] - maxScore); sum += x[j]; }
    float inverse = 1 / sum;
    for (int j = 0; j < visible; j++) x[j] *= inverse;
    for (int j = visible; j < width; j++) x[j] = 0;
    return maxScore + logf(sum);
}

float ps_softmax_row(float *x, int visible, int width) {
#ifdef PS_X86
    if (ps_kernels_use_avx2()) return softmax_row_avx2(x, visible, width);
#endif
    return ps_softmax_row_plain(x, visible, width);
}

void ps_softmax_backward_row_plain(float *p, float *ds, int visible, int width, float lse, float rowDot, float scale) {
    for (int j = 0; j < visible; j++) {
        p[j] = expf(p[j] - lse);
        ds[j] = p[j] * (ds[j] - rowDot) * scale;
    }
    for (int j = visible; j < width; j++) p[j] = ds[j] = 0;
}

void ps_softmax_backward_row(float *p, float *ds, int visible, int width, float lse, float rowDot, float scale) {
#ifdef PS_X86
    if (ps_kernels_use_avx2()) { softmax_backward_row_avx2(p, ds, visible, width, lse, rowDot, scale); return; }
#endif
    ps_softmax_backward_row_plain(p, ds, visible, width, lse, rowDot, scale);
}


float ps_exp_shifted(float *x, int n, float shift) {
#ifdef PS_X86
    if (ps_kernels_use_avx2()) return exp_shifted_avx2(x, n, shift);
#endif
    float sum = 0;
    for (int i = 0; i < n; i++) { x[i] = expf(x[i] - shift); sum += x[i]; }
    return sum;
}

void ps_swiglu_forward(const float *gateUp, float *out, long rows, int dim) {
#ifdef PS_X86
    if (ps_kernels_use_avx2()) { swiglu_forward_avx2(gateUp, out, rows, dim); return; }
#endif
    for (long r = 0; r < rows; r++)
        for (int i = 0; i < dim; i++) {
            float g = gateUp[r * 2 * dim + i];
            out[r * dim + i] = g / (1 + expf(-g)) * gateUp[r * 2 * dim + dim + i];
        }
}

void ps_swiglu_backward(const float *dOut, const float *gateUp, float *dGateUp, long rows, int dim) {
#ifdef PS_X86
    if (ps_kernels_use_avx2()) { swiglu_backward_avx2(dOut, gateUp, dGateUp, rows, dim); return; }
#endif
    for (long r = 0; r < rows; r++)
        for (int i = 0; i < dim; i++) {
            float g = gateUp[r * 2 * dim + i], u = gateUp[r * 2 * dim + dim + i], dy = dOut[r * dim + i];
            float sg = 1 / (1 + expf(-g));
            dGateUp[r * 2 * dim + i] = dy * u * sg * (1 + g * (1 - sg));
            dGateUp[r * 2 * dim + dim + i] = dy * g * sg;
        }
}
