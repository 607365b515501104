//! How errors are written: one line, each cause once. A leaf: it names no other module, so any
//! module may use it without pointing up the layers.

/// An error and its causes on one line, `outer: inner: ...`, skipping causes whose text the
/// outer message already repeats (the Azure SDK embeds its inner message).
pub fn error_chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut line = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        let text = cause.to_string();
        if !line.contains(&text) {
            line.push_str(": ");
            line.push_str(&text);
        }
        source = cause.source();
    }
    line.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::error_chain;

    #[derive(Debug, thiserror::Error)]
    #[error("reading /x")]
    struct Outer(#[source] std::io::Error);

    #[test]
    fn error_chain_joins_causes_once_on_one_line() {
        let outer = Outer(std::io::Error::other("connection\nrefused"));
        assert_eq!(error_chain(&outer), "reading /x: connection refused");
        let repeated = Outer(std::io::Error::other("reading /x"));
        assert_eq!(error_chain(&repeated), "reading /x");
    }
}
