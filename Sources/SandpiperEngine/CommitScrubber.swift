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
                // JSON may escape slashes: cover that spelling of the URI and of each secret as well.
                func escaped(_ s: String) -> String { s.replacingOccurrences(of: "/", with: "\\/") }
                text = text.replacingOccurrences(of: escaped(uri), with: URIRedaction.redacted(uri))
                for secret in URIRedaction.secrets(in: uri) where escaped(secret) != secret {
                    text = text.replacingOccurrences(of: escaped(secret), with: "***")
                }
                text = URIRedaction.scrub(text, uri: uri)
            }
        }
        return text
    }

    package static func scrub(_ bytes: [UInt8], cluster: LoadedCluster) -> [UInt8] {
        guard let text = String(validating: bytes, as: UTF8.self) else { return bytes }
        let clean = scrub(text, cluster: cluster)
        return clean == text ? bytes : Array(clean.utf8)
    }
}
