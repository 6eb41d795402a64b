#version 450
// out[m, n] (+)= sum_k a[m, k] * b[k, n] (+ bias[n]): every matrix product of the model, its
// operands addressed through strides, so one shader serves the forward x W^T (NT), the input
// gradient dOut W (NN) and the weight gradient dOut^T x (TN).
// A work group computes a 32 x 32 tile of out, each thread a 4 x 4 block in registers. On a GPU
// (SHARED_TILES) the operands pass through shared memory 16 steps of k at a time; on a CPU device
// (lavapipe) each thread reads its operands directly, since there shared memory and barriers cost
// more than they save (2.5x slower measured). Element offsets into flat buffers travel as push constants.
#include "common.glsl"
layout(local_size_x = 8, local_size_y = 8) in;
layout(std430, binding = 0) readonly buffer A { float a[]; };
layout(std430, binding = 1) readonly buffer B { float b[]; };
layout(std430, binding = 2) buffer Out { float o[]; };
layout(std430, binding = 3) readonly buffer Bias { float bias[]; };
layout(push_constant) uniform Push { LinearPush p; };

layout(constant_id = 0) const bool SHARED_TILES = true;
const uint TILE = 32, STEP = 16;
shared float tileA[STEP][TILE];  // [k][m]
shared float tileB[STEP][TILE];  // [k][n]

float operandA(uint m, uint k) { return (m < p.M && k < p.K) ? a[p.aOffset + m * p.aRowStride + k * p.aColStride] : 0.0; }
float operandB(uint k, uint n) { return (n < p.N && k < p.K) ? b[p.bOffset + k * p.bRowStride + n * p.bColStride] : 0.0; }

void main() {
    uint tx = gl_LocalInvocationID.x, ty = gl_LocalInvocationID.y, thread = ty * 8 + tx;
    uint mTile = gl_WorkGroupID.y * TILE, nTile = gl_WorkGroupID.x * TILE;
    uint m0 = mTile + ty * 4, n0 = nTile + tx * 4;
    float acc[4][4];
    [[unroll]] for (int i = 0; i < 4; i++) [[unroll]] for (int j = 0; j < 4; j++) acc[i][j] = 0.0;
    if (SHARED_TILES) {
        for (uint k0 = 0; k0 < p.K; k0 += STEP) {
            // 64 threads load 512 elements of each operand's tile, zero outside the matrices.
            [[unroll]] for (uint l = 0; l < 8; l++) {
                uint e = thread + 64 * l, kk = e / TILE, mn = e % TILE;
                tileA[kk][mn] = operandA(mTile + mn, k0 + kk);
                tileB[kk][mn] = operandB(k0 + kk, nTile + mn);
            }
            barrier();
            for (uint kk = 0; kk < STEP; kk++) {
                float av[4], bv[4];
                [[unroll]] for (int i = 0; i < 4; i++) av[i] = tileA[kk][ty * 4 + i];
                [[unroll]] for (int j = 0; j < 4; j++) bv[j] = tileB[kk][tx * 4 + j];
                [[unroll]] for (int i = 0; i < 4; i++) [[unroll]] for (int j = 0; j < 4; j++) acc[i][j] += av[i] * bv[j];
            }
            barrier();
        }
    } else if (m0 < p.M && n0 < p.N) {  // a thread wholly outside out (few rows: decode) does nothing
        for (uint k = 0; k < p.K; k++) {
            float av[4], bv[4];
            [[unroll]] for (int i = 0; i < 4; i++) av[i] = operandA(m0 + i, k);
            [[unroll]] for (int j = 0; j < 4; j++) bv[j] = operandB(k, n0 + j);
            [[unroll]] for (int i = 0; i < 4; i++) [[unroll]] for (int j = 0; j < 4; j++) acc[i][j] += av[i] * bv[j];
        }
    }
    [[unroll]] for (int i = 0; i < 4; i++) {
        [[unroll]] for (int j = 0; j < 4; j++) {
            uint m = m0 + i, n = n0 + j;
            if (m < p.M && n < p.N) {
                float v = acc[i][j];
                if ((p.flags & 2u) != 0u) v += bias[p.biasOffset + n];
                uint at = p.outOffset + m * p.N + n;
                o[at] = ((p.flags & 1u) != 0u) ? o[at] + v : v;
            }
        }
    }
}
