#version 450
// One layer of the prefix reparameterisation's MLP (Ops/PrefixMLP.swift), one thread per (r, o):
// out[r, o] = residual[r, o] + act(bias[o] + sum_i W[o, i] x[r, i]), the sum in index order.
#include "common.glsl"
layout(local_size_x = 64) in;
layout(std430, binding = 0) readonly buffer X { float x[]; };
layout(std430, binding = 1) readonly buffer W { float w[]; };
layout(std430, binding = 2) readonly buffer B { float b[]; };
layout(std430, binding = 3) readonly buffer Residual { float residual[]; };
layout(std430, binding = 4) buffer Out { float outv[]; };
layout(push_constant) uniform Push { PrefixMLPPush p; };

void main() {
    uint t = global_index();
    if (t >= p.rows * p.outDim) return;
    uint r = t / p.outDim, o = t % p.outDim;
    float z = b[p.bOffset + o];
    for (uint i = 0; i < p.inDim; i++) z += w[p.wOffset + o * p.inDim + i] * x[p.xOffset + r * p.inDim + i];
    // tanh of |z| > 15 is 1 in float; the clamp keeps a driver's exp-based tanh finite.
    if ((p.flags & 1u) != 0u) z = tanh(clamp(z, -15.0, 15.0));
    if ((p.flags & 2u) != 0u) z = residual[p.residualOffset + t] + z;
    outv[p.outOffset + t] = z;
}
