import Foundation
import ParScale
import ParScaleTrain

/// `parscale ablate`: named recipes x sizes x P x seeds at a fixed corpus and token budget, each
/// P > 1 cell compared with P = 1 on the same seeds (same data order), so seed noise is paired out.
/// P = 1 runs have no ParScale parts and are shared by every recipe (DIR/runs/h64-p1-s0); recipe
/// runs are DIR/runs/RECIPE-h64-p4-s0.
public struct AblationPlan: Codable, Equatable, Sendable {
    public var recipes: [String]
    public var streams: [Int]  // P > 1 values compared with P = 1
    /// Sizes, seeds, tokens, data and the model shape; its own `streams` and `recipe` are unused.
    public var sweep: SweepPlan

    public init(recipes: [String], streams: [Int], sweep: SweepPlan) {
        (self.recipes, self.streams, self.sweep) = (recipes, streams, sweep)
    }

    /// The issue's grid: hidden 64 and 96 (2.25x the non-embedding parameters), 4 layers, 2M
    /// tokens of the built-in code corpus, 3 seeds, P = 1 against P = 4.
    public static func standard(recipes: [String]) -> AblationPlan {
        var sweep = SweepPlan(hiddenSizes: [64, 96], streams: [1, 4], seeds: [0, 1, 2], tokens: 2_000_000)
        sweep.evalWindows = 256  // 32k validation tokens: differences of 0.005 nats are resolved
        sweep.taskExamples = 0
        sweep.data = .text(TextCorpus.builtinCode, seed: 0)
        return AblationPlan(recipes: recipes, streams: [4], sweep: sweep)
    }

    /// Every run with the plan that trains it: P = 1 runs first (they anchor every comparison).
    public var runs: [(run: SweepRun, plan: SweepPlan)] {
        var out: [(SweepRun, SweepPlan)] = []
        for h in sweep.hiddenSizes {
            for s in sweep.seeds { out.append((SweepRun(hidden: h, streams: 1, seed: s), sweep)) }
        }
        for r in recipes {
            var plan = sweep
            plan.recipe = Recipe.named(r) ?? sweep.recipe
            for h in sweep.hiddenSizes {
                for p in streams {
                    for s in sweep.seeds { out.append((SweepRun(hidden: h, streams: p, seed: s, recipe: r), plan)) }
                }
            }
        }
        return out
    }
}

/// One (recipe, size, P) cell against P = 1.
public struct AblationCell: Codable, Sendable {
    public var recipe: String
    public var hidden: Int
    public var streams: Int
    public var seeds: [UInt64]
    public var losses: [Double]
    public var mean: Double
    public var sd: Double
    /// Mean over seeds of (loss - the P = 1 loss of the same seed): negative is better than P = 1.
    public var difference: Double
    /// Standard error of that mean difference (sd of the paired differences / sqrt(seeds)).
    public var differenceSE: Double
    /// Two-sided p-value of the paired t (difference / SE) with seeds - 1 degrees of freedom.
    public var pValue: Double?
    /// The gain the paper's law (k = 0.39) predicts for this P at this size, read off this
    /// ablation's own P = 1 sizes (their loss slope in ln N), and the measured gain as a fraction of it.
    public var lawGain: Double?
    public var fractionOfLawGain: Double?
}

/// One recipe against the default recipe (`Recipe.standardName`) at one size, paired by seed: per
/// seed, the recipe's validation loss minus the default's, at one P or averaged over the P values
/// both ran (`streams`), so the seed's data order and initial backbone are paired out.
public struct DefaultComparison: Codable, Sendable {
    public var recipe: String
    public var hidden: Int
    public var streams: [Int]
    public var seeds: [UInt64]
    /// Per seed: recipe minus default (negative favours the recipe).
    public var differences: [Double]
    public var difference: Double
    public var differenceSE: Double
    /// Two-sided p of the paired t with seeds - 1 degrees of freedom.
    public var pValue: Double?
}

public struct AblationTable: Codable, Sendable {
    public var cells: [AblationCell]
    /// P = 1 per size: mean, sd over seeds.
    public var baselines: [AblationCell]
    /// Every other recipe against the default, per (size, P) and per size over all P (nil in
    /// tables written before these comparisons, or without runs of the default recipe).
    public var againstDefault: [DefaultComparison]?
    public static let paperK = 0.39
    /// The p a recipe must reach at every size, against the default, to be proposed as the new default.
    public static let replaceDefaultP = 0.05

    static func path(_ dir: String) -> String { (dir as NSString).appendingPathComponent("ablation.json") }

    public static func load(_ dir: String) -> AblationTable? {
        FileManager.default.contents(atPath: path(dir)).flatMap { try? JSONDecoder().decode(AblationTable.self, from: $0) }
    }

    /// The table from the finished runs in `dir` (cells with no paired seed are left out).
    public static func build(dir: String) throws -> AblationTable {
        build(results: try Sweep.results(in: dir))
    }

    public static func build(results: [SweepResult]) -> AblationTable {
        let p1 = results.filter { $0.streams == 1 }
        var baselines: [AblationCell] = []
        var slope: Double?  // d loss / d ln N at P = 1, from the smallest and largest size
        for h in Set(p1.map(\.hidden)).sorted() {
            let runs = p1.filter { $0.hidden == h }.sorted { $0.seed < $1.seed }
            let (mean, sd) = meanAndSampleSD(runs.map(\.validationLoss))
            baselines.append(AblationCell(
                recipe: "P = 1", hidden: h, streams: 1, seeds: runs.map(\.seed), losses: runs.map(\.validationLoss),
                mean: mean, sd: sd, difference: 0, differenceSE: 0))
        }
        if let lo = baselines.first, let hi = baselines.last, lo.hidden != hi.hidden {
            let nLo = Double(p1.first { $0.hidden == lo.hidden }!.nonEmbeddingParameters)
            let nHi = Double(p1.first { $0.hidden == hi.hidden }!.nonEmbeddingParameters)
            slope = (hi.mean - lo.mean) / log(nHi / nLo)
        }
        var cells: [AblationCell] = []
        let others = results.filter { $0.streams > 1 }
        let keys = Set(others.map { "\($0.recipe ?? "-")|\($0.hidden)|\($0.streams)" })
        for key in keys.sorted() {
            let parts = key.split(separator: "|")
            let recipe = String(parts[0]), h = Int(parts[1])!, p = Int(parts[2])!
            let runs = others.filter { ($0.recipe ?? "-") == recipe && $0.hidden == h && $0.streams == p }.sorted { $0.seed < $1.seed }
            var differences: [Double] = [], seeds: [UInt64] = [], losses: [Double] = []
            for r in runs {
                guard let base = p1.first(where: { $0.hidden == h && $0.seed == r.seed }) else { continue }
                differences.append(r.validationLoss - base.validationLoss)
                seeds.append(r.seed)
                losses.append(r.validationLoss)
            }
            guard !seeds.isEmpty else { continue }
            let (mean, sd) = meanAndSampleSD(losses)
            let (difference, differenceSD) = meanAndSampleSD(differences)
            let lawGain = slope.map { -$0 * log(1 + paperK * log(Double(p))) }
            let se = differenceSD / Double(seeds.count).squareRoot()
            let pValue = se > 0 && seeds.count > 1 ? StudentT.twoSidedP(t: difference / se, df: Double(seeds.count - 1)) : nil
            cells.append(AblationCell(
                recipe: recipe, hidden: h, streams: p, seeds: seeds, losses: losses, mean: mean, sd: sd, difference: difference,
                differenceSE: se, pValue: pValue, lawGain: lawGain,
                fractionOfLawGain: lawGain.flatMap { $0 > 0 ? -difference / $0 : nil }))
        }
        return AblationTable(cells: cells, baselines: baselines, againstDefault: compareWithDefault(results))
    }

    /// Each recipe that is not the default, against the default's runs of the same size, P and seed.
    static func compareWithDefault(_ results: [SweepResult]) -> [DefaultComparison]? {
        let standard = Recipe.standardName
        let loss = Dictionary(
            results.filter { $0.streams > 1 }.map { ("\($0.recipe ?? "-")|\($0.hidden)|\($0.streams)|\($0.seed)", $0.validationLoss) },
            uniquingKeysWith: { a, _ in a })
        let defaultRuns = results.filter { $0.streams > 1 && $0.recipe == standard }
        guard !defaultRuns.isEmpty else { return nil }
        var out: [DefaultComparison] = []
        let challengers = Set(results.compactMap { $0.streams > 1 && $0.recipe != standard ? $0.recipe : nil }).sorted()
        for recipe in challengers {
            for h in Set(defaultRuns.map(\.hidden)).sorted() {
                let streams = Set(results.filter { $0.recipe == recipe && $0.hidden == h }.map(\.streams)).sorted()
                // Seeds where both recipes finished every P at this size, so the pooled row is balanced.
                let seeds = Set(defaultRuns.map(\.seed)).sorted().filter { s in
                    streams.allSatisfy { p in loss["\(recipe)|\(h)|\(p)|\(s)"] != nil && loss["\(standard)|\(h)|\(p)|\(s)"] != nil }
                }
                guard !seeds.isEmpty, !streams.isEmpty else { continue }
                let groups = streams.map { [$0] } + (streams.count > 1 ? [streams] : [])
                for group in groups {
                    let differences = seeds.map { s in
                        group.map { p in loss["\(recipe)|\(h)|\(p)|\(s)"]! - loss["\(standard)|\(h)|\(p)|\(s)"]! }.reduce(0, +) / Double(group.count)
                    }
                    let (difference, sd) = meanAndSampleSD(differences)
                    let se = sd / Double(seeds.count).squareRoot()
                    out.append(DefaultComparison(
                        recipe: recipe, hidden: h, streams: group, seeds: seeds, differences: differences, difference: difference,
                        differenceSE: se, pValue: se > 0 && seeds.count > 1 ? StudentT.twoSidedP(t: difference / se, df: Double(seeds.count - 1)) : nil))
                }
            }
        }
        return out
    }

    /// Recipes ahead of the default at every size, averaged over the P values (the row with the most
    /// P at each size), with p below `replaceDefaultP`: the issue's rule for changing the default.
    public var recipesBeatingDefault: [String] {
        let rows = againstDefault ?? []
        let sizes = Set(rows.map(\.hidden))
        return Set(rows.map(\.recipe)).sorted().filter { recipe in
            sizes.allSatisfy { h in
                guard let pooled = rows.filter({ $0.recipe == recipe && $0.hidden == h }).max(by: { $0.streams.count < $1.streams.count })
                else { return false }
                return pooled.difference < 0 && (pooled.pValue ?? 1) < Self.replaceDefaultP
            }
        }
    }

    /// Header and rows of the comparisons with the default.
    public var defaultRows: (header: [String], rows: [[String]]) {
        let header = ["recipe", "hidden", "P", "seeds", "per seed", "vs \(Recipe.standardName)", "± SE", "t", "p"]
        let rows = (againstDefault ?? []).map { c in
            [c.recipe, "\(c.hidden)", c.streams.map(String.init).joined(separator: ",") + (c.streams.count > 1 ? " (mean)" : ""), "\(c.seeds.count)",
             c.differences.map { String(format: "%+.4f", $0) }.joined(separator: " / "), String(format: "%+.4f", c.difference),
             String(format: "%.4f", c.differenceSE), c.differenceSE > 0 ? String(format: "%.2f", c.difference / c.differenceSE) : "-",
             c.pValue.map { String(format: "%.3f", $0) } ?? "-"]
        }
        return (header, rows)
    }

    /// What the comparisons with the default decide, in one line; where there are none, why not.
    public var defaultLine: String {
        guard let rows = againstDefault else {
            return "No recipe is compared with the default (\(Recipe.standardName)): there are no runs of it with P > 1 here; add it to --recipes to compare."
        }
        guard !rows.isEmpty else {
            return "No recipe is compared with the default (\(Recipe.standardName)): no other recipe has runs with P > 1 at its sizes and seeds."
        }
        let seeds = rows.map(\.seeds.count).min()!
        let caveat = seeds < 5 ? " With \(seeds) seeds this is a measurement, not a claim (a claim needs at least 5)." : ""
        let winners = recipesBeatingDefault
        let verdict = winners.isEmpty
            ? "none is, so the default stays \(Recipe.standardName)"
            : winners.joined(separator: ", ") + (winners.count == 1 ? " is" : " are") + ": the candidate for a new default"
        return "A recipe replaces the default (\(Recipe.standardName)) only if it is ahead of it at every size, averaged over P, with p < \(Self.replaceDefaultP) (paired t, seeds - 1 df): \(verdict) (\(Set(rows.map(\.recipe)).count) recipes tried).\(caveat)"
    }

    /// Header and rows, shared by the terminal, Markdown and HTML.
    public var rows: (header: [String], rows: [[String]]) {
        let header = ["recipe", "hidden", "P", "seeds", "mean val loss", "sd", "vs P = 1", "± SE", "t", "p", "law's gain", "fraction"]
        var rows = baselines.map { b in
            [b.recipe, "\(b.hidden)", "1", "\(b.seeds.count)", String(format: "%.4f", b.mean), String(format: "%.4f", b.sd), "", "", "", "", "", ""]
        }
        for c in cells {
            let t = c.differenceSE > 0 ? String(format: "%.1f", c.difference / c.differenceSE) : "-"
            rows.append([
                c.recipe, "\(c.hidden)", "\(c.streams)", "\(c.seeds.count)", String(format: "%.4f", c.mean), String(format: "%.4f", c.sd),
                String(format: "%+.4f", c.difference), String(format: "%.4f", c.differenceSE), t, c.pValue.map { String(format: "%.3f", $0) } ?? "-",
                c.lawGain.map { String(format: "%.4f", $0) } ?? "-", c.fractionOfLawGain.map { String(format: "%.2f", $0) } ?? "-",
            ])
        }
        return (header, rows)
    }

    /// The lowest-p cell that beats P = 1, quoted with the number of cells tried: the best of many
    /// cells is chosen after the fact, so its p-value alone overstates it (no correction is applied).
    public var bestCellLine: String {
        let tried = cells.count
        guard let best = cells.filter({ $0.difference < 0 && $0.pValue != nil }).min(by: { $0.pValue! < $1.pValue! }) else {
            return "No cell beat P = 1 with a p-value (\(tried) cells tried)."
        }
        return String(
            format: "Best cell: %@ at hidden %d, P = %d: %+.4f vs P = 1 over %d seeds, p = %.3f (t, %d df)%@; the best of %d cells tried, p not corrected for that.",
            best.recipe, best.hidden, best.streams, best.difference, best.seeds.count, best.pValue!, best.seeds.count - 1,
            best.fractionOfLawGain.map { String(format: ", %.0f%% of the law's gain", 100 * $0) } ?? "", tried)
    }

    public var markdown: String {
        Report.markdownTable(rows) + "\n" + bestCellLine + "\n"
            + ((againstDefault ?? []).isEmpty ? "\n" + defaultLine + "\n"
                : "\nEach recipe against the default, paired by seed (negative favours the recipe):\n\n"
                + Report.markdownTable(defaultRows) + "\n" + defaultLine + "\n")
    }

    public func save(_ dir: String) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        try atomicWrite(encoder.encode(self), to: Self.path(dir))
    }
}
