import Foundation
import Logging

/// One line per event on stderr (journald reads it as is): `time level message key=value ...` or one JSON object
/// with the metadata as fields (`--log-format json`).
public struct LineLogHandler: LogHandler {
    public enum Format: String, Sendable, CaseIterable { case text, json }

    public var metadata: Logger.Metadata = [:]
    public var logLevel: Logger.Level = .info
    let label: String
    let format: Format
    private static let lock = NSLock()

    public init(label: String, format: Format) { self.label = label; self.format = format }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    public func log(event: LogEvent) {
        var fields = metadata
        if let extra = event.metadata { fields.merge(extra) { $1 } }
        let time = Date().formatted(Date.ISO8601FormatStyle(includingFractionalSeconds: true))
        let line: String
        switch format {
        case .text:
            let pairs = fields.keys.sorted().map { key in "\(key)=\(Self.quoted("\(fields[key]!)"))" }
            line = ([time, event.level.rawValue, event.message.description] + pairs).joined(separator: " ")
        case .json:
            var object: [String: Any] = ["time": time, "level": event.level.rawValue, "msg": event.message.description,
                                         "logger": label]
            for (key, value) in fields { object[key] = Self.json(value) }
            let data = (try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys, .withoutEscapingSlashes]))
                ?? Data("{}".utf8)
            line = String(decoding: data, as: UTF8.self)
        }
        Self.lock.lock()
        FileHandle.standardError.write(Data((line + "\n").utf8))
        Self.lock.unlock()
    }

    private static func quoted(_ s: String) -> String {
        s.contains(where: { $0 == " " || $0 == "\"" || $0 == "=" }) || s.isEmpty
            ? "\"" + s.replacingOccurrences(of: "\"", with: "\\\"") + "\"" : s
    }

    private static func json(_ value: Logger.MetadataValue) -> Any {
        switch value {
        case .string(let s): s
        case .stringConvertible(let c):
            // Numbers stay numbers in JSON, so log pipelines can compare them.
            if let i = c as? Int { i } else if let d = c as? Double { d.isFinite ? d : "\(d)" } else { c.description }
        case .array(let a): a.map(json)
        case .dictionary(let d): d.mapValues(json)
        }
    }
}
