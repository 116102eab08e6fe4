/// Placeholder: replaced by the libyaml-backed parser.
public enum YAMLParser {
    public static func parse(_ text: String, limits: YAMLLimits = .default) throws -> YAMLNode? {
        throw YAMLError("not implemented")
    }
}
