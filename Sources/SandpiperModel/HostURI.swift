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
        if let problem = unparseableReason(text) {
            return .failure(URIError("\"\(redacted(text))\" \(problem)"))
        }
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

    /// Why libvirt would answer "Unable to parse URI" (or silently drop a part), nil when it parses. Never
    /// quotes the text: the caller prints its redacted form.
    static func unparseableReason(_ text: String) -> String? {
        guard let parts = LibvirtURIParts(strict: text) else {
            if let slashes = text.range(of: "://"), let at = text[slashes.upperBound...].lastIndex(of: "@"),
               text[slashes.upperBound..<at].contains(where: { "#/?@".contains($0) }) {
                return "cannot be parsed by libvirt: the user name or password contains '#', '/', '?' or '@'; "
                    + "write them percent-encoded (%23, %2F, %3F, %40)"
            }
            return "cannot be parsed by libvirt: characters outside RFC 3986 (spaces, quotes, '<', '>', '\\', "
                + "'{', '}', '|', '^', non-ASCII) and a bare '%' must be percent-encoded, and a port must be a number"
        }
        if parts.fragment != nil {
            return "has a '#' fragment, which libvirt ignores; a '#' inside a password or parameter value must be "
                + "written %23"
        }
        return nil
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
