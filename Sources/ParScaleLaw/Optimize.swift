import Foundation

/// A small bounded quasi-Newton minimiser: projected L-BFGS with box constraints
/// (an "L-BFGS-B-like" method), using a backtracking Armijo line search along the
/// projected path x(t) = P(x + t d).
///
/// Method, per iteration:
///  1. Active set: variables sitting on a bound whose gradient pushes them outward.
///  2. Direction: two-loop L-BFGS recursion on the free variables (active ones get d_i = 0).
///     If that is not a descent direction the memory is cleared and d = -g (free part).
///  3. Line search: halve t until f(P(x + t d)) <= f(x) + c1 * g·(P(x + t d) - x).
///  4. Memory update with s = x+ - x, y = g+ - g only when s·y > 0 (curvature condition).
/// Stops on a small projected gradient, a tiny relative decrease of f, a tiny step, or maxIterations.
public struct BoxLBFGS: Sendable {
    public struct Options: Sendable {
        /// Number of (s, y) pairs kept.
        public var memory: Int = 10
        public var maxIterations: Int = 1000
        /// Stop when max_i |x_i - P(x_i - g_i)| <= projectedGradientTolerance.
        public var projectedGradientTolerance: Double = 1e-12
        /// Stop when (f_k - f_{k+1}) <= relativeTolerance * max(|f_k|, |f_{k+1}|, 1e-300).
        public var relativeTolerance: Double = 1e-13
        /// Stop when the step's max-norm is <= stepTolerance * (1 + max-norm of x).
        public var stepTolerance: Double = 1e-15
        /// Armijo constant.
        public var armijo: Double = 1e-4
        public var maxBacktracks: Int = 60
        public init() {}
    }

    public enum Stop: String, Sendable {
        case projectedGradient, relativeReduction, smallStep, lineSearchFailed, maxIterations, nonFiniteStart
    }

    public struct Result: Sendable {
        public var x: [Double]
        public var value: Double
        public var iterations: Int
        public var evaluations: Int
        public var stop: Stop
    }

    public var options: Options
    public init(options: Options = Options()) { self.options = options }

    /// Projects `x` onto the box [lower, upper].
    @inline(__always)
    static func project(_ x: inout [Double], _ lower: [Double], _ upper: [Double]) {
        for i in x.indices { x[i] = min(max(x[i], lower[i]), upper[i]) }
    }

    /// Minimises `f` over the box. `f(x, &grad)` must return f(x) and write ∇f(x) into `grad`
    /// (grad has x.count entries); it may return +infinity/NaN for points outside its domain, which
    /// the line search treats as "too far". `x0` is projected onto the box first (as scipy does).
    public func minimize(
        x0: [Double], lower: [Double], upper: [Double],
        _ f: (_ x: [Double], _ grad: inout [Double]) -> Double
    ) -> Result {
        let n = x0.count
        precondition(lower.count == n && upper.count == n, "bounds must match x0")
        var x = x0
        BoxLBFGS.project(&x, lower, upper)
        var g = [Double](repeating: 0, count: n)
        var fx = f(x, &g)
        var evaluations = 1
        if !fx.isFinite || g.contains(where: { !$0.isFinite }) {
            return Result(x: x, value: fx.isNaN ? .infinity : fx, iterations: 0, evaluations: evaluations, stop: .nonFiniteStart)
        }

        let m = max(1, options.memory)
        var sMem: [[Double]] = []
        var yMem: [[Double]] = []
        var rhoMem: [Double] = []
        sMem.reserveCapacity(m); yMem.reserveCapacity(m); rhoMem.reserveCapacity(m)

        var xNew = x
        var gNew = g
        var d = [Double](repeating: 0, count: n)
        var free = [Bool](repeating: true, count: n)
        var alphaBuf = [Double](repeating: 0, count: m)
        var iteration = 0
        var stop = Stop.maxIterations

        func projectedGradientNorm() -> Double {
            var worst = 0.0
            for i in 0..<n {
                let p = min(max(x[i] - g[i], lower[i]), upper[i])
                worst = max(worst, abs(x[i] - p))
            }
            return worst
        }

        if projectedGradientNorm() <= options.projectedGradientTolerance {
            return Result(x: x, value: fx, iterations: 0, evaluations: evaluations, stop: .projectedGradient)
        }

        while iteration < options.maxIterations {
            iteration += 1
            // 1. active set
            for i in 0..<n {
                let atLower = x[i] <= lower[i] && g[i] > 0
                let atUpper = x[i] >= upper[i] && g[i] < 0
                free[i] = !(atLower || atUpper)
            }
            // 2. direction (two-loop recursion on the free subspace)
            func steepest() {
                for i in 0..<n { d[i] = free[i] ? -g[i] : 0 }
            }
            var usedMemory = !sMem.isEmpty
            if usedMemory {
                var q = [Double](repeating: 0, count: n)
                for i in 0..<n { q[i] = free[i] ? g[i] : 0 }
                let count = sMem.count
                for j in stride(from: count - 1, through: 0, by: -1) {
                    var a = 0.0
                    for i in 0..<n where free[i] { a += sMem[j][i] * q[i] }
                    a *= rhoMem[j]
                    alphaBuf[j] = a
                    for i in 0..<n where free[i] { q[i] -= a * yMem[j][i] }
                }
                // initial Hessian scaling gamma = s·y / y·y (on the newest pair)
                var sy = 0.0, yy = 0.0
                for i in 0..<n { sy += sMem[count - 1][i] * yMem[count - 1][i]; yy += yMem[count - 1][i] * yMem[count - 1][i] }
                let gamma = (yy > 0 && sy > 0) ? sy / yy : 1
                for i in 0..<n { q[i] *= gamma }
                for j in 0..<count {
                    var b = 0.0
                    for i in 0..<n where free[i] { b += yMem[j][i] * q[i] }
                    b *= rhoMem[j]
                    let c = alphaBuf[j] - b
                    for i in 0..<n where free[i] { q[i] += c * sMem[j][i] }
                }
                for i in 0..<n { d[i] = free[i] ? -q[i] : 0 }
                var slope = 0.0
                for i in 0..<n { slope += g[i] * d[i] }
                if !(slope < 0) || d.contains(where: { !$0.isFinite }) {
                    sMem.removeAll(); yMem.removeAll(); rhoMem.removeAll()
                    usedMemory = false
                    steepest()
                }
            } else {
                steepest()
            }

            // 3. projected backtracking line search
            var accepted = false
            var fNew = Double.infinity
            var attempt = 0
            while !accepted && attempt < 2 {
                attempt += 1
                var dMax = 0.0
                for i in 0..<n { dMax = max(dMax, abs(d[i])) }
                if dMax == 0 { break }
                var t = usedMemory ? 1.0 : min(1.0, 1.0 / dMax)
                for _ in 0...options.maxBacktracks {
                    for i in 0..<n { xNew[i] = min(max(x[i] + t * d[i], lower[i]), upper[i]) }
                    var decrease = 0.0
                    var moved = false
                    for i in 0..<n {
                        let s = xNew[i] - x[i]
                        decrease += g[i] * s
                        if s != 0 { moved = true }
                    }
                    if !moved { break }
                    fNew = f(xNew, &gNew)
                    evaluations += 1
                    if fNew.isFinite && fNew <= fx + options.armijo * decrease
                        && !gNew.contains(where: { !$0.isFinite })
                    {
                        accepted = true
                        break
                    }
                    t *= 0.5
                }
                if !accepted {
                    if usedMemory {
                        // retry once with steepest descent and a fresh memory
                        sMem.removeAll(); yMem.removeAll(); rhoMem.removeAll()
                        usedMemory = false
                        steepest()
                    } else {
                        break
                    }
                }
            }
            if !accepted {
                stop = .lineSearchFailed
                break
            }

            // 4. memory update
            var s = [Double](repeating: 0, count: n)
            var y = [Double](repeating: 0, count: n)
            var sy = 0.0, yy = 0.0, sMax = 0.0, xMax = 0.0
            for i in 0..<n {
                s[i] = xNew[i] - x[i]
                y[i] = gNew[i] - g[i]
                sy += s[i] * y[i]
                yy += y[i] * y[i]
                sMax = max(sMax, abs(s[i]))
                xMax = max(xMax, abs(x[i]))
            }
            if sy > 1e-16 * yy && sy > 0 {
                if sMem.count == m { sMem.removeFirst(); yMem.removeFirst(); rhoMem.removeFirst() }
                sMem.append(s); yMem.append(y); rhoMem.append(1 / sy)
            }
            let fOld = fx
            swap(&x, &xNew)
            swap(&g, &gNew)
            fx = fNew

            if projectedGradientNorm() <= options.projectedGradientTolerance {
                stop = .projectedGradient
                break
            }
            let scale = max(abs(fOld), abs(fx), 1e-300)
            if fOld - fx <= options.relativeTolerance * scale {
                stop = .relativeReduction
                break
            }
            if sMax <= options.stepTolerance * (1 + xMax) {
                stop = .smallStep
                break
            }
        }
        return Result(x: x, value: fx, iterations: iteration, evaluations: evaluations, stop: stop)
    }
}
