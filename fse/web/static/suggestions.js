// Progressive enhancement of the medicine fields of the care sheet form (inputs marked
// data-medicine, sharing the datalist they name): as the doctor types, the suggestions are the
// products /medicaments finds for that text (their names, never a bare EAN), and the line under
// the field says which product the form will take, or why none yet. The server reads the field
// with the same matcher, and without JavaScript the review page names the product.
"use strict";
const WAIT_MS = 150;

function describe(found) {
  if (found.choice) {
    const c = found.choice;
    return `Médicament retenu : ${c.label} — ${c.dci}, ${c.kind}, PPV ${c.ppv_text}`;
  }
  return found.message;
}

async function look(input, output, list) {
  const text = input.value.trim();
  if (!text) {
    output.textContent = "";
    return;
  }
  let found;
  try {
    const response = await fetch(`/medicaments?q=${encodeURIComponent(text)}`, {
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
        option.value = r.label;
        option.textContent = `${r.dci} — ${r.kind} — PPV ${r.ppv_text} / PBR ${r.pbr_text}`;
        return option;
      }),
    );
  }
  output.textContent = describe(found);
}

for (const input of document.querySelectorAll("input[data-medicine]")) {
  const output = document.getElementById(`${input.id}-choix`);
  const list = input.list;
  let timer;
  if (!output) continue;
  input.addEventListener("input", () => {
    clearTimeout(timer);
    timer = setTimeout(() => look(input, output, list), WAIT_MS);
  });
}
