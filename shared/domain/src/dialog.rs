//! A dialog: one customer's conversation on one channel, open → assigned → closed.

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use super::{ChannelId, ChatbotId, CustomerId, DialogId, EmployeeId, GroupId, RuleViolation, TenantId};

/// The person writing to the business, as the provider identifies them on a channel.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Customer {
    /// The provider's id of the customer (chat id, user id, phone number, address): where replies go.
    pub id: String,
    pub name: Option<String>,
    /// The person's public handle on the provider, where it has one (a Telegram `@username`, without the
    /// `@`): shown and searched with the customer's identity.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub handle: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DialogStatus {
    Open,
    Assigned,
    Closed,
}

impl DialogStatus {
    /// The name as stored and shown (the serde name).
    pub fn as_str(self) -> &'static str {
        match self {
            DialogStatus::Open => "open",
            DialogStatus::Assigned => "assigned",
            DialogStatus::Closed => "closed",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Dialog {
    pub id: DialogId,
    pub tenant_id: TenantId,
    pub channel_id: ChannelId,
    pub customer: Customer,
    /// The customer's profile (`CustomerProfile`); none on dialogs stored before profiles existed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub customer_id: Option<CustomerId>,
    pub status: DialogStatus,
    pub assignee_id: Option<EmployeeId>,
    pub group_id: Option<GroupId>,
    pub opened_at: Timestamp,
    pub assigned_at: Option<Timestamp>,
    pub closed_at: Option<Timestamp>,
    /// The last message either way: what inactivity is measured from.
    pub last_activity_at: Timestamp,
    /// The chatbot that has the dialog (outside working hours, or on a channel a chatbot handles), until
    /// it hands the dialog to people.
    #[serde(default)]
    pub chatbot_id: Option<ChatbotId>,
    /// Routing's bookkeeping: which of the assignee's capacity slots the dialog holds
    /// (`usecases::routing::release_writes` frees it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slot: Option<u32>,
}

impl Dialog {
    pub fn open(tenant_id: TenantId, channel_id: ChannelId, customer: Customer, at: Timestamp) -> Self {
        Self {
            id: DialogId::generate(),
            tenant_id,
            channel_id,
            customer,
            customer_id: None,
            status: DialogStatus::Open,
            assignee_id: None,
            group_id: None,
            opened_at: at,
            assigned_at: None,
            closed_at: None,
            last_activity_at: at,
            chatbot_id: None,
            slot: None,
        }
    }

    pub fn is_closed(&self) -> bool {
        self.status == DialogStatus::Closed
    }

    pub fn assign(&mut self, employee: EmployeeId, at: Timestamp) -> Result<(), RuleViolation> {
        if self.is_closed() {
            return Err(closed_violation());
        }
        self.status = DialogStatus::Assigned;
        self.assignee_id = Some(employee);
        self.assigned_at = Some(at);
        Ok(())
    }

    pub fn close(&mut self, at: Timestamp) -> Result<(), RuleViolation> {
        if self.is_closed() {
            return Err(closed_violation());
        }
        self.status = DialogStatus::Closed;
        self.closed_at = Some(at);
        Ok(())
    }
}

fn closed_violation() -> RuleViolation {
    RuleViolation::new("dialog_closed", "status", "the dialog is closed / диалог закрыт")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn moves_open_to_assigned_to_closed_and_no_further() {
        let t0 = Timestamp::from_second(1_700_000_000).expect("valid");
        let customer = Customer { id: "42".into(), name: Some("Ann".into()), handle: None };
        let mut dialog = Dialog::open(TenantId::generate(), ChannelId::generate(), customer, t0);
        assert_eq!(dialog.status, DialogStatus::Open);
        let employee = EmployeeId::generate();
        dialog.assign(employee.clone(), t0).expect("open dialogs can be assigned");
        assert_eq!((dialog.status, dialog.assignee_id.as_ref()), (DialogStatus::Assigned, Some(&employee)));
        dialog.close(t0).expect("assigned dialogs can be closed");
        assert_eq!(dialog.closed_at, Some(t0));
        assert!(dialog.close(t0).is_err());
        assert!(dialog.assign(employee, t0).is_err());
    }
}
