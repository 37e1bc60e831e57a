// DOM helpers: elements are built with createElement/textContent only (no HTML from data).
import { t, currentLang } from "./i18n.js";

let serial = 0;
export const uid = (prefix = "id") => `${prefix}-${++serial}`;

/** h("tag", {class, text, on: {click}, ...attributes}, ...children) */
export function h(tag, props, ...children) {
  const el = document.createElement(tag);
  for (const [name, value] of Object.entries(props || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (name === "class") el.className = value;
    else if (name === "text") el.textContent = value;
    else if (name === "on") for (const [ev, fn] of Object.entries(value)) el.addEventListener(ev, fn);
    else if (name === "value") el.value = value;
    else if (name === "checked" || name === "selected" || name === "disabled" || name === "hidden" || name === "multiple" || name === "required") el[name] = true;
    else el.setAttribute(name, value === true ? "" : value);
  }
  append(el, children);
  return el;
}

export function append(el, children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

export function clear(el) {
  while (el.firstChild) el.firstChild.remove();
  return el;
}

/** A labelled control: returns [label, control]. */
export function field(labelText, control) {
  if (!control.id) control.id = uid("f");
  return [h("label", { for: control.id, text: labelText }), control];
}

/** A `<div class="field">` with a label and its control. */
export function row(labelText, control, extraClass) {
  return h("div", { class: "field" + (extraClass ? " " + extraClass : "") }, field(labelText, control));
}

export function select(options, value, props) {
  const el = h("select", props || {});
  for (const [v, label] of options) el.append(h("option", { value: v, text: label, selected: v === value }));
  if (value !== undefined && value !== null) el.value = value;
  return el;
}

export function fmtTime(iso) {
  if (!iso) return "";
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return "";
  const sameDay = d.toDateString() === new Date().toDateString();
  const opts = sameDay ? { hour: "2-digit", minute: "2-digit" } : { day: "numeric", month: "short", hour: "2-digit", minute: "2-digit" };
  return d.toLocaleString(currentLang() === "ru" ? "ru-RU" : "en-GB", opts);
}

/** A visible message, `role=alert` for errors. */
export function notice(text, kind = "error") {
  return h("p", { class: kind === "error" ? "error" : "ok", role: kind === "error" ? "alert" : "status", text });
}

export function errorText(err) {
  if (err && err.status === 404) return t("Not found.");
  return t("Something went wrong: {message}", { message: (err && err.message) || String(err) });
}

/** A modal `<dialog>`: opened with showModal, closed by Esc or `close()`, removed from the page when closed. */
export function modal(title, ...content) {
  const titleId = uid("dlg");
  const dlg = h("dialog", { class: "modal", "aria-labelledby": titleId }, h("h2", { id: titleId, text: title }), content);
  dlg.addEventListener("close", () => dlg.remove());
  document.body.append(dlg);
  dlg.showModal();
  return dlg;
}

/**
 * Places the API's 422 messages beside the control it names. `add(key, anchor, controls)` registers where
 * a field's message goes (after `anchor`, or inside it when it is a fieldset); a field is matched exactly,
 * then by dropping its last `.part` or `[i]` until a registered key is found, else the form-level key "".
 */
export function fieldErrors(form) {
  const anchors = new Map();
  const shown = [];
  return {
    add(key, anchor, controls) {
      anchors.set(key, { anchor, controls: [controls].flat().filter(Boolean) });
    },
    clear() {
      for (const { p, controls } of shown.splice(0)) {
        p.remove();
        for (const c of controls) {
          const rest = (c.getAttribute("aria-describedby") || "").split(" ").filter((id) => id && id !== p.id);
          if (rest.length) c.setAttribute("aria-describedby", rest.join(" "));
          else c.removeAttribute("aria-describedby");
        }
      }
    },
    show(err) {
      const fieldName = (err && err.field) || "";
      let key = fieldName.replace(/^settings\./, "");
      let target = null;
      for (;;) {
        if (anchors.has(key)) {
          target = anchors.get(key);
          break;
        }
        if (!key) break;
        const m = key.match(/^(.*?)(\.[^.[\]]+|\[\d+\])$/);
        key = m ? m[1] : "";
      }
      const p = h("p", { class: "field-error", role: "alert", id: uid("err"), "data-field-error": fieldName, text: err.message || String(err) });
      if (!target) {
        form.prepend(p);
        shown.push({ p, controls: [] });
        return;
      }
      if (target.anchor.tagName === "FIELDSET") target.anchor.append(p);
      else target.anchor.after(p);
      for (const c of target.controls) {
        const ids = (c.getAttribute("aria-describedby") || "").split(" ").filter(Boolean);
        ids.push(p.id);
        c.setAttribute("aria-describedby", ids.join(" "));
      }
      shown.push({ p, controls: target.controls });
    },
  };
}
