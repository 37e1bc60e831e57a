//! A [`Mailboxes`] whose every mailbox is empty and answers at once, counting the logins per mailbox: tests
//! and the mailbox fan-out benchmark use it to show what polling costs and does apart from IMAP. A mailbox
//! is named by its channel's `address` credential, as the IMAP module names it.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;

use async_trait::async_trait;
use jiff::Timestamp;

use crate::error::{ProviderError, Result};
use crate::ports::channel::ChannelSecrets;
use crate::ports::mailbox::{FetchedMail, Inbox, Mailboxes};

/// The credential naming a mailbox.
pub const ADDRESS: &str = "address";

#[derive(Debug, Default)]
pub struct EmptyMailboxes {
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    logins: BTreeMap<String, usize>,
    down: BTreeSet<String>,
}

impl EmptyMailboxes {
    pub fn new() -> Self {
        Self::default()
    }

    /// The credentials of the mailbox `address`.
    pub fn secrets(address: &str) -> ChannelSecrets {
        ChannelSecrets::default().with(ADDRESS, crate::secret::Secret::new(address.to_owned()))
    }

    /// From now on the server of `address` is down: every login fails as IMAP's would (unavailable).
    pub fn take_down(&self, address: &str) {
        self.lock().down.insert(address.to_owned());
    }

    /// The logins so far, per address (failed ones included).
    pub fn logins(&self) -> BTreeMap<String, usize> {
        self.lock().logins.clone()
    }

    /// The logins so far, in all.
    pub fn total_logins(&self) -> usize {
        self.lock().logins.values().sum()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

#[async_trait]
impl Mailboxes for EmptyMailboxes {
    async fn open(&self, secrets: &ChannelSecrets) -> Result<Box<dyn Inbox>> {
        let address = secrets
            .get(ADDRESS)
            .map(|address| address.expose().to_owned())
            .ok_or_else(|| ProviderError::InvalidCredentials("the channel's mailbox lacks address".into()))?;
        let mut state = self.lock();
        *state.logins.entry(address.clone()).or_default() += 1;
        if state.down.contains(&address) {
            return Err(ProviderError::Unavailable(format!("the IMAP server of {address} is down")).into());
        }
        Ok(Box::new(EmptyInbox { address }))
    }

    fn rotated_secrets(&self, _: &ChannelSecrets) -> Option<ChannelSecrets> {
        None
    }
}

struct EmptyInbox {
    address: String,
}

#[async_trait]
impl Inbox for EmptyInbox {
    fn address(&self) -> &str {
        &self.address
    }

    fn uid_validity(&self) -> u32 {
        1
    }

    fn uid_next(&self) -> Option<u32> {
        Some(1)
    }

    async fn uids_after(&mut self, _: u32) -> Result<Vec<u32>, ProviderError> {
        Ok(Vec::new())
    }

    async fn uids_since(&mut self, _: Timestamp) -> Result<Vec<u32>, ProviderError> {
        Ok(Vec::new())
    }

    async fn fetch(&mut self, _: u32) -> Result<Option<FetchedMail>, ProviderError> {
        Ok(None)
    }

    async fn logout(self: Box<Self>) {}
}
