import ParScale

// The push constants of every shader, mirroring Shaders/push_constants.glsl struct for struct and
// field for field (same names, order and types: UInt32 for uint, Float for float, 4 bytes each, no
// padding). VulkanPushConstantTests reads each shader's block from its shipped SPIR-V and checks
// the size and field offsets of the struct the kernel table (Generated/Shaders.swift) names for it.
// Tensor offsets are in floats from the start of the tensor's binding window (VulkanBackend.o).

struct AdamWPush {
    var count, paramsOffset, gradsOffset, mOffset, vOffset: UInt32
    var learningRate, beta1, beta2, epsilon, weightDecay, correction1, correction2, gradScale: Float
}

/// adamw_clipped: the clipping factor from the squared norm at normOffset (a step scalar).
struct AdamWClippedPush {
    var count, paramsOffset, gradsOffset, mOffset, vOffset, normOffset: UInt32
    var learningRate, beta1, beta2, epsilon, weightDecay, correction1, correction2, clipNorm: Float
}

struct AggregationPush {
    var streams, rowsPerStream, dim, yOffset, logitsOffset, weightsOffset, outOffset: UInt32
    var smoothing: Float
}

struct AggregationBackwardPush {
    var streams, rowsPerStream, dim, dOutOffset, yOffset, weightsOffset, dyOffset, dLogitsOffset: UInt32
    var smoothing: Float
}

struct StreamDecorrelationBackwardPush {
    var streams, rowsPerStream, dim, xOffset, dxOffset: UInt32
    var scale: Float
}

/// The shape every attention-family shader starts with.
struct AttentionHeader {
    var rows, newTokens, startPosition, heads, kvHeads, headDim, prefixTokens, capacity: UInt32

    init(_ s: AttentionShape) {
        (rows, newTokens, startPosition, heads) = (UInt32(s.rows), UInt32(s.newTokens), UInt32(s.startPosition), UInt32(s.heads))
        (kvHeads, headDim, prefixTokens, capacity) = (UInt32(s.kvHeads), UInt32(s.headDim), UInt32(s.prefixTokens), UInt32(s.cacheCapacity))
    }
}

struct AttentionPush {
    var shape: AttentionHeader
    var qkvOffset, keysOffset, valuesOffset, outOffset, lseOffset, keepLSE: UInt32
}

/// Both passes of the backward (attention_backward_dq, attention_backward_dkv).
struct AttentionBackwardPush {
    var shape: AttentionHeader
    var qkvOffset, keysOffset, valuesOffset, outOffset, dOutOffset, lseOffset, dqkvOffset, dKeysOffset, dValuesOffset: UInt32
}

struct ColumnSumsPush {
    var rows, columns, mOffset, outOffset, accumulate: UInt32
}

struct CrossEntropyPush {
    var rows, vocab, logitsOffset, lossesOffset: UInt32
    var gradScale: Float
}

struct CrossEntropySumsPush {
    var sums, rowsPerSum, vocab, logitsOffset, sumsOffset: UInt32
}

struct EmbeddingPush {
    var rows, dim, tableOffset, outOffset: UInt32
}

struct EmbeddingBackwardPush {
    var distinct, dim, dOutOffset, dTableOffset: UInt32
}

struct FillPush {
    var count, offset: UInt32
    var value: Float
}

struct FillPrefixPush {
    var streams, batch, kvHeads, prefixTokens, headDim, capacity, prefixOffset, cacheOffset: UInt32
}

struct FillPrefixBackwardPush {
    var streams, batch, kvHeads, prefixTokens, headDim, capacity, dCacheOffset, dPrefixOffset: UInt32
}

struct InterleavePush {
    var streams, rowsPerStream, dim, yOffset, featOffset: UInt32
}

struct InterleaveBackwardPush {
    var streams, rowsPerStream, dim, dFeatOffset, dyOffset: UInt32
}

/// linear and linear_rows: a[m, k] at aOffset + m*aRowStride + k*aColStride, b likewise.
struct LinearPush {
    var M, N, K: UInt32
    var aOffset, bOffset, outOffset, biasOffset: UInt32
    var flags: UInt32  // 1: accumulate into out, 2: add bias
    var aRowStride, aColStride, bRowStride, bColStride: UInt32
}

struct RMSNormPush {
    var rows, dim, xOffset, wOffset, outOffset: UInt32
    var eps: Float
}

struct RMSNormBackwardPush {
    var rows, dim, dOutOffset, xOffset, wOffset, dxOffset, inverseOffset, accumulate: UInt32
    var eps: Float
}

struct RMSNormBackwardWeightPush {
    var rows, dim, dOutOffset, xOffset, inverseOffset, dwOffset: UInt32
}

struct RoPEPush {
    var sequences, newTokens, startPosition, heads, headDim, rowStride, offset: UInt32
    var theta, sign: Float  // sign -1: the inverse rotation (backward)
}

struct SiLUPush {
    var count, inOffset, outOffset: UInt32
}

struct SiLUBackwardPush {
    var count, dOutOffset, xOffset, dxOffset: UInt32
}

struct StoreKVPush {
    var shape: AttentionHeader
    var qkvOffset, keysOffset, valuesOffset: UInt32
}

struct StoreKVBackwardPush {
    var shape: AttentionHeader
    var dKeysOffset, dValuesOffset, dqkvOffset: UInt32
}

struct SumOfSquaresPush {
    var count, offset, partialOffset: UInt32
}

/// step_scalar: scalars[scalarOffset] (+ its error term) += scale * sum of x (squares: of x^2).
struct StepScalarPush {
    var count, offset, squares, scalarOffset: UInt32
    var scale: Float
}

struct SwiGLUPush {
    var rows, dim, inOffset, outOffset: UInt32
}

struct SwiGLUBackwardPush {
    var rows, dim, dOutOffset, gateUpOffset, dGateUpOffset: UInt32
}

/// prefix_mlp.comp; flags: 1 tanh, 2 residual.
struct PrefixMLPPush {
    var rows, inDim, outDim, flags, xOffset, wOffset, bOffset, residualOffset, outOffset: UInt32
}

/// prefix_mlp_backward.comp; flags: 1 tanh.
struct PrefixMLPBackwardPush {
    var rows, inDim, outDim, flags, dOutOffset, xOffset, wOffset, yOffset, dxOffset, dwOffset, dbOffset: UInt32
}
