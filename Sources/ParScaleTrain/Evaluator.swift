import Foundation
import ParScale

/// Results of an evaluation.
public struct Evaluation: Sendable {
    public var validationLoss: Double
    /// Standard error of the mean over the validation windows.
    public var standardError: Double
    /// UTF-8 bytes per token of the validation text (1 for byte-level text).
    public var bytesPerToken: Double = 1
    public var bitsPerByte: Double { validationLoss / log(2) / bytesPerToken }
    public var taskAccuracy: Double?
    public var json: [String: Any] {
        [
            "val_loss": validationLoss, "val_loss_se": standardError, "bits_per_byte": bitsPerByte,
            "task_accuracy": taskAccuracy as Any? ?? NSNull(),
        ]
    }
}

public enum Evaluator {
    /// Mean loss on the fixed validation windows, and for the synthetic corpus the exact-match
    /// accuracy of greedy answers to held-out task prompts.
    public static func evaluate(
        model: ParScaleModel, data: DataSpec, corpus: TokenCorpus?, windows: Int, sequence: Int, taskExamples: Int
    ) throws -> Evaluation {
        let set = try validationWindows(source: data.source, corpus: corpus, count: windows, sequence: sequence)
        var losses: [Double] = []
        let chunk = 8
        for start in stride(from: 0, to: set.count, by: chunk) {
            let part = Array(set[start..<min(set.count, start + chunk)])
            let inputs = part.flatMap { $0.dropLast() }, targets = part.flatMap { $0.dropFirst() }
            losses += try model.sequenceLosses(inputs: inputs, targets: targets, batch: part.count, sequence: sequence)
        }
        let mean = losses.reduce(0, +) / Double(losses.count)
        let variance = losses.reduce(0) { $0 + ($1 - mean) * ($1 - mean) } / Double(max(1, losses.count - 1))
        var accuracy: Double?
        if data.kind == "synthetic" && taskExamples > 0 {
            accuracy = try taskAccuracy(model: model, examples: heldOutTasks(seed: data.seed, count: taskExamples))
        }
        return Evaluation(
            validationLoss: mean, standardError: (variance / Double(losses.count)).squareRoot(),
            bytesPerToken: corpus?.bytesPerToken ?? 1, taskAccuracy: accuracy)
    }

    /// Greedy decoding of each prompt until a newline; exact match of the answer.
    public static func taskAccuracy(model: ParScaleModel, examples: [TaskExample]) throws -> Double {
        var correct = 0
        for example in examples {
            let prompt = ByteTokenizer.encode(example.prompt)
            let limit = example.answer.utf8.count + 8
            let cache = model.makeCache(batch: 1, capacity: prompt.count + limit)
            var logits = try model.forward(tokens: [prompt], cache: cache, logits: .last)
            var answer: [Int32] = []
            for _ in 0..<limit {
                let next = logits.withUnsafeBufferPointer { Sampler.argmax($0) }
                if next == 10 { break }
                answer.append(next)
                if cache.length >= cache.capacity { break }
                logits = try model.forward(tokens: [[next]], cache: cache, logits: .last)
            }
            if ByteTokenizer.decode(answer) == example.answer { correct += 1 }
        }
        return Double(correct) / Double(max(1, examples.count))
    }
}
