/// One parameter tensor, by its official Hugging Face name, or several adjacent ones used as one
/// (`stacked`): its shape and the region of the flat parameter buffer it occupies. The same view
/// addresses the gradients and the optimizer moments, which share the parameters' layout.
public struct ParameterTensor: Sendable, Equatable {
    public let name: String
    public let shape: [Int]
    public let offset: Int
    public let count: Int

    public init(name: String, shape: [Int], offset: Int) {
        self.name = name
        self.shape = shape
        self.offset = offset
        self.count = shape.reduce(1, *)
    }

    /// Its elements' indices in the flat buffer.
    public var range: Range<Int> { offset..<offset + count }

    /// Tensors adjacent in the layout as one: stacked along the first dimension when the other
    /// dimensions agree (q, k, v weights as one [(NH+2*KVH)*hd, H] matrix), else flat.
    public static func stacked(_ parts: [ParameterTensor], name: String) -> ParameterTensor {
        precondition(!parts.isEmpty, "nothing to stack")
        for (a, b) in zip(parts, parts.dropFirst()) {
            precondition(a.offset + a.count == b.offset, "\(a.name) and \(b.name) are not adjacent")
        }
        let total = parts.reduce(0) { $0 + $1.count }
        let rest = parts[0].shape.dropFirst()
        let shape = parts.allSatisfy({ !$0.shape.isEmpty && $0.shape.dropFirst() == rest })
            ? [parts.reduce(0) { $0 + $1.shape[0] }] + rest : [total]
        return ParameterTensor(name: name, shape: shape, offset: parts[0].offset)
    }

    /// Element `index` along the first dimension (stream r of a prefix [P, KVH, T, hd]).
    public subscript(index: Int) -> ParameterTensor {
        precondition(!shape.isEmpty && index >= 0 && index < shape[0], "index \(index) out of \(name)'s \(shape)")
        let part = count / shape[0]
        return ParameterTensor(name: "\(name)[\(index)]", shape: Array(shape.dropFirst()), offset: offset + index * part)
    }
}

extension Tensor {
    /// The part of a buffer in the parameter layout (parameters, gradients, moments) that holds `tensor`.
    public func slice(_ tensor: ParameterTensor) -> Tensor { slice(tensor.offset, tensor.count) }
}

/// One decoder layer's tensors.
public struct LayerParameters: Sendable, Equatable {
    public let inputNorm: ParameterTensor  // [H]
    public let qkvWeight: ParameterTensor  // q_proj, k_proj, v_proj weights stacked: [(NH+2*KVH)*hd, H]
    public let qkvBias: ParameterTensor  // q, k, v biases stacked: [(NH+2*KVH)*hd]
    public let oWeight: ParameterTensor  // [H, NH*hd]
    public let prefixK: ParameterTensor?  // [P, KVH, T, hd]; only when P > 1
    public let prefixV: ParameterTensor?
    public let postNorm: ParameterTensor  // [H]
    public let gateUpWeight: ParameterTensor  // gate_proj then up_proj: [2*I, H]
    public let downWeight: ParameterTensor  // [H, I]
}

/// The aggregation head (only when P > 1), named after `model.aggregate_layer.{0,2}`.
public struct AggregatorParameters: Sendable, Equatable {
    public let layer0Weight: ParameterTensor  // [H, P*H]
    public let layer0Bias: ParameterTensor  // [H]
    public let layer2Weight: ParameterTensor  // [P, H]
    public let layer2Bias: ParameterTensor  // [P]
}

/// Where every parameter lives in ONE flat float buffer, by its official Hugging Face name.
/// The same layout serves gradients and optimizer moments (llm.c style).
///
/// Order inside a layer is chosen so that related weights are adjacent and can be used as one
/// matrix: q, k, v weights form one [(NH+2*KVH)*hd, H] matrix (one sgemm for all three, biases
/// likewise), and gate, up form one [2*I, H] matrix.
public struct ParameterLayout: Sendable {
    public let config: ModelConfig
    /// Every tensor of a checkpoint, in layout order (lm_head only when untied).
    public let entries: [ParameterTensor]
    public let layers: [LayerParameters]
    public let embedding: ParameterTensor  // [V, H]
    public let finalNorm: ParameterTensor  // [H]
    /// The aggregation head; nil when P = 1.
    public let aggregator: AggregatorParameters?
    /// The output head [V, H]: `lm_head.weight`, or the embedding when tied.
    public let head: ParameterTensor
    public let totalCount: Int
    private let indexByName: [String: Int]

    public init(_ config: ModelConfig) {
        let H = config.hiddenSize, I = config.intermediateSize, V = config.vocabSize
        let hd = config.headDim, NH = config.numAttentionHeads, KVH = config.numKeyValueHeads
        let P = config.parscaleN, T = config.parscaleNTokens
        var entries: [ParameterTensor] = []
        var next = 0
        func add(_ name: String, _ shape: [Int]) -> ParameterTensor {
            let tensor = ParameterTensor(name: name, shape: shape, offset: next)
            entries.append(tensor)
            next += tensor.count
            return tensor
        }
        embedding = add("model.embed_tokens.weight", [V, H])
        var layers: [LayerParameters] = []
        for i in 0..<config.numHiddenLayers {
            let p = "model.layers.\(i)."
            let inputNorm = add(p + "input_layernorm.weight", [H])
            let qkvWeight = ParameterTensor.stacked(
                [add(p + "self_attn.q_proj.weight", [NH * hd, H]), add(p + "self_attn.k_proj.weight", [KVH * hd, H]),
                 add(p + "self_attn.v_proj.weight", [KVH * hd, H])],
                name: p + "self_attn.{q,k,v}_proj.weight")
            let qkvBias = ParameterTensor.stacked(
                [add(p + "self_attn.q_proj.bias", [NH * hd]), add(p + "self_attn.k_proj.bias", [KVH * hd]),
                 add(p + "self_attn.v_proj.bias", [KVH * hd])],
                name: p + "self_attn.{q,k,v}_proj.bias")
            let oWeight = add(p + "self_attn.o_proj.weight", [H, NH * hd])
            let prefixK = P > 1 ? add(p + "self_attn.prefix_k", [P, KVH, T, hd]) : nil
            let prefixV = P > 1 ? add(p + "self_attn.prefix_v", [P, KVH, T, hd]) : nil
            let postNorm = add(p + "post_attention_layernorm.weight", [H])
            let gateUpWeight = ParameterTensor.stacked(
                [add(p + "mlp.gate_proj.weight", [I, H]), add(p + "mlp.up_proj.weight", [I, H])],
                name: p + "mlp.{gate,up}_proj.weight")
            let downWeight = add(p + "mlp.down_proj.weight", [H, I])
            layers.append(
                LayerParameters(
                    inputNorm: inputNorm, qkvWeight: qkvWeight, qkvBias: qkvBias, oWeight: oWeight,
                    prefixK: prefixK, prefixV: prefixV, postNorm: postNorm,
                    gateUpWeight: gateUpWeight, downWeight: downWeight))
        }
        finalNorm = add("model.norm.weight", [H])
        aggregator = P > 1
            ? AggregatorParameters(
                layer0Weight: add("model.aggregate_layer.0.weight", [H, P * H]),
                layer0Bias: add("model.aggregate_layer.0.bias", [H]),
                layer2Weight: add("model.aggregate_layer.2.weight", [P, H]),
                layer2Bias: add("model.aggregate_layer.2.bias", [P]))
            : nil
        head = config.tieWordEmbeddings ? embedding : add("lm_head.weight", [V, H])
        self.config = config
        self.entries = entries
        self.layers = layers
        self.totalCount = next
        self.indexByName = Dictionary(uniqueKeysWithValues: entries.enumerated().map { ($1.name, $0) })
    }

    /// The largest tensor the model's ops read as one: a named tensor, or a layer's q/k/v or
    /// gate/up projections, which are stacked and used as one matrix.
    public var largestTensor: (name: String, count: Int) {
        let named = entries.max { $0.count < $1.count }.map { ($0.name, $0.count) } ?? ("", 0)
        let stacked = [
            ("the stacked q/k/v projections", layers.first?.qkvWeight.count ?? 0),
            ("the stacked gate/up projections", layers.first?.gateUpWeight.count ?? 0),
        ]
        return ([named] + stacked).max { $0.1 < $1.1 }!
    }

    public func entry(_ name: String) -> ParameterTensor? { indexByName[name].map { entries[$0] } }

    /// Tensors that exist only because P > 1 (prefixes and the aggregation head).
    public static func isParScaleOnly(_ name: String) -> Bool {
        name.contains("prefix_k") || name.contains("prefix_v") || name.hasPrefix("model.aggregate_layer.")
    }

    /// Parameter counts as `parscale info` prints them.
    public struct Counts: Sendable {
        public let total: Int
        public let embedding: Int  // embed_tokens, plus lm_head when untied
        public let nonEmbedding: Int  // what the scaling law calls N (ParScale parameters included)
        public let parscaleOnly: Int
    }

    public var counts: Counts {
        var embeddingCount = 0, parscale = 0
        for e in entries {
            if e.name == "model.embed_tokens.weight" || e.name == "lm_head.weight" {
                embeddingCount += e.count
            } else if Self.isParScaleOnly(e.name) {
                parscale += e.count
            }
        }
        return Counts(
            total: totalCount, embedding: embeddingCount,
            nonEmbedding: totalCount - embeddingCount, parscaleOnly: parscale)
    }
}
