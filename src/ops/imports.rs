//! Importing subscribers from a CSV file, for every door (`newsletter import`, and the staff
//! area and API to come): the file is read here, once. Columns `email` (required), `name`,
//! `state` and `lists` (slugs separated by spaces or `|`), in any order and any case; UTF-8
//! with or without a byte-order mark; comma or semicolon (whichever the header uses); CRLF
//! or LF. Each problem names the line in the file where it is (not the record number), the
//! field and the reason. The set-based import itself is `store::imports`.

use serde::Serialize;

use crate::domain::{EmailAddress, ListSlug, SubscriberName, UsState};
use crate::store::imports::ImportRow;

/// A problem with one row of the file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RowError {
    pub line: usize,
    pub field: String,
    pub message: String,
}

/// A file read: the rows that parse, and a problem per bad field.
#[derive(Debug, Default)]
pub struct ReadCsv {
    /// Data records in the file (good and bad).
    pub records: usize,
    pub rows: Vec<ImportRow>,
    pub errors: Vec<RowError>,
}

/// The file cannot be read at all (no header, no `email` column).
#[derive(Debug, thiserror::Error)]
#[error("line {line}: {message}")]
pub struct FileError {
    pub line: usize,
    pub message: String,
}

/// Reads `bytes` as an import file. `known_lists`: the slugs a `lists` cell may name.
pub fn read_csv(bytes: &[u8], known_lists: &[String]) -> Result<ReadCsv, FileError> {
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    let header_line = bytes.split(|&b| b == b'\n').next().unwrap_or_default();
    let delimiter = if header_line.contains(&b';') && !header_line.contains(&b',') {
        b';'
    } else {
        b','
    };
    // The line in the file where a record starts: counted from its byte offset, since the csv
    // reader's own line count drifts with CRLF line ends and blank lines.
    let line_at = |byte: u64| {
        let mut start = usize::try_from(byte).unwrap_or(usize::MAX).min(bytes.len());
        // A record's offset may point at blank lines the reader skipped before it.
        while bytes.get(start).is_some_and(|b| matches!(b, b'\r' | b'\n')) {
            start += 1;
        }
        1 + bytes[..start].iter().filter(|&&b| b == b'\n').count()
    };
    let mut reader = csv::ReaderBuilder::new()
        .trim(csv::Trim::All)
        .delimiter(delimiter)
        .flexible(true)
        .from_reader(bytes);
    let headers: Vec<String> = reader
        .headers()
        .map_err(|e| FileError {
            line: 1,
            message: format!("reading the header: {e}"),
        })?
        .iter()
        .map(str::to_ascii_lowercase)
        .collect();
    let column = |name: &str| headers.iter().position(|h| h == name);
    let email_col = column("email").ok_or_else(|| FileError {
        line: 1,
        message: "no `email` column".into(),
    })?;
    let (name_col, state_col, lists_col) = (column("name"), column("state"), column("lists"));
    let mut read = ReadCsv::default();
    for record in reader.records() {
        read.records += 1;
        let record = match record {
            Ok(r) => r,
            Err(e) => {
                let line = e.position().map_or(0, |p| line_at(p.byte()));
                read.errors.push(RowError {
                    line,
                    field: "row".into(),
                    message: e.to_string(),
                });
                continue;
            }
        };
        let line = record.position().map_or(0, |p| line_at(p.byte()));
        let field = |col: Option<usize>| col.and_then(|c| record.get(c)).unwrap_or("");
        let mut problem = |field: &str, message: String| {
            read.errors.push(RowError {
                line,
                field: field.into(),
                message,
            });
        };
        let email = EmailAddress::parse(field(Some(email_col))).map_err(|e| problem("email", e));
        let name = SubscriberName::parse(field(name_col)).map_err(|e| problem("name", e));
        let state = UsState::parse(field(state_col)).map_err(|e| problem("state", e));
        let lists = row_lists(field(lists_col), known_lists).map_err(|e| problem("lists", e));
        if let (Ok(email), Ok(name), Ok(state), Ok(lists)) = (email, name, state, lists) {
            read.rows.push(ImportRow {
                line,
                email,
                name,
                state,
                lists,
            });
        }
    }
    Ok(read)
}

/// The slugs of a `lists` cell, each a known list.
fn row_lists(cell: &str, known: &[String]) -> Result<Vec<String>, String> {
    let mut slugs = Vec::new();
    for raw in cell.split([' ', '|']).filter(|s| !s.is_empty()) {
        let slug = ListSlug::parse(raw)?.as_str().to_owned();
        if !known.contains(&slug) {
            return Err(format!("No such list: {slug}."));
        }
        if !slugs.contains(&slug) {
            slugs.push(slug);
        }
    }
    Ok(slugs)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn known() -> Vec<String> {
        vec!["us-icc-updates".into(), "new-york-alliance".into()]
    }

    #[test]
    fn columns_in_any_order_with_a_bom_semicolons_and_crlf() {
        let file = "\u{FEFF}Lists;State;EMAIL;Name\r\nnew-york-alliance|us-icc-updates;ny;ana@example.org;Ana\r\n;;bo@example.org;\r\n";
        let read = read_csv(file.as_bytes(), &known()).unwrap();
        assert!(read.errors.is_empty(), "{:?}", read.errors);
        assert_eq!(read.records, 2);
        let ana = &read.rows[0];
        assert_eq!((ana.line, ana.email.as_str()), (2, "ana@example.org"));
        assert_eq!(ana.state.map(UsState::code), Some("NY"));
        assert_eq!(ana.lists, ["new-york-alliance", "us-icc-updates"]);
        assert_eq!(read.rows[1].line, 3);
        assert!(read.rows[1].lists.is_empty() && read.rows[1].name.is_none());
    }

    #[test]
    fn each_bad_field_is_named_with_the_line_it_is_on() {
        let file = "email,name,lists\n\nok@example.org,\"Two\nlines\",\nbad@,B,no-such-list\n";
        let read = read_csv(file.as_bytes(), &known()).unwrap();
        let found: Vec<(usize, &str)> = read
            .errors
            .iter()
            .map(|e| (e.line, e.field.as_str()))
            .collect();
        assert_eq!(found, [(3, "name"), (5, "email"), (5, "lists")]);
        assert!(read.rows.is_empty());
        assert_eq!(read.records, 2);
    }

    #[test]
    fn a_file_without_an_email_column_is_refused_as_a_whole() {
        let e = read_csv(b"name\nAna\n", &known()).unwrap_err();
        assert_eq!(e.line, 1);
        assert!(e.message.contains("email"));
    }
}
