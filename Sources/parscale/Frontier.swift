import ArgumentParser
import Foundation
import ParScale
import ParScaleLaw
import ParScaleTrain

struct FrontierCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "frontier",
        abstract: "Accuracy against inference compute: P streams, sampling with voting or best-of-n, precision, bigger models.",
        discussion: """
            On the built-in task prompts of the held-out split (never trained on), for each model and weight \
            precision: greedy; n samples at --temperature answered by majority vote (a tie goes to the answer \
            whose samples have the larger total log-probability); best-of-n by the model's mean token \
            log-probability; best-of-n with the task checker (TaskChecker, which works the answer out from the \
            prompt) as verifier, i.e. pass@n. Each point: exact-match accuracy with a 95% Wilson interval over \
            prompts, FLOPs per question counted from the shape (prefill once, shared by the n samples; every decode step, all P streams \
            and n samples, prefix attention included), memory counted (weights at the dtype's size + float32 KV \
            cache) and measured (peak resident memory of a probe process, float32 weights), and seconds per \
            question measured on the first --latency-prompts prompts (median), n answers one at a time and as one batch \
            (P streams are always one batch). --dtype bf16/f16 rounds the weights and computes in float32.
            Output: DIR/frontier.html, frontier.md (+ SVGs), frontier.json, and DIR/frontier-cells/ (one file \
            per model and dtype, saved every 10 prompts: re-running continues). \
            --preset small first trains its model family with the sweep machinery in DIR (resumable; finished \
            runs are skipped): P = 1, 2, 4 at hidden 64 and P = 1 at hidden 96 and 128, 4 layers, \
            \(FrontierPreset.tokens) tokens each of the synthetic corpus; then measures them and writes DIR/report.html too.
            """)

    @Option(parsing: .upToNextOption, help: "Model folders (checkpoint or training run folders, byte-level).") var models: [String] = []
    @Option(help: "Preset: small (trains its models first).") var preset: String?
    @Option(help: "Output folder (default runs/frontier-PRESET with --preset).") var out: String?
    @Option(help: "Sample counts n, comma-separated.") var samples: String = "1,2,4,8,16"
    @Option(help: "Sampling temperature (> 0).") var temperature: Double = 0.7
    @Option(help: "Held-out prompts (default 100; \(FrontierPreset.prompts) with --preset).") var prompts: Int?
    @Option(help: "Weight precisions, comma-separated: f32, bf16, f16.") var dtype: String = "f32,bf16"
    @Option(name: .customLong("max-new-tokens"), help: "Longest answer (tokens, the newline included).") var maxNewTokens: Int = 64
    @Option(name: .customLong("latency-prompts"), help: "Prompts timed per model, dtype and n (the median is kept).") var latencyPrompts: Int = 8
    @Option(help: "Sampling seed.") var seed: UInt64 = 0
    @OptionGroup var backend: BackendFlag
    @Flag(help: "Print one JSON object: every point and the frontier.") var json = false

    func parsedSamples() throws -> [Int] {
        let values = samples.split(separator: ",").map { Int($0.trimmingCharacters(in: .whitespaces)) }
        guard !values.isEmpty, values.allSatisfy({ ($0 ?? 0) >= 1 }) else {
            throw ValidationError("--samples expects comma-separated counts >= 1 like 1,2,4; got '\(samples)'")
        }
        return Array(Set(values.map { $0! })).sorted()
    }

    func parsedDTypes() throws -> [SafeTensorsDType] {
        try dtype.split(separator: ",").map { name -> SafeTensorsDType in
            switch name.trimmingCharacters(in: .whitespaces).lowercased() {
            case "f32": return .F32
            case "bf16": return .BF16
            case "f16": return .F16
            default: throw ValidationError("--dtype expects f32, bf16 or f16 (comma-separated); got '\(name)'")
            }
        }
    }

    func validate() throws {
        _ = try parsedSamples()
        _ = try parsedDTypes()
        guard temperature > 0 && temperature.isFinite else { throw ValidationError("--temperature must be > 0, got \(temperature)") }
        if let prompts, prompts < 1 { throw ValidationError("--prompts must be at least 1, got \(prompts)") }
        guard maxNewTokens >= 1, latencyPrompts >= 1 else { throw ValidationError("--max-new-tokens and --latency-prompts must be at least 1") }
        if let preset, preset != "small" { throw ValidationError("--preset must be small, got '\(preset)'") }
        if preset == nil && models.isEmpty { throw ValidationError("give --models DIR... or --preset small") }
        if preset == nil && out == nil { throw ValidationError("give --out DIR") }
        if preset != nil && !models.isEmpty { throw ValidationError("--preset trains its own models; drop --models") }
    }

    func run() throws {
        let dir = out ?? "runs/frontier-\(preset ?? "")"
        let start = Date()
        let computeBackend = try backend.make()
        var modelDirs = models
        if preset != nil {
            modelDirs = try FrontierPreset.train(in: dir, backend: computeBackend) { progressLine($0) }
        }
        // Names: the folder's name (a run's, for its checkpoint folder), unique.
        let named = modelDirs.map { path -> (String, String) in
            let url = URL(fileURLWithPath: path).standardizedFileURL
            let name = url.lastPathComponent == "checkpoint" ? url.deletingLastPathComponent().lastPathComponent : url.lastPathComponent
            return (name, path)
        }
        if let duplicate = Dictionary(grouping: named, by: \.0).first(where: { $0.value.count > 1 }) {
            throw ValidationError("--models: two folders are both named '\(duplicate.key)'; the frontier names models by their folder")
        }
        for (_, path) in named {
            let config = try Checkpoint.loadConfig(path)
            guard config.vocabSize == 256, !Tokenizer.exists(inModel: path) else {
                throw ValidationError("\(path): the frontier needs a byte-level model (vocabulary 256, no tokenizer.json); it has vocabulary \(config.vocabSize)")
            }
        }
        let plan = FrontierPlan(
            prompts: prompts ?? (preset == nil ? 100 : FrontierPreset.prompts), samples: try parsedSamples(), temperature: temperature,
            dtypes: try parsedDTypes().map(\.rawValue), seed: seed, maxNewTokens: maxNewTokens, latencyPrompts: latencyPrompts)
        try Frontier.prepare(plan, in: dir)
        let dtypes = try parsedDTypes()
        let total = named.count * dtypes.count
        var done = 0
        for (name, path) in named {
            for dt in dtypes {
                done += 1
                let tag = "[\(done)/\(total)]"
                _ = try Frontier.measure(
                    model: name, directory: path, dtype: dt, plan: plan, in: dir, backend: computeBackend,
                    probe: { config, batch, prompt, new in
                        try Cost.probeInOwnProcess(config: config, batch: batch, prompt: prompt, new: new, repeats: 1).peakBytes
                    }, log: { progressLine("\(tag) \($0)") })
            }
        }
        let points = try FrontierReport.points(dir: dir)
        let note = "\(named.count) models x \(dtypes.count) dtypes, \(plan.prompts) held-out prompts, n in \(plan.samples), temperature \(plan.temperature). Made by `parscale frontier`."
        let path = try FrontierReport.write(dir: dir, points: points, note: note)
        if preset != nil { try Report.write(dir: dir) }
        let frontier = FrontierReport.pareto(points.filter { !$0.usesChecker }, cost: \.flopsPerQuestion)
        let modelOnly = points.filter { !$0.usesChecker }
        if json {
            printJSON([
                "out": dir,
                "points": points.map { p -> [String: Any] in
                    ["model": p.model, "streams": p.streams, "hidden": p.hidden, "dtype": p.dtype, "strategy": p.strategy.rawValue, "n": p.n,
                     "correct": p.correct, "prompts": p.prompts, "accuracy": p.accuracy, "low": p.low, "high": p.high,
                     "flops_per_question": p.flopsPerQuestion, "latency_batch1_s": p.latencyBatch1, "latency_batched_s": p.latencyBatched,
                     "memory_counted_bytes": p.memoryCountedBytes, "memory_measured_bytes": p.memoryMeasuredBytes, "label": p.label]
                },
                "flops_frontier": frontier.map { modelOnly[$0].label },
            ])
        } else {
            for i in frontier {
                let p = modelOnly[i]
                print(String(format: "frontier: %@  %.1f%% [%.1f, %.1f]  %.3g FLOPs/question", p.label, 100 * p.accuracy, 100 * p.low, 100 * p.high, p.flopsPerQuestion))
            }
            print("wrote \(path) and \((dir as NSString).appendingPathComponent("frontier.md"))")
        }
        standardError(String(format: "frontier done in %@", formatDuration(Date().timeIntervalSince(start))))
    }
}

/// `frontier --preset small`: the model family, trained by the sweep machinery.
enum FrontierPreset {
    /// Chosen by trying (Tools/bench/RESULTS.md): 2M tokens left greedy accuracy at 9-10%, 4M gives
    /// 14-23%, well away from 0% and 100%.
    static let tokens = 4_000_000
    static let prompts = 500

    static func plan() -> SweepPlan {
        var plan = SweepPlan(hiddenSizes: [64, 96, 128], streams: [1, 2, 4], seeds: [0], tokens: tokens)
        plan.data = .synthetic(seed: 0)
        return plan
    }

    static let runs = [
        SweepRun(hidden: 64, streams: 1, seed: 0), SweepRun(hidden: 64, streams: 2, seed: 0), SweepRun(hidden: 64, streams: 4, seed: 0),
        SweepRun(hidden: 96, streams: 1, seed: 0), SweepRun(hidden: 128, streams: 1, seed: 0),
    ]

    /// Trains (or finds) every run; returns their folders.
    static func train(in dir: String, backend: Backend, log: (String) -> Void) throws -> [String] {
        let plan = plan()
        try Sweep.prepare(plan, in: dir)
        for (i, run) in runs.enumerated() {
            let r = try Sweep.execute(run, plan: plan, in: dir, backend: backend) { log("train [\(i + 1)/\(runs.count)] \($0)") }
            log(String(format: "train [%d/%d] %@: val loss %.4f, task accuracy %@", i + 1, runs.count, run.name, r.validationLoss,
                       r.taskAccuracy.map { String(format: "%.1f%%", 100 * $0) } ?? "-"))
        }
        return runs.map { Sweep.runDirectory(dir, $0) }
    }
}
