import XCTest

@testable import ParScaleLaw

/// The closed-form detectable k (`StudyPower`) against simulation with the fitter itself, and its
/// scaling with seeds (SE falls as 1 / sqrt(seeds)).
final class StudyPowerTests: XCTestCase {
    // The small study's sizes (N of hidden 48, 64, 96) and its measured 1M-token noise and slope.
    let N = [106_800.0, 185_408.0, 416_352.0]

    func testClosedFormScalesWithSeedsAndNoise() {
        let a = StudyPower(sizes: 3, streams: [1, 2, 4], seeds: 3, sigma: 0.01, slope: 0.1, source: "test")
        let b = StudyPower(sizes: 3, streams: [1, 2, 4], seeds: 12, sigma: 0.01, slope: 0.1, source: "test")
        let c = StudyPower(sizes: 3, streams: [1, 2, 4], seeds: 3, sigma: 0.02, slope: 0.1, source: "test")
        XCTAssertEqual(b.kStandardError, a.kStandardError / 2, accuracy: 1e-12)
        XCTAssertEqual(c.kStandardError, 2 * a.kStandardError, accuracy: 1e-12)
        // Hand count: ln P = 0, ln 2, ln 4 has sum of squared deviations 2 ln(2)^2 / 3 * ... = (ln 2)^2 * 2.
        let spread = 2 * log(2.0) * log(2.0)
        XCTAssertEqual(a.kStandardError, 0.01 / (0.1 * (9 * spread).squareRoot()) * (Double.pi / 2).squareRoot(), accuracy: 1e-12)
        // ln(1 + k ln P) < k ln P: the detectable k is above the linear (z_a + z_b) SE.
        XCTAssertGreaterThan(a.detectableK, (StudyPower.zAlpha + StudyPower.zPower) * a.kStandardError)
        XCTAssertFalse(StudyPower(sizes: 3, streams: [1], seeds: 3, sigma: 0.01, slope: 0.1, source: "test").detectableK.isFinite)
    }

    /// At the closed form's detectable k the fitter, on simulated studies, finds k above the null's
    /// 97.5th percentile in about 80% of them; at a third of it, far less often. (100 simulated
    /// studies each: the share's own SE is about 0.04.)
    func testDetectableKMatchesSimulationWithTheFitter() {
        let sigma = 0.0106, slope = 0.1
        let power = StudyPower(sizes: 3, streams: [1, 2, 4], seeds: 3, sigma: sigma, slope: slope, source: "test")
        let atK = StudyPower.simulatedPower(N: N, streams: [1, 2, 4], seeds: 3, sigma: sigma, slope: slope, k: power.detectableK, simulations: 100)
        let atThird = StudyPower.simulatedPower(N: N, streams: [1, 2, 4], seeds: 3, sigma: sigma, slope: slope, k: power.detectableK / 3, simulations: 100)
        print(String(format: "detectable k %.4f: simulated power %.2f there, %.2f at a third of it", power.detectableK, atK, atThird))
        XCTAssertEqual(atK, 0.8, accuracy: 0.15, "simulated power at the detectable k \(power.detectableK)")
        XCTAssertLessThan(atThird, 0.5, "simulated power at a third of it")
    }
}
