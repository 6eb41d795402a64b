#version 450
// out[m, n] (+)= sum_k x[m, k] * w[n, k] (+ bias[n])   -- the NT product of `linear`.
// Register blocking: each thread computes a 4x4 tile of out (lavapipe: 3.5-4.6 GFLOP/s on 2 cores;
// tune tiles on a real GPU). Element offsets into flat buffers travel as push constants.
#include "common.glsl"
layout(local_size_x = 8, local_size_y = 8) in;
layout(std430, binding = 0) readonly buffer X { float x[]; };
layout(std430, binding = 1) readonly buffer W { float w[]; };
layout(std430, binding = 2) buffer Out { float o[]; };
layout(std430, binding = 3) readonly buffer Bias { float b[]; };
layout(push_constant) uniform Push {
    uint M, N, K;
    uint xOffset, wOffset, outOffset, biasOffset;
    uint flags;  // 1: accumulate into out, 2: add bias
} p;

void main() {
    uint m0 = gl_GlobalInvocationID.y * 4, n0 = gl_GlobalInvocationID.x * 4;
    float acc[4][4];
    [[unroll]] for (int i = 0; i < 4; i++) [[unroll]] for (int j = 0; j < 4; j++) acc[i][j] = 0.0;
    for (uint k = 0; k < p.K; k++) {
        float xv[4], wv[4];
        [[unroll]] for (int i = 0; i < 4; i++) xv[i] = (m0 + i < p.M) ? x[p.xOffset + (m0 + i) * p.K + k] : 0.0;
        [[unroll]] for (int j = 0; j < 4; j++) wv[j] = (n0 + j < p.N) ? w[p.wOffset + (n0 + j) * p.K + k] : 0.0;
        [[unroll]] for (int i = 0; i < 4; i++) [[unroll]] for (int j = 0; j < 4; j++) acc[i][j] += xv[i] * wv[j];
    }
    [[unroll]] for (int i = 0; i < 4; i++) {
        [[unroll]] for (int j = 0; j < 4; j++) {
            uint m = m0 + i, n = n0 + j;
            if (m < p.M && n < p.N) {
                float v = acc[i][j];
                if ((p.flags & 2u) != 0u) v += b[p.biasOffset + n];
                uint at = p.outOffset + m * p.N + n;
                o[at] = ((p.flags & 1u) != 0u) ? o[at] + v : v;
            }
        }
    }
}
