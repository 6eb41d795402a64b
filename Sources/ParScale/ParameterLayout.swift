/// Where every parameter lives in ONE flat float buffer, by its official Hugging Face name.
/// The same layout serves gradients and optimizer moments (llm.c style).
///
/// Order inside a layer is chosen so that related weights are adjacent and can be used as one
/// matrix: q, k, v weights form one [(NH+2*KVH)*hd, H] matrix (one sgemm for all three, biases
/// likewise), and gate, up form one [2*I, H] matrix.
public struct ParameterLayout: Sendable {
    public struct Entry: Sendable, Equatable {
        public let name: String
        public let shape: [Int]
        public let offset: Int
        public var count: Int { shape.reduce(1, *) }
    }

    /// Offsets of one decoder layer's tensors.
    public struct Layer: Sendable {
        public let inputNorm: Int
        public let qkvWeight: Int  // q_proj, k_proj, v_proj weights, stacked
        public let qkvBias: Int  // q, k, v biases, stacked
        public let oWeight: Int
        public let prefixK: Int  // [P, KVH, T, hd]; only when P > 1
        public let prefixV: Int
        public let postNorm: Int
        public let gateUpWeight: Int  // gate_proj then up_proj
        public let downWeight: Int
    }

    public let config: ModelConfig
    public let entries: [Entry]
    public let layers: [Layer]
    public let embedding: Int
    public let finalNorm: Int
    public let aggregator0Weight: Int  // [H, P*H]
    public let aggregator0Bias: Int
    public let aggregator2Weight: Int  // [P, H]
    public let aggregator2Bias: Int
    /// Offset of the output head: the embedding when tied.
    public let head: Int
    public let totalCount: Int
    private let indexByName: [String: Int]

    public init(_ config: ModelConfig) {
        let H = config.hiddenSize, I = config.intermediateSize, V = config.vocabSize
        let hd = config.headDim, NH = config.numAttentionHeads, KVH = config.numKeyValueHeads
        let P = config.parscaleN, T = config.parscaleNTokens
        var entries: [Entry] = []
        var next = 0
        func add(_ name: String, _ shape: [Int]) -> Int {
            let offset = next
            entries.append(Entry(name: name, shape: shape, offset: offset))
            next += shape.reduce(1, *)
            return offset
        }
        embedding = add("model.embed_tokens.weight", [V, H])
        var layers: [Layer] = []
        for i in 0..<config.numHiddenLayers {
            let p = "model.layers.\(i)."
            let inputNorm = add(p + "input_layernorm.weight", [H])
            let qW = add(p + "self_attn.q_proj.weight", [NH * hd, H])
            _ = add(p + "self_attn.k_proj.weight", [KVH * hd, H])
            _ = add(p + "self_attn.v_proj.weight", [KVH * hd, H])
            let qB = add(p + "self_attn.q_proj.bias", [NH * hd])
            _ = add(p + "self_attn.k_proj.bias", [KVH * hd])
            _ = add(p + "self_attn.v_proj.bias", [KVH * hd])
            let oW = add(p + "self_attn.o_proj.weight", [H, NH * hd])
            var prefixK = -1, prefixV = -1
            if P > 1 {
                prefixK = add(p + "self_attn.prefix_k", [P, KVH, T, hd])
                prefixV = add(p + "self_attn.prefix_v", [P, KVH, T, hd])
            }
            let postNorm = add(p + "post_attention_layernorm.weight", [H])
            let gate = add(p + "mlp.gate_proj.weight", [I, H])
            _ = add(p + "mlp.up_proj.weight", [I, H])
            let down = add(p + "mlp.down_proj.weight", [H, I])
            layers.append(
                Layer(
                    inputNorm: inputNorm, qkvWeight: qW, qkvBias: qB, oWeight: oW,
                    prefixK: prefixK, prefixV: prefixV, postNorm: postNorm,
                    gateUpWeight: gate, downWeight: down))
        }
        finalNorm = add("model.norm.weight", [H])
        if P > 1 {
            aggregator0Weight = add("model.aggregate_layer.0.weight", [H, P * H])
            aggregator0Bias = add("model.aggregate_layer.0.bias", [H])
            aggregator2Weight = add("model.aggregate_layer.2.weight", [P, H])
            aggregator2Bias = add("model.aggregate_layer.2.bias", [P])
        } else {
            (aggregator0Weight, aggregator0Bias, aggregator2Weight, aggregator2Bias) = (-1, -1, -1, -1)
        }
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
        let c = config, H = c.hiddenSize
        let named = entries.max { $0.count < $1.count }.map { ($0.name, $0.count) } ?? ("", 0)
        let stacked = [
            ("the stacked q/k/v projections", (c.numAttentionHeads + 2 * c.numKeyValueHeads) * c.headDim * H),
            ("the stacked gate/up projections", 2 * c.intermediateSize * H),
        ]
        return ([named] + stacked).max { $0.1 < $1.1 }!
    }

    public func entry(_ name: String) -> Entry? { indexByName[name].map { entries[$0] } }

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
