import Foundation
import ParScale
import ParScaleTrain

/// One training run of a sweep: a model size (by hidden size), a stream count and a seed.
public struct SweepRun: Codable, Equatable, Sendable {
    public var hidden: Int
    public var streams: Int
    public var seed: UInt64
    /// The named recipe of an ablation run (nil: the plan's recipe, in a plain sweep).
    public var recipe: String?
    public var name: String { (recipe.map { "\($0)-" } ?? "") + "h\(hidden)-p\(streams)-s\(seed)" }
    public init(hidden: Int, streams: Int, seed: UInt64, recipe: String? = nil) {
        (self.hidden, self.streams, self.seed, self.recipe) = (hidden, streams, seed, recipe)
    }
}

/// A grid of sizes x P x seeds trained with the same data and token budget per run.
public struct SweepPlan: Codable, Equatable, Sendable {
    public var hiddenSizes: [Int]
    public var streams: [Int]
    public var seeds: [UInt64]
    public var tokens: Int
    public var layers = 4
    public var heads = 4
    public var kvHeads = 2
    /// Intermediate size per hidden size; absent sizes get 2.75 x hidden (a multiple of 8).
    public var intermediates: [Int: Int] = [:]
    /// How the ParScale parts start and learn (prefix tokens T included).
    public var recipe = Recipe.standard
    public var sequence = 128
    public var batch = 8
    public var learningRate = 3e-3
    public var evalWindows = 64
    public var taskExamples = 100
    public var data = DataSpec.synthetic(seed: 0)
    /// How the runs' checkpoints store model weights (nil: F32, one file up to 5 GB).
    public var checkpointDType: SafeTensorsDType?
    public var maxShardBytes: Int?

    public init(hiddenSizes: [Int], streams: [Int], seeds: [UInt64], tokens: Int) {
        self.hiddenSizes = hiddenSizes
        self.streams = streams
        self.seeds = seeds
        self.tokens = tokens
    }

    public var runs: [SweepRun] {
        hiddenSizes.flatMap { h in streams.flatMap { p in seeds.map { SweepRun(hidden: h, streams: p, seed: $0) } } }
    }

    /// The model of a run: by default 4 heads, 2 kv heads, intermediate 2.75 x hidden (a multiple
    /// of 8), tied byte-level embeddings, as in the science probes.
    public func config(_ run: SweepRun) -> ModelConfig {
        ModelConfig(
            vocabSize: 256, hiddenSize: run.hidden,
            intermediateSize: intermediates[run.hidden] ?? Int((2.75 * Double(run.hidden) / 8).rounded()) * 8,
            numHiddenLayers: layers, numAttentionHeads: heads, numKeyValueHeads: kvHeads, tieWordEmbeddings: true,
            parscaleN: run.streams, parscaleNTokens: recipe.prefixTokens, parscaleAttnSmooth: recipe.smoothing,
            maxPositionEmbeddings: max(2048, sequence))
    }

    public func trainingOptions(_ run: SweepRun) -> TrainingOptions {
        var o = TrainingOptions()
        o.batch = batch
        o.sequence = sequence
        o.steps = max(1, tokens / (batch * sequence))
        o.evalEvery = o.steps
        o.checkpointEvery = max(1, o.steps / 4)
        o.evalWindows = evalWindows
        o.taskExamples = taskExamples
        o.seed = run.seed
        o.data = data
        o.data.seed = data.kind == "synthetic" ? data.seed : run.seed
        o.optimizer.learningRate = learningRate
        if let checkpointDType { o.checkpointDType = checkpointDType }
        if let maxShardBytes { o.maxShardBytes = maxShardBytes }
        recipe.apply(to: &o, streams: run.streams)
        return o
    }
}

/// What a finished run reports (DIR/runs/NAME/result.json).
public struct SweepResult: Codable, Sendable {
    public var name: String
    public var hidden: Int
    public var layers: Int
    public var streams: Int
    public var seed: UInt64
    public var nonEmbeddingParameters: Int
    public var parscaleParameters: Int
    public var tokens: Int
    public var validationLoss: Double
    public var validationLossSE: Double
    public var taskAccuracy: Double?
    public var wallSeconds: Double
    public var backend: String
    public var config: ModelConfig
    /// The named recipe of an ablation run; nil in a plain sweep (and for P = 1, shared by recipes).
    public var recipe: String?

    /// The law's N: the backbone's non-embedding parameters, without the prefixes and the
    /// aggregator. In the paper those are about 0.2% of N, so its N is the backbone's; in toy models
    /// they are up to 15% of it, and counting them would credit part of P's effect to N.
    public var lawN: Int { nonEmbeddingParameters - parscaleParameters }
}

public enum Sweep {
    public static func runDirectory(_ dir: String, _ run: SweepRun) -> String {
        (dir as NSString).appendingPathComponent("runs/\(run.name)")
    }
    static func resultPath(_ dir: String, _ run: SweepRun) -> String {
        (runDirectory(dir, run) as NSString).appendingPathComponent("result.json")
    }
    static func planPath(_ dir: String) -> String { (dir as NSString).appendingPathComponent("plan.json") }

    /// Saves the plan (or checks it equals the one already there, so runs stay comparable).
    public static func prepare(_ plan: SweepPlan, in dir: String) throws {
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        if let data = FileManager.default.contents(atPath: planPath(dir)) {
            let existing = try? JSONDecoder().decode(SweepPlan.self, from: data)
            guard existing == plan else {
                throw TrainingError("\(planPath(dir)) holds a different plan; use another --out, or the same flags as before")
            }
            return
        }
        try atomicWrite(encoder.encode(plan), to: planPath(dir))
    }

    public static func loadPlan(_ dir: String) throws -> SweepPlan {
        guard let data = FileManager.default.contents(atPath: planPath(dir)) else {
            throw TrainingError("\(dir): no sweep here (expected \(planPath(dir)))")
        }
        return try JSONDecoder().decode(SweepPlan.self, from: data)
    }

    /// Trains one run to the end (resuming its checkpoint if it has one) on `backend` (default the
    /// CPU); a run with a result is skipped.
    @discardableResult
    public static func execute(
        _ run: SweepRun, plan: SweepPlan, in dir: String, backend: Backend? = nil, log: (String) -> Void
    ) throws -> SweepResult {
        let backend = backend ?? CPUBackend()
        if let done = try? loadResult(resultPath(dir, run)) {
            log("\(run.name): done before (val loss \(String(format: "%.4f", done.validationLoss))), skipped")
            return done
        }
        let runDir = runDirectory(dir, run)
        let trainer = try Trainer.startOrResume(runDirectory: runDir, backend: { _ in backend }, log: log) {
            let model = try ParScaleModel.checkedInitialized(plan.config(run), backend: backend, options: plan.recipe.initOptions(seed: run.seed))
            let trainer = try Trainer.start(
                runDirectory: runDir, model: model, options: plan.trainingOptions(run), recipe: plan.recipe.metadata)
            log("\(run.name): N = \(model.layout.counts.nonEmbedding), P = \(run.streams), \(trainer.state.options.steps) steps")
            return trainer
        }
        try trainer.run { line in if line.hasPrefix("eval") { log("  \(run.name) \(line)") } }  // progress lines would flood a sweep
        let e = try trainer.evaluate()
        let counts = trainer.model.layout.counts
        let result = SweepResult(
            name: run.name, hidden: run.hidden, layers: plan.layers, streams: run.streams, seed: run.seed,
            nonEmbeddingParameters: counts.nonEmbedding, parscaleParameters: counts.parscaleOnly, tokens: trainer.state.tokens,
            validationLoss: e.validationLoss, validationLossSE: e.standardError, taskAccuracy: e.taskAccuracy,
            wallSeconds: trainer.state.elapsedSeconds, backend: trainer.model.backend.name,
            config: trainer.model.config, recipe: run.recipe)
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        try atomicWrite(encoder.encode(result), to: resultPath(dir, run))
        return result
    }

    static func loadResult(_ path: String) throws -> SweepResult {
        guard let data = FileManager.default.contents(atPath: path) else { throw TrainingError("\(path): missing") }
        return try JSONDecoder().decode(SweepResult.self, from: data)
    }

    /// Every result.json under DIR/runs (from this machine or collected from others).
    public static func results(in dir: String) throws -> [SweepResult] {
        let runs = (dir as NSString).appendingPathComponent("runs")
        let names = (try? FileManager.default.contentsOfDirectory(atPath: runs)) ?? []
        return try names.sorted().compactMap { name in
            let path = (runs as NSString).appendingPathComponent("\(name)/result.json")
            return FileManager.default.fileExists(atPath: path) ? try loadResult(path) : nil
        }
    }
}

extension SweepPlan {
    /// Named grids. `tiny` runs in about a minute (CI runs it through `study`); `small` in about
    /// half an hour on 2 cores; `medium` in about 5 hours (or on a GPU); `paper` is the paper's grid of shapes (36 layers, 16/2 heads, its
    /// intermediate sizes; byte vocabulary here) at P = 1, 2, 4, 8, for `--emit-jobs` on big machines.
    public static func preset(_ name: String) -> SweepPlan? {
        switch name {
        case "tiny":
            var plan = SweepPlan(hiddenSizes: [32, 48, 64], streams: [1, 2], seeds: [0], tokens: 65_536)
            plan.layers = 2
            plan.recipe.prefixTokens = 4
            plan.sequence = 64
            plan.evalWindows = 16
            plan.taskExamples = 0
            return plan
        case "small":
            // Code is smooth and capacity-limited at these sizes (seed sd about 0.005-0.01 nats), unlike
            // the reasoning tasks, whose sudden steps make seed noise hide any P effect (science notes).
            // Chosen by `study --plan-only` (StudyPower): of the plans searched, the smallest detectable
            // k (0.082 with the 2M-token noise in Tools/bench/RESULTS.md) within about half an hour
            // on 2 cores. At 2M tokens the seed sd is half that at 1M while the P = 1 slope falls
            // less, so fewer, longer runs win; P = 4 alone carries as much information on k per run
            // as P = 2 and 4 together under the law (sum of (ln P - mean)^2), at two thirds the runs.
            var plan = SweepPlan(hiddenSizes: [48, 64, 96], streams: [1, 4], seeds: [0, 1, 2], tokens: 2_000_000)
            plan.evalWindows = 256  // 32k validation tokens, as the ablation
            plan.taskExamples = 0
            plan.data = .text(TextCorpus.builtinCode, seed: 0)
            return plan
        case "medium":
            // For longer runs and GPUs (about 5 h on 2 cores): 4x the tokens, so the models are less
            // data-limited (11-43 tokens per parameter), 5 seeds, P = 1, 2, 4 to see the law's shape.
            var plan = SweepPlan(hiddenSizes: [64, 96, 128], streams: [1, 2, 4], seeds: [0, 1, 2, 3, 4], tokens: 8_000_000)
            plan.evalWindows = 256
            plan.taskExamples = 0
            plan.data = .text(TextCorpus.builtinCode, seed: 0)
            return plan
        case "paper":
            let sizes = [896: 4864, 1024: 5504, 1280: 6912, 1536: 8320, 2048: 11008, 2560: 13824]
            var plan = SweepPlan(hiddenSizes: sizes.keys.sorted(), streams: [1, 2, 4, 8], seeds: [0], tokens: 42_000_000_000)
            plan.layers = 36
            plan.heads = 16
            plan.kvHeads = 2
            plan.intermediates = sizes
            plan.recipe.prefixTokens = 48
            plan.sequence = 2048
            plan.batch = 32
            return plan
        default:
            return nil
        }
    }
}
