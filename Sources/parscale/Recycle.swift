import ArgumentParser
import Foundation
import ParScale
import ParScaleTrain

struct Recycle: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Turn a P = 1 checkpoint into P streams by a short post-training (two-stage ParScale).",
        discussion: """
            Loads a P = 1 model (one of ours, or any official-layout Qwen2 checkpoint), adds P prefixes per \
            layer and the aggregation head, and post-trains: all parameters, or with --freeze-backbone only \
            the prefixes and the aggregator (the backbone stays bit-identical; the run also writes \
            DIR/adapter.safetensors, which `--adapter` applies to the same backbone on any inference command).
            Prefixes start as distinct normal draws per stream (--prefix-init data takes the keys and values \
            the source computes for a different span of training text per stream instead; measured, it \
            starts further from the source); the aggregator's last layer starts at zero (uniform mixing). \
            Defaults for recycling (measured, Tools/bench/RESULTS.md): peak learning rate 3e-4 (about where \
            pretraining ended) and 10x that on the prefixes and aggregator (--parscale-lr-scale). The validation loss of the source and \
            of the recycled model at step 0 are printed and recorded. Progress, checkpoints, metrics and \
            --resume work as in `pretrain`, --dtype and --max-shard-size included; every checkpoint carries \
            the source's tokenizer files (tokenizer.json, generation_config.json, ...).
            """)

    @Option(help: "Source checkpoint (P = 1).") var from: String?
    @Option(name: .customLong("P"), help: "Streams of the recycled model.") var streams: Int = 4
    @Option(help: "Run folder.") var out: String
    @Flag(help: "Continue the run in --out.") var resume = false
    @Option(name: .customLong("prefix-init"), help: "Prefix initialisation: normal (distinct draws per stream) or data (the source's keys/values of real text, a span per stream).")
    var prefixInit: PrefixInit = .normal
    @Flag(name: .customLong("freeze-backbone"), help: "Train only the prefixes and the aggregation head.") var freezeBackbone = false
    @OptionGroup var recipe: RecipeFlags
    @OptionGroup var training: TrainingFlags
    @OptionGroup var write: ModelWriteFlags

    func validate() throws {
        if !resume && from == nil { throw ValidationError("give --from DIR (a P = 1 checkpoint) or --resume") }
        if streams < 2 { throw ValidationError("--P must be at least 2 to recycle, got \(streams)") }
    }

    func run() throws {
        let trainer = try training.startOrResume(out, resume: resume) {
            let source = try Checkpoint.load(from!, backend: training.backend.make(for: Checkpoint.loadConfig(from!)))
            let recipe = self.recipe.resolved(base: .recycling)
            var options = try training.options(
                defaultSequence: 128, defaultBatch: 8, defaultLearningRate: TrainingFlags.continuedLearningRate)
            recipe.apply(to: &options, streams: streams)
            try write.apply(to: &options)
            options.freezeBackbone = freezeBackbone
            // Text is read through the source's tokenizer (or bytes for a byte-level source).
            let (encoding, corpus, companionSource) = try training.prepareData(
                &options, modelDirectory: from!, config: source.config, out: out)
            var recycleOptions = RecycleOptions(streams: streams)
            recycleOptions.prefixTokens = recipe.prefixTokens
            recycleOptions.prefixInit = prefixInit
            recycleOptions.prefixStd = recipe.prefixStd
            recycleOptions.prefixScale = recipe.prefixScale
            recycleOptions.smoothing = recipe.smoothing
            recycleOptions.aggregatorInit = recipe.aggregatorInit
            recycleOptions.seed = training.seed
            let model = try Recycler.recycle(source: source, options: recycleOptions, data: options.data, corpus: corpus)
            // Step 0: how close the recycled model starts to its source.
            func loss(_ m: ParScaleModel) throws -> Double {
                try Evaluator.evaluate(
                    model: m, data: options.data, corpus: corpus, windows: options.evalWindows, sequence: options.sequence,
                    taskExamples: 0
                ).validationLoss
            }
            let sourceLoss = try loss(source), startLoss = try loss(model)
            standardError(String(
                format: "recycling %@ into P = %d (T = %d, prefixes from %@%@): step 0 val loss %.4f, source %.4f (%+.4f)",
                from!, streams, recipe.prefixTokens, prefixInit.rawValue, freezeBackbone ? ", frozen backbone" : "", startLoss,
                sourceLoss, startLoss - sourceLoss))
            return try Trainer.start(
                runDirectory: out, model: model, options: options,
                recipe: recipe.metadata.merging([
                    "recycled_from": from!, "prefix_init": prefixInit.rawValue,
                    "freeze_backbone": String(freezeBackbone), "source_val_loss": String(sourceLoss),
                    "step0_val_loss": String(startLoss), "backbone_hash": Adapter.backboneHash(source),
                ]) { $1 },
                encoding: encoding, companionSource: companionSource)
        }
        try training.runToEnd(trainer)
        if trainer.state.options.freezeBackbone {
            let hash = Adapter.backboneHash(trainer.model)
            guard hash == trainer.state.recipe["backbone_hash"] else {
                throw ValidationError("internal: the frozen backbone changed (hash \(hash))")
            }
            let path = (out as NSString).appendingPathComponent("adapter.safetensors")
            try Adapter.save(trainer.model, backboneHash: hash, to: path)
            standardError("adapter: \(path) (apply with --model \(trainer.state.recipe["recycled_from"] ?? "BACKBONE") --adapter \(path))")
        }
    }
}

extension PrefixInit: ExpressibleByArgument {}
