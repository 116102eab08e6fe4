import Dispatch
import Foundation
import Synchronization
import SandpiperLibvirt
import SandpiperModel

/// The fleet as libvirt shows it right now: hosts (up with capacity, or unknown with the reason) and the
/// domains on the hosts that answered. No samples here: telemetry is added by a `TelemetrySource`.
public struct FleetInventory: Sendable, Equatable {
    public var hosts: [HostObservation]
    public var vms: [VMObservation]
    /// Things an operator should know that are not errors (capacity mismatches, duplicate domains).
    public var warnings: [String]
    /// libvirt's UUID of each observed VM (by name), for telemetry matched by UUID.
    public var uuids: [String: String]

    public init(hosts: [HostObservation], vms: [VMObservation], warnings: [String] = [], uuids: [String: String] = [:]) {
        self.hosts = hosts.sorted { $0.name < $1.name }
        self.vms = vms.sorted { $0.name < $1.name }
        self.warnings = warnings
        self.uuids = uuids
    }

    /// Hosts that could not be reached (standby hosts are not unknown: they are powered off on purpose).
    public var unknownHosts: [HostObservation] {
        hosts.filter { if case .unknown = $0.status { true } else { false } }
    }
}

/// One libvirt connection per host of a cluster, held for the whole run: the test driver keeps its state only
/// as long as its connection, and real daemons cost a handshake per connection.
/// Opening and reading run in parallel with a bounded number of hosts in flight and a deadline per host;
/// a host that fails or times out is `unknown` with the reason, never empty.
public final class FleetConnections: @unchecked Sendable {
    public let cluster: LoadedCluster
    public let timeout: Duration
    /// Hosts opened, read or sampled at once.
    public let concurrency: Int
    private let lock = NSLock()
    private var open: [String: LibvirtConnection] = [:]
    private var failures: [String: String] = [:]
    /// Power state set by apply in this process (true = on); otherwise the previous inventory says.
    private var powered: [String: Bool] = [:]
    /// False for `simulate`: it acts only on test-driver hosts and must never run a host's `power.status`
    /// command (a host whose node file fails to open would otherwise be asked whether it is on).
    public let runsStatusCommands: Bool
    /// What each host lets Sandpiper tune, probed once per host (see `tuning`).
    private var tuningByHost: [String: HostTuning?] = [:]
    /// Test-driver hosts observed from their node files and not opened yet (`TestNodeReader`): until something
    /// acts on such a host, libvirt would show exactly what its file says, and parsing 1,000 files in libvirt
    /// costs seconds. `connection(_:)` opens one when it is first asked for it (libvirt starts from the same file).
    private var unopened: [String: TestNodeReader.Contents] = [:]
    private let readOnly: Bool
    /// Hosts' last reads, reused by `inventory` while `reusesReads` is on (see there).
    private var lastReads: [String: HostRead] = [:]
    /// Reuse each host's last successful read in `inventory` until `forgetReads()`: for a caller that is the only
    /// one acting on the hosts and forgets after each time it acts (`simulate` after each apply; test-driver
    /// hosts live in this process alone). Off by default: a real host changes without Sandpiper.
    public var reusesReads: Bool {
        get { lock.lock(); defer { lock.unlock() }; return reuses }
        set { lock.lock(); reuses = newValue; if !newValue { lastReads = [:] }; lock.unlock() }
    }
    private var reuses = false

    /// Drops the reads `reusesReads` keeps (after acting on the hosts).
    public func forgetReads() {
        lock.lock(); lastReads = [:]; lock.unlock()
    }

    private func lastRead(_ host: String) -> HostRead? {
        lock.lock(); defer { lock.unlock() }
        return reuses ? lastReads[host] : nil
    }

    private func keep(_ read: HostRead, for host: String) {
        lock.lock(); if reuses { lastReads[host] = read }; lock.unlock()
    }

    /// Opens every host of `cluster` (at most `concurrency` at once, each within `timeout`), except hosts the
    /// previous inventory (state.json) records as standby: a powered-off host is not contacted (its `status`
    /// command, when declared and allowed, decides whether it is on again; see `isStandby`).
    /// `readsTestNodeFiles`: observe test-driver hosts from their node files until they are acted on (false:
    /// open every host through libvirt at once, as the equivalence tests compare). Default: only read-only
    /// connections do, which nothing acts through. A connection opened later needs the node file still there,
    /// and a cluster read from a git revision lives in a temporary copy that a long-lived caller may outlive;
    /// `simulate` opts in (its cluster is the directory on disk, for the length of the run).
    public init(cluster: LoadedCluster, readOnly: Bool = false, concurrency: Int = 8,
                timeout: Duration = .seconds(15), previous: Observation? = nil, runsStatusCommands: Bool = true,
                readsTestNodeFiles: Bool? = nil) {
        self.cluster = cluster
        self.runsStatusCommands = runsStatusCommands
        self.timeout = timeout
        self.concurrency = concurrency
        self.readOnly = readOnly
        let asleep = Set((previous?.hosts ?? []).filter { $0.status == .standby }.map(\.name))
        var toOpen = cluster.spec.hosts.filter { !asleep.contains($0.name) }
        if readsTestNodeFiles ?? readOnly {
            toOpen = toOpen.filter { host in
                guard let contents = Self.nodeFileContents(cluster.connectionURI(for: host), cluster: cluster) else {
                    return true
                }
                unopened[host.name] = contents
                return false
            }
        }
        let hosts = toOpen
        let results = Self.parallel(hosts.map(\.name), concurrency: concurrency, timeout: timeout) { index in
            let host = hosts[index]
            do throws(LibvirtError) {
                return Result<LibvirtConnection, LibvirtError>.success(
                    try LibvirtConnection(uri: cluster.connectionURI(for: host), readOnly: readOnly))
            } catch { return .failure(error) }
        }
        for (host, result) in zip(hosts, results) {
            switch result {
            case .some(.success(let c)): open[host.name] = c
            case .some(.failure(let e)): failures[host.name] = Self.oneLine(e.message)
            case .none: failures[host.name] = "no answer within \(timeout)"
            }
        }
    }

    deinit { closeAll() }

    public func closeAll() {
        lock.lock(); let all = open; open = [:]; unopened = [:]; lock.unlock()
        for c in all.values { c.close() }
    }

    /// The open connection to `host`, or nil when it is unknown. A host observed from its node file is opened
    /// now (whoever asks is about to act on it or sample it).
    public func connection(_ host: String) -> LibvirtConnection? {
        lock.lock(); defer { lock.unlock() }
        if let c = open[host] { return c }
        guard unopened.removeValue(forKey: host) != nil, let spec = cluster.spec.host(named: host) else { return nil }
        do throws(LibvirtError) {
            let c = try LibvirtConnection(uri: cluster.connectionURI(for: spec), readOnly: readOnly)
            open[host] = c
            return c
        } catch {
            failures[host] = Self.oneLine(error.message)
            return nil
        }
    }

    /// Open, or observed from its node file (and opened on first use).
    func isConnected(_ host: String) -> Bool {
        lock.lock(); defer { lock.unlock() }
        return open[host] != nil || unopened[host] != nil
    }

    /// The node-file contents of a test-driver host not opened yet; nil once it is open (libvirt is the truth then).
    func unopenedContents(_ host: String) -> TestNodeReader.Contents? {
        lock.lock(); defer { lock.unlock() }
        return open[host] == nil ? unopened[host] : nil
    }

    /// What `TestNodeReader` reads from a `test:///path` URI's node file (as the loader read it, or now); nil for
    /// any other URI, an unreadable file, or one outside the reader's subset (libvirt opens those).
    static func nodeFileContents(_ uri: String, cluster: LoadedCluster) -> TestNodeReader.Contents? {
        guard LibvirtURI.isTestDriver(uri), uri.hasPrefix("test:///"), uri != "test:///default" else { return nil }
        let path = String(uri.dropFirst("test://".count))
        guard !path.contains(where: { "?#%".contains($0) }) else { return nil }
        if let loaded = cluster.testNodeFiles[path] { return loaded }
        guard let bytes = ClusterLoader.readFile(path) else { return nil }
        return TestNodeReader.read(bytes)
    }

    /// Why `host` could not be reached, if it could not.
    public func failure(_ host: String) -> String? {
        lock.lock(); defer { lock.unlock() }
        return failures[host]
    }

    /// Records a host's power state after apply powered it off (standby: not read, not connected) or on (its
    /// connection is reopened when it has none).
    public func setPowered(_ host: String, _ on: Bool) {
        lock.lock()
        powered[host] = on
        let needsOpen = on && open[host] == nil && unopened[host] == nil
        if !on, let spec = cluster.spec.host(named: host), !LibvirtURI.isTestDriver(cluster.connectionURI(for: spec)) {
            // A test-driver host keeps its connection: its domains live only as long as it.
            open[host]?.close()
            open[host] = nil
        }
        lock.unlock()
        if needsOpen { reopen(host) }
    }

    /// Tries to open a connection to `host` again (after a power-on); records the failure otherwise.
    public func reopen(_ host: String) {
        guard let spec = cluster.spec.host(named: host) else { return }
        let uri = cluster.connectionURI(for: spec)
        let results = Self.parallel([host], concurrency: 1, timeout: timeout) { _ in
            do throws(LibvirtError) { return Result<LibvirtConnection, LibvirtError>.success(try LibvirtConnection(uri: uri)) }
            catch { return .failure(error) }
        }
        lock.lock(); defer { lock.unlock() }
        unopened[host] = nil
        switch results.first ?? nil {
        case .some(.success(let c)): open[host] = c; failures[host] = nil
        case .some(.failure(let e)): failures[host] = Self.oneLine(e.message)
        case .none: failures[host] = "no answer within \(timeout)"
        }
    }

    /// Standby: apply powered it off in this process, or the previous inventory (state.json) says so — unless the
    /// host's `power.status` command (run only when the policy allows power commands) reports it on.
    /// A host that held VMs when last seen is never called standby by its status command alone: its domains are
    /// still defined there, so it stays unknown (its VMs are not placed elsewhere).
    func isStandby(_ host: HostSpec, previous: HostObservation?, heldVMs: Bool = false) -> Bool {
        lock.lock()
        let known = powered[host.name]
        lock.unlock()
        if let known { return !known }
        let recorded = previous?.status == .standby
        guard runsStatusCommands, let status = host.power?.status, cluster.policy.consolidation.powerCommands == .allow,
              recorded || !isConnected(host.name) else { return recorded }
        let timeout = min(cluster.policy.consolidation.commandTimeoutSeconds, 30)
        guard let result = try? PowerCommand(argv: status, timeoutSeconds: timeout).run(), result.succeeded,
              let on = PowerCommand.poweredOn(statusOutput: result.output) else { return recorded }
        if !on && heldVMs && !recorded { return false }
        lock.lock(); powered[host.name] = on; lock.unlock()
        if on && !isConnected(host.name) { reopen(host.name) }
        return !on
    }

    /// The entitlement knobs `host` refuses (nil: it takes them all, or it cannot be asked). Probed on first use
    /// and kept for the run; `inventory` reports it in each host's observation, `apply` writes only what it takes.
    public func tuning(_ host: String) -> HostTuning? {
        lock.lock()
        if let known = tuningByHost[host] { lock.unlock(); return known }
        let fromNodeFile = open[host] == nil && unopened[host] != nil
        lock.unlock()
        // A test-driver host takes every knob (only QEMU, LXC and CH in session mode refuse some): no need to
        // open it to ask.
        if fromNodeFile { return nil }
        guard let c = connection(host), let probed = try? c.tuningSupport() else { return nil }
        let tuning = probed == .all ? nil : HostTuning(cpu: probed.cpu, memory: probed.memory, reason: probed.reason)
        lock.lock(); tuningByHost[host] = .some(tuning); lock.unlock()
        return tuning
    }

    /// Marks a host unknown after a failed call, so later steps do not act on it.
    public func markUnknown(_ host: String, reason: String) {
        lock.lock(); defer { lock.unlock() }
        failures[host] = reason
        open[host]?.close()
        open[host] = nil
        unopened[host] = nil
        lastReads[host] = nil
    }

    /// Reads every reachable host's capacity and domains in parallel.
    /// `previous` (the state file's inventory) carries `lastMovedAt` forward for VMs that stayed put.
    /// Standby hosts (see `isStandby`) are not contacted; `lowSince` is carried forward for hosts still up.
    public func inventory(previous: Observation? = nil, now: Double) -> FleetInventory {
        let hosts = cluster.spec.hosts
        let previousHosts = Dictionary((previous?.hosts ?? []).map { ($0.name, $0) }, uniquingKeysWith: { a, _ in a })
        let occupied = Set((previous?.vms ?? []).map(\.host))
        // Each host's standby check (which may run its status command) happens under that host's own deadline.
        let standbyFlags = StandbyFlags(hosts.count)
        let read = { @Sendable (index: Int) -> Result<HostRead, LibvirtError> in
            let host = hosts[index]
            if self.isStandby(host, previous: previousHosts[host.name], heldVMs: occupied.contains(host.name)) {
                standbyFlags.set(index)
                return Result<HostRead, LibvirtError>.failure(LibvirtError(code: 0, domain: 0, message: "standby"))
            }
            if let file = self.unopenedContents(host.name) {
                return .success(HostRead(cpus: file.cpus, memoryMiB: file.memoryMiB, domains: file.domains))
            }
            if let kept = self.lastRead(host.name) { return .success(kept) }
            guard let c = self.connection(host.name) else {
                return Result<HostRead, LibvirtError>.failure(
                    LibvirtError(code: 0, domain: 0, message: self.failure(host.name) ?? "not connected"))
            }
            do throws(LibvirtError) {
                let info = try c.hostInfo()
                let read = HostRead(cpus: info.cpus, memoryMiB: info.memoryMiB, domains: try c.domains())
                _ = self.tuning(host.name)  // probed here, in parallel, once per host
                self.keep(read, for: host.name)
                return .success(read)
            } catch { return .failure(error) }
        }
        // Hosts still observed from their node files (or with a read kept) are read here, without a thread each
        // (a simulation asks every interval): nothing can block, and their standby check runs no command (it
        // would only for a host recorded as standby, and those go to the parallel path).
        let inline = Set(hosts.indices.filter {
            (unopenedContents(hosts[$0].name) != nil || lastRead(hosts[$0].name) != nil)
                && previousHosts[hosts[$0].name]?.status != .standby
        })
        var results = [Result<HostRead, LibvirtError>?](repeating: nil, count: hosts.count)
        for i in inline { results[i] = read(i) }
        let others = hosts.indices.filter { !inline.contains($0) }
        if !others.isEmpty {
            let parallel = Self.parallel(others.map { hosts[$0].name }, concurrency: concurrency, timeout: timeout) {
                read(others[$0])
            }
            for (k, i) in others.enumerated() { results[i] = parallel[k] }
        }
        var hostObs: [HostObservation] = []
        var candidates: [String: [VMObservation]] = [:]
        var uuidsByHost: [String: [String: String]] = [:]
        var warnings: [String] = []
        let lastPlace = Dictionary((previous?.vms ?? []).map { ($0.name, $0) }, uniquingKeysWith: { a, _ in a })
        // By name, first declaration wins (as `ClusterSpec.vm(named:)`): a scan per domain was quadratic (20,000
        // VMs: most of a plan's and a controller round's CPU).
        let specs = Dictionary(cluster.spec.vms.map { ($0.name, $0) }, uniquingKeysWith: { a, _ in a })
        for (index, (host, result)) in zip(hosts, results).enumerated() {
            if standbyFlags.get(index) {
                let before = previousHosts[host.name]
                hostObs.append(HostObservation(name: host.name, status: .standby,
                                               cpus: before?.cpus ?? host.capacity.cpus ?? 0,
                                               memoryMiB: before?.memoryMiB ?? host.capacity.memoryMiB ?? 0,
                                               networkMbps: before?.networkMbps ?? host.capacity.networkMbps ?? 1000))
                continue
            }
            switch result {
            case .some(.success(let info)):
                let domains = info.domains
                let cpus = Double(info.cpus), mem = Double(info.memoryMiB)
                // Declared below observed is honoured by the planner (the operator keeps the rest); above it is a
                // mistake worth a warning: the observation is the ceiling.
                if let declared = host.capacity.cpus, declared > cpus {
                    warnings.append("\(host.name): spec declares \(Units.trim(declared)) CPUs, libvirt reports "
                        + "\(info.cpus); using \(info.cpus)")
                }
                if let declared = host.capacity.memoryMiB, declared - mem > max(64, declared * 0.02) {
                    warnings.append("\(host.name): spec declares \(Units.formatMiB(declared)) of memory, libvirt reports "
                        + Units.formatMiB(mem) + "; using " + Units.formatMiB(mem))
                }
                // libvirt cannot tell a host's network capacity: the spec says it, or 1 Gbit/s is assumed.
                hostObs.append(HostObservation(name: host.name, cpus: cpus, memoryMiB: mem,
                                               networkMbps: host.capacity.networkMbps ?? 1000,
                                               lowSince: previousHosts[host.name]?.lowSince,
                                               tuning: tuning(host.name)))
                let testDriver = LibvirtURI.isTestDriver(cluster.connectionURI(for: host))
                for d in domains {
                    let before = lastPlace[d.name]
                    let disks = Self.disks(d, host: host, spec: specs[d.name], testDriver: testDriver)
                    let vm = VMObservation(
                        name: d.name, host: host.name, state: Self.state(d.state), vcpus: d.vcpus,
                        memoryMiB: Double(d.memoryMiB), maxVcpus: d.maxVcpus, maxMemoryMiB: Double(d.maxMemoryMiB),
                        tunables: Self.tunables(d),
                        lastMovedAt: before?.host == host.name ? before?.lastMovedAt : (before == nil ? nil : now),
                        diskCopyBytes: StorageDefaults.copyBytes(disks), disks: disks)
                    candidates[d.name, default: []].append(vm)
                    uuidsByHost[host.name, default: [:]][d.name] = d.uuid
                }
            case .some(.failure(let e)):
                let reason = Self.oneLine(e.message)
                markUnknown(host.name, reason: reason)
                hostObs.append(HostObservation(name: host.name, status: .unknown(reason: reason),
                                               cpus: host.capacity.cpus ?? 0, memoryMiB: host.capacity.memoryMiB ?? 0,
                                               networkMbps: host.capacity.networkMbps ?? 0))
            case .none:
                let reason = "no answer within \(timeout)"
                markUnknown(host.name, reason: reason)
                hostObs.append(HostObservation(name: host.name, status: .unknown(reason: reason),
                                               cpus: host.capacity.cpus ?? 0, memoryMiB: host.capacity.memoryMiB ?? 0,
                                               networkMbps: host.capacity.networkMbps ?? 0))
            }
        }
        var vms: [VMObservation] = []
        for name in candidates.keys.sorted() {
            let copies = candidates[name]!
            // A domain on two hosts is an interrupted migration (or a copy made by hand): the running one is
            // the VM; the other is reported so that it is not mistaken for free capacity or silently removed.
            let chosen = copies.first { $0.state == .running } ?? copies[0]
            if copies.count > 1 {
                warnings.append("\(name) is defined on \(copies.map(\.host).joined(separator: " and ")); "
                    + "using the copy on \(chosen.host) (\(chosen.state.rawValue))")
            }
            vms.append(chosen)
        }
        var uuids: [String: String] = [:]
        for vm in vms { uuids[vm.name] = uuidsByHost[vm.host]?[vm.name] }
        return FleetInventory(hosts: hostObs, vms: vms, warnings: warnings, uuids: uuids)
    }

    /// What one host shows: its CPUs and memory (`virNodeGetInfo`) and its domains.
    struct HostRead: Sendable {
        var cpus: Int
        var memoryMiB: UInt64
        var domains: [DomainInfo]
    }

    /// A libvirt message on one line: the ssh transport passes ssh's stderr through, newlines and all, and an
    /// unknown host's reason is printed in a table row.
    static func oneLine(_ message: String) -> String {
        message.split(whereSeparator: \.isNewline).map { $0.trimmingCharacters(in: .whitespaces) }
            .filter { !$0.isEmpty }.joined(separator: "; ")
    }

    static func state(_ s: DomainState) -> VMObservation.State {
        switch s {
        case .running: .running
        case .paused: .paused
        case .shutoff: .stopped
        case .other: .other
        }
    }

    /// A domain's disks as the model sees them, each with its storage mode resolved (`StorageDefaults`): the VM's
    /// `storage:`, its host's, then the disk's kind. Read-only disks are never copied; `<shareable/>` ones are
    /// shared by definition.
    package static func disks(_ d: DomainInfo, host: HostSpec, spec: VMSpec?, testDriver: Bool) -> [VMDisk] {
        d.disks.filter { !$0.readOnly && !$0.source.isEmpty }.map { disk in
            let kind = VMDisk.Kind(rawValue: disk.type) ?? .other
            let mode = disk.shareable ? .shared
                : StorageDefaults.mode(kind: kind, source: disk.source, vm: spec?.storage, host: host.storage,
                                       sharedPools: host.sharedPools ?? [], testDriver: testDriver)
            return VMDisk(target: disk.target, kind: kind, source: disk.source, format: disk.format,
                          backing: disk.backingSource == nil ? nil : true,
                          // `{ Double($0) }`, not `Double.init`: that would pick init(bitPattern:) for a UInt64.
                          capacityBytes: disk.capacity.map { Double($0) },
                          allocationBytes: disk.allocation.map { Double($0) },
                          physicalBytes: disk.physical.map { Double($0) }, storage: mode)
        }
    }

    static func tunables(_ d: DomainInfo) -> Tunables {
        // Only cgroup `cpu_shares` counts as shares: the test driver's `weight` is another knob (and not stored).
        Tunables(cpuShares: d.cpuTune?.shares.map { Int($0) },
                 cpuPeriodMicros: d.cpuTune?.period.map { Int($0) },
                 cpuQuotaMicros: d.cpuTune?.quota.map { Int($0) },
                 memoryHardLimitMiB: d.memoryTune?.hardLimitMiB.map { Double($0) },
                 memorySoftLimitMiB: d.memoryTune?.softLimitMiB.map { Double($0) })
    }

    /// Runs `work` for each item on its own thread, at most `concurrency` at once, each item within its own
    /// `timeout` from when it starts. An item that does not finish in time yields nil and gives its slot back at
    /// its deadline, so a few hung hosts never hold up the others; its thread is abandoned (a blocked C call
    /// cannot be cancelled safely). The whole call takes at most about ceil(items / concurrency) x timeout.
    package static func parallel<T: Sendable>(_ items: [String], concurrency: Int, timeout: Duration,
                                      _ work: @escaping @Sendable (Int) -> T) -> [T?] {
        let box = ResultBox<T>(items.count)
        let slots = DispatchSemaphore(value: max(1, concurrency))
        let done = (0..<items.count).map { _ in DispatchSemaphore(value: 0) }
        let seconds = timeout / .seconds(1)
        var deadlines: [DispatchTime] = []
        for i in items.indices {
            slots.wait()
            let deadline = DispatchTime.now() + seconds
            deadlines.append(deadline)
            Thread.detachNewThread {
                let value = work(i)
                box.set(i, value)
                if box.release(i) { slots.signal() }
                done[i].signal()
            }
            DispatchQueue.global().asyncAfter(deadline: deadline) { if box.release(i) { slots.signal() } }
        }
        var results: [T?] = []
        for i in items.indices {
            results.append(done[i].wait(timeout: deadlines[i]) == .success ? box.value(i) : nil)
        }
        return results
    }
}

private final class ResultBox<T: Sendable>: Sendable {
    private let state: Mutex<(results: [T?], released: [Bool])>
    init(_ n: Int) { state = Mutex((Array(repeating: nil, count: n), Array(repeating: false, count: n))) }
    func set(_ i: Int, _ v: T) { state.withLock { $0.results[i] = v } }
    func value(_ i: Int) -> T? { state.withLock { $0.results[i] } }
    /// True the first time only: an item's slot is given back once, by whichever of finish or deadline comes first.
    func release(_ i: Int) -> Bool {
        state.withLock {
            if $0.released[i] { return false }
            $0.released[i] = true
            return true
        }
    }
}

/// Which hosts a parallel inventory found in standby (written from the workers).
private final class StandbyFlags: Sendable {
    private let flags: Mutex<[Bool]>
    init(_ n: Int) { flags = Mutex(Array(repeating: false, count: n)) }
    func set(_ i: Int) { flags.withLock { $0[i] = true } }
    func get(_ i: Int) -> Bool { flags.withLock { $0[i] } }
}
