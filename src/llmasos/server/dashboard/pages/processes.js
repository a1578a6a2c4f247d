// Processes and agents, live: state, priority, owner, tokens, KV pages, swap; kill, suspend,
// resume and renice for a key that may change things (not a read-only one).
import { html, useState, Page, Status, mount, useWatch, api } from "../common.js";

function Actions({ process, canAct, report }) {
  const [priority, setPriority] = useState(String(process.priority));
  if (!canAct || process.state === "terminated") return html`<td></td>`;
  const signal = (name) => api(`/v1/processes/${process.pid}/signal`,
    { method: "POST", body: { signal: name } }).then(() => report(`${name}: pid ${process.pid}`), report);
  const renice = (event) => {
    event.preventDefault();
    api(`/v1/processes/${process.pid}/priority`, { method: "POST", body: { priority: Number(priority) } })
      .then(() => report(`pid ${process.pid} now has priority ${priority}`), report);
  };
  const suspended = process.state === "suspended";
  return html`<td>
    <button class="danger" onClick=${() => signal("kill")} aria-label=${`Kill process ${process.pid}`}>Kill</button>
    <button onClick=${() => signal(suspended ? "resume" : "suspend")}
      aria-label=${`${suspended ? "Resume" : "Suspend"} process ${process.pid}`}>${suspended ? "Resume" : "Suspend"}</button>
    <form style="display:inline" onSubmit=${renice}>
      <label class="muted" for=${`prio-${process.pid}`}> priority </label>
      <input id=${`prio-${process.pid}`} type="number" min="-1000" max="1000" style="width:4.5rem"
        value=${priority} onInput=${(e) => setPriority(e.target.value)} />
      <button type="submit" aria-label=${`Set the priority of process ${process.pid}`}>Set</button>
    </form></td>`;
}

function Processes() {
  const { snapshot, error } = useWatch();
  const [note, setNote] = useState("");
  const report = (result) => setNote(result instanceof Error ? html`<span class="error">${result.message}</span>` : result);
  if (!snapshot) return html`<${Page} title="Processes and agents"><${Status} error=${error} note="Connecting…" /><//>`;
  const canAct = snapshot.role !== "read-only";
  const live = snapshot.processes.filter((p) => p.state !== "terminated");
  return html`<${Page} title="Processes and agents">
    <${Status} error=${error} note=${note} />
    <p class="muted">${live.length} live of ${snapshot.processes.length} shown, as ${snapshot.owner} (${snapshot.role}).</p>
    <table aria-label="Processes">
      <thead><tr><th class="num">PID</th><th>Owner</th><th>Model</th><th>State</th><th class="num">Priority</th>
        <th class="num">Prompt</th><th class="num">Output</th><th class="num">Pages</th><th>Swap</th>
        <th class="num">Preempted</th><th>Actions</th></tr></thead>
      <tbody>${snapshot.processes.map((p) => html`<tr key=${p.pid} data-pid=${p.pid}>
        <td class="num">${p.pid}</td><td>${p.owner}</td><td>${p.model}</td>
        <td data-state=${p.state}>${p.state}${p.finish_reason ? ` (${p.finish_reason})` : ""}</td>
        <td class="num">${p.priority}</td><td class="num">${p.prompt_tokens}</td>
        <td class="num">${p.output_tokens}/${p.max_tokens}</td><td class="num">${p.pages}</td>
        <td>${p.swap || ""}</td><td class="num">${p.preemptions}</td>
        <${Actions} key=${`a${p.pid}-${p.priority}`} process=${p} canAct=${canAct} report=${report} />
      </tr>`)}</tbody>
    </table>
    <h3>Agents</h3>
    ${snapshot.agents.length ? html`<table aria-label="Agents">
      <thead><tr><th class="num">PID</th><th>Name</th><th>Owner</th><th>State</th><th class="num">Steps</th><th></th></tr></thead>
      <tbody>${snapshot.agents.map((a) => html`<tr key=${a.pid}>
        <td class="num">${a.pid}</td><td>${a.name}</td><td>${a.owner}</td><td>${a.state}</td>
        <td class="num">${a.steps ?? ""}</td><td><a href=${`/dashboard/agents#${a.pid}`}>trace</a></td></tr>`)}</tbody>
    </table>` : html`<p class="muted">No live agents.</p>`}
  <//>`;
}

mount(Processes);
