//! Writing first to someone who never wrote (`POST /v1/dialogs`): a WhatsApp number by approved template,
//! or an e-mail address. The dialog, the customer's open-dialog pointer and the first message are one
//! transaction, so the person's answer joins this dialog.

use crate::domain::{Customer, Dialog, Message, Template};
use crate::error::{Error, Result};
use crate::ports::channel::Recipient;
use crate::ports::events::DomainEvent;
use crate::ports::store::{Condition, Item, Write};
use crate::repo;
use crate::usecases::auth::{Principal, Role};
use crate::usecases::{Context, channels, customers, outbox, routing, templates};

/// Phone numbers are E.164: a country code and up to 15 digits in all.
const PHONE_DIGITS: std::ops::RangeInclusive<usize> = 8..=15;
const MAX_ADDRESS_CHARS: usize = 254;

/// What `POST /v1/dialogs` asks for.
#[derive(Debug, Clone, Default)]
pub struct NewConversation {
    pub channel_id: String,
    pub phone: Option<String>,
    pub address: Option<String>,
    pub text: String,
    pub template: Option<Template>,
}

/// Opens a dialog with someone who never wrote and sends its first message: assigned to the employee who
/// writes (an admin's goes to routing like a customer's). A person with an open dialog on the channel is
/// written to there (409 naming it); nothing is written on any error.
pub async fn start(ctx: &Context, principal: &Principal, new: NewConversation) -> Result<(Dialog, Message)> {
    let channel = channels::channel_to_write_on(ctx, principal, &new.channel_id).await?;
    if !channel.is_active() {
        return Err(Error::rule("channel_inactive", "channel_id", "the channel is not connected"));
    }
    let module = ctx.providers.get(channel.provider)?;
    let recipient = recipient(new.phone.as_deref(), new.address.as_deref())?;
    let external = module.first_contact(&recipient).ok_or_else(|| {
        // Some channels write first to the other kind of recipient (a mailbox to an address): name `to`.
        let other = match recipient {
            Recipient::Phone(_) => Recipient::Address("someone@example.org".into()),
            Recipient::Address(_) => Recipient::Phone("10000000000".into()),
        };
        match module.first_contact(&other) {
            Some(_) => {
                Error::rule("wrong_recipient", "to", "this channel writes to the other kind of address")
            }
            None => Error::rule(
                "cannot_write_first",
                "channel_id",
                format!(
                    "{} lets a business write only to customers who wrote first / писать первым нельзя",
                    channel.provider.kind()
                ),
            ),
        }
    })?;
    let text = new.text.trim().to_owned();
    match &new.template {
        Some(template) => {
            if !text.is_empty() {
                return Err(Error::rule("template_alone", "template", "a template goes alone, without text"));
            }
            templates::check(ctx, &channel, module, template).await?;
        }
        None if module.service_window().is_some() => {
            return Err(Error::rule(
                "outside_customer_service_window",
                "template",
                "WhatsApp lets a business write first only with an approved template / только шаблоном",
            ));
        }
        None => {
            let limit = module.max_text_chars();
            if text.is_empty() || text.chars().count() > limit {
                return Err(Error::rule("invalid_text", "text", format!("1 to {limit} characters")));
            }
        }
    }

    let now = ctx.clock.now();
    let pointer_key = repo::open_dialog_key(&channel.id, &external);
    let identity_key = repo::identity_key(&channel.id, &external);
    let [pointer, identity] =
        <[Option<Item>; 2]>::try_from(ctx.store.get_many(&[pointer_key.clone(), identity_key]).await?)
            .map_err(|_| Error::Internal("the store answered a batch read with the wrong count".into()))?;
    if let Some(open) = pointer.map(repo::from_item::<repo::OpenDialog>).transpose()? {
        return Err(open_elsewhere(&open.dialog_id.to_string()));
    }
    let customer = Customer { id: external, name: None, handle: None };
    let mut dialog = Dialog::open(channel.tenant_id.clone(), channel.id.clone(), customer.clone(), now);
    let (customer_id, mut writes) = customers::for_new_dialog(&channel, &customer, identity, now)?;
    dialog.customer_id = Some(customer_id);
    if let (Role::Employee, Some(employee)) = (principal.role, principal.employee_id.clone()) {
        dialog.assign(employee, now)?;
    }
    let open = repo::OpenDialog {
        dialog_id: dialog.id.clone(),
        awaiting_reply: false,
        last_activity_at: Some(now),
        listed_at: Some(now),
        chatbot: false,
    };
    writes
        .push(Write::Put { item: repo::to_item(&open, &pointer_key, &[])?, condition: Condition::NotExists });
    writes.push(Write::Put { item: repo::dialog_item(&dialog)?, condition: Condition::NotExists });
    writes.push(repo::close_timer_write(&dialog.id, &channel, now)?);
    writes.extend(customers::dialog_entry_write(&dialog)?);
    let routed = dialog.assignee_id.is_none();
    if routed {
        writes.extend(routing::unrouted_marker_writes(&dialog, now)?);
    }
    let mut message = Message::outbound(&dialog, text, Vec::new(), principal.employee_id.clone(), now);
    message.template = new.template;
    let sent = outbox::send_in_dialog(ctx, &dialog, message, writes).await.map_err(|error| match error {
        Error::Conflict(_) => open_elsewhere("just opened"),
        other => other,
    })?;
    if routed {
        let opened = DomainEvent::DialogOpened {
            tenant_id: dialog.tenant_id.clone(),
            channel_id: dialog.channel_id.clone(),
            dialog_id: dialog.id.clone(),
        };
        if let Err(error) = ctx.bus.publish(&[opened]).await {
            tracing::warn!(%error, dialog = %dialog.id, "DialogOpened not published; the router's sweep finds it");
        }
    }
    Ok((dialog, sent))
}

fn open_elsewhere(dialog: &str) -> Error {
    Error::Conflict(format!(
        "the customer has an open dialog on this channel ({dialog}): write there / у клиента уже есть открытый диалог"
    ))
}

/// Exactly one of a phone number and an address, checked and normalized.
fn recipient(phone: Option<&str>, address: Option<&str>) -> Result<Recipient> {
    match (phone.map(str::trim).filter(|p| !p.is_empty()), address.map(str::trim).filter(|a| !a.is_empty())) {
        (Some(phone), None) => {
            let digits: String = phone.chars().filter(char::is_ascii_digit).collect();
            let clean = phone.chars().all(|c| c.is_ascii_digit() || " +-().".contains(c));
            if !clean || !PHONE_DIGITS.contains(&digits.len()) {
                return Err(Error::rule(
                    "invalid_phone",
                    "to.phone",
                    "a number with its country code, like +7 916 555-12-34 / номер с кодом страны",
                ));
            }
            Ok(Recipient::Phone(digits))
        }
        (None, Some(address)) => {
            let address = address.to_lowercase();
            let valid = address.chars().count() <= MAX_ADDRESS_CHARS
                && !address.chars().any(|c| c.is_whitespace() || c.is_control() || "<>,;\"".contains(c))
                && address.split_once('@').is_some_and(|(local, domain)| {
                    !local.is_empty()
                        && domain.contains('.')
                        && !domain.starts_with('.')
                        && !domain.ends_with('.')
                        && !domain.contains('@')
                });
            match valid {
                true => Ok(Recipient::Address(address)),
                false => Err(Error::rule("invalid_address", "to.address", "an e-mail address / адрес почты")),
            }
        }
        _ => Err(Error::rule("invalid_recipient", "to", "either a phone number or an e-mail address")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_and_addresses_are_normalized_and_anything_else_is_refused() {
        assert_eq!(
            recipient(Some("+7 (916) 555-12-34"), None).ok(),
            Some(Recipient::Phone("79165551234".into()))
        );
        assert_eq!(
            recipient(None, Some(" Anna@Example.ORG ")).ok(),
            Some(Recipient::Address("anna@example.org".into()))
        );
        for (phone, address) in [
            (Some("12345"), None),
            (Some("+7 916 abc"), None),
            (None, Some("anna@localhost")),
            (None, Some("anna example@x.org")),
            (None, Some("@x.org")),
            (Some("+79165551234"), Some("a@x.org")),
            (None, None),
        ] {
            assert!(recipient(phone, address).is_err(), "{phone:?} {address:?}");
        }
    }
}
