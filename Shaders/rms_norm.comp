#version 450
// out[r, :] = x[r, :] / sqrt(mean(x[r, :]^2) + eps) * w   (one workgroup per row, float32)
#include "common.glsl"
layout(local_size_x = 64) in;
layout(std430, binding = 0) readonly buffer X { float x[]; };
layout(std430, binding = 1) readonly buffer W { float w[]; };
layout(std430, binding = 2) buffer Out { float o[]; };
layout(push_constant) uniform Push { RMSNormPush p; };
shared float partial[64];

void main() {
    uint r = group_index(), t = gl_LocalInvocationID.x;
    if (r >= p.rows) return;
    uint base = p.xOffset + r * p.dim;
    float s = 0.0;
    for (uint i = t; i < p.dim; i += 64) { float v = x[base + i]; s += v * v; }
    partial[t] = s;
    barrier();
    for (uint stride = 32; stride > 0; stride >>= 1) {
        if (t < stride) partial[t] += partial[t + stride];
        barrier();
    }
    float inverse = 1.0 / sqrt(partial[0] / float(p.dim) + p.eps);
    for (uint i = t; i < p.dim; i += 64) o[p.outOffset + r * p.dim + i] = w[p.wOffset + i] * (x[base + i] * inverse);
}
