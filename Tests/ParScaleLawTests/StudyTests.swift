import Foundation
import XCTest
#if canImport(FoundationXML)
    import FoundationXML
#endif

@testable import ParScale
@testable import ParScaleLaw
@testable import ParScaleTrain
import TestSupport

/// A miniature study end to end: sweep (with a resumed and a skipped run), fit, cost, report.
final class StudyTests: XCTestCase {
    func testSweepFitCostAndReportProduceEveryPlotAndTable() throws {
        let dir = temporaryFolder().path
        var plan = SweepPlan(hiddenSizes: [16, 24, 32], streams: [1, 2], seeds: [0], tokens: 4 * 8 * 32)
        plan.layers = 1
        plan.recipe.prefixTokens = 2
        plan.sequence = 32
        plan.evalWindows = 4
        plan.taskExamples = 0
        try Sweep.prepare(plan, in: dir)
        var changed = plan
        changed.tokens *= 2
        XCTAssertThrowsError(try Sweep.prepare(changed, in: dir), "a different plan in the same folder is refused")
        for run in plan.runs { try Sweep.execute(run, plan: plan, in: dir) { _ in } }
        var skipped = false
        try Sweep.execute(plan.runs[0], plan: plan, in: dir) { skipped = skipped || $0.contains("skipped") }
        XCTAssertTrue(skipped, "a finished run is skipped")
        let results = try Sweep.results(in: dir)
        XCTAssertEqual(results.count, 6)
        XCTAssertEqual(Set(results.map(\.streams)), [1, 2])
        for r in results {
            XCTAssertEqual(r.tokens, 4 * 8 * 32)
            XCTAssertGreaterThan(r.validationLossSE, 0)
            XCTAssertEqual(r.nonEmbeddingParameters, ParameterLayout(plan.config(SweepRun(hidden: r.hidden, streams: r.streams, seed: 0))).counts.nonEmbedding)
        }

        let fit = try LawFitter.analyse(results.map { LawPoint(N: Double($0.lawN), P: $0.streams, loss: $0.validationLoss) }, samples: 20, fewerStarts: true)
        let summary = FitSummary(
            E: fit.parameters.E, A: fit.parameters.A, alpha: fit.parameters.alpha, k: fit.parameters.k, r2: fit.r2,
            intervals: fit.intervals.mapValues { [$0.low, $0.high] }, looError: fit.looError, points: results.count)
        try atomicWrite(JSONEncoder().encode(summary), to: FitSummary.path(dir))
        let cost = try CostReport.measure(
            base: plan.config(SweepRun(hidden: 32, streams: 1, seed: 0)), streams: 2, k: 0.39, batches: [1, 2], prompt: 8, new: 2
        ) { config, b, prompt, new in try CostModel.probe(config: config, batch: b, prompt: prompt, new: new, repeats: 1) }
        XCTAssertGreaterThan(ParameterLayout(cost.dense).counts.nonEmbedding, ParameterLayout(cost.base).counts.nonEmbedding)
        try atomicWrite(JSONEncoder().encode(cost), to: CostReport.path(dir))

        try PowerReport.make(plan: plan, results: results).save(dir)

        let html = try String(contentsOfFile: try Report.write(dir: dir), encoding: .utf8)
        let markdown = try String(contentsOfFile: dir + "/report.md", encoding: .utf8)
        // Every plot: an inline SVG that parses as XML and has its title and data.
        let svgs = html.components(separatedBy: "<svg ").dropFirst().map { "<svg " + $0.components(separatedBy: "</svg>")[0] + "</svg>" }
        XCTAssertEqual(svgs.count, 3)
        for (svg, title) in zip(svgs, ["Dense increase", "Validation loss against N", "Validation loss against P"]) {
            XCTAssertTrue(XMLParser(data: Data(svg.utf8)).parse(), "SVG is not well-formed: \(svg.prefix(200))")
            XCTAssertTrue(svg.contains(title), title)
            XCTAssertTrue(svg.contains("<circle") || svg.contains("<polyline"), "\(title) has no data")
        }
        for table in ["Runs", "Loss by size and P", "Fit: L(N, P)", "What this study could detect", "Equivalent dense size", "Measured cost"] {
            XCTAssertTrue(html.contains("<h2>\(table)"), "HTML lacks table \(table)")
            XCTAssertTrue(markdown.contains("## \(table)"), "Markdown lacks table \(table)")
        }
        XCTAssertEqual(html.components(separatedBy: "<table>").count - 1, 6)
        // The power table: the detectable k beside the fitted interval, and the cheapest plan for 0.39.
        XCTAssertTrue(markdown.contains("| detectable k before training"), markdown)
        XCTAssertTrue(markdown.contains("| cheapest study that could detect k = 0.39 | hidden"), markdown)
        for r in results { XCTAssertTrue(html.contains("<td>\(r.name)</td>"), r.name) }
        for name in ["report-loss-vs-n.svg", "report-loss-vs-p.svg", "report-cost-ratios.svg"] {
            XCTAssertTrue(markdown.contains("](\(name))"))
            XCTAssertTrue(FileManager.default.fileExists(atPath: dir + "/" + name), name)
        }
    }

    func testGrownDenseModelHitsTheTargetSize() {
        let base = ModelConfig(
            vocabSize: 256, hiddenSize: 128, intermediateSize: 352, numHiddenLayers: 4, numAttentionHeads: 4,
            numKeyValueHeads: 2, tieWordEmbeddings: true, parscaleN: 1, parscaleNTokens: 8)
        let N = Double(ParameterLayout(base).counts.nonEmbedding)
        for factor in [1.27, 1.54, 1.81] {
            let dense = CostModel.grownDense(from: base, targetNonEmbedding: N * factor)
            let got = Double(ParameterLayout(dense).counts.nonEmbedding)
            XCTAssertEqual(got / N, factor, accuracy: 0.06, "factor \(factor): hidden \(dense.hiddenSize)")
            XCTAssertEqual(dense.hiddenSize % (2 * dense.numAttentionHeads), 0)
            XCTAssertEqual(dense.streams, 1)
        }
    }
}

final class ResidentMemoryTests: XCTestCase {
    /// Touching 64 MiB past the earlier peak raises the peak by about that much (the /proc
    /// reading, whatever its padding; earlier tests in the process may have set a high peak).
    func testPeakResidentMemoryFollowsAllocations() {
        let before = CostModel.residentMemory()
        XCTAssertGreaterThan(before.current, 1 << 20)
        let headroom = max(0, before.peak - before.current)
        let count = (headroom + (64 << 20)) / 4
        let p = UnsafeMutablePointer<Float>.allocate(capacity: count)
        p.initialize(repeating: 1, count: count)
        let after = CostModel.residentMemory()
        p.deallocate()
        XCTAssertGreaterThan(after.peak - before.peak, 60 << 20)
        XCTAssertLessThan(after.peak - before.peak, 80 << 20)
        // Past 10 GB the number fills the tab's column: "VmHWM:\t12345678 kB".
        XCTAssertEqual(CostModel.statusField("VmRSS:\t    1234 kB\nVmHWM:\t12345678 kB\n", "VmHWM:"), 12_345_678 * 1024)
        XCTAssertEqual(CostModel.statusField("VmRSS:\t    1234 kB\n", "VmRSS:"), 1234 * 1024)
    }
}
