import Foundation
import ParScale

/// How small a k a sweep plan can detect (issue #18), before anything is trained.
///
/// "Detect" means what the study reports: k's 95% interval excludes 0, a two-sided test at
/// alpha = 0.05 (one-sided 0.025, since k >= 0). The detectable k is the one found with 80% power.
/// (The issue says "power at 95%"; 80% power at the 95% level is the usual convention and is what
/// is computed and printed.)
///
/// Closed form: within one size the law moves the loss by -s ln(1 + k ln P) from P = 1, where s is
/// the loss's fall per unit of ln N at P = 1 (its slope in ln N); for small k that is -s k ln P. With
/// the sizes' levels free (the fit's E, A, alpha fit 3 sizes' P = 1 losses), k is a within-size
/// regression of the seed-mean losses on x = s ln P, whose least-squares standard error is
///     SE(k) = sigma / (s sqrt(m * sizes * sum_P (ln P - mean ln P)^2))
/// for m seeds of per-run sd sigma. The fit minimises a Huber loss on log L whose threshold (1e-3)
/// is below these residuals (about 0.01 / L), so it is a least-absolute-deviations fit, with 2/pi
/// of least squares' efficiency on normal noise: SE x sqrt(pi / 2). The detectable k is the k whose
/// exact effects (ln(1 + k ln P), not k ln P) regress to (z_0.975 + z_0.8) SE. `simulatedPower`
/// checks this against the fitter itself (StudyPowerTests; Tools/bench/RESULTS.md).
public struct StudyPower: Codable, Sendable, Equatable {
    /// Seed sd of one run's validation loss, and where it comes from.
    public var sigma: Double
    /// The P = 1 loss's fall per unit of ln N, and where it comes from.
    public var slope: Double
    public var source: String
    public var kStandardError: Double
    /// The smallest k found with 80% power at the two-sided 5% level.
    public var detectableK: Double

    public static let zAlpha = 1.959963984540054  // two-sided 5%
    public static let zPower = 0.8416212335729143  // 80% power
    public static let paperK = 0.39

    public init(sizes: Int, streams: [Int], seeds: Int, sigma: Double, slope: Double, source: String) {
        (self.sigma, self.slope, self.source) = (sigma, slope, source)
        let logs = streams.map { log(Double($0)) }
        let mean = logs.reduce(0, +) / Double(max(1, logs.count))
        let spread = logs.reduce(0) { $0 + ($1 - mean) * ($1 - mean) }
        let information = Double(seeds * sizes) * spread * slope * slope
        kStandardError = information > 0 ? sigma / information.squareRoot() * (Double.pi / 2).squareRoot() : .infinity
        let target = (Self.zAlpha + Self.zPower) * kStandardError
        // The k whose exact within-size effects ln(1 + k ln P) regress (on ln P) to `target`.
        func effectiveK(_ k: Double) -> Double {
            let effects = streams.map { log(1 + k * log(Double($0))) }
            let effectMean = effects.reduce(0, +) / Double(effects.count)
            return zip(effects, logs).reduce(0) { $0 + ($1.0 - effectMean) * ($1.1 - mean) } / spread
        }
        guard target.isFinite, spread > 0 else {
            detectableK = .infinity
            return
        }
        var lo = 0.0, hi = max(target, 1e-6)
        while effectiveK(hi) < target && hi < 1e6 { hi *= 2 }
        for _ in 0..<100 {
            let mid = (lo + hi) / 2
            if effectiveK(mid) < target { lo = mid } else { hi = mid }
        }
        detectableK = (lo + hi) / 2
    }

    public init(plan: SweepPlan, sigma: Double, slope: Double, source: String) {
        self.init(sizes: plan.hiddenSizes.count, streams: plan.streams, seeds: plan.seeds.count, sigma: sigma, slope: slope, source: source)
    }

    /// Noise and slope measured on the built-in code corpus (4 layers, i.i.d. split; Tools/bench/RESULTS.md):
    /// at 1M tokens the committed small study's P = 1 runs (hidden 48, 64, 96, 3 seeds; pooled seed sd,
    /// slope from 64 to 96), at 2M the recipe ablation's (hidden 64 and 96, 3 seeds), at 8M one seed
    /// per size (its slope only; its sd is 2M's, assumed).
    public static let priors: [(tokens: Int, sigma: Double, slope: Double, source: String)] = [
        (1_000_000, 0.0106, 0.100, "measured at 1M tokens (small study, 2026-11-24)"),
        (2_000_000, 0.0046, 0.0706, "measured at 2M tokens (recipe ablation round 2)"),
        (8_000_000, 0.0046, 0.054, "slope measured at 8M tokens (1 seed), seed sd assumed as at 2M"),
    ]

    /// The prior at the measured budget nearest (in log tokens) to `tokens`.
    public static func prior(tokens: Int) -> (sigma: Double, slope: Double, source: String) {
        let p = priors.min { abs(log(Double($0.tokens) / Double(tokens))) < abs(log(Double($1.tokens) / Double(tokens))) }!
        let note = p.tokens == tokens ? "" : " (nearest measured budget to \(tokens) tokens)"
        return (p.sigma, p.slope, "prior: " + p.source + note)
    }

    /// Seed sd (pooled over sizes) and slope in ln N (smallest to largest size) of finished P = 1
    /// runs; nil without 2 sizes or without 2 seeds at some size.
    public static func measured(_ results: [SweepResult]) -> (sigma: Double, slope: Double)? {
        let p1 = results.filter { $0.streams == 1 }
        let sizes = Set(p1.map(\.hidden)).sorted()
        var sumSquares = 0.0, degrees = 0
        var means: [(N: Double, loss: Double)] = []
        for h in sizes {
            let losses = p1.filter { $0.hidden == h }.map(\.validationLoss)
            let mean = losses.reduce(0, +) / Double(losses.count)
            sumSquares += losses.reduce(0) { $0 + ($1 - mean) * ($1 - mean) }
            degrees += losses.count - 1
            means.append((Double(p1.first { $0.hidden == h }!.lawN), mean))
        }
        guard means.count >= 2, degrees > 0, let first = means.first, let last = means.last else { return nil }
        return ((sumSquares / Double(degrees)).squareRoot(), (first.loss - last.loss) / log(last.N / first.N))
    }

    // MARK: time

    /// Seconds to train one run: tokens x P x (a + b N), a and b fitted to the committed small study's
    /// wall times (least squares, shared machine) and scaled to its measured total when alone on this
    /// 2-core machine (18 min 16 s for 63M stream-tokens, fit and cost step included: x 0.49;
    /// Tools/bench/RESULTS.md, "The `small` study"). A rough model for planning.
    public static func seconds(tokens: Int, streams: Int, nonEmbedding N: Double) -> Double {
        Double(tokens) * Double(streams) * (12.6e-6 + 1.87e-11 * N)
    }

    /// Hours to train every run of `plan` on this machine (`seconds`).
    public static func hours(_ plan: SweepPlan) -> Double {
        var total = 0.0
        for h in plan.hiddenSizes {
            let N = Double(ParameterLayout(plan.config(SweepRun(hidden: h, streams: 1, seed: 0))).counts.nonEmbedding)
            for p in plan.streams { total += Double(plan.seeds.count) * seconds(tokens: plan.tokens, streams: p, nonEmbedding: N) }
        }
        return total / 3600
    }

    // MARK: simulation

    /// Power by simulation with the fitter itself: losses from L(N, P) = E + (A / (N (1 + k ln P)))^alpha
    /// (alpha 0.2, A set so the P = 1 slope at the sizes' geometric mean is `slope`) plus N(0, sigma^2)
    /// per run, fitted with the fit's objective and optimiser (from 4 starts); detected when the fitted k exceeds the
    /// 97.5th percentile of fitted k's under k = 0. Returns the share detected at `k`.
    public static func simulatedPower(
        N: [Double], streams: [Int], seeds: Int, sigma: Double, slope: Double, k: Double, simulations: Int, seed: UInt64 = 1
    ) -> Double {
        let alpha = 0.2, E = 0.5
        let geometricMean = exp(N.map(log).reduce(0, +) / Double(N.count))
        let A = geometricMean * pow(slope / alpha, 1 / alpha)
        func fits(_ trueK: Double, _ offset: UInt64) -> [Double] {
            LawFitter.parallelMap(simulations) { i -> Double in
                var rng = SplitMix64(seed: seed &+ offset &+ 0x9E37_79B9 &* UInt64(i + 1))
                let truth = LawParameters(E: E, A: A, alpha: alpha, k: trueK)
                var points: [LawPoint] = []
                for n in N {
                    for p in streams {
                        for _ in 0..<seeds { points.append(LawPoint(N: n, P: p, loss: truth.loss(N: n, P: p) + sigma * rng.normal())) }
                    }
                }
                // Starts: the truth and the 3 refit points of the script's grid (the full 300 would
                // make a simulation of hundreds of fits take minutes).
                let scale = LawFitter.scale(for: points)
                let truthStart = [E, A / scale, alpha, max(trueK, 1e-8)]
                let fit = LawFitter.fitCore(LawFitter.Problem(points: points, scale: scale), starts: [truthStart] + LawFitter.refitGrid)
                return fit?.x[3] ?? 0
            }
        }
        let null = fits(0, 0).sorted()
        let critical = LawFitter.percentile(null, 0.975)
        return Double(fits(k, 0x5EED).filter { $0 > critical }.count) / Double(simulations)
    }
}

/// A candidate study plan, its time on this machine and the k it could detect (`StudyPower`).
public struct PlanCandidate: Codable, Sendable, Equatable {
    public var sizes: [Int]
    public var streams: [Int]
    public var seeds: Int
    public var tokens: Int
    public var hours: Double
    public var detectableK: Double
    public var source: String

    public var description: String {
        String(
            format: "hidden %@, P %@, %d seeds, %.1fM tokens per run: %.1f h on this machine, detectable k %.3f",
            sizes.map(String.init).joined(separator: ","), streams.map(String.init).joined(separator: ","), seeds,
            Double(tokens) / 1e6, hours, detectableK)
    }

    /// Plans over 3 or 4 consecutive sizes of 48-256, P sets {1,2}, {1,4}, {1,2,4}, {1,2,4,8}, 3-16
    /// seeds and the budgets with a noise estimate (`noise(tokens)`: sigma, slope, source).
    public static func all(
        base: SweepPlan, budgets: [Int], noise: (Int) -> (sigma: Double, slope: Double, source: String)
    ) -> [PlanCandidate] {
        let widths = [48, 64, 96, 128, 192, 256]
        var sizeSets: [[Int]] = []
        for count in [3, 4] {
            for start in 0...(widths.count - count) { sizeSets.append(Array(widths[start..<start + count])) }
        }
        var out: [PlanCandidate] = []
        for tokens in budgets {
            let (sigma, slope, source) = noise(tokens)
            for sizes in sizeSets {
                for streams in [[1, 2], [1, 4], [1, 2, 4], [1, 2, 4, 8]] {
                    for seeds in 3...16 {
                        var plan = base
                        (plan.hiddenSizes, plan.streams, plan.seeds, plan.tokens) = (sizes, streams, (0..<UInt64(seeds)).map { $0 }, tokens)
                        let power = StudyPower(plan: plan, sigma: sigma, slope: slope, source: source)
                        out.append(PlanCandidate(
                            sizes: sizes, streams: streams, seeds: seeds, tokens: tokens, hours: StudyPower.hours(plan),
                            detectableK: power.detectableK, source: source))
                    }
                }
            }
        }
        return out
    }

    /// The cheapest candidate that detects `k` (nil if none does).
    public static func cheapest(detecting k: Double, among candidates: [PlanCandidate]) -> PlanCandidate? {
        candidates.filter { $0.detectableK <= k }.min { $0.hours < $1.hours }
    }

    /// The candidate with the smallest detectable k within `hours`.
    public static func sharpest(within hours: Double, among candidates: [PlanCandidate]) -> PlanCandidate? {
        candidates.filter { $0.hours <= hours }.min { $0.detectableK < $1.detectableK }
    }
}

/// What `study` saves as DIR/power.json and `report` shows beside the fitted k.
public struct PowerReport: Codable, Sendable {
    public var hours: Double
    /// Before training, from `StudyPower.priors`.
    public var prior: StudyPower
    /// After training, with the study's own P = 1 seed sd and slope (nil before, or with one seed).
    public var measured: StudyPower?
    /// The cheapest plan (`PlanCandidate.all`) that could detect the paper's k = 0.39, with the
    /// measured noise at this study's budget and the priors at the others.
    public var cheapestForPaperK: PlanCandidate?
    /// The searched plan with the smallest detectable k within this plan's hours (how `small` was chosen).
    public var sharpestInTheSameHours: PlanCandidate?

    public init(hours: Double, prior: StudyPower, measured: StudyPower?, cheapestForPaperK: PlanCandidate?, sharpestInTheSameHours: PlanCandidate?) {
        (self.hours, self.prior, self.measured, self.cheapestForPaperK) = (hours, prior, measured, cheapestForPaperK)
        self.sharpestInTheSameHours = sharpestInTheSameHours
    }

    public static func path(_ dir: String) -> String { (dir as NSString).appendingPathComponent("power.json") }

    public static func load(_ dir: String) -> PowerReport? {
        FileManager.default.contents(atPath: path(dir)).flatMap { try? JSONDecoder().decode(PowerReport.self, from: $0) }
    }

    public func save(_ dir: String) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        try atomicWrite(encoder.encode(self), to: Self.path(dir))
    }

    /// The plan's power, before training (prior) and, when `results` have P = 1 seeds, measured.
    public static func make(plan: SweepPlan, results: [SweepResult]) -> PowerReport {
        let prior = StudyPower.prior(tokens: plan.tokens)
        let before = StudyPower(plan: plan, sigma: prior.sigma, slope: prior.slope, source: prior.source)
        let own = StudyPower.measured(results.filter { plan.hiddenSizes.contains($0.hidden) })
        let measured = own.map {
            StudyPower(plan: plan, sigma: $0.sigma, slope: $0.slope, source: "measured: this study's P = 1 runs")
        }
        let candidates = PlanCandidate.all(base: plan, budgets: StudyPower.priors.map(\.tokens) + [plan.tokens]) { tokens in
            if tokens == plan.tokens, let measured { return (measured.sigma, measured.slope, measured.source) }
            return StudyPower.prior(tokens: tokens)
        }
        let hours = StudyPower.hours(plan)
        var cheapest = PlanCandidate.cheapest(detecting: StudyPower.paperK, among: candidates)
        if let c = cheapest, c.hours <= candidates.map(\.hours).min()! {
            cheapest?.source += "; the cheapest plan searched, so a smaller one might do too"
        }
        return PowerReport(
            hours: hours, prior: before, measured: measured,
            cheapestForPaperK: cheapest,
            sharpestInTheSameHours: PlanCandidate.sharpest(within: hours * 1.001, among: candidates))
    }

    /// Lines for the terminal and the report.
    public var lines: [String] {
        func line(_ p: StudyPower) -> String {
            String(format: "detectable k = %.3f (80%% power, 5%% two-sided; SE of k %.3f) with seed sd %.4f and P = 1 slope %.4f per ln N, %@",
                   p.detectableK, p.kStandardError, p.sigma, p.slope, p.source)
        }
        var out = [String(format: "plan: about %.1f h of training on this machine (2 cores)", hours), line(prior)]
        if let measured { out.append(line(measured)) }
        out.append(cheapestForPaperK.map { "cheapest study that could detect the paper's k = 0.39: " + $0.description + " (\($0.source))" }
                   ?? "no plan searched (up to 4 sizes to hidden 256, 16 seeds) could detect the paper's k = 0.39")
        if let sharpest = sharpestInTheSameHours { out.append("sharpest plan searched in the same hours: " + sharpest.description) }
        return out
    }
}
