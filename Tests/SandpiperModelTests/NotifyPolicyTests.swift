import Foundation
import SandpiperModel
import SandpiperRedaction
import XCTest

/// `notify:` in a policy: defaults, every key, located errors that never quote a URL; webhook URL redaction.
final class NotifyPolicyTests: XCTestCase {
    let base = "apiVersion: sandpiper/v1\nkind: Policy\n"

    func testDefaultsAndEveryKey() throws {
        XCTAssertEqual(try SpecDecoder.decodePolicy(base, file: "p.yaml", name: "p").notify, [])
        let hooks = try SpecDecoder.decodePolicy(base + """
        notify:
          - url: https://hooks.example.org/services/T0/B0/abc
          - {urlFile: /etc/sandpiper/slack.url, format: slack, events: [hotspot-unresolved, apply-failed]}
        """, file: "p.yaml", name: "p").notify
        XCTAssertEqual(hooks, [
            Webhook(address: .url("https://hooks.example.org/services/T0/B0/abc"), format: .json,
                    events: NotificationEvent.allCases),
            Webhook(address: .file("/etc/sandpiper/slack.url"), format: .slack,
                    events: [.hotspotUnresolved, .applyFailed]),
        ])
        XCTAssertEqual(NotificationEvent.allCases.map(\.rawValue), [
            "hotspot-detected", "hotspot-resolved", "hotspot-unresolved", "plan-pending-review", "apply-failed",
            "spec-invalid"])
    }

    func testErrorsAreLocatedAndNeverQuoteTheURL() {
        let text = base + """
        notify:
          - {url: "ftp://user:pa55word@host/t0ken", format: json}
          - {url: https://a.example/x, urlFile: /x}
          - {format: slack}
          - {url: https://a.example/x, events: [hotspot-detected, hotspot-exploded], retries: 3}
          - {url: https://a.example/x, format: teams}
        """
        XCTAssertThrowsError(try SpecDecoder.decodePolicy(text, file: "p.yaml", name: "p")) { error in
            let lines = (error as? SpecErrors)?.diagnostics.map(\.description) ?? []
            XCTAssertTrue(lines.contains { $0.hasPrefix("p.yaml:4:") && $0.contains("notify[0].url: the URL's scheme must be http or https") }, "\(lines)")
            XCTAssertTrue(lines.contains { $0.hasPrefix("p.yaml:5:") && $0.contains("notify[1].urlFile: a webhook has either url or urlFile, not both") }, "\(lines)")
            XCTAssertTrue(lines.contains { $0.hasPrefix("p.yaml:6:") && $0.contains("notify[2]: missing required field url or urlFile") }, "\(lines)")
            XCTAssertTrue(lines.contains { $0.hasPrefix("p.yaml:7:") && $0.contains("notify[3].events[1]") && $0.contains("hotspot-exploded") }, "\(lines)")
            XCTAssertTrue(lines.contains { $0.hasPrefix("p.yaml:7:") && $0.contains("retries") }, "\(lines)")
            XCTAssertTrue(lines.contains { $0.hasPrefix("p.yaml:8:") && $0.contains("notify[4].format") }, "\(lines)")
            XCTAssertFalse(lines.joined().contains("pa55word") || lines.joined().contains("t0ken"), "\(lines)")
        }
    }

    func testWebhookRedaction() {
        XCTAssertEqual(WebhookRedaction.redacted("https://hooks.slack.com/services/T0/B0/XyZ"), "https://hooks.slack.com/***")
        XCTAssertEqual(WebhookRedaction.redacted("http://me:pw@127.0.0.1:8080/h?token=abc"), "http://127.0.0.1:8080/***")
        XCTAssertEqual(WebhookRedaction.redacted("not a url"), "***")
        let url = "https://me:pa55@hooks.example.org/services/T0KEN1/B0KEN2/S3CRET3?token=qq%20zz"
        let message = "could not connect to \(url) (path /services/T0KEN1/B0KEN2/S3CRET3, secret S3CRET3, query token=qq zz, user pa55)"
        let scrubbed = WebhookRedaction.scrub(message, url: url)
        for secret in ["pa55", "T0KEN1", "B0KEN2", "S3CRET3", "qq%20zz", "qq zz"] {
            XCTAssertFalse(scrubbed.contains(secret), "\(secret) in \(scrubbed)")
        }
    }
}
