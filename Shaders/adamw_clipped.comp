#version 450
// adamw.comp with the clipping factor read on the device from the step scalar holding the squared
// global gradient norm (hi + lo, step_scalar.comp): clipNorm / norm when clipNorm > 0 and
// norm > clipNorm, else 1; a non-finite norm leaves everything untouched (the host stops).
#include "common.glsl"
layout(local_size_x = 256) in;
layout(std430, binding = 0) buffer Params { float params[]; };
layout(std430, binding = 1) readonly buffer Grads { float grads[]; };
layout(std430, binding = 2) buffer M { float m[]; };
layout(std430, binding = 3) buffer V { float v[]; };
layout(std430, binding = 4) readonly buffer Norm { float squaredNorm[]; };
layout(push_constant) uniform Push { AdamWClippedPush p; };

void main() {
    uint i = global_index();
    if (i >= p.count) return;
    float norm = sqrt(squaredNorm[p.normOffset] + squaredNorm[p.normOffset + 1]);
    if (isnan(norm) || isinf(norm)) return;
    float gradScale = p.clipNorm > 0.0 && norm > p.clipNorm ? p.clipNorm / norm : 1.0;
    float g = grads[p.gradsOffset + i] * gradScale;
    float mi = p.beta1 * m[p.mOffset + i] + (1.0 - p.beta1) * g;
    float vi = p.beta2 * v[p.vOffset + i] + (1.0 - p.beta2) * g * g;
    m[p.mOffset + i] = mi;
    v[p.vOffset + i] = vi;
    float update = (mi / p.correction1) / (sqrt(vi / p.correction2) + p.epsilon);
    uint at = p.paramsOffset + i;
    params[at] -= p.learningRate * (update + p.weightDecay * params[at]);
}
