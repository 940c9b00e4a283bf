//! Splitting a markdown file into YAML frontmatter and body.

use crate::diag::Diagnostic;
use std::path::Path;

/// A markdown document with YAML frontmatter between `---` lines.
#[derive(Debug, Clone)]
pub struct Document<'a> {
    /// The YAML text between the fences.
    pub yaml: &'a str,
    /// Number of lines before the YAML text (the opening fence): add to YAML line numbers.
    pub yaml_line_offset: usize,
    /// The markdown body after the closing fence.
    pub body: &'a str,
}

/// Split `text`. A file without an opening `---` or without a closing one is an error that
/// says how the file must start.
pub fn split<'a>(path: &Path, text: &'a str) -> Result<Document<'a>, Diagnostic> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let first_end = text.find('\n').unwrap_or(text.len());
    if text[..first_end].trim_end() != "---" {
        return Err(Diagnostic::error(
            path,
            1,
            1,
            "missing YAML frontmatter: the file must start with a line `---`, then YAML, then `---`",
        ));
    }
    let rest = &text[(first_end + 1).min(text.len())..];
    let mut offset = 0;
    for line in rest.split_inclusive('\n') {
        if line.trim_end() == "---" {
            let yaml = &rest[..offset];
            let body = &rest[offset + line.len()..];
            return Ok(Document {
                yaml,
                yaml_line_offset: 1,
                body,
            });
        }
        offset += line.len();
    }
    Err(Diagnostic::error(
        path,
        1,
        1,
        "unterminated YAML frontmatter: add a closing `---` line after the YAML",
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_and_keeps_body() {
        let d = split(Path::new("a.md"), "---\nid: x\n---\n# Role\ntext\n").expect("split");
        assert_eq!(d.yaml, "id: x\n");
        assert_eq!(d.body, "# Role\ntext\n");
    }

    #[test]
    fn missing_fence_is_error() {
        let e = split(Path::new("a.md"), "id: x\n").expect_err("no fence");
        assert!(e.message.contains("must start"));
        let e = split(Path::new("a.md"), "---\nid: x\n").expect_err("unterminated");
        assert!(e.message.contains("closing"));
    }
}
