import Foundation
import ParScale

/// The training ops of the Vulkan backend: each the gradient of the forward op of the same name,
/// then the optimizer's. Parameter gradients are ADDED to, as on the CPU; no op uses float
/// atomics, so every result is reproducible.
extension VulkanBackend {
    // MARK: backward

    /// dInput (=|+=) dOut W (NN), dWeight += dOut^T input (TN), dBias += column sums of dOut.
    public func linearBackward(
        dOut: Tensor, input: Tensor, weight: Tensor, dInput: Tensor?, accumulateInput: Bool,
        dWeight: Tensor?, dBias: Tensor?, rows: Int, inDim: Int, outDim: Int
    ) {
        if let dInput {
            matmul(dOut, (outDim, 1), weight, (inDim, 1), bias: nil, out: dInput, m: rows, n: inDim, k: outDim,
                   accumulate: accumulateInput)
        }
        if let dWeight {
            matmul(dOut, (1, outDim), input, (inDim, 1), bias: nil, out: dWeight, m: outDim, n: inDim, k: rows,
                   accumulate: true)
        }
        if let dBias { columnSums(dOut, rows: rows, columns: outDim, into: dBias, accumulate: true) }
    }

    /// out[c] (=|+=) sum over rows of m[r, c].
    func columnSums(_ m: Tensor, rows: Int, columns: Int, into out: Tensor, accumulate: Bool) {
        run("column_sums", [m, out], [u(rows), u(columns), u(m.offset), u(out.offset), accumulate ? 1 : 0],
            groups: Self.groups(columns))
    }

    public func rmsNormBackward(
        dOut: Tensor, input: Tensor, weight: Tensor, dInput: Tensor, accumulateInput: Bool,
        dWeight: Tensor?, rows: Int, dim: Int, eps: Float
    ) {
        let inverse = scratch(rows)
        run("rms_norm_backward", [dOut, input, weight, dInput, inverse],
            [u(rows), u(dim), u(dOut.offset), u(input.offset), u(weight.offset), u(dInput.offset), u(inverse.offset),
             accumulateInput ? 1 : 0, f(eps)], groups: (rows, 1, 1))
        if let dWeight {
            run("rms_norm_weight_grad", [dOut, input, inverse, dWeight],
                [u(rows), u(dim), u(dOut.offset), u(input.offset), u(inverse.offset), u(dWeight.offset)], groups: Self.groups(dim))
        }
    }

    /// The inverse rotation: rope.comp with the sine negated.
    public func ropeBackward(dQKV: Tensor, shape s: AttentionShape, theta: Float) {
        let threads = s.rows * s.newTokens * (s.heads + s.kvHeads) * s.headDim / 2
        run("rope", [dQKV], [u(s.rows), u(s.newTokens), u(s.startPosition), u(s.heads + s.kvHeads), u(s.headDim),
                             u(s.qkvStride), u(dQKV.offset), f(theta), f(-1)], groups: Self.groups(threads))
    }

    /// Two passes: dQ per (row, head, query), then dK, dV per (row, kv head, slot).
    public func attentionBackward(
        dOut: Tensor, out: Tensor, qkv: Tensor, keys: Tensor, values: Tensor, logSumExp: Tensor,
        dQKV: Tensor, dKeys: Tensor, dValues: Tensor, shape s: AttentionShape
    ) {
        precondition(s.headDim <= 128, "Vulkan attention: head_dim <= 128")
        let inputs = [qkv, keys, values, out, dOut, logSumExp]
        let offsets = shapeWords(s) + inputs.map { u($0.offset) }
        run("attention_backward_dq", inputs + [dQKV], offsets + [u(dQKV.offset)],
            groups: Self.groups(s.rows * s.heads * s.newTokens, 64))
        run("attention_backward_dkv", inputs + [dKeys, dValues], offsets + [u(dKeys.offset), u(dValues.offset)],
            groups: Self.groups(s.rows * s.kvHeads * s.cacheCapacity, 64))
    }

    public func storeKVBackward(dKeys: Tensor, dValues: Tensor, dQKV: Tensor, shape s: AttentionShape) {
        run("store_kv_backward", [dKeys, dValues, dQKV], shapeWords(s) + [u(dKeys.offset), u(dValues.offset), u(dQKV.offset)],
            groups: Self.groups(s.rows * s.newTokens * s.kvHeads * s.headDim))
    }

    public func fillPrefixBackward(dCache: Tensor, dPrefix: Tensor, streams: Int, batch: Int, shape s: AttentionShape) {
        run("fill_prefix_backward", [dCache, dPrefix],
            [u(streams), u(batch), u(s.kvHeads), u(s.prefixTokens), u(s.headDim), u(s.cacheCapacity), u(dCache.offset),
             u(dPrefix.offset)], groups: Self.groups(streams * s.kvHeads * s.prefixTokens * s.headDim))
    }

    public func swigluBackward(dOut: Tensor, gateUp: Tensor, dGateUp: Tensor, rows: Int, dim: Int) {
        run("swiglu_backward", [dOut, gateUp, dGateUp], [u(rows), u(dim), u(dOut.offset), u(gateUp.offset), u(dGateUp.offset)],
            groups: Self.groups(rows * dim))
    }

    public func siluBackward(dOut: Tensor, input: Tensor, dInput: Tensor) {
        run("silu_backward", [dOut, input, dInput], [u(dOut.count), u(dOut.offset), u(input.offset), u(dInput.offset)],
            groups: Self.groups(dOut.count))
    }

    public func interleaveStreamsBackward(dFeat: Tensor, dY: Tensor, streams: Int, rowsPerStream: Int, dim: Int) {
        run("interleave_backward", [dFeat, dY], [u(streams), u(rowsPerStream), u(dim), u(dFeat.offset), u(dY.offset)],
            groups: Self.groups(streams * rowsPerStream * dim))
    }

    public func mixStreamsBackward(
        dOut: Tensor, y: Tensor, weights: Tensor, dY: Tensor, dLogits: Tensor, streams: Int, rowsPerStream: Int, dim: Int,
        smoothing: Float
    ) {
        run("mix_streams_backward", [dOut, y, weights, dY, dLogits],
            [u(streams), u(rowsPerStream), u(dim), u(dOut.offset), u(y.offset), u(weights.offset), u(dY.offset),
             u(dLogits.offset), f(smoothing)], groups: (rowsPerStream, 1, 1))
    }

    /// The P stacked copies are the rows of a [streams, count] matrix: its column sums.
    public func sumStreams(_ x: Tensor, streams: Int, out: Tensor) {
        columnSums(x, rows: streams, columns: out.count, into: out, accumulate: false)
    }

    /// The positions of each distinct id, grouped on the host, so the shader adds without atomics.
    public func embedBackward(ids: [Int32], dOut: Tensor, dTable: Tensor, dim: Int) {
        var positions: [Int32: [UInt32]] = [:]
        for (i, id) in ids.enumerated() { positions[id, default: []].append(UInt32(i)) }
        let distinct = positions.keys.sorted()
        var starts: [UInt32] = [0]
        for id in distinct { starts.append(starts.last! + UInt32(positions[id]!.count)) }
        let index = distinct.map { UInt32($0) } + starts + distinct.flatMap { positions[$0]! }
        run("embed_backward", [dOut, indices(index), dTable], [u(distinct.count), u(dim), u(dOut.offset), u(dTable.offset)],
            groups: Self.groups(distinct.count * dim))
    }

    public func crossEntropy(logits: Tensor, targets: [Int32], losses: Tensor, rows: Int, vocab: Int, gradScale: Float) {
        run("cross_entropy", [logits, indices(targets.map { UInt32($0) }), losses],
            [u(rows), u(vocab), u(logits.offset), u(losses.offset), f(gradScale)], groups: (rows, 1, 1))
    }

    // MARK: optimizer

    public func fill(_ x: Tensor, value: Float) {
        run("fill", [x], [u(x.count), u(x.offset), f(value)], groups: Self.groups(x.count))
    }

    /// Partial sums per work group on the device (float), their total on the host (Double).
    public func sumOfSquares(_ x: Tensor) -> Double {
        let groups = min(256, max(1, (x.count + 255) / 256))
        let partial = scratch(groups)
        run("sum_of_squares", [x, partial], [u(x.count), u(x.offset), u(partial.offset)], groups: (groups, 1, 1))
        var sums = [Float](repeating: 0, count: groups)
        sums.withUnsafeMutableBufferPointer { download(partial, into: $0) }
        return sums.reduce(0.0) { $0 + Double($1) }
    }

    public func adamw(params: Tensor, grads: Tensor, m: Tensor, v: Tensor, settings a: AdamWSettings) {
        // The bias corrections exactly as Ops/AdamW.swift computes them.
        let correction1 = 1 - pow(a.beta1, Float(a.step)), correction2 = 1 - pow(a.beta2, Float(a.step))
        run("adamw", [params, grads, m, v],
            [u(params.count), u(params.offset), u(grads.offset), u(m.offset), u(v.offset), f(a.learningRate), f(a.beta1),
             f(a.beta2), f(a.epsilon), f(a.weightDecay), f(correction1), f(correction2), f(a.gradScale)],
            groups: Self.groups(params.count))
    }
}
