//! Media end to end over HTTP against the local runner: a customer's file is fetched from the provider
//! after the webhook is acknowledged, kept under the data dir and served by the API's time-limited link;
//! an employee's upload goes out with a reply. Telegram is the provider here (the other providers' fetch
//! and send are tested against their fakes in their modules and e2e files).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use omnichat_tests::{PDF, TestApp, fixture};
use serde_json::{Value, json};
use wiremock::matchers::{method, path, path_regex};
use wiremock::{Mock, Request, Respond, ResponseTemplate};

const SECRET_HEADER: &str = "X-Telegram-Bot-Api-Secret-Token";
/// The fixture's document.
const FILE_ID: &str = "AwADBAADbXXXXXXXXXXXGBdhD2l6_XX";

/// Telegram's getFile for the fixture's document, and the file's bytes under the bot's file path;
/// the file server fails `failures` times first.
async fn telegram_serves_the_document(app: &TestApp, failures: usize) -> Arc<AtomicUsize> {
    Mock::given(method("POST"))
        .and(path_regex(r"^/bot[^/]+/getFile$"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"ok": true, "result": {
            "file_id": FILE_ID, "file_unique_id": "AgADbX", "file_size": PDF.len(),
            "file_path": "documents/file_7.pdf"}})))
        .mount(&app.fakes.telegram)
        .await;
    let served = Arc::new(AtomicUsize::new(0));
    Mock::given(method("GET"))
        .and(path_regex(r"^/file/bot[^/]+/documents/file_7\.pdf$"))
        .respond_with(FailingFirst { failures, served: Arc::clone(&served) })
        .mount(&app.fakes.telegram)
        .await;
    served
}

/// Answers 502 the first `failures` times, then the PDF.
struct FailingFirst {
    failures: usize,
    served: Arc<AtomicUsize>,
}

impl Respond for FailingFirst {
    fn respond(&self, _: &Request) -> ResponseTemplate {
        match self.served.fetch_add(1, Ordering::SeqCst) < self.failures {
            true => ResponseTemplate::new(502),
            false => ResponseTemplate::new(200).set_body_raw(PDF.to_vec(), "application/octet-stream"),
        }
    }
}

async fn customer_sends_the_document(app: &TestApp) -> String {
    let (channel, secret) = app.connect_telegram(777_000_901, "acme_media_bot").await;
    let path = format!("/webhooks/telegram/{}", channel["id"].as_str().expect("id"));
    let status =
        app.deliver(&path, &[(SECRET_HEADER, secret.as_str())], fixture("telegram_document.json")).await;
    assert_eq!(status, 200);
    // The provider's retry of the same update changes nothing, fetches nothing more.
    let status =
        app.deliver(&path, &[(SECRET_HEADER, secret.as_str())], fixture("telegram_document.json")).await;
    assert_eq!(status, 200);
    app.only_dialog().await
}

#[tokio::test]
async fn a_customers_document_is_kept_and_served_by_its_link_without_an_api_key() {
    let app = TestApp::spawn().await;
    let served = telegram_serves_the_document(&app, 0).await;
    let dialog = customer_sends_the_document(&app).await;
    let messages = app.settled_messages(&dialog).await;
    assert_eq!(messages.len(), 1);
    let attachment = &messages[0]["attachments"][0];
    assert_eq!(attachment["status"], "stored", "{attachment}");
    assert_eq!(attachment["kind"], "file");
    assert_eq!(attachment["name"], "Testfile.pdf");
    assert_eq!(attachment["mime_type"], "application/pdf", "sniffed from the bytes");
    assert_eq!(attachment["size"], PDF.len());
    assert_eq!(served.load(Ordering::SeqCst), 1, "fetched once");
    let link = attachment["url"].as_str().expect("a link once stored");
    assert!(!link.contains("AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw"), "the bot token is in the link: {link}");
    assert!(!messages[0].to_string().contains("AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw"));

    let answer = app.follow(link).await;
    assert_eq!(answer.status(), 200);
    let header = |name: &str| answer.headers().get(name).and_then(|v| v.to_str().ok()).map(str::to_owned);
    assert_eq!(header("content-type").as_deref(), Some("application/pdf"));
    assert_eq!(header("x-content-type-options").as_deref(), Some("nosniff"));
    assert!(header("content-disposition").is_some_and(|d| d.contains("Testfile.pdf")));
    assert_eq!(answer.bytes().await.expect("body").as_ref(), PDF);

    // A changed link is refused.
    let forged = link.replace("application%2Fpdf", "text%2Fhtml");
    assert_eq!(app.follow(&forged).await.status(), 403);
}

#[tokio::test]
async fn a_file_server_failing_twice_still_ends_stored_once() {
    let app = TestApp::spawn().await;
    let served = telegram_serves_the_document(&app, 2).await;
    let dialog = customer_sends_the_document(&app).await;
    let messages = app.settled_messages(&dialog).await;
    let attachment = &messages[0]["attachments"][0];
    assert_eq!(attachment["status"], "stored", "{attachment}");
    assert_eq!(served.load(Ordering::SeqCst), 3, "two failures, then the bytes");
    let objects = walk(&app.data_dir().join("media"));
    assert_eq!(objects.len(), 1, "one object: {objects:?}");
    assert_eq!(std::fs::read(&objects[0]).expect("the object"), PDF);
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            files.extend(walk(&path));
        } else {
            files.push(path);
        }
    }
    files
}

#[tokio::test]
async fn a_file_the_provider_refuses_is_failed_with_the_reason() {
    let app = TestApp::spawn().await;
    Mock::given(method("POST"))
        .and(path_regex(r"^/bot[^/]+/getFile$"))
        .respond_with(ResponseTemplate::new(400).set_body_json(
            json!({"ok": false, "error_code": 400, "description": "Bad Request: invalid file_id"}),
        ))
        .mount(&app.fakes.telegram)
        .await;
    let dialog = customer_sends_the_document(&app).await;
    let messages = app.settled_messages(&dialog).await;
    let attachment = &messages[0]["attachments"][0];
    assert_eq!(attachment["status"], "failed", "{attachment}");
    assert!(attachment["failure"].as_str().is_some_and(|f| f.contains("invalid file_id")), "{attachment}");
    assert_eq!(attachment["url"], Value::Null);
}

#[tokio::test]
async fn an_uploaded_file_goes_out_with_a_reply_and_bad_uploads_are_refused_naming_them() {
    let app = TestApp::spawn().await;
    let served = telegram_serves_the_document(&app, 0).await;
    let dialog = customer_sends_the_document(&app).await;
    app.settled_messages(&dialog).await;
    assert_eq!(served.load(Ordering::SeqCst), 1);
    Mock::given(method("POST"))
        .and(path_regex(r"^/bot[^/]+/sendDocument$"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"ok": true, "result": {
            "message_id": 4242, "date": 1441645600, "chat": {"id": 1111111, "type": "private"}}})))
        .mount(&app.fakes.telegram)
        .await;

    let id = app
        .upload(json!({"name": "invoice.pdf", "mime_type": "application/pdf", "size": PDF.len()}), PDF)
        .await;
    let (status, reply) = app
        .post(
            &format!("/v1/dialogs/{dialog}/messages"),
            &json!({"text": "Your invoice", "attachments": [id]}),
        )
        .await;
    assert_eq!(status, 201, "{reply}");
    assert_eq!(reply["status"], "sent", "{reply}");
    assert_eq!(reply["provider_message_id"], "4242");
    let attachment = &reply["attachments"][0];
    assert_eq!((attachment["kind"].as_str(), attachment["status"].as_str()), (Some("file"), Some("stored")));
    assert_eq!(attachment["mime_type"], "application/pdf");
    let sent = app.fakes.telegram.received_requests().await.unwrap_or_default();
    let document = sent.iter().find(|r| r.url.path().ends_with("/sendDocument")).expect("sendDocument");
    let body = String::from_utf8_lossy(&document.body);
    assert!(body.contains("invoice.pdf") && body.contains("Your invoice"), "{body}");
    assert!(document.body.windows(PDF.len()).any(|w| w == PDF), "the file's bytes went out");

    // Nothing is sent or stored for a reply naming an upload that is not whole, or not there.
    let short = app.upload(json!({"name": "x.pdf", "mime_type": "application/pdf", "size": 1000}), PDF).await;
    for (attachments, code) in [
        (json!([short]), "upload_incomplete"),
        (json!(["0".repeat(32)]), "unknown_upload"),
        (json!(["../../etc/passwd"]), "unknown_upload"),
    ] {
        let (status, body) = app
            .post(
                &format!("/v1/dialogs/{dialog}/messages"),
                &json!({"text": "x", "attachments": attachments}),
            )
            .await;
        assert_eq!(status, 422, "{body}");
        assert_eq!(body["error"]["code"], code, "{body}");
        assert_eq!(body["error"]["field"], "attachments[0]", "{body}");
    }
    let (_, after) = app.get(&format!("/v1/dialogs/{dialog}/messages")).await;
    assert_eq!(after["items"].as_array().map(Vec::len), Some(2), "only the customer's and the one reply");

    // Uploads too large or of no media type are refused before a link is made.
    let (status, body) =
        app.post("/v1/uploads", &json!({"mime_type": "image/png", "size": 26_214_401})).await;
    assert_eq!((status, body["error"]["field"].as_str()), (422, Some("size")), "{body}");
    let (status, body) = app.post("/v1/uploads", &json!({"mime_type": "not a type", "size": 10})).await;
    assert_eq!((status, body["error"]["field"].as_str()), (422, Some("mime_type")), "{body}");
    // An upload link takes no more than the declared size.
    let (_, created) = app.post("/v1/uploads", &json!({"mime_type": "image/png", "size": 4})).await;
    let local = app.local(created["upload_url"].as_str().expect("link"));
    let answer = app.http.put(local).body(vec![0u8; 5]).send().await.expect("PUT");
    assert_eq!(answer.status(), 413);
}

#[tokio::test]
async fn a_location_keeps_its_coordinates_and_needs_no_fetch() {
    let app = TestApp::spawn().await;
    let (channel, secret) = app.connect_telegram(777_000_902, "acme_geo_bot").await;
    let path = format!("/webhooks/telegram/{}", channel["id"].as_str().expect("id"));
    let mut update: Value = serde_json::from_slice(&fixture("telegram_text.json")).expect("json");
    update["message"].as_object_mut().expect("message").remove("text");
    update["message"]["location"] = json!({"latitude": 55.7558, "longitude": 37.6173});
    let status =
        app.deliver(&path, &[(SECRET_HEADER, secret.as_str())], update.to_string().into_bytes()).await;
    assert_eq!(status, 200);
    let dialog = app.only_dialog().await;
    let messages = app.settled_messages(&dialog).await;
    let attachment = &messages[0]["attachments"][0];
    assert_eq!(attachment["kind"], "location");
    assert_eq!(attachment["status"], "stored");
    assert_eq!(
        (attachment["latitude"].as_f64(), attachment["longitude"].as_f64()),
        (Some(55.7558), Some(37.6173))
    );
    assert_eq!(attachment["url"], Value::Null);
    let requests = app.fakes.telegram.received_requests().await.unwrap_or_default();
    assert!(!requests.iter().any(|r| r.url.path().ends_with("/getFile")), "nothing to fetch");
}

#[tokio::test]
async fn a_document_the_media_limit_refuses_is_too_large_without_a_download() {
    let app = TestApp::spawn().await;
    let served = telegram_serves_the_document(&app, 0).await;
    let (channel, secret) = app.connect_telegram(777_000_903, "acme_big_bot").await;
    let path_ = format!("/webhooks/telegram/{}", channel["id"].as_str().expect("id"));
    let mut update: Value = serde_json::from_slice(&fixture("telegram_document.json")).expect("json");
    update["message"]["document"]["file_size"] = json!(30 * 1024 * 1024);
    let status =
        app.deliver(&path_, &[(SECRET_HEADER, secret.as_str())], update.to_string().into_bytes()).await;
    assert_eq!(status, 200);
    let dialog = app.only_dialog().await;
    let messages = app.settled_messages(&dialog).await;
    assert_eq!(messages[0]["attachments"][0]["status"], "too_large", "{}", messages[0]);
    assert_eq!(served.load(Ordering::SeqCst), 0, "nothing downloaded");
    let _ = path("/unused");
}

#[tokio::test]
async fn erasing_the_customer_deletes_their_stored_files_and_the_link_serves_nothing() {
    let app = TestApp::spawn().await;
    telegram_serves_the_document(&app, 0).await;
    let dialog = customer_sends_the_document(&app).await;
    let messages = app.settled_messages(&dialog).await;
    let link = messages[0]["attachments"][0]["url"].as_str().expect("a link once stored").to_owned();
    assert_eq!(app.follow(&link).await.status().as_u16(), 200);
    let media_dir = app.data_dir().join("media");
    assert!(!walk(&media_dir).is_empty(), "the file is kept under the data dir");

    let (_, found) = app.get(&format!("/v1/dialogs/{dialog}")).await;
    let customer = found["customer"]["id"].as_str().expect("customer").to_owned();
    let (status, export) = app.get(&format!("/v1/customers/{customer}/export")).await;
    assert_eq!(status, 200);
    let exported = &export["dialogs"][0]["messages"][0]["attachments"][0];
    assert_eq!(exported["status"], "stored");
    assert!(exported["url"].as_str().is_some_and(|url| url.contains("/media/")), "{exported}");

    assert_eq!(app.delete(&format!("/v1/customers/{customer}")).await.0, 204);
    assert_eq!(walk(&media_dir).len(), 0, "no file of the erased customer is left");
    assert_eq!(app.follow(&link).await.status().as_u16(), 404, "the old link serves nothing");
}
