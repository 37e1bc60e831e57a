//! The lazy close deadline on the embedded store: messages do not rewrite the close timer, the timer
//! re-arms itself at last activity + limit when it finds the dialog active, a shorter limit brings the
//! timers of the channel's open dialogs forward, and a message racing the close wins.

use serde_json::json;

use super::*;
use crate::domain::DialogId;
use crate::usecases::due::Run;
use crate::usecases::due::tests::{Scene, T0, scene};
use crate::usecases::{channels, dialogs};

const HOUR: i64 = 3600;

/// The close timer's due time, as its gsi3 sort key says.
async fn close_due(s: &Scene, dialog: &DialogId) -> Option<Timestamp> {
    let item = s.item(&repo::timer_key(dialog, repo::TimerKind::Close)).await?;
    item.get(Index::Gsi3.sk_attr()).and_then(Value::as_str).and_then(repo::due_at_of)
}

fn at(seconds_after_t0: i64) -> Timestamp {
    Timestamp::from_second(T0 + seconds_after_t0).expect("valid")
}

/// Moves the clock to `seconds_after_t0` and runs the close job to the end.
async fn close_run_at(s: &Scene, seconds_after_t0: i64) -> CloseTick {
    s.clock.advance(at(seconds_after_t0).duration_since(s.now()));
    close_inactive_dialogs(&s.ctx, Run::to_the_end()).await.expect("run")
}

async fn is_closed(s: &Scene, dialog: &DialogId) -> bool {
    repo::load_dialog(s.ctx.store.as_ref(), dialog).await.expect("read").expect("dialog").is_closed()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_leave_the_close_timer_alone_and_it_re_arms_at_the_last_activity_plus_the_limit() {
    let s = scene(json!({"auto_close": {"after": 1, "unit": "hours"}})).await;
    let dialog = s.customer_writes(&s.channel, "ann").await;
    assert_eq!(close_due(&s, &dialog).await, Some(at(HOUR)), "armed when the dialog opens");

    // At 30 min an employee answers; at 40 min the customer writes again: the timer is not rewritten.
    s.advance(30 * 60);
    dialogs::reply(&s.ctx, &s.admin, dialog.as_str(), dialogs::Reply::text("hello")).await.expect("reply");
    s.advance(10 * 60);
    assert_eq!(s.customer_writes(&s.channel, "ann").await, dialog);
    assert_eq!(close_due(&s, &dialog).await, Some(at(HOUR)), "no message moved it");

    // It fires at 1 h, finds the dialog active at 40 min and re-arms at 1 h 40 min.
    let tick = close_run_at(&s, HOUR).await;
    assert_eq!((tick.closed, tick.rearmed), (0, 1), "{tick:?}");
    assert!(!is_closed(&s, &dialog).await);
    assert_eq!(close_due(&s, &dialog).await, Some(at(HOUR + 40 * 60)));

    // Not a second earlier; then it closes.
    let tick = close_run_at(&s, HOUR + 40 * 60 - 1).await;
    assert_eq!(tick, CloseTick::default(), "nothing due");
    let tick = close_run_at(&s, HOUR + 40 * 60).await;
    assert_eq!(tick.closed, 1, "{tick:?}");
    assert!(is_closed(&s, &dialog).await);
    assert_eq!(close_due(&s, &dialog).await, None, "the timer went with the dialog");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shorter_limit_brings_the_open_dialogs_timers_forward_and_a_longer_one_is_met_by_re_arming() {
    // A day's limit; three dialogs on the channel, one on another channel that keeps its limit.
    let s = scene(json!({"auto_close": {"after": 24, "unit": "hours"}})).await;
    let other = s.connect(json!({"auto_close": {"after": 24, "unit": "hours"}})).await;
    let a = s.customer_writes(&s.channel, "a").await;
    let b = s.customer_writes(&s.channel, "b").await;
    let elsewhere = s.customer_writes(&other, "z").await;
    s.advance(20 * 60);
    let c = s.customer_writes(&s.channel, "c").await;
    s.advance(10 * 60);
    assert_eq!(s.customer_writes(&s.channel, "a").await, a, "a writes again at 30 min");
    assert_eq!(close_due(&s, &a).await, Some(at(24 * HOUR)));

    // At 40 min the admin shortens the limit to one hour.
    s.advance(10 * 60);
    let mut settings = s.channel.settings.clone();
    settings.auto_close =
        crate::domain::settings::AutoClose::new(1, crate::domain::settings::AutoCloseUnit::Hours)
            .expect("valid");
    let update = channels::ChannelUpdate { settings: Some(settings), ..Default::default() };
    channels::update_channel(&s.ctx, &s.admin, s.channel.id.as_str(), update).await.expect("updated");

    // The next close run brings each timer of the channel forward to its last activity + 1 h.
    let tick = close_inactive_dialogs(&s.ctx, Run::to_the_end()).await.expect("run");
    assert_eq!((tick.rescans, tick.closed), (1, 0), "{tick:?}");
    assert_eq!(close_due(&s, &a).await, Some(at(30 * 60 + HOUR)));
    assert_eq!(close_due(&s, &b).await, Some(at(HOUR)));
    assert_eq!(close_due(&s, &c).await, Some(at(20 * 60 + HOUR)));
    assert_eq!(close_due(&s, &elsewhere).await, Some(at(24 * HOUR)), "another channel's limit is its own");
    let rescan = s.item(&repo::close_rescan_key(&s.channel.id)).await;
    assert_eq!(rescan, None, "the rescan is done");

    // Each closes an hour after its last activity, not a day.
    assert_eq!(close_run_at(&s, HOUR).await.closed, 1);
    assert!(is_closed(&s, &b).await && !is_closed(&s, &c).await);
    assert_eq!(close_run_at(&s, 20 * 60 + HOUR).await.closed, 1);
    assert_eq!(close_run_at(&s, 30 * 60 + HOUR).await.closed, 1);
    assert!(is_closed(&s, &a).await && is_closed(&s, &c).await && !is_closed(&s, &elsewhere).await);

    // A longer limit needs no rescan: the timer fires at the old deadline and re-arms to the new one.
    let mut settings = other.settings.clone();
    settings.auto_close =
        crate::domain::settings::AutoClose::new(2, crate::domain::settings::AutoCloseUnit::Days)
            .expect("valid");
    let update = channels::ChannelUpdate { settings: Some(settings), ..Default::default() };
    channels::update_channel(&s.ctx, &s.admin, other.id.as_str(), update).await.expect("updated");
    assert_eq!(s.item(&repo::close_rescan_key(&other.id)).await, None);
    let tick = close_run_at(&s, 24 * HOUR).await;
    assert_eq!((tick.closed, tick.rearmed), (0, 1), "{tick:?}");
    assert_eq!(close_due(&s, &elsewhere).await, Some(at(48 * HOUR)));
    assert_eq!(close_run_at(&s, 48 * HOUR).await.closed, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_racing_the_close_keeps_the_dialog_open() {
    let s = scene(json!({"auto_close": {"after": 1, "unit": "hours"}})).await;
    let dialog = s.customer_writes(&s.channel, "ann").await;
    s.advance(HOUR);
    // The close job has read the dialog idle (and its timer) when the customer's message lands.
    let read = repo::load_dialog(s.ctx.store.as_ref(), &dialog).await.expect("read").expect("dialog");
    let timer = s.item(&repo::timer_key(&dialog, repo::TimerKind::Close)).await.expect("timer");
    let due_key = timer[Index::Gsi3.sk_attr()].clone();
    let pointer = repo::load_pointer(s.ctx.store.as_ref(), &read).await.expect("read").expect("pointer");
    assert_eq!(s.customer_writes(&s.channel, "ann").await, dialog, "the message joins the open dialog");
    let close_timer = Condition::Equals(Index::Gsi3.sk_attr().into(), due_key);
    let closing = dialogs::close_if_idle(&s.ctx, read, &pointer, close_timer).await;
    assert!(matches!(closing, Err(crate::Error::Conflict(_))), "{closing:?}");
    assert!(!is_closed(&s, &dialog).await, "the message won");
    // The timer then re-arms from that message.
    let tick = close_inactive_dialogs(&s.ctx, Run::to_the_end()).await.expect("run");
    assert_eq!(tick.rearmed, 1, "{tick:?}");
    assert_eq!(close_due(&s, &dialog).await, Some(at(2 * HOUR)));
}

/// Pointers written before they carried the customer's activity (the previous layout) need no migration:
/// a close for inactivity is conditioned on the activity still being absent, and the customer's next
/// message adds it and copies it to the dialog.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pointers_of_the_previous_layout_close_and_take_messages() {
    let s = scene(json!({"auto_close": {"after": 1, "unit": "hours"}})).await;
    let quiet = s.customer_writes(&s.channel, "ann").await;
    let writing = s.customer_writes(&s.channel, "bob").await;
    for customer in ["ann", "bob"] {
        let old_layout = Write::Update {
            key: repo::open_dialog_key(&s.channel.id, customer),
            set: Item::new(),
            remove: vec!["last_activity_at".into(), "listed_at".into()],
            condition: Condition::Exists,
        };
        s.ctx.store.transact(vec![old_layout]).await.expect("the previous layout");
    }
    s.advance(40 * 60);
    assert_eq!(s.customer_writes(&s.channel, "bob").await, writing, "the message joins the open dialog");
    let dialog = repo::load_dialog(s.ctx.store.as_ref(), &writing).await.expect("read").expect("dialog");
    assert_eq!(dialog.last_activity_at, at(40 * 60), "the first message copies the activity to the dialog");

    let tick = close_run_at(&s, HOUR).await;
    assert_eq!((tick.closed, tick.rearmed), (1, 1), "{tick:?}");
    assert!(is_closed(&s, &quiet).await);
    assert_eq!(close_due(&s, &writing).await, Some(at(HOUR + 40 * 60)));
}

/// Between two copies to the dialog item the close timer measures from the pointer's exact activity.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_close_timer_measures_from_the_last_message_not_the_dialogs_copy() {
    let s = scene(json!({"auto_close": {"after": 1, "unit": "hours"}})).await;
    let dialog = s.customer_writes(&s.channel, "ann").await;
    s.advance(30);
    assert_eq!(s.customer_writes(&s.channel, "ann").await, dialog);
    let copy = repo::load_dialog(s.ctx.store.as_ref(), &dialog).await.expect("read").expect("dialog");
    assert_eq!(copy.last_activity_at, at(0), "within a minute the dialog item keeps the earlier copy");
    let tick = close_run_at(&s, HOUR).await;
    assert_eq!((tick.closed, tick.rearmed), (0, 1), "{tick:?}");
    assert_eq!(close_due(&s, &dialog).await, Some(at(HOUR + 30)));
    assert_eq!(close_run_at(&s, HOUR + 30).await.closed, 1);
}
