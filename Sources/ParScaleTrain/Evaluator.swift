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
            losses += try model.sequenceLossesOnDevice(inputs: inputs, targets: targets, batch: part.count, sequence: sequence)
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

    /// Exact-match accuracy of the greedy answers (`taskAnswers`).
    public static func taskAccuracy(model: ParScaleModel, examples: [TaskExample], batch: Int = 8) throws -> Double {
        let answers = try taskAnswers(model: model, examples: examples, batch: batch)
        let correct = zip(answers, examples).filter { $0 == $1.answer }.count
        return Double(correct) / Double(max(1, examples.count))
    }

    /// The greedy answer to each prompt: what `Generator.generate` emits before the newline (id 10,
    /// its stop token), at most the answer's length + 8 tokens. Prompts of equal length are decoded
    /// together, up to `batch` at a time; a sequence decoded past its own limit is cut back to it.
    public static func taskAnswers(model: ParScaleModel, examples: [TaskExample], batch: Int = 8) throws -> [String] {
        let prompts = examples.map { ByteTokenizer.encode($0.prompt) }
        let limits = examples.map { $0.answer.utf8.count + 8 }
        var byLength: [Int: [Int]] = [:]
        for (i, prompt) in prompts.enumerated() { byLength[prompt.count, default: []].append(i) }
        var answers = [String](repeating: "", count: examples.count)
        for length in byLength.keys.sorted() {
            let members = byLength[length]!
            for start in stride(from: 0, to: members.count, by: max(1, batch)) {
                let part = Array(members[start..<min(members.count, start + max(1, batch))])
                let result = try Generator.generate(
                    model: model, prompts: part.map { prompts[$0] }, maxNewTokens: part.map { limits[$0] }.max()!,
                    sampling: .greedy, stopIds: [10])
                for (b, i) in part.enumerated() {
                    let tokens = result.tokens[b].prefix(limits[i])
                    answers[i] = ByteTokenizer.decode(Array(tokens.prefix { $0 != 10 }))
                }
            }
        }
        return answers
    }
}
