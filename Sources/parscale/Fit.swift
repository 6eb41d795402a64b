import ArgumentParser
import Foundation
import ParScale
import ParScaleLaw

struct Fit: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Fit the parallel scaling law L(N, P) = E + (A / (N (k ln P + 1)))^alpha.",
        discussion: """
            N is the backbone's non-embedding parameters, without the prefixes and the aggregator: a deliberate \
            difference from the paper, whose data count those ParScale parameters in N. They are 0.2% of N in the \
            paper's models but up to 15% in toy models, where counting them in N would credit part of P's \
            effect to N. For a sweep folder the fit is also shown the paper's way (ParScale parameters in N), \
            with its k and interval. As the paper: Huber loss (delta 1e-3) on log L, 300 starting points, bounded quasi-Newton \
            (L-BFGS-B); bootstrap refits start from the same 300 points plus the optimum (leave-one-out refits \
            from the optimum and 3 of them), and \
            the share of bootstrap refits with k at its lower bound 0 is printed (above 2.5%, the interval's \
            lower end is the bound, not a free 2.5% quantile). Input: a sweep folder (every DIR/runs/*/result.json; seeds are separate points, so \
            the bootstrap over points carries the seed spread) or a CSV with columns N,P,loss (optional \
            loss_se, which the bootstrap adds as noise to each point). Prints E, A, alpha, k with 95% bootstrap intervals, R^2, the leave-one-out \
            error and N_eq = N (1 + k ln P) for each P. A sweep folder also gets DIR/fit.json.
            """)

    @Argument(help: "Sweep folder or CSV file.") var input: String
    @Option(help: "Bootstrap samples.") var samples: Int = 200
    @Flag(help: "Print one JSON object (E, A, alpha, k, r2, intervals, loo_error).") var json = false

    func run() throws {
        let summary = try Self.fit(input, samples: samples)
        if json {
            printJSON([
                "E": summary.E, "A": summary.A, "alpha": summary.alpha, "k": summary.k, "r2": summary.r2,
                "loo_error": summary.looError, "intervals": summary.intervals, "points": summary.points,
                "k_at_bound_share": summary.kAtBoundShare ?? NSNull(), "k_with_parscale_in_N": summary.kWithParScaleInN ?? NSNull(),
                "k_with_parscale_in_N_interval": summary.kWithParScaleInNInterval ?? NSNull(),
            ])
            return
        }
        func interval(_ key: String) -> String {
            summary.intervals[key].map { String(format: "[%.4g, %.4g]", $0[0], $0[1]) } ?? ""
        }
        print(String(format: "fit of %d points (%@):", summary.points, input))
        print(String(format: "  E     = %.4g  95%% %@", summary.E, interval("E")))
        print(String(format: "  A     = %.4g  95%% %@", summary.A, interval("A")))
        print(String(format: "  alpha = %.4g  95%% %@", summary.alpha, interval("alpha")))
        print(String(format: "  k     = %.4g  95%% %@  (N: backbone only)", summary.k, interval("k")))
        if let share = summary.kAtBoundShare {
            print(String(format: "  %.0f%% of the bootstrap refits put k at its lower bound 0", 100 * share))
        }
        if let k = summary.kWithParScaleInN {
            let iv = summary.kWithParScaleInNInterval.map { String(format: "[%.4g, %.4g]", $0[0], $0[1]) } ?? ""
            print(String(format: "  k     = %.4g  95%% %@  (N with the ParScale parameters, as the paper's data count it)", k, iv))
        }
        print(String(format: "  R^2 = %.4f, leave-one-out mean |log Lpred - log Lobs| = %.4g", summary.r2, summary.looError))
        for p in [2, 4, 8] { print(String(format: "  P = %d is worth N_eq = %.3f x N", p, 1 + summary.k * log(Double(p)))) }
        if !summary.kExcludesZero {
            print("  the 95% interval of k includes 0: these runs do not show a parallel-scaling effect")
        }
    }

    /// Fits a sweep folder or CSV; a folder also gets fit.json.
    static func fit(_ input: String, samples: Int) throws -> FitSummary {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: input, isDirectory: &isDirectory) else {
            throw ValidationError("\(input): no such sweep folder or CSV file")
        }
        let points: [LawPoint], errors: [Double]?
        var paperWay: LawFit?
        if isDirectory.boolValue {
            let results = try Sweep.results(in: input)
            guard !results.isEmpty else { throw ValidationError("\(input): no finished sweep runs (expected DIR/runs/*/result.json)") }
            points = results.map { LawPoint(N: Double($0.lawN), P: $0.streams, loss: $0.validationLoss) }
            // Not the validation standard errors: every run is scored on the same windows, so their
            // sampling error is shared by all runs (it moves E, not the differences the law fits);
            // the spread between seeds is what differs, and the bootstrap over points carries it.
            errors = nil
            let withParScale = results.map { LawPoint(N: Double($0.nonEmbeddingParameters), P: $0.streams, loss: $0.validationLoss) }
            paperWay = try LawFitter.analyse(withParScale, samples: samples)
        } else {
            (points, errors) = try LawFitter.readCSV(input)
        }
        let fit = try LawFitter.analyse(points, errors: errors, samples: samples)
        let p = fit.parameters
        let summary = FitSummary(
            E: p.E, A: p.A, alpha: p.alpha, k: p.k, r2: fit.r2,
            intervals: fit.intervals.mapValues { [$0.low, $0.high] }, looError: fit.looError, points: points.count,
            kAtBoundShare: fit.kAtBoundShare, kWithParScaleInN: paperWay?.parameters.k,
            kWithParScaleInNInterval: paperWay?.intervals["k"].map { [$0.low, $0.high] })
        if isDirectory.boolValue {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
            try atomicWrite(encoder.encode(summary), to: FitSummary.path(input))
        }
        return summary
    }
}
