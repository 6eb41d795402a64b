import Foundation

/// How text becomes a model's token ids and back: the model's own tokenizer (`tokenizer.json`), or
/// UTF-8 bytes (ids 0-255) for the byte-level models this project trains by default.
public enum TextEncoding: @unchecked Sendable {
    case bytes
    case tokenizer(Tokenizer)

    /// For the model in `directory`: `tokenizerFile` when given, else the folder's `tokenizer.json`,
    /// else bytes when the vocabulary has 256 ids. Any other vocabulary without a tokenizer is an
    /// error: its ids are not bytes, and feeding it bytes would be silent garbage.
    public static func forModel(directory: String?, config: ModelConfig, tokenizerFile: String? = nil) throws -> TextEncoding {
        var tokenizer: Tokenizer?
        if let tokenizerFile {
            tokenizer = try Tokenizer(file: tokenizerFile)
        } else if let directory {
            tokenizer = try Tokenizer.load(modelDirectory: Checkpoint.resolve(directory))
        }
        guard let tokenizer else {
            guard config.vocabSize == 256 else {
                throw ConfigError(
                    "\(directory ?? "the model") has a vocabulary of \(config.vocabSize) ids and no tokenizer.json: its ids are not bytes. "
                        + "Pass --tokenizer FILE (the model's tokenizer.json), or give token ids (--prompt-tokens)")
            }
            return .bytes
        }
        guard tokenizer.vocabularySize <= config.vocabSize else {
            throw ConfigError(
                "\(tokenizer.path): the tokenizer makes ids up to \(tokenizer.vocabularySize - 1), but the model's vocab_size is \(config.vocabSize): not this model's tokenizer")
        }
        return .tokenizer(tokenizer)
    }

    public func encode(_ text: String) throws -> [Int32] {
        switch self {
        case .bytes: return ByteTokenizer.encode(text)
        case .tokenizer(let t): return try t.encode(text)
        }
    }

    /// The bytes of `ids`: a token may end inside a UTF-8 sequence (see `TextStreamDecoder`).
    public func decode(_ ids: [Int32]) throws -> [UInt8] {
        switch self {
        case .bytes:
            if let bad = ids.first(where: { !(0..<256).contains($0) }) {
                throw ConfigError("token id \(bad) is not a byte (byte-level models decode ids 0-255)")
            }
            return ids.map { UInt8($0) }
        case .tokenizer(let t): return try t.decode(ids)
        }
    }

    public func decodeText(_ ids: [Int32]) throws -> String { String(decoding: try decode(ids), as: UTF8.self) }

    /// "bytes", or the tokenizer's file and fingerprint: names the encoding in logs and cache keys.
    public var name: String {
        switch self {
        case .bytes: return "bytes"
        case .tokenizer(let t): return "tokenizer \(t.fingerprint)"
        }
    }

    /// Cache key of the encoding: "bytes" or the tokenizer's fingerprint.
    public var fingerprint: String {
        switch self {
        case .bytes: return "bytes"
        case .tokenizer(let t): return t.fingerprint
        }
    }

    public var tokenizer: Tokenizer? {
        if case .tokenizer(let t) = self { return t }
        return nil
    }

    /// Ids that end generation: `eos_token_id` of the folder's generation_config.json (a number or a
    /// list), as transformers' generate uses it; without that file, the tokenizer's end-of-text
    /// tokens (its eos_token, <|endoftext|>, <|im_end|>). None for bytes.
    public func stopIds(modelDirectory: String?) throws -> Set<Int32> {
        guard case .tokenizer(let t) = self else { return [] }
        if let directory = modelDirectory {
            let path = (Checkpoint.resolve(directory) as NSString).appendingPathComponent("generation_config.json")
            if let data = FileManager.default.contents(atPath: path) {
                guard let object = try? JSONSerialization.jsonObject(with: data) as? [String: Any] else {
                    throw ConfigError("\(path): not a JSON object")
                }
                switch object["eos_token_id"] {
                case let n as Int: return [Int32(n)]
                case let list as [Int]: return Set(list.map(Int32.init))
                case nil, is NSNull: break
                default: throw ConfigError("\(path): eos_token_id must be a number or a list of numbers")
                }
            }
        }
        return Set(t.endOfTextIds)
    }
}

/// Turns a stream of decoded bytes into text as it arrives: a token that ends inside a UTF-8
/// sequence waits for the bytes that complete it; bytes that can never be valid are shown as U+FFFD.
public struct TextStreamDecoder {
    private var pending: [UInt8] = []

    public init() {}

    /// The text that `bytes` completes.
    public mutating func push(_ bytes: [UInt8]) -> String {
        pending += bytes
        let complete = Self.completePrefixLength(pending)
        let text = String(decoding: pending[..<complete], as: UTF8.self)
        pending.removeFirst(complete)
        return text
    }

    /// Whatever is left (an incomplete sequence at the end of generation), repaired.
    public mutating func finish() -> String {
        defer { pending.removeAll() }
        return String(decoding: pending, as: UTF8.self)
    }

    /// Length of `bytes` without a trailing sequence that is incomplete but could still become valid.
    static func completePrefixLength(_ bytes: [UInt8]) -> Int {
        let n = bytes.count
        var i = n - 1
        // Walk back over at most 3 continuation bytes to the lead byte of the last sequence.
        while i >= 0 && i >= n - 4 && bytes[i] & 0xC0 == 0x80 { i -= 1 }
        guard i >= 0 && i >= n - 4 else { return n }
        let lead = bytes[i]
        let length: Int
        switch lead {
        case 0xC2...0xDF: length = 2
        case 0xE0...0xEF: length = 3
        case 0xF0...0xF4: length = 4
        default: length = 1  // ASCII, or a byte that never starts a valid sequence
        }
        return n - i < length ? i : n
    }
}

extension Tokenizer {
    /// Whether the model folder (or run folder) holds a tokenizer.json.
    public static func exists(inModel directory: String) -> Bool {
        FileManager.default.fileExists(atPath: (Checkpoint.resolve(directory) as NSString).appendingPathComponent(fileName))
    }
}
