internal import CLibvirt
import Foundation

/// Which definition a change applies to. The default `[.live, .config]` means "the running domain and its
/// persistent config": `.live` is dropped for an inactive domain and `.config` for a transient one, so the same call
/// works (and is idempotent) whatever the domain's state.
public struct ChangeScope: OptionSet, Sendable, Hashable {
    public let rawValue: UInt8
    public init(rawValue: UInt8) { self.rawValue = rawValue }
    public static let live = ChangeScope(rawValue: 1)
    public static let config = ChangeScope(rawValue: 2)
    public static let both: ChangeScope = [.live, .config]
}

/// A memtune limit to set.
public enum MemoryLimit: Sendable, Equatable {
    case mib(UInt64)
    case unlimited
}

extension LibvirtConnection {
    // MARK: Lifecycle

    /// Defines (or redefines) a persistent domain from XML (`virDomainDefineXML`) and returns its name.
    /// Defining XML identical to an existing domain's (same name and UUID) succeeds; a different UUID under the same
    /// name fails with `.domainExists`.
    @discardableResult
    public func define(xml: String) throws(LibvirtError) -> String {
        try withHandle { (conn) throws(LibvirtError) -> String in
            let dom: OpaquePointer = try libvirtCall("virDomainDefineXML on \(redactedURI)", scrub: scrub) {
                virDomainDefineXML(conn, xml)
            }
            defer { virDomainFree(dom) }
            return virDomainGetName(dom).map { String(cString: $0) } ?? ""
        }
    }

    /// Starts a defined domain (`virDomainCreate`). Starting a running domain succeeds.
    public func start(_ name: String) throws(LibvirtError) {
        try withDomain(name) { (dom) throws(LibvirtError) in
            if virDomainIsActive(dom) == 1 { return }
            do throws(LibvirtError) {
                try libvirtCall("start domain '\(name)' on \(redactedURI)", scrub: scrub) { virDomainCreate(dom) }
            } catch where error.kind == .operationInvalid && virDomainIsActive(dom) == 1 {
                return  // raced with another start
            }
        }
    }

    /// Asks the guest to shut down (`virDomainShutdown`, asynchronous). A domain that is not running succeeds.
    public func shutdown(_ name: String) throws(LibvirtError) {
        try withDomain(name) { (dom) throws(LibvirtError) in
            if virDomainIsActive(dom) != 1 { return }
            do throws(LibvirtError) {
                try libvirtCall("shut down domain '\(name)' on \(redactedURI)", scrub: scrub) { virDomainShutdown(dom) }
            } catch where error.kind == .operationInvalid && virDomainIsActive(dom) != 1 {
                return
            }
        }
    }

    /// Powers the domain off (`virDomainDestroy`). A stopped domain succeeds; an absent domain throws `.noDomain`.
    public func destroy(_ name: String) throws(LibvirtError) {
        try withDomain(name) { (dom) throws(LibvirtError) in
            if readOnly {
                // Let libvirt refuse it with its own "read-only" error rather than short-cutting to success.
                try libvirtCall("destroy domain '\(name)' on \(redactedURI)", scrub: scrub) { virDomainDestroy(dom) }
            }
            if virDomainIsActive(dom) != 1 { return }
            do throws(LibvirtError) {
                try libvirtCall("destroy domain '\(name)' on \(redactedURI)", scrub: scrub) { virDomainDestroy(dom) }
            } catch where error.kind == .operationInvalid && virDomainIsActive(dom) != 1 {
                return
            }
        }
    }

    /// Removes the persistent definition (`virDomainUndefineFlags` with managed-save and snapshot metadata).
    /// An absent domain, or a transient one (no persistent definition), succeeds. A running persistent domain
    /// keeps running as a transient one (libvirt semantics); destroy it first to remove it entirely.
    public func undefine(_ name: String) throws(LibvirtError) {
        _ = try withDomainIfExists(name) { (dom) throws(LibvirtError) in
            if virDomainIsPersistent(dom) == 0 { return }
            let flags = VIR_DOMAIN_UNDEFINE_MANAGED_SAVE.rawValue | VIR_DOMAIN_UNDEFINE_SNAPSHOTS_METADATA.rawValue
            do throws(LibvirtError) {
                try libvirtCall("undefine domain '\(name)' on \(redactedURI)", scrub: scrub) {
                    virDomainUndefineFlags(dom, flags)
                }
            } catch where error.kind == .noDomain {
                return
            }
        }
    }

    /// The domain's XML (`virDomainGetXMLDesc`); `inactive: true` gives the persistent config that a define on
    /// another host needs (VIR_DOMAIN_XML_INACTIVE).
    public func domainXML(_ name: String, inactive: Bool = true) throws(LibvirtError) -> String {
        try withDomain(name) { (dom) throws(LibvirtError) -> String in
            let flags = inactive ? VIR_DOMAIN_XML_INACTIVE.rawValue : 0
            let ptr: UnsafeMutablePointer<CChar> = try libvirtCall("XML of domain '\(name)' on \(redactedURI)", scrub: scrub) {
                virDomainGetXMLDesc(dom, flags)
            }
            defer { free(ptr) }
            return String(cString: ptr)
        }
    }

    /// Whether the domain exists and runs.
    public func isActive(_ name: String) throws(LibvirtError) -> Bool {
        try withDomainIfExists(name) { (dom) throws(LibvirtError) -> Bool in
            try libvirtCall("virDomainIsActive '\(name)'", scrub: scrub) { virDomainIsActive(dom) } == 1
        } ?? false
    }

    // MARK: Resources

    /// Sets the balloon target (`virDomainSetMemoryFlags`), MiB. Must not exceed the maximum memory.
    public func setMemory(_ name: String, mib: UInt64, scope: ChangeScope = .both) throws(LibvirtError) {
        try withDomain(name) { (dom) throws(LibvirtError) in
            try applyScoped(dom, scope, "set memory of '\(name)' to \(mib) MiB on \(redactedURI)") { flags in virDomainSetMemoryFlags(dom, UInt(mib * 1024), flags) }
        }
    }

    /// Sets the number of vCPUs (`virDomainSetVcpusFlags`). Must not exceed the maximum.
    public func setVcpus(_ name: String, count: Int, scope: ChangeScope = .both) throws(LibvirtError) {
        try withDomain(name) { (dom) throws(LibvirtError) in
            try applyScoped(dom, scope, "set vCPUs of '\(name)' to \(count) on \(redactedURI)") { flags in virDomainSetVcpusFlags(dom, UInt32(count), flags) }
        }
    }

    /// Sets the non-nil CPU scheduler parameters (`virDomainSetSchedulerParametersFlags`): `cpu_shares` (ullong),
    /// `vcpu_period` (ullong), `vcpu_quota` (llong), `weight` (uint). A driver that does not know a parameter throws
    /// a `LibvirtError` whose `kind` is `.unsupported` (the test driver supports only `weight`; QEMU in session mode
    /// supports none).
    public func setCPUTune(_ name: String, _ tune: CPUTune, scope: ChangeScope = .both) throws(LibvirtError) {
        guard !tune.isEmpty else { return }
        let list = TypedParameterList()
        if let v = tune.shares { try list.add(VIR_DOMAIN_SCHEDULER_CPU_SHARES, ullong: v) }
        if let v = tune.period { try list.add(VIR_DOMAIN_SCHEDULER_VCPU_PERIOD, ullong: v) }
        if let v = tune.quota { try list.add(VIR_DOMAIN_SCHEDULER_VCPU_QUOTA, llong: v) }
        if let v = tune.weight { try list.add(VIR_DOMAIN_SCHEDULER_WEIGHT, uint: v) }
        try withDomain(name) { (dom) throws(LibvirtError) in
            try applyScoped(dom, scope, "set scheduler parameters of '\(name)' on \(redactedURI)") { flags in virDomainSetSchedulerParametersFlags(dom, list.params, list.count, flags) }
        }
    }

    /// Sets memtune hard/soft limits (`virDomainSetMemoryParameters`); nil leaves a limit unchanged.
    public func setMemoryTune(_ name: String, hardLimit: MemoryLimit? = nil, softLimit: MemoryLimit? = nil,
                              scope: ChangeScope = .both) throws(LibvirtError) {
        let list = TypedParameterList()
        func kib(_ l: MemoryLimit) -> UInt64 {
            switch l {
            case .mib(let m): return m * 1024
            case .unlimited: return UInt64(VIR_DOMAIN_MEMORY_PARAM_UNLIMITED)
            }
        }
        if let h = hardLimit { try list.add(VIR_DOMAIN_MEMORY_HARD_LIMIT, ullong: kib(h)) }
        if let s = softLimit { try list.add(VIR_DOMAIN_MEMORY_SOFT_LIMIT, ullong: kib(s)) }
        guard list.count > 0 else { return }
        try withDomain(name) { (dom) throws(LibvirtError) in
            try applyScoped(dom, scope, "set memory parameters of '\(name)' on \(redactedURI)") { flags in virDomainSetMemoryParameters(dom, list.params, list.count, flags) }
        }
    }

    /// Runs a VIR_DOMAIN_AFFECT_*-taking call for `scope`. Some drivers refuse flag combinations QEMU accepts (the
    /// test driver: "LIVE and CONFIG are mutually exclusive", or no flags at all for scheduler parameters). On such
    /// a flags error the call is retried as LIVE then CONFIG separately, and finally with AFFECT_CURRENT (0), which
    /// is the live definition of a running domain. Any other error is thrown as is.
    func applyScoped(_ dom: OpaquePointer, _ scope: ChangeScope, _ context: String,
                     _ call: (UInt32) -> Int32) throws(LibvirtError) {
        let flags = try effectiveFlags(dom, scope)
        func isFlagsError(_ e: LibvirtError) -> Bool { e.kind == .invalidArgument && e.message.lowercased().contains("flags") }
        do throws(LibvirtError) {
            try libvirtCall(context, scrub: scrub) { call(flags) }
            return
        } catch where isFlagsError(error) {
            let live = VIR_DOMAIN_AFFECT_LIVE.rawValue, config = VIR_DOMAIN_AFFECT_CONFIG.rawValue
            if flags & live != 0 && flags & config != 0 {
                do throws(LibvirtError) {
                    try libvirtCall(context, scrub: scrub) { call(live) }
                    try libvirtCall(context, scrub: scrub) { call(config) }
                    return
                } catch where isFlagsError(error) {
                    // fall through to AFFECT_CURRENT
                }
            }
            try libvirtCall(context, scrub: scrub) { call(0) }
        }
    }

    /// Maps a `ChangeScope` to VIR_DOMAIN_AFFECT_* flags for the domain's current state (see `ChangeScope`).
    func effectiveFlags(_ dom: OpaquePointer, _ scope: ChangeScope) throws(LibvirtError) -> UInt32 {
        let active = try libvirtCall("virDomainIsActive", scrub: scrub) { virDomainIsActive(dom) } == 1
        let persistent = try libvirtCall("virDomainIsPersistent", scrub: scrub) { virDomainIsPersistent(dom) } == 1
        var flags: UInt32 = 0
        if scope.contains(.live) && (active || !scope.contains(.config)) { flags |= VIR_DOMAIN_AFFECT_LIVE.rawValue }
        if scope.contains(.config) && (persistent || !scope.contains(.live)) { flags |= VIR_DOMAIN_AFFECT_CONFIG.rawValue }
        return flags
    }
}
