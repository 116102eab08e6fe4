import SandpiperModel

// Step 2 of `Planner.plan` (the paper's *when*): A host (or a VM against its own allocation) is hot for a resource
// when its utilization exceeds the threshold in at least k of the last n samples AND the AR(p) one-step
// prediction fitted on that window also exceeds it. Transient spikes fail the first test; a load that is already
// falling away fails the second.

/// The k-of-n rule.
struct WindowRule: Sendable, Equatable {
    var k: Int
    var n: Int

    init(_ w: Policy.Window) { k = max(1, w.k); n = max(w.n, max(1, w.k)) }

    /// Samples in `series` strictly above `threshold`.
    func countOver(_ series: ArraySlice<Double>, threshold: Double) -> Int {
        var c = 0
        for x in series where x > threshold { c += 1 }
        return c
    }
}

/// Autoregressive AR(p) one-step prediction, fitted to the window by Yule-Walker (Levinson-Durbin recursion on
/// the biased autocovariances of the mean-removed series). Yule-Walker always yields a stationary model, so the
/// prediction lies between the window mean and a continuation of the latest deviations: a sustained level is
/// predicted to stay, a load that has already dropped away is predicted below the threshold.
enum ARPredictor {
    static func predict(_ x: ArraySlice<Double>, order: Int) -> Double {
        let (mean, a) = fit(x, order: order)
        var prediction = mean
        let n = x.count, base = x.startIndex
        for j in a.indices { prediction += a[j] * (x[base + n - 1 - j] - mean) }
        return prediction
    }

    /// The window mean and the fitted coefficients a1...ap (index 0 = a1; empty when nothing can be fitted).
    static func fit(_ x: ArraySlice<Double>, order: Int) -> (mean: Double, coefficients: [Double]) {
        let n = x.count
        guard n > 0 else { return (0, []) }
        var mean = 0.0
        for v in x { mean += v }
        mean /= Double(n)
        let p = min(order, n - 1)
        guard p > 0 else { return (mean, []) }
        let base = x.startIndex
        // Autocovariances r[0...p].
        var r = [Double](repeating: 0, count: p + 1)
        for lag in 0...p {
            var s = 0.0
            var t = lag
            while t < n {
                s += (x[base + t] - mean) * (x[base + t - lag] - mean)
                t += 1
            }
            r[lag] = s / Double(n)
        }
        guard r[0] > 1e-12 else { return (mean, []) }  // flat window: the level persists
        // Levinson-Durbin.
        var a = [Double](repeating: 0, count: p + 1)  // a[1...p]
        var e = r[0]
        var fitted = 0
        for k in 1...p {
            var acc = r[k]
            if k > 1 { for j in 1..<k { acc -= a[j] * r[k - j] } }
            let lambda = acc / e
            var next = a
            next[k] = lambda
            if k > 1 { for j in 1..<k { next[j] = a[j] - lambda * a[k - j] } }
            a = next
            fitted = k
            e *= (1 - lambda * lambda)
            if e <= 1e-15 { break }
        }
        return (mean, Array(a[1...fitted]))
    }
}

/// The verdict of the detector on one series.
struct Judgement: Sendable, Equatable {
    var over: Int
    var window: Int
    /// nil when prediction is off.
    var predicted: Double?
    var hot: Bool
}

struct HotspotDetector: Sendable {
    var window: WindowRule
    /// 0 = prediction off (k of n alone decides).
    var order: Int

    init(policy: Policy) {
        window = WindowRule(policy.window)
        order = policy.prediction.model == .none ? 0 : max(0, policy.prediction.order)
    }

    /// Judge the last n values of `series` against `threshold`.
    func judge(_ series: ArraySlice<Double>, threshold: Double) -> Judgement {
        let w = series.suffix(window.n)
        let over = window.countOver(w, threshold: threshold)
        guard over >= window.k else { return Judgement(over: over, window: w.count, predicted: nil, hot: false) }
        guard order > 0 else { return Judgement(over: over, window: w.count, predicted: nil, hot: true) }
        let predicted = ARPredictor.predict(w, order: order)
        return Judgement(over: over, window: w.count, predicted: predicted, hot: predicted > threshold)
    }

    /// k of n on a boolean signal (VM memory pressure: swapping, or guest free memory below target).
    func judge(flags: ArraySlice<Bool>) -> Judgement {
        let w = flags.suffix(window.n)
        var over = 0
        for f in w where f { over += 1 }
        return Judgement(over: over, window: w.count, predicted: nil, hot: over >= window.k)
    }
}
