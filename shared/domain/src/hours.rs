//! A tenant's working hours: when the contact center answers, in the tenant's IANA time zone. Outside them
//! a channel's off-hours setting applies (a chatbot or auto-replies).
//!
//! Everything is wall-clock time in the zone, so daylight-saving changes do what a clock on the office wall
//! does: on the spring-forward day an interval 01:00-03:00 (Europe/Berlin) is one hour long because 02:xx
//! never happens, and on the fall-back day it is three hours long because 02:xx happens twice.
//!
//! - An interval is `from`-`to` ("HH:MM", 24-hour). `to` may be "24:00" (the end of the day). An interval
//!   whose `to` is at or before its `from` crosses midnight and ends at `to` the next day ("22:00"-"02:00";
//!   "09:00"-"09:00" is 24 hours).
//! - The part after midnight belongs to the day the interval started: a Friday 22:00-02:00 covers Saturday
//!   01:00 even when Saturday is a holiday. A holiday closes the intervals that start on it (including
//!   the part of them after its midnight).
//! - An extra day is a date open with its own intervals instead of its weekday's (a working Saturday, a
//!   shortened day); a date cannot be both a holiday and an extra day.
//! - Until a tenant sets its hours it is always open (`WorkingHours::always_open`).

use std::collections::{BTreeMap, BTreeSet};

use jiff::Timestamp;
use jiff::civil::{Date, Weekday};
use jiff::tz::TimeZone;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Map, Value, json};

use super::RuleViolation;

pub const MAX_INTERVALS_PER_DAY: usize = 10;
pub const MAX_HOLIDAYS: usize = 1000;
pub const MAX_EXTRA_DAYS: usize = 366;

const MINUTES_PER_DAY: u16 = 24 * 60;
/// The JSON keys of the weekdays, Monday first (jiff's `to_monday_zero_offset` order).
pub const WEEKDAYS: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];

/// One opening interval of a day, in minutes after that day's midnight.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Interval {
    from: u16,
    /// 1..=1440 when after `from`; at or before `from` when the interval crosses midnight.
    to: u16,
}

impl Interval {
    fn crosses_midnight(self) -> bool {
        self.to <= self.from
    }

    /// Start and end in minutes after the starting day's midnight (the end may lie in the next day).
    fn span(self) -> (u32, u32) {
        let end = if self.crosses_midnight() { self.to + MINUTES_PER_DAY } else { self.to };
        (u32::from(self.from), u32::from(end))
    }

    /// Whether the interval covers `second` (after midnight) of the day it starts on.
    fn covers_same_day(self, second: u32) -> bool {
        let (start, end) = self.span();
        start * 60 <= second && second < end.min(u32::from(MINUTES_PER_DAY)) * 60
    }

    /// Whether the part after midnight covers `second` (after midnight) of the next day.
    fn covers_next_day(self, second: u32) -> bool {
        self.crosses_midnight() && second < u32::from(self.to) * 60
    }

    fn to_json(self) -> Value {
        json!({"from": hhmm(self.from), "to": hhmm(self.to)})
    }
}

#[derive(Debug, Clone)]
pub struct WorkingHours {
    time_zone: TimeZone,
    /// Monday first.
    weekly: [Vec<Interval>; 7],
    holidays: BTreeSet<Date>,
    extra_days: BTreeMap<Date, Vec<Interval>>,
}

impl PartialEq for WorkingHours {
    fn eq(&self, other: &Self) -> bool {
        self.time_zone_name() == other.time_zone_name()
            && self.weekly == other.weekly
            && self.holidays == other.holidays
            && self.extra_days == other.extra_days
    }
}

impl Eq for WorkingHours {}

impl WorkingHours {
    /// What a tenant has until it sets its hours: open around the clock, every day.
    pub fn always_open() -> Self {
        let whole_day = vec![Interval { from: 0, to: MINUTES_PER_DAY }];
        Self {
            time_zone: TimeZone::UTC,
            weekly: std::array::from_fn(|_| whole_day.clone()),
            holidays: BTreeSet::new(),
            extra_days: BTreeMap::new(),
        }
    }

    /// The IANA name of the time zone, canonical spelling ("Europe/Moscow").
    pub fn time_zone_name(&self) -> &str {
        self.time_zone.iana_name().unwrap_or("UTC")
    }

    pub fn time_zone(&self) -> &TimeZone {
        &self.time_zone
    }

    /// Whether the contact center is open at this instant.
    pub fn is_open(&self, at: Timestamp) -> bool {
        let local = self.time_zone.to_datetime(at);
        let time = local.time();
        let second = u32::from(time.hour().unsigned_abs()) * 3600
            + u32::from(time.minute().unsigned_abs()) * 60
            + u32::from(time.second().unsigned_abs());
        let day = local.date();
        if self.intervals_on(day).iter().any(|interval| interval.covers_same_day(second)) {
            return true;
        }
        day.yesterday()
            .is_ok_and(|yesterday| self.intervals_on(yesterday).iter().any(|i| i.covers_next_day(second)))
    }

    /// The intervals that start on this date.
    fn intervals_on(&self, date: Date) -> &[Interval] {
        if self.holidays.contains(&date) {
            return &[];
        }
        match self.extra_days.get(&date) {
            Some(intervals) => intervals,
            None => &self.weekly[weekday_index(date.weekday())],
        }
    }

    /// Validates working hours as an admin sent them (the shape `to_json` answers).
    pub fn from_json(value: &Value) -> Result<Self, RuleViolation> {
        let object = value.as_object().ok_or_else(|| invalid_type("body", "a JSON object"))?;
        check_keys(object, &["time_zone", "weekly", "holidays", "extra_days"], "")?;
        let time_zone = parse_time_zone(object.get("time_zone"))?;
        let weekly = parse_weekly(object.get("weekly"))?;
        let holidays = parse_holidays(object.get("holidays").unwrap_or(&Value::Null))?;
        let extra_days = parse_extra_days(object.get("extra_days").unwrap_or(&Value::Null), &holidays)?;
        Ok(Self { time_zone, weekly, holidays, extra_days })
    }

    /// `{"time_zone", "weekly": {"mon": [{"from", "to"}], ... every day}, "holidays": [dates],
    /// "extra_days": [{"date", "intervals"}]}`, dates and intervals in order.
    pub fn to_json(&self) -> Value {
        let weekly: Map<String, Value> = WEEKDAYS
            .iter()
            .zip(&self.weekly)
            .map(|(day, intervals)| ((*day).to_owned(), intervals_json(intervals)))
            .collect();
        let holidays: Vec<String> = self.holidays.iter().map(Date::to_string).collect();
        let extra_days: Vec<Value> = self
            .extra_days
            .iter()
            .map(
                |(date, intervals)| json!({"date": date.to_string(), "intervals": intervals_json(intervals)}),
            )
            .collect();
        json!({
            "time_zone": self.time_zone_name(),
            "weekly": weekly,
            "holidays": holidays,
            "extra_days": extra_days,
        })
    }
}

impl Serialize for WorkingHours {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.to_json().serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for WorkingHours {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = Value::deserialize(deserializer)?;
        Self::from_json(&value).map_err(serde::de::Error::custom)
    }
}

fn weekday_index(weekday: Weekday) -> usize {
    usize::from(weekday.to_monday_zero_offset().unsigned_abs())
}

fn intervals_json(intervals: &[Interval]) -> Value {
    Value::Array(intervals.iter().map(|interval| interval.to_json()).collect())
}

fn hhmm(minutes: u16) -> String {
    format!("{:02}:{:02}", minutes / 60, minutes % 60)
}

fn invalid_type(field: &str, expected: &str) -> RuleViolation {
    RuleViolation::new("invalid_type", field, format!("must be {expected}"))
}

fn check_keys(object: &Map<String, Value>, known: &[&str], prefix: &str) -> Result<(), RuleViolation> {
    match object.keys().find(|key| !known.contains(&key.as_str())) {
        Some(key) => {
            Err(RuleViolation::new("unknown_field", format!("{prefix}{key}"), "is not a known field"))
        }
        None => Ok(()),
    }
}

fn parse_time_zone(value: Option<&Value>) -> Result<TimeZone, RuleViolation> {
    let name = match value {
        None | Some(Value::Null) => {
            return Err(RuleViolation::new("required", "time_zone", "is required (an IANA name)"));
        }
        Some(value) => value.as_str().ok_or_else(|| invalid_type("time_zone", "an IANA time zone name"))?,
    };
    let unknown = || {
        RuleViolation::new(
            "unknown_time_zone",
            "time_zone",
            "must be an IANA time zone name such as Europe/Moscow",
        )
    };
    if name.is_empty() || name.len() > 64 {
        return Err(unknown());
    }
    // Only names of the database: no fixed offsets or POSIX rules, and not jiff's "Etc/Unknown".
    let time_zone = TimeZone::get(name).map_err(|_| unknown())?;
    time_zone.iana_name().ok_or_else(unknown)?;
    Ok(time_zone)
}

/// "HH:MM", 00:00 to 23:59 (and "24:00" where `end_of_day` is allowed).
fn parse_minutes(value: Option<&Value>, field: &str, end_of_day: bool) -> Result<u16, RuleViolation> {
    let bad = || {
        let range = if end_of_day { "00:00 to 24:00" } else { "00:00 to 23:59" };
        RuleViolation::new("invalid_time", field, format!("must be a time \"HH:MM\", {range}"))
    };
    let text = value.and_then(Value::as_str).ok_or_else(bad)?;
    let bytes = text.as_bytes();
    if bytes.len() != 5 || bytes[2] != b':' {
        return Err(bad());
    }
    let number = |digits: &[u8]| -> Option<u16> {
        digits.iter().try_fold(0u16, |n, d| d.is_ascii_digit().then(|| n * 10 + u16::from(d - b'0')))
    };
    let (hours, minutes) = (number(&bytes[..2]).ok_or_else(bad)?, number(&bytes[3..]).ok_or_else(bad)?);
    match (hours, minutes) {
        (0..=23, 0..=59) => Ok(hours * 60 + minutes),
        (24, 0) if end_of_day => Ok(MINUTES_PER_DAY),
        _ => Err(bad()),
    }
}

fn parse_intervals(value: &Value, field: &str) -> Result<Vec<Interval>, RuleViolation> {
    let items = value.as_array().ok_or_else(|| invalid_type(field, "a list of {\"from\", \"to\"}"))?;
    if items.len() > MAX_INTERVALS_PER_DAY {
        return Err(RuleViolation::new(
            "too_many_intervals",
            field,
            format!("at most {MAX_INTERVALS_PER_DAY} intervals a day"),
        ));
    }
    let mut intervals: Vec<Interval> = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let at = format!("{field}[{i}]");
        let object = item.as_object().ok_or_else(|| invalid_type(&at, "an object {\"from\", \"to\"}"))?;
        check_keys(object, &["from", "to"], &format!("{at}."))?;
        let from = parse_minutes(object.get("from"), &format!("{at}.from"), false)?;
        let to = parse_minutes(object.get("to"), &format!("{at}.to"), true)?;
        let interval = Interval { from, to };
        let (start, end) = interval.span();
        if let Some(other) = intervals.iter().position(|o| {
            let (o_start, o_end) = o.span();
            start < o_end && o_start < end
        }) {
            return Err(RuleViolation::new(
                "overlapping_intervals",
                format!("{at}.from"),
                format!("overlaps {field}[{other}]"),
            ));
        }
        intervals.push(interval);
    }
    intervals.sort();
    Ok(intervals)
}

fn parse_weekly(value: Option<&Value>) -> Result<[Vec<Interval>; 7], RuleViolation> {
    let object = match value {
        None | Some(Value::Null) => {
            return Err(RuleViolation::new("required", "weekly", "is required (days left out are closed)"));
        }
        Some(value) => value.as_object().ok_or_else(|| invalid_type("weekly", "an object keyed mon..sun"))?,
    };
    check_keys(object, &WEEKDAYS, "weekly.")?;
    let mut weekly: [Vec<Interval>; 7] = Default::default();
    for (index, day) in WEEKDAYS.iter().enumerate() {
        if let Some(intervals) = object.get(*day).filter(|v| !v.is_null()) {
            weekly[index] = parse_intervals(intervals, &format!("weekly.{day}"))?;
        }
    }
    Ok(weekly)
}

/// A calendar date written exactly "YYYY-MM-DD".
fn parse_date(value: Option<&Value>, field: &str) -> Result<Date, RuleViolation> {
    let bad = || RuleViolation::new("invalid_date", field, "must be a date \"YYYY-MM-DD\"");
    let text = value.and_then(Value::as_str).ok_or_else(bad)?;
    let bytes = text.as_bytes();
    let shaped = bytes.len() == 10
        && bytes
            .iter()
            .enumerate()
            .all(|(i, b)| if i == 4 || i == 7 { *b == b'-' } else { b.is_ascii_digit() });
    if !shaped {
        return Err(bad());
    }
    let number = |range: std::ops::Range<usize>| text[range].parse::<i16>().map_err(|_| bad());
    let (year, month, day) = (number(0..4)?, number(5..7)?, number(8..10)?);
    let month = i8::try_from(month).map_err(|_| bad())?;
    let day = i8::try_from(day).map_err(|_| bad())?;
    Date::new(year, month, day).map_err(|_| bad())
}

fn parse_holidays(value: &Value) -> Result<BTreeSet<Date>, RuleViolation> {
    let items = match value {
        Value::Null => return Ok(BTreeSet::new()),
        Value::Array(items) => items,
        _ => return Err(invalid_type("holidays", "a list of dates \"YYYY-MM-DD\"")),
    };
    if items.len() > MAX_HOLIDAYS {
        return Err(RuleViolation::new(
            "too_many_holidays",
            "holidays",
            format!("at most {MAX_HOLIDAYS} dates"),
        ));
    }
    let mut holidays = BTreeSet::new();
    for (i, item) in items.iter().enumerate() {
        let field = format!("holidays[{i}]");
        let date = parse_date(Some(item), &field)?;
        if !holidays.insert(date) {
            return Err(RuleViolation::new("duplicate_date", field, "this date is listed twice"));
        }
    }
    Ok(holidays)
}

fn parse_extra_days(
    value: &Value,
    holidays: &BTreeSet<Date>,
) -> Result<BTreeMap<Date, Vec<Interval>>, RuleViolation> {
    let items = match value {
        Value::Null => return Ok(BTreeMap::new()),
        Value::Array(items) => items,
        _ => return Err(invalid_type("extra_days", "a list of {\"date\", \"intervals\"}")),
    };
    if items.len() > MAX_EXTRA_DAYS {
        return Err(RuleViolation::new(
            "too_many_extra_days",
            "extra_days",
            format!("at most {MAX_EXTRA_DAYS} extra days"),
        ));
    }
    let mut extra_days = BTreeMap::new();
    for (i, item) in items.iter().enumerate() {
        let at = format!("extra_days[{i}]");
        let object =
            item.as_object().ok_or_else(|| invalid_type(&at, "an object {\"date\", \"intervals\"}"))?;
        check_keys(object, &["date", "intervals"], &format!("{at}."))?;
        let date_field = format!("{at}.date");
        let date = parse_date(object.get("date"), &date_field)?;
        if holidays.contains(&date) {
            return Err(RuleViolation::new(
                "holiday_and_extra_day",
                date_field,
                "this date is also a holiday; it cannot be both",
            ));
        }
        let intervals_field = format!("{at}.intervals");
        let intervals = parse_intervals(object.get("intervals").unwrap_or(&Value::Null), &intervals_field)?;
        if intervals.is_empty() {
            return Err(RuleViolation::new(
                "no_intervals",
                intervals_field,
                "an extra working day needs at least one interval (a closed date is a holiday)",
            ));
        }
        if extra_days.insert(date, intervals).is_some() {
            return Err(RuleViolation::new("duplicate_date", date_field, "this date is listed twice"));
        }
    }
    Ok(extra_days)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hours(value: Value) -> WorkingHours {
        WorkingHours::from_json(&value).expect("valid hours")
    }

    fn field_of(value: Value) -> String {
        WorkingHours::from_json(&value).expect_err("must be rejected").field
    }

    fn at(instant: &str) -> Timestamp {
        instant.parse().expect("a timestamp")
    }

    /// The instant of a wall-clock time in a zone ("2026-01-05T09:00" in Europe/Moscow).
    fn local(zone: &str, civil: &str) -> Timestamp {
        let datetime: jiff::civil::DateTime = civil.parse().expect("a civil datetime");
        datetime.to_zoned(TimeZone::get(zone).expect("zone")).expect("exists").timestamp()
    }

    #[test]
    fn always_open_is_open_at_every_instant() {
        let hours = WorkingHours::always_open();
        for instant in
            ["2026-01-01T00:00:00Z", "2026-03-29T01:30:00Z", "2026-12-31T23:59:59Z", "1999-06-15T12:00:00Z"]
        {
            assert!(hours.is_open(at(instant)), "{instant}");
        }
        let round_trip = WorkingHours::from_json(&hours.to_json()).expect("its own shape is valid");
        assert_eq!(round_trip, hours);
        assert_eq!(hours.to_json()["weekly"]["sun"], json!([{"from": "00:00", "to": "24:00"}]));
    }

    #[test]
    fn the_published_shape_round_trips() {
        let sent = json!({
            "time_zone": "europe/moscow",
            "weekly": {"mon": [{"from": "14:00", "to": "18:00"}, {"from": "09:00", "to": "13:00"}], "fri": [{"from": "22:00", "to": "02:00"}]},
            "holidays": ["2026-01-02", "2026-01-01"],
            "extra_days": [{"date": "2026-01-10", "intervals": [{"from": "10:00", "to": "15:00"}]}]
        });
        let parsed = hours(sent);
        let expected = json!({
            "time_zone": "Europe/Moscow",
            "weekly": {
                "mon": [{"from": "09:00", "to": "13:00"}, {"from": "14:00", "to": "18:00"}],
                "tue": [], "wed": [], "thu": [],
                "fri": [{"from": "22:00", "to": "02:00"}],
                "sat": [], "sun": []
            },
            "holidays": ["2026-01-01", "2026-01-02"],
            "extra_days": [{"date": "2026-01-10", "intervals": [{"from": "10:00", "to": "15:00"}]}]
        });
        assert_eq!(parsed.to_json(), expected);
        assert_eq!(serde_json::to_value(&parsed).expect("serializes"), expected);
        let back: WorkingHours = serde_json::from_value(expected).expect("deserializes");
        assert_eq!(back, parsed);
    }

    #[test]
    fn open_inside_an_interval_in_the_tenant_zone_and_closed_outside() {
        // Moscow is UTC+3 all year; 2026-01-05 is a Monday.
        let hours = hours(
            json!({"time_zone": "Europe/Moscow", "weekly": {"mon": [{"from": "09:00", "to": "18:00"}]}}),
        );
        assert!(!hours.is_open(at("2026-01-05T05:59:59Z")));
        assert!(hours.is_open(at("2026-01-05T06:00:00Z")));
        assert!(hours.is_open(at("2026-01-05T14:59:59Z")));
        assert!(!hours.is_open(at("2026-01-05T15:00:00Z")));
        assert!(!hours.is_open(local("Europe/Moscow", "2026-01-06T10:00")), "Tuesday has no hours");
    }

    #[test]
    fn several_intervals_a_day_leave_the_gaps_closed() {
        let hours = hours(json!({"time_zone": "Europe/Moscow", "weekly": {"mon": [
            {"from": "09:00", "to": "13:00"}, {"from": "14:00", "to": "18:00"}, {"from": "20:00", "to": "24:00"}
        ]}}));
        let open = |t: &str| hours.is_open(local("Europe/Moscow", &format!("2026-01-05T{t}")));
        assert!(open("12:59:59"));
        assert!(!open("13:00"));
        assert!(!open("13:59:59"));
        assert!(open("14:00"));
        assert!(!open("19:00"));
        assert!(open("23:59:59"));
        assert!(!hours.is_open(local("Europe/Moscow", "2026-01-06T00:00")), "24:00 ends the day");
    }

    #[test]
    fn a_midnight_crossing_interval_belongs_to_the_day_it_started() {
        // 2026-01-09 is a Friday, 2026-01-10 the Saturday after it.
        let weekly = json!({"fri": [{"from": "22:00", "to": "02:00"}]});
        let plain = hours(json!({"time_zone": "Europe/Berlin", "weekly": weekly}));
        let open = |h: &WorkingHours, t: &str| h.is_open(local("Europe/Berlin", t));
        assert!(!open(&plain, "2026-01-09T21:59:59"));
        assert!(open(&plain, "2026-01-09T23:00"));
        assert!(open(&plain, "2026-01-10T01:00"));
        assert!(open(&plain, "2026-01-10T01:59:59"));
        assert!(!open(&plain, "2026-01-10T02:00"));
        assert!(!open(&plain, "2026-01-08T01:00"), "Thursday night was not opened by Wednesday");

        let saturday_off =
            hours(json!({"time_zone": "Europe/Berlin", "weekly": weekly, "holidays": ["2026-01-10"]}));
        assert!(open(&saturday_off, "2026-01-10T01:00"), "Friday's interval runs into the Saturday holiday");

        let friday_off =
            hours(json!({"time_zone": "Europe/Berlin", "weekly": weekly, "holidays": ["2026-01-09"]}));
        assert!(!open(&friday_off, "2026-01-09T23:00"));
        assert!(!open(&friday_off, "2026-01-10T01:00"), "a holiday closes the intervals that start on it");

        let full_turn = hours(
            json!({"time_zone": "Europe/Berlin", "weekly": {"mon": [{"from": "09:00", "to": "09:00"}]}}),
        );
        assert!(open(&full_turn, "2026-01-06T08:59:59"), "09:00-09:00 is 24 hours");
        assert!(!open(&full_turn, "2026-01-06T09:00"));
        assert!(!open(&full_turn, "2026-01-05T08:59:59"));
    }

    #[test]
    fn holidays_close_and_extra_days_replace_the_weekday() {
        let hours = hours(json!({
            "time_zone": "Europe/Moscow",
            "weekly": {"mon": [{"from": "09:00", "to": "18:00"}], "tue": [{"from": "09:00", "to": "18:00"}]},
            "holidays": ["2026-01-05"],
            "extra_days": [
                {"date": "2026-01-10", "intervals": [{"from": "10:00", "to": "15:00"}]},
                {"date": "2026-01-13", "intervals": [{"from": "12:00", "to": "14:00"}]}
            ]
        }));
        let open = |t: &str| hours.is_open(local("Europe/Moscow", t));
        assert!(!open("2026-01-05T10:00"), "a Monday holiday");
        assert!(open("2026-01-12T10:00"), "the next Monday");
        assert!(open("2026-01-10T10:00"), "a working Saturday");
        assert!(!open("2026-01-10T15:00"));
        assert!(!open("2026-01-17T10:00"), "the next Saturday is closed again");
        assert!(!open("2026-01-13T10:00"), "a shortened Tuesday opens at 12:00");
        assert!(open("2026-01-13T13:00"));
        assert!(!open("2026-01-13T15:00"));
    }

    #[test]
    fn europe_berlin_spring_forward_skips_an_hour() {
        // 2026-03-29 (a Sunday): 02:00 CET becomes 03:00 CEST, 02:30 never happens.
        let hours = hours(
            json!({"time_zone": "Europe/Berlin", "weekly": {"sun": [{"from": "01:00", "to": "03:00"}]}}),
        );
        assert!(!hours.is_open(at("2026-03-28T23:59:59Z")));
        assert!(hours.is_open(at("2026-03-29T00:00:00Z")), "01:00 CET");
        assert!(hours.is_open(at("2026-03-29T00:59:59Z")), "01:59:59 CET");
        assert!(!hours.is_open(at("2026-03-29T01:00:00Z")), "03:00 CEST: the interval was one hour long");

        let late = hours_from("Europe/Berlin", "sun", "02:30", "04:00");
        assert!(!late.is_open(at("2026-03-29T00:59:59Z")), "01:59:59 CET");
        assert!(late.is_open(at("2026-03-29T01:00:00Z")), "03:00 CEST is past 02:30 on the wall clock");
        assert!(!late.is_open(at("2026-03-29T02:00:00Z")), "04:00 CEST");

        // The Monday after: 09:00 is now UTC+2.
        let office = hours_from("Europe/Berlin", "mon", "09:00", "18:00");
        assert!(office.is_open(at("2026-03-30T07:00:00Z")));
        assert!(!office.is_open(at("2026-03-30T06:59:59Z")));
        assert!(office.is_open(at("2026-03-23T08:00:00Z")), "a week earlier 09:00 was UTC+1");
        assert!(!office.is_open(at("2026-03-23T07:59:59Z")));
    }

    #[test]
    fn europe_berlin_fall_back_repeats_an_hour() {
        // 2026-10-25 (a Sunday): 03:00 CEST becomes 02:00 CET, 02:xx happens twice.
        let hours = hours_from("Europe/Berlin", "sun", "01:00", "03:00");
        assert!(!hours.is_open(at("2026-10-24T22:59:59Z")));
        assert!(hours.is_open(at("2026-10-24T23:00:00Z")), "01:00 CEST");
        assert!(hours.is_open(at("2026-10-25T00:30:00Z")), "02:30 CEST");
        assert!(hours.is_open(at("2026-10-25T01:30:00Z")), "02:30 CET, the second time");
        assert!(!hours.is_open(at("2026-10-25T02:00:00Z")), "03:00 CET: the interval was three hours long");
    }

    #[test]
    fn america_new_york_dst_changes() {
        // 2026-03-08: 02:00 EST becomes 03:00 EDT. 2026-11-01: 02:00 EDT becomes 01:00 EST.
        let spring = hours_from("America/New_York", "sun", "01:00", "03:00");
        assert!(spring.is_open(at("2026-03-08T06:00:00Z")), "01:00 EST");
        assert!(spring.is_open(at("2026-03-08T06:59:59Z")));
        assert!(!spring.is_open(at("2026-03-08T07:00:00Z")), "03:00 EDT: one hour");
        let autumn = hours_from("America/New_York", "sun", "01:00", "02:00");
        assert!(autumn.is_open(at("2026-11-01T05:00:00Z")), "01:00 EDT");
        assert!(autumn.is_open(at("2026-11-01T06:30:00Z")), "01:30 EST, the second time");
        assert!(!autumn.is_open(at("2026-11-01T07:00:00Z")), "02:00 EST: two hours");
        // A night shift across the spring-forward night: Saturday 22:00 to Sunday 06:00 wall clock.
        let night = hours_from("America/New_York", "sat", "22:00", "06:00");
        assert!(night.is_open(at("2026-03-08T03:00:00Z")), "22:00 EST Saturday");
        assert!(night.is_open(at("2026-03-08T09:59:59Z")), "05:59:59 EDT Sunday");
        assert!(!night.is_open(at("2026-03-08T10:00:00Z")), "06:00 EDT");
    }

    fn hours_from(zone: &str, day: &str, from: &str, to: &str) -> WorkingHours {
        hours(json!({"time_zone": zone, "weekly": { day: [{"from": from, "to": to}] }}))
    }

    #[test]
    fn every_rule_names_its_field() {
        let week = json!({"mon": [{"from": "09:00", "to": "18:00"}]});
        let with = |extra: Value| {
            let mut value = json!({"time_zone": "Europe/Moscow", "weekly": week});
            for (key, v) in extra.as_object().expect("object") {
                value[key] = v.clone();
            }
            value
        };
        assert_eq!(field_of(json!([])), "body");
        assert_eq!(field_of(json!({"weekly": week})), "time_zone");
        assert_eq!(field_of(with(json!({"time_zone": "Mars/Olympus_Mons"}))), "time_zone");
        assert_eq!(field_of(with(json!({"time_zone": "+03:00"}))), "time_zone");
        assert_eq!(field_of(with(json!({"time_zone": "Etc/Unknown"}))), "time_zone");
        assert_eq!(field_of(with(json!({"time_zone": ""}))), "time_zone");
        assert_eq!(field_of(with(json!({"time_zone": 3}))), "time_zone");
        assert_eq!(field_of(json!({"time_zone": "UTC"})), "weekly");
        assert_eq!(field_of(with(json!({"weekly": []}))), "weekly");
        assert_eq!(field_of(with(json!({"weekly": {"monday": []}}))), "weekly.monday");
        assert_eq!(field_of(with(json!({"weekly": {"tue": {}}}))), "weekly.tue");
        assert_eq!(
            field_of(with(json!({"weekly": {"mon": [{"from": "9:00", "to": "18:00"}]}}))),
            "weekly.mon[0].from"
        );
        assert_eq!(
            field_of(with(json!({"weekly": {"mon": [{"from": "24:00", "to": "18:00"}]}}))),
            "weekly.mon[0].from"
        );
        assert_eq!(field_of(with(json!({"weekly": {"mon": [{"to": "18:00"}]}}))), "weekly.mon[0].from");
        assert_eq!(
            field_of(with(json!({"weekly": {"mon": [{"from": "09:00", "to": "18:60"}]}}))),
            "weekly.mon[0].to"
        );
        assert_eq!(
            field_of(with(json!({"weekly": {"mon": [{"from": "09:00", "to": "24:01"}]}}))),
            "weekly.mon[0].to"
        );
        assert_eq!(
            field_of(with(json!({"weekly": {"mon": [{"from": "09:00", "to": "1800"}]}}))),
            "weekly.mon[0].to"
        );
        assert_eq!(field_of(with(json!({"weekly": {"mon": ["09:00-18:00"]}}))), "weekly.mon[0]");
        assert_eq!(
            field_of(with(json!({"weekly": {"mon": [{"from": "09:00", "to": "18:00", "note": "x"}]}}))),
            "weekly.mon[0].note"
        );
        assert_eq!(
            field_of(with(
                json!({"weekly": {"sun": [{"from": "09:00", "to": "13:00"}, {"from": "12:00", "to": "18:00"}]}})
            )),
            "weekly.sun[1].from"
        );
        assert_eq!(
            field_of(with(
                json!({"weekly": {"fri": [{"from": "22:00", "to": "02:00"}, {"from": "23:00", "to": "23:30"}]}})
            )),
            "weekly.fri[1].from"
        );
        let too_many: Vec<Value> = (0..=MAX_INTERVALS_PER_DAY)
            .map(|h| json!({"from": format!("{h:02}:00"), "to": format!("{h:02}:30")}))
            .collect();
        assert_eq!(field_of(with(json!({"weekly": {"wed": too_many}}))), "weekly.wed");
        assert_eq!(field_of(with(json!({"holidays": "2026-01-01"}))), "holidays");
        assert_eq!(field_of(with(json!({"holidays": ["2026-01-01", "2026-02-30"]}))), "holidays[1]");
        assert_eq!(field_of(with(json!({"holidays": ["2026-1-1"]}))), "holidays[0]");
        assert_eq!(field_of(with(json!({"holidays": ["2026-01-01T00:00"]}))), "holidays[0]");
        assert_eq!(field_of(with(json!({"holidays": ["2026-01-01", "2026-01-01"]}))), "holidays[1]");
        assert_eq!(field_of(with(json!({"extra_days": {}}))), "extra_days");
        assert_eq!(
            field_of(with(json!({"extra_days": [{"date": "x", "intervals": []}]}))),
            "extra_days[0].date"
        );
        assert_eq!(
            field_of(with(json!({"extra_days": [{"date": "2026-01-10", "intervals": []}]}))),
            "extra_days[0].intervals"
        );
        assert_eq!(
            field_of(with(json!({"extra_days": [{"date": "2026-01-10"}]}))),
            "extra_days[0].intervals"
        );
        assert_eq!(
            field_of(with(
                json!({"extra_days": [{"date": "2026-01-10", "intervals": [{"from": "10:00", "to": "x"}]}]})
            )),
            "extra_days[0].intervals[0].to"
        );
        let day = json!({"date": "2026-01-10", "intervals": [{"from": "10:00", "to": "15:00"}]});
        assert_eq!(field_of(with(json!({"extra_days": [day, day]}))), "extra_days[1].date");
        assert_eq!(
            field_of(with(json!({"holidays": ["2026-01-10"], "extra_days": [day]}))),
            "extra_days[0].date"
        );
        assert_eq!(field_of(with(json!({"timezone": "UTC"}))), "timezone");
    }

    #[test]
    fn days_left_out_or_null_are_closed() {
        let hours = hours(json!({"time_zone": "UTC", "weekly": {"mon": null}}));
        assert!(!hours.is_open(at("2026-01-05T12:00:00Z")));
        assert_eq!(hours.to_json()["weekly"]["mon"], json!([]));
        assert_eq!(hours.to_json()["holidays"], json!([]));
    }
}
