// The staff pages' live parts, without inline script (the CSP forbids it):
// [data-poll] sections refresh from their JSON URL until the send is final;
// a form with [data-count-url] shows how many readers its audience reaches (asked again while
// the count is being made: 202);
// a [data-counting] figure is being counted: once it is, the page is asked for again (the form
// its [data-recount] names is posted again, a confirmation's, unconfirmed);
// a [data-refresh] part (a send's pictures) is fetched again until it says it is final;
// tables get their column names on each cell (for the cards of a phone's width);
// previews are scaled to fit while keeping their true width; [data-print] prints the page.
"use strict";

// Numbers as the page's language writes them (1,234), as the server wrote them at first.
function shown(value) {
  return typeof value === "number"
    ? value.toLocaleString(document.documentElement.lang || undefined) : String(value);
}

function fill(section, data) {
  section.querySelectorAll("[data-field]").forEach(function (el) {
    var value = data[el.getAttribute("data-field")];
    if (value === undefined || value === null) { return; }
    if (el.tagName === "PROGRESS") { el.value = value; } else { el.textContent = shown(value); }
  });
  section.querySelectorAll("[data-count]").forEach(function (el) {
    el.textContent = shown((data.counts || {})[el.getAttribute("data-count")] || 0);
  });
}

function poll(section) {
  var url = section.getAttribute("data-poll");
  fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } })
    .then(function (response) { return response.ok ? response.json() : null; })
    .then(function (data) {
      if (data) { fill(section, data); }
      if (!data || !data.final) { window.setTimeout(function () { poll(section); }, 1500); }
      else { section.setAttribute("data-final", "true"); }
    })
    .catch(function () { window.setTimeout(function () { poll(section); }, 5000); });
}

var askedCount = 0;  // the form's latest count: an older one's answer is not shown

// the key of the count a "being counted" URL (/staff/counting/KEY) names
function countKey(url) { return url.substring(url.lastIndexOf("/") + 1); }

function countAudience(form, counted) {
  var asked = ++askedCount;
  var params = new URLSearchParams();
  form.querySelectorAll("input[name=lists]:checked").forEach(function (box) {
    params.append("lists", box.value);
  });
  params.append("tags", form.querySelector("input[name=tags]").value);
  params.append("variant", form.querySelector("select[name=variant]").value);
  params.append("issue", form.querySelector("[name=issue]").value);
  if (counted) { params.append("counted", counted); }  // waited for: shown as it was made
  fetch(form.getAttribute("data-count-url") + "?" + params.toString(),
        { credentials: "same-origin" })
    .then(function (response) {
      return response.json().then(function (data) {
        return { pending: response.status === 202, data: data };
      });
    })
    .then(function (answer) {
      if (asked !== askedCount) { return; }
      if (!answer.pending) { fill(form, answer.data); return; }
      form.querySelectorAll("[data-field=count]").forEach(function (el) {
        el.textContent = form.getAttribute("data-counting-text");
      });
      window.setTimeout(function () {
        if (asked === askedCount) { countAudience(form, countKey(answer.data.counting)); }
      }, 500);
    });
}

function awaitCount(figure) {
  fetch(figure.getAttribute("data-counting"),
        { credentials: "same-origin", headers: { Accept: "application/json" } })
    .then(function (response) { return response.ok ? response.json() : null; })
    .then(function (data) {
      if (!data || data.pending) {
        window.setTimeout(function () { awaitCount(figure); }, 500);
        return;
      }
      // asked again, saying which count it waited for: shown as it was made, even if a send
      // going out has changed what it reads since (else the page would wait for ever)
      var key = countKey(figure.getAttribute("data-counting"));
      var form = document.getElementById(figure.getAttribute("data-recount") || "");
      // (the form's own attribute: its field named "action" hides the property)
      var url = new URL(form ? form.getAttribute("action") : window.location.href,
                        window.location.href);
      url.searchParams.append("counted", key);
      if (form) { form.setAttribute("action", url.toString()); form.submit(); }
      else { window.location.replace(url.toString()); }
    })
    .catch(function () { window.setTimeout(function () { awaitCount(figure); }, 3000); });
}

// a button with [data-copy] copies the value of the field it names (a list's sign-up link).
function copyField(button) {
  var field = document.getElementById(button.getAttribute("data-copy"));
  field.select();
  if (navigator.clipboard) { navigator.clipboard.writeText(field.value); }
  else { document.execCommand("copy"); }
  button.setAttribute("data-copied", "true");
}

function refresh(part) {
  fetch(part.getAttribute("data-refresh"), { credentials: "same-origin" })
    .then(function (response) { return response.ok ? response.text() : null; })
    .then(function (html) {
      if (html) {
        var fresh = new DOMParser().parseFromString(html, "text/html").body.firstElementChild;
        if (fresh) { part.replaceChildren(fresh); labelCells(part); }
      }
      if (!part.querySelector("[data-final]")) {
        window.setTimeout(function () { refresh(part); }, 5000);
      }
    })
    .catch(function () { window.setTimeout(function () { refresh(part); }, 10000); });
}

function labelCells(root) {
  root.querySelectorAll(".table-wrap table").forEach(function (table) {
    var names = Array.prototype.map.call(table.querySelectorAll("thead th"), function (th) {
      return th.textContent.trim();
    });
    table.querySelectorAll("tbody tr").forEach(function (row) {
      Array.prototype.forEach.call(row.children, function (cell, i) {
        if (names[i] && !cell.hasAttribute("colspan")) { cell.setAttribute("data-label", names[i]); }
      });
    });
  });
}

function fitPreviews() {
  document.querySelectorAll(".preview-frame").forEach(function (frame) {
    var iframe = frame.querySelector("iframe");
    var width = Number(frame.getAttribute("data-width"));
    frame.style.width = "";
    var scale = Math.min(1, frame.parentElement.clientWidth / width);
    iframe.style.transform = scale < 1 ? "scale(" + scale + ")" : "";
    frame.style.width = width * scale + "px";
    frame.style.height = iframe.offsetHeight * scale + "px";
    frame.setAttribute("data-scale", scale.toFixed(3));
  });
}

document.addEventListener("DOMContentLoaded", function () {
  document.querySelectorAll("button[data-copy]").forEach(function (button) {
    button.addEventListener("click", function () { copyField(button); });
  });
  labelCells(document);
  fitPreviews();
  window.addEventListener("resize", fitPreviews);
  document.querySelectorAll("[data-refresh]").forEach(function (part) {
    if (!part.querySelector("[data-final]")) {
      window.setTimeout(function () { refresh(part); }, 5000);
    }
  });
  document.querySelectorAll("[data-print]").forEach(function (button) {
    button.addEventListener("click", function () { window.print(); });
  });
  document.querySelectorAll("[data-poll]").forEach(function (section) {
    window.setTimeout(function () { poll(section); }, 1000);
  });
  var counting = document.querySelector("[data-counting]");
  if (counting) { window.setTimeout(function () { awaitCount(counting); }, 300); }
  document.querySelectorAll("form[data-count-url]").forEach(function (form) {
    form.addEventListener("change", function () { countAudience(form); });
    countAudience(form);
  });
});
