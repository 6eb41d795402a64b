import ArgumentParser
import Foundation
import ParScale
import ParScaleTrain

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
            Default shape: hidden 128, 4 layers, 4/2 heads, intermediate 352.
            """)

    @Option(help: "Output checkpoint folder.") var out: String
    @OptionGroup var shape: ShapeFlags
    @Option(help: "Vocabulary size (256 = byte level).") var vocab: Int = 256
    @Flag(help: "Tie the output head to the embedding.") var tied = false
    @Option(name: .customLong("max-position"), help: "max_position_embeddings written to config.json.") var maxPosition: Int = 2048
    @Option(name: .customLong("P"), help: "Number of parallel streams P.") var streams: Int = 1
    @Option(help: "Random seed.") var seed: UInt64 = 0
    @OptionGroup var recipe: RecipeFlags
    @OptionGroup var write: ModelWriteFlags
    @Flag(help: "Overwrite an existing checkpoint in --out.") var force = false

    func run() throws {
        let recipe = recipe.resolved()
        let config = try shape.shape(hidden: 128, layers: 4, heads: 4, kvHeads: 2, intermediate: 352).config(
            vocab: vocab, tied: tied, streams: streams, prefixTokens: recipe.prefixTokens, smoothing: recipe.smoothing,
            maxPosition: maxPosition)
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
