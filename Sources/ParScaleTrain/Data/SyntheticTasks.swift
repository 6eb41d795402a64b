import ParScale

/// Which part of a corpus: the two are disjoint by construction.
public enum DataSplit: String, Codable, Sendable { case train, validation }

/// One line of the synthetic corpus: `prompt + answer + "\n"`, pure ASCII. The prompt ends with
/// its marker (`=` for arithmetic, `-> ` otherwise), so greedy decoding after the prompt should
/// produce exactly `answer` and then a newline.
public struct TaskExample: Equatable, Sendable {
    public let task: String
    public let prompt: String
    public let answer: String
    public init(task: String, prompt: String, answer: String) {
        self.task = task
        self.prompt = prompt
        self.answer = answer
    }
    public var text: String { prompt + answer + "\n" }
}

/// FNV-1a, 64 bits: a stable hash (unlike `hashValue`, which is randomised per process).
public enum FNV1a {
    public static let offsetBasis: UInt64 = 0xCBF2_9CE4_8422_2325
    public static let prime: UInt64 = 0x0000_0100_0000_01B3

    /// `seed` continues a hash: hash(b, seed: hash(a)) == hash(a + b).
    public static func hash<S: Sequence>(_ bytes: S, seed: UInt64 = offsetBasis) -> UInt64 where S.Element == UInt8 {
        var h = seed
        for b in bytes { h = (h ^ UInt64(b)) &* prime }
        return h
    }

    public static func hash(_ text: String) -> UInt64 { hash(text.utf8) }
}

/// SplitMix64 finaliser, used to derive independent generator seeds from (seed, index) pairs.
@inline(__always)
func mixSeed(_ a: UInt64, _ b: UInt64) -> UInt64 {
    func splitMix(_ x: UInt64) -> UInt64 {
        var z = x &+ 0x9E37_79B9_7F4A_7C15
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
    return splitMix(splitMix(a) ^ b)
}

/// A built-in, seeded, effectively endless corpus of small reasoning tasks (arithmetic with worked
/// steps, program traces, bracket matching, sorting, key-value lookup, string reversal, letter
/// counting). Each task draws its size at random, so a tiny model can learn the easy cases but not
/// all of them.
///
/// Example lines (seed 0 has lines like these):
///
///     347+85=7+5+0=12,4+8+1=13,3+0+1=4;432
///     432-85=12-5-0=7,13-8-1=4,4-0-1=3;347
///     a=3;b=a*2;a=b-1;print(a) -> a=3,b=6,a=5;5
///     s=1;for i=1..4:s=s*2;print(s) -> 2,4,8,16;16
///     brackets ([]{()}) -> yes depth 3
///     sort 5 27 9 1 -> 1 5 9 27
///     k3=7 k1=2 k9=4 ? k1 -> 2
///     reverse hello -> olleh
///     count b in abbac -> 2
public enum SyntheticTasks {
    public static let taskNames: [String] = [
        "add", "sub", "program", "loop", "brackets", "sort", "lookup", "reverse", "count",
    ]

    /// Deterministic: the same (seed, index) always gives the same example.
    public static func example(seed: UInt64, index: UInt64) -> TaskExample {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(96)
        let (task, promptLength) = write(seed: seed, index: index, into: &bytes)
        return makeExample(task: task, promptLength: promptLength, bytes: bytes)
    }

    /// About 1 in 20 prompts (by FNV-1a of the prompt's bytes) belong to validation.
    public static func split(of prompt: String) -> DataSplit { split(ofPromptHash: FNV1a.hash(prompt.utf8)) }

    /// The first example at or after `cursor` that belongs to `split`, and the cursor just after it.
    public static func next(seed: UInt64, split: DataSplit, cursor: UInt64) -> (TaskExample, UInt64) {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(96)
        let (index, task, promptLength) = nextIndex(seed: seed, split: split, from: cursor, into: &bytes)
        return (makeExample(task: task, promptLength: promptLength, bytes: bytes), index &+ 1)
    }

    // MARK: - Internals shared with TokenStream

    static func split(ofPromptHash h: UInt64) -> DataSplit { h % 20 == 0 ? .validation : .train }

    static func split(ofPromptBytes bytes: [UInt8], count: Int) -> DataSplit {
        var h = FNV1a.offsetBasis
        bytes.withUnsafeBufferPointer { p in
            for i in 0..<count { h = (h ^ UInt64(p[i])) &* FNV1a.prime }
        }
        return split(ofPromptHash: h)
    }

    /// Writes the line at (seed, index) of any split into `bytes`, newline included.
    /// Returns the index of the first example at or after `from` in `split`, with its line in `bytes`.
    static func nextIndex(
        seed: UInt64, split: DataSplit, from: UInt64, into bytes: inout [UInt8]
    ) -> (index: UInt64, task: Int, promptLength: Int) {
        var index = from
        while true {
            let (task, promptLength) = write(seed: seed, index: index, into: &bytes)
            if self.split(ofPromptBytes: bytes, count: promptLength) == split { return (index, task, promptLength) }
            index &+= 1
        }
    }

    static func makeExample(task: Int, promptLength: Int, bytes: [UInt8]) -> TaskExample {
        TaskExample(
            task: taskNames[task],
            prompt: String(decoding: bytes[0..<promptLength], as: UTF8.self),
            answer: String(decoding: bytes[promptLength..<(bytes.count - 1)], as: UTF8.self))
    }

    /// Writes the line at (seed, index) into `bytes` (replacing its contents), newline included.
    @discardableResult
    static func write(seed: UInt64, index: UInt64, into bytes: inout [UInt8]) -> (task: Int, promptLength: Int) {
        bytes.removeAll(keepingCapacity: true)
        var w = LineWriter(rng: SeededGenerator(seed: mixSeed(seed, index)))
        swap(&w.bytes, &bytes)
        let task = w.int(taskNames.count)
        let promptLength: Int
        switch task {
        case 0: promptLength = w.addition()
        case 1: promptLength = w.subtraction()
        case 2: promptLength = w.program()
        case 3: promptLength = w.loop()
        case 4: promptLength = w.brackets()
        case 5: promptLength = w.sort()
        case 6: promptLength = w.lookup()
        case 7: promptLength = w.reverse()
        default: promptLength = w.count()
        }
        w.byte(10)
        swap(&w.bytes, &bytes)
        return (task, promptLength)
    }
}

/// Builds one line as bytes; each task method writes prompt and answer and returns the prompt length.
struct LineWriter {
    var rng: SeededGenerator
    var bytes: [UInt8] = []

    init(rng: SeededGenerator) { self.rng = rng }

    // MARK: Helpers

    /// Uniform in 0..<n (n is tiny, so the modulo bias is negligible; and it is stable across Swift versions).
    @inline(__always) mutating func int(_ n: Int) -> Int { Int(rng.next() % UInt64(n)) }
    @inline(__always) mutating func int(_ lo: Int, _ hi: Int) -> Int { lo + int(hi - lo + 1) }

    @inline(__always) mutating func byte(_ b: UInt8) { bytes.append(b) }

    mutating func text(_ s: StaticString) {
        s.withUTF8Buffer { bytes.append(contentsOf: $0) }
    }

    mutating func number(_ value: Int) {
        var v = value
        if v < 0 {
            byte(45)  // "-"
            v = -v
        }
        var power = 1
        while power <= v / 10 { power *= 10 }
        while power > 0 {
            byte(48 + UInt8(v / power % 10))
            power /= 10
        }
    }

    /// A number with `digits` digits (no leading zero unless it is 0-9).
    mutating func numberWith(digits: Int) -> Int {
        if digits == 1 { return int(10) }
        var lo = 1
        for _ in 1..<digits { lo *= 10 }
        return lo + int(9 * lo)
    }

    /// 1-5 digits, small sizes a bit more likely.
    mutating func operandDigits() -> Int { [1, 1, 2, 2, 3, 3, 4, 5][int(8)] }

    static func digitCount(_ v: Int) -> Int {
        var n = 1, x = v
        while x >= 10 {
            x /= 10
            n += 1
        }
        return n
    }

    @inline(__always) static func digit(_ v: Int, _ i: Int) -> Int {
        var x = v
        for _ in 0..<i { x /= 10 }
        return x % 10
    }

    // MARK: Tasks

    /// `347+85=` then per column from the right `x+y+carry=sum`, then `;` and the total.
    mutating func addition() -> Int {
        let a = numberWith(digits: operandDigits()), b = numberWith(digits: operandDigits())
        number(a)
        byte(43)  // +
        number(b)
        byte(61)  // =
        let prompt = bytes.count
        let columns = max(Self.digitCount(a), Self.digitCount(b))
        var carry = 0
        for i in 0..<columns {
            if i > 0 { byte(44) }  // ,
            let x = Self.digit(a, i), y = Self.digit(b, i), s = x + y + carry
            number(x)
            byte(43)
            number(y)
            byte(43)
            number(carry)
            byte(61)
            number(s)
            carry = s / 10
        }
        byte(59)  // ;
        number(a + b)
        return prompt
    }

    /// `432-85=` (never negative) then per column from the right `x-y-borrow=digit`, where x is
    /// written with the borrowed ten (`12-5-0=7`) when the column needs it; then `;` and the result.
    mutating func subtraction() -> Int {
        var a = numberWith(digits: operandDigits()), b = numberWith(digits: operandDigits())
        if a < b { swap(&a, &b) }
        number(a)
        byte(45)  // -
        number(b)
        byte(61)
        let prompt = bytes.count
        var borrow = 0
        for i in 0..<Self.digitCount(a) {
            if i > 0 { byte(44) }
            var x = Self.digit(a, i)
            let y = Self.digit(b, i)
            var next = 0
            if x - y - borrow < 0 {
                x += 10
                next = 1
            }
            number(x)
            byte(45)
            number(y)
            byte(45)
            number(borrow)
            byte(61)
            number(x - y - borrow)
            borrow = next
        }
        byte(59)
        number(a - b)
        return prompt
    }

    static let variableNames: [UInt8] = Array("abcd".utf8)

    /// Straight-line program: `a=3;b=a*2;a=b-1;print(a) -> ` then the value of every assignment
    /// in order (`a=3,b=6,a=5`), `;` and the printed value. Statements are `v=constant`,
    /// `v=u<op>constant` or `v=u<op>w` over 2-4 names, op in + - * (products kept within 999).
    mutating func program() -> Int {
        let variables = 2 + int(3)  // 2-4 names
        let statements = 2 + int(5)  // 2-6 statements
        var values = [Int](repeating: 0, count: 4)
        var defined: [Int] = []  // names assigned so far
        defined.reserveCapacity(4)
        var trace: [(target: Int, value: Int)] = []
        trace.reserveCapacity(statements)
        for s in 0..<statements {
            if s > 0 { byte(59) }  // ;
            let target = int(variables)
            byte(Self.variableNames[target])
            byte(61)  // =
            let value: Int
            if defined.isEmpty || int(6) == 0 {
                value = int(10)
                number(value)
            } else {
                let u = defined[int(defined.count)]
                let w = int(2) == 0 ? defined[int(defined.count)] : -1
                let operand = w >= 0 ? values[w] : 1 + int(9)
                var op = int(3)  // + - *
                if op == 2 && abs(values[u] * operand) > 999 { op = 0 }
                value = op == 0 ? values[u] + operand : op == 1 ? values[u] - operand : values[u] * operand
                byte(Self.variableNames[u])
                byte(op == 0 ? 43 : op == 1 ? 45 : 42)
                if w >= 0 { byte(Self.variableNames[w]) } else { number(operand) }
            }
            values[target] = value
            if !defined.contains(target) { defined.append(target) }
            trace.append((target, value))
        }
        let printed = defined[int(defined.count)]
        text(";print(")
        byte(Self.variableNames[printed])
        text(") -> ")
        let prompt = bytes.count
        for (s, step) in trace.enumerated() {
            if s > 0 { byte(44) }
            byte(Self.variableNames[step.target])
            byte(61)
            number(step.value)
        }
        byte(59)
        number(values[printed])
        return prompt
    }

    /// Loop: `s=1;for i=1..4:s=s*2;print(s) -> ` then the value after each iteration, `;` and the
    /// printed value. Body `s=s<op><operand>` with op in + - * and operand i or a constant.
    mutating func loop() -> Int {
        let start = int(6)  // 0-5
        let end = 2 + int(4)  // 2-5
        let op = int(3)
        let useIndex = int(2) == 0
        let constant = op == 2 ? 2 + int(2) : 1 + int(9)
        text("s=")
        number(start)
        text(";for i=1..")
        number(end)
        text(":s=s")
        byte(op == 0 ? 43 : op == 1 ? 45 : 42)
        if useIndex { byte(105) } else { number(constant) }
        text(";print(s) -> ")
        let prompt = bytes.count
        var s = start
        for i in 1...end {
            let operand = useIndex ? i : constant
            s = op == 0 ? s + operand : op == 1 ? s - operand : s * operand
            if i > 1 { byte(44) }
            number(s)
        }
        byte(59)
        number(s)
        return prompt
    }

    static let openers: [UInt8] = Array("([{".utf8)
    static let closers: [UInt8] = Array(")]}".utf8)
    static let allBrackets: [UInt8] = Array("()[]{}".utf8)

    /// `brackets ([]{()}) -> yes depth 3`, or `-> no` when unbalanced (half are corrupted by a
    /// changed, deleted or swapped character; the label is computed, never assumed).
    mutating func brackets() -> Int {
        text("brackets ")
        let begin = bytes.count
        let pairs = 1 + int(6)  // 1-6 pairs
        var stack: UInt64 = 0, depth = 0, opensLeft = pairs  // stack of kinds, 2 bits each
        for _ in 0..<(2 * pairs) {
            if opensLeft > 0 && (depth == 0 || int(2) == 0) {
                let kind = int(3)
                byte(Self.openers[kind])
                stack = stack << 2 | UInt64(kind)
                depth += 1
                opensLeft -= 1
            } else {
                byte(Self.closers[Int(stack & 3)])
                stack >>= 2
                depth -= 1
            }
        }
        let length = bytes.count - begin
        if int(2) == 0 {
            switch int(3) {
            case 0:  // change one character
                let i = begin + int(length)
                var c = Self.allBrackets[int(6)]
                if c == bytes[i] { c = Self.allBrackets[(Self.allBrackets.firstIndex(of: c)! + 1) % 6] }
                bytes[i] = c
            case 1:  // delete one character
                bytes.remove(at: begin + int(length))
            default:  // swap two adjacent characters
                let i = begin + int(length - 1)
                bytes.swapAt(i, i + 1)
            }
        }
        // Check, with a stack of kinds in a UInt64 (depth <= 6 here, 2 bits per level).
        var balanced = true, maxDepth = 0
        stack = 0
        depth = 0
        for i in begin..<bytes.count {
            let c = bytes[i]
            if let kind = Self.openers.firstIndex(of: c) {
                stack = stack << 2 | UInt64(kind)
                depth += 1
                maxDepth = max(maxDepth, depth)
            } else {
                let kind = Self.closers.firstIndex(of: c)!
                if depth == 0 || Int(stack & 3) != kind {
                    balanced = false
                    break
                }
                stack >>= 2
                depth -= 1
            }
        }
        if depth != 0 { balanced = false }
        text(" -> ")
        let prompt = bytes.count
        if balanced {
            text("yes depth ")
            number(maxDepth)
        } else {
            text("no")
        }
        return prompt
    }

    /// `sort 5 27 9 1 -> 1 5 9 27`, or letters: `sort d a c -> a c d`. 2-7 items.
    mutating func sort() -> Int {
        let count = 2 + int(6)
        let letters = int(3) == 0
        var items = [Int](repeating: 0, count: count)
        text("sort")
        for i in 0..<count {
            items[i] = letters ? int(26) : int(100)
            byte(32)
            if letters { byte(97 + UInt8(items[i])) } else { number(items[i]) }
        }
        text(" -> ")
        let prompt = bytes.count
        items.sort()
        for i in 0..<count {
            if i > 0 { byte(32) }
            if letters { byte(97 + UInt8(items[i])) } else { number(items[i]) }
        }
        return prompt
    }

    /// `k3=7 k1=2 k9=4 ? k1 -> 2`: 2-8 distinct keys k0-k9, values 0-99.
    mutating func lookup() -> Int {
        let count = 2 + int(7)
        var keys: [UInt8] = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]
        let queried = int(count)
        var answer = 0
        for i in 0..<count {
            keys.swapAt(i, i + int(10 - i))  // partial Fisher-Yates: distinct keys
            if i > 0 { byte(32) }
            byte(107)  // k
            byte(48 + keys[i])
            byte(61)
            let value = int(100)
            number(value)
            if i == queried { answer = value }
        }
        text(" ? k")
        byte(48 + keys[queried])
        text(" -> ")
        let prompt = bytes.count
        number(answer)
        return prompt
    }

    /// `reverse hello -> olleh`: 2-10 random lowercase letters.
    mutating func reverse() -> Int {
        text("reverse ")
        let begin = bytes.count
        let length = 2 + int(9)
        for _ in 0..<length { byte(97 + UInt8(int(26))) }
        text(" -> ")
        let prompt = bytes.count
        for i in stride(from: begin + length - 1, through: begin, by: -1) { byte(bytes[i]) }
        return prompt
    }

    /// `count b in abbac -> 2`: 3-12 letters from a-e; the letter may be absent (answer 0).
    mutating func count() -> Int {
        let target = 97 + UInt8(int(5))
        let length = 3 + int(10)
        text("count ")
        byte(target)
        text(" in ")
        var n = 0
        for _ in 0..<length {
            let c = 97 + UInt8(int(5))
            if c == target { n += 1 }
            byte(c)
        }
        text(" -> ")
        let prompt = bytes.count
        number(n)
        return prompt
    }
}
