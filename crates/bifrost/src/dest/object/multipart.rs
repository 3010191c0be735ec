//! Multipart uploads into object storage: begun (or taken up again from the journal), each
//! verified part put and journaled as the service takes it, completed with the metadata.

use std::collections::BTreeMap;

use object_store::path::Path;
use object_store::{Attributes, PutMultipartOptions, PutPayload};

use super::journal::{Begun, Part};
use super::keys::{self, Key};
use super::service::failure;
use super::{Objects, Upload, Way, Writer};
use crate::dest::Resume;
use crate::failure::CopyError;

impl Objects {
    /// Begins `key`'s upload of `size` bytes modified at `modified` in parts of `part` bytes,
    /// or takes up the one the journal holds for this version of the file.
    pub(super) async fn begin_parts(
        &self,
        key: Key,
        path: Path,
        (size, modified, part): (u64, Option<&str>, u64),
    ) -> Result<(Upload, Resume), CopyError> {
        let version = modified.unwrap_or("");
        if let Some((begun, s, m)) = self.journal.find(&key.text).await? {
            if (s, m.as_str(), begun.part_size) == (size, version, part) {
                let kept = self.journal.parts(begun.row).await?;
                let cvs = kept.iter().map(|(start, p)| (*start, p.cv)).collect();
                let parts = tokio::sync::Mutex::new(kept);
                let way = Way::Parts { begun, parts };
                return Ok((Upload { key, path, way }, Resume::Parts(cvs)));
            }
            // Another version of the file: its parts are of no use.
            let _ = self
                .bucket
                .multipart
                .abort_multipart(&path, &begun.upload_id)
                .await;
            self.journal.end(begun.row).await?;
        }
        let mp = &self.bucket.multipart;
        // object_store refuses metadata when it begins an upload into Azure.
        let id = if self.bucket.kind == "azure_blob" {
            mp.create_multipart(&path).await
        } else {
            let attributes = keys::attributes(
                modified.and_then(crate::dest::parse_time),
                None,
                key.escaped,
            );
            let opts = PutMultipartOptions {
                attributes,
                ..Default::default()
            };
            mp.create_multipart_opts(&path, opts).await
        }
        .map_err(|e| failure("begin upload", e))?;
        let begun = self
            .journal
            .begin(&key.text, &id, (size, version, part))
            .await?;
        let way = Way::Parts {
            begun,
            parts: Default::default(),
        };
        Ok((Upload { key, path, way }, Resume::Parts(BTreeMap::new())))
    }

    /// Puts one verified part `(start, len, cv)` and journals it.
    pub(super) async fn put_part(
        &self,
        path: &Path,
        (begun, parts): (&Begun, &tokio::sync::Mutex<BTreeMap<u64, Part>>),
        writer: Writer,
        (start, len, cv): (u64, u64, [u8; 32]),
    ) -> Result<(), CopyError> {
        if writer.at != start || writer.len != len {
            return Err(CopyError::internal("a part's bytes do not match its range"));
        }
        let idx = usize::try_from(start / begun.part_size).map_err(CopyError::internal)?;
        let payload = PutPayload::from_iter(writer.chunks);
        let id = match &self.bucket.blobs {
            Some(blobs) => {
                blobs
                    .put_block(path.as_ref(), (begun.row, idx), payload)
                    .await?
            }
            None => self
                .bucket
                .multipart
                .put_part(path, &begun.upload_id, idx, payload)
                .await
                .map_err(|e| failure("put part", e))?,
        };
        let part = Part { cv, id };
        self.journal.part(begun.row, (start, len), &part).await?;
        parts.lock().await.insert(start, part);
        Ok(())
    }

    /// Completes an upload with every part, then sets its metadata: the BLAKE3 is known only
    /// now, and Azure takes no metadata at the start.
    pub(super) async fn complete(
        &self,
        (key, path): (&Key, &Path),
        begun: Begun,
        parts: BTreeMap<u64, Part>,
        size: u64,
        attributes: Attributes,
    ) -> Result<(), CopyError> {
        let want = size.div_ceil(begun.part_size);
        if parts.len() as u64 != want {
            return Err(CopyError::internal("an upload is missing parts"));
        }
        let ids = parts.into_values().map(|p| p.id).collect();
        let mp = &self.bucket.multipart;
        if let Err(e) = mp.complete_multipart(path, &begun.upload_id, ids).await {
            let e = failure("complete upload", e);
            if matches!(
                e,
                CopyError::Service {
                    transient: false,
                    ..
                }
            ) {
                // The service refused these parts (an upload expired or aborted): start over.
                let _ = mp.abort_multipart(path, &begun.upload_id).await;
                self.journal.end(begun.row).await?;
            }
            return Err(e);
        }
        self.journal.end(begun.row).await?;
        if let Some(m) = &self.bucket.metadata {
            m.set(&key.text, size, attributes).await?;
        }
        Ok(())
    }
}
