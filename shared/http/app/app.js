// Entry: sign-in, the header (language, status, sign-out, navigation), hash routing and live updates.
import { t, setLang, currentLang, languages } from "./i18n.js";
import { h, clear, select, field, notice } from "./ui.js";
import { api, session, whoIs, setUnauthorizedHandler, get } from "./api.js";
import { startLive } from "./live.js";
import * as workspace from "./workspace.js";
import * as admin from "./admin.js";

const root = document.getElementById("root");
let stopLive = null;
let liveUp = false;
let current = null; // the page's live handler

const ADMIN_PAGES = [
  ["#/dialogs", "Dialogs"],
  ["#/channels", "Channels"],
  ["#/employees", "Employees"],
  ["#/groups", "Groups"],
  ["#/chatbots", "Chatbots"],
  ["#/working-hours", "Working hours"],
];

function languageSelect() {
  const sel = select(Object.entries(languages()), currentLang(), { class: "lang" });
  sel.addEventListener("change", () => {
    setLang(sel.value);
    render();
    const again = document.querySelector("select.lang");
    if (again) again.focus();
  });
  return h("div", { class: "field inline" }, field(t("Language"), sel));
}

function statusSelect() {
  const known = sessionStorage.getItem("omnichat.status") || "";
  const opts = [["online", t("Online")], ["away", t("Away")], ["offline", t("Offline")]];
  if (!known) opts.unshift(["", t("Unknown")]);
  const sel = select(opts, known, { id: "my-status" });
  const msg = h("span", { class: "status-msg", role: "status" });
  sel.addEventListener("change", async () => {
    if (!sel.value) return;
    msg.textContent = "";
    try {
      const me = await api("PUT", "/v1/me/status", { status: sel.value });
      if (me) {
        session.me = me.id;
        sessionStorage.setItem("omnichat.status", me.status);
      }
      const blank = sel.querySelector('option[value=""]');
      if (blank) blank.remove();
    } catch (err) {
      msg.textContent = err.message;
    }
  });
  if (!known) loadMyStatus(sel);
  return h("div", { class: "field inline" }, field(t("Status"), sel), msg);
}

/** The employee's own status (`GET /v1/me`). */
async function loadMyStatus(sel) {
  try {
    const me = await get("/v1/me");
    if (!me || !me.employee) return;
    session.me = me.employee.id;
    sessionStorage.setItem("omnichat.status", me.employee.status);
    if (!sel.value) {
      sel.value = me.employee.status;
      const blank = sel.querySelector('option[value=""]');
      if (blank) blank.remove();
    }
  } catch { /* unknown: the select shows "Unknown" until set */ }
}

function header(route) {
  const nav = session.role === "admin"
    ? h("nav", { "aria-label": t("Main") }, h("ul", {}, ADMIN_PAGES.map(([href, label]) =>
        h("li", {}, h("a", { href, text: t(label), "aria-current": route.startsWith(href) ? "page" : null })))))
    : null;
  const signOut = h("button", { type: "button", class: "secondary", text: t("Sign out"), on: { click: signOutNow } });
  return h("header", { class: "top" },
    h("div", { class: "brand" }, h("span", { class: "logo", "aria-hidden": "true", text: "◆" }), " omnichat"),
    nav,
    h("div", { class: "tools" },
      session.role === "employee" ? statusSelect() : null,
      languageSelect(),
      h("span", { class: "live " + (liveUp ? "up" : "down"), role: "status", text: liveUp ? t("Live") : t("Reconnecting…") }),
      signOut));
}

function signOutNow() {
  clearInterval(poller);
  poller = null;
  if (stopLive) stopLive();
  stopLive = null;
  liveUp = false;
  workspace.reset();
  session.end();
  location.hash = "";
  render();
}

function signInPage() {
  const input = h("input", { type: "password", id: "api-key", autocomplete: "current-password", required: true, spellcheck: "false" });
  const error = h("div", { class: "form-error" });
  const button = h("button", { type: "submit", text: t("Sign in") });
  const form = h("form", { class: "signin card", "aria-labelledby": "signin-title" },
    h("h1", { id: "signin-title", text: t("Operator workspace") }),
    h("div", { class: "field" }, field(t("API key"), input)),
    error,
    button);
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    clear(error);
    const key = input.value.trim();
    if (!key) {
      error.append(notice(t("The key was not accepted")));
      input.focus();
      return;
    }
    button.disabled = true;
    button.textContent = t("Signing in…");
    const who = await whoIs(key);
    const role = who && who.role;
    button.disabled = false;
    button.textContent = t("Sign in");
    if (!role) {
      error.append(notice(t("The key was not accepted")));
      input.setAttribute("aria-invalid", "true");
      input.focus();
      return;
    }
    session.start(key, role);
    if (who.employee) {
      session.me = who.employee.id;
      sessionStorage.setItem("omnichat.status", who.employee.status);
    }
    if (!location.hash || location.hash === "#/" || location.hash === "#") location.hash = "#/dialogs";
    render();
  });
  return h("div", { class: "signin-page" },
    h("header", { class: "top" }, h("div", { class: "brand" }, h("span", { class: "logo", "aria-hidden": "true", text: "◆" }), " omnichat"),
      h("div", { class: "tools" }, languageSelect())),
    h("main", { id: "main" }, form));
}

// While the live connection is down, the page is re-read every few seconds instead.
let poller = null;
function onLiveState(up) {
  liveUp = up;
  clearInterval(poller);
  poller = up ? null : setInterval(() => current && current.onEvent && current.onEvent({ type: "poll" }), 1000);
  const el = document.querySelector(".live");
  if (el) {
    el.className = "live " + (up ? "up" : "down");
    el.textContent = up ? t("Live") : t("Reconnecting…");
  }
}

function ensureLive() {
  if (stopLive) return;
  stopLive = startLive({
    onEvent: (frame) => current && current.onEvent && current.onEvent(frame),
    onConnect: () => current && current.refresh && current.refresh(true),
    onState: onLiveState,
  });
}

export function render() {
  const route = location.hash || "#/dialogs";
  clear(root);
  current = null;
  if (!session.key) {
    document.title = `${t("Sign in")} · omnichat`;
    root.append(signInPage());
    const input = document.getElementById("api-key");
    if (input) input.focus();
    return;
  }
  const main = h("main", { id: "main" });
  root.append(header(route), main);
  const parts = route.replace(/^#\/?/, "").split("/");
  const page = parts[0] || "dialogs";
  const titles = { dialogs: "Dialogs", channels: "Channels", employees: "Employees", groups: "Groups", chatbots: "Chatbots", "working-hours": "Working hours" };
  document.title = `${t(titles[page] || "Dialogs")} · omnichat`;
  if (page === "dialogs" || session.role !== "admin") {
    current = workspace.render(main, page === "dialogs" ? parts[1] || null : null);
  } else {
    current = admin.render(main, page, parts.slice(1));
  }
  ensureLive();
}

setUnauthorizedHandler(() => {
  if (session.key) signOutNow();
});

// Back from a provider's consent page (/app/connected/{provider}?code=&state=): the code leaves the address
// bar at once, and the Channels page finishes connecting (after signing in, if the tab has no key).
const returned = location.pathname.match(/^\/app\/connected\/([a-z]+)$/);
if (returned) {
  const params = Object.fromEntries(new URLSearchParams(location.search));
  history.replaceState(null, "", "/app/#/channels");
  admin.oauthReturned(returned[1], params);
}

window.addEventListener("hashchange", render);
setLang(currentLang());
render();
