/// Semantic checks on a decoded cluster spec: names, references, capacity and admission.
/// Pure: file existence is asked through `fileExists` (paths relative to the cluster directory).
public enum SpecValidator {
    public static func validate(_ spec: ClusterSpec, sourceMap: SourceMap,
                                fileExists: (String) -> Bool = { _ in true }) -> [SpecDiagnostic] {
        var out: [SpecDiagnostic] = []
        func fail(_ path: String, _ message: String) { out.append(sourceMap.diagnostic(path, message)) }

        duplicates(spec.hosts.map(\.name), "hosts", "host", fail)
        duplicates(spec.vms.map(\.name), "vms", "VM", fail)
        duplicates(spec.groups.map(\.name), "groups", "group", fail)
        if spec.hosts.isEmpty { fail("hosts", "at least one host is required") }

        let hostNames = Set(spec.hosts.map(\.name))
        let vmNames = Set(spec.vms.map(\.name))
        let slaNames = spec.slas.map(\.name)

        if spec.telemetry.source == .trace, let trace = spec.telemetry.trace, !fileExists(trace) {
            fail("telemetry.trace", "file \"\(trace)\" not found (paths are relative to cluster.yaml)")
        }
        if let file = spec.telemetry.prometheus?.credentialsFile, !fileExists(file) {
            fail("telemetry.credentialsFile", "file \"\(file)\" not found (paths are relative to cluster.yaml)")
        }

        for (i, host) in spec.hosts.enumerated() {
            if let power = host.power {
                for (key, argv) in [("on", power.on), ("off", power.off), ("status", power.status ?? ["/"])] {
                    let p = "hosts[\(i)].power.\(key)"
                    if argv.isEmpty { fail(p, "must name a program (an argv list, program first)"); continue }
                    if !argv[0].hasPrefix("/") {
                        fail("\(p)[0]", "\"\(argv[0])\" is not an absolute path (commands run without a shell or PATH)")
                    }
                    if argv.contains(where: { $0.contains("\u{0}") }) { fail(p, "arguments must not contain NUL") }
                }
            }
            let c = host.capacity
            if let cpus = c.cpus, c.reservedCPUs >= cpus {
                fail("hosts[\(i)].capacity.reserved.cpus",
                     "reserves \(Units.trim(c.reservedCPUs)) of \(Units.trim(cpus)) CPUs: nothing left for VMs")
            }
            if let mem = c.memoryMiB, c.reservedMemoryMiB >= mem {
                fail("hosts[\(i)].capacity.reserved.memory",
                     "reserves \(Units.formatMiB(c.reservedMemoryMiB)) of \(Units.formatMiB(mem)): nothing left for VMs")
            }
            switch HostURI.parse(host.uri) {
            case .failure(let e): fail("hosts[\(i)].uri", e.message)
            case .success(let uri):
                if let file = uri.relativeTestFile, !fileExists(file) {
                    fail("hosts[\(i)].uri", "test driver node file \"\(file)\" not found (relative to cluster.yaml)")
                }
            }
        }

        // The largest declared host, to reject VMs that can never fit anywhere.
        let declaredMemory = spec.hosts.compactMap(\.capacity.memoryMiB)
        let declaredCPUs = spec.hosts.compactMap(\.capacity.cpus)
        let allDeclareMemory = declaredMemory.count == spec.hosts.count && !spec.hosts.isEmpty
        let allDeclareCPUs = declaredCPUs.count == spec.hosts.count && !spec.hosts.isEmpty

        for (i, vm) in spec.vms.enumerated() {
            let p = "vms[\(i)]"
            if let sla = vm.sla, !slaNames.contains(sla) {
                fail("\(p).sla", "unknown SLA \"\(sla)\"" + known(slaNames))
            }
            if let t = vm.template, !fileExists(t) {
                fail("\(p).template", "file \"\(t)\" not found (paths are relative to cluster.yaml)")
            }
            let cpu = vm.resources.cpu, mem = vm.resources.memory
            if let limit = cpu.limit {
                if cpu.reservation > limit {
                    fail("\(p).resources.cpu.reservation",
                         "reservation \(Units.trim(cpu.reservation)) cores exceeds the limit \(Units.trim(limit)) cores")
                }
                if vm.vcpus > 0 && limit > Double(vm.vcpus) {
                    fail("\(p).resources.cpu.limit",
                         "limit \(Units.trim(limit)) cores exceeds the VM's \(vm.vcpus) vCPUs")
                }
                if limit <= 0 { fail("\(p).resources.cpu.limit", "limit must be larger than 0") }
            }
            if vm.vcpus > 0 && cpu.reservation > Double(vm.vcpus) {
                fail("\(p).resources.cpu.reservation",
                     "reservation \(Units.trim(cpu.reservation)) cores exceeds the VM's \(vm.vcpus) vCPUs")
            }
            if let limit = mem.limit {
                if mem.reservation > limit {
                    fail("\(p).resources.memory.reservation",
                         "reservation \(Units.formatMiB(mem.reservation)) exceeds the limit \(Units.formatMiB(limit))")
                }
                if limit <= 0 { fail("\(p).resources.memory.limit", "limit must be larger than 0") }
            }
            // memoryMiB is 0 only when it failed to decode (reported there already).
            if vm.memoryMiB > 0 && mem.reservation > vm.memoryMiB {
                fail("\(p).resources.memory.reservation",
                     "reservation \(Units.formatMiB(mem.reservation)) exceeds the VM's memory \(Units.formatMiB(vm.memoryMiB))")
            }
            if let rule = vm.placement {
                if let pinned = rule.host {
                    if !hostNames.contains(pinned) {
                        fail("\(p).placement.host", "unknown host \"\(pinned)\"" + known(spec.hosts.map(\.name)))
                    } else if let host = spec.host(named: pinned) {
                        checkFits(vm, host, "\(p)", fail)
                        if !rule.labels.isEmpty && !rule.admits(host) {
                            fail("\(p).placement.labels", "pinned host \(pinned) does not carry these labels")
                        }
                    }
                } else if !rule.labels.isEmpty && !spec.hosts.contains(where: rule.admits) {
                    let wanted = rule.labels.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }
                    fail("\(p).placement.labels", "no host carries the labels \(wanted.joined(separator: ", "))")
                }
            }
            if vm.placement?.host == nil {
                if allDeclareMemory, let biggest = declaredMemory.max(), vm.memoryMiB > biggest {
                    fail("\(p).memory", "\(Units.formatMiB(vm.memoryMiB)) is more than any host's memory "
                        + "(largest: \(Units.formatMiB(biggest)))")
                }
                if allDeclareCPUs, let biggest = declaredCPUs.max(), Double(vm.vcpus) > biggest {
                    fail("\(p).vcpus", "\(vm.vcpus) vCPUs is more than any host's CPUs (largest: \(Units.trim(biggest)))")
                }
            }
        }

        // Admission: reservations of the VMs pinned to a host must fit in its capacity.
        // (Grouped once: a filter of every VM per host is quadratic, seconds at 1,000 hosts and 20,000 VMs.)
        var pinnedTo: [String: [VMSpec]] = [:]
        for vm in spec.vms { if let host = vm.placement?.host { pinnedTo[host, default: []].append(vm) } }
        for (i, host) in spec.hosts.enumerated() {
            let pinned = pinnedTo[host.name] ?? []
            if pinned.isEmpty { continue }
            let cpu = pinned.reduce(0) { $0 + $1.resources.cpu.reservation }
            let mem = pinned.reduce(0) { $0 + $1.resources.memory.reservation }
            if let cap = host.capacity.cpus.map({ $0 - host.capacity.reservedCPUs }), cpu > cap {
                fail("hosts[\(i)].capacity.cpus", "VMs pinned to \(host.name) reserve \(Units.trim(cpu)) cores; "
                    + "the host has \(Units.trim(cap)) (\(pinned.map(\.name).joined(separator: ", ")))")
            }
            if let cap = host.capacity.memoryMiB.map({ $0 - host.capacity.reservedMemoryMiB }), mem > cap {
                fail("hosts[\(i)].capacity.memory", "VMs pinned to \(host.name) reserve \(Units.formatMiB(mem)); "
                    + "the host has \(Units.formatMiB(cap)) (\(pinned.map(\.name).joined(separator: ", ")))")
            }
        }
        // The whole fleet's reservations must fit in the whole fleet.
        if allDeclareCPUs {
            let reserved = spec.vms.reduce(0) { $0 + $1.resources.cpu.reservation }
            let capacity = declaredCPUs.reduce(0, +)
            if reserved > capacity {
                fail("vms", "VMs reserve \(Units.trim(reserved)) cores; all hosts together have \(Units.trim(capacity))")
            }
        }
        if allDeclareMemory {
            let reserved = spec.vms.reduce(0) { $0 + $1.resources.memory.reservation }
            let capacity = declaredMemory.reduce(0, +)
            if reserved > capacity {
                fail("vms", "VMs reserve \(Units.formatMiB(reserved)); all hosts together have \(Units.formatMiB(capacity))")
            }
        }

        let pinOf = Dictionary(spec.vms.map { ($0.name, $0.placement?.host) }, uniquingKeysWith: { first, _ in first })
        for (i, group) in spec.groups.enumerated() {
            let p = "groups[\(i)]"
            for (j, name) in group.vms.enumerated() where !vmNames.contains(name) {
                fail("\(p).vms[\(j)]", "unknown VM \"\(name)\"")
            }
            duplicates(group.vms, "\(p).vms", "VM", fail)
            if group.vms.count < 2 { fail("\(p).vms", "a group needs at least 2 VMs") }
            guard group.enforcement == .must else { continue }
            switch group.rule {
            case .antiAffinity:
                if group.vms.count > spec.hosts.count {
                    fail("\(p).vms", "anti-affinity (must) keeps \(group.vms.count) VMs on different hosts, "
                        + "but there are only \(spec.hosts.count) hosts")
                }
                let pins = group.vms.compactMap { pinOf[$0] ?? nil }
                for host in Set(pins).sorted() where pins.filter({ $0 == host }).count > 1 {
                    fail("\(p).vms", "anti-affinity (must), but several of its VMs are pinned to \(host)")
                }
            case .affinity:
                let pins = Set(group.vms.compactMap { pinOf[$0] ?? nil })
                if pins.count > 1 {
                    fail("\(p).vms", "affinity (must), but its VMs are pinned to different hosts: "
                        + pins.sorted().joined(separator: ", "))
                }
            }
        }
        return out
    }

    private static func checkFits(_ vm: VMSpec, _ host: HostSpec, _ p: String, _ fail: (String, String) -> Void) {
        if let mem = host.capacity.memoryMiB, vm.memoryMiB > mem {
            fail("\(p).memory", "\(Units.formatMiB(vm.memoryMiB)) is more than the memory of its pinned host "
                + "\(host.name) (\(Units.formatMiB(mem)))")
        }
        if let cpus = host.capacity.cpus, Double(vm.vcpus) > cpus {
            fail("\(p).vcpus", "\(vm.vcpus) vCPUs is more than the CPUs of its pinned host \(host.name) (\(Units.trim(cpus)))")
        }
    }

    private static func duplicates(_ names: [String], _ path: String, _ what: String,
                                   _ fail: (String, String) -> Void) {
        var firstIndex: [String: Int] = [:]
        for (i, name) in names.enumerated() {
            if let first = firstIndex[name] {
                fail("\(path)[\(i)]", "duplicate \(what) name \"\(name)\" (first at \(path)[\(first)])")
            } else {
                firstIndex[name] = i
            }
        }
    }

    private static func known(_ names: [String]) -> String {
        names.isEmpty ? " (none are defined)" : " (defined: \(names.sorted().joined(separator: ", ")))"
    }
}
