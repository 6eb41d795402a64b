import Foundation
import XCTest

@testable import ParScale

final class TextEncodingTests: XCTestCase {
    /// Streamed text: a token that ends inside a UTF-8 character waits for the bytes that complete
    /// it, and the concatenation of what is printed is the whole text.
    func testStreamDecoderHoldsIncompleteCharacters() {
        let text = "a é 日本 🙂 z"
        let bytes = Array(text.utf8)
        for chunk in 1...5 {
            var decoder = TextStreamDecoder()
            var printed = "", pieces: [String] = []
            for start in stride(from: 0, to: bytes.count, by: chunk) {
                let piece = decoder.push(Array(bytes[start..<min(bytes.count, start + chunk)]))
                XCTAssertFalse(piece.contains("\u{FFFD}"), "no replacement character mid-stream (chunk \(chunk))")
                pieces.append(piece)
                printed += piece
            }
            printed += decoder.finish()
            XCTAssertEqual(printed, text, "chunk \(chunk)")
        }
        // The emoji's 4 bytes one at a time: nothing until the last one.
        var decoder = TextStreamDecoder()
        let emoji = Array("🙂".utf8)
        XCTAssertEqual(decoder.push([emoji[0]]), "")
        XCTAssertEqual(decoder.push([emoji[1], emoji[2]]), "")
        XCTAssertEqual(decoder.push([emoji[3]]), "🙂")
    }

    /// Bytes that can never be valid are repaired at once (U+FFFD), not held back for ever; an
    /// incomplete sequence left at the end is repaired by finish().
    func testStreamDecoderRepairsInvalidBytes() {
        var decoder = TextStreamDecoder()
        XCTAssertEqual(decoder.push([0x61, 0xFF, 0x62]), "a\u{FFFD}b")
        XCTAssertEqual(decoder.push([0xC3]), "")
        XCTAssertEqual(decoder.push([0x41]), "\u{FFFD}A", "a lead byte followed by ASCII")
        XCTAssertEqual(decoder.push([0xE6, 0x97]), "")
        XCTAssertEqual(decoder.finish(), "\u{FFFD}")
        XCTAssertEqual(decoder.finish(), "")
    }

    /// Byte-level models: ids are bytes; ids past 255 are an error, not garbage text.
    func testByteEncodingRoundTripsAndRefusesNonByteIds() throws {
        let text = "naïve 🙂"
        let ids = try TextEncoding.bytes.encode(text)
        XCTAssertEqual(ids, text.utf8.map { Int32($0) })
        XCTAssertEqual(try TextEncoding.bytes.decodeText(ids), text)
        XCTAssertThrowsError(try TextEncoding.bytes.decode([65, 300]))
        XCTAssertEqual(try TextEncoding.bytes.stopIds(modelDirectory: nil), [])
    }

    /// A model with a vocabulary of 256 and no tokenizer reads bytes; any other vocabulary without
    /// a tokenizer is refused with the remedy.
    func testModelsWithoutTokenizerReadBytesOnlyAt256Ids() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("parscale-enc-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        var config = ModelConfig(
            vocabSize: 256, hiddenSize: 8, intermediateSize: 16, numHiddenLayers: 1, numAttentionHeads: 2, numKeyValueHeads: 1,
            tieWordEmbeddings: true, parscaleN: 1, parscaleNTokens: 8)
        guard case .bytes = try TextEncoding.forModel(directory: dir, config: config) else { return XCTFail("bytes expected") }
        config.vocabSize = 300
        XCTAssertThrowsError(try TextEncoding.forModel(directory: dir, config: config)) { error in
            XCTAssertTrue("\(error)".contains("--tokenizer") && "\(error)".contains("300"), "\(error)")
        }
    }
}
