#version 450
// dx = dy * silu'(x), silu'(x) = s (1 + x (1 - s)), s the logistic function.
#include "common.glsl"
layout(local_size_x = 256) in;
layout(std430, binding = 0) readonly buffer DOut { float dy[]; };
layout(std430, binding = 1) readonly buffer X { float x[]; };
layout(std430, binding = 2) buffer DX { float dx[]; };
layout(push_constant) uniform Push { SiLUBackwardPush p; };

void main() {
    uint i = global_index();
    if (i >= p.count) return;
    float v = x[p.xOffset + i], s = 1.0 / (1.0 + exp(-v));
    dx[p.dxOffset + i] = dy[p.dOutOffset + i] * (s * (1.0 + v * (1.0 - s)));
}
