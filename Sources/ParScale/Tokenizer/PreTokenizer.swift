import Foundation

/// How text between added tokens is cut into pre-tokens before BPE (the `Split` of the file's
/// pattern with behaviour `Isolated`, or ByteLevel's own GPT-2 pattern, or no split at all).
enum PreTokenizerKind {
    case none
    /// The exact Qwen2 pattern, by a hand-written scanner (`Qwen2Scanner`).
    case qwen2
    /// Any other pattern, through NSRegularExpression (ICU; leftmost-first backtracking as
    /// Oniguruma). `source` is the file's pattern, for messages.
    case regex(NSRegularExpression, source: String)
}

enum Patterns {
    static let qwen2 = #"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"#
    static let gpt2 = #"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"#

    /// Oniguruma's `\s` / `\S` are Unicode White_Space; ICU's `\s` is [\t\n\f\r\p{Z}] (without
    /// \v and U+0085), so they are rewritten to the property before compiling.
    static func icuPattern(_ onig: String) -> String {
        var out = ""
        var it = Array(onig.unicodeScalars)[...]
        while let c = it.popFirst() {
            if c == "\\", let n = it.popFirst() {
                switch n {
                case "s": out += #"\p{White_Space}"#
                case "S": out += #"\P{White_Space}"#
                default: out.unicodeScalars.append(c); out.unicodeScalars.append(n)
                }
            } else {
                out.unicodeScalars.append(c)
            }
        }
        return out
    }

    static func compile(_ pattern: String, file: String, isLiteral: Bool) throws -> NSRegularExpression {
        if pattern.utf8.count > 1 << 16 {
            throw TokenizerError("\(file): the pre_tokenizer's pattern \"\(JSONFields.short(pattern, 60))\" is too long (\(pattern.utf8.count) bytes; limit 65536)")
        }
        let icu = isLiteral ? NSRegularExpression.escapedPattern(for: pattern) : icuPattern(pattern)
        do {
            return try NSRegularExpression(pattern: icu, options: [])
        } catch {
            throw TokenizerError("\(file): the pre_tokenizer's regex \"\(JSONFields.short(pattern, 200))\" does not compile (\(error))")
        }
    }

    /// Pre-token end offsets of the regex's Isolated split of p[0..<n] (matches and the gaps
    /// between them; no empty pieces), in order.
    static func split(_ regex: NSRegularExpression, _ p: UnsafePointer<UInt8>, _ n: Int, into ends: inout [Int]) {
        let s = String(decoding: UnsafeBufferPointer(start: p, count: n), as: UTF8.self)
        // UTF-16 offset -> UTF-8 offset.
        var map = [Int]()
        map.reserveCapacity(n + 1)
        var i = 0
        while i < n {
            let (c, l) = UTF8Text.decode(p, i)
            map.append(i)
            if c >= 0x10000 { map.append(i) }
            i += l
        }
        map.append(n)
        let ns = s as NSString
        var prev = 0
        for m in regex.matches(in: s, options: [], range: NSRange(location: 0, length: ns.length)) {
            let r = m.range
            if r.length == 0 { continue }
            let a = map[r.location], b = map[r.location + r.length]
            if a > prev { ends.append(a) }
            ends.append(b)
            prev = b
        }
        if n > prev { ends.append(n) }
    }
}

/// The Qwen2 pattern
/// `(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`
/// as a scanner over valid UTF-8, with the regex's leftmost-first, greedy, backtracking result:
/// every position starts a match, so the split is the sequence of matches.
enum Qwen2Scanner {
    @inline(__always) static func isCRLF(_ c: UInt32) -> Bool { c == 0x0A || c == 0x0D }

    /// End of the match that starts at i (< e) in p[..<e].
    @inline(__always)
    static func next(_ p: UnsafePointer<UInt8>, _ i: Int, _ e: Int) -> Int {
        let (c, l) = UTF8Text.decode(p, i)
        let f = CharClass.of(c)
        // 1. (?i:'s|'t|'re|'ve|'m|'ll|'d); Oniguruma's case folding also takes U+017F (ſ) for s.
        if c == 0x27 && i + 1 < e {
            let c1 = p[i + 1] | 0x20
            switch c1 {
            case 0x73, 0x74, 0x6D, 0x64: return i + 2                             // s t m d
            case 0x72, 0x76: if i + 2 < e && p[i + 2] | 0x20 == 0x65 { return i + 3 }  // re ve
            case 0x6C: if i + 2 < e && p[i + 2] | 0x20 == 0x6C { return i + 3 }        // ll
            default:
                if p[i + 1] == 0xC5 && i + 2 < e && p[i + 2] == 0xBF { return i + 3 }    // ſ
            }
        }
        // 2. [^\r\n\p{L}\p{N}]?\p{L}+
        if f & CharClass.letter != 0 { return letters(p, i + l, e) }
        if f & CharClass.number != 0 { return i + l }                             // 3. \p{N}
        if !isCRLF(c) && i + l < e {
            let (c2, l2) = UTF8Text.decode(p, i + l)
            if CharClass.of(c2) & CharClass.letter != 0 { return letters(p, i + l + l2, e) }
        }
        // 4. ` ?[^\s\p{L}\p{N}]+[\r\n]*`
        let other = CharClass.letter | CharClass.number | CharClass.space
        if f & CharClass.space == 0 { return newlines(p, others(p, i + l, e), e) }
        if c == 0x20 && i + 1 < e {
            let (c2, l2) = UTF8Text.decode(p, i + 1)
            if CharClass.of(c2) & other == 0 { return newlines(p, others(p, i + 1 + l2, e), e) }
        }
        // c is white space. Its run [i, j), the start of its last \r or \n, of its last scalar.
        var j = i
        var lastNewline = -1
        var lastStart = i
        var count = 0
        while j < e {
            let (d, m) = UTF8Text.decode(p, j)
            if CharClass.of(d) & CharClass.space == 0 { break }
            if isCRLF(d) { lastNewline = j }
            lastStart = j
            count += 1
            j += m
        }
        if lastNewline >= 0 { return lastNewline + 1 }                          // 5. \s*[\r\n]+
        if j == e || count == 1 { return j }                                     // 6. / 7.
        return lastStart                                                         // 6. \s+(?!\S)
    }

    @inline(__always) static func letters(_ p: UnsafePointer<UInt8>, _ start: Int, _ e: Int) -> Int {
        var j = start
        while j < e {
            let b = p[j]
            if b < 0x80 {
                // ASCII letters: (b | 0x20) in a...z
                if UInt8(truncatingIfNeeded: (b | 0x20) &- 0x61) < 26 { j += 1; continue }
                return j
            }
            let (d, m) = UTF8Text.decode(p, j)
            if CharClass.of(d) & CharClass.letter == 0 { return j }
            j += m
        }
        return j
    }

    /// [^\s\p{L}\p{N}]*
    @inline(__always) static func others(_ p: UnsafePointer<UInt8>, _ start: Int, _ e: Int) -> Int {
        let stop = CharClass.letter | CharClass.number | CharClass.space
        var j = start
        while j < e {
            let (d, m) = UTF8Text.decode(p, j)
            if CharClass.of(d) & stop != 0 { return j }
            j += m
        }
        return j
    }

    /// [\r\n]*
    @inline(__always) static func newlines(_ p: UnsafePointer<UInt8>, _ start: Int, _ e: Int) -> Int {
        var j = start
        while j < e && (p[j] == 0x0A || p[j] == 0x0D) { j += 1 }
        return j
    }
}
