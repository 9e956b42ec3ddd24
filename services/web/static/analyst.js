// The analyst's page: the live report of an experiment, read from the event store.
"use strict";

const $ = (id) => document.getElementById(id);
let timer = null;

function share(value) {
  return Number.isFinite(value) ? (100 * value).toFixed(1) + "%" : "–";
}

function number(value, digits) {
  return Number.isFinite(value) ? value.toFixed(digits) : "–";
}

function cell(text, name) {
  const td = document.createElement("td");
  td.textContent = text;
  if (name) td.dataset.metric = name;
  return td;
}

async function getJson(path) {
  const reply = await fetch(path, { cache: "no-store" });
  const payload = await reply.json().catch(() => ({}));
  if (!reply.ok) throw new Error((payload.error && payload.error.message) || reply.statusText);
  return payload;
}

async function show(name) {
  if (!name) return;
  $("status").textContent = "Reading the event store…";
  try {
    const report = await getJson(`/v1/reports/${encodeURIComponent(name)}.json`);
    const rows = Object.entries(report.variants).map(([variant, v]) => {
      const tr = document.createElement("tr");
      tr.dataset.variant = variant;
      const conversion = v.metrics.conversion;
      const ratings = v.ratings.reduce((a, b) => a + b, 0);
      tr.append(cell(variant + (variant === report.control ? " (control)" : "")),
        cell(String(v.users), "users"),
        cell(String(Math.round(conversion.value * conversion.n)), "purchasers"),
        cell(`${share(conversion.value)} [${share(conversion.low)}, ${share(conversion.high)}]`, "conversion"),
        cell(String(ratings), "ratings"),
        cell(ratings ? number(v.metrics.mean_rating.value, 2) : "–", "mean_rating"),
        cell(number(v.metrics.revenue_per_user.value, 2), "revenue"));
      return tr;
    });
    $("variants").tBodies[0].replaceChildren(...rows);
    $("warnings").textContent = report.warnings.join(" · ");
    $("report").src = `/v1/reports/${encodeURIComponent(name)}.html`;
    $("status").textContent = `${report.users} shoppers exposed, ${report.since} to ${report.until}.`;
  } catch (error) {
    $("status").textContent = "Could not read the report: " + error.message;
  }
}

async function start() {
  try {
    const { experiments } = await getJson("/v1/experiments");
    const select = $("experiment");
    select.replaceChildren(...experiments.map((name) =>
      Object.assign(document.createElement("option"), { value: name, textContent: name })));
    const wanted = new URLSearchParams(location.search).get("experiment");
    if (wanted && experiments.includes(wanted)) select.value = wanted;
    if (!experiments.length) $("status").textContent = "No experiment has served a list yet.";
    await show(select.value);
  } catch (error) {
    $("status").textContent = "Could not list the experiments: " + error.message;
  }
}

function live() {
  clearInterval(timer);
  if ($("live").checked) timer = setInterval(() => show($("experiment").value), 10000);
}

document.addEventListener("DOMContentLoaded", () => {
  $("experiment").addEventListener("change", () => show($("experiment").value));
  $("refresh").addEventListener("click", () => show($("experiment").value));
  $("live").addEventListener("change", live);
  start();
  live();
});
