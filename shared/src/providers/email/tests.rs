//! Unit tests of the e-mail module: credentials and the known providers' defaults, the kept secrets,
//! OAuth token refresh (against a local fake token endpoint), and the reply's threading headers.
//! IMAP and SMTP against real servers: `tests/tests/e2e_email.rs`.

use serde_json::json;
use wiremock::matchers::{body_string_contains, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use super::*;
use crate::domain::RuleViolation;
use crate::providers::MailThread;

fn credentials(value: Value) -> Map<String, Value> {
    value.as_object().cloned().expect("an object")
}

fn rule(error: Error) -> RuleViolation {
    match error {
        Error::Rule(violation) => violation,
        other => panic!("not a rule violation: {other:?}"),
    }
}

fn field_of(error: Error) -> String {
    rule(error).field
}

#[test]
fn known_providers_get_their_servers_from_the_address() {
    let gmail = Mailbox::from_credentials(
        &credentials(json!({"address": "Shop@Gmail.com", "password": "app-password"})),
        false,
    )
    .unwrap();
    assert_eq!(gmail.address, "shop@gmail.com");
    assert_eq!(gmail.login, "shop@gmail.com");
    assert_eq!(gmail.imap, Endpoint { host: "imap.gmail.com".into(), port: 993, security: Security::Tls });
    assert_eq!(gmail.smtp, Endpoint { host: "smtp.gmail.com".into(), port: 465, security: Security::Tls });

    let yandex =
        Mailbox::from_credentials(&credentials(json!({"address": "info@ya.ru", "password": "p"})), false)
            .unwrap();
    assert_eq!(yandex.imap.host, "imap.yandex.ru");
    assert_eq!(yandex.smtp.host, "smtp.yandex.ru");
    let mailru =
        Mailbox::from_credentials(&credentials(json!({"address": "info@bk.ru", "password": "p"})), false)
            .unwrap();
    assert_eq!((mailru.imap.host.as_str(), mailru.smtp.port), ("imap.mail.ru", 465));
    let outlook = Mailbox::from_credentials(
        &credentials(json!({"address": "desk@outlook.com", "password": "p", "login": "Desk@Outlook.com"})),
        false,
    )
    .unwrap();
    assert_eq!(outlook.login, "Desk@Outlook.com", "the login is kept as given");
    assert_eq!(
        outlook.smtp,
        Endpoint { host: "smtp.office365.com".into(), port: 587, security: Security::StartTls }
    );

    // A custom domain hosted by a known provider names it; a port or mode can still be overridden.
    let workspace = Mailbox::from_credentials(
        &credentials(json!({"address": "help@shop.example", "password": "p", "service": "gmail",
                            "smtp": {"tls": "starttls"}})),
        false,
    )
    .unwrap();
    assert_eq!(workspace.imap.host, "imap.gmail.com");
    assert_eq!(
        workspace.smtp,
        Endpoint { host: "smtp.gmail.com".into(), port: 587, security: Security::StartTls }
    );
}

#[test]
fn other_domains_need_their_servers_and_every_mistake_names_its_field() {
    let base = json!({"address": "help@shop.example", "password": "p"});
    let missing = Mailbox::from_credentials(&credentials(base.clone()), false).unwrap_err();
    assert_eq!(field_of(missing), "credentials.imap");

    let full = json!({
        "address": "help@shop.example", "password": "p",
        "imap": {"host": "mail.shop.example", "port": 993, "tls": true},
        "smtp": {"host": "mail.shop.example", "port": "587", "tls": "starttls"}
    });
    let mailbox = Mailbox::from_credentials(&credentials(full.clone()), false).unwrap();
    assert_eq!(
        mailbox.imap,
        Endpoint { host: "mail.shop.example".into(), port: 993, security: Security::Tls }
    );
    assert_eq!(mailbox.smtp.port, 587);

    let cases = [
        (json!({"password": "p"}), "credentials.address"),
        (json!({"address": "not-an-address", "password": "p"}), "credentials.address"),
        (json!({"address": "help@gmail.com"}), "credentials.password"),
        (json!({"address": "help@gmail.com", "password": "p", "service": "aol"}), "credentials.service"),
        (json!({"address": "help@gmail.com", "password": "p", "imap": {"port": 0}}), "credentials.imap.port"),
        (
            json!({"address": "help@gmail.com", "password": "p", "imap": {"tls": "maybe"}}),
            "credentials.imap.tls",
        ),
        (json!({"address": "help@gmail.com", "password": "p", "smtp": "smtp.gmail.com"}), "credentials.smtp"),
        (
            json!({"address": "help@gmail.com", "password": "p", "smtp": {"host": "a b"}}),
            "credentials.smtp.host",
        ),
        // Passwords never go over the internet in clear, and loopback servers are for tests only.
        (
            json!({"address": "help@gmail.com", "password": "p", "imap": {"tls": "none"}}),
            "credentials.imap.tls",
        ),
        (
            json!({"address": "help@gmail.com", "password": "p", "imap": {"host": "127.0.0.1"}}),
            "credentials.imap.host",
        ),
        (
            json!({"address": "help@shop.example", "oauth": {"client_id": "c", "refresh_token": "r"},
                "imap": {"host": "a.example"}, "smtp": {"host": "a.example"}}),
            "credentials.oauth.token_url",
        ),
        (
            json!({"address": "help@gmail.com", "oauth": {"refresh_token": "r"}}),
            "credentials.oauth.client_id",
        ),
        (
            json!({"address": "help@gmail.com", "oauth": {"client_id": "c"}}),
            "credentials.oauth.refresh_token",
        ),
        (
            json!({"address": "help@gmail.com", "oauth": {"client_id": "c", "refresh_token": "r",
                "token_url": "http://tokens.example/token"}}),
            "credentials.oauth.token_url",
        ),
    ];
    for (input, field) in cases {
        let error = Mailbox::from_credentials(&credentials(input.clone()), false).unwrap_err();
        assert_eq!(field_of(error), field, "{input}");
    }
    let plain_local = json!({"address": "help@shop.example", "password": "p",
        "imap": {"host": "127.0.0.1", "port": 1143, "tls": "none"},
        "smtp": {"host": "localhost", "port": 1025, "tls": "none"}});
    assert!(Mailbox::from_credentials(&credentials(plain_local.clone()), false).is_err());
    let local = Mailbox::from_credentials(&credentials(plain_local), true).unwrap();
    assert_eq!(local.imap, Endpoint { host: "127.0.0.1".into(), port: 1143, security: Security::Plain });
}

#[test]
fn the_kept_secrets_give_the_same_mailbox_and_the_masked_view_hides_them() {
    let oauth = Mailbox::from_credentials(
        &credentials(json!({"address": "desk@outlook.com", "oauth": {
            "client_id": "app-1", "client_secret": "client-secret-value", "refresh_token": "M.R3_BAY.refresh-token-value",
            "scope": "offline_access https://outlook.office.com/IMAP.AccessAsUser.All"}})),
        false,
    )
    .unwrap();
    let again = Mailbox::from_secrets(&oauth.to_secrets()).unwrap();
    assert_eq!(
        (again.address.as_str(), again.imap.clone(), again.smtp.clone()),
        ("desk@outlook.com", oauth.imap.clone(), oauth.smtp.clone())
    );
    let Auth::OAuth(kept) = again.auth else { panic!("OAuth expected") };
    assert_eq!(kept.refresh_token.expose(), "M.R3_BAY.refresh-token-value");
    assert_eq!(kept.token_url, "https://login.microsoftonline.com/common/oauth2/v2.0/token");
    assert_eq!(
        kept.scope.as_deref(),
        Some("offline_access https://outlook.office.com/IMAP.AccessAsUser.All")
    );

    let masked = format!("{:?}", oauth.masked());
    assert!(!masked.contains("refresh-token-value") && !masked.contains("client-secret-value"), "{masked}");
    assert!(
        masked.contains("desk@outlook.com") && masked.contains("outlook.office365.com:993 (tls)"),
        "{masked}"
    );

    let password = Mailbox::from_credentials(
        &credentials(json!({"address": "shop@gmail.com", "password": "a-long-app-password"})),
        false,
    )
    .unwrap();
    let shown = password.masked();
    assert_eq!(shown.get("password").map(String::as_str), Some("****word"));
    assert!(!format!("{:?} {:?}", password, password.to_secrets()).contains("a-long-app-password"));
    assert!(
        matches!(Mailbox::from_secrets(&password.to_secrets()).unwrap().auth, Auth::Password(p) if p.expose() == "a-long-app-password")
    );
    assert!(Mailbox::from_secrets(&ChannelSecrets::default()).is_err());
}

#[test]
fn the_xoauth2_response_is_the_documented_string() {
    // https://developers.google.com/gmail/imap/xoauth2-protocol
    assert_eq!(
        xoauth2_response(
            "someuser@example.com",
            &Secret::new("ya29.vF9dft4qmTc2Nvb3RlckBhdHRhdmlzdGEuY29tCg")
        ),
        "user=someuser@example.com\x01auth=Bearer ya29.vF9dft4qmTc2Nvb3RlckBhdHRhdmlzdGEuY29tCg\x01\x01"
    );
}

fn oauth(token_url: &str) -> OAuth {
    OAuth {
        client_id: "client-1".into(),
        client_secret: Some(Secret::new("client-secret")),
        refresh_token: Secret::new("1//refresh-token"),
        token_url: token_url.into(),
        scope: None,
    }
}

#[tokio::test]
async fn access_tokens_are_refreshed_once_and_cached() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/token"))
        .and(body_string_contains("grant_type=refresh_token"))
        .and(body_string_contains("refresh_token=1%2F%2Frefresh-token"))
        .and(body_string_contains("client_id=client-1"))
        .and(body_string_contains("client_secret=client-secret"))
        .respond_with(ResponseTemplate::new(200).set_body_json(
            json!({"access_token": "ya29.fresh", "expires_in": 3599, "token_type": "Bearer", "scope": "https://mail.google.com/"}),
        ))
        .expect(1)
        .mount(&server)
        .await;
    let provider = EmailProvider::new(reqwest::Client::new()).allowing_loopback();
    let settings = oauth(&format!("{}/token", server.uri()));
    assert_eq!(provider.access_token(&settings).await.unwrap().expose(), "ya29.fresh");
    assert_eq!(provider.access_token(&settings).await.unwrap().expose(), "ya29.fresh", "from the cache");
}

#[tokio::test]
async fn a_rotated_refresh_token_replaces_the_kept_one_once() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/token"))
        .respond_with(ResponseTemplate::new(200).set_body_json(
            json!({"access_token": "EwB.access", "expires_in": 3600, "refresh_token": "M.R3_BAY.rotated"}),
        ))
        .mount(&server)
        .await;
    let provider = EmailProvider::new(reqwest::Client::new()).allowing_loopback();
    let mailbox = Mailbox::from_credentials(
        &credentials(json!({"address": "desk@outlook.com", "oauth": {
            "client_id": "app", "refresh_token": "M.R3_BAY.original", "token_url": format!("{}/token", server.uri())}})),
        true,
    )
    .unwrap();
    let secrets = mailbox.to_secrets().with(ChannelSecrets::WEBHOOK_SECRET, Secret::new("kept"));
    assert!(provider.rotated_secrets(&secrets).is_none(), "nothing refreshed yet");
    let Auth::OAuth(oauth) = &mailbox.auth else { panic!("OAuth expected") };
    assert_eq!(provider.access_token(oauth).await.unwrap().expose(), "EwB.access");
    let rotated = provider.rotated_secrets(&secrets).expect("the new refresh token");
    assert_eq!(rotated.get(OAUTH_REFRESH_TOKEN).map(Secret::expose), Some("M.R3_BAY.rotated"));
    assert_eq!(rotated.get(ChannelSecrets::WEBHOOK_SECRET).map(Secret::expose), Some("kept"));
    assert!(provider.rotated_secrets(&secrets).is_none(), "handed over once");
}

#[tokio::test]
async fn the_token_url_override_wins_and_refusals_are_classified() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/revoked"))
        .respond_with(ResponseTemplate::new(400).set_body_json(
            json!({"error": "invalid_grant", "error_description": "Token has been expired or revoked."}),
        ))
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/down"))
        .respond_with(ResponseTemplate::new(503))
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/busy"))
        .respond_with(ResponseTemplate::new(429).insert_header("Retry-After", "7"))
        .mount(&server)
        .await;
    let at =
        |p: &str| EmailProvider::new(reqwest::Client::new()).with_token_url(format!("{}{p}", server.uri()));
    let settings = oauth("https://oauth2.googleapis.com/token");

    let revoked = at("/revoked").access_token(&settings).await.unwrap_err();
    assert!(
        matches!(&revoked, ProviderError::InvalidCredentials(r) if r.contains("invalid_grant") && r.contains("revoked")),
        "{revoked:?}"
    );
    assert!(matches!(at("/down").access_token(&settings).await, Err(ProviderError::Unavailable(_))));
    assert_eq!(
        at("/busy").access_token(&settings).await.unwrap_err(),
        ProviderError::RateLimited { retry_after: Duration::from_secs(7) }
    );

    // Connecting with a refused refresh token is a 422 naming it, before any server is tried.
    let error = at("/revoked")
        .connect(&credentials(
            json!({"address": "shop@gmail.com", "oauth": {"client_id": "c", "refresh_token": "r"}}),
        ))
        .await
        .unwrap_err();
    assert_eq!(field_of(error), "credentials.oauth.refresh_token");
}

#[tokio::test]
async fn an_unreachable_server_is_a_422_naming_it() {
    // A port nothing listens on (bound, then closed).
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let provider = EmailProvider::new(reqwest::Client::new()).allowing_loopback();
    let error = provider
        .connect(&credentials(json!({"address": "help@shop.example", "password": "p",
            "imap": {"host": "127.0.0.1", "port": port, "tls": "none"},
            "smtp": {"host": "127.0.0.1", "port": port, "tls": "none"}})))
        .await
        .unwrap_err();
    let violation = rule(error);
    assert_eq!(violation.field, "credentials.imap", "{violation}");
    assert_eq!(violation.code, "server_unreachable", "{violation}");
}

#[test]
fn nothing_is_pushed_and_there_is_no_webhook() {
    let provider = EmailProvider::new(reqwest::Client::new());
    let request = WebhookRequest { method: "POST".into(), body: b"{}".to_vec(), ..WebhookRequest::default() };
    assert!(matches!(
        provider.receive(&ChannelSecrets::default(), &request),
        Err(WebhookError::Malformed { provider: "email", .. })
    ));
    assert_eq!(
        provider.webhook_url(
            "https://x.example",
            Provider::Email,
            &ChannelId::generate(),
            &ChannelSecrets::default()
        ),
        ""
    );
    // Mail is read from the mailbox instead: the module is the process's mailbox reader too.
    let providers = crate::providers::Providers::default().with_email(std::sync::Arc::new(provider));
    assert!(providers.mailboxes().is_some());
}

fn mailbox() -> Mailbox {
    Mailbox::from_credentials(&credentials(json!({"address": "support@gmail.com", "password": "p"})), false)
        .unwrap()
}

fn outgoing(thread: Option<MailThread>) -> Outgoing {
    Outgoing {
        attachments: Vec::new(),
        customer_id: "anna@example.com".into(),
        text: "Your order ships tomorrow.\nRegards".into(),
        buttons: vec!["Track it".into(), "Cancel".into()],
        idempotency_key: "0190a6a0-0000-7000-8000-0000000000aa".into(),
        thread,
        automatic: false,
        template: None,
    }
}

fn rendered(out: &Outgoing) -> String {
    let id = smtp::message_id(&out.idempotency_key, "gmail.com");
    String::from_utf8(smtp::build(&mailbox(), out, &id, &[]).unwrap().formatted()).unwrap()
}

/// RFC 3834: what the system sends on its own is marked, so that the customer's autoresponder does not
/// answer it (and ours, which drops auto-submitted mail, does not answer theirs); a person's reply is not.
#[test]
fn automatic_mail_is_marked_auto_submitted_and_a_persons_reply_is_not() {
    let person = rendered(&outgoing(None));
    assert!(!person.to_ascii_lowercase().contains("auto-submitted"), "{person}");
    let automatic = rendered(&Outgoing { automatic: true, ..outgoing(None) });
    assert!(automatic.contains("Auto-Submitted: auto-replied\r\n"), "{automatic}");
    // Our own inbound filter recognises the mark: a mail loop between two such systems stops here.
    let parsed = mail_parser::MessageParser::default().parse(automatic.as_bytes()).expect("a mail");
    assert_eq!(parsed.header_raw("Auto-Submitted").map(str::trim), Some("auto-replied"));
}

#[test]
fn a_reply_carries_our_message_id_and_the_threading_headers() {
    let id = smtp::message_id("0190a6a0-0000-7000-8000-0000000000aa", "gmail.com");
    assert_eq!(id, "0190a6a0-0000-7000-8000-0000000000aa.omnichat@gmail.com");
    let thread = MailThread {
        subject: Some("Re: RE: Where is my order?".into()),
        in_reply_to: Some("r2@example.com".into()),
        references: vec!["first@example.com".into(), "r2@example.com".into()],
    };
    let mail = rendered(&outgoing(Some(thread)));
    assert!(
        mail.contains("Message-ID: <0190a6a0-0000-7000-8000-0000000000aa.omnichat@gmail.com>\r\n"),
        "{mail}"
    );
    assert!(mail.contains("In-Reply-To: <r2@example.com>\r\n"), "{mail}");
    assert!(mail.contains("References: <first@example.com> <r2@example.com>\r\n"), "{mail}");
    assert!(mail.contains("Subject: Re: Where is my order?\r\n"), "{mail}");
    assert!(
        mail.contains("From: support@gmail.com\r\n") && mail.contains("To: anna@example.com\r\n"),
        "{mail}"
    );
    assert!(
        mail.contains("Your order ships tomorrow.") && mail.contains("Track it") && mail.contains("Cancel"),
        "{mail}"
    );

    // Without a kept mail: no threading headers, the first line names it.
    let unthreaded = rendered(&outgoing(None));
    assert!(!unthreaded.contains("In-Reply-To") && !unthreaded.contains("References"), "{unthreaded}");
    assert!(unthreaded.contains("Subject: Your order ships tomorrow.\r\n"), "{unthreaded}");
}

#[test]
fn long_reference_chains_keep_the_root_and_the_latest() {
    let references: Vec<String> = (0..30).map(|i| format!("m{i}@example.com")).collect();
    let thread = MailThread { subject: None, in_reply_to: Some("m29@example.com".into()), references };
    let mail = rendered(&outgoing(Some(thread)));
    let line: String =
        mail.split("References: ").nth(1).unwrap().split("\r\n").take_while(|l| !l.contains(':')).collect();
    assert!(line.starts_with("<m0@example.com>") && line.trim_end().ends_with("<m29@example.com>"), "{line}");
    assert_eq!(line.matches('<').count(), 20, "{line}");
    assert!(!line.contains("<m1@example.com>"));
}

#[test]
fn reply_subjects_do_not_stack() {
    assert_eq!(smtp::reply_subject("Order 42"), "Re: Order 42");
    assert_eq!(smtp::reply_subject("RE: re: Order 42"), "Re: Order 42");
    assert_eq!(smtp::reply_subject("Ответ: Заказ"), "Re: Заказ");
    assert_eq!(smtp::reply_subject("  "), "Re:");
}

#[test]
fn a_customer_id_that_is_no_address_is_refused_for_good() {
    let mut out = outgoing(None);
    out.customer_id = "not an address".into();
    assert!(matches!(smtp::build(&mailbox(), &out, "x@gmail.com", &[]), Err(ProviderError::Rejected(_))));
}

#[tokio::test]
async fn mail_servers_and_token_endpoints_on_internal_addresses_are_refused_in_both_languages() {
    for (host, field) in [
        ("127.0.0.1", "credentials.imap.host"),
        ("localhost", "credentials.imap.host"),
        ("10.1.2.3", "credentials.imap.host"),
        ("169.254.169.254", "credentials.imap.host"),
        ("[::ffff:169.254.169.254]", "credentials.imap.host"),
        ("[fd00::1]", "credentials.imap.host"),
        ("100.64.0.1", "credentials.imap.host"),
    ] {
        let error = Mailbox::from_credentials(
            &credentials(json!({"address": "help@shop.example", "password": "p",
                "imap": {"host": host, "port": 993, "tls": "tls"},
                "smtp": {"host": "smtp.shop.example", "port": 465, "tls": "tls"}})),
            false,
        )
        .unwrap_err();
        let violation = rule(error);
        assert_eq!(violation.field, field, "{host}: {violation}");
        assert!(violation.message.contains(" / "), "English / Russian: {violation}");
    }
    // With loopback allowed (tests, the local runner), other internal ranges stay refused.
    let error = Mailbox::from_credentials(
        &credentials(json!({"address": "help@shop.example", "password": "p",
            "imap": {"host": "imap.shop.example"},
            "smtp": {"host": "192.168.0.10", "port": 465, "tls": "tls"}})),
        true,
    )
    .unwrap_err();
    assert_eq!(field_of(error), "credentials.smtp.host");
    let oauth = json!({"client_id": "c", "refresh_token": "r", "token_url": "https://169.254.169.254/token"});
    let error = Mailbox::from_credentials(
        &credentials(json!({"address": "help@shop.example", "oauth": oauth,
            "imap": {"host": "imap.shop.example"}, "smtp": {"host": "smtp.shop.example"}})),
        true,
    )
    .unwrap_err();
    assert_eq!(field_of(error), "credentials.oauth.token_url");
}

#[tokio::test]
async fn a_token_endpoint_on_this_machine_is_never_called_without_the_development_setting() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"access_token": "t"})))
        .expect(0)
        .mount(&server)
        .await;
    let provider = EmailProvider::new(reqwest::Client::new());
    let error = provider.access_token(&oauth(&format!("{}/token", server.uri()))).await.unwrap_err();
    assert!(matches!(error, ProviderError::Rejected(_)), "{error:?}");
    let named = format!("{}/token", server.uri().replace("127.0.0.1", "localhost"));
    let error = provider.access_token(&oauth(&named)).await.unwrap_err();
    assert!(matches!(error, ProviderError::Rejected(_)), "{error:?}");
}

// --- media: against scripted IMAP and SMTP servers on 127.0.0.1 ---

use std::sync::Arc;

use mail_parser::MimeHeaders;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;

use crate::domain::{Attachment, AttachmentKind};
use crate::ports::media::MediaSink;
use crate::providers::{FetchError, OutgoingMedia};

const FAKE_PASSWORD: &str = "fake-app-password";

/// What a scripted server was told: one line per command (with the LOGIN password masked).
type Transcript = Arc<std::sync::Mutex<Vec<String>>>;

/// A minimal IMAP4rev1 server: LOGIN (the one password), SELECT INBOX with `uid_validity`, `UID FETCH` of
/// whole messages by UID, LOGOUT. Enough for `imap::open_inbox` and `Inbox::fetch`.
async fn fake_imap(uid_validity: u32, messages: Vec<(u32, Vec<u8>)>) -> (u16, Transcript) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let transcript = Transcript::default();
    let seen = transcript.clone();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(serve_imap(stream, uid_validity, messages.clone(), seen.clone()));
        }
    });
    (port, transcript)
}

async fn serve_imap(
    stream: tokio::net::TcpStream,
    uid_validity: u32,
    messages: Vec<(u32, Vec<u8>)>,
    transcript: Transcript,
) -> std::io::Result<()> {
    let (read, mut write) = stream.into_split();
    let mut reader = BufReader::new(read);
    write.write_all(b"* OK [CAPABILITY IMAP4rev1 AUTH=PLAIN] fake IMAP ready\r\n").await?;
    let mut line = String::new();
    loop {
        line.clear();
        if reader.read_line(&mut line).await? == 0 {
            return Ok(());
        }
        let mut words = line.trim_end().splitn(3, ' ');
        let tag = words.next().unwrap_or("*").to_owned();
        let command = words.next().unwrap_or_default().to_ascii_uppercase();
        let rest = words.next().unwrap_or_default().to_owned();
        let logged = if command == "LOGIN" { "LOGIN ****".to_owned() } else { format!("{command} {rest}") };
        transcript.lock().expect("transcript").push(logged);
        let mut answer: Vec<u8> = Vec::new();
        match command.as_str() {
            "CAPABILITY" => answer.extend(b"* CAPABILITY IMAP4rev1 AUTH=PLAIN\r\n"),
            "LOGIN" if rest.contains(FAKE_PASSWORD) => {}
            "LOGIN" => {
                answer.extend(format!("{tag} NO [AUTHENTICATIONFAILED] Invalid credentials\r\n").as_bytes());
                write.write_all(&answer).await?;
                continue;
            }
            "SELECT" => answer.extend(
                format!(
                    "* {} EXISTS\r\n* OK [UIDVALIDITY {uid_validity}] UIDs valid\r\n* OK [UIDNEXT 100] next\r\n\
                     * FLAGS (\\Seen)\r\n",
                    messages.len()
                )
                .as_bytes(),
            ),
            "UID" => {
                // UID FETCH <uid> (...)
                let uid: u32 = rest.split(' ').nth(1).and_then(|u| u.parse().ok()).unwrap_or(0);
                if let Some((seq, (_, raw))) = messages.iter().enumerate().find(|(_, (u, _))| *u == uid) {
                    answer.extend(
                        format!(
                            "* {} FETCH (UID {uid} INTERNALDATE \"19-May-2000 00:59:31 -0400\" BODY[] {{{}}}\r\n",
                            seq + 1,
                            raw.len()
                        )
                        .as_bytes(),
                    );
                    answer.extend(raw);
                    answer.extend(b")\r\n");
                }
            }
            "LOGOUT" => {
                write.write_all(format!("* BYE fake IMAP\r\n{tag} OK LOGOUT completed\r\n").as_bytes()).await?;
                return Ok(());
            }
            _ => {
                write.write_all(format!("{tag} BAD unknown command\r\n").as_bytes()).await?;
                continue;
            }
        }
        answer.extend(format!("{tag} OK {command} completed\r\n").as_bytes());
        write.write_all(&answer).await?;
    }
}

/// A minimal ESMTP server: EHLO (AUTH PLAIN LOGIN), AUTH, MAIL, RCPT, DATA (each message kept), QUIT.
async fn fake_smtp() -> (u16, Transcript) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let mails = Transcript::default();
    let kept = mails.clone();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(serve_smtp(stream, kept.clone()));
        }
    });
    (port, mails)
}

async fn serve_smtp(stream: tokio::net::TcpStream, mails: Transcript) -> std::io::Result<()> {
    let (read, mut write) = stream.into_split();
    let mut reader = BufReader::new(read);
    write.write_all(b"220 fake ESMTP\r\n").await?;
    let mut line = String::new();
    loop {
        line.clear();
        if reader.read_line(&mut line).await? == 0 {
            return Ok(());
        }
        let verb = line.split_whitespace().next().unwrap_or_default().to_ascii_uppercase();
        let answer: &[u8] = match verb.as_str() {
            "EHLO" => b"250-fake\r\n250-AUTH PLAIN LOGIN\r\n250-8BITMIME\r\n250 SIZE 35882577\r\n",
            "HELO" => b"250 fake\r\n",
            "AUTH" => b"235 2.7.0 Authentication successful\r\n",
            "MAIL" | "RCPT" | "RSET" | "NOOP" => b"250 2.1.0 Ok\r\n",
            "DATA" => {
                write.write_all(b"354 End data with <CR><LF>.<CR><LF>\r\n").await?;
                let mut data = Vec::new();
                loop {
                    let mut chunk = Vec::new();
                    if reader.read_until(b'\n', &mut chunk).await? == 0 {
                        return Ok(());
                    }
                    if chunk == b".\r\n" {
                        break;
                    }
                    data.extend(chunk);
                }
                mails.lock().expect("mails").push(String::from_utf8_lossy(&data).into_owned());
                b"250 2.0.0 Ok: queued\r\n"
            }
            "QUIT" => {
                write.write_all(b"221 2.0.0 Bye\r\n").await?;
                return Ok(());
            }
            _ => b"502 5.5.2 Command not recognized\r\n",
        };
        write.write_all(answer).await?;
    }
}

fn local_mailbox_secrets(imap_port: u16, smtp_port: u16, password: &str) -> ChannelSecrets {
    Mailbox::from_credentials(
        &credentials(json!({"address": "support@shop.example", "password": password,
            "imap": {"host": "127.0.0.1", "port": imap_port, "tls": "none"},
            "smtp": {"host": "127.0.0.1", "port": smtp_port, "tls": "none"}})),
        true,
    )
    .expect("a local mailbox")
    .to_secrets()
}

fn local_provider() -> EmailProvider {
    EmailProvider::new(reqwest::Client::new()).allowing_loopback()
}

fn part(reference: &str) -> Attachment {
    Attachment {
        kind: AttachmentKind::Document,
        file_ref: reference.into(),
        mime: Some("text/plain".into()),
        size: None,
        name: Some("farmerandstork.txt".into()),
    }
}

#[test]
fn only_parts_of_mails_in_the_mailbox_are_fetchable() {
    let provider = EmailProvider::new(reqwest::Client::new());
    assert!(provider.fetchable(&part("imap:7:3:2")));
    assert!(provider.fetchable(&part("imap:7:3:1.2")));
    for reference in
        ["https://example.com/a.pdf", "imap:7:3:", "imap:x:3:2", "imap:7:3:2/../1", "imap:7:3:a", "2"]
    {
        assert!(!provider.fetchable(&part(reference)), "{reference}");
    }
    let place = Attachment { kind: AttachmentKind::Location, ..part("imap:7:3:2") };
    assert!(!provider.fetchable(&place));
    assert_eq!(
        PartRef::parse("imap:7:3:1.2"),
        Some(PartRef { uid_validity: 7, uid: 3, section: "1.2".into() })
    );
}

#[tokio::test]
async fn fetches_an_attachment_from_its_mail_in_the_mailbox() {
    let raw = fixture_eml();
    let (imap_port, commands) = fake_imap(7, vec![(3, raw.clone())]).await;
    let provider = local_provider();
    let secrets = local_mailbox_secrets(imap_port, 9, FAKE_PASSWORD);
    // The poller's own parse names the attachment: its reference is what is fetched.
    let mail =
        mail::parse(&raw, "support@shop.example", |section| format!("imap:7:3:{section}")).expect("a mail");
    let stork =
        mail.attachments.iter().find(|a| a.name.as_deref() == Some("farmerandstork.txt")).expect("stork");
    assert!(provider.fetchable(stork));
    let mut sink = MediaSink::new(1 << 20).await.expect("sink");
    let declared = provider.fetch_media(&secrets, stork, &mut sink).await.expect("fetched");
    assert_eq!(declared.as_deref(), Some("text/plain"));
    // Exactly the part's body from the .eml (7bit: as written, up to the closing delimiter's CRLF).
    let find = |needle: &[u8]| raw.windows(needle.len()).position(|w| w == needle).expect("in the fixture");
    let start =
        find(b"filename=\"farmerandstork.txt\"\r\n\r\n") + b"filename=\"farmerandstork.txt\"\r\n\r\n".len();
    let end = find(b"\r\n--=====================_716740438==_--");
    assert_eq!(std::fs::read(sink.path()).expect("file"), raw[start..end].to_vec());
    let commands = commands.lock().expect("commands").clone();
    assert!(
        commands.iter().any(|c| c.starts_with("UID FETCH 3 ") && c.contains("BODY.PEEK[]")),
        "{commands:?}"
    );
    assert!(commands.iter().all(|c| !c.contains(FAKE_PASSWORD)));

    // Larger than the sink takes: refused, nothing written.
    let mut small = MediaSink::new(16).await.expect("sink");
    assert_eq!(
        provider.fetch_media(&secrets, stork, &mut small).await,
        Err(FetchError::TooLarge { limit: 16 })
    );
    assert_eq!(small.written(), 0);
}

#[tokio::test]
async fn a_rebuilt_mailbox_a_gone_mail_and_a_refused_login_are_told_apart() {
    let (imap_port, _) = fake_imap(8, vec![(3, fixture_eml())]).await;
    let provider = local_provider();
    let secrets = local_mailbox_secrets(imap_port, 9, FAKE_PASSWORD);
    let mut sink = MediaSink::new(1 << 20).await.expect("sink");
    let rebuilt = provider.fetch_media(&secrets, &part("imap:7:3:3"), &mut sink).await;
    assert!(
        matches!(&rebuilt, Err(FetchError::Unsupported(reason)) if reason.contains("rebuilt")),
        "{rebuilt:?}"
    );
    let gone = provider.fetch_media(&secrets, &part("imap:8:4:3"), &mut sink).await;
    assert!(
        matches!(&gone, Err(FetchError::Unsupported(reason)) if reason.contains("no longer")),
        "{gone:?}"
    );
    let no_part = provider.fetch_media(&secrets, &part("imap:8:3:9"), &mut sink).await;
    assert!(matches!(no_part, Err(FetchError::Unsupported(_))), "{no_part:?}");
    let wrong = local_mailbox_secrets(imap_port, 9, "wrong-password");
    let refused = provider.fetch_media(&wrong, &part("imap:8:3:3"), &mut sink).await;
    assert!(
        matches!(refused, Err(FetchError::Provider(ProviderError::InvalidCredentials(_)))),
        "{refused:?}"
    );
    // Nobody listening: worth trying again later.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let down = provider
        .fetch_media(&local_mailbox_secrets(closed, 9, FAKE_PASSWORD), &part("imap:8:3:3"), &mut sink)
        .await;
    assert!(matches!(&down, Err(FetchError::Provider(error)) if error.is_retryable()), "{down:?}");
    assert_eq!(sink.written(), 0);
}

fn fixture_eml() -> Vec<u8> {
    crate::test_support::fixture("email_multipart_attachment.eml")
}

#[tokio::test]
async fn a_reply_with_a_file_is_multipart_mixed_with_the_text_first() {
    let (smtp_port, mails) = fake_smtp().await;
    let provider = local_provider();
    let secrets = local_mailbox_secrets(9, smtp_port, FAKE_PASSWORD);
    let dir = tempfile::tempdir().expect("dir");
    let bytes: Vec<u8> =
        [0x89, b'P', b'N', b'G', 0x0D, 0x0A, 0x1A, 0x0A].into_iter().chain(0u8..=255).collect();
    let file = dir.path().join("attachment-0");
    std::fs::write(&file, &bytes).expect("written");
    let thread = MailThread {
        subject: Some("Where is my order?".into()),
        in_reply_to: Some("r2@example.com".into()),
        references: vec!["r2@example.com".into()],
    };
    let mut out = Outgoing { buttons: Vec::new(), ..outgoing(Some(thread)) };
    out.attachments = vec![OutgoingMedia {
        kind: AttachmentKind::Image,
        name: Some("receipt.png".into()),
        mime: "image/png".into(),
        size: bytes.len() as u64,
        url: "https://media.example.test/never-used".into(),
        path: Some(file),
    }];
    assert!(provider.sends_media_from_file());
    let sent = provider.send(&secrets, &out).await.expect("sent");
    assert_eq!(
        sent.provider_message_id.as_deref(),
        Some("0190a6a0-0000-7000-8000-0000000000aa.omnichat@shop.example")
    );
    let mails = mails.lock().expect("mails").clone();
    assert_eq!(mails.len(), 1);
    let mail = &mails[0];
    assert!(mail.contains("Content-Type: multipart/mixed;"), "{mail}");
    assert!(
        mail.contains("In-Reply-To: <r2@example.com>\r\n")
            && mail.contains("Subject: Re: Where is my order?\r\n"),
        "{mail}"
    );
    let text_at = mail.find("Your order ships tomorrow.").expect("the text");
    let file_at = mail.find("filename=\"receipt.png\"").expect("the file's name");
    assert!(text_at < file_at, "the text part first");
    assert!(mail.contains("Content-Type: image/png"), "{mail}");
    let encoded = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, &bytes);
    let body_lines: String = mail[file_at..].lines().map(str::trim_end).collect();
    assert!(body_lines.contains(&encoded), "the file base64-encoded: {mail}");
    // The parser the poller uses reads it back: one attachment with these bytes.
    let parsed = mail_parser::MessageParser::default().parse(mail.as_bytes()).expect("a mail");
    let attachment = parsed.attachments().next().expect("an attachment");
    assert_eq!(attachment.contents(), &bytes[..]);
    assert_eq!(attachment.attachment_name(), Some("receipt.png"));
}

#[tokio::test]
async fn a_file_without_text_goes_alone_and_the_sizes_are_bounded() {
    let (smtp_port, mails) = fake_smtp().await;
    let provider = local_provider();
    let dir = tempfile::tempdir().expect("dir");
    let file = dir.path().join("attachment-0");
    std::fs::write(&file, b"%PDF-1.7 tiny").expect("written");
    let mut out = Outgoing { buttons: Vec::new(), text: String::new(), ..outgoing(None) };
    out.attachments = vec![OutgoingMedia {
        kind: AttachmentKind::Document,
        name: Some("contract.pdf".into()),
        mime: "application/pdf".into(),
        size: 13,
        url: String::new(),
        path: Some(file),
    }];
    provider.send(&local_mailbox_secrets(9, smtp_port, FAKE_PASSWORD), &out).await.expect("sent");
    let mail = mails.lock().expect("mails")[0].clone();
    assert!(mail.contains("Subject: contract.pdf\r\n"), "the file names an unthreaded reply: {mail}");
    assert!(!mail.contains("text/plain"), "no empty text part: {mail}");
    assert!(mail.contains("filename=\"contract.pdf\""), "{mail}");
    // A file the outbox did not hand over is refused for good, before any connection.
    out.attachments[0].path = None;
    let refused = provider.send(&local_mailbox_secrets(9, smtp_port, FAKE_PASSWORD), &out).await;
    assert!(matches!(refused, Err(ProviderError::Rejected(_))), "{refused:?}");

    assert_eq!(provider.media_limit(AttachmentKind::Image), Some(MAX_ATTACHMENT_BYTES));
    assert_eq!(provider.media_limit(AttachmentKind::Document), Some(18_000_000));
    assert_eq!(provider.media_limit(AttachmentKind::Location), None);
}
