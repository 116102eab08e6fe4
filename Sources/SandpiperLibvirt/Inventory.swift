internal import CLibvirt
import Foundation

/// What a host reports about itself (`virNodeGetInfo`, `virConnectGetHostname`, versions, driver type).
public struct HostInfo: Sendable, Equatable {
    public var cpus: Int
    public var memoryMiB: UInt64
    public var hostname: String
    /// Version of the libvirt library serving the connection, "major.minor.release" (`virConnectGetLibVersion`).
    public var libvirtVersion: String
    /// Hypervisor version, "major.minor.release" (`virConnectGetVersion`); "0.0.0" when the driver reports none.
    public var hypervisorVersion: String
    /// Driver name as libvirt reports it (`virConnectGetType`): "QEMU", "TEST", …
    public var hypervisorType: String

    public init(cpus: Int, memoryMiB: UInt64, hostname: String, libvirtVersion: String,
                hypervisorVersion: String, hypervisorType: String) {
        self.cpus = cpus
        self.memoryMiB = memoryMiB
        self.hostname = hostname
        self.libvirtVersion = libvirtVersion
        self.hypervisorVersion = hypervisorVersion
        self.hypervisorType = hypervisorType
    }
}

public enum DomainState: String, Sendable, Equatable, Codable {
    case running, paused, shutoff, other
}

/// CPU scheduler tunables (`<cputune>`). Fields a driver does not report are nil: QEMU reports
/// shares/period/quota (with cgroups), the test driver reports only `weight`.
public struct CPUTune: Sendable, Equatable {
    public var shares: UInt64?
    public var period: UInt64?
    public var quota: Int64?
    /// Xen-style credit weight; the only scheduler parameter the test driver supports.
    public var weight: UInt32?

    public init(shares: UInt64? = nil, period: UInt64? = nil, quota: Int64? = nil, weight: UInt32? = nil) {
        self.shares = shares
        self.period = period
        self.quota = quota
        self.weight = weight
    }

    public var isEmpty: Bool { shares == nil && period == nil && quota == nil && weight == nil }
}

/// Memory tunables (`<memtune>`), MiB (libvirt's KiB rounded down). nil = unlimited or not reported.
public struct MemoryTune: Sendable, Equatable {
    public var hardLimitMiB: UInt64?
    public var softLimitMiB: UInt64?

    public init(hardLimitMiB: UInt64? = nil, softLimitMiB: UInt64? = nil) {
        self.hardLimitMiB = hardLimitMiB
        self.softLimitMiB = softLimitMiB
    }
}

public struct DomainInfo: Sendable, Equatable {
    public var name: String
    public var uuid: String
    public var state: DomainState
    public var vcpus: Int
    public var maxVcpus: Int
    public var memoryMiB: UInt64
    public var maxMemoryMiB: UInt64
    public var persistent: Bool
    public var autostart: Bool
    /// nil when the driver does not support scheduler parameters (e.g. QEMU session mode without cgroups).
    public var cpuTune: CPUTune?
    /// nil when the driver does not support memory parameters.
    public var memoryTune: MemoryTune?
    /// Its disks (CD-ROMs and floppies left out) with their sizes.
    public var disks: [DomainDisk]

    public init(name: String, uuid: String, state: DomainState, vcpus: Int, maxVcpus: Int, memoryMiB: UInt64,
                maxMemoryMiB: UInt64, persistent: Bool, autostart: Bool, cpuTune: CPUTune?, memoryTune: MemoryTune?,
                disks: [DomainDisk] = []) {
        self.name = name
        self.uuid = uuid
        self.state = state
        self.vcpus = vcpus
        self.maxVcpus = maxVcpus
        self.memoryMiB = memoryMiB
        self.maxMemoryMiB = maxMemoryMiB
        self.persistent = persistent
        self.autostart = autostart
        self.cpuTune = cpuTune
        self.memoryTune = memoryTune
        self.disks = disks
    }
}

func versionString(_ v: UInt) -> String { "\(v / 1_000_000).\((v / 1_000) % 1_000).\(v % 1_000)" }

func domainState(_ raw: Int32) -> DomainState {
    switch UInt32(bitPattern: raw) {
    case VIR_DOMAIN_RUNNING.rawValue: return .running
    case VIR_DOMAIN_PAUSED.rawValue, VIR_DOMAIN_PMSUSPENDED.rawValue: return .paused
    case VIR_DOMAIN_SHUTOFF.rawValue: return .shutoff
    default: return .other
    }
}

extension LibvirtConnection {
    public func hostInfo() throws(LibvirtError) -> HostInfo {
        try withHandle { (conn) throws(LibvirtError) -> HostInfo in
            var node = virNodeInfo()
            try libvirtCall("virNodeGetInfo on \(redactedURI)", scrub: scrub) { virNodeGetInfo(conn, &node) }
            let hostPtr: UnsafeMutablePointer<CChar> = try libvirtCall("virConnectGetHostname on \(redactedURI)", scrub: scrub) {
                virConnectGetHostname(conn)
            }
            let hostname = String(cString: hostPtr)
            free(hostPtr)
            var lib: UInt = 0
            try libvirtCall("virConnectGetLibVersion on \(redactedURI)", scrub: scrub) { virConnectGetLibVersion(conn, &lib) }
            var hv: UInt = 0
            try libvirtCall("virConnectGetVersion on \(redactedURI)", scrub: scrub) { virConnectGetVersion(conn, &hv) }
            let typePtr: UnsafePointer<CChar> = try libvirtCall("virConnectGetType on \(redactedURI)", scrub: scrub) {
                virConnectGetType(conn)
            }
            return HostInfo(cpus: Int(node.cpus), memoryMiB: UInt64(node.memory) / 1024, hostname: hostname,
                            libvirtVersion: versionString(lib), hypervisorVersion: versionString(hv),
                            hypervisorType: String(cString: typePtr))
        }
    }

    /// Names of all domains (active and inactive), sorted.
    public func domainNames() throws(LibvirtError) -> [String] {
        try withAllDomains { doms in doms.compactMap { virDomainGetName($0).map { String(cString: $0) } } }.sorted()
    }

    /// All domains (active and inactive) with their allocations and tunables, sorted by name.
    /// A domain that disappears while being inspected is skipped.
    public func domains() throws(LibvirtError) -> [DomainInfo] {
        let infos = try withAllDomains { (doms) throws(LibvirtError) -> [DomainInfo] in
            var out: [DomainInfo] = []
            for dom in doms {
                do throws(LibvirtError) {
                    out.append(try describe(dom))
                } catch where error.kind == .noDomain {
                    continue
                }
            }
            return out
        }
        return infos.sorted { $0.name < $1.name }
    }

    /// One domain by name; throws `.noDomain` when absent.
    public func domain(named name: String) throws(LibvirtError) -> DomainInfo {
        try withDomain(name) { (dom) throws(LibvirtError) in try describe(dom) }
    }

    /// One domain by name, nil when absent.
    public func domainIfExists(named name: String) throws(LibvirtError) -> DomainInfo? {
        try withDomainIfExists(name) { (dom) throws(LibvirtError) in try describe(dom) }
    }

    /// `virConnectListAllDomains`; every returned `virDomainPtr` is freed after `body`.
    func withAllDomains<T>(_ body: ([OpaquePointer]) throws(LibvirtError) -> T) throws(LibvirtError) -> T {
        try withHandle { (conn) throws(LibvirtError) -> T in
            var list: UnsafeMutablePointer<OpaquePointer?>? = nil
            let n = try libvirtCall("virConnectListAllDomains on \(redactedURI)", scrub: scrub) {
                virConnectListAllDomains(conn, &list, 0)
            }
            var doms: [OpaquePointer] = []
            if let list {
                for i in 0..<Int(n) { if let d = list[i] { doms.append(d) } }
            }
            defer {
                for d in doms { virDomainFree(d) }
                free(list)
            }
            return try body(doms)
        }
    }

    func describe(_ dom: OpaquePointer) throws(LibvirtError) -> DomainInfo {
        let name = virDomainGetName(dom).map { String(cString: $0) } ?? ""
        let ctx = "domain '\(name)' on \(redactedURI)"
        var uuidBuf = [CChar](repeating: 0, count: Int(VIR_UUID_STRING_BUFLEN))
        try libvirtCall("virDomainGetUUIDString \(ctx)", scrub: scrub) { virDomainGetUUIDString(dom, &uuidBuf) }
        let uuid = uuidBuf.withUnsafeBufferPointer { String(cString: $0.baseAddress!) }
        var info = virDomainInfo()
        try libvirtCall("virDomainGetInfo \(ctx)", scrub: scrub) { virDomainGetInfo(dom, &info) }
        var state: Int32 = 0, reason: Int32 = 0
        try libvirtCall("virDomainGetState \(ctx)", scrub: scrub) { virDomainGetState(dom, &state, &reason, 0) }
        // Current vCPUs of the live domain (or of the config when inactive); maximum from the same definition.
        let current = (try? libvirtCall("virDomainGetVcpusFlags \(ctx)") { virDomainGetVcpusFlags(dom, 0) })
            .map(Int.init) ?? Int(info.nrVirtCpu)
        let maximum = (try? libvirtCall("virDomainGetVcpusFlags(max) \(ctx)") {
            virDomainGetVcpusFlags(dom, VIR_DOMAIN_VCPU_MAXIMUM.rawValue)
        }).map(Int.init) ?? current
        let persistent = try libvirtCall("virDomainIsPersistent \(ctx)", scrub: scrub) { virDomainIsPersistent(dom) } == 1
        var autostart: Int32 = 0
        if (try? libvirtCall("virDomainGetAutostart \(ctx)") { virDomainGetAutostart(dom, &autostart) }) == nil {
            autostart = 0
        }
        return DomainInfo(name: name, uuid: uuid, state: domainState(state), vcpus: current, maxVcpus: maximum,
                          memoryMiB: UInt64(info.memory) / 1024, maxMemoryMiB: UInt64(info.maxMem) / 1024,
                          persistent: persistent, autostart: autostart != 0,
                          cpuTune: try cpuTune(dom, ctx), memoryTune: try memoryTune(dom, ctx),
                          disks: try disks(dom, ctx))
    }

    /// Scheduler parameters, nil when unsupported. Other failures (e.g. the domain vanished) are thrown.
    func cpuTune(_ dom: OpaquePointer, _ ctx: String) throws(LibvirtError) -> CPUTune? {
        var n: Int32 = 0
        do throws(LibvirtError) {
            let typ: UnsafeMutablePointer<CChar> = try libvirtCall("virDomainGetSchedulerType \(ctx)", scrub: scrub) {
                virDomainGetSchedulerType(dom, &n)
            }
            free(typ)
        } catch where error.isUnsupported || error.kind == .operationInvalid {
            return nil
        }
        guard n > 0 else { return CPUTune() }
        var params = [virTypedParameter](repeating: virTypedParameter(), count: Int(n))
        // The public API adds VIR_TYPED_PARAM_STRING_OKAY, which the test driver rejects as "unsupported
        // flags"; the flag-less variant reaches the same driver code without it. Once refused on a connection,
        // the flag-less variant is asked first (a failing call per domain costs more than the answer).
        func withoutFlags() throws(LibvirtError) -> Bool {
            do throws(LibvirtError) {
                try libvirtCall("virDomainGetSchedulerParameters \(ctx)", scrub: scrub) {
                    virDomainGetSchedulerParameters(dom, &params, &n)
                }
                return true
            } catch where error.isUnsupported || error.kind == .operationInvalid {
                return false
            }
        }
        if refusesSchedulerFlags {
            guard try withoutFlags() else { return nil }
        } else {
            do throws(LibvirtError) {
                try libvirtCall("virDomainGetSchedulerParametersFlags \(ctx)", scrub: scrub) {
                    virDomainGetSchedulerParametersFlags(dom, &params, &n, 0)
                }
            } catch where error.kind == .invalidArgument {
                refusesSchedulerFlags = true
                guard try withoutFlags() else { return nil }
            } catch where error.isUnsupported || error.kind == .operationInvalid {
                return nil
            }
        }
        let values = params.withUnsafeBufferPointer { copyTypedParameters($0.baseAddress, count: n) }
        // The returned array holds no strings for scheduler parameters, but clear it the documented way anyway.
        virTypedParamsClear(&params, n)
        return CPUTune(shares: values[VIR_DOMAIN_SCHEDULER_CPU_SHARES]?.uint64,
                       period: values[VIR_DOMAIN_SCHEDULER_VCPU_PERIOD]?.uint64,
                       quota: values[VIR_DOMAIN_SCHEDULER_VCPU_QUOTA]?.int64,
                       weight: values[VIR_DOMAIN_SCHEDULER_WEIGHT]?.uint64.map { UInt32(truncatingIfNeeded: $0) })
    }

    /// Memory parameters, nil when unsupported; a limit equal to libvirt's "unlimited" becomes nil.
    func memoryTune(_ dom: OpaquePointer, _ ctx: String) throws(LibvirtError) -> MemoryTune? {
        var n: Int32 = 0
        do throws(LibvirtError) {
            try libvirtCall("virDomainGetMemoryParameters(count) \(ctx)", scrub: scrub) {
                virDomainGetMemoryParameters(dom, nil, &n, 0)
            }
        } catch where error.isUnsupported || error.kind == .operationInvalid {
            return nil
        }
        guard n > 0 else { return MemoryTune() }
        var params = [virTypedParameter](repeating: virTypedParameter(), count: Int(n))
        do throws(LibvirtError) {
            try libvirtCall("virDomainGetMemoryParameters \(ctx)", scrub: scrub) {
                virDomainGetMemoryParameters(dom, &params, &n, 0)
            }
        } catch where error.isUnsupported || error.kind == .operationInvalid {
            return nil
        }
        let values = params.withUnsafeBufferPointer { copyTypedParameters($0.baseAddress, count: n) }
        virTypedParamsClear(&params, n)
        func limit(_ key: String) -> UInt64? {
            guard let kib = values[key]?.uint64, kib < UInt64(VIR_DOMAIN_MEMORY_PARAM_UNLIMITED) else { return nil }
            return kib / 1024
        }
        return MemoryTune(hardLimitMiB: limit(VIR_DOMAIN_MEMORY_HARD_LIMIT), softLimitMiB: limit(VIR_DOMAIN_MEMORY_SOFT_LIMIT))
    }
}
