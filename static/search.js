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

  const showError = (message) => {
    errorBox.textContent = message;
    errorBox.hidden = !message;
  };

  const showPreview = () => {
    const file = input.files[0];
    if (!file) return;
    if (preview.src.startsWith("blob:")) URL.revokeObjectURL(preview.src);
    preview.src = URL.createObjectURL(file);
    preview.hidden = false;
    prompt.hidden = true;
    showError("");
  };

  input.addEventListener("change", showPreview);
  ["dragenter", "dragover"].forEach((type) => zone.addEventListener(type, (event) => {
    event.preventDefault();
    zone.classList.add("dragging");
  }));
  ["dragleave", "drop"].forEach((type) => zone.addEventListener(type, () => zone.classList.remove("dragging")));
  zone.addEventListener("drop", (event) => {
    event.preventDefault();
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

  const renderHit = (hit) => {
    const link = element("a", { href: hit.image_url, target: "_blank", rel: "noopener" },
      [element("img", { src: hit.image_url, alt: hit.path, loading: "lazy" })]);
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
    ]);
    return element("li", { className: "hit" }, [link, body]);
  };

  const reason = (body, status) => {
    if (typeof body.detail === "string") return body.detail;
    if (Array.isArray(body.detail) && body.detail.length) {
      const first = body.detail[0];
      return `${(first.loc || []).slice(-1)[0] || "request"}: ${first.msg}`;
    }
    return `The search failed (HTTP ${status}).`;
  };

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    if (!input.files.length) {
      showError("Choose a photo first.");
      return;
    }
    submit.disabled = true;
    submit.textContent = "Searching…";
    showError("");
    try {
      const response = await fetch(form.action, {
        method: "POST", body: new FormData(form), headers: { Accept: "application/json" },
      });
      const body = await response.json().catch(() => ({}));
      if (!response.ok) {
        showError(reason(body, response.status));
        return;
      }
      grid.replaceChildren(...body.results.map(renderHit));
      summary.textContent = `${body.results.length} results in ${Math.round(body.timing.total_ms)} ms`;
      summary.hidden = false;
    } catch (error) {
      showError(`Could not reach the server: ${error.message}`);
    } finally {
      submit.disabled = false;
      submit.textContent = "Search";
    }
  });
})();
