import Foundation
import ParScale
import ParScaleTrain

/// One (model, strategy, n, dtype) of a frontier: accuracy over the prompts and its cost.
public struct FrontierPoint: Codable, Sendable {
    public var model: String
    public var hidden: Int
    public var streams: Int
    public var nonEmbeddingParameters: Int
    public var dtype: String
    public var strategy: FrontierStrategy
    public var n: Int
    public var correct: Int
    public var prompts: Int
    public var accuracy: Double
    public var low: Double
    public var high: Double
    public var flopsPerQuestion: Double
    /// Measured seconds per question, answers one at a time and batched (P streams are always one batch).
    public var latencyBatch1: Double
    public var latencyBatched: Double
    /// Weights at the dtype's size plus the float32 KV cache of the batch (n samples, all P streams).
    public var memoryCountedBytes: Int
    /// Peak resident memory of the same batch in a process of its own (float32 weights).
    public var memoryMeasuredBytes: Int
    /// Per prompt, whether the chosen answer was right (for paired comparisons).
    public var correctness: [Bool]

    public var strategyLabel: String {
        if strategy == .greedy { return "greedy" }
        if n == 1 { return "1 sample" }
        switch strategy {
        case .vote: return "majority of \(n)"
        case .likelihood: return "best-of-\(n) log-prob"
        default: return "pass@\(n) (checker)"
        }
    }
    public var label: String { "\(model) \(strategyLabel)" + (dtype == "F32" ? "" : " \(dtype.lowercased())") }
    /// Whether the strategy needs the task checker (an oracle for most real tasks).
    public var usesChecker: Bool { strategy == .verifier && n > 1 }
}

public enum FrontierReport {
    /// The points of every measured cell of DIR (in the plan's order of n and strategies).
    public static func points(dir: String) throws -> [FrontierPoint] {
        guard let data = FileManager.default.contents(atPath: Frontier.planPath(dir)) else {
            throw TrainingError("\(dir): no frontier here (expected \(Frontier.planPath(dir)))")
        }
        let plan = try JSONDecoder().decode(FrontierPlan.self, from: data)
        let cellsDir = (dir as NSString).appendingPathComponent("frontier-cells")
        let names = ((try? FileManager.default.contentsOfDirectory(atPath: cellsDir)) ?? []).filter { $0.hasSuffix(".json") }.sorted()
        let cells = try names.map { try JSONDecoder().decode(FrontierCell.self, from: Data(contentsOf: URL(fileURLWithPath: (cellsDir as NSString).appendingPathComponent($0)))) }
        // By model, then in the plan's dtype order.
        let ordered = cells.filter(\.isComplete).sorted {
            ($0.model, plan.dtypes.firstIndex(of: $0.dtype) ?? 99) < ($1.model, plan.dtypes.firstIndex(of: $1.dtype) ?? 99)
        }
        return points(cells: ordered, examples: Frontier.prompts(plan), plan: plan)
    }

    public static func points(cells: [FrontierCell], examples: [TaskExample], plan: FrontierPlan) -> [FrontierPoint] {
        var out: [FrontierPoint] = []
        for cell in cells {
            let c = cell.config, questions = cell.questions
            guard questions.count == examples.count else { continue }
            let dtype = SafeTensorsDType(rawValue: cell.dtype) ?? .F32
            let weights = ParameterLayout(c).totalCount * dtype.byteSize
            let meanPrompt = Double(questions.map(\.promptTokens).reduce(0, +)) / Double(max(1, questions.count))
            let capacity = Int(meanPrompt.rounded()) + plan.maxNewTokens
            func point(_ strategy: FrontierStrategy, n: Int, chosen: [FrontierSample], generated: [[Int]], latencyN: Int) -> FrontierPoint {
                let correctness = zip(chosen, examples).map { $0.answer == $1.answer }
                let right = correctness.filter { $0 }.count
                let (low, high) = wilsonInterval(correct: right, total: examples.count)
                let flops = zip(questions, generated).map { FrontierFLOPs.perQuestion(c, prompt: $0.promptTokens, generated: $1) }
                let latency = cell.latency?.first { $0.n == latencyN }
                let batch = strategy == .greedy ? 1 : n
                return FrontierPoint(
                    model: cell.model, hidden: c.hiddenSize, streams: c.streams,
                    nonEmbeddingParameters: ParameterLayout(c).counts.nonEmbedding, dtype: cell.dtype, strategy: strategy, n: n,
                    correct: right, prompts: examples.count, accuracy: Double(right) / Double(max(1, examples.count)),
                    low: low, high: high, flopsPerQuestion: flops.reduce(0, +) / Double(max(1, flops.count)),
                    latencyBatch1: latency?.sequentialSeconds ?? .nan, latencyBatched: latency?.batchedSeconds ?? .nan,
                    memoryCountedBytes: weights + FrontierFLOPs.kvCacheBytes(c, batch: batch, capacity: capacity),
                    memoryMeasuredBytes: cell.memory?.first { $0.batch == batch }?.measuredBytes ?? 0, correctness: correctness)
            }
            out.append(point(.greedy, n: 1, chosen: questions.map(\.greedy), generated: questions.map { [$0.greedy.tokens] }, latencyN: 0))
            for n in plan.samples {
                let subsets = questions.map { Array($0.samples.prefix(n)) }
                let generated = subsets.map { $0.map(\.tokens) }
                // One sample: every rule picks it, so it is drawn once.
                for strategy in n == 1 ? [FrontierStrategy.likelihood] : [.vote, .likelihood, .verifier] {
                    let chosen = zip(subsets, examples).map { samples, example in
                        samples[strategy.pick(samples) { TaskChecker.check(prompt: example.prompt, answer: $0) }]
                    }
                    out.append(point(strategy, n: n, chosen: chosen, generated: generated, latencyN: n))
                }
            }
        }
        return out
    }

    /// Indices of the points no other point beats: none has at most its cost and a higher accuracy
    /// (or the same accuracy at a lower cost). Ordered by cost.
    public static func pareto(_ points: [FrontierPoint], cost: (FrontierPoint) -> Double) -> [Int] {
        let order = points.indices.filter { cost(points[$0]).isFinite }.sorted {
            cost(points[$0]) != cost(points[$1]) ? cost(points[$0]) < cost(points[$1]) : points[$0].accuracy > points[$1].accuracy
        }
        var best = -1.0, out: [Int] = []
        for i in order where points[i].accuracy > best {
            out.append(i)
            best = points[i].accuracy
        }
        return out
    }

    /// Mean of b - a over the prompts, with a 95% normal interval (paired: the same prompts).
    public static func pairedDifference(_ a: [Bool], _ b: [Bool]) -> (mean: Double, half: Double) {
        let d = zip(a, b).map { Double(($1 ? 1 : 0) - ($0 ? 1 : 0)) }
        guard d.count > 1 else { return (d.first ?? 0, .nan) }
        let (mean, sd) = meanAndSampleSD(d)
        return (mean, 1.959964 * sd / Double(d.count).squareRoot())
    }

    public typealias Table = (title: String, header: [String], rows: [[String]])

    static func percent(_ p: FrontierPoint) -> String {
        String(format: "%.1f%% [%.1f, %.1f]", 100 * p.accuracy, 100 * p.low, 100 * p.high)
    }
    static func flops(_ x: Double) -> String { String(format: "%.3g", x) }

    /// Plots (file name -> SVG) and tables of a frontier.
    public static func build(_ points: [FrontierPoint]) -> (plots: [String: String], tables: [Table]) {
        var plots: [String: String] = [:]
        let axes: [(String, String, (FrontierPoint) -> Double)] = [
            ("frontier-flops.svg", "inference FLOPs per question", { $0.flopsPerQuestion }),
            ("frontier-latency.svg", "measured seconds per question (batched)", { $0.latencyBatched }),
        ]
        for (file, axis, cost) in axes {
            var plot = SVGPlot(title: "Task accuracy against \(axis)", xLabel: axis, yLabel: "exact-match accuracy", logX: true)
            plot.width = 760
            let kinds: [(String, (FrontierPoint) -> Bool)] = [
                ("greedy", { $0.strategy == .greedy }), ("1 sample", { $0.strategy != .greedy && $0.n == 1 }),
                ("majority of n", { $0.strategy == .vote }), ("best-of-n log-prob", { $0.strategy == .likelihood && $0.n > 1 }),
                ("pass@n (checker)", { $0.usesChecker }),
            ]
            for (name, member) in kinds {
                let chosen = points.filter(member)
                guard !chosen.isEmpty else { continue }
                let xy: [(x: Double, y: Double, error: Double)] = chosen.map { (cost($0), $0.accuracy, 0) }
                let labels: [String] = chosen.map { "\($0.label): \(String(format: "%.1f%%", 100 * $0.accuracy))" }
                let bars: [(low: Double, high: Double)] = chosen.map { ($0.low, $0.high) }
                plot.series.append(.init(label: name, points: xy, line: false, markers: true, pointLabels: labels, pointErrors: bars))
            }
            let modelOnly = points.filter { !$0.usesChecker }
            plot.series.append(.init(
                label: "frontier (model only)", points: pareto(modelOnly, cost: cost).map { (cost(modelOnly[$0]), modelOnly[$0].accuracy, 0) },
                line: true, markers: false))
            plot.series.append(.init(
                label: "frontier (with checker)", points: pareto(points, cost: cost).map { (cost(points[$0]), points[$0].accuracy, 0) },
                line: true, markers: false, dashed: true))
            plots[file] = plot.render()
        }
        return (plots, [budgetTable(points), comparisonTable(points), allPointsTable(points)].compactMap { $0 })
    }

    /// For each budget on a log grid (factors of 2 from the cheapest point to the first that covers
    /// every point): the most accurate point within it, with and without the checker.
    static func budgetTable(_ points: [FrontierPoint]) -> Table? {
        guard let cheapest = points.map(\.flopsPerQuestion).min(), let dearest = points.map(\.flopsPerQuestion).max(), cheapest > 0 else { return nil }
        var rows: [[String]] = []
        var budget = cheapest
        // Up to the first budget that covers every point.
        while rows.isEmpty || budget < dearest * 2 * 0.9999 {
            func best(_ candidates: [FrontierPoint]) -> FrontierPoint? {
                candidates.filter { $0.flopsPerQuestion <= budget * 1.0001 }.max {
                    $0.accuracy != $1.accuracy ? $0.accuracy < $1.accuracy : $0.flopsPerQuestion > $1.flopsPerQuestion
                }
            }
            let model = best(points.filter { !$0.usesChecker }), any = best(points)
            rows.append([
                flops(budget), model?.label ?? "-", model.map(percent) ?? "-", model.map { flops($0.flopsPerQuestion) } ?? "-",
                any?.label ?? "-", any.map(percent) ?? "-",
            ])
            budget *= 2
        }
        return ("Best strategy within each FLOP budget (per question; 95% Wilson intervals over prompts)",
                ["budget (FLOPs)", "best without checker", "accuracy", "its FLOPs", "best with checker", "accuracy"], rows)
    }

    /// P = 2 and 4 greedy against what the P = 1 model of the same backbone does with n = P samples,
    /// and against the dense (P = 1) model whose greedy FLOPs are nearest. Float32 weights.
    static func comparisonTable(_ points: [FrontierPoint]) -> Table? {
        let f32 = points.filter { $0.dtype == "F32" }
        var rows: [[String]] = []
        for parscale in f32.filter({ $0.strategy == .greedy && $0.streams > 1 }).sorted(by: { ($0.hidden, $0.streams) < ($1.hidden, $1.streams) }) {
            let P = parscale.streams
            var rivals = f32.filter { $0.hidden == parscale.hidden && $0.streams == 1 && $0.n == P && $0.strategy != .greedy }
            rivals.sort { $0.strategy.rawValue < $1.strategy.rawValue }
            if let same = f32.first(where: { $0.hidden == parscale.hidden && $0.streams == 1 && $0.strategy == .greedy }) { rivals.insert(same, at: 0) }
            let dense = f32.filter { $0.streams == 1 && $0.strategy == .greedy && $0.hidden != parscale.hidden }
                .min { abs(log($0.flopsPerQuestion / parscale.flopsPerQuestion)) < abs(log($1.flopsPerQuestion / parscale.flopsPerQuestion)) }
            if let dense { rivals.append(dense) }
            rows.append([parscale.label, percent(parscale), flops(parscale.flopsPerQuestion), "1.00", ""])
            for rival in rivals {
                let d = pairedDifference(parscale.correctness, rival.correctness)
                rows.append([
                    "  vs " + rival.label, percent(rival), flops(rival.flopsPerQuestion),
                    String(format: "%.2f", rival.flopsPerQuestion / parscale.flopsPerQuestion),
                    String(format: "%+.1f ± %.1f", 100 * d.mean, 100 * d.half),
                ])
            }
        }
        guard !rows.isEmpty else { return nil }
        return ("Equal-FLOP comparisons: P streams against sampling the P = 1 model of the same backbone and the nearest dense model (float32)",
                ["strategy", "accuracy [95%]", "FLOPs / question", "FLOPs ratio", "this minus P streams (points, paired 95%)"], rows)
    }

    static func allPointsTable(_ points: [FrontierPoint]) -> Table {
        let frontier = Set(pareto(points.filter { !$0.usesChecker }, cost: \.flopsPerQuestion).map { points.filter { !$0.usesChecker }[$0].label })
        return ("Every point (* on the FLOP frontier without the checker)",
                ["model", "P", "dtype", "strategy", "accuracy [95%]", "FLOPs / question", "latency batch 1 s", "batched s",
                 "memory counted", "measured peak"],
                points.map { p in
                    [p.model + (frontier.contains(p.label) ? " *" : ""), "\(p.streams)", p.dtype.lowercased(), p.strategyLabel, percent(p),
                     flops(p.flopsPerQuestion), String(format: "%.4f", p.latencyBatch1), String(format: "%.4f", p.latencyBatched),
                     Report.mib(p.memoryCountedBytes), Report.mib(p.memoryMeasuredBytes)]
                })
    }

    /// Writes DIR/frontier.html (plots inline), DIR/frontier.md (plots as SVG files beside it) and
    /// DIR/frontier.json (every point); returns the HTML path.
    @discardableResult
    public static func write(dir: String, points: [FrontierPoint], note: String) throws -> String {
        let (plots, tables) = build(points)
        for (name, svg) in plots { try atomicWrite(Data(svg.utf8), to: (dir as NSString).appendingPathComponent(name)) }
        let title = "Equal-compute frontier: \((dir as NSString).lastPathComponent)"
        let page = Report.page(title: title, intro: note, plots: plots, tables: tables)
        try atomicWrite(Data(page.markdown.utf8), to: (dir as NSString).appendingPathComponent("frontier.md"))
        try atomicWrite(Frontier.encoded(points), to: (dir as NSString).appendingPathComponent("frontier.json"))
        let path = (dir as NSString).appendingPathComponent("frontier.html")
        try atomicWrite(Data(page.html.utf8), to: path)
        return path
    }
}
