import Foundation

/// An answer checker for the synthetic tasks that does not look at the stored answer: it reads the
/// prompt as text, works the task out again (adds the columns, runs the little program, sorts the
/// items ...) and compares. It shares no code with `LineWriter`, so a test that the two agree checks
/// both. Used as the ideal verifier of best-of-n (`parscale frontier`).
public enum TaskChecker {
    /// Whether `answer` (without the trailing newline) is the correct answer to `prompt`.
    public static func check(prompt: String, answer: String) -> Bool {
        guard let expected = solve(prompt: prompt) else { return false }
        return expected == answer
    }

    /// The answer worked out from the prompt alone, or nil for a prompt of no known task.
    public static func solve(prompt: String) -> String? {
        if prompt.hasSuffix("=") {
            let body = String(prompt.dropLast())
            if let parts = split2(body, "+") { return addition(parts.0, parts.1) }
            if let parts = split2(body, "-") { return subtraction(parts.0, parts.1) }
            return nil
        }
        guard prompt.hasSuffix(" -> ") else { return nil }
        let body = String(prompt.dropLast(4))
        if body.hasPrefix("brackets ") { return brackets(String(body.dropFirst(9))) }
        if body.hasPrefix("sort ") { return sort(String(body.dropFirst(5))) }
        if body.hasPrefix("reverse ") { return String(body.dropFirst(8).reversed()) }
        if body.hasPrefix("count ") { return count(String(body.dropFirst(6))) }
        if body.hasPrefix("s=") && body.contains(";for i=1..") { return loop(body) }
        if body.contains(" ? ") { return lookup(body) }
        if body.hasSuffix(")") && body.contains("print(") { return program(body) }
        return nil
    }

    static func split2(_ text: String, _ separator: Character) -> (Int, Int)? {
        let parts = text.split(separator: separator, omittingEmptySubsequences: false)
        guard parts.count == 2, let a = Int(parts[0]), let b = Int(parts[1]), a >= 0, b >= 0 else { return nil }
        return (a, b)
    }

    /// Digits, least significant first.
    static func digits(_ v: Int) -> [Int] { String(v).reversed().map { Int(String($0))! } }

    /// Column by column from the right: `x+y+carry=sum`, then `;` and the total.
    static func addition(_ a: Int, _ b: Int) -> String {
        let da = digits(a), db = digits(b)
        var columns: [String] = [], carry = 0
        for i in 0..<max(da.count, db.count) {
            let x = i < da.count ? da[i] : 0, y = i < db.count ? db[i] : 0
            columns.append("\(x)+\(y)+\(carry)=\(x + y + carry)")
            carry = (x + y + carry) / 10
        }
        return columns.joined(separator: ",") + ";\(a + b)"
    }

    /// Column by column from the right: `x-y-borrow=digit`, x with a borrowed ten when needed.
    static func subtraction(_ a: Int, _ b: Int) -> String? {
        guard a >= b else { return nil }
        let da = digits(a), db = digits(b)
        var columns: [String] = [], borrow = 0
        for i in 0..<da.count {
            let y = i < db.count ? db[i] : 0
            let needs = da[i] - y - borrow < 0
            let x = needs ? da[i] + 10 : da[i]
            columns.append("\(x)-\(y)-\(borrow)=\(x - y - borrow)")
            borrow = needs ? 1 : 0
        }
        return columns.joined(separator: ",") + ";\(a - b)"
    }

    static func brackets(_ text: String) -> String {
        let pairs: [Character: Character] = [")": "(", "]": "[", "}": "{"]
        var stack: [Character] = [], deepest = 0
        for c in text {
            if "([{".contains(c) {
                stack.append(c)
                deepest = max(deepest, stack.count)
            } else if let opener = pairs[c], stack.last == opener {
                stack.removeLast()
            } else {
                return "no"
            }
        }
        return stack.isEmpty ? "yes depth \(deepest)" : "no"
    }

    /// Numbers sort by value, letters alphabetically.
    static func sort(_ text: String) -> String {
        let items = text.split(separator: " ").map(String.init)
        if items.allSatisfy({ Int($0) != nil }) {
            return items.map { Int($0)! }.sorted().map(String.init).joined(separator: " ")
        }
        return items.sorted().joined(separator: " ")
    }

    /// `b in abbac`: how many times the letter occurs.
    static func count(_ text: String) -> String? {
        let words = text.split(separator: " ")
        guard words.count == 3, words[1] == "in", words[0].count == 1 else { return nil }
        return String(words[2].filter { $0 == words[0].first! }.count)
    }

    /// `k3=7 k1=2 ? k1`: the value of the queried key.
    static func lookup(_ text: String) -> String? {
        let halves = text.components(separatedBy: " ? ")
        guard halves.count == 2 else { return nil }
        for pair in halves[0].split(separator: " ") {
            let kv = pair.split(separator: "=", maxSplits: 1)
            if kv.count == 2 && kv[0] == halves[1] { return String(kv[1]) }
        }
        return nil
    }

    /// `s=1;for i=1..4:s=s*2;print(s)`: the value after each pass, then `;` and the last.
    static func loop(_ text: String) -> String? {
        let parts = text.split(separator: ";").map(String.init)
        guard parts.count == 3, parts[2] == "print(s)", var s = Int(parts[0].dropFirst(2)) else { return nil }
        let header = parts[1].split(separator: ":").map(String.init)
        guard header.count == 2, let end = Int(header[0].dropFirst("for i=1..".count)), header[1].hasPrefix("s=s") else { return nil }
        let body = header[1].dropFirst(3)
        guard let op = body.first else { return nil }
        let operand = String(body.dropFirst())
        var values: [String] = []
        for i in 1...max(1, end) {
            guard let x = operand == "i" ? i : Int(operand), let next = apply(op, s, x) else { return nil }
            s = next
            values.append(String(s))
        }
        return values.joined(separator: ",") + ";\(s)"
    }

    /// Straight-line assignments, then `print(v)`: every assigned value in order, `;`, the printed one.
    static func program(_ text: String) -> String? {
        var statements = text.split(separator: ";").map(String.init)
        let printed = statements.removeLast()
        guard printed.hasPrefix("print("), printed.hasSuffix(")") else { return nil }
        var env: [String: Int] = [:], trace: [String] = []
        for statement in statements {
            let sides = statement.split(separator: "=", maxSplits: 1).map(String.init)
            guard sides.count == 2 else { return nil }
            let expr = sides[1]
            var value: Int?
            if let constant = Int(expr) {
                value = constant
            } else if let at = expr.dropFirst().firstIndex(where: { "+-*".contains($0) }) {
                let left = String(expr[..<at]), right = String(expr[expr.index(after: at)...])
                guard let l = Int(left) ?? env[left], let r = Int(right) ?? env[right] else { return nil }
                value = apply(expr[at], l, r)
            }
            guard let value else { return nil }
            env[sides[0]] = value
            trace.append("\(sides[0])=\(value)")
        }
        guard let result = env[String(printed.dropFirst(6).dropLast())] else { return nil }
        return trace.joined(separator: ",") + ";\(result)"
    }

    static func apply(_ op: Character, _ a: Int, _ b: Int) -> Int? {
        switch op {
        case "+": return a + b
        case "-": return a - b
        case "*": return a * b
        default: return nil
        }
    }
}
