// Batch Server viewer: stars, metadata, winners and shortcuts without page reloads.
// Plain JavaScript, served locally; the server decides who did what (the session).
// Every endpoint comes from the page: templates render it with {% url %} into the
// data-url (or data-count-url) of the element a handler works on, so routes are
// named in one place, batchserver/urls/viewer.py.
"use strict";

const csrfToken = () => document.querySelector('meta[name="csrf-token"]').content;

function toast(message, isError = false) {
  const box = document.getElementById("toast");
  box.textContent = message;
  box.className = isError ? "show error" : "show";
  clearTimeout(box.hideTimer);
  box.hideTimer = setTimeout(() => { box.className = ""; }, 2500);
}

async function api(method, url, body) {
  const response = await fetch(url, {
    method,
    credentials: "same-origin",
    headers: { "Content-Type": "application/json", "X-CSRFToken": csrfToken() },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const data = await response.json().catch(() => ({}));
  if (!response.ok) {
    const error = (data && data.error) || {};
    const failure = new Error(error.message || `Request failed (${response.status})`);
    failure.param = error.param;
    throw failure;
  }
  return data;
}

// --- Stars ----------------------------------------------------------------------

function renderStars(container, starred, stars) {
  const button = container.querySelector(".star");
  button.classList.toggle("on", starred);
  button.setAttribute("aria-pressed", String(starred));
  const names = container.querySelector(".starred-by");
  names.replaceChildren(...stars.map((star) => {
    const span = document.createElement("span");
    span.className = "reviewer";
    span.title = `starred ${star.at.slice(0, 16).replace("T", " ")}`;
    span.textContent = star.user;
    return span;
  }));
}

async function toggleStar(container) {
  const button = container.querySelector(".star");
  const starred = button.getAttribute("aria-pressed") !== "true";
  button.disabled = true;
  try {
    const data = await api("POST", container.dataset.url, {
      result_id: Number(container.dataset.resultId),
      starred,
    });
    document.querySelectorAll(`.stars[data-result-id="${container.dataset.resultId}"]`)
      .forEach((each) => renderStars(each, data.starred, data.stars));
    toast(data.starred ? "Starred" : "Star removed");
  } catch (error) {
    toast(error.message, true);
  } finally {
    button.disabled = false;
  }
}

document.addEventListener("click", (event) => {
  const button = event.target.closest(".stars .star");
  if (button) toggleStar(button.closest(".stars"));
});

// --- Metadata editor --------------------------------------------------------------

function annotationPayload(form) {
  const slider = form.elements.quality;
  return {
    quality: slider.dataset.unset === "true" ? null : Number(slider.value),
    category: form.elements.category.value,
    tags: form.elements.tags.value.split(",").map((t) => t.trim()).filter(Boolean),
    notes: form.elements.notes.value,
  };
}

// What the form held when it was last loaded or saved: edits since then are
// unsaved, and leaving the page saves them first (or stays, if that fails).
function rememberSaved(form) {
  form.dataset.saved = JSON.stringify(annotationPayload(form));
}

function hasUnsavedEdits(form) {
  return form.dataset.saved !== undefined
    && JSON.stringify(annotationPayload(form)) !== form.dataset.saved;
}

document.querySelectorAll("form.annotation").forEach(rememberSaved);

async function saveAnnotation(form) {
  const errors = form.querySelector(".errors");
  errors.textContent = "";
  try {
    const data = await api("POST", form.dataset.url, annotationPayload(form));
    const when = data.edited_at.slice(0, 16).replace("T", " ");
    form.querySelector(".edited").textContent = `Last edited by ${data.edited_by} at ${when}`;
    // The form holds the reviewer's own judgment; data.tags are everyone's.
    form.elements.tags.value = data.judgment.tags.join(", ");
    rememberSaved(form);
    toast("Saved");
    return true;
  } catch (error) {
    errors.textContent = error.message;
    toast(error.message, true);
    return false;
  }
}

// Previous/next (the links, or j/k) save unsaved metadata before they leave.
document.addEventListener("click", async (event) => {
  const link = event.target.closest("#prev-link, #next-link");
  const form = document.querySelector("body.review form.annotation");
  if (!link || !form || !hasUnsavedEdits(form)) return;
  event.preventDefault();
  if (await saveAnnotation(form)) window.location.href = link.href;
});

// Any other way out (closing the tab, another link) asks first.
window.addEventListener("beforeunload", (event) => {
  if ([...document.querySelectorAll("form.annotation")].some(hasUnsavedEdits)) {
    event.preventDefault();
    event.returnValue = "";
  }
});

function setQuality(form, value) {
  const slider = form.elements.quality;
  slider.value = value;
  slider.dataset.unset = "false";
  form.querySelector(".quality-value").textContent = value;
}

document.addEventListener("submit", (event) => {
  const form = event.target.closest("form.annotation");
  if (!form) return;
  event.preventDefault();
  saveAnnotation(form);
});

// One request per pause in typing, not one per keystroke.
const SUGGEST_DELAY_MS = 200;

async function suggestTags(input, request) {
  const typed = input.value;
  const last = typed.split(",").pop().trim();
  try {
    const data = await api("GET", `${input.dataset.url}?${new URLSearchParams({ q: last })}`);
    // Replies can overtake each other; one for older text would list stale tags.
    if (request !== input.suggestRequest) return;
    const done = typed.split(",").slice(0, -1).map((t) => t.trim()).filter(Boolean);
    const prefix = done.length ? `${done.join(", ")}, ` : "";
    input.closest("form").querySelector("datalist").replaceChildren(...data.tags.map((tag) => {
      const option = document.createElement("option");
      option.value = prefix + tag;
      return option;
    }));
  } catch (error) {
    // Suggestions are a convenience; typing goes on without them.
  }
}

document.addEventListener("input", (event) => {
  const form = event.target.closest("form.annotation");
  if (!form) return;
  if (event.target.name === "quality") setQuality(form, event.target.value);
  if (event.target.name === "tags") {
    const input = event.target;
    // Counted per keystroke, so a reply still in flight is stale as soon as the text changes.
    input.suggestRequest = (input.suggestRequest || 0) + 1;
    const request = input.suggestRequest;
    clearTimeout(input.suggestTimer);
    input.suggestTimer = setTimeout(() => suggestTags(input, request), SUGGEST_DELAY_MS);
  }
});

// --- Compare: a verdict (a winner, a tie, or both bad) --------------------------------

const VERDICT_NAMES = { winner: "Winner recorded", tie: "Tie recorded", both_bad: "Verdict recorded: bad" };

function badOutcomeLabel(group) {
  return group.querySelectorAll(".candidate").length > 2 ? "All bad" : "Both bad";
}

// Names, once the verdict is in: a blind page had left them out of the HTML.
function revealCandidate(card, candidate) {
  const identity = card.querySelector(".identity");
  const model = document.createElement("strong");
  model.textContent = candidate.model;
  const batch = document.createElement("code");
  batch.textContent = candidate.batch;
  const parts = [model, " ", batch];
  if (candidate.label) {
    const label = document.createElement("span");
    label.className = "meta";
    label.textContent = candidate.label;
    parts.push(" ", label);
  }
  identity.replaceChildren(...parts);
  const review = card.querySelector(".review-link");
  if (review && !review.querySelector("a")) {
    const link = document.createElement("a");
    link.href = candidate.review_url;
    link.textContent = "review";
    review.replaceChildren(" · ", link);
  }
}

function showVerdict(group, data) {
  const byId = new Map(data.candidates.map((candidate) => [candidate.result_id, candidate]));
  group.querySelectorAll(".candidate").forEach((card) => {
    const won = Number(card.dataset.resultId) === data.winner;
    card.classList.toggle("winner", won);
    card.querySelector(".pick-winner").textContent = won ? "Winner ✓" : "Pick as winner";
    const candidate = byId.get(Number(card.dataset.resultId));
    if (!candidate) return;
    revealCandidate(card, candidate);
    renderStars(card.querySelector(".stars"), candidate.starred, candidate.stars);
  });
  group.dataset.revealed = "true";
  const badge = document.querySelector(".verdict-bar .verdict-badge");
  if (badge) {
    badge.textContent = { tie: "Tie", both_bad: badOutcomeLabel(group) }[data.outcome] || "";
  }
}

async function recordVerdict(group, outcome, winner = null) {
  const buttons = document.querySelectorAll(".side-by-side .pick-winner, .verdict-bar .verdict");
  // One verdict at a time: a double click, or a second button pressed mid-request,
  // would otherwise race the first request on the server.
  if ([...buttons].some((each) => each.disabled)) return;
  buttons.forEach((each) => { each.disabled = true; });
  try {
    const data = await api("POST", group.dataset.url, {
      candidates: group.dataset.candidates.split(",").map(Number),
      outcome,
      winner,
      // Blind only while the names are still hidden: a changed verdict saw them.
      blind: group.dataset.blind === "true" && group.dataset.revealed !== "true",
    });
    showVerdict(group, data);
    toast(VERDICT_NAMES[data.outcome]);
  } catch (error) {
    toast(error.message, true);
  } finally {
    buttons.forEach((each) => { each.disabled = false; });
  }
}

document.addEventListener("click", (event) => {
  const pick = event.target.closest(".side-by-side .pick-winner");
  if (pick) {
    const card = pick.closest(".candidate");
    recordVerdict(card.closest(".side-by-side"), "winner", Number(card.dataset.resultId));
    return;
  }
  const verdict = event.target.closest(".verdict-bar .verdict");
  const group = document.querySelector(".side-by-side");
  if (verdict && group) recordVerdict(group, verdict.dataset.outcome);
});

// --- Results table: tick rows, then star, unstar or tag them at once -------------------

const bulkBar = document.getElementById("bulk-bar");
const plural = (n, word) => `${n} ${word}${n === 1 ? "" : "s"}`;

function rowBoxes() {
  return [...document.querySelectorAll("table.results .select-row")];
}

function selectedIds() {
  return rowBoxes().filter((box) => box.checked).map((box) => Number(box.value));
}

function refreshBulkBar() {
  const boxes = rowBoxes();
  const selected = boxes.filter((box) => box.checked).length;
  bulkBar.hidden = selected === 0;
  bulkBar.querySelector(".bulk-count").textContent = `${plural(selected, "result")} selected`;
  const pageBox = document.getElementById("select-page");
  pageBox.checked = boxes.length > 0 && selected === boxes.length;
  pageBox.indeterminate = selected > 0 && selected < boxes.length;
}

// A row as the server now has it: stars, quality, category and tags.
function redrawRow(state) {
  const row = document.querySelector(`table.results tr[data-result-id="${state.result_id}"]`);
  if (!row) return;
  renderStars(row.querySelector(".stars"), state.starred, state.stars);
  row.querySelector("td.quality").textContent = state.quality === null ? "" : String(state.quality);
  row.querySelector("td.category").textContent = state.category_label;
  row.querySelector("td.tags").replaceChildren(...state.tags.map((name) => {
    const tag = document.createElement("span");
    tag.className = "tag";
    tag.textContent = name;
    return tag;
  }));
}

async function bulkAction(url, body, describe) {
  const ids = selectedIds();
  if (!ids.length) return false;
  const controls = bulkBar.querySelectorAll("button, input");
  // One action at a time: a second click would race the first on the server.
  if ([...controls].some((each) => each.disabled)) return false;
  controls.forEach((each) => { each.disabled = true; });
  try {
    const data = await api("POST", url, { result_ids: ids, ...body });
    data.results.forEach(redrawRow);
    toast(describe(data.changed, ids.length));
    return true;
  } catch (error) {
    toast(error.message, true);
    return false;
  } finally {
    controls.forEach((each) => { each.disabled = false; });
  }
}

if (bulkBar) {
  document.addEventListener("change", (event) => {
    if (event.target.id === "select-page") {
      rowBoxes().forEach((box) => { box.checked = event.target.checked; });
    }
    if (event.target.id === "select-page" || event.target.matches(".select-row")) refreshBulkBar();
  });
  const already = (changed, asked, what) => (
    changed === asked ? "" : ` (${asked - changed} already ${what})`
  );
  bulkBar.querySelector(".bulk-star").addEventListener("click", () => bulkAction(
    bulkBar.dataset.starUrl,
    { starred: true },
    (changed, asked) => `Starred ${plural(changed, "result")}${already(changed, asked, "were")}`,
  ));
  bulkBar.querySelector(".bulk-unstar").addEventListener("click", () => bulkAction(
    bulkBar.dataset.starUrl,
    { starred: false },
    (changed, asked) => `Unstarred ${plural(changed, "result")}${already(changed, asked, "were not starred by you")}`,
  ));
  bulkBar.querySelector(".bulk-clear").addEventListener("click", () => {
    rowBoxes().forEach((box) => { box.checked = false; });
    refreshBulkBar();
  });
  const tagForm = bulkBar.querySelector("form.bulk-tag");
  const tagInput = tagForm.elements.tag;
  tagForm.addEventListener("submit", async (event) => {
    event.preventDefault();
    const name = tagInput.value.trim();
    if (!name) {
      toast("Type the tag to add first.", true);
      tagInput.focus();
      return;
    }
    const done = await bulkAction(
      bulkBar.dataset.tagUrl,
      { tag: name },
      (changed, asked) => `Tagged ${plural(changed, "result")} “${name}”${already(changed, asked, "had it")}`,
    );
    if (done) tagInput.value = "";
  });
  tagInput.addEventListener("input", () => {
    tagInput.suggestRequest = (tagInput.suggestRequest || 0) + 1;
    const request = tagInput.suggestRequest;
    clearTimeout(tagInput.suggestTimer);
    tagInput.suggestTimer = setTimeout(() => suggestTags(tagInput, request), SUGGEST_DELAY_MS);
  });
  // The browser may restore ticked boxes (back and forward): the bar follows them.
  refreshBulkBar();
}

// --- Review page shortcuts -----------------------------------------------------------

const QUALITY_BANDS = { 1: 20, 2: 40, 3: 60, 4: 80, 5: 100 };

// Single-key shortcuts can be turned off (WCAG 2.1.4: speech input types letters
// as keys); the choice is kept in this browser. Storage may be refused: then
// the shortcuts are on, as the page says.
const SHORTCUTS_SETTING = "viewer.single-key-shortcuts";

function shortcutsEnabled() {
  try {
    return localStorage.getItem(SHORTCUTS_SETTING) !== "off";
  } catch (error) {
    return true;
  }
}

function setShortcutsEnabled(enabled) {
  try {
    localStorage.setItem(SHORTCUTS_SETTING, enabled ? "on" : "off");
  } catch (error) {
    // Not remembered; the checkbox still says what this page does.
  }
}

const shortcutsSwitch = document.getElementById("shortcuts-enabled");
if (shortcutsSwitch) {
  shortcutsSwitch.checked = shortcutsEnabled();
  shortcutsSwitch.addEventListener("change", () => setShortcutsEnabled(shortcutsSwitch.checked));
}

function toggleShortcuts() {
  const open = document.getElementById("shortcuts").classList.toggle("open");
  document.getElementById("shortcuts-toggle").setAttribute("aria-expanded", String(open));
}

document.addEventListener("click", (event) => {
  if (event.target.closest("#shortcuts-toggle")) toggleShortcuts();
});

document.addEventListener("keydown", (event) => {
  if (!document.body.classList.contains("review")) return;
  if (event.ctrlKey || event.metaKey || event.altKey) return;
  // A checkbox (the shortcuts switch) takes no text: keys still count there.
  const typing = event.target.closest('input:not([type="checkbox"]), textarea, select');
  if (typing) {
    if (event.key === "Escape") event.target.blur();
    return;
  }
  if (event.key === "?") {
    toggleShortcuts();  // the help answers whether or not the shortcuts are on
    event.preventDefault();
    return;
  }
  if (shortcutsSwitch && !shortcutsSwitch.checked) return;
  const form = document.querySelector("form.annotation");
  const follow = (id) => { const link = document.getElementById(id); if (link) link.click(); };
  if (event.key === "j") follow("next-link");
  else if (event.key === "k") follow("prev-link");
  else if (event.key === "s") toggleStar(document.querySelector("h1 .stars"));
  else if (event.key in QUALITY_BANDS) {
    setQuality(form, QUALITY_BANDS[event.key]);
    saveAnnotation(form);
  } else if (event.key === "e") {
    event.preventDefault();
    form.elements.notes.focus();
  } else return;
  event.preventDefault();
});

// The compare page: 1-9 picks that response (left to right) as the winner, t a
// tie, x both (all) bad, j/k the next/previous input; the same opt-out and help.
document.addEventListener("keydown", (event) => {
  if (!document.body.classList.contains("compare")) return;
  if (event.ctrlKey || event.metaKey || event.altKey) return;
  const typing = event.target.closest('input:not([type="checkbox"]), textarea, select');
  if (typing) {
    if (event.key === "Escape") event.target.blur();
    return;
  }
  const group = document.querySelector(".side-by-side");
  if (!group) return;
  if (event.key === "?") {
    toggleShortcuts();
    event.preventDefault();
    return;
  }
  if (shortcutsSwitch && !shortcutsSwitch.checked) return;
  const cards = [...group.querySelectorAll(".candidate")];
  const follow = (id) => { const link = document.getElementById(id); if (link) link.click(); };
  if (event.key === "j") follow("next-link");
  else if (event.key === "k") follow("prev-link");
  else if (event.key === "t") recordVerdict(group, "tie");
  else if (event.key === "x") recordVerdict(group, "both_bad");
  else if (/^[1-9]$/.test(event.key) && Number(event.key) <= cards.length) {
    recordVerdict(group, "winner", Number(cards[Number(event.key) - 1].dataset.resultId));
  } else return;
  event.preventDefault();
});

// --- Dashboard: live batch progress ----------------------------------------------------

async function refreshBatches() {
  const table = document.getElementById("batches");
  const rows = [...table.querySelectorAll('tr[data-active="true"]')];
  if (!rows.length) return;
  const query = new URLSearchParams(rows.map((row) => ["id", row.dataset.batch]));
  // Rendered from Batch.TERMINAL_STATUSES: a batch in one of these never changes again.
  const terminalStatuses = table.dataset.terminalStatuses.split(" ");
  try {
    const data = await api("GET", `${table.dataset.url}?${query}`);
    for (const batch of data.batches) {
      const row = document.querySelector(`#batches tr[data-batch="${batch.public_id}"]`);
      const done = batch.completed_requests + batch.failed_requests;
      const percent = batch.total_requests ? Math.floor((100 * done) / batch.total_requests) : 0;
      row.querySelector(".status").textContent = batch.status;
      row.querySelector("progress").value = percent;
      const failed = batch.failed_requests ? ` (${batch.failed_requests} failed)` : "";
      row.querySelector(".counts").textContent = `${done} / ${batch.total_requests}${failed}`;
      row.dataset.active = String(!terminalStatuses.includes(batch.status));
    }
  } catch (error) {
    // The next refresh tries again.
  }
}

if (document.getElementById("batches")) setInterval(refreshBatches, 5000);

// --- Export panel: options per format, and the row count before downloading -----------

const exportForm = document.getElementById("export-form");

function exportQuery() {
  const params = new URLSearchParams();
  for (const [name, value] of new FormData(exportForm)) {
    if (name === "csrfmiddlewaretoken") continue;  // sent as a header, never an option
    const input = exportForm.elements[name];
    const hidden = input && input.closest && input.closest(".option") && input.closest(".option").hidden;
    if (value !== "" && !hidden) params.append(name, value);
  }
  return params;
}

// Making an export is a POST (it writes files kept forever); the file is then
// downloaded from the export's own URL, so the browser streams it to disk.
async function createExport() {
  const errors = document.getElementById("export-errors");
  const button = document.getElementById("export-download");
  button.disabled = true;
  try {
    const data = await api("POST", exportForm.action, Object.fromEntries(exportQuery()));
    errors.textContent = "";
    window.location.href = data.download_url;
  } catch (error) {
    errors.textContent = error.message;
  } finally {
    button.disabled = false;
  }
}

// Counts can come back in any order; only the answer to the latest change is shown
// (an earlier, slower one would otherwise overwrite it with a stale count).
let exportCountAsked = 0;

async function refreshExportCount() {
  const output = document.getElementById("export-count");
  const errors = document.getElementById("export-errors");
  const asked = ++exportCountAsked;
  try {
    const data = await api("GET", `${exportForm.dataset.countUrl}?${exportQuery()}`);
    if (asked !== exportCountAsked) return;
    output.textContent = `${data.rows.toLocaleString()} row${data.rows === 1 ? "" : "s"}`;
    errors.textContent = "";
  } catch (error) {
    if (asked !== exportCountAsked) return;
    output.textContent = "";
    errors.textContent = error.message;
  }
}

function showExportOptions() {
  const format = document.getElementById("export-format").value;
  exportForm.querySelectorAll(".option").forEach((option) => {
    option.hidden = !option.classList.contains(`option-${format}`);
  });
}

if (exportForm) {
  showExportOptions();
  refreshExportCount();
  exportForm.addEventListener("change", () => { showExportOptions(); refreshExportCount(); });
  exportForm.addEventListener("submit", (event) => {
    event.preventDefault();
    createExport();
  });
}
