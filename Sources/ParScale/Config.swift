import Foundation

/// The model's hyper-parameters, with the official `config.json` keys and defaults
/// (`Qwen2ParScaleConfig`). A plain `qwen2` config reads as a P = 1 model.
///
/// Letters used across the code: B batch, S sequence, P streams, T prefix tokens, H hidden,
/// L layers, NH / KVH attention / key-value heads, R = P*B rows.
public struct ModelConfig: Codable, Equatable, Sendable {
    public var modelType: String = "qwen2_parscale"
    public var vocabSize: Int
    public var hiddenSize: Int
    public var intermediateSize: Int
    public var numHiddenLayers: Int
    public var numAttentionHeads: Int
    public var numKeyValueHeads: Int
    public var ropeTheta: Double = 10000
    public var rmsNormEps: Double = 1e-6
    public var tieWordEmbeddings: Bool = false
    public var parscaleN: Int = 1
    public var parscaleNTokens: Int = 48
    /// The official code's default is 0.01; models made by this project write 0.1 (see spec).
    public var parscaleAttnSmooth: Double = 0.01
    public var initializerRange: Double = 0.02
    public var maxPositionEmbeddings: Int = 32768

    public static let defaultSmoothingForNewModels = 0.1

    public init(
        vocabSize: Int, hiddenSize: Int, intermediateSize: Int, numHiddenLayers: Int,
        numAttentionHeads: Int, numKeyValueHeads: Int, tieWordEmbeddings: Bool,
        parscaleN: Int, parscaleNTokens: Int,
        parscaleAttnSmooth: Double = ModelConfig.defaultSmoothingForNewModels,
        ropeTheta: Double = 10000, rmsNormEps: Double = 1e-6, initializerRange: Double = 0.02,
        maxPositionEmbeddings: Int = 32768
    ) {
        self.vocabSize = vocabSize
        self.hiddenSize = hiddenSize
        self.intermediateSize = intermediateSize
        self.numHiddenLayers = numHiddenLayers
        self.numAttentionHeads = numAttentionHeads
        self.numKeyValueHeads = numKeyValueHeads
        self.tieWordEmbeddings = tieWordEmbeddings
        self.parscaleN = parscaleN
        self.parscaleNTokens = parscaleNTokens
        self.parscaleAttnSmooth = parscaleAttnSmooth
        self.ropeTheta = ropeTheta
        self.rmsNormEps = rmsNormEps
        self.initializerRange = initializerRange
        self.maxPositionEmbeddings = maxPositionEmbeddings
    }

    enum CodingKeys: String, CodingKey {
        case modelType = "model_type"
        case vocabSize = "vocab_size"
        case hiddenSize = "hidden_size"
        case intermediateSize = "intermediate_size"
        case numHiddenLayers = "num_hidden_layers"
        case numAttentionHeads = "num_attention_heads"
        case numKeyValueHeads = "num_key_value_heads"
        case ropeTheta = "rope_theta"
        case rmsNormEps = "rms_norm_eps"
        case tieWordEmbeddings = "tie_word_embeddings"
        case parscaleN = "parscale_n"
        case parscaleNTokens = "parscale_n_tokens"
        case parscaleAttnSmooth = "parscale_attn_smooth"
        case initializerRange = "initializer_range"
        case maxPositionEmbeddings = "max_position_embeddings"
        // Read only to refuse variants this implementation does not compute.
        case ropeScaling = "rope_scaling"
        case useSlidingWindow = "use_sliding_window"
        case hiddenAct = "hidden_act"
        // transformers 5 writes rope_theta inside rope_parameters, and the attention kind per layer.
        case ropeParameters = "rope_parameters"
        case layerTypes = "layer_types"
    }

    private struct RopeParameters: Decodable {
        var ropeType: String?
        var ropeTheta: Double?
        enum CodingKeys: String, CodingKey {
            case ropeType = "rope_type"
            case ropeTheta = "rope_theta"
        }
    }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        modelType = try c.decodeIfPresent(String.self, forKey: .modelType) ?? "qwen2_parscale"
        vocabSize = try c.decode(Int.self, forKey: .vocabSize)
        hiddenSize = try c.decode(Int.self, forKey: .hiddenSize)
        intermediateSize = try c.decode(Int.self, forKey: .intermediateSize)
        numHiddenLayers = try c.decode(Int.self, forKey: .numHiddenLayers)
        numAttentionHeads = try c.decode(Int.self, forKey: .numAttentionHeads)
        // Qwen2Config: num_key_value_heads defaults to num_attention_heads.
        numKeyValueHeads =
            try c.decodeIfPresent(Int.self, forKey: .numKeyValueHeads) ?? numAttentionHeads
        let topLevelTheta = try c.decodeIfPresent(Double.self, forKey: .ropeTheta)
        ropeTheta = topLevelTheta ?? 10000
        if let rope = try c.decodeIfPresent(RopeParameters.self, forKey: .ropeParameters) {
            if let type = rope.ropeType, type != "default" {
                throw ConfigError("rope_parameters.rope_type is '\(type)'; only plain RoPE ('default') is supported")
            }
            if let theta = rope.ropeTheta {
                if let topLevelTheta, topLevelTheta != theta {
                    throw ConfigError("rope_theta (\(topLevelTheta)) and rope_parameters.rope_theta (\(theta)) disagree")
                }
                ropeTheta = theta
            }
        }
        if let kinds = try c.decodeIfPresent([String].self, forKey: .layerTypes),
            let other = kinds.first(where: { $0 != "full_attention" }) {
            throw ConfigError("layer_types has '\(other)'; only full attention is supported")
        }
        rmsNormEps = try c.decodeIfPresent(Double.self, forKey: .rmsNormEps) ?? 1e-6
        tieWordEmbeddings = try c.decodeIfPresent(Bool.self, forKey: .tieWordEmbeddings) ?? false
        initializerRange = try c.decodeIfPresent(Double.self, forKey: .initializerRange) ?? 0.02
        maxPositionEmbeddings =
            try c.decodeIfPresent(Int.self, forKey: .maxPositionEmbeddings) ?? 32768
        if modelType == "qwen2" {
            parscaleN = 1
        } else {
            parscaleN = try c.decodeIfPresent(Int.self, forKey: .parscaleN) ?? 1
        }
        parscaleNTokens = try c.decodeIfPresent(Int.self, forKey: .parscaleNTokens) ?? 48
        parscaleAttnSmooth =
            try c.decodeIfPresent(Double.self, forKey: .parscaleAttnSmooth) ?? 0.01
        if (try? c.decodeNil(forKey: .ropeScaling)) == false {
            throw ConfigError("rope_scaling is set; only plain RoPE (rope_scaling: null) is supported")
        }
        if try c.decodeIfPresent(Bool.self, forKey: .useSlidingWindow) == true {
            throw ConfigError("use_sliding_window is true; sliding-window attention is not supported")
        }
        if let act = try c.decodeIfPresent(String.self, forKey: .hiddenAct), act != "silu" {
            throw ConfigError("hidden_act is '\(act)'; only 'silu' is supported")
        }
    }

    /// Writes every key the official `Qwen2ParScaleConfig` writes, so the folder loads there.
    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(modelType, forKey: .modelType)
        try c.encode(vocabSize, forKey: .vocabSize)
        try c.encode(hiddenSize, forKey: .hiddenSize)
        try c.encode(intermediateSize, forKey: .intermediateSize)
        try c.encode(numHiddenLayers, forKey: .numHiddenLayers)
        try c.encode(numAttentionHeads, forKey: .numAttentionHeads)
        try c.encode(numKeyValueHeads, forKey: .numKeyValueHeads)
        try c.encode(ropeTheta, forKey: .ropeTheta)
        try c.encode(rmsNormEps, forKey: .rmsNormEps)
        try c.encode(tieWordEmbeddings, forKey: .tieWordEmbeddings)
        try c.encode(parscaleN, forKey: .parscaleN)
        try c.encode(parscaleNTokens, forKey: .parscaleNTokens)
        try c.encode(parscaleAttnSmooth, forKey: .parscaleAttnSmooth)
        try c.encode(initializerRange, forKey: .initializerRange)
        try c.encode(maxPositionEmbeddings, forKey: .maxPositionEmbeddings)
        try c.encodeNil(forKey: .ropeScaling)
        try c.encode(false, forKey: .useSlidingWindow)
        try c.encode("silu", forKey: .hiddenAct)
    }

    public var headDim: Int { hiddenSize / numAttentionHeads }
    public var streams: Int { parscaleN }
    public var prefixTokens: Int { parscaleN > 1 ? parscaleNTokens : 0 }

    /// Checks the numbers make a computable model; errors say which key is wrong.
    public func validate() throws {
        func positive(_ v: Int, _ key: String) throws {
            if v <= 0 { throw ConfigError("\(key) must be positive, got \(v)") }
        }
        try positive(vocabSize, "vocab_size")
        try positive(hiddenSize, "hidden_size")
        try positive(intermediateSize, "intermediate_size")
        try positive(numHiddenLayers, "num_hidden_layers")
        try positive(numAttentionHeads, "num_attention_heads")
        try positive(numKeyValueHeads, "num_key_value_heads")
        try positive(parscaleN, "parscale_n")
        if parscaleN > 1 { try positive(parscaleNTokens, "parscale_n_tokens") }
        if hiddenSize % numAttentionHeads != 0 {
            throw ConfigError(
                "hidden_size \(hiddenSize) is not a multiple of num_attention_heads \(numAttentionHeads)")
        }
        if numAttentionHeads % numKeyValueHeads != 0 {
            throw ConfigError(
                "num_attention_heads \(numAttentionHeads) is not a multiple of num_key_value_heads \(numKeyValueHeads)")
        }
        if headDim % 2 != 0 { throw ConfigError("head_dim \(headDim) must be even for RoPE") }
        if !(parscaleAttnSmooth >= 0 && parscaleAttnSmooth < 1) {
            throw ConfigError("parscale_attn_smooth must be in [0, 1), got \(parscaleAttnSmooth)")
        }
        if !(rmsNormEps > 0) || !(ropeTheta > 0) {
            throw ConfigError("rms_norm_eps and rope_theta must be positive")
        }
        let sizes = [vocabSize, hiddenSize, intermediateSize, numHiddenLayers, parscaleN, parscaleNTokens]
        if sizes.contains(where: { $0 > 1 << 24 }) {
            throw ConfigError("a size in the config is implausibly large (> 2^24)")
        }
    }

    public static func load(from path: String) throws -> ModelConfig {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw ConfigError("cannot read \(path)")
        }
        do {
            let config = try JSONDecoder().decode(ModelConfig.self, from: data)
            try config.validate()
            return config
        } catch let error as ConfigError {
            throw ConfigError("\(path): \(error.message)")
        } catch let DecodingError.keyNotFound(key, _) {
            throw ConfigError("\(path): missing key '\(key.stringValue)'")
        } catch let DecodingError.typeMismatch(_, context) {
            let key = context.codingPath.map(\.stringValue).joined(separator: ".")
            throw ConfigError("\(path): key '\(key)' has the wrong type (\(context.debugDescription))")
        } catch {
            throw ConfigError("\(path): not a valid config.json (\(error))")
        }
    }

    public func jsonData() throws -> Data {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        var data = try encoder.encode(self)
        // The official layout also names the architecture; add it without a second model type.
        var object = try JSONSerialization.jsonObject(with: data) as! [String: Any]
        object["architectures"] = [
            parscaleN > 1 || modelType == "qwen2_parscale"
                ? "Qwen2ParScaleForCausalLM" : "Qwen2ForCausalLM"
        ]
        object["torch_dtype"] = "float32"
        data = try JSONSerialization.data(withJSONObject: object, options: [.prettyPrinted, .sortedKeys])
        return data
    }
}

public struct ConfigError: Error, CustomStringConvertible {
    public let message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}
