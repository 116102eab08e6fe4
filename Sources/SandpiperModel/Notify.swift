import Foundation

/// What a webhook under `notify:` is told about (policy files name them as written here).
public enum NotificationEvent: String, Sendable, Codable, CaseIterable {
    /// A hotspot that was not open in the previous round.
    case hotspotDetected = "hotspot-detected"
    /// A hotspot of the previous round that is no longer open.
    case hotspotResolved = "hotspot-resolved"
    /// The plan could not relieve a hotspot (newly so since the previous round).
    case hotspotUnresolved = "hotspot-unresolved"
    /// A plan (new actions) was left for review by the automation level or a change window.
    case planPendingReview = "plan-pending-review"
    /// An action failed while applying.
    case applyFailed = "apply-failed"
    /// The spec or policy read (working tree or branch tip) is invalid; the controller keeps the last good one.
    case specInvalid = "spec-invalid"
}

/// One entry of `notify:` in the policy: a webhook that gets a POST for each event it asks for.
public struct Webhook: Sendable, Equatable, Codable {
    public enum Format: String, Sendable, Codable, CaseIterable {
        /// The documented Sandpiper JSON object (event, cluster, time, plan, hosts, vms, summary, details).
        case json
        /// `{"text": "..."}`, what Slack's (and Mattermost's, Rocket.Chat's) incoming webhooks take.
        case slack
    }

    /// Where the URL comes from: written in the policy, or read from a file kept out of git (a URL with a
    /// token in it is a secret).
    public enum Address: Sendable, Equatable, Codable {
        case url(String)
        /// Absolute, or relative to the directory of the policy file.
        case file(String)
    }

    public var address: Address
    public var format: Format
    /// The events sent to this webhook (every event when the policy does not say).
    public var events: [NotificationEvent]

    public init(address: Address, format: Format = .json, events: [NotificationEvent] = NotificationEvent.allCases) {
        self.address = address; self.format = format; self.events = events
    }

    public func wants(_ event: NotificationEvent) -> Bool { events.contains(event) }

    /// Why `text` cannot be a webhook URL (nil when it can): http or https with a host, nothing else. The text
    /// itself is never quoted: it may hold a token.
    public static func problem(url text: String) -> String? {
        if text.isEmpty { return "the URL is empty" }
        if text.contains(where: { $0.isWhitespace || $0.isNewline }) { return "the URL contains white space" }
        guard let c = URLComponents(string: text), let scheme = c.scheme?.lowercased() else {
            return "not a URL (expected http://HOST/... or https://HOST/...)"
        }
        guard scheme == "http" || scheme == "https" else {
            return "the URL's scheme must be http or https, not \(scheme.prefix(16))"
        }
        guard let host = c.host, !host.isEmpty else { return "the URL has no host" }
        return nil
    }
}
