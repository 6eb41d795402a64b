/// GPT-2's byte-to-unicode map (the `ByteLevel` pre-tokenizer and decoder): printable bytes
/// `!`..`~`, `¡`..`¬`, `®`..`ÿ` map to the scalar of the same value, the other 68 bytes to
/// U+0100, U+0101, ... in increasing byte order.
enum ByteLevel {
    static let byteToScalar: [UInt32] = {
        var printable = [Bool](repeating: false, count: 256)
        for b in 0x21...0x7E { printable[b] = true }
        for b in 0xA1...0xAC { printable[b] = true }
        for b in 0xAE...0xFF { printable[b] = true }
        var map = [UInt32](repeating: 0, count: 256)
        var n: UInt32 = 0
        for b in 0..<256 {
            if printable[b] { map[b] = UInt32(b) } else { map[b] = 256 + n; n += 1 }
        }
        return map
    }()

    /// Scalar value -> byte, for scalars below 0x144 (the map's range); -1 when not in the alphabet.
    static let scalarToByte: [Int16] = {
        var inverse = [Int16](repeating: -1, count: 0x144)
        for (b, s) in byteToScalar.enumerated() { inverse[Int(s)] = Int16(b) }
        return inverse
    }()

    /// The symbol string of one byte (as it appears in a byte-level vocabulary).
    static func symbol(_ byte: UInt8) -> String {
        String(Character(Unicode.Scalar(byteToScalar[Int(byte)])!))
    }

    /// The bytes a vocabulary string stands for, or nil if a character is outside the alphabet.
    static func bytes(of token: String) -> [UInt8]? {
        var out = [UInt8]()
        out.reserveCapacity(token.utf8.count)
        for s in token.unicodeScalars {
            let v = Int(s.value)
            guard v < scalarToByte.count, scalarToByte[v] >= 0 else { return nil }
            out.append(UInt8(scalarToByte[v]))
        }
        return out
    }
}
