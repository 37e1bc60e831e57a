//! Embedded adapters: redb for the store, a 0600 file for secrets, an in-process bus for events.

pub mod bus;
pub mod secrets;
pub mod store;

pub use bus::InProcessBus;
pub use secrets::FileSecretStore;
pub use store::RedbStore;
