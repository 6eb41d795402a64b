import Foundation
import ParScale

/// Where the training text comes from, as saved in a run's state.
public struct DataSpec: Codable, Equatable, Sendable {
    public var kind: String  // "synthetic" or "text"
    public var path: String?
    public var seed: UInt64
    /// Fingerprint of the tokenizer the text is read with (the model folder's tokenizer.json);
    /// nil for byte-level text.
    public var tokenizer: String?
    /// FNV-1a of a text corpus's files (relative paths and contents, `TokenCorpus.contentHash`),
    /// recorded when a run starts, so that a resume on changed data is refused (nil: synthetic data,
    /// or a run saved before the hash was recorded).
    public var contentHash: String?
    public static func synthetic(seed: UInt64) -> DataSpec { DataSpec(kind: "synthetic", path: nil, seed: seed) }
    public static func text(_ path: String, seed: UInt64, tokenizer: String? = nil) -> DataSpec {
        DataSpec(kind: "text", path: path, seed: seed, tokenizer: tokenizer)
    }
    public var source: DataSource {
        kind == "text" ? .text(path: path ?? "") : .synthetic(seed: seed)
    }
    public var description: String {
        kind == "text" ? "text \(path ?? "")\(tokenizer.map { " (tokenizer \($0))" } ?? "")" : "synthetic tasks (seed \(seed))"
    }

    /// The corpus of a text spec (nil for synthetic data), tokenized with `encoding` into
    /// `cacheDirectory` (see TokenCorpus.load). `encoding` must be the one the spec names.
    public func corpus(
        encoding: TextEncoding, cacheDirectory: String?, validationOnly: Bool = false, progress: ((String) -> Void)? = nil
    ) throws -> TokenCorpus? {
        let fingerprint = encoding.tokenizer?.fingerprint
        guard fingerprint == tokenizer else {
            throw DataError(
                "the data was specified for \(tokenizer.map { "tokenizer \($0)" } ?? "byte-level text"), but the model reads "
                    + "\(fingerprint.map { "tokenizer \($0)" } ?? "bytes")")
        }
        guard kind == "text" else {
            if fingerprint != nil {
                throw DataError("the synthetic corpus is byte-level, but this model has a tokenizer: give --data PATH or --corpus code")
            }
            return nil
        }
        return try TokenCorpus.load(
            path: path ?? "", encoding: encoding, cacheDirectory: cacheDirectory, validationOnly: validationOnly, progress: progress)
    }
}
