//! IMAP over `async-imap`: log in (LOGIN or AUTHENTICATE XOAUTH2), select the INBOX, find and fetch new
//! messages by UID. TLS is rustls (aws-lc-rs, the platform's roots), as for every other outbound call.

use std::collections::BTreeSet;
use std::fmt;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use async_imap::{Client, Session};
use futures::TryStreamExt;
use jiff::Timestamp;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

use super::{Endpoint, LoginSecret, Security, xoauth2_response};
use crate::net::OutboundPolicy;
use crate::providers::ProviderError;

/// Connecting (TCP and TLS handshake) and the greeting.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// One command and its answer; a fetch of a large message included.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(60);
/// A `UID FETCH` names at most this many UIDs (keeps the command line short).
const FETCH_CHUNK: usize = 200;

/// Why talking to the IMAP server failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ImapError {
    /// The server refused the login (`NO` to LOGIN or AUTHENTICATE).
    #[error("{0}")]
    Refused(String),
    /// No connection, TLS failure, time-out, connection lost: worth trying again later.
    #[error("{0}")]
    Unreachable(String),
    /// The server answered something we cannot use.
    #[error("{0}")]
    Protocol(String),
}

impl ImapError {
    pub fn into_provider_error(self) -> ProviderError {
        match self {
            ImapError::Refused(reason) => ProviderError::InvalidCredentials(reason),
            ImapError::Unreachable(reason) | ImapError::Protocol(reason) => {
                ProviderError::Unavailable(reason)
            }
        }
    }
}

fn command_error(error: async_imap::error::Error) -> ImapError {
    use async_imap::error::Error;
    match error {
        Error::Io(io) => ImapError::Unreachable(format!("connection trouble: {io}")),
        Error::ConnectionLost => ImapError::Unreachable("the server closed the connection".into()),
        other => ImapError::Protocol(other.to_string()),
    }
}

async fn timed<T>(
    limit: Duration,
    what: &str,
    future: impl Future<Output = Result<T, ImapError>>,
) -> Result<T, ImapError> {
    tokio::time::timeout(limit, future).await.unwrap_or_else(|_| {
        Err(ImapError::Unreachable(format!("{what} timed out after {}s", limit.as_secs())))
    })
}

/// The connection under the IMAP client: plain TCP (loopback only) or TLS.
pub enum ImapIo {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
}

impl fmt::Debug for ImapIo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ImapIo::Plain(_) => "ImapIo::Plain",
            ImapIo::Tls(_) => "ImapIo::Tls",
        })
    }
}

impl AsyncRead for ImapIo {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            ImapIo::Plain(stream) => Pin::new(stream).poll_read(cx, buf),
            ImapIo::Tls(stream) => Pin::new(stream.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for ImapIo {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        match self.get_mut() {
            ImapIo::Plain(stream) => Pin::new(stream).poll_write(cx, buf),
            ImapIo::Tls(stream) => Pin::new(stream.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            ImapIo::Plain(stream) => Pin::new(stream).poll_flush(cx),
            ImapIo::Tls(stream) => Pin::new(stream.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            ImapIo::Plain(stream) => Pin::new(stream).poll_shutdown(cx),
            ImapIo::Tls(stream) => Pin::new(stream.as_mut()).poll_shutdown(cx),
        }
    }
}

/// The process's one TLS configuration (`crate::tls`), without ALPN.
fn tls_connector() -> TlsConnector {
    TlsConnector::from(crate::tls::client_config())
}

async fn start_tls(tcp: TcpStream, host: &str) -> Result<ImapIo, ImapError> {
    let name = rustls::pki_types::ServerName::try_from(
        host.trim_start_matches('[').trim_end_matches(']').to_owned(),
    )
    .map_err(|_| ImapError::Unreachable(format!("{host} is not a valid TLS server name")))?;
    let stream = tls_connector()
        .connect(name, tcp)
        .await
        .map_err(|e| ImapError::Unreachable(format!("TLS with {host} failed: {e}")))?;
    Ok(ImapIo::Tls(Box::new(stream)))
}

/// Reads the server's greeting (`* OK ...`), which precedes every command.
async fn read_greeting(client: &mut Client<ImapIo>) -> Result<(), ImapError> {
    match client.read_response().await {
        Ok(Some(_)) => Ok(()),
        Ok(None) => Err(ImapError::Unreachable("the server closed the connection before greeting".into())),
        Err(e) => Err(ImapError::Unreachable(format!("no greeting: {e}"))),
    }
}

async fn connect(endpoint: &Endpoint, policy: OutboundPolicy) -> Result<Client<ImapIo>, ImapError> {
    // Resolved once and checked: the connection goes to one of these addresses, never to the name again.
    let addresses = policy.resolve(&endpoint.host, endpoint.port).await.map_err(|refusal| {
        ImapError::Unreachable(format!("{}:{} is refused: {refusal}", endpoint.host, endpoint.port))
    })?;
    let tcp = TcpStream::connect(&addresses[..]).await.map_err(|e| {
        ImapError::Unreachable(format!("cannot connect to {}:{}: {e}", endpoint.host, endpoint.port))
    })?;
    match endpoint.security {
        Security::Tls => {
            let mut client = Client::new(start_tls(tcp, &endpoint.host).await?);
            read_greeting(&mut client).await?;
            Ok(client)
        }
        Security::StartTls => {
            let mut client = Client::new(ImapIo::Plain(tcp));
            read_greeting(&mut client).await?;
            client.run_command_and_check_ok("STARTTLS", None).await.map_err(command_error)?;
            let ImapIo::Plain(tcp) = client.into_inner() else {
                return Err(ImapError::Protocol("STARTTLS on a TLS connection".into()));
            };
            Ok(Client::new(start_tls(tcp, &endpoint.host).await?))
        }
        Security::Plain => {
            let mut client = Client::new(ImapIo::Plain(tcp));
            read_greeting(&mut client).await?;
            Ok(client)
        }
    }
}

/// SASL XOAUTH2: the initial response first; an error challenge (Gmail's JSON) gets the empty answer the
/// protocol asks for, after which the server says NO.
struct XOAuth2 {
    response: Option<String>,
}

impl async_imap::Authenticator for XOAuth2 {
    type Response = String;

    fn process(&mut self, _challenge: &[u8]) -> String {
        self.response.take().unwrap_or_default()
    }
}

async fn login(
    client: Client<ImapIo>,
    user: &str,
    secret: &LoginSecret,
) -> Result<Session<ImapIo>, ImapError> {
    let refused = |error: async_imap::error::Error| match error {
        async_imap::error::Error::No(reason) | async_imap::error::Error::Bad(reason) => {
            ImapError::Refused(reason.trim().to_owned())
        }
        other => command_error(other),
    };
    match secret {
        LoginSecret::Password(password) => {
            client.login(user, password.expose()).await.map_err(|(error, _)| refused(error))
        }
        LoginSecret::AccessToken(token) => {
            let authenticator = XOAuth2 { response: Some(xoauth2_response(user, token)) };
            client.authenticate("XOAUTH2", authenticator).await.map_err(|(error, _)| refused(error))
        }
    }
}

/// The logged-in INBOX of one mailbox.
pub struct Inbox {
    session: Session<ImapIo>,
    pub uid_validity: u32,
    pub uid_next: Option<u32>,
}

/// One fetched message.
#[derive(Debug, Clone)]
pub struct Fetched {
    pub uid: u32,
    pub internal_date: Option<Timestamp>,
    pub raw: Vec<u8>,
}

/// Logs in and selects the INBOX.
/// The connection goes only to an address of the host that passed the outbound `policy`.
pub async fn open_inbox(
    endpoint: &Endpoint,
    policy: OutboundPolicy,
    user: &str,
    secret: &LoginSecret,
) -> Result<Inbox, ImapError> {
    let client = timed(CONNECT_TIMEOUT, "connecting", connect(endpoint, policy)).await?;
    let mut session = timed(COMMAND_TIMEOUT, "login", login(client, user, secret)).await?;
    let selected = timed(COMMAND_TIMEOUT, "SELECT INBOX", async {
        session.select("INBOX").await.map_err(command_error)
    })
    .await?;
    let uid_validity = selected
        .uid_validity
        .ok_or_else(|| ImapError::Protocol("the server did not report the INBOX's UIDVALIDITY".into()))?;
    Ok(Inbox { session, uid_validity, uid_next: selected.uid_next })
}

impl Inbox {
    /// The UIDs above `last_uid`, ascending. (`UID n:*` always names the last message, even below n.)
    pub async fn uids_after(&mut self, last_uid: u32) -> Result<Vec<u32>, ImapError> {
        let query = format!("UID {}:*", last_uid.saturating_add(1));
        let session = &mut self.session;
        let found = timed(COMMAND_TIMEOUT, "UID SEARCH", async {
            session.uid_search(&query).await.map_err(command_error)
        })
        .await?;
        Ok(found.into_iter().filter(|uid| *uid > last_uid).collect::<BTreeSet<_>>().into_iter().collect())
    }

    /// The UIDs of the messages that arrived (INTERNALDATE) at or after `since`, ascending.
    pub async fn uids_since(&mut self, since: Timestamp) -> Result<Vec<u32>, ImapError> {
        // SEARCH SINCE has day granularity (and the server's idea of the day): ask from the day before,
        // then keep what is really recent enough by its INTERNALDATE.
        let day =
            since.to_zoned(jiff::tz::TimeZone::UTC).date().yesterday().unwrap_or(jiff::civil::Date::MIN);
        let query = format!("SINCE {}", day.strftime("%-d-%b-%Y"));
        let session = &mut self.session;
        let candidates: BTreeSet<u32> = timed(COMMAND_TIMEOUT, "UID SEARCH", async {
            session.uid_search(&query).await.map_err(command_error)
        })
        .await?
        .into_iter()
        .collect();
        let candidates: Vec<u32> = candidates.into_iter().collect();
        let mut recent = Vec::new();
        for chunk in candidates.chunks(FETCH_CHUNK) {
            let set = chunk.iter().map(u32::to_string).collect::<Vec<_>>().join(",");
            let session = &mut self.session;
            let dates: Vec<(u32, Option<Timestamp>)> =
                timed(COMMAND_TIMEOUT, "UID FETCH INTERNALDATE", async {
                    let stream =
                        session.uid_fetch(&set, "(UID INTERNALDATE)").await.map_err(command_error)?;
                    let fetches: Vec<_> = stream.try_collect().await.map_err(command_error)?;
                    Ok(fetches.iter().filter_map(|f| Some((f.uid?, internal_date(f)))).collect())
                })
                .await?;
            recent.extend(
                dates.into_iter().filter(|(_, at)| at.is_none_or(|at| at >= since)).map(|(uid, _)| uid),
            );
        }
        recent.sort_unstable();
        recent.dedup();
        Ok(recent)
    }

    /// The whole message (`BODY.PEEK[]`: the \Seen flag stays as it was, so people reading the same
    /// mailbox in their client still see it unread). `None` when it was expunged meanwhile.
    pub async fn fetch(&mut self, uid: u32) -> Result<Option<Fetched>, ImapError> {
        let session = &mut self.session;
        timed(COMMAND_TIMEOUT, "UID FETCH", async {
            let stream = session
                .uid_fetch(uid.to_string(), "(UID INTERNALDATE BODY.PEEK[])")
                .await
                .map_err(command_error)?;
            let fetches: Vec<_> = stream.try_collect().await.map_err(command_error)?;
            Ok(fetches.iter().find(|f| f.uid == Some(uid)).and_then(|f| {
                Some(Fetched { uid, internal_date: internal_date(f), raw: f.body()?.to_vec() })
            }))
        })
        .await
    }

    /// Puts a message into the INBOX (IMAP APPEND): how tests deliver mail to a real server.
    pub async fn append(&mut self, raw: &[u8]) -> Result<(), ImapError> {
        let session = &mut self.session;
        timed(COMMAND_TIMEOUT, "APPEND", async {
            session.append("INBOX", None, None, raw).await.map_err(command_error)
        })
        .await
    }

    /// Ends the session politely; a failure here changes nothing for us.
    pub async fn logout(mut self) {
        let _ = tokio::time::timeout(CONNECT_TIMEOUT, self.session.logout()).await;
    }
}

fn internal_date(fetch: &async_imap::types::Fetch) -> Option<Timestamp> {
    fetch.internal_date().and_then(|at| Timestamp::from_second(at.timestamp()).ok())
}
