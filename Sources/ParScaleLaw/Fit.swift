import Foundation

// Parallel scaling law of ParScale ("Parallel Scaling Law for Language Models", arXiv 2505.10475):
//
//     L(N, P) = E + ( A / (N * (k * ln P + 1)) )^alpha
//
// Fitting procedure mirrored from the official script `parametric_fit.py`
// (github.com/QwenLM/ParScale, HEAD, blob eb536c99e02e793305a75d77af2f9e57b4f4a6cf):
//  * objective: sum of Huber(delta = 1e-3) of log(L_obs) - log(L_pred) over all points;
//  * parameters are fitted DIRECTLY (not as logs): (E, A', alpha, k) with the law written as
//    E + (A' * 1e9 / (N * (k ln P + 1)))^alpha, i.e. A' is A in units of 1e9 parameters.
//    Here the unit ("scale") is 10^round(log10(geometric mean of N)), which is exactly 1e9 for the
//    paper's models (0.54B..4.4B) and keeps A' of order one for data in other units;
//  * bounds: every parameter in [1e-8, +inf) (scipy L-BFGS-B bounds (1e-8, None));
//  * starting grid (3*5*5*4 = 300 points): E = exp(e), e in {-1, -0.5, 0};
//    A' = exp(a), a in {-4, -2, 0, 2, 4}; alpha in {0, 0.5, 1, 1.5, 2} (0 is projected to 1e-8, as
//    scipy clips x0 into the bounds); k in {0.2, 0.4, 0.6, 0.8};
//  * optimiser: bounded quasi-Newton (our projected L-BFGS in Optimize.swift, in place of scipy's
//    L-BFGS-B), analytic gradient; the run with the lowest objective wins.
//
// What the script prints (scipy 1.17, recomputed here):
//   Stack-V2-Python: E = 0.69129, A' = 0.0113072 (A = 1.1307e7), alpha = 0.189405, k = 0.393427,
//                    objective 3.6767e-5, R^2 = 0.99783
//   Pile:            E = 1.28885, A' = 0.197279 (A = 1.9728e8), alpha = 0.196363, k = 0.334431,
//                    objective 1.8139e-5, R^2 = 0.99868
// Our optimiser converges more tightly than scipy's defaults (factr 1e7, pgtol 1e-5), so it can end
// at a slightly lower objective; k agrees to about 1e-3 (see FitTests).

public struct LawPoint: Codable, Equatable, Sendable {
    /// Non-embedding parameters.
    public var N: Double
    /// Number of parallel streams.
    public var P: Int
    /// Observed loss.
    public var loss: Double
    public init(N: Double, P: Int, loss: Double) {
        self.N = N
        self.P = P
        self.loss = loss
    }
}

public struct LawParameters: Codable, Equatable, Sendable {
    public var E: Double
    /// In the same units as N.
    public var A: Double
    public var alpha: Double
    public var k: Double
    public init(E: Double, A: Double, alpha: Double, k: Double) {
        self.E = E
        self.A = A
        self.alpha = alpha
        self.k = k
    }

    /// E + (A / (N (k ln P + 1)))^alpha
    public func loss(N: Double, P: Int) -> Double {
        E + pow(A / equivalentN(N: N, P: P), alpha)
    }

    /// N * (1 + k ln P): the dense model size a P-stream model of size N behaves like.
    public func equivalentN(N: Double, P: Int) -> Double {
        N * (1 + k * log(Double(P)))
    }
}

public struct Interval: Codable, Equatable, Sendable {
    public var low: Double
    public var high: Double
    public init(low: Double, high: Double) {
        self.low = low
        self.high = high
    }
    public func contains(_ x: Double) -> Bool { low <= x && x <= high }
    public var width: Double { high - low }
}

public struct LawFit: Codable, Sendable {
    public var parameters: LawParameters
    /// On L (not log L): 1 - SS_res / SS_tot, as sklearn's r2_score in the script.
    public var r2: Double
    /// Leave-one-out: mean |log L_pred - log L_obs| of each point predicted by a fit without it.
    public var looError: Double
    /// 95% percentile bootstrap intervals for "E", "A", "alpha", "k" (empty when fewer than 2 samples).
    public var intervals: [String: Interval]
    /// Huber objective of `parameters` on the data.
    public var huberObjective: Double
    /// Number of bootstrap refits that produced a finite fit (used for the intervals).
    public var bootstrapSamples: Int
    /// Share of those refits with k at its lower bound (k <= 1e-6): when it is above 2.5%, the
    /// interval's lower end is the bound itself, and the percentile interval is not a 95% interval
    /// of a free parameter (the fitted k's distribution is cut at 0).
    public var kAtBoundShare: Double
}

public struct LawError: Error, CustomStringConvertible {
    public let message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}

// MARK: - Small seeded RNG

/// SplitMix64 (Steele, Lea, Flood 2014): tiny, fast, good enough for resampling and noise.
struct SplitMix64: RandomNumberGenerator {
    private var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
    /// Uniform in [0, 1) with 53 random bits.
    mutating func uniform() -> Double { Double(next() >> 11) * 0x1.0p-53 }
    /// Uniform integer in 0..<n (n > 0) by rejection, no modulo bias.
    mutating func below(_ n: Int) -> Int {
        let bound = UInt64(n)
        let limit = UInt64.max - UInt64.max % bound
        while true {
            let r = next()
            if r < limit { return Int(r % bound) }
        }
    }
    /// Standard normal (Box-Muller).
    mutating func normal() -> Double {
        var u = uniform()
        while u <= 0 { u = uniform() }
        let v = uniform()
        return (-2 * log(u)).squareRoot() * cos(2 * Double.pi * v)
    }
}

// MARK: - Fitter

public enum LawFitter {
    public static let huberDelta = 1e-3
    static let lowerBound = 1e-8
    /// The script's starting grid (in its own units: E, A' = A/scale, alpha, k).
    static let gridLogE: [Double] = [-1, -0.5, 0]
    static let gridLogA: [Double] = [-4, -2, 0, 2, 4]
    static let gridAlpha: [Double] = [0, 0.5, 1, 1.5, 2]
    static let gridK: [Double] = [0.2, 0.4, 0.6, 0.8]

    static var fullGrid: [[Double]] {
        var out: [[Double]] = []
        for e in gridLogE {
            for a in gridLogA {
                for al in gridAlpha {
                    for k in gridK { out.append([exp(e), exp(a), al, k]) }
                }
            }
        }
        return out
    }

    /// Three points of the script's grid used (besides the warm start) for leave-one-out and
    /// bootstrap refits. On bootstrap resamples of the paper's data every one of them reaches the same
    /// optimum as the full 300-point grid; they are cheap-to-converge and spread out.
    static var refitGrid: [[Double]] {
        [
            [exp(-1), exp(-2), 0.5, 0.2],
            [exp(-0.5), exp(-4), 1, 0.4],
            [exp(-0.5), exp(0), 0.5, 0.4],
        ]
    }

    /// Unit for A in the optimiser: 10^round(log10(geometric mean of N)); 1e9 for the paper's data.
    static func scale(for points: [LawPoint]) -> Double {
        let meanLog = points.reduce(0.0) { $0 + log10($1.N) } / Double(points.count)
        return pow(10, meanLog.rounded())
    }

    // MARK: objective

    /// Precomputed data for the objective, in optimiser units.
    struct Problem {
        var logN: [Double]   // log(N / scale)
        var logP: [Double]
        var logL: [Double]
        var scale: Double

        init(points: [LawPoint], scale: Double) {
            logN = points.map { log($0.N / scale) }
            logP = points.map { log(Double($0.P)) }
            logL = points.map { log($0.loss) }
            self.scale = scale
        }

        /// Huber objective and its gradient with respect to x = (E, A', alpha, k).
        func evaluate(_ x: [Double], _ grad: inout [Double]) -> Double {
            let E = x[0], A = x[1], alpha = x[2], k = x[3]
            let delta = LawFitter.huberDelta
            let logA = log(A)
            var f = 0.0
            var gE = 0.0, gA = 0.0, gAl = 0.0, gK = 0.0
            let ok: Bool = logN.withUnsafeBufferPointer { logN in
                logP.withUnsafeBufferPointer { logP in
                    logL.withUnsafeBufferPointer { logL in
                        for i in 0..<logN.count {
                            let g = k * logP[i] + 1
                            let logU = logA - logN[i] - log(g)
                            let T = exp(alpha * logU)
                            let pred = E + T
                            let r = log(pred) - logL[i]
                            if !r.isFinite || !T.isFinite { return false }
                            let psi: Double
                            if abs(r) <= delta {
                                f += 0.5 * r * r
                                psi = r
                            } else {
                                f += delta * (abs(r) - 0.5 * delta)
                                psi = r > 0 ? delta : -delta
                            }
                            let w = psi / pred
                            gE += w
                            gA += w * alpha * T / A
                            gAl += w * T * logU
                            gK -= w * alpha * T * logP[i] / g
                        }
                        return true
                    }
                }
            }
            if !ok {
                grad[0] = .nan; grad[1] = .nan; grad[2] = .nan; grad[3] = .nan
                return .infinity
            }
            grad[0] = gE; grad[1] = gA; grad[2] = gAl; grad[3] = gK
            return f
        }

        func objective(_ x: [Double]) -> Double {
            var g = [Double](repeating: 0, count: 4)
            return evaluate(x, &g)
        }
    }

    struct CoreFit {
        var x: [Double]  // optimiser units (E, A' = A / scale, alpha, k)
        var value: Double
    }

    static let optimizer = BoxLBFGS()

    /// Runs the optimiser from every start and keeps the best objective (first one wins ties, as the
    /// script's `result.fun < best_func`).
    static func fitCore(_ problem: Problem, starts: [[Double]]) -> CoreFit? {
        let lower = [Double](repeating: lowerBound, count: 4)
        let upper = [Double](repeating: .infinity, count: 4)
        var best: BoxLBFGS.Result?
        for s in starts {
            let r = optimizer.minimize(x0: s, lower: lower, upper: upper) { x, g in problem.evaluate(x, &g) }
            guard r.value.isFinite else { continue }
            if best == nil || r.value < best!.value { best = r }
        }
        guard let b = best else { return nil }
        return CoreFit(x: b.x, value: b.value)
    }

    static func parameters(_ x: [Double], scale: Double) -> LawParameters {
        LawParameters(E: x[0], A: x[1] * scale, alpha: x[2], k: x[3])
    }

    static func validate(_ points: [LawPoint], minimum: Int = 5) throws {
        guard points.count >= minimum else {
            throw LawError("need at least \(minimum) points to fit E, A, alpha, k; got \(points.count)")
        }
        for (i, p) in points.enumerated() {
            guard p.N.isFinite, p.N > 0 else { throw LawError("point \(i): N must be > 0, got \(p.N)") }
            guard p.P >= 1 else { throw LawError("point \(i): P must be >= 1, got \(p.P)") }
            guard p.loss.isFinite, p.loss > 0 else { throw LawError("point \(i): loss must be > 0, got \(p.loss)") }
        }
    }

    // MARK: public API

    /// Paper procedure: Huber(delta 1e-3) on log L, the script's 300-point grid of starting points,
    /// bounded L-BFGS, best objective. Needs at least 5 valid points. If every point has P = 1, k is
    /// not identifiable and stays at its starting value.
    public static func fit(_ points: [LawPoint]) throws -> LawParameters {
        try fullFit(points).parameters
    }

    static func fullFit(_ points: [LawPoint]) throws -> (parameters: LawParameters, core: CoreFit, scale: Double) {
        try validate(points)
        let scale = scale(for: points)
        let problem = Problem(points: points, scale: scale)
        guard let core = fitCore(problem, starts: fullGrid) else {
            throw LawError("the fit did not converge from any starting point")
        }
        return (parameters(core.x, scale: scale), core, scale)
    }

    /// Huber objective of `parameters` on `points` (scale-free).
    public static func huberObjective(_ parameters: LawParameters, _ points: [LawPoint]) -> Double {
        let delta = huberDelta
        var f = 0.0
        for p in points {
            let r = log(parameters.loss(N: p.N, P: p.P)) - log(p.loss)
            f += abs(r) <= delta ? 0.5 * r * r : delta * (abs(r) - 0.5 * delta)
        }
        return f
    }

    /// R^2 on L: 1 - SS_res / SS_tot.
    public static func rSquared(_ parameters: LawParameters, _ points: [LawPoint]) -> Double {
        let mean = points.reduce(0.0) { $0 + $1.loss } / Double(points.count)
        var ssRes = 0.0, ssTot = 0.0
        for p in points {
            let e = p.loss - parameters.loss(N: p.N, P: p.P)
            ssRes += e * e
            ssTot += (p.loss - mean) * (p.loss - mean)
        }
        return ssTot > 0 ? 1 - ssRes / ssTot : (ssRes == 0 ? 1 : -.infinity)
    }

    /// fit + R^2 + leave-one-out + bootstrap.
    ///
    /// Bootstrap refits start from the full-data optimum (warm start) and the same 300-point grid as
    /// the main fit (`fewerStarts`: 3 of its points instead, for quick checks); the lowest objective
    /// wins. With only a few starts a refit can stop in a local optimum that the main fit would not
    /// have chosen, which moves the interval (issue #18). Leave-one-out refits (one point less, near
    /// the optimum) start from the optimum and the 3 points.
    /// Bootstrap: `samples` resamples of the points with replacement (seeded SplitMix64, deterministic,
    /// independent of thread scheduling); with `errors` each resampled loss is also perturbed by
    /// N(0, errors[i]^2) noise (from a separate stream, so the resampling indices do not change).
    /// Intervals are 95% percentile intervals (2.5% / 97.5%, linear interpolation).
    public static func analyse(
        _ points: [LawPoint], errors: [Double]? = nil, samples: Int = 200, seed: UInt64 = 0, fewerStarts: Bool = false
    ) throws -> LawFit {
        if let errors {
            guard errors.count == points.count else {
                throw LawError("errors has \(errors.count) entries but there are \(points.count) points")
            }
            for (i, e) in errors.enumerated() where !(e.isFinite && e >= 0) {
                throw LawError("errors[\(i)] must be a finite standard error >= 0, got \(e)")
            }
        }
        guard samples >= 0 else { throw LawError("samples must be >= 0, got \(samples)") }
        let (params, core, scale) = try fullFit(points)
        let refitStarts = [core.x] + refitGrid
        let bootstrapStarts = fewerStarts ? refitStarts : [core.x] + fullGrid
        let n = points.count

        // leave-one-out
        let looErrors = parallelMap(n) { i -> Double? in
            var rest = points
            rest.remove(at: i)
            guard let f = fitCore(Problem(points: rest, scale: scale), starts: refitStarts) else { return nil }
            let p = parameters(f.x, scale: scale)
            let e = abs(log(p.loss(N: points[i].N, P: points[i].P)) - log(points[i].loss))
            return e.isFinite ? e : nil
        }
        let looValid = looErrors.compactMap { $0 }
        let looError = looValid.isEmpty ? .nan : looValid.reduce(0, +) / Double(looValid.count)

        // bootstrap
        let boot = parallelMap(samples) { b -> LawParameters? in
            var pickRNG = SplitMix64(seed: seed &+ 0x5851_F42D_4C95_7F2D &* UInt64(b + 1))
            var noiseRNG = SplitMix64(seed: (seed ^ 0xD1B5_4A32_D192_ED03) &+ 0x2545_F491_4F6C_DD1D &* UInt64(b + 1))
            var sample: [LawPoint] = []
            sample.reserveCapacity(n)
            for _ in 0..<n {
                let j = pickRNG.below(n)
                var p = points[j]
                if let errors {
                    let z = noiseRNG.normal()
                    // keep the loss positive (log L); practically never binds for sensible se
                    p.loss = max(p.loss + errors[j] * z, 1e-3 * p.loss)
                }
                sample.append(p)
            }
            guard let f = fitCore(Problem(points: sample, scale: scale), starts: bootstrapStarts) else { return nil }
            return parameters(f.x, scale: scale)
        }.compactMap { $0 }

        var intervals: [String: Interval] = [:]
        if boot.count >= 2 {
            func interval(_ key: KeyPath<LawParameters, Double>) -> Interval {
                let v = boot.map { $0[keyPath: key] }.sorted()
                return Interval(low: percentile(v, 0.025), high: percentile(v, 0.975))
            }
            intervals["E"] = interval(\.E)
            intervals["A"] = interval(\.A)
            intervals["alpha"] = interval(\.alpha)
            intervals["k"] = interval(\.k)
        }

        return LawFit(
            parameters: params,
            r2: rSquared(params, points),
            looError: looError,
            intervals: intervals,
            huberObjective: core.value,
            bootstrapSamples: boot.count,
            kAtBoundShare: boot.isEmpty ? 0 : Double(boot.filter { $0.k <= 1e-6 }.count) / Double(boot.count))
    }

    /// Linear-interpolation percentile of sorted values (numpy's default), q in [0, 1].
    static func percentile(_ sorted: [Double], _ q: Double) -> Double {
        if sorted.count == 1 { return sorted[0] }
        let pos = q * Double(sorted.count - 1)
        let lo = Int(pos.rounded(.down))
        let hi = min(lo + 1, sorted.count - 1)
        let frac = pos - Double(lo)
        return sorted[lo] + (sorted[hi] - sorted[lo]) * frac
    }

    /// Deterministic parallel map over 0..<count (each index computed independently).
    static func parallelMap<T>(_ count: Int, _ body: @Sendable (Int) -> T) -> [T] {
        guard count > 0 else { return [] }
        let box = ResultBox<T>(count)
        DispatchQueue.concurrentPerform(iterations: count) { i in
            let v = body(i)
            box.set(i, v)
        }
        return box.items.map { $0! }
    }

    // MARK: CSV

    /// Reads a CSV whose header has columns N, P, loss (any order, case-insensitive, extra columns
    /// ignored) and optionally loss_se. Blank lines and lines starting with '#' are skipped.
    /// Throws `LawError` naming the (1-based) line for bad rows.
    public static func readCSV(_ path: String) throws -> (points: [LawPoint], errors: [Double]?) {
        let text: String
        do {
            text = try String(contentsOfFile: path, encoding: .utf8)
        } catch {
            throw LawError("\(path): cannot read file (\(error.localizedDescription))")
        }
        let lines = text.split(omittingEmptySubsequences: false, whereSeparator: { $0 == "\n" || $0 == "\r\n" })
            .map { $0.hasSuffix("\r") ? String($0.dropLast()) : String($0) }

        func fields(_ line: String) -> [String] {
            line.split(separator: ",", omittingEmptySubsequences: false).map {
                var s = $0.trimmingCharacters(in: .whitespaces)
                if s.count >= 2, s.hasPrefix("\""), s.hasSuffix("\"") { s = String(s.dropFirst().dropLast()) }
                return s
            }
        }
        func skip(_ line: String) -> Bool {
            let t = line.trimmingCharacters(in: .whitespaces)
            return t.isEmpty || t.hasPrefix("#")
        }

        guard let headerIndex = lines.firstIndex(where: { !skip($0) }) else {
            throw LawError("\(path): empty file (expected a header with columns N,P,loss)")
        }
        var header = fields(lines[headerIndex]).map { $0.lowercased() }
        if let first = header.first, first.hasPrefix("\u{FEFF}") { header[0] = String(first.dropFirst()) }
        func column(_ name: String) -> Int? { header.firstIndex(of: name) }
        let missing = ["N", "P", "loss"].filter { column($0.lowercased()) == nil }
        if !missing.isEmpty {
            throw LawError(
                "\(path) line \(headerIndex + 1): missing column\(missing.count > 1 ? "s" : "") \(missing.joined(separator: ", ")) in header '\(lines[headerIndex])' (need N,P,loss; optional loss_se)")
        }
        let iN = column("n")!, iP = column("p")!, iL = column("loss")!
        let iSE = column("loss_se")

        var points: [LawPoint] = []
        var errors: [Double] = []
        for li in (headerIndex + 1)..<lines.count where !skip(lines[li]) {
            let lineNo = li + 1
            let f = fields(lines[li])
            func value(_ idx: Int, _ name: String) throws -> Double {
                guard idx < f.count else {
                    throw LawError("\(path) line \(lineNo): missing value for column \(name) (\(f.count) fields)")
                }
                guard let v = Double(f[idx]), v.isFinite else {
                    throw LawError("\(path) line \(lineNo): column \(name) is not a number: '\(f[idx])'")
                }
                return v
            }
            let N = try value(iN, "N")
            let pValue = try value(iP, "P")
            let loss = try value(iL, "loss")
            guard pValue == pValue.rounded(), abs(pValue) < 1e9 else {
                throw LawError("\(path) line \(lineNo): P must be an integer, got '\(f[iP])'")
            }
            let P = Int(pValue)
            guard P >= 1 else { throw LawError("\(path) line \(lineNo): P must be >= 1, got \(P)") }
            guard N > 0 else { throw LawError("\(path) line \(lineNo): N must be > 0, got \(f[iN])") }
            guard loss > 0 else { throw LawError("\(path) line \(lineNo): loss must be > 0, got \(f[iL])") }
            if let iSE {
                let se = try value(iSE, "loss_se")
                guard se >= 0 else { throw LawError("\(path) line \(lineNo): loss_se must be >= 0, got \(f[iSE])") }
                errors.append(se)
            }
            points.append(LawPoint(N: N, P: P, loss: loss))
        }
        guard points.count >= 5 else {
            throw LawError("\(path): need at least 5 data points to fit E, A, alpha, k; got \(points.count)")
        }
        return (points, iSE == nil ? nil : errors)
    }
}

/// Collects per-index results from concurrent workers (each index is written exactly once).
final class ResultBox<T>: @unchecked Sendable {
    private(set) var items: [T?]
    private let lock = NSLock()
    init(_ n: Int) { items = Array(repeating: nil, count: n) }
    func set(_ i: Int, _ v: T) {
        lock.lock()
        items[i] = v
        lock.unlock()
    }
}
