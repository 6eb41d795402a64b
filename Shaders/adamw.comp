#version 450
// AdamW with decoupled weight decay and bias-corrected moments, as Ops/AdamW.swift; the
// corrections 1 - beta^step are computed on the host.
#include "common.glsl"
layout(local_size_x = 256) in;
layout(std430, binding = 0) buffer Params { float params[]; };
layout(std430, binding = 1) readonly buffer Grads { float grads[]; };
layout(std430, binding = 2) buffer M { float m[]; };
layout(std430, binding = 3) buffer V { float v[]; };
layout(push_constant) uniform Push { AdamWPush p; };

void main() {
    uint i = global_index();
    if (i >= p.count) return;
    float g = grads[p.gradsOffset + i] * p.gradScale;
    float mi = p.beta1 * m[p.mOffset + i] + (1.0 - p.beta1) * g;
    float vi = p.beta2 * v[p.vOffset + i] + (1.0 - p.beta2) * g * g;
    m[p.mOffset + i] = mi;
    v[p.vOffset + i] = vi;
    float update = (mi / p.correction1) / (sqrt(vi / p.correction2) + p.epsilon);
    uint at = p.paramsOffset + i;
    params[at] -= p.learningRate * (update + p.weightDecay * params[at]);
}
