/// The two HTTP versions this module accepts; anything else is 505 (requests) or 502 (responses).
public enum HTTPVersion: Sendable, Equatable {
    case http10
    case http11
}
