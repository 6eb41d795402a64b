import XCTest

@testable import ParScaleLaw

/// The t distribution's p-values against closed forms (df = 1 is Cauchy, df = 2 has
/// p = 1 - t / sqrt(2 + t^2)) and against SciPy 1.x (`2 * scipy.stats.t.sf(t, df)`, `t.ppf`).
final class StatisticsTests: XCTestCase {
    func testTwoSidedPMatchesClosedForms() {
        for t in [0.1, 0.7, 1.5, 3.1, 9.0] {
            XCTAssertEqual(StudentT.twoSidedP(t: t, df: 1), 1 - 2 / Double.pi * atan(t), accuracy: 1e-12, "df 1, t \(t)")
            XCTAssertEqual(StudentT.twoSidedP(t: t, df: 2), 1 - t / (2 + t * t).squareRoot(), accuracy: 1e-12, "df 2, t \(t)")
            XCTAssertEqual(StudentT.twoSidedP(t: -t, df: 2), StudentT.twoSidedP(t: t, df: 2), "symmetric in t")
        }
        XCTAssertEqual(StudentT.twoSidedP(t: 0, df: 4), 1, accuracy: 1e-12)
        // Large df: the normal distribution's 1.96.
        XCTAssertEqual(StudentT.twoSidedP(t: 1.959964, df: 1e7), 0.05, accuracy: 1e-5)
    }

    func testTwoSidedPMatchesSciPy() {
        let cases: [(t: Double, df: Double, p: Double)] = [
            (2.0, 10, 0.07338803477074037), (3.1, 2, 0.09020073013018871), (0.5, 7.5, 0.6314109646224545),
            (12, 3, 0.0012450158007893362),
        ]
        for c in cases {
            XCTAssertEqual(StudentT.twoSidedP(t: c.t, df: c.df), c.p, accuracy: 1e-9 + 1e-7 * c.p, "t \(c.t), df \(c.df)")
        }
        XCTAssertEqual(StudentT.criticalValue(alpha: 0.05, df: 4), 2.7764451051977934, accuracy: 1e-8)
    }
}
