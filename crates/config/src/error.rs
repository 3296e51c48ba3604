//! Configuration errors that say where: file, line, column and field.

use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};

/// A configuration that cannot be used, and where the problem is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// The file (or `<embedded>`, `<command line>`).
    pub file: PathBuf,
    /// 1-based line and column of the offending text, when known.
    pub position: Option<(usize, usize)>,
    /// The dotted path of the field, when known (`listen[1].address`).
    pub field: Option<String>,
    /// What is wrong, for a person.
    pub message: String,
}

impl ConfigError {
    pub(crate) fn new(origin: &Origin<'_>, message: impl Into<String>) -> Self {
        Self {
            file: origin.file.to_path_buf(),
            position: None,
            field: None,
            message: message.into(),
        }
    }

    pub(crate) fn at(mut self, origin: &Origin<'_>, span: Option<Range<usize>>) -> Self {
        self.position = span.map(|span| origin.line_column(span.start));
        self
    }

    pub(crate) fn field(mut self, field: impl Into<String>) -> Self {
        self.field = Some(field.into());
        self
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if let Some((line, column)) = self.position {
            write!(f, ":{line}:{column}")?;
        }
        if let Some(field) = &self.field {
            write!(f, ": field `{field}`")?;
        }
        write!(f, ": {}", self.message)
    }
}

impl std::error::Error for ConfigError {}

/// Where configuration text came from, to turn byte offsets into lines and columns.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Origin<'a> {
    pub(crate) file: &'a Path,
    pub(crate) text: &'a str,
}

impl Origin<'_> {
    pub(crate) fn line_column(&self, offset: usize) -> (usize, usize) {
        let before = &self.text[..offset.min(self.text.len())];
        let line = before.matches('\n').count() + 1;
        let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
        (line, column)
    }
}
