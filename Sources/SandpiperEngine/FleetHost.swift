import SandpiperLibvirt

/// What `apply` needs from one host. `LibvirtConnection` is the implementation; tests wrap it to inject
/// failures the libvirt test driver cannot produce (a tune refused mid-wave, a migration that breaks).
public protocol FleetHost: AnyObject, Sendable {
    func hostInfo() throws(LibvirtError) -> HostInfo
    func domains() throws(LibvirtError) -> [DomainInfo]
    func domain(named name: String) throws(LibvirtError) -> DomainInfo
    func domainIfExists(named name: String) throws(LibvirtError) -> DomainInfo?
    func define(xml: String) throws(LibvirtError) -> String
    func start(_ name: String) throws(LibvirtError)
    func destroy(_ name: String) throws(LibvirtError)
    func undefine(_ name: String) throws(LibvirtError)
    func setVcpus(_ name: String, count: Int, scope: ChangeScope) throws(LibvirtError)
    func setMemory(_ name: String, mib: UInt64, scope: ChangeScope) throws(LibvirtError)
    func setCPUTune(_ name: String, _ tune: CPUTune, scope: ChangeScope) throws(LibvirtError)
    func setMemoryTune(_ name: String, hardLimit: MemoryLimit?, softLimit: MemoryLimit?,
                       scope: ChangeScope) throws(LibvirtError)
    /// Moves `name` to `target` (a host of the same kind).
    func migrate(_ name: String, to target: any FleetHost, mode: MigrationMode, allowCold: Bool,
                 options: LiveMigrationOptions) throws(LibvirtError) -> MigrationReport
    /// The host behind this one, when it wraps another (fault-injecting test doubles).
    var underlying: LibvirtConnection? { get }
}

extension LibvirtConnection: FleetHost {
    public var underlying: LibvirtConnection? { self }

    public func migrate(_ name: String, to target: any FleetHost, mode: MigrationMode, allowCold: Bool,
                        options: LiveMigrationOptions) throws(LibvirtError) -> MigrationReport {
        guard let destination = target.underlying else {
            throw LibvirtError(code: LibvirtError.Code.invalidArg, domain: 0,
                               message: "cannot migrate \(name): the target is not a libvirt host")
        }
        return try migrate(name, to: destination, mode: mode, allowCold: allowCold, options: options, progress: nil)
    }
}

extension FleetHost {
    /// Changes go to the live domain and its saved configuration, as libvirt's `--live --config`.
    func setVcpus(_ name: String, count: Int) throws(LibvirtError) { try setVcpus(name, count: count, scope: .both) }
    func setMemory(_ name: String, mib: UInt64) throws(LibvirtError) { try setMemory(name, mib: mib, scope: .both) }
    func setCPUTune(_ name: String, _ tune: CPUTune) throws(LibvirtError) { try setCPUTune(name, tune, scope: .both) }
    func setMemoryTune(_ name: String, hardLimit: MemoryLimit?, softLimit: MemoryLimit?) throws(LibvirtError) {
        try setMemoryTune(name, hardLimit: hardLimit, softLimit: softLimit, scope: .both)
    }
}
