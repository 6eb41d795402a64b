#version 450
// out[r, i] = silu(g) * u, g = gateUp[r, i], u = gateUp[r, dim + i]
#include "common.glsl"
layout(local_size_x = 256) in;
layout(std430, binding = 0) readonly buffer In { float gu[]; };
layout(std430, binding = 1) buffer Out { float o[]; };
layout(push_constant) uniform Push { SwiGLUPush p; };

void main() {
    uint idx = global_index();
    if (idx >= p.rows * p.dim) return;
    uint r = idx / p.dim, i = idx % p.dim;
    float g = gu[p.inOffset + r * 2 * p.dim + i], u = gu[p.inOffset + r * 2 * p.dim + p.dim + i];
    o[p.outOffset + idx] = g / (1.0 + exp(-g)) * u;
}
