import Foundation
import SandpiperModel

/// One thing a webhook is told: what happened, where, and the plan it belongs to. Encoded as the documented JSON
/// payload or as a Slack-style `{"text": ...}` message.
public struct WebhookMessage: Sendable, Equatable {
    public var event: NotificationEvent
    public var cluster: String
    public var time: Date
    /// The plan the event is about (pending review, failed action), when there is one.
    public var plan: String?
    public var hosts: [String]
    public var vms: [String]
    /// One line a person reads first.
    public var summary: String
    /// One line per hotspot, action or error.
    public var details: [String]

    public init(event: NotificationEvent, cluster: String, time: Date, plan: String? = nil, hosts: [String] = [],
                vms: [String] = [], summary: String, details: [String] = []) {
        self.event = event; self.cluster = cluster; self.time = time; self.plan = plan
        self.hosts = hosts; self.vms = vms; self.summary = summary; self.details = details
    }

    /// `format: json`: `{"formatVersion": 1, "event", "cluster", "time" (RFC 3339 UTC), "plan" (or null),
    /// "hosts", "vms", "summary", "details"}`, keys sorted.
    public func jsonPayload() -> Data {
        let object: [String: Any] = [
            "formatVersion": 1, "event": event.rawValue, "cluster": cluster,
            "time": time.formatted(Date.ISO8601FormatStyle(includingFractionalSeconds: true)),
            "plan": plan.map { $0 as Any } ?? NSNull(), "hosts": hosts, "vms": vms, "summary": summary,
            "details": details,
        ]
        return (try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys, .withoutEscapingSlashes]))
            ?? Data("{}".utf8)
    }

    /// Details shown in a chat message; the JSON payload carries all of them.
    static let slackDetailLines = 10

    /// `format: slack`: `{"text": "..."}` (Slack, Mattermost and Rocket.Chat incoming webhooks).
    public func slackPayload() -> Data {
        var text = "[sandpiper] \(cluster): \(summary)"
        if let plan { text += " (plan \(plan))" }
        for line in details.prefix(Self.slackDetailLines) { text += "\n• " + line }
        if details.count > Self.slackDetailLines { text += "\n… and \(details.count - Self.slackDetailLines) more" }
        return (try? JSONSerialization.data(withJSONObject: ["text": text], options: [.sortedKeys, .withoutEscapingSlashes]))
            ?? Data("{}".utf8)
    }

    public func payload(_ format: Webhook.Format) -> Data {
        switch format {
        case .json: jsonPayload()
        case .slack: slackPayload()
        }
    }
}
