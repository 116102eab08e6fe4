import SandpiperModel

/// A demand or capacity per resource: CPU in cores, network in Mbit/s, memory in MiB.
struct Vec3: Sendable, Equatable {
    var cpu: Double
    var net: Double
    var mem: Double

    static let zero = Vec3(cpu: 0, net: 0, mem: 0)

    subscript(_ r: ResourceKind) -> Double {
        get { switch r { case .cpu: cpu; case .net: net; case .mem: mem } }
        set { switch r { case .cpu: cpu = newValue; case .net: net = newValue; case .mem: mem = newValue } }
    }

    static func + (a: Vec3, b: Vec3) -> Vec3 { Vec3(cpu: a.cpu + b.cpu, net: a.net + b.net, mem: a.mem + b.mem) }
    static func - (a: Vec3, b: Vec3) -> Vec3 { Vec3(cpu: a.cpu - b.cpu, net: a.net - b.net, mem: a.mem - b.mem) }
    static func += (a: inout Vec3, b: Vec3) { a = a + b }
    static func -= (a: inout Vec3, b: Vec3) { a = a - b }

    /// Component-wise a / b, 0 where b is 0 (a host without that resource reports no utilization).
    func fraction(of capacity: Vec3) -> Vec3 {
        Vec3(cpu: capacity.cpu > 0 ? cpu / capacity.cpu : 0,
             net: capacity.net > 0 ? net / capacity.net : 0,
             mem: capacity.mem > 0 ? mem / capacity.mem : 0)
    }
}

extension ResolvedThresholds {
    subscript(_ r: ResourceKind) -> Double { value(r) }
}

/// Number formatting for reasons: fixed decimals, no Foundation, deterministic.
enum Fmt {
    static func d(_ x: Double, _ places: Int = 2) -> String {
        guard x.isFinite, abs(x) < 1e12 else { return String(x) }
        var scale = 1.0
        for _ in 0..<places { scale *= 10 }
        let neg = x < 0
        let n = Int64((abs(x) * scale).rounded(.toNearestOrAwayFromZero))
        let whole = n / Int64(scale)
        var frac = String(n % Int64(scale))
        while frac.count < places { frac = "0" + frac }
        let s = places > 0 ? "\(whole).\(frac)" : "\(whole)"
        return neg && n != 0 ? "-" + s : s
    }

    static func pct(_ x: Double) -> String { d(x * 100, 1) + "%" }

    static func mib(_ x: Double) -> String { d(x, 0) + " MiB" }

    static func number(_ x: Double, _ r: ResourceKind) -> String {
        switch r {
        case .cpu: d(x)
        case .net: d(x, 1)
        case .mem: d(x, 0)
        }
    }

    static func amount(_ x: Double, _ r: ResourceKind) -> String {
        switch r {
        case .cpu: d(x) + " cores"
        case .net: d(x, 1) + " Mbit/s"
        case .mem: mib(x)
        }
    }
}
