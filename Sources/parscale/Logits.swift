import ArgumentParser
import Foundation
import ParScale

struct Logits: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Write the logits of one or more token sequences to a safetensors file.",
        discussion: """
            Each --tokens gives one sequence; all must have the same length. The output has one float32 \
            tensor `logits` of shape [B, T, V] (B sequences, T tokens, V vocabulary), the same as the \
            official model's forward without a cache.
            """)

    @OptionGroup var options: ModelOptions
    @Option(help: "A sequence of token ids, comma-separated (repeat for a batch).") var tokens: [String]
    @Option(help: "Output .safetensors file.") var out: String

    func validate() throws {
        if tokens.isEmpty { throw ValidationError("give at least one --tokens sequence") }
    }

    func run() throws {
        let batch = try tokens.map { try parseTokenList($0, flag: "--tokens") }
        if Set(batch.map(\.count)).count > 1 {
            throw ValidationError(
                "--tokens sequences have unequal lengths \(batch.map(\.count)); all sequences of a batch must have the same length")
        }
        let model = try options.load()
        let cache = try model.makeCache(batch: batch.count, capacity: batch[0].count)
        let logits = try model.forward(tokens: batch, cache: cache)
        try logits.withUnsafeBufferPointer {
            try SafeTensorsWriter.write(
                [.init(name: "logits", dtype: .F32, shape: [batch.count, batch[0].count, model.config.vocabSize], payload: .floats($0))],
                metadata: ["format": "pt"], to: out)
        }
        standardError("wrote logits [\(batch.count), \(batch[0].count), \(model.config.vocabSize)] to \(out)")
    }
}
