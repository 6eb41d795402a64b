#version 450
// The gradient of the stream decorrelation penalty (StreamDecorrelation.swift, a training term of
// --stream-decorrelation), ADDED to dX, one work group per position i:
//   penalty = mean over positions and pairs a < b of cos(x_a, x_b)^2, so
//   d/dx_a = scale / (n pairs) * sum over b != a of 2 c_ab (x_b / (|a| |b|) - c_ab x_a / |a|^2).
// The P norms and P(P-1)/2 cosines of the position are reduced first into shared memory; at most
// maxStreams streams (the host refuses more).
#include "common.glsl"
layout(local_size_x = 64) in;
layout(std430, binding = 0) readonly buffer X { float x[]; };
layout(std430, binding = 1) buffer DX { float dx[]; };
layout(push_constant) uniform Push { StreamDecorrelationBackwardPush p; };
const uint maxStreams = 32;
shared float partial[64];
shared float norms[maxStreams];
shared float cosines[maxStreams * maxStreams];

// The sum of every invocation's s, in all of them.
float groupSum(float s, uint t) {
    partial[t] = s;
    barrier();
    for (uint stride = 32; stride > 0; stride >>= 1) {
        if (t < stride) partial[t] += partial[t + stride];
        barrier();
    }
    float total = partial[0];
    barrier();  // partial is reused by the next sum
    return total;
}

void main() {
    uint i = group_index(), t = gl_LocalInvocationID.x, P = p.streams, n = p.rowsPerStream, H = p.dim;
    if (i >= n) return;
    for (uint a = 0; a < P; a++) {
        uint xa = p.xOffset + (a * n + i) * H;
        float s = 0.0;
        for (uint d = t; d < H; d += 64) s += x[xa + d] * x[xa + d];
        float total = groupSum(s, t);
        if (t == 0) norms[a] = max(sqrt(total), 1e-12);
    }
    barrier();
    for (uint a = 0; a < P; a++) {
        for (uint b = a + 1; b < P; b++) {
            uint xa = p.xOffset + (a * n + i) * H, xb = p.xOffset + (b * n + i) * H;
            float s = 0.0;
            for (uint d = t; d < H; d += 64) s += x[xa + d] * x[xb + d];
            float total = groupSum(s, t);
            if (t == 0) {
                float c = total / (norms[a] * norms[b]);
                cosines[a * maxStreams + b] = c;
                cosines[b * maxStreams + a] = c;
            }
        }
    }
    barrier();
    float perTerm = p.scale / (float(n) * float(P * (P - 1) / 2));
    for (uint a = 0; a < P; a++) {
        uint xa = p.xOffset + (a * n + i) * H, da = p.dxOffset + (a * n + i) * H;
        for (uint d = t; d < H; d += 64) {
            float g = 0.0;
            for (uint b = 0; b < P; b++) {
                if (b == a) continue;
                float c = cosines[a * maxStreams + b];
                g += 2.0 * c * (x[p.xOffset + (b * n + i) * H + d] / (norms[a] * norms[b]) - c * x[xa + d] / (norms[a] * norms[a]));
            }
            dx[da + d] += perTerm * g;
        }
    }
}
