import Foundation
import XCTest

@testable import ParScaleTrain

final class DataTests: XCTestCase {
    func testExamplesAreDeterministicWellFormedAndCoverEveryTask() {
        XCTAssertEqual(SyntheticTasks.example(seed: 3, index: 17), SyntheticTasks.example(seed: 3, index: 17))
        XCTAssertNotEqual(
            (0..<20).map { SyntheticTasks.example(seed: 3, index: $0) }, (0..<20).map { SyntheticTasks.example(seed: 4, index: $0) })
        let examples = (0..<300).map { SyntheticTasks.example(seed: 0, index: $0) }
        XCTAssertEqual(Set(examples.map(\.task)), Set(SyntheticTasks.taskNames))
        for e in examples {
            XCTAssertFalse(e.answer.isEmpty, e.text)
            XCTAssertTrue(e.text.utf8.allSatisfy { $0 < 128 }, e.text)
            XCTAssertEqual(e.text.filter { $0 == "\n" }.count, 1, e.text)
            XCTAssertTrue(e.text.hasSuffix("\n"))
        }
    }

    /// Answers recomputed here, independently, from the prompt text.
    func testAnswersAreCorrect() {
        var checked: [String: Int] = [:]
        for i in 0..<700 {
            let e = SyntheticTasks.example(seed: 1, index: UInt64(i))
            let p = e.prompt
            switch e.task {
            case "add":
                let parts = p.dropLast().split(separator: "+").map { Int($0)! }
                XCTAssertTrue(e.answer.hasSuffix("| \(parts[0] + parts[1])"), e.text)
            case "sub":
                let parts = p.dropLast().split(separator: "-").map { Int($0)! }
                XCTAssertEqual(Int(e.answer), parts[0] - parts[1], e.text)
            case "sort":
                let items = p.dropFirst(5).dropLast().split(separator: " ").map { Int($0)! }
                XCTAssertEqual(e.answer, items.sorted().map(String.init).joined(separator: " "), e.text)
            case "lookup":
                let words = p.split(separator: " ")
                let key = words.last!.dropFirst().dropLast()  // "?k7=" -> "k7"
                let entry = words.dropLast().first { $0.hasPrefix(key + "=") }!
                XCTAssertEqual(e.answer, String(entry.split(separator: "=")[1]), e.text)
            case "reverse":
                XCTAssertEqual(e.answer, String(p.dropFirst(4).dropLast().reversed()), e.text)
            case "brackets":
                var stack: [Character] = [], depth = 0, ok = true
                for c in p.dropLast() {
                    switch c {
                    case "(", "[", "{":
                        stack.append(c)
                        depth = max(depth, stack.count)
                    default:
                        let open: Character = c == ")" ? "(" : c == "]" ? "[" : "{"
                        if stack.popLast() != open { ok = false }
                    }
                }
                XCTAssertEqual(e.answer, ok && stack.isEmpty ? "yes \(depth)" : "no", e.text)
            case "prog":
                var values: [String: Int] = [:]
                let statements = p.dropLast().split(separator: ";")
                for statement in statements.dropLast() {
                    let sides = statement.split(separator: "=")
                    let expr = sides[1]
                    let opIndex = expr.lastIndex { "+-*".contains($0) }!
                    let left = String(expr[..<opIndex]), right = Int(expr[expr.index(after: opIndex)...])!
                    let l = Int(left) ?? values[left]!
                    values[String(sides[0])] = expr[opIndex] == "+" ? l + right : expr[opIndex] == "-" ? l - right : l * right
                }
                XCTAssertEqual(Int(e.answer), values[String(statements.last!)], e.text)
            default:
                XCTFail("unknown task \(e.task)")
            }
            checked[e.task, default: 0] += 1
        }
        XCTAssertEqual(checked.count, SyntheticTasks.taskNames.count)
    }

    func testSplitsAreDisjointAndAboutOneInTwenty() {
        var cursor: UInt64 = 0
        var validation = Set<String>()
        for _ in 0..<500 {
            let (e, next) = SyntheticTasks.next(seed: 0, split: .validation, cursor: cursor)
            validation.insert(e.prompt)
            cursor = next
        }
        var trainCount = 0, heldOut = 0
        for i in 0..<10000 {
            let e = SyntheticTasks.example(seed: 0, index: UInt64(i))
            if SyntheticTasks.split(of: e.prompt) == .train {
                trainCount += 1
                XCTAssertFalse(validation.contains(e.prompt), e.prompt)
            } else {
                heldOut += 1
            }
        }
        XCTAssertEqual(Double(heldOut) / 10000, 0.05, accuracy: 0.02)
    }

    func testStreamsShiftTargetsAndResumeExactly() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("parscale-data-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        let file = dir.appendingPathComponent("text.txt")
        try Data((0..<2000).map { "line \($0) of some text\n" }.joined().utf8).write(to: file)
        let corpus = try TextCorpus(path: file.path)
        for source in [DataSource.synthetic(seed: 2), .text(path: file.path)] {
            let stream = try TokenStream(source: source, corpus: corpus, split: .train, seed: 5)
            let (inputs, targets) = stream.nextBatch(batch: 3, sequence: 10)
            XCTAssertEqual(inputs.count, 30)
            for row in 0..<3 { XCTAssertEqual(Array(inputs[(row * 10 + 1)..<(row * 10 + 10)]), Array(targets[(row * 10)..<(row * 10 + 9)])) }
            _ = stream.nextBatch(batch: 2, sequence: 7)
            let saved = try JSONDecoder().decode(StreamPosition.self, from: JSONEncoder().encode(stream.position))
            let expected = (0..<3).map { _ in stream.nextBatch(batch: 2, sequence: 9) }
            let resumed = try TokenStream(source: source, corpus: corpus, split: .train, seed: 5, position: saved)
            for batch in expected {
                let again = resumed.nextBatch(batch: 2, sequence: 9)
                XCTAssertEqual(again.inputs, batch.inputs)
                XCTAssertEqual(again.targets, batch.targets)
            }
        }
        let a = try validationWindows(source: .text(path: file.path), corpus: corpus, count: 4, sequence: 16)
        XCTAssertEqual(a, try validationWindows(source: .text(path: file.path), corpus: corpus, count: 4, sequence: 16))
        XCTAssertEqual(a.map(\.count), [17, 17, 17, 17])
    }

    func testSyntheticValidationWindowsAreFixedAndHeldOut() throws {
        let a = try validationWindows(source: .synthetic(seed: 0), corpus: nil, count: 8, sequence: 64)
        XCTAssertEqual(a, try validationWindows(source: .synthetic(seed: 0), corpus: nil, count: 8, sequence: 64))
        let text = String(decoding: a.flatMap { $0 }.map { UInt8($0) }, as: UTF8.self)
        for line in text.split(separator: "\n").dropFirst().dropLast() {
            // Whole lines of the validation stream are validation prompts.
            let e = heldOutTasks(seed: 0, count: 40).first { line.hasPrefix($0.prompt) }
            XCTAssertNotNil(e, "\(line) is not a held-out example")
        }
        XCTAssertGreaterThan(unigramEntropy(a.flatMap { $0 }), 2)
    }

    func testTextCorpusFolderSplitAndErrors() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("parscale-corpus-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir.appendingPathComponent("sub"), withIntermediateDirectories: true)
        for i in 0..<40 {
            try Data(String(repeating: "def f\(i)(): return \(i)\n", count: 40).utf8).write(to: dir.appendingPathComponent("sub/f\(i).py"))
        }
        try Data("SECRET".utf8).write(to: dir.appendingPathComponent(".hidden"))
        try Data([0xFF, 0xFE, 0x00, 0x80]).write(to: dir.appendingPathComponent("binary.bin"))
        let corpus = try TextCorpus(path: dir.path)
        XCTAssertEqual(corpus.fileCount, 40)
        XCTAssertFalse(corpus.train.isEmpty)
        XCTAssertFalse(corpus.validation.isEmpty)
        let all = corpus.train + corpus.validation
        XCTAssertFalse(String(decoding: all, as: UTF8.self).contains("SECRET"))
        XCTAssertFalse(all.contains(0xFF))
        XCTAssertEqual(try TextCorpus(path: dir.path).validation, corpus.validation, "deterministic")

        XCTAssertThrowsError(try TextCorpus(path: dir.path + "/missing")) { XCTAssertTrue("\($0)".contains("no such file")) }
        let empty = dir.appendingPathComponent("empty")
        try FileManager.default.createDirectory(at: empty, withIntermediateDirectories: true)
        XCTAssertThrowsError(try TextCorpus(path: empty.path)) { XCTAssertTrue("\($0)".contains("no readable UTF-8")) }
        let tiny = dir.appendingPathComponent("tiny.txt")
        try Data("hello".utf8).write(to: tiny)
        XCTAssertThrowsError(try TextCorpus(path: tiny.path)) { XCTAssertTrue("\($0)".contains("bytes of text")) }
    }
}
