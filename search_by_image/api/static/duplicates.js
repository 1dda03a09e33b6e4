// The duplicates page's actions: keep one, keep all, apply every suggestion (after a preview),
// undo. Each sends JSON to the review API with the admin key of this tab, then reloads the page
// so what it shows is the server's state; the outcome is shown after the reload.
(() => {
  "use strict";
  const root = document.getElementById("review-root");
  if (!root) return;
  const status = document.getElementById("review-status");
  const keyForm = document.getElementById("key-form");
  const keyInput = document.getElementById("api-key");
  const keyStatus = document.getElementById("key-status");
  const KEY = "search-by-image-key"; // shared with the search page (sessionStorage: this tab only)
  const NOTE = "search-by-image-review-note";
  const base = `/collections/${encodeURIComponent(root.dataset.collection)}/duplicates`;

  const note = sessionStorage.getItem(NOTE);
  if (note) {
    status.textContent = note;
    sessionStorage.removeItem(NOTE);
  }
  keyStatus.textContent = sessionStorage.getItem(KEY) ? "A key is set for this tab." : "";
  keyForm.addEventListener("submit", (event) => {
    event.preventDefault();
    const key = keyInput.value.trim();
    if (key) sessionStorage.setItem(KEY, key);
    else sessionStorage.removeItem(KEY);
    keyInput.value = "";
    keyStatus.textContent = key ? "Key saved for this tab." : "Key removed.";
  });

  const scope = () => {
    const body = {};
    if (root.dataset.threshold) body.threshold = Number(root.dataset.threshold);
    if (root.dataset.filters) body.filters = root.dataset.filters;
    return body;
  };
  const reason = (body, code) => {
    const detail = body && body.detail;
    if (typeof detail === "string") return detail;
    if (Array.isArray(detail) && detail.length) return detail[0].msg;
    return `the server answered ${code}`;
  };
  const send = async (path, body) => {
    const key = sessionStorage.getItem(KEY);
    const response = await fetch(`${base}${path}`, {
      method: "POST",
      headers: { "Content-Type": "application/json", Accept: "application/json", ...(key ? { Authorization: `Bearer ${key}` } : {}) },
      body: JSON.stringify(body),
    });
    const answer = await response.json().catch(() => null);
    if (!response.ok) {
      if (response.status === 401 || response.status === 403) keyInput.focus();
      throw new Error(reason(answer, response.status));
    }
    return answer;
  };
  const act = async (button, path, body, done) => {
    button.disabled = true;
    status.textContent = "Working…";
    try {
      const answer = await send(path, body);
      sessionStorage.setItem(NOTE, done(answer));
      window.location.reload();
    } catch (error) {
      status.textContent = `Nothing was done: ${error.message}`;
      button.disabled = false;
    }
  };
  const size = (bytes) => (bytes >= 1048576 ? `${(bytes / 1048576).toFixed(1)} MB` : `${Math.round(bytes / 1024)} KB`);

  for (const group of document.querySelectorAll("article.dup-group")) {
    const fingerprint = group.dataset.group;
    group.querySelector("button.keep-one").addEventListener("click", (event) => {
      const chosen = group.querySelector(`input[type=radio]:checked`);
      const body = { ...scope(), group: fingerprint, keep: chosen ? Number(chosen.value) : null };
      act(event.target, "/keep-one", body, (d) => `Kept ${d.keeper}; ${d.trashed.length} moved to the trash (${size(d.bytes_freed)}). Undo it under “Latest decisions”.`);
    });
    group.querySelector("button.keep-all").addEventListener("click", (event) => {
      act(event.target, "/keep-all", { ...scope(), group: fingerprint }, (d) => `Remembered: ${d.images.length} images are not duplicates.`);
    });
  }
  for (const button of document.querySelectorAll("button.undo")) {
    button.addEventListener("click", () => {
      act(button, `/decisions/${button.dataset.decision}/undo`, {}, (d) => (d.kind === "keep_one" ? `Undone: ${d.trashed.length} images are back.` : "Undone: the images may group again."));
    });
  }

  const preview = document.getElementById("bulk-preview");
  const plan = document.getElementById("bulk-plan");
  const confirm = document.getElementById("bulk-confirm");
  const cancel = document.getElementById("bulk-cancel");
  let token = null;
  preview.addEventListener("click", async () => {
    preview.disabled = true;
    try {
      const answer = await send("/apply-suggestions", scope());
      token = answer.token;
      plan.textContent = answer.groups
        ? `This keeps the suggested image of ${answer.groups} “copies” groups and moves ${answer.images_to_trash} images to the trash, freeing ${size(answer.bytes_freed)}.`
        : "No “copies” group to apply a suggestion to.";
      plan.hidden = false;
      confirm.hidden = !answer.groups;
      cancel.hidden = false;
    } catch (error) {
      status.textContent = `Nothing was done: ${error.message}`;
    }
    preview.disabled = false;
  });
  cancel.addEventListener("click", () => {
    plan.hidden = confirm.hidden = cancel.hidden = true;
    token = null;
  });
  confirm.addEventListener("click", () => {
    act(confirm, "/apply-suggestions", { ...scope(), confirm: token }, (a) => `Applied to ${a.groups} groups: ${a.images_to_trash} images trashed, ${size(a.bytes_freed)} freed.`);
  });
})();
