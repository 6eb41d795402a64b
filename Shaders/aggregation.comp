#version 450
// w = softmax(logits[i, :]) * (1 - s) + s / P per row (written to weights), out[i] = sum_r w_r y_r[i].
// One thread per (row, feature); the softmax of the row's P logits is recomputed by each (P is small).
#include "common.glsl"
layout(local_size_x = 256) in;
layout(std430, binding = 0) readonly buffer Y { float y[]; };
layout(std430, binding = 1) readonly buffer Logits { float l[]; };
layout(std430, binding = 2) buffer Weights { float w[]; };
layout(std430, binding = 3) buffer Out { float o[]; };
layout(push_constant) uniform Push { AggregationPush p; };

void main() {
    uint idx = global_index();
    if (idx >= p.rowsPerStream * p.dim) return;
    uint i = idx / p.dim, d = idx % p.dim, P = p.streams;
    float m = -1.0 / 0.0;
    for (uint r = 0; r < P; r++) m = max(m, l[p.logitsOffset + i * P + r]);
    float total = 0.0;
    for (uint r = 0; r < P; r++) total += exp(l[p.logitsOffset + i * P + r] - m);
    float sum = 0.0;
    for (uint r = 0; r < P; r++) {
        float weight = exp(l[p.logitsOffset + i * P + r] - m) / total;
        if (p.smoothing != 0.0) weight = weight * (1.0 - p.smoothing) + p.smoothing / float(P);
        if (d == 0) w[p.weightsOffset + i * P + r] = weight;
        sum += weight * y[p.yOffset + (r * p.rowsPerStream + i) * p.dim + d];
    }
    o[p.outOffset + idx] = sum;
}
