//! Header fields: one parsed field, and the lists some fields carry (RFC 9110 §5.6.1).

/// One header field, as received (the value's bytes unchanged, obs-text included).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    /// The field name as sent (compare with [`Header::is`]: names are case-insensitive).
    pub name: String,
    /// The field value, without the surrounding whitespace.
    pub value: Vec<u8>,
}

impl Header {
    /// Whether this field is `name` (ASCII case-insensitively).
    pub fn is(&self, name: &str) -> bool {
        self.name.eq_ignore_ascii_case(name)
    }

    /// The value as text, when it is ASCII (it is compared or parsed only then).
    pub fn text(&self) -> Option<&str> {
        std::str::from_utf8(&self.value)
            .ok()
            .filter(|text| text.is_ascii())
    }
}

/// The elements of every `name` field in `headers`, comma-separated lists combined,
/// trimmed, empty elements dropped (RFC 9110 §5.6.1), lower-cased. A value that is not
/// ASCII gives one element that matches nothing a caller looks for.
pub(crate) fn list_of(headers: &[Header], name: &str) -> Vec<String> {
    headers
        .iter()
        .filter(|header| header.is(name))
        .flat_map(|header| {
            let text = header.text().unwrap_or("\u{fffd}");
            text.split(',')
                .map(|element| element.trim_matches([' ', '\t']).to_ascii_lowercase())
                .filter(|element| !element.is_empty())
                .collect::<Vec<_>>()
        })
        .collect()
}

/// Copies `httparse`'s fields into owned ones.
pub(crate) fn owned(parsed: &[httparse::Header<'_>]) -> Vec<Header> {
    parsed
        .iter()
        .map(|header| Header {
            name: header.name.to_owned(),
            value: header.value.to_vec(),
        })
        .collect()
}

/// What `Content-Length` fields say: `Ok(None)` without one, the length when every one
/// (and every element of a list) gives the same decimal number (RFC 9112 §6.3 item 5),
/// an error otherwise.
pub(crate) fn content_length(headers: &[Header]) -> Result<Option<u64>, &'static str> {
    let mut length = None;
    for header in headers.iter().filter(|header| header.is("content-length")) {
        let text = header.text().ok_or("Content-Length is not a number")?;
        for element in text.split(',') {
            let element = element.trim_matches([' ', '\t']);
            // 1*DIGIT: no sign, no space inside, no hex; at most 19 digits fit in u64.
            if element.is_empty()
                || element.len() > 19
                || !element.bytes().all(|b| b.is_ascii_digit())
            {
                return Err("Content-Length is not a number");
            }
            let value: u64 = element
                .parse()
                .map_err(|_| "Content-Length is not a number")?;
            match length {
                Some(earlier) if earlier != value => {
                    return Err("Content-Length fields disagree");
                }
                _ => length = Some(value),
            }
        }
    }
    Ok(length)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(fields: &[(&str, &str)]) -> Vec<Header> {
        fields
            .iter()
            .map(|(name, value)| Header {
                name: (*name).to_owned(),
                value: value.as_bytes().to_vec(),
            })
            .collect()
    }

    #[test]
    fn lists_combine_across_fields_and_ignore_case() {
        let fields = headers(&[("Connection", "Keep-Alive, ,x-a"), ("connection", "close")]);
        assert_eq!(
            list_of(&fields, "CONNECTION"),
            ["keep-alive", "x-a", "close"]
        );
    }

    #[test]
    fn content_length_must_be_one_decimal_number() {
        assert_eq!(content_length(&headers(&[])), Ok(None));
        assert_eq!(
            content_length(&headers(&[("Content-Length", "42")])),
            Ok(Some(42))
        );
        // RFC 9112 §6.3 item 5: a list of one value repeated is that value.
        assert_eq!(
            content_length(&headers(&[
                ("Content-Length", "7, 7"),
                ("content-length", "7")
            ])),
            Ok(Some(7))
        );
        for bad in ["+5", "-1", "0x10", "5 5", "", "1e3", "99999999999999999999"] {
            assert!(
                content_length(&headers(&[("Content-Length", bad)])).is_err(),
                "{bad:?}"
            );
        }
        assert_eq!(
            content_length(&headers(&[
                ("Content-Length", "5"),
                ("Content-Length", "6")
            ])),
            Err("Content-Length fields disagree")
        );
    }
}
