// The live event stream: one WebSocket to /api/v1/events, reconnecting every 3 s, keeping the last
// 200 events for the Live events page and telling the app when something changed.
import { credentialsAccepted, eventsUrl } from "./api.js";

const KEEP = 200;
const RECONNECT_MS = 3000;

export const live = {
  events: [],
  connected: false,
  listeners: new Set(),
  received: 0,
  socket: null,
  timer: null,

  start() {
    this.connect();
  },

  schedule(delay) {
    clearTimeout(this.timer);
    this.timer = setTimeout(() => this.connect(), delay);
  },

  connect() {
    if (!credentialsAccepted()) {
      // Not signed in yet (or the server is unreachable): try again once an API call succeeded.
      this.setState(false);
      this.schedule(500);
      return;
    }
    let socket;
    try {
      socket = new WebSocket(eventsUrl());
    } catch {
      this.setState(false);
      this.schedule(RECONNECT_MS);
      return;
    }
    this.socket = socket;
    socket.onopen = () => this.setState(true);
    socket.onmessage = (message) => {
      let event;
      try { event = JSON.parse(message.data); } catch { return; }
      this.received += 1;
      event.seq = this.received;
      this.events.unshift(event);
      if (this.events.length > KEEP) this.events.length = KEEP;
      for (const listener of this.listeners) listener(event);
    };
    socket.onclose = () => {
      this.setState(false);
      if (this.socket === socket) this.schedule(RECONNECT_MS);
    };
  },

  reconnect() {
    const old = this.socket;
    this.socket = null;
    if (old) old.close();
    this.schedule(0);
  },

  clear() {
    this.events = [];
  },

  setState(connected) {
    this.connected = connected;
    const el = document.getElementById("conn");
    el.classList.toggle("live", connected);
    el.classList.toggle("down", !connected);
    document.getElementById("conn-label").textContent = connected ? "live" : credentialsAccepted() ? "reconnecting" : "connecting";
    el.title = connected ? "Live events: connected" : "Live events: disconnected, retrying every 3 s";
  },

  subscribe(listener) {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  },
};
