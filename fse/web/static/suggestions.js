// Progressive enhancement of the care sheet's search fields (inputs marked data-suggest with
// the endpoint they ask, /medicaments or /actes, sharing the datalist they name): as the doctor
// types, the suggestions are what the endpoint finds for that text (each with the value the
// field takes and a description), and the line under the field (<output id="FIELD-choix">) says
// what the form will take, or why nothing yet. An input with data-coefficient names the field
// whose placeholder shows the chosen act's default coefficient. The server reads every field
// with the same matcher, and without JavaScript the form and the review page name the choice.
"use strict";
const WAIT_MS = 150;

async function look(input, output, list) {
  const text = input.value.trim();
  const coefficient = input.dataset.coefficient
    ? document.getElementById(input.dataset.coefficient)
    : null;
  if (!text) {
    output.textContent = "";
    if (coefficient) coefficient.placeholder = "";
    return;
  }
  let found;
  try {
    const response = await fetch(`${input.dataset.suggest}?q=${encodeURIComponent(text)}`, {
      headers: { Accept: "application/json" },
      credentials: "same-origin",
    });
    const type = response.headers.get("content-type") || "";
    if (!response.ok || !type.startsWith("application/json")) return; // signed out: the form still works
    found = await response.json();
  } catch {
    return; // offline: the server reads the field when the form is sent
  }
  if (input.value.trim() !== text) return; // typed on meanwhile: a newer answer follows
  if (list) {
    list.replaceChildren(
      ...found.results.map((r) => {
        const option = document.createElement("option");
        option.value = r.value;
        option.textContent = r.text;
        return option;
      }),
    );
  }
  output.textContent = found.choice ? found.said : found.message;
  if (coefficient) coefficient.placeholder = (found.choice && found.choice.default) || "";
}

for (const input of document.querySelectorAll("input[data-suggest]")) {
  const output = document.getElementById(`${input.id}-choix`);
  const list = input.list;
  let timer;
  if (!output) continue;
  input.addEventListener("input", () => {
    clearTimeout(timer);
    timer = setTimeout(() => look(input, output, list), WAIT_MS);
  });
  // Typed before this script arrived (a slow line), or refilled by the browser on going back:
  // say now what the form will take, as if the doctor had just typed it.
  if (input.value.trim()) look(input, output, list);
}
