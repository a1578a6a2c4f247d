// An agent's trace as a timeline: each syscall (model call, tool, message...) where it started
// and how long it took, with what went in and came out. The agent is the one named after # in
// the address, or picked from the live ones.
import { html, useState, useEffect, Page, Status, mount, useWatch, api } from "../common.js";

function Timeline({ pid }) {
  const [trace, setTrace] = useState(null);
  const [error, setError] = useState(null);
  useEffect(() => {
    let stopped = false;
    const load = () => api(`/v1/agents/${pid}/trace`).then((t) => !stopped && setTrace(t.data), (e) => setError(e.message));
    load();
    const timer = setInterval(load, 2000);
    return () => { stopped = true; clearInterval(timer); };
  }, [pid]);
  if (error) return html`<p class="error">${error}</p>`;
  if (!trace) return html`<p class="muted">Loading the trace of ${pid}…</p>`;
  const end = Math.max(1e-3, ...trace.map((e) => e.started_s + e.duration_s));
  return html`<ol class="timeline" aria-label=${`Trace of agent ${pid}`}>
    ${trace.map((e, i) => html`<li key=${i}>
      <code>${e.started_s.toFixed(2)} s</code> <b>${e.syscall}</b>
      <span class="bar" style=${`margin-left:${(100 * e.started_s / end).toFixed(1)}%;width:${Math.max(0.5, 100 * e.duration_s / end).toFixed(1)}%`}
        aria-hidden="true"></span>
      <span class="muted"> ${e.duration_s.toFixed(2)} s${e.pid ? `, pid ${e.pid}` : ""}${e.error ? "" : ""}</span>
      ${e.error ? html`<span class="error"> ${e.error}</span>` : ""}
      <details><summary>in and out</summary><pre>${JSON.stringify({ inputs: e.inputs, output: e.output }, null, 1)}</pre></details>
    </li>`)}</ol>`;
}

function Agents() {
  const { snapshot, error } = useWatch();
  const pidOf = () => (/^\d{1,12}$/.test(location.hash.slice(1)) ? location.hash.slice(1) : "");
  const [pid, setPid] = useState(pidOf());
  useEffect(() => {
    const follow = () => setPid(pidOf());
    addEventListener("hashchange", follow);
    return () => removeEventListener("hashchange", follow);
  }, []);
  const agents = snapshot ? snapshot.agents : [];
  return html`<${Page} title="Agent traces">
    <${Status} error=${error} note=${snapshot ? "" : "Connecting…"} />
    <label for="agent">Agent </label>
    <select id="agent" value=${pid} onChange=${(e) => { location.hash = e.target.value; }}>
      <option value="">pick one</option>
      ${pid && !agents.some((a) => String(a.pid) === pid) ? html`<option value=${pid}>${pid}</option>` : ""}
      ${agents.map((a) => html`<option value=${a.pid}>${a.pid} ${a.name} (${a.state})</option>`)}
    </select>
    ${pid ? html`<${Timeline} key=${pid} pid=${pid} />` : html`<p class="muted">No agent picked.</p>`}
  <//>`;
}

mount(Agents);
