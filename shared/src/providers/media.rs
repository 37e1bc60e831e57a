//! Fetching a provider's file into a [`MediaSink`]: one streamed GET, whatever the provider. Each module
//! builds the request (its URL, its authorization header, through its own client and outbound policy);
//! this reads the answer chunk by chunk into the sink, so memory stays flat whatever the size.

use std::time::Duration;

use crate::ports::channel::FetchError;
use crate::ports::media::MediaSink;
use crate::providers::{failure_description, http_failure, retry_after_header, transport_error};
use crate::secret::Secret;

/// One download with all its bytes: far longer than an API call (25 MiB over a slow link), short enough
/// that a stuck one frees its worker.
pub(crate) const DOWNLOAD_TIMEOUT: Duration = Duration::from_secs(120);

/// Sends `request` and streams a 2xx answer's body into `sink`; answers the declared `Content-Type`.
/// A declared length past the sink's limit stops before any byte is read. `secrets` are redacted from
/// anything the provider says back.
pub(crate) async fn download(
    request: reqwest::RequestBuilder,
    secrets: &[&Secret],
    sink: &mut MediaSink,
) -> Result<Option<String>, FetchError> {
    let mut response = request.timeout(DOWNLOAD_TIMEOUT).send().await.map_err(transport_error)?;
    let status = response.status().as_u16();
    if !response.status().is_success() {
        let retry_after = retry_after_header(response.headers());
        let description = failure_description(status, None, secrets);
        return Err(http_failure(status, description, retry_after, None).into());
    }
    if response.content_length().is_some_and(|length| length > sink.limit()) {
        return Err(FetchError::TooLarge { limit: sink.limit() });
    }
    let declared = response
        .headers()
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .map(str::to_owned);
    while let Some(chunk) = response.chunk().await.map_err(transport_error)? {
        sink.write(&chunk).await?;
    }
    sink.finish().await?;
    Ok(declared)
}

/// The plain GET of a link the provider's payload carried (VK, Viber, edna, Avito): no credentials.
pub(crate) async fn download_link(
    http: &reqwest::Client,
    url: &str,
    sink: &mut MediaSink,
) -> Result<Option<String>, FetchError> {
    let url = reqwest::Url::parse(url)
        .map_err(|_| FetchError::Unsupported("the attachment's link is not a URL".into()))?;
    if !matches!(url.scheme(), "https" | "http") {
        return Err(FetchError::Unsupported("the attachment's link is not http(s)".into()));
    }
    download(http.get(url), &[], sink).await
}

#[cfg(test)]
mod tests {
    use wiremock::matchers::{method, path};
    use wiremock::{Mock, MockServer, ResponseTemplate};

    use super::*;
    use crate::error::ProviderError;

    #[tokio::test]
    async fn a_link_streams_into_the_sink_and_refuses_what_is_too_large() {
        let server = MockServer::start().await;
        Mock::given(method("GET"))
            .and(path("/small.pdf"))
            .respond_with(
                ResponseTemplate::new(200).set_body_raw(b"%PDF-1.7 tiny".to_vec(), "application/pdf"),
            )
            .mount(&server)
            .await;
        Mock::given(method("GET"))
            .and(path("/big.bin"))
            .respond_with(ResponseTemplate::new(200).set_body_bytes(vec![7u8; 4096]))
            .mount(&server)
            .await;
        Mock::given(method("GET"))
            .and(path("/gone"))
            .respond_with(ResponseTemplate::new(404))
            .mount(&server)
            .await;
        Mock::given(method("GET"))
            .and(path("/busy"))
            .respond_with(ResponseTemplate::new(503))
            .mount(&server)
            .await;
        let http = reqwest::Client::new();

        let mut sink = MediaSink::new(1024).await.expect("sink");
        let declared = download_link(&http, &format!("{}/small.pdf", server.uri()), &mut sink).await;
        assert_eq!(declared, Ok(Some("application/pdf".into())));
        assert_eq!(std::fs::read(sink.path()).expect("file"), b"%PDF-1.7 tiny");

        let mut sink = MediaSink::new(1024).await.expect("sink");
        let big = download_link(&http, &format!("{}/big.bin", server.uri()), &mut sink).await;
        assert_eq!(big, Err(FetchError::TooLarge { limit: 1024 }));

        let mut sink = MediaSink::new(1024).await.expect("sink");
        let gone = download_link(&http, &format!("{}/gone", server.uri()), &mut sink).await;
        assert!(matches!(gone, Err(FetchError::Provider(ProviderError::Rejected(_)))), "{gone:?}");
        let busy = download_link(&http, &format!("{}/busy", server.uri()), &mut sink).await;
        assert!(matches!(busy, Err(FetchError::Provider(error)) if error.is_retryable()));
        let bad = download_link(&http, "file:///etc/passwd", &mut sink).await;
        assert!(matches!(bad, Err(FetchError::Unsupported(_))));
    }
}
