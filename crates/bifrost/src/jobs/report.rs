//! A job's per-file report, as records or as CSV for spreadsheets.

use mover_proto::api::{Destination, FileReport, FileStatus};
use mover_proto::destinations::DestinationKind;

use super::{row, JobError};
use crate::dest::object::keys;
use crate::App;

/// Job `id`'s per-file report, optionally only the files of one status.
pub async fn files(
    app: &App,
    id: &str,
    status: Option<FileStatus>,
) -> Result<Vec<FileReport>, JobError> {
    let job = row(app, id).await?;
    let Destination::Stored { id: dest, .. } = &job.destination else {
        return Ok(app.store.files(id.to_owned(), status).await?);
    };
    // Into object storage, a file's destination is its object key.
    let files = app.store.files_exact(id.to_owned(), status).await?;
    let Ok(d) = crate::destinations::get(app, dest).await else {
        return Ok(files.into_iter().map(|(f, _)| f).collect());
    };
    let backslash = d.kind != DestinationKind::AzureBlob;
    Ok(files
        .into_iter()
        .map(|(mut f, exact)| {
            if let Ok(k) = keys::key(&d.prefix, &exact, backslash) {
                f.destination = k.text;
            }
            f
        })
        .collect())
}

/// The report as CSV, a header line first, lines ending CR LF. `kind` is last: sheets made
/// from the columns before it still line up.
pub fn csv(files: Vec<FileReport>) -> String {
    let mut out = String::from("source,destination,size,status,reason,blake3,kind\r\n");
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
            csv_field(f.kind.as_deref().unwrap_or_default()),
        ];
        out.push_str(&fields.join(","));
        out.push_str("\r\n");
    }
    out
}

/// One CSV field, quoted, with a leading formula character defused.
pub fn csv_field(s: &str) -> String {
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
    use mover_proto::api::{FileReport, FileStatus};

    use super::{csv, csv_field};

    #[test]
    fn csv_fields_are_quoted_and_defused() {
        assert_eq!(csv_field("a,b"), "\"a,b\"");
        assert_eq!(csv_field("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(csv_field("=cmd()"), "\"'=cmd()\"");
    }

    #[test]
    fn the_kind_is_the_last_column() {
        let f = |status, reason: Option<&str>, kind: Option<&str>| FileReport {
            source: "/s/a".into(),
            destination: "a".into(),
            size: 3,
            status,
            reason: reason.map(Into::into),
            kind: kind.map(Into::into),
            blake3: None,
        };
        let out = csv(vec![
            f(FileStatus::Failed, Some("slow down"), Some("service")),
            f(FileStatus::Copied, None, None),
        ]);
        let lines: Vec<&str> = out.split("\r\n").collect();
        assert_eq!(
            lines[0],
            "source,destination,size,status,reason,blake3,kind"
        );
        assert_eq!(
            lines[1],
            "\"/s/a\",\"a\",3,failed,\"slow down\",,\"service\""
        );
        assert_eq!(lines[2], "\"/s/a\",\"a\",3,copied,\"\",,\"\"");
    }
}
