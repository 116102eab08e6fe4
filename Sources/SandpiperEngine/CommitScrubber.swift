import Foundation
import SandpiperRedaction

/// Credentials in host URIs must never reach a commit: any URI of the spec that carries a secret is replaced by
/// its redacted form in every byte Sandpiper commits (defence in depth: state and plans hold host names, and
/// libvirt errors are scrubbed already).
/// Nothing Sandpiper commits may carry a host's credentials: every host URI, its password and its secret query
/// values (key file paths, tokens) are redacted wherever they appear, also where libvirt quoted them in an error
/// that reached the journal or a commit message.
package enum CommitScrubber {
    package static func scrub(_ text: String, cluster: LoadedCluster) -> String {
        var text = text
        for host in cluster.spec.hosts {
            for uri in Set([host.uri, cluster.connectionURI(for: host)]).sorted() {
                // JSON escapes quotes and backslashes and may escape slashes: cover those spellings of the URI
                // and of each secret as well.
                for spelling in jsonSpellings(uri) {
                    text = text.replacingOccurrences(of: spelling, with: URIRedaction.redacted(uri))
                }
                for secret in URIRedaction.secrets(in: uri) {
                    for spelling in jsonSpellings(secret) {
                        text = text.replacingOccurrences(of: spelling, with: "***")
                    }
                }
                text = URIRedaction.scrub(text, uri: uri)
            }
        }
        return text
    }

    /// How JSON encoders may write `s`, other than as is.
    static func jsonSpellings(_ s: String) -> [String] {
        var escaped = ""
        for c in s.unicodeScalars {
            switch c {
            case "\\": escaped += "\\\\"
            case "\"": escaped += "\\\""
            case "\n": escaped += "\\n"
            case "\t": escaped += "\\t"
            case "\r": escaped += "\\r"
            default: escaped.unicodeScalars.append(c)
            }
        }
        let slashes = escaped.replacingOccurrences(of: "/", with: "\\/")
        return Array(Set([escaped, slashes]).subtracting([s])).sorted { $0.count > $1.count }
    }

    package static func scrub(_ bytes: [UInt8], cluster: LoadedCluster) -> [UInt8] {
        guard let text = String(validating: bytes, as: UTF8.self) else { return bytes }
        let clean = scrub(text, cluster: cluster)
        return clean == text ? bytes : Array(clean.utf8)
    }
}
