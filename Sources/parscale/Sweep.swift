import ArgumentParser
import Foundation
import ParScale
import ParScaleLaw
import ParScaleTrain

struct SweepCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sweep",
        abstract: "Train a grid of model sizes x P (x seeds) with the same data and token budget per run.",
        discussion: """
            Runs go to DIR/runs/h<hidden>-p<P>-s<seed>/; each is resumable (an interrupted sweep continues \
            where it stopped) and skipped once it has its result.json (config, non-embedding N, P, tokens, \
            final validation loss and its standard error, task accuracy, wall time, backend). \
            --emit-jobs prints one independent command per run instead, to spread a grid over machines \
            (Slurm job arrays, GNU parallel); collect the run folders under one DIR/runs and `parscale fit DIR`.
            Presets: tiny (about a minute), small (under 30 minutes on 2 cores), paper (the paper's shapes).
            """)

    @Option(help: "Sweep folder.") var out: String
    @Option(help: "Preset grid: tiny, small, medium or paper (explicit flags override it).") var preset: String?
    @Option(help: "Hidden sizes, comma-separated.") var sizes: String?
    @Option(name: .customLong("P"), help: "Stream counts, comma-separated.") var streams: String?
    @Option(help: "Seeds, comma-separated.") var seeds: String?
    @Option(help: "Training tokens per run.") var tokens: Int?
    @Option(help: "Layers of every model.") var layers: Int?
    @Option(help: "Tokens per sequence.") var seq: Int?
    @Option(help: "Sequences per batch.") var batch: Int?
    @Option(help: "Peak learning rate.") var lr: Double?
    @Option(help: "UTF-8 text file or folder (overrides --corpus).") var data: String?
    @Option(help: "Built-in corpus: synthetic or code.") var corpus: BuiltinCorpus?
    @OptionGroup var recipe: RecipeFlags
    @OptionGroup var backend: BackendFlag
    @OptionGroup var write: ModelWriteFlags
    @Option(help: "Run only this run of the grid (as printed by --emit-jobs).") var only: String?
    @Flag(name: .customLong("emit-jobs"), help: "Print one command per run instead of running them.") var emitJobs = false

    func plan() throws -> SweepPlan {
        var plan: SweepPlan
        if let preset {
            guard let p = SweepPlan.preset(preset) else { throw ValidationError("--preset must be tiny, small, medium or paper, got '\(preset)'") }
            plan = p
        } else {
            guard sizes != nil, streams != nil, tokens != nil else {
                throw ValidationError("give --preset, or --sizes, --P and --tokens")
            }
            plan = SweepPlan(hiddenSizes: [], streams: [], seeds: [0], tokens: 0)
        }
        if let sizes { plan.hiddenSizes = try parseTokenList(sizes, flag: "--sizes").map(Int.init) }
        if let streams { plan.streams = try parseTokenList(streams, flag: "--P").map(Int.init) }
        if let seeds { plan.seeds = try parseTokenList(seeds, flag: "--seeds").map { UInt64($0) } }
        if let tokens { plan.tokens = tokens }
        if let layers { plan.layers = layers }
        plan.recipe = recipe.resolved(base: plan.recipe)
        try write.apply(to: &plan)
        if let seq { plan.sequence = seq }
        if let batch { plan.batch = batch }
        if let lr { plan.learningRate = lr }
        if data != nil || corpus != nil { plan.data = (corpus ?? .synthetic).spec(data: data, seed: 0) }
        guard !plan.hiddenSizes.isEmpty, plan.streams.allSatisfy({ $0 >= 1 }), plan.tokens > 0 else {
            throw ValidationError("the grid needs sizes, P >= 1 and a positive token budget")
        }
        for run in plan.runs {
            do { try plan.config(run).validate() } catch let error as ConfigError {
                throw ValidationError("size \(run.hidden): \(error.message)")
            }
        }
        return plan
    }

    func run() throws {
        let plan = try plan()
        if emitJobs {
            let exe = CommandLine.arguments[0]
            let flags = CommandLine.arguments.dropFirst(2).filter { $0 != "--emit-jobs" }
            for run in plan.runs { print(([exe, "sweep"] + flags + ["--only", run.name]).map(shellQuote).joined(separator: " ")) }
            return
        }
        try Sweep.prepare(plan, in: out)
        let runs = plan.runs.filter { only == nil || $0.name == only }
        if let only, runs.isEmpty {
            throw ValidationError("--only \(only) is not a run of this grid (\(plan.runs.map(\.name).joined(separator: ", ")))")
        }
        standardError("sweep \(out): \(runs.count) runs, \(plan.tokens) tokens each, \(plan.data.description)")
        let computeBackend = try backend.make()
        for (i, run) in runs.enumerated() {
            let result = try Sweep.execute(run, plan: plan, in: out, backend: computeBackend) { standardError("[\(i + 1)/\(runs.count)] \($0)") }
            standardError(String(
                format: "[%d/%d] %@: val loss %.4f +- %.4f, N = %d, %.0f s", i + 1, runs.count, run.name,
                result.validationLoss, result.validationLossSE, result.nonEmbeddingParameters, result.wallSeconds))
        }
    }
}

func shellQuote(_ s: String) -> String {
    s.allSatisfy { $0.isLetter || $0.isNumber || "-_./,=:".contains($0) } ? s : "'" + s.replacingOccurrences(of: "'", with: "'\\''") + "'"
}
