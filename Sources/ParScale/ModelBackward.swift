import Foundation

/// Buffers of one training step, sized for (B, S) and reused while the shape repeats.
final class TrainingWorkspace {
    let batch: Int, sequence: Int
    let acts: ParScaleModel.Activations
    let cache: KVCache
    let losses: Tensor
    // Gradients of activations (parameters' gradients live in the caller's flat buffer).
    let dResidual, dH, dQKV, dAttn, dGateUp, dAct, dKeys, dValues: Tensor
    let dNormed, dY, dFeat, dAggAct, dAggPre, dAggLogits, dEmbedded: Tensor

    init(model: ParScaleModel, backend: Backend, batch B: Int, sequence S: Int) throws {
        let c = model.config
        let P = c.streams, H = c.hiddenSize, I = c.intermediateSize, n = B * S, rows = P * n
        batch = B
        sequence = S
        acts = try .init(config: c, backend: backend, rows: rows, sequenceRows: n, outRows: n, keepEveryLayer: true)
        cache = try model.makeCache(batch: B, capacity: S)
        func make(_ count: Int, _ name: String) throws -> Tensor {
            try backend.allocate(count, for: "a training step's gradients of \(rows) rows (\(name))")
        }
        losses = try make(n, "losses")
        let shape = model.attentionShape(batch: B, newTokens: S, startPosition: 0, capacity: S)
        dResidual = try make(rows * H, "residual")
        dH = try make(rows * H, "hidden")
        dQKV = try make(rows * shape.qkvStride, "qkv")
        dAttn = try make(rows * c.numAttentionHeads * c.headDim, "attention")
        dGateUp = try make(rows * 2 * I, "gate/up")
        dAct = try make(rows * I, "mlp")
        dKeys = try make(cache.keys[0].count, "keys")
        dValues = try make(cache.keys[0].count, "values")
        dNormed = try make(P > 1 ? rows * H : 0, "final norm")
        dY = try make(n * H, "mixed output")
        dFeat = try make(P > 1 ? n * P * H : 0, "stream features")
        dAggAct = try make(P > 1 ? n * H : 0, "aggregator activation")
        dAggPre = try make(P > 1 ? n * H : 0, "aggregator hidden")
        dAggLogits = try make(n * P, "aggregator logits")
        dEmbedded = try make(n * H, "embeddings")
    }
}

extension ParScaleModel {
    /// Forward and backward of next-token cross-entropy on B sequences of S tokens
    /// (`inputs`, `targets`: B*S ids each, row-major). ADDS `gradScale` times the gradient of the
    /// mean loss to `gradients` (same layout as `parameters`) and returns the mean loss.
    /// The backward pass is the forward's calls in reverse, one backward op per forward op.
    /// `trainBackbone: false` (a frozen backbone) computes only the gradients of the prefixes and
    /// the aggregation head; the backbone's gradient regions are left untouched.
    /// `streamDecorrelation` λ > 0 adds λ times the gradient of `StreamDecorrelationOps`' penalty
    /// (at most `StreamDecorrelationOps.maxStreams` streams); the returned loss stays the cross-entropy.
    public func accumulateGradients(
        inputs: [Int32], targets: [Int32], batch B: Int, sequence S: Int, gradients g: Tensor,
        gradScale: Float = 1, trainBackbone: Bool = true, streamDecorrelation: Float = 0
    ) throws -> Double {
        let losses = try recordGradients(
            inputs: inputs, targets: targets, batch: B, sequence: S, gradients: g, gradScale: gradScale,
            trainBackbone: trainBackbone, streamDecorrelation: streamDecorrelation)
        var values = [Float](repeating: 0, count: losses.count)
        values.withUnsafeMutableBufferPointer { backend.download(losses, into: $0) }
        return values.reduce(0.0) { $0 + Double($1) } / Double(losses.count)
    }

    /// The same, without waiting for the result: ADDS the mean loss divided by `microBatches` to
    /// `loss` where the backend computes (one of `microBatches` micro-batches of an optimizer step,
    /// whose work is all recorded before the host reads the step's scalars once).
    public func accumulateGradients(
        inputs: [Int32], targets: [Int32], batch B: Int, sequence S: Int, gradients g: Tensor,
        gradScale: Float = 1, trainBackbone: Bool = true, streamDecorrelation: Float = 0, loss: StepScalar,
        microBatches: Int = 1
    ) throws {
        let losses = try recordGradients(
            inputs: inputs, targets: targets, batch: B, sequence: S, gradients: g, gradScale: gradScale,
            trainBackbone: trainBackbone, streamDecorrelation: streamDecorrelation)
        backend.mean(losses, dividedBy: microBatches, addingTo: loss)
    }

    /// Records forward and backward; returns the per-token losses' tensor (valid until the next call).
    func recordGradients(
        inputs: [Int32], targets: [Int32], batch B: Int, sequence S: Int, gradients g: Tensor,
        gradScale: Float, trainBackbone: Bool, streamDecorrelation: Float
    ) throws -> Tensor {
        guard inputs.count == B * S, targets.count == B * S else {
            throw ModelError("expected \(B * S) inputs and targets, got \(inputs.count) and \(targets.count)")
        }
        try checkVocabulary(inputs)
        try checkVocabulary(targets)
        try checkTensorSizes(batch: B, sequence: S, outRows: B * S, cacheCapacity: S)
        let decorrelate = streamDecorrelation != 0 && config.streams > 1
        if decorrelate, let problem = StreamDecorrelationOps.unsupported(streams: config.streams) { throw ModelError(problem) }
        let parts = BLAS.workers
        if dataParallelTraining, backend is CPUBackend, parts > 1, B % parts == 0, trainBackbone {
            return try recordGradientsDataParallel(
                inputs: inputs, targets: targets, batch: B, sequence: S, gradients: g, gradScale: gradScale,
                streamDecorrelation: decorrelate ? streamDecorrelation : 0, parts: parts)
        }
        let w: TrainingWorkspace
        if let t = training, t.batch == B, t.sequence == S {
            w = t
        } else {
            training = nil  // its memory is free for the new shape's
            dataParallel = nil
            w = try TrainingWorkspace(model: self, backend: backend, batch: B, sequence: S)
            training = w
        }
        return recordGradients(
            in: w, inputs: inputs, targets: targets, gradients: g, gradScale: gradScale, trainBackbone: trainBackbone,
            streamDecorrelation: decorrelate ? streamDecorrelation : 0)
    }

    /// The forward and backward of one step in the buffers of `w` (its batch and sequence).
    func recordGradients(
        in w: TrainingWorkspace, inputs: [Int32], targets: [Int32], gradients g: Tensor, gradScale: Float,
        trainBackbone: Bool, streamDecorrelation: Float
    ) -> Tensor {
        let B = w.batch, S = w.sequence, decorrelate = streamDecorrelation != 0
        let c = config, P = c.streams, H = c.hiddenSize, I = c.intermediateSize, V = c.vocabSize
        let NH = c.numAttentionHeads, hd = c.headDim, L = c.numHiddenLayers
        let n = B * S, rows = P * n, eps = Float(c.rmsNormEps)
        let acts = w.acts
        // The gradient of a ParScale tensor, and of a backbone tensor (nil when it is frozen).
        func grad(_ tensor: ParameterTensor) -> Tensor { g.slice(tensor) }
        func backboneGrad(_ tensor: ParameterTensor) -> Tensor? { trainBackbone ? g.slice(tensor) : nil }

        w.cache.length = 0
        let y = runForward(ids: inputs, batch: B, sequence: S, cache: w.cache, acts: acts, training: true, observer: nil)
        let shape = attentionShape(batch: B, newTokens: S, startPosition: 0, capacity: S)
        let logits = acts.logits.slice(0, n * V)
        backend.linear(y, weight: parameter(layout.head), bias: nil, out: logits, rows: n, inDim: H, outDim: V, accumulate: false)
        backend.crossEntropy(logits: logits, targets: targets, losses: w.losses, rows: n, vocab: V, gradScale: gradScale / Float(n))
        let dLogits = logits

        // 8. Head.
        backend.linearBackward(
            dOut: dLogits, input: y, weight: parameter(layout.head), dInput: w.dY, accumulateInput: false,
            dWeight: backboneGrad(layout.head), dBias: nil, rows: n, inDim: H, outDim: V)
        // 7. Aggregation.
        var dNormed = w.dY
        if let aggregator = layout.aggregator {
            dNormed = w.dNormed
            backend.aggregationBackward(
                dOut: w.dY, y: acts.finalNormed, weights: acts.aggWeights, dY: dNormed, dLogits: w.dAggLogits,
                streams: P, rowsPerStream: n, dim: H, smoothing: Float(c.parscaleAttnSmooth))
            backend.linearBackward(
                dOut: w.dAggLogits, input: acts.aggAct, weight: parameter(aggregator.layer2Weight),
                dInput: w.dAggAct, accumulateInput: false, dWeight: grad(aggregator.layer2Weight),
                dBias: grad(aggregator.layer2Bias), rows: n, inDim: H, outDim: P)
            backend.siluBackward(dOut: w.dAggAct, input: acts.aggPre, dInput: w.dAggPre)
            backend.linearBackward(
                dOut: w.dAggPre, input: acts.feat, weight: parameter(aggregator.layer0Weight),
                dInput: w.dFeat, accumulateInput: false, dWeight: grad(aggregator.layer0Weight),
                dBias: grad(aggregator.layer0Bias), rows: n, inDim: P * H, outDim: H)
            backend.interleaveStreamsBackward(dFeat: w.dFeat, dY: dNormed, streams: P, rowsPerStream: n, dim: H)
            if decorrelate {
                backend.streamDecorrelationBackward(
                    x: acts.finalNormed, dX: dNormed, streams: P, rowsPerStream: n, dim: H,
                    scale: streamDecorrelation * gradScale)
            }
        }
        // 6. Final norm.
        backend.rmsNormBackward(
            dOut: dNormed, input: acts.layers[L - 1].xOut, weight: parameter(layout.finalNorm), dInput: w.dResidual,
            accumulateInput: false, dWeight: backboneGrad(layout.finalNorm), rows: rows, dim: H, eps: eps)
        // 5-2. Layers in reverse; dResidual carries the gradient of the residual stream.
        for (i, layer) in layout.layers.enumerated().reversed() {
            let a = acts.layers[i]
            // The MLP's backward in row blocks (`mlpRowBlocks`), its weight gradients added block by
            // block. dAct, dGateUp and dH live only inside a block: every block uses the same first
            // rows of them, which stay in the core's L2, instead of new memory (read for ownership
            // from DRAM and written back) for each block.
            for block in mlpRowBlocks(rows: rows) {
                let lo = block.lowerBound, count = block.count
                func at(_ t: Tensor, _ width: Int) -> Tensor { t.slice(lo * width, count * width) }
                let dAct = w.dAct.slice(0, count * I), dGateUp = w.dGateUp.slice(0, count * 2 * I)
                let dH = w.dH.slice(0, count * H)
                backend.linearBackward(
                    dOut: at(w.dResidual, H), input: at(a.act, I), weight: parameter(layer.downWeight), dInput: dAct,
                    accumulateInput: false, dWeight: backboneGrad(layer.downWeight), dBias: nil, rows: count, inDim: I,
                    outDim: H)
                backend.swigluBackward(dOut: dAct, gateUp: at(a.gateUp, 2 * I), dGateUp: dGateUp, rows: count, dim: I)
                backend.linearBackward(
                    dOut: dGateUp, input: at(a.h2, H), weight: parameter(layer.gateUpWeight), dInput: dH,
                    accumulateInput: false, dWeight: backboneGrad(layer.gateUpWeight), dBias: nil, rows: count, inDim: H,
                    outDim: 2 * I)
                backend.rmsNormBackward(
                    dOut: dH, input: at(a.xMid, H), weight: parameter(layer.postNorm), dInput: at(w.dResidual, H),
                    accumulateInput: true, dWeight: backboneGrad(layer.postNorm), rows: count, dim: H, eps: eps)
            }
            backend.linearBackward(
                dOut: w.dResidual, input: a.attn, weight: parameter(layer.oWeight), dInput: w.dAttn,
                accumulateInput: false, dWeight: backboneGrad(layer.oWeight), dBias: nil, rows: rows,
                inDim: NH * hd, outDim: H)
            backend.attentionBackward(
                dOut: w.dAttn, out: a.attn, qkv: a.qkv, keys: w.cache.keys[i], values: w.cache.values[i],
                logSumExp: a.logSumExp, dQKV: w.dQKV, dKeys: w.dKeys, dValues: w.dValues, shape: shape)
            backend.storeKVBackward(dKeys: w.dKeys, dValues: w.dValues, dQKV: w.dQKV, shape: shape)
            if let prefixK = layer.prefixK, let prefixV = layer.prefixV {
                backend.fillPrefixBackward(dCache: w.dKeys, dPrefix: grad(prefixK), streams: P, batch: B, shape: shape)
                backend.fillPrefixBackward(dCache: w.dValues, dPrefix: grad(prefixV), streams: P, batch: B, shape: shape)
            }
            backend.ropeBackward(dQKV: w.dQKV, shape: shape, theta: Float(c.ropeTheta))
            backend.linearBackward(
                dOut: w.dQKV, input: a.h1, weight: parameter(layer.qkvWeight), dInput: w.dH,
                accumulateInput: false, dWeight: backboneGrad(layer.qkvWeight),
                dBias: backboneGrad(layer.qkvBias), rows: rows, inDim: H, outDim: shape.qkvStride)
            backend.rmsNormBackward(
                dOut: w.dH, input: a.xIn, weight: parameter(layer.inputNorm), dInput: w.dResidual, accumulateInput: true,
                dWeight: backboneGrad(layer.inputNorm), rows: rows, dim: H, eps: eps)
        }
        // 1. Embedding (the P copies' gradients summed; tied heads add to the same rows).
        if trainBackbone {
            backend.sumStreams(w.dResidual, streams: P, out: w.dEmbedded)
            backend.embedBackward(ids: inputs, dOut: w.dEmbedded, dTable: grad(layout.embedding), dim: H)
        }
        return w.losses
    }

    /// The stream decorrelation penalty (`StreamDecorrelationOps`, unweighted) of B sequences of S
    /// tokens (the final hidden states downloaded from the backend); 0 for P = 1.
    public func streamDecorrelation(inputs: [Int32], batch B: Int, sequence S: Int) throws -> Double {
        guard config.streams > 1 else { return 0 }
        guard inputs.count == B * S else { throw ModelError("expected \(B * S) inputs, got \(inputs.count)") }
        try checkVocabulary(inputs)
        try checkTensorSizes(batch: B, sequence: S, outRows: B * S, cacheCapacity: S)
        let acts = try inferenceActivations(batch: B, sequence: S, outRows: B * S)
        _ = runForward(
            ids: inputs, batch: B, sequence: S, cache: try makeCache(batch: B, capacity: S), acts: acts, training: false, observer: nil)
        var x = [Float](repeating: 0, count: config.streams * B * S * config.hiddenSize)
        x.withUnsafeMutableBufferPointer { backend.download(acts.finalNormed, into: $0) }
        return x.withUnsafeBufferPointer {
            StreamDecorrelationOps.penalty(
                x: $0.baseAddress!, streams: config.streams, rowsPerStream: B * S, dim: config.hiddenSize, dX: nil, scale: 0)
        }
    }

    /// Mean next-token loss without gradients (validation).
    public func loss(inputs: [Int32], targets: [Int32], batch B: Int, sequence S: Int) throws -> Double {
        try sequenceLosses(inputs: inputs, targets: targets, batch: B, sequence: S).reduce(0, +) / Double(B)
    }

    /// Mean next-token loss of each of the B sequences, computed on the backend: the forward
    /// pass and the head as in `forward`, then `crossEntropySums`; only B floats are downloaded
    /// (`sequenceLosses` downloads the B*S*V logits and is its host reference). On the CPU each
    /// sequence's sum is the same Double as there, rounded once to float32 (2^-24 relative).
    public func sequenceLossesOnDevice(inputs: [Int32], targets: [Int32], batch B: Int, sequence S: Int) throws -> [Double] {
        guard inputs.count == B * S, targets.count == B * S else {
            throw ModelError("expected \(B * S) inputs and targets, got \(inputs.count) and \(targets.count)")
        }
        try checkVocabulary(inputs)
        try checkVocabulary(targets)
        try checkTensorSizes(batch: B, sequence: S, outRows: B * S, cacheCapacity: S)
        let n = B * S, V = config.vocabSize
        let acts = try inferenceActivations(batch: B, sequence: S, outRows: n)
        let y = runForward(
            ids: inputs, batch: B, sequence: S, cache: try makeCache(batch: B, capacity: S), acts: acts, training: false,
            observer: nil)
        let logits = acts.logits.slice(0, n * V)
        backend.linear(
            y, weight: parameter(layout.head), bias: nil, out: logits, rows: n, inDim: config.hiddenSize, outDim: V,
            accumulate: false)
        let sums = backend.allocate(B)
        backend.crossEntropySums(logits: logits, targets: targets, sums: sums, rowsPerSum: S, vocab: V)
        var values = [Float](repeating: 0, count: B)
        values.withUnsafeMutableBufferPointer { backend.download(sums, into: $0) }
        return values.map { Double($0) / Double(S) }
    }

    /// Mean next-token loss of each of the B sequences (in Double), from the logits on the host.
    public func sequenceLosses(inputs: [Int32], targets: [Int32], batch B: Int, sequence S: Int) throws -> [Double] {
        try checkVocabulary(inputs)
        try checkVocabulary(targets)
        let tokens = (0..<B).map { Array(inputs[($0 * S)..<(($0 + 1) * S)]) }
        let logits = try forward(tokens: tokens, cache: makeCache(batch: B, capacity: S))
        let V = config.vocabSize
        return logits.withUnsafeBufferPointer { l in
            (0..<B).map { b in
                var total = 0.0
                for i in (b * S)..<((b + 1) * S) {
                    let row = l.baseAddress! + i * V
                    var maxLogit = -Float.infinity
                    for v in 0..<V { maxLogit = max(maxLogit, row[v]) }
                    var sum = 0.0
                    for v in 0..<V { sum += Double(expf(row[v] - maxLogit)) }
                    total += Double(maxLogit) + log(sum) - Double(row[Int(targets[i])])
                }
                return total / Double(S)
            }
        }
    }
}
