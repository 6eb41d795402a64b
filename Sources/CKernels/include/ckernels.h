#ifndef PARSCALE_CKERNELS_H
#define PARSCALE_CKERNELS_H

/// out[m, j] (+)= dot(x[m, :], w[j, :]) (+ bias[j]) for m < rows, j in [j0, j1).
/// x [rows, n], w [outDim, n] row-major. Each weight row is read once for all rows.
/// Uses AVX-512 for products that take one pass where the CPU has it (and PARSCALE_NO_AVX512 is
/// not set), else AVX2+FMA where the CPU has them (checked at run time), portable C otherwise.
void ps_few_rows_nt(const float *x, const float *w, const float *bias, float *out,
                    int rows, int n, int outDim, int j0, int j1, int accumulate);

/// The portable twin of ps_few_rows_nt (what it must agree with).
void ps_few_rows_nt_plain(const float *x, const float *w, const float *bias, float *out,
                          int rows, int n, int outDim, int j0, int j1, int accumulate);

/// 1 when the AVX2+FMA path is used.
int ps_kernels_use_avx2(void);

/// 1 when the CPU has AVX-512F (and AVX2+FMA).
int ps_kernels_have_avx512(void);

/// 1 when ps_few_rows_nt takes its AVX-512 path: the CPU has it and PARSCALE_NO_AVX512 is unset
/// (or "0"); read once.
int ps_kernels_use_avx512(void);

/// ps_few_rows_nt on one instruction set, whatever the dispatch would choose: isa 1 AVX2+FMA,
/// 2 AVX-512. Returns 0 (and computes nothing) where this CPU lacks it.
int ps_few_rows_nt_isa(const float *x, const float *w, const float *bias, float *out,
                       int rows, int n, int outDim, int j0, int j1, int accumulate, int isa);

/// Attention of one new query per row (decode) against its cache, for the (row, kv head) pairs
/// item0..<item1 (item = row * kvHeads + kv head). q of head h is qkv[row * qkvStride + h * hd];
/// keys / values [rows, kvHeads, capacity, hd], slots 0..<visible seen; out [rows, heads, hd];
/// logSumExp [rows, heads] when not NULL. `scores`: room for min(4, heads / kvHeads) * visible
/// floats (one per thread).
void ps_decode_attention(const float *qkv, const float *keys, const float *values, float *out, float *logSumExp,
                         int qkvStride, int heads, int kvHeads, int hd, int capacity, int visible, float scale,
                         int item0, int item1, float *scores);

/// The portable twin of ps_decode_attention.
void ps_decode_attention_plain(const float *qkv, const float *keys, const float *values, float *out,
                               float *logSumExp, int qkvStride, int heads, int kvHeads, int hd, int capacity,
                               int visible, float scale, int item0, int item1, float *scores);

/// 1 while this thread is a data-parallel training worker: its parallel loops and products stay on
/// it (it already has a core to itself). A thread-local flag, 0 on every new thread.
void ps_set_this_thread_serial(int serial);
int ps_this_thread_serial(void);

#endif

/// x[i] = exp(x[i] - shift) for i < n; returns the sum. AVX2 polynomial (relative error < 2e-7),
/// portable expf otherwise.
float ps_exp_shifted(float *x, int n, float shift);

/// Softmax of an attention row in place: x[j] = exp(x[j] - max) / sum for j < visible (max and sum
/// over those), x[j] = 0 for visible <= j < width; returns the log-sum-exp max + log(sum).
float ps_softmax_row(float *x, int visible, int width);
/// The portable twin of ps_softmax_row.
float ps_softmax_row_plain(float *x, int visible, int width);

/// The attention backward's pass over a row of scores: p[j] = exp(p[j] - lse) (the probability
/// from the scaled score) and ds[j] = p[j] (ds[j] - rowDot) scale (ds holding dO V^T) for
/// j < visible; both 0 for visible <= j < width.
void ps_softmax_backward_row(float *p, float *ds, int visible, int width, float lse, float rowDot, float scale);
/// The portable twin of ps_softmax_backward_row.
void ps_softmax_backward_row_plain(float *p, float *ds, int visible, int width, float lse, float rowDot, float scale);

/// out[r, i] = silu(g) * u with g = gateUp[r, i], u = gateUp[r, dim + i].
void ps_swiglu_forward(const float *gateUp, float *out, long rows, int dim);

/// dGateUp[r] = [dOut * u * silu'(g) | dOut * silu(g)].
void ps_swiglu_backward(const float *dOut, const float *gateUp, float *dGateUp, long rows, int dim);
