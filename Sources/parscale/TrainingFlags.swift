import ArgumentParser
import Foundation
import ParScale
import ParScaleTrain

/// The training flags shared by `pretrain` and `recycle`, and how they start, resume and finish a run.
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
    @OptionGroup var backend: BackendFlag
    @Flag(name: .customLong("accept-changed-data"), help: "With --resume: continue although the --data text changed since the run started (its content hash is in trainer_state.json; the new one is recorded).")
    var acceptChangedData = false
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

    /// The trainer of the run in `out`: resumed from its checkpoint on --backend when `resume`,
    /// else made by `start` (`Trainer.startOrResume`).
    func startOrResume(_ out: String, resume: Bool, start: () throws -> Trainer) throws -> Trainer {
        try Trainer.startOrResume(
            runDirectory: out, resume: resume, backend: { try backend.make(for: $0) }, acceptChangedData: acceptChangedData,
            log: standardError, start: start)
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
