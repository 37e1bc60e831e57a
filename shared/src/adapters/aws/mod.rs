//! AWS adapters: DynamoDB (store), Secrets Manager (secrets), EventBridge (events).
//!
//! The only place that imports `aws_sdk_*`. Entry points build one `SdkConfig` with [`load_sdk_config`] and
//! hand it to the adapters' `from_config` constructors.

pub mod dynamodb;
pub mod eventbridge;
pub mod secrets_manager;

use std::time::Duration;

use aws_config::BehaviorVersion;
/// What [`load_sdk_config`] answers, for callers that keep it (they need no `aws_config` of their own).
pub use aws_config::SdkConfig;
use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;

pub use dynamodb::{DynamoStore, create_table};
pub use eventbridge::{EventBridgeBus, create_event_bus};
pub use secrets_manager::SecretsManagerStore;

/// Connecting to an AWS endpoint: a Lambda in the same region connects in milliseconds.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// One attempt of one call.
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(5);
/// One call with all its retries: bounded well under a Lambda's own timeout.
const OPERATION_TIMEOUT: Duration = Duration::from_secs(15);
const MAX_ATTEMPTS: u32 = 3;

/// The SDK configuration every adapter shares: region and credentials from the environment (the Lambda
/// role, or `AWS_ACCESS_KEY_ID`/`AWS_SECRET_ACCESS_KEY` locally), `AWS_ENDPOINT_URL` honoured (how the
/// tests reach moto), bounded time-outs and 3 attempts with standard back-off on every call.
pub async fn load_sdk_config() -> SdkConfig {
    let timeouts = TimeoutConfig::builder()
        .connect_timeout(CONNECT_TIMEOUT)
        .operation_attempt_timeout(ATTEMPT_TIMEOUT)
        .operation_timeout(OPERATION_TIMEOUT)
        .build();
    aws_config::defaults(BehaviorVersion::latest())
        .timeout_config(timeouts)
        .retry_config(RetryConfig::standard().with_max_attempts(MAX_ATTEMPTS))
        .load()
        .await
}
