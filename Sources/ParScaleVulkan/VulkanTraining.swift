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
        run("column_sums", [m, out], [u(rows), u(columns), o(m), o(out), accumulate ? 1 : 0],
            groups: Self.groups(columns))
    }

    public func rmsNormBackward(
        dOut: Tensor, input: Tensor, weight: Tensor, dInput: Tensor, accumulateInput: Bool,
        dWeight: Tensor?, rows: Int, dim: Int, eps: Float
    ) {
        let inverse = scratch(rows)
        run("rms_norm_backward", [dOut, input, weight, dInput, inverse],
            [u(rows), u(dim), o(dOut), o(input), o(weight), o(dInput), o(inverse),
             accumulateInput ? 1 : 0, f(eps)], groups: Self.grid(rows))
        if let dWeight {
            run("rms_norm_weight_grad", [dOut, input, inverse, dWeight],
                [u(rows), u(dim), o(dOut), o(input), o(inverse), o(dWeight)], groups: Self.groups(dim))
        }
    }

    /// The inverse rotation: rope.comp with the sine negated.
    public func ropeBackward(dQKV: Tensor, shape s: AttentionShape, theta: Float) {
        let threads = s.rows * s.newTokens * (s.heads + s.kvHeads) * s.headDim / 2
        run("rope", [dQKV], [u(s.rows), u(s.newTokens), u(s.startPosition), u(s.heads + s.kvHeads), u(s.headDim),
                             u(s.qkvStride), o(dQKV), f(theta), f(-1)], groups: Self.groups(threads))
    }

    /// Two passes: dQ per (row, head, query), then dK, dV per (row, kv head, slot).
    public func attentionBackward(
        dOut: Tensor, out: Tensor, qkv: Tensor, keys: Tensor, values: Tensor, logSumExp: Tensor,
        dQKV: Tensor, dKeys: Tensor, dValues: Tensor, shape s: AttentionShape
    ) {
        precondition(s.headDim <= 128, "Vulkan attention: head_dim <= 128")
        let inputs = [qkv, keys, values, out, dOut, logSumExp]
        let offsets = shapeWords(s) + inputs.map(o)
        run("attention_backward_dq", inputs + [dQKV], offsets + [o(dQKV)],
            groups: Self.groups(s.rows * s.heads * s.newTokens, 64))
        run("attention_backward_dkv", inputs + [dKeys, dValues], offsets + [o(dKeys), o(dValues)],
            groups: Self.groups(s.rows * s.kvHeads * s.cacheCapacity, 64))
    }

    public func storeKVBackward(dKeys: Tensor, dValues: Tensor, dQKV: Tensor, shape s: AttentionShape) {
        run("store_kv_backward", [dKeys, dValues, dQKV], shapeWords(s) + [o(dKeys), o(dValues), o(dQKV)],
            groups: Self.groups(s.rows * s.newTokens * s.kvHeads * s.headDim))
    }

    public func fillPrefixBackward(dCache: Tensor, dPrefix: Tensor, streams: Int, batch: Int, shape s: AttentionShape) {
        run("fill_prefix_backward", [dCache, dPrefix],
            [u(streams), u(batch), u(s.kvHeads), u(s.prefixTokens), u(s.headDim), u(s.cacheCapacity), o(dCache),
             o(dPrefix)], groups: Self.groups(streams * s.kvHeads * s.prefixTokens * s.headDim))
    }

    public func swigluBackward(dOut: Tensor, gateUp: Tensor, dGateUp: Tensor, rows: Int, dim: Int) {
        run("swiglu_backward", [dOut, gateUp, dGateUp], [u(rows), u(dim), o(dOut), o(gateUp), o(dGateUp)],
            groups: Self.groups(rows * dim))
    }

    public func siluBackward(dOut: Tensor, input: Tensor, dInput: Tensor) {
        run("silu_backward", [dOut, input, dInput], [u(dOut.count), o(dOut), o(input), o(dInput)],
            groups: Self.groups(dOut.count))
    }

    public func interleaveStreamsBackward(dFeat: Tensor, dY: Tensor, streams: Int, rowsPerStream: Int, dim: Int) {
        run("interleave_backward", [dFeat, dY], [u(streams), u(rowsPerStream), u(dim), o(dFeat), o(dY)],
            groups: Self.groups(streams * rowsPerStream * dim))
    }

    public func mixStreamsBackward(
        dOut: Tensor, y: Tensor, weights: Tensor, dY: Tensor, dLogits: Tensor, streams: Int, rowsPerStream: Int, dim: Int,
        smoothing: Float
    ) {
        run("mix_streams_backward", [dOut, y, weights, dY, dLogits],
            [u(streams), u(rowsPerStream), u(dim), o(dOut), o(y), o(weights), o(dY),
             o(dLogits), f(smoothing)], groups: Self.grid(rowsPerStream))
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
        run("embed_backward", [dOut, indices(index), dTable], [u(distinct.count), u(dim), o(dOut), o(dTable)],
            groups: Self.groups(distinct.count * dim))
    }

    public func crossEntropy(logits: Tensor, targets: [Int32], losses: Tensor, rows: Int, vocab: Int, gradScale: Float) {
        run("cross_entropy", [logits, indices(targets.map { UInt32($0) }), losses],
            [u(rows), u(vocab), o(logits), o(losses), f(gradScale)], groups: Self.grid(rows))
    }

    // MARK: optimizer

    /// Elementwise ops over the flat parameter buffers go piece by piece (each piece fits one binding).
    public func fill(_ x: Tensor, value: Float) {
        for p in pieces(x.count) {
            let piece = x.slice(p.start, p.length)
            run("fill", [piece], [u(p.length), o(piece), f(value)], groups: Self.groups(p.length))
        }
    }

    /// Partial sums per work group on the device (float), their total on the host (Double).
    public func sumOfSquares(_ x: Tensor) -> Double {
        let parts = pieces(x.count)
        let groupsPerPiece = parts.map { min(256, max(1, ($0.length + 255) / 256)) }
        let partial = scratch(groupsPerPiece.reduce(0, +))
        var next = 0
        for (p, groups) in zip(parts, groupsPerPiece) {
            let piece = x.slice(p.start, p.length), sums = partial.slice(next, groups)
            run("sum_of_squares", [piece, sums], [u(p.length), o(piece), o(sums)], groups: (groups, 1, 1))
            next += groups
        }
        var sums = [Float](repeating: 0, count: partial.count)
        sums.withUnsafeMutableBufferPointer { download(partial, into: $0) }
        return sums.reduce(0.0) { $0 + Double($1) }
    }

    public func adamw(params: Tensor, grads: Tensor, m: Tensor, v: Tensor, settings a: AdamWSettings) {
        // The bias corrections exactly as Ops/AdamW.swift computes them.
        let correction1 = 1 - pow(a.beta1, Float(a.step)), correction2 = 1 - pow(a.beta2, Float(a.step))
        for p in pieces(params.count) {
            let views = [params, grads, m, v].map { $0.slice(p.start, p.length) }
            run("adamw", views,
                [u(p.length), o(views[0]), o(views[1]), o(views[2]), o(views[3]), f(a.learningRate), f(a.beta1),
                 f(a.beta2), f(a.epsilon), f(a.weightDecay), f(correction1), f(correction2), f(a.gradScale)],
                groups: Self.groups(p.length))
        }
    }
}
