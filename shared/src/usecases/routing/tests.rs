//! Routing on the embedded store: the policies with several routers at once, capacity, the sweep, the
//! queues, the wait time, transfers and the chatbot. Events are dropped (the bus loses everything), so
//! whatever gets routed here is routed by the calls the tests make.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use serde_json::json;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use super::*;
use crate::adapters::embedded::{FileSecretStore, RedbStore};
use crate::domain::hours::WorkingHours;
use crate::domain::people::{ChatbotChanges, EmployeeChanges, GroupChanges};
use crate::domain::settings::{ChannelSettings, OffHours};
use crate::domain::{Account, Channel, ChannelId, ChannelStatus, Customer, Features, Provider};
use crate::ports::clock::{Clock, ManualClock};
use crate::ports::events::{EventBus, EventError};
use crate::usecases::{Providers, dialogs, people, tenants, workspace};

/// 2026-01-01T12:00:00Z.
const T0: i64 = 1_767_268_800;

struct DropEverything;

#[async_trait::async_trait]
impl EventBus for DropEverything {
    async fn publish(&self, _events: &[DomainEvent]) -> std::result::Result<(), EventError> {
        Ok(())
    }
}

struct World {
    ctx: Arc<Context>,
    clock: Arc<ManualClock>,
    admin: Principal,
    channel: Channel,
    _dir: tempfile::TempDir,
}

async fn world() -> World {
    let dir = tempfile::tempdir().expect("temp dir");
    let clock = Arc::new(ManualClock::new(Timestamp::from_second(T0).expect("valid")));
    let ctx = Arc::new(Context::new(
        Arc::new(RedbStore::open(&dir.path().join("db.redb")).expect("store")),
        Arc::new(FileSecretStore::open(&dir.path().join("secrets.json")).expect("secrets")),
        Arc::new(DropEverything),
        clock.clone(),
        Providers::default().with_outbound_policy(crate::net::OutboundPolicy::allowing_loopback()),
        "https://example.test",
    ));
    let (tenant, _) = tenants::create_tenant(&ctx, "Acme", Features::default()).await.expect("tenant");
    let admin = Principal { tenant_id: tenant.id.clone(), role: Role::Admin, employee_id: None };
    let now = clock.now();
    let channel = Channel {
        id: ChannelId::generate(),
        tenant_id: tenant.id,
        provider: Provider::Telegram,
        name: "Support".into(),
        account: Account { id: "1".into(), name: "acme_bot".into() },
        status: ChannelStatus::Active,
        settings: ChannelSettings::default(),
        webhook_url: "https://example.test/webhooks/telegram/x".into(),
        credentials_masked: BTreeMap::new(),
        displaced_by: None,
        created_at: now,
        updated_at: now,
    };
    let world = World { ctx, clock, admin, channel, _dir: dir };
    world.save_channel().await;
    world
}

impl World {
    async fn save_channel(&self) {
        let item = repo::to_item(
            &self.channel,
            &repo::channel_key(&self.channel.id),
            &[(Index::Gsi1, repo::channels_of(&self.channel.tenant_id), self.channel.id.to_string())],
        )
        .expect("item");
        self.ctx
            .store
            .transact(vec![Write::Put { item, condition: Condition::Always }])
            .await
            .expect("saved");
    }

    async fn handled_by(&mut self, handling: Handling) {
        self.channel.settings.handling = Some(handling);
        self.save_channel().await;
    }

    fn tenant(&self) -> &TenantId {
        &self.admin.tenant_id
    }

    fn employee_key(&self, employee: &EmployeeId) -> Principal {
        Principal {
            tenant_id: self.tenant().clone(),
            role: Role::Employee,
            employee_id: Some(employee.clone()),
        }
    }

    async fn employee(&self, name: &str, status: EmployeeStatus, max_dialogs: u32) -> EmployeeId {
        let changes =
            EmployeeChanges { name: Some(name.into()), status: Some(status), max_dialogs: Some(max_dialogs) };
        people::create_employee(&self.ctx, &self.admin, changes).await.expect("employee").id
    }

    async fn employees(&self, n: usize, status: EmployeeStatus, max_dialogs: u32) -> Vec<EmployeeId> {
        let mut ids = Vec::new();
        for i in 0..n {
            ids.push(self.employee(&format!("Agent {i}"), status, max_dialogs).await);
        }
        ids
    }

    async fn group(&self, members: &[EmployeeId], distribution: Distribution, wait_seconds: u32) -> GroupId {
        let changes = GroupChanges {
            name: Some("Support".into()),
            members: Some(members.to_vec()),
            distribution: Some(distribution),
            wait_seconds: Some(wait_seconds),
        };
        people::create_group(&self.ctx, &self.admin, changes).await.expect("group").id
    }

    async fn set_status(&self, employee: &EmployeeId, status: &str) {
        workspace::set_my_status(&self.ctx, &self.employee_key(employee), &json!({ "status": status }))
            .await
            .expect("status set");
    }

    /// Anna (online, room for 5) handles the channel; off hours a chatbot calling `bot`'s `/hook` has it.
    async fn chatbot_off_hours(&mut self, bot: &MockServer, name: &str) -> (EmployeeId, ChatbotId) {
        let anna = self.employee("Anna", EmployeeStatus::Online, 5).await;
        let changes = ChatbotChanges {
            name: Some(name.into()),
            webhook_url: Some(format!("{}/hook", bot.uri())),
            enabled: None,
        };
        let chatbot =
            people::create_chatbot(&self.ctx, &self.admin, changes).await.expect("chatbot").chatbot.id;
        self.channel.settings.off_hours = OffHours { chatbot_id: Some(chatbot.clone()), auto_replies: false };
        self.handled_by(Handling::Employee { employee_id: anna.clone() }).await;
        (anna, chatbot)
    }

    /// The customer's message in the dialog, stored as ingest stores it (without routing it).
    async fn customer_writes(&self, dialog: &DialogId, text: &str) {
        let message = Message::inbound(
            self.tenant().clone(),
            self.channel.id.clone(),
            dialog.clone(),
            &crate::domain::InboundMessage {
                dedup_key: uuid::Uuid::now_v7().to_string(),
                kind: crate::domain::InboundKind::Message,
                customer: self.dialog(dialog).await.customer,
                provider_message_id: Some(uuid::Uuid::now_v7().to_string()),
                text: Some(text.into()),
                attachments: Vec::new(),
                sent_at: None,
            },
            self.clock.now(),
            |_| false,
        );
        let item = repo::message_item(&message, repo::Retention::FOREVER).expect("item");
        self.ctx
            .store
            .transact(vec![Write::Put { item, condition: Condition::NotExists }])
            .await
            .expect("stored");
    }

    /// New dialogs as ingest writes them: dialog, open-dialog pointer and unrouted marker, in batches.
    async fn open_dialogs(&self, n: usize) -> Vec<DialogId> {
        let now = self.clock.now();
        let mut ids = Vec::with_capacity(n);
        let mut writes = Vec::new();
        for i in 0..n {
            let customer =
                Customer { id: format!("customer-{i}-{}", uuid::Uuid::now_v7()), name: None, handle: None };
            let dialog = Dialog::open(self.tenant().clone(), self.channel.id.clone(), customer, now);
            let pointer = repo::open_dialog_key(&dialog.channel_id, &dialog.customer.id);
            writes.push(Write::Put {
                item: repo::to_item(&json!({ "dialog_id": dialog.id }), &pointer, &[]).expect("item"),
                condition: Condition::NotExists,
            });
            writes.push(Write::Put {
                item: repo::dialog_item(&dialog).expect("item"),
                condition: Condition::NotExists,
            });
            writes.extend(unrouted_marker_writes(&dialog, now).expect("marker"));
            ids.push(dialog.id);
            if writes.len() >= 90 {
                self.ctx.store.transact(std::mem::take(&mut writes)).await.expect("opened");
            }
        }
        if !writes.is_empty() {
            self.ctx.store.transact(writes).await.expect("opened");
        }
        ids
    }

    async fn dialog(&self, id: &DialogId) -> Dialog {
        repo::load_dialog(self.ctx.store.as_ref(), id).await.expect("read").expect("exists")
    }

    async fn state(&self, id: &DialogId) -> RouteState {
        load_state(&self.ctx, id).await.expect("read").expect("exists")
    }

    /// What closing does to routing: the dialog closed and its slot released in one transaction.
    async fn close(&self, id: &DialogId) {
        let before = self.dialog(id).await;
        let mut closed = before.clone();
        closed.close(self.clock.now()).expect("open");
        let mut writes = vec![Write::Update {
            key: repo::dialog_key(id),
            set: dialog_fields(&closed).expect("fields"),
            remove: Vec::new(),
            condition: Condition::Equals("status".into(), json!(before.status.as_str())),
        }];
        writes.extend(repo::release_writes(&before));
        self.ctx.store.transact(writes).await.expect("closed");
    }

    async fn all_dialogs(&self) -> Vec<Dialog> {
        let mut dialogs = Vec::new();
        let mut page = None;
        loop {
            let query = Query::index(Index::Gsi1, repo::dialogs_of(self.tenant())).limit(500).after(page);
            let found = self.ctx.store.query(&query).await.expect("query");
            dialogs
                .extend(found.items.into_iter().map(|item| repo::from_item::<Dialog>(item).expect("dialog")));
            match found.next {
                Some(next) => page = Some(next),
                None => return dialogs,
            }
        }
    }

    /// Open dialogs per assignee, from the dialogs themselves.
    async fn assigned_counts(&self) -> HashMap<EmployeeId, usize> {
        let mut counts = HashMap::new();
        for dialog in self.all_dialogs().await {
            if dialog.status == DialogStatus::Assigned {
                *counts.entry(dialog.assignee_id.clone().expect("an assignee")).or_default() += 1;
            }
        }
        counts
    }

    /// Checks the bookkeeping against the dialogs: every assigned dialog holds exactly one slot of its
    /// assignee, no slot is held by anything else, and nobody holds more than their capacity.
    async fn check_capacity(&self, members: &[EmployeeId], max_dialogs: usize) -> usize {
        let dialogs = self.all_dialogs().await;
        let assigned: HashMap<DialogId, &Dialog> = dialogs
            .iter()
            .filter(|d| d.status == DialogStatus::Assigned)
            .map(|d| (d.id.clone(), d))
            .collect();
        let mut slotted = HashSet::new();
        for member in members {
            let held = held_slots(&self.ctx, self.tenant(), member).await.expect("slots");
            assert!(held.len() <= max_dialogs, "{member} holds {} > {max_dialogs}", held.len());
            let page = self
                .ctx
                .store
                .query(&Query::table(repo::slots_of(self.tenant(), member)).limit(500))
                .await
                .expect("slots");
            for item in page.items {
                let record: SlotRecord = repo::from_item(item).expect("slot");
                let dialog = assigned.get(&record.dialog_id).expect("a slot holds an assigned dialog");
                assert_eq!(dialog.assignee_id.as_ref(), Some(member));
                assert_eq!(dialog.slot, Some(record.slot));
                assert!(slotted.insert(record.dialog_id), "a dialog holds two slots");
            }
        }
        assert_eq!(slotted.len(), assigned.len(), "every assigned dialog holds a slot");
        assigned.len()
    }
}

/// Routes `dialogs` from `routers` tasks at once, every task routing every dialog (in its own order),
/// so the same dialog is routed by several routers at the same moment.
async fn route_from_many(
    world: &World,
    dialogs: &[DialogId],
    routers: usize,
    every_router_every_dialog: bool,
) {
    let mut tasks = Vec::new();
    for router in 0..routers {
        let ctx = Arc::clone(&world.ctx);
        let mut mine: Vec<DialogId> = if every_router_every_dialog {
            dialogs.to_vec()
        } else {
            dialogs.iter().skip(router).step_by(routers).cloned().collect()
        };
        if router % 2 == 1 {
            mine.reverse();
        }
        tasks.push(tokio::spawn(async move {
            for id in mine {
                route_dialog(&ctx, &id).await.expect("routed");
            }
        }));
    }
    for task in tasks {
        task.await.expect("router task");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn round_robin_is_fair_over_a_thousand_dialogs_routed_by_four_routers() {
    let mut world = world().await;
    // 11 members with room for 100 each: the 1,000 dialogs never fill anybody, so only fairness counts.
    let members = world.employees(11, EmployeeStatus::Online, 100).await;
    let group = world.group(&members, Distribution::RoundRobin, 600).await;
    world.handled_by(Handling::Group { group_id: group }).await;
    let dialogs = world.open_dialogs(1000).await;
    let started = std::time::Instant::now();
    route_from_many(&world, &dialogs, 4, false).await;
    let counts = world.assigned_counts().await;
    let mut per_member: Vec<usize> = members.iter().map(|m| counts.get(m).copied().unwrap_or(0)).collect();
    per_member.sort_unstable();
    eprintln!("round robin, 1,000 dialogs, 4 routers, 11 members: {per_member:?} in {:?}", started.elapsed());
    assert_eq!(per_member.iter().sum::<usize>(), 1000);
    assert!(per_member[per_member.len() - 1] - per_member[0] <= 1, "{per_member:?}");
    assert_eq!(world.check_capacity(&members, 100).await, 1000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn several_routers_never_assign_a_dialog_twice_nor_fill_anybody_past_capacity() {
    for distribution in [Distribution::RoundRobin, Distribution::LeastBusy] {
        let mut world = world().await;
        let members = world.employees(5, EmployeeStatus::Online, 30).await;
        let group = world.group(&members, distribution, 600).await;
        world.handled_by(Handling::Group { group_id: group.clone() }).await;
        let dialogs = world.open_dialogs(200).await;
        let started = std::time::Instant::now();
        route_from_many(&world, &dialogs, 4, true).await;
        let counts = world.assigned_counts().await;
        let per_member: Vec<usize> = members.iter().map(|m| counts.get(m).copied().unwrap_or(0)).collect();
        eprintln!(
            "{distribution:?}: 200 dialogs, 4 routers each routing all, 5 x 30: {per_member:?} in {:?}",
            started.elapsed()
        );
        // Exactly the capacity is assigned, each dialog once; the rest waits in the group's queue.
        assert_eq!(world.check_capacity(&members, 30).await, 150);
        assert_eq!(per_member, vec![30; 5]);
        let queued = world.all_dialogs().await.into_iter().filter(|d| d.status == DialogStatus::Open).count();
        assert_eq!(queued, 50);
        let waiting = world
            .ctx
            .store
            .query(
                &Query::index(Index::Gsi1, repo::queue_of(world.tenant(), &Queue::Group(group).id()))
                    .limit(500),
            )
            .await
            .expect("queue");
        assert_eq!(waiting.items.len(), 50);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_first_member_to_accept_an_offered_dialog_has_it() {
    let mut world = world().await;
    let members = world.employees(5, EmployeeStatus::Online, 3).await;
    let group = world.group(&members, Distribution::AllAtOnce, 60).await;
    world.handled_by(Handling::Group { group_id: group }).await;
    let dialogs = world.open_dialogs(20).await;
    route_from_many(&world, &dialogs, 4, true).await;
    for id in &dialogs {
        let dialog = world.dialog(id).await;
        assert_eq!((dialog.status, dialog.assignee_id.clone()), (DialogStatus::Open, None));
        assert_eq!(world.state(id).await.offered, members, "offered to every available member");
    }
    let mut winners = HashMap::new();
    for id in &dialogs {
        let attempts = members.iter().map(|member| {
            let ctx = Arc::clone(&world.ctx);
            let principal = world.employee_key(member);
            let id = id.to_string();
            tokio::spawn(async move { accept(&ctx, &principal, &id).await })
        });
        let mut accepted = Vec::new();
        for (member, attempt) in members.iter().zip(attempts) {
            match attempt.await.expect("task") {
                Ok(dialog) => {
                    assert_eq!(dialog.assignee_id.as_ref(), Some(member));
                    accepted.push(member.clone());
                }
                Err(Error::Conflict(_)) => {}
                Err(other) => panic!("unexpected: {other}"),
            }
        }
        // 15 seats for 20 dialogs: the last ones find everybody full.
        assert!(accepted.len() <= 1, "{accepted:?}");
        if let Some(winner) = accepted.pop() {
            winners.insert(id.clone(), winner);
        }
    }
    assert_eq!(winners.len(), 15);
    assert_eq!(world.check_capacity(&members, 3).await, 15);
    let per_member = world.assigned_counts().await;
    assert!(members.iter().all(|m| per_member.get(m) == Some(&3)), "{per_member:?}");
}

#[tokio::test]
async fn least_busy_counts_the_open_dialogs_now_not_all_time() {
    let mut world = world().await;
    let members = world.employees(3, EmployeeStatus::Online, 10).await;
    let group = world.group(&members, Distribution::LeastBusy, 600).await;
    world.handled_by(Handling::Group { group_id: group }).await;
    // Loads 3, 1, 2: only the member meant to get each dialog is online while it is routed.
    for (member, count) in members.iter().zip([3, 1, 2]) {
        for other in members.iter().filter(|m| *m != member) {
            world.set_status(other, "offline").await;
        }
        world.set_status(member, "online").await;
        for id in world.open_dialogs(count).await {
            assert_eq!(
                route_dialog(&world.ctx, &id).await.expect("routed"),
                Routed::Assigned(member.clone())
            );
        }
    }
    for member in &members {
        world.set_status(member, "online").await;
    }
    let next = world.open_dialogs(1).await;
    assert_eq!(
        route_dialog(&world.ctx, &next[0]).await.expect("routed"),
        Routed::Assigned(members[1].clone())
    );
    // The busiest of all time closes everything: now it is the least busy.
    for dialog in world.all_dialogs().await {
        if dialog.assignee_id.as_ref() == Some(&members[0]) {
            world.close(&dialog.id).await;
        }
    }
    let next = world.open_dialogs(1).await;
    assert_eq!(
        route_dialog(&world.ctx, &next[0]).await.expect("routed"),
        Routed::Assigned(members[0].clone())
    );
}

#[tokio::test]
async fn a_dialog_whose_event_was_dropped_is_routed_by_the_sweep() {
    let mut world = world().await;
    let anna = world.employee("Anna", EmployeeStatus::Online, 5).await;
    world.handled_by(Handling::Employee { employee_id: anna.clone() }).await;
    let ids = world.open_dialogs(3).await;
    // The events went nowhere; nothing is due yet either.
    assert_eq!(sweep(&world.ctx, due::Run::to_the_end()).await.expect("sweep"), SweepReport::default());
    for id in &ids {
        assert_eq!(world.dialog(id).await.status, DialogStatus::Open);
    }
    world.clock.advance(UNROUTED_AFTER + SignedDuration::from_secs(1));
    let report = sweep(&world.ctx, due::Run::to_the_end()).await.expect("sweep");
    assert_eq!(report.dialogs, 3);
    for id in &ids {
        let dialog = world.dialog(id).await;
        assert_eq!((dialog.status, dialog.assignee_id.as_ref()), (DialogStatus::Assigned, Some(&anna)));
        assert_eq!(world.state(id).await.due_at, None, "the marker is gone");
    }
    // Nothing is due any more: the next sweep reads nothing.
    world.clock.advance(SignedDuration::from_secs(3600));
    assert_eq!(sweep(&world.ctx, due::Run::to_the_end()).await.expect("sweep"), SweepReport::default());
    // Routing an already routed dialog again (a late event) changes nothing.
    assert_eq!(route_dialog(&world.ctx, &ids[0]).await.expect("routed"), Routed::AlreadyHandled);
}

#[tokio::test]
async fn a_queued_dialog_is_assigned_when_a_member_comes_online() {
    let mut world = world().await;
    let members = world.employees(2, EmployeeStatus::Offline, 5).await;
    let group = world.group(&members, Distribution::RoundRobin, 60).await;
    world.handled_by(Handling::Group { group_id: group.clone() }).await;
    let ids = world.open_dialogs(2).await;
    for id in &ids {
        assert_eq!(route_dialog(&world.ctx, id).await.expect("routed"), Routed::Queued);
        let dialog = world.dialog(id).await;
        assert_eq!((dialog.status, dialog.group_id.as_ref()), (DialogStatus::Open, Some(&group)));
    }
    // Both members see the group's queue and may read a waiting dialog; an outsider may not.
    let (waiting, _) =
        workspace::my_queue(&world.ctx, &world.employee_key(&members[1]), 50, None).await.expect("queue");
    assert_eq!(waiting.iter().map(|d| d.id.clone()).collect::<Vec<_>>(), ids);
    let outsider = world.employee("Outsider", EmployeeStatus::Online, 5).await;
    let read = dialogs::get_dialog(&world.ctx, &world.employee_key(&outsider), ids[0].as_str()).await;
    assert!(matches!(read, Err(Error::NotFound { .. })));
    dialogs::get_dialog(&world.ctx, &world.employee_key(&members[0]), ids[0].as_str())
        .await
        .expect("visible");

    world.set_status(&members[1], "online").await;
    for id in &ids {
        assert_eq!(world.dialog(id).await.assignee_id.as_ref(), Some(&members[1]));
    }
    let (mine, _) =
        workspace::my_dialogs(&world.ctx, &world.employee_key(&members[1]), 50, None).await.expect("mine");
    assert_eq!(mine.len(), 2);
    let (waiting, _) =
        workspace::my_queue(&world.ctx, &world.employee_key(&members[0]), 50, None).await.expect("queue");
    assert!(waiting.is_empty());
}

#[tokio::test]
async fn an_employee_at_capacity_gets_the_dialog_once_one_is_closed() {
    let mut world = world().await;
    let anna = world.employee("Anna", EmployeeStatus::Online, 1).await;
    world.handled_by(Handling::Employee { employee_id: anna.clone() }).await;
    let ids = world.open_dialogs(2).await;
    assert_eq!(route_dialog(&world.ctx, &ids[0]).await.expect("routed"), Routed::Assigned(anna.clone()));
    assert_eq!(route_dialog(&world.ctx, &ids[1]).await.expect("routed"), Routed::Queued);
    let (waiting, _) =
        workspace::my_queue(&world.ctx, &world.employee_key(&anna), 50, None).await.expect("queue");
    assert_eq!(waiting.len(), 1);
    world.close(&ids[0]).await;
    let event = DomainEvent::DialogClosed {
        tenant_id: world.tenant().clone(),
        channel_id: world.channel.id.clone(),
        dialog_id: ids[0].clone(),
        assignee_id: Some(anna.clone()),
    };
    handle_event(&world.ctx, &event).await.expect("handled");
    assert_eq!(world.dialog(&ids[1]).await.assignee_id.as_ref(), Some(&anna));
    assert_eq!(world.check_capacity(&[anna], 1).await, 1);
}

#[tokio::test]
async fn a_dialog_not_taken_within_the_wait_time_moves_to_the_next_member() {
    let mut world = world().await;
    let members = world.employees(2, EmployeeStatus::Online, 5).await;
    let group = world.group(&members, Distribution::RoundRobin, 60).await;
    world.handled_by(Handling::Group { group_id: group.clone() }).await;
    let ids = world.open_dialogs(2).await;
    let first = match route_dialog(&world.ctx, &ids[0]).await.expect("routed") {
        Routed::Assigned(member) => member,
        other => panic!("{other:?}"),
    };
    let second = members.iter().find(|m| **m != first).expect("another").clone();
    // The other dialog is accepted at once: its wait time stops.
    let taken = match route_dialog(&world.ctx, &ids[1]).await.expect("routed") {
        Routed::Assigned(member) => member,
        other => panic!("{other:?}"),
    };
    accept(&world.ctx, &world.employee_key(&taken), ids[1].as_str()).await.expect("accepted");

    world.clock.advance(SignedDuration::from_secs(30));
    sweep(&world.ctx, due::Run::to_the_end()).await.expect("sweep");
    assert_eq!(world.dialog(&ids[0]).await.assignee_id.as_ref(), Some(&first), "still within the wait");
    world.clock.advance(SignedDuration::from_secs(31));
    sweep(&world.ctx, due::Run::to_the_end()).await.expect("sweep");
    assert_eq!(world.dialog(&ids[0]).await.assignee_id.as_ref(), Some(&second));
    assert_eq!(world.dialog(&ids[1]).await.assignee_id.as_ref(), Some(&taken), "accepted dialogs stay");
    assert_eq!(world.check_capacity(&members, 5).await, 2);
    // Nobody new to take it: back to the group's queue, where a member's coming online finds it.
    world.clock.advance(SignedDuration::from_secs(61));
    sweep(&world.ctx, due::Run::to_the_end()).await.expect("sweep");
    let dialog = world.dialog(&ids[0]).await;
    assert_eq!((dialog.status, dialog.assignee_id.as_ref()), (DialogStatus::Open, None));
    assert_eq!(world.check_capacity(&members, 5).await, 1);
    let late = world.employee("Late", EmployeeStatus::Offline, 5).await;
    let mut with_late = members.clone();
    with_late.push(late.clone());
    people::update_group(
        &world.ctx,
        &world.admin,
        group.as_str(),
        GroupChanges { members: Some(with_late), ..GroupChanges::default() },
    )
    .await
    .expect("group updated");
    world.set_status(&late, "online").await;
    assert_eq!(world.dialog(&ids[0]).await.assignee_id.as_ref(), Some(&late));
}

#[tokio::test]
async fn the_queue_recheck_serves_a_queue_whose_trigger_was_lost() {
    let mut world = world().await;
    let anna = world.employee("Anna", EmployeeStatus::Offline, 5).await;
    world.handled_by(Handling::Employee { employee_id: anna.clone() }).await;
    let ids = world.open_dialogs(1).await;
    assert_eq!(route_dialog(&world.ctx, &ids[0]).await.expect("routed"), Routed::Queued);
    // She comes online but the trigger is lost (the process died right after saving her status).
    let mut set = crate::ports::store::Item::new();
    set.insert("status".into(), serde_json::Value::String("online".into()));
    let key = crate::repo::employee_key(&world.admin.tenant_id, &anna);
    let write = Write::Update { key, set, remove: Vec::new(), condition: Condition::Exists };
    world.ctx.store.transact(vec![write]).await.expect("status saved");
    assert_eq!(world.dialog(&ids[0]).await.assignee_id, None);
    world.clock.advance(QUEUE_RECHECK + SignedDuration::from_secs(1));
    let report = sweep(&world.ctx, due::Run::to_the_end()).await.expect("sweep");
    assert_eq!(report.queues, 1);
    assert_eq!(world.dialog(&ids[0]).await.assignee_id.as_ref(), Some(&anna));
    // The queue is empty: its re-check is gone too.
    world.clock.advance(QUEUE_RECHECK + SignedDuration::from_secs(1));
    assert_eq!(sweep(&world.ctx, due::Run::to_the_end()).await.expect("sweep"), SweepReport::default());
}

#[tokio::test]
async fn a_transfer_moves_the_dialog_and_its_capacity() {
    let mut world = world().await;
    let members = world.employees(2, EmployeeStatus::Online, 5).await;
    let group = world.group(&members, Distribution::RoundRobin, 600).await;
    let boss = world.employee("Boss", EmployeeStatus::Offline, 5).await;
    world.handled_by(Handling::Group { group_id: group.clone() }).await;
    let ids = world.open_dialogs(1).await;
    let Routed::Assigned(first) = route_dialog(&world.ctx, &ids[0]).await.expect("routed") else {
        panic!("assigned")
    };
    let other = members.iter().find(|m| **m != first).expect("another").clone();
    let me = world.employee_key(&first);
    // To the group: not back to whoever transferred it.
    let moved = transfer(&world.ctx, &me, ids[0].as_str(), TransferTarget::Group(group.clone()))
        .await
        .expect("moved");
    assert_eq!(moved.assignee_id.as_ref(), Some(&other));
    // The first member no longer has it: no transfer, no reading.
    let again = transfer(&world.ctx, &me, ids[0].as_str(), TransferTarget::Employee(boss.clone())).await;
    assert!(matches!(again, Err(Error::NotFound { .. })), "{again:?}");
    // To an offline employee: it waits in their queue, then they have it when they come online.
    let moved = transfer(
        &world.ctx,
        &world.employee_key(&other),
        ids[0].as_str(),
        TransferTarget::Employee(boss.clone()),
    )
    .await
    .expect("moved");
    assert_eq!((moved.status, moved.assignee_id), (DialogStatus::Open, None));
    let (waiting, _) =
        workspace::my_queue(&world.ctx, &world.employee_key(&boss), 50, None).await.expect("queue");
    assert_eq!(waiting.len(), 1);
    world.set_status(&boss, "online").await;
    assert_eq!(world.dialog(&ids[0]).await.assignee_id.as_ref(), Some(&boss));
    let mut everyone = members.clone();
    everyone.push(boss.clone());
    assert_eq!(world.check_capacity(&everyone, 5).await, 1);
    let unknown =
        transfer(&world.ctx, &world.admin, ids[0].as_str(), TransferTarget::Group(GroupId::generate())).await;
    assert!(matches!(unknown, Err(Error::Rule(rule)) if rule.field == "group_id"));
}

async fn closed_hours(world: &World) {
    let hours = WorkingHours::from_json(&json!({"time_zone": "UTC", "weekly": {}})).expect("valid");
    hours::put_working_hours(&world.ctx, &world.admin, hours).await.expect("saved");
}

#[tokio::test]
async fn off_hours_the_chatbot_takes_the_dialog_until_it_hands_it_to_people() {
    let bot = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/hook"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"handoff": true})))
        .mount(&bot)
        .await;
    let mut world = world().await;
    let (anna, chatbot) = world.chatbot_off_hours(&bot, "Night bot").await;

    // Inside working hours (none set: always open) people have it.
    let ids = world.open_dialogs(1).await;
    assert_eq!(route_dialog(&world.ctx, &ids[0]).await.expect("routed"), Routed::Assigned(anna.clone()));

    closed_hours(&world).await;
    let ids = world.open_dialogs(1).await;
    world.customer_writes(&ids[0], "Are you open?").await;
    // The chatbot gets the message and answers with a hand-off: the dialog goes to people.
    assert_eq!(route_dialog(&world.ctx, &ids[0]).await.expect("routed"), Routed::Chatbot(chatbot.clone()));
    let received = bot.received_requests().await.expect("recorded");
    assert_eq!(received.len(), 1);
    let body: Value = serde_json::from_slice(&received[0].body).expect("json");
    assert_eq!(body["event"], "message");
    assert_eq!(body["dialog_id"], ids[0].as_str());
    assert_eq!(body["message"]["text"], "Are you open?");
    let dialog = world.dialog(&ids[0]).await;
    assert_eq!((dialog.chatbot_id, dialog.assignee_id.as_ref()), (None, Some(&anna)));
    assert!(world.state(&ids[0]).await.handed_off);
    // A later message of the same dialog is not forwarded: the chatbot is out of it.
    assert_eq!(chatbot::forward_new_messages(&world.ctx, &ids[0]).await.expect("forwarded").forwarded, 0);
    assert_eq!(bot.received_requests().await.expect("recorded").len(), 1);
}

#[test]
fn queues_name_themselves_and_parse_back() {
    let group = Queue::Group(GroupId::generate());
    let employee = Queue::Employee(EmployeeId::generate());
    assert_eq!(Queue::parse(&group.id()), Some(group));
    assert_eq!(Queue::parse(&employee.id()), Some(employee));
    assert_eq!(Queue::parse("X#whatever"), None);
    assert_eq!(Queue::parse("G#not-a-uuid"), None);
}

/// A chatbot whose signing secret is missing (made before calls were signed) is never called unsigned:
/// the dialog goes to people.
#[tokio::test]
async fn a_chatbot_without_a_signing_secret_is_not_called_and_people_get_the_dialog() {
    let bot = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/hook"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"text": "never sent"})))
        .mount(&bot)
        .await;
    let mut world = world().await;
    let (anna, chatbot) = world.chatbot_off_hours(&bot, "Old bot").await;
    let name = crate::usecases::context::chatbot_secret_name(world.tenant(), &chatbot);
    assert!(world.ctx.secrets.get(&name).await.expect("read").is_some(), "kept on creation");
    world.ctx.secrets.delete(&name).await.expect("deleted");
    closed_hours(&world).await;
    let ids = world.open_dialogs(1).await;
    world.customer_writes(&ids[0], "Hello?").await;
    assert_eq!(route_dialog(&world.ctx, &ids[0]).await.expect("routed"), Routed::Chatbot(chatbot.clone()));
    assert!(bot.received_requests().await.expect("recorded").is_empty(), "no unsigned call");
    let dialog = world.dialog(&ids[0]).await;
    assert_eq!((dialog.chatbot_id, dialog.assignee_id.as_ref()), (None, Some(&anna)));
}

/// Issue 16, goal 5: a chatbot's dialog marks its customer's messages for the router (the pointer's flag,
/// set and cleared with the dialog's chatbot) and leaves a forward marker; when `MessageReceived` is lost
/// (this world's bus loses everything) the sweep forwards the message once the grace is over, and the
/// router's handling of the event removes the marker. Taken from the chatbot, the dialog's messages carry
/// neither.
#[tokio::test]
async fn a_chatbots_message_whose_event_was_lost_is_forwarded_by_the_sweep() {
    let bot = MockServer::start().await;
    Mock::given(method("POST")).and(path("/hook")).respond_with(ResponseTemplate::new(204)).mount(&bot).await;
    let mut world = world().await;
    let (_, chatbot) = world.chatbot_off_hours(&bot, "Night bot").await;
    closed_hours(&world).await;
    let writes = |n: usize| crate::domain::InboundMessage {
        dedup_key: format!("m{n}"),
        kind: crate::domain::InboundKind::Message,
        customer: Customer { id: "night-owl".into(), name: None, handle: None },
        provider_message_id: Some(format!("m{n}")),
        text: Some(format!("message {n}")),
        attachments: Vec::new(),
        sent_at: None,
    };
    let ingest = |n: usize| {
        let (ctx, channel, inbound) = (world.ctx.clone(), world.channel.clone(), writes(n));
        async move {
            match crate::usecases::ingest::ingest(&ctx, &channel, &inbound).await.expect("ingest") {
                crate::usecases::ingest::IngestOutcome::Stored { dialog_id, message_id, .. } => {
                    (dialog_id, message_id)
                }
                other => panic!("{other:?}"),
            }
        }
    };
    let forwarded = || async { bot.received_requests().await.expect("recorded").len() };
    let marker = |dialog: DialogId| {
        let store = world.ctx.store.clone();
        async move { store.get(&repo::forward_marker_key(&dialog)).await.expect("read") }
    };
    let sweep = || crate::usecases::scheduled::sweep_routing(&world.ctx, due::Run::to_the_end());

    let (dialog, _) = ingest(1).await;
    assert_eq!(route_dialog(&world.ctx, &dialog).await.expect("routed"), Routed::Chatbot(chatbot.clone()));
    assert_eq!(forwarded().await, 1, "routing forwards what is there");
    let loaded = world.dialog(&dialog).await;
    let pointer =
        repo::load_pointer(world.ctx.store.as_ref(), &loaded).await.expect("read").expect("pointer");
    assert!(pointer.chatbot, "routing marked the pointer in its transaction");

    // The second message's event is lost: nothing forwards it until the grace is over.
    let (_, second) = ingest(2).await;
    assert!(marker(dialog.clone()).await.is_some(), "ingest left a forward marker");
    sweep().await.expect("sweep");
    assert_eq!(forwarded().await, 1, "not due yet");
    world.clock.advance(repo::FORWARD_GRACE + SignedDuration::from_secs(1));
    sweep().await.expect("sweep");
    assert_eq!(forwarded().await, 2, "the sweep forwarded it");
    assert!(marker(dialog.clone()).await.is_none());

    // The third's event arrives: the router forwards it and removes the marker.
    let (_, third) = ingest(3).await;
    assert_ne!(second, third);
    let event = DomainEvent::MessageReceived {
        tenant_id: world.tenant().clone(),
        channel_id: world.channel.id.clone(),
        dialog_id: dialog.clone(),
        message_id: third,
        chatbot: true,
    };
    assert!(event.for_router());
    handle_event(&world.ctx, &event).await.expect("handled");
    assert_eq!(forwarded().await, 3);
    assert!(marker(dialog.clone()).await.is_none());

    // Handed to people: the flag goes with the chatbot, and later messages leave no marker.
    hand_to_people(&world.ctx, &dialog).await.expect("handed");
    let loaded = world.dialog(&dialog).await;
    let pointer =
        repo::load_pointer(world.ctx.store.as_ref(), &loaded).await.expect("read").expect("pointer");
    assert!(!pointer.chatbot);
    ingest(4).await;
    assert!(marker(dialog.clone()).await.is_none());
    assert_eq!(forwarded().await, 3);
}

/// The one-off migration of issue 16: a chatbot's dialog whose pointer was written before pointers carried
/// the chatbot flag gets it (and what reached the dialog meanwhile is forwarded); run again, it changes
/// nothing.
#[tokio::test]
async fn the_migration_flags_the_pointers_of_chatbots_dialogs_written_before_the_flag() {
    let bot = MockServer::start().await;
    Mock::given(method("POST")).and(path("/hook")).respond_with(ResponseTemplate::new(204)).mount(&bot).await;
    let mut world = world().await;
    let (_, chatbot) = world.chatbot_off_hours(&bot, "Night bot").await;
    closed_hours(&world).await;
    let ids = world.open_dialogs(2).await;
    world.customer_writes(&ids[0], "Are you open?").await;
    assert_eq!(route_dialog(&world.ctx, &ids[0]).await.expect("routed"), Routed::Chatbot(chatbot.clone()));
    assert_eq!(bot.received_requests().await.expect("recorded").len(), 1);
    // The previous layout: no flag. A message stored then is not forwarded by anything.
    let dialog = world.dialog(&ids[0]).await;
    let unflag = repo::chatbot_holds_write(&dialog, false);
    world.ctx.store.transact(vec![unflag]).await.expect("the previous layout");
    world.customer_writes(&ids[0], "Hello?").await;

    let tenant = world.tenant().clone();
    let marking =
        crate::usecases::platform::mark_chatbot_dialogs(&world.ctx, Some(&tenant)).await.expect("run");
    assert_eq!(marking, crate::usecases::platform::ChatbotMarking { chatbot_dialogs: 1, marked: 1 });
    let pointer =
        repo::load_pointer(world.ctx.store.as_ref(), &dialog).await.expect("read").expect("pointer");
    assert!(pointer.chatbot);
    assert_eq!(bot.received_requests().await.expect("recorded").len(), 2, "the waiting message forwarded");

    let again = crate::usecases::platform::mark_chatbot_dialogs(&world.ctx, None).await.expect("run");
    assert_eq!(again, crate::usecases::platform::ChatbotMarking { chatbot_dialogs: 1, marked: 0 });
    assert_eq!(bot.received_requests().await.expect("recorded").len(), 2);
}
