import Foundation
import XCTest

@testable import ParScaleVulkan

/// The push constants of every shipped shader, read from its SPIR-V (the committed bytes in
/// Generated/Shaders.swift), against the Swift struct the kernel table names for it: the block's
/// size and each field's offset and type. A word added, dropped or retyped on one side only fails
/// here (before, a missing word was silently zero on the GPU). No Vulkan device needed.
final class VulkanPushConstantTests: XCTestCase {
    /// Tests/<target>/this file -> the package (no test-support import, so the file moves between targets as is).
    static let packageRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent()

    func testEveryShadersPushConstantBlockMatchesItsSwiftStruct() throws {
        XCTAssertFalse(ShaderTable.all.isEmpty)
        for shader in ShaderTable.all {
            let module = try SPIRVModule(base64: shader.spirv, name: shader.name)
            let block = try module.pushConstantBlock()
            let swift = try SwiftPushLayout(shader.pushConstantType)
            let what = "\(shader.name).comp (Swift \(swift.typeName))"
            XCTAssertEqual(swift.size, shader.pushConstantBytes, what)
            XCTAssertEqual(block.size, swift.size, "\(what): push-constant bytes in the SPIR-V vs MemoryLayout.size")
            XCTAssertLessThanOrEqual(swift.size, 128, "\(what): more than the 128 bytes every Vulkan device offers")
            let spirvFields = block.fields.map { "\($0.offset): \($0.kind)" }
            let swiftFields = swift.fields.map { "\($0.offset): \($0.kind)" }
            XCTAssertEqual(
                spirvFields, swiftFields,
                "\(what): fields (byte offset: type) differ; Swift fields \(swift.fields.map { "\($0.name) @\($0.offset)" })")
        }
    }

    /// Each shader's storage buffers are bindings 0 ..< the table's count, as the pipeline layout has them.
    func testBindingCountsMatchTheSPIRV() throws {
        for shader in ShaderTable.all {
            let bindings = try SPIRVModule(base64: shader.spirv, name: shader.name).bindings()
            XCTAssertEqual(bindings, Array(0..<shader.bindings), "\(shader.name).comp: descriptor-set 0 bindings")
        }
    }

    /// Field names too (the SPIR-V is built without debug names): Shaders/push_constants.glsl
    /// against the Swift structs, field by field, nested structs flattened.
    func testSwiftFieldNamesMatchPushConstantsGLSL() throws {
        let source = try String(contentsOf: Self.packageRoot.appendingPathComponent("Shaders/push_constants.glsl"), encoding: .utf8)
        let glsl = try GLSLStructs(source)
        var checked = Set<String>()
        for shader in ShaderTable.all {
            let swift = try SwiftPushLayout(shader.pushConstantType)
            guard checked.insert(swift.typeName).inserted else { continue }
            let fields = try glsl.flatten(swift.typeName)
            XCTAssertEqual(
                fields.map { "\($0.name): \($0.kind)" }, swift.fields.map { "\($0.name): \($0.kind)" },
                "\(swift.typeName): Shaders/push_constants.glsl vs PushConstants.swift")
        }
        XCTAssertEqual(Set(glsl.structs.keys).subtracting(checked).subtracting(["AttentionHeader"]), [], "structs no shader uses")
    }

    /// The table lists every Shaders/*.comp once, in index order.
    func testTheKernelTableListsEveryShader() throws {
        let files = try FileManager.default.contentsOfDirectory(atPath: Self.packageRoot.appendingPathComponent("Shaders").path)
        let stems = files.filter { $0.hasSuffix(".comp") }.map { String($0.dropLast(5)) }.sorted()
        XCTAssertEqual(ShaderTable.all.map(\.name), stems)
        XCTAssertEqual(ShaderTable.all.map(\.index), Array(ShaderTable.all.indices))
    }

    /// The parser and the Swift walk on a block known by hand: nested struct, uint and float.
    func testTheLayoutReadersOnKnownStructs() throws {
        let attention = try SwiftPushLayout(AttentionPush.self)
        XCTAssertEqual(attention.size, 56)
        XCTAssertEqual(attention.fields.first?.name, "shape.rows")
        XCTAssertEqual(attention.fields.last?.name, "keepLSE")
        // The walk finds the offsets MemoryLayout reports.
        XCTAssertEqual(attention.fields.first { $0.name == "keepLSE" }?.offset, MemoryLayout<AttentionPush>.offset(of: \.keepLSE))
        XCTAssertEqual(
            attention.fields.first { $0.name == "shape.capacity" }?.offset, MemoryLayout<AttentionPush>.offset(of: \.shape.capacity))
        let rope = try SwiftPushLayout(RoPEPush.self)
        XCTAssertEqual(rope.fields.map(\.kind), Array(repeating: "uint", count: 7) + ["float", "float"])
        XCTAssertEqual(rope.fields.first { $0.name == "sign" }?.offset, MemoryLayout<RoPEPush>.offset(of: \.sign))
        let block = try SPIRVModule(base64: Shader.attention.spirv, name: "attention").pushConstantBlock()
        XCTAssertEqual(block.size, 56)
        XCTAssertEqual(block.fields.map(\.offset), Array(stride(from: 0, to: 56, by: 4)))
    }
}

/// A field of a push-constant block: byte offset, scalar type (uint, int, float) and, where known, name.
struct PushField {
    let name: String
    let offset: Int
    let kind: String
}

struct LayoutError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

/// What a SPIR-V module declares, read from its words: the push-constant block (OpVariable in the
/// PushConstant storage class -> pointer -> OpTypeStruct, members placed by OpMemberDecorate
/// Offset, nested structs flattened) and the descriptor bindings (OpDecorate Binding).
struct SPIRVModule {
    let name: String
    private var scalars: [UInt32: (kind: String, bytes: Int)] = [:]
    private var structs: [UInt32: [UInt32]] = [:]
    private var pointers: [UInt32: (storage: UInt32, type: UInt32)] = [:]
    private var variables: [(type: UInt32, id: UInt32, storage: UInt32)] = []
    private var memberOffsets: [UInt32: [Int: Int]] = [:]
    private var bindingOf: [UInt32: Int] = [:]
    private var setOf: [UInt32: Int] = [:]

    // Opcodes, storage classes and decorations of the SPIR-V specification.
    static let opTypeInt: UInt32 = 21, opTypeFloat: UInt32 = 22, opTypeStruct: UInt32 = 30, opTypePointer: UInt32 = 32
    static let opVariable: UInt32 = 59, opDecorate: UInt32 = 71, opMemberDecorate: UInt32 = 72
    static let pushConstant: UInt32 = 9, offset: UInt32 = 35, binding: UInt32 = 33, descriptorSet: UInt32 = 34

    init(base64: String, name: String) throws {
        self.name = name
        guard let data = Data(base64Encoded: base64), data.count % 4 == 0, data.count >= 20 else {
            throw LayoutError("\(name): not SPIR-V")
        }
        let words = data.withUnsafeBytes { Array($0.bindMemory(to: UInt32.self)) }
        guard words[0] == 0x0723_0203 else { throw LayoutError("\(name): bad SPIR-V magic \(words[0])") }
        var i = 5
        while i < words.count {
            let opcode = words[i] & 0xFFFF, count = Int(words[i] >> 16)
            guard count > 0, i + count <= words.count else { throw LayoutError("\(name): truncated instruction at word \(i)") }
            let operands = Array(words[(i + 1)..<(i + count)])
            switch opcode {
            case Self.opTypeInt: scalars[operands[0]] = (operands[2] == 0 ? "uint" : "int", Int(operands[1]) / 8)
            case Self.opTypeFloat: scalars[operands[0]] = ("float", Int(operands[1]) / 8)
            case Self.opTypeStruct: structs[operands[0]] = Array(operands.dropFirst())
            case Self.opTypePointer: pointers[operands[0]] = (operands[1], operands[2])
            case Self.opVariable: variables.append((operands[0], operands[1], operands[2]))
            case Self.opMemberDecorate where operands[2] == Self.offset:
                memberOffsets[operands[0], default: [:]][Int(operands[1])] = Int(operands[3])
            case Self.opDecorate where operands[1] == Self.binding: bindingOf[operands[0]] = Int(operands[2])
            case Self.opDecorate where operands[1] == Self.descriptorSet: setOf[operands[0]] = Int(operands[2])
            default: break
            }
            i += count
        }
    }

    /// The block's scalar fields in offset order, and its size (the end of its last field).
    func pushConstantBlock() throws -> (size: Int, fields: [PushField]) {
        let blocks = variables.filter { $0.storage == Self.pushConstant }
        guard blocks.count == 1, let pointer = pointers[blocks[0].type] else {
            throw LayoutError("\(name): \(blocks.count) push-constant variables, expected 1")
        }
        var fields: [PushField] = []
        var size = 0
        func walk(_ type: UInt32, at base: Int, path: String) throws {
            if let scalar = scalars[type] {
                fields.append(PushField(name: path, offset: base, kind: scalar.kind))
                size = max(size, base + scalar.bytes)
                return
            }
            guard let members = structs[type] else { throw LayoutError("\(name): \(path) is neither a scalar nor a struct") }
            for (m, member) in members.enumerated() {
                guard let offset = memberOffsets[type]?[m] else { throw LayoutError("\(name): \(path) member \(m) has no Offset") }
                try walk(member, at: base + offset, path: "\(path)[\(m)]")
            }
        }
        try walk(pointer.type, at: 0, path: "block")
        return (size, fields.sorted { $0.offset < $1.offset })
    }

    /// The binding numbers of the module's descriptor-set 0 variables, sorted.
    func bindings() -> [Int] {
        variables.compactMap { v in setOf[v.id] == 0 ? bindingOf[v.id] : nil }.sorted()
    }
}

/// A Swift push-constant struct's layout, found without listing its fields by hand: a value of the
/// type is loaded from memory whose 32-bit word w holds w + 1, then each stored field (Mirror, in
/// declaration order, nested structs flattened) is read back: its number is its word, so its
/// offset is what MemoryLayout<T>.offset(of:) gives. Fields must be UInt32, Int32 or Float.
struct SwiftPushLayout {
    let typeName: String
    let size: Int
    let fields: [PushField]

    init(_ pushType: Any.Type) throws {
        func open<T>(_: T.Type) throws -> (Int, [PushField]) {
            let size = MemoryLayout<T>.size
            let raw = UnsafeMutableRawPointer.allocate(byteCount: max(size, 4), alignment: 16)
            defer { raw.deallocate() }
            raw.initializeMemory(as: UInt8.self, repeating: 0, count: max(size, 4))
            for w in 0..<(size / 4) { raw.storeBytes(of: UInt32(w + 1), toByteOffset: w * 4, as: UInt32.self) }
            let value = raw.load(as: T.self)
            var fields: [PushField] = []
            func walk(_ mirror: Mirror, prefix: String) throws {
                for child in mirror.children {
                    let name = prefix + (child.label ?? "?")
                    let word: UInt32, kind: String
                    switch child.value {
                    case let v as UInt32: (word, kind) = (v, "uint")
                    case let v as Int32: (word, kind) = (UInt32(bitPattern: v), "int")
                    case let v as Float: (word, kind) = (v.bitPattern, "float")
                    default:
                        let nested = Mirror(reflecting: child.value)
                        guard nested.displayStyle == .struct else {
                            throw LayoutError("\(T.self).\(name): \(type(of: child.value)) is not UInt32, Int32, Float or a struct of them")
                        }
                        try walk(nested, prefix: name + ".")
                        continue
                    }
                    guard word >= 1, Int(word) <= size / 4 else { throw LayoutError("\(T.self).\(name): not at a 4-byte word") }
                    fields.append(PushField(name: name, offset: Int(word - 1) * 4, kind: kind))
                }
            }
            try walk(Mirror(reflecting: value), prefix: "")
            return (size, fields.sorted { $0.offset < $1.offset })
        }
        typeName = "\(pushType)"
        (size, fields) = try _openExistential(pushType, do: open)
    }
}

/// The structs of Shaders/push_constants.glsl: `struct Name { type a, b; Other c; ... };`, comments
/// dropped; fields of a struct-typed member flattened as `c.field`.
struct GLSLStructs {
    var structs: [String: [(type: String, name: String)]] = [:]

    init(_ source: String) throws {
        let text = source.split(separator: "\n", omittingEmptySubsequences: false)
            .map { line in line.range(of: "//").map { String(line[..<$0.lowerBound]) } ?? String(line) }
            .joined(separator: " ")
        let pattern = try NSRegularExpression(pattern: #"struct\s+(\w+)\s*\{([^}]*)\}\s*;"#)
        for match in pattern.matches(in: text, range: NSRange(text.startIndex..., in: text)) {
            let name = String(text[Range(match.range(at: 1), in: text)!])
            let body = String(text[Range(match.range(at: 2), in: text)!])
            var members: [(type: String, name: String)] = []
            for declaration in body.split(separator: ";") {
                let words = declaration.split(whereSeparator: { $0 == " " || $0 == "," })
                guard let type = words.first else { continue }
                members += words.dropFirst().map { (String(type), String($0)) }
            }
            structs[name] = members
        }
    }

    func flatten(_ name: String, prefix: String = "") throws -> [PushField] {
        guard let members = structs[name] else { throw LayoutError("no struct \(name) in Shaders/push_constants.glsl") }
        return try members.flatMap { member -> [PushField] in
            switch member.type {
            case "uint", "int", "float": return [PushField(name: prefix + member.name, offset: -1, kind: member.type)]
            default: return try flatten(member.type, prefix: prefix + member.name + ".")
            }
        }
    }
}
