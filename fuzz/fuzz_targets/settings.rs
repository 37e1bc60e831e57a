//! The domain's validation of what admins send: channel settings, working hours (time zones, intervals,
//! holidays, extra days), employees, groups and chatbots (webhook URLs); and the routing rules (who gets a
//! dialog, which capacity slot is free) on members made from the raw bytes.
#![no_main]

use jiff::Timestamp;
use libfuzzer_sys::fuzz_target;
use omnichat::domain::hours::WorkingHours;
use omnichat::domain::people::{
    Chatbot, ChatbotChanges, Distribution, Employee, EmployeeChanges, EmployeeStatus, Group, GroupChanges,
    MAX_DIALOGS_LIMIT, check_webhook_url,
};
use omnichat::domain::routing::{Candidate, Choice, choose, free_slot};
use omnichat::domain::{ChannelSettings, EmployeeId, TenantId};
use serde_json::Value;

/// Instants to ask `is_open` about: the extremes of the timestamp range, DST changes, leap days.
const INSTANTS: [i64; 6] = [i64::MIN, i64::MAX, 0, 1_711_846_800, 1_709_164_800, 1_735_689_599];

fn validate_json(value: &Value) {
    if let Ok(settings) = ChannelSettings::from_json(value) {
        // Valid settings are stored and read back: what they serialize to must validate to the same.
        let stored = serde_json::to_value(&settings).expect("settings serialize");
        assert_eq!(ChannelSettings::from_json(&stored).as_ref(), Ok(&settings), "settings do not round-trip");
        let read: ChannelSettings = serde_json::from_value(stored).expect("settings deserialize");
        assert_eq!(read, settings);
        let _ = settings.auto_close.seconds();
    }
    if let Ok(hours) = WorkingHours::from_json(value) {
        let answered = hours.to_json();
        assert_eq!(WorkingHours::from_json(&answered).as_ref(), Ok(&hours), "hours do not round-trip");
        let stored = serde_json::to_string(&hours).expect("hours serialize");
        let read: WorkingHours = serde_json::from_str(&stored).expect("hours deserialize");
        assert_eq!(read, hours);
        for second in INSTANTS {
            let at = Timestamp::from_second(second).unwrap_or(if second < 0 {
                Timestamp::MIN
            } else {
                Timestamp::MAX
            });
            let _ = hours.is_open(at);
        }
    }
    let tenant = TenantId::parse("0190f0a0-0000-7000-8000-000000000001").expect("a UUID");
    let now = Timestamp::from_second(1_700_000_000).expect("in range");
    if let Ok(changes) = EmployeeChanges::from_json(value) {
        let _ = changes.beyond_status();
        if let Ok(mut employee) = Employee::create(tenant.clone(), changes.clone(), now) {
            assert!(employee.max_dialogs <= MAX_DIALOGS_LIMIT);
            employee.apply(changes, now);
        }
    }
    if let Ok(changes) = GroupChanges::from_json(value) {
        if let Ok(mut group) = Group::create(tenant.clone(), changes.clone(), now) {
            group.apply(changes, now);
        }
    }
    if let Ok(changes) = ChatbotChanges::from_json(value) {
        if let Ok(mut chatbot) = Chatbot::create(tenant, changes.clone(), now) {
            chatbot.apply(changes, now);
        }
    }
    if let Some(url) = value.as_str() {
        let _ = check_webhook_url(url);
    }
}

/// Routing on members made from the bytes: 3 bytes per member (status, load, capacity).
fn route(data: &[u8]) {
    let Some((&head, rest)) = data.split_first() else { return };
    let ids: Vec<EmployeeId> = (0..16u32)
        .map(|i| EmployeeId::parse(&format!("0190f0a0-0000-7000-8000-{i:012}")).expect("a UUID"))
        .collect();
    let members: Vec<Candidate> = rest
        .chunks_exact(3)
        .take(16)
        .enumerate()
        .map(|(i, m)| Candidate {
            id: ids[i].clone(),
            status: match m[0] % 3 {
                0 => EmployeeStatus::Online,
                1 => EmployeeStatus::Away,
                _ => EmployeeStatus::Offline,
            },
            load: u32::from(m[1] % 8),
            max_dialogs: u32::from(m[2] % 8),
        })
        .collect();
    let distribution = match head % 3 {
        0 => Distribution::RoundRobin,
        1 => Distribution::LeastBusy,
        _ => Distribution::AllAtOnce,
    };
    let strict = head & 4 != 0;
    let passed: Vec<EmployeeId> =
        members.iter().filter(|m| m.max_dialogs % 2 == 1).map(|m| m.id.clone()).collect();
    let ticket = u64::from(head).wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ rest.len() as u64;
    let eligible = |id: &EmployeeId| {
        members.iter().any(|m| &m.id == id && m.is_available()) && !(strict && passed.contains(id))
    };
    let any_fresh = members.iter().any(|m| m.is_available() && !passed.contains(&m.id));
    let any_available = members.iter().any(Candidate::is_available);
    match choose(distribution, &members, ticket, &passed, strict) {
        Choice::Assign(id) => {
            assert!(eligible(&id), "assigned to someone not available");
            assert!(!any_fresh || !passed.contains(&id), "a passed member chosen over a fresh one");
        }
        Choice::Offer(ids) => {
            assert!(!ids.is_empty() && ids.iter().all(eligible), "offered to someone not available");
        }
        Choice::Wait => assert!(if strict { !any_fresh } else { !any_available }, "waits with someone free"),
    }
    let max = u32::from(head) % (MAX_DIALOGS_LIMIT + 1);
    let held: Vec<u32> = rest.iter().map(|b| u32::from(*b) % (MAX_DIALOGS_LIMIT + 1)).collect();
    if let Some(slot) = free_slot(&held, max, |n| usize::from(head) % (n + 1)) {
        assert!(slot < max && !held.contains(&slot), "slot {slot} is not free");
    }
}

fuzz_target!(|data: &[u8]| {
    if let Ok(value) = serde_json::from_slice::<Value>(data) {
        validate_json(&value);
    }
    route(data);
});
