import ArgumentParser
import Foundation
import ParScale
import ParScaleLaw
import ParScaleTrain

struct Ablate: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Compare training recipes for the ParScale parts: recipes x sizes x P x seeds against P = 1.",
        discussion: """
            Trains every run that is not finished yet (resumable, like sweep), then prints per cell the mean \
            validation loss over seeds, their standard deviation, the difference to P = 1 paired by seed (same \
            data order) with its standard error, t = difference / SE and its two-sided p-value from the t \
            distribution with seeds - 1 degrees of freedom (t = 3.1 over 3 seeds is p = 0.09), and that gain as a fraction of what \
            the paper's law (k = 0.39) predicts, read off the P = 1 sizes of this ablation; then the best cell with the number of cells tried; \
            then, when the default recipe (\(Recipe.standardName)) is among --recipes, every other recipe against it, paired by seed, per size \
            and P and averaged over P, and whether one is ahead at every size with p < \(AblationTable.replaceDefaultP) (the rule for \
            replacing the default). Also writes \
            DIR/ablation.json, DIR/ablation.md, and the table into `parscale report DIR`.
            Default grid: hidden 64 and 96 (4 layers), 2M tokens of the built-in code corpus, seeds 0-2, P = 4. \
            Recipes (each changes one thing from base, or combines two; reparam is the default of init/pretrain/sweep/study):
            \(Recipe.named.map { "  \($0.name): \($0.what)" }.joined(separator: "\n"))
            """)

    @Option(help: "Ablation folder.") var out: String
    @Option(help: "Recipes, comma-separated.") var recipes: String = "base"
    @Option(help: "Hidden sizes, comma-separated.") var sizes: String?
    @Option(name: .customLong("P"), help: "Stream counts above 1 compared with P = 1, comma-separated.") var streams: String?
    @Option(help: "Seeds, comma-separated.") var seeds: String?
    @Option(help: "Training tokens per run.") var tokens: Int?
    @Option(help: "UTF-8 text file or folder (overrides --corpus).") var data: String?
    @Option(help: "Built-in corpus: synthetic or code.") var corpus: BuiltinCorpus = .code
    @OptionGroup var backend: BackendFlag
    @OptionGroup var write: ModelWriteFlags
    @Flag(name: .customLong("table-only"), help: "Only tabulate the finished runs in --out.") var tableOnly = false
    @Flag(help: "Print the table as one JSON object.") var json = false

    func plan() throws -> AblationPlan {
        let names = recipes.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
        for name in names where Recipe.named(name) == nil {
            throw ValidationError("--recipes: unknown recipe '\(name)' (known: \(Recipe.named.map(\.name).joined(separator: ", ")))")
        }
        var plan = AblationPlan.standard(recipes: names)
        if let sizes { plan.sweep.hiddenSizes = try parseTokenList(sizes, flag: "--sizes").map(Int.init) }
        if let streams { plan.streams = try parseTokenList(streams, flag: "--P").map(Int.init) }
        if let seeds { plan.sweep.seeds = try parseTokenList(seeds, flag: "--seeds").map { UInt64($0) } }
        if let tokens { plan.sweep.tokens = tokens }
        plan.sweep.data = corpus.spec(data: data, seed: 0)
        try write.apply(to: &plan.sweep)
        guard plan.streams.allSatisfy({ $0 > 1 }), plan.sweep.tokens > 0, !plan.sweep.hiddenSizes.isEmpty else {
            throw ValidationError("--P takes stream counts above 1 (P = 1 is always run), with sizes and a positive --tokens")
        }
        return plan
    }

    func run() throws {
        if !tableOnly {
            let plan = try plan()
            try FileManager.default.createDirectory(atPath: out, withIntermediateDirectories: true)
            let runs = plan.runs
            standardError("ablate \(out): \(runs.count) runs (recipes \(plan.recipes.joined(separator: ",")), sizes \(plan.sweep.hiddenSizes), P 1 and \(plan.streams), seeds \(plan.sweep.seeds)), \(plan.sweep.tokens) tokens each, \(plan.sweep.data.description)")
            let computeBackend = try backend.make()
            for (i, item) in runs.enumerated() {
                let r = try Sweep.execute(item.run, plan: item.plan, in: out, backend: computeBackend) { standardError("[\(i + 1)/\(runs.count)] \($0)") }
                standardError(String(format: "[%d/%d] %@: val loss %.4f, %.0f s", i + 1, runs.count, item.run.name, r.validationLoss, r.wallSeconds))
            }
        }
        guard FileManager.default.fileExists(atPath: (out as NSString).appendingPathComponent("runs")) else {
            throw ValidationError("--out \(out): no ablation runs there (expected \(out)/runs); run without --table-only first")
        }
        let table = try AblationTable.build(dir: out)
        try table.save(out)
        try atomicWrite(Data(table.markdown.utf8), to: (out as NSString).appendingPathComponent("ablation.md"))
        if json {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
            print(String(decoding: try encoder.encode(table), as: UTF8.self))
        } else {
            printAligned(table.rows)
            print("(difference to P = 1 paired by seed; negative is better; t = difference / SE; p two-sided from the t distribution with seeds - 1 df)")
            print(table.bestCellLine)
            if !(table.againstDefault ?? []).isEmpty {
                print("\nEach recipe against the default, paired by seed (recipe minus \(Recipe.standardName); negative favours the recipe):")
                printAligned(table.defaultRows)
            }
            print(table.defaultLine)
        }
    }
}

/// Columns padded to their widest cell, two spaces apart.
func printAligned(_ table: (header: [String], rows: [[String]])) {
    let widths = table.header.indices.map { c in ([table.header[c]] + table.rows.map { $0[c] }).map(\.count).max()! }
    for row in [table.header] + table.rows {
        print(row.indices.map { row[$0].padding(toLength: widths[$0], withPad: " ", startingAt: 0) }.joined(separator: "  "))
    }
}
