import Foundation

/// The one place that knows which parts of a libvirt connection URI are secret. Every module that prints,
/// stores or commits a URI (the model's validation, the libvirt adapter's errors, the engine's commits) goes
/// through here, so the rules cannot drift apart.
///
/// Two readings of a URI are combined so that nothing secret slips between them:
/// - the strict RFC 3986 split libvirt itself makes (libxml2's `xmlParseURI`, then `virURIParseParams`: query
///   names and values percent-decoded, `&` — or `;` when no `&` follows — between parameters, `#` starts a
///   fragment);
/// - a conservative reading for text libvirt cannot parse (`root:S3c#ret@pm6`, `root:p/ss@pm6`): the userinfo
///   runs to the *last* `@`, and a secret parameter's value runs to the next `&` whatever it contains.
public enum URIRedaction {
    /// Query parameter names (percent-decoded, any case) whose values are secrets or point at key material.
    public static let sensitiveQueryKeys: Set<String> = [
        "keyfile", "password", "passwd", "passphrase", "pkipath", "sshkey", "secret", "token", "auth", "authfile",
        "sshauth_password", "tls_priority_secret", "identity", "identityfile", "credentials", "cert", "certfile",
    ]

    /// Name fragments that make any parameter secret (`private_key`, `api_token`, `pass`, `client_cert`…).
    static let sensitiveNameParts = ["pass", "secret", "token", "key", "cred", "pki", "cert", "authfile", "identity"]

    /// Whether a query parameter called `name` (as written, possibly percent-encoded) carries a secret.
    public static func isSensitive(name: some StringProtocol) -> Bool {
        let decoded = (percentDecoded(String(name)) ?? String(name)).lowercased()
        let raw = name.lowercased()
        return [decoded, raw].contains { n in
            sensitiveQueryKeys.contains(n) || sensitiveNameParts.contains { n.contains($0) }
        }
    }

    /// `uri` with the password of `user:password@` userinfo, the values of sensitive query parameters and any
    /// fragment replaced by `***`.
    /// `qemu+ssh://root:hunter2@pm1/system?keyfile=/k&no_verify=1` -> `qemu+ssh://root:***@pm1/system?keyfile=***&no_verify=1`.
    /// Text libvirt cannot parse is redacted conservatively: `qemu+ssh://root:S3c#ret@pm6/system` ->
    /// `qemu+ssh://root:***@pm6/system`.
    public static func redacted(_ uri: String) -> String {
        if let parts = LibvirtURIParts(strict: uri) {
            var out = parts.scheme + ":"
            if let authority = parts.authority {
                out += "//"
                if let userinfo = authority.userinfo {
                    if let colon = userinfo.firstIndex(of: ":") {
                        out += userinfo[..<colon] + ":***@"
                    } else {
                        out += userinfo + "@"
                    }
                }
                out += authority.hostPort
            }
            out += parts.path
            if let query = parts.query { out += "?" + redactedQuery(query) }
            if parts.fragment != nil { out += "#***" }
            return out
        }
        return conservativelyRedacted(uri)
    }

    /// Replaces every secret found in `uri` (the whole raw URI, its password, its sensitive query values, each
    /// as written and percent-decoded) wherever it appears in `message` — libvirt's own messages quote the URI,
    /// and ssh quotes the decoded key file path.
    public static func scrub(_ message: String, uri: String) -> String {
        var result = message
        let safe = redacted(uri)
        if safe != uri { result = result.replacingAll(uri, with: safe) }
        for secret in secrets(in: uri) {
            result = result.replacingAll(secret, with: "***")
        }
        return result
    }

    /// The secret substrings of `uri`, longest first: the userinfo password and the values of sensitive query
    /// parameters under both readings (strict and conservative), each as written and percent-decoded, and a
    /// fragment (usually the rest of a password or value that held an unencoded `#`).
    public static func secrets(in uri: String) -> [String] {
        var found: Set<String> = []
        func add(_ s: some StringProtocol) {
            let s = String(s)
            guard !s.isEmpty else { return }
            found.insert(s)
            if let d = percentDecoded(s), !d.isEmpty { found.insert(d) }
        }
        if let parts = LibvirtURIParts(strict: uri) {
            if let userinfo = parts.authority?.userinfo, let colon = userinfo.firstIndex(of: ":") {
                add(userinfo[userinfo.index(after: colon)...])
            }
            if let query = parts.query {
                for (name, value) in libvirtParameters(query) where isSensitive(name: name) { add(value) }
            }
            if let fragment = parts.fragment { add(fragment) }
        }
        // The conservative reading, always: it also covers what a lenient parser downstream might see.
        guard let schemeEnd = uri.range(of: "://") ?? uri.range(of: ":") else { return sortedLongestFirst(found) }
        var rest = uri[schemeEnd.upperBound...]
        if let at = rest.lastIndex(of: "@") {
            let userinfo = rest[..<at]
            if let colon = userinfo.firstIndex(of: ":") { add(userinfo[userinfo.index(after: colon)...]) }
            rest = rest[rest.index(after: at)...]
        }
        if let q = rest.firstIndex(of: "?") {
            let query = rest[rest.index(after: q)...]
            for segment in query.split(separator: "&") {
                // Within one `&` segment, a secret name (also after a `;`) makes the rest of the segment secret.
                let pieces = segment.split(separator: ";", omittingEmptySubsequences: false)
                for piece in pieces {
                    guard let eq = piece.firstIndex(of: "="), isSensitive(name: piece[..<eq]) else { continue }
                    let valueStart = piece.index(after: eq)
                    add(segment[valueStart...])
                    add(piece[valueStart...])
                    if let hash = piece[valueStart...].firstIndex(of: "#") { add(piece[valueStart..<hash]) }
                }
            }
            if let hash = query.firstIndex(of: "#") { add(query[query.index(after: hash)...]) }
        }
        return sortedLongestFirst(found)
    }

    // MARK: Pieces

    private static func sortedLongestFirst(_ s: Set<String>) -> [String] {
        // Longest first so a secret containing another is replaced whole; ties sorted for determinism.
        s.sorted { $0.count != $1.count ? $0.count > $1.count : $0 < $1 }
    }

    /// A query with each sensitive parameter's value replaced by `***`, split the way libvirt splits it.
    static func redactedQuery(_ query: String) -> String {
        var out = ""
        var rest = Substring(query)
        while !rest.isEmpty {
            let end = libvirtParameterEnd(rest)
            let piece = rest[..<end]
            if let eq = piece.firstIndex(of: "="), isSensitive(name: piece[..<eq]) {
                out += piece[...eq] + "***"
            } else {
                out += piece
            }
            guard end < rest.endIndex else { break }
            out.append(rest[end])
            rest = rest[rest.index(after: end)...]
        }
        return out
    }

    /// Where the parameter at the start of `query` ends: at the next `&`, or — only when no `&` follows — at the
    /// next `;` (`virURIParseParams`).
    private static func libvirtParameterEnd(_ query: Substring) -> Substring.Index {
        query.firstIndex(of: "&") ?? query.firstIndex(of: ";") ?? query.endIndex
    }

    /// The (name, value) pairs libvirt reads from `query`, as written (not decoded).
    static func libvirtParameters(_ query: String) -> [(Substring, Substring)] {
        var pairs: [(Substring, Substring)] = []
        var rest = Substring(query)
        while !rest.isEmpty {
            let end = libvirtParameterEnd(rest)
            let piece = rest[..<end]
            if let eq = piece.firstIndex(of: "=") {
                pairs.append((piece[..<eq], piece[piece.index(after: eq)...]))
            } else if !piece.isEmpty {
                pairs.append((piece, ""))
            }
            guard end < rest.endIndex else { break }
            rest = rest[rest.index(after: end)...]
        }
        return pairs
    }

    /// For text libvirt cannot parse: keep the scheme, the user name and the host; everything that may be a
    /// password, a secret value or a fragment becomes `***`.
    static func conservativelyRedacted(_ uri: String) -> String {
        guard let schemeEnd = uri.range(of: "://") ?? uri.range(of: ":") else {
            // Not even a scheme: show nothing that could be a password.
            return uri.contains("@") || uri.contains("?") ? "***" : uri
        }
        var out = String(uri[..<schemeEnd.upperBound])
        var rest = uri[schemeEnd.upperBound...]
        if let at = rest.lastIndex(of: "@") {
            // Without "//" there is no user name to keep: all of it may be secret.
            let userinfo = rest[..<at]
            let user = uri[schemeEnd].hasSuffix("//") ? userinfo.prefix { !":/?#&;=".contains($0) } : ""
            out += user + (user.count < userinfo.count ? ":***" : "") + "@"
            rest = rest[rest.index(after: at)...]
        }
        guard let q = rest.firstIndex(of: "?") else {
            if let hash = rest.firstIndex(of: "#") { return out + rest[..<hash] + "#***" }
            return out + rest
        }
        out += rest[...q]
        let query = rest[rest.index(after: q)...]
        let segments = query.split(separator: "&", omittingEmptySubsequences: false).map { segment -> String in
            var pieces: [String] = []
            for piece in segment.split(separator: ";", omittingEmptySubsequences: false) {
                if let eq = piece.firstIndex(of: "="), isSensitive(name: piece[..<eq]) {
                    // The rest of the segment may belong to the value: drop it.
                    pieces.append(piece[...eq] + "***")
                    break
                }
                if let hash = piece.firstIndex(of: "#") {
                    pieces.append(piece[..<hash] + "#***")
                    break
                }
                pieces.append(String(piece))
            }
            return pieces.joined(separator: ";")
        }
        var joined = ""
        for (i, s) in segments.enumerated() {
            if i > 0 { joined += "&" }
            joined += s
            if s.hasSuffix("#***") { break }  // everything after an unencoded '#' is hidden
        }
        return out + joined
    }

    /// `%XX` sequences decoded (as libxml2's `xmlURIUnescapeString` does); nil when an escape is malformed or the
    /// result is not UTF-8.
    public static func percentDecoded(_ s: String) -> String? {
        guard s.contains("%") else { return s }
        var bytes: [UInt8] = []
        var it = Array(s.utf8)[...]
        while let b = it.popFirst() {
            if b == UInt8(ascii: "%") {
                guard it.count >= 2, let hi = hexValue(it[it.startIndex]), let lo = hexValue(it[it.startIndex + 1])
                else { return nil }
                bytes.append(hi << 4 | lo)
                it = it.dropFirst(2)
            } else {
                bytes.append(b)
            }
        }
        return String(validating: bytes, as: UTF8.self)
    }

    private static func hexValue(_ b: UInt8) -> UInt8? {
        switch b {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): b - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): b - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): b - UInt8(ascii: "A") + 10
        default: nil
        }
    }
}

/// A URI split the way libvirt splits it (RFC 3986, as libxml2's `xmlParseURI`): nil for anything libvirt would
/// answer with "Unable to parse URI" — characters outside RFC 3986 (spaces, quotes, `<>`, `\`, `{}`, `|`, `^`,
/// non-ASCII), a malformed `%` escape, a `#`, `/` or `?` inside the userinfo (which moves the host into the
/// fragment, path or query and leaves a non-numeric "port"), a second `@`.
public struct LibvirtURIParts: Sendable, Equatable {
    public struct Authority: Sendable, Equatable {
        public var userinfo: String?
        public var host: String
        public var port: String?
        public var hostPort: String { host + (port.map { ":" + $0 } ?? "") }
    }

    public var scheme: String
    public var authority: Authority?
    public var path: String
    public var query: String?
    public var fragment: String?

    // Built once, not per URI (a 1,000-host spec parses each host's URI several times).
    private static let unreserved = Set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-._~")
    private static let subDelims = Set("!$&'()*+,;=")

    public init?(strict text: String) {
        let unreserved = Self.unreserved, subDelims = Self.subDelims
        func valid(_ s: Substring, extra: Set<Character>) -> Bool {
            var i = s.startIndex
            while i < s.endIndex {
                let c = s[i]
                if c == "%" {
                    let a = s.index(after: i)
                    guard a < s.endIndex, s[a].isHexDigit, s[a].isASCII else { return false }
                    let b = s.index(after: a)
                    guard b < s.endIndex, s[b].isHexDigit, s[b].isASCII else { return false }
                    i = s.index(after: b)
                    continue
                }
                guard unreserved.contains(c) || subDelims.contains(c) || extra.contains(c) else { return false }
                i = s.index(after: i)
            }
            return true
        }
        guard let colon = text.firstIndex(of: ":") else { return nil }
        let scheme = text[..<colon]
        guard let first = scheme.first, first.isASCII, first.isLetter,
              scheme.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || "+-.".contains($0)) }) else { return nil }
        self.scheme = String(scheme)
        var rest = text[text.index(after: colon)...]
        if let hash = rest.firstIndex(of: "#") {
            let fragment = rest[rest.index(after: hash)...]
            guard valid(fragment, extra: [":", "@", "/", "?"]) else { return nil }
            self.fragment = String(fragment)
            rest = rest[..<hash]
        }
        if let q = rest.firstIndex(of: "?") {
            let query = rest[rest.index(after: q)...]
            guard valid(query, extra: [":", "@", "/", "?"]) else { return nil }
            self.query = String(query)
            rest = rest[..<q]
        }
        if rest.hasPrefix("//") {
            let afterSlashes = rest.dropFirst(2)
            let authorityText = afterSlashes.prefix { $0 != "/" }
            var hostPort = authorityText
            var userinfo: String?
            if let at = authorityText.firstIndex(of: "@") {
                let u = authorityText[..<at]
                guard valid(u, extra: [":"]) else { return nil }
                userinfo = String(u)
                hostPort = authorityText[authorityText.index(after: at)...]
            }
            var host = hostPort
            var port: String?
            if hostPort.hasPrefix("[") {
                guard let close = hostPort.firstIndex(of: "]") else { return nil }
                host = hostPort[...close]
                let after = hostPort[hostPort.index(after: close)...]
                guard valid(host.dropFirst().dropLast(), extra: [":"]) else { return nil }
                if !after.isEmpty {
                    guard after.first == ":" else { return nil }
                    port = String(after.dropFirst())
                }
            } else {
                if let c = hostPort.lastIndex(of: ":") {
                    host = hostPort[..<c]
                    port = String(hostPort[hostPort.index(after: c)...])
                }
                guard valid(host, extra: []) else { return nil }
            }
            if let port, !port.allSatisfy({ $0.isASCII && $0.isNumber }) { return nil }
            authority = Authority(userinfo: userinfo, host: String(host), port: port)
            rest = afterSlashes.dropFirst(authorityText.count)
        }
        guard valid(rest, extra: [":", "@", "/"]) else { return nil }
        path = String(rest)
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
