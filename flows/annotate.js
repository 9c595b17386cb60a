// The annotation page. Log text only ever enters the document through textContent.
"use strict";
const $ = (id) => document.getElementById(id);
let queue = null, item = null, answered = false, renewer = null;

// The link's token (#token=...) is kept for this tab only and taken out of the address bar, so
// it is neither in the history nor in a Referer. It goes in a header a cross-origin page cannot
// set; the request body never says who is answering.
const TOKEN_KEY = "assay-annotation-token";
const fromLink = new URLSearchParams(location.hash.slice(1)).get("token");
if (fromLink) {
  sessionStorage.setItem(TOKEN_KEY, fromLink);
  history.replaceState(null, "", location.pathname);
}

async function call(path, body) {
  const headers = {};
  const token = sessionStorage.getItem(TOKEN_KEY);
  if (token) headers["Authorization"] = `Bearer ${token}`;
  const options = { headers };
  if (body !== undefined) {
    options.method = "POST";
    headers["Content-Type"] = "application/json";
    options.body = JSON.stringify(body);
  }
  const response = await fetch(path, options);
  const data = await response.json();
  if (!response.ok) throw new Error(data.error || response.statusText);
  return data;
}

function showError(e) { $("error").textContent = e ? String(e.message || e) : ""; }
function setProgress(d) { $("progress").textContent = `${d.labelled} of ${d.size} labelled`; }

async function start() {
  showError("");
  $("login").hidden = true;
  await load();
}

async function load() {
  answered = false;
  $("judge").hidden = true;
  $("note").value = "";
  for (const id of ["pass", "fail", "skip"]) $(id).disabled = false;
  const d = await call("/api/next", {});
  setProgress(d);
  clearInterval(renewer);
  if (d.done) { $("work").hidden = true; $("finished").hidden = false; item = null; return; }
  item = d;
  const shown = d.shown || {};
  $("item-id").textContent = `log ${d.log_id}`;
  $("prompt").textContent = shown.unavailable ? "(the log's text could not be read from the source)" : (shown.prompt || "");
  $("response").textContent = shown.response || "";
  const passages = (shown.context || []).map((text, i) => {
    const pre = document.createElement("pre");
    pre.textContent = `[${i + 1}] ${text}`;
    return pre;
  });
  $("context").replaceChildren(...passages);
  $("context-box").hidden = !passages.length;
  $("work").hidden = false;
  // Keep the claim while the page is open; a closed tab stops renewing and the item is freed.
  renewer = setInterval(() => call("/api/renew", { log_id: item.log_id }).catch(() => {}),
                        Math.max(1000, queue.claim_s * 1000 / 3));
}

async function decide(verdict) {
  if (!item || answered) return;
  answered = true;
  for (const id of ["pass", "fail", "skip"]) $(id).disabled = true;
  try {
    const d = await call("/api/answer", { log_id: item.log_id, verdict, note: $("note").value });
    setProgress(d);
    const judge = d.judge;
    const said = judge.passed === null ? "no verdict" : (judge.passed ? "pass" : "fail");
    const score = judge.score === null ? "" : ` (score ${Number(judge.score).toFixed(2)})`;
    $("judge-verdict").textContent = `You said ${verdict}; the judge said ${said}${score}.`;
    $("judge-reason").textContent = judge.reason || "";
    $("judge").className = (judge.passed === (verdict === "pass")) ? "agree" : "disagree";
    $("judge").hidden = false;
    clearInterval(renewer);
  } catch (e) {
    showError(e);
    answered = false;
    await load();
  }
}

async function skipItem() {
  if (!item || answered) return;
  await call("/api/skip", { log_id: item.log_id });
  await load();
}

document.addEventListener("keydown", (event) => {
  if (event.target.tagName === "TEXTAREA" || event.target.tagName === "INPUT") return;
  const key = event.key.toLowerCase();
  if (key === "p") decide("pass");
  else if (key === "f") decide("fail");
  else if (key === "s") skipItem().catch(showError);
  else if ((key === "n" || key === "enter") && answered) load().catch(showError);
});

async function init() {
  queue = await call("/api/queue");
  $("title").textContent = `${queue.deployment} · ${queue.evaluator} · queue ${queue.queue}`;
  $("rubric").textContent = queue.rubric;
  setProgress(queue);
  $("annotator").textContent = queue.annotator;
  $("login").hidden = false;
  $("start").addEventListener("click", () => start().catch(showError));
  $("pass").addEventListener("click", () => decide("pass"));
  $("fail").addEventListener("click", () => decide("fail"));
  $("skip").addEventListener("click", () => skipItem().catch(showError));
  $("next").addEventListener("click", () => load().catch(showError));
}

init().catch(showError);
