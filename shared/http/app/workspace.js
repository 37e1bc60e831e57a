// The workspace: the queue, the dialog list and the open dialog (messages, reply, close, transfer).
import { t } from "./i18n.js";
import { h, append, clear, field, row, fmtTime, notice, errorText, modal, uid } from "./ui.js";
import { api, get, post, all, session } from "./api.js";

// Kept across page changes of one session.
let dialogs = [];
let previews = new Map(); // dialog id -> {last, lastIn, activity}
let channels = null; // Map id -> channel (its name, for every key: GET /v1/me/channels)
let queue = [];

export function reset() {
  dialogs = [];
  previews = new Map();
  channels = null;
  queue = [];
}

const seenMap = () => {
  try { return JSON.parse(sessionStorage.getItem("omnichat.seen") || "{}"); } catch { return {}; }
};
function markSeen(dialogId, iso) {
  if (!iso) return;
  const seen = seenMap();
  if (seen[dialogId] && seen[dialogId] >= iso) return;
  seen[dialogId] = iso;
  sessionStorage.setItem("omnichat.seen", JSON.stringify(seen));
}

const customerName = (d) => (d.customer && (d.customer.name || d.customer.external_id)) || d.id;
const channelName = (d) => {
  const c = channels && channels.get(d.channel_id);
  return c ? c.name : "";
};
const activity = (d) => {
  const p = previews.get(d.id);
  const last = p && p.last ? p.last.received_at : "";
  return last > d.last_activity_at ? last : d.last_activity_at;
};
function messageText(m) {
  if (!m) return "";
  if (m.text) return m.text;
  if (m.template) return `[${m.template.name}]`;
  if (m.attachments && m.attachments.length) return m.attachments.map((a) => a.name || a.kind).join(", ");
  return "";
}
const statusLabel = { pending: "Pending", sent: "Sent", delivered: "Delivered", failed: "Failed" };

/** The dialog's newest messages (one small read): the last one for the list, the customer's last one for
 * the unread marker. */
async function loadPreview(d) {
  const newest = (await get(`/v1/dialogs/${d.id}/messages?order=desc&limit=20`)).items || [];
  const last = newest[0] || null;
  const lastIn = newest.find((m) => m.direction === "in") || null;
  previews.set(d.id, { last, lastIn, activity: d.last_activity_at });
}

export function render(main, openId) {
  const isEmployee = session.role === "employee";
  const wrap = h("div", { class: "workspace" + (openId ? " has-dialog" : "") });
  const side = h("section", { class: "side", "aria-labelledby": "dialogs-title" });
  const queueList = h("ul", { class: "queue", "aria-label": t("Queue") });
  const queueMsg = h("div", { class: "queue-msg" });
  const queueBox = isEmployee ? h("div", { class: "queue-box" }, h("h2", { text: t("Queue") }), queueList, queueMsg) : null;
  const list = h("ul", { class: "dialogs", "aria-label": t("Dialogs") });
  append(side, [h("h1", { id: "dialogs-title", text: t("Dialogs") }), queueBox, isEmployee ? h("h2", { text: t("Dialogs") }) : null, list]);
  const pane = h("section", { class: "pane" });
  wrap.append(side, pane);
  main.append(wrap);

  let view = null;
  if (openId) view = dialogView(pane, openId, () => drawList());
  else pane.append(h("p", { class: "hint", text: t("Choose a dialog from the list.") }));

  function drawList() {
    const seen = seenMap();
    clear(list);
    const sorted = [...dialogs].sort((a, b) => (activity(b) > activity(a) ? 1 : activity(b) < activity(a) ? -1 : 0));
    if (!sorted.length) list.append(h("li", { class: "empty", text: t("No dialogs yet.") }));
    for (const d of sorted) {
      const p = previews.get(d.id);
      const lastIn = p && p.lastIn ? p.lastIn.received_at : null;
      const unread = d.id !== openId && lastIn && (!seen[d.id] || lastIn > seen[d.id]);
      const link = h("a", { href: `#/dialogs/${d.id}`, class: "dialog-link", "aria-current": d.id === openId ? "page" : null },
        h("span", { class: "line" },
          h("span", { class: "name", text: customerName(d) }),
          unread ? h("span", { class: "unread", text: t("New") }) : null,
          h("span", { class: "when", text: fmtTime(activity(d)) })),
        h("span", { class: "line meta" },
          channelName(d) ? h("span", { class: "channel", text: channelName(d) }) : null,
          d.status === "closed" ? h("span", { class: "badge", text: t("closed") }) : null),
        h("span", { class: "preview", text: p ? messageText(p.last) : "" }));
      list.append(h("li", { "data-dialog-id": d.id, class: unread ? "is-unread" : null }, link));
    }
  }

  function drawQueue() {
    if (!isEmployee) return;
    clear(queueList);
    if (!queue.length) queueList.append(h("li", { class: "empty", text: t("The queue is empty.") }));
    for (const d of queue) {
      const accept = h("button", { type: "button", text: t("Accept") });
      const li = h("li", { "data-dialog-id": d.id },
        h("span", { class: "name", text: customerName(d) }),
        channelName(d) ? h("span", { class: "channel", text: channelName(d) }) : null,
        accept);
      accept.addEventListener("click", async () => {
        accept.disabled = true;
        clear(queueMsg);
        try {
          await post(`/v1/dialogs/${d.id}/accept`);
          location.hash = `#/dialogs/${d.id}`;
          refresh();
        } catch (err) {
          accept.disabled = false;
          const taken = err.status === 404 || (err.status === 409 && !/maximum/i.test(err.message));
          const msg = taken ? t("Taken by someone else") : err.status === 409 ? err.message : errorText(err);
          // Shown beside the list too: the item itself may leave the queue at the next refresh.
          clear(queueMsg).append(notice(`${customerName(d)}: ${msg}`));
          if (taken) setTimeout(refreshQueueOnly, 3000);
        }
      });
      queueList.append(li);
    }
  }

  async function refreshQueueOnly() {
    if (!isEmployee) return;
    try {
      queue = await all("/v1/me/queue");
      if (queueList.isConnected) drawQueue();
    } catch { /* next event retries */ }
  }

  let running = null;
  let again = false;
  const touched = new Set();
  async function refresh(full = false, touchedIds = []) {
    touchedIds.forEach((id) => touched.add(id));
    if (full) previews = new Map();
    if (running) {
      again = true;
      return running;
    }
    running = (async () => {
      try {
        if (!channels || full) {
          try { channels = new Map((await all("/v1/me/channels")).map((c) => [c.id, c])); } catch { channels = new Map(); }
        }
        const [got, q] = await Promise.all([
          all(isEmployee ? "/v1/me/dialogs" : "/v1/dialogs", 500),
          isEmployee ? all("/v1/me/queue") : Promise.resolve([]),
        ]);
        dialogs = got;
        if (openId && !dialogs.some((d) => d.id === openId) && view && view.dialog) dialogs.push(view.dialog);
        queue = q;
        const ids = new Set(touched);
        touched.clear();
        const stale = dialogs
          .sort((a, b) => (b.last_activity_at > a.last_activity_at ? 1 : -1))
          .slice(0, 100)
          .filter((d) => ids.has(d.id) || !previews.has(d.id) || previews.get(d.id).activity !== d.last_activity_at);
        await Promise.all(stale.map((d) => loadPreview(d).catch(() => null)));
        if (!list.isConnected) return;
        drawList();
        drawQueue();
      } catch (err) {
        if (list.isConnected && !dialogs.length) {
          clear(list);
          list.append(h("li", {}, notice(errorText(err))));
        }
      } finally {
        running = null;
        if (again) {
          again = false;
          refresh();
        }
      }
    })();
    return running;
  }

  // Show what is cached at once, then re-read.
  if (dialogs.length) drawList();
  if (queue.length) drawQueue();
  refresh();

  let timer = null;
  let pendingIds = new Set();
  let openTouched = false;
  return {
    refresh(full) {
      refresh(full);
      if (view) view.reload();
    },
    onEvent(frame) {
      if (frame.dialog_id) pendingIds.add(frame.dialog_id);
      if (frame.type === "resync") previews = new Map();
      // Polled while the live connection is down: the newest dialogs' last messages are re-read.
      if (frame.type === "poll") {
        [...dialogs].sort((a, b) => (activity(b) > activity(a) ? 1 : -1)).slice(0, 10).forEach((d) => pendingIds.add(d.id));
        if (view) openTouched = true;
      }
      if (view && (frame.type === "resync" || frame.dialog_id === openId)) openTouched = true;
      clearTimeout(timer);
      timer = setTimeout(() => {
        const ids = [...pendingIds];
        pendingIds = new Set();
        refresh(false, ids);
        if (openTouched && view) view.reload();
        openTouched = false;
      }, 200);
    },
  };
}

function dialogView(pane, id, onSeen) {
  const title = h("h2", { id: "dialog-title", text: t("Loading…") });
  const statusEl = h("span", { class: "dialog-status" });
  const channelEl = h("span", { class: "channel" });
  const closeBtn = h("button", { type: "button", class: "secondary", text: t("Close") });
  const transferBtn = h("button", { type: "button", class: "secondary", text: t("Transfer") });
  const actionMsg = h("div", { class: "action-msg" });
  const earlier = h("div", { class: "earlier", hidden: true });
  const messages = h("ol", { class: "messages", "aria-label": t("Messages") });
  const state = { dialog: null, reload };

  // The reply form.
  const reply = h("textarea", { id: uid("reply"), rows: "3", "aria-describedby": "reply-hint" });
  const replyError = h("div", { class: "reply-error" });
  const buttonText = h("input", { type: "text", maxlength: "64" });
  const addButton = h("button", { type: "button", class: "secondary", text: t("Add button") });
  const chips = h("ul", { class: "chips" });
  const files = h("input", { type: "file", multiple: true });
  const send = h("button", { type: "submit", text: t("Send") });
  const closedNote = h("p", { class: "hint small", hidden: true, text: t("The dialog is closed. Writing again reopens it.") });
  const writeAgain = h("button", { type: "button", class: "secondary", hidden: true, text: t("Write again") });
  let writingAgain = false;
  function setReplyEnabled(on) {
    for (const el of [reply, buttonText, addButton, files, send]) el.disabled = !on;
  }
  writeAgain.addEventListener("click", () => {
    writingAgain = true;
    setReplyEnabled(true);
    writeAgain.hidden = true;
    reply.focus();
  });
  let buttons = [];
  function drawChips() {
    clear(chips);
    buttons.forEach((label, i) => {
      chips.append(h("li", { class: "chip" }, h("span", { text: label }),
        h("button", { type: "button", class: "chip-x", "aria-label": t("Remove button {name}", { name: label }), text: "×",
          on: { click: () => { buttons.splice(i, 1); drawChips(); buttonText.focus(); } } })));
    });
  }
  function addChip() {
    const v = buttonText.value.trim();
    if (!v) return;
    buttons.push(v);
    buttonText.value = "";
    drawChips();
  }
  addButton.addEventListener("click", addChip);
  buttonText.addEventListener("keydown", (e) => {
    if (e.key === "Enter") {
      e.preventDefault();
      addChip();
    }
  });
  const form = h("form", { class: "reply" },
    h("div", { class: "closed-row" }, closedNote, writeAgain),
    h("div", { class: "field" }, field(t("Reply"), reply), h("p", { id: "reply-hint", class: "hint small", text: t("Enter sends, Shift+Enter starts a new line.") })),
    replyError,
    h("div", { class: "reply-tools" },
      h("fieldset", { class: "quick" }, h("legend", { text: t("Quick reply buttons") }),
        h("div", { class: "inline-row" }, field(t("Button text"), buttonText), addButton), chips),
      h("div", { class: "field" }, field(t("Attach files"), files))),
    h("div", { class: "send-row" }, send));
  reply.addEventListener("keydown", (e) => {
    if (e.key === "Enter" && !e.shiftKey && !e.isComposing) {
      e.preventDefault();
      form.requestSubmit();
    }
  });
  let sending = false;
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    if (sending || reply.disabled) return;
    const text = reply.value;
    const chosen = [...(files.files || [])];
    if (!text.trim() && !chosen.length) {
      reply.focus();
      return;
    }
    sending = true;
    send.disabled = true;
    send.textContent = t("Sending…");
    clear(replyError);
    try {
      const attachments = [];
      for (const file of chosen) {
        const up = await post("/v1/uploads", { name: file.name, mime_type: file.type || "application/octet-stream", size: file.size });
        const res = await fetch(up.upload_url, { method: up.method || "PUT", headers: up.headers || {}, body: file });
        if (!res.ok) throw new Error(`upload ${res.status}`);
        attachments.push(up.id);
      }
      const body = {};
      if (text.trim()) body.text = text;
      if (buttons.length) body.buttons = buttons;
      if (attachments.length) body.attachments = attachments;
      await post(`/v1/dialogs/${id}/messages`, body);
      reply.value = "";
      files.value = "";
      buttons = [];
      drawChips();
      await reload();
    } catch (err) {
      replyError.append(h("p", { class: "field-error", role: "alert", id: "reply-error", "data-field-error": err.field || "", text: err.message || String(err) }));
      reply.setAttribute("aria-describedby", "reply-hint reply-error");
      if (err.code === "outside_customer_service_window") replyError.append(templateForm());
    } finally {
      sending = false;
      send.disabled = reply.disabled;
      send.textContent = t("Send");
      if (!reply.disabled) reply.focus();
    }
  });

  // WhatsApp more than 24 hours after the customer's last message: only an approved template goes.
  function templateForm() {
    const name = h("input", { type: "text" });
    const language = h("input", { type: "text", value: "en" });
    const params = h("textarea", { rows: "2" });
    const error = h("div", {});
    const sendTemplate = h("button", { type: "button", text: t("Send template") });
    const box = h("fieldset", { class: "template" }, h("legend", { text: t("WhatsApp template") }),
      row(t("Template name"), name), row(t("Template language"), language), row(t("Parameters, one per line"), params), error, sendTemplate);
    sendTemplate.addEventListener("click", async () => {
      clear(error);
      try {
        await post(`/v1/dialogs/${id}/messages`, { template: { name: name.value.trim(), language: language.value.trim(), parameters: params.value.split("\n").map((p) => p.trim()).filter(Boolean) } });
        clear(replyError);
        await reload();
      } catch (err) {
        error.append(h("p", { class: "field-error", role: "alert", "data-field-error": err.field || "", text: err.message }));
      }
    });
    return box;
  }

  closeBtn.addEventListener("click", async () => {
    clear(actionMsg);
    try {
      await post(`/v1/dialogs/${id}/close`);
      await reload();
    } catch (err) {
      actionMsg.append(notice(errorText(err)));
    }
  });
  transferBtn.addEventListener("click", () => openTransfer());

  async function openTransfer() {
    const body = h("div", {});
    const error = h("div", {});
    const confirm = h("button", { type: "button", text: t("Confirm transfer") });
    const cancel = h("button", { type: "button", class: "secondary", text: t("Cancel") });
    const dlg = modal(t("Transfer"), body, error, h("div", { class: "buttons" }, confirm, cancel));
    cancel.addEventListener("click", () => dlg.close());
    let control;
    let free = false;
    try {
      const [emps, groups] = await Promise.all([all("/v1/employees"), all("/v1/groups")]);
      control = h("select", {});
      const eg = h("optgroup", { label: t("Employees") });
      emps.forEach((e) => eg.append(h("option", { value: `e:${e.id}`, text: `${e.name} (${t(e.status === "online" ? "Online" : e.status === "away" ? "Away" : "Offline")})` })));
      const gg = h("optgroup", { label: t("Groups") });
      groups.forEach((g) => gg.append(h("option", { value: `g:${g.id}`, text: g.name })));
      if (emps.length) control.append(eg);
      if (groups.length) control.append(gg);
      body.append(row(t("Transfer to"), control));
    } catch {
      free = true;
      control = h("input", { type: "text" });
      body.append(row(t("Employee or group ID"), control));
    }
    control.focus();
    confirm.addEventListener("click", async () => {
      clear(error);
      const v = control.value.trim();
      if (!v) return;
      try {
        if (free) {
          try {
            await post(`/v1/dialogs/${id}/transfer`, { employee_id: v });
          } catch (err) {
            if (err.status !== 422 && err.status !== 404) throw err;
            await post(`/v1/dialogs/${id}/transfer`, { group_id: v });
          }
        } else {
          await post(`/v1/dialogs/${id}/transfer`, v.startsWith("e:") ? { employee_id: v.slice(2) } : { group_id: v.slice(2) });
        }
        dlg.close();
        // An employee no longer sees a dialog given away; an admin stays on it.
        if (session.role === "employee") location.hash = "#/dialogs";
        else await reload();
      } catch (err) {
        error.append(notice(errorText(err)));
      }
    });
  }

  pane.append(h("article", { class: "dialog", "aria-labelledby": "dialog-title" },
    h("div", { class: "dialog-head" },
      h("a", { href: "#/dialogs", class: "back", text: "← " + t("Back to dialogs") }),
      h("div", { class: "title-row" }, title, statusEl, channelEl),
      h("div", { class: "actions" }, closeBtn, transferBtn),
      actionMsg),
    earlier,
    messages,
    form));

  function drawMessages(items) {
    const nearBottom = messages.scrollHeight - messages.scrollTop - messages.clientHeight < 80 || !messages.childElementCount;
    clear(messages);
    if (!items.length) messages.append(h("li", { class: "empty", text: t("No messages yet.") }));
    for (const m of items) {
      const li = h("li", { "data-message-id": m.id, "data-direction": m.direction, class: `msg ${m.direction}` });
      if (m.text) li.append(h("div", { class: "text", text: m.text }));
      else if (m.template) li.append(h("div", { class: "text", text: `[${m.template.name}]` }));
      for (const a of m.attachments || []) li.append(attachment(a));
      if (m.buttons && m.buttons.length) li.append(h("div", { class: "chips sent-buttons" }, m.buttons.map((b) => h("span", { class: "chip", text: b }))));
      const foot = h("div", { class: "foot" }, h("time", { datetime: m.sent_at || m.received_at, text: fmtTime(m.sent_at || m.received_at) }));
      if (m.direction === "out") {
        const st = m.status || "pending";
        let text = t(statusLabel[st] || st);
        if (st === "failed" && m.failure) text += `: ${m.failure}`;
        foot.append(h("span", { class: "status", "data-status": st, text }));
      }
      li.append(foot);
      messages.append(li);
    }
    if (nearBottom) messages.scrollTop = messages.scrollHeight;
  }

  function attachment(a) {
    const box = h("div", { class: "attachment" });
    if (a.kind === "location" && a.latitude != null) {
      box.append(`${t("Location")}: ${a.latitude}, ${a.longitude}`);
    } else if (a.kind === "contact") {
      box.append(`${t("Contact")}: ${a.name || ""} ${a.phone || ""}`);
    } else if (a.url && (a.kind === "image" || a.kind === "sticker") && (!a.mime_type || a.mime_type.startsWith("image/"))) {
      box.append(h("a", { href: a.url, target: "_blank", rel: "noopener noreferrer" }, h("img", { src: a.url, alt: a.name || a.kind, loading: "lazy" })));
    } else if (a.url) {
      box.append(h("a", { href: a.url, download: a.name || "", rel: "noopener noreferrer", text: `📎 ${a.name || a.kind}` }));
    } else if (a.status === "pending") {
      box.append(`${a.name || a.kind}: ${t("File is not available yet")}`);
    } else {
      box.append(`${a.name || a.kind}: ${t("File is not available")}${a.failure ? ` (${a.failure})` : ""}`);
    }
    return box;
  }

  let earlierLoaded = false;
  async function loadEarlier(d) {
    if (earlierLoaded || !d.customer || !d.customer.id) return;
    earlierLoaded = true;
    try {
      const profile = await get(`/v1/customers/${encodeURIComponent(d.customer.id)}`);
      const ids = (profile.dialogs || []).filter((x) => x !== id).slice(0, 5);
      if (!ids.length) return;
      const found = await Promise.all(ids.map((x) => get(`/v1/dialogs/${x}`).catch(() => null)));
      const items = found.filter(Boolean);
      if (!items.length) return;
      clear(earlier);
      earlier.append(h("h3", { text: t("Earlier dialogs") }), h("ul", {}, items.map((x) =>
        h("li", {}, h("a", { href: `#/dialogs/${x.id}`, text: `${fmtTime(x.opened_at)} · ${t(x.status)}` })))));
      earlier.hidden = false;
    } catch { earlier.hidden = true; }
  }

  let loading = null;
  let loadAgain = false;
  async function reload() {
    if (loading) {
      loadAgain = true;
      return loading;
    }
    loading = (async () => {
      try {
        const [d, items] = await Promise.all([get(`/v1/dialogs/${id}`), all(`/v1/dialogs/${id}/messages`)]);
        state.dialog = d;
        title.textContent = customerName(d);
        statusEl.textContent = t(d.status);
        statusEl.dataset.status = d.status;
        channelEl.textContent = channelName(d);
        closeBtn.disabled = d.status === "closed";
        const closed = d.status === "closed";
        if (!closed) writingAgain = false;
        closedNote.hidden = !closed;
        writeAgain.hidden = !closed || writingAgain;
        setReplyEnabled(!closed || writingAgain);
        drawMessages(items);
        const lastIn = [...items].reverse().find((m) => m.direction === "in");
        previews.set(id, { last: items[items.length - 1] || null, lastIn: lastIn || null, activity: d.last_activity_at });
        if (lastIn) markSeen(id, lastIn.received_at);
        onSeen();
        loadEarlier(d);
      } catch (err) {
        title.textContent = t("Dialogs");
        clear(messages);
        messages.append(h("li", {}, notice(errorText(err))));
      } finally {
        loading = null;
        if (loadAgain) {
          loadAgain = false;
          reload();
        }
      }
    })();
    return loading;
  }
  reload();
  return state;
}
