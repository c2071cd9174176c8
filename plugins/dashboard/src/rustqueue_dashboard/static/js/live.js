// The live event stream: one WebSocket to /api/v1/events, reconnecting every 3 s, keeping the last
// 200 events for the Live events page and telling the app when something changed.
import { DASH, credentialsAccepted, eventsUrl, get } from "./api.js";

const KEEP = 200;
const RECONNECT_MS = 3000;
const MISSING_RETRY_MS = 30000;

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
      // Sign in first (this may show the token dialog): a refused handshake would count as a failed
      // login on the server, and reconnecting every few seconds would soon lock the browser out.
      this.setState(false);
      get(DASH + "/session").then(() => this.schedule(0), () => this.schedule(RECONNECT_MS));
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
    let opened = false;
    socket.onopen = () => { opened = true; this.setState(true); };
    socket.onmessage = (message) => {
      let event;
      try { event = JSON.parse(message.data); } catch { return; }
      this.received += 1;
      event.seq = this.received;
      this.events.unshift(event);
      if (this.events.length > KEEP) this.events.length = KEEP;
      for (const listener of this.listeners) listener(event);
    };
    socket.onclose = async () => {
      this.setState(false);
      if (this.socket !== socket) return;
      if (!opened && (await this.streamMissing())) {
        // The websocket plugin is not loaded: say so and look again now and then.
        document.getElementById("conn-label").textContent = "no event stream";
        this.schedule(MISSING_RETRY_MS);
        return;
      }
      this.schedule(RECONNECT_MS);
    };
  },

  async streamMissing() {
    try {
      // A plain GET answers 426 where the stream exists (a public route: no credentials needed).
      return (await fetch("/api/v1/events")).status === 404;
    } catch {
      return false;
    }
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
