// Progressive enhancement for the counter page: the forms work on their own (POST, then
// a 303 back to the page); with JavaScript a click updates the numbers in place.
"use strict";

(() => {
  const status = document.getElementById("status");

  // One request at a time, in click order, so the number shown is always the answer
  // to the last click (answers to parallel requests could arrive in any order).
  let queue = Promise.resolve();

  async function post(form) {
    let response;
    try {
      response = await fetch(form.action, {
        method: "POST",
        headers: { Accept: "application/json" },
        credentials: "same-origin",
      });
    } catch {
      throw new Error("The server could not be reached. Check your connection and try again.");
    }
    let body = null;
    try {
      body = await response.json();
    } catch {
      // not JSON: a proxy's error page, say; reported below by status
    }
    if (!response.ok || body === null || typeof body.counter !== "number") {
      const reason = body && body.error ? body.error : `The server answered ${response.status}.`;
      throw new Error(reason);
    }
    return body.counter;
  }

  function show(id, value) {
    const element = document.getElementById(id);
    if (element) {
      element.textContent = String(value);
    }
  }

  document.addEventListener("submit", (event) => {
    const form = event.target;
    if (!(form instanceof HTMLFormElement) || !form.dataset.showsIn) {
      return;
    }
    event.preventDefault();
    queue = queue.then(async () => {
      try {
        const value = await post(form);
        show(form.dataset.showsIn, value);
        if (form.dataset.takenIn) {
          show(form.dataset.takenIn, value);
          document.getElementById("taken").hidden = false;
        }
        status.textContent = "";
      } catch (error) {
        status.textContent = error.message;
      }
    });
  });
})();
