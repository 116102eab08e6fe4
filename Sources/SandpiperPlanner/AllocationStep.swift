import SandpiperModel

/// Step 9 of `Planner.plan` ("Beyond the paper"): allocations on the final placement.
/// Entitlements (VMware semantics): reservation <= entitlement <= min(limit, demand); capacity above reservations
/// is divided in proportion to shares, water-filling past VMs that are capped. Tunables are emitted only where they
/// differ from what libvirt reports (nil = not exposed by the driver: left alone, so plans converge).
enum Entitlements {
    struct Claim: Sendable, Equatable {
        var reservation: Double
        /// min(limit, demand), never below the reservation.
        var cap: Double
        var shares: Double
    }

    /// Water-filling: returns one entitlement per claim. Each round offers the pool to the unsaturated claims in
    /// proportion to their shares; claims the offer would push past their cap take their cap and leave; the rest
    /// of the pool goes round again. When nobody saturates, the pool is split and the loop ends.
    static func waterFill(capacity: Double, claims: [Claim]) -> [Double] {
        var e = claims.map(\.reservation)
        var remaining = capacity - e.reduce(0, +)
        var active = claims.indices.filter { claims[$0].cap > claims[$0].reservation && claims[$0].shares > 0 }
        while remaining > 1e-12, !active.isEmpty {
            let total = active.reduce(0.0) { $0 + claims[$1].shares }
            let saturated = active.filter { e[$0] + remaining * claims[$0].shares / total >= claims[$0].cap }
            if saturated.isEmpty {
                for i in active { e[i] += remaining * claims[i].shares / total }
                remaining = 0
                break
            }
            for i in saturated {
                remaining -= claims[i].cap - e[i]
                e[i] = claims[i].cap
            }
            active.removeAll { saturated.contains($0) }
        }
        return e
    }

    static let cpuPeriodMicros = 100_000
}

extension PlanningContext {
    mutating func allocate(_ detection: DetectionResult) {
        // Entitlements where demand exceeds capacity on the final placement.
        var memEntitlement: [Int: Double] = [:]
        for h in fleet.hosts.indices where fleet.hosts[h].status != .unknown {
            let members = state.members[h]
            guard !members.isEmpty else { continue }
            for r in [ResourceKind.cpu, .mem] {
                let capacity = fleet.hosts[h].capacity[r]
                guard state.load[h][r] > capacity + 1e-9 else { continue }
                var claims: [Entitlements.Claim] = []
                var info: [(v: Int, limit: Double?, shares: Int)] = []
                for v in members {
                    let spec = fleet.spec(of: v)
                    let ctl = r == .cpu ? spec?.resources.cpu : spec?.resources.memory
                    let resv = ctl?.reservation ?? 0
                    let shares: Int
                    if r == .cpu { shares = (ctl?.shares ?? .normal).cpuShares(vcpus: spec?.vcpus ?? fleet.observed(v)?.vcpus ?? 1) }
                    else { shares = (ctl?.shares ?? .normal).memoryShares(memoryMiB: spec?.memoryMiB ?? fleet.vms[v].ram) }
                    let demand = fleet.vms[v].demand[r]
                    claims.append(.init(reservation: resv, cap: max(resv, min(ctl?.limit ?? .infinity, demand)),
                                        shares: Double(shares)))
                    info.append((v, ctl?.limit, shares))
                }
                // What the host's own load leaves for its VMs.
                let e = Entitlements.waterFill(capacity: max(0, capacity - fleet.hosts[h].overhead[r]), claims: claims)
                for (i, x) in info.enumerated() {
                    entitlements.append(Entitlement(vm: fleet.vms[x.v].name, host: hostName(h), resource: r,
                                                    reservation: claims[i].reservation, limit: x.limit,
                                                    shares: x.shares, demand: fleet.vms[x.v].demand[r],
                                                    entitlement: e[i]))
                    if r == .mem { memEntitlement[x.v] = e[i] }
                }
            }
        }

        for v in fleet.vms.indices {
            guard let spec = fleet.spec(of: v), let o = fleet.observed(v) else { continue }
            if fleet.vms[v].automation == .disabled { continue }  // left alone: no tune, no resize
            let at = o.host
            // What shrinks (or only reweighs) runs first, where the VM is now; what grows runs on the VM's final
            // host once the moves that make room there are done (ActionBuilder.grow).
            var p = ActionParameters(), grown = ActionParameters()
            var why: [String] = [], growWhy: [String] = []
            let t = o.tunables
            let cpu = spec.resources.cpu, mem = spec.resources.memory

            let shares = cpu.shares.cpuShares(vcpus: spec.vcpus)
            if let cur = t.cpuShares, cur != shares {
                p.cpuShares = shares
                why.append("cpu shares \(cur) -> \(shares) (\(cpu.shares.name) x \(spec.vcpus) vCPU)")
            }
            let curQuota = (t.cpuQuotaMicros ?? -1) > 0 ? t.cpuQuotaMicros : nil
            // CFS bandwidth is enforceable only where the driver exposes it (a period is reported): elsewhere
            // (libvirt's test driver, QEMU without cgroups) a quota action could never converge.
            let quotaExposed = t.cpuPeriodMicros != nil || t.cpuQuotaMicros != nil
            if !quotaExposed {
                // Left alone, like shares the driver does not report.
            } else if let limit = cpu.limit, limit.isFinite, limit > 0 {
                let quota = Int((limit * Double(Entitlements.cpuPeriodMicros)).rounded())
                if curQuota != quota || (t.cpuPeriodMicros ?? Entitlements.cpuPeriodMicros) != Entitlements.cpuPeriodMicros {
                    let curCores = curQuota.map { Double($0) / Double(t.cpuPeriodMicros ?? Entitlements.cpuPeriodMicros) }
                    let raises = curCores.map { limit > $0 + 1e-9 } ?? false
                    let text = "cpu quota \(curQuota.map(String.init) ?? "unlimited") -> \(quota)/\(Entitlements.cpuPeriodMicros) us (limit \(Fmt.d(limit)) cores)"
                    if raises {
                        grown.cpuPeriodMicros = Entitlements.cpuPeriodMicros; grown.cpuQuotaMicros = quota; growWhy.append(text)
                    } else {
                        p.cpuPeriodMicros = Entitlements.cpuPeriodMicros; p.cpuQuotaMicros = quota; why.append(text)
                    }
                }
            } else if let q = curQuota {
                grown.cpuQuotaMicros = -1
                growWhy.append("cpu quota \(q) -> unlimited (no limit in the spec)")
            }
            if let limit = mem.limit, t.memoryHardLimitMiB.map({ abs($0 - limit) > 0.5 }) ?? true {
                p.memoryHardLimitMiB = limit
                why.append("memory hard limit \(t.memoryHardLimitMiB.map(Fmt.mib) ?? "unset") -> \(Fmt.mib(limit))")
            }
            if mem.reservation > 0, t.memorySoftLimitMiB.map({ abs($0 - mem.reservation) > 0.5 }) ?? true {
                p.memorySoftLimitMiB = mem.reservation
                why.append("memory soft limit \(t.memorySoftLimitMiB.map(Fmt.mib) ?? "unset") -> \(Fmt.mib(mem.reservation)) (reservation)")
            }
            // Balloon: raise a VM under memory pressure to its profile (within its limit); shrink to the
            // entitlement under host contention; keep within [reservation, limit].
            let ceiling = Profiler.memCeiling(maxMemoryMiB: max(o.maxMemoryMiB, o.memoryMiB), control: mem)
            var balloon = o.memoryMiB
            var balloonWhy = ""
            if detection.vmHot[v]?.contains(.mem) == true, fleet.vms[v].demand.mem > o.memoryMiB + 0.5 {
                balloon = min(fleet.vms[v].demand.mem, ceiling)
                balloonWhy = "memory pressure in the window (\(fleet.policy.profiling.mode.rawValue) profile \(Fmt.mib(fleet.vms[v].demand.mem)))"
            } else if let e = memEntitlement[v], e < o.memoryMiB - 0.5 {
                balloon = e
                balloonWhy = "host memory contention: entitlement \(Fmt.mib(e)) by shares"
            }
            if balloon > ceiling + 0.5 { balloon = ceiling; balloonWhy = "above the limit \(Fmt.mib(ceiling))" }
            if balloon < mem.reservation - 0.5 { balloon = mem.reservation; balloonWhy = "below the reservation" }
            if detection.vmHot[v]?.contains(.mem) == true, balloon <= o.memoryMiB + 0.5 {
                unresolved.append(UnresolvedHotspot(host: at, vm: spec.name, resources: [.mem],
                                                    reason: "\(spec.name) is under memory pressure but already at its ceiling \(Fmt.mib(ceiling)) (limit or maximum memory); raise it in the spec"))
            }
            if detection.vmHot[v]?.contains(.cpu) == true {
                let cpuCeiling = Profiler.cpuCeiling(vcpus: o.vcpus, control: cpu)
                let by = (cpu.limit ?? .infinity) < Double(o.vcpus) ? "its CPU limit" : "its \(o.vcpus) vCPUs"
                unresolved.append(UnresolvedHotspot(host: at, vm: spec.name, resources: [.cpu],
                                                    reason: "\(spec.name) runs at its allocation: demand at or above \(Fmt.pct(HotspotScan.vmCPUAtAllocation)) of \(Fmt.d(cpuCeiling)) cores (\(by)); profiling already provisions it fully; raise the limit or vCPUs in the spec"))
            }
            if abs(balloon - o.memoryMiB) > 0.5 {
                let text = "balloon \(Fmt.mib(o.memoryMiB)) -> \(Fmt.mib(balloon.rounded())): \(balloonWhy)"
                if balloon > o.memoryMiB { grown.balloonMiB = balloon.rounded(); growWhy.append(text) }
                else { p.balloonMiB = balloon.rounded(); why.append(text) }
            }
            let final = state.hostOf[v] >= 0 ? state.hostOf[v] : nil
            if !why.isEmpty {
                builder.add(.tune, vm: spec.name, at: at, parameters: p, reason: why.joined(separator: "; "))
            }
            if !growWhy.isEmpty {
                grow(.tune, vm: spec.name, at: at, final: final, parameters: grown, reason: growWhy.joined(separator: "; "))
            }

            var r = ActionParameters(), rGrown = ActionParameters()
            var rwhy: [String] = [], rShrinks: [String] = [], rGrows: [String] = []
            if spec.vcpus != o.vcpus {
                let text = "vCPUs \(o.vcpus) -> \(spec.vcpus)"
                rwhy.append(text)
                if spec.vcpus > o.vcpus { rGrown.vcpus = spec.vcpus; rGrows.append(text) }
                else { r.vcpus = spec.vcpus; rShrinks.append(text) }
            }
            if abs(spec.memoryMiB - o.maxMemoryMiB) > 0.5 {
                let text = "memory \(Fmt.mib(o.maxMemoryMiB)) -> \(Fmt.mib(spec.memoryMiB))"
                rwhy.append(text)
                if spec.memoryMiB > o.maxMemoryMiB { rGrown.memoryMiB = spec.memoryMiB; rGrows.append(text) }
                else { r.memoryMiB = spec.memoryMiB; rShrinks.append(text) }
            }
            if !rwhy.isEmpty {
                drift.append(DriftNote(kind: .allocation, vm: spec.name, host: o.host,
                                       message: "\(spec.name): " + rwhy.joined(separator: ", ") + " (spec differs from the running allocation)"))
            }
            if !rShrinks.isEmpty {
                builder.add(.resize, vm: spec.name, at: at, parameters: r,
                            reason: "spec differs from the running allocation: " + rShrinks.joined(separator: ", "))
            }
            if !rGrows.isEmpty {
                grow(.resize, vm: spec.name, at: at, final: final, parameters: rGrown,
                     reason: "spec differs from the running allocation: " + rGrows.joined(separator: ", "))
            }
        }
    }

    /// A growing tune/resize: on the VM's final host after the moves that make room there (or where it is, when
    /// the plan does not place it).
    private mutating func grow(_ kind: ActionKind, vm: String, at current: String, final: Int?,
                               parameters: ActionParameters, reason: String) {
        if let final {
            builder.grow(kind, vm: vm, on: final, parameters: parameters, reason: reason)
        } else {
            builder.add(kind, vm: vm, at: current, parameters: parameters, reason: reason)
        }
    }
}
