import ArgumentParser
import Foundation
import ParScale

@main
struct ParScaleCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "parscale",
        abstract: "ParScale: P parallel streams of a Qwen2-style decoder, mixed by a learned aggregation head.",
        discussion: """
            Checkpoints are folders in the official Hugging Face layout (config.json + model.safetensors), \
            interchangeable with the official Qwen2ParScaleForCausalLM code. See README.md.
            """,
        subcommands: [Info.self, Logits.self, Generate.self, Init.self, Pretrain.self, Recycle.self, Merge.self, Eval.self, SweepCommand.self, Fit.self, Cost.self, CostProbe.self, ReportCommand.self, Study.self, Devices.self, Bench.self])
}

/// `--model DIR`, shared by every command that reads a checkpoint.
struct ModelOptions: ParsableArguments {
    @Option(name: .long, help: "Checkpoint folder (config.json + model.safetensors), or a training run folder.")
    var model: String
    @Option(help: "A ParScale adapter (from `recycle --freeze-backbone`) to apply to the P = 1 --model.")
    var adapter: String?

    func load() throws -> ParScaleModel {
        let base = try Checkpoint.load(model, backend: CPUBackend())
        return try adapter.map { try Adapter.apply($0, to: base) } ?? base
    }
}

/// Parses "1,2,3" into token ids, naming the flag on error.
func parseTokenList(_ text: String, flag: String) throws -> [Int32] {
    let parts = text.split(separator: ",", omittingEmptySubsequences: false)
    let ids = parts.map { Int32($0.trimmingCharacters(in: .whitespaces)) }
    guard !parts.isEmpty, ids.allSatisfy({ $0 != nil }) else {
        throw ValidationError("\(flag) expects comma-separated integer token ids like 1,2,3; got '\(text)'")
    }
    return ids.map { $0! }
}

/// One-line JSON for --json outputs.
func printJSON(_ object: Any) {
    let data = try! JSONSerialization.data(withJSONObject: object, options: [.sortedKeys, .withoutEscapingSlashes])
    print(String(decoding: data, as: UTF8.self))
}

func standardError(_ text: String) {
    FileHandle.standardError.write(Data((text + "\n").utf8))
}
