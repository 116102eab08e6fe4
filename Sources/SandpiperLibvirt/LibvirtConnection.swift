internal import CLibvirt
import Foundation

/// One open libvirt connection (`virConnectPtr`).
///
/// Thread-safety: libvirt connections may be used from several threads at once; this class guards only the
/// pointer's lifetime with an internal lock. Each call takes a reference (`virConnectRef`) under the lock and drops
/// it afterwards, so `close()` from one thread never frees the connection under a call running on another
/// (a long migration keeps the connection alive until it returns). Hence `@unchecked Sendable`.
public final class LibvirtConnection: @unchecked Sendable {
    /// Keepalive for remote connections: a probe every `interval` seconds, the connection is declared dead after
    /// `count` unanswered probes (`virConnectSetKeepAlive`).
    public struct KeepAlive: Sendable, Equatable {
        public var interval: Int32
        public var count: UInt32
        public init(interval: Int32 = 5, count: UInt32 = 3) {
            self.interval = interval
            self.count = count
        }
        public static let `default` = KeepAlive()
    }

    /// The URI with secrets redacted; safe to log.
    public let redactedURI: String
    public let readOnly: Bool
    /// Whether keepalive is active (false for the test driver and drivers that do not support it).
    public let keepAliveActive: Bool
    let rawURI: String

    private let lock = NSLock()
    private var handle: OpaquePointer?  // virConnectPtr; nil once closed
    private var schedulerFlagsRefused = false

    /// Whether the driver refused `virDomainGetSchedulerParametersFlags` (the test driver does, for every
    /// domain): then inventory asks the flag-less variant directly instead of failing first each time.
    var refusesSchedulerFlags: Bool {
        get { lock.lock(); defer { lock.unlock() }; return schedulerFlagsRefused }
        set { lock.lock(); schedulerFlagsRefused = newValue; lock.unlock() }
    }

    /// Opens `uri` read-write (`virConnectOpen`) or read-only (`virConnectOpenReadOnly`).
    /// For non-test URIs keepalive is requested (and libvirt's default event loop started, which keepalive needs);
    /// "unsupported" answers are ignored.
    public init(uri: String, readOnly: Bool = false, keepAlive: KeepAlive? = .default) throws(LibvirtError) {
        LibvirtRuntime.ensureInitialized()
        self.rawURI = uri
        self.redactedURI = LibvirtURI.redacted(uri)
        self.readOnly = readOnly
        let wantsKeepAlive = keepAlive != nil && !LibvirtURI.isTestDriver(uri)
        if wantsKeepAlive { LibvirtEventLoop.ensureRunning() }
        let safe = redactedURI
        let scrub = { (m: String) in LibvirtURI.scrub(m, uri: uri) }
        let conn: OpaquePointer = try libvirtCall("connect \(readOnly ? "read-only " : "")to \(safe)", scrub: scrub) {
            readOnly ? virConnectOpenReadOnly(uri) : virConnectOpen(uri)
        }
        self.handle = conn
        var active = false
        if wantsKeepAlive, let ka = keepAlive {
            virResetLastError()
            let rc = virConnectSetKeepAlive(conn, ka.interval, ka.count)
            if rc == 0 {
                active = true
            } else if rc < 0 {
                let err = takeLastError("keepalive on \(safe)", scrub: scrub)
                if !err.isUnsupported {
                    virConnectClose(conn)
                    self.handle = nil
                    throw err
                }
            }  // rc == 1: the remote side does not support keepalive
        }
        self.keepAliveActive = active
    }

    deinit {
        if let h = handle { virConnectClose(h) }
    }

    /// Closes the connection. Idempotent. Calls already running keep their own reference and finish normally.
    public func close() {
        lock.lock()
        let h = handle
        handle = nil
        lock.unlock()
        if let h { virConnectClose(h) }
    }

    public var isOpen: Bool {
        lock.lock(); defer { lock.unlock() }
        return handle != nil
    }

    /// Whether libvirt still considers the connection alive (`virConnectIsAlive`).
    public var isAlive: Bool {
        (try? withHandle { conn in virConnectIsAlive(conn) == 1 }) ?? false
    }

    /// Scrubs secrets of this connection's URI out of a libvirt message.
    func scrub(_ message: String) -> String { LibvirtURI.scrub(message, uri: rawURI) }

    /// Runs `body` with a referenced `virConnectPtr`, valid for the duration of the call.
    func withHandle<T>(_ body: (OpaquePointer) throws(LibvirtError) -> T) throws(LibvirtError) -> T {
        lock.lock()
        guard let h = handle else {
            lock.unlock()
            throw LibvirtError.local(LibvirtError.Code.invalidConn, "connection to \(redactedURI) is closed")
        }
        virConnectRef(h)
        lock.unlock()
        defer { virConnectClose(h) }  // drops the reference taken above
        return try body(h)
    }

    /// Runs `body` with the named domain looked up on this connection (`virDomainLookupByName`), freeing it after.
    func withDomain<T>(_ name: String, _ body: (OpaquePointer) throws(LibvirtError) -> T) throws(LibvirtError) -> T {
        try withHandle { (conn) throws(LibvirtError) -> T in
            let dom: OpaquePointer = try libvirtCall("look up domain '\(name)' on \(redactedURI)", scrub: scrub) {
                virDomainLookupByName(conn, name)
            }
            defer { virDomainFree(dom) }
            return try body(dom)
        }
    }

    /// Like `withDomain`, but `nil` when the domain does not exist.
    func withDomainIfExists<T>(_ name: String, _ body: (OpaquePointer) throws(LibvirtError) -> T) throws(LibvirtError) -> T? {
        do throws(LibvirtError) {
            return try withDomain(name, body)
        } catch where error.kind == .noDomain {
            return nil
        }
    }
}

/// libvirt's default event loop (`virEventRegisterDefaultImpl` + a thread running `virEventRunDefaultImpl`), needed
/// by keepalive on remote connections. Started once per process, before the first remote connection opens.
enum LibvirtEventLoop {
    private static let started: Bool = {
        LibvirtRuntime.ensureInitialized()
        guard virEventRegisterDefaultImpl() == 0 else {
            virResetLastError()
            return false
        }
        let thread = Thread {
            while true {
                if virEventRunDefaultImpl() < 0 { virResetLastError() }
            }
        }
        thread.name = "libvirt-event-loop"
        thread.start()
        return true
    }()

    static func ensureRunning() { _ = started }
}
