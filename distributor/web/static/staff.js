// The staff pages' live parts, without inline script (the CSP forbids it):
// [data-poll] sections refresh from their JSON URL until the send is final;
// a form with [data-count-url] shows how many readers its audience reaches.
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

function countAudience(form) {
  var params = new URLSearchParams();
  form.querySelectorAll("input[name=lists]:checked").forEach(function (box) {
    params.append("lists", box.value);
  });
  params.append("tags", form.querySelector("input[name=tags]").value);
  params.append("variant", form.querySelector("select[name=variant]").value);
  params.append("issue", form.querySelector("[name=issue]").value);
  fetch(form.getAttribute("data-count-url") + "?" + params.toString(),
        { credentials: "same-origin" })
    .then(function (response) { return response.json(); })
    .then(function (data) { fill(form, data); });
}

// a button with [data-copy] copies the value of the field it names (a list's sign-up link).
function copyField(button) {
  var field = document.getElementById(button.getAttribute("data-copy"));
  field.select();
  if (navigator.clipboard) { navigator.clipboard.writeText(field.value); }
  else { document.execCommand("copy"); }
  button.setAttribute("data-copied", "true");
}

document.addEventListener("DOMContentLoaded", function () {
  document.querySelectorAll("button[data-copy]").forEach(function (button) {
    button.addEventListener("click", function () { copyField(button); });
  });
  document.querySelectorAll("[data-poll]").forEach(function (section) {
    window.setTimeout(function () { poll(section); }, 1000);
  });
  document.querySelectorAll("form[data-count-url]").forEach(function (form) {
    form.addEventListener("change", function () { countAudience(form); });
    countAudience(form);
  });
});
