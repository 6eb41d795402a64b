import Foundation

/// A tokenizer file that cannot be read or uses a feature this reader does not implement.
/// The message names the file and the part at fault.
public struct TokenizerError: Error, CustomStringConvertible, LocalizedError {
    public let message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
    public var errorDescription: String? { message }
}

/// Typed access to a parsed JSON document; every failure is a TokenizerError naming the file and
/// the field's path (e.g. `model.merges[12]`).
struct JSONFields {
    let file: String

    /// The type JSONSerialization gives `true` / `false` (distinct from numbers' NSNumber).
    private static let boolType: Any.Type = {
        let parsed = try? JSONSerialization.jsonObject(with: Data("[true]".utf8)) as? [Any]
        return type(of: parsed![0])
    }()

    static func isBool(_ value: Any) -> Bool { type(of: value) == boolType }
    static func isNull(_ value: Any?) -> Bool { value == nil || value is NSNull }

    func error(_ what: String) -> TokenizerError { TokenizerError("\(file): \(what)") }

    func parse(_ data: Data) throws -> [String: Any] {
        let object: Any
        do {
            object = try JSONSerialization.jsonObject(with: data, options: [])
        } catch {
            throw self.error("not valid JSON (\(Self.short(String(describing: error)))); truncated or not a tokenizer file?")
        }
        guard let dict = object as? [String: Any] else { throw self.error("the top level is not a JSON object") }
        return dict
    }

    func object(_ value: Any?, _ path: String) throws -> [String: Any] {
        guard let v = value else { throw error("missing field \(path)") }
        guard let d = v as? [String: Any] else { throw error("\(path) is not an object (\(Self.describe(v)))") }
        return d
    }

    func array(_ value: Any?, _ path: String) throws -> [Any] {
        guard let v = value else { throw error("missing field \(path)") }
        guard let a = v as? [Any] else { throw error("\(path) is not an array (\(Self.describe(v)))") }
        return a
    }

    func string(_ value: Any?, _ path: String) throws -> String {
        guard let v = value else { throw error("missing field \(path)") }
        guard let s = v as? String else { throw error("\(path) is not a string (\(Self.describe(v)))") }
        return s
    }

    func optionalString(_ value: Any?, _ path: String) throws -> String? {
        if Self.isNull(value) { return nil }
        return try string(value, path)
    }

    func bool(_ value: Any?, _ path: String, default def: Bool? = nil) throws -> Bool {
        if Self.isNull(value), let def = def { return def }
        guard let v = value, !(v is NSNull) else { throw error("missing field \(path)") }
        guard Self.isBool(v), let b = v as? Bool else { throw error("\(path) is not a boolean (\(Self.describe(v)))") }
        return b
    }

    func int(_ value: Any?, _ path: String) throws -> Int {
        guard let v = value else { throw error("missing field \(path)") }
        guard !Self.isBool(v), let n = v as? NSNumber, let i = Int(exactly: n.doubleValue) ?? (v as? Int) else {
            throw error("\(path) is not an integer (\(Self.describe(v)))")
        }
        return i
    }

    static func short(_ s: String, _ limit: Int = 120) -> String {
        s.utf8.count <= limit ? s : String(decoding: Array(s.utf8.prefix(limit)), as: UTF8.self) + "... (\(s.utf8.count) bytes)"
    }

    /// A value's JSON kind, for messages (never the whole value: it may be huge).
    static func describe(_ v: Any) -> String {
        if v is NSNull { return "null" }
        if isBool(v) { return "a boolean" }
        if v is NSNumber { return "a number" }
        if let s = v as? String { return "the string \"\(short(s, 60))\"" }
        if v is [Any] { return "an array" }
        if v is [String: Any] { return "an object" }
        return "\(type(of: v))"
    }
}
