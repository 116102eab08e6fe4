internal import CLibvirt
import Foundation

/// What a host lets Sandpiper tune. QEMU in session mode (an unprivileged daemon) has no cgroups: libvirt refuses
/// `<cputune>`/`<memtune>` there ("CPU tuning is not available in session mode"), at start and live.
public struct TuningSupport: Sendable, Equatable {
    public var cpu: Bool
    public var memory: Bool
    /// Why something is unsupported.
    public var reason: String?

    public init(cpu: Bool = true, memory: Bool = true, reason: String? = nil) {
        self.cpu = cpu; self.memory = memory; self.reason = reason
    }

    public static let all = TuningSupport()
}

extension LibvirtConnection {
    /// Probes what this host supports: the driver (`virConnectGetType`) and whether the daemon is a session one
    /// (`virConnectGetURI`, as the daemon canonicalized it). One cheap round trip, no domain needed.
    public func tuningSupport() throws(LibvirtError) -> TuningSupport {
        try withHandle { (conn) throws(LibvirtError) -> TuningSupport in
            let typePtr: UnsafePointer<CChar> = try libvirtCall("virConnectGetType on \(redactedURI)", scrub: scrub) {
                virConnectGetType(conn)
            }
            let type = String(cString: typePtr)
            let uriPtr: UnsafeMutablePointer<CChar> = try libvirtCall("virConnectGetURI on \(redactedURI)", scrub: scrub) {
                virConnectGetURI(conn)
            }
            let uri = String(cString: uriPtr)
            free(uriPtr)
            let path = URLComponents(string: uri)?.path ?? ""
            if ["QEMU", "LXC", "CH"].contains(type.uppercased()) && path == "/session" {
                return TuningSupport(cpu: false, memory: false,
                                     reason: "\(type) in session mode has no cgroups (CPU and memory tuning unavailable)")
            }
            return .all
        }
    }
}
