// Live updates: a one-time ticket, then the WebSocket; reconnects by itself (1 s, 2, 4 … 15 s) with a new ticket.
import { api } from "./api.js";

export function startLive({ onEvent, onConnect, onState }) {
  let stopped = false;
  let ws = null;
  let delay = 1000;
  let timer = null;

  function retry() {
    if (stopped) return;
    onState(false);
    clearTimeout(timer);
    timer = setTimeout(connect, delay);
    delay = Math.min(delay * 2, 15000);
  }

  async function connect() {
    if (stopped) return;
    let ticket;
    try {
      ticket = await api("POST", "/v1/stream/tickets", {});
    } catch (err) {
      if (err.status === 401) return;
      retry();
      return;
    }
    if (stopped) return;
    const base = ticket.url || (location.protocol === "https:" ? "wss://" : "ws://") + location.host + "/v1/stream";
    try {
      ws = new WebSocket(base + (base.includes("?") ? "&" : "?") + "ticket=" + encodeURIComponent(ticket.ticket));
    } catch {
      retry();
      return;
    }
    ws.addEventListener("open", () => {
      delay = 1000;
      onState(true);
      onConnect();
    });
    ws.addEventListener("message", (e) => {
      let frame;
      try { frame = JSON.parse(e.data); } catch { return; }
      if (frame && typeof frame.type === "string") onEvent(frame);
    });
    ws.addEventListener("close", () => {
      ws = null;
      retry();
    });
    ws.addEventListener("error", () => {
      try { ws && ws.close(); } catch { /* closing anyway */ }
    });
  }

  connect();
  return () => {
    stopped = true;
    clearTimeout(timer);
    if (ws) {
      const old = ws;
      ws = null;
      old.close();
    }
  };
}
