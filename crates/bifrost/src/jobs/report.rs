//! A job's per-file report, as records or as CSV for spreadsheets.

use mover_proto::api::{FileReport, FileStatus};

use super::{row, JobError};
use crate::App;

/// Job `id`'s per-file report, optionally only the files of one status.
pub async fn files(
    app: &App,
    id: &str,
    status: Option<FileStatus>,
) -> Result<Vec<FileReport>, JobError> {
    row(app, id).await?;
    Ok(app.store.files(id.to_owned(), status).await?)
}

/// The report as CSV, a header line first, lines ending CR LF.
pub fn csv(files: Vec<FileReport>) -> String {
    let mut out = String::from("source,destination,size,status,reason,blake3\r\n");
    for f in files {
        let status = serde_json::to_value(f.status)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default();
        let fields = [
            csv_field(&f.source),
            csv_field(&f.destination),
            f.size.to_string(),
            status,
            csv_field(f.reason.as_deref().unwrap_or_default()),
            f.blake3.unwrap_or_default(),
        ];
        out.push_str(&fields.join(","));
        out.push_str("\r\n");
    }
    out
}

fn csv_field(s: &str) -> String {
    // Quote everything; a leading formula character is defused for spreadsheet apps.
    let s = if s.starts_with(['=', '+', '-', '@']) {
        format!("'{s}")
    } else {
        s.to_owned()
    };
    format!("\"{}\"", s.replace('"', "\"\""))
}

#[cfg(test)]
mod tests {
    use super::csv_field;

    #[test]
    fn csv_fields_are_quoted_and_defused() {
        assert_eq!(csv_field("a,b"), "\"a,b\"");
        assert_eq!(csv_field("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(csv_field("=cmd()"), "\"'=cmd()\"");
    }
}
