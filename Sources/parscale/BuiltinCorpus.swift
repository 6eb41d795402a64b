import ArgumentParser
import ParScale
import ParScaleTrain

/// `--corpus`: the built-in data sets, needing no download.
enum BuiltinCorpus: String, ExpressibleByArgument, CaseIterable {
    case synthetic, code

    /// --data wins over --corpus.
    func spec(data: String?, seed: UInt64) -> DataSpec {
        if let data { return .text(data, seed: seed) }
        return self == .code ? .text(TextCorpus.builtinCode, seed: seed) : .synthetic(seed: seed)
    }
}

/// How a model reads `spec`'s data. Synthetic data is bytes (an error for a model with a
/// tokenizer); text goes through `tokenizerFile`, the model folder's tokenizer.json or, for a
/// byte-level model (256 ids) without one, bytes. A model with any other vocabulary and no
/// tokenizer is refused: its ids are not bytes.
func dataEncoding(_ spec: DataSpec, modelDirectory: String?, config: ModelConfig, tokenizerFile: String?) throws -> TextEncoding {
    if spec.kind == "synthetic" && tokenizerFile == nil && !(modelDirectory.map(Tokenizer.exists(inModel:)) ?? false) {
        return .bytes
    }
    return try TextEncoding.forModel(directory: modelDirectory, config: config, tokenizerFile: tokenizerFile)
}
