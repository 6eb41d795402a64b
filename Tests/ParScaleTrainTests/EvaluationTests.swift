import Foundation
import XCTest

@testable import ParScale
@testable import ParScaleTrain
import TestSupport

/// Evaluation computes its losses on the backend (crossEntropySums) and decodes task prompts
/// through the Generator; both give what the host paths they replaced give.
final class EvaluationTests: XCTestCase {
    /// The validation loss and its standard error equal those of the host path (the logits
    /// downloaded, `sequenceLosses`), up to the one float32 rounding of each window's sum.
    func testValidationLossOnTheBackendEqualsTheHostPath() throws {
        let (windows, sequence) = (12, 32)  // a chunk of 8 windows and one of 4
        for P in [1, 2] {
            let model = tinyModel(P: P)
            let data = DataSpec.synthetic(seed: 3)
            let e = try Evaluator.evaluate(model: model, data: data, corpus: nil, windows: windows, sequence: sequence, taskExamples: 0)
            // The host path, as Evaluator.evaluate computed it before.
            let set = try validationWindows(source: data.source, corpus: nil, count: windows, sequence: sequence)
            var host: [Double] = [], device: [Double] = []
            for start in stride(from: 0, to: set.count, by: 8) {
                let part = Array(set[start..<min(set.count, start + 8)])
                let inputs = part.flatMap { $0.dropLast() }, targets = part.flatMap { $0.dropFirst() }
                host += try model.sequenceLosses(inputs: inputs, targets: targets, batch: part.count, sequence: sequence)
                device += try model.sequenceLossesOnDevice(inputs: inputs, targets: targets, batch: part.count, sequence: sequence)
            }
            for (d, h) in zip(device, host) {
                XCTAssertEqual(d, h, accuracy: 0x1p-24 * h, "P=\(P): one float32 rounding of the window's sum")
            }
            let mean = host.reduce(0, +) / Double(host.count)
            let variance = host.reduce(0) { $0 + ($1 - mean) * ($1 - mean) } / Double(host.count - 1)
            let se = (variance / Double(host.count)).squareRoot()
            XCTAssertEqual(e.validationLoss, mean, accuracy: 1e-6 * mean, "P=\(P)")
            XCTAssertEqual(e.standardError, se, accuracy: 1e-6 * mean, "P=\(P)")
            XCTAssertLessThan(abs(e.validationLoss - mean) / mean, 1.2e-7, "P=\(P)")
        }
    }

    /// Greedy answers through `Generator.generate` (newline as the stop token, prompts of equal
    /// length batched) equal those of the per-prompt greedy loop evaluation used before, on a
    /// model that has learnt some of the synthetic corpus.
    func testTaskAnswersThroughTheGeneratorEqualTheGreedyLoop() throws {
        let model = tinyModel(P: 2)
        var o = shortRunOptions(steps: 400, batch: 8, sequence: 64, evalWindows: 2, learningRate: 1e-2)
        o.evalEvery = 1000
        try Trainer.start(runDirectory: temporaryFolder().path, model: model, options: o).run()
        let examples = heldOutTasks(seed: 0, count: 24)
        let reference = try examples.map { try greedyLoopAnswer(model: model, example: $0) }
        XCTAssertGreaterThan(Set(examples.map { $0.prompt.utf8.count }).count, 1, "prompts of several lengths")
        XCTAssertLessThan(Set(examples.map { $0.prompt.utf8.count }).count, examples.count, "some of equal length")
        XCTAssertTrue(reference.contains { !$0.isEmpty }, "the trained model answers something")
        for batch in [1, 8] {
            XCTAssertEqual(try Evaluator.taskAnswers(model: model, examples: examples, batch: batch), reference, "batch \(batch)")
        }
        // A tiny model gets few answers right: make every third example's expected answer the
        // model's own greedy one (the others wrong), so that accuracy counts something.
        let marked = examples.enumerated().map { i, e in
            TaskExample(task: e.task, prompt: e.prompt, answer: i % 3 == 0 ? reference[i] : e.answer + "x")
        }
        let loopAccuracy = try Double(marked.filter { try greedyLoopAnswer(model: model, example: $0) == $0.answer }.count)
            / Double(marked.count)
        XCTAssertGreaterThan(loopAccuracy, 0, "answers that end with a newline count")
        for batch in [1, 8] {
            XCTAssertEqual(try Evaluator.taskAccuracy(model: model, examples: marked, batch: batch), loopAccuracy, "batch \(batch)")
        }
    }

    /// The loop Evaluator.taskAccuracy ran before: batch 1, its own cache, argmax until a newline.
    private func greedyLoopAnswer(model: ParScaleModel, example: TaskExample) throws -> String {
        let prompt = ByteTokenizer.encode(example.prompt)
        let limit = example.answer.utf8.count + 8
        let cache = try model.makeCache(batch: 1, capacity: prompt.count + limit)
        var logits = try model.forward(tokens: [prompt], cache: cache, logits: .last)
        var answer: [Int32] = []
        for _ in 0..<limit {
            let next = logits.withUnsafeBufferPointer { Sampler.argmax($0) }
            if next == 10 { break }
            answer.append(next)
            if cache.length >= cache.capacity { break }
            logits = try model.forward(tokens: [[next]], cache: cache, logits: .last)
        }
        return ByteTokenizer.decode(answer)
    }
}
