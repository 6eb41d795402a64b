// The push constants of every shader, one struct per shader (or per family sharing one), mirrored
// field for field by Sources/ParScaleVulkan/PushConstants.swift (same names, order and types;
// VulkanPushConstantTests reads each block back from the shipped SPIR-V and compares it with the
// Swift struct). A shader declares its block as
//     layout(push_constant) uniform Push { <Name>Push p; };
// and Tools/build-shaders.sh reads <Name>Push from that line into the generated kernel table.
// Only uint and float fields (4 bytes each, no padding). Element offsets into flat buffers travel
// here, relative to the window of the buffer bound to the dispatch.

struct AdamWPush {
    uint count, paramsOffset, gradsOffset, mOffset, vOffset;
    float learningRate, beta1, beta2, epsilon, weightDecay, correction1, correction2, gradScale;
};

// adamw_clipped.comp: the clipping factor from the squared norm at normOffset (a step scalar).
struct AdamWClippedPush {
    uint count, paramsOffset, gradsOffset, mOffset, vOffset, normOffset;
    float learningRate, beta1, beta2, epsilon, weightDecay, correction1, correction2, clipNorm;
};

struct AggregationPush {
    uint streams, rowsPerStream, dim, yOffset, logitsOffset, weightsOffset, outOffset;
    float smoothing;
};

struct AggregationBackwardPush {
    uint streams, rowsPerStream, dim, dOutOffset, yOffset, weightsOffset, dyOffset, dLogitsOffset;
    float smoothing;
};

// stream_decorrelation_backward.comp: x and dX are [streams, rowsPerStream, dim].
struct StreamDecorrelationBackwardPush {
    uint streams, rowsPerStream, dim, xOffset, dxOffset;
    float scale;
};

// The shape every attention-family shader starts with (Swift: AttentionShape).
struct AttentionHeader {
    uint rows, newTokens, startPosition, heads, kvHeads, headDim, prefixTokens, capacity;
};

struct AttentionPush {
    AttentionHeader shape;
    uint qkvOffset, keysOffset, valuesOffset, outOffset, lseOffset, keepLSE;
};

// Both passes of the backward (attention_backward_dq, attention_backward_dkv).
struct AttentionBackwardPush {
    AttentionHeader shape;
    uint qkvOffset, keysOffset, valuesOffset, outOffset, dOutOffset, lseOffset, dqkvOffset, dKeysOffset, dValuesOffset;
};

struct ColumnSumsPush {
    uint rows, columns, mOffset, outOffset, accumulate;
};

struct CrossEntropyPush {
    uint rows, vocab, logitsOffset, lossesOffset;
    float gradScale;
};

struct CrossEntropySumsPush {
    uint sums, rowsPerSum, vocab, logitsOffset, sumsOffset;
};

struct EmbeddingPush {
    uint rows, dim, tableOffset, outOffset;
};

struct EmbeddingBackwardPush {
    uint distinct, dim, dOutOffset, dTableOffset;
};

struct FillPush {
    uint count, offset;
    float value;
};

struct FillPrefixPush {
    uint streams, batch, kvHeads, prefixTokens, headDim, capacity, prefixOffset, cacheOffset;
};

struct FillPrefixBackwardPush {
    uint streams, batch, kvHeads, prefixTokens, headDim, capacity, dCacheOffset, dPrefixOffset;
};

struct InterleavePush {
    uint streams, rowsPerStream, dim, yOffset, featOffset;
};

struct InterleaveBackwardPush {
    uint streams, rowsPerStream, dim, dFeatOffset, dyOffset;
};

// linear and linear_rows. a[m, k] at aOffset + m*aRowStride + k*aColStride, b likewise.
struct LinearPush {
    uint M, N, K;
    uint aOffset, bOffset, outOffset, biasOffset;
    uint flags;  // 1: accumulate into out, 2: add bias
    uint aRowStride, aColStride, bRowStride, bColStride;
};

struct RMSNormPush {
    uint rows, dim, xOffset, wOffset, outOffset;
    float eps;
};

struct RMSNormBackwardPush {
    uint rows, dim, dOutOffset, xOffset, wOffset, dxOffset, inverseOffset, accumulate;
    float eps;
};

struct RMSNormBackwardWeightPush {
    uint rows, dim, dOutOffset, xOffset, inverseOffset, dwOffset;
};

struct RoPEPush {
    uint sequences, newTokens, startPosition, heads, headDim, rowStride, offset;
    float theta, sign;  // sign -1: the inverse rotation (backward)
};

struct SiLUPush {
    uint count, inOffset, outOffset;
};

struct SiLUBackwardPush {
    uint count, dOutOffset, xOffset, dxOffset;
};

struct StoreKVPush {
    AttentionHeader shape;
    uint qkvOffset, keysOffset, valuesOffset;
};

struct StoreKVBackwardPush {
    AttentionHeader shape;
    uint dKeysOffset, dValuesOffset, dqkvOffset;
};

struct SumOfSquaresPush {
    uint count, offset, partialOffset;
};

// step_scalar.comp: scalars[scalarOffset] (+ its error term) += scale * sum of x (squares: of x^2).
struct StepScalarPush {
    uint count, offset, squares, scalarOffset;
    float scale;
};

struct SwiGLUPush {
    uint rows, dim, inOffset, outOffset;
};

struct SwiGLUBackwardPush {
    uint rows, dim, dOutOffset, gateUpOffset, dGateUpOffset;
};

// prefix_mlp.comp (one layer of the prefix reparameterisation's MLP); flags: 1 tanh, 2 residual.
struct PrefixMLPPush {
    uint rows, inDim, outDim, flags, xOffset, wOffset, bOffset, residualOffset, outOffset;
};

// prefix_mlp_backward.comp; flags: 1 tanh.
struct PrefixMLPBackwardPush {
    uint rows, inDim, outDim, flags, dOutOffset, xOffset, wOffset, yOffset, dxOffset, dwOffset, dbOffset;
};
