// Hand-vectorised kernels where OpenBLAS is the wrong tool. Plain C twin beside each AVX2 version;
// the choice is made at run time, so the binary still runs on CPUs without AVX2.
#include "ckernels.h"
#include <math.h>

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
// of the 16 ymm registers, the rest for loads: 7 loads per 12 FMAs). Each step also prefetches two
// cache lines of the weights two blocks ahead into L2 (`pf`; PF = 0 for matrices of < 5 rows), so
// reading the next weights from memory overlaps the arithmetic on these. Without it, or with the
// prefetch to L1 (_MM_HINT_T0, where the lines crowd out the input rows), a product of 8 rows cost
// the memory time plus the arithmetic time: 1024 x 22528 weights on one core, 8 rows 9-10 ms against
// 5 ms for one row; with it 6.3-7.5 ms (CPU time of the thread; Tools/bench/RESULTS.md, issue #19).
// `always_inline` with constant MB, NB and PF unrolls the loops and keeps the accumulators in
// registers.
__attribute__((target("avx2,fma"), always_inline)) static inline void few_rows_tile(
    const float *x, const float *w, const float *bias, float *out, int n, int outDim, int m, int j,
    int accumulate, const float *pf, int MB, int NB, int PF) {
    __m256 acc[4][3];
    for (int a = 0; a < MB; a++)
        for (int b = 0; b < NB; b++) acc[a][b] = _mm256_setzero_ps();
    const float *xr[4], *wr[3];
    for (int a = 0; a < MB; a++) xr[a] = x + (long)(m + a) * n;
    for (int b = 0; b < NB; b++) wr[b] = w + (long)(j + b) * n;
    int i = 0;
    for (; i + 8 <= n; i += 8) {
        if (PF) {
            _mm_prefetch((const char *)(pf + 4 * i), _MM_HINT_T1);
            _mm_prefetch((const char *)(pf + 4 * i + 16), _MM_HINT_T1);
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
            for (int t = i; t < n; t++) s += wr[b][t] * xr[a][t];
            store(out, bias, outDim, m + a, j + b, s, accumulate);
        }
}

// Input rows in groups of 4 (a tile of 1-3 for the rest), weight rows in blocks of 3 (then 1):
// a block of weights is read from memory once and from L1 again for each further group of rows.
__attribute__((target("avx2,fma"))) static void few_rows_avx2(
    const float *x, const float *w, const float *bias, float *out, int rows, int n, int outDim,
    int j0, int j1, int accumulate) {
    for (int j = j0; j < j1;) {
        int nb = j + 3 <= j1 ? 3 : 1;
        // Two lines per 8 columns of a tile: a tile covers 4 rows' worth of weights, starting 3 rows
        // past the next block; later groups of input rows re-touch lines already on their way.
        // Nothing past the weights' last row is touched: near the end the last rows are re-touched.
        long ahead = j + nb + 3 <= outDim - 5 ? j + nb + 3 : outDim - 5;
        const float *pf = w + (ahead > 0 ? ahead : 0) * n;
        int prefetch = outDim >= 5;
        for (int m = 0; m < rows;) {
            int mb = rows - m >= 4 ? 4 : rows - m;
#define PS_TILE(MB, NB)                                                                      \
    (prefetch ? few_rows_tile(x, w, bias, out, n, outDim, m, j, accumulate, pf, MB, NB, 1)    \
              : few_rows_tile(x, w, bias, out, n, outDim, m, j, accumulate, pf, MB, NB, 0))
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

void ps_few_rows_nt(const float *x, const float *w, const float *bias, float *out,
                    int rows, int n, int outDim, int j0, int j1, int accumulate) {
#ifdef PS_X86
    if (ps_kernels_use_avx2()) {
        few_rows_avx2(x, w, bias, out, rows, n, outDim, j0, j1, accumulate);
        return;
    }
#endif
    ps_few_rows_nt_plain(x, w, bias, out, rows, n, outDim, j0, j1, accumulate);
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
#endif

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
