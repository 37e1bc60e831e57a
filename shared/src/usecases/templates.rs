//! WhatsApp's approved templates: a channel's list (`GET /v1/channels/{id}/templates`), and the check a
//! template passes before it is written to the outbox.

use crate::domain::{Channel, Template};
use crate::error::{Error, Result};
use crate::ports::channel::{ChannelProvider, ChannelSecrets, TemplateInfo};
use crate::usecases::auth::Principal;
use crate::usecases::{Context, channels};

/// The longest template name WhatsApp takes, and language code.
const MAX_NAME_CHARS: usize = 512;
const MAX_LANGUAGE_CHARS: usize = 15;

async fn secrets(ctx: &Context, channel: &Channel) -> Result<ChannelSecrets> {
    ctx.channel_secrets(&channel.tenant_id, &channel.id)
        .await?
        .ok_or_else(|| Error::rule("channel_inactive", "channel", "the channel has no credentials stored"))
}

/// The channel's templates as its provider lists them. A channel whose provider sends no templates, or
/// whose API offers no list (edna), is a 422 saying so.
pub async fn list(ctx: &Context, principal: &Principal, channel_id: &str) -> Result<Vec<TemplateInfo>> {
    let channel = channels::channel_to_write_on(ctx, principal, channel_id).await?;
    let module = ctx.providers.get(channel.provider)?;
    if !module.sends_templates() {
        return Err(Error::rule("templates_unsupported", "channel", "only WhatsApp channels send templates"));
    }
    module.list_templates(&secrets(ctx, &channel).await?).await?.ok_or_else(|| {
        Error::rule(
            "templates_not_listed",
            "channel",
            "this provider's API lists no templates: see them in its console",
        )
    })
}

/// A template about to be sent: the provider sends templates, the name and language are given, and where
/// the provider lists its templates, this one is approved and takes exactly the parameters given.
pub(crate) async fn check(
    ctx: &Context,
    channel: &Channel,
    module: &dyn ChannelProvider,
    template: &Template,
) -> Result<()> {
    if !module.sends_templates() {
        return Err(Error::rule(
            "templates_unsupported",
            "template",
            format!("{} channels send no templates", channel.provider.kind()),
        ));
    }
    let name = template.name.trim();
    if name.is_empty() || name.chars().count() > MAX_NAME_CHARS {
        return Err(Error::rule("invalid_template", "template.name", "the approved template's name"));
    }
    let language = template.language.trim();
    if language.is_empty() || language.chars().count() > MAX_LANGUAGE_CHARS {
        return Err(Error::rule(
            "invalid_template",
            "template.language",
            "the template's language, like en or ru",
        ));
    }
    let Some(listed) = module.list_templates(&secrets(ctx, channel).await?).await? else {
        return Ok(());
    };
    let Some(found) = listed.iter().find(|t| t.name == name && t.language.eq_ignore_ascii_case(language))
    else {
        return Err(Error::rule(
            "unknown_template",
            "template.name",
            format!("no template {name:?} in {language:?} on this channel / шаблон не найден"),
        ));
    };
    if !found.is_approved() {
        return Err(Error::rule(
            "template_not_approved",
            "template.name",
            format!("the template is {}, not approved", found.status),
        ));
    }
    if template.parameters.len() != found.parameters {
        return Err(Error::rule(
            "template_parameters",
            "template.parameters",
            format!(
                "the template takes {} parameters, {} given",
                found.parameters,
                template.parameters.len()
            ),
        ));
    }
    Ok(())
}
