internal import CLibvirt

/// A failed libvirt call, read from libvirt's thread-local last error (`virGetLastError`).
///
/// `code` and `domain` are libvirt's `virErrorNumber` / `virErrorDomain` values (e.g. `VIR_ERR_NO_DOMAIN` = 42),
/// so callers can match on them without importing libvirt. `message` names the operation and carries libvirt's
/// text; any connection URI in it is redacted (see `LibvirtURI.redacted`).
public struct LibvirtError: Error, Sendable, Equatable, CustomStringConvertible {
    public let code: Int
    public let domain: Int
    public let message: String

    public init(code: Int, domain: Int, message: String) {
        self.code = code
        self.domain = domain
        self.message = message
    }

    /// A coarse classification callers decide on (the engine does not need libvirt's ~100 codes).
    public enum Kind: Sendable, Equatable {
        /// No such domain (VIR_ERR_NO_DOMAIN).
        case noDomain
        /// The driver or hypervisor does not support the call or one of its parameters
        /// (VIR_ERR_NO_SUPPORT, VIR_ERR_ARGUMENT_UNSUPPORTED, VIR_ERR_OPERATION_UNSUPPORTED,
        /// VIR_ERR_CONFIG_UNSUPPORTED). Examples: `cpu_shares` on the test driver ("argument unsupported"), CPU
        /// tuning on a session-mode QEMU daemon ("unsupported configuration: … not available in session mode").
        case unsupported
        /// The operation is not valid in the domain's current state (VIR_ERR_OPERATION_INVALID).
        case operationInvalid
        /// Could not connect, or the connection broke (VIR_ERR_NO_CONNECT, VIR_ERR_SYSTEM_ERROR, VIR_ERR_RPC,
        /// VIR_ERR_INVALID_CONN).
        case connection
        /// Authentication or authorization failed (VIR_ERR_AUTH_FAILED, VIR_ERR_OPERATION_DENIED, VIR_ERR_AUTH_*).
        case denied
        /// A domain with that name or UUID already exists differently (VIR_ERR_DOM_EXIST, or
        /// VIR_ERR_OPERATION_FAILED "… already exists with uuid …" as define reports it).
        case domainExists
        /// An invalid argument was passed (VIR_ERR_INVALID_ARG, VIR_ERR_XML_ERROR, VIR_ERR_XML_DETAIL…).
        case invalidArgument
        /// The operation (typically a migration) exceeded its time budget and was aborted.
        case timeout
        /// The operation was aborted (VIR_ERR_OPERATION_ABORTED).
        case aborted
        case other
    }

    public var kind: Kind {
        switch code {
        case Code.noDomain: return .noDomain
        case Code.noSupport, Code.argumentUnsupported, Code.operationUnsupported, Code.configUnsupported:
            return .unsupported
        case Code.operationInvalid: return .operationInvalid
        case Code.noConnect, Code.invalidConn, Code.systemError, Code.rpc: return .connection
        case Code.authFailed, Code.operationDenied, Code.authCancelled, Code.authUnavailable: return .denied
        case Code.domExist: return .domainExists
        case Code.operationFailed where message.contains("already exists"): return .domainExists
        case Code.invalidArg, Code.xmlError, Code.xmlDetail, Code.invalidDomain: return .invalidArgument
        case Code.operationTimeout: return .timeout
        case Code.operationAborted: return .aborted
        default: return .other
        }
    }

    public var isUnsupported: Bool { kind == .unsupported }

    public var description: String { "libvirt error \(code) (domain \(domain)): \(message)" }

    /// libvirt's `virErrorNumber` values used by `kind` (stable ABI constants from virterror.h).
    public enum Code {
        public static let noSupport = Int(VIR_ERR_NO_SUPPORT.rawValue)                       // 3
        public static let noConnect = Int(VIR_ERR_NO_CONNECT.rawValue)                       // 5
        public static let invalidConn = Int(VIR_ERR_INVALID_CONN.rawValue)                   // 6
        public static let invalidDomain = Int(VIR_ERR_INVALID_DOMAIN.rawValue)               // 7
        public static let invalidArg = Int(VIR_ERR_INVALID_ARG.rawValue)                     // 8
        public static let xmlError = Int(VIR_ERR_XML_ERROR.rawValue)                         // 27
        public static let operationFailed = Int(VIR_ERR_OPERATION_FAILED.rawValue)           // 9
        public static let domExist = Int(VIR_ERR_DOM_EXIST.rawValue)                         // 28
        public static let operationDenied = Int(VIR_ERR_OPERATION_DENIED.rawValue)           // 29
        public static let systemError = Int(VIR_ERR_SYSTEM_ERROR.rawValue)                   // 38
        public static let rpc = Int(VIR_ERR_RPC.rawValue)                                    // 39
        public static let noDomain = Int(VIR_ERR_NO_DOMAIN.rawValue)                         // 42
        public static let authFailed = Int(VIR_ERR_AUTH_FAILED.rawValue)                     // 45
        public static let operationInvalid = Int(VIR_ERR_OPERATION_INVALID.rawValue)         // 55
        public static let configUnsupported = Int(VIR_ERR_CONFIG_UNSUPPORTED.rawValue)       // 67
        public static let operationTimeout = Int(VIR_ERR_OPERATION_TIMEOUT.rawValue)         // 68
        public static let argumentUnsupported = Int(VIR_ERR_ARGUMENT_UNSUPPORTED.rawValue)   // 74
        public static let operationAborted = Int(VIR_ERR_OPERATION_ABORTED.rawValue)         // 78
        public static let authCancelled = Int(VIR_ERR_AUTH_CANCELLED.rawValue)               // 79
        public static let xmlDetail = Int(VIR_ERR_XML_DETAIL.rawValue)                       // 80
        public static let operationUnsupported = Int(VIR_ERR_OPERATION_UNSUPPORTED.rawValue) // 84
        public static let authUnavailable = Int(VIR_ERR_AUTH_UNAVAILABLE.rawValue)           // 94
    }

    /// Errors raised by this module itself (not by a libvirt call) use libvirt's numbering with `VIR_FROM_NONE`.
    static func local(_ code: Int, _ message: String) -> LibvirtError {
        LibvirtError(code: code, domain: Int(VIR_FROM_NONE.rawValue), message: message)
    }
}

// MARK: - The one place C failures become Swift errors

/// Process-wide libvirt setup, done once before the first connection:
/// `virInitialize()` (required before multi-threaded use) and a no-op global error handler so libvirt never prints
/// to stderr; errors are read from `virGetLastError()` instead.
enum LibvirtRuntime {
    private static let initialized: Bool = {
        _ = virInitialize()
        virSetErrorFunc(nil) { _, _ in }
        return true
    }()

    static func ensureInitialized() { _ = initialized }
}

/// Reads and clears this thread's last libvirt error. libvirt keeps the last error per thread, so this is safe
/// when several threads use libvirt concurrently, as long as it runs on the thread that made the failing call
/// (every helper below does).
func takeLastError(_ context: String, scrub: (String) -> String = { $0 }) -> LibvirtError {
    defer { virResetLastError() }
    guard let err = virGetLastError() else {
        return LibvirtError.local(Int(VIR_ERR_INTERNAL_ERROR.rawValue), scrub("\(context): failed (no libvirt error set)"))
    }
    let text = err.pointee.message.map { String(cString: $0) } ?? "unknown libvirt error"
    return LibvirtError(code: Int(err.pointee.code), domain: Int(err.pointee.domain), message: scrub("\(context): \(text)"))
}

/// Runs a libvirt call that returns an `int` (-1 on failure) and throws `LibvirtError` on failure.
/// The last error is reset before the call so a stale error from an earlier call is never reported.
@discardableResult
func libvirtCall(_ context: @autoclosure () -> String, scrub: (String) -> String = { $0 },
                 _ body: () -> Int32) throws(LibvirtError) -> Int32 {
    virResetLastError()
    let rc = body()
    if rc < 0 { throw takeLastError(context(), scrub: scrub) }
    return rc
}

/// Runs a libvirt call that returns a pointer (NULL on failure) and throws `LibvirtError` on failure.
func libvirtCall<T>(_ context: @autoclosure () -> String, scrub: (String) -> String = { $0 },
                    _ body: () -> T?) throws(LibvirtError) -> T {
    virResetLastError()
    guard let value = body() else { throw takeLastError(context(), scrub: scrub) }
    return value
}
