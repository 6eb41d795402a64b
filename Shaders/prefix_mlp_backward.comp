#version 450
// The gradient of prefix_mlp.comp, ADDED to dW, dBias and dX, with dz = dOut * act' (tanh:
// 1 - y^2). Threads [0, outDim*inDim): dW[o, i] += sum_r dz[r, o] x[r, i]; then outDim threads:
// dBias[o] += sum_r dz[r, o]; then rows*inDim threads: dX[r, i] += sum_o dz[r, o] W[o, i].
// Each sum in index order (as Ops/PrefixMLP.swift), no atomics.
#include "common.glsl"
layout(local_size_x = 64) in;
layout(std430, binding = 0) readonly buffer DOut { float dOut[]; };
layout(std430, binding = 1) readonly buffer X { float x[]; };
layout(std430, binding = 2) readonly buffer W { float w[]; };
layout(std430, binding = 3) readonly buffer Y { float y[]; };
layout(std430, binding = 4) buffer DX { float dx[]; };
layout(std430, binding = 5) buffer DW { float dw[]; };
layout(std430, binding = 6) buffer DB { float db[]; };
layout(push_constant) uniform Push { PrefixMLPBackwardPush p; };

float dz(uint r, uint o) {
    float d = dOut[p.dOutOffset + r * p.outDim + o];
    if ((p.flags & 1u) == 0u) return d;
    float v = y[p.yOffset + r * p.outDim + o];
    return d * (1.0 - v * v);
}

void main() {
    uint t = global_index();
    uint weights = p.outDim * p.inDim;
    if (t < weights) {
        uint o = t / p.inDim, i = t % p.inDim;
        float acc = dw[p.dwOffset + t];
        for (uint r = 0; r < p.rows; r++) acc += dz(r, o) * x[p.xOffset + r * p.inDim + i];
        dw[p.dwOffset + t] = acc;
        return;
    }
    t -= weights;
    if (t < p.outDim) {
        float acc = db[p.dbOffset + t];
        for (uint r = 0; r < p.rows; r++) acc += dz(r, t);
        db[p.dbOffset + t] = acc;
        return;
    }
    t -= p.outDim;
    if (t >= p.rows * p.inDim) return;
    uint r = t / p.inDim, i = t % p.inDim;
    float acc = dx[p.dxOffset + t];
    for (uint o = 0; o < p.outDim; o++) acc += dz(r, o) * w[p.wOffset + o * p.inDim + i];
    dx[p.dxOffset + t] = acc;
}
