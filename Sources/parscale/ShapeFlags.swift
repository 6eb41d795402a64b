import ArgumentParser
import ParScale

/// A model's shape: hidden size H, layers L, heads NH and KVH, MLP intermediate size I.
struct ModelShape {
    var hidden, layers, heads, kvHeads, intermediate: Int

    /// The model of this shape with P streams and T prefix tokens (smoothing and the maximum
    /// position: ModelConfig's defaults unless given), as a usage error when it is not valid.
    func config(
        vocab: Int, tied: Bool, streams: Int, prefixTokens: Int, smoothing: Double? = nil, maxPosition: Int? = nil
    ) throws -> ModelConfig {
        var config = ModelConfig(
            vocabSize: vocab, hiddenSize: hidden, intermediateSize: intermediate, numHiddenLayers: layers,
            numAttentionHeads: heads, numKeyValueHeads: kvHeads, tieWordEmbeddings: tied, parscaleN: streams,
            parscaleNTokens: prefixTokens)
        if let smoothing { config.parscaleAttnSmooth = smoothing }
        if let maxPosition { config.maxPositionEmbeddings = maxPosition }
        return try validated(config)
    }
}

/// The model-shape flags, declared once for `init`, `pretrain`, `cost` and `bench decode`. A flag
/// not given keeps the command's default shape (in each command's help).
struct ShapeFlags: ParsableArguments {
    @Option(help: "Hidden size H.") var hidden: Int?
    @Option(help: "Number of decoder layers L.") var layers: Int?
    @Option(help: "Attention heads NH (H must be a multiple).") var heads: Int?
    @Option(name: .customLong("kv-heads"), help: "Key/value heads KVH (NH must be a multiple).") var kvHeads: Int?
    @Option(help: "MLP intermediate size I.") var intermediate: Int?

    /// These flags over the command's defaults; a default intermediate size of nil is 2.75 x the
    /// hidden size, rounded to a multiple of 8 (as the sweeps).
    func shape(hidden h: Int, layers l: Int, heads nh: Int, kvHeads kvh: Int, intermediate i: Int?) -> ModelShape {
        let hidden = self.hidden ?? h
        return ModelShape(
            hidden: hidden, layers: layers ?? l, heads: heads ?? nh, kvHeads: kvHeads ?? kvh,
            intermediate: intermediate ?? i ?? Int((2.75 * Double(hidden) / 8).rounded()) * 8)
    }
}

/// `config` if it is valid, else its problem as a usage error.
func validated(_ config: ModelConfig) throws -> ModelConfig {
    do { try config.validate() } catch let error as ConfigError { throw ValidationError(error.message) }
    return config
}
