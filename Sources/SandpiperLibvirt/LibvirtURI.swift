import SandpiperRedaction

/// Connection URI helpers. Every message this module produces about a URI uses `redacted(_:)`.
public enum LibvirtURI {
    /// `uri` with the password of `user:password@` userinfo and the values of sensitive query parameters replaced
    /// by `***` (see `URIRedaction`).
    public static func redacted(_ uri: String) -> String { URIRedaction.redacted(uri) }

    /// Replaces every secret of `uri` wherever it appears in `message` (libvirt quotes URIs and key paths).
    public static func scrub(_ message: String, uri: String) -> String { URIRedaction.scrub(message, uri: uri) }

    /// True for the in-process test driver (`test:///default`, `test:///abs/path.xml`).
    public static func isTestDriver(_ uri: String) -> Bool { uri.hasPrefix("test:") }
}
