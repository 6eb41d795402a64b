import Foundation
import FuzzSupport
import ParScale

/// Input: tokenizer.json, optionally followed by this separator and tokenizer_config.json.
let separator = Array("\n=====tokenizer_config.json=====\n".utf8)

/// tokenizer.json (+ tokenizer_config.json): loaded, then a short text encoded and decoded.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let (tokenizer, config) = split(UnsafeBufferPointer(start: data, count: size), at: separator)
    let path = writeInput(tokenizer, as: "tokenizer.json")
    if let config {
        writeInput(config, as: "tokenizer_config.json")
    } else {
        try? FileManager.default.removeItem(atPath: fuzzPath("tokenizer_config.json"))
    }
    expectErrorOrSuccess {
        let t = try Tokenizer(file: path)
        let ids = try t.encode("Hello, world! 123 <|endoftext|> héllo\n\n  x")
        _ = try t.decode(ids)
        _ = t.endOfTextIds
        _ = try? t.decodeText([0, 1, 2, Int32(t.vocabularySize), -1])
    }
    return 0
}
