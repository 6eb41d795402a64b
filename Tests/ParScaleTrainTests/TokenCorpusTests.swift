import Foundation
import XCTest

@testable import ParScale
@testable import ParScaleTrain
import TestSupport

/// Text read through a model's tokenizer: the ids are the tokenizer's, file by file, made once into
/// a memory-mapped cache keyed by the tokenizer and the data.
final class TokenCorpusTests: XCTestCase {
    static let fixture = TestPaths.fixtures.appendingPathComponent("hf-qwen2")
    var model: String { Self.fixture.appendingPathComponent("model").path }
    var data: String { Self.fixture.appendingPathComponent("data").path }

    func testTokenizedCorpusHoldsTheTokenizersIdsOfEachFileAndIsCached() throws {
        let tokenizer = try XCTUnwrap(try Tokenizer.load(modelDirectory: model))
        let encoding = TextEncoding.tokenizer(tokenizer)
        // A copy of the fixture's text with enough files for a split by file.
        let source = temporaryFolder().path
        let parts = try FileManager.default.contentsOfDirectory(atPath: data).sorted()
        var texts: [String: String] = [:]
        for i in 0..<40 {
            let part = parts[i % parts.count]
            let text = try String(contentsOfFile: data + "/" + part, encoding: .utf8)
            let slice = String(text.prefix(2_000 + 97 * i)) + " ünïcödé \(i)"
            texts["f\(i).txt"] = slice
            try slice.write(toFile: source + "/f\(i).txt", atomically: true, encoding: .utf8)
        }
        let cache = temporaryFolder().path
        var lines: [String] = []
        let corpus = try TokenCorpus.load(path: source, encoding: encoding, cacheDirectory: cache, minimumBytes: 256) { lines.append($0) }
        XCTAssertTrue(lines.last?.contains("done") ?? false, "\(lines)")
        // Expected: each file (and its "\n") encoded on its own, in sorted path order, by the file's split.
        var train: [Int32] = [], validation: [Int32] = [], validationBytes = 0
        for name in texts.keys.sorted(by: { $0.utf8.lexicographicallyPrecedes($1.utf8) }) {
            let ids = try tokenizer.encode(texts[name]! + "\n")
            if FNV1a.hash(name.utf8) % 20 == 0 {
                validation += ids
                validationBytes += texts[name]!.utf8.count + 1
            } else {
                train += ids
            }
        }
        XCTAssertFalse(validation.isEmpty, "the names give a validation side")
        XCTAssertEqual(corpus.train.slice(0, corpus.train.count), train)
        XCTAssertEqual(corpus.validation.slice(0, corpus.validation.count), validation)
        XCTAssertEqual(corpus.validationBytes, validationBytes)
        XCTAssertGreaterThan(corpus.bytesPerToken, 1.5)
        XCTAssertEqual(corpus.encoding, tokenizer.fingerprint)

        // Evaluation tokenizes the validation files only.
        let validationOnly = try TokenCorpus.load(path: source, encoding: encoding, cacheDirectory: nil, minimumBytes: 256, validationOnly: true)
        XCTAssertEqual(validationOnly.train.count, 0)
        XCTAssertEqual(validationOnly.validation.slice(0, validationOnly.validation.count), validation)

        // A second load maps the same cache: no new files, same ids.
        let before = try FileManager.default.contentsOfDirectory(atPath: cache).sorted()
        XCTAssertEqual(before.count, 3, "\(before)")
        let again = try TokenCorpus.load(path: source, encoding: encoding, cacheDirectory: cache, minimumBytes: 256)
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: cache).sorted(), before)
        XCTAssertEqual(again.train.slice(0, again.train.count), train)

        // Changed data gets a cache of its own (keyed by content), never the stale ids.
        try (texts["f3.txt"]! + " changed").write(toFile: source + "/f3.txt", atomically: true, encoding: .utf8)
        let changed = try TokenCorpus.load(path: source, encoding: encoding, cacheDirectory: cache, minimumBytes: 256)
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: cache).count, 6)
        XCTAssertNotEqual(changed.train.count, train.count)
    }

    /// One file: the split is the byte corpus's (the last 5%), each side tokenized.
    func testSingleFileSplitsLikeTheByteCorpus() throws {
        let tokenizer = try XCTUnwrap(try Tokenizer.load(modelDirectory: model))
        let file = data + "/part0.txt"
        let bytes = try TextCorpus(path: file)
        let corpus = try TokenCorpus.load(path: file, encoding: .tokenizer(tokenizer), cacheDirectory: nil)
        XCTAssertEqual(corpus.train.slice(0, corpus.train.count), try tokenizer.encode(String(decoding: bytes.train, as: UTF8.self)))
        XCTAssertEqual(corpus.validation.slice(0, corpus.validation.count), try tokenizer.encode(String(decoding: bytes.validation, as: UTF8.self)))
        // Byte-level encoding keeps the byte corpus exactly.
        let asBytes = try TokenCorpus.load(path: file, encoding: .bytes, cacheDirectory: nil)
        XCTAssertEqual(asBytes.train.slice(0, asBytes.train.count), bytes.train.map { Int32($0) })
        XCTAssertEqual(asBytes.bytesPerToken, 1)
    }

    func testSyntheticDataWithATokenizerAndAMismatchedTokenizerAreRefused() throws {
        let tokenizer = try XCTUnwrap(try Tokenizer.load(modelDirectory: model))
        XCTAssertThrowsError(try DataSpec.synthetic(seed: 0).corpus(encoding: .tokenizer(tokenizer), cacheDirectory: nil)) {
            XCTAssertTrue("\($0)".contains("byte-level"), "\($0)")
        }
        var spec = DataSpec.text(data, seed: 0)
        spec.tokenizer = "0000000000000000"
        XCTAssertThrowsError(try spec.corpus(encoding: .tokenizer(tokenizer), cacheDirectory: nil)) {
            XCTAssertTrue("\($0)".contains("0000000000000000"), "\($0)")
        }
    }
}
