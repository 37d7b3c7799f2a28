/// The outcome of one parsing step: a value, a need for more bytes, or a refusal.
enum ParseStep<Value> {
    case done(Value)
    case needMore
    case invalid(HTTPParseError)
}
