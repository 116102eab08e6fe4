import SandpiperModel

/// Collects actions as the steps decide them and turns them into an ordered, dependency-linked list.
/// Dependencies are added where correctness needs them:
/// - a migration or definition arriving on a host waits for the migrations that leave it earlier in the plan
///   (their room was counted);
/// - a VM's later migration waits for its earlier one (staging), start waits for define, undefine for stop;
/// - at most `maxConcurrentPerHost` migrations touch a host at once: the next one waits for an earlier one.
/// - migrations and definitions arriving on a host powered on by the plan wait for its power-on; a drain waits for
///   the migrations leaving its host, a power-off for its drain.
/// - a tune or resize that makes a VM take more of its host (balloon, vCPUs, memory, CPU quota up) runs on the VM's
///   final host after the moves that make room there and after the VM's own move; shrinks run first, where the VM
///   is now, so the room they free is there before anything arrives.
/// Final order: shrinking tune/resize, power-on, migrate, growing tune/resize, define, start, stop, undefine, drain,
/// power-off; creation order within each phase.
struct ActionBuilder: Sendable {
    struct Draft: Sendable {
        var kind: ActionKind
        var vm: String
        var from: String?
        var to: String?
        var mode: MoveMode?
        var deps: [Int]
        var swapGroup: String?
        var parameters: ActionParameters
        var reason: String
        var host: String? = nil
        /// A growing tune/resize: ordered after the migrations it depends on.
        var grows = false
    }

    private(set) var drafts: [Draft] = []
    private var departures: [Int: [Int]] = [:]
    private var touching: [Int: [Int]] = [:]
    private var lastMoveOfVM: [String: Int] = [:]
    /// Power-on of a host: arrivals wait for it.
    private var poweredOn: [Int: Int] = [:]
    let maxConcurrentPerHost: Int
    private(set) var migrationCount = 0
    private var swapCount = 0

    /// Host names by index.
    let hostNames: [String]

    init(maxConcurrentPerHost: Int, hostNames: [String]) {
        self.maxConcurrentPerHost = max(1, maxConcurrentPerHost); self.hostNames = hostNames
    }

    mutating func nextSwapGroup() -> String {
        swapCount += 1
        return "swap-\(swapCount)"
    }

    @discardableResult
    mutating func migrate(vm: String, from: Int, to: Int, mode: MoveMode,
                          swapGroup: String? = nil, reason: String) -> Int {
        var deps = departures[to] ?? []
        if let on = poweredOn[to] { deps.append(on) }
        if let prev = lastMoveOfVM[vm] { deps.append(prev) }
        for h in [from, to] {
            let t = touching[h] ?? []
            if t.count >= maxConcurrentPerHost { deps.append(t[t.count - maxConcurrentPerHost]) }
        }
        let id = drafts.count
        drafts.append(Draft(kind: .migrate, vm: vm, from: hostNames[from], to: hostNames[to], mode: mode,
                            deps: deps, swapGroup: swapGroup, parameters: ActionParameters(), reason: reason))
        departures[from, default: []].append(id)
        touching[from, default: []].append(id)
        touching[to, default: []].append(id)
        lastMoveOfVM[vm] = id
        migrationCount += 1
        return id
    }

    /// Define on `host`, waiting for earlier departures from it.
    @discardableResult
    mutating func define(vm: String, host: Int, parameters: ActionParameters,
                         reason: String) -> Int {
        add(Draft(kind: .define, vm: vm, from: nil, to: hostNames[host], mode: nil,
                  deps: (departures[host] ?? []) + (poweredOn[host].map { [$0] } ?? []),
                  swapGroup: nil, parameters: parameters, reason: reason))
    }

    @discardableResult
    mutating func add(_ kind: ActionKind, vm: String, at host: String?, deps: [Int] = [],
                      parameters: ActionParameters = ActionParameters(), reason: String) -> Int {
        add(Draft(kind: kind, vm: vm, from: host, to: nil, mode: nil, deps: deps, swapGroup: nil,
                  parameters: parameters, reason: reason))
    }

    /// A tune or resize that raises what `vm` takes from `host` (its final host): it waits for the migrations
    /// leaving that host, for the host's power-on, and for the VM's own last move.
    @discardableResult
    mutating func grow(_ kind: ActionKind, vm: String, on host: Int, parameters: ActionParameters,
                       reason: String) -> Int {
        var deps = departures[host] ?? []
        if let on = poweredOn[host] { deps.append(on) }
        if let own = lastMoveOfVM[vm] { deps.append(own) }
        return add(Draft(kind: kind, vm: vm, from: hostNames[host], to: nil, mode: nil, deps: deps, swapGroup: nil,
                         parameters: parameters, reason: reason, grows: true))
    }

    /// Power a standby host on; later arrivals on it wait for this.
    @discardableResult
    mutating func powerOn(host: Int, reason: String) -> Int {
        let id = add(Draft(kind: .powerOn, vm: "", from: nil, to: nil, mode: nil, deps: [], swapGroup: nil,
                           parameters: ActionParameters(), reason: reason, host: hostNames[host]))
        poweredOn[host] = id
        return id
    }

    /// Drain (check the host is empty once the migrations leaving it are done), then power it off.
    mutating func drainAndPowerOff(host: Int, drainReason: String, offReason: String) {
        let drain = add(Draft(kind: .drain, vm: "", from: nil, to: nil, mode: nil, deps: departures[host] ?? [],
                              swapGroup: nil, parameters: ActionParameters(), reason: drainReason,
                              host: hostNames[host]))
        _ = add(Draft(kind: .powerOff, vm: "", from: nil, to: nil, mode: nil, deps: [drain], swapGroup: nil,
                  parameters: ActionParameters(), reason: offReason, host: hostNames[host]))
    }

    private mutating func add(_ d: Draft) -> Int {
        drafts.append(d)
        return drafts.count - 1
    }

    private static func phase(_ d: Draft) -> Int {
        switch d.kind {
        case .tune, .resize: d.grows ? 3 : 0
        case .powerOn: 1
        case .migrate: 2
        case .define: 4
        case .start: 5
        case .stop: 6
        case .undefine: 7
        case .drain: 8
        case .powerOff: 9
        }
    }

    func build() -> [PlannedAction] {
        let order = drafts.indices.sorted { a, b in
            let pa = Self.phase(drafts[a]), pb = Self.phase(drafts[b])
            return pa != pb ? pa < pb : a < b
        }
        var idOf = [Int](repeating: 0, count: drafts.count)
        for (pos, d) in order.enumerated() { idOf[d] = pos + 1 }
        return order.map { i in
            let d = drafts[i]
            let deps = Set(d.deps.map { idOf[$0] }).sorted().map(String.init)
            return PlannedAction(id: String(idOf[i]), kind: d.kind, vm: d.vm, from: d.from, to: d.to, mode: d.mode,
                                 dependsOn: deps, swapGroup: d.swapGroup, parameters: d.parameters, host: d.host,
                                 reason: d.reason)
        }
    }
}
