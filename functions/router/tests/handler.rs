//! The router's handler fed EventBridge events as Lambda delivers them (JSON fixtures in `../events`),
//! against the embedded adapters. Nobody listens on the bus, so only the events fed here route anything.

use std::sync::Arc;

use jiff::{SignedDuration, Timestamp};
use omnichat::adapters::embedded::{FileSecretStore, InProcessBus, RedbStore};
use omnichat::domain::people::{EmployeeChanges, EmployeeStatus};
use omnichat::domain::{
    Channel, Customer, Dialog, DialogId, DialogStatus, EmployeeId, Features, InboundKind, InboundMessage,
};
use omnichat::ports::clock::ManualClock;
use omnichat::repo;
use omnichat::usecases::auth::{Principal, Role};
use omnichat::usecases::ingest::{self, IngestOutcome};
use omnichat::usecases::{Context, Providers, people, routing, tenants};
use serde_json::{Value, json};

const DIALOG_OPENED: &str = include_str!("../events/dialog-opened.json");
const SCHEDULED: &str = include_str!("../events/scheduled.json");

struct Harness {
    ctx: Context,
    clock: Arc<ManualClock>,
    channel: Channel,
    anna: EmployeeId,
    _dir: tempfile::TempDir,
}

async fn harness() -> Harness {
    let dir = tempfile::tempdir().expect("temp dir");
    let clock = Arc::new(ManualClock::new(Timestamp::from_second(1_767_268_800).expect("valid")));
    let ctx = Context::new(
        Arc::new(RedbStore::open(&dir.path().join("db.redb")).expect("store")),
        Arc::new(FileSecretStore::open(&dir.path().join("secrets.json")).expect("secrets")),
        Arc::new(InProcessBus::new(16)),
        clock.clone(),
        Providers::default(),
        "https://example.test",
    );
    let (tenant, _) = tenants::create_tenant(&ctx, "Acme", Features::default()).await.expect("tenant");
    let admin = Principal { tenant_id: tenant.id.clone(), role: Role::Admin, employee_id: None };
    let changes = EmployeeChanges {
        name: Some("Anna".into()),
        status: Some(EmployeeStatus::Online),
        max_dialogs: Some(5),
    };
    let anna = people::create_employee(&ctx, &admin, changes).await.expect("employee").id;
    let channel = omnichat_tests::put_telegram_channel(&ctx, &tenant.id, &anna).await;
    Harness { ctx, clock, channel, anna, _dir: dir }
}

impl Harness {
    /// A customer's first message, stored by ingest: a new dialog whose events went nowhere.
    async fn new_dialog(&self, customer: &str) -> DialogId {
        let inbound = InboundMessage {
            dedup_key: format!("update-{customer}"),
            kind: InboundKind::Message,
            customer: Customer { id: customer.into(), name: Some("Ann".into()), handle: None },
            provider_message_id: Some("1".into()),
            text: Some("Hello".into()),
            attachments: Vec::new(),
            sent_at: None,
        };
        let outcome = ingest::ingest(&self.ctx, &self.channel, &inbound).await.expect("stored");
        let IngestOutcome::Stored { dialog_id, opened_dialog: true, .. } = outcome else {
            panic!("a new dialog: {outcome:?}")
        };
        // What ingest puts beside a new dialog (written here in case ingest has not yet: it is idempotent).
        let dialog = self.dialog(&dialog_id).await;
        let _ = self
            .ctx
            .store
            .transact(routing::unrouted_marker_writes(&dialog, dialog.opened_at).expect("marker"))
            .await;
        dialog_id
    }

    async fn dialog(&self, id: &DialogId) -> Dialog {
        let item = self.ctx.store.get(&repo::dialog_key(id)).await.expect("read").expect("exists");
        repo::from_item(item).expect("dialog")
    }
}

fn dialog_opened(harness: &Harness, dialog: &DialogId) -> Value {
    let mut event: Value = serde_json::from_str(DIALOG_OPENED).expect("fixture");
    event["detail"]["tenant_id"] = json!(harness.channel.tenant_id);
    event["detail"]["channel_id"] = json!(harness.channel.id);
    event["detail"]["dialog_id"] = json!(dialog);
    event
}

#[tokio::test]
async fn a_dialog_opened_event_assigns_the_dialog() {
    let harness = harness().await;
    let dialog = harness.new_dialog("1111").await;
    assert_eq!(harness.dialog(&dialog).await.status, DialogStatus::Open);
    let answer = router::handle(&harness.ctx, dialog_opened(&harness, &dialog), None).await.expect("handled");
    assert_eq!(answer, json!({"handled": "DialogOpened"}));
    let routed = harness.dialog(&dialog).await;
    assert_eq!((routed.status, routed.assignee_id.as_ref()), (DialogStatus::Assigned, Some(&harness.anna)));
    // EventBridge delivers at least once: the same event again changes nothing.
    router::handle(&harness.ctx, dialog_opened(&harness, &dialog), None).await.expect("handled");
    assert_eq!(harness.dialog(&dialog).await, routed);
}

#[tokio::test]
async fn the_scheduled_event_routes_a_dialog_whose_event_was_lost() {
    let harness = harness().await;
    let dialog = harness.new_dialog("2222").await;
    let scheduled: Value = serde_json::from_str(SCHEDULED).expect("fixture");
    let answer = router::handle(&harness.ctx, scheduled.clone(), None).await.expect("handled");
    assert_eq!(answer, json!({"swept": {"dialogs": 0, "queues": 0}}), "nothing is due yet");
    harness.clock.advance(routing::UNROUTED_AFTER + SignedDuration::from_secs(1));
    let answer = router::handle(&harness.ctx, scheduled, None).await.expect("handled");
    assert_eq!(answer, json!({"swept": {"dialogs": 1, "queues": 0}}));
    assert_eq!(harness.dialog(&dialog).await.assignee_id.as_ref(), Some(&harness.anna));
}

#[tokio::test]
async fn a_malformed_detail_is_an_error_and_a_foreign_event_is_ignored() {
    let harness = harness().await;
    let mut event: Value = serde_json::from_str(DIALOG_OPENED).expect("fixture");
    event["detail"] = json!({"type": "dialog_opened", "dialog_id": "not-a-dialog"});
    let error = router::handle(&harness.ctx, event, None).await.expect_err("malformed");
    assert!(matches!(error, router::HandlerError::Malformed { .. }), "{error}");
    let foreign =
        json!({"source": "aws.ec2", "detail-type": "EC2 Instance State-change Notification", "detail": {}});
    assert_eq!(
        router::handle(&harness.ctx, foreign, None).await.expect("ignored"),
        json!({"ignored": "EC2 Instance State-change Notification"})
    );
}
