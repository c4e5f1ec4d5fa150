//! Query strings for the fakes: pairs in order with repeated keys kept, `+` a space, decoded by
//! `form_urlencoded`; the strict form refuses a malformed `%` escape as Go's `url.ParseQuery`
//! (the API server's parser) does.

/// A `%` not followed by two hex digits.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid URL escape in {0:?}")]
pub struct MalformedQuery(pub String);

/// Decodes every pair, leniently: a malformed escape stays as text.
pub fn pairs(raw: &str) -> Vec<(String, String)> {
    form_urlencoded::parse(raw.as_bytes())
        .into_owned()
        .collect()
}

/// Decodes every pair, refusing malformed escapes.
pub fn strict_pairs(raw: &str) -> Result<Vec<(String, String)>, MalformedQuery> {
    let bytes = raw.as_bytes();
    for (at, byte) in bytes.iter().enumerate() {
        let escape_ok = bytes
            .get(at + 1..at + 3)
            .is_some_and(|hex| hex.iter().all(u8::is_ascii_hexdigit));
        if *byte == b'%' && !escape_ok {
            return Err(MalformedQuery(raw.to_string()));
        }
    }
    Ok(pairs(raw))
}

/// Encodes pairs as a query string.
pub fn encode<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> String {
    form_urlencoded::Serializer::new(String::new())
        .extend_pairs(pairs)
        .finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_repeated_keys_in_order_and_refuses_bad_escapes_when_strict() {
        let raw = "command=sh&command=-c&command=echo+a%26b&stdin=true";
        assert_eq!(
            pairs(raw),
            [
                ("command", "sh"),
                ("command", "-c"),
                ("command", "echo a&b"),
                ("stdin", "true")
            ]
            .map(|(k, v)| (k.to_string(), v.to_string()))
        );
        assert_eq!(strict_pairs(raw).unwrap(), pairs(raw));
        assert!(strict_pairs("command=%zz").is_err());
        assert!(strict_pairs("command=%4").is_err());
        assert_eq!(pairs("a=%zz"), [("a".to_string(), "%zz".to_string())]);
        assert_eq!(encode([("label", "a b"), ("x", "&")]), "label=a+b&x=%26");
    }
}
