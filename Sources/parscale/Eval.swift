import ArgumentParser
import Foundation
import ParScale
import ParScaleTrain

struct Eval: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Validation loss, bits per byte and task accuracy of a checkpoint.",
        discussion: """
            Without --data: the built-in synthetic corpus's held-out split (loss on fixed validation windows, \
            and exact-match accuracy of greedy answers to held-out task prompts). With --data: the validation \
            split of that text (task accuracy is then null).
            """)

    @OptionGroup var options: ModelOptions
    @Option(help: "UTF-8 text file or folder (overrides --corpus), read through the model's tokenizer.json (or as bytes for a byte-level model).") var data: String?
    @Option(help: "Built-in corpus: synthetic or code.") var corpus: BuiltinCorpus = .synthetic
    @Option(help: "tokenizer.json to read the text with instead of the model folder's.") var tokenizer: String?
    @Option(help: "Seed of the synthetic corpus.") var seed: UInt64 = 0
    @Option(help: "Tokens per validation window.") var seq: Int = 128
    @Option(help: "Validation windows.") var windows: Int = 64
    @Option(name: .customLong("task-examples"), help: "Held-out task prompts.") var taskExamples: Int = 100
    @Flag(name: .customLong("stream-similarity"), help: "P > 1: also the mean squared cosine similarity between the streams' final hidden states on the validation windows (what --stream-decorrelation penalises; 1: identical streams, 0: orthogonal).") var streamSimilarity = false
    @Flag(help: "Print one JSON object with val_loss, bits_per_byte, task_accuracy (and stream_cos2).") var json = false

    func run() throws {
        let model = try options.load()
        var spec = corpus.spec(data: data, seed: seed)
        let encoding = try dataEncoding(spec, modelDirectory: options.model, config: model.config, tokenizerFile: tokenizer)
        spec.tokenizer = encoding.tokenizer?.fingerprint
        let text = try spec.corpus(encoding: encoding, cacheDirectory: nil, validationOnly: true, progress: progressLine)
        let e = try Evaluator.evaluate(model: model, data: spec, corpus: text, windows: windows, sequence: seq, taskExamples: taskExamples)
        var similarity: Double?
        if streamSimilarity {
            guard model.config.streams > 1 else {
                throw ValidationError("--stream-similarity needs a model with P > 1; this one has P = \(model.config.streams)")
            }
            let set = try validationWindows(source: spec.source, corpus: text, count: windows, sequence: seq)
            var total = 0.0
            for start in stride(from: 0, to: set.count, by: 8) {
                let part = Array(set[start..<min(set.count, start + 8)])
                total += Double(part.count) * (try model.streamDecorrelation(inputs: part.flatMap { $0.dropLast() }, batch: part.count, sequence: seq))
            }
            similarity = total / Double(max(1, set.count))
        }
        if json {
            var object = e.json
            if let similarity { object["stream_cos2"] = similarity }
            printJSON(object)
        } else {
            print(String(format: "val loss %.4f | %.4f bits/byte", e.validationLoss, e.bitsPerByte)
                + (e.taskAccuracy.map { String(format: " | task accuracy %.1f%% (%d prompts)", 100 * $0, taskExamples) } ?? "")
                + (similarity.map { String(format: " | streams' mean cos^2 %.4f", $0) } ?? ""))
        }
    }
}
