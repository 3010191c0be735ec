//! A job's filters, compiled: which files and folders a walk takes.

use globset::{Glob, GlobSet, GlobSetBuilder};
use mover_proto::api::Filters;
use mover_proto::Entry;

use crate::raw_path::RawPath;

/// The compiled form of [`Filters`].
#[derive(Debug, Default)]
pub struct Filter {
    include: Option<GlobSet>,
    exclude: Option<GlobSet>,
    skip_hidden: bool,
    modified_after: Option<time::OffsetDateTime>,
}

fn glob_set(patterns: &[String]) -> Result<Option<GlobSet>, String> {
    if patterns.is_empty() {
        return Ok(None);
    }
    let mut b = GlobSetBuilder::new();
    for p in patterns {
        b.add(Glob::new(p.trim()).map_err(|e| format!("pattern {p:?}: {e}"))?);
    }
    b.build().map(Some).map_err(|e| e.to_string())
}

/// Parses RFC 3339, or a plain date (midnight UTC).
fn parse_time(s: &str) -> Option<time::OffsetDateTime> {
    use time::format_description::well_known::Rfc3339;
    let s = s.trim();
    time::OffsetDateTime::parse(s, &Rfc3339).ok().or_else(|| {
        let fmt = time::macros::format_description!("[year]-[month]-[day]");
        time::Date::parse(s, &fmt)
            .ok()
            .map(|d| d.midnight().assume_utc())
    })
}

impl Filter {
    /// Compiles the filters; a bad pattern or date is a readable error.
    pub fn new(f: &Filters) -> Result<Self, String> {
        let modified_after = match &f.modified_after {
            Some(s) if !s.trim().is_empty() => Some(parse_time(s).ok_or_else(|| {
                format!("modified_after {s:?} is not a date (YYYY-MM-DD) or RFC 3339 time")
            })?),
            _ => None,
        };
        Ok(Self {
            include: glob_set(&f.include)?,
            exclude: glob_set(&f.exclude)?,
            skip_hidden: f.skip_hidden,
            modified_after,
        })
    }

    fn hidden(&self, name: &RawPath) -> bool {
        self.skip_hidden && name.0.first() == Some(&b'.')
    }

    fn excluded(&self, rel: &str, name: &str) -> bool {
        self.exclude
            .as_ref()
            .is_some_and(|g| g.is_match(rel) || g.is_match(name))
    }

    /// Whether to walk into a folder.
    pub(super) fn takes_dir(&self, rel: &str, name: &RawPath) -> bool {
        !self.hidden(name) && !self.excluded(rel, &name.lossy())
    }

    /// Whether to copy a file.
    pub(super) fn takes_file(&self, rel: &str, name: &RawPath, entry: &Entry) -> bool {
        let lossy = name.lossy();
        if self.hidden(name) || self.excluded(rel, &lossy) {
            return false;
        }
        if let Some(inc) = &self.include {
            if !(inc.is_match(rel) || inc.is_match(&lossy)) {
                return false;
            }
        }
        match (
            self.modified_after,
            entry.modified.as_deref().and_then(parse_time),
        ) {
            (Some(after), Some(m)) => m >= after,
            (Some(_), None) => false,
            _ => true,
        }
    }
}

#[cfg(test)]
mod tests {
    use mover_proto::EntryKind;

    use super::*;

    fn entry(modified: &str) -> Entry {
        Entry {
            name: "x".into(),
            name_b64: None,
            kind: EntryKind::File,
            size: 1,
            modified: Some(modified.into()),
        }
    }

    #[test]
    fn filters() {
        let f = Filter::new(&Filters {
            include: vec!["*.txt".into()],
            exclude: vec!["**/tmp/**".into(), "secret*".into()],
            skip_hidden: true,
            modified_after: Some("2026-01-01".into()),
        })
        .unwrap();
        let new = entry("2026-03-01T00:00:00Z");
        let old = entry("2025-12-31T23:59:59Z");
        let n = RawPath::new;
        assert!(f.takes_file("a/b.txt", &n("b.txt"), &new));
        assert!(!f.takes_file("a/b.txt", &n("b.txt"), &old));
        assert!(!f.takes_file("a/b.doc", &n("b.doc"), &new));
        assert!(!f.takes_file("a/.b.txt", &n(".b.txt"), &new));
        assert!(!f.takes_file("a/secret.txt", &n("secret.txt"), &new));
        assert!(!f.takes_file("x/tmp/b.txt", &n("b.txt"), &new));
        assert!(!f.takes_dir(".git", &n(".git")));
        assert!(f.takes_dir("docs", &n("docs")));
        assert!(Filter::new(&Filters {
            include: vec!["[".into()],
            ..Filters::default()
        })
        .is_err());
        assert!(Filter::new(&Filters {
            modified_after: Some("yesterday".into()),
            ..Filters::default()
        })
        .is_err());
    }
}
