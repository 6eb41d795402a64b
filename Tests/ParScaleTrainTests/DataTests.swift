import Foundation
import XCTest

@testable import ParScale
@testable import ParScaleTrain
import TestSupport

final class DataTests: XCTestCase {
    // MARK: - Helpers

    func write(_ bytes: [UInt8], _ path: String) throws {
        try FileManager.default.createDirectory(
            atPath: (path as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
        try Data(bytes).write(to: URL(fileURLWithPath: path))
    }

    func write(_ text: String, _ path: String) throws { try write(Array(text.utf8), path) }

    /// Readable ASCII text of about `count` bytes, different for each `tag`.
    func prose(_ count: Int, tag: Int) -> String {
        var g = SeededGenerator(seed: UInt64(tag) &+ 1000)
        let words = ["the", "model", "reads", "bytes", "and", "learns", "small", "tasks", "with", "parallel", "streams"]
        var s = "file \(tag):"
        while s.utf8.count < count {
            s += " " + words[Int(g.next() % UInt64(words.count))]
            if g.next() % 12 == 0 { s += ".\n" }
        }
        return s
    }

    func examples(_ seed: UInt64 = 0, _ count: Int) -> [TaskExample] {
        (0..<count).map { SyntheticTasks.example(seed: seed, index: UInt64($0)) }
    }

    func firstExamples(seed: UInt64, split: DataSplit, count: Int) -> [TaskExample] {
        var out: [TaskExample] = [], cursor: UInt64 = 0
        while out.count < count {
            let (e, next) = SyntheticTasks.next(seed: seed, split: split, cursor: cursor)
            XCTAssertGreaterThan(next, cursor)
            out.append(e)
            cursor = next
        }
        return out
    }

    func decode(_ tokens: [Int32]) -> String { String(decoding: tokens.map { UInt8($0) }, as: UTF8.self) }

    func withoutMarker(_ prompt: String, _ marker: String) -> Substring {
        XCTAssertTrue(prompt.hasSuffix(marker), prompt)
        return prompt.dropLast(marker.count)
    }

    // MARK: - Synthetic tasks

    func testFNV1aKnownVectors() {
        XCTAssertEqual(FNV1a.hash(""), 0xCBF2_9CE4_8422_2325)
        XCTAssertEqual(FNV1a.hash("a"), 0xAF63_DC4C_8601_EC8C)
        XCTAssertEqual(FNV1a.hash("foobar"), 0x8594_4171_F739_67E8)
    }

    func testExamplesAreDeterministicWellFormedAndCoverEveryTask() {
        for i: UInt64 in [0, 1, 17, 123_456_789, .max] {
            XCTAssertEqual(SyntheticTasks.example(seed: 3, index: i), SyntheticTasks.example(seed: 3, index: i))
        }
        let a = examples(0, 200), b = examples(1, 200)
        XCTAssertGreaterThan(zip(a, b).filter { $0 != $1 }.count, 150, "different seeds give different examples")
        XCTAssertEqual(Set(a.map(\.task)), Set(SyntheticTasks.taskNames), "every task family in the first 200")
        XCTAssertGreaterThanOrEqual(SyntheticTasks.taskNames.count, 5)
        for e in examples(0, 2000) + examples(99, 500) {
            let text = e.text
            XCTAssertTrue(text.utf8.allSatisfy { $0 < 128 }, "ASCII: \(text)")
            XCTAssertEqual(text.utf8.last, 10)
            XCTAssertEqual(text.utf8.filter { $0 == 10 }.count, 1, "one newline: \(text)")
            XCTAssertFalse(e.answer.isEmpty, text)
            XCTAssertFalse(e.answer.hasPrefix(" "), text)
            XCTAssertTrue(e.prompt.hasSuffix("=") || e.prompt.hasSuffix("-> "), "prompt ends with its marker: \(e.prompt)")
            XCTAssertTrue(SyntheticTasks.taskNames.contains(e.task))
        }
        // Difficulty spread: operands of one to five digits, lists of several lengths.
        let sums = examples(0, 3000).filter { $0.task == "add" }.map { withoutMarker($0.prompt, "=").split(separator: "+")[0].count }
        XCTAssertEqual(Set(sums), Set(1...5))
    }

    /// Column-by-column addition / subtraction, written independently of the generator.
    func expectedArithmetic(_ prompt: String) -> String? {
        let isAdd = prompt.contains("+")
        let parts = withoutMarker(prompt, "=").split(separator: isAdd ? "+" : "-").map(String.init)
        guard parts.count == 2, let a = Int(parts[0]), let b = Int(parts[1]) else { return nil }
        let da = parts[0].reversed().map { Int(String($0))! }, db = parts[1].reversed().map { Int(String($0))! }
        var steps: [String] = [], carry = 0
        if isAdd {
            for i in 0..<max(da.count, db.count) {
                let x = i < da.count ? da[i] : 0, y = i < db.count ? db[i] : 0
                steps.append("\(x)+\(y)+\(carry)=\(x + y + carry)")
                carry = (x + y + carry) >= 10 ? 1 : 0
            }
            return steps.joined(separator: ",") + ";\(a + b)"
        }
        guard a >= b else { return nil }
        for i in 0..<da.count {
            let y = i < db.count ? db[i] : 0
            let x = da[i] - y - carry < 0 ? da[i] + 10 : da[i]
            steps.append("\(x)-\(y)-\(carry)=\(x - y - carry)")
            carry = x > da[i] ? 1 : 0
        }
        return steps.joined(separator: ",") + ";\(a - b)"
    }

    func testArithmeticAnswersAreCorrect() {
        var checked = 0
        for e in examples(5, 3000) where e.task == "add" || e.task == "sub" {
            XCTAssertEqual(e.answer, expectedArithmetic(e.prompt), e.text)
            // The final number is the true sum / difference.
            let body = withoutMarker(e.prompt, "="), isAdd = e.task == "add"
            let n = body.split(separator: isAdd ? "+" : "-").compactMap { Int($0) }
            XCTAssertEqual(Int(e.answer.split(separator: ";").last!), isAdd ? n[0] + n[1] : n[0] - n[1], e.text)
            checked += 1
        }
        XCTAssertGreaterThan(checked, 400)
    }

    func testSortLookupReverseAndCountAnswersAreCorrect() {
        var checked: [String: Int] = [:]
        for e in examples(6, 4000) {
            switch e.task {
            case "sort":
                let items = withoutMarker(e.prompt, " -> ").split(separator: " ").dropFirst().map(String.init)
                XCTAssertEqual(items.first?.isEmpty, false)
                let sorted = items.allSatisfy { Int($0) != nil } ? items.sorted { Int($0)! < Int($1)! } : items.sorted()
                XCTAssertEqual(e.answer, sorted.joined(separator: " "), e.text)
            case "lookup":
                let halves = withoutMarker(e.prompt, " -> ").components(separatedBy: " ? ")
                XCTAssertEqual(halves.count, 2, e.text)
                var table: [String: String] = [:]
                for pair in halves[0].split(separator: " ") {
                    let kv = pair.split(separator: "=").map(String.init)
                    XCTAssertNil(table[kv[0]], "keys are distinct: \(e.text)")
                    table[kv[0]] = kv[1]
                }
                XCTAssertEqual(e.answer, table[halves[1]], e.text)
            case "reverse":
                let word = withoutMarker(e.prompt, " -> ").dropFirst("reverse ".count)
                XCTAssertEqual(e.answer, String(word.reversed()), e.text)
            case "count":
                let words = withoutMarker(e.prompt, " -> ").split(separator: " ")
                XCTAssertEqual(words.count, 4, e.text)
                XCTAssertEqual(e.answer, String(words[3].filter { String($0) == words[1] }.count), e.text)
            default: continue
            }
            checked[e.task, default: 0] += 1
        }
        for task in ["sort", "lookup", "reverse", "count"] { XCTAssertGreaterThan(checked[task] ?? 0, 300, task) }
    }

    /// A tiny interpreter for the program and loop tasks, and a stack checker for brackets.
    func testProgramLoopAndBracketAnswersAreCorrect() {
        var checked: [String: Int] = [:], balanced = 0
        for e in examples(7, 4000) {
            switch e.task {
            case "program":
                var statements = withoutMarker(e.prompt, " -> ").split(separator: ";").map(String.init)
                let printed = statements.removeLast()
                XCTAssertTrue(printed.hasPrefix("print(") && printed.hasSuffix(")"), e.text)
                var env: [String: Int] = [:], trace: [String] = []
                func value(_ atom: String) -> Int? { Int(atom) ?? env[atom] }
                for s in statements {
                    let sides = s.split(separator: "=", maxSplits: 1).map(String.init)
                    let expr = sides[1]
                    var v: Int?
                    if let c = Int(expr) {
                        v = c
                    } else if let opIndex = expr.dropFirst().firstIndex(where: { "+-*".contains($0) }) {
                        let l = value(String(expr[..<opIndex])), r = value(String(expr[expr.index(after: opIndex)...]))
                        XCTAssertNotNil(l, "defined before use: \(e.text)")
                        XCTAssertNotNil(r, "defined before use: \(e.text)")
                        guard let l, let r else { break }
                        v = expr[opIndex] == "+" ? l + r : expr[opIndex] == "-" ? l - r : l * r
                    }
                    guard let v else { XCTFail("unparsable statement \(s) in \(e.text)"); break }
                    env[sides[0]] = v
                    trace.append("\(sides[0])=\(v)")
                }
                let name = String(printed.dropFirst(6).dropLast())
                XCTAssertEqual(e.answer, trace.joined(separator: ",") + ";" + (env[name].map(String.init) ?? "?"), e.text)
            case "loop":
                // s=START;for i=1..END:s=s<op><operand>;print(s) ->
                let parts = withoutMarker(e.prompt, " -> ").split(separator: ";").map(String.init)
                XCTAssertEqual(parts.count, 3, e.text)
                XCTAssertEqual(parts[2], "print(s)")
                var s = Int(parts[0].dropFirst(2))!
                let header = parts[1].split(separator: ":").map(String.init)
                let end = Int(header[0].dropFirst("for i=1..".count))!
                let body = header[1].dropFirst("s=s".count)
                let op = body.first!, operand = String(body.dropFirst())
                var values: [String] = []
                for i in 1...end {
                    let x = operand == "i" ? i : Int(operand)!
                    s = op == "+" ? s + x : op == "-" ? s - x : s * x
                    values.append(String(s))
                }
                XCTAssertEqual(e.answer, values.joined(separator: ",") + ";\(s)", e.text)
            case "brackets":
                let string = withoutMarker(e.prompt, " -> ").dropFirst("brackets ".count)
                var stack: [Character] = [], ok = true, depth = 0
                let pairs: [Character: Character] = [")": "(", "]": "[", "}": "{"]
                for c in string {
                    if let open = pairs[c] {
                        if stack.last != open { ok = false; break }
                        stack.removeLast()
                    } else {
                        stack.append(c)
                        depth = max(depth, stack.count)
                    }
                }
                ok = ok && stack.isEmpty
                if ok { balanced += 1 }
                XCTAssertEqual(e.answer, ok ? "yes depth \(depth)" : "no", e.text)
            default: continue
            }
            checked[e.task, default: 0] += 1
        }
        for task in ["program", "loop", "brackets"] { XCTAssertGreaterThan(checked[task] ?? 0, 300, task) }
        let brackets = Double(checked["brackets"] ?? 1)
        XCTAssertTrue((0.3...0.8).contains(Double(balanced) / brackets), "mix of balanced and not: \(balanced)/\(brackets)")
    }

    func testSplitsAreDisjointAndAboutFivePercent() {
        let validation = firstExamples(seed: 0, split: .validation, count: 2000)
        let train = firstExamples(seed: 0, split: .train, count: 20000)
        XCTAssertTrue(validation.allSatisfy { SyntheticTasks.split(of: $0.prompt) == .validation })
        XCTAssertTrue(train.allSatisfy { SyntheticTasks.split(of: $0.prompt) == .train })
        let trainPrompts = Set(train.map(\.prompt))
        let leaked = validation.filter { trainPrompts.contains($0.prompt) }
        XCTAssertEqual(leaked.count, 0, "validation prompts in training: \(leaked.prefix(3).map(\.prompt))")
        let all = examples(0, 20000)
        let fraction = Double(all.filter { SyntheticTasks.split(of: $0.prompt) == .validation }.count) / Double(all.count)
        XCTAssertTrue((0.03...0.07).contains(fraction), "validation fraction \(fraction)")
        // next() walks the examples in order, skipping the other split.
        XCTAssertEqual(train.prefix(100), ArraySlice(all.filter { SyntheticTasks.split(of: $0.prompt) == .train }.prefix(100)))
        // Held-out task examples are the first validation examples.
        XCTAssertEqual(heldOutTasks(seed: 0, count: 50), Array(validation.prefix(50)))
        XCTAssertEqual(heldOutTasks(seed: 0, count: 0), [])
    }

    // MARK: - Token streams

    func assertShifted(_ batch: (inputs: [Int32], targets: [Int32]), b: Int, s: Int, continuous: Bool, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(batch.inputs.count, b * s, file: file, line: line)
        XCTAssertEqual(batch.targets.count, b * s, file: file, line: line)
        for r in 0..<b {
            for j in 0..<(s - 1) {
                XCTAssertEqual(batch.inputs[r * s + j + 1], batch.targets[r * s + j], "row \(r) col \(j)", file: file, line: line)
            }
            if continuous && r + 1 < b {
                XCTAssertEqual(batch.inputs[(r + 1) * s], batch.targets[r * s + s - 1], "rows continue", file: file, line: line)
            }
        }
        XCTAssertTrue(batch.inputs.allSatisfy { (0..<256).contains($0) }, file: file, line: line)
    }

    func testSyntheticStreamIsTheExampleLinesShiftedAndResumable() throws {
        let (B, S) = (4, 48)
        let stream = try TokenStream(source: .synthetic(seed: 2), corpus: nil, split: .train, seed: 0)
        var tokens: [Int32] = []
        for _ in 0..<3 {
            let batch = stream.nextBatch(batch: B, sequence: S)
            assertShifted(batch, b: B, s: S, continuous: true)
            if let last = tokens.last { XCTAssertEqual(batch.inputs[0], last, "continues across calls") }
            for r in 0..<B { tokens += batch.inputs[(r * S + (tokens.isEmpty ? 0 : 1))..<(r * S + S)] + [batch.targets[r * S + S - 1]] }
        }
        // The stream is the concatenation of the training example lines of seed 2.
        let lines = firstExamples(seed: 2, split: .train, count: 200).map(\.text).joined()
        XCTAssertEqual(decode(tokens), String(lines.prefix(tokens.count)))

        // Resuming from a saved position (through JSON, as in a checkpoint) continues exactly.
        for k in [0, 1, 5] {
            let a = try TokenStream(source: .synthetic(seed: 2), corpus: nil, split: .train, seed: 0)
            for _ in 0..<k { _ = a.nextBatch(batch: B, sequence: S) }
            let saved = try JSONDecoder().decode(StreamPosition.self, from: JSONEncoder().encode(a.position))
            let expected = (0..<3).map { _ in a.nextBatch(batch: B, sequence: S) }
            let b = try TokenStream(source: .synthetic(seed: 2), corpus: nil, split: .train, seed: 0, position: saved)
            for e in expected {
                let got = b.nextBatch(batch: B, sequence: S)
                XCTAssertEqual(got.inputs, e.inputs, "k=\(k)")
                XCTAssertEqual(got.targets, e.targets, "k=\(k)")
            }
            XCTAssertEqual(a.position, b.position)
        }
        // An older state without `offset` still decodes.
        XCTAssertEqual(try JSONDecoder().decode(StreamPosition.self, from: Data(#"{"cursor":7}"#.utf8)), StreamPosition(cursor: 7))
        let bad = StreamPosition(cursor: 0, offset: 10_000)
        XCTAssertThrowsError(try TokenStream(source: .synthetic(seed: 2), corpus: nil, split: .train, seed: 0, position: bad))
    }

    func testTextStreamDrawsSeededResumableWindowsOfTheTrainingText() throws {
        let dir = temporaryFolder().path, file = dir + "/book.txt"
        try write(prose(20_000, tag: 1), file)
        let text = try TextCorpus(path: file, minimumBytes: 256), corpus = TokenCorpus(bytes: text)
        let train = text.train.map { Int32($0) }
        let (B, S) = (3, 40)
        let stream = try TokenStream(source: .text(path: file), corpus: corpus, split: .train, seed: 11)
        var starts = Set<Int>()
        for _ in 0..<4 {
            let batch = stream.nextBatch(batch: B, sequence: S)
            assertShifted(batch, b: B, s: S, continuous: false)
            for r in 0..<B {
                let window = Array(batch.inputs[(r * S)..<(r * S + S)]) + [batch.targets[r * S + S - 1]]
                let found = (0...(train.count - S - 1)).first { train[$0..<($0 + S + 1)].elementsEqual(window) }
                XCTAssertNotNil(found, "a window of the training text")
                if let found { starts.insert(found) }
            }
        }
        XCTAssertGreaterThan(starts.count, 8, "random windows")
        XCTAssertEqual(stream.position, StreamPosition(cursor: 12))
        let other = try TokenStream(source: .text(path: file), corpus: corpus, split: .train, seed: 12)
        XCTAssertNotEqual(other.nextBatch(batch: B, sequence: S).inputs,
                          try TokenStream(source: .text(path: file), corpus: corpus, split: .train, seed: 11).nextBatch(batch: B, sequence: S).inputs)
        for k in [0, 2] {
            let a = try TokenStream(source: .text(path: file), corpus: corpus, split: .train, seed: 11)
            for _ in 0..<k { _ = a.nextBatch(batch: B, sequence: S) }
            let saved = try JSONDecoder().decode(StreamPosition.self, from: JSONEncoder().encode(a.position))
            let expected = (0..<3).map { _ in a.nextBatch(batch: B, sequence: S) }
            let b = try TokenStream(source: .text(path: file), corpus: corpus, split: .train, seed: 11, position: saved)
            for e in expected {
                let got = b.nextBatch(batch: B, sequence: S)
                XCTAssertEqual(got.inputs, e.inputs, "k=\(k)")
                XCTAssertEqual(got.targets, e.targets, "k=\(k)")
            }
        }
        XCTAssertThrowsError(try TokenStream(source: .text(path: dir + "/missing.txt"), corpus: nil, split: .train, seed: 0))
        // Without a corpus the stream loads the path itself (with the default minimum).
        let loaded = try TokenStream(source: .text(path: file), corpus: nil, split: .train, seed: 11)
        let shared = try TokenStream(source: .text(path: file), corpus: TokenCorpus(bytes: try TextCorpus(path: file)), split: .train, seed: 11)
        XCTAssertEqual(loaded.nextBatch(batch: B, sequence: S).inputs, shared.nextBatch(batch: B, sequence: S).inputs)
    }

    // MARK: - Text corpus

    func testTextCorpusReadsAFolderSkippingHiddenBinaryAndInvalidFiles() throws {
        let dir = temporaryFolder().path
        // Names: one whose FNV-1a hash sends it to validation, the others to training.
        let names = (0..<200).map { "notes\($0).txt" }
        let validationName = try XCTUnwrap(names.first { FNV1a.hash($0) % 20 == 0 })
        let trainNames = names.filter { FNV1a.hash($0) % 20 != 0 }.prefix(3)
        let nested = "deep/er/" + (0..<200).map { "n\($0).md" }.first { FNV1a.hash("deep/er/" + $0) % 20 != 0 }!
        var contents: [String: String] = [:]
        for (i, name) in ([validationName, nested] + trainNames).enumerated() {
            contents[name] = prose(600 + 50 * i, tag: i) + " (é ünïcode ok)"
            try write(contents[name]!, dir + "/" + name)
        }
        try write("hidden text " + prose(500, tag: 90), dir + "/.hidden.txt")
        try write(prose(500, tag: 91), dir + "/.git/config.txt")
        try write([0xFF, 0xFE, 0x41, 0x80, 0xC3, 0x28] + Array(repeating: 0x41, count: 500), dir + "/image.bin")
        try write([0x41, 0x00, 0x42] + Array(repeating: 0x41, count: 500), dir + "/nul.dat")
        try FileManager.default.createSymbolicLink(atPath: dir + "/link.txt", withDestinationPath: dir + "/" + validationName)

        let corpus = try TextCorpus(path: dir, minimumBytes: 200)
        XCTAssertEqual(corpus.fileCount, 5)
        let expectedOrder = ([validationName, nested] + trainNames).sorted { $0.utf8.lexicographicallyPrecedes($1.utf8) }
        XCTAssertEqual(corpus.files, expectedOrder)
        XCTAssertTrue(corpus.splitByFile)
        XCTAssertEqual(corpus.validation, Array((contents[validationName]! + "\n").utf8))
        let trainText = expectedOrder.filter { $0 != validationName }.map { contents[$0]! + "\n" }.joined()
        XCTAssertEqual(corpus.train, Array(trainText.utf8))
        for skipped in ["hidden text", "file 91"] {
            XCTAssertFalse(String(decoding: corpus.train + corpus.validation, as: UTF8.self).contains(skipped), skipped)
        }
        // Same result on a second read (deterministic).
        let again = try TextCorpus(path: dir, minimumBytes: 200)
        XCTAssertEqual(again.train, corpus.train)
        XCTAssertEqual(again.validation, corpus.validation)

        // With no file hashed to validation, the last 5% (at least minimumBytes) are validation.
        let dir2 = temporaryFolder().path
        var all = ""
        for name in trainNames {
            try write(contents[name]!, dir2 + "/" + name)
            all += contents[name]! + "\n"
        }
        let fallback = try TextCorpus(path: dir2, minimumBytes: 100)
        XCTAssertFalse(fallback.splitByFile)
        XCTAssertEqual(fallback.validation.count, max(all.utf8.count / 20, 100))
        XCTAssertEqual(fallback.train + fallback.validation, Array(all.utf8))
    }

    func testTextCorpusSplitsASingleFile() throws {
        let dir = temporaryFolder().path, file = dir + "/one.txt"
        let text = prose(30_000, tag: 5)
        try write(text, file)
        let corpus = try TextCorpus(path: file, minimumBytes: 500)
        let all = Array((text + "\n").utf8)
        XCTAssertEqual(corpus.fileCount, 1)
        XCTAssertEqual(corpus.validation.count, all.count / 20)
        XCTAssertEqual(corpus.train + corpus.validation, all)
        // A larger minimum wins over 5%.
        let big = try TextCorpus(path: file, minimumBytes: 4096)
        XCTAssertEqual(big.validation.count, 4096)
        XCTAssertEqual(big.train + big.validation, all)
    }

    func testTextCorpusErrorsNameThePathAndWhatWasExpected() throws {
        let dir = temporaryFolder().path
        func message(_ path: String, minimum: Int = 4096) -> String {
            do {
                _ = try TextCorpus(path: path, minimumBytes: minimum)
                XCTFail("expected an error for \(path)")
                return ""
            } catch let error as DataError {
                return error.description
            } catch {
                XCTFail("not a DataError: \(error)")
                return ""
            }
        }
        let missing = dir + "/no/such/corpus"
        let m1 = message(missing)
        XCTAssertTrue(m1.contains(missing) && m1.contains("no such file"), m1)

        let empty = dir + "/empty"
        try FileManager.default.createDirectory(atPath: empty, withIntermediateDirectories: true)
        let m2 = message(empty)
        XCTAssertTrue(m2.contains(empty) && m2.contains("no readable text files"), m2)

        let unreadable = dir + "/unreadable"
        try write(prose(9000, tag: 1), unreadable + "/.hidden")
        try write([0xFF] + Array(repeating: 0x61, count: 9000), unreadable + "/data.bin")
        let m3 = message(unreadable)
        XCTAssertTrue(m3.contains(unreadable) && m3.contains("no readable text files"), m3)

        let small = dir + "/small.txt"
        try write("just a few words\n", small)
        let m4 = message(small)
        XCTAssertTrue(m4.contains(small) && m4.contains("expected at least 8192"), m4)

        let binary = dir + "/blob.bin"
        try write([0xC3, 0x28, 0xA0], binary)
        let m5 = message(binary)
        XCTAssertTrue(m5.contains(binary) && m5.contains("UTF-8"), m5)
    }

    // MARK: - Validation sets

    func testValidationWindowsAreFixedAndDisjointFromTraining() throws {
        let S = 64
        let a = try validationWindows(source: .synthetic(seed: 0), corpus: nil, count: 32, sequence: S)
        let b = try validationWindows(source: .synthetic(seed: 0), corpus: nil, count: 32, sequence: S)
        XCTAssertEqual(a, b)
        XCTAssertEqual(a.count, 32)
        XCTAssertTrue(a.allSatisfy { $0.count == S + 1 })
        XCTAssertNotEqual(a, try validationWindows(source: .synthetic(seed: 1), corpus: nil, count: 32, sequence: S))
        XCTAssertEqual(Array(try validationWindows(source: .synthetic(seed: 0), corpus: nil, count: 40, sequence: S).prefix(32)), a)
        // The windows are the validation lines: every complete line is a validation example and
        // none of them is among the training examples.
        var tokens = a[0]
        for w in a.dropFirst() {
            XCTAssertEqual(w.first, tokens.last)
            tokens += w.dropFirst()
        }
        let lines = decode(tokens).split(separator: "\n", omittingEmptySubsequences: false).dropLast().map { String($0) + "\n" }
        XCTAssertGreaterThan(lines.count, 20)
        let validationTexts = Set(firstExamples(seed: 0, split: .validation, count: 200).map(\.text))
        let trainTexts = Set(firstExamples(seed: 0, split: .train, count: 20000).map(\.text))
        for line in lines {
            XCTAssertTrue(validationTexts.contains(line), "a validation example: \(line)")
            XCTAssertFalse(trainTexts.contains(line), "not a training example: \(line)")
        }

        // Text: evenly spaced windows over the validation bytes, from its start to its end.
        let dir = temporaryFolder().path, file = dir + "/t.txt"
        try write(prose(40_000, tag: 3), file)
        let text = try TextCorpus(path: file), corpus = TokenCorpus(bytes: text)
        let v = text.validation.map { Int32($0) }
        let t = try validationWindows(source: .text(path: file), corpus: corpus, count: 5, sequence: S)
        XCTAssertEqual(t, try validationWindows(source: .text(path: file), corpus: nil, count: 5, sequence: S))
        XCTAssertEqual(t.first, Array(v.prefix(S + 1)))
        XCTAssertEqual(t.last, Array(v.suffix(S + 1)))
        let middle = 2 * (v.count - S - 1) / 4
        XCTAssertEqual(t[2], Array(v[middle..<(middle + S + 1)]))
        XCTAssertThrowsError(try validationWindows(source: .text(path: file), corpus: corpus, count: 2, sequence: v.count)) { error in
            XCTAssertTrue("\(error)".contains("shorter than one window"), "\(error)")
        }
    }

    func testUnigramEntropy() {
        XCTAssertEqual(unigramEntropy([]), 0)
        XCTAssertEqual(unigramEntropy([7, 7, 7]), 0, accuracy: 1e-12)
        XCTAssertEqual(unigramEntropy([0, 1, 2, 3, 3, 2, 1, 0]), log(4.0), accuracy: 1e-12)
        XCTAssertEqual(unigramEntropy([65, 65, 65, 66]), -(0.75 * log(0.75) + 0.25 * log(0.25)), accuracy: 1e-12)
        // The synthetic stream is far from uniform bytes but has many symbols.
        let sample = try! validationWindows(source: .synthetic(seed: 0), corpus: nil, count: 64, sequence: 64).flatMap { $0 }
        XCTAssertTrue((2.0...4.5).contains(unigramEntropy(sample)), "\(unigramEntropy(sample))")
    }

    /// Generation sits inside the training loop: it must be fast (this is a loose bound that holds
    /// in debug builds; release builds are far faster).
    func testSyntheticGenerationIsFast() throws {
        let stream = try TokenStream(source: .synthetic(seed: 0), corpus: nil, split: .train, seed: 0)
        let start = Date()
        var total = 0
        while total < 200_000 { total += stream.nextBatch(batch: 8, sequence: 128).inputs.count }
        let seconds = Date().timeIntervalSince(start)
        XCTAssertLessThan(seconds, 2.0, "\(Double(total) / seconds) tokens/s")
    }
}
