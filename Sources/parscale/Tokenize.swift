import ArgumentParser
import Foundation
import ParScale

struct Tokenize: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Print the token ids of a text as the model reads it (its tokenizer.json, or bytes).",
        discussion: """
            The ids equal those of Hugging Face `tokenizers` for the same tokenizer.json (tested id for id), \
            so they can be compared with any other implementation. --json adds the pieces: the vocabulary \
            strings of the ids, in the byte-level alphabet (a space shows as Ġ, a newline as Ċ).
            """)

    @Option(help: "Model folder (its tokenizer.json, or bytes for a byte-level model).") var model: String?
    @Option(help: "tokenizer.json to use (instead of, or without, --model).") var tokenizer: String?
    @Option(help: "Text to tokenize.") var text: String?
    @Option(help: "UTF-8 file to tokenize.") var file: String?
    @Flag(help: "Print one JSON object {\"ids\": [...], \"pieces\": [...], \"count\": N}.") var json = false

    func validate() throws {
        if model == nil && tokenizer == nil { throw ValidationError("give --model DIR or --tokenizer FILE") }
        if (text == nil) == (file == nil) { throw ValidationError("give exactly one of --text S or --file F") }
    }

    func run() throws {
        let encoding: TextEncoding
        if let model {
            encoding = try TextEncoding.forModel(directory: model, config: Checkpoint.loadConfig(model), tokenizerFile: tokenizer)
        } else {
            encoding = .tokenizer(try Tokenizer(file: tokenizer!))
        }
        var ids: [Int32]
        if let text {
            ids = try encoding.encode(text)
        } else {
            guard let data = FileManager.default.contents(atPath: file!) else {
                throw ValidationError("--file \(file!): cannot read the file")
            }
            switch encoding {
            case .bytes:
                guard String(validating: data, as: UTF8.self) != nil else {
                    throw ValidationError("--file \(file!): not valid UTF-8 text")
                }
                ids = data.map { Int32($0) }
            case .tokenizer(let t):
                do {
                    ids = try [UInt8](data).withUnsafeBufferPointer { try t.encode(utf8: $0, threads: 2) }
                } catch let error as TokenizerError {
                    throw ValidationError("--file \(file!): \(error.message)")
                }
            }
        }
        if json {
            let pieces: [Any] = ids.map { id -> Any in
                switch encoding {
                case .bytes: return String(decoding: [UInt8(id)], as: UTF8.self)
                case .tokenizer(let t): return t.piece(id) ?? NSNull()
                }
            }
            printJSON(["ids": ids.map(Int.init), "pieces": pieces, "count": ids.count])
        } else {
            print(ids.map(String.init).joined(separator: ","))
        }
    }
}
