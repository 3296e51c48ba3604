//! Man pages and shell completions, made from the same definitions as `--help`:
//! `socksgate(1)` and a page per command from the command-line definition (clap_mangen),
//! `socksgate.toml(5)` from the configuration reference (`docs/configuration.md`, embedded).

use std::io::Write;
use std::path::Path;
use std::process::ExitCode;

use clap::CommandFactory;

use crate::exit;

/// The configuration reference, as written for people.
const REFERENCE: &str = include_str!("../../../docs/configuration.md");

/// Writes the completion script for `shell` to standard output.
pub(crate) fn completions(shell: clap_complete::Shell) -> ExitCode {
    let mut command = crate::Cli::command();
    clap_complete::generate(shell, &mut command, "socksgate", &mut std::io::stdout());
    ExitCode::SUCCESS
}

/// Writes every man page into `dir`.
pub(crate) fn man(dir: &Path) -> ExitCode {
    let written = std::fs::create_dir_all(dir)
        .and_then(|()| clap_mangen::generate_to(crate::Cli::command(), dir))
        .and_then(|()| std::fs::write(dir.join("socksgate.toml.5"), config_page(REFERENCE)));
    match written {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            let _ = writeln!(std::io::stderr(), "error: {}: {error}", dir.display());
            exit::code(exit::RUNTIME)
        }
    }
}

/// `socksgate.toml(5)` from the reference's Markdown: headings become sections, `key` lines
/// followed by `: text` become tagged paragraphs, the rest paragraphs.
fn config_page(markdown: &str) -> String {
    let version = env!("CARGO_PKG_VERSION");
    let mut page = format!(
        ".TH SOCKSGATE.TOML 5 \"\" \"socksgate {version}\" \"File Formats\"\n\
         .SH NAME\nsocksgate.toml \\- the socksgate server's configuration file\n"
    );
    let mut in_paragraph = false;
    for line in markdown.lines() {
        if line.starts_with("# ") {
            page.push_str(".SH DESCRIPTION\n");
            in_paragraph = false;
        } else if let Some(section) = line.strip_prefix("## ") {
            page.push_str(&format!(".SH \"{}\"\n", roff_text(&section.to_uppercase())));
            in_paragraph = false;
        } else if let Some(definition) = line.strip_prefix(": ") {
            page.push_str(&roff_line(&roff_text(definition)));
        } else if let Some(more) = line.strip_prefix("  ") {
            page.push_str(&roff_line(&roff_text(more)));
        } else if line.starts_with('`') && line.ends_with('`') {
            page.push_str(&format!(".TP\n{}\n", roff_text(line)));
            in_paragraph = false;
        } else if line.trim().is_empty() {
            in_paragraph = false;
        } else {
            if !in_paragraph {
                page.push_str(".PP\n");
                in_paragraph = true;
            }
            page.push_str(&roff_line(&roff_text(line)));
        }
    }
    page.push_str(".SH SEE ALSO\n\\fBsocksgate\\fR(1), \\fBsocksgate-serve\\fR(1)\n");
    page
}

/// A line of text: a leading dot or quote would be read as a request.
fn roff_line(text: &str) -> String {
    if text.starts_with('.') || text.starts_with('\'') {
        format!("\\&{text}\n")
    } else {
        format!("{text}\n")
    }
}

/// Inline Markdown in roff: `code` in bold, [text](link) as its text, backslashes and
/// hyphens escaped.
fn roff_text(markdown: &str) -> String {
    let mut out = String::new();
    let mut bold = false;
    for character in without_links(markdown).chars() {
        match character {
            '`' => {
                out.push_str(if bold { "\\fR" } else { "\\fB" });
                bold = !bold;
            }
            '\\' => out.push_str("\\e"),
            '-' => out.push_str("\\-"),
            other => out.push(other),
        }
    }
    if bold {
        out.push_str("\\fR");
    }
    out
}

/// `[text](target)` → `text`; other brackets stay.
fn without_links(markdown: &str) -> String {
    let mut out = String::new();
    let mut rest = markdown;
    while let Some(open) = rest.find('[') {
        let after = &rest[open + 1..];
        let link = after.find("](").and_then(|close| {
            let text = &after[..close];
            let target = &after[close + 2..];
            let end = target.find(')')?;
            (!text.contains('[')).then(|| (text, close + 2 + end + 1))
        });
        match link {
            Some((text, used)) => {
                out.push_str(&rest[..open]);
                out.push_str(text);
                rest = &after[used..];
            }
            None => {
                out.push_str(&rest[..=open]);
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_become_their_text_and_tables_keep_their_brackets() {
        assert_eq!(
            without_links("see [policy.md](policy.md)."),
            "see policy.md."
        );
        assert_eq!(without_links("## [[listen]]"), "## [[listen]]");
        assert_eq!(roff_text("`a-b` [x](y)"), "\\fBa\\-b\\fR x");
    }
}
