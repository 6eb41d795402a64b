import XCTest

@testable import ParScale
import TestSupport

/// Backward against central finite differences of the loss, for every parameter tensor.
final class GradientTests: XCTestCase {
    func tinyModel(P: Int, tied: Bool, smoothing: Double, seed: UInt64) -> ParScaleModel {
        let config = tinyConfig(
            P: P, vocab: 23, hidden: 16, intermediate: 24, prefixTokens: 3, tied: tied, smoothing: smoothing)
        let layout = ParameterLayout(config)
        // Every tensor random and non-trivial (norms near 1, non-zero biases and aggregator),
        // large enough that float32 finite differences resolve the gradients.
        var rng = SeededGenerator(seed: seed)
        var host = [Float](repeating: 0, count: layout.totalCount)
        for e in layout.entries {
            let isNorm = e.name.hasSuffix("norm.weight")
            for i in e.offset..<e.offset + e.count {
                host[i] = Float(isNorm ? 1 + 0.2 * rng.nextNormal() : 0.4 * rng.nextNormal())
            }
        }
        let backend = CPUBackend()
        let parameters = backend.allocate(layout.totalCount)
        host.withUnsafeBufferPointer { backend.upload($0, to: parameters) }
        return ParScaleModel(config: config, backend: backend, parameters: parameters)
    }

    func check(P: Int, tied: Bool, smoothing: Double = 0.1, file: StaticString = #filePath, line: UInt = #line) throws {
        let model = tinyModel(P: P, tied: tied, smoothing: smoothing, seed: UInt64(10 * P + (tied ? 1 : 0)))
        let B = 2, S = 5, V = model.config.vocabSize
        var rng = SeededGenerator(seed: 99)
        let inputs = (0..<B * S).map { _ in Int32(rng.next() % UInt64(V)) }
        let targets = (0..<B * S).map { _ in Int32(rng.next() % UInt64(V)) }
        let grads = model.backend.allocate(model.parameters.count)
        _ = try model.accumulateGradients(inputs: inputs, targets: targets, batch: B, sequence: S, gradients: grads)
        let params = model.parameters.host, g = grads.host
        let h: Float = 1e-3
        var checked = 0
        for entry in model.layout.entries {
            var worst = 0.0
            // A few coordinates per tensor, plus its largest-gradient one.
            var coordinates = (0..<4).map { _ in entry.offset + Int(rng.next() % UInt64(entry.count)) }
            coordinates.append((entry.offset..<entry.offset + entry.count).max { abs(g[$0]) < abs(g[$1]) }!)
            for i in coordinates {
                let saved = params[i]
                params[i] = saved + h
                let up = try model.loss(inputs: inputs, targets: targets, batch: B, sequence: S)
                params[i] = saved - h
                let down = try model.loss(inputs: inputs, targets: targets, batch: B, sequence: S)
                params[i] = saved
                let numeric = (up - down) / Double(2 * h)
                let analytic = Double(g[i])
                // 2% of the gradient, plus the float32 noise of a difference quotient with this h
                // (loss noise ~1e-6 / 2h); larger h would add truncation error instead.
                let error = abs(numeric - analytic) / (0.02 * max(abs(numeric), abs(analytic)) + 5e-4)
                worst = max(worst, error)
                checked += 1
            }
            XCTAssertLessThan(worst, 1, "P=\(P) tied=\(tied): gradient of \(entry.name)", file: file, line: line)
        }
        XCTAssertGreaterThan(checked, 5 * 20, file: file, line: line)
    }

    func testGradientsP1Tied() throws { try check(P: 1, tied: true) }
    func testGradientsP1Untied() throws { try check(P: 1, tied: false) }
    func testGradientsP2Untied() throws { try check(P: 2, tied: false) }
    func testGradientsP2TiedNoSmoothing() throws { try check(P: 2, tied: true, smoothing: 0) }
    func testGradientsP4Tied() throws { try check(P: 4, tied: true) }
    func testGradientsP4Untied() throws { try check(P: 4, tied: false) }
}
