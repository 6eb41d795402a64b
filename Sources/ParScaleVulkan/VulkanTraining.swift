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
        let push = ColumnSumsPush(rows: u(rows), columns: u(columns), mOffset: o(m), outOffset: o(out), accumulate: accumulate ? 1 : 0)
        run(.columnSums, [m, out], push, groups: Self.groups(columns))
    }

    public func rmsNormBackward(
        dOut: Tensor, input: Tensor, weight: Tensor, dInput: Tensor, accumulateInput: Bool,
        dWeight: Tensor?, rows: Int, dim: Int, eps: Float
    ) {
        let inverse = scratch(rows)
        let push = RMSNormBackwardPush(
            rows: u(rows), dim: u(dim), dOutOffset: o(dOut), xOffset: o(input), wOffset: o(weight), dxOffset: o(dInput),
            inverseOffset: o(inverse), accumulate: accumulateInput ? 1 : 0, eps: eps)
        run(.rmsNormBackward, [dOut, input, weight, dInput, inverse], push, groups: Self.grid(rows))
        if let dWeight {
            let push = RMSNormBackwardWeightPush(
                rows: u(rows), dim: u(dim), dOutOffset: o(dOut), xOffset: o(input), inverseOffset: o(inverse), dwOffset: o(dWeight))
            run(.rmsNormBackwardWeight, [dOut, input, inverse, dWeight], push, groups: Self.groups(dim))
        }
    }

    /// The inverse rotation: rope.comp with the sine negated.
    public func ropeBackward(dQKV: Tensor, shape s: AttentionShape, theta: Float) {
        let threads = s.rows * s.newTokens * (s.heads + s.kvHeads) * s.headDim / 2
        run(.rope, [dQKV], ropePush(dQKV, s, theta: theta, sign: -1), groups: Self.groups(threads))
    }

    /// Two passes: dQ per (row, head, query), then dK, dV per (row, kv head, slot).
    public func attentionBackward(
        dOut: Tensor, out: Tensor, qkv: Tensor, keys: Tensor, values: Tensor, logSumExp: Tensor,
        dQKV: Tensor, dKeys: Tensor, dValues: Tensor, shape s: AttentionShape
    ) {
        precondition(s.headDim <= 128, "Vulkan attention: head_dim <= 128")
        let inputs = [qkv, keys, values, out, dOut, logSumExp]
        let push = AttentionBackwardPush(
            shape: AttentionHeader(s), qkvOffset: o(qkv), keysOffset: o(keys), valuesOffset: o(values), outOffset: o(out),
            dOutOffset: o(dOut), lseOffset: o(logSumExp), dqkvOffset: o(dQKV), dKeysOffset: o(dKeys), dValuesOffset: o(dValues))
        run(.attentionBackwardDQ, inputs + [dQKV], push, groups: Self.groups(s.rows * s.heads * s.newTokens, 64))
        run(.attentionBackwardDKV, inputs + [dKeys, dValues], push, groups: Self.groups(s.rows * s.kvHeads * s.cacheCapacity, 64))
    }

    public func storeKVBackward(dKeys: Tensor, dValues: Tensor, dQKV: Tensor, shape s: AttentionShape) {
        let push = StoreKVBackwardPush(shape: AttentionHeader(s), dKeysOffset: o(dKeys), dValuesOffset: o(dValues), dqkvOffset: o(dQKV))
        run(.storeKVBackward, [dKeys, dValues, dQKV], push, groups: Self.groups(s.rows * s.newTokens * s.kvHeads * s.headDim))
    }

    public func fillPrefixBackward(dCache: Tensor, dPrefix: Tensor, streams: Int, batch: Int, shape s: AttentionShape) {
        let push = FillPrefixBackwardPush(
            streams: u(streams), batch: u(batch), kvHeads: u(s.kvHeads), prefixTokens: u(s.prefixTokens), headDim: u(s.headDim),
            capacity: u(s.cacheCapacity), dCacheOffset: o(dCache), dPrefixOffset: o(dPrefix))
        run(.fillPrefixBackward, [dCache, dPrefix], push, groups: Self.groups(streams * s.kvHeads * s.prefixTokens * s.headDim))
    }

    public func swigluBackward(dOut: Tensor, gateUp: Tensor, dGateUp: Tensor, rows: Int, dim: Int) {
        let push = SwiGLUBackwardPush(rows: u(rows), dim: u(dim), dOutOffset: o(dOut), gateUpOffset: o(gateUp), dGateUpOffset: o(dGateUp))
        run(.swigluBackward, [dOut, gateUp, dGateUp], push, groups: Self.groups(rows * dim))
    }

    public func siluBackward(dOut: Tensor, input: Tensor, dInput: Tensor) {
        let push = SiLUBackwardPush(count: u(dOut.count), dOutOffset: o(dOut), xOffset: o(input), dxOffset: o(dInput))
        run(.siluBackward, [dOut, input, dInput], push, groups: Self.groups(dOut.count))
    }

    public func interleaveStreamsBackward(dFeat: Tensor, dY: Tensor, streams: Int, rowsPerStream: Int, dim: Int) {
        let push = InterleaveBackwardPush(
            streams: u(streams), rowsPerStream: u(rowsPerStream), dim: u(dim), dFeatOffset: o(dFeat), dyOffset: o(dY))
        run(.interleaveBackward, [dFeat, dY], push, groups: Self.groups(streams * rowsPerStream * dim))
    }

    public func aggregationBackward(
        dOut: Tensor, y: Tensor, weights: Tensor, dY: Tensor, dLogits: Tensor, streams: Int, rowsPerStream: Int, dim: Int,
        smoothing: Float
    ) {
        let push = AggregationBackwardPush(
            streams: u(streams), rowsPerStream: u(rowsPerStream), dim: u(dim), dOutOffset: o(dOut), yOffset: o(y),
            weightsOffset: o(weights), dyOffset: o(dY), dLogitsOffset: o(dLogits), smoothing: smoothing)
        run(.aggregationBackward, [dOut, y, weights, dY, dLogits], push, groups: Self.grid(rowsPerStream))
    }

    public func streamDecorrelationBackward(x: Tensor, dX: Tensor, streams: Int, rowsPerStream: Int, dim: Int, scale: Float) {
        precondition(streams <= StreamDecorrelationOps.maxStreams, "the decorrelation shader holds at most \(StreamDecorrelationOps.maxStreams) streams")
        let push = StreamDecorrelationBackwardPush(
            streams: u(streams), rowsPerStream: u(rowsPerStream), dim: u(dim), xOffset: o(x), dxOffset: o(dX), scale: scale)
        run(.streamDecorrelationBackward, [x, dX], push, groups: Self.grid(rowsPerStream))
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
        let push = EmbeddingBackwardPush(distinct: u(distinct.count), dim: u(dim), dOutOffset: o(dOut), dTableOffset: o(dTable))
        run(.embeddingBackward, [dOut, indices(index), dTable], push, groups: Self.groups(distinct.count * dim))
    }

    public func crossEntropy(logits: Tensor, targets: [Int32], losses: Tensor, rows: Int, vocab: Int, gradScale: Float) {
        let push = CrossEntropyPush(rows: u(rows), vocab: u(vocab), logitsOffset: o(logits), lossesOffset: o(losses), gradScale: gradScale)
        run(.crossEntropy, [logits, indices(targets.map { UInt32($0) }), losses], push, groups: Self.grid(rows))
    }

    /// One work group per sequence, its rows in turn (float32); the logits are only read.
    public func crossEntropySums(logits: Tensor, targets: [Int32], sums: Tensor, rowsPerSum: Int, vocab: Int) {
        let push = CrossEntropySumsPush(
            sums: u(sums.count), rowsPerSum: u(rowsPerSum), vocab: u(vocab), logitsOffset: o(logits), sumsOffset: o(sums))
        run(.crossEntropySums, [logits, indices(targets.map { UInt32($0) }), sums], push, groups: Self.grid(sums.count))
    }

    // MARK: prefix reparameterisation

    /// One thread per output (r, o); prefix_mlp.comp.
    public func prefixMLP(_ x: Tensor, weight: Tensor, bias: Tensor, residual: Tensor?, out: Tensor, shape s: PrefixMLPShape) {
        precondition(!(s.tanh && residual != nil), "a tanh layer takes no residual")
        let push = PrefixMLPPush(
            rows: u(s.rows), inDim: u(s.inDim), outDim: u(s.outDim), flags: (s.tanh ? 1 : 0) | (residual != nil ? 2 : 0),
            xOffset: o(x), wOffset: o(weight), bOffset: o(bias), residualOffset: residual.map(o) ?? 0, outOffset: o(out))
        run(.prefixMLP, [x, weight, bias, residual ?? out, out], push, groups: Self.groups(s.rows * s.outDim, 64))
    }

    /// One dispatch: a thread per dWeight, dBias and dInput element; prefix_mlp_backward.comp.
    public func prefixMLPBackward(
        dOut: Tensor, input: Tensor, weight: Tensor, output: Tensor, dInput: Tensor, dWeight: Tensor, dBias: Tensor,
        shape s: PrefixMLPShape
    ) {
        let push = PrefixMLPBackwardPush(
            rows: u(s.rows), inDim: u(s.inDim), outDim: u(s.outDim), flags: s.tanh ? 1 : 0, dOutOffset: o(dOut),
            xOffset: o(input), wOffset: o(weight), yOffset: o(output), dxOffset: o(dInput), dwOffset: o(dWeight),
            dbOffset: o(dBias))
        let threads = s.outDim * s.inDim + s.outDim + s.rows * s.inDim
        run(.prefixMLPBackward, [dOut, input, weight, output, dInput, dWeight, dBias], push, groups: Self.groups(threads, 64))
    }

    // MARK: optimizer

    /// Elementwise ops over the flat parameter buffers go piece by piece (each piece fits one binding).
    public func fill(_ x: Tensor, value: Float) {
        for p in pieces(x.count) {
            let piece = x.slice(p.start, p.length)
            run(.fill, [piece], FillPush(count: u(p.length), offset: o(piece), value: value), groups: Self.groups(p.length))
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
            let push = SumOfSquaresPush(count: u(p.length), offset: o(piece), partialOffset: o(sums))
            run(.sumOfSquares, [piece, sums], push, groups: (groups, 1, 1))
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
            let push = AdamWPush(
                count: u(p.length), paramsOffset: o(views[0]), gradsOffset: o(views[1]), mOffset: o(views[2]), vOffset: o(views[3]),
                learningRate: a.learningRate, beta1: a.beta1, beta2: a.beta2, epsilon: a.epsilon, weightDecay: a.weightDecay,
                correction1: correction1, correction2: correction2, gradScale: a.gradScale)
            run(.adamw, views, push, groups: Self.groups(p.length))
        }
    }

    // MARK: step scalars: a float sum and its rounding error, on the device

    /// Partial sums of squares per work group (sum_of_squares.comp), then their total added to the
    /// scalar (step_scalar.comp): no wait.
    public func sumOfSquares(_ x: Tensor, addingTo scalar: StepScalar) {
        for p in pieces(x.count) {
            let groups = min(256, max(1, (p.length + 255) / 256))
            let piece = x.slice(p.start, p.length), sums = scratch(groups)
            run(.sumOfSquares, [piece, sums], SumOfSquaresPush(count: u(p.length), offset: o(piece), partialOffset: o(sums)), groups: (groups, 1, 1))
            addSum(sums, squares: false, scale: 1, to: scalar)
        }
    }

    public func mean(_ x: Tensor, dividedBy divisor: Int, addingTo scalar: StepScalar) {
        precondition(x.count * 4 <= maxTensorBytes!, "mean: \(x.count) values exceed one binding")
        addSum(x, squares: false, scale: Float(1 / (Double(x.count) * Double(divisor))), to: scalar)
    }

    /// scalar += scale * sum of x (or of x^2), one work group.
    func addSum(_ x: Tensor, squares: Bool, scale: Float, to scalar: StepScalar) {
        let push = StepScalarPush(count: u(x.count), offset: o(x), squares: squares ? 1 : 0, scalarOffset: o(scalar.storage), scale: scale)
        run(.stepScalar, [x, scalar.storage], push, groups: (1, 1, 1))
    }

    /// The value as a float and its rounding error, written by two recorded fills.
    public func setScalar(_ scalar: StepScalar, to value: Double) {
        let hi = Float(value)
        fill(scalar.storage.slice(0, 1), value: hi)
        fill(scalar.storage.slice(1, 1), value: Float(value - Double(hi)))
    }

    /// One download of the scalars' tensor: the submission and wait of the recorded step.
    public func readScalars(_ scalars: StepScalars) -> [Double] {
        var pairs = [Float](repeating: 0, count: scalars.storage.count)
        pairs.withUnsafeMutableBufferPointer { download(scalars.storage, into: $0) }
        return (0..<scalars.count).map { Double(pairs[2 * $0]) + Double(pairs[2 * $0 + 1]) }
    }

    public func adamw(
        params: Tensor, grads: Tensor, m: Tensor, v: Tensor, settings a: AdamWSettings, clipNorm: Double, squaredNorm: StepScalar
    ) {
        let correction1 = 1 - pow(a.beta1, Float(a.step)), correction2 = 1 - pow(a.beta2, Float(a.step))
        for p in pieces(params.count) {
            let views = [params, grads, m, v].map { $0.slice(p.start, p.length) }
            let push = AdamWClippedPush(
                count: u(p.length), paramsOffset: o(views[0]), gradsOffset: o(views[1]), mOffset: o(views[2]), vOffset: o(views[3]),
                normOffset: o(squaredNorm.storage), learningRate: a.learningRate, beta1: a.beta1, beta2: a.beta2, epsilon: a.epsilon,
                weightDecay: a.weightDecay, correction1: correction1, correction2: correction2, clipNorm: Float(clipNorm))
            run(.adamwClipped, views + [squaredNorm.storage], push, groups: Self.groups(p.length))
        }
    }
}
