import ArgumentParser
import Foundation
import ParScale
import ParScaleTrain

/// Named model and batch sizes, so nobody has to pick every number.
enum SizePreset: String, ExpressibleByArgument, CaseIterable {
    case tiny, xs, s, m
    /// hidden, layers, heads, kv heads, intermediate, sequence, batch
    var shape: (hidden: Int, layers: Int, heads: Int, kvHeads: Int, intermediate: Int, sequence: Int, batch: Int) {
        switch self {
        case .tiny: return (64, 2, 4, 2, 176, 64, 8)
        case .xs: return (128, 4, 4, 2, 352, 128, 8)
        case .s: return (256, 6, 8, 4, 688, 256, 8)
        case .m: return (512, 8, 8, 4, 1376, 256, 16)
        }
    }
}

struct Pretrain: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Pretrain a model from scratch at any size and P, on the CPU or a Vulkan GPU.",
        discussion: """
            Data: the built-in synthetic reasoning corpus (arithmetic with worked steps, program traces, \
            brackets, sorting, lookup; endless, seeded, with a disjoint held-out split), or --data FILE|FOLDER \
            of UTF-8 text (split into train and validation deterministically), read as bytes, or through \
            --tokenizer FILE (a new model then has that tokenizer's vocabulary) or the --from model's \
            tokenizer.json; tokenized text is cached in DIR/tokens/ (made once, memory-mapped).
            The run folder holds checkpoint/ (official layout + optimizer and trainer state, replaced \
            atomically) and metrics.jsonl; `--model DIR` of other commands accepts the run folder. \
            --resume continues a stopped run exactly (bit for bit at the same thread count). \
            Checkpoints store the model as --dtype, sharded past --max-shard-size (both kept on --resume); \
            with bf16 or f16 the exact f32 weights go beside it to checkpoint/master.safetensors for \
            --resume. With --from, the source's tokenizer files (tokenizer.json, generation_config.json, \
            ...) are copied into every checkpoint.
            Optimizer: AdamW (betas 0.9/0.95), linear warm-up then cosine decay to 10%, gradient clipping; \
            weight decay on weight matrices only (not norms, biases or prefixes).
            Recipe (how the ParScale parts start and learn; `--recipe` and the flags below, recorded in \
            trainer_state.json): by default prefixes N(0, 0.02) distinct per stream, trained through a 64-wide \
            MLP from one vector per stream (folded into plain prefixes in every checkpoint), T = 8, the \
            aggregator's last layer at zero (uniform first weights), smoothing 0.1; `parscale ablate` \
            measures the choices.
            """)

    @Option(help: "Run folder.") var out: String
    @Flag(help: "Continue the run in --out from its last checkpoint (other options are taken from it).") var resume = false
    @Option(help: "Start from this checkpoint's weights and shape instead of a random model (continued training; the optimizer starts fresh).")
    var from: String?
    @Option(help: "Size preset: \(SizePreset.allCases.map(\.rawValue).joined(separator: ", ")) (explicit flags override it).") var size: SizePreset = .xs
    @OptionGroup var shape: ShapeFlags
    @Option(name: .customLong("P"), help: "Parallel streams P.") var streams: Int = 1
    @Flag(help: "Untie the output head from the embedding (tied by default).") var untied = false
    @OptionGroup var recipe: RecipeFlags
    @OptionGroup var training: TrainingFlags
    @OptionGroup var write: ModelWriteFlags

    func validate() throws {
        if streams < 1 { throw ValidationError("--P must be at least 1, got \(streams)") }
    }

    func run() throws {
        let trainer = try training.startOrResume(out, resume: resume) {
            let recipe = self.recipe.resolved()
            let preset = size.shape
            // A new model reads bytes, or has the vocabulary of --tokenizer.
            let vocabulary = from == nil ? try training.tokenizer.map { try Tokenizer(file: $0).vocabularySize } : nil
            let config = try shape.shape(
                hidden: preset.hidden, layers: preset.layers, heads: preset.heads, kvHeads: preset.kvHeads,
                intermediate: preset.intermediate
            ).config(
                vocab: vocabulary ?? 256, tied: !untied, streams: streams, prefixTokens: recipe.prefixTokens,
                smoothing: recipe.smoothing, maxPosition: max(2048, training.seq ?? preset.sequence))
            var options = try training.options(
                defaultSequence: preset.sequence, defaultBatch: preset.batch,
                defaultLearningRate: from == nil ? 3e-3 : TrainingFlags.continuedLearningRate)
            recipe.apply(to: &options, streams: streams)
            try write.apply(to: &options)
            let backend = try training.backend.make(for: try from.map { try Checkpoint.loadConfig($0) } ?? config)
            let model = try from.map { try Checkpoint.load($0, backend: backend) }
                ?? ParScaleModel.checkedInitialized(config, backend: backend, options: recipe.initOptions(seed: training.seed))
            let data = try training.prepareData(&options, modelDirectory: from, config: model.config, out: out)
            let trainer = try Trainer.start(
                runDirectory: out, model: model, options: options,
                recipe: recipe.metadata.merging(["prefix_init": "normal", "initialised_from": from ?? "random"]) { $1 },
                encoding: data.encoding, companionSource: data.companionSource)
            let counts = model.layout.counts, c = model.config
            standardError(
                "pretraining \(out)\(from.map { " from \($0)" } ?? ""): P = \(c.streams), hidden \(c.hiddenSize), \(c.numHiddenLayers) layers, \(counts.nonEmbedding) non-embedding parameters; "
                    + "\(options.steps) steps x \(options.tokensPerStep) tokens on \(options.data.description); \(backend.name)")
            return trainer
        }
        try training.runToEnd(trainer)
    }
}
