//! The HTTP connector every destination client is built with: object_store's reqwest client,
//! wrapped so each answer (retries included) is counted by destination kind and status into
//! `bifrost_destination_requests_total`. Typed, so rewording an error cannot move a metric.

use std::sync::Arc;

use object_store::client::{
    ClientOptions, HttpClient, HttpConnector, HttpError, HttpRequest, HttpResponse, HttpService,
    ReqwestConnector,
};

use crate::metrics::DestinationRequests;

/// Builds clients whose every request is counted under `kind`.
#[derive(Debug)]
pub struct Counted<C = ReqwestConnector> {
    kind: &'static str,
    requests: Arc<DestinationRequests>,
    inner: C,
}

impl Counted {
    /// Counts the real (reqwest) client's requests under `kind`.
    pub fn new(kind: &'static str, requests: Arc<DestinationRequests>) -> Self {
        Self {
            kind,
            requests,
            inner: ReqwestConnector::default(),
        }
    }
}

impl<C: HttpConnector> Counted<C> {
    /// Counts `inner`'s requests under `kind`.
    pub fn wrapping(kind: &'static str, requests: Arc<DestinationRequests>, inner: C) -> Self {
        Self {
            kind,
            requests,
            inner,
        }
    }
}

impl<C: HttpConnector> HttpConnector for Counted<C> {
    fn connect(&self, options: &ClientOptions) -> object_store::Result<HttpClient> {
        Ok(HttpClient::new(CountedService {
            kind: self.kind,
            requests: self.requests.clone(),
            inner: self.inner.connect(options)?,
        }))
    }
}

#[derive(Debug)]
struct CountedService {
    kind: &'static str,
    requests: Arc<DestinationRequests>,
    inner: HttpClient,
}

#[async_trait::async_trait]
impl HttpService for CountedService {
    async fn call(&self, req: HttpRequest) -> Result<HttpResponse, HttpError> {
        let res = self.inner.execute(req).await;
        let status = res.as_ref().ok().map(|r| r.status().as_u16());
        self.requests.record(self.kind, status);
        res
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    use object_store::aws::AmazonS3Builder;
    use object_store::client::HttpErrorKind;
    use object_store::path::Path;
    use object_store::{ObjectStoreExt, RetryConfig};

    use super::*;

    /// A service that answers every request with `status`, or fails to connect when `None`.
    #[derive(Debug)]
    struct Fixed(Option<u16>, Arc<AtomicUsize>);

    #[async_trait::async_trait]
    impl HttpService for Fixed {
        async fn call(&self, _req: HttpRequest) -> Result<HttpResponse, HttpError> {
            self.1.fetch_add(1, Ordering::Relaxed);
            match self.0 {
                Some(s) => Ok(http::Response::builder()
                    .status(s)
                    .body("<Error><Code>SlowDown</Code></Error>".to_owned().into())
                    .unwrap()),
                None => Err(HttpError::new(
                    HttpErrorKind::Connect,
                    std::io::Error::from(std::io::ErrorKind::ConnectionRefused),
                )),
            }
        }
    }

    #[derive(Debug)]
    struct FixedConnector(Option<u16>, Arc<AtomicUsize>);

    impl HttpConnector for FixedConnector {
        fn connect(&self, _: &ClientOptions) -> object_store::Result<HttpClient> {
            Ok(HttpClient::new(Fixed(self.0, self.1.clone())))
        }
    }

    async fn put_through(status: Option<u16>, requests: &Arc<DestinationRequests>) -> usize {
        let sent = Arc::new(AtomicUsize::new(0));
        let s3 = AmazonS3Builder::new()
            .with_endpoint("http://127.0.0.1:9")
            .with_allow_http(true)
            .with_region("us-east-1")
            .with_bucket_name("bkt")
            .with_access_key_id("a")
            .with_secret_access_key("s")
            .with_retry(RetryConfig {
                max_retries: 2,
                retry_timeout: Duration::from_secs(30),
                backoff: object_store::BackoffConfig {
                    init_backoff: Duration::from_millis(1),
                    max_backoff: Duration::from_millis(2),
                    base: 2.0,
                },
            })
            .with_http_connector(Counted::wrapping(
                "s3",
                requests.clone(),
                FixedConnector(status, sent.clone()),
            ))
            .build()
            .unwrap();
        assert!(s3.put(&Path::from("k"), "x".into()).await.is_err());
        sent.load(Ordering::Relaxed)
    }

    #[tokio::test]
    async fn every_answer_is_counted_by_kind_and_status_retries_included() {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let requests = Arc::new(DestinationRequests::default());
        let sent = put_through(Some(503), &requests).await;
        assert_eq!(sent, 3, "one request and two retries");
        assert_eq!(requests.count("s3", Some(503)), 3);
        let sent = put_through(Some(403), &requests).await;
        assert_eq!(sent, 1, "a 403 is not retried");
        assert_eq!(requests.count("s3", Some(403)), 1);
        let sent = put_through(None, &requests).await;
        assert_eq!(requests.count("s3", None), sent as u64);
        assert!(sent >= 1);
        assert_eq!(requests.count("azure_blob", Some(503)), 0);
    }
}
