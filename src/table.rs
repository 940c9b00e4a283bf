//! Compact, aligned text tables for tool output: what the model reads instead of JSON.

/// Render rows under a header with columns padded to the widest cell (capped), and at most
/// `max_rows` rows followed by a "… N more" line.
pub fn render(header: &[&str], rows: &[Vec<String>], max_rows: usize) -> String {
    const MAX_CELL: usize = 60;
    let clip = |s: &str| -> String {
        if s.chars().count() > MAX_CELL {
            let mut t: String = s.chars().take(MAX_CELL - 1).collect();
            t.push('…');
            t
        } else {
            s.to_string()
        }
    };
    let shown: Vec<Vec<String>> = rows
        .iter()
        .take(max_rows)
        .map(|r| r.iter().map(|c| clip(c)).collect())
        .collect();
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for r in &shown {
        for (i, c) in r.iter().enumerate() {
            if let Some(w) = widths.get_mut(i) {
                *w = (*w).max(c.chars().count());
            }
        }
    }
    let mut out = String::new();
    let line = |cells: Vec<&str>, out: &mut String| {
        let n = cells.len();
        for (i, c) in cells.into_iter().enumerate() {
            out.push_str(c);
            if i + 1 < n {
                let pad = widths.get(i).copied().unwrap_or(0) + 2 - c.chars().count();
                out.extend(std::iter::repeat_n(' ', pad));
            }
        }
        out.push('\n');
    };
    line(header.to_vec(), &mut out);
    for r in &shown {
        line(r.iter().map(String::as_str).collect(), &mut out);
    }
    if rows.len() > max_rows {
        out.push_str(&format!(
            "… {} more (narrow the query with a namespace or label selector)\n",
            rows.len() - max_rows
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn aligns_and_truncates() {
        let rows = vec![
            vec!["a".to_string(), "Running".to_string()],
            vec!["longer-name".to_string(), "Pending".to_string()],
            vec!["c".to_string(), "Failed".to_string()],
        ];
        let t = super::render(&["NAME", "STATUS"], &rows, 2);
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(lines[0], "NAME         STATUS");
        assert_eq!(lines[2], "longer-name  Pending");
        assert!(lines[3].starts_with("… 1 more"));
    }
}
