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
