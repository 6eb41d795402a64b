/// Per-stream key/value cache, allocated once for the context length.
/// Layer tensors are [R = P*B, KVH, T + capacity, hd]; slots 0..<T hold the stream's prefix.
public final class KVCache {
    public let batch: Int
    public let capacity: Int  // real tokens that fit
    public let keys: [Tensor]
    public let values: [Tensor]
    public internal(set) var length = 0
    public let floatCount: Int

    init(batch: Int, capacity: Int, keys: [Tensor], values: [Tensor]) {
        self.batch = batch
        self.capacity = capacity
        self.keys = keys
        self.values = values
        floatCount = (keys + values).reduce(0) { $0 + $1.count }
    }
}

public struct ModelError: Error, CustomStringConvertible {
    public let message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}

/// The Qwen2-ParScale decoder. `forward` follows parscale-spec.md steps 1-8, one backend op per line.
public final class ParScaleModel {
    public let config: ModelConfig
    public let layout: ParameterLayout
    public let backend: Backend
    /// All parameters, one flat buffer in `layout` order.
    public let parameters: Tensor
    private var inference: Activations?
    var training: TrainingWorkspace?
    var dataParallel: DataParallelWorkspace?
    /// Training steps on the CPU split their sequences over the cores, one whole forward and
    /// backward per core (`recordGradientsDataParallel`), where the batch divides evenly, the
    /// backbone is trained and no stream decorrelation is asked for. False: every op split over
    /// the cores in turn (the same gradients up to the order of float sums).
    public var dataParallelTraining = true
    /// Rows per block of the MLP on a core of its own (`mlpRowBlocks`); 0: all rows at once. 256
    /// rows of config A's gate/up are 704 KiB, within a 1 MiB L2; measured against 0, 128 and 512
    /// in Tools/bench/RESULTS.md ("Fused passes", 2026-12-01).
    var mlpBlockRows = 256

    public init(config: ModelConfig, backend: Backend, parameters: Tensor) {
        precondition(parameters.count == ParameterLayout(config).totalCount)
        self.config = config
        self.layout = ParameterLayout(config)
        self.backend = backend
        self.parameters = parameters
    }

    /// The view of one parameter tensor (see `ParameterLayout`).
    public func parameter(_ tensor: ParameterTensor) -> Tensor { parameters.slice(tensor) }

    /// A KV cache for `batch` sequences of up to `capacity` tokens, the prefixes filled in; a
    /// ModelError (naming the layer) where it does not fit in the backend's memory.
    public func makeCache(batch: Int, capacity: Int) throws -> KVCache {
        let c = config, R = c.streams * batch
        let shape = attentionShape(batch: batch, newTokens: 0, startPosition: 0, capacity: capacity)
        let perLayer = R * c.numKeyValueHeads * shape.cacheCapacity * c.headDim
        var keys: [Tensor] = [], values: [Tensor] = []
        for (i, layer) in layout.layers.enumerated() {
            let what = "the KV cache of layer \(i) (batch \(batch), \(capacity) tokens)"
            let k = try backend.allocate(perLayer, for: what + ": keys"), v = try backend.allocate(perLayer, for: what + ": values")
            if let prefixK = layer.prefixK, let prefixV = layer.prefixV {
                backend.fillPrefix(prefix: parameter(prefixK), cache: k, streams: c.streams, batch: batch, shape: shape)
                backend.fillPrefix(prefix: parameter(prefixV), cache: v, streams: c.streams, batch: batch, shape: shape)
            }
            keys.append(k)
            values.append(v)
        }
        return KVCache(batch: batch, capacity: capacity, keys: keys, values: values)
    }

    func attentionShape(batch: Int, newTokens: Int, startPosition: Int, capacity: Int) -> AttentionShape {
        AttentionShape(
            rows: config.streams * batch, newTokens: newTokens, startPosition: startPosition,
            heads: config.numAttentionHeads, kvHeads: config.numKeyValueHeads, headDim: config.headDim,
            prefixTokens: config.prefixTokens, cacheCapacity: config.prefixTokens + capacity)
    }

    /// Which positions get logits: all of them, or only each sequence's last (generation).
    public enum LogitRows { case all, last }

    /// Called with intermediate tensors for tests: "hidden_states.i" (input of layer i, [P*B*S, H];
    /// i = L is the final aggregated state, [B*S, H]) and "agg_logits" ([B*S, P]).
    public typealias Observer = (_ name: String, _ tensor: Tensor) -> Void

    /// Runs `tokens` ([B][S], equal lengths) after what `cache` holds, appends them to the cache,
    /// and returns float32 logits [B, S or 1, V] on the host.
    public func forward(
        tokens: [[Int32]], cache: KVCache, logits rowsWanted: LogitRows = .all, observer: Observer? = nil
    ) throws -> [Float] {
        let B = tokens.count, S = tokens.first?.count ?? 0, V = config.vocabSize, H = config.hiddenSize
        guard B == cache.batch else { throw ModelError("batch \(B) does not match the cache's \(cache.batch)") }
        guard S > 0, tokens.allSatisfy({ $0.count == S }) else {
            throw ModelError("every sequence of a batch must have the same, non-zero length")
        }
        guard cache.length + S <= cache.capacity else {
            throw ModelError("context full: \(cache.length) + \(S) tokens exceed the cache's \(cache.capacity)")
        }
        let ids = tokens.flatMap { $0 }
        try checkVocabulary(ids)
        let outRows = rowsWanted == .all ? B * S : B
        try checkTensorSizes(batch: B, sequence: S, outRows: outRows, cacheCapacity: cache.capacity)
        let acts = try inferenceActivations(batch: B, sequence: S, outRows: outRows)
        let y = runForward(ids: ids, batch: B, sequence: S, cache: cache, acts: acts, training: false, observer: observer)
        // 8. Output head (the embedding when tied).
        var headInput = y
        if rowsWanted == .last {
            headInput = acts.headInput.slice(0, B * H)
            backend.gatherRows(y, rowIndices: (0..<B).map { Int32($0 * S + S - 1) }, out: headInput, dim: H)
        }
        let logits = acts.logits.slice(0, outRows * V)
        backend.linear(
            headInput, weight: parameter(layout.head), bias: nil, out: logits, rows: outRows, inDim: H,
            outDim: V, accumulate: false)
        cache.length += S
        var result = [Float](repeating: 0, count: outRows * V)
        result.withUnsafeMutableBufferPointer { backend.download(logits, into: $0) }
        return result
    }

    /// Every tensor one op takes must fit the backend's largest (a GPU's binding range): else a
    /// clear error naming the tensor and what to lower, before any work is recorded.
    func checkTensorSizes(batch B: Int, sequence S: Int, outRows: Int, cacheCapacity: Int) throws {
        guard let limit = backend.maxTensorBytes else { return }
        let c = config, rows = c.streams * B * S
        let parameter = layout.largestTensor
        let tensors = [
            ("the parameter tensor \(parameter.name)", parameter.count, "use --backend cpu"),
            ("the logits (\(outRows) rows x vocabulary \(c.vocabSize))", outRows * c.vocabSize, "lower --batch or --seq"),
            ("the gate/up activations (\(rows) rows x \(2 * c.intermediateSize))", rows * 2 * c.intermediateSize, "lower --batch or --seq"),
            ("the q/k/v activations", rows * (c.numAttentionHeads + 2 * c.numKeyValueHeads) * c.headDim, "lower --batch or --seq"),
            ("one layer's KV cache (\(c.streams * B) rows x \(c.prefixTokens + cacheCapacity) slots)",
             c.streams * B * c.numKeyValueHeads * (c.prefixTokens + cacheCapacity) * c.headDim, "lower --batch or the context length"),
            ("the stream features", B * S * c.streams * c.hiddenSize, "lower --batch or --seq"),
        ]
        for (name, count, advice) in tensors where count * 4 > limit {
            throw ModelError(
                "\(name) would take \(formatBytes(count * 4)), more than the \(backend.name) backend can bind at once "
                    + "(\(formatBytes(limit))): \(advice)")
        }
    }

    func checkVocabulary(_ ids: [Int32]) throws {
        if let bad = ids.first(where: { $0 < 0 || Int($0) >= config.vocabSize }) {
            throw ModelError("token id \(bad) is outside the vocabulary 0..<\(config.vocabSize)")
        }
    }

    /// Spec steps 1-7 for B sequences of S new tokens; returns the (aggregated) final state [B*S, H].
    /// In training every layer's activations are kept (`acts.layers[i]` distinct) and the
    /// prefixes are copied into the cache afresh, since the parameters change between steps.
    func runForward(
        ids: [Int32], batch B: Int, sequence S: Int, cache: KVCache, acts: Activations, training: Bool,
        observer: Observer?
    ) -> Tensor {
        let c = config, P = c.streams, H = c.hiddenSize, I = c.intermediateSize
        let NH = c.numAttentionHeads, hd = c.headDim, L = c.numHiddenLayers
        let rows = P * B * S, n = B * S
        let shape = attentionShape(batch: B, newTokens: S, startPosition: cache.length, capacity: cache.capacity)
        let eps = Float(c.rmsNormEps)
        if training {
            for (i, layer) in layout.layers.enumerated() {
                guard let prefixK = layer.prefixK, let prefixV = layer.prefixV else { continue }
                backend.fillPrefix(prefix: parameter(prefixK), cache: cache.keys[i], streams: P, batch: B, shape: shape)
                backend.fillPrefix(prefix: parameter(prefixV), cache: cache.values[i], streams: P, batch: B, shape: shape)
            }
        }
        // 1. Embed once, copy for every stream (replica-major: row r*B + b).
        backend.embed(ids: ids, table: parameter(layout.embedding), out: acts.embedded, dim: H)
        backend.repeatRows(acts.embedded, times: P, out: acts.layers[0].xIn)
        for (i, layer) in layout.layers.enumerated() {
            let a = acts.layers[i]
            observer?("hidden_states.\(i)", a.xIn)
            // 2-4. Attention with the stream's prefix KV, RoPE on real tokens only, GQA.
            backend.rmsNorm(a.xIn, weight: parameter(layer.inputNorm), out: a.h1, rows: rows, dim: H, eps: eps)
            backend.linear(
                a.h1, weight: parameter(layer.qkvWeight), bias: parameter(layer.qkvBias),
                out: a.qkv, rows: rows, inDim: H, outDim: shape.qkvStride, accumulate: false)
            backend.rope(qkv: a.qkv, shape: shape, theta: Float(c.ropeTheta))
            backend.storeKV(qkv: a.qkv, keys: cache.keys[i], values: cache.values[i], shape: shape)
            backend.attention(
                qkv: a.qkv, keys: cache.keys[i], values: cache.values[i], out: a.attn,
                logSumExp: training ? a.logSumExp : nil, shape: shape)
            copyIfDistinct(a.xIn, to: a.xMid)
            backend.linear(
                a.attn, weight: parameter(layer.oWeight), bias: nil, out: a.xMid, rows: rows,
                inDim: NH * hd, outDim: H, accumulate: true)
            // 5. SwiGLU MLP; the residual is added by accumulating the down projection. In blocks of
            // rows (`mlpRowBlocks`) so that each pass reads what the one before wrote while it is in cache.
            for block in mlpRowBlocks(rows: rows) {
                let lo = block.lowerBound, count = block.count
                func at(_ t: Tensor, _ width: Int) -> Tensor { t.slice(lo * width, count * width) }
                backend.rmsNorm(at(a.xMid, H), weight: parameter(layer.postNorm), out: at(a.h2, H), rows: count, dim: H, eps: eps)
                backend.linear(
                    at(a.h2, H), weight: parameter(layer.gateUpWeight), bias: nil, out: at(a.gateUp, 2 * I), rows: count,
                    inDim: H, outDim: 2 * I, accumulate: false)
                backend.swiglu(at(a.gateUp, 2 * I), out: at(a.act, I), rows: count, dim: I)
                copyIfDistinct(at(a.xMid, H), to: at(a.xOut, H))
                backend.linear(
                    at(a.act, I), weight: parameter(layer.downWeight), bias: nil, out: at(a.xOut, H), rows: count, inDim: I,
                    outDim: H, accumulate: true)
            }
        }
        // 6. Final norm on every stream.
        let normed = acts.finalNormed
        backend.rmsNorm(acts.layers[L - 1].xOut, weight: parameter(layout.finalNorm), out: normed, rows: rows, dim: H, eps: eps)
        // 7. Aggregation of the P streams.
        guard let aggregator = layout.aggregator else {
            observer?("hidden_states.\(L)", normed)
            return normed
        }
        backend.interleaveStreams(normed, out: acts.feat, streams: P, rowsPerStream: n, dim: H)
        backend.linear(
            acts.feat, weight: parameter(aggregator.layer0Weight), bias: parameter(aggregator.layer0Bias),
            out: acts.aggPre, rows: n, inDim: P * H, outDim: H, accumulate: false)
        backend.silu(acts.aggPre, out: acts.aggAct)
        backend.linear(
            acts.aggAct, weight: parameter(aggregator.layer2Weight), bias: parameter(aggregator.layer2Bias),
            out: acts.aggLogits, rows: n, inDim: H, outDim: P, accumulate: false)
        observer?("agg_logits", acts.aggLogits)
        backend.aggregation(
            normed, logits: acts.aggLogits, weights: acts.aggWeights, out: acts.y, streams: P,
            rowsPerStream: n, dim: H, smoothing: Float(c.parscaleAttnSmooth))
        observer?("hidden_states.\(L)", acts.y)
        return acts.y
    }

    /// The row blocks the MLP runs in: on a CPU thread that has its core to itself (data-parallel
    /// training), blocks of `mlpBlockRows` rows, so that each pass (norm, product, SwiGLU, product)
    /// reads what the one before wrote while it is still in the core's L2 cache; elsewhere all rows
    /// at once (a split over the cores, or a GPU, wants the big calls).
    func mlpRowBlocks(rows: Int) -> [Range<Int>] {
        let block = mlpBlockRows
        guard block > 0, backend is CPUBackend, BLAS.workersHere == 1, rows > block else { return [0..<rows] }
        return stride(from: 0, to: rows, by: block).map { $0..<min($0 + block, rows) }
    }

    private func copyIfDistinct(_ src: Tensor, to dst: Tensor) {
        if src.buffer !== dst.buffer || src.offset != dst.offset { backend.copy(src, to: dst) }
    }

    /// Activation buffers of one forward pass, sized for its rows.
    final class Activations {
        struct Layer {
            let xIn, h1, qkv, attn, logSumExp, xMid, h2, gateUp, act, xOut: Tensor
        }
        let rows: Int, sequenceRows: Int, outRows: Int
        let layers: [Layer]
        let embedded, finalNormed, feat, aggPre, aggAct, aggLogits, aggWeights, y, headInput, logits: Tensor

        /// `keepEveryLayer`: training (distinct buffers per layer, residual stream kept per layer);
        /// otherwise one set serves every layer and the residual stream is updated in place. A
        /// buffer that does not fit is a ModelError naming it (`Backend.allocate(_:for:)`).
        init(config c: ModelConfig, backend: Backend, rows: Int, sequenceRows n: Int, outRows: Int, keepEveryLayer: Bool) throws {
            self.rows = rows
            self.sequenceRows = n
            self.outRows = outRows
            let H = c.hiddenSize, P = c.streams, I = c.intermediateSize
            let qkvWidth = (c.numAttentionHeads + 2 * c.numKeyValueHeads) * c.headDim
            func make(_ count: Int, _ name: String) throws -> Tensor {
                try backend.allocate(count, for: "the activations of \(rows) rows (\(name))")
            }
            func layerSet(xIn: Tensor, _ i: Int) throws -> Layer {
                let keep = keepEveryLayer, at = keep ? "layer \(i) " : ""
                return Layer(
                    xIn: xIn, h1: try make(rows * H, at + "h1"), qkv: try make(rows * qkvWidth, at + "qkv"),
                    attn: try make(rows * c.numAttentionHeads * c.headDim, at + "attention"),
                    logSumExp: try make(keep ? rows * c.numAttentionHeads : 0, at + "logsumexp"),
                    xMid: keep ? try make(rows * H, at + "residual") : xIn, h2: try make(rows * H, at + "h2"),
                    gateUp: try make(rows * 2 * I, at + "gate/up"), act: try make(rows * I, at + "mlp"),
                    xOut: keep ? try make(rows * H, at + "output") : xIn)
            }
            var layers: [Layer] = []
            if keepEveryLayer {
                var x = try make(rows * H, "input")
                for i in 0..<c.numHiddenLayers {
                    let layer = try layerSet(xIn: x, i)
                    layers.append(layer)
                    x = layer.xOut
                }
            } else {
                layers = Array(repeating: try layerSet(xIn: try make(rows * H, "residual"), 0), count: c.numHiddenLayers)
            }
            self.layers = layers
            embedded = try make(n * H, "embeddings")
            finalNormed = try make(rows * H, "final norm")
            feat = try make(P > 1 ? n * P * H : 0, "stream features")
            aggPre = try make(P > 1 ? n * H : 0, "aggregator hidden")
            aggAct = try make(P > 1 ? n * H : 0, "aggregator activation")
            aggLogits = try make(n * P, "aggregator logits")
            aggWeights = try make(n * P, "aggregator weights")
            y = try make(n * H, "mixed output")
            headInput = try make(outRows * H, "head input")
            logits = try make(outRows * c.vocabSize, "logits")
        }
    }

    /// Buffers sized for exactly this call's shape, kept while the shape repeats (decode steps
    /// repeat one shape; a new shape, such as the prefill before them, gets its own).
    func inferenceActivations(batch B: Int, sequence S: Int, outRows: Int) throws -> Activations {
        let rows = config.streams * B * S
        if let a = inference, a.rows == rows, a.sequenceRows == B * S, a.outRows == outRows { return a }
        inference = nil  // its memory is free for the new shape's
        let a = try Activations(
            config: config, backend: backend, rows: rows, sequenceRows: B * S, outRows: outRows, keepEveryLayer: false)
        inference = a
        return a
    }
}
