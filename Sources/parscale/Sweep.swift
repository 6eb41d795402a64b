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
            --emit-jobs prints one independent command per run instead (the binary by its absolute path), \
            to spread a grid over cores or machines: `parscale sweep ... --emit-jobs | parallel -j 4`. \
            --slurm FILE writes an sbatch script instead: a job array with one run per task (logs in \
            DIR/logs/task-N.log; a requeued or resubmitted task resumes its run, a finished one is skipped); \
            `sbatch FILE`, then `parscale fit DIR` and `parscale report DIR` read the runs from DIR/runs \
            (a folder all nodes share, or the run folders copied under one DIR/runs).
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
    @Flag(name: .customLong("emit-jobs"), help: "Print one command per run instead of running them (for GNU parallel or any scheduler).") var emitJobs = false
    @Option(help: ArgumentHelp(
        "Write a Slurm job-array script to this file (one run per array task; submit with sbatch) instead of running.",
        valueName: "file"))
    var slurm: String?

    func validate() throws {
        if emitJobs && slurm != nil { throw ValidationError("give --emit-jobs or --slurm FILE, not both") }
    }

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
            for run in plan.runs { print((try jobCommand() + ["--only", run.name]).map(shellQuote).joined(separator: " ")) }
            return
        }
        if let slurm {
            try writeSlurmScript(slurm, plan: plan)
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

extension SweepCommand {
    /// This sweep as a command for one machine of many: the binary by its absolute path, the flags
    /// as given without --emit-jobs / --slurm (each job adds --only RUN).
    func jobCommand() throws -> [String] {
        let exe = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
        var flags: [String] = [], rest = CommandLine.arguments.dropFirst(2)[...]
        while let arg = rest.popFirst() {
            if arg == "--emit-jobs" || arg.hasPrefix("--slurm=") { continue }
            if arg == "--slurm" { _ = rest.popFirst(); continue }
            flags.append(arg)
        }
        return [exe, "sweep"] + flags
    }

    /// An sbatch script running the grid as a job array, one run per task, from this folder; the
    /// sweep folder (plan.json) and its logs folder are made now, so that tasks never race to.
    func writeSlurmScript(_ path: String, plan: SweepPlan) throws {
        try Sweep.prepare(plan, in: out)
        let cwd = FileManager.default.currentDirectoryPath
        let logs = ((out.hasPrefix("/") ? out : (cwd as NSString).appendingPathComponent(out)) as NSString).appendingPathComponent("logs")
        do {
            try FileManager.default.createDirectory(atPath: logs, withIntermediateDirectories: true)
        } catch {
            throw ValidationError("\(logs): cannot create the logs folder (\(error.localizedDescription))")
        }
        let runs = plan.runs.map(\.name)
        let script = """
            #!/bin/bash
            # Made by `parscale sweep --slurm`: the grid of \(out) as a Slurm job array, one run per task.
            # Submit with `sbatch \((path as NSString).lastPathComponent)` (sbatch options on its command line override
            # the ones below: --partition, --time, --cpus-per-task, ...). A task that is requeued or submitted again
            # resumes its run from its last checkpoint; a finished run is skipped. Then: parscale fit \(out)
            #SBATCH --job-name=parscale-sweep
            #SBATCH --array=0-\(runs.count - 1)
            #SBATCH --output=\(logs)/task-%a.log
            #SBATCH --open-mode=append
            #SBATCH --chdir=\(cwd)
            #SBATCH --requeue
            set -euo pipefail
            runs=(\(runs.joined(separator: " ")))
            run="${runs[$SLURM_ARRAY_TASK_ID]}"
            echo "parscale sweep: task $SLURM_ARRAY_TASK_ID of job $SLURM_ARRAY_JOB_ID, run $run, on $(hostname)"
            exec \(try jobCommand().map(shellQuote).joined(separator: " ")) --only "$run"

            """
        try atomicWrite(Data(script.utf8), to: path)
        chmod(path, 0o755)
        standardError("wrote \(path): \(runs.count) array tasks (logs in \(logs)); submit with `sbatch \(path)`, then `parscale fit \(out)`")
    }
}

func shellQuote(_ s: String) -> String {
    s.allSatisfy { $0.isLetter || $0.isNumber || "-_./,=:".contains($0) } ? s : "'" + s.replacingOccurrences(of: "'", with: "'\\''") + "'"
}
