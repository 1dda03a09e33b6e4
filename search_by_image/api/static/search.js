// Progressive enhancement of the upload form: preview, drag and drop, and results without a
// page reload. Without JavaScript the form posts normally and the server renders the results.
(() => {
  const form = document.getElementById("search-form");
  const input = document.getElementById("file");
  const zone = document.getElementById("dropzone");
  const preview = document.getElementById("preview");
  const prompt = document.getElementById("dropzone-text");
  const errorBox = document.getElementById("error");
  const summary = document.getElementById("summary");
  const grid = document.getElementById("grid");
  const submit = document.getElementById("submit");
  const filterBox = document.getElementById("filters");
  const filterGrid = document.getElementById("filter-grid");
  const filterHint = document.getElementById("filter-hint");
  const filtersJson = document.getElementById("filters-json");
  const collection = document.getElementById("collection");
  const keyForm = document.getElementById("key-form");
  const keyInput = document.getElementById("api-key");
  const keyStatus = document.getElementById("key-status");
  const urlBox = document.getElementById("url"); // only where the server searches by URL

  // The API key lives in sessionStorage: this tab only, gone when it closes, never in a cookie.
  const KEY = "search-by-image-key";
  const authHeaders = () => {
    const key = sessionStorage.getItem(KEY);
    return key ? { Authorization: `Bearer ${key}` } : {};
  };
  const askForKey = (message) => {
    keyForm.hidden = false;
    keyStatus.textContent = message;
    keyInput.focus();
  };
  keyForm.addEventListener("submit", (event) => {
    event.preventDefault();
    const key = keyInput.value.trim();
    if (key) sessionStorage.setItem(KEY, key);
    else sessionStorage.removeItem(KEY);
    keyInput.value = "";
    keyStatus.textContent = key ? "Key saved for this tab." : "Key removed.";
    loadFilters(collection.value);
  });
  if (sessionStorage.getItem(KEY)) keyStatus.textContent = "A key is set for this tab.";

  const showError = (message) => {
    errorBox.textContent = message;
    errorBox.hidden = !message;
  };

  // Search by region: drag on the preview to draw a box; it is sent as fractions of the photo.
  const stage = document.getElementById("stage");
  const region = document.getElementById("region");
  const regionHint = document.getElementById("region-hint");
  const regionClear = document.getElementById("region-clear");
  const boxInput = document.getElementById("box");
  let drag = null;

  const clearRegion = () => {
    boxInput.value = "";
    region.hidden = true;
    regionClear.hidden = true;
  };
  const fractionAt = (event) => {
    const rect = preview.getBoundingClientRect();
    const clamp = (value) => Math.min(1, Math.max(0, value));
    return [clamp((event.clientX - rect.left) / rect.width), clamp((event.clientY - rect.top) / rect.height)];
  };
  const drawRegion = ([x0, y0], [x1, y1]) => {
    const [left, right, top, bottom] = [Math.min(x0, x1), Math.max(x0, x1), Math.min(y0, y1), Math.max(y0, y1)];
    Object.assign(region.style, {
      left: `${left * 100}%`, top: `${top * 100}%`,
      width: `${(right - left) * 100}%`, height: `${(bottom - top) * 100}%`,
    });
    region.hidden = false;
    return [left, top, right, bottom];
  };
  stage.addEventListener("pointerdown", (event) => {
    if (!zone.classList.contains("has-image")) return;
    event.preventDefault();
    stage.setPointerCapture(event.pointerId);
    drag = { start: fractionAt(event), box: null };
  });
  stage.addEventListener("pointermove", (event) => {
    if (drag) drag.box = drawRegion(drag.start, fractionAt(event));
  });
  stage.addEventListener("pointerup", () => {
    const box = drag && drag.box;
    drag = null;
    const tiny = !box || box[2] - box[0] < 0.03 || box[3] - box[1] < 0.03;
    if (tiny) {
      clearRegion();
      input.click(); // a click, not a drag: choose another photo
      return;
    }
    boxInput.value = box.map((value) => value.toFixed(4)).join(",");
    regionClear.hidden = false;
  });
  // The dropzone is a <label>: once a photo is shown, clicks draw boxes instead of opening the chooser.
  zone.addEventListener("click", (event) => {
    if (zone.classList.contains("has-image") && event.target !== input) event.preventDefault();
  });
  regionClear.addEventListener("click", clearRegion);

  // The formats the server reads (the input's accept list); anything else is named and refused here.
  const accepted = input.accept.split(",");
  const supported = (file) => {
    const dot = file.name.lastIndexOf(".");
    const suffix = dot >= 0 ? file.name.slice(dot).toLowerCase() : "";
    return accepted.includes(suffix) || accepted.includes(file.type);
  };
  const refuse = (file) => {
    const dot = file.name.lastIndexOf(".");
    const kind = dot >= 0 ? `“${file.name.slice(dot)}” files` : (file.type || "This file");
    showError(`${kind} are not supported. Use one of: ${input.dataset.formats}.`);
  };

  // Browsers show HEIC and camera raw files only where the system can: elsewhere a note replaces the preview.
  preview.addEventListener("error", () => {
    if (!preview.src.startsWith("blob:")) return;
    preview.hidden = true;
    prompt.hidden = false;
    prompt.firstElementChild.textContent = input.files[0] ? `${input.files[0].name} (no preview in this browser)` : "";
    zone.classList.remove("has-image");
    regionHint.hidden = true;
  });

  const showPreview = () => {
    const file = input.files[0];
    if (!file) return;
    if (!supported(file)) {
      refuse(file);
      input.value = "";
      return;
    }
    if (preview.src.startsWith("blob:")) URL.revokeObjectURL(preview.src);
    preview.src = URL.createObjectURL(file);
    preview.hidden = false;
    prompt.hidden = true;
    zone.classList.add("has-image");
    regionHint.hidden = false;
    clearRegion();
    showError("");
    if (urlBox) urlBox.value = "";
  };

  // Search by URL (shown when the server has it on): typing an address drops the chosen file,
  // and choosing a file empties the address.
  const clearFile = () => {
    input.value = "";
    if (preview.src.startsWith("blob:")) URL.revokeObjectURL(preview.src);
    preview.removeAttribute("src");
    preview.hidden = true;
    prompt.hidden = false;
    zone.classList.remove("has-image");
    regionHint.hidden = true;
    clearRegion();
  };
  if (urlBox) urlBox.addEventListener("input", () => { if (urlBox.value.trim()) clearFile(); });
  const address = () => (urlBox ? urlBox.value.trim() : "");

  // A file from elsewhere (the clipboard, the camera) into the form's own file input.
  const useFile = (file) => {
    if (!supported(file)) {
      refuse(file);
      return false;
    }
    const chosen = new DataTransfer();
    chosen.items.add(file);
    input.files = chosen.files;
    showPreview();
    return true;
  };

  // Paste an image (a screenshot, "Copy image" in a browser) anywhere on the page: it is searched
  // at once. A pasted web address outside a text box goes into the URL box, where there is one.
  document.getElementById("paste-hint").hidden = false;
  document.addEventListener("paste", (event) => {
    const data = event.clipboardData;
    if (!data) return;
    const file = [...data.files].find((item) => item.type.startsWith("image/")) || data.files[0];
    if (file) {
      event.preventDefault();
      if (useFile(file)) form.requestSubmit();
      return;
    }
    const text = data.getData("text/plain").trim();
    const typing = event.target.closest && event.target.closest("input, textarea, select");
    if (urlBox && !typing && /^https?:\/\/\S+$/i.test(text)) {
      event.preventDefault();
      urlBox.value = text;
      clearFile();
      form.requestSubmit();
    }
  });

  // The phone's camera: a second input (capture="environment") whose photo joins the form's.
  const camera = document.getElementById("camera");
  document.getElementById("camera-button").hidden = false;
  camera.addEventListener("change", () => {
    if (camera.files.length) useFile(camera.files[0]);
    camera.value = "";
  });

  input.addEventListener("change", showPreview);
  ["dragenter", "dragover"].forEach((type) => zone.addEventListener(type, (event) => {
    event.preventDefault();
    zone.classList.add("dragging");
  }));
  ["dragleave", "drop"].forEach((type) => zone.addEventListener(type, () => zone.classList.remove("dragging")));
  zone.addEventListener("drop", (event) => {
    event.preventDefault();
    const dropped = event.dataTransfer.files[0];
    if (dropped && !supported(dropped)) {
      refuse(dropped);
      return;
    }
    if (event.dataTransfer.files.length) {
      input.files = event.dataTransfer.files;
      showPreview();
    }
  });

  const element = (tag, props = {}, children = []) => {
    const node = Object.assign(document.createElement(tag), props);
    node.append(...children);
    return node;
  };

  // "More like this" on every result, and "More results" for the next page of the last search.
  const moreBox = document.getElementById("more-box");
  const moreButton = document.getElementById("more");
  let last = null; // { fetchPage(offset), k, offset }
  const similarUrl = (id, offset) => {
    const params = new URLSearchParams({ k: document.getElementById("k").value, offset });
    const filters = collectFilters();
    if (filters) params.set("filters", filters);
    return `/collections/${encodeURIComponent(collection.value)}/images/${id}/similar?${params}`;
  };
  const similarLink = (id) => {
    const link = element("a", { className: "similar", href: similarUrl(id, 0), textContent: "More like this" });
    link.dataset.id = id;
    return link;
  };
  // A result standing for copies (collapse=copies): its link shows them, as "more like this" does.
  const copiesLink = (hit) => {
    const link = similarLink(hit.id);
    link.classList.add("copies-link");
    link.textContent = `+${hit.copies} ${hit.copies === 1 ? "copy" : "copies"}`;
    return link;
  };
  grid.addEventListener("click", (event) => {
    const link = event.target.closest("a.similar");
    if (!link) return;
    event.preventDefault();
    const id = link.dataset.id;
    const thumb = link.closest(".hit").querySelector("img");
    run((offset) => fetch(similarUrl(id, offset), { headers: { Accept: "application/json", ...authHeaders() } }), false)
      .then((ok) => {
        if (!ok || !thumb) return;
        preview.src = thumb.src;
        preview.hidden = false;
        prompt.hidden = true;
        window.scrollTo({ top: 0, behavior: "smooth" });
      });
  });
  moreButton.addEventListener("click", () => last && run(last.fetchPage, true));

  const renderHit = (hit) => {
    const link = element("a", { href: hit.image_url, target: "_blank", rel: "noopener" },
      [element("img", { src: hit.thumbnail_url, alt: hit.path, loading: "lazy" })]);
    const details = Object.entries(hit.metadata)
      .filter(([, value]) => value !== null)
      .flatMap(([key, value]) => [element("dt", { textContent: key }), element("dd", { textContent: String(value) })]);
    const body = element("div", { className: "hit-body" }, [
      element("div", { className: "hit-head" }, [
        element("span", { className: "rank", textContent: `#${hit.rank}` }),
        element("span", { className: "score", textContent: hit.score.toFixed(3) }),
      ]),
      element("meter", { className: "bar", min: 0, max: 1, value: hit.score }),
      element("p", { className: "path", title: hit.path, textContent: hit.path }),
      ...(details.length ? [element("dl", {}, details)] : []),
      ...(hit.copies ? [copiesLink(hit)] : []),
      similarLink(hit.id),
    ]);
    return element("li", { className: "hit" }, [link, body]);
  };

  // Filter controls, drawn from the collection's metadata columns (GET /collections/{name}).
  const control = (column) => {
    const label = element("span", { textContent: column.name });
    const input = (props) => element("input", props);
    if (column.kind === "number" || column.kind === "date") {
      const type = column.kind === "number" ? "number" : "date";
      const bound = (op, placeholder) => {
        const node = input({ type, placeholder, step: "any" });
        Object.assign(node.dataset, { column: column.name, op, kind: column.kind });
        node.setAttribute("aria-label", `${column.name} ${op === "gte" ? "from" : "to"}`);
        return node;
      };
      const low = column.min === null ? "min" : `min ${column.min}`;
      const high = column.max === null ? "max" : `max ${column.max}`;
      return element("label", { className: "filter" },
        [label, element("div", { className: "range" }, [bound("gte", low), bound("lte", high)])]);
    }
    let node;
    if (column.kind === "bool" || column.values) {
      const values = column.kind === "bool" ? ["true", "false"] : column.values;
      node = element("select", {}, [element("option", { value: "", textContent: "any" }),
        ...values.map((value) => element("option", { value, textContent: value }))]);
    } else {
      node = input({ type: "text", placeholder: "any" });
    }
    Object.assign(node.dataset, { column: column.name, op: "eq", kind: column.kind });
    return element("label", { className: "filter" }, [label, node]);
  };

  const loadFilters = async (name) => {
    filterBox.hidden = false;
    filterGrid.replaceChildren();
    try {
      const response = await fetch(`/collections/${encodeURIComponent(name)}`, { headers: authHeaders() });
      const info = await response.json();
      const columns = response.ok ? info.columns : [];
      filterGrid.replaceChildren(...columns.map(control));
      filterHint.hidden = columns.length > 0;
    } catch (error) {
      filterHint.hidden = false;
    }
  };

  const collectFilters = () => {
    const filters = {};
    filterGrid.querySelectorAll("[data-column]").forEach((node) => {
      const { column, op, kind } = node.dataset;
      if (node.value === "") return;
      const value = kind === "number" ? Number(node.value) : kind === "bool" ? node.value === "true" : node.value;
      if (op === "eq") filters[column] = value;
      else filters[column] = { ...(filters[column] || {}), [op]: value };
    });
    return Object.keys(filters).length ? JSON.stringify(filters) : "";
  };

  const duplicatesLink = document.getElementById("duplicates-link");
  collection.addEventListener("change", () => {
    duplicatesLink.href = `/collections/${encodeURIComponent(collection.value)}/duplicates`;
    loadFilters(collection.value);
  });
  loadFilters(collection.value);

  const reason = (body, status) => {
    if (typeof body.detail === "string") return body.detail;
    if (Array.isArray(body.detail) && body.detail.length) {
      const first = body.detail[0];
      return `${(first.loc || []).slice(-1)[0] || "request"}: ${first.msg}`;
    }
    return `The search failed (HTTP ${status}).`;
  };

  // One search (an upload or "more like this"), its results shown or appended to the grid.
  const run = async (fetchPage, append) => {
    const offset = append ? last.offset + last.k : 0;
    submit.disabled = moreButton.disabled = true;
    showError("");
    try {
      const response = await fetchPage(offset);
      const body = await response.json().catch(() => ({}));
      if (!response.ok) {
        showError(reason(body, response.status));
        if (response.status === 401 || response.status === 403) askForKey(reason(body, response.status));
        return false;
      }
      last = { fetchPage, k: body.k, offset: body.offset };
      const hits = body.results.map(renderHit);
      if (append) grid.append(...hits);
      else grid.replaceChildren(...hits);
      const shown = body.offset + body.results.length;
      const from = append ? 1 : body.offset + 1;
      const like = body.query.id === null ? "" : ` · more like ${body.query.filename}`;
      const matched = body.matched === null ? "" : ` · ${body.matched} images match the filters`;
      const where = body.query.box ? " · searched the selected region" : "";
      summary.textContent = (shown ? `Results ${from}–${shown}` : "No results")
        + ` in ${Math.round(body.timing.total_ms)} ms${like}${matched}${where}`;
      summary.hidden = false;
      moreBox.hidden = body.results.length < body.k;
      return true;
    } catch (error) {
      showError(`Could not reach the server: ${error.message}`);
      return false;
    } finally {
      submit.disabled = moreButton.disabled = false;
    }
  };

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const byUrl = !input.files.length && address() !== "";
    if (!input.files.length && !byUrl) {
      showError(urlBox ? "Choose a photo or give its address first." : "Choose a photo first.");
      return;
    }
    filtersJson.value = collectFilters();
    submit.textContent = "Searching…";
    const data = new FormData(form);
    data.delete(byUrl ? "file" : "url");
    await run((offset) => {
      data.set("offset", offset);
      return fetch(form.action, {
        method: "POST", body: data, headers: { Accept: "application/json", ...authHeaders() },
      });
    }, false);
    submit.textContent = "Search";
  });
})();
