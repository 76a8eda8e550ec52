//! How the operator commands print: aligned tables for people, JSON for
//! scripts (`--json`), never both.

use std::time::{Duration, UNIX_EPOCH};

use serde_json::Value;

/// The output switch every operator command shares.
#[derive(clap::Args)]
pub struct OutputArgs {
    /// Print JSON (the admin API's own shapes) instead of a table.
    #[arg(long, global = true)]
    pub json: bool,
}

/// Prints `rows` under `headers`, each column as wide as its widest cell.
pub fn table(headers: &[&str], rows: &[Vec<String>]) {
    print!("{}", render(headers, rows));
}

fn render(headers: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: &mut dyn Iterator<Item = &str>| {
        let padded: Vec<String> = cells.zip(&widths).map(|(c, w)| format!("{c:<w$}")).collect();
        padded.join("  ").trim_end().to_owned() + "\n"
    };
    let mut out = line(&mut headers.iter().copied());
    for row in rows {
        out += &line(&mut row.iter().map(String::as_str));
    }
    out
}

/// Pretty JSON on stdout.
pub fn json(value: &Value) {
    println!("{}", serde_json::to_string_pretty(value).unwrap_or_default());
}

/// Milliseconds since the epoch as RFC 3339 (seconds), for tables.
pub fn time_ms(ms: i64) -> String {
    let Ok(ms) = u64::try_from(ms) else { return "-".to_owned() };
    humantime::format_rfc3339_seconds(UNIX_EPOCH + Duration::from_millis(ms)).to_string()
}

/// A JSON field as a table cell: strings bare, absent ones as `-`.
pub fn cell(v: &Value) -> String {
    match v {
        Value::Null => "-".to_owned(),
        Value::String(s) if s.is_empty() => "-".to_owned(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::render;

    #[test]
    fn columns_are_as_wide_as_their_widest_cell() {
        let rows = vec![vec!["dev.berth.test/a".to_owned(), "1.0.0".to_owned()], vec!["b".into(), "10.0.0".into()]];
        assert_eq!(
            render(&["NAME", "VERSION"], &rows),
            "NAME              VERSION\ndev.berth.test/a  1.0.0\nb                 10.0.0\n"
        );
    }
}
