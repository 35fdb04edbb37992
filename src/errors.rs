//! Errors as operators read them.

/// An error with its causes (`error sending request: … invalid peer certificate: UnknownIssuer`),
/// so a log line or a refusal says why, not only that something failed.
pub fn chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        let text = c.to_string();
        // Some errors repeat their source's text; say it once.
        if !out.ends_with(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        cause = c.source();
    }
    out
}
