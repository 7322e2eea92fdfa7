// Review queues: keyboard shortcuts on the work page, and a hint on the new-queue form.
// Everything here is a convenience: the pages are plain forms that work without it.
"use strict";

(() => {
  const judgment = document.getElementById("judgment");
  if (!judgment) return;

  // The single-key switch is viewer.js's (the review page's too): it keeps the
  // reviewer's choice in this browser and sets the checkbox on load.
  const singleKeysOn = () => {
    const toggle = document.getElementById("shortcuts-enabled");
    return !toggle || toggle.checked;
  };

  const press = (id) => {
    const element = document.getElementById(id);
    if (!element) return false;
    element.click();
    return true;
  };

  // Typed values are not saved until submitted: leaving another way asks first.
  const snapshot = () => JSON.stringify(
    [...new FormData(judgment)].filter(([name]) => name !== "csrfmiddlewaretoken"),
  );
  const loaded = snapshot();
  let submitting = false;
  judgment.addEventListener("submit", () => { submitting = true; });
  window.addEventListener("beforeunload", (event) => {
    if (!submitting && snapshot() !== loaded) {
      event.preventDefault();
      event.returnValue = "";
    }
  });

  const SINGLE_KEYS = {
    s: "skip",
    b: "back-link",
    1: "verdict-left",
    2: "verdict-right",
    t: "verdict-tie",
    x: "verdict-both-bad",
  };

  document.addEventListener("keydown", (event) => {
    // Ctrl+Enter is no single key: it works while typing, whatever the switch says.
    if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) {
      event.preventDefault();
      const again = judgment.querySelector("button.verdict.chosen");
      if (document.body.classList.contains("pairwise")) {
        if (again) again.click();
        else toast("Choose a verdict: 1, 2, t or x", true);
      } else {
        press("submit-next");
      }
      return;
    }
    if (event.ctrlKey || event.metaKey || event.altKey) return;
    // A checkbox (the star, the switch) takes no text: keys still count there.
    if (event.target.closest('input:not([type="checkbox"]), textarea, select')) {
      if (event.key === "Escape") event.target.blur();
      return;
    }
    if (event.key === "?") {
      press("shortcuts-toggle");
      event.preventDefault();
      return;
    }
    if (!singleKeysOn()) return;
    const target = SINGLE_KEYS[event.key];
    if (target && press(target)) event.preventDefault();
  });
})();

(() => {
  const form = document.getElementById("queue-form");
  if (!form) return;
  // Batches and blind mode only matter to pairwise queues: dim them otherwise.
  const show = () => {
    const pairwise = form.querySelector('input[name="kind"][value="pairwise"]');
    form.querySelectorAll(".pairwise-only").forEach((part) => {
      part.classList.toggle("inactive", !(pairwise && pairwise.checked));
    });
  };
  form.addEventListener("change", show);
  show();
})();
