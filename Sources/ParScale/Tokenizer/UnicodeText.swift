import Foundation

/// Per-scalar classes for the pre-tokenizer and the NFC quick check, as bit flags.
enum CharClass {
    static let letter: UInt8 = 1      // \p{L}: Lu Ll Lt Lm Lo
    static let number: UInt8 = 2      // \p{N}: Nd Nl No
    static let space: UInt8 = 4       // \s: Unicode White_Space (as Oniguruma's \s)
    static let nfcMaybe: UInt8 = 8    // NFC may change it or the scalar before it

    /// Scalars below this have a precomputed entry (BMP and planes 1-2); above, computed.
    static let tableLimit = 0x30000

    static let table: UnsafeMutablePointer<UInt8> = {
        let t = UnsafeMutablePointer<UInt8>.allocate(capacity: tableLimit)
        for v in 0..<tableLimit {
            t[v] = (0xD800...0xDFFF).contains(v) ? 0 : compute(UInt32(v))
        }
        return t
    }()

    static func compute(_ v: UInt32) -> UInt8 {
        guard let s = Unicode.Scalar(v) else { return 0 }
        let p = s.properties
        var f: UInt8 = 0
        switch p.generalCategory {
        case .uppercaseLetter, .lowercaseLetter, .titlecaseLetter, .modifierLetter, .otherLetter:
            f |= letter
        case .decimalNumber, .letterNumber, .otherNumber:
            f |= number
        case .nonspacingMark, .spacingMark, .enclosingMark:
            f |= nfcMaybe
        default: break
        }
        if p.isWhitespace { f |= space }
        // NFC_QC = No (full composition exclusions), combining classes other than 0, marks
        // (above), and the conjoining Hangul vowels and trailing consonants that compose with
        // the syllable before them.
        if p.isFullCompositionExclusion || p.canonicalCombiningClass.rawValue != 0 || (0x1160...0x11FF).contains(v) {
            f |= nfcMaybe
        }
        return f
    }

    @inline(__always) static func of(_ v: UInt32) -> UInt8 {
        v < UInt32(tableLimit) ? table[Int(v)] : compute(v) | (v >= 0xE0000 ? nfcMaybe : 0)
    }
}

enum UTF8Text {
    /// The scalar at p[i] and its length in bytes; p must hold valid UTF-8.
    @inline(__always) static func decode(_ p: UnsafePointer<UInt8>, _ i: Int) -> (UInt32, Int) {
        let b0 = UInt32(p[i])
        if b0 < 0x80 { return (b0, 1) }
        if b0 < 0xE0 { return ((b0 & 0x1F) << 6 | UInt32(p[i + 1] & 0x3F), 2) }
        if b0 < 0xF0 {
            return ((b0 & 0x0F) << 12 | UInt32(p[i + 1] & 0x3F) << 6 | UInt32(p[i + 2] & 0x3F), 3)
        }
        return ((b0 & 0x07) << 18 | UInt32(p[i + 1] & 0x3F) << 12 | UInt32(p[i + 2] & 0x3F) << 6
                | UInt32(p[i + 3] & 0x3F), 4)
    }

    /// Offset of the first byte that is not part of valid UTF-8 (overlong forms, surrogates and
    /// scalars past U+10FFFF are invalid), or nil when all of it is valid.
    static func firstInvalid(_ p: UnsafePointer<UInt8>, _ n: Int) -> Int? {
        var i = 0
        while i < n {
            // Eight ASCII bytes at a time.
            while i + 8 <= n {
                let w = UnsafeRawPointer(p + i).loadUnaligned(as: UInt64.self)
                if w & 0x8080_8080_8080_8080 != 0 { break }
                i += 8
            }
            if i >= n { break }
            let b0 = p[i]
            if b0 < 0x80 { i += 1; continue }
            var len = 0
            var lo: UInt8 = 0x80, hi: UInt8 = 0xBF
            switch b0 {
            case 0xC2...0xDF: len = 2
            case 0xE0: len = 3; lo = 0xA0
            case 0xE1...0xEC, 0xEE...0xEF: len = 3
            case 0xED: len = 3; hi = 0x9F
            case 0xF0: len = 4; lo = 0x90
            case 0xF1...0xF3: len = 4
            case 0xF4: len = 4; hi = 0x8F
            default: return i
            }
            if i + len > n { return i }
            if p[i + 1] < lo || p[i + 1] > hi { return i }
            for k in 2..<max(len, 2) where p[i + k] & 0xC0 != 0x80 { return i }
            i += len
        }
        return nil
    }
}

/// NFC of UTF-8 text. ASCII never changes and never composes with the scalar before it, so
/// only runs of non-ASCII bytes (with the one ASCII scalar before them, which may be the first
/// half of a composition) that contain a scalar flagged `nfcMaybe` go through Foundation.
enum NFC {
    /// Appends NFC(p[0..<n]) to out; returns false (and appends nothing) when the text is
    /// already NFC by the quick check, so the caller can use the input directly.
    static func normalize(_ p: UnsafePointer<UInt8>, _ n: Int, into out: inout [UInt8]) -> Bool {
        var i = 0
        var copied = 0          // bytes of p already in out
        var changed = false
        while i < n {
            if p[i] < 0x80 { i += 1; continue }
            let runStart = i
            var maybe = false
            while i < n && p[i] >= 0x80 {
                let (c, l) = UTF8Text.decode(p, i)
                if CharClass.of(c) & CharClass.nfcMaybe != 0 { maybe = true }
                i += l
            }
            if !maybe { continue }
            let from = runStart > 0 ? runStart - 1 : runStart
            if !changed { out.reserveCapacity(out.count + n + 16); changed = true }
            out.append(contentsOf: UnsafeBufferPointer(start: p + copied, count: from - copied))
            let s = String(decoding: UnsafeBufferPointer(start: p + from, count: i - from), as: UTF8.self)
            out.append(contentsOf: s.precomposedStringWithCanonicalMapping.utf8)
            copied = i
        }
        if changed { out.append(contentsOf: UnsafeBufferPointer(start: p + copied, count: n - copied)) }
        return changed
    }
}
