//! How untrusted values are repeated in error messages: cut to a bounded number of
//! characters, with an ellipsis, so a hostile input cannot flood logs or problem details.
//! Callers format the result with `{:?}`, which escapes control characters.

/// At most `n` characters of `value`, then `…` if anything was cut.
pub(crate) fn shown_n(value: &str, n: usize) -> String {
    let mut out: String = value.chars().take(n).collect();
    if value.chars().nth(n).is_some() {
        out.push('…');
    }
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn cuts_long_values_only() {
        assert_eq!(shown_n("abc", 3), "abc");
        assert_eq!(shown_n("abcd", 3), "abc…");
        assert_eq!(shown_n("", 3), "");
        assert_eq!(shown_n("한국어입니다", 2), "한국…");
    }
}
