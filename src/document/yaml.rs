//! YAML parsing (serde-saphyr) with diagnostics that carry file:line:col, and unknown-key warnings.

use crate::diag::{find_key_line, Diagnostic};
use serde::de::DeserializeOwned;
use std::collections::BTreeMap;
use std::path::Path;

/// Parse `text` (which starts at line `line_offset + 1` of `path`) into `T`.
/// Keys not in `known` produce warnings; a missing or malformed document is an error.
pub fn parse<T: DeserializeOwned>(
    path: &Path,
    text: &str,
    line_offset: usize,
    known: &[&str],
) -> Result<(T, Vec<Diagnostic>), Diagnostic> {
    let value: T = serde_saphyr::from_str(text).map_err(|e| {
        let (line, col) = e
            .location()
            .map(|l| (l.line() as usize, l.column() as usize))
            .unwrap_or((1, 1));
        let msg = e.to_string();
        // the crate renders a snippet after the first line; we print our own position
        let mut first = msg.lines().next().unwrap_or("invalid YAML").trim();
        // drop the crate's own "error: line N column M: " prefix; we print the position
        first = first.strip_prefix("error: ").unwrap_or(first);
        if first.starts_with("line ") {
            if let Some((_, rest)) = first.split_once(": ") {
                first = rest;
            }
        }
        Diagnostic::error(
            path,
            line + line_offset,
            col,
            format!("invalid YAML: {first}"),
        )
    })?;
    let mut warnings = Vec::new();
    if let Ok(keys) = serde_saphyr::from_str::<BTreeMap<String, serde::de::IgnoredAny>>(text) {
        for k in keys.keys() {
            if !known.contains(&k.as_str()) {
                let (line, col) = find_key_line(text, k).unwrap_or((1, 1));
                warnings.push(Diagnostic::warning(
                    path,
                    line + line_offset,
                    col,
                    format!(
                        "unknown key `{k}` (ignored; known keys: {})",
                        known.join(", ")
                    ),
                ));
            }
        }
    }
    Ok((value, warnings))
}

/// Where a required key is missing or invalid: the key's line if present, else the first line.
pub fn key_pos(text: &str, line_offset: usize, key: &str) -> (usize, usize) {
    let (l, c) = find_key_line(text, key).unwrap_or((1, 1));
    (l + line_offset, c)
}
