internal import CLibvirt
import Foundation
import Synchronization

public enum MigrationMode: String, Sendable, Equatable, Codable {
    /// The guest keeps running; memory is copied while it runs (`virDomainMigrate3` / `virDomainMigrateToURI3`).
    case live
    /// Define on the target, start there if it ran on the source, destroy + undefine on the source.
    case cold
}

/// How a live migration copies local disks along (libvirt copy-storage over NBD).
public enum CopyStorage: String, Sendable, Equatable {
    /// VIR_MIGRATE_NON_SHARED_DISK: the whole image.
    case all
    /// VIR_MIGRATE_NON_SHARED_INC: only the top image of a backing chain; the target must have the backing file.
    case incremental
}

public struct LiveMigrationOptions: Sendable, Equatable {
    /// Where the destination hypervisor listens for the migration stream (VIR_MIGRATE_PARAM_URI),
    /// e.g. "tcp://127.0.0.1". nil lets libvirt choose from the destination's hostname.
    public var migrateURI: String?
    /// Bandwidth limit, MiB/s (VIR_MIGRATE_PARAM_BANDWIDTH); nil = unlimited.
    public var bandwidthMiBps: UInt64?
    /// Peer-to-peer: the source daemon connects to the destination itself (`virDomainMigrateToURI3` with
    /// VIR_MIGRATE_PEER2PEER). Otherwise this client drives both sides (`virDomainMigrate3`).
    public var peerToPeer: Bool
    /// The destination URI as the *source daemon* should reach it (peer-to-peer only); nil = the target
    /// connection's own URI.
    public var peerURI: String?
    /// The job is aborted (`virDomainAbortJob`) when it runs longer than this.
    public var timeout: Duration
    /// How often job statistics are polled and reported.
    public var pollInterval: Duration
    /// Longest switch-over pause, ms (`virDomainMigrateSetMaxDowntime`, set once the job runs); nil = default.
    public var maxDowntimeMs: UInt64?
    /// VIR_MIGRATE_AUTO_CONVERGE.
    public var autoConverge: Bool
    /// VIR_MIGRATE_POSTCOPY: past `timeout` the job switches to post-copy (`virDomainMigrateStartPostCopy`)
    /// instead of being aborted.
    public var postCopy: Bool
    /// VIR_MIGRATE_COMPRESSED.
    public var compressed: Bool
    /// VIR_MIGRATE_TLS.
    public var tls: Bool
    /// Copy local disks along; nil: storage is shared (memory only).
    public var copyStorage: CopyStorage?
    /// Target devices to copy (VIR_MIGRATE_PARAM_MIGRATE_DISKS), e.g. ["vda"]; missing images are created on
    /// the target first (`createMissingImages`).
    public var migrateDisks: [String]

    public init(migrateURI: String? = nil, bandwidthMiBps: UInt64? = nil, peerToPeer: Bool = false,
                peerURI: String? = nil, timeout: Duration = .seconds(300), pollInterval: Duration = .milliseconds(500),
                maxDowntimeMs: UInt64? = nil, autoConverge: Bool = false, postCopy: Bool = false,
                compressed: Bool = false, tls: Bool = false, copyStorage: CopyStorage? = nil,
                migrateDisks: [String] = []) {
        self.migrateURI = migrateURI
        self.bandwidthMiBps = bandwidthMiBps
        self.peerToPeer = peerToPeer
        self.peerURI = peerURI
        self.timeout = timeout
        self.pollInterval = pollInterval
        self.maxDowntimeMs = maxDowntimeMs
        self.autoConverge = autoConverge
        self.postCopy = postCopy
        self.compressed = compressed
        self.tls = tls
        self.copyStorage = copyStorage
        self.migrateDisks = migrateDisks
    }
}

/// Job statistics of a running migration (`virDomainGetJobStats`); fields the hypervisor does not report are nil.
public struct MigrationProgress: Sendable, Equatable {
    public var elapsedMs: UInt64?
    public var dataTotal: UInt64?
    public var dataProcessed: UInt64?
    public var dataRemaining: UInt64?
    public var memoryTotal: UInt64?
    public var memoryProcessed: UInt64?
    public var memoryRemaining: UInt64?

    public init(elapsedMs: UInt64? = nil, dataTotal: UInt64? = nil, dataProcessed: UInt64? = nil,
                dataRemaining: UInt64? = nil, memoryTotal: UInt64? = nil, memoryProcessed: UInt64? = nil,
                memoryRemaining: UInt64? = nil) {
        self.elapsedMs = elapsedMs
        self.dataTotal = dataTotal
        self.dataProcessed = dataProcessed
        self.dataRemaining = dataRemaining
        self.memoryTotal = memoryTotal
        self.memoryProcessed = memoryProcessed
        self.memoryRemaining = memoryRemaining
    }

    /// processed / total of the data (or memory) transfer, 0...1.
    public var fraction: Double? {
        if let t = dataTotal, t > 0, let p = dataProcessed { return min(1, Double(p) / Double(t)) }
        if let t = memoryTotal, t > 0, let p = memoryProcessed { return min(1, Double(p) / Double(t)) }
        return nil
    }
}

/// What a migration call did. `steps` lists the actions actually taken, in order, for the apply journal; an
/// interrupted cold migration re-run only performs the remaining steps.
public struct MigrationReport: Sendable, Equatable {
    public var domain: String
    public var mode: MigrationMode
    /// True when the domain was already on the target and gone from the source: nothing was done.
    public var alreadyDone: Bool
    public var steps: [String]
    public var durationSeconds: Double
    public var lastProgress: MigrationProgress?
}

public enum ColdMigrationOrder: Sendable, Equatable {
    /// Start on the target, then destroy the source: shortest downtime; both copies run for a moment, which is
    /// fine for the test driver and for hosts with separate storage.
    case startTargetFirst
    /// Destroy the source first, then start the target: never two running copies (shared disks). If interrupted
    /// between the two, a re-run can no longer see that the domain ran: pass `startOnTarget: true` then.
    case stopSourceFirst
}

extension LibvirtConnection {
    /// Whether a live migration between these two connections is possible at all: the test driver cannot migrate.
    public func supportsLiveMigration(to target: LibvirtConnection) -> Bool {
        func driver(_ c: LibvirtConnection) -> String? {
            try? c.withHandle { (conn) throws(LibvirtError) -> String in
                let t: UnsafePointer<CChar> = try libvirtCall("virConnectGetType") { virConnectGetType(conn) }
                return String(cString: t)
            }
        }
        guard let a = driver(self), let b = driver(target) else { return false }
        return a.uppercased() != "TEST" && b.uppercased() != "TEST"
    }

    /// Picks the mode: `requested` when possible; `.cold` instead of `.live` when the drivers cannot migrate live
    /// (test driver) and `allowCold` is true; otherwise a `LibvirtError` of kind `.unsupported`.
    public func resolveMigrationMode(_ requested: MigrationMode, allowCold: Bool,
                                     to target: LibvirtConnection) throws(LibvirtError) -> MigrationMode {
        if requested == .cold { return .cold }
        if supportsLiveMigration(to: target) { return .live }
        if allowCold { return .cold }
        throw LibvirtError.local(LibvirtError.Code.noSupport,
                                 "live migration from \(redactedURI) to \(target.redactedURI) is not supported by the driver")
    }

    /// Moves `name` to `target` with `mode` (resolved through `resolveMigrationMode`). A domain that is not running
    /// is always moved cold (there is nothing to migrate live); a domain already on the target and gone from here
    /// is reported as `alreadyDone`.
    public func migrate(_ name: String, to target: LibvirtConnection, mode: MigrationMode = .live,
                        allowCold: Bool = false, options: LiveMigrationOptions = LiveMigrationOptions(),
                        progress: (@Sendable (MigrationProgress) -> Void)? = nil) throws(LibvirtError) -> MigrationReport {
        let resolved = try resolveMigrationMode(mode, allowCold: allowCold, to: target)
        // Between real hypervisors a cold move stops the source before the target starts: two running copies
        // of one guest on shared storage corrupt its disks. Only test-driver hosts (no disks) may overlap.
        let order: ColdMigrationOrder = supportsLiveMigration(to: target) ? .stopSourceFirst : .startTargetFirst
        let here = try domainIfExists(named: name)
        let cold = resolved == .cold || (here.map { $0.state != .running && $0.state != .paused } ?? false)
        if cold, options.copyStorage != nil {
            // A cold move only defines the domain on the target: it would start there without its disks.
            throw LibvirtError.local(LibvirtError.Code.operationInvalid,
                "cold migration of '\(name)' refused: its local disk(s) \(options.migrateDisks.joined(separator: ", ")) "
                    + "would not be on \(target.redactedURI) (only a live migration copies them)")
        }
        if cold { return try migrateCold(name, to: target, order: order) }
        return try migrateLive(name, to: target, options: options, progress: progress)
    }

    /// `migrate` on a thread of its own, for async callers: the cooperative pool is never blocked for the minutes
    /// a live migration may take. Progress is reported from that thread.
    public func migrateAsync(_ name: String, to target: LibvirtConnection, mode: MigrationMode = .live,
                             allowCold: Bool = false, options: LiveMigrationOptions = LiveMigrationOptions(),
                             progress: (@Sendable (MigrationProgress) -> Void)? = nil) async throws(LibvirtError)
        -> MigrationReport {
        let result = await withCheckedContinuation { (cont: CheckedContinuation<Result<MigrationReport, LibvirtError>, Never>) in
            let thread = Thread {
                cont.resume(returning: Result { () throws(LibvirtError) in
                    try self.migrate(name, to: target, mode: mode, allowCold: allowCold, options: options,
                                     progress: progress)
                })
            }
            thread.name = "libvirt-migrate-driver-\(name)"
            thread.start()
        }
        return try result.get()
    }

    // MARK: Cold

    /// Cold migration: define the inactive XML on `target`, start it there if it ran here (or if `startOnTarget`
    /// says so), destroy and undefine it here. Idempotent and resumable: each step checks what is already done, so
    /// re-running after an interruption finishes the job (e.g. already defined and running on the target -> only
    /// the source is cleaned up). A different domain with the same name on the target (other UUID) is refused.
    public func migrateCold(_ name: String, to target: LibvirtConnection, startOnTarget: Bool? = nil,
                            order: ColdMigrationOrder = .startTargetFirst) throws(LibvirtError) -> MigrationReport {
        let t0 = monotonicNowNs()
        var steps: [String] = []
        func report(_ done: Bool) -> MigrationReport {
            MigrationReport(domain: name, mode: .cold, alreadyDone: done, steps: steps,
                            durationSeconds: Double(monotonicNowNs() - t0) / 1e9, lastProgress: nil)
        }
        let there = try target.domainIfExists(named: name)
        guard let here = try domainIfExists(named: name) else {
            if there != nil { return report(true) }
            throw LibvirtError.local(LibvirtError.Code.noDomain,
                                     "cold migration: domain '\(name)' is neither on \(redactedURI) nor on \(target.redactedURI)")
        }
        if let there, there.uuid != here.uuid {
            throw LibvirtError.local(LibvirtError.Code.domExist,
                                     "cold migration: \(target.redactedURI) already has a different domain '\(name)' (uuid \(there.uuid), source uuid \(here.uuid))")
        }
        let ranHere = here.state == .running || here.state == .paused
        let startThere = startOnTarget ?? ranHere
        if there == nil {
            try target.define(xml: try domainXML(name, inactive: true))
            steps.append("defined on \(target.redactedURI)")
        }
        if order == .stopSourceFirst && ranHere {
            try destroy(name)
            steps.append("destroyed on \(redactedURI)")
        }
        let runningThere = try target.isActive(name)
        if startThere && !runningThere {
            try target.start(name)
            steps.append("started on \(target.redactedURI)")
        }
        if try isActive(name) {
            try destroy(name)
            steps.append("destroyed on \(redactedURI)")
        }
        if try domainIfExists(named: name) != nil {
            try undefine(name)
            steps.append("undefined on \(redactedURI)")
        }
        return report(false)
    }

    // MARK: Live

    /// Live migration with VIR_MIGRATE_LIVE | PERSIST_DEST | UNDEFINE_SOURCE (+ PEER2PEER). The migration runs on
    /// its own thread; this thread polls `virDomainGetJobStats` every `pollInterval`, reports it to `progress`, and
    /// aborts the job (`virDomainAbortJob`) once `timeout` is exceeded, then throws a `.timeout` error.
    /// Blocks the calling thread for the duration: call it from a dedicated thread, not the cooperative pool.
    /// Idempotent: a domain already running on the target and gone from here is reported as `alreadyDone`.
    public func migrateLive(_ name: String, to target: LibvirtConnection,
                            options: LiveMigrationOptions = LiveMigrationOptions(),
                            progress: (@Sendable (MigrationProgress) -> Void)? = nil) throws(LibvirtError) -> MigrationReport {
        let t0 = monotonicNowNs()
        if try domainIfExists(named: name) == nil {
            if try target.isActive(name) {
                return MigrationReport(domain: name, mode: .live, alreadyDone: true, steps: [], durationSeconds: 0,
                                       lastProgress: nil)
            }
            _ = try domain(named: name)  // throws libvirt's own "no domain" error
        }
        var steps: [String] = []
        if options.copyStorage != nil {
            let wanted = Set(options.migrateDisks)
            let local = try disks(of: name).filter { wanted.isEmpty || wanted.contains($0.target) }
            for path in try target.createMissingImages(local, incremental: options.copyStorage == .incremental) {
                steps.append("created \(path) on \(target.redactedURI)")
            }
        }
        let outcome = MigrationOutcome()
        let source = self
        let thread = Thread {
            let result = Result<Void, LibvirtError> { () throws(LibvirtError) in
                try source.runMigration(name, to: target, options: options)
            }
            outcome.finish(result)
        }
        thread.name = "libvirt-migrate-\(name)"
        thread.start()

        let deadline = t0 &+ UInt64(max(0, options.timeout.nanoseconds))
        var last: MigrationProgress?
        var aborted = false, timedOut = false, downtimeSet = options.maxDowntimeMs == nil, postCopying = false
        while !outcome.wait(for: options.pollInterval) {
            if let p = jobProgress(name) {
                last = p
                progress?(p)
                if !downtimeSet, let ms = options.maxDowntimeMs {
                    // Only a running migration job takes it; retried on the next poll otherwise.
                    downtimeSet = (try? withDomain(name) { (dom) throws(LibvirtError) in
                        try libvirtCall("set max downtime of '\(name)'", scrub: scrub) {
                            virDomainMigrateSetMaxDowntime(dom, ms, 0)
                        }
                    }) != nil
                }
            }
            if options.postCopy && !postCopying && monotonicNowNs() > deadline {
                // Past the budget with post-copy allowed: switch instead of aborting (the guest then runs on the
                // target and pulls the remaining pages; such a job can no longer be aborted).
                postCopying = (try? withDomain(name) { (dom) throws(LibvirtError) in
                    try libvirtCall("start post-copy of '\(name)'", scrub: scrub) { virDomainMigrateStartPostCopy(dom, 0) }
                }) != nil
                if postCopying { continue }
            }
            if !aborted && !postCopying && monotonicNowNs() > deadline {
                // Retried on every poll until libvirt accepts it: early migration phases may refuse an abort.
                aborted = (try? withDomain(name) { (dom) throws(LibvirtError) in
                    try libvirtCall("abort migration job of '\(name)'", scrub: scrub) { virDomainAbortJob(dom) }
                }) != nil
                timedOut = true
            }
        }
        let duration = Double(monotonicNowNs() - t0) / 1e9
        switch outcome.result! {
        case .success:
            let via = options.peerToPeer ? "peer-to-peer" : "client-managed"
            let copy = options.copyStorage.map { ", copying disks \(options.migrateDisks.joined(separator: ","))"
                + ($0 == .incremental ? " incrementally" : "") } ?? ""
            return MigrationReport(domain: name, mode: .live, alreadyDone: false,
                                   steps: steps + ["migrated live (\(via)\(copy)) to \(target.redactedURI)"],
                                   durationSeconds: duration, lastProgress: last)
        case .failure(let error):
            if timedOut {
                throw LibvirtError.local(LibvirtError.Code.operationTimeout,
                    "live migration of '\(name)' to \(target.redactedURI) exceeded \(options.timeout) and was aborted (\(error.message))")
            }
            throw error
        }
    }

    /// The blocking migration call; runs on the migration thread (libvirt's last error is per thread).
    func runMigration(_ name: String, to target: LibvirtConnection, options: LiveMigrationOptions) throws(LibvirtError) {
        let params = TypedParameterList()
        if let u = options.migrateURI { try params.add(VIR_MIGRATE_PARAM_URI, string: u) }
        if let b = options.bandwidthMiBps { try params.add(VIR_MIGRATE_PARAM_BANDWIDTH, ullong: b) }
        var flags = VIR_MIGRATE_LIVE.rawValue | VIR_MIGRATE_PERSIST_DEST.rawValue | VIR_MIGRATE_UNDEFINE_SOURCE.rawValue
        if options.autoConverge { flags |= VIR_MIGRATE_AUTO_CONVERGE.rawValue }
        if options.postCopy { flags |= VIR_MIGRATE_POSTCOPY.rawValue }
        if options.compressed { flags |= VIR_MIGRATE_COMPRESSED.rawValue }
        if options.tls { flags |= VIR_MIGRATE_TLS.rawValue }
        switch options.copyStorage {
        case .all: flags |= VIR_MIGRATE_NON_SHARED_DISK.rawValue
        case .incremental: flags |= VIR_MIGRATE_NON_SHARED_INC.rawValue
        case nil: break
        }
        if options.copyStorage != nil {
            for d in options.migrateDisks { try params.add(VIR_MIGRATE_PARAM_MIGRATE_DISKS, string: d) }
        }
        let what = "live migration of '\(name)' from \(redactedURI) to \(target.redactedURI)"
        let scrubBoth = { (m: String) in target.scrub(self.scrub(m)) }
        try withDomain(name) { (dom) throws(LibvirtError) in
            if options.peerToPeer {
                flags |= VIR_MIGRATE_PEER2PEER.rawValue
                let dest = options.peerURI ?? target.rawURI
                try libvirtCall(what, scrub: { LibvirtURI.scrub(scrubBoth($0), uri: dest) }) {
                    virDomainMigrateToURI3(dom, dest, params.params, UInt32(params.count), flags)
                }
            } else {
                try target.withHandle { (dconn) throws(LibvirtError) in
                    let newDom: OpaquePointer = try libvirtCall(what, scrub: scrubBoth) {
                        virDomainMigrate3(dom, dconn, params.params, UInt32(params.count), flags)
                    }
                    virDomainFree(newDom)
                }
            }
        }
    }

    /// The bandwidth cap of `name`'s migration, MiB/s, as the hypervisor holds it (`virDomainMigrateGetMaxSpeed`);
    /// during a migration job this is the job's cap.
    public func migrationMaxSpeed(_ name: String) throws(LibvirtError) -> UInt64 {
        try withDomain(name) { (dom) throws(LibvirtError) -> UInt64 in
            var bandwidth: UInt = 0
            try libvirtCall("max migration speed of '\(name)' on \(redactedURI)", scrub: scrub) {
                virDomainMigrateGetMaxSpeed(dom, &bandwidth, 0)
            }
            return UInt64(bandwidth)
        }
    }

    /// Current job statistics of `name`, nil when there is no job or the call fails.
    func jobProgress(_ name: String) -> MigrationProgress? {
        try? withDomain(name) { (dom) throws(LibvirtError) -> MigrationProgress? in
            var type: Int32 = 0
            var params: UnsafeMutablePointer<virTypedParameter>? = nil
            var n: Int32 = 0
            try libvirtCall("job stats of '\(name)'") { virDomainGetJobStats(dom, &type, &params, &n, 0) }
            defer { virTypedParamsFree(params, n) }
            guard UInt32(type) != VIR_DOMAIN_JOB_NONE.rawValue else { return nil }
            let v = copyTypedParameters(params, count: n)
            return MigrationProgress(elapsedMs: v[VIR_DOMAIN_JOB_TIME_ELAPSED]?.uint64,
                                     dataTotal: v[VIR_DOMAIN_JOB_DATA_TOTAL]?.uint64,
                                     dataProcessed: v[VIR_DOMAIN_JOB_DATA_PROCESSED]?.uint64,
                                     dataRemaining: v[VIR_DOMAIN_JOB_DATA_REMAINING]?.uint64,
                                     memoryTotal: v[VIR_DOMAIN_JOB_MEMORY_TOTAL]?.uint64,
                                     memoryProcessed: v[VIR_DOMAIN_JOB_MEMORY_PROCESSED]?.uint64,
                                     memoryRemaining: v[VIR_DOMAIN_JOB_MEMORY_REMAINING]?.uint64)
        } ?? nil
    }
}

/// Hands the migration thread's result to the polling thread.
final class MigrationOutcome: Sendable {
    private let done = DispatchSemaphore(value: 0)
    private let stored = Mutex<Result<Void, LibvirtError>?>(nil)

    func finish(_ r: Result<Void, LibvirtError>) {
        stored.withLock { $0 = r }
        done.signal()
    }

    /// Waits up to `interval`; true once the result is available.
    func wait(for interval: Duration) -> Bool {
        if result != nil { return true }
        let ns = max(1_000_000, interval.nanoseconds)
        if done.wait(timeout: .now() + .nanoseconds(Int(ns))) == .success {
            done.signal()  // keep it signalled for later calls
            return true
        }
        return false
    }

    var result: Result<Void, LibvirtError>? { stored.withLock { $0 } }
}

extension Duration {
    var nanoseconds: Int64 {
        let (s, atto) = components
        return s.multipliedReportingOverflow(by: 1_000_000_000).partialValue &+ atto / 1_000_000_000
    }
}
