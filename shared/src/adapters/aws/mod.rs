//! AWS adapters: DynamoDB (store), Secrets Manager (secrets), EventBridge (events), SQS (work).
//!
//! The only place that imports `aws_sdk_*`. Entry points build one `SdkConfig` with [`load_sdk_config`] and
//! hand it to the adapters' `from_config` constructors.

pub mod dynamodb;
pub mod eventbridge;
pub mod secrets_manager;
pub mod sqs;

use std::time::Duration;

use aws_config::BehaviorVersion;
/// What [`load_sdk_config`] answers, for callers that keep it (they need no `aws_config` of their own).
pub use aws_config::SdkConfig;
use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;

pub use dynamodb::{DynamoStore, create_table};
pub use eventbridge::{EventBridgeBus, create_event_bus};
pub use secrets_manager::SecretsManagerStore;
pub use sqs::{SqsWorkQueue, create_queue};

/// Connecting to an AWS endpoint: a Lambda in the same region connects in milliseconds.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// One attempt of one call.
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(5);
/// One call with all its retries.
const OPERATION_TIMEOUT: Duration = Duration::from_secs(15);
const MAX_ATTEMPTS: u32 = 3;
/// The function time-out assumed when none is given: the template's shortest (the webhooks' 10 s), which
/// keeps every function's calls within its time.
pub const DEFAULT_FUNCTION_TIMEOUT: Duration = Duration::from_secs(10);

/// The SDK's time-outs for a function that may run `function_timeout`: one call with its retries takes at
/// most half of it (and never more than 15 s), one attempt at most half of that (5 s), connecting at most
/// an attempt (3 s). So one slow call leaves the function time to answer; the invocation's own deadline
/// (`crate::deadline`) bounds what several calls add up to.
pub fn sdk_timeouts(function_timeout: Duration) -> TimeoutConfig {
    let operation = OPERATION_TIMEOUT.min(function_timeout / 2);
    let attempt = ATTEMPT_TIMEOUT.min(operation / 2);
    TimeoutConfig::builder()
        .connect_timeout(CONNECT_TIMEOUT.min(attempt))
        .operation_attempt_timeout(attempt)
        .operation_timeout(operation)
        .build()
}

/// For what runs outside a Lambda (tests against moto, benchmarks, tools): the most [`sdk_timeouts`] gives
/// (15 s a call, 5 s an attempt, 3 s to connect), as for a function of 30 s or more.
pub async fn load_sdk_config() -> SdkConfig {
    load_sdk_config_for(Duration::from_secs(30)).await
}

/// The SDK configuration every adapter shares: region and credentials from the environment (the Lambda
/// role, or `AWS_ACCESS_KEY_ID`/`AWS_SECRET_ACCESS_KEY` locally), `AWS_ENDPOINT_URL` honoured (how the
/// tests reach moto), [`sdk_timeouts`] for a function of `function_timeout`, and 3 attempts with standard
/// back-off on every call.
pub async fn load_sdk_config_for(function_timeout: Duration) -> SdkConfig {
    aws_config::defaults(BehaviorVersion::latest())
        .timeout_config(sdk_timeouts(function_timeout))
        .retry_config(RetryConfig::standard().with_max_attempts(MAX_ATTEMPTS))
        .load()
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_call_fits_well_within_the_functions_time() {
        for seconds in [1, 3, 10, 29, 60, 180, 900] {
            let function = Duration::from_secs(seconds);
            let timeouts = sdk_timeouts(function);
            let operation = timeouts.operation_timeout().expect("operation time-out");
            let attempt = timeouts.operation_attempt_timeout().expect("attempt time-out");
            let connect = timeouts.connect_timeout().expect("connect time-out");
            assert!(operation <= function / 2, "{seconds} s: a call may take {operation:?}");
            assert!(attempt <= operation && connect <= attempt, "{seconds} s: {timeouts:?}");
        }
        // The webhooks (10 s): 5 s a call, 2.5 s an attempt. The poller (180 s): 15 s, 5 s, 3 s as before.
        let webhook = sdk_timeouts(Duration::from_secs(10));
        assert_eq!(webhook.operation_timeout(), Some(Duration::from_secs(5)));
        assert_eq!(webhook.operation_attempt_timeout(), Some(Duration::from_millis(2_500)));
        let poller = sdk_timeouts(Duration::from_secs(180));
        assert_eq!(poller.operation_timeout(), Some(OPERATION_TIMEOUT));
        assert_eq!(poller.operation_attempt_timeout(), Some(ATTEMPT_TIMEOUT));
        assert_eq!(poller.connect_timeout(), Some(CONNECT_TIMEOUT));
    }

    #[tokio::test]
    async fn the_loaded_configuration_carries_them() {
        let config = load_sdk_config_for(Duration::from_secs(10)).await;
        let timeouts = config.timeout_config().expect("time-outs");
        assert_eq!(timeouts.operation_timeout(), Some(Duration::from_secs(5)));
    }
}
