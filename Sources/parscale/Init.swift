import ArgumentParser
import Foundation
import ParScale
import ParScaleTrain

/// The model-shape flags shared by `init` and the benchmarks.
struct ShapeOptions: ParsableArguments {
    @Option(help: "Hidden size H.") var hidden: Int = 128
    @Option(help: "Number of decoder layers L.") var layers: Int = 4
    @Option(help: "Attention heads NH (H must be a multiple).") var heads: Int = 4
    @Option(name: .customLong("kv-heads"), help: "Key/value heads KVH (NH must be a multiple).") var kvHeads: Int = 2
    @Option(help: "MLP intermediate size.") var intermediate: Int = 352
    @Option(help: "Vocabulary size (256 = byte level).") var vocab: Int = 256
    @Flag(help: "Tie the output head to the embedding.") var tied = false
    @Option(name: .customLong("max-position"), help: "max_position_embeddings written to config.json.") var maxPosition: Int = 2048

    /// The model of this shape with P streams and the recipe's T and smoothing.
    func config(streams: Int, recipe: Recipe) throws -> ModelConfig {
        let config = ModelConfig(
            vocabSize: vocab, hiddenSize: hidden, intermediateSize: intermediate, numHiddenLayers: layers,
            numAttentionHeads: heads, numKeyValueHeads: kvHeads, tieWordEmbeddings: tied, parscaleN: streams,
            parscaleNTokens: recipe.prefixTokens, parscaleAttnSmooth: recipe.smoothing, maxPositionEmbeddings: maxPosition)
        do { try config.validate() } catch let error as ConfigError { throw ValidationError(error.message) }
        return config
    }
}

struct Init: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Write a randomly initialised checkpoint in the official layout.",
        discussion: """
            Backbone: normal(0, 0.02) linear and embedding weights, zero biases, unit norms (as Qwen2). \
            ParScale: the recipe's initialisation (see `pretrain --help`): prefixes normal(0, --prefix-std), \
            distinct per stream so the streams can differ; aggregator first layer normal(0, 0.02), last layer \
            zero, so the first mixing weights are uniform.
            Weights are stored as --dtype (f32 by default) in one model.safetensors, or in shards with \
            model.safetensors.index.json past --max-shard-size (5GB by default), as transformers saves them.
            """)

    @Option(help: "Output checkpoint folder.") var out: String
    @OptionGroup var shape: ShapeOptions
    @Option(name: .customLong("P"), help: "Number of parallel streams P.") var streams: Int = 1
    @Option(help: "Random seed.") var seed: UInt64 = 0
    @OptionGroup var recipe: RecipeFlags
    @OptionGroup var write: ModelWriteFlags
    @Flag(help: "Overwrite an existing checkpoint in --out.") var force = false

    func run() throws {
        let recipe = recipe.resolved()
        let config = try shape.config(streams: streams, recipe: recipe)
        if !force && FileManager.default.fileExists(atPath: Checkpoint.configPath(out)) {
            throw ValidationError("\(out) already holds a checkpoint; pass --force to overwrite it")
        }
        let layout = ParameterLayout(config)
        var params = [Float](repeating: 0, count: layout.totalCount)
        params.withUnsafeMutableBufferPointer {
            Initializer.initialize(layout, into: $0, options: recipe.initOptions(seed: seed))
        }
        try params.withUnsafeBufferPointer {
            try Checkpoint.save(
                config: config, parameters: $0, to: out, dtype: write.dtype.safetensors, maxShardBytes: write.maxShardBytes())
        }
        let counts = layout.counts
        print("wrote \(out): P = \(streams), \(counts.total) parameters (\(counts.nonEmbedding) non-embedding, \(counts.parscaleOnly) ParScale-only)")
    }
}
