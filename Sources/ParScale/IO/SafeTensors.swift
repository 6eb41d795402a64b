import Foundation

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

// safetensors: 8 bytes little-endian UInt64 N, N bytes of UTF-8 JSON (the header), then the data
// block. Each header key but "__metadata__" is a tensor:
//   {"dtype": "F32", "shape": [2, 3], "data_offsets": [begin, end]}
// with offsets relative to the start of the data block (byte 8 + N). All data is little-endian.

/// The element types this reader and writer support.
public enum SafeTensorsDType: String, CaseIterable, Sendable {
    case F32, F16, BF16, I64, I32

    public var byteSize: Int {
        switch self {
        case .F32, .I32: return 4
        case .F16, .BF16: return 2
        case .I64: return 8
        }
    }

    /// `x` as this float type stores it (round to nearest even), back in float32: what a model whose
    /// weights are kept in this type computes with when it computes in float32.
    public func rounded(_ x: Float) -> Float {
        switch self {
        case .F16: return Float(Float16(x))
        case .BF16: return Float(bitPattern: UInt32(SafeTensorsWriter.bfloat16Bits(x)) << 16)
        default: return x
        }
    }

    /// F32, F16 and BF16 (read with `floats`); I64 and I32 are read with `int64s`.
    public var isFloat: Bool {
        switch self {
        case .F32, .F16, .BF16: return true
        case .I64, .I32: return false
        }
    }

    static var supportedList: String { allCases.map(\.rawValue).joined(separator: ", ") }
}

/// One tensor of a safetensors file, as checked by `SafeTensorsFile`.
public struct SafeTensorInfo: Equatable, Sendable {
    public let name: String
    public let dtype: SafeTensorsDType
    public let shape: [Int]
    /// Absolute byte offsets in the file.
    public let byteRange: Range<Int>

    /// Product of `shape` (1 for a scalar). Checked not to overflow when the file was read.
    public var elementCount: Int { shape.reduce(1, *) }
}

/// A problem with a safetensors file (or a tensor in it), worded for the user.
public struct SafeTensorsError: Error, CustomStringConvertible, LocalizedError {
    public let file: String
    public let tensor: String?
    public let message: String

    public init(file: String, tensor: String? = nil, _ message: String) {
        self.file = file
        self.tensor = tensor
        self.message = message
    }

    public var description: String {
        if let tensor { return "\(file): tensor '\(tensor)': \(message)" }
        return "\(file): \(message)"
    }

    public var errorDescription: String? { description }
}

// MARK: - Reading

/// A safetensors file mapped read-only into memory. Everything in the header is checked on open,
/// so the accessors never read outside the mapping.
public final class SafeTensorsFile: @unchecked Sendable {
    /// Headers above this size are taken as corruption rather than parsed.
    public static let maxHeaderLength = 100_000_000

    public let path: String
    /// The "__metadata__" entry (string -> string); empty if absent.
    public let metadata: [String: String]
    public let tensors: [String: SafeTensorInfo]

    private let base: UnsafeRawPointer
    private let mappedLength: Int

    /// Tensor names, sorted.
    public var names: [String] { tensors.keys.sorted() }

    public init(contentsOf path: String) throws {
        self.path = path
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else {
            throw SafeTensorsError(file: path, "cannot open: \(String(cString: strerror(errno)))")
        }
        defer { close(fd) }
        var st = stat()
        guard fstat(fd, &st) == 0 else {
            throw SafeTensorsError(file: path, "cannot stat: \(String(cString: strerror(errno)))")
        }
        guard (st.st_mode & S_IFMT) == S_IFREG else {
            throw SafeTensorsError(file: path, "not a regular file")
        }
        let size = Int(st.st_size)
        guard size >= 8 else {
            throw SafeTensorsError(
                file: path,
                "file is only \(size) bytes, too short for the 8-byte header length that starts a safetensors file (truncated or not a safetensors file)"
            )
        }
        guard let mapped = mmap(nil, size, PROT_READ, MAP_PRIVATE, fd, 0),
            mapped != UnsafeMutableRawPointer(bitPattern: -1)
        else {
            throw SafeTensorsError(file: path, "cannot map into memory: \(String(cString: strerror(errno)))")
        }
        do {
            (metadata, tensors) = try Self.parse(UnsafeRawBufferPointer(start: mapped, count: size), path: path)
        } catch {
            munmap(mapped, size)
            throw error
        }
        base = UnsafeRawPointer(mapped)
        mappedLength = size
    }

    deinit {
        munmap(UnsafeMutableRawPointer(mutating: base), mappedLength)
    }

    public func info(_ name: String) throws -> SafeTensorInfo {
        guard let info = tensors[name] else {
            throw SafeTensorsError(file: path, tensor: name, "no such tensor in this file (it has \(tensors.count) tensor\(tensors.count == 1 ? "" : "s"))")
        }
        return info
    }

    /// Converts F32/F16/BF16 to Float. `destination.count` must equal the element count, else an
    /// error naming the tensor and both counts. Integer dtypes -> error.
    public func readFloats(_ name: String, into destination: UnsafeMutableBufferPointer<Float>) throws {
        let t = try info(name)
        guard t.dtype.isFloat else {
            throw SafeTensorsError(
                file: path, tensor: name,
                "dtype is \(t.dtype.rawValue), not a float type (F32, F16, BF16); read it as integers instead")
        }
        let count = t.elementCount
        guard destination.count == count else {
            throw SafeTensorsError(
                file: path, tensor: name,
                "destination holds \(destination.count) floats but the tensor has \(count) elements (shape \(t.shape))")
        }
        guard count > 0, let dst = destination.baseAddress else { return }
        let src = base + t.byteRange.lowerBound
        switch t.dtype {
        case .F32:
            #if _endian(little)
            memcpy(dst, src, count * 4)
            #else
            for i in 0..<count {
                dst[i] = Float(bitPattern: UInt32(littleEndian: src.loadUnaligned(fromByteOffset: 4 * i, as: UInt32.self)))
            }
            #endif
        case .F16:
            for i in 0..<count {
                let bits = UInt16(littleEndian: src.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self))
                dst[i] = Float(Float16(bitPattern: bits))
            }
        case .BF16:
            for i in 0..<count {
                let bits = UInt16(littleEndian: src.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self))
                dst[i] = Float(bitPattern: UInt32(bits) << 16)
            }
        case .I64, .I32:
            preconditionFailure("unreachable: integer dtypes are rejected above")
        }
    }

    public func floats(_ name: String) throws -> [Float] {
        let count = try info(name).elementCount
        return try [Float](unsafeUninitializedCapacity: count) { buffer, initialized in
            initialized = 0
            try readFloats(name, into: buffer)
            initialized = count
        }
    }

    /// Reads an I64 or I32 tensor; float dtypes -> error.
    public func int64s(_ name: String) throws -> [Int64] {
        let t = try info(name)
        let count = t.elementCount
        let src = base + t.byteRange.lowerBound
        switch t.dtype {
        case .I64:
            return (0..<count).map { Int64(littleEndian: src.loadUnaligned(fromByteOffset: 8 * $0, as: Int64.self)) }
        case .I32:
            return (0..<count).map { Int64(Int32(littleEndian: src.loadUnaligned(fromByteOffset: 4 * $0, as: Int32.self))) }
        case .F32, .F16, .BF16:
            throw SafeTensorsError(
                file: path, tensor: name,
                "dtype is \(t.dtype.rawValue), not an integer type (I64, I32); read it as floats instead")
        }
    }

    // MARK: Header parsing

    private enum IntegerValue {
        case value(Int)
        case notInteger(String)
        case outOfRange(String)
    }

    /// Exact integer from a JSONSerialization value: no booleans, no fractions or exponents, and
    /// nothing beyond Int's range (which JSONSerialization hands over as UInt64 or Decimal).
    private static func integer(_ any: Any) -> IntegerValue {
        if any is String { return .notInteger("a string") }
        if any is [Any] { return .notInteger("an array") }
        if any is [String: Any] { return .notInteger("an object") }
        guard let n = any as? NSNumber else { return .notInteger("null") }
        let code = String(cString: n.objCType)
        switch code {
        case "c", "B":
            return .notInteger("the boolean \(n.boolValue)")
        case "q", "l", "i", "s":
            return .value(Int(n.int64Value))
        case "Q", "L", "I", "S", "C":
            let u = n.uint64Value
            guard let v = Int(exactly: u) else { return .outOfRange("\(u)") }
            return .value(v)
        default:
            let d = n.doubleValue
            if !d.isFinite || abs(d) >= 9.2e18 { return .outOfRange(n.stringValue) }
            return .notInteger(n.stringValue)
        }
    }

    private static func parse(
        _ bytes: UnsafeRawBufferPointer, path: String
    ) throws -> ([String: String], [String: SafeTensorInfo]) {
        func fail(_ tensor: String?, _ message: String) -> SafeTensorsError {
            SafeTensorsError(file: path, tensor: tensor, message)
        }

        let headerLength = UInt64(littleEndian: bytes.loadUnaligned(as: UInt64.self))
        guard headerLength > 0 else {
            throw fail(nil, "header length is 0; the file is corrupt or not a safetensors file")
        }
        guard headerLength <= UInt64(maxHeaderLength) else {
            throw fail(
                nil, "header length \(headerLength) bytes is above the \(maxHeaderLength / 1_000_000) MB limit; the file is corrupt or not a safetensors file"
            )
        }
        let n = Int(headerLength)
        guard n <= bytes.count - 8 else {
            throw fail(
                nil, "header length \(n) bytes runs past the end of the file (\(bytes.count) bytes in all); the file is truncated or not a safetensors file"
            )
        }
        let headerBytes = UnsafeRawBufferPointer(rebasing: bytes[8..<8 + n])
        let dataStart = 8 + n
        let dataLength = bytes.count - dataStart

        // Strict UTF-8: decoding replaces invalid sequences, so a lossless round trip proves validity.
        guard String(decoding: headerBytes, as: UTF8.self).utf8.elementsEqual(headerBytes) else {
            throw fail(nil, "header is not valid UTF-8; the file is corrupt or not a safetensors file")
        }
        let json: Any
        do {
            json = try JSONSerialization.jsonObject(with: Data(headerBytes), options: [.fragmentsAllowed])
        } catch {
            let detail = (error as NSError).userInfo[NSDebugDescriptionErrorKey] as? String
            throw fail(nil, "header is not valid JSON\(detail.map { " (\($0))" } ?? ""); the file is corrupt or not a safetensors file")
        }
        guard let object = json as? [String: Any] else {
            throw fail(nil, "header is not a JSON object; the file is corrupt or not a safetensors file")
        }

        var metadata: [String: String] = [:]
        if let raw = object["__metadata__"] {
            guard let map = raw as? [String: Any] else {
                throw fail(nil, "\"__metadata__\" must be a JSON object mapping strings to strings")
            }
            for key in map.keys.sorted() {
                guard let value = map[key] as? String else {
                    throw fail(nil, "\"__metadata__\" must map strings to strings, but the value of '\(key)' is not a string")
                }
                metadata[key] = value
            }
        }

        var tensors: [String: SafeTensorInfo] = [:]
        for name in object.keys.sorted() where name != "__metadata__" {
            guard let entry = object[name] as? [String: Any] else {
                throw fail(name, "header entry is not a JSON object with \"dtype\", \"shape\" and \"data_offsets\"")
            }

            guard let rawDType = entry["dtype"] else { throw fail(name, "header entry has no \"dtype\"") }
            guard let dtypeName = rawDType as? String else { throw fail(name, "\"dtype\" must be a string") }
            guard let dtype = SafeTensorsDType(rawValue: dtypeName) else {
                throw fail(name, "unsupported dtype '\(dtypeName)' (supported: \(SafeTensorsDType.supportedList))")
            }

            guard let rawShape = entry["shape"] else { throw fail(name, "header entry has no \"shape\"") }
            guard let shapeValues = rawShape as? [Any] else {
                throw fail(name, "\"shape\" must be an array of non-negative integers")
            }
            var shape: [Int] = []
            shape.reserveCapacity(shapeValues.count)
            for (i, value) in shapeValues.enumerated() {
                switch integer(value) {
                case .value(let d):
                    guard d >= 0 else { throw fail(name, "negative dimension \(d) at shape[\(i)]") }
                    shape.append(d)
                case .notInteger(let what):
                    throw fail(name, "shape[\(i)] must be a non-negative integer, not \(what)")
                case .outOfRange(let what):
                    throw fail(name, "shape[\(i)] = \(what) is too large")
                }
            }
            var elements = 1
            for d in shape {
                let (p, overflow) = elements.multipliedReportingOverflow(by: d)
                guard !overflow else { throw fail(name, "shape \(shape) has more elements than fit in a 64-bit integer") }
                elements = p
            }
            let (byteCount, overflow) = elements.multipliedReportingOverflow(by: dtype.byteSize)
            guard !overflow else {
                throw fail(name, "shape \(shape) of \(dtype.rawValue) needs more bytes than fit in a 64-bit integer")
            }

            guard let rawOffsets = entry["data_offsets"] else { throw fail(name, "header entry has no \"data_offsets\"") }
            guard let offsetValues = rawOffsets as? [Any], offsetValues.count == 2 else {
                throw fail(name, "\"data_offsets\" must be an array of two non-negative integers [begin, end]")
            }
            var offsets: [Int] = []
            for (i, value) in offsetValues.enumerated() {
                switch integer(value) {
                case .value(let o):
                    guard o >= 0 else { throw fail(name, "data_offsets[\(i)] = \(o) is negative") }
                    offsets.append(o)
                case .notInteger(let what):
                    throw fail(name, "data_offsets[\(i)] must be a non-negative integer, not \(what)")
                case .outOfRange(let what):
                    throw fail(name, "data_offsets[\(i)] = \(what) is out of range (the data block is \(dataLength) bytes)")
                }
            }
            let (begin, end) = (offsets[0], offsets[1])
            guard begin <= end else {
                throw fail(name, "data_offsets [\(begin), \(end)] end before they begin")
            }
            guard end <= dataLength else {
                throw fail(
                    name,
                    "data_offsets [\(begin), \(end)] are out of range: the data block is only \(dataLength) bytes (the file is truncated or corrupt)"
                )
            }
            guard byteCount == end - begin else {
                throw fail(
                    name,
                    "size mismatch: shape \(shape) of \(dtype.rawValue) needs \(byteCount) bytes (\(elements) elements x \(dtype.byteSize)), but data_offsets [\(begin), \(end)] span \(end - begin) bytes"
                )
            }
            tensors[name] = SafeTensorInfo(
                name: name, dtype: dtype, shape: shape, byteRange: (dataStart + begin)..<(dataStart + end))
        }

        // Overlaps: in order of start, each non-empty range must begin at or after the furthest end so far.
        let ordered = tensors.values.filter { !$0.byteRange.isEmpty }.sorted {
            ($0.byteRange.lowerBound, $0.byteRange.upperBound, $0.name)
                < ($1.byteRange.lowerBound, $1.byteRange.upperBound, $1.name)
        }
        var furthest: SafeTensorInfo? = nil
        for t in ordered {
            if let f = furthest, t.byteRange.lowerBound < f.byteRange.upperBound {
                func rel(_ r: Range<Int>) -> String { "[\(r.lowerBound - dataStart), \(r.upperBound - dataStart)]" }
                throw fail(
                    t.name,
                    "data_offsets \(rel(t.byteRange)) overlap those of tensor '\(f.name)' \(rel(f.byteRange)); the file is corrupt"
                )
            }
            if furthest == nil || t.byteRange.upperBound > furthest!.byteRange.upperBound { furthest = t }
        }
        return (metadata, tensors)
    }
}

// MARK: - Writing

public enum SafeTensorsWriter {
    public enum Payload {
        case floats(UnsafeBufferPointer<Float>)
        case int64s([Int64])

        var count: Int {
            switch self {
            case .floats(let b): return b.count
            case .int64s(let a): return a.count
            }
        }
    }

    public struct Entry {
        public let name: String
        public let dtype: SafeTensorsDType
        public let shape: [Int]
        public let payload: Payload

        public init(name: String, dtype: SafeTensorsDType, shape: [Int], payload: Payload) {
            self.name = name
            self.dtype = dtype
            self.shape = shape
            self.payload = payload
        }
    }

    /// Writes atomically (temp file in the same folder + fsync + rename). Floats are stored as
    /// `dtype` (F32, or converted to F16/BF16 with round-to-nearest-even; NaN stays NaN); int64s as
    /// I64 or I32 (values must fit). Tensors are laid out in name order, with an 8-byte-aligned
    /// header (the JSON padded with spaces). Checks that each shape's product equals its payload's
    /// count and that names are unique; errors name the tensor.
    public static func write(_ entries: [Entry], metadata: [String: String] = [:], to path: String) throws {
        try atomicWrite(encode(entries, metadata: metadata, path: path), to: path)
    }

    /// The file's bytes; `path` only names the file in errors.
    static func encode(_ entries: [Entry], metadata: [String: String], path: String) throws -> Data {
        func fail(_ tensor: String, _ message: String) -> SafeTensorsError {
            SafeTensorsError(file: path, tensor: tensor, message)
        }
        var seen = Set<String>()
        for e in entries {
            guard e.name != "__metadata__" else { throw fail(e.name, "the name \"__metadata__\" is reserved") }
            guard seen.insert(e.name).inserted else { throw fail(e.name, "duplicate tensor name") }
        }

        let sorted = entries.sorted { $0.name < $1.name }
        var layout: [(entry: Entry, begin: Int, end: Int)] = []
        var offset = 0
        for e in sorted {
            var elements = 1
            for d in e.shape {
                guard d >= 0 else { throw fail(e.name, "negative dimension \(d) in shape \(e.shape)") }
                let (p, overflow) = elements.multipliedReportingOverflow(by: d)
                guard !overflow else { throw fail(e.name, "shape \(e.shape) has more elements than fit in a 64-bit integer") }
                elements = p
            }
            guard elements == e.payload.count else {
                throw fail(e.name, "shape \(e.shape) has \(elements) elements but the payload holds \(e.payload.count) values")
            }
            switch (e.payload, e.dtype) {
            case (.floats, .F32), (.floats, .F16), (.floats, .BF16), (.int64s, .I64): break
            case (.int64s(let values), .I32):
                if let i = values.firstIndex(where: { Int32(exactly: $0) == nil }) {
                    throw fail(e.name, "value \(values[i]) at index \(i) does not fit in I32")
                }
            case (.floats, _):
                throw fail(e.name, "float payload cannot be stored as \(e.dtype.rawValue) (use F32, F16 or BF16)")
            case (.int64s, _):
                throw fail(e.name, "integer payload cannot be stored as \(e.dtype.rawValue) (use I64 or I32)")
            }
            let (bytes, o1) = elements.multipliedReportingOverflow(by: e.dtype.byteSize)
            let (end, o2) = offset.addingReportingOverflow(bytes)
            guard !o1, !o2 else { throw fail(e.name, "tensor data is too large") }
            layout.append((e, offset, end))
            offset = end
        }
        let dataLength = offset

        var header = "{"
        var first = true
        if !metadata.isEmpty {
            header += "\"__metadata__\":{"
            header += metadata.keys.sorted().map { "\(jsonString($0)):\(jsonString(metadata[$0]!))" }.joined(separator: ",")
            header += "}"
            first = false
        }
        for (e, begin, end) in layout {
            if !first { header += "," }
            first = false
            header += "\(jsonString(e.name)):{\"dtype\":\"\(e.dtype.rawValue)\",\"shape\":["
            header += e.shape.map(String.init).joined(separator: ",")
            header += "],\"data_offsets\":[\(begin),\(end)]}"
        }
        header += "}"
        var headerBytes = Array(header.utf8)
        while headerBytes.count % 8 != 0 { headerBytes.append(UInt8(ascii: " ")) }

        let dataStart = 8 + headerBytes.count
        var data = Data(count: dataStart + dataLength)
        data.withUnsafeMutableBytes { (out: UnsafeMutableRawBufferPointer) in
            let p = out.baseAddress!
            p.storeBytes(of: UInt64(headerBytes.count).littleEndian, as: UInt64.self)
            headerBytes.withUnsafeBytes { p.advanced(by: 8).copyMemory(from: $0.baseAddress!, byteCount: $0.count) }
            for (e, begin, _) in layout {
                let dst = p + dataStart + begin
                switch (e.payload, e.dtype) {
                case (.floats(let src), .F32):
                    #if _endian(little)
                    if let from = src.baseAddress { memcpy(dst, from, src.count * 4) }
                    #else
                    for i in 0..<src.count {
                        dst.storeBytes(of: src[i].bitPattern.littleEndian, toByteOffset: 4 * i, as: UInt32.self)
                    }
                    #endif
                case (.floats(let src), .F16):
                    for i in 0..<src.count {
                        dst.storeBytes(of: Float16(src[i]).bitPattern.littleEndian, toByteOffset: 2 * i, as: UInt16.self)
                    }
                case (.floats(let src), .BF16):
                    for i in 0..<src.count {
                        dst.storeBytes(of: bfloat16Bits(src[i]).littleEndian, toByteOffset: 2 * i, as: UInt16.self)
                    }
                case (.int64s(let src), .I64):
                    for i in 0..<src.count {
                        dst.storeBytes(of: src[i].littleEndian, toByteOffset: 8 * i, as: Int64.self)
                    }
                case (.int64s(let src), .I32):
                    for i in 0..<src.count {
                        dst.storeBytes(of: Int32(src[i]).littleEndian, toByteOffset: 4 * i, as: Int32.self)
                    }
                default:
                    preconditionFailure("unreachable: payload/dtype pairs are checked above")
                }
            }
        }
        return data
    }

    /// Float -> bfloat16 bits, rounding to nearest even; NaN stays (quiet) NaN with its sign.
    static func bfloat16Bits(_ x: Float) -> UInt16 {
        let bits = x.bitPattern
        if x.isNaN { return UInt16(truncatingIfNeeded: bits >> 16) | 0x0040 }
        let bias: UInt32 = 0x7FFF &+ ((bits >> 16) & 1)
        return UInt16(truncatingIfNeeded: (bits &+ bias) >> 16)
    }

    /// A JSON string literal (quotes, backslashes and control characters escaped).
    static func jsonString(_ s: String) -> String {
        var out = "\""
        for scalar in s.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            default:
                if scalar.value < 0x20 {
                    let hex = String(scalar.value, radix: 16)
                    out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
                } else {
                    out.unicodeScalars.append(scalar)
                }
            }
        }
        return out + "\""
    }
}
