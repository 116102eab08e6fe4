import SandpiperModel

/// Step 4 of `Planner.plan`: constraint repair, even when nothing is hot. A VM on a maintenance host, off its pin or its labels,
/// or breaking a must group is moved (live, or cold when its SLA says so); `migration: never` leaves it unresolved.
/// Minimum residency does not hold back a repair: a broken must-rule outranks hysteresis.
extension PlanningContext {
    mutating func repairConstraints() {
        for v in fleet.vms.indices {
            let vm = fleet.vms[v]
            guard vm.declared != nil, vm.observed != nil else { continue }
            let h = state.hostOf[v]
            guard h >= 0, fleet.hosts[h].status != .unknown else { continue }
            if fleet.hosts[h].status == .up, !fleet.hosts[h].eligible { continue }  // undeclared host: drift only
            // A cordoned host keeps its VMs: being on one breaks nothing.
            let broken = search.feasible.constraints(v, on: h, state: state).filter { $0.reason != "unschedulable" }
            guard !broken.isEmpty else { continue }
            let why = broken.map { $0.text(fleet) }.joined(separator: "; ")
            if vm.automation == .disabled {
                unresolved.append(UnresolvedHotspot(host: hostName(h), vm: vm.name,
                                                    reason: "\(why); its automation is disabled, so it is not moved"))
                continue
            }
            if vm.migration == .never {
                unresolved.append(UnresolvedHotspot(host: hostName(h), vm: vm.name,
                                                    reason: "\(why); SLA \(slaName(v)) forbids migration (migration: never)"))
                continue
            }
            if let cold = coldWithLocalDisks(v) {
                unresolved.append(UnresolvedHotspot(host: hostName(h), vm: vm.name, reason: "\(why); \(cold)"))
                continue
            }
            guard budget > 0 else {
                unresolved.append(UnresolvedHotspot(host: hostName(h), vm: vm.name,
                                                    reason: "\(why); maxMigrationsPerRun (\(fleet.policy.placement.maxMigrationsPerRun)) reached"))
                continue
            }
            let result = search.run(v, purpose: .repair, state: state, staticCounts: staticCounts)
            decisions.append(result.diagnostics)
            guard let t = result.chosen else {
                unresolved.append(UnresolvedHotspot(host: hostName(h), vm: vm.name,
                                                    reason: "\(why); no host fits: \(summary(result.diagnostics))"))
                continue
            }
            let fromBefore = describe(h), toBefore = describe(t)
            state.move(v, to: t, fleet: fleet)
            touched[v] = true
            budget -= 1
            builder.migrate(vm: vm.name, from: h, to: t, mode: mode(v),
                            reason: "constraint repair: \(why); \(hostName(t)) is the lowest-Volume host that satisfies every rule (\(toBefore) -> \(describe(t))); \(hostName(h)): \(fromBefore) -> \(describe(h))")
        }
    }

    /// "12 examined: 3 cpu threshold, 9 pinned; e.g. pm3: needs ..."
    func summary(_ d: PlacementDiagnostics) -> String {
        var s = "\(d.hostsExamined) of \(d.hostsTotal) hosts examined"
        if !d.filtered.isEmpty { s += "; " + d.filtered.map { "\($0.count) \($0.reason)" }.joined(separator: ", ") }
        if let e = d.examples.first { s += "; e.g. " + e }
        return s
    }
}
