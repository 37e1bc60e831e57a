//! omnichat: the contact center's domain, provider modules, ports, adapters and use cases.
//!
//! Entry points (`functions/*`, `infra/local`) only read configuration, build adapters and call a use case
//! from here. Nothing in `domain`, `usecases` or `providers` knows about AWS.

pub mod adapters;
#[cfg(feature = "aws")]
pub mod bootstrap;
pub mod custom_resource;
pub mod deadline;
pub mod error;
pub mod limits;
pub mod logging;
pub mod net;
pub mod ports;
pub mod providers;
pub mod queue_event;
pub mod repo;
pub mod secret;
pub mod tls;
pub mod usecases;

#[cfg(test)]
mod layering_tests;
#[cfg(test)]
mod test_support;

pub use error::Error;
/// The domain is a crate of its own (`shared/domain`), so that it cannot import anything of the layers
/// above it; it is re-exported here under its old path.
pub use omnichat_domain as domain;
