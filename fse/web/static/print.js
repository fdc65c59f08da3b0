// Progressive enhancement of the printed documents: their "Imprimer" button is hidden until
// this script shows it and makes it print (an external file, as the Content-Security-Policy
// allows no inline handler). Without JavaScript the browser's own print command is used.
"use strict";
for (const button of document.querySelectorAll("button[data-print]")) {
  button.addEventListener("click", () => window.print());
  button.hidden = false;
}
