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
    private var workspace: Workspace?

    public init(config: ModelConfig, backend: Backend, parameters: Tensor) {
        precondition(parameters.count == ParameterLayout(config).totalCount)
        self.config = config
        self.layout = ParameterLayout(config)
        self.backend = backend
        self.parameters = parameters
    }

    /// The view of one named parameter region.
    func param(_ offset: Int, _ count: Int) -> Tensor { parameters.slice(offset, count) }

    public func makeCache(batch: Int, capacity: Int) -> KVCache {
        let c = config, R = c.streams * batch
        let shape = attentionShape(batch: batch, newTokens: 0, startPosition: 0, capacity: capacity)
        let perLayer = R * c.numKeyValueHeads * shape.cacheCapacity * c.headDim
        var keys: [Tensor] = [], values: [Tensor] = []
        for layer in layout.layers {
            let k = backend.allocate(perLayer), v = backend.allocate(perLayer)
            if c.streams > 1 {
                let prefixCount = c.streams * c.numKeyValueHeads * c.prefixTokens * c.headDim
                backend.fillPrefix(prefix: param(layer.prefixK, prefixCount), cache: k, streams: c.streams, batch: batch, shape: shape)
                backend.fillPrefix(prefix: param(layer.prefixV, prefixCount), cache: v, streams: c.streams, batch: batch, shape: shape)
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
        let c = config, B = tokens.count, S = tokens.first?.count ?? 0
        let P = c.streams, H = c.hiddenSize, I = c.intermediateSize, V = c.vocabSize
        let NH = c.numAttentionHeads, hd = c.headDim, L = c.numHiddenLayers
        guard B == cache.batch else { throw ModelError("batch \(B) does not match the cache's \(cache.batch)") }
        guard S > 0, tokens.allSatisfy({ $0.count == S }) else {
            throw ModelError("every sequence of a batch must have the same, non-zero length")
        }
        guard cache.length + S <= cache.capacity else {
            throw ModelError("context full: \(cache.length) + \(S) tokens exceed the cache's \(cache.capacity)")
        }
        let ids = tokens.flatMap { $0 }
        if let bad = ids.first(where: { $0 < 0 || Int($0) >= V }) {
            throw ModelError("token id \(bad) is outside the vocabulary 0..<\(V)")
        }
        let rows = P * B * S, outRows = rowsWanted == .all ? B * S : B
        let w = workspaceFor(rows: rows, sequenceRows: B * S, outRows: outRows)
        let shape = attentionShape(batch: B, newTokens: S, startPosition: cache.length, capacity: cache.capacity)
        let eps = Float(c.rmsNormEps)

        // 1. Embed once, copy for every stream (replica-major: row r*B + b).
        let x = w.x.slice(0, rows * H)
        backend.embed(ids: ids, table: param(layout.embedding, V * H), out: w.y.slice(0, B * S * H), dim: H)
        backend.repeatRows(w.y.slice(0, B * S * H), times: P, out: x)
        let h = w.h.slice(0, rows * H), qkv = w.qkv.slice(0, rows * shape.qkvStride)
        let attn = w.attn.slice(0, rows * NH * hd), gateUp = w.gateUp.slice(0, rows * 2 * I)
        let act = w.act.slice(0, rows * I)
        for (i, layer) in layout.layers.enumerated() {
            observer?("hidden_states.\(i)", x)
            // 2-4. Attention with the stream's prefix KV, RoPE on real tokens only, GQA.
            backend.rmsNorm(x, weight: param(layer.inputNorm, H), out: h, rows: rows, dim: H, eps: eps)
            backend.linear(
                h, weight: param(layer.qkvWeight, shape.qkvStride * H), bias: param(layer.qkvBias, shape.qkvStride),
                out: qkv, rows: rows, inDim: H, outDim: shape.qkvStride, accumulate: false)
            backend.rope(qkv: qkv, shape: shape, theta: Float(c.ropeTheta))
            backend.storeKV(qkv: qkv, keys: cache.keys[i], values: cache.values[i], shape: shape)
            backend.attention(qkv: qkv, keys: cache.keys[i], values: cache.values[i], out: attn, shape: shape)
            backend.linear(
                attn, weight: param(layer.oWeight, H * NH * hd), bias: nil, out: x, rows: rows,
                inDim: NH * hd, outDim: H, accumulate: true)
            // 5. SwiGLU MLP, residual added by the down projection.
            backend.rmsNorm(x, weight: param(layer.postNorm, H), out: h, rows: rows, dim: H, eps: eps)
            backend.linear(
                h, weight: param(layer.gateUpWeight, 2 * I * H), bias: nil, out: gateUp, rows: rows,
                inDim: H, outDim: 2 * I, accumulate: false)
            backend.swiglu(gateUp, out: act, rows: rows, dim: I)
            backend.linear(
                act, weight: param(layer.downWeight, H * I), bias: nil, out: x, rows: rows, inDim: I,
                outDim: H, accumulate: true)
        }
        // 6. Final norm on every stream.
        backend.rmsNorm(x, weight: param(layout.finalNorm, H), out: h, rows: rows, dim: H, eps: eps)
        // 7. Aggregation of the P streams.
        let y = w.y.slice(0, B * S * H)
        if P > 1 {
            let n = B * S
            let feat = w.feat.slice(0, n * P * H), hidden = w.aggHidden.slice(0, n * H)
            let aggLogits = w.aggLogits.slice(0, n * P)
            backend.interleaveStreams(h, out: feat, streams: P, rowsPerStream: n, dim: H)
            backend.linear(
                feat, weight: param(layout.aggregator0Weight, H * P * H), bias: param(layout.aggregator0Bias, H),
                out: hidden, rows: n, inDim: P * H, outDim: H, accumulate: false)
            backend.silu(hidden)
            backend.linear(
                hidden, weight: param(layout.aggregator2Weight, P * H), bias: param(layout.aggregator2Bias, P),
                out: aggLogits, rows: n, inDim: H, outDim: P, accumulate: false)
            observer?("agg_logits", aggLogits)
            backend.mixStreams(
                h, logits: aggLogits, weights: w.aggWeights.slice(0, n * P), out: y, streams: P,
                rowsPerStream: n, dim: H, smoothing: Float(c.parscaleAttnSmooth))
        } else {
            backend.copy(h, to: y)
        }
        observer?("hidden_states.\(L)", y)
        // 8. Output head (the embedding when tied).
        var headInput = y
        if rowsWanted == .last {
            headInput = w.headInput.slice(0, B * H)
            backend.gatherRows(y, rowIndices: (0..<B).map { Int32($0 * S + S - 1) }, out: headInput, dim: H)
        }
        let logits = w.logits.slice(0, outRows * V)
        backend.linear(
            headInput, weight: param(layout.head, V * H), bias: nil, out: logits, rows: outRows, inDim: H,
            outDim: V, accumulate: false)
        cache.length += S
        var result = [Float](repeating: 0, count: outRows * V)
        result.withUnsafeMutableBufferPointer { backend.download(logits, into: $0) }
        return result
    }

    /// Activation buffers, grown when a call needs more rows (never fixed to the first shape seen).
    final class Workspace {
        let rows: Int, sequenceRows: Int, outRows: Int
        let x, h, qkv, attn, gateUp, act, feat, aggHidden, aggLogits, aggWeights, y, headInput, logits: Tensor

        init(config c: ModelConfig, backend: Backend, rows: Int, sequenceRows n: Int, outRows: Int) {
            self.rows = rows
            self.sequenceRows = n
            self.outRows = outRows
            let H = c.hiddenSize, P = c.streams, qkvWidth = (c.numAttentionHeads + 2 * c.numKeyValueHeads) * c.headDim
            x = backend.allocate(rows * H)
            h = backend.allocate(rows * H)
            qkv = backend.allocate(rows * qkvWidth)
            attn = backend.allocate(rows * c.numAttentionHeads * c.headDim)
            gateUp = backend.allocate(rows * 2 * c.intermediateSize)
            act = backend.allocate(rows * c.intermediateSize)
            feat = backend.allocate(n * P * H)
            aggHidden = backend.allocate(n * H)
            aggLogits = backend.allocate(n * P)
            aggWeights = backend.allocate(n * P)
            y = backend.allocate(n * H)
            headInput = backend.allocate(outRows * H)
            logits = backend.allocate(outRows * c.vocabSize)
        }
    }

    private func workspaceFor(rows: Int, sequenceRows: Int, outRows: Int) -> Workspace {
        if let w = workspace, w.rows >= rows, w.sequenceRows >= sequenceRows, w.outRows >= outRows {
            return w
        }
        let w = Workspace(
            config: config, backend: backend, rows: max(rows, workspace?.rows ?? 0),
            sequenceRows: max(sequenceRows, workspace?.sequenceRows ?? 0),
            outRows: max(outRows, workspace?.outRows ?? 0))
        workspace = w
        return w
    }
}
