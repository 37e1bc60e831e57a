//! Distribution policies: which member of a group gets a dialog, decided from the members' state now.
//! Pure rules; `usecases::routing` reads the state, draws the ticket and makes the decision stick.

use super::EmployeeId;
use super::people::{Distribution, EmployeeStatus};

/// A group member as routing sees them at one instant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    pub id: EmployeeId,
    pub status: EmployeeStatus,
    /// Dialogs assigned to them and not closed, now.
    pub load: u32,
    pub max_dialogs: u32,
}

impl Candidate {
    /// Online and under capacity: anything else is skipped.
    pub fn is_available(&self) -> bool {
        self.status == EmployeeStatus::Online && self.load < self.max_dialogs
    }
}

/// What the policy decided for one dialog.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Choice {
    Assign(EmployeeId),
    /// Offered to all of them (in the group's order); the first to accept has it.
    Offer(Vec<EmployeeId>),
    /// Nobody is available: the dialog waits in the group's queue.
    Wait,
}

/// Chooses among `members` (in the group's order).
///
/// - `ticket`: a number drawn from the group's shared counter, one per dialog. Round robin starts its walk
///   at member `ticket % n`, so n consecutive tickets visit every member once whatever the number of
///   routers drawing them; least busy breaks ties the same way, so concurrent routers spread out.
/// - `passed`: members this dialog already went to without being taken. They are chosen again only when
///   nobody else is available, and never when `strict` (a dialog moving on after its wait time).
pub fn choose(
    distribution: Distribution,
    members: &[Candidate],
    ticket: u64,
    passed: &[EmployeeId],
    strict: bool,
) -> Choice {
    let available: Vec<&Candidate> =
        rotation(members.len(), ticket).map(|i| &members[i]).filter(|member| member.is_available()).collect();
    let fresh: Vec<&Candidate> =
        available.iter().copied().filter(|member| !passed.contains(&member.id)).collect();
    let pool = if fresh.is_empty() && !strict { available } else { fresh };
    match distribution {
        Distribution::RoundRobin => pool.first().map_or(Choice::Wait, |m| Choice::Assign(m.id.clone())),
        // `min_by_key` keeps the first of equals: the one nearest the ticket's position.
        Distribution::LeastBusy => {
            pool.iter().min_by_key(|m| m.load).map_or(Choice::Wait, |m| Choice::Assign(m.id.clone()))
        }
        Distribution::AllAtOnce if pool.is_empty() => Choice::Wait,
        Distribution::AllAtOnce => Choice::Offer(
            members.iter().filter(|m| pool.iter().any(|p| p.id == m.id)).map(|m| m.id.clone()).collect(),
        ),
    }
}

/// Member positions starting at `ticket % n`, wrapping around.
fn rotation(n: usize, ticket: u64) -> impl Iterator<Item = usize> {
    let start = if n == 0 { 0 } else { usize::try_from(ticket % n as u64).unwrap_or(0) };
    (0..n).map(move |step| (start + step) % n)
}

/// A free capacity slot below `max_dialogs`, or `None` at capacity. Slots are what make capacity atomic:
/// an assignment claims one (`attribute_not_exists`), so two routers can never both take the last.
/// `pick` chooses among the free ones (routers pick at random so that they rarely collide).
pub fn free_slot(held: &[u32], max_dialogs: u32, pick: impl FnOnce(usize) -> usize) -> Option<u32> {
    if u32::try_from(held.len()).unwrap_or(u32::MAX) >= max_dialogs {
        return None;
    }
    let free: Vec<u32> = (0..max_dialogs).filter(|slot| !held.contains(slot)).collect();
    if free.is_empty() {
        return None;
    }
    free.get(pick(free.len()).min(free.len() - 1)).copied()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member(status: EmployeeStatus, load: u32, max: u32) -> Candidate {
        Candidate { id: EmployeeId::generate(), status, load, max_dialogs: max }
    }

    fn online(load: u32) -> Candidate {
        member(EmployeeStatus::Online, load, 5)
    }

    fn assigned(choice: Choice, members: &[Candidate]) -> usize {
        match choice {
            Choice::Assign(id) => members.iter().position(|m| m.id == id).expect("a member"),
            other => panic!("expected an assignment, got {other:?}"),
        }
    }

    #[test]
    fn round_robin_visits_every_member_once_per_n_tickets() {
        let members: Vec<Candidate> = (0..5).map(|_| online(0)).collect();
        let mut counts = [0; 5];
        for ticket in 0..1000 {
            counts[assigned(choose(Distribution::RoundRobin, &members, ticket, &[], false), &members)] += 1;
        }
        assert_eq!(counts, [200; 5]);
    }

    #[test]
    fn round_robin_skips_offline_away_and_full_members() {
        let members = vec![
            member(EmployeeStatus::Offline, 0, 5),
            member(EmployeeStatus::Away, 0, 5),
            online(5),
            online(4),
        ];
        for ticket in 0..4 {
            assert_eq!(assigned(choose(Distribution::RoundRobin, &members, ticket, &[], false), &members), 3);
        }
        let nobody = vec![member(EmployeeStatus::Offline, 0, 5), online(5)];
        assert_eq!(choose(Distribution::RoundRobin, &nobody, 0, &[], false), Choice::Wait);
        assert_eq!(choose(Distribution::RoundRobin, &[], 7, &[], false), Choice::Wait);
    }

    #[test]
    fn least_busy_picks_the_fewest_open_dialogs_and_spreads_ties_by_ticket() {
        let members = vec![online(3), online(1), online(2), member(EmployeeStatus::Offline, 0, 5)];
        for ticket in 0..8 {
            assert_eq!(assigned(choose(Distribution::LeastBusy, &members, ticket, &[], false), &members), 1);
        }
        let tied = vec![online(1), online(1), online(1)];
        let picks: Vec<usize> =
            (0..3).map(|t| assigned(choose(Distribution::LeastBusy, &tied, t, &[], false), &tied)).collect();
        assert_eq!(picks, [0, 1, 2]);
    }

    #[test]
    fn all_at_once_offers_every_available_member_in_group_order() {
        let members = vec![online(0), member(EmployeeStatus::Away, 0, 5), online(5), online(2)];
        let expected = vec![members[0].id.clone(), members[3].id.clone()];
        assert_eq!(choose(Distribution::AllAtOnce, &members, 3, &[], false), Choice::Offer(expected));
        let nobody = vec![member(EmployeeStatus::Offline, 0, 5)];
        assert_eq!(choose(Distribution::AllAtOnce, &nobody, 0, &[], false), Choice::Wait);
    }

    #[test]
    fn a_dialog_moves_on_to_members_it_has_not_been_to() {
        let members = vec![online(0), online(0), online(0)];
        let passed = vec![members[0].id.clone(), members[1].id.clone()];
        for distribution in [Distribution::RoundRobin, Distribution::LeastBusy] {
            assert_eq!(assigned(choose(distribution, &members, 0, &passed, true), &members), 2);
        }
        let everyone: Vec<EmployeeId> = members.iter().map(|m| m.id.clone()).collect();
        // Everybody had it: strictly nobody is left; otherwise it starts over.
        assert_eq!(choose(Distribution::RoundRobin, &members, 1, &everyone, true), Choice::Wait);
        assert_eq!(assigned(choose(Distribution::RoundRobin, &members, 1, &everyone, false), &members), 1);
    }

    #[test]
    fn a_free_slot_is_below_capacity_and_not_held() {
        assert_eq!(free_slot(&[], 3, |_| 0), Some(0));
        assert_eq!(free_slot(&[0, 2], 3, |_| 0), Some(1));
        assert_eq!(free_slot(&[0, 1, 2], 3, |_| 0), None);
        assert_eq!(free_slot(&[1], 3, |n| n - 1), Some(2));
        // Capacity lowered below what is held: nothing new until enough are released.
        assert_eq!(free_slot(&[0, 3, 4], 2, |_| 0), None);
        assert_eq!(free_slot(&[3], 2, |_| 0), Some(0));
        assert_eq!(free_slot(&[], 0, |_| 0), None);
        assert_eq!(free_slot(&[], 2, |_| 99), Some(1));
    }
}
