import Foundation
import XCTest

@testable import ParScaleLaw
import TestSupport

/// The paper's measured losses, copied from `parametric_fit.py` in github.com/QwenLM/ParScale
/// (HEAD, blob eb536c99e02e793305a75d77af2f9e57b4f4a6cf): non-embedding parameters per P row
/// (N grows slightly with P because of the prefix/aggregation parameters) and final losses for
/// Stack-V2-Python and Pile, P in {1, 2, 4, 8}, six model sizes each (0.5B .. 4.4B).
enum PaperData {
    static let params: [[Double]] = [
        [535813376, 693753856, 1088376320, 1571472384, 2774773760, 4353203200],
        [538195842, 696738818, 1092762882, 1577522690, 2784937986, 4368529922],
        [540577412, 699722756, 1097148164, 1583571460, 2795100164, 4383854084],
        [545340552, 705690632, 1105918728, 1595669000, 2815424520, 4414502408],
    ]
    static let stackLoss: [[Double]] = [
        [1.1722, 1.1496, 1.1131, 1.0817, 1.0451, 1.0213],  // P1 (the script comments out a 7th, 1.0006)
        [1.1507, 1.1262, 1.094, 1.0623, 1.0244, 1.0025],  // P2
        [1.1354, 1.1124, 1.0808, 1.049, 1.0126, 0.9906],  // P4
        [1.1231, 1.0997, 1.0688, 1.0383, 1.0016, 0.9794],  // P8
    ]
    static let pileLoss: [[Double]] = [
        [2.1113, 2.0671, 2.0027, 1.9539, 1.8876, 1.8451],  // P1
        [2.0772, 2.0363, 1.973, 1.9266, 1.861, 1.8137],  // P2
        [2.0544, 2.0128, 1.9509, 1.904, 1.8394, 1.7938],  // P4
        [2.0364, 1.9933, 1.9318, 1.8856, 1.8218, 1.7772],  // P8
    ]
    static let ps = [1, 2, 4, 8]

    static func points(_ loss: [[Double]]) -> [LawPoint] {
        var out: [LawPoint] = []
        for (row, p) in ps.enumerated() {
            for col in 0..<6 { out.append(LawPoint(N: params[row][col], P: p, loss: loss[row][col])) }
        }
        return out
    }
    static var stack: [LawPoint] { points(stackLoss) }
    static var pile: [LawPoint] { points(pileLoss) }

    // What the official script prints (scipy 1.17.1 / numpy 2.4.6), A converted from the script's
    // A' (units of 1e9) to parameters: best_param and r2.
    static let scriptStack = LawParameters(E: 0.6912948539213194, A: 0.011307221677456574e9, alpha: 0.18940452983129372, k: 0.3934265637638641)
    static let scriptStackObjective = 3.676742091742106e-05
    static let scriptStackR2 = 0.9978328141558626
    static let scriptPile = LawParameters(E: 1.2888503644008165, A: 0.19727911921129535e9, alpha: 0.19636257226128623, k: 0.33443087817985273)
    static let scriptPileObjective = 1.8139351180548875e-05
    static let scriptPileR2 = 0.9986757300507243
}

final class FitTests: XCTestCase {
    static let truth = LawParameters(E: 1.5, A: 2e7, alpha: 0.3, k: 0.4)
    static let sizes: [Double] = [5e5, 1e6, 2e6, 5e6, 1e7, 2e7, 5e7]

    /// 7 sizes x P in {1,2,4,8} = 28 points from `truth`; with `noise` > 0 each loss gets seeded
    /// Gaussian noise of that standard deviation (absolute, in loss units).
    static func synthetic(noise: Double = 0, seed: UInt64 = 42) -> [LawPoint] {
        var rng = SplitMix64(seed: seed)
        var out: [LawPoint] = []
        for N in sizes {
            for P in [1, 2, 4, 8] {
                let L = truth.loss(N: N, P: P) + (noise > 0 ? noise * rng.normal() : 0)
                out.append(LawPoint(N: N, P: P, loss: L))
            }
        }
        return out
    }

    static func relErr(_ a: Double, _ b: Double) -> Double { abs(a - b) / abs(b) }

    // MARK: 1. synthetic recovery

    func testRecoversKnownConstantsNoiseFree() throws {
        let pts = Self.synthetic()
        let p = try LawFitter.fit(pts)
        let t = Self.truth
        XCTAssertLessThan(Self.relErr(p.E, t.E), 1e-5, "E \(p.E)")
        XCTAssertLessThan(Self.relErr(p.A, t.A), 1e-4, "A \(p.A)")
        XCTAssertLessThan(Self.relErr(p.alpha, t.alpha), 1e-5, "alpha \(p.alpha)")
        XCTAssertLessThan(Self.relErr(p.k, t.k), 1e-5, "k \(p.k)")
        // the law itself
        XCTAssertEqual(t.loss(N: 2e7, P: 1), 1.5 + 1.0, accuracy: 1e-12)
        XCTAssertEqual(t.equivalentN(N: 1e6, P: 4), 1e6 * (1 + 0.4 * log(4.0)), accuracy: 1e-6)
        XCTAssertEqual(t.loss(N: 1e6, P: 4), t.loss(N: t.equivalentN(N: 1e6, P: 4), P: 1), accuracy: 1e-12)
    }

    func testRecoversKnownConstantsNoisyWithIntervals() throws {
        let sd = 0.002
        let pts = Self.synthetic(noise: sd, seed: 7)
        let fit = try LawFitter.analyse(pts, errors: Array(repeating: sd, count: pts.count), samples: 200, seed: 1, fewerStarts: true)
        let p = fit.parameters
        let t = Self.truth
        print("noisy synthetic fit:", p, "intervals:", fit.intervals.sorted { $0.key < $1.key }.map { "\($0.key)=[\($0.value.low), \($0.value.high)]" })
        XCTAssertLessThan(Self.relErr(p.E, t.E), 0.05, "E \(p.E)")
        XCTAssertLessThan(Self.relErr(p.A, t.A), 0.5, "A \(p.A)")
        XCTAssertLessThan(Self.relErr(p.alpha, t.alpha), 0.1, "alpha \(p.alpha)")
        XCTAssertLessThan(Self.relErr(p.k, t.k), 0.05, "k \(p.k)")
        XCTAssertEqual(fit.bootstrapSamples, 200)
        for (name, value) in [("E", t.E), ("A", t.A), ("alpha", t.alpha), ("k", t.k)] {
            let iv = try XCTUnwrap(fit.intervals[name], name)
            XCTAssertTrue(iv.contains(value), "\(name): truth \(value) outside [\(iv.low), \(iv.high)]")
            XCTAssertLessThan(iv.low, iv.high, name)
        }
        // ... and the intervals are informative, not arbitrarily wide
        XCTAssertLessThan(try XCTUnwrap(fit.intervals["k"]).width, 0.1)
        XCTAssertLessThan(try XCTUnwrap(fit.intervals["E"]).width, 0.3)
    }

    // MARK: 2. the paper's published losses

    /// Our fit of a published data set: the paper's k, the script's parameters, an optimum at
    /// least as good as scipy's, and the script's R^2.
    func checkPaperFit(
        _ name: String, _ pts: [LawPoint], paperK: Double, script: LawParameters, scriptObjective: Double, scriptR2: Double,
        minR2: Double, file: StaticString = #filePath, line: UInt = #line
    ) throws {
        let p = try LawFitter.fit(pts)
        let obj = LawFitter.huberObjective(p, pts)
        let r2 = LawFitter.rSquared(p, pts)
        print("\(name):", p, "objective", obj, "R2", r2)
        XCTAssertEqual(p.k, paperK, accuracy: 0.02, file: file, line: line)
        XCTAssertEqual(p.k, script.k, accuracy: 0.005, file: file, line: line)
        XCTAssertEqual(p.alpha, script.alpha, accuracy: 0.01, file: file, line: line)
        XCTAssertEqual(p.E, script.E, accuracy: 0.05, file: file, line: line)
        XCTAssertLessThanOrEqual(obj, scriptObjective * (1 + 1e-6), file: file, line: line)
        XCTAssertEqual(r2, scriptR2, accuracy: 5e-4, file: file, line: line)
        XCTAssertGreaterThan(r2, minR2, file: file, line: line)
    }

    func testPaperStackV2Python() throws {
        XCTAssertEqual(PaperData.stack.count, 24)
        // paper: k ~= 0.39; the script prints k = 0.3934
        try checkPaperFit(
            "Stack-V2-Python", PaperData.stack, paperK: 0.39, script: PaperData.scriptStack,
            scriptObjective: PaperData.scriptStackObjective, scriptR2: PaperData.scriptStackR2, minR2: 0.997)
    }

    func testPaperPile() throws {
        // paper: k ~= 0.33; the script prints k = 0.3344
        try checkPaperFit(
            "Pile", PaperData.pile, paperK: 0.33, script: PaperData.scriptPile, scriptObjective: PaperData.scriptPileObjective,
            scriptR2: PaperData.scriptPileR2, minR2: 0.998)
    }

    /// The script's own optimum evaluates, under our objective, to the objective the script prints,
    /// i.e. our law/objective/units are the script's.
    func testObjectiveMatchesScript() {
        XCTAssertEqual(LawFitter.huberObjective(PaperData.scriptStack, PaperData.stack), PaperData.scriptStackObjective, accuracy: 1e-10)
        XCTAssertEqual(LawFitter.huberObjective(PaperData.scriptPile, PaperData.pile), PaperData.scriptPileObjective, accuracy: 1e-10)
        XCTAssertEqual(LawFitter.rSquared(PaperData.scriptStack, PaperData.stack), PaperData.scriptStackR2, accuracy: 1e-9)
        XCTAssertEqual(LawFitter.rSquared(PaperData.scriptPile, PaperData.pile), PaperData.scriptPileR2, accuracy: 1e-9)
    }

    /// Full analyse on the paper data: timing (200 bootstrap samples, 24 points), determinism,
    /// and per-point standard errors widening the intervals.
    func testPaperAnalyseBootstrapDeterministicAndNoiseWidens() throws {
        let pts = PaperData.stack
        let a = try LawFitter.analyse(pts, samples: 200, seed: 3, fewerStarts: true)
        XCTAssertEqual(a.bootstrapSamples, 200)
        XCTAssertEqual(a.huberObjective, LawFitter.huberObjective(a.parameters, pts), accuracy: 1e-12)
        let kIv = try XCTUnwrap(a.intervals["k"])
        XCTAssertTrue(kIv.contains(a.parameters.k))
        XCTAssertTrue(kIv.contains(0.39), "k interval \(kIv)")

        let b = try LawFitter.analyse(pts, samples: 200, seed: 3, fewerStarts: true)
        XCTAssertEqual(a.intervals["k"], b.intervals["k"])
        XCTAssertEqual(a.intervals["E"], b.intervals["E"])
        XCTAssertEqual(a.looError, b.looError)
        let c = try LawFitter.analyse(pts, samples: 200, seed: 4, fewerStarts: true)
        XCTAssertNotEqual(a.intervals["k"], c.intervals["k"])

        // seed noise of sd 0.005 (larger than the fit residuals) must widen every interval
        let noisy = try LawFitter.analyse(pts, errors: Array(repeating: 0.005, count: pts.count), samples: 200, seed: 3, fewerStarts: true)
        XCTAssertEqual(noisy.parameters, a.parameters)
        for name in ["E", "A", "alpha", "k"] {
            let w0 = try XCTUnwrap(a.intervals[name]).width
            let w1 = try XCTUnwrap(noisy.intervals[name]).width
            XCTAssertGreaterThan(w1, w0, name)
        }
        XCTAssertThrowsError(try LawFitter.analyse(pts, errors: [0.1], samples: 10))
    }

    // MARK: 3. CSV

    func tempFile(_ contents: String) throws -> String {
        let path = temporaryFolder().appendingPathComponent("points.csv").path
        try contents.write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    func testReadCSVGood() throws {
        let csv = """
            # measured losses
            model,loss,P,N,loss_se
            a,1.1722,1,535813376,0.001
            b,1.1507,2,538195842,0.002\r
            c,1.1354,4,540577412,0.001

            d,1.1231,8,545340552,0.003
            e,1.1496,1,693753856,0
            """
        let (pts, errs) = try LawFitter.readCSV(try tempFile(csv))
        XCTAssertEqual(pts.count, 5)
        XCTAssertEqual(pts[0], LawPoint(N: 535813376, P: 1, loss: 1.1722))
        XCTAssertEqual(pts[3], LawPoint(N: 545340552, P: 8, loss: 1.1231))
        XCTAssertEqual(errs, [0.001, 0.002, 0.001, 0.003, 0])

        let plain = "N,P,loss\n1e6,1,3\n2e6,1,2.9\n1e6,2,2.95\n2e6,2,2.85\n4e6,4,2.7\n"
        let (pts2, errs2) = try LawFitter.readCSV(try tempFile(plain))
        XCTAssertEqual(pts2.count, 5)
        XCTAssertNil(errs2)
        XCTAssertEqual(pts2[4], LawPoint(N: 4e6, P: 4, loss: 2.7))
    }

    func assertLawError(_ csv: String, contains needles: [String], file: StaticString = #filePath, line: UInt = #line) throws {
        let path = try tempFile(csv)
        XCTAssertThrowsError(try LawFitter.readCSV(path), file: file, line: line) { error in
            guard let e = error as? LawError else { return XCTFail("not a LawError: \(error)", file: file, line: line) }
            for n in needles {
                XCTAssertTrue(e.message.contains(n), "'\(e.message)' lacks '\(n)'", file: file, line: line)
            }
            XCTAssertEqual(e.description, e.message, file: file, line: line)
        }
    }

    func testReadCSVErrors() throws {
        let rows = "1e6,1,3\n2e6,1,2.9\n1e6,2,2.95\n2e6,2,2.85\n4e6,4,2.7\n"
        try assertLawError("N,P,value\n" + rows, contains: ["missing column", "loss", "line 1"])
        try assertLawError("N,loss\n1e6,3\n", contains: ["missing column", "P"])
        try assertLawError("N,P,loss\n1e6,1,3\n2e6,1,2.9\n1e6,2,abc\n2e6,2,2.85\n4e6,4,2.7\n", contains: ["line 4", "loss", "abc", "not a number"])
        try assertLawError("N,P,loss\n1e6,1,3\nx,1,2.9\n", contains: ["line 3", "N"])
        try assertLawError("N,P,loss\n1e6,1,3\n2e6,0,2.9\n", contains: ["line 3", "P must be >= 1"])
        try assertLawError("N,P,loss\n1e6,1,3\n2e6,1.5,2.9\n", contains: ["line 3", "integer"])
        try assertLawError("N,P,loss\n-1e6,1,3\n", contains: ["line 2", "N must be > 0"])
        try assertLawError("N,P,loss\n1e6,1,0\n", contains: ["line 2", "loss must be > 0"])
        try assertLawError("N,P,loss\n1e6,1\n", contains: ["line 2", "loss"])
        try assertLawError("N,P,loss\n1e6,1,3\n2e6,1,2.9\n", contains: ["at least 5", "got 2"])
        try assertLawError("N,P,loss,loss_se\n1e6,1,3,-1\n", contains: ["line 2", "loss_se"])
        try assertLawError("", contains: ["empty"])
        XCTAssertThrowsError(try LawFitter.readCSV("/nonexistent/nowhere.csv"))
        // fit also refuses too few / invalid points
        XCTAssertThrowsError(try LawFitter.fit(Array(Self.synthetic().prefix(4))))
        XCTAssertThrowsError(try LawFitter.fit(Self.synthetic() + [LawPoint(N: 1e6, P: 0, loss: 2)]))
    }

    /// The share of bootstrap refits (from the main fit's 300 starts) with k at its bound: most of
    /// them when the data have no P effect, none when k = 0.4 is clear of the noise.
    func testBootstrapReportsTheShareOfRefitsAtKsBound() throws {
        var rng = SplitMix64(seed: 5)
        var flat = Self.synthetic()
        for i in flat.indices { flat[i].loss = Self.truth.loss(N: flat[i].N, P: 1) + 0.002 * rng.normal() }
        let noEffect = try LawFitter.analyse(flat, samples: 6, seed: 1)
        let clear = try LawFitter.analyse(Self.synthetic(noise: 0.002, seed: 7), samples: 6, seed: 1)
        XCTAssertEqual(noEffect.bootstrapSamples, 6)
        XCTAssertGreaterThan(noEffect.kAtBoundShare, 0.2, "no P effect: k \(noEffect.parameters.k)")
        XCTAssertEqual(clear.kAtBoundShare, 0)
    }

    // MARK: 4. R^2 and leave-one-out

    func testR2AndLeaveOneOutSane() throws {
        let clean = try LawFitter.analyse(Self.synthetic(), samples: 20, seed: 0, fewerStarts: true)
        XCTAssertGreaterThan(clean.r2, 0.99)
        XCTAssertEqual(clean.r2, 1, accuracy: 1e-8)
        XCTAssertLessThan(clean.looError, 1e-5)
        XCTAssertLessThan(clean.huberObjective, 1e-12)

        let sd = 0.002
        let noisyPts = Self.synthetic(noise: sd, seed: 7)
        let noisy = try LawFitter.analyse(noisyPts, samples: 20, seed: 0, fewerStarts: true)
        XCTAssertGreaterThan(noisy.r2, 0.99)
        XCTAssertLessThan(noisy.r2, 1)
        // LOO error is of the order of the relative noise (sd / L ~ 0.0007), and above the clean one
        XCTAssertGreaterThan(noisy.looError, clean.looError)
        XCTAssertGreaterThan(noisy.looError, 1e-4)
        XCTAssertLessThan(noisy.looError, 5e-3)
        // and at least the in-sample error
        let inSample = noisyPts.map { abs(log(noisy.parameters.loss(N: $0.N, P: $0.P)) - log($0.loss)) }.reduce(0, +) / Double(noisyPts.count)
        XCTAssertGreaterThanOrEqual(noisy.looError, inSample)

        // a law that ignores the data gives a poor R^2
        let bad = LawParameters(E: 1.5, A: 2e7, alpha: 0.3, k: 0)
        XCTAssertLessThan(LawFitter.rSquared(bad, Self.synthetic()), 0.99)
    }

    // MARK: optimiser

    func testBoxLBFGS() {
        let opt = BoxLBFGS()
        // Rosenbrock, unconstrained
        let rosen = opt.minimize(x0: [-1.2, 1], lower: [-.infinity, -.infinity], upper: [.infinity, .infinity]) { x, g in
            let a = 1 - x[0], b = x[1] - x[0] * x[0]
            g[0] = -2 * a - 400 * x[0] * b
            g[1] = 200 * b
            return a * a + 100 * b * b
        }
        XCTAssertEqual(rosen.x[0], 1, accuracy: 1e-6)
        XCTAssertEqual(rosen.x[1], 1, accuracy: 1e-6)
        // bound-constrained quadratic: minimum of (x-2)^2 + (y+1)^2 + xy on [0,1] x [0,5] is (1, 0)
        let box = opt.minimize(x0: [0.5, 3], lower: [0, 0], upper: [1, 5]) { x, g in
            g[0] = 2 * (x[0] - 2) + x[1]
            g[1] = 2 * (x[1] + 1) + x[0]
            return (x[0] - 2) * (x[0] - 2) + (x[1] + 1) * (x[1] + 1) + x[0] * x[1]
        }
        XCTAssertEqual(box.x, [1, 0])
        // a start outside the box is projected first
        let proj = opt.minimize(x0: [-5], lower: [1e-8], upper: [.infinity]) { x, g in
            g[0] = 2 * (x[0] - 3)
            return (x[0] - 3) * (x[0] - 3)
        }
        XCTAssertEqual(proj.x[0], 3, accuracy: 1e-8)
    }
}
