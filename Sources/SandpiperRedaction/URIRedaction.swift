import Foundation

/// The one place that knows which parts of a libvirt connection URI are secret. Every module that prints,
/// stores or commits a URI (the model's validation, the libvirt adapter's errors, the engine's commits) goes
/// through here, so the rules cannot drift apart.
public enum URIRedaction {
    /// Query parameters whose values are secrets or point at key material.
    public static let sensitiveQueryKeys: Set<String> = [
        "keyfile", "password", "passwd", "pkipath", "sshkey", "secret", "token", "auth", "authfile",
        "sshauth_password", "tls_priority_secret",
    ]

    /// `uri` with the password of `user:password@` userinfo and the values of sensitive query parameters
    /// (`keyfile=`, `password=`, `passwd=`, `pkipath=`, …) replaced by `***`.
    /// `qemu+ssh://root:hunter2@pm1/system?keyfile=/k&no_verify=1` -> `qemu+ssh://root:***@pm1/system?keyfile=***&no_verify=1`.
    public static func redacted(_ uri: String) -> String {
        var rest = Substring(uri)
        var out = ""
        // scheme
        if let schemeEnd = rest.range(of: "://") {
            out += rest[..<schemeEnd.upperBound]
            rest = rest[schemeEnd.upperBound...]
            // authority ends at the first '/', '?' or '#'
            let authorityEnd = rest.firstIndex(where: { $0 == "/" || $0 == "?" || $0 == "#" }) ?? rest.endIndex
            let authority = rest[..<authorityEnd]
            if let at = authority.lastIndex(of: "@") {
                let userinfo = authority[..<at]
                if let colon = userinfo.firstIndex(of: ":") {
                    out += userinfo[..<colon] + ":***"
                } else {
                    out += userinfo
                }
                out += authority[at...]
            } else {
                out += authority
            }
            rest = rest[authorityEnd...]
        }
        // path, then query, then fragment
        guard let q = rest.firstIndex(of: "?") else { return out + rest }
        out += rest[...q]
        let afterQ = rest[rest.index(after: q)...]
        let fragmentStart = afterQ.firstIndex(of: "#") ?? afterQ.endIndex
        let query = afterQ[..<fragmentStart]
        let parts = query.split(separator: "&", omittingEmptySubsequences: false).map { part -> String in
            guard let eq = part.firstIndex(of: "=") else { return String(part) }
            let key = part[..<eq].lowercased()
            if sensitiveQueryKeys.contains(key) { return part[...eq] + "***" }
            return String(part)
        }
        out += parts.joined(separator: "&")
        out += afterQ[fragmentStart...]
        return out
    }

    /// Replaces every secret found in `uri` (the whole raw URI, its password, its sensitive query values) wherever
    /// it appears in `message` — libvirt's own messages sometimes quote the URI or a key path.
    public static func scrub(_ message: String, uri: String) -> String {
        var result = message
        let safe = redacted(uri)
        if safe != uri { result = result.replacingAll(uri, with: safe) }
        for secret in secrets(in: uri) where secret.count >= 1 {
            result = result.replacingAll(secret, with: "***")
        }
        return result
    }

    /// The secret substrings of `uri`: the userinfo password and the values of sensitive query parameters.
    public static func secrets(in uri: String) -> [String] {
        var found: [String] = []
        if let schemeEnd = uri.range(of: "://") {
            let rest = uri[schemeEnd.upperBound...]
            let authorityEnd = rest.firstIndex(where: { $0 == "/" || $0 == "?" || $0 == "#" }) ?? rest.endIndex
            let authority = rest[..<authorityEnd]
            if let at = authority.lastIndex(of: "@"), let colon = authority[..<at].firstIndex(of: ":") {
                let pw = authority[authority.index(after: colon)..<at]
                if !pw.isEmpty { found.append(String(pw)) }
            }
        }
        if let q = uri.firstIndex(of: "?") {
            let query = uri[uri.index(after: q)...].prefix { $0 != "#" }
            for part in query.split(separator: "&") {
                guard let eq = part.firstIndex(of: "=") else { continue }
                if sensitiveQueryKeys.contains(part[..<eq].lowercased()) {
                    let value = part[part.index(after: eq)...]
                    if !value.isEmpty { found.append(String(value)) }
                }
            }
        }
        // Longest first so a secret containing another is replaced whole.
        return found.sorted { $0.count > $1.count }
    }

}

extension String {
    /// Every occurrence of `target` replaced.
    public func replacingAll(_ target: String, with replacement: String) -> String {
        guard !target.isEmpty else { return self }
        var out = ""
        var rest = self[...]
        while let r = rest.range(of: target) {
            out += rest[..<r.lowerBound]
            out += replacement
            rest = rest[r.upperBound...]
        }
        out += rest
        return out
    }
}
