// Admins' pages: channels (connect, settings, disconnect), employees, groups, chatbots, working hours.
import { t } from "./i18n.js";
import { h, clear, field, row, select, notice, errorText, modal, fieldErrors, uid } from "./ui.js";
import { get, post, put, api, all } from "./api.js";

export function render(main, page, rest) {
  const pages = { channels: rest[0] ? settingsPage : channelsPage, employees: employeesPage, groups: groupsPage, chatbots: chatbotsPage, "working-hours": hoursPage };
  const fn = pages[page];
  if (!fn) {
    main.append(h("h1", { text: t("Not found.") }));
    return null;
  }
  const section = h("div", { class: "admin" });
  main.append(section);
  return fn(section, rest[0]);
}

const loading = () => h("p", { class: "hint", role: "status", text: t("Loading…") });
const secretBox = (text, secret) => h("div", { class: "secret", role: "status" }, h("p", { text }), h("code", { text: secret }));
const optionalList = (path) => all(path).catch(() => []);
const DISTRIBUTION = { round_robin: "Round robin", least_busy: "Least busy", all_at_once: "All at once" };
const STATUS = [["online", "Online"], ["away", "Away"], ["offline", "Offline"]];

// ---- Channels -------------------------------------------------------------------------------------------

const PROVIDERS = [["telegram", "Telegram"], ["viber", "Viber"], ["vk", "VK"], ["whatsapp", "WhatsApp"], ["avito", "Avito"], ["email", "E-mail"]];
const WHATSAPP = [["edna", "edna"], ["messagebird", "MessageBird"], ["infobip", "Infobip"]];
const CREDENTIALS = {
  telegram: [["token", "Token", "password"]],
  viber: [["token", "Token", "password"]],
  vk: [["group_id", "Community ID", "text"], ["access_token", "Access token", "password"]],
  avito: [["client_id", "Client ID", "text"], ["client_secret", "Client secret", "password"]],
  edna: [["subject", "Subject", "text"], ["api_key", "API key", "password"]],
  messagebird: [["access_key", "Access key", "password"], ["channel_id", "Channel ID", "text"], ["signing_key", "Signing key", "password"], ["namespace_id", "Namespace ID", "text", true]],
  infobip: [["api_key", "API key", "password"], ["base_url", "Base URL", "url"], ["sender", "Sender", "text"]],
  email: [["address", "Address", "email"], ["login", "Login", "text"], ["password", "Password", "password"],
    ["imap.host", "IMAP host", "text"], ["imap.port", "IMAP port", "number"], ["imap.tls", "IMAP TLS", "checkbox"],
    ["smtp.host", "SMTP host", "text"], ["smtp.port", "SMTP port", "number"], ["smtp.tls", "SMTP TLS", "checkbox"]],
};

function channelsPage(section) {
  const list = h("ul", { class: "cards", "aria-labelledby": "channels-title" });
  const msg = h("div", { class: "page-msg" });
  const connect = h("button", { type: "button", text: t("Connect channel"), on: { click: () => connectDialog(msg, load) } });
  section.append(h("div", { class: "page-head" }, h("h1", { id: "channels-title", text: t("Channels") }), connect), msg, list);
  async function load() {
    try {
      const items = await all("/v1/channels");
      clear(list);
      if (!items.length) list.append(h("li", { class: "empty", text: t("No channels yet.") }));
      const names = new Map(items.map((c) => [c.id, c.name]));
      for (const c of items) {
        const settingsBtn = h("button", { type: "button", class: "secondary", text: t("Settings"), "aria-describedby": `ch-${c.id}`, on: { click: () => { location.hash = `#/channels/${c.id}`; } } });
        const disconnect = h("button", { type: "button", class: "danger", text: t("Disconnect"), "aria-describedby": `ch-${c.id}`, disabled: c.status === "disconnected", on: { click: () => disconnectDialog(c, msg, load) } });
        list.append(h("li", { class: "card", "data-channel-id": c.id },
          h("h2", { id: `ch-${c.id}`, text: c.name }),
          h("dl", {},
            h("dt", { text: t("Provider") }), h("dd", { text: providerName(c) }),
            h("dt", { text: t("Account") }), h("dd", { text: c.account ? c.account.name || c.account.id : "" }),
            h("dt", { text: t("Status") }), h("dd", {}, h("span", { class: `chan-status ${c.status}`, text: t(c.status) }),
              c.displaced_by && names.get(c.displaced_by) ? ` (${names.get(c.displaced_by)})` : null),
            h("dt", { text: t("Webhook URL") }), h("dd", {}, h("code", { class: "url", text: c.webhook_url }))),
          h("div", { class: "buttons" }, settingsBtn, disconnect)));
      }
    } catch (err) {
      clear(list).append(h("li", {}, notice(errorText(err))));
    }
  }
  list.append(h("li", {}, loading()));
  load();
  if (pendingReturn) {
    const back = pendingReturn;
    pendingReturn = null;
    finishOAuth(back, msg, load);
  }
  return { refresh: load };
}

// ---- Connecting by consent (OAuth) ----------------------------------------------------------------------
// The provider sends the browser back to /app/connected/{provider}?code=&state= (or ?error=). What the
// authorization was started with waits in sessionStorage (same tab), and the code is posted only when the
// state it came back with is that one.

const OAUTH_KEY = "omnichat.oauth";
const PROVIDER_NAMES = { avito: "Avito", vk: "VK" };
let pendingReturn = null;

/** Called by app.js on a load at /app/connected/{provider}: the Channels page finishes it. */
export function oauthReturned(provider, params) {
  pendingReturn = { provider, params };
}

const returnAddress = (provider) => `${location.origin}/app/connected/${provider}`;

function remember(started) {
  sessionStorage.setItem(OAUTH_KEY, JSON.stringify(started));
}

function recall() {
  try { return JSON.parse(sessionStorage.getItem(OAUTH_KEY) || "null"); } catch { return null; }
}

const refusal = (err) => (err && err.status === 422 ? err.message : errorText(err));

async function showCreated(pageMsg, created) {
  clear(pageMsg).append(notice(t("Connected: {name}.", { name: created.name }), "ok"));
  if (created.displaced) {
    let displacedName = created.displaced;
    try { displacedName = (await get(`/v1/channels/${created.displaced}`)).name; } catch { /* the id then */ }
    pageMsg.append(h("p", { class: "warning", role: "status", "data-displaced": created.displaced, text: t("It displaced the channel {name}, which is now inactive.", { name: displacedName }) }));
  }
}

/** Asks for the authorize URL, remembers the authorization, and sends the browser to the provider. */
async function startOAuth(path, started) {
  const { url, state } = await get(path);
  remember({ ...started, state });
  location.assign(url);
}

async function finishOAuth({ provider, params }, pageMsg, reload) {
  const started = recall();
  const label = PROVIDER_NAMES[provider] || provider;
  const fail = (text) => clear(pageMsg).append(notice(text));
  if (params.error) {
    sessionStorage.removeItem(OAUTH_KEY);
    fail(t("{provider} did not grant access: {reason}", { provider: label, reason: params.error_description || params.error }));
    return;
  }
  if (!started || started.provider !== provider || !params.state || started.state !== params.state || !params.code) {
    sessionStorage.removeItem(OAUTH_KEY);
    fail(t("This authorization was not started here or has expired. Connect the channel again."));
    return;
  }
  clear(pageMsg).append(h("p", { class: "hint", role: "status", text: t("Connecting {provider}…", { provider: label }) }));
  try {
    if (provider === "avito") {
      sessionStorage.removeItem(OAUTH_KEY);
      const body = { code: params.code, state: params.state, redirect_uri: started.redirect_uri };
      if (started.name) body.name = started.name;
      await showCreated(pageMsg, await post("/v1/channels/avito/connect", body));
      reload();
    } else if (provider === "vk" && started.step === "community") {
      sessionStorage.removeItem(OAUTH_KEY);
      const body = { client_id: started.client_id, client_secret: started.client_secret, redirect_uri: started.redirect_uri, code: params.code, state: params.state, group_id: started.group_id };
      if (started.name) body.name = started.name;
      await showCreated(pageMsg, await post("/v1/channels/vk/community-token", body));
      reload();
    } else if (provider === "vk") {
      const app = { client_id: started.client_id, client_secret: started.client_secret, redirect_uri: started.redirect_uri };
      let listed;
      try {
        listed = await post("/v1/channels/vk/communities", { ...app, code: params.code, state: params.state });
      } catch (err) {
        sessionStorage.removeItem(OAUTH_KEY);
        throw err;
      }
      clear(pageMsg);
      communityChooser(listed.items || [], started, pageMsg);
    } else {
      sessionStorage.removeItem(OAUTH_KEY);
      fail(t("Not found."));
    }
  } catch (err) {
    fail(refusal(err));
  }
}

/** The communities the VK account administers: the chosen one is authorized next (its own consent). */
function communityChooser(items, started, pageMsg) {
  const radioName = uid("community");
  const radios = items.map((c, i) => {
    const r = h("input", { type: "radio", name: radioName, value: String(c.group_id), checked: i === 0 });
    return [r, h("div", { class: "field check" }, field(`${c.name} (${c.group_id})`, r).reverse())];
  });
  const submit = h("button", { type: "submit", text: t("Connect community") });
  const cancel = h("button", { type: "button", class: "secondary", text: t("Cancel") });
  const form = h("form", { class: "connect" },
    h("fieldset", {}, h("legend", { text: t("Communities you administer") }), h("div", { class: "radios" }, radios.map(([, d]) => d))),
    h("div", { class: "buttons" }, submit, cancel));
  const errors = fieldErrors(form);
  errors.add("", form.firstChild);
  const dlg = modal(t("Choose the VK community"), form);
  cancel.addEventListener("click", () => {
    sessionStorage.removeItem(OAUTH_KEY);
    dlg.close();
  });
  if (radios.length) radios[0][0].focus();
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    errors.clear();
    const chosen = radios.find(([r]) => r.checked);
    if (!chosen) return;
    const groupId = Number(chosen[0].value);
    submit.disabled = true;
    try {
      const query = new URLSearchParams({ client_id: started.client_id, redirect_uri: started.redirect_uri, group_ids: String(groupId) });
      await startOAuth(`/v1/channels/vk/authorize?${query}`, { ...started, step: "community", group_id: groupId });
    } catch (err) {
      errors.show(err);
      submit.disabled = false;
    }
  });
  clear(pageMsg);
}

function providerName(c) {
  const p = PROVIDERS.find(([v]) => v === c.provider);
  const w = c.whatsapp_provider && WHATSAPP.find(([v]) => v === c.whatsapp_provider);
  return (p ? p[1] : c.provider) + (w ? ` (${w[1]})` : "");
}

function connectDialog(pageMsg, reload) {
  const provider = select(PROVIDERS.map(([v, l]) => [v, l]), "telegram");
  const name = h("input", { type: "text", maxlength: "100" });
  const fieldsBox = h("div", { class: "cred-fields" });
  const submit = h("button", { type: "submit", text: t("Connect") });
  const cancel = h("button", { type: "button", class: "secondary", text: t("Cancel") });
  const form = h("form", { class: "connect" });
  const errors = fieldErrors(form);
  let controls = {};
  let waProvider = null;
  function drawFields() {
    clear(fieldsBox);
    controls = {};
    errors.clear();
    let kind = provider.value;
    if (kind === "whatsapp") {
      const prev = waProvider ? waProvider.value : "edna";
      waProvider = select(WHATSAPP, prev);
      waProvider.addEventListener("change", drawFields);
      const r = row(t("WhatsApp provider"), waProvider);
      fieldsBox.append(r);
      errors.add("whatsapp_provider", r.lastChild, waProvider);
      kind = waProvider.value;
    }
    if (kind === "avito" || kind === "vk") fieldsBox.append(consentWay(kind));
    for (const [key, label, type, optional] of CREDENTIALS[kind]) {
      const input = type === "checkbox" ? h("input", { type: "checkbox", checked: true }) : h("input", { type, autocomplete: "off", spellcheck: "false" });
      if (type === "number") input.setAttribute("min", "1");
      const r = row(t(label) + (optional ? ` (${t("optional")})` : ""), input, type === "checkbox" ? "check" : null);
      if (type === "checkbox") r.append(r.firstChild);
      fieldsBox.append(r);
      controls[key] = input;
      errors.add(`credentials.${key}`, r.lastChild === input ? input : r, input);
    }
  }
  /** The consent way (OAuth) of connecting Avito or VK, above the keys' fields. */
  function consentWay(kind) {
    const box = h("div", { class: "oauth" });
    const app = {};
    if (kind === "vk") {
      box.append(h("p", { class: "hint", text: t("Sign in to VK as the community's administrator with your VK application:") }));
      for (const [key, label, type] of [["client_id", "VK application ID", "text"], ["client_secret", "Application secret", "password"]]) {
        app[key] = h("input", { type, autocomplete: "off", spellcheck: "false" });
        const r = row(t(label), app[key]);
        box.append(r);
        errors.add(key, app[key], app[key]);
      }
    } else {
      box.append(h("p", { class: "hint", text: t("The account's owner allows access on Avito's page: no keys needed.") }));
    }
    const go = h("button", { type: "button", text: t(kind === "vk" ? "Connect with VK" : "Authorize with Avito") });
    errors.add("redirect_uri", go, go);
    errors.add("state", go, go);
    go.addEventListener("click", async () => {
      errors.clear();
      const redirectUri = returnAddress(kind);
      const started = { provider: kind, redirect_uri: redirectUri, name: name.value.trim() || null };
      go.disabled = true;
      try {
        if (kind === "vk") {
          started.step = "user";
          started.client_id = app.client_id.value.trim();
          started.client_secret = app.client_secret.value.trim();
          if (!started.client_secret) {
            errors.show({ status: 422, code: "required", field: "client_secret", message: t("Required") });
            go.disabled = false;
            return;
          }
          await startOAuth(`/v1/channels/vk/authorize?${new URLSearchParams({ client_id: started.client_id, redirect_uri: redirectUri })}`, started);
        } else {
          await startOAuth(`/v1/channels/avito/authorize?${new URLSearchParams({ redirect_uri: redirectUri })}`, started);
        }
      } catch (err) {
        errors.show(err);
        go.disabled = false;
      }
    });
    box.append(go, h("p", { class: "hint", text: t(kind === "vk" ? "Or give the community's access key:" : "Or give the account's client credentials:") }));
    return box;
  }
  provider.addEventListener("change", drawFields);
  const providerRow = row(t("Provider"), provider);
  const nameRow = row(t("Name"), name);
  form.append(providerRow, nameRow, fieldsBox, h("div", { class: "buttons" }, submit, cancel));
  errors.add("", form.firstChild);
  errors.add("provider", provider, provider);
  errors.add("name", name, name);
  errors.add("credentials", fieldsBox, []);
  drawFields();
  const dlg = modal(t("Connect channel"), form);
  cancel.addEventListener("click", () => dlg.close());
  provider.focus();
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    errors.clear();
    const credentials = {};
    for (const [key, input] of Object.entries(controls)) {
      let value = input.type === "checkbox" ? input.checked : input.value.trim();
      if (input.type === "number") value = value === "" ? null : Number(value);
      if (value === "" || value === null) continue;
      const [a, b] = key.split(".");
      if (b) (credentials[a] = credentials[a] || {})[b] = value;
      else credentials[a] = value;
    }
    const body = { provider: provider.value, credentials };
    if (provider.value === "whatsapp") body.whatsapp_provider = waProvider.value;
    if (name.value.trim()) body.name = name.value.trim();
    submit.disabled = true;
    try {
      const created = await post("/v1/channels", body);
      dlg.close();
      await showCreated(pageMsg, created);
      reload();
    } catch (err) {
      errors.show(err);
    } finally {
      submit.disabled = false;
    }
  });
}

function disconnectDialog(c, pageMsg, reload) {
  const yes = h("button", { type: "button", class: "danger", text: t("Yes, disconnect") });
  const cancel = h("button", { type: "button", class: "secondary", text: t("Cancel") });
  const error = h("div", {});
  const dlg = modal(t("Disconnect"), h("p", { text: t("Disconnect {name}? Customers' messages will stop arriving.", { name: c.name }) }), error, h("div", { class: "buttons" }, yes, cancel));
  cancel.addEventListener("click", () => dlg.close());
  cancel.focus();
  yes.addEventListener("click", async () => {
    clear(error);
    try {
      await post(`/v1/channels/${c.id}/disconnect`, { confirm: true });
      dlg.close();
      clear(pageMsg).append(notice(`${t("disconnected")}: ${c.name}`, "ok"));
      reload();
    } catch (err) {
      error.append(notice(errorText(err)));
    }
  });
}

// ---- The seed's settings form ---------------------------------------------------------------------------

function settingsPage(section, id) {
  section.append(loading());
  (async () => {
    let channel, employees, groups, chatbots;
    try {
      [channel, employees, groups, chatbots] = await Promise.all([get(`/v1/channels/${id}`), optionalList("/v1/employees"), optionalList("/v1/groups"), optionalList("/v1/chatbots")]);
    } catch (err) {
      clear(section).append(h("h1", { text: t("Settings") }), notice(errorText(err)));
      return;
    }
    clear(section);
    const msg = h("div", { class: "page-msg" });
    const disconnect = h("button", { type: "button", class: "danger", text: t("Disconnect"), disabled: channel.status === "disconnected" });
    disconnect.addEventListener("click", () => disconnectDialog(channel, msg, () => { disconnect.disabled = true; }));
    section.append(h("a", { href: "#/channels", class: "back", text: "← " + t("Channels") }),
      h("div", { class: "page-head" }, h("h1", { text: t("Settings of {name}", { name: channel.name }) }), disconnect),
      msg,
      settingsForm(channel, employees, groups, chatbots));
  })();
  return null;
}

function settingsForm(channel, employees, groups, chatbots) {
  const s = channel.settings || {};
  const form = h("form", { class: "settings", "aria-label": t("Settings") });
  const errors = fieldErrors(form);

  // Handled by.
  const handling = s.handling || {};
  const current = handling.employee_id ? "employee" : handling.group_id ? "group" : handling.chatbot_id ? "chatbot" : "";
  const sources = { employee: employees, group: groups, chatbot: chatbots };
  const radioName = uid("handling");
  const radios = [["", t("Routing decides")], ["employee", t("Employee")], ["group", t("Group")], ["chatbot", t("Chatbot")]].map(([v, label]) => {
    const r = h("input", { type: "radio", name: radioName, value: v, checked: v === current });
    return [r, h("div", { class: "field check" }, field(label, r).reverse())];
  });
  const who = h("select", {});
  const whoRow = row(t("Handler"), who);
  function fillWho(selected) {
    const kind = radios.find(([r]) => r.checked)[0].value;
    clear(who);
    whoRow.hidden = !kind;
    for (const item of sources[kind] || []) who.append(h("option", { value: item.id, text: item.name }));
    if (selected) who.value = selected;
  }
  radios.forEach(([r]) => r.addEventListener("change", () => fillWho()));
  const handlingSet = h("fieldset", {}, h("legend", { text: t("Handled by") }), h("div", { class: "radios" }, radios.map(([, d]) => d)), whoRow);
  fillWho(handling.employee_id || handling.group_id || handling.chatbot_id);
  errors.add("handling", handlingSet, [who, ...radios.map(([r]) => r)]);

  // Auto-replies.
  const repliesBox = h("ol", { class: "auto-replies" });
  const addReply = h("button", { type: "button", class: "secondary", text: t("Add auto-reply") });
  const replySet = h("fieldset", {}, h("legend", { text: t("Auto-replies") }), repliesBox, addReply);
  errors.add("auto_replies", replySet, []);
  const replyRows = [];
  function addReplyRow(text = "", delay = 60) {
    const ta = h("textarea", { rows: "2" });
    ta.value = text;
    const num = h("input", { type: "number", min: "1", step: "1", value: String(delay) });
    const remove = h("button", { type: "button", class: "secondary", text: t("Remove") });
    const textRow = row(t("Auto-reply text"), ta);
    const delayRow = row(t("Delay (seconds)"), num);
    const li = h("li", { class: "auto-reply" }, textRow, delayRow, remove);
    const entry = { li, ta, num };
    remove.addEventListener("click", () => {
      replyRows.splice(replyRows.indexOf(entry), 1);
      li.remove();
      addReply.focus();
    });
    replyRows.push(entry);
    repliesBox.append(li);
    return entry;
  }
  (s.auto_replies || []).forEach((r) => addReplyRow(r.text, r.delay_seconds));
  addReply.addEventListener("click", () => addReplyRow().ta.focus());

  // Off-hours.
  const off = s.off_hours || {};
  const offBot = h("input", { type: "checkbox", checked: !!off.chatbot_id });
  const offBotSelect = select(chatbots.map((c) => [c.id, c.name]), off.chatbot_id || undefined);
  const offReplies = h("input", { type: "checkbox", checked: !!off.auto_replies });
  const offSet = h("fieldset", { class: "off-hours" }, h("legend", { text: t("Off-hours") }),
    h("div", { class: "field check" }, field(t("Off-hours chatbot"), offBot).reverse()),
    row(t("Chatbot"), offBotSelect),
    h("div", { class: "field check" }, field(t("Send auto-replies outside working hours"), offReplies).reverse()),
    h("p", { class: "hint small", text: t("A chatbot and auto-replies cannot both be used.") }));
  errors.add("off_hours", offSet, [offBot, offReplies, offBotSelect]);

  // Auto-close.
  const ac = s.auto_close || { after: 24, unit: "hours" };
  const after = h("input", { type: "number", min: "1", step: "1", value: String(ac.after) });
  const unit = select([["hours", t("hours")], ["days", t("days")]], ac.unit);
  const afterRow = row(t("Close after"), after);
  const unitRow = row(t("Unit"), unit);
  const closeSet = h("fieldset", {}, h("legend", { text: t("Auto-close") }), h("div", { class: "inline-row" }, afterRow, unitRow));
  errors.add("auto_close", closeSet, [after, unit]);
  errors.add("auto_close.after", after, after);
  errors.add("auto_close.unit", unit, unit);

  const save = h("button", { type: "submit", text: t("Save settings") });
  const result = h("div", { class: "result", role: "status" });
  form.append(handlingSet, replySet, offSet, closeSet, h("div", { class: "buttons" }, save), result);
  errors.add("", result);
  errors.add("settings", handlingSet, []);

  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    errors.clear();
    clear(result);
    replyRows.forEach(({ ta, num }, i) => {
      errors.add(`auto_replies[${i}].text`, ta, ta);
      errors.add(`auto_replies[${i}].delay_seconds`, num, num);
      errors.add(`auto_replies[${i}]`, ta, [ta, num]);
    });
    const kind = radios.find(([r]) => r.checked)[0].value;
    const toNumber = (v) => (v.trim() === "" || Number.isNaN(Number(v)) ? v : Number(v));
    const settings = {
      handling: kind ? { [`${kind}_id`]: who.value || null } : null,
      auto_replies: replyRows.map(({ ta, num }) => ({ text: ta.value, delay_seconds: toNumber(num.value) })),
      off_hours: { chatbot_id: offBot.checked ? offBotSelect.value || null : null, auto_replies: offReplies.checked },
      auto_close: { after: toNumber(after.value), unit: unit.value },
    };
    save.disabled = true;
    try {
      await put(`/v1/channels/${channel.id}`, { settings });
      result.append(h("p", { class: "ok", text: t("Saved") }));
    } catch (err) {
      errors.show(err);
    } finally {
      save.disabled = false;
    }
  });
  return form;
}

// ---- Employees ------------------------------------------------------------------------------------------

function employeesPage(section) {
  const list = h("ul", { class: "cards", "aria-labelledby": "emp-title" });
  const msg = h("div", { class: "page-msg" });
  const name = h("input", { type: "text", maxlength: "100", required: true });
  const max = h("input", { type: "number", min: "1", max: "100", value: "5" });
  const form = h("form", { class: "inline-form card" }, h("h2", { text: t("Add employee") }), row(t("Name"), name), row(t("Max dialogs"), max),
    h("div", { class: "buttons" }, h("button", { type: "submit", text: t("Add employee") })));
  const errors = fieldErrors(form);
  errors.add("", form.firstChild);
  errors.add("name", name, name);
  errors.add("max_dialogs", max, max);
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    errors.clear();
    try {
      await post("/v1/employees", { name: name.value.trim(), max_dialogs: Number(max.value) || undefined });
      name.value = "";
      load();
    } catch (err) {
      errors.show(err);
    }
  });
  section.append(h("h1", { id: "emp-title", text: t("Employees") }), msg, list, form);
  async function load() {
    try {
      const items = await all("/v1/employees");
      clear(list);
      for (const emp of items) {
        const status = select(STATUS.map(([v, l]) => [v, t(l)]), emp.status, { "aria-label": t("Status of {name}", { name: emp.name }) });
        const maxIn = h("input", { type: "number", min: "1", max: "100", value: String(emp.max_dialogs), "aria-label": t("Max dialogs of {name}", { name: emp.name }) });
        const out = h("div", {});
        const saveBtn = h("button", { type: "button", class: "secondary", text: t("Save") });
        const keyBtn = h("button", { type: "button", class: "secondary", text: t("Create API key") });
        saveBtn.addEventListener("click", async () => {
          clear(out);
          try {
            await put(`/v1/employees/${emp.id}`, { status: status.value, max_dialogs: Number(maxIn.value) });
            out.append(notice(t("Saved"), "ok"));
          } catch (err) {
            out.append(notice(err.message));
          }
        });
        keyBtn.addEventListener("click", async () => {
          clear(out);
          try {
            const key = await post("/v1/api-keys", { role: "employee", employee_id: emp.id });
            out.append(secretBox(t("New key for {name}: hand it over now, it is shown only once.", { name: emp.name }), key.key));
          } catch (err) {
            out.append(notice(err.message));
          }
        });
        list.append(h("li", { class: "card", "data-employee-id": emp.id },
          h("h2", { text: emp.name }),
          h("div", { class: "inline-row" }, h("div", { class: "field" }, status), h("div", { class: "field" }, maxIn)),
          h("div", { class: "buttons" }, saveBtn, keyBtn), out));
      }
    } catch (err) {
      clear(list).append(h("li", {}, notice(errorText(err))));
    }
  }
  load();
  return { refresh: load };
}

// ---- Groups ---------------------------------------------------------------------------------------------

function groupsPage(section) {
  const list = h("ul", { class: "cards", "aria-labelledby": "grp-title" });
  const editor = h("div", {});
  section.append(h("div", { class: "page-head" }, h("h1", { id: "grp-title", text: t("Groups") }),
    h("button", { type: "button", text: t("Add group"), on: { click: () => edit(null) } })), editor, list);
  let employees = [];
  async function load() {
    try {
      const [items, emps] = await Promise.all([all("/v1/groups"), all("/v1/employees")]);
      employees = emps;
      const names = new Map(emps.map((e) => [e.id, e.name]));
      clear(list);
      for (const g of items) {
        list.append(h("li", { class: "card", "data-group-id": g.id },
          h("h2", { text: g.name }),
          h("p", { text: `${t("Members")}: ${g.members.map((m) => names.get(m) || m).join(", ") || t("none")}` }),
          h("p", { text: `${t("Distribution")}: ${t(DISTRIBUTION[g.distribution] || g.distribution)} · ${t("Wait (seconds)")}: ${g.wait_seconds}` }),
          h("div", { class: "buttons" }, h("button", { type: "button", class: "secondary", text: t("Edit"), "aria-label": t("Edit group {name}", { name: g.name }), on: { click: () => edit(g) } }))));
      }
    } catch (err) {
      clear(list).append(h("li", {}, notice(errorText(err))));
    }
  }
  function edit(g) {
    clear(editor);
    const name = h("input", { type: "text", maxlength: "100", value: g ? g.name : "" });
    const members = employees.map((e) => [e.id, h("input", { type: "checkbox", value: e.id, checked: g ? g.members.includes(e.id) : false })]);
    const dist = select(Object.entries(DISTRIBUTION).map(([v, l]) => [v, t(l)]), g ? g.distribution : "round_robin");
    const wait = h("input", { type: "number", min: "1", max: "86400", value: String(g ? g.wait_seconds : 60) });
    const memberSet = h("fieldset", {}, h("legend", { text: t("Members") }),
      members.map(([id, box]) => h("div", { class: "field check" }, field(employees.find((e) => e.id === id).name, box).reverse())));
    const cancel = h("button", { type: "button", class: "secondary", text: t("Cancel"), on: { click: () => clear(editor) } });
    const form = h("form", { class: "card", "aria-label": g ? t("Edit group {name}", { name: g.name }) : t("New group") },
      h("h2", { text: g ? t("Edit group {name}", { name: g.name }) : t("New group") }),
      row(t("Name"), name), memberSet, row(t("Distribution"), dist), row(t("Wait (seconds)"), wait),
      h("div", { class: "buttons" }, h("button", { type: "submit", text: t("Save group") }), cancel));
    const errors = fieldErrors(form);
    errors.add("", form.firstChild);
    errors.add("name", name, name);
    errors.add("members", memberSet, []);
    errors.add("distribution", dist, dist);
    errors.add("wait_seconds", wait, wait);
    form.addEventListener("submit", async (e) => {
      e.preventDefault();
      errors.clear();
      const body = { name: name.value.trim(), members: members.filter(([, b]) => b.checked).map(([id]) => id), distribution: dist.value, wait_seconds: Number(wait.value) };
      try {
        if (g) await put(`/v1/groups/${g.id}`, body);
        else await post("/v1/groups", body);
        clear(editor);
        load();
      } catch (err) {
        errors.show(err);
      }
    });
    editor.append(form);
    name.focus();
  }
  load();
  return { refresh: load };
}

// ---- Chatbots -------------------------------------------------------------------------------------------

function chatbotsPage(section) {
  const list = h("ul", { class: "cards", "aria-labelledby": "bot-title" });
  const msg = h("div", { class: "page-msg" });
  const name = h("input", { type: "text", maxlength: "100" });
  const url = h("input", { type: "url", placeholder: "https://" });
  const form = h("form", { class: "card" }, h("h2", { text: t("Add chatbot") }), row(t("Name"), name), row(t("Webhook URL"), url),
    h("div", { class: "buttons" }, h("button", { type: "submit", text: t("Add chatbot") })));
  const errors = fieldErrors(form);
  errors.add("", form.firstChild);
  errors.add("name", name, name);
  errors.add("webhook_url", url, url);
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    errors.clear();
    clear(msg);
    try {
      const bot = await post("/v1/chatbots", { name: name.value.trim(), webhook_url: url.value.trim() });
      msg.append(secretBox(t("Signing secret of {name}: keep it now, it is shown only once.", { name: bot.name }), bot.signing_secret));
      name.value = "";
      url.value = "";
      load();
    } catch (err) {
      errors.show(err);
    }
  });
  section.append(h("h1", { id: "bot-title", text: t("Chatbots") }), msg, list, form);
  async function load() {
    try {
      const items = await all("/v1/chatbots");
      clear(list);
      for (const bot of items) {
        const out = h("div", {});
        const del = h("button", { type: "button", class: "danger", text: t("Delete"), "aria-describedby": `bot-${bot.id}` });
        del.addEventListener("click", async () => {
          clear(out);
          try {
            await api("DELETE", `/v1/chatbots/${bot.id}`);
            load();
          } catch (err) {
            out.append(notice(err.message));
          }
        });
        const rotate = h("button", { type: "button", class: "secondary", text: t("Rotate secret"), "aria-describedby": `bot-${bot.id}` });
        rotate.addEventListener("click", async () => {
          clear(out);
          try {
            const fresh = await post(`/v1/chatbots/${bot.id}/rotate-secret`);
            out.append(secretBox(t("Signing secret of {name}: keep it now, it is shown only once.", { name: bot.name }), fresh.signing_secret));
          } catch (err) {
            out.append(notice(err.message));
          }
        });
        list.append(h("li", { class: "card", "data-chatbot-id": bot.id },
          h("h2", { id: `bot-${bot.id}`, text: bot.name }),
          h("p", {}, h("code", { class: "url", text: bot.webhook_url })),
          h("p", { text: t(bot.enabled ? "enabled" : "disabled") }),
          h("div", { class: "buttons" }, rotate, del), out));
      }
    } catch (err) {
      clear(list).append(h("li", {}, notice(errorText(err))));
    }
  }
  load();
  return { refresh: load };
}

// ---- Working hours --------------------------------------------------------------------------------------

const DAYS = [["mon", "Monday"], ["tue", "Tuesday"], ["wed", "Wednesday"], ["thu", "Thursday"], ["fri", "Friday"], ["sat", "Saturday"], ["sun", "Sunday"]];

function hoursPage(section) {
  section.append(h("h1", { text: t("Working hours") }), loading());
  (async () => {
    let wh;
    try {
      wh = await get("/v1/working-hours");
    } catch (err) {
      section.lastChild.replaceWith(notice(errorText(err)));
      return;
    }
    section.lastChild.remove();
    const form = h("form", { class: "card hours", "aria-label": t("Working hours") });
    const errors = fieldErrors(form);
    const tz = h("input", { type: "text", value: wh.time_zone || "UTC" });
    form.append(row(t("Time zone"), tz));
    errors.add("", form.firstChild);
    errors.add("time_zone", tz, tz);
    const table = h("div", { class: "days" });
    const days = DAYS.map(([key, label]) => {
      const first = ((wh.weekly || {})[key] || [])[0];
      const open = h("input", { type: "checkbox", checked: !!first, "aria-label": t("{day} open", { day: t(label) }) });
      const from = h("input", { type: "time", value: first ? first.from : "09:00", "aria-label": t("{day} opens", { day: t(label) }) });
      const to = h("input", { type: "time", value: first && first.to !== "24:00" ? first.to : first ? "23:59" : "18:00", "aria-label": t("{day} closes", { day: t(label) }) });
      const extra = ((wh.weekly || {})[key] || []).slice(1);
      const r = h("div", { class: "day" }, h("span", { class: "day-name", "aria-hidden": "true", text: t(label) }), open, from, "–", to);
      table.append(r);
      errors.add(`weekly.${key}`, r, [open, from, to]);
      return { key, open, from, to, extra, first };
    });
    const holidays = h("textarea", { rows: "4" });
    holidays.value = (wh.holidays || []).join("\n");
    form.append(h("fieldset", {}, h("legend", { text: t("Working hours") }), table), row(t("Holidays (one date per line, YYYY-MM-DD)"), holidays));
    errors.add("weekly", table, []);
    errors.add("holidays", holidays, holidays);
    const result = h("div", { role: "status" });
    form.append(h("div", { class: "buttons" }, h("button", { type: "submit", text: t("Save working hours") })), result);
    form.addEventListener("submit", async (e) => {
      e.preventDefault();
      errors.clear();
      clear(result);
      const weekly = {};
      for (const d of days) {
        if (!d.open.checked) continue;
        // A day open until 23:59 that was 24:00 stays 24:00.
        const to = d.to.value === "23:59" && d.first && d.first.to === "24:00" ? "24:00" : d.to.value;
        weekly[d.key] = [{ from: d.from.value, to }, ...d.extra];
      }
      const body = { time_zone: tz.value.trim(), weekly, holidays: holidays.value.split(/\s+/).filter(Boolean), extra_days: wh.extra_days || [] };
      try {
        wh = await put("/v1/working-hours", body);
        result.append(h("p", { class: "ok", text: t("Saved") }));
      } catch (err) {
        errors.show(err);
      }
    });
    section.append(form);
  })();
  return null;
}
