#version 450
// The matrix product of linear.comp for at most 8 rows of out (decode steps: P*B rows): there a
// 32 x 32 tile would leave most of its threads idle. One work group per column n: its 64 threads
// split the sum over k (reading b's column n contiguously in the x W^T form, where b[k, n] =
// W[n, k]), each keeping one sum per row, then add their sums in shared memory.
#include "common.glsl"
layout(local_size_x = 64) in;
layout(std430, binding = 0) readonly buffer A { float a[]; };
layout(std430, binding = 1) readonly buffer B { float b[]; };
layout(std430, binding = 2) buffer Out { float o[]; };
layout(std430, binding = 3) readonly buffer Bias { float bias[]; };
layout(push_constant) uniform Push { LinearPush p; };

const uint MAX_ROWS = 8, THREADS = 64;
shared float sums[MAX_ROWS][THREADS];

void main() {
    uint n = group_index(), t = gl_LocalInvocationID.x;
    if (n >= p.N) return;
    float s[MAX_ROWS];
    [[unroll]] for (uint r = 0; r < MAX_ROWS; r++) s[r] = 0.0;
    for (uint k = t; k < p.K; k += THREADS) {
        float bk = b[p.bOffset + k * p.bRowStride + n * p.bColStride];
        [[unroll]] for (uint r = 0; r < MAX_ROWS; r++) {
            if (r < p.M) s[r] += a[p.aOffset + r * p.aRowStride + k * p.aColStride] * bk;
        }
    }
    [[unroll]] for (uint r = 0; r < MAX_ROWS; r++) sums[r][t] = s[r];
    barrier();
    for (uint stride = THREADS / 2; stride > 0; stride >>= 1) {
        if (t < stride) {
            [[unroll]] for (uint r = 0; r < MAX_ROWS; r++) sums[r][t] += sums[r][t + stride];
        }
        barrier();
    }
    if (t < p.M) {
        uint i = p.outOffset + t * p.N + n;
        float v = sums[t][0];
        if ((p.flags & 2u) != 0u) v += bias[p.biasOffset + n];
        if ((p.flags & 1u) != 0u) v += o[i];
        o[i] = v;
    }
}
