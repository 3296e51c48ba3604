//! Where a field is written in a configuration file, for errors found after it was read
//! (a password file that does not exist, a key that cannot be used): the same
//! file:line:column: field an error found while reading it has; and every file a
//! configuration names, with its field (`Config::named_files`).

use std::ops::Range;
use std::path::{Path, PathBuf};

use toml::de::{DeTable, DeValue};
use toml::Spanned;

use crate::error::{ConfigError, Origin};
use crate::{Config, LogOutput};

impl ConfigError {
    /// An error about `field` (a dotted path as errors name fields: `auth.password_file`,
    /// `listen[1].tls.cert`) of the configuration read from `file`, placed at the line
    /// where the file sets it (no line for `<embedded>` or `<command line>`, or a field the
    /// file leaves at its default).
    pub fn about_field(file: &Path, field: &str, message: impl Into<String>) -> Self {
        let text = std::fs::read_to_string(file).unwrap_or_default();
        let origin = Origin { file, text: &text };
        ConfigError::new(&origin, message)
            .at(&origin, span_of(&text, field))
            .field(field)
    }
}

impl Config {
    /// Every file the configuration names, with the field that names it: what starting
    /// reads, and so what `check` must read too.
    pub fn named_files(&self) -> Vec<(String, PathBuf)> {
        let mut files = Vec::new();
        let mut add = |field: String, path: Option<&PathBuf>| {
            if let Some(path) = path {
                files.push((field, path.clone()));
            }
        };
        for (index, listener) in self.listeners.iter().enumerate() {
            if let Some(tls) = &listener.tls {
                add(format!("listen[{index}].tls.cert"), Some(&tls.cert));
                add(format!("listen[{index}].tls.key"), Some(&tls.key));
                add(
                    format!("listen[{index}].tls.client_ca"),
                    tls.client_ca.as_ref(),
                );
            }
        }
        if let Some(crate::AuthBackend::PasswordFile { path, groups, .. }) = &self.auth.backend {
            add("auth.password_file".to_owned(), Some(path));
            add("auth.group_file".to_owned(), groups.as_ref());
        }
        add("gssapi.keytab".to_owned(), self.gssapi.keytab.as_ref());
        if let LogOutput::File(path) = &self.log.output {
            add("log.output".to_owned(), Some(path));
        }
        if let Some(admin) = &self.admin {
            add("admin.token_file".to_owned(), admin.token_file.as_ref());
            if let Some(tls) = &admin.tls {
                add("admin.tls.cert".to_owned(), Some(&tls.cert));
                add("admin.tls.key".to_owned(), Some(&tls.key));
                add("admin.tls.client_ca".to_owned(), tls.client_ca.as_ref());
            }
        }
        for (index, group) in self.upstreams.iter().enumerate() {
            add(format!("upstream[{index}].tls.ca"), group.tls.ca.as_ref());
            add(
                format!("upstream[{index}].tls.cert"),
                group.tls.cert.as_ref(),
            );
            add(format!("upstream[{index}].tls.key"), group.tls.key.as_ref());
        }
        files
    }
}

/// The byte range of `field`'s value in `text`, when the text sets it.
fn span_of(text: &str, field: &str) -> Option<Range<usize>> {
    let root = DeTable::parse(text).ok()?;
    let mut table: &DeTable<'_> = root.get_ref();
    let mut found: Option<&Spanned<DeValue<'_>>> = None;
    for segment in field.split('.') {
        if let Some(value) = found {
            let DeValue::Table(inner) = value.get_ref() else {
                return None;
            };
            table = inner;
        }
        let (name, index) = match segment.split_once('[') {
            Some((name, rest)) => (name, rest.strip_suffix(']')?.parse::<usize>().ok()),
            None => (segment, None),
        };
        let value = table
            .iter()
            .find(|(key, _)| key.get_ref().as_ref() == name)
            .map(|(_, value)| value)?;
        found = Some(match index {
            Some(index) => match value.get_ref() {
                DeValue::Array(items) => items.get(index)?,
                _ => return None,
            },
            None => value,
        });
    }
    found.map(Spanned::span)
}

/// The dotted path, as errors name fields, of the key written at `offset` of `text`
/// (`auth.pasword_file`, `listen[1].sock4`, `listen[0].tls.kye` in an inline table, a
/// dotted key's whole path), found in the parsed document rather than by reading headers.
pub(crate) fn field_at(text: &str, offset: usize) -> Option<String> {
    let root = DeTable::parse(text).ok()?;
    let mut path = Vec::new();
    find_key(root.get_ref(), offset, &mut path).then(|| path.join("."))
}

/// Depth first: whether the key at `offset` is in `table`, its path pushed onto `path`.
fn find_key(table: &DeTable<'_>, offset: usize, path: &mut Vec<String>) -> bool {
    for (key, value) in table.iter() {
        let name: &str = key.get_ref().as_ref();
        if key.span().start == offset {
            path.push(name.to_owned());
            return true;
        }
        match value.get_ref() {
            DeValue::Table(inner) => {
                path.push(name.to_owned());
                if find_key(inner, offset, path) {
                    return true;
                }
                path.pop();
            }
            DeValue::Array(items) => {
                for (index, item) in items.iter().enumerate() {
                    if let DeValue::Table(inner) = item.get_ref() {
                        path.push(format!("{name}[{index}]"));
                        if find_key(inner, offset, path) {
                            return true;
                        }
                        path.pop();
                    }
                }
            }
            _ => {}
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = "# a comment\n[auth]\npassword_file = \"users\"\n\n[[listen]]\naddress = \"127.0.0.1:1080\"\n\n[[listen]]\naddress = \"127.0.0.1:1081\"\ntls = { cert = \"c.pem\", key = \"k.pem\" }\n";

    fn line_of(field: &str) -> Option<usize> {
        let origin = Origin {
            file: Path::new("x"),
            text: TEXT,
        };
        span_of(TEXT, field).map(|span| origin.line_column(span.start).0)
    }

    #[test]
    fn the_key_at_an_offset_is_named_as_errors_name_it() {
        let text = "top = 1\nother.dotted = 2\n[auth]\nx = 1\n[[listen]]\na = 1\n[[listen]]\nb = 1\ntls = { kye = 1 }\n[[upstream]]\nchains = [\n  [\"socks5://u:p@h:1\"],\n]\nmax_failure = 3\n";
        let at = |key: &str| field_at(text, text.find(key).unwrap());
        assert_eq!(at("top"), Some("top".to_owned()));
        assert_eq!(at("dotted"), Some("other.dotted".to_owned()));
        assert_eq!(at("x = "), Some("auth.x".to_owned()));
        assert_eq!(at("a = "), Some("listen[0].a".to_owned()));
        assert_eq!(at("b = "), Some("listen[1].b".to_owned()));
        assert_eq!(at("kye"), Some("listen[1].tls.kye".to_owned()));
        // A line in a multi-line array is no header: the key after it is the upstream's.
        assert_eq!(
            at("max_failure"),
            Some("upstream[0].max_failure".to_owned())
        );
    }

    #[test]
    fn fields_are_found_where_the_file_sets_them() {
        assert_eq!(line_of("auth.password_file"), Some(3));
        assert_eq!(line_of("listen[1].address"), Some(9));
        assert_eq!(line_of("listen[1].tls.key"), Some(10));
        assert_eq!(line_of("listen[0].tls.key"), None);
        assert_eq!(line_of("auth.group_file"), None);
        assert_eq!(line_of("listen[7].address"), None);
    }
}
