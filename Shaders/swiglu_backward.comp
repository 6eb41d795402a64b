#version 450
// Gradients of out = silu(g) * u into dGateUp = [dg | du] per row.
#include "common.glsl"
layout(local_size_x = 256) in;
layout(std430, binding = 0) readonly buffer DOut { float dy[]; };
layout(std430, binding = 1) readonly buffer GateUp { float gu[]; };
layout(std430, binding = 2) buffer DGateUp { float dgu[]; };
layout(push_constant) uniform Push { SwiGLUBackwardPush p; };

void main() {
    uint idx = global_index();
    if (idx >= p.rows * p.dim) return;
    uint r = idx / p.dim, i = idx % p.dim, at = r * 2 * p.dim + i;
    float g = gu[p.gateUpOffset + at], u = gu[p.gateUpOffset + at + p.dim], d = dy[p.dOutOffset + idx];
    float sigmoid = 1.0 / (1.0 + exp(-g));
    dgu[p.dGateUpOffset + at] = d * u * sigmoid * (1.0 + g * (1.0 - sigmoid));
    dgu[p.dGateUpOffset + at + p.dim] = d * g * sigmoid;
}
