import ArgumentParser
import ParScale

/// `--model DIR`, shared by every command that reads a checkpoint.
struct ModelOptions: ParsableArguments {
    @Option(name: .long, help: "Checkpoint folder (config.json + model.safetensors or its shards), or a training run folder.")
    var model: String
    @Option(help: "A ParScale adapter (from `recycle --freeze-backbone`) to apply to the P = 1 --model.")
    var adapter: String?
    @OptionGroup var backend: BackendFlag

    func load() throws -> ParScaleModel {
        let base = try Checkpoint.load(model, backend: try backend.make(for: try Checkpoint.loadConfig(model)))
        return try adapter.map { try Adapter.apply($0, to: base) } ?? base
    }
}
