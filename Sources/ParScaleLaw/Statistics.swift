import Foundation

/// Mean and sample standard deviation (n - 1 in the denominator; 0 for fewer than two values).
func meanAndSampleSD(_ x: [Double]) -> (mean: Double, sd: Double) {
    let mean = x.reduce(0, +) / Double(max(1, x.count))
    let variance = x.count > 1 ? x.reduce(0) { $0 + ($1 - mean) * ($1 - mean) } / Double(x.count - 1) : 0
    return (mean, variance.squareRoot())
}

/// Student's t distribution, for p-values of paired differences over a few seeds: with n seeds a
/// paired t has n - 1 degrees of freedom, and at 2 degrees of freedom t = 3.1 is p = 0.09, not the
/// p = 0.002 the normal distribution would give.
public enum StudentT {
    /// Two-sided p-value of `t` with `df` degrees of freedom: P(|T| >= |t|) = I_{df/(df+t^2)}(df/2, 1/2).
    public static func twoSidedP(t: Double, df: Double) -> Double {
        precondition(df > 0, "degrees of freedom must be positive")
        guard t.isFinite else { return t.isNaN ? .nan : 0 }
        return regularizedIncompleteBeta(x: df / (df + t * t), a: df / 2, b: 0.5)
    }

    /// The two-sided critical value: the t with twoSidedP(t, df) = alpha (bisection; p falls as t grows).
    public static func criticalValue(alpha: Double, df: Double) -> Double {
        precondition(alpha > 0 && alpha < 1)
        var lo = 0.0, hi = 1.0
        while twoSidedP(t: hi, df: df) > alpha { hi *= 2 }
        for _ in 0..<200 {
            let mid = (lo + hi) / 2
            if twoSidedP(t: mid, df: df) > alpha { lo = mid } else { hi = mid }
        }
        return (lo + hi) / 2
    }

    /// I_x(a, b), the regularized incomplete beta function, by its continued fraction (modified
    /// Lentz), evaluated on the side of x where it converges fast and mirrored otherwise.
    static func regularizedIncompleteBeta(x: Double, a: Double, b: Double) -> Double {
        if x <= 0 { return 0 }
        if x >= 1 { return 1 }
        let logBeta: Double = lgamma(a) + lgamma(b) - lgamma(a + b)
        let logFront: Double = a * log(x) + b * log(1 - x) - logBeta
        if x > (a + 1) / (a + b + 2) {
            return 1 - exp(logFront) * betaContinuedFraction(x: 1 - x, a: b, b: a) / b
        }
        return exp(logFront) * betaContinuedFraction(x: x, a: a, b: b) / a
    }

    /// 1 / (1 + d1 / (1 + d2 / (1 + ...))) with d_{2m+1} = -(a+m)(a+b+m)x / ((a+2m)(a+2m+1)) and
    /// d_{2m} = m(b-m)x / ((a+2m-1)(a+2m)).
    private static func betaContinuedFraction(x: Double, a: Double, b: Double) -> Double {
        let tiny = 1e-300
        var c = 1.0
        var d = 1 - (a + b) * x / (a + 1)
        d = abs(d) < tiny ? 1 / tiny : 1 / d
        var result = d
        for m in 1...500 {
            let m = Double(m)
            let even: Double = m * (b - m) * x / ((a + 2 * m - 1) * (a + 2 * m))
            let odd: Double = -(a + m) * (a + b + m) * x / ((a + 2 * m) * (a + 2 * m + 1))
            for coefficient in [even, odd] {
                d = 1 + coefficient * d
                d = abs(d) < tiny ? 1 / tiny : 1 / d
                c = 1 + coefficient / c
                if abs(c) < tiny { c = tiny }
                result *= d * c
            }
            if abs(d * c - 1) < 1e-15 { break }
        }
        return result
    }
}
