import ParScale

public enum DataSplit: String, Codable, Sendable { case train, validation }

/// One line of the synthetic corpus: `prompt + answer + "\n"`.
public struct TaskExample: Equatable, Sendable {
    public let task: String
    public let prompt: String
    public let answer: String
    public var text: String { prompt + answer + "\n" }
}

/// FNV-1a, 64 bit: a stable hash (Swift's `hashValue` changes from process to process).
func fnv1a(_ bytes: some Sequence<UInt8>) -> UInt64 {
    var h: UInt64 = 0xcbf2_9ce4_8422_2325
    for b in bytes { h = (h ^ UInt64(b)) &* 0x100_0000_01b3 }
    return h
}

/// A built-in, seeded, endless corpus of small reasoning tasks (the paper finds that math and code
/// gain most from parallel streams): addition with per-digit work, subtraction, straight-line
/// programs with their result, bracket matching with depth, sorting, key lookup and reversal.
/// Difficulty varies within each task (number of digits, statements, items), so a tiny model
/// learns the easy cases first and the hard ones later.
public enum SyntheticTasks {
    public static let taskNames = ["add", "sub", "prog", "brackets", "sort", "lookup", "reverse"]

    /// The example at `index` for `seed`: the same on every machine.
    public static func example(seed: UInt64, index: UInt64) -> TaskExample {
        var rng = SeededGenerator(seed: seed &* 0x9E37_79B9_7F4A_7C15 &+ index &* 0xD1B5_4A32_D192_ED03 &+ 1)
        func int(_ range: ClosedRange<Int>) -> Int { range.lowerBound + Int(rng.next() % UInt64(range.count)) }
        func number(digits: Int) -> Int {
            digits == 1 ? int(0...9) : int(Int(pow10(digits - 1))...Int(pow10(digits)) - 1)
        }
        let task = taskNames[int(0...taskNames.count - 1)]
        switch task {
        case "add":
            let a = number(digits: int(1...5)), b = number(digits: int(1...5))
            // Per digit from the right: the digit sum, 'c' when it carries, then the result.
            var steps: [String] = []
            var x = a, y = b, carry = 0
            while x > 0 || y > 0 || carry > 0 {
                let s = x % 10 + y % 10 + carry
                steps.append("\(s % 10)" + (s >= 10 ? "c" : ""))
                carry = s / 10
                x /= 10
                y /= 10
            }
            return TaskExample(task: task, prompt: "\(a)+\(b)=", answer: steps.joined(separator: " ") + " | \(a + b)")
        case "sub":
            var a = number(digits: int(1...4)), b = number(digits: int(1...4))
            if a < b { swap(&a, &b) }
            return TaskExample(task: task, prompt: "\(a)-\(b)=", answer: "\(a - b)")
        case "prog":
            var values: [Character: Int] = [:]
            var lines: [String] = []
            let names: [Character] = ["a", "b", "c"]
            for _ in 0..<int(2...4) {
                let target = names[int(0...2)]
                let known = values.keys.sorted()
                let left = known.isEmpty || int(0...2) == 0 ? "\(int(0...9))" : String(known[int(0...known.count - 1)])
                let op = ["+", "-", "*"][int(0...2)]
                let right = int(1...9)
                let l = Int(left) ?? values[Character(left)]!
                let v = op == "+" ? l + right : op == "-" ? l - right : l * right
                values[target] = v
                lines.append("\(target)=\(left)\(op)\(right)")
            }
            let asked = values.keys.sorted()[int(0...values.count - 1)]
            return TaskExample(task: task, prompt: lines.joined(separator: ";") + ";\(asked)?", answer: "\(values[asked]!)")
        case "brackets":
            let pairs: [(Character, Character)] = [("(", ")"), ("[", "]"), ("{", "}")]
            var text = "", stack: [Character] = []
            let length = int(2...12)
            for _ in 0..<length {
                if !stack.isEmpty && int(0...1) == 0 {
                    text.append(stack.removeLast())
                } else {
                    let p = pairs[int(0...2)]
                    text.append(p.0)
                    stack.append(p.1)
                }
            }
            while !stack.isEmpty { text.append(stack.removeLast()) }
            var chars = Array(text)
            if int(0...1) == 0 {  // corrupt half of them
                let i = int(0...chars.count - 1)
                chars[i] = ["(", ")", "[", "]", "{", "}"].filter { $0 != chars[i] }[int(0...4)]
            }
            return TaskExample(task: task, prompt: String(chars) + "?", answer: bracketAnswer(chars))
        case "sort":
            let items = (0..<int(2...7)).map { _ in int(0...99) }
            return TaskExample(
                task: task, prompt: "sort " + items.map(String.init).joined(separator: " ") + ":",
                answer: items.sorted().map(String.init).joined(separator: " "))
        case "lookup":
            var keys: [Int] = []
            let count = int(2...6)
            while keys.count < count {
                let k = int(0...20)
                if !keys.contains(k) { keys.append(k) }
            }
            let values = keys.map { _ in int(0...99) }
            let pick = int(0...keys.count - 1)
            let table = zip(keys, values).map { "k\($0)=\($1)" }.joined(separator: " ")
            return TaskExample(task: task, prompt: "\(table) ?k\(keys[pick])=", answer: "\(values[pick])")
        default:
            let letters = Array("abcdefghijklmnopqrstuvwxyz")
            let word = String((0..<int(2...9)).map { _ in letters[int(0...25)] })
            return TaskExample(task: task, prompt: "rev \(word):", answer: String(word.reversed()))
        }
    }

    /// "yes D" (balanced, maximum depth D) or "no".
    static func bracketAnswer(_ chars: [Character]) -> String {
        let closing: [Character: Character] = [")": "(", "]": "[", "}": "{"]
        var stack: [Character] = [], depth = 0
        for c in chars {
            if let open = closing[c] {
                guard stack.last == open else { return "no" }
                stack.removeLast()
            } else {
                stack.append(c)
                depth = max(depth, stack.count)
            }
        }
        return stack.isEmpty ? "yes \(depth)" : "no"
    }

    /// About 1 prompt in 20 is held out, by a hash of its text: the splits cannot share a prompt.
    public static func split(of prompt: String) -> DataSplit {
        fnv1a(prompt.utf8) % 20 == 0 ? .validation : .train
    }

    /// The first example of `split` at or after `cursor`, and the cursor after it.
    public static func next(seed: UInt64, split wanted: DataSplit, cursor: UInt64) -> (TaskExample, UInt64) {
        var index = cursor
        while true {
            let e = example(seed: seed, index: index)
            index += 1
            if split(of: e.prompt) == wanted { return (e, index) }
        }
    }
}

private func pow10(_ n: Int) -> Int { (0..<n).reduce(1) { r, _ in r * 10 } }
