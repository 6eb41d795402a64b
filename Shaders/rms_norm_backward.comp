#version 450
// dX (+)= w*dy/rms - x * mean(w*dy*x)/rms^3 per row (one work group per row, as rms_norm), and
// each row's 1/rms into `inverse` for the weight gradient's pass (rms_norm_backward_weight.comp).
#include "common.glsl"
layout(local_size_x = 64) in;
layout(std430, binding = 0) readonly buffer DOut { float dy[]; };
layout(std430, binding = 1) readonly buffer X { float x[]; };
layout(std430, binding = 2) readonly buffer W { float w[]; };
layout(std430, binding = 3) buffer DX { float dx[]; };
layout(std430, binding = 4) buffer Inverse { float inverse[]; };
layout(push_constant) uniform Push { RMSNormBackwardPush p; };
shared float squares[64];
shared float weighted[64];

void main() {
    uint r = group_index(), t = gl_LocalInvocationID.x;
    if (r >= p.rows) return;
    uint xr = p.xOffset + r * p.dim, gr = p.dOutOffset + r * p.dim;
    float s = 0.0, sw = 0.0;
    for (uint i = t; i < p.dim; i += 64) {
        float v = x[xr + i];
        s += v * v;
        sw += w[p.wOffset + i] * dy[gr + i] * v;
    }
    squares[t] = s;
    weighted[t] = sw;
    barrier();
    for (uint stride = 32; stride > 0; stride >>= 1) {
        if (t < stride) {
            squares[t] += squares[t + stride];
            weighted[t] += weighted[t + stride];
        }
        barrier();
    }
    float inv = 1.0 / sqrt(squares[0] / float(p.dim) + p.eps);
    float k = weighted[0] * inv * inv * inv / float(p.dim);
    if (t == 0) inverse[p.inverseOffset + r] = inv;
    for (uint i = t; i < p.dim; i += 64) {
        float g = w[p.wOffset + i] * dy[gr + i] * inv - x[xr + i] * k;
        uint at = p.dxOffset + r * p.dim + i;
        dx[at] = p.accumulate != 0u ? dx[at] + g : g;
    }
}
