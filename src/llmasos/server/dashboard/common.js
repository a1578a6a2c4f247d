// What every dashboard page shares: the API key (this tab's sessionStorage), calls to the
// API, the live stream of GET /v1/watch, and the page frame (title, navigation, key bar).
import { html, render, useState, useEffect } from "/dashboard/static/vendor/htm-preact-3.1.1.module.js";
import { CommandBar } from "./command_bar.js";

export { html, useState, useEffect };

const PAGES = [["processes", "Processes"], ["memory", "Memory"], ["agents", "Agents"],
               ["jobs", "Jobs"], ["chat", "Chat"]];
const KEY = "llmasos-api-key";

export const apiKey = () => sessionStorage.getItem(KEY) || "";

export function headers(extra = {}) {
  const key = apiKey();
  return key ? { ...extra, Authorization: `Bearer ${key}` } : extra;
}

// A JSON call to the API; throws an Error with the server's message on a refusal.
export async function api(path, { method = "GET", body } = {}) {
  const init = { method, headers: headers(body ? { "Content-Type": "application/json" } : {}) };
  if (body !== undefined) init.body = JSON.stringify(body);
  const reply = await fetch(path, init);
  const data = reply.headers.get("content-type")?.includes("json") ? await reply.json() : null;
  if (!reply.ok) throw new Error(data?.error?.message || `${reply.status} ${reply.statusText}`);
  return data;
}

// The server-sent events of a response body, one {event, data} at a time.
export async function* serverEvents(reply) {
  const reader = reply.body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += decoder.decode(value, { stream: true });
    let cut;
    while ((cut = buffer.indexOf("\n\n")) >= 0) {
      const block = buffer.slice(0, cut);
      buffer = buffer.slice(cut + 2);
      let event = "message", data = "";
      for (const line of block.split("\n")) {
        if (line.startsWith("event: ")) event = line.slice(7);
        else if (line.startsWith("data: ")) data += line.slice(6);
      }
      if (data) yield { event, data };
    }
  }
}

// The latest snapshot of GET /v1/watch (null until the first), reconnecting when it drops.
export function useWatch() {
  const [state, setState] = useState({ snapshot: null, error: null });
  useEffect(() => {
    let stopped = false;
    const controller = new AbortController();
    (async () => {
      while (!stopped) {
        try {
          const reply = await fetch("/v1/watch?interval=0.5",
            { headers: headers({ Accept: "text/event-stream" }), signal: controller.signal });
          if (!reply.ok) {
            const body = await reply.json().catch(() => null);
            throw new Error(body?.error?.message || `${reply.status}`);
          }
          for await (const { event, data } of serverEvents(reply)) {
            if (event === "snapshot") setState({ snapshot: JSON.parse(data), error: null });
          }
        } catch (error) {
          if (stopped) return;
          setState((s) => ({ ...s, error: String(error.message || error) }));
        }
        await new Promise((r) => setTimeout(r, 2000));
      }
    })();
    return () => { stopped = true; controller.abort(); };
  }, []);
  return state;
}

function KeyBar() {
  const [value, setValue] = useState("");
  const save = (event) => {
    event.preventDefault();
    if (value) sessionStorage.setItem(KEY, value); else sessionStorage.removeItem(KEY);
    location.reload();
  };
  return html`<form class="keybar" onSubmit=${save}>
    <label for="api-key">API key</label>
    <input id="api-key" type="password" autocomplete="off" value=${value}
      placeholder=${apiKey() ? "(kept for this tab)" : "none"}
      onInput=${(e) => setValue(e.target.value)} />
    <button type="submit">${value ? "Use" : "Forget"}</button>
  </form>`;
}

export function Page({ title, children }) {
  const current = document.getElementById("app").dataset.page;
  return html`<header>
      <h1>LLMasOS</h1>
      <nav aria-label="Dashboard pages">
        ${PAGES.map(([page, label]) => html`<a href=${page === "processes" ? "/" : `/dashboard/${page}`}
          aria-current=${page === current ? "page" : undefined}>${label}</a>`)}
      </nav>
      <${KeyBar} />
    </header>
    <${CommandBar} />
    <main id="main"><h2>${title}</h2>${children}</main>`;
}

export function Status({ error, note }) {
  return html`<p class="status" role="status" aria-live="polite">
    ${error ? html`<span class="error">${error}</span>` : note || ""}</p>`;
}

export function mount(component) {
  const root = document.getElementById("app");
  root.textContent = ""; // the "Loading" line
  render(html`<${component} />`, root);
}

// A uPlot chart of `series` ({label: [values]}) over `times` (Unix seconds, or plain numbers
// such as steps with time=false), redrawn on change.
export function Chart({ title, times, series, height = 220, time = true }) {
  const id = `chart-${title.replace(/\W+/g, "-")}`;
  useEffect(() => {
    const target = document.getElementById(id);
    if (!target || times.length < 2) return;
    const labels = Object.keys(series);
    const colors = ["#1f5fbf", "#1e7b34", "#a4262c", "#8a5a00"];
    const plot = new uPlot({
      title, width: Math.min(target.clientWidth || 800, 1100), height,
      series: [{}, ...labels.map((label, i) => ({ label, stroke: colors[i % colors.length] }))],
      scales: { x: { time } }, axes: [{}, {}],
    }, [times, ...labels.map((l) => series[l])], target);
    return () => plot.destroy();
  });
  if (times.length < 2) return html`<p class="muted">${title}: collecting points…</p>`;
  return html`<figure><div id=${id} role="img" aria-label=${title}></div></figure>`;
}

export const ago = (seconds) => (seconds < 90 ? `${seconds.toFixed(0)} s`
  : seconds < 5400 ? `${(seconds / 60).toFixed(0)} min` : `${(seconds / 3600).toFixed(1)} h`);
