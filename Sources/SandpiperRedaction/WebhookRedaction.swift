import Foundation

/// Webhook URLs carry their secret anywhere: Slack's in the path (`/services/T…/B…/token`), others in the query
/// (`?token=`) or the user info. Logs, metrics and errors show only the scheme, host and port.
public enum WebhookRedaction {
    /// `https://hooks.slack.com/services/T0/B0/XYZ` -> `https://hooks.slack.com/***`; `http://u:p@h:8080/` ->
    /// `http://h:8080/***`. Text that is not a URL becomes `***`.
    public static func redacted(_ url: String) -> String {
        guard let c = URLComponents(string: url), let scheme = c.scheme, let host = c.host, !host.isEmpty else {
            return "***"
        }
        let hostPort = (host.contains(":") ? "[\(host)]" : host) + (c.port.map { ":\($0)" } ?? "")
        return "\(scheme)://\(hostPort)/***"
    }

    /// `message` with the URL and every part of it that may be secret (user info, path, path segments, query,
    /// query values, fragment; as written and percent-decoded) replaced by `***`. For texts a library built
    /// around the URL, such as URLSession's errors.
    public static func scrub(_ message: String, url: String) -> String {
        var secrets: Set<String> = [url]
        if let c = URLComponents(string: url) {
            for s in [c.percentEncodedUser, c.percentEncodedPassword, c.user, c.password, c.percentEncodedQuery,
                      c.query, c.percentEncodedFragment, c.fragment] {
                if let s, !s.isEmpty { secrets.insert(s) }
            }
            for path in [c.percentEncodedPath, c.path] where path.count > 1 {
                secrets.insert(path)
                // Each segment (a token alone is still a token), but not words short enough to be everywhere.
                for segment in path.split(separator: "/") where segment.count >= 4 { secrets.insert(String(segment)) }
            }
            for item in c.queryItems ?? [] { if let v = item.value, v.count >= 4 { secrets.insert(v) } }
            if let rest = url.range(of: "://").map({ String(url[$0.upperBound...]) }) { secrets.insert(rest) }
        }
        var result = message
        for secret in secrets.sorted(by: { $0.count > $1.count }) {
            result = result.replacingOccurrences(of: secret, with: "***")
        }
        return result
    }
}
