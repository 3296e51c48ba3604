//! Fields whose value is one of a few words (`action = "allow"`, `log = "warn"`): each field
//! has a table of its words, and every such error lists them the same way.

use toml::Spanned;

use crate::error::{ConfigError, Origin};

/// The value `text` stands for in `words`; otherwise `expected "a", "b" or "c"`.
pub(crate) fn one_of<T: Copy>(text: &str, words: &[(&str, T)]) -> Result<T, String> {
    words
        .iter()
        .find(|(word, _)| *word == text)
        .map(|(_, value)| *value)
        .ok_or_else(|| expected(words))
}

/// `expected "a", "b" or "c"`.
pub(crate) fn expected<T>(words: &[(&str, T)]) -> String {
    let quoted: Vec<String> = words.iter().map(|(word, _)| format!("{word:?}")).collect();
    match quoted.split_last() {
        Some((last, [])) => format!("expected {last}"),
        Some((last, others)) => format!("expected {} or {last}", others.join(", ")),
        None => "expected nothing".to_owned(),
    }
}

/// A field's word, or an error at the value naming the field and the words it takes.
pub(crate) fn keyword<T: Copy>(
    value: &Spanned<String>,
    field: &str,
    words: &[(&str, T)],
    origin: &Origin<'_>,
) -> Result<T, ConfigError> {
    one_of(value.get_ref(), words).map_err(|message| {
        ConfigError::new(origin, message)
            .at(origin, Some(value.span()))
            .field(field)
    })
}

/// The word for `value` in `words` (the inverse of [`one_of`]).
pub(crate) fn word_for<T: PartialEq>(
    value: &T,
    words: &[(&'static str, T)],
) -> Option<&'static str> {
    words
        .iter()
        .find(|(_, known)| known == value)
        .map(|(word, _)| *word)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_words_are_listed_as_a_person_would() {
        assert_eq!(expected(&[("on", 1)]), "expected \"on\"");
        assert_eq!(expected(&[("a", 1), ("b", 2)]), "expected \"a\" or \"b\"");
        assert_eq!(
            one_of("d", &[("a", 1), ("b", 2), ("c", 3)]),
            Err("expected \"a\", \"b\" or \"c\"".to_owned())
        );
        assert_eq!(one_of("b", &[("a", 1), ("b", 2)]), Ok(2));
        assert_eq!(word_for(&2, &[("a", 1), ("b", 2)]), Some("b"));
    }
}
