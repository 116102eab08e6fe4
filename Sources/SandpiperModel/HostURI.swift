import Foundation
import SandpiperRedaction

/// A host's libvirt connection URI as written in cluster.yaml, checked and made safe to print.
///
/// Forms: `driver[+transport]://[user[:password]@][host[:port]]/path[?query]`, and the Sandpiper
/// shorthand `test:relative/node.xml` for the libvirt test driver with a node file next to the spec.
public struct HostURI: Sendable, Equatable {
    public static let drivers: Set<String> = ["test", "qemu", "xen", "lxc", "libxl", "bhyve", "ch", "vbox",
                                              "vmware", "esx", "vpx", "hyperv", "openvz", "vz"]
    public static let transports: Set<String> = ["ssh", "libssh", "libssh2", "tls", "tcp", "unix", "ext"]

    public var text: String
    public var driver: String
    public var transport: String?
    /// For `test:hosts/pm1.xml`: the node file path relative to the cluster directory.
    public var relativeTestFile: String?

    /// Parses `text`; returns a message saying what is wrong when it is not a libvirt URI.
    public static func parse(_ text: String) -> Result<HostURI, URIError> {
        guard let colon = text.firstIndex(of: ":") else {
            return .failure(URIError("\"\(redacted(text))\" is not a libvirt URI (expected e.g. qemu+ssh://host/system)"))
        }
        let scheme = text[..<colon].lowercased()
        let rest = text[text.index(after: colon)...]
        let parts = scheme.split(separator: "+", maxSplits: 1).map(String.init)
        let driver = parts.first ?? ""
        let transport = parts.count > 1 ? parts[1] : nil
        guard drivers.contains(driver) else {
            return .failure(URIError("unknown libvirt driver \"\(driver)\" in \"\(redacted(text))\" "
                + "(known: \(drivers.sorted().joined(separator: ", ")))"))
        }
        if let t = transport, !transports.contains(t) {
            return .failure(URIError("unknown transport \"\(t)\" in \"\(redacted(text))\" "
                + "(known: \(transports.sorted().joined(separator: ", ")))"))
        }
        var uri = HostURI(text: text, driver: driver, transport: transport, relativeTestFile: nil)
        if rest.hasPrefix("//") {
            let afterSlashes = rest.dropFirst(2)
            let authority = afterSlashes.prefix { $0 != "/" && $0 != "?" }
            let path = afterSlashes.dropFirst(authority.count).prefix { $0 != "?" }
            if path.isEmpty || path == "/" {
                let example = redacted(String(text.prefix { $0 != "?" }).trimmingCharacters(in: ["/"]) + "/system")
                return .failure(URIError("\"\(redacted(text))\" has no path (expected e.g. \(example))"))
            }
            if authority.contains(" ") || path.contains(" ") {
                return .failure(URIError("\"\(redacted(text))\" contains spaces"))
            }
            return .success(uri)
        }
        guard driver == "test", transport == nil, !rest.isEmpty, !rest.hasPrefix("/") else {
            return .failure(URIError("\"\(redacted(text))\" is not a libvirt URI (expected \(driver)://... "
                + "or test:path/to/node.xml)"))
        }
        uri.relativeTestFile = String(rest)
        return .success(uri)
    }

    /// `text` with passwords and secret query values replaced by `***`; safe for logs, plans, state and commits.
    public static func redacted(_ text: String) -> String { URIRedaction.redacted(text) }

    public var redacted: String { HostURI.redacted(text) }
}

public struct URIError: Error, Sendable, Equatable, CustomStringConvertible {
    public var message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}
