//! The log of every request to an object store (`-v 6`, as the API server's requests are):
//! method, URL without its query, status and time; object_store sends them through this
//! connector.

use std::time::Instant;

use object_store::ClientOptions;
use object_store::client::{
    HttpClient, HttpConnector, HttpError, HttpRequest, HttpResponse, HttpService, ReqwestConnector,
};

/// The reqwest connector object_store uses by default, each request logged.
#[derive(Debug, Default)]
pub struct LoggedConnector;

impl HttpConnector for LoggedConnector {
    fn connect(&self, options: &ClientOptions) -> object_store::Result<HttpClient> {
        let inner = ReqwestConnector::default().connect(options)?;
        Ok(HttpClient::new(Logged { inner }))
    }
}

#[derive(Debug)]
struct Logged {
    inner: HttpClient,
}

#[async_trait::async_trait]
impl HttpService for Logged {
    async fn call(&self, request: HttpRequest) -> Result<HttpResponse, HttpError> {
        let method = request.method().clone();
        let url = without_query(&request.uri().to_string()).to_string();
        let started = Instant::now();
        let answer = self.inner.execute(request).await;
        let took = started.elapsed().as_millis();
        match &answer {
            Ok(response) => {
                log::debug!("{method} {url} {} in {took} ms", response.status().as_u16());
            }
            Err(err) => log::debug!("{method} {url} failed in {took} ms: {err}"),
        }
        answer
    }
}

/// The query of a presigned URL carries a signature (a credential for a while): never logged.
fn without_query(url: &str) -> &str {
    url.split_once('?').map_or(url, |(path, _)| path)
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_query_is_never_logged() {
        assert_eq!(
            super::without_query("https://s3.example.com/b/k?X-Amz-Signature=secret"),
            "https://s3.example.com/b/k"
        );
        assert_eq!(super::without_query("http://h/b/k"), "http://h/b/k");
    }
}
