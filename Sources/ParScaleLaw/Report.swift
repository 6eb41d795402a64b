import Foundation
import ParScale
import ParScaleTrain

/// `parscale report DIR`: one self-contained HTML page (plots inline as SVG) and a Markdown twin
/// (with the same plots as .svg files beside it), from a sweep folder's results, fit and cost.
public enum Report {
    public struct Output {
        public var html: String
        public var markdown: String
        public var plots: [String: String]  // file name -> SVG
    }

    public static func build(dir: String) throws -> Output {
        let allResults = try Sweep.results(in: dir)
        guard !allResults.isEmpty else { throw TrainingError("\(dir): no finished runs (DIR/runs/*/result.json)") }
        // An ablation folder: the plots and per-size table show the base recipe (and P = 1); every
        // recipe is in the ablation table.
        let ablation = AblationTable.load(dir)
        let results = allResults.filter { $0.recipe == nil || $0.recipe == "base" }
        let fit = try? FitSummary.load(dir)
        let cost = FileManager.default.contents(atPath: CostReport.path(dir)).flatMap { try? JSONDecoder().decode(CostReport.self, from: $0) }
        let streams = Array(Set(results.map(\.streams))).sorted()
        let sizes = Array(Set(results.map(\.hidden))).sorted()

        // Mean over seeds per (size, P), with the spread of the seeds (or the validation SE for one seed).
        struct Cell { var N: Double; var loss: Double; var error: Double; var seeds: Int }
        var cells: [Int: [Int: Cell]] = [:]
        for h in sizes {
            for p in streams {
                let runs = results.filter { $0.hidden == h && $0.streams == p }
                guard !runs.isEmpty else { continue }
                let mean = runs.map(\.validationLoss).reduce(0, +) / Double(runs.count)
                let sd = runs.count > 1
                    ? (runs.map { ($0.validationLoss - mean) * ($0.validationLoss - mean) }.reduce(0, +) / Double(runs.count - 1)).squareRoot()
                    : runs[0].validationLossSE
                cells[h, default: [:]][p] = Cell(N: Double(runs[0].lawN), loss: mean, error: sd, seeds: runs.count)
            }
        }

        var plots: [String: String] = [:]
        var lossVsN = SVGPlot(title: "Validation loss against N for each P", xLabel: "non-embedding parameters N", yLabel: "validation loss (nats)", logX: true)
        for p in streams {
            let points = sizes.compactMap { cells[$0]?[p] }.map { (x: $0.N, y: $0.loss, error: $0.error) }
            lossVsN.series.append(.init(label: "P = \(p)", points: points, line: false, markers: true))
            if let fit {
                let ns = points.map(\.x)
                if let lo = ns.min(), let hi = ns.max() {
                    let curve = (0...40).map { i -> (x: Double, y: Double, error: Double) in
                        let n = lo * pow(hi / lo, Double(i) / 40)
                        return (n, fit.E + pow(fit.A / (n * (fit.k * log(Double(p)) + 1)), fit.alpha), 0)
                    }
                    lossVsN.series.append(.init(label: "fit P = \(p)", points: curve, line: true, markers: false, dashed: true))
                }
            }
        }
        plots["report-loss-vs-n.svg"] = lossVsN.render()
        var lossVsP = SVGPlot(title: "Validation loss against P for each size", xLabel: "streams P", yLabel: "validation loss (nats)", logX: true)
        for h in sizes {
            let points = streams.compactMap { p in cells[h]?[p].map { (x: Double(p), y: $0.loss, error: $0.error) } }
            lossVsP.series.append(.init(label: "hidden \(h)", points: points, line: true, markers: true))
        }
        plots["report-loss-vs-p.svg"] = lossVsP.render()
        if let cost {
            var ratios = SVGPlot(title: "Dense increase / ParScale increase (P = \(cost.parscale.streams))", xLabel: "batch size", yLabel: "ratio", logX: true)
            ratios.series.append(.init(label: "memory (measured)", points: cost.rows.map { (Double($0.batch), $0.memoryIncreaseRatio, 0) }, line: true, markers: true))
            ratios.series.append(.init(label: "latency (measured)", points: cost.rows.map { (Double($0.batch), $0.latencyIncreaseRatio, 0) }, line: true, markers: true))
            let paperBatches = CostReport.paperBatches.map(Double.init)
            ratios.series.append(.init(label: "memory (paper 1.6B)", points: zip(paperBatches, CostReport.paperMemoryRatios).map { ($0, $1, 0) }, line: true, markers: false, dashed: true))
            ratios.series.append(.init(label: "latency (paper 1.6B)", points: zip(paperBatches, CostReport.paperLatencyRatios).map { ($0, $1, 0) }, line: true, markers: false, dashed: true))
            plots["report-cost-ratios.svg"] = ratios.render()
        }

        // Tables, as (header, rows) shared by both formats.
        var tables: [(title: String, header: [String], rows: [[String]])] = []
        if let ablation {
            let (header, rows) = ablation.rows
            tables.append(("Recipe ablation (difference to P = 1 paired by seed; negative is better)", header, rows))
            if !(ablation.againstDefault ?? []).isEmpty {
                let (header, rows) = ablation.defaultRows
                tables.append(("Each recipe against the default (\(Recipe.standardName)), paired by seed. \(ablation.defaultLine)", header, rows))
            }
        }
        tables.append((
            "Runs", ["run", "hidden", "P", "N (non-embedding, incl. ParScale)", "tokens", "val loss", "± SE", "task accuracy", "wall s"],
            allResults.map { r in
                [r.name, "\(r.hidden)", "\(r.streams)", "\(r.nonEmbeddingParameters)", "\(r.tokens)", String(format: "%.4f", r.validationLoss),
                 String(format: "%.4f", r.validationLossSE), r.taskAccuracy.map { String(format: "%.1f%%", 100 * $0) } ?? "-",
                 String(format: "%.0f", r.wallSeconds)]
            }))
        tables.append((
            "Loss by size and P (mean over seeds; ± seed sd, or the validation SE for one seed)", ["hidden", "N at P=1"] + streams.map { "P = \($0)" },
            sizes.map { h in
                ["\(h)", cells[h]?[1].map { String(format: "%.0f", $0.N) } ?? "-"]
                    + streams.map { p in cells[h]?[p].map { String(format: "%.4f ± %.4f (%d)", $0.loss, $0.error, $0.seeds) } ?? "-" }
            }))
        if let fit {
            func interval(_ key: String) -> String {
                fit.intervals[key].map { String(format: "[%.4g, %.4g]", $0[0], $0[1]) } ?? "-"
            }
            tables.append((
                "Fit: L(N, P) = E + (A / (N (k ln P + 1)))^alpha", ["parameter", "value", "95% interval"],
                [["E", String(format: "%.4g", fit.E), interval("E")], ["A", String(format: "%.4g", fit.A), interval("A")],
                 ["alpha", String(format: "%.4g", fit.alpha), interval("alpha")], ["k", String(format: "%.4g", fit.k), interval("k")],
                 ["R²", String(format: "%.4f", fit.r2), ""], ["leave-one-out |Δ log L|", String(format: "%.4g", fit.looError), ""]]))
            if let power = PowerReport.load(dir) {
                let k = fit.intervals["k"].map { String(format: "k = %.3f, 95%% interval [%.3f, %.3f]%@", fit.k, $0[0], $0[1], fit.kExcludesZero ? "" : ": includes 0") } ?? String(format: "k = %.3f", fit.k)
                var rows = [["fitted", k]]
                if let share = fit.kAtBoundShare { rows.append(["bootstrap refits with k at its lower bound (0)", String(format: "%.0f%%", 100 * share)]) }
                rows.append(["detectable k before training (80% power, 5% two-sided)", String(format: "%.3f (%@)", power.prior.detectableK, power.prior.source)])
                if let m = power.measured {
                    rows.append(["detectable k with this study's own P = 1 seeds", String(format: "%.3f (seed sd %.4f, slope %.4f)", m.detectableK, m.sigma, m.slope)])
                }
                rows.append(["the paper's k (Stack-V2-Python)", "0.39"])
                rows.append(["cheapest study that could detect k = 0.39", power.cheapestForPaperK.map { $0.description + " (\($0.source))" } ?? "none of the plans searched"])
                tables.append(("What this study could detect", ["", ""], rows))
            }
            tables.append((
                "Equivalent dense size N_eq = N (1 + k ln P)", ["P", "N_eq / N"],
                streams.map { ["\($0)", String(format: "%.3f", 1 + fit.k * log(Double($0)))] }))
        }
        if let cost {
            tables.append((
                "Measured cost (base hidden \(cost.base.hiddenSize), \(cost.base.numHiddenLayers) layers; P = \(cost.parscale.streams); dense hidden \(cost.dense.hiddenSize); k = \(String(format: "%.3f", cost.k)); prompt \(cost.prompt), \(cost.new) new tokens)",
                ["batch", "memory: base", "+ParScale", "+dense", "ratio", "paper", "time: base s", "+ParScale s", "+dense s", "ratio", "paper"],
                cost.rows.map { r in
                    let i = CostReport.paperBatches.firstIndex(of: r.batch)
                    return ["\(r.batch)", mib(r.base.peakBytes), mib(r.parscale.peakBytes - r.base.peakBytes), mib(r.dense.peakBytes - r.base.peakBytes),
                            String(format: "%.2f", r.memoryIncreaseRatio), i.map { String(CostReport.paperMemoryRatios[$0]) } ?? "-",
                            String(format: "%.3f", r.base.totalSeconds), String(format: "%.3f", r.parscale.totalSeconds - r.base.totalSeconds),
                            String(format: "%.3f", r.dense.totalSeconds - r.base.totalSeconds), String(format: "%.2f", r.latencyIncreaseRatio),
                            i.map { String(CostReport.paperLatencyRatios[$0]) } ?? "-"]
                }))
        }

        // A frontier measured in the same folder (`parscale frontier --out DIR`).
        let frontierPoints = FileManager.default.fileExists(atPath: Frontier.planPath(dir)) ? try FrontierReport.points(dir: dir) : []
        if !frontierPoints.isEmpty {
            let frontier = FrontierReport.build(frontierPoints)
            plots.merge(frontier.plots) { $1 }
            tables += frontier.tables
        }
        let title = "ParScale study: \((dir as NSString).lastPathComponent)"
        let (html, markdown) = page(title: title, intro: "\(allResults.count) runs. Made by `parscale report`.", plots: plots, tables: tables)
        return Output(html: html, markdown: markdown, plots: plots)
    }

    /// A Markdown table: header, separator, one line per row, ending in a newline.
    static func markdownTable(_ table: (header: [String], rows: [[String]])) -> String {
        "| " + table.header.joined(separator: " | ") + " |\n|" + table.header.map { _ in "---|" }.joined() + "\n"
            + table.rows.map { "| " + $0.joined(separator: " | ") + " |" }.joined(separator: "\n") + "\n"
    }

    /// One self-contained HTML page (plots inline) and its Markdown twin (plots as files beside it).
    static func page(
        title: String, intro: String, plots: [String: String], tables: [(title: String, header: [String], rows: [[String]])]
    ) -> (html: String, markdown: String) {
        // `code` in the intro becomes <code>code</code>.
        let introHTML = escape(intro).split(separator: "`", omittingEmptySubsequences: false).enumerated()
            .map { $0.offset % 2 == 1 ? "<code>\($0.element)</code>" : String($0.element) }.joined()
        var html = """
            <!DOCTYPE html>
            <html lang="en"><head><meta charset="utf-8"><title>\(escape(title))</title>
            <style>body{font-family:sans-serif;max-width:1000px;margin:2em auto;padding:0 1em}table{border-collapse:collapse;margin:1em 0}
            td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}th{background:#f4f4f4}figure{margin:1em 0}</style></head><body>
            <h1>\(escape(title))</h1>
            <p>\(introHTML)</p>

            """
        var markdown = "# \(title)\n\n\(intro)\n\n"
        for name in plots.keys.sorted() {
            html += "<figure>\(plots[name]!)</figure>\n"
            markdown += "![\(name)](\(name))\n\n"
        }
        for table in tables {
            html += "<h2>\(escape(table.title))</h2>\n<table>\n<tr>" + table.header.map { "<th>\(escape($0))</th>" }.joined() + "</tr>\n"
            html += table.rows.map { "<tr>" + $0.map { "<td>\(escape($0))</td>" }.joined() + "</tr>" }.joined(separator: "\n") + "\n</table>\n"
            markdown += "## \(table.title)\n\n" + markdownTable((table.header, table.rows)) + "\n"
        }
        html += "</body></html>\n"
        return (html, markdown)
    }

    /// Writes DIR/report.html, DIR/report.md and the SVG files; returns the HTML path.
    @discardableResult
    public static func write(dir: String) throws -> String {
        let output = try build(dir: dir)
        for (name, svg) in output.plots { try atomicWrite(Data(svg.utf8), to: (dir as NSString).appendingPathComponent(name)) }
        try atomicWrite(Data(output.markdown.utf8), to: (dir as NSString).appendingPathComponent("report.md"))
        let path = (dir as NSString).appendingPathComponent("report.html")
        try atomicWrite(Data(output.html.utf8), to: path)
        return path
    }

    public static func mib(_ bytes: Int) -> String { String(format: "%.1f MiB", Double(bytes) / 1_048_576) }
}

