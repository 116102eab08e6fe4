import SandpiperModel

/// Steps 3 (drift) and 8 (prune) of `Planner.plan`: what differs from the spec besides load. A host that cannot be reached is unknown, never empty.
extension PlanningContext {
    var unknownHosts: [Int] { fleet.hosts.indices.filter { fleet.hosts[$0].status == .unknown } }

    mutating func reportDrift() {
        for h in unknownHosts {
            let host = fleet.hosts[h]
            drift.append(DriftNote(kind: .hostUnknown, host: host.name,
                                   message: "\(host.name) is unknown (\(host.unknownReason ?? "unreachable")); its VMs are not observed and are left alone"))
        }
        for v in fleet.vms.indices {
            let vm = fleet.vms[v]
            if vm.observed == nil {
                drift.append(DriftNote(kind: .absent, vm: vm.name, message: "\(vm.name) is declared but not observed"))
                continue
            }
            guard let oi = vm.observed else { continue }
            let state = fleet.observation.vms[oi].state
            guard vm.declared == nil || state != .running else { continue }
            let host = fleet.observation.vms[oi].host
            if vm.declared == nil {
                drift.append(DriftNote(kind: .undeclared, vm: vm.name, host: host,
                                       message: "\(vm.name) is \(state.rawValue) on \(host) but not declared"
                                           + (options.prune ? "; pruned" : "; left alone (use --prune to remove it)")))
            } else {
                drift.append(DriftNote(kind: .notRunning, vm: vm.name, host: host,
                                       message: "\(vm.name) is declared but \(state.rawValue) on \(host)"))
            }
        }
    }

    /// Stop (when running or paused) and undefine every undeclared VM; its load leaves its host (the after column
    /// and the allocations that follow see the host without it).
    mutating func pruneUndeclared() {
        for v in fleet.vms.indices where fleet.vms[v].declared == nil {
            guard let o = fleet.observed(v) else { continue }
            var deps: [Int] = []
            if o.state == .running || o.state == .paused {
                deps.append(builder.add(.stop, vm: o.name, at: o.host,
                                        reason: "\(o.name) is \(o.state.rawValue) on \(o.host) but not declared; --prune"))
            }
            builder.add(.undefine, vm: o.name, at: o.host, deps: deps,
                        reason: "\(o.name) is not declared in the spec; --prune")
            state.remove(v, fleet: fleet)
        }
    }
}
