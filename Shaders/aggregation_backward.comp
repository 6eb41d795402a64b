#version 450
// Gradients of aggregation.comp, one work group per row i: dY_r = w_r * dOut (overwritten), and
// dLogits through the smoothed softmax: with p the unsmoothed softmax and dp_r = dOut . y_r (1-s),
// dl_r = p_r (dp_r - sum_q p_q dp_q).
#include "common.glsl"
layout(local_size_x = 64) in;
layout(std430, binding = 0) readonly buffer DOut { float g[]; };
layout(std430, binding = 1) readonly buffer Y { float y[]; };
layout(std430, binding = 2) readonly buffer Weights { float w[]; };
layout(std430, binding = 3) buffer DY { float dy[]; };
layout(std430, binding = 4) buffer DLogits { float dl[]; };
layout(push_constant) uniform Push { AggregationBackwardPush p; };
shared float partial[64];

float unsmoothed(float weight) {
    return p.smoothing != 0.0 ? (weight - p.smoothing / float(p.streams)) / (1.0 - p.smoothing) : weight;
}

void main() {
    uint i = group_index(), t = gl_LocalInvocationID.x, P = p.streams;
    if (i >= p.rowsPerStream) return;
    uint gi = p.dOutOffset + i * p.dim;
    float pDotDp = 0.0;  // meaningful in thread 0
    for (uint r = 0; r < P; r++) {
        float weight = w[p.weightsOffset + i * P + r];
        uint yr = (r * p.rowsPerStream + i) * p.dim;
        float s = 0.0;
        for (uint d = t; d < p.dim; d += 64) {
            s += g[gi + d] * y[p.yOffset + yr + d];
            dy[p.dyOffset + yr + d] = weight * g[gi + d];
        }
        partial[t] = s;
        barrier();
        for (uint stride = 32; stride > 0; stride >>= 1) {
            if (t < stride) partial[t] += partial[t + stride];
            barrier();
        }
        if (t == 0) {
            float dp = partial[0] * (1.0 - p.smoothing);
            dl[p.dLogitsOffset + i * P + r] = dp;
            pDotDp += unsmoothed(weight) * dp;
        }
        barrier();  // partial is reused by the next stream
    }
    if (t == 0) {
        for (uint r = 0; r < P; r++) {
            uint at = p.dLogitsOffset + i * P + r;
            dl[at] = unsmoothed(w[p.weightsOffset + i * P + r]) * (dl[at] - pDotDp);
        }
    }
}
