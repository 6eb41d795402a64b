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
    @Option(help: "Hidden size.") var hidden: Int?
    @Option(help: "Layers.") var layers: Int?
    @Option(help: "Attention heads.") var heads: Int?
    @Option(name: .customLong("kv-heads"), help: "Key/value heads.") var kvHeads: Int?
    @Option(help: "MLP intermediate size.") var intermediate: Int?
    @Option(name: .customLong("P"), help: "Parallel streams P.") var streams: Int = 1
    @Flag(help: "Untie the output head from the embedding (tied by default).") var untied = false
    @OptionGroup var recipe: RecipeFlags
    @OptionGroup var training: TrainingFlags
    @OptionGroup var write: ModelWriteFlags

    func validate() throws {
        if streams < 1 { throw ValidationError("--P must be at least 1, got \(streams)") }
    }

    func run() throws {
        let trainer: Trainer
        if resume {
            trainer = try training.resume(out)
        } else {
            let recipe = self.recipe.resolved()
            let preset = size.shape
            // A new model reads bytes, or has the vocabulary of --tokenizer.
            let vocabulary = from == nil ? try training.tokenizer.map { try Tokenizer(file: $0).vocabularySize } : nil
            let config = ModelConfig(
                vocabSize: vocabulary ?? 256, hiddenSize: hidden ?? preset.hidden, intermediateSize: intermediate ?? preset.intermediate,
                numHiddenLayers: layers ?? preset.layers, numAttentionHeads: heads ?? preset.heads,
                numKeyValueHeads: kvHeads ?? preset.kvHeads,
                tieWordEmbeddings: !untied, parscaleN: streams, parscaleNTokens: recipe.prefixTokens, parscaleAttnSmooth: recipe.smoothing,
                maxPositionEmbeddings: max(2048, training.seq ?? preset.sequence))
            do { try config.validate() } catch let error as ConfigError { throw ValidationError(error.message) }
            var options = try training.options(
                defaultSequence: preset.sequence, defaultBatch: preset.batch,
                defaultLearningRate: from == nil ? 3e-3 : TrainingFlags.continuedLearningRate)
            recipe.apply(to: &options)
            try write.apply(to: &options)
            if streams == 1 { options.prefixReparam = 0 }  // no prefixes to reparameterise
            let backend = try training.backend.make(for: try from.map { try Checkpoint.loadConfig($0) } ?? config)
            let model = try from.map { try Checkpoint.load($0, backend: backend) }
                ?? ParScaleModel.initialized(config, backend: backend, options: recipe.initOptions(seed: training.seed))
            let data = try training.prepareData(&options, modelDirectory: from, config: model.config, out: out)
            trainer = try Trainer.start(
                runDirectory: out, model: model, options: options,
                recipe: recipe.metadata.merging(["prefix_init": "normal", "initialised_from": from ?? "random"]) { $1 },
                encoding: data.encoding, companionSource: data.companionSource)
            let counts = model.layout.counts, c = model.config
            standardError(
                "pretraining \(out)\(from.map { " from \($0)" } ?? ""): P = \(c.streams), hidden \(c.hiddenSize), \(c.numHiddenLayers) layers, \(counts.nonEmbedding) non-embedding parameters; "
                    + "\(options.steps) steps x \(options.tokensPerStep) tokens on \(options.data.description); \(backend.name)")
        }
        try training.runToEnd(trainer)
    }
}


struct Eval: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Validation loss, bits per byte and task accuracy of a checkpoint.",
        discussion: """
            Without --data: the built-in synthetic corpus's held-out split (loss on fixed validation windows, \
            and exact-match accuracy of greedy answers to held-out task prompts). With --data: the validation \
            split of that text (task accuracy is then null).
            """)

    @OptionGroup var options: ModelOptions
    @Option(help: "UTF-8 text file or folder (overrides --corpus), read through the model's tokenizer.json (or as bytes for a byte-level model).") var data: String?
    @Option(help: "Built-in corpus: synthetic or code.") var corpus: BuiltinCorpus = .synthetic
    @Option(help: "tokenizer.json to read the text with instead of the model folder's.") var tokenizer: String?
    @Option(help: "Seed of the synthetic corpus.") var seed: UInt64 = 0
    @Option(help: "Tokens per validation window.") var seq: Int = 128
    @Option(help: "Validation windows.") var windows: Int = 64
    @Option(name: .customLong("task-examples"), help: "Held-out task prompts.") var taskExamples: Int = 100
    @Flag(help: "Print one JSON object with val_loss, bits_per_byte, task_accuracy.") var json = false

    func run() throws {
        let model = try options.load()
        var spec = corpus.spec(data: data, seed: seed)
        let encoding = try dataEncoding(spec, modelDirectory: options.model, config: model.config, tokenizerFile: tokenizer)
        spec.tokenizer = encoding.tokenizer?.fingerprint
        let text = try spec.corpus(encoding: encoding, cacheDirectory: nil, validationOnly: true, progress: progressLine)
        let e = try Evaluator.evaluate(model: model, data: spec, corpus: text, windows: windows, sequence: seq, taskExamples: taskExamples)
        if json {
            printJSON(e.json)
        } else {
            print(String(format: "val loss %.4f | %.4f bits/byte", e.validationLoss, e.bitsPerByte)
                + (e.taskAccuracy.map { String(format: " | task accuracy %.1f%% (%d prompts)", 100 * $0, taskExamples) } ?? ""))
        }
    }
}

/// Progress lines ("step ...") overwrite each other on a terminal; anything else, or output to
/// a file, gets a line of its own.
func progressLine(_ text: String) {
    let terminal = isatty(STDERR_FILENO) != 0
    if terminal && text.hasPrefix("step ") {
        FileHandle.standardError.write(Data(("\r\u{1B}[K" + text).utf8))
    } else {
        standardError((terminal ? "\r\u{1B}[K" : "") + text)
    }
}

/// The training flags shared by `pretrain` and `recycle`.
struct TrainingFlags: ParsableArguments {
    @Option(help: "Tokens per sequence.") var seq: Int?
    @Option(help: "Sequences per micro-batch.") var batch: Int?
    @Option(help: "Micro-batches accumulated per optimizer step.") var accumulate: Int = 1
    @Option(help: "Optimizer steps.") var steps: Int?
    @Option(help: "Training tokens (sets --steps from the tokens per step).") var tokens: Int?
    @Option(help: "Peak learning rate (default 3e-3; 3e-4 for `recycle` and `pretrain --from`, where a pretraining schedule ended: re-warming a trained model to 1e-3 cost more than 200k extra tokens gained, measured).")
    var lr: Double?
    @Option(help: "Warm-up steps (default 5% of the run).") var warmup: Int?
    @Option(name: .customLong("weight-decay"), help: "AdamW weight decay on weight matrices.") var weightDecay: Double = 0.1
    @Option(help: "Global gradient-norm clipping (0: none).") var clip: Double = 1.0
    @Option(help: "Seed of initialisation and data order.") var seed: UInt64 = 0
    @Option(help: "UTF-8 text file or folder to train on (overrides --corpus): read through the model's tokenizer.json, or as bytes for a byte-level model; tokenized once into DIR/tokens/.") var data: String?
    @Option(help: "Built-in corpus: synthetic (reasoning tasks) or code (the Swift toolchain's interface files).") var corpus: BuiltinCorpus = .synthetic
    @Option(help: "tokenizer.json to read the text with (default: the source model's; `pretrain` without --from makes a model of this tokenizer's vocabulary).") var tokenizer: String?
    @Option(name: .customLong("eval-every"), help: "Evaluate every K steps (default: 10 times per run).") var evalEvery: Int?
    @Option(name: .customLong("checkpoint-every"), help: "Checkpoint every K steps (default: at each evaluation).") var checkpointEvery: Int?
    @Option(name: .customLong("eval-windows"), help: "Validation windows per evaluation.") var evalWindows: Int = 32
    @Option(name: .customLong("task-examples"), help: "Held-out task prompts for task accuracy (synthetic data).") var taskExamples: Int = 50
    @Option(help: "Compute backend: auto (a Vulkan GPU if there is one, else the CPU), cpu or vulkan (any Vulkan device, lavapipe included).")
    var backend: BackendChoice = .auto
    @Option(name: .customLong("stop-after"), help: "Stop (with a checkpoint) after this many steps of this invocation; --resume continues.") var stopAfter: Int?

    func validate() throws {
        if steps != nil && tokens != nil { throw ValidationError("give --steps or --tokens, not both") }
        if accumulate < 1 { throw ValidationError("--accumulate must be at least 1, got \(accumulate)") }
        if let steps, steps < 1 { throw ValidationError("--steps must be at least 1, got \(steps)") }
        if let lr, !(lr > 0) { throw ValidationError("--lr must be positive, got \(lr)") }
    }

    var dataSpec: DataSpec { corpus.spec(data: data, seed: seed) }

    /// Continued training (recycle, pretrain --from) starts near where pretraining's cosine ended.
    static let continuedLearningRate = 3e-4

    func options(defaultSequence: Int, defaultBatch: Int, defaultLearningRate: Double = 3e-3) throws -> TrainingOptions {
        var options = TrainingOptions()
        options.sequence = seq ?? defaultSequence
        options.batch = batch ?? defaultBatch
        options.accumulate = accumulate
        options.steps = tokens.map { max(1, $0 / options.tokensPerStep) } ?? steps ?? 1000
        options.evalEvery = evalEvery ?? max(1, options.steps / 10)
        options.checkpointEvery = checkpointEvery ?? options.evalEvery
        options.evalWindows = evalWindows
        options.taskExamples = taskExamples
        options.seed = seed
        options.data = dataSpec
        options.optimizer.learningRate = lr ?? defaultLearningRate
        options.optimizer.warmupSteps = warmup ?? 0
        options.optimizer.weightDecay = weightDecay
        options.optimizer.clipNorm = clip
        return options
    }

    /// The run's data for a model from `modelDirectory` (nil: a new model, read with --tokenizer or
    /// as bytes): its spec in `options`, its encoding, and the corpus, tokenized into the run's token
    /// cache with a progress line.
    /// `companionSource` is the folder whose tokenizer files every checkpoint carries: the model's,
    /// or with --tokenizer FILE a copy of that file (as tokenizer.json, with the tokenizer_config.json
    /// and generation_config.json beside it) in DIR/tokenizer/.
    func prepareData(
        _ options: inout TrainingOptions, modelDirectory: String?, config: ModelConfig, out: String
    ) throws -> (encoding: TextEncoding, corpus: TokenCorpus?, companionSource: String?) {
        let encoding = try dataEncoding(options.data, modelDirectory: modelDirectory, config: config, tokenizerFile: tokenizer)
        options.data.tokenizer = encoding.tokenizer?.fingerprint
        let corpus = try options.data.corpus(
            encoding: encoding, cacheDirectory: Trainer.tokenCacheDirectory(out), progress: progressLine)
        guard let tokenizer else { return (encoding, corpus, modelDirectory) }
        let staged = (out as NSString).appendingPathComponent("tokenizer")
        try FileManager.default.createDirectory(atPath: staged, withIntermediateDirectories: true)
        let beside = (tokenizer as NSString).deletingLastPathComponent
        for (source, name) in [(tokenizer, Tokenizer.fileName)]
            + [Tokenizer.configFileName, "generation_config.json"].map({ ((beside as NSString).appendingPathComponent($0), $0) })
        where FileManager.default.fileExists(atPath: source) {
            try atomicWrite(try Data(contentsOf: URL(fileURLWithPath: source)), to: (staged as NSString).appendingPathComponent(name))
        }
        return (encoding, corpus, staged)
    }

    func resume(_ out: String) throws -> Trainer {
        let config = try Checkpoint.loadConfig(Trainer.checkpointDirectory(out))
        let trainer = try Trainer.resume(runDirectory: out, backend: backend.make(for: config))
        standardError("resuming \(out) at step \(trainer.state.step)/\(trainer.state.options.steps)")
        return trainer
    }

    /// Runs (or continues) `trainer` and reports how it ended.
    func runToEnd(_ trainer: Trainer) throws {
        let evaluation = try trainer.run(stopAfter: stopAfter) { progressLine($0) }
        if trainer.state.step < trainer.state.options.steps {
            standardError("stopped at step \(trainer.state.step) with a checkpoint in \(trainer.checkpointDirectory); continue with --resume")
        } else if let evaluation {
            standardError(String(
                format: "done: step %d, val loss %.4f (%.4f bits/byte)%@; model in %@", trainer.state.step,
                evaluation.validationLoss, evaluation.bitsPerByte,
                evaluation.taskAccuracy.map { String(format: ", task accuracy %.1f%%", 100 * $0) } ?? "", trainer.checkpointDirectory))
        }
    }
}

/// `--corpus`: the built-in data sets, needing no download.
enum BuiltinCorpus: String, ExpressibleByArgument, CaseIterable {
    case synthetic, code

    /// --data wins over --corpus.
    func spec(data: String?, seed: UInt64) -> DataSpec {
        if let data { return .text(data, seed: seed) }
        return self == .code ? .text(TextCorpus.builtinCode, seed: seed) : .synthetic(seed: seed)
    }

}

/// How a model reads `spec`'s data. Synthetic data is bytes (an error for a model with a
/// tokenizer); text goes through `tokenizerFile`, the model folder's tokenizer.json or, for a
/// byte-level model (256 ids) without one, bytes. A model with any other vocabulary and no
/// tokenizer is refused: its ids are not bytes.
func dataEncoding(_ spec: DataSpec, modelDirectory: String?, config: ModelConfig, tokenizerFile: String?) throws -> TextEncoding {
    if spec.kind == "synthetic" && tokenizerFile == nil && !(modelDirectory.map(Tokenizer.exists(inModel:)) ?? false) {
        return .bytes
    }
    return try TextEncoding.forModel(directory: modelDirectory, config: config, tokenizerFile: tokenizerFile)
}
