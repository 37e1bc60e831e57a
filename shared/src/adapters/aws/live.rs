//! The API Gateway adapter of the [`LiveConnections`] port: a push is `POST /@connections/{id}` on the
//! WebSocket API's management endpoint (`https://{api-id}.execute-api.{region}.amazonaws.com/{stage}`, the
//! live function's `LIVE_CALLBACK_URL`), signed with the function's role (`execute-api:ManageConnections`).
//!
//! API Gateway answers 410 (`GoneException`) for a connection that is closed: [`PushError::Gone`], and the
//! caller forgets it. Anything else (throttling, a time-out, a 5xx after the SDK's retries) is
//! [`PushError::Failed`]: the push is lost and the page catches up when it reconnects.
//!
//! The endpoint is the callback URL itself, never `AWS_ENDPOINT_URL` (which points every other client at
//! moto in the tests): a test hands a fake's URL as the callback URL.

use async_trait::async_trait;
use aws_sdk_apigatewaymanagement::Client;
use aws_sdk_apigatewaymanagement::config::http::HttpResponse;
use aws_sdk_apigatewaymanagement::error::{DisplayErrorContext, SdkError};
use aws_sdk_apigatewaymanagement::operation::post_to_connection::PostToConnectionError;
use aws_sdk_apigatewaymanagement::primitives::Blob;

use super::LazyClient;
use crate::ports::live::{LiveConnections, PushError};

/// API Gateway's answer for a closed connection.
const GONE: u16 = 410;

/// The [`LiveConnections`] of one WebSocket API stage.
#[derive(Debug, Clone)]
pub struct ApiGatewayConnections {
    client: LazyClient<Client>,
    callback_url: String,
}

impl ApiGatewayConnections {
    /// `callback_url`: the stage's management endpoint (the template's `LIVE_CALLBACK_URL`), or a fake's.
    pub fn from_config(config: &aws_config::SdkConfig, callback_url: impl Into<String>) -> Self {
        let callback_url = callback_url.into();
        let service = aws_sdk_apigatewaymanagement::config::Builder::from(config)
            .endpoint_url(callback_url.trim_end_matches('/'))
            .build();
        Self { client: LazyClient::new(move || Client::from_conf(service.clone())), callback_url }
    }

    pub fn callback_url(&self) -> &str {
        &self.callback_url
    }
}

#[async_trait]
impl LiveConnections for ApiGatewayConnections {
    async fn post(&self, connection_id: &str, body: &[u8]) -> Result<(), PushError> {
        let sent = self
            .client
            .get()
            .post_to_connection()
            .connection_id(connection_id)
            .data(Blob::new(body))
            .send()
            .await;
        match sent {
            Ok(_) => Ok(()),
            Err(error) => Err(push_error(error)),
        }
    }
}

/// 410 (`GoneException`): the connection is closed. Anything else failed.
fn push_error(error: SdkError<PostToConnectionError, HttpResponse>) -> PushError {
    if let SdkError::ServiceError(service) = &error
        && (service.err().is_gone_exception() || service.raw().status().as_u16() == GONE)
    {
        return PushError::Gone;
    }
    PushError::Failed(format!("PostToConnection: {}", DisplayErrorContext(&error)))
}
