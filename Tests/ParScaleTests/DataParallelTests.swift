import CKernels
import XCTest

@testable import ParScale
import TestSupport

/// The training step split over the cores by sequences (`recordGradientsDataParallel`) against
/// the step with every op split over the cores in turn: the same loss and gradients up to the
/// order of float sums, added to what the gradient buffer held, and the same bits run after run.
/// (The finite-difference checks of `GradientTests` use batch 2, so on two cores they check this
/// path against the loss as well.)
final class DataParallelTests: XCTestCase {
    struct Step { let loss: Double; let gradients: [Float] }

    func step(_ model: ParScaleModel, dataParallel: Bool, B: Int, S: Int, start: [Float], decorrelation: Float = 0) throws -> Step {
        model.dataParallelTraining = dataParallel
        var rng = SeededGenerator(seed: 7)
        let V = UInt64(model.config.vocabSize)
        let inputs = (0..<B * S).map { _ in Int32(rng.next() % V) }, targets = (0..<B * S).map { _ in Int32(rng.next() % V) }
        let grads = model.backend.allocate(model.parameters.count)
        start.withUnsafeBufferPointer { model.backend.upload($0, to: grads) }
        let loss = try model.accumulateGradients(
            inputs: inputs, targets: targets, batch: B, sequence: S, gradients: grads, streamDecorrelation: decorrelation)
        var out = [Float](repeating: 0, count: grads.count)
        out.withUnsafeMutableBufferPointer { model.backend.download(grads, into: $0) }
        return Step(loss: loss, gradients: out)
    }

    func check(P: Int, B: Int, decorrelation: Float = 0, file: StaticString = #filePath, line: UInt = #line) throws {
        guard BLAS.workers > 1 else { try requireOrSkip("one core: training has nothing to split", file: file, line: line) }
        let model = tinyModel(P: P, seed: UInt64(P))
        let S = 9
        // Gradients are added to the buffer: start from something that is not zero.
        var rng = SeededGenerator(seed: 5)
        let start = (0..<model.parameters.count).map { _ in Float(0.01 * rng.nextNormal()) }
        let serial = try step(model, dataParallel: false, B: B, S: S, start: start, decorrelation: decorrelation)
        XCTAssertNil(model.dataParallel, file: file, line: line)
        let split = try step(model, dataParallel: true, B: B, S: S, start: start, decorrelation: decorrelation)
        XCTAssertNotNil(model.dataParallel, "the step did not take the data-parallel path", file: file, line: line)
        let again = try step(model, dataParallel: true, B: B, S: S, start: start, decorrelation: decorrelation)
        XCTAssertEqual(split.gradients, again.gradients, "not the same bits twice", file: file, line: line)
        XCTAssertEqual(split.loss, again.loss, file: file, line: line)

        XCTAssertEqual(split.loss, serial.loss, accuracy: 1e-6 * serial.loss, file: file, line: line)
        let added = zip(serial.gradients, start).map { abs($0 - $1) }.max()!
        XCTAssertGreaterThan(added, 1e-3, file: file, line: line)  // the step did add gradients
        let worst = zip(split.gradients, serial.gradients).map { abs($0 - $1) }.max()!
        XCTAssertLessThan(worst, 1e-5 * added, "P=\(P) B=\(B): largest difference \(worst)", file: file, line: line)
    }

    func testP1() throws { try check(P: 1, B: 2) }
    func testP4TwoSequencesPerCore() throws { try check(P: 4, B: 4) }
    /// The decorrelation penalty is a mean over positions too: each core's share, scaled by 1/parts.
    func testP2WithStreamDecorrelation() throws { try check(P: 2, B: 2, decorrelation: 5) }

    /// The MLP in row blocks (`mlpRowBlocks`, what a core of its own runs) against all rows at once:
    /// the same loss, gradients and logits up to the order of float sums. 16-row blocks of 72 rows
    /// (P = 4, B = 2, S = 9): four whole blocks and a short one.
    func testMLPRowBlocksMatchAllRows() throws {
        let model = tinyModel(P: 4, seed: 11)
        var rng = SeededGenerator(seed: 5)
        let start = (0..<model.parameters.count).map { _ in Float(0.01 * rng.nextNormal()) }
        ps_set_this_thread_serial(1)  // this thread as a data-parallel worker: blocks apply
        defer { ps_set_this_thread_serial(0) }
        XCTAssertEqual(model.mlpRowBlocks(rows: 72).count, 1)
        let whole = try step(model, dataParallel: false, B: 2, S: 9, start: start)
        let tokens: [[Int32]] = [[1, 5, 2, 7, 3], [4, 4, 0, 9, 6]]
        let wholeLogits = try model.forward(tokens: tokens, cache: model.makeCache(batch: 2, capacity: 5))
        model.mlpBlockRows = 16
        XCTAssertEqual(model.mlpRowBlocks(rows: 72).map(\.count), [16, 16, 16, 16, 8])
        let blocked = try step(model, dataParallel: false, B: 2, S: 9, start: start)
        let blockedLogits = try model.forward(tokens: tokens, cache: model.makeCache(batch: 2, capacity: 5))

        XCTAssertEqual(blocked.loss, whole.loss, accuracy: 1e-6 * whole.loss)
        let added = zip(whole.gradients, start).map { abs($0 - $1) }.max()!
        XCTAssertGreaterThan(added, 1e-3)
        let worst = zip(blocked.gradients, whole.gradients).map { abs($0 - $1) }.max()!
        XCTAssertLessThan(worst, 1e-5 * added, "largest gradient difference \(worst)")
        let scale = wholeLogits.map(abs).max()!, worstLogit = zip(blockedLogits, wholeLogits).map { abs($0 - $1) }.max()!
        XCTAssertLessThan(worstLogit, 1e-5 * scale, "largest logit difference \(worstLogit)")
    }

    /// A batch that does not divide over the cores keeps to the one-workspace path, bit for bit.
    func testUnevenBatchStaysSerial() throws {
        guard BLAS.workers == 2 else { try requireOrSkip("the uneven batch is chosen for two cores") }
        let model = tinyModel(P: 2, seed: 3)
        let zero = [Float](repeating: 0, count: model.parameters.count)
        let serial = try step(model, dataParallel: false, B: 3, S: 7, start: zero)
        let split = try step(model, dataParallel: true, B: 3, S: 7, start: zero)
        XCTAssertNil(model.dataParallel)
        XCTAssertEqual(split.gradients, serial.gradients)
        XCTAssertEqual(split.loss, serial.loss)
    }
}
