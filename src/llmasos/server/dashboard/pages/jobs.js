// Training jobs: state and progress live, and a job's loss curve (its step log).
import { html, useState, useEffect, Page, Status, mount, useWatch, api, Chart, ago } from "../common.js";

function LossCurve({ id }) {
  const [log, setLog] = useState([]);
  useEffect(() => {
    let stopped = false;
    const load = () => api(`/v1/tasks/${id}/logs`).then((l) => !stopped && setLog(l.data), () => {});
    load();
    const timer = setInterval(load, 3000);
    return () => { stopped = true; clearInterval(timer); };
  }, [id]);
  if (!log.length) return html`<p class="muted">No steps logged yet for ${id}.</p>`;
  return html`<${Chart} title=${`Loss of ${id} by step`} time=${false}
    times=${log.map((e) => e.step)} series=${{ loss: log.map((e) => e.loss) }} />`;
}

function Jobs() {
  const { snapshot, error } = useWatch();
  const [chosen, setChosen] = useState(null);
  if (!snapshot) return html`<${Page} title="Training jobs"><${Status} error=${error} note="Connecting…" /><//>`;
  const now = Date.now() / 1000;
  return html`<${Page} title="Training jobs">
    <${Status} error=${error} />
    ${snapshot.jobs.length ? html`<table aria-label="Training jobs">
      <thead><tr><th>Job</th><th>Owner</th><th>Model</th><th>State</th><th>Progress</th><th class="num">Step</th>
        <th class="num">Loss</th><th class="num">ε</th><th class="num">Left</th><th></th></tr></thead>
      <tbody>${snapshot.jobs.map((j) => html`<tr key=${j.id}>
        <td>${j.id}</td><td>${j.owner}</td><td>${j.model}</td><td>${j.state}${j.error ? html` <span class="error">${j.error}</span>` : ""}</td>
        <td><progress max="1" value=${j.progress} aria-label=${`Progress of ${j.id}`}></progress> ${(100 * j.progress).toFixed(0)}%</td>
        <td class="num">${j.step}/${j.total_steps}</td><td class="num">${j.loss?.toFixed(4) ?? ""}</td>
        <td class="num">${j.epsilon?.toFixed(2) ?? ""}</td><td class="num">${j.eta_s != null ? ago(j.eta_s) : ""}</td>
        <td><button onClick=${() => setChosen(j.id)}>Loss curve</button>
          <span class="muted">${j.started_at ? `started ${ago(now - j.started_at)} ago` : ""}</span></td></tr>`)}</tbody>
    </table>` : html`<p class="muted">No training jobs.</p>`}
    ${chosen ? html`<${LossCurve} key=${chosen} id=${chosen} />` : ""}
  <//>`;
}

mount(Jobs);
