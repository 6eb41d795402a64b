#version 450
// Rotary embedding on halves of the first `heads` heads of each row, position startPosition + t.
// inv_freq and the angle in float32, as the official code; cos/sin in float32 here.
#include "common.glsl"
layout(local_size_x = 256) in;
layout(std430, binding = 0) buffer X { float x[]; };
layout(push_constant) uniform Push { RoPEPush p; };

void main() {
    uint half_ = p.headDim / 2;
    uint idx = global_index();
    if (idx >= p.sequences * p.newTokens * p.heads * half_) return;
    uint i = idx % half_, h = (idx / half_) % p.heads, row = idx / (half_ * p.heads);
    uint t = row % p.newTokens;
    float invFreq = 1.0 / pow(p.theta, float(2 * i) / float(p.headDim));
    float angle = float(p.startPosition + t) * invFreq;
    float c = cos(angle), s = p.sign * sin(angle);
    uint at = p.offset + row * p.rowStride + h * p.headDim + i;
    float x1 = x[at], x2 = x[at + half_];
    x[at] = x1 * c - x2 * s;
    x[at + half_] = x2 * c + x1 * s;
}
