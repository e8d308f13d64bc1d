// prepflow dashboard: the parts of the pages that change in place. Everything from the server is
// put on the page as text (textContent, attributes set one by one): never parsed as HTML.
"use strict";

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) node.setAttribute(key, value);
  for (const child of children) {
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

async function getJSON(url, options) {
  const response = await fetch(url, options);
  const body = await response.json();
  if (!response.ok) throw new Error(body.error || response.statusText);
  return body;
}

function debounce(fn, ms) {
  let timer = null;
  return (...args) => { clearTimeout(timer); timer = setTimeout(() => fn(...args), ms); };
}

// ---- runs list: live rows ----------------------------------------------------------------------

function liveRuns(table) {
  const refresh = async () => {
    let data;
    try { data = await getJSON(table.dataset.live); } catch (e) { return; }
    const rows = new Map([...table.tBodies[0].rows].map((tr) => [tr.dataset.run, tr]));
    if (data.runs.length !== rows.size || data.runs.some((r) => !rows.has(r.name))) {
      location.reload();
      return;
    }
    for (const run of data.runs) {
      const tr = rows.get(run.name);
      for (const [field, text] of Object.entries(run.fields)) {
        const cell = tr.querySelector(`[data-field="${field}"]`);
        if (!cell) continue;
        if (field === "status") {
          cell.replaceChildren(el("span", { class: `status status-${text}` }, text));
        } else {
          cell.textContent = text;
        }
      }
    }
  };
  setInterval(refresh, 3000);
}

// ---- a run page: live counts while it runs -----------------------------------------------------

function liveRun(node) {
  if (node.dataset.status !== "running") return;
  const timer = setInterval(async () => {
    let data;
    try { data = await getJSON(node.dataset.live); } catch (e) { return; }
    for (const [id, text] of Object.entries(data.values)) {
      const target = document.getElementById(id);
      if (target && target.children.length === 0) target.textContent = text;
      else if (target && target.firstElementChild) target.firstElementChild.textContent = text;
    }
    if (data.status !== "running") { clearInterval(timer); location.reload(); }
  }, 2000);
}

// ---- a step page: the threshold what-if ---------------------------------------------------------

function whatIf(box) {
  const slider = box.querySelector(".slider");
  const exact = box.querySelector(".exact");
  const min = Number(box.dataset.min), max = Number(box.dataset.max);
  const keepsHigh = box.dataset.bound === "min";
  const bars = [...box.querySelectorAll(".hist rect")];
  const cut = box.querySelector(".hist .cut");
  const show = (selector, text) => { box.querySelector(selector).textContent = text; };
  const number = (n) => Number(n).toLocaleString("en-US");

  const drawLine = (t) => {
    const x = max > min ? (400 * (t - min)) / (max - min) : 0;
    cut.setAttribute("x1", x);
    cut.setAttribute("x2", x);
    for (const bar of bars) {
      const lo = Number(bar.dataset.lo), hi = Number(bar.dataset.hi);
      const kept = keepsHigh ? lo >= t : hi <= t;
      const dropped = keepsHigh ? hi <= t : lo >= t;
      bar.setAttribute("class", kept ? "keep" : dropped ? "drop" : "edge");
    }
  };

  const example = (ex) => el("li", {},
    el("a", { class: "rowid", href: box.dataset.rows + encodeURIComponent(ex.id) }, `_id ${ex.id}`),
    el("span", { class: "value" }, ex.value),
    el("span", { class: `now now-${ex.now}` }, `${ex.now} now`),
    el("span", { class: "snippet" }, ex.text || ""));

  const ask = async (t) => {
    const url = `${box.dataset.url}?rule=${encodeURIComponent(box.dataset.rule)}&t=${encodeURIComponent(t)}`;
    let data;
    try { data = await getJSON(url); } catch (e) { show(".verdict", e.message); return; }
    show(".t", data.threshold_text);
    show(".kept", number(data.kept));
    show(".kept-now", number(data.kept_now));
    show(".newly-kept", number(data.newly_kept));
    show(".newly-dropped", number(data.newly_dropped));
    box.querySelector(".kept-side").replaceChildren(...data.kept_examples.map(example));
    box.querySelector(".dropped-side").replaceChildren(...data.dropped_examples.map(example));
    const change = box.querySelector(".change");
    const same = Number(t) === Number(box.dataset.threshold);
    change.hidden = same || !data.change;
    if (data.change) {
      show(".yaml", data.change.yaml);
      show(".set", data.change.set);
    }
    box.dataset.shown = data.threshold_text;
  };
  const later = debounce(ask, 120);
  slider.addEventListener("input", () => { exact.value = slider.value; drawLine(Number(slider.value)); later(slider.value); });
  exact.addEventListener("change", () => { slider.value = exact.value; drawLine(Number(exact.value)); ask(exact.value); });
  drawLine(Number(box.dataset.threshold));
  ask(box.dataset.threshold);
}

// ---- the pipeline page: the YAML editor ---------------------------------------------------------

function editor(box) {
  const area = box.querySelector("textarea");
  const state = box.querySelector(".state");
  const list = box.querySelector(".problems");
  const check = debounce(async () => {
    state.textContent = "checking…";
    let data;
    try {
      data = await getJSON(box.dataset.url, {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ yaml: area.value }),
      });
    } catch (e) { state.textContent = e.message; return; }
    state.textContent = data.problems.length
      ? `${data.problems.length} problem(s)` : `compiles: ${data.steps.length} steps`;
    box.classList.toggle("broken", data.problems.length > 0);
    list.replaceChildren(...data.problems.map((p) => el("li", {}, p)));
  }, 400);
  area.addEventListener("input", check);
}

document.addEventListener("DOMContentLoaded", () => {
  const runs = document.getElementById("runs");
  if (runs && runs.dataset.live) liveRuns(runs);
  const live = document.getElementById("live");
  if (live) liveRun(live);
  document.querySelectorAll(".whatif").forEach(whatIf);
  document.querySelectorAll(".editor").forEach(editor);
});
