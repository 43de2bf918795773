//! Text the experiments print (Markdown-style tables, `## ` headings) turned into HTML.

use std::fmt::Write as _;

use super::style::esc;

/// A text block of the experiments' printed output as HTML: `## ` lines become headings,
/// runs of `|`-delimited lines become a table (the first row its header, `|---|` rows
/// dropped), other lines paragraphs; everything escaped.
pub fn text_block(t: &str) -> String {
    let mut s = String::new();
    let mut rows: Vec<Vec<String>> = Vec::new();
    for line in t.lines() {
        let l = line.trim();
        if let Some(cells) = l.strip_prefix('|') {
            let cells: Vec<String> = cells
                .trim_end_matches('|')
                .split('|')
                .map(|c| c.trim().to_string())
                .collect();
            let rule = cells
                .iter()
                .all(|c| !c.is_empty() && c.chars().all(|ch| matches!(ch, '-' | ':')));
            if !rule {
                rows.push(cells);
            }
            continue;
        }
        flush(&mut s, &mut rows);
        if let Some(h) = l.strip_prefix("## ") {
            let _ = write!(s, "<h3>{}</h3>", esc(h));
        } else if !l.is_empty() {
            let _ = write!(s, "<p>{}</p>", esc(l));
        }
    }
    flush(&mut s, &mut rows);
    s
}

/// Writes the collected rows as a table and clears them.
fn flush(s: &mut String, rows: &mut Vec<Vec<String>>) {
    if rows.is_empty() {
        return;
    }
    s.push_str("<table>");
    for (i, r) in rows.iter().enumerate() {
        let tag = if i == 0 { "th" } else { "td" };
        s.push_str("<tr>");
        for c in r {
            let _ = write!(s, "<{tag}>{}</{tag}>", esc(c));
        }
        s.push_str("</tr>");
    }
    s.push_str("</table>");
    rows.clear();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn printed_tables_become_html_tables() {
        let h = text_block("## a <b>\nnote\n| x | y |\n|---|---|\n| 1 | 2 |\nafter\n");
        assert_eq!(
            h,
            "<h3>a &lt;b&gt;</h3><p>note</p><table><tr><th>x</th><th>y</th></tr><tr><td>1</td><td>2</td></tr></table><p>after</p>"
        );
    }
}
