import ArgumentParser
import Foundation
import ParScale
import ParScaleLaw
import ParScaleTrain

struct Study: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Sweep, fit, measured cost and report in one command, on the built-in corpus.",
        discussion: """
            tiny: a few small models on the synthetic tasks, about a minute on 2 cores (CI runs it). small: \
            the plan with the smallest detectable k within about 30 minutes on 2 cores (see --plan-only), on \
            the built-in code corpus. medium: a longer plan for bigger machines or GPUs (several hours on 2 \
            cores). Before training the study prints the smallest k its plan can detect (80% power at the 5% \
            two-sided level, from the seed noise and P = 1 slope measured in Tools/bench/RESULTS.md), and after \
            it the same with its own P = 1 seeds, and the cheapest plan that could detect the paper's k = 0.39; \
            the report shows them beside the fitted interval (DIR/power.json). Re-running continues an interrupted study. The cost step \
            compares the largest swept size at the largest P against the dense model the fitted k makes \
            equivalent. Output: DIR/report.html and DIR/report.md.
            """)

    @Option(help: "Preset: tiny, small or medium.") var preset: String = "small"
    @Option(help: "Study folder (default runs/study-PRESET).") var out: String?
    @Option(help: "Built-in corpus: synthetic or code (default: the preset's).") var corpus: BuiltinCorpus?
    @Option(help: "Hidden sizes, comma-separated (default: the preset's).") var sizes: String?
    @Option(name: .customLong("P"), help: "Stream counts, comma-separated, 1 included (default: the preset's).") var streams: String?
    @Option(help: "Seeds, comma-separated (default: the preset's).") var seeds: String?
    @Option(help: "Training tokens per run (default: the preset's).") var tokens: Int?
    @Flag(name: .customLong("plan-only"), help: "Print the plan, its hours on this machine, the k it can detect (also with the seed noise of finished P = 1 runs already in --out) and the cheapest study that could detect the paper's k = 0.39; train nothing.") var planOnly = false
    @Flag(help: "With --plan-only: print one JSON object.") var json = false
    @OptionGroup var recipe: RecipeFlags
    @OptionGroup var backend: BackendFlag
    @OptionGroup var write: ModelWriteFlags

    func plan() throws -> SweepPlan {
        guard ["tiny", "small", "medium"].contains(preset), var plan = SweepPlan.preset(preset) else {
            throw ValidationError("--preset must be tiny, small or medium, got '\(preset)'")
        }
        if let corpus { plan.data = corpus.spec(data: nil, seed: 0) }
        if let sizes { plan.hiddenSizes = try parseTokenList(sizes, flag: "--sizes").map(Int.init) }
        if let streams { plan.streams = try parseTokenList(streams, flag: "--P").map(Int.init) }
        if let seeds { plan.seeds = try parseTokenList(seeds, flag: "--seeds").map { UInt64($0) } }
        if let tokens { plan.tokens = tokens }
        guard plan.hiddenSizes.allSatisfy({ $0 > 0 && $0 % plan.heads == 0 }), plan.streams.allSatisfy({ $0 >= 1 }), plan.streams.contains(1),
              plan.tokens > 0, !plan.seeds.isEmpty
        else {
            throw ValidationError("--sizes must be positive multiples of \(plan.heads), --P must include 1, and --tokens must be positive")
        }
        plan.recipe = recipe.resolved(base: plan.recipe)
        try write.apply(to: &plan)
        return plan
    }

    func run() throws {
        let plan = try plan()
        let dir = out ?? "runs/study-\(preset)"
        if planOnly {
            // Finished runs already in --out (of this plan's sizes) give the measured noise too.
            let done = FileManager.default.fileExists(atPath: dir) ? try Sweep.results(in: dir) : []
            let before = PowerReport.make(plan: plan, results: done)
            if json {
                let encoder = JSONEncoder()
                encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
                print(String(decoding: try encoder.encode(before), as: UTF8.self))
            } else {
                print("study plan: hidden \(plan.hiddenSizes) x P \(plan.streams) x seeds \(plan.seeds), \(plan.tokens) tokens each (\(plan.runs.count) runs)")
                for line in before.lines { print(line) }
            }
            return
        }
        let before = PowerReport.make(plan: plan, results: [])
        let start = Date()
        try Sweep.prepare(plan, in: dir)
        let runs = plan.runs
        standardError("study \(dir): sweep of \(runs.count) runs (\(plan.hiddenSizes) x P \(plan.streams) x seeds \(plan.seeds), \(plan.tokens) tokens each)")
        for line in before.lines { standardError("power: " + line) }
        let computeBackend = try backend.make()
        for (i, run) in runs.enumerated() {
            let r = try Sweep.execute(run, plan: plan, in: dir, backend: computeBackend) { standardError("[\(i + 1)/\(runs.count)] \($0)") }
            standardError(String(format: "[%d/%d] %@: val loss %.4f +- %.4f", i + 1, runs.count, run.name, r.validationLoss, r.validationLossSE))
        }
        let power = PowerReport.make(plan: plan, results: try Sweep.results(in: dir))
        try power.save(dir)
        if let measured = power.measured {
            standardError(String(format: "power: with this study's own seed sd and slope, detectable k = %.3f", measured.detectableK))
        }
        let summary = try Fit.fit(dir, samples: preset == "tiny" ? 20 : 200)
        standardError(String(format: "fit: k = %.4g, 95%% [%.4g, %.4g], R^2 = %.4f; detectable k %.3f", summary.k, summary.intervals["k"]?[0] ?? .nan, summary.intervals["k"]?[1] ?? .nan, summary.r2, (power.measured ?? power.prior).detectableK))
        let base = plan.config(SweepRun(hidden: plan.hiddenSizes.max()!, streams: 1, seed: 0))
        let P = plan.streams.max()!
        // The cost comparison needs an equivalent dense size: the fitted k when its interval
        // excludes 0, else the paper's k (and the report says which).
        let k = summary.kExcludesZero ? summary.k : 0.39
        if !summary.kExcludesZero {
            standardError("cost: the fitted k's interval includes 0, so the dense model is sized with the paper's k = 0.39 instead")
        }
        let report = try CostReport.measure(
            base: base, streams: max(P, 2), k: k, batches: [1, 2, 4, 8], prompt: 64, new: preset == "tiny" ? 16 : 64
        ) { config, b, prompt, new in
            try Cost.probeInOwnProcess(config: config, batch: b, prompt: prompt, new: new, repeats: 3)
        }
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        try atomicWrite(encoder.encode(report), to: CostReport.path(dir))
        Cost.printReport(report)
        let path = try Report.write(dir: dir)
        standardError(String(format: "study done in %@: %@", formatDuration(Date().timeIntervalSince(start)), path))
    }
}
