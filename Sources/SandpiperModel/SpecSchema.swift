import Foundation

/// JSON Schema (draft 2020-12) for cluster.yaml and policy files, generated from the decoder's key tables
/// (`SpecKeys`) for editors (yaml-language-server). It checks structure and value forms; cross-references (SLA
/// and host names, files) and limits between fields are the decoder's and validator's job.
public enum SpecSchema {
    public enum Document: String, CaseIterable, Sendable { case cluster, policy }

    /// Pretty-printed with sorted keys: the same bytes on every run (checked in under docs/schema/).
    public static func json(_ document: Document) -> String {
        let table = document == .cluster ? SpecKeys.cluster : SpecKeys.policy
        var root = object(table)
        root["$schema"] = "https://json-schema.org/draft/2020-12/schema"
        root["$id"] = "https://sandpiper.example/schema/\(document.rawValue).schema.json"
        root["title"] = document == .cluster ? "Sandpiper cluster spec (Clusters/<name>/cluster.yaml)"
            : "Sandpiper policy (Policies/<name>.yaml)"
        let data = try! JSONSerialization.data(withJSONObject: root, options: [.prettyPrinted, .sortedKeys,
                                                                               .withoutEscapingSlashes])
        return String(decoding: data, as: UTF8.self) + "\n"
    }

    static let number = #"[0-9]+(\.[0-9]+)?"#

    static func object(_ table: KeyTable) -> [String: Any] {
        var properties: [String: Any] = [:]
        for f in table.fields { properties[f.key] = schema(f.type) }
        var o: [String: Any] = ["type": "object", "properties": properties, "additionalProperties": false]
        if !table.required.isEmpty { o["required"] = table.required }
        return o
    }

    static func schema(_ type: FieldType) -> [String: Any] {
        switch type {
        case .name:
            return ["type": "string", "pattern": "^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$"]
        case .string:
            return ["type": "string"]
        case .int(let min, let max):
            return ["type": "integer", "minimum": min, "maximum": max]
        case .number(let min, let max):
            var s: [String: Any] = ["type": "number"]
            if let min { s["minimum"] = min }
            if let max { s["maximum"] = max }
            return s
        case .size:
            return ["type": "string", "pattern": "^\(number)(TiB|GiB|MiB|T|G|M)$",
                    "description": "a size: 512MiB, 2GiB, 1TiB"]
        case .bandwidth:
            return ["type": "string", "pattern": "^\(number)(Gbit|Mbit)$", "description": "a bandwidth: 1Gbit, 100Mbit"]
        case .duration:
            return ["type": "string", "pattern": "^\(number)(ms|s|m|h)$", "description": "a duration: 500ms, 10s, 5m, 1h"]
        case .fraction:
            return ["oneOf": [["type": "number", "exclusiveMinimum": 0, "maximum": 1],
                              ["type": "string", "pattern": "^\(number)%$"]],
                    "description": "a fraction: 0.75 or 75%"]
        case .bool:
            return ["type": "boolean"]
        case .oneOf(let values):
            return ["enum": values]
        case .stringMap:
            return ["type": "object", "additionalProperties": ["type": "string"]]
        case .argv:
            return ["type": "array", "items": ["type": "string"]]
        case .shares:
            return ["oneOf": [["enum": ["low", "normal", "high"]],
                              ["type": "integer", "minimum": 1, "maximum": 1_000_000]]]
        case .object(let table):
            return object(table)
        case .list(let item):
            return ["type": "array", "items": schema(item)]
        case .namedMap(let value):
            return ["type": "object", "propertyNames": schema(.name), "additionalProperties": schema(value)]
        case .either(let forms):
            return ["oneOf": forms.map(schema)]
        }
    }
}
