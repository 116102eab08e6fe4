import SandpiperModel

/// Step 6 of `Planner.plan`: declared VMs that were not observed are placed with the same pipeline and defined + started.
/// When any host is unknown the VM may be running there: it is not defined elsewhere, but reported.
/// A VM never observed is assumed to use its full allocation (Profiler.initialDemand).
extension PlanningContext {
    mutating func placeAbsentVMs() {
        let unknown = unknownHosts.map(hostName)
        for v in fleet.vms.indices where fleet.vms[v].observed == nil {
            guard let spec = fleet.spec(of: v) else { continue }
            if fleet.vms[v].automation == .disabled {
                unresolved.append(UnresolvedHotspot(vm: spec.name,
                                                    reason: "\(spec.name) is declared but not observed; its automation is disabled, so it is not defined"))
                continue
            }
            if !unknown.isEmpty {
                let list = unknown.prefix(3).joined(separator: ", ") + (unknown.count > 3 ? ", ..." : "")
                unresolved.append(UnresolvedHotspot(vm: spec.name,
                                                    reason: "\(spec.name) is declared but not observed; host \(list) unknown; VM may be there, so it is not defined elsewhere"))
                continue
            }
            guard spec.template != nil else {
                unresolved.append(UnresolvedHotspot(vm: spec.name,
                                                    reason: "\(spec.name) is declared but not observed and has no template in cluster.yaml, so it cannot be defined; add `template:` or define it by hand"))
                continue
            }
            let result = search.run(v, purpose: .initial, state: state, staticCounts: staticCounts)
            decisions.append(result.diagnostics)
            guard let t = result.chosen else {
                unresolved.append(UnresolvedHotspot(vm: spec.name,
                                                    reason: "\(spec.name) is declared but not observed and no host fits: \(summary(result.diagnostics))"))
                continue
            }
            let before = describe(t)
            state.place(v, on: t, fleet: fleet)
            touched[v] = true
            let d = fleet.vms[v].demand
            let define = builder.define(
                vm: spec.name, host: t,
                parameters: ActionParameters(vcpus: spec.vcpus, memoryMiB: spec.memoryMiB, template: spec.template),
                reason: "\(spec.name) is declared but not observed; assumed demand \(Fmt.amount(d.cpu, .cpu)), \(Fmt.mib(d.mem)); \(hostName(t)) is the lowest-Volume host that fits (\(before) -> \(describe(t)))")
            builder.add(.start, vm: spec.name, at: hostName(t), deps: [define],
                        reason: "start \(spec.name) after defining it on \(hostName(t))")
        }
    }
}
