#version 450
// Softmax cross-entropy fused with its gradient, one work group per row, float32:
// loss = logsumexp(l) - l[target]; l overwritten by gradScale * (softmax(l) - onehot(target)).
#include "common.glsl"
layout(local_size_x = 64) in;
layout(std430, binding = 0) buffer Logits { float l[]; };
layout(std430, binding = 1) readonly buffer Targets { uint targets[]; };
layout(std430, binding = 2) buffer Losses { float losses[]; };
layout(push_constant) uniform Push { CrossEntropyPush p; };
shared float partial[64];

void main() {
    uint i = group_index(), t = gl_LocalInvocationID.x;
    if (i >= p.rows) return;
    uint row = p.logitsOffset + i * p.vocab, target = targets[i];
    float targetLogit = l[row + target];
    float m = -1.0 / 0.0;
    for (uint v = t; v < p.vocab; v += 64) m = max(m, l[row + v]);
    partial[t] = m;
    barrier();
    for (uint stride = 32; stride > 0; stride >>= 1) {
        if (t < stride) partial[t] = max(partial[t], partial[t + stride]);
        barrier();
    }
    float maxLogit = partial[0];
    barrier();
    float s = 0.0;
    for (uint v = t; v < p.vocab; v += 64) s += exp(l[row + v] - maxLogit);
    partial[t] = s;
    barrier();
    for (uint stride = 32; stride > 0; stride >>= 1) {
        if (t < stride) partial[t] += partial[t + stride];
        barrier();
    }
    float total = partial[0];
    if (t == 0) losses[p.lossesOffset + i] = maxLogit + log(total) - targetLogit;
    float factor = p.gradScale / total;
    for (uint v = t; v < p.vocab; v += 64) {
        float grad = exp(l[row + v] - maxLogit) * factor;
        l[row + v] = v == target ? grad - p.gradScale : grad;
    }
}
