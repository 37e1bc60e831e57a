//! The e-mail channel end to end against real servers on 127.0.0.1: dovecot (IMAP) and aiosmtpd (SMTP),
//! started by `infra/mail/with-mail-servers.sh`. Mail is delivered into the mailbox with IMAP APPEND; the
//! local runner's timer polls it (every second in tests); replies are read back from the SMTP server's
//! folder.
//!
//! Both servers also speak TLS (STARTTLS and TLS from the first byte) with a certificate the script's CA
//! signed; the script puts that CA in `SSL_CERT_FILE`, which the platform verifier reads.
//!
//! Without the servers these tests print "skipped: mail servers not running" and pass; with
//! `OMNICHAT_MAIL_SERVERS=1` (set by the script) an unreachable server fails them.

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use omnichat::domain::ChannelId;
use omnichat::net::OutboundPolicy;
use omnichat::ports::store::{Condition, Write};
use omnichat::providers::email::imap::{self, Inbox};
use omnichat::providers::email::{EmailProvider, Endpoint, LoginSecret, Security};
use omnichat::repo;
use omnichat::secret::Secret;
use omnichat::usecases::email_poll;
use omnichat_tests::{JPEG, PNG, TestApp, fixture};
use serde_json::{Value, json};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

/// Where the script's servers are.
struct MailServers {
    imap_port: u16,
    smtp_port: u16,
    /// TLS from the first byte; the plain ports offer STARTTLS. The certificate names `localhost` only.
    imaps_port: u16,
    smtps_port: u16,
    password: String,
    outbox: PathBuf,
    token_prefix: String,
    maildir_root: PathBuf,
}

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

/// The servers, or `None` (the test then passes as skipped) when they are not running and not required.
async fn mail_servers() -> Option<MailServers> {
    let required = env("OMNICHAT_MAIL_SERVERS").as_deref() == Some("1");
    let found = (|| {
        Some(MailServers {
            imap_port: env("OMNICHAT_TEST_IMAP_PORT")?.parse().ok()?,
            smtp_port: env("OMNICHAT_TEST_SMTP_PORT")?.parse().ok()?,
            imaps_port: env("OMNICHAT_TEST_IMAPS_PORT")?.parse().ok()?,
            smtps_port: env("OMNICHAT_TEST_SMTPS_PORT")?.parse().ok()?,
            password: env("OMNICHAT_TEST_MAIL_PASSWORD")?,
            outbox: env("OMNICHAT_TEST_SMTP_OUTBOX")?.into(),
            token_prefix: env("OMNICHAT_TEST_OAUTH_TOKEN_PREFIX")?,
            maildir_root: env("OMNICHAT_TEST_MAILDIR_ROOT")?.into(),
        })
    })();
    let Some(servers) = found else {
        assert!(!required, "OMNICHAT_MAIL_SERVERS=1 but the servers' variables are missing");
        eprintln!("skipped: mail servers not running (run under infra/mail/with-mail-servers.sh)");
        return None;
    };
    for port in [servers.imap_port, servers.smtp_port, servers.imaps_port, servers.smtps_port] {
        if let Err(error) = tokio::net::TcpStream::connect(("127.0.0.1", port)).await {
            assert!(!required, "mail server on 127.0.0.1:{port} unreachable: {error}");
            eprintln!("skipped: mail servers not running (127.0.0.1:{port}: {error})");
            return None;
        }
    }
    Some(servers)
}

impl MailServers {
    fn imap(&self) -> Endpoint {
        Endpoint { host: "127.0.0.1".into(), port: self.imap_port, security: Security::Plain }
    }

    /// A mailbox of its own for each test: dovecot makes one per user name.
    fn new_user(&self) -> String {
        format!("box-{}", uuid::Uuid::now_v7().simple())
    }

    fn credentials(&self, user: &str) -> Value {
        json!({
            "address": format!("{user}@shop.example"),
            "login": user,
            "password": self.password,
            "imap": {"host": "127.0.0.1", "port": self.imap_port, "tls": "none"},
            "smtp": {"host": "127.0.0.1", "port": self.smtp_port, "tls": "none"}
        })
    }

    /// Delivers a mail into the user's INBOX, as the mail server would.
    async fn deliver(&self, user: &str, raw: &[u8]) {
        let mut inbox = self.inbox(user).await;
        inbox.append(raw).await.expect("APPEND");
        inbox.logout().await;
    }

    async fn inbox(&self, user: &str) -> Inbox {
        imap::open_inbox(
            &self.imap(),
            OutboundPolicy::allowing_loopback(),
            user,
            &LoginSecret::Password(Secret::new(self.password.clone())),
        )
        .await
        .expect("IMAP login")
    }

    /// The messages the SMTP server accepted for `recipient`: (envelope and login, raw message).
    fn sent_to(&self, recipient: &str) -> Vec<(Value, String)> {
        let mut found = Vec::new();
        let mut names: Vec<PathBuf> = std::fs::read_dir(&self.outbox)
            .map(|dir| dir.filter_map(|e| e.ok().map(|e| e.path())).collect())
            .unwrap_or_default();
        names.sort();
        for eml in names.into_iter().filter(|p| p.extension().is_some_and(|e| e == "eml")) {
            let Ok(meta) = std::fs::read_to_string(eml.with_extension("json")) else { continue };
            let meta: Value = serde_json::from_str(&meta).expect("envelope JSON");
            if meta["rcpt_tos"].as_array().is_some_and(|to| to.iter().any(|r| r == recipient)) {
                found.push((meta, std::fs::read_to_string(&eml).expect("message")));
            }
        }
        found
    }
}

fn mail(from: &str, to: &str, message_id: &str, subject: &str, extra_headers: &str, body: &str) -> Vec<u8> {
    format!(
        "From: {from}\r\nTo: {to}\r\nSubject: {subject}\r\nMessage-ID: <{message_id}>\r\n\
         Date: Mon, 3 Jun 2024 10:00:00 +0000\r\n{extra_headers}MIME-Version: 1.0\r\n\
         Content-Type: text/plain; charset=utf-8\r\n\r\n{body}\r\n"
    )
    .into_bytes()
}

/// Waits (up to 20 s) until `check` answers something.
async fn eventually<T, F: Future<Output = Option<T>>>(what: &str, mut check: impl FnMut() -> F) -> T {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(found) = check().await {
            return found;
        }
        assert!(tokio::time::Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn spawn(provider: EmailProvider) -> TestApp {
    let provider = Arc::new(provider);
    TestApp::spawn_with(move |providers| providers.with_email(provider)).await
}

async fn connect(app: &TestApp, credentials: Value) -> Value {
    let (status, channel) = app
        .post(
            "/v1/channels",
            &json!({"provider": "email", "name": "Support mail", "credentials": credentials}),
        )
        .await;
    assert_eq!(status, 201, "{channel}");
    channel
}

async fn dialogs(app: &TestApp) -> Vec<Value> {
    let (status, body) = app.get("/v1/dialogs").await;
    assert_eq!(status, 200, "{body}");
    body["items"].as_array().cloned().unwrap_or_default()
}

async fn messages(app: &TestApp, dialog_id: &str) -> Vec<Value> {
    let (status, body) = app.get(&format!("/v1/dialogs/{dialog_id}/messages")).await;
    assert_eq!(status, 200, "{body}");
    body["items"].as_array().cloned().unwrap_or_default()
}

/// The dialogs once there are `count` of them, holding `messages_in_all` messages between them.
async fn settled(app: &TestApp, count: usize, messages_in_all: usize) -> Vec<Value> {
    eventually(&format!("{count} dialogs with {messages_in_all} messages"), || async {
        let found = dialogs(app).await;
        let mut total = 0;
        for dialog in &found {
            total += messages(app, dialog["id"].as_str()?).await.len();
        }
        (found.len() == count && total == messages_in_all).then_some(found)
    })
    .await
}

/// One more poll of the channel, run here (the runner's timer polls too; a poll that finds the mailbox
/// held by the timer's is retried).
async fn poll_once(app: &TestApp, channel: &Value) -> email_poll::MailReport {
    let ctx = &app.running().context;
    let mailboxes = ctx.providers.mailboxes().expect("the e-mail module reads mailboxes");
    let id = ChannelId::parse(channel["id"].as_str().expect("id")).expect("channel id");
    eventually("a poll of our own", || async {
        email_poll::poll_channel(ctx, mailboxes, &id).await.expect("poll")
    })
    .await
}

/// A header of a raw message, unfolded (long headers continue on lines starting with white space).
fn header(raw: &str, name: &str) -> Option<String> {
    let head = raw.split("\r\n\r\n").next()?;
    let unfolded = head.replace("\r\n ", " ").replace("\r\n\t", " ");
    unfolded.split("\r\n").find_map(|line| {
        let (key, value) = line.split_once(':')?;
        key.eq_ignore_ascii_case(name).then(|| value.split_whitespace().collect::<Vec<_>>().join(" "))
    })
}

#[tokio::test]
async fn the_fixtures_come_out_as_normalized_messages() {
    let Some(servers) = mail_servers().await else { return };
    let app = spawn(EmailProvider::new(omnichat::providers::http_client()).allowing_loopback()).await;
    let user = servers.new_user();
    let channel = connect(&app, servers.credentials(&user)).await;
    assert_eq!(channel["account"]["name"], format!("{user}@shop.example"));
    assert!(channel["credentials"]["password"].as_str().is_some_and(|p| p.starts_with("****")), "{channel}");
    assert!(!channel.to_string().contains(&servers.password), "credentials are never shown in clear");

    servers.deliver(&user, &fixture("email_multipart_attachment.eml")).await;
    servers.deliver(&user, &fixture("email_ses_sns_content.eml")).await;
    let found = settled(&app, 2, 2).await;

    let uid_validity = servers.inbox(&user).await.uid_validity;
    let by_customer =
        |id: &str| found.iter().find(|d| d["customer"]["external_id"] == id).cloned().expect(id);
    let fable = by_customer("dwsauder@example.com");
    assert_eq!(fable["customer"]["name"], "Doug Sauder");
    let fable_messages = messages(&app, fable["id"].as_str().unwrap()).await;
    let message = &fable_messages[0];
    assert_eq!(message["direction"], "in");
    assert_eq!(message["provider_message_id"], "4.2.0.58.20000519005818.00a86aa0@pop.example.com");
    let text = message["text"].as_str().unwrap();
    assert!(
        text.starts_with("Die Hasen und die Frösche\n\nDie Hasen klagten einst über ihre mißliche Lage"),
        "{text}"
    );
    assert_eq!(message["sent_at"], "2000-05-19T04:59:31Z");
    let attachments = message["attachments"].as_array().unwrap();
    assert_eq!(attachments.len(), 2, "{attachments:?}");
    // The API shows an attachment as the file the runner keeps, never the mailbox's part reference
    // (the part is fetched by it: e2e_email_media_attachments_are_fetched_from_the_mailbox_kept_and_served).
    assert!(!message.to_string().contains(&format!("imap:{uid_validity}:")), "{message}");
    let settled = app.settled_messages(fable["id"].as_str().unwrap()).await;
    let stork = &settled[0]["attachments"][1];
    assert_eq!(stork["name"], "farmerandstork.txt");
    assert_eq!(stork["mime_type"], "text/plain");
    assert_eq!(stork["kind"], "file");
    assert!(stork["size"].as_u64().is_some_and(|s| s > 700), "{stork}");
    assert!(!message.to_string().contains("A FARMER placed nets"), "attachments are referenced, not inlined");

    let ses = by_customer("sender@example.com");
    let ses_messages = messages(&app, ses["id"].as_str().unwrap()).await;
    assert_eq!(ses_messages[0]["text"], "Example subject\n\nExample content");
    assert_eq!(ses_messages[0]["provider_message_id"], "61967230-7A45-4A9D-BEC9-87CBCF2211C9@example.com");
}

#[tokio::test]
async fn a_customer_mail_becomes_a_dialog_the_reply_threads_and_the_answer_joins_it() {
    let Some(servers) = mail_servers().await else { return };
    let app = spawn(EmailProvider::new(omnichat::providers::http_client()).allowing_loopback()).await;
    let user = servers.new_user();
    let address = format!("{user}@shop.example");
    let channel = connect(&app, servers.credentials(&user)).await;

    let customer = format!("anna-{user}@example.com");
    let first_id = format!("first-{user}@example.com");
    servers
        .deliver(
            &user,
            &mail(
                &format!("Anna <{customer}>"),
                &address,
                &first_id,
                "Where is my order?",
                "",
                "Order 42 is late.",
            ),
        )
        .await;
    let found = settled(&app, 1, 1).await;
    let dialog_id = found[0]["id"].as_str().unwrap().to_owned();
    assert_eq!(found[0]["customer"]["external_id"], customer.as_str());
    assert_eq!(found[0]["customer"]["name"], "Anna");
    assert_eq!(messages(&app, &dialog_id).await[0]["text"], "Where is my order?\n\nOrder 42 is late.");

    // The employee's reply goes out by SMTP, threaded under the customer's mail.
    let (status, reply) =
        app.post(&format!("/v1/dialogs/{dialog_id}/messages"), &json!({"text": "It ships tomorrow."})).await;
    assert_eq!(status, 201, "{reply}");
    assert_eq!(reply["status"], "sent", "{reply}");
    let our_id = reply["provider_message_id"].as_str().expect("our Message-ID").to_owned();
    assert!(our_id.ends_with("@shop.example"), "{our_id}");
    let sent = servers.sent_to(&customer);
    assert_eq!(sent.len(), 1, "{sent:?}");
    let (envelope, raw) = &sent[0];
    assert_eq!(envelope["mail_from"], address);
    assert_eq!(envelope["login"], user, "the reply was sent logged in");
    assert_eq!(header(raw, "Message-ID"), Some(format!("<{our_id}>")));
    assert_eq!(header(raw, "In-Reply-To"), Some(format!("<{first_id}>")));
    assert_eq!(header(raw, "References"), Some(format!("<{first_id}>")));
    assert_eq!(header(raw, "Subject").as_deref(), Some("Re: Where is my order?"));
    assert_eq!(header(raw, "From"), Some(address.clone()));
    assert!(raw.contains("It ships tomorrow."), "{raw}");

    // The customer's answer to it joins the same dialog; the quoted original is cut off.
    let answer_id = format!("answer-{user}@example.com");
    let threading = format!("In-Reply-To: <{our_id}>\r\nReferences: <{first_id}> <{our_id}>\r\n");
    let body = format!("Thank you!\r\n\r\nOn Mon, 3 Jun 2024, {address} wrote:\r\n> It ships tomorrow.\r\n");
    servers
        .deliver(&user, &mail(&customer, &address, &answer_id, "Re: Where is my order?", &threading, &body))
        .await;
    let found = settled(&app, 1, 3).await;
    assert_eq!(found[0]["id"], dialog_id);
    let all = messages(&app, &dialog_id).await;
    let texts: Vec<&str> = all.iter().map(|m| m["text"].as_str().unwrap_or_default()).collect();
    assert_eq!(texts, ["Where is my order?\n\nOrder 42 is late.", "It ships tomorrow.", "Thank you!"]);

    // A second reply answers the latest mail, with the whole thread in References.
    let (status, _) =
        app.post(&format!("/v1/dialogs/{dialog_id}/messages"), &json!({"text": "You're welcome."})).await;
    assert_eq!(status, 201);
    let sent = servers.sent_to(&customer);
    assert_eq!(sent.len(), 2);
    let raw = &sent[1].1;
    assert_eq!(header(raw, "In-Reply-To"), Some(format!("<{answer_id}>")));
    assert_eq!(header(raw, "References"), Some(format!("<{first_id}> <{our_id}> <{answer_id}>")));

    // Polling again (the timer has polled every second meanwhile) stores nothing twice, even when the
    // poller forgets where it was and fetches the whole mailbox again.
    let again = poll_once(&app, &channel).await;
    assert_eq!((again.fetched, again.stored), (0, 0), "{again:?}");
    let ctx = &app.running().context;
    let id = ChannelId::parse(channel["id"].as_str().unwrap()).unwrap();
    let forget = Write::Delete { key: repo::mailbox_sync_key(&id), condition: Condition::Always };
    ctx.store.transact(vec![forget]).await.expect("state dropped");
    let refetched = poll_once(&app, &channel).await;
    assert_eq!((refetched.fetched, refetched.stored, refetched.duplicates), (2, 0, 2), "{refetched:?}");
    settled(&app, 1, 4).await;
}

#[tokio::test]
async fn writing_first_to_an_address_sends_mail_and_the_answer_joins_the_dialog() {
    let Some(servers) = mail_servers().await else { return };
    let app = spawn(EmailProvider::new(omnichat::providers::http_client()).allowing_loopback()).await;
    let user = servers.new_user();
    let address = format!("{user}@shop.example");
    let channel = connect(&app, servers.credentials(&user)).await;
    let customer = format!("boris-{user}@example.com");

    let (status, error) = app
        .post(
            "/v1/dialogs",
            &json!({"channel_id": channel["id"], "to": {"phone": "+79165551234"}, "text": "Hi"}),
        )
        .await;
    assert_eq!((status, &error["error"]["field"]), (422, &json!("to")), "{error}");
    let body = json!({"channel_id": channel["id"], "to": {"address": customer.to_uppercase()},
                      "text": "Your invoice is ready\n\nSee the attachment in your account."});
    let (status, started) = app.post("/v1/dialogs", &body).await;
    assert_eq!(status, 201, "{started}");
    assert_eq!(started["dialog"]["customer"]["external_id"], customer.as_str(), "the address, lower case");
    assert_eq!(started["message"]["status"], "sent", "{started}");
    let our_id = started["message"]["provider_message_id"].as_str().expect("Message-ID").to_owned();
    let sent = servers.sent_to(&customer);
    assert_eq!(sent.len(), 1, "{sent:?}");
    assert_eq!(header(&sent[0].1, "Subject").as_deref(), Some("Your invoice is ready"));

    // The answer joins the dialog the business opened.
    let threading = format!("In-Reply-To: <{our_id}>\r\nReferences: <{our_id}>\r\n");
    let answer = mail(
        &customer,
        &address,
        &format!("a-{user}@example.com"),
        "Re: Your invoice is ready",
        &threading,
        "Got it",
    );
    servers.deliver(&user, &answer).await;
    let found = settled(&app, 1, 2).await;
    assert_eq!(found[0]["id"], started["dialog"]["id"]);
}

#[tokio::test]
async fn a_changed_uidvalidity_stores_nothing_twice() {
    let Some(servers) = mail_servers().await else { return };
    let app = spawn(EmailProvider::new(omnichat::providers::http_client()).allowing_loopback()).await;
    let user = servers.new_user();
    let address = format!("{user}@shop.example");
    let channel = connect(&app, servers.credentials(&user)).await;
    for n in 1..=2 {
        let id = format!("m{n}-{user}@example.com");
        servers
            .deliver(&user, &mail(&format!("c{n}@example.com"), &address, &id, &format!("Q{n}"), "", "?"))
            .await;
    }
    settled(&app, 2, 2).await;
    let before = servers.inbox(&user).await.uid_validity;

    // The server loses its UID state (a rebuilt index): dovecot starts the mailbox over with a new
    // UIDVALIDITY, numbering the same messages anew.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let maildir = servers.maildir_root.join(&user);
    for entry in std::fs::read_dir(&maildir).expect("maildir") {
        let path = entry.expect("entry").path();
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default().to_owned();
        if name.starts_with("dovecot-uidlist") || name.starts_with("dovecot.index") {
            std::fs::remove_file(&path).expect("UID state removed");
        }
    }
    let after = servers.inbox(&user).await.uid_validity;
    assert_ne!(before, after, "the test must really change UIDVALIDITY");

    let id = format!("m3-{user}@example.com");
    servers.deliver(&user, &mail("c3@example.com", &address, &id, "Q3", "", "?")).await;
    settled(&app, 3, 3).await;
    let ctx = &app.running().context;
    let channel_id = ChannelId::parse(channel["id"].as_str().unwrap()).unwrap();
    let state = eventually("the sync state with the new UIDVALIDITY", || async {
        let item = ctx.store.get(&repo::mailbox_sync_key(&channel_id)).await.expect("get")?;
        (item["uid_validity"] == json!(after)).then_some(item)
    })
    .await;
    assert_eq!(state["last_uid"], 3, "{state:?}");
    let again = poll_once(&app, &channel).await;
    assert_eq!(again.stored, 0, "{again:?}");
    settled(&app, 3, 3).await;
}

#[tokio::test]
async fn automatic_mail_opens_no_dialog_and_a_bounce_fails_our_reply() {
    let Some(servers) = mail_servers().await else { return };
    let app = spawn(EmailProvider::new(omnichat::providers::http_client()).allowing_loopback()).await;
    let user = servers.new_user();
    let address = format!("{user}@shop.example");
    let channel = connect(&app, servers.credentials(&user)).await;

    let stranger = format!("stranger-{user}@example.com");
    let automatic = [
        ("Auto-Submitted: auto-replied\r\n", "ooo"),
        ("Precedence: bulk\r\n", "bulk"),
        ("List-Id: <news.example.com>\r\n", "list"),
        ("", "own"),
    ];
    for (headers, tag) in automatic {
        let from = if tag == "own" { address.clone() } else { stranger.clone() };
        let id = format!("{tag}-{user}@example.com");
        servers.deliver(&user, &mail(&from, &address, &id, "Automatic", headers, "Out of office")).await;
    }
    let daemon = mail(
        "MAILER-DAEMON@mx.example.net",
        &address,
        &format!("daemon-{user}@mx.example.net"),
        "Undelivered Mail Returned to Sender",
        "",
        "Your message could not be delivered.",
    );
    servers.deliver(&user, &daemon).await;
    // Polled until a poll finds nothing new: everything delivered so far was handled.
    eventually("the automatic mail handled", || async {
        (poll_once(&app, &channel).await.fetched == 0).then_some(())
    })
    .await;
    assert!(dialogs(&app).await.is_empty(), "automatic mail opened a dialog");

    // A customer's dialog and our reply; the reply bounces, and the customer's out-of-office in answer to
    // it joins the dialog (it answers one of its messages) without opening another.
    let customer = format!("carl-{user}@example.com");
    servers
        .deliver(&user, &mail(&customer, &address, &format!("c-{user}@example.com"), "Help", "", "Hi"))
        .await;
    let found = settled(&app, 1, 1).await;
    let dialog_id = found[0]["id"].as_str().unwrap().to_owned();
    let (status, reply) =
        app.post(&format!("/v1/dialogs/{dialog_id}/messages"), &json!({"text": "Hello"})).await;
    assert_eq!(status, 201, "{reply}");
    let our_id = reply["provider_message_id"].as_str().unwrap().to_owned();

    let ooo = mail(
        &customer,
        &address,
        &format!("ooo2-{user}@example.com"),
        "Automatic reply: Re: Help",
        &format!("Auto-Submitted: auto-replied\r\nIn-Reply-To: <{our_id}>\r\n"),
        "I am away until Monday.",
    );
    servers.deliver(&user, &ooo).await;
    settled(&app, 1, 3).await;

    let bounce = format!(
        "From: Mail Delivery System <MAILER-DAEMON@mx.example.net>\r\nTo: {address}\r\n\
         Subject: Undelivered Mail Returned to Sender\r\nMessage-ID: <bounce-{user}@mx.example.net>\r\n\
         MIME-Version: 1.0\r\nContent-Type: multipart/report; report-type=delivery-status; boundary=\"r\"\r\n\r\n\
         --r\r\nContent-Type: text/plain\r\n\r\nNot delivered.\r\n\
         --r\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; mx.example.net\r\n\r\n\
         Final-Recipient: rfc822; {customer}\r\nAction: failed\r\nStatus: 5.1.1\r\n\
         Diagnostic-Code: smtp; 550 5.1.1 mailbox unavailable\r\n\
         --r\r\nContent-Type: text/rfc822-headers\r\n\r\nFrom: {address}\r\nTo: {customer}\r\n\
         Message-ID: <{our_id}>\r\n--r--\r\n"
    );
    servers.deliver(&user, bounce.as_bytes()).await;
    let failed = eventually("the bounced reply marked failed", || async {
        let all = messages(&app, &dialog_id).await;
        all.into_iter().find(|m| m["direction"] == "out" && m["status"] == "failed")
    })
    .await;
    assert!(failed["failure"].as_str().is_some_and(|f| f.contains("550 5.1.1")), "{failed}");
    assert_eq!(dialogs(&app).await.len(), 1);
    assert_eq!(messages(&app, &dialog_id).await.len(), 3, "the bounce is no customer message");
}

#[tokio::test]
async fn connecting_names_the_server_that_refused() {
    let Some(servers) = mail_servers().await else { return };
    let app = spawn(EmailProvider::new(omnichat::providers::http_client()).allowing_loopback()).await;
    let user = servers.new_user();

    let mut wrong_password = servers.credentials(&user);
    wrong_password["password"] = json!("not-the-password");
    let (status, body) = app
        .post("/v1/channels", &json!({"provider": "email", "name": "m", "credentials": wrong_password}))
        .await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["error"]["field"], "credentials.imap", "{body}");
    assert_eq!(body["error"]["code"], "login_refused", "{body}");

    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let mut no_smtp = servers.credentials(&user);
    no_smtp["smtp"]["port"] = json!(closed);
    let (status, body) =
        app.post("/v1/channels", &json!({"provider": "email", "name": "m", "credentials": no_smtp})).await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["error"]["field"], "credentials.smtp", "{body}");

    let (_, listed) = app.get("/v1/channels").await;
    assert_eq!(listed["items"], json!([]), "a refused connect leaves no channel");
}

#[tokio::test]
async fn an_oauth_mailbox_reads_and_answers_with_xoauth2() {
    let Some(servers) = mail_servers().await else { return };
    let user = servers.new_user();
    // The provider's token endpoint (not reachable from tests): refreshing gives the token the test
    // servers accept for this user; another refresh token is refused.
    let tokens = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/token"))
        .and(wiremock::matchers::body_string_contains("refresh_token=good-refresh"))
        .respond_with(ResponseTemplate::new(200).set_body_json(
            json!({"access_token": format!("{}{user}", servers.token_prefix), "expires_in": 3600}),
        ))
        .mount(&tokens)
        .await;
    Mock::given(method("POST"))
        .and(path("/token"))
        .and(wiremock::matchers::body_string_contains("refresh_token=stale-refresh"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"access_token": "ya29.not-accepted"})))
        .mount(&tokens)
        .await;
    Mock::given(method("POST"))
        .and(path("/token"))
        .respond_with(ResponseTemplate::new(400).set_body_json(json!({"error": "invalid_grant"})))
        .mount(&tokens)
        .await;
    let provider = EmailProvider::new(omnichat::providers::http_client())
        .allowing_loopback()
        .with_token_url(format!("{}/token", tokens.uri()));
    let app = spawn(provider).await;
    let address = format!("{user}@shop.example");
    let credentials = |refresh: &str| {
        json!({
            "address": address, "login": user,
            "oauth": {"client_id": "omnichat-test", "client_secret": "s3cret-client", "refresh_token": refresh,
                      "token_url": "https://oauth2.googleapis.com/token"},
            "imap": {"host": "127.0.0.1", "port": servers.imap_port, "tls": "none"},
            "smtp": {"host": "127.0.0.1", "port": servers.smtp_port, "tls": "none"}
        })
    };
    let refused = |body: Value| (body["error"]["field"].as_str().unwrap_or_default().to_owned(), body);
    let (status, body) = app
        .post(
            "/v1/channels",
            &json!({"provider": "email", "name": "m", "credentials": credentials("revoked")}),
        )
        .await;
    assert_eq!(status, 422);
    assert_eq!(refused(body).0, "credentials.oauth.refresh_token");
    let (status, body) = app
        .post(
            "/v1/channels",
            &json!({"provider": "email", "name": "m", "credentials": credentials("stale-refresh")}),
        )
        .await;
    assert_eq!(status, 422);
    assert_eq!(refused(body).0, "credentials.imap", "dovecot refused the access token");

    let channel = connect(&app, credentials("good-refresh")).await;
    assert!(!channel.to_string().contains("good-refresh"), "{channel}");
    let customer = format!("olga-{user}@example.com");
    servers
        .deliver(&user, &mail(&customer, &address, &format!("o-{user}@example.com"), "Hello", "", "Hi"))
        .await;
    let found = settled(&app, 1, 1).await;
    let dialog_id = found[0]["id"].as_str().unwrap();
    let (status, reply) =
        app.post(&format!("/v1/dialogs/{dialog_id}/messages"), &json!({"text": "Hi Olga"})).await;
    assert_eq!(status, 201, "{reply}");
    assert_eq!(reply["status"], "sent", "{reply}");
    let sent = servers.sent_to(&customer);
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].0["login"], user, "SMTP AUTH XOAUTH2 as the mailbox's user");
}

#[tokio::test]
async fn tls_and_starttls_are_used_and_the_certificate_is_checked() {
    let Some(servers) = mail_servers().await else { return };
    let app = spawn(EmailProvider::new(omnichat::providers::http_client()).allowing_loopback()).await;
    let with_servers = |user: &str, imap: Value, smtp: Value| {
        let mut credentials = servers.credentials(user);
        credentials["imap"] = imap;
        credentials["smtp"] = smtp;
        credentials
    };

    // IMAP with TLS from the first byte, SMTP upgraded with STARTTLS.
    let user = servers.new_user();
    let address = format!("{user}@shop.example");
    connect(
        &app,
        with_servers(
            &user,
            json!({"host": "localhost", "port": servers.imaps_port, "tls": "tls"}),
            json!({"host": "localhost", "port": servers.smtp_port, "tls": "starttls"}),
        ),
    )
    .await;
    // Delivered over IMAP STARTTLS.
    let starttls =
        Endpoint { host: "localhost".into(), port: servers.imap_port, security: Security::StartTls };
    let secret = LoginSecret::Password(Secret::new(servers.password.clone()));
    let mut inbox = imap::open_inbox(&starttls, OutboundPolicy::allowing_loopback(), &user, &secret)
        .await
        .expect("IMAP STARTTLS login");
    let customer = format!("tess-{user}@example.com");
    inbox
        .append(&mail(&customer, &address, &format!("t-{user}@example.com"), "TLS?", "", "Hi"))
        .await
        .expect("APPEND");
    inbox.logout().await;
    let found = settled(&app, 1, 1).await;
    let dialog_id = found[0]["id"].as_str().unwrap();
    let (status, reply) =
        app.post(&format!("/v1/dialogs/{dialog_id}/messages"), &json!({"text": "Encrypted"})).await;
    assert_eq!((status, &reply["status"]), (201, &json!("sent")), "{reply}");
    let sent = servers.sent_to(&customer);
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].0["tls"], true, "the reply went over STARTTLS");

    // IMAP STARTTLS, SMTP with TLS from the first byte: connecting logs in to both.
    let other = servers.new_user();
    connect(
        &app,
        with_servers(
            &other,
            json!({"host": "localhost", "port": servers.imap_port, "tls": "starttls"}),
            json!({"host": "localhost", "port": servers.smtps_port, "tls": "tls"}),
        ),
    )
    .await;

    // The certificate names localhost, not 127.0.0.1: a client that checks it refuses the connection.
    let refused = |imap: Value, smtp: Value| {
        let credentials = with_servers(&servers.new_user(), imap, smtp);
        let app = &app;
        async move {
            let (status, body) = app
                .post("/v1/channels", &json!({"provider": "email", "name": "m", "credentials": credentials}))
                .await;
            assert_eq!(status, 422, "{body}");
            body["error"]["field"].as_str().unwrap_or_default().to_owned()
        }
    };
    let good_smtp = json!({"host": "localhost", "port": servers.smtps_port, "tls": "tls"});
    let good_imap = json!({"host": "localhost", "port": servers.imaps_port, "tls": "tls"});
    assert_eq!(
        refused(json!({"host": "127.0.0.1", "port": servers.imaps_port, "tls": "tls"}), good_smtp.clone())
            .await,
        "credentials.imap"
    );
    assert_eq!(
        refused(json!({"host": "127.0.0.1", "port": servers.imap_port, "tls": "starttls"}), good_smtp).await,
        "credentials.imap"
    );
    assert_eq!(
        refused(good_imap, json!({"host": "127.0.0.1", "port": servers.smtps_port, "tls": "tls"})).await,
        "credentials.smtp"
    );
}

/// A mail from `from` with `bytes` attached base64-encoded as `name` (`mime`).
fn mail_with_file(from: &str, to: &str, message_id: &str, name: &str, mime: &str, bytes: &[u8]) -> Vec<u8> {
    let encoded = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, bytes);
    format!(
        "From: {from}\r\nTo: {to}\r\nSubject: A photo\r\nMessage-ID: <{message_id}>\r\n\
         Date: Mon, 3 Jun 2024 10:00:00 +0000\r\nMIME-Version: 1.0\r\n\
         Content-Type: multipart/mixed; boundary=\"b1\"\r\n\r\n\
         --b1\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nSee the photo.\r\n\
         --b1\r\nContent-Type: {mime}; name=\"{name}\"\r\nContent-Transfer-Encoding: base64\r\n\
         Content-Disposition: attachment; filename=\"{name}\"\r\n\r\n{encoded}\r\n--b1--\r\n"
    )
    .into_bytes()
}

#[tokio::test]
async fn e2e_email_media_attachments_are_fetched_from_the_mailbox_kept_and_served() {
    let Some(servers) = mail_servers().await else { return };
    let app = spawn(EmailProvider::new(omnichat::providers::http_client()).allowing_loopback()).await;
    let user = servers.new_user();
    let address = format!("{user}@shop.example");
    connect(&app, servers.credentials(&user)).await;
    let raw = fixture("email_multipart_attachment.eml");
    servers.deliver(&user, &raw).await;
    let photo_from = format!("photo-{user}@example.com");
    let photo = mail_with_file(
        &photo_from,
        &address,
        &format!("p-{user}@example.com"),
        "cat.jpg",
        "image/jpeg",
        JPEG,
    );
    servers.deliver(&user, &photo).await;
    let found = settled(&app, 2, 2).await;
    let by_customer =
        |id: &str| found.iter().find(|d| d["customer"]["external_id"] == id).cloned().expect(id);

    // The fixture's 7bit text part, byte for byte as the mail has it.
    let fable = app.settled_messages(by_customer("dwsauder@example.com")["id"].as_str().unwrap()).await;
    let attachments = fable[0]["attachments"].as_array().cloned().unwrap_or_default();
    let stork = attachments.iter().find(|a| a["name"] == "farmerandstork.txt").expect("the stork");
    let find = |needle: &[u8]| raw.windows(needle.len()).position(|w| w == needle).expect("in the fixture");
    let start =
        find(b"filename=\"farmerandstork.txt\"\r\n\r\n") + b"filename=\"farmerandstork.txt\"\r\n\r\n".len();
    let end = find(b"\r\n--=====================_716740438==_--");
    assert_eq!(stork["kind"], "file", "{stork}");
    app.assert_served(stork, &raw[start..end], "text/plain").await;

    // A base64 image: decoded, sniffed, served.
    let photo = app.settled_messages(by_customer(&photo_from)["id"].as_str().unwrap()).await;
    let image = &photo[0]["attachments"][0];
    assert_eq!((image["kind"].as_str(), image["name"].as_str()), (Some("image"), Some("cat.jpg")), "{image}");
    app.assert_served(image, JPEG, "image/jpeg").await;
    let shown = serde_json::to_string(&[fable, photo]).expect("json");
    assert!(!shown.contains(&servers.password), "the password is shown: {shown}");
}

#[tokio::test]
async fn e2e_email_media_a_reply_carries_the_uploaded_png() {
    let Some(servers) = mail_servers().await else { return };
    let app = spawn(EmailProvider::new(omnichat::providers::http_client()).allowing_loopback()).await;
    let user = servers.new_user();
    let address = format!("{user}@shop.example");
    connect(&app, servers.credentials(&user)).await;
    let customer = format!("anna-{user}@example.com");
    let first = mail(&customer, &address, &format!("q-{user}@example.com"), "Receipt?", "", "Please.");
    servers.deliver(&user, &first).await;
    let dialog = settled(&app, 1, 1).await[0]["id"].as_str().expect("id").to_owned();

    let id = app.upload_png("receipt.png").await;
    let (status, reply) = app
        .post(&format!("/v1/dialogs/{dialog}/messages"), &json!({"text": "Here it is.", "attachments": [id]}))
        .await;
    assert_eq!(status, 201, "{reply}");
    assert_eq!(reply["status"], "sent", "{reply}");
    let sent = servers.sent_to(&customer);
    assert_eq!(sent.len(), 1, "{sent:?}");
    let raw = &sent[0].1;
    assert!(raw.contains("Here it is.") && raw.contains("receipt.png"), "{raw}");
    // The PNG (short enough for one base64 line) went out in the mail.
    let encoded = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, PNG);
    assert!(raw.contains(&encoded), "the PNG's bytes are not in the mail: {raw}");
}
