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

    /// `decorrelation` λ: the objective is the loss plus λ times the stream decorrelation penalty.
    func check(
        P: Int, tied: Bool, smoothing: Double = 0.1, decorrelation: Double = 0, file: StaticString = #filePath, line: UInt = #line
    ) throws {
        let model = tinyModel(P: P, tied: tied, smoothing: smoothing, seed: UInt64(10 * P + (tied ? 1 : 0)))
        let B = 2, S = 5, V = model.config.vocabSize
        var rng = SeededGenerator(seed: 99)
        let inputs = (0..<B * S).map { _ in Int32(rng.next() % UInt64(V)) }
        let targets = (0..<B * S).map { _ in Int32(rng.next() % UInt64(V)) }
        let grads = model.backend.allocate(model.parameters.count)
        _ = try model.accumulateGradients(
            inputs: inputs, targets: targets, batch: B, sequence: S, gradients: grads, streamDecorrelation: Float(decorrelation))
        func objective() throws -> Double {
            let loss = try model.loss(inputs: inputs, targets: targets, batch: B, sequence: S)
            return decorrelation == 0 ? loss : loss + decorrelation * (try model.streamDecorrelation(inputs: inputs, batch: B, sequence: S))
        }
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
                let up = try objective()
                params[i] = saved - h
                let down = try objective()
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
    // A large λ, so the penalty's share of each gradient is well above the tolerance.
    func testGradientsWithStreamDecorrelationP2() throws { try check(P: 2, tied: false, decorrelation: 3) }
    func testGradientsWithStreamDecorrelationP4() throws { try check(P: 4, tied: true, decorrelation: 3) }

    /// The penalty alone moves the gradient: without it the same check must fail (the test can fail).
    func testStreamDecorrelationChangesTheGradient() throws {
        let model = tinyModel(P: 2, tied: false, smoothing: 0.1, seed: 5)
        let inputs: [Int32] = [1, 2, 3, 4, 5, 6], targets: [Int32] = [2, 3, 4, 5, 6, 7]
        let with = model.backend.allocate(model.parameters.count), without = model.backend.allocate(model.parameters.count)
        _ = try model.accumulateGradients(inputs: inputs, targets: targets, batch: 2, sequence: 3, gradients: with, streamDecorrelation: 3)
        _ = try model.accumulateGradients(inputs: inputs, targets: targets, batch: 2, sequence: 3, gradients: without)
        let penalty = try model.streamDecorrelation(inputs: inputs, batch: 2, sequence: 3)
        XCTAssertGreaterThan(penalty, 0.01)
        let difference = (0..<with.count).map { Double(abs(with.host[$0] - without.host[$0])) }.max()!
        XCTAssertGreaterThan(difference, 1e-3, "λ = 3 must change the gradient")
    }
}

/// The penalty's value on hand-made states: cos^2 of (1, 0) and (1, 1) is 1/2; orthogonal is 0; equal is 1.
final class StreamDecorrelationTests: XCTestCase {
    func penalty(_ x: [Float], P: Int, n: Int, H: Int) -> Double {
        x.withUnsafeBufferPointer { StreamDecorrelationOps.penalty(x: $0.baseAddress!, streams: P, rowsPerStream: n, dim: H, dX: nil, scale: 0) }
    }

    func testPenaltyOnHandMadeStates() {
        XCTAssertEqual(penalty([1, 0, 1, 1], P: 2, n: 1, H: 2), 0.5, accuracy: 1e-12)
        XCTAssertEqual(penalty([1, 0, 0, 3], P: 2, n: 1, H: 2), 0, accuracy: 1e-12)
        XCTAssertEqual(penalty([2, 1, -4, -2], P: 2, n: 1, H: 2), 1, accuracy: 1e-12)
        // Two positions (stream-major rows), the mean of 1/2 and 1; three streams, the mean over 3 pairs.
        XCTAssertEqual(penalty([1, 0, 0, 1, 1, 1, 0, 2], P: 2, n: 2, H: 2), 0.75, accuracy: 1e-12)
        XCTAssertEqual(penalty([1, 0, 0, 1, 1, 1], P: 3, n: 1, H: 2), (0 + 0.5 + 0.5) / 3, accuracy: 1e-12)
    }

    /// A model whose two streams have the same prefixes computes the same states twice: penalty 1.
    /// Distinct prefixes make it smaller.
    func testIdenticalStreamsHavePenaltyOne() throws {
        let model = ParScaleModel.initialized(tinyConfig(P: 2), backend: CPUBackend(), options: InitOptions(seed: 3, prefixStd: 0.5))
        let inputs: [Int32] = (0..<12).map { Int32($0 * 7 % 256) }
        XCTAssertLessThan(try model.streamDecorrelation(inputs: inputs, batch: 2, sequence: 6), 0.999)
        let params = model.parameters.host
        for entry in model.layout.entries where entry.name.hasSuffix("prefix_k") || entry.name.hasSuffix("prefix_v") {
            let half = entry.count / 2  // [P = 2, ...]: stream 1 := stream 0
            for i in 0..<half { params[entry.offset + half + i] = params[entry.offset + i] }
        }
        XCTAssertEqual(try model.streamDecorrelation(inputs: inputs, batch: 2, sequence: 6), 1, accuracy: 1e-6)
    }

    /// More streams than the Vulkan shader holds: a clear error naming the flag, on every backend.
    func testTooManyStreamsIsAnError() throws {
        let P = StreamDecorrelationOps.maxStreams + 1
        let model = ParScaleModel.initialized(tinyConfig(P: P), backend: CPUBackend(), options: InitOptions(seed: 3))
        let inputs: [Int32] = (0..<6).map { Int32($0 * 7 % 256) }
        let grads = model.backend.allocate(model.parameters.count)
        XCTAssertThrowsError(try model.accumulateGradients(
            inputs: inputs, targets: inputs, batch: 1, sequence: 6, gradients: grads, streamDecorrelation: 0.1)
        ) { error in
            XCTAssertTrue("\(error)".contains("--stream-decorrelation supports at most \(P - 1) streams"), "\(error)")
        }
        XCTAssertNoThrow(try model.accumulateGradients(inputs: inputs, targets: inputs, batch: 1, sequence: 6, gradients: grads))
        XCTAssertNil(StreamDecorrelationOps.unsupported(streams: P - 1))
    }
}

/// The prefix reparameterisation's layer op (Ops/PrefixMLP.swift) against central differences.
final class PrefixMLPGradientTests: XCTestCase {
    /// d(sum c * out)/d(x, W, bias) for a tanh layer and an identity layer with a residual; the
    /// gradients start non-zero (the op adds to them).
    func testPrefixMLPGradientsMatchFiniteDifferences() {
        let cpu = CPUBackend()
        var rng = SeededGenerator(seed: 17)
        for shape in [
            PrefixMLPShape(rows: 3, inDim: 5, outDim: 7, tanh: true), PrefixMLPShape(rows: 4, inDim: 6, outDim: 9, tanh: false),
        ] {
            func random(_ n: Int, _ scale: Double = 0.7) -> Tensor {
                let t = cpu.allocate(n)
                for i in 0..<n { t.host[i] = Float(rng.nextNormal() * scale) }
                return t
            }
            let x = random(shape.rows * shape.inDim), w = random(shape.outDim * shape.inDim), b = random(shape.outDim)
            let residual = shape.tanh ? nil : random(shape.rows * shape.outDim)
            let c = random(shape.rows * shape.outDim), out = cpu.allocate(shape.rows * shape.outDim)
            func loss() -> Double {
                cpu.prefixMLP(x, weight: w, bias: b, residual: residual, out: out, shape: shape)
                return (0..<out.count).reduce(0.0) { $0 + Double(out.host[$1]) * Double(c.host[$1]) }
            }
            _ = loss()
            let start: [Float] = [0.25, -0.5, 1]  // what each gradient holds before the op
            let dx = cpu.allocate(x.count), dw = cpu.allocate(w.count), db = cpu.allocate(b.count)
            for (i, g) in [dx, dw, db].enumerated() { cpu.fill(g, value: start[i]) }
            cpu.prefixMLPBackward(dOut: c, input: x, weight: w, output: out, dInput: dx, dWeight: dw, dBias: db, shape: shape)
            var worst = 0.0, checked = 0
            for (i, (tensor, grad)) in [(x, dx), (w, dw), (b, db)].enumerated() {
                for k in 0..<tensor.count {
                    let saved = tensor.host[k], h: Float = 1e-2
                    tensor.host[k] = saved + h
                    let up = loss()
                    tensor.host[k] = saved - h
                    let down = loss()
                    tensor.host[k] = saved
                    let numeric = (up - down) / Double(2 * h), analytic = Double(grad.host[k] - start[i])
                    worst = max(worst, abs(numeric - analytic) / max(1, abs(numeric)))
                    checked += 1
                }
            }
            XCTAssertLessThan(worst, 1e-3, "tanh \(shape.tanh): worst relative gradient error")
            XCTAssertEqual(checked, x.count + w.count + b.count)
        }
    }
}
