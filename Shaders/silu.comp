#version 450
// out[i] = silu(x[i])
#include "common.glsl"
layout(local_size_x = 256) in;
layout(std430, binding = 0) readonly buffer In { float x[]; };
layout(std430, binding = 1) buffer Out { float o[]; };
layout(push_constant) uniform Push { SiLUPush p; };

void main() {
    uint i = global_index();
    if (i >= p.count) return;
    float v = x[p.inOffset + i];
    o[p.outOffset + i] = v / (1.0 + exp(-v));
}
