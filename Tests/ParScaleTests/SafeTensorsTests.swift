import Foundation
import XCTest

@testable import ParScale
import TestSupport

final class SafeTensorsTests: XCTestCase {
    // MARK: Helpers

    /// The reference model p2_t8_untied (TestPaths.reference).
    private static let referenceDir = TestPaths.reference.appendingPathComponent("p2_t8_untied")

    private var scratch: URL!

    override func setUpWithError() throws {
        scratch = TestPaths.temporaryDirectory(name)
    }

    override func tearDownWithError() throws {
        try? FileManager.default.removeItem(at: scratch)
    }

    private func path(_ name: String) -> String { scratch.appendingPathComponent(name).path }

    /// Writes 8-byte header length (the JSON's length unless given) + header + data; returns the path.
    private func rawFile(
        _ name: String, header: String, data: [UInt8] = [], headerLength: UInt64? = nil
    ) throws -> String {
        let json = Array(header.utf8)
        var bytes = withUnsafeBytes(of: (headerLength ?? UInt64(json.count)).littleEndian) { Array($0) }
        bytes += json + data
        let p = path(name)
        try Data(bytes).write(to: URL(fileURLWithPath: p))
        return p
    }

    /// One-tensor header: {"t": {"dtype": ..., "shape": ..., "data_offsets": ...}}.
    private func oneTensorFile(_ name: String, dtype: String = "F32", shape: String, offsets: String, dataBytes: Int) throws -> String {
        try rawFile(
            name, header: "{\"t\":{\"dtype\":\"\(dtype)\",\"shape\":\(shape),\"data_offsets\":\(offsets)}}",
            data: [UInt8](repeating: 0, count: dataBytes))
    }

    /// Asserts that `body` throws a SafeTensorsError whose description contains every phrase.
    private func assertSTError(
        _ phrases: [String], file: StaticString = #filePath, line: UInt = #line, _ body: () throws -> Void
    ) {
        do {
            try body()
            XCTFail("expected a SafeTensorsError containing \(phrases), got none", file: file, line: line)
        } catch let error as SafeTensorsError {
            for phrase in phrases {
                XCTAssertTrue(
                    error.description.contains(phrase), "'\(error.description)' lacks '\(phrase)'", file: file, line: line)
            }
        } catch {
            XCTFail("expected a SafeTensorsError, got \(type(of: error)): \(error)", file: file, line: line)
        }
    }

    private func writeFloats(
        _ values: [Float], dtype: SafeTensorsDType, to p: String, name: String = "x"
    ) throws -> [Float] {
        try values.withUnsafeBufferPointer {
            try SafeTensorsWriter.write(
                [.init(name: name, dtype: dtype, shape: [values.count], payload: .floats($0))], to: p)
        }
        return try SafeTensorsFile(contentsOf: p).floats(name)
    }

    // MARK: Round trips

    func testF32RoundTripIsBitExact() throws {
        var values: [Float] = [0, -0.0, 1, -2.5, .pi, .infinity, -.infinity, .leastNonzeroMagnitude,
                               .greatestFiniteMagnitude, Float(bitPattern: 0x7FC0_1234)]
        var rng = SystemRandomNumberGenerator()
        for _ in 0..<1000 { values.append(Float(bitPattern: UInt32.random(in: 0...0x7F7F_FFFF, using: &rng))) }
        let matrix: [Float] = (0..<6).map { Float($0) * 0.5 }
        let p = path("f32.safetensors")
        try values.withUnsafeBufferPointer { v in
            try matrix.withUnsafeBufferPointer { m in
                try SafeTensorsWriter.write(
                    [.init(name: "z.values", dtype: .F32, shape: [values.count], payload: .floats(v)),
                     .init(name: "a.matrix", dtype: .F32, shape: [2, 3], payload: .floats(m))],
                    metadata: ["format": "pt", "note": "quote \" backslash \\ newline \n é"], to: p)
            }
        }
        let file = try SafeTensorsFile(contentsOf: p)
        XCTAssertEqual(file.names, ["a.matrix", "z.values"])
        XCTAssertEqual(file.metadata, ["format": "pt", "note": "quote \" backslash \\ newline \n é"])
        XCTAssertEqual(try file.floats("z.values").map(\.bitPattern), values.map(\.bitPattern))
        XCTAssertEqual(try file.floats("a.matrix"), matrix)
        let info = try file.info("a.matrix")
        XCTAssertEqual(info.shape, [2, 3])
        XCTAssertEqual(info.dtype, .F32)
        XCTAssertEqual(info.elementCount, 6)
        // Header padded to 8 bytes; tensors laid out in name order right after it.
        let bytes = try Data(contentsOf: URL(fileURLWithPath: p))
        let n = bytes.prefix(8).withUnsafeBytes { $0.loadUnaligned(as: UInt64.self) }
        XCTAssertEqual(n % 8, 0)
        XCTAssertEqual(info.byteRange, Int(8 + n)..<Int(8 + n) + 24)
        XCTAssertEqual(try file.info("z.values").byteRange.lowerBound, info.byteRange.upperBound)
        XCTAssertEqual(try file.info("z.values").byteRange.upperBound, bytes.count)
        // readFloats into a slice of a bigger buffer.
        var big = [Float](repeating: -1, count: 8)
        try big.withUnsafeMutableBufferPointer {
            try file.readFloats("a.matrix", into: UnsafeMutableBufferPointer(rebasing: $0[1..<7]))
        }
        XCTAssertEqual(big, [-1] + matrix + [-1])
    }

    func testF16RoundTripRoundsToNearestEven() throws {
        let values: [Float] = [1.0, -2.5, 65504, 0.1, 1 + 0x1p-11, 1 + 3 * 0x1p-11, 65520, -1e-8, .nan, 0x1p-24]
        let got = try writeFloats(values, dtype: .F16, to: path("f16.safetensors"))
        XCTAssertEqual(got.count, values.count)
        XCTAssertEqual(got[0], 1.0)
        XCTAssertEqual(got[1], -2.5)
        XCTAssertEqual(got[2], 65504)
        XCTAssertEqual(got[3], 0.0999755859375)  // 0x2E66
        XCTAssertEqual(got[4], 1.0)  // tie -> even
        XCTAssertEqual(got[5], 1 + 0x1p-9)  // tie -> even (up)
        XCTAssertEqual(got[6], .infinity)  // past the largest half, ties to even = overflow
        XCTAssertEqual(got[7].bitPattern, (-0.0 as Float).bitPattern)  // underflows to -0
        XCTAssertTrue(got[8].isNaN)
        XCTAssertEqual(got[9], 0x1p-24)  // smallest subnormal half
    }

    func testBF16RoundTripRoundsToNearestEven() throws {
        let values: [Float] = [
            Float(bitPattern: 0x3F80_8000),  // tie, even below -> 1.0
            Float(bitPattern: 0x3F81_8000),  // tie, odd below -> 0x3F82
            Float(bitPattern: 0x3F80_8001),  // above the tie -> up
            Float(bitPattern: 0x3F80_7FFF),  // below the tie -> down
            -2.5, .greatestFiniteMagnitude, .nan, Float(bitPattern: 0x7F80_0001), -.infinity,
        ]
        let p = path("bf16.safetensors")
        let got = try writeFloats(values, dtype: .BF16, to: p)
        XCTAssertEqual(got[0].bitPattern, 0x3F80_0000)
        XCTAssertEqual(got[1].bitPattern, 0x3F82_0000)
        XCTAssertEqual(got[2].bitPattern, 0x3F81_0000)
        XCTAssertEqual(got[3].bitPattern, 0x3F80_0000)
        XCTAssertEqual(got[4], -2.5)
        XCTAssertEqual(got[5], .infinity)
        XCTAssertTrue(got[6].isNaN)
        XCTAssertTrue(got[7].isNaN, "a NaN whose payload is only in the low bits must not become infinity")
        XCTAssertEqual(got[8], -.infinity)
        // The stored bytes themselves: little-endian UInt16 0x3F80, 0x3F82.
        let range = try SafeTensorsFile(contentsOf: p).info("x").byteRange
        let bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: p)))
        XCTAssertEqual(Array(bytes[range.lowerBound..<range.lowerBound + 4]), [0x80, 0x3F, 0x82, 0x3F])
    }

    func testIntegerRoundTrips() throws {
        let values: [Int64] = [0, 1, -1, 47, .max, .min, 1 << 40]
        let small: [Int64] = [3, -7, Int64(Int32.max), Int64(Int32.min)]
        let p = path("ints.safetensors")
        try SafeTensorsWriter.write(
            [.init(name: "ids", dtype: .I64, shape: [7, 1], payload: .int64s(values)),
             .init(name: "small", dtype: .I32, shape: [2, 2], payload: .int64s(small)),
             .init(name: "empty", dtype: .I64, shape: [0, 3], payload: .int64s([])),
             .init(name: "scalar", dtype: .I64, shape: [], payload: .int64s([42]))],
            to: p)
        let file = try SafeTensorsFile(contentsOf: p)
        XCTAssertEqual(try file.int64s("ids"), values)
        XCTAssertEqual(try file.int64s("small"), small)
        XCTAssertEqual(try file.info("small").byteRange.count, 16)
        XCTAssertEqual(try file.int64s("empty"), [])
        XCTAssertEqual(try file.int64s("scalar"), [42])
        XCTAssertEqual(try file.info("scalar").shape, [])
        assertSTError([p, "'ids'", "I64", "not a float type"]) { _ = try file.floats("ids") }
    }

    // MARK: Real files

    func testReadsReferenceModel() throws {
        let p = Self.referenceDir.appendingPathComponent("model.safetensors").path
        let file = try SafeTensorsFile(contentsOf: p)
        XCTAssertEqual(file.tensors.count, 35)
        XCTAssertEqual(file.names, file.tensors.keys.sorted())
        XCTAssertEqual(file.metadata["format"], "pt")
        XCTAssertTrue(file.tensors.values.allSatisfy { $0.dtype == .F32 })
        let prefix = try file.info("model.layers.0.self_attn.prefix_k")
        XCTAssertEqual(prefix.shape, [2, 2, 8, 16])
        XCTAssertEqual(prefix.elementCount, 512)
        let head = try file.info("lm_head.weight")
        XCTAssertEqual(head.shape, [256, 64])
        let weights = try file.floats("lm_head.weight")
        XCTAssertEqual(weights.count, 256 * 64)
        XCTAssertEqual(Array(weights.prefix(3)).map(\.bitPattern), [0xBE32_0EC5, 0x3EFF_32A9, 0x3DA7_804F])
        XCTAssertTrue(weights.allSatisfy(\.isFinite))
        XCTAssertEqual(Array(try file.floats("model.layers.0.self_attn.prefix_k").prefix(2)).map(\.bitPattern),
                       [0x3F04_3A16, 0xBE85_2B80])
    }

    func testReadsReferenceIDs() throws {
        let p = Self.referenceDir.appendingPathComponent("reference.safetensors").path
        let file = try SafeTensorsFile(contentsOf: p)
        XCTAssertEqual(file.metadata, [:])
        let info = try file.info("input_ids")
        XCTAssertEqual(info.dtype, .I64)
        XCTAssertEqual(info.shape, [2, 13])
        let ids = try file.int64s("input_ids")
        XCTAssertEqual(ids.count, 26)
        XCTAssertEqual(Array(ids.prefix(4)), [47, 211, 38, 53])
        XCTAssertEqual(ids[13], 30)
        XCTAssertFalse(try file.floats("logits").isEmpty)
    }

    // MARK: Hostile files

    func testTruncatedFile() throws {
        let values = [Float](repeating: 1, count: 64)
        let p = path("whole.safetensors")
        _ = try writeFloats(values, dtype: .F32, to: p, name: "weights")
        let whole = try Data(contentsOf: URL(fileURLWithPath: p))
        let cut = path("cut.safetensors")
        try whole.prefix(whole.count - 100).write(to: URL(fileURLWithPath: cut))
        assertSTError([cut, "tensor 'weights'", "out of range", "truncated"]) { _ = try SafeTensorsFile(contentsOf: cut) }
        // Cut inside the header.
        try whole.prefix(20).write(to: URL(fileURLWithPath: cut))
        assertSTError([cut, "runs past the end of the file"]) { _ = try SafeTensorsFile(contentsOf: cut) }
    }

    func testHeaderLengthProblems() throws {
        let beyond = try rawFile("beyond.safetensors", header: "{}", data: [0, 0], headerLength: 1000)
        assertSTError(["beyond.safetensors", "header length 1000 bytes runs past the end"]) {
            _ = try SafeTensorsFile(contentsOf: beyond)
        }
        for (i, huge) in [UInt64.max, 200_000_000, 1 << 63].enumerated() {
            let p = try rawFile("huge\(i).safetensors", header: "{}", headerLength: huge)
            assertSTError(["huge\(i).safetensors", "\(huge) bytes", "100 MB limit"]) { _ = try SafeTensorsFile(contentsOf: p) }
        }
        let zero = try rawFile("zero.safetensors", header: "{}", headerLength: 0)
        assertSTError(["zero.safetensors", "header length is 0"]) { _ = try SafeTensorsFile(contentsOf: zero) }
        for count in [0, 5, 7] {
            let p = path("short\(count).safetensors")
            try Data(repeating: 1, count: count).write(to: URL(fileURLWithPath: p))
            assertSTError(["short\(count).safetensors", "only \(count) bytes", "too short"]) { _ = try SafeTensorsFile(contentsOf: p) }
        }
        assertSTError(["missing.safetensors", "cannot open"]) { _ = try SafeTensorsFile(contentsOf: path("missing.safetensors")) }
        assertSTError([scratch.path, "not a regular file"]) { _ = try SafeTensorsFile(contentsOf: scratch.path) }
    }

    func testMalformedHeaders() throws {
        let cases: [(String, String)] = [
            ("{\"t\": {\"dtype\": \"F32\"", "not valid JSON"),
            ("not json at all", "not valid JSON"),
            (String(repeating: "[", count: 100_000), "not valid JSON"),
            ("[1, 2]", "not a JSON object"),
            ("\"text\"", "not a JSON object"),
            ("{\"__metadata__\": [1]}", "\"__metadata__\" must be a JSON object"),
            ("{\"__metadata__\": {\"k\": 3}}", "value of 'k' is not a string"),
        ]
        for (i, (header, phrase)) in cases.enumerated() {
            let p = try rawFile("bad\(i).safetensors", header: header)
            assertSTError(["bad\(i).safetensors", phrase]) { _ = try SafeTensorsFile(contentsOf: p) }
        }
        var bytes = withUnsafeBytes(of: UInt64(6).littleEndian) { Array($0) }
        bytes += [0x7B, 0x22, 0xFF, 0x22, 0x3A, 0x7D]  // {"\xFF":}
        let p = path("utf8.safetensors")
        try Data(bytes).write(to: URL(fileURLWithPath: p))
        assertSTError(["utf8.safetensors", "not valid UTF-8"]) { _ = try SafeTensorsFile(contentsOf: p) }
    }

    func testMalformedEntries() throws {
        let cases: [(String, String)] = [
            ("{\"t\": 5}", "not a JSON object"),
            ("{\"t\": {\"shape\": [1], \"data_offsets\": [0, 4]}}", "no \"dtype\""),
            ("{\"t\": {\"dtype\": 7, \"shape\": [1], \"data_offsets\": [0, 4]}}", "\"dtype\" must be a string"),
            ("{\"t\": {\"dtype\": \"F32\", \"data_offsets\": [0, 4]}}", "no \"shape\""),
            ("{\"t\": {\"dtype\": \"F32\", \"shape\": 1, \"data_offsets\": [0, 4]}}", "\"shape\" must be an array"),
            ("{\"t\": {\"dtype\": \"F32\", \"shape\": [1.5], \"data_offsets\": [0, 4]}}", "shape[0] must be a non-negative integer"),
            ("{\"t\": {\"dtype\": \"F32\", \"shape\": [true], \"data_offsets\": [0, 4]}}", "boolean"),
            ("{\"t\": {\"dtype\": \"F32\", \"shape\": [\"1\"], \"data_offsets\": [0, 4]}}", "not a string"),
            ("{\"t\": {\"dtype\": \"F32\", \"shape\": [1]}}", "no \"data_offsets\""),
            ("{\"t\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [0, 4, 8]}}", "two non-negative integers"),
            ("{\"t\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [0, 4.0]}}", "data_offsets[1] must be a non-negative integer"),
        ]
        for (i, (header, phrase)) in cases.enumerated() {
            let p = try rawFile("entry\(i).safetensors", header: header, data: [UInt8](repeating: 0, count: 8))
            assertSTError(["entry\(i).safetensors", "tensor 't'", phrase]) { _ = try SafeTensorsFile(contentsOf: p) }
        }
    }

    func testUnknownDType() throws {
        let p = try oneTensorFile("dtype.safetensors", dtype: "F64", shape: "[1]", offsets: "[0, 8]", dataBytes: 8)
        assertSTError(["dtype.safetensors", "tensor 't'", "unsupported dtype 'F64'", "F32, F16, BF16, I64, I32"]) {
            _ = try SafeTensorsFile(contentsOf: p)
        }
    }

    func testShapeSizeMismatch() throws {
        let p = try oneTensorFile("size.safetensors", shape: "[2, 3]", offsets: "[0, 20]", dataBytes: 24)
        assertSTError(["size.safetensors", "tensor 't'", "size mismatch", "24 bytes", "span 20 bytes"]) {
            _ = try SafeTensorsFile(contentsOf: p)
        }
    }

    func testNegativeAndOverflowingShapes() throws {
        let neg = try oneTensorFile("neg.safetensors", shape: "[2, -3]", offsets: "[0, 0]", dataBytes: 0)
        assertSTError(["neg.safetensors", "tensor 't'", "negative dimension -3"]) { _ = try SafeTensorsFile(contentsOf: neg) }
        let over = try oneTensorFile("over.safetensors", shape: "[4294967296, 4294967296]", offsets: "[0, 0]", dataBytes: 0)
        assertSTError(["over.safetensors", "tensor 't'", "more elements than fit"]) { _ = try SafeTensorsFile(contentsOf: over) }
        let bytes = try oneTensorFile("bytes.safetensors", shape: "[4611686018427387904]", offsets: "[0, 0]", dataBytes: 0)
        assertSTError(["bytes.safetensors", "tensor 't'", "more bytes than fit"]) { _ = try SafeTensorsFile(contentsOf: bytes) }
        let huge = try oneTensorFile("hugedim.safetensors", shape: "[18446744073709551616]", offsets: "[0, 0]", dataBytes: 0)
        assertSTError(["hugedim.safetensors", "tensor 't'", "too large"]) { _ = try SafeTensorsFile(contentsOf: huge) }
    }

    func testOutOfRangeOffsets() throws {
        let cases: [(String, String)] = [
            ("[0, 16]", "out of range"),
            ("[8, 4]", "end before they begin"),
            ("[-4, 4]", "is negative"),
            ("[0, 9223372036854775808]", "out of range"),
            ("[0, 1e30]", "out of range"),
        ]
        for (i, (offsets, phrase)) in cases.enumerated() {
            let p = try oneTensorFile("range\(i).safetensors", shape: "[2]", offsets: offsets, dataBytes: 8)
            assertSTError(["range\(i).safetensors", "tensor 't'", phrase]) { _ = try SafeTensorsFile(contentsOf: p) }
        }
    }

    func testOverlappingOffsets() throws {
        let data = [UInt8](repeating: 0, count: 32)
        let partial = try rawFile(
            "overlap.safetensors",
            header: "{\"a\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]},\"b\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[8,24]}}",
            data: data)
        assertSTError(["overlap.safetensors", "tensor 'b'", "overlap", "'a'"]) { _ = try SafeTensorsFile(contentsOf: partial) }
        let inside = try rawFile(
            "inside.safetensors",
            header: "{\"big\":{\"dtype\":\"F32\",\"shape\":[8],\"data_offsets\":[0,32]},\"c\":{\"dtype\":\"I32\",\"shape\":[1],\"data_offsets\":[8,12]},\"d\":{\"dtype\":\"F16\",\"shape\":[2],\"data_offsets\":[16,20]}}",
            data: data)
        assertSTError(["inside.safetensors", "tensor 'c'", "overlap", "'big'"]) { _ = try SafeTensorsFile(contentsOf: inside) }
        // Adjacent ranges and an empty tensor inside another are fine; offsets need not be aligned.
        let ok = try rawFile(
            "adjacent.safetensors",
            header: "{\"a\":{\"dtype\":\"F16\",\"shape\":[1],\"data_offsets\":[0,2]},\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[2,10]},\"e\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[4,4]}}",
            data: [0x00, 0x3C] + withUnsafeBytes(of: Float(1.5).bitPattern.littleEndian, Array.init)
                + withUnsafeBytes(of: Float(-3).bitPattern.littleEndian, Array.init))
        let file = try SafeTensorsFile(contentsOf: ok)
        XCTAssertEqual(try file.floats("a"), [1])
        XCTAssertEqual(try file.floats("b"), [1.5, -3])
        XCTAssertEqual(try file.floats("e"), [])
    }

    func testAccessorErrors() throws {
        let p = path("small.safetensors")
        _ = try writeFloats([1, 2, 3], dtype: .F32, to: p, name: "w")
        let file = try SafeTensorsFile(contentsOf: p)
        assertSTError(["small.safetensors", "tensor 'nope'", "no such tensor"]) { _ = try file.info("nope") }
        assertSTError(["small.safetensors", "tensor 'nope'"]) { _ = try file.floats("nope") }
        assertSTError(["small.safetensors", "tensor 'w'", "F32", "not an integer type"]) { _ = try file.int64s("w") }
        var wrong = [Float](repeating: 0, count: 4)
        assertSTError(["small.safetensors", "tensor 'w'", "holds 4 floats", "has 3 elements"]) {
            try wrong.withUnsafeMutableBufferPointer { try file.readFloats("w", into: $0) }
        }
    }

    func testWriterValidation() throws {
        let p = path("never.safetensors")
        let values: [Float] = [1, 2, 3, 4]
        values.withUnsafeBufferPointer { v in
            assertSTError(["never.safetensors", "tensor 'm'", "6 elements", "4 values"]) {
                try SafeTensorsWriter.write([.init(name: "m", dtype: .F32, shape: [2, 3], payload: .floats(v))], to: p)
            }
            assertSTError(["never.safetensors", "tensor 'dup'", "duplicate"]) {
                try SafeTensorsWriter.write(
                    [.init(name: "dup", dtype: .F32, shape: [4], payload: .floats(v)),
                     .init(name: "dup", dtype: .F16, shape: [2, 2], payload: .floats(v))], to: p)
            }
            assertSTError(["never.safetensors", "tensor 'n'", "negative dimension"]) {
                try SafeTensorsWriter.write([.init(name: "n", dtype: .F32, shape: [-4], payload: .floats(v))], to: p)
            }
            assertSTError(["never.safetensors", "tensor 'f'", "I64"]) {
                try SafeTensorsWriter.write([.init(name: "f", dtype: .I64, shape: [4], payload: .floats(v))], to: p)
            }
        }
        assertSTError(["never.safetensors", "tensor 'i'", "does not fit in I32"]) {
            try SafeTensorsWriter.write([.init(name: "i", dtype: .I32, shape: [1], payload: .int64s([1 << 40]))], to: p)
        }
        assertSTError(["never.safetensors", "tensor 'g'", "F32"]) {
            try SafeTensorsWriter.write([.init(name: "g", dtype: .F32, shape: [1], payload: .int64s([1]))], to: p)
        }
        XCTAssertFalse(FileManager.default.fileExists(atPath: p))
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: scratch.path), [])
    }

    // MARK: atomicWrite

    func testAtomicWriteReplacesAndLeavesNoTempFile() throws {
        let p = path("config.json")
        try atomicWrite(Data("first version, rather long".utf8), to: p)
        try atomicWrite(Data("second".utf8), to: p)
        XCTAssertEqual(try String(contentsOfFile: p, encoding: .utf8), "second")
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: scratch.path), ["config.json"])
        try atomicWrite(Data(), to: p)
        XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: p)).count, 0)

        let nowhere = path("no/such/folder/out.bin")
        do {
            try atomicWrite(Data([1]), to: nowhere)
            XCTFail("writing into a missing folder must fail")
        } catch {
            XCTAssertTrue("\(error)".contains(nowhere), "'\(error)' does not name the path")
        }
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: scratch.path), ["config.json"])
    }
}
